import Crypto
import Foundation
import LedgerChaincode
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import MedRecords
import Testing
import X509

/// A test CA: a P-384 root that issues signing certificates with real P-256 keys.
struct TestCA: Sendable {
    let key: P384.Signing.PrivateKey
    let root: Certificate

    init(now: Date) throws {
        key = P384.Signing.PrivateKey()
        root = try CertificateFactory.selfSignedRoot(
            key: key, name: try DistinguishedName { CommonName("MedRecords test CA") }, validity: 10 * 365 * 86_400,
            now: now)
    }

    func person(
        _ label: String, org: String, role: Medledger_Role, now: Date, validity: TimeInterval = 5 * 365 * 86_400
    ) throws -> Person {
        let key = P256.Signing.PrivateKey()
        // A PID of the real shape: 64 characters of base64url of a SHA-384.
        let pid = Base64URL.encode(Digests.sha384(Array(label.utf8)))
        let cert = try CertificateFactory.issue(
            publicKey: .init(key.publicKey),
            identity: IdentityAttributes(pid: pid, org: org, role: RoleName.name(role)!),
            purpose: .signing, issuer: root, issuerKey: self.key, validity: validity, now: now)
        return Person(
            label: label, key: key, cert: cert,
            identity: CreatorIdentity(pid: pid, org: org, role: role, certificatePEM: cert.pem))
    }
}

struct Person: Sendable {
    let label: String
    let key: P256.Signing.PrivateKey
    let cert: Certificate
    let identity: CreatorIdentity

    var pid: String { identity.pid }
    var pem: String { identity.certificatePEM }
}

/// The channel membership as a test sees it: certificates issued by the test root, inside their
/// dates, not on a revoked-serial set. The identity comes from the subject, as on a real peer.
struct TestMembers: MemberValidator {
    let root: Certificate
    let revoked: Set<Certificate.SerialNumber>

    enum Rejection: Error, CustomStringConvertible {
        case untrusted, outsideValidity
        case revoked(String)
        case noIdentity, keyNotP256

        var description: String {
            switch self {
            case .untrusted: return "certificate is not issued by the channel's CA"
            case .outsideValidity: return "certificate is not valid at the transaction's time"
            case .revoked(let serial): return "certificate \(serial) is revoked"
            case .noIdentity: return "certificate subject names no identity"
            case .keyNotP256: return "signing key is not P-256"
            }
        }
    }

    func validateSigner(certificatePEM: String, at time: Date) throws -> ValidatedSigner {
        let cert = try Certificate(pemEncoded: certificatePEM)
        guard cert.issuer == root.subject, root.publicKey.isValidSignature(cert.signature, for: cert) else {
            throw Rejection.untrusted
        }
        guard cert.notValidBefore <= time, time < cert.notValidAfter else { throw Rejection.outsideValidity }
        guard !revoked.contains(cert.serialNumber) else { throw Rejection.revoked(cert.serialHex) }
        guard let a = cert.attributes, let role = a.roleValue else { throw Rejection.noIdentity }
        guard let key = P256.Signing.PublicKey(cert.publicKey) else { throw Rejection.keyNotP256 }
        return ValidatedSigner(
            identity: CreatorIdentity(pid: a.pid, org: a.org, role: role, certificatePEM: certificatePEM),
            publicKey: key)
    }
}

/// A channel ledger in memory, the medrecords chaincode, a clock and a cast of identities. `call`
/// only simulates; `submit` simulates and, if the answer is 200, commits the write set in a block of
/// its own so that the next call sees it.
final class World {
    static let start = Date(timeIntervalSince1970: 1_900_000_000)  // 2030-03-17

    let ledger: ChannelLedger
    let ca: TestCA
    var clock = World.start
    var revoked = Set<Certificate.SerialNumber>()
    var withMembership = true
    private var txCounter = 0

    let adminA, doctorA1, doctorA2, deviceA, nodeA: Person
    let patient1, patient2: Person
    let adminB, doctorB, nodeB: Person
    let research1, research2: Person
    let saAdmin: Person

    init() throws {
        ledger = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies)).createChannel("ch")
        let authority = try TestCA(now: World.start)
        ca = authority
        let p = { (label: String, org: String, role: Medledger_Role) throws -> Person in
            try authority.person(label, org: org, role: role, now: World.start)
        }
        adminA = try p("admin-a", "hospital-a", .admin)
        doctorA1 = try p("doctor-a1", "hospital-a", .doctor)
        doctorA2 = try p("doctor-a2", "hospital-a", .doctor)
        deviceA = try p("device-a", "hospital-a", .device)
        nodeA = try p("node-a", "hospital-a", .node)
        patient1 = try p("patient-1", "hospital-a", .patient)
        patient2 = try p("patient-2", "hospital-a", .patient)
        adminB = try p("admin-b", "hospital-b", .admin)
        doctorB = try p("doctor-b", "hospital-b", .doctor)
        nodeB = try p("node-b", "hospital-b", .node)
        research1 = try p("research-1", "research-inst", .thirdParty)
        research2 = try p("research-2", "research-inst", .thirdParty)
        saAdmin = try p("sa-admin", "sa", .admin)
    }

    // MARK: Calls

    /// Simulates `function` with the raw argument list; the clock moves one second per call.
    func call(
        _ who: Person, _ function: String, args: [[UInt8]], transient: [String: [UInt8]] = [:]
    ) -> (result: SimulationResult, txID: String) {
        txCounter += 1
        clock = clock.addingTimeInterval(1)
        let txID = "tx-\(txCounter)"
        let members: (any MemberValidator)? = withMembership ? TestMembers(root: ca.root, revoked: revoked) : nil
        let inv = Invocation(
            channel: "ch", txID: txID, timestamp: clock, creator: who.identity, function: function, args: args,
            transient: transient, members: members)
        return (Simulator.simulate(MedRecordsChaincode(), invocation: inv, state: ledger.state), txID)
    }

    func call(_ who: Person, _ function: String, _ inputs: ProposalInputs) -> SimulationResult {
        call(who, function, args: inputs.args, transient: inputs.transient).result
    }

    func call(_ who: Person, _ function: String, json: String) -> SimulationResult {
        call(who, function, args: [Array(json.utf8)]).result
    }

    func call(_ who: Person, _ function: String, _ body: some Encodable) throws -> SimulationResult {
        call(who, function, args: [try Self.encode(body)]).result
    }

    /// Simulates, then commits when the answer is 200.
    @discardableResult
    func submit(_ who: Person, _ function: String, _ body: some Encodable) throws -> SimulationResult {
        let (result, txID) = call(who, function, args: [try Self.encode(body)])
        if result.response.isOK { try commit(result, txID: txID) }
        return result
    }

    /// Puts one simulated transaction in a block, marked valid, and commits it.
    func commit(_ result: SimulationResult, txID: String) throws {
        let payload = try Medledger_Payload.endorserTransaction(
            channel: "ch", txID: txID, chaincode: "medrecords", results: result.results, creator: [], timestamp: clock)
        var envelope = Medledger_Envelope()
        envelope.payload = try payload.serializedBytes()
        let info = ledger.info
        try ledger.commit(
            .make(
                number: info.height, previousHash: info.tipHash, envelopes: [try envelope.serializedBytes()],
                validationCodes: [.valid]))
    }

    // MARK: Workflows

    func createTreatment(patient: Person, doctor: Person, by admin: Person? = nil) throws -> Treatment {
        let r = try submit(
            admin ?? adminA, "createTreatment", CreateTreatmentRequest(patientPID: patient.pid, doctorPID: doctor.pid))
        try #require(r.response.status == 200, "\(r.response.message)")
        return try Self.decode(Treatment.self, r)
    }

    /// A P_DE for `t`, signed by `patient` and `doctor` (by default, correctly).
    func indexRequest(
        _ t: Treatment, patient: Person, doctor: Person, url: String? = nil, ciphertext: [UInt8]? = nil
    ) throws -> PutIndexRecordRequest {
        let url = url ?? "https://store.hospital-a.example/objects/\(UUID().uuidString)"
        let digest = IndexRecordSigning.digestHex(
            ofCiphertext: ciphertext ?? (0..<64).map { _ in UInt8.random(in: 0...255) })
        return PutIndexRecordRequest(
            tID: t.tID, url: url, digest: digest,
            patientSignature: try IndexRecordSigning.sign(tid: t.tID, url: url, digestHex: digest, key: patient.key),
            doctorSignature: try IndexRecordSigning.sign(tid: t.tID, url: url, digestHex: digest, key: doctor.key),
            patientCert: patient.pem, doctorCert: doctor.pem)
    }

    func putIndexRecord(_ t: Treatment, by who: Person? = nil) throws -> IndexRecord {
        let request = try indexRequest(t, patient: patient1, doctor: doctorA1)
        let r = try submit(who ?? doctorA1, "putIndexRecord", request)
        try #require(r.response.status == 200, "\(r.response.message)")
        return IndexRecord(request: request, receipt: try Self.decode(IndexRecordReceipt.self, r))
    }

    func grant(
        _ to: Person, _ tIDs: [String], purpose: String = "research", for seconds: TimeInterval = 30 * 86_400,
        by patient: Person? = nil
    ) throws -> Consent {
        let expires = Self.rfc3339(clock.addingTimeInterval(seconds))
        let r = try submit(
            patient ?? patient1, "grantAccess",
            GrantAccessRequest(granteePID: to.pid, tIDs: tIDs, purpose: purpose, expiresAt: expires))
        try #require(r.response.status == 200, "\(r.response.message)")
        return try Self.decode(Consent.self, r)
    }

    // MARK: JSON

    static func encode(_ body: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(body))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ r: SimulationResult) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(r.response.payload))
    }

    static func object(_ r: SimulationResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.response.payload)) as? [String: Any])
    }

    static func rfc3339(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }
}

/// A refusal: the status, and nothing endorsed (no writes, no event).
func expectRefused(
    _ r: SimulationResult, _ status: Int32, _ messageContains: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard r.response.status == status else {
        Issue.record(
            "expected \(status), got \(r.response.status) \(r.response.message.debugDescription)",
            sourceLocation: sourceLocation)
        return
    }
    if !messageContains.isEmpty {
        #expect(
            r.response.message.contains(messageContains), "message: \(r.response.message)",
            sourceLocation: sourceLocation)
    }
    #expect(r.results.nsRwset.isEmpty, "a refusal wrote something", sourceLocation: sourceLocation)
    #expect(r.event == nil, sourceLocation: sourceLocation)
    #expect(r.response.payload.isEmpty, sourceLocation: sourceLocation)
}

/// The keys a successful call wrote.
func writtenKeys(_ r: SimulationResult) -> [String] {
    r.results.nsRwset.flatMap { $0.rwset.writes.map(\.key) }
}
