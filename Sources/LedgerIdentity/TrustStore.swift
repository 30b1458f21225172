import Foundation
import LedgerProtos
import SwiftASN1
import Synchronization
import X509

/// A caller whose certificate chain was verified: the facts every handler authorises on.
public struct AuthenticatedIdentity: Sendable, Equatable {
    public var attributes: IdentityAttributes
    public var serialHex: String
    public var certificate: Certificate

    public var pid: String { attributes.pid }
    public var org: String { attributes.org }
    public var role: Medledger_Role { attributes.roleValue ?? .unspecified }
}

/// Why a certificate was not accepted. Every case means "authentication failed" (401 / UNAUTHENTICATED).
public enum IdentityRejection: Error, Equatable, CustomStringConvertible {
    case noCertificate
    case notYetValid(Date)
    case expired(Date)
    case untrusted(String)
    case revoked(serial: String)
    case wrongPurpose(String)
    case malformedSubject

    public var description: String {
        switch self {
        case .noCertificate: return "no client certificate"
        case .notYetValid(let d): return "certificate not valid before \(d)"
        case .expired(let d): return "certificate expired at \(d)"
        case .untrusted(let why): return "certificate does not chain to a trusted root: \(why)"
        case .revoked(let s): return "certificate \(s) is revoked"
        case .wrongPurpose(let why): return "certificate not usable here: \(why)"
        case .malformedSubject: return "certificate subject lacks the PID, organisation or role"
        }
    }
}

/// Trusted CA roots plus their current revocation lists: decides whether a certificate is a live
/// member identity. Used in the TLS handshake (custom verification) and again on every call, so a
/// revocation takes effect on connections already open. CRLs can be replaced at any time.
public final class TrustStore: Sendable {
    /// One CA's revocation list as installed: what `node status` and health report.
    public struct InstalledCRL: Sendable, Equatable {
        public var issuer: DistinguishedName
        public var number: UInt64
        public var thisUpdate: Date
        public var nextUpdate: Date?
        public var serials: Set<Certificate.SerialNumber>
        /// Where it came from (a file, the CA, a channel's configuration).
        public var source: String

        /// Past its nextUpdate: still enforced (it lists real revocations) but due for a refresh.
        public func isStale(at now: Date) -> Bool { nextUpdate.map { $0 <= now } ?? false }
        /// Past half its validity: time to fetch a newer one.
        public func isDue(at now: Date) -> Bool {
            guard let nextUpdate else { return false }
            return now >= thisUpdate.addingTimeInterval(nextUpdate.timeIntervalSince(thisUpdate) / 2)
        }
    }

    public let roots: [Certificate]
    private let revoked = Mutex<[DistinguishedName: InstalledCRL]>([:])
    /// Every serial any installed CRL lists, whoever issued it: most certificates asked about are not
    /// revoked, and a serial is cheaper to hash than an issuer's name (every proposal asks).
    private let anyRevokedSerial = Mutex<Set<Certificate.SerialNumber>>([])

    public init(roots: [Certificate]) { self.roots = roots }

    /// Installs `crl` if a trusted root signed it and it is newer than the one installed. Returns false
    /// when it was older or the same (nothing changed). A CRL past its nextUpdate is still installed:
    /// the revocations it lists are real, and refusing it would leave none in force; `installed`
    /// reports it stale so that it is refreshed.
    @discardableResult
    public func install(_ crl: RevocationList, source: String = "") throws -> Bool {
        guard let root = roots.first(where: { $0.subject == crl.issuer }) else {
            throw RevocationList.Failure.wrongIssuer
        }
        try crl.verify(issuedBy: root, at: crl.thisUpdate)
        return revoked.withLock { r in
            if let current = r[crl.issuer], current.number >= crl.crlNumber { return false }
            r[crl.issuer] = InstalledCRL(
                issuer: crl.issuer, number: crl.crlNumber, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate,
                serials: crl.revokedSerials, source: source)
            let all = r.values.reduce(into: Set<Certificate.SerialNumber>()) { $0.formUnion($1.serials) }
            anyRevokedSerial.withLock { $0 = all }
            return true
        }
    }

    /// The revocation lists in force, one per CA.
    public var installed: [InstalledCRL] {
        revoked.withLock { Array($0.values) }.sorted { $0.issuer.description < $1.issuer.description }
    }

    public func isRevoked(_ cert: Certificate) -> Bool { isRevoked(issuer: cert.issuer, serial: cert.serialNumber) }

    public func isRevoked(issuer: DistinguishedName, serial: Certificate.SerialNumber) -> Bool {
        guard anyRevokedSerial.withLock({ $0.contains(serial) }) else { return false }
        return revoked.withLock { $0[issuer]?.serials.contains(serial) ?? false }
    }

    /// Validates a leaf (with any intermediates) for `purpose`: dates, chain to a root with valid
    /// signatures (RFC 5280), not revoked, key usage fit for the purpose, identity in the subject.
    public func validate(
        leaf: Certificate, intermediates: [Certificate] = [], purpose: CertificatePurpose, at now: Date = Date()
    ) async throws(IdentityRejection) -> AuthenticatedIdentity {
        if leaf.notValidBefore > now { throw .notYetValid(leaf.notValidBefore) }
        if leaf.notValidAfter <= now { throw .expired(leaf.notValidAfter) }
        if isRevoked(leaf) { throw .revoked(serial: leaf.serialHex) }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
        guard case .validCertificate(let chain) = result else {
            if case .couldNotValidate(let failures) = result {
                throw .untrusted(failures.first.map { "\($0.policyFailureReason)" } ?? "no chain found")
            }
            throw .untrusted("no chain found")
        }
        for c in chain.dropLast() where isRevoked(c) { throw .revoked(serial: c.serialHex) }
        let usage = try? leaf.extensions.keyUsage
        let eku = try? leaf.extensions.extendedKeyUsage
        switch purpose {
        case .tls:
            // Client identities: a server-only certificate does not authenticate a caller.
            guard let eku, eku.contains(.clientAuth) else {
                throw .wrongPurpose("not a TLS client certificate (no clientAuth usage)")
            }
        case .signing:
            guard usage?.digitalSignature == true, eku == nil else { throw .wrongPurpose("not a signing certificate") }
        }
        guard let attributes = leaf.attributes, attributes.roleValue != nil else { throw .malformedSubject }
        return AuthenticatedIdentity(attributes: attributes, serialHex: leaf.serialHex, certificate: leaf)
    }
}
