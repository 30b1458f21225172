import Crypto
import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerPeer
import LedgerProtos
import LedgerStorage
import MedRecords
import SwiftASN1
import Synchronization
import X509

/// The fixed world every harness runs in: one CA root, members of three organisations, the channel
/// `records` (genesis block), a CRL, Umbral keys with a capsule and its fragments, and a ledger whose
/// state already holds a treatment, an index record, a consent, a usage record and published keys.
///
/// Deterministic across runs, so that a corpus file means the same thing every time: private keys
/// are derived from labels, and everything that carries a randomised signature (certificates, the
/// CRL, the genesis block, the kfrags) was generated once (`MedLedgerFuzz make-fixture`) and is
/// compiled in (`FixtureData.swift`). Test keys only, never used outside this harness.
public final class Fixture: Sendable {
    /// Every transaction and certificate check happens at this time (2030-03-17), like the tests.
    public static let now = Date(timeIntervalSince1970: 1_900_000_000)
    /// Harness calls (proposals, chaincode invocations) happen a little after the fixture's own.
    public static let callTime = now.addingTimeInterval(100)
    public static let channel = "records"

    /// (label, organisation, role) of every member identity. `a-revoked` is on hospital-a's CRL.
    static let memberSpecs: [(label: String, org: String, role: Medledger_Role)] = [
        ("sa-admin", "sa", .admin), ("sa-orderer", "sa", .node),
        ("a-admin", "hospital-a", .admin), ("a-peer", "hospital-a", .node), ("a-doctor", "hospital-a", .doctor),
        ("a-patient", "hospital-a", .patient), ("a-device", "hospital-a", .device),
        ("a-revoked", "hospital-a", .doctor),
        ("b-admin", "hospital-b", .admin), ("b-peer", "hospital-b", .node), ("b-research", "hospital-b", .thirdParty),
    ]

    public struct Member: Sendable {
        public let label: String
        public let org: String
        public let role: Medledger_Role
        public let pid: String
        public let identity: SigningIdentity
        public var key: P256.Signing.PrivateKey { identity.key }
        public var serialized: [UInt8] { identity.serialized }
        public var certificatePEM: String { identity.certificatePEM }
    }

    public let rootKey: P384.Signing.PrivateKey
    public let root: Certificate
    public let members: [String: Member]
    /// Members by their serialized identity (what travels as creator / endorser / signer).
    let bySerialized: [[UInt8]: Member]
    public let tlsCertificatePEM: String
    public let crlDER: [UInt8]
    public let genesis: Medledger_Block
    public let context: ChannelContext
    public let trust: TrustStore

    // Umbral: the patient encrypts to herself and delegates to the researcher (2 of 3 kfrags).
    public let patientSK: SecretKey
    public let patientSigner: Signer
    public let researchSK: SecretKey
    public let capsule: Capsule
    public let wrappedKey: [UInt8]
    public let kfrags: [VerifiedKeyFrag]
    public let cfrags: [VerifiedCapsuleFrag]

    public let endorser: Endorser
    public let validator = BlockValidator()
    /// A ledger with the fixture's records committed (see `populate`); harnesses only read it.
    public let ledger: ChannelLedger
    /// What `populate` created, for seeds: treatment, index record, consent and usage ids.
    public let ids: [String: String]

    public static let shared: Fixture = {
        do { return try Fixture() } catch { fatalError("MedLedgerFuzz: the fixture does not build: \(error)") }
    }()

    init() throws {
        guard !FixtureData.rootCertificatePEM.isEmpty else {
            throw FixtureError(
                "FixtureData.swift is empty: run `swift run MedLedgerFuzz make-fixture > Sources/MedLedgerFuzzHarness/FixtureData.swift`"
            )
        }
        var members = [String: Member]()
        for spec in Self.memberSpecs {
            guard let pem = FixtureData.certificatePEMs[spec.label] else {
                throw FixtureError("FixtureData has no certificate for \(spec.label)")
            }
            members[spec.label] = Member(
                label: spec.label, org: spec.org, role: spec.role, pid: FixtureKeys.pid(spec.label),
                identity: try SigningIdentity(org: spec.org, certificatePEM: pem, key: FixtureKeys.p256(spec.label)))
        }
        let root = try Certificate(pemEncoded: FixtureData.rootCertificatePEM)
        let crlDER = try Self.hex(FixtureData.crlDERHex)
        let genesis = try Medledger_Block(serializedBytes: try Self.hex(FixtureData.genesisBlockHex))
        let trust = TrustStore(roots: [root])
        try trust.install(try RevocationList.parse(crlDER))

        let patientSK = FixtureKeys.umbral("a-patient/encryption")
        let patientSigner = Signer(FixtureKeys.umbral("a-patient/signing"))
        let researchSK = FixtureKeys.umbral("b-research/encryption")
        let capsule = try Capsule(bytes: try Self.hex(FixtureData.capsuleHex))
        var kfrags = [VerifiedKeyFrag]()
        for h in FixtureData.kfragHexes {
            kfrags.append(
                try KeyFrag(bytes: try Self.hex(h)).verify(
                    verifyingPK: patientSigner.verifyingKey, delegatingPK: patientSK.publicKey,
                    receivingPK: researchSK.publicKey))
        }
        let endorser = Endorser(
            identity: members["a-peer"]!.identity, chaincodes: [KVChaincode(), MedRecordsChaincode()])

        rootKey = FixtureKeys.p384("root")
        self.root = root
        self.members = members
        bySerialized = Dictionary(uniqueKeysWithValues: members.values.map { ($0.serialized, $0) })
        tlsCertificatePEM = FixtureData.tlsCertificatePEM
        self.crlDER = crlDER
        self.genesis = genesis
        context = try ConfigTransaction.verifyGenesis(genesis)
        self.trust = trust
        self.patientSK = patientSK
        self.patientSigner = patientSigner
        self.researchSK = researchSK
        self.capsule = capsule
        wrappedKey = try Self.hex(FixtureData.wrappedKeyHex)
        self.kfrags = kfrags
        cfrags = kfrags.map { Umbral.reencrypt(capsule: capsule, kfrag: $0) }
        self.endorser = endorser
        (ledger, ids) = try Self.populate(
            genesis: genesis, members: members, endorser: endorser, capsule: capsule,
            patientSK: patientSK, patientSigner: patientSigner, researchSK: researchSK)
    }

    public func member(_ label: String) -> Member { members[label]! }

    /// The member whose serialized identity this is, if any.
    func member(serialized: some DataProtocol) -> Member? { bySerialized[Array(serialized)] }

    // MARK: - The populated ledger

    /// A deterministic nonce per fixture transaction, so transaction ids (and the ids medrecords
    /// derives from them) are the same in every run.
    static func nonce(_ label: String) -> [UInt8] {
        Array(SHA256.hash(data: Array("medledger-fuzz/nonce/\(label)".utf8)).prefix(24))
    }

    static func populate(
        genesis: Medledger_Block, members: [String: Member], endorser: Endorser, capsule: Capsule,
        patientSK: SecretKey, patientSigner: Signer, researchSK: SecretKey
    ) throws -> (ChannelLedger, [String: String]) {
        let store = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        let peer = try PeerChannel.join(genesis: genesis, store: store)
        var step = 0
        var ids = [String: String]()
        func submit(_ who: String, _ chaincode: String, _ function: String, _ args: [[UInt8]]) throws -> [UInt8] {
            step += 1
            let time = now.addingTimeInterval(Double(step))
            let signer = members[who]!.identity
            let p = try TransactionBuilder.proposal(
                channel: channel, chaincode: chaincode, function: function, args: args, signer: signer, at: time,
                nonce: nonce("populate-\(step)"))
            let parsed = try ParsedProposal(p.signed)
            let response = try endorser.process(parsed, context: peer.context, state: peer.ledger.state, now: time) {
                try peer.ledger.transaction(id: $0) != nil
            }
            guard response.response.status == 200 else {
                throw FixtureError("populate \(function): [\(response.response.status)] \(response.response.message)")
            }
            let envelope = try TransactionBuilder.envelope(p, responses: [response], signer: signer)
            let info = peer.ledger.info
            var block = Medledger_Block.make(
                number: info.height, previousHash: info.tipHash, envelopes: [try envelope.serializedBytes()])
            block.metadata.orderingSignature(
                signer: members["sa-orderer"]!.identity, headerHash: block.header.headerHash, at: time)
            try peer.receive(block)
            guard try peer.ledger.transaction(id: p.txID)?.code == .valid else {
                throw FixtureError("populate \(function): not committed as valid")
            }
            return [UInt8](response.response.payload)
        }
        func json(_ body: some Encodable) throws -> [[UInt8]] {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            return [Array(try e.encode(body))]
        }
        func field(_ payload: [UInt8], _ name: String) throws -> String {
            guard let o = try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
                let v = o[name] as? String
            else {
                throw FixtureError("populate: no \(name) in the answer")
            }
            return v
        }
        let patient = members["a-patient"]!
        let doctor = members["a-doctor"]!
        let research = members["b-research"]!
        let t = try submit(
            "a-peer", "medrecords", "createTreatment",
            json(CreateTreatmentRequest(patientPID: patient.pid, doctorPID: doctor.pid)))
        let tID = try field(t, "t_id")
        ids["t_id"] = tID
        _ = try submit(
            "a-patient", "medrecords", "publishKeys",
            json(
                PublishKeysRequest(
                    encryptionKey: Hex.encode(patientSK.publicKey.compressedBytes),
                    verifyingKey: Hex.encode(patientSigner.verifyingKey.compressedBytes))))
        _ = try submit(
            "b-research", "medrecords", "publishKeys",
            json(
                PublishKeysRequest(
                    encryptionKey: Hex.encode(researchSK.publicKey.compressedBytes),
                    verifyingKey: Hex.encode(
                        Signer(FixtureKeys.umbral("b-research/signing")).verifyingKey.compressedBytes))))
        let url = "medledger://127.0.0.1:7051/objects/" + String(repeating: "ab", count: 48)
        let digest = String(repeating: "ab", count: 48)
        let r = try submit(
            "a-doctor", "medrecords", "putIndexRecord",
            json(
                PutIndexRecordRequest(
                    tID: tID, url: url, digest: digest,
                    patientSignature: try IndexRecordSigning.sign(
                        tid: tID, url: url, digestHex: digest, key: patient.key),
                    doctorSignature: try IndexRecordSigning.sign(
                        tid: tID, url: url, digestHex: digest, key: doctor.key),
                    patientCert: patient.certificatePEM, doctorCert: doctor.certificatePEM,
                    capsule: Hex.encode(capsule.toBytes()))))
        ids["record_id"] = try field(r, "record_id")
        let c = try submit(
            "a-patient", "medrecords", "grantAccess",
            json(
                GrantAccessRequest(
                    granteePID: research.pid, tIDs: [tID], purpose: "research", expiresAt: "2030-04-16T00:00:00Z")))
        ids["consent_id"] = try field(c, "consent_id")
        let u = try submit(
            "a-peer", "medrecords", "recordUsage",
            json(
                RecordUsageRequest(
                    tID: tID, thirdPartyPID: research.pid, proxyNode: "a-peer", purpose: "research")))
        ids["usage_id"] = try field(u, "usage_id")
        _ = try submit("a-admin", "kv", "put", [Array("k1".utf8), Array("v1".utf8)])
        _ = try submit("a-admin", "kv", "put", [Array("k2".utf8), Array("v2".utf8)])
        return (peer.ledger, ids)
    }

    // MARK: - Signing as a fixture member (a malicious insider signs whatever the fuzzer made)

    /// Signs `message` with the key of the member whose serialized identity is `identity`; a member's
    /// key when the identity is not a fixture member's (the signature then does not verify).
    func sign(_ message: [UInt8], as identity: some DataProtocol, fallback: String = "a-patient") -> Data {
        let m = member(serialized: identity) ?? member(fallback)
        return Data((try? m.identity.sign(message)) ?? [])
    }

    static func hex(_ s: String) throws -> [UInt8] {
        guard let b = Hex.decode(s) else { throw FixtureError("bad hex in FixtureData") }
        return b
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Private keys derived from labels: the same in every run. Test keys only.
enum FixtureKeys {
    static func digest(_ kind: String, _ label: String) -> [UInt8] {
        Array(SHA384.hash(data: Array("medledger-fuzz/\(kind)/\(label)".utf8)))
    }

    static func p256(_ label: String) -> P256.Signing.PrivateKey {
        try! P256.Signing.PrivateKey(rawRepresentation: digest("p256", label).prefix(32))
    }

    static func p384(_ label: String) -> P384.Signing.PrivateKey {
        try! P384.Signing.PrivateKey(rawRepresentation: digest("p384", label))
    }

    static func umbral(_ label: String) -> SecretKey {
        try! SecretKey(bigEndianBytes: Array(digest("umbral", label).prefix(32)))
    }

    /// A PID of the real shape (64 base64url characters of a SHA-384), from the label.
    static func pid(_ label: String) -> String { Base64URL.encode(digest("pid", label)) }
}
