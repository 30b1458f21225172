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
    public let roots: [Certificate]
    private let revoked = Mutex<[DistinguishedName: (number: UInt64, serials: Set<Certificate.SerialNumber>)]>([:])

    public init(roots: [Certificate]) { self.roots = roots }

    /// Installs `crl` if a trusted root signed it and it is not older than the one installed.
    /// Returns false when it was older or the same (nothing changed).
    @discardableResult
    public func install(_ crl: RevocationList, at now: Date = Date()) throws -> Bool {
        guard let root = roots.first(where: { $0.subject == crl.issuer }) else { throw RevocationList.Failure.wrongIssuer }
        try crl.verify(issuedBy: root, at: now)
        return revoked.withLock { r in
            if let current = r[crl.issuer], current.number >= crl.crlNumber { return false }
            r[crl.issuer] = (crl.crlNumber, crl.revokedSerials)
            return true
        }
    }

    public func isRevoked(_ cert: Certificate) -> Bool {
        revoked.withLock { $0[cert.issuer]?.serials.contains(cert.serialNumber) ?? false }
    }

    /// Validates a leaf (with any intermediates) for `purpose`: dates, chain to a root with valid
    /// signatures (RFC 5280), not revoked, key usage fit for the purpose, identity in the subject.
    public func validate(leaf: Certificate, intermediates: [Certificate] = [], purpose: CertificatePurpose, at now: Date = Date()) async throws(IdentityRejection) -> AuthenticatedIdentity {
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
            guard let eku, eku.contains(.clientAuth) else { throw .wrongPurpose("not a TLS client certificate (no clientAuth usage)") }
        case .signing:
            guard usage?.digitalSignature == true, eku == nil else { throw .wrongPurpose("not a signing certificate") }
        }
        guard let attributes = leaf.attributes, attributes.roleValue != nil else { throw .malformedSubject }
        return AuthenticatedIdentity(attributes: attributes, serialHex: leaf.serialHex, certificate: leaf)
    }
}
