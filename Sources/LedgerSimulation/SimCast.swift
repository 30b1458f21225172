import Crypto
import Foundation
import LedgerChannel
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import X509

/// Who takes part in a simulated run: a root CA, the SA's orderer node, one node per hospital peer,
/// client identities spread over the hospitals, and the channel's genesis block. Keys and
/// signatures are fresh each run (ECDSA signing is randomised); nothing the simulation decides
/// depends on their bytes.
struct SimCast {
    static let channel = "records"
    static let hospitals = ["hospital-a", "hospital-b", "hospital-c", "hospital-d", "hospital-e"]

    let orderer: SigningIdentity
    let peers: [SigningIdentity]
    /// Doctors: kv and counter writes, and P_DE index records for their treatments.
    let clients: [SigningIdentity]
    /// One management node per hospital (role node): creates treatments, as H_Mj books them.
    let managers: [SigningIdentity]
    /// Patients (enrolled at the first hospital), who sign P_DE with the doctor. Their names exist
    /// only off chain, in the records' plaintext: the referee looks for both on every disk.
    let patients: [SigningIdentity]
    let patientNames: [String]
    let clientPIDs: [String]
    let patientPIDs: [String]
    let genesis: Medledger_Block
    /// The CA's root and key, and the SA's administrator: they revoke a doctor mid-run.
    let root: Certificate
    let rootKey: P384.Signing.PrivateKey
    let admin: SigningIdentity

    /// `peers` hospitals each run a peer; kv writes need endorsements from a majority of them.
    init(peers: Int, clients: Int, blockMaxTx: Int, at start: Date) throws {
        let rootKey = P384.Signing.PrivateKey()
        let root = try CertificateFactory.selfSignedRoot(
            key: rootKey, name: try DistinguishedName { CommonName("Simulation Root") }, validity: 86_400 * 30,
            now: start.addingTimeInterval(-3_600))
        func make(_ org: String, _ role: String, _ n: Int) throws -> SigningIdentity {
            let key = P256.Signing.PrivateKey()
            let pid = Self.pid(org, role, n)
            let cert = try CertificateFactory.issue(
                publicKey: .init(key.publicKey), identity: IdentityAttributes(pid: pid, org: org, role: role),
                purpose: .signing, issuer: root, issuerKey: rootKey, validity: 86_400 * 30,
                now: start.addingTimeInterval(-3_600))
            return try SigningIdentity(org: org, certificatePEM: cert.pem, key: key)
        }
        let orgs = Array(Self.hospitals.prefix(peers))
        orderer = try make("sa", "node", 0)
        self.peers = try orgs.map { try make($0, "node", 0) }
        self.clients = try (0..<clients).map { try make(orgs[$0 % orgs.count], "doctor", $0) }
        managers = try orgs.map { try make($0, "node", 1) }
        patients = try (0..<Self.patientCount).map { try make(orgs[0], "patient", $0) }
        patientNames = (0..<Self.patientCount).map { "Simulated_Patient_\($0)_Example" }
        clientPIDs = (0..<clients).map { Self.pid(orgs[$0 % orgs.count], "doctor", $0) }
        patientPIDs = (0..<Self.patientCount).map { Self.pid(orgs[0], "patient", $0) }
        let admin = try make("sa", "admin", 0)
        self.admin = admin
        self.root = root
        self.rootKey = rootKey

        var config = Medledger_ChannelConfig()
        config.channelID = Self.channel
        for org in ["sa"] + orgs {
            var o = Medledger_OrganizationConfig()
            o.id = org
            o.rootCertificates = [Data(root.pem.utf8)]
            config.organizations.append(o)
        }
        config.orderer.org = "sa"
        config.orderer.endpoints = ["sim:7050"]
        config.crlPublisherOrg = "sa"
        config.batch.maxMessageCount = UInt32(blockMaxTx)
        config.batch.absoluteMaxBytes = 1 << 20
        config.batch.preferredMaxBytes = 1 << 19
        var kv = Medledger_ChaincodeDefinition()
        kv.name = "kv"
        let majority = orgs.count / 2 + 1
        kv.endorsementPolicy = "OutOf(\(majority), \(orgs.map { "'\($0).node'" }.joined(separator: ", ")))"
        var counter = kv
        counter.name = "counter"
        var records = kv
        records.name = "medrecords"
        config.chaincodes = [kv, counter, records]
        genesis = try ConfigTransaction.genesisBlock(config: config, creator: admin, at: start)
    }

    static let patientCount = 4

    /// The CA's CRL revoking doctor `d`, signed by the root (DER), as the SA's CA issues one.
    func crlRevoking(doctor d: Int, number: UInt64, at now: Date) throws -> [UInt8] {
        let cert = try Certificate(pemEncoded: clients[d].certificatePEM)
        let list = RevocationList(
            issuer: root.subject, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(86_400 * 30),
            crlNumber: number, authorityKeyID: try root.extensions.subjectKeyIdentifier?.keyIdentifier,
            entries: [RevocationList.Entry(serial: cert.serialNumber, revocationDate: now, reason: nil)])
        return try list.signedDER(key: rootKey)
    }

    /// A participant's pseudonymous identifier, as the CA derives one (base64url of SHA-384).
    static func pid(_ org: String, _ role: String, _ n: Int) -> String {
        Base64URL.encode(Digests.sha384(Array("sim/\(org)/\(role)/\(n)".utf8)))
    }

    /// How many endorsements a write needs.
    var endorsementsNeeded: Int { peers.count / 2 + 1 }
}
