import Crypto
import Foundation
import LedgerChaincode
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import SwiftASN1
import Synchronization
import X509

/// Why an identity carried in a transaction was not accepted as a channel member.
public struct MemberRejection: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A signing identity that is a live member of the channel: who it is, and its public key.
public struct VerifiedMember: Sendable {
    public internal(set) var identity: CreatorIdentity
    public var publicKey: P256.Signing.PublicKey { verifyingKey.publicKey }
    public let verifyingKey: P256VerifyingKey
    public let serialHex: String
    /// Issuer and serial, for the node's own (freshest) revocation lists, which may be newer than
    /// the channel's.
    public let issuer: DistinguishedName
    public let serial: Certificate.SerialNumber

    public var org: String { identity.org }
    public var role: Medledger_Role { identity.role }
    /// What a chaincode gets for a certificate carried in its arguments or transient inputs.
    public var signer: ValidatedSigner { ValidatedSigner(identity: identity, verifyingKey: verifyingKey) }
    public var principal: EndorsementPolicy.Endorser {
        EndorsementPolicy.Endorser(org: identity.org, role: RoleName.name(identity.role) ?? "unknown")
    }

    /// ECDSA P-256 / SHA-256 over `message`, DER signature.
    public func isValidSignature(_ der: some DataProtocol, for message: some DataProtocol) -> Bool {
        guard let sig = ECDSADER.p256Signature(der) else { return false }
        return P256Verifier.shared.isValidSignature(sig, for: message, key: verifyingKey)
    }
}

/// The channel's membership service, built from one channel configuration: decides whether a
/// certificate is a live signing identity of a member organisation. Decisions depend only on the
/// configuration (roots, CRLs) and the time given, so every peer decides the same.
///
/// Chain checks cost a P-384 signature verification; results are cached per certificate (dates and
/// revocation are still checked on every use). A new configuration builds a new instance, so the
/// cache never outlives the roots and CRLs it was computed under.
public final class ChannelMembers: MemberValidator, Sendable {
    struct Organization: Sendable {
        var id: String
        var roots: [Certificate]
        var revoked: Set<Certificate.SerialNumber>
        /// The channel's CRL of this organisation, checked against its roots.
        var crl: RevocationList?
    }

    struct Checked: Sendable {
        var member: VerifiedMember
        var notBefore: Date
        var notAfter: Date
        var serial: Certificate.SerialNumber
    }

    let organizations: [String: Organization]
    /// By the PEM text as given, hashed whole: the parser accepts any text around the certificate,
    /// so a caller could otherwise send variants alike in their first 80 bytes (all `Data` hashes).
    /// Anyone can fill it with such variants (it is emptied when full); `byDER` keeps that cheap.
    private let byPEM = Mutex<[WholeBytesKey: Checked]>([:])
    /// Certificates that passed the chain check, by their DER bytes. Only certificates signed by a
    /// member's root enter, so no caller can fill it; a new text of a known certificate (other text
    /// around it, other line breaks), or one whose `byPEM` entry was emptied away, costs a parse
    /// instead of a P-384 verification.
    private let byDER = Mutex<[WholeBytesKey: Checked]>([:])
    private static let cacheMax = 20_000
    private let chainChecks = Atomic<Int>(0)
    /// How many certificates were checked against a root (tests: what the caches spared).
    package var chainCheckCount: Int { chainChecks.load(ordering: .relaxed) }

    public var organizationIDs: Set<String> { Set(organizations.keys) }

    /// The channel's CRL of organisation `id` (checked against its roots), nil if it has none.
    public func crl(of id: String) -> RevocationList? { organizations[id]?.crl }

    /// The organisations whose members chain to the CA that issued `crl`.
    public func organizations(servedBy crl: RevocationList) -> [String] {
        organizations.values.filter { $0.roots.contains { $0.subject == crl.issuer } }.map(\.id).sorted()
    }

    /// Throws `ChannelConfigError` if a root or CRL does not parse or verify.
    public init(config: Medledger_ChannelConfig) throws(ChannelConfigError) {
        var orgs = [String: Organization]()
        for o in config.organizations {
            var roots = [Certificate]()
            for pem in o.rootCertificates {
                do {
                    roots.append(contentsOf: try Certificate.parseBundle(pem: String(decoding: pem, as: UTF8.self)))
                } catch {
                    throw ChannelConfigError("organisation \(o.id): a root certificate does not parse: \(error)")
                }
            }
            var revoked = Set<Certificate.SerialNumber>()
            var checkedCRL: RevocationList?
            if !o.crl.isEmpty {
                let crl: RevocationList
                do { crl = try RevocationList.parse([UInt8](o.crl)) } catch {
                    throw ChannelConfigError("organisation \(o.id): CRL does not parse: \(error)")
                }
                guard let root = roots.first(where: { $0.subject == crl.issuer }) else {
                    throw ChannelConfigError("organisation \(o.id): CRL is not issued by one of its roots")
                }
                do { try crl.verify(issuedBy: root, at: crl.thisUpdate) } catch {
                    throw ChannelConfigError("organisation \(o.id): CRL does not verify: \(error)")
                }
                revoked = crl.revokedSerials
                checkedCRL = crl
            }
            orgs[o.id] = Organization(id: o.id, roots: roots, revoked: revoked, crl: checkedCRL)
        }
        organizations = orgs
    }

    /// A `SerializedIdentity` (msp id + PEM certificate) as a member signing identity at `time`.
    public func verify(
        serializedIdentity bytes: some DataProtocol, at time: Date
    ) throws(MemberRejection) -> VerifiedMember {
        let id: Medledger_SerializedIdentity
        do { id = try Medledger_SerializedIdentity(serializedBytes: Array(bytes)) } catch {
            throw MemberRejection("identity does not parse")
        }
        let member = try verify(certificatePEM: id.idBytes, at: time)
        guard member.org == id.mspID else {
            throw MemberRejection(
                "identity claims organisation \(id.mspID.debugDescription) but its certificate is of \(member.org.debugDescription)"
            )
        }
        return member
    }

    public func verify(certificatePEM pem: Data, at time: Date) throws(MemberRejection) -> VerifiedMember {
        let checked: Checked
        let key = WholeBytesKey(pem)
        if let hit = byPEM.withLock({ $0[key] }) {
            checked = hit
        } else {
            checked = try check(pem)
            Self.remember(checked, as: key, in: byPEM)
        }
        if time < checked.notBefore {
            throw MemberRejection("certificate \(checked.member.serialHex) is not valid before \(checked.notBefore)")
        }
        if time >= checked.notAfter {
            throw MemberRejection("certificate \(checked.member.serialHex) expired at \(checked.notAfter)")
        }
        if organizations[checked.member.org]?.revoked.contains(checked.serial) == true {
            throw MemberRejection("certificate \(checked.member.serialHex) is revoked")
        }
        return checked.member
    }

    // MemberValidator, for chaincodes that check certificates carried in their arguments or transient
    // inputs.
    public func validateSigner(certificatePEM: String, at time: Date) throws -> ValidatedSigner {
        try verify(certificatePEM: Data(certificatePEM.utf8), at: time).signer
    }

    private static func remember(
        _ checked: Checked, as key: WholeBytesKey, in cache: borrowing Mutex<[WholeBytesKey: Checked]>
    ) {
        cache.withLock { c in
            if c.count >= Self.cacheMax { c.removeAll(keepingCapacity: true) }
            c[key] = checked
        }
    }

    /// The time-independent part: parse, then (unless these DER bytes passed before) chain to the
    /// named organisation's root, purpose, identity. The identity carries the PEM text as given.
    private func check(_ pem: Data) throws(MemberRejection) -> Checked {
        let text = String(decoding: pem, as: UTF8.self)
        // What `Certificate(pemEncoded:)` accepts, with the DER bytes kept for `byDER`.
        guard let document = try? PEMDocument(pemString: text),
            document.discriminator == Certificate.defaultPEMDiscriminator
        else { throw MemberRejection("certificate does not parse") }
        let derKey = WholeBytesKey(Data(document.derBytes))
        if var known = byDER.withLock({ $0[derKey] }) {
            known.member.identity.certificatePEM = text
            return known
        }
        let checked = try checkChain(document, text: text)
        Self.remember(checked, as: derKey, in: byDER)
        return checked
    }

    private func checkChain(_ document: PEMDocument, text: String) throws(MemberRejection) -> Checked {
        chainChecks.add(1, ordering: .relaxed)
        let cert: Certificate
        do { cert = try Certificate(derEncoded: document.derBytes) } catch {
            throw MemberRejection("certificate does not parse")
        }
        guard let attrs = cert.attributes, let role = attrs.roleValue else {
            throw MemberRejection("certificate subject lacks the PID, organisation or role")
        }
        guard let org = organizations[attrs.org] else {
            throw MemberRejection("organisation \(attrs.org.debugDescription) is not a member of this channel")
        }
        guard let root = org.roots.first(where: { $0.subject == cert.issuer }),
            root.publicKey.isValidSignature(cert.signature, for: cert)
        else {
            throw MemberRejection("certificate does not chain to a root of \(attrs.org)")
        }
        let usage = try? cert.extensions.keyUsage
        let eku = try? cert.extensions.extendedKeyUsage
        guard usage?.digitalSignature == true, eku == nil else { throw MemberRejection("not a signing certificate") }
        guard let key = P256.Signing.PublicKey(cert.publicKey) else {
            throw MemberRejection("signing key is not P-256")
        }
        let identity = CreatorIdentity(pid: attrs.pid, org: attrs.org, role: role, certificatePEM: text)
        return Checked(
            member: VerifiedMember(
                identity: identity, verifyingKey: P256VerifyingKey(key), serialHex: cert.serialHex, issuer: cert.issuer,
                serial: cert.serialNumber),
            notBefore: max(cert.notValidBefore, root.notValidBefore),
            notAfter: min(cert.notValidAfter, root.notValidAfter),
            serial: cert.serialNumber)
    }
}

/// The node's own, freshest view of revocations (its CRL files, or the CA it runs): a gate in front of
/// endorsement and ordering that can act before the channel's CRL is updated. Not a validation rule:
/// nodes may hold different CRLs at a given moment, and validation must reach the same codes on all.
public protocol RevocationGate: Sendable {
    func isRevoked(issuer: DistinguishedName, serial: Certificate.SerialNumber) -> Bool
}

extension TrustStore: RevocationGate {}

extension RevocationGate {
    /// Why `member` is refused at this gate, nil if it passes.
    public func refusal(of member: VerifiedMember) -> String? {
        isRevoked(issuer: member.issuer, serial: member.serial)
            ? "certificate \(member.serialHex) is revoked (this node's CRL)" : nil
    }
}

/// The channel's membership with the node's revocation gate in front: what chaincodes check signer
/// certificates against while endorsing. Validation later re-checks the same certificates against the
/// channel's membership alone.
public struct GatedMembers: MemberValidator {
    public let members: ChannelMembers
    public let gate: any RevocationGate

    public init(_ members: ChannelMembers, gate: any RevocationGate) {
        self.members = members
        self.gate = gate
    }

    public func validateSigner(certificatePEM: String, at time: Date) throws -> ValidatedSigner {
        let member = try members.verify(certificatePEM: Data(certificatePEM.utf8), at: time)
        if let why = gate.refusal(of: member) { throw MemberRejection(why) }
        return member.signer
    }
}
