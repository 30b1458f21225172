import Crypto
import Foundation
import LedgerAudit
import LedgerCA
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import Synchronization
import X509

final class Scratch: @unchecked Sendable {
    let path: String
    init(_ label: String) {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("medledger-\(label)-\(UUID().uuidString)")
            .path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }
}

/// Runs an outside program (openssl, python3) and captures its output.
func runTool(_ args: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    let inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try inp.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// A key pair and the CSR for it, as a client would make them.
struct KeyAndCSR {
    let key = P256.Signing.PrivateKey()
    var csr: Data { Data(try! CertificateFactory.makeCSR(key: key, commonName: "requested").utf8) }
}

/// A CA with the SA administrator, one hospital (with a node) and one third-party organisation.
struct CAFixture {
    let dir: Scratch
    let box: SecretBox
    let audit: AuditLog
    let ca: CertificateAuthority
    let saAdmin: AuthenticatedIdentity
    let hospitalAdmin: AuthenticatedIdentity
    let researchAdmin: AuthenticatedIdentity
    let trust: TrustStore

    init(config: CAConfig = CAConfig(), now: @escaping @Sendable () -> Date = { Date() }) async throws {
        dir = Scratch("ca")
        box = try SecretBox(key: (0..<32).map { UInt8($0) })
        audit = try AuditLog(path: dir.path + "/audit.log")
        ca = try CertificateAuthority.initialize(
            dataDir: dir.path + "/ca", box: box, config: config, audit: audit, now: now)
        trust = TrustStore(roots: [ca.rootCertificate])
        let sa = try ca.bootstrapIdentity(
            name: "admin", role: "admin", csrPEM: Array(KeyAndCSR().csr), tlsCSRPEM: Array(KeyAndCSR().csr))
        saAdmin = try await CAFixture.identity(sa, trust)
        var admit = Medledger_AdmitOrganizationRequest()
        admit.orgID = "hospital-a"
        admit.type = .hospital
        admit.adminCsrPem = KeyAndCSR().csr
        admit.adminTlsCsrPem = KeyAndCSR().csr
        var node = Medledger_NodeRequest()
        node.name = "peer0"
        node.csrPem = KeyAndCSR().csr
        node.tlsCsrPem = KeyAndCSR().csr
        node.dnsNames = ["localhost", "peer0.hospital-a"]
        node.ipAddresses = ["127.0.0.1"]
        admit.nodes = [node]
        let hospital = try ca.admitOrganization(by: saAdmin, admit)
        hospitalAdmin = try await CAFixture.identity(hospital.admin, trust)
        var research = Medledger_AdmitOrganizationRequest()
        research.orgID = "research-inst"
        research.type = .thirdPartyOrg
        research.adminCsrPem = KeyAndCSR().csr
        research.adminTlsCsrPem = KeyAndCSR().csr
        researchAdmin = try await CAFixture.identity(try ca.admitOrganization(by: saAdmin, research).admin, trust)
    }

    static func identity(_ e: Medledger_EnrolledIdentity, _ trust: TrustStore) async throws -> AuthenticatedIdentity {
        try await trust.validate(
            leaf: try Certificate(pemEncoded: String(decoding: e.tlsCertPem, as: UTF8.self)), purpose: .tls)
    }

    /// Registers a patient of hospital-a; returns the one-time secret.
    func register(_ id: String) throws -> String {
        var reg = Medledger_RegisterRequest()
        reg.enrollmentID = id
        reg.role = .patient
        reg.realIdentity = "Patient \(id)"
        return try ca.register(by: hospitalAdmin, reg).secret
    }

    func enrollRequest(_ id: String, secret: String) -> Medledger_EnrollRequest {
        var enroll = Medledger_EnrollRequest()
        enroll.enrollmentID = id
        enroll.secret = secret
        enroll.csrPem = KeyAndCSR().csr
        enroll.tlsCsrPem = KeyAndCSR().csr
        return enroll
    }

    /// Registers and enrolls a user; returns the enrollment.
    func enrollUser(
        _ id: String, role: Medledger_Role, by registrar: AuthenticatedIdentity, rid: String
    ) throws -> Medledger_EnrolledIdentity {
        var reg = Medledger_RegisterRequest()
        reg.enrollmentID = id
        reg.role = role
        reg.realIdentity = rid
        let secret = try ca.register(by: registrar, reg).secret
        var enroll = Medledger_EnrollRequest()
        enroll.enrollmentID = id
        enroll.secret = secret
        enroll.csrPem = KeyAndCSR().csr
        enroll.tlsCsrPem = KeyAndCSR().csr
        return try ca.enroll(enroll)
    }
}

func cert(_ pem: Data) throws -> Certificate { try Certificate(pemEncoded: String(decoding: pem, as: UTF8.self)) }

/// A clock the test moves by hand, so back-off tests do not sleep.
final class TestClock: Sendable {
    private let time = Mutex(Date())
    var read: @Sendable () -> Date { { self.time.withLock { $0 } } }
    func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
}
