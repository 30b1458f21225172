import Crypto
import Foundation
@_spi(Testing) import LedgerAudit
@_spi(Testing) import LedgerCA
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerRocksDB
import SwiftASN1
import Testing
import X509

@Suite struct CertificateAuthorityTests {
    @Test func enrollmentIssuesCertificatesCarryingPIDOrgAndRoleButNotTheRID() async throws {
        let f = try await CAFixture()
        let doctor = try f.enrollUser("dr.chen", role: .doctor, by: f.hospitalAdmin, rid: "Chen Wei, licence 4471")
        #expect(doctor.orgID == "hospital-a")
        #expect(doctor.role == .doctor)
        #expect(doctor.pid.count == 64)
        #expect(Base64URL.decode(doctor.pid)?.count == 48, "PID is a SHA-384 digest")
        for pem in [doctor.signingCertPem, doctor.tlsCertPem] {
            let c = try cert(pem)
            #expect(c.attributes == IdentityAttributes(pid: doctor.pid, org: "hospital-a", role: "doctor"))
            #expect(!c.pem.contains("Chen"))
            #expect(c.issuer == f.ca.rootCertificate.subject)
        }
        // Signing and TLS certificates are for different keys and different uses.
        let s = try cert(doctor.signingCertPem)
        let t = try cert(doctor.tlsCertPem)
        #expect(s.publicKey != t.publicKey)
        #expect(try s.extensions.extendedKeyUsage == nil)
        #expect(try t.extensions.extendedKeyUsage?.contains(.clientAuth) == true)
        let id = try await f.trust.validate(leaf: t, purpose: .tls)
        #expect(id.role == .doctor)
        _ = try await f.trust.validate(leaf: s, purpose: .signing)
        await #expect(throws: IdentityRejection.self) { try await f.trust.validate(leaf: s, purpose: .tls) }
    }

    @Test func onlySystemAdministratorsResolvePIDsAndEveryAttemptIsAudited() async throws {
        let f = try await CAFixture()
        let patient = try f.enrollUser(
            "p-1001", role: .patient, by: f.hospitalAdmin, rid: "Lin Mei, ID 440111199001010022")
        var req = Medledger_ResolvePIDRequest()
        req.pid = patient.pid
        req.justification = "court order 17/2026"
        #expect(throws: CAError(.permissionDenied, "only the system administrator resolves pseudo identities")) {
            try f.ca.resolvePID(by: f.hospitalAdmin, req)
        }
        let resolved = try f.ca.resolvePID(by: f.saAdmin, req)
        #expect(resolved.realIdentity == "Lin Mei, ID 440111199001010022")
        #expect(resolved.enrollmentID == "p-1001")
        req.pid = "nonexistent"
        #expect(throws: CAError.self) { try f.ca.resolvePID(by: f.saAdmin, req) }
        let log = try String(contentsOfFile: f.audit.path, encoding: .utf8)
        let resolveLines = log.split(separator: "\n").filter { $0.contains("pid.resolve") }
        #expect(resolveLines.count == 3)
        #expect(resolveLines.contains { $0.contains("\"outcome\":\"denied\"") })
        #expect(!log.contains("Lin Mei"), "the audit log must never hold a real identity")
    }

    @Test func registrarRulesAreEnforced() async throws {
        let f = try await CAFixture()
        func register(
            _ by: AuthenticatedIdentity, _ role: Medledger_Role, org: String = "", id: String = UUID().uuidString
        ) throws {
            var r = Medledger_RegisterRequest()
            r.enrollmentID = id
            r.role = role
            r.orgID = org
            r.realIdentity = "someone"
            _ = try f.ca.register(by: by, r)
        }
        try register(f.hospitalAdmin, .patient)
        try register(f.hospitalAdmin, .device)
        try register(f.researchAdmin, .thirdParty)
        try register(f.saAdmin, .thirdParty, org: "research-inst")
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .thirdParty) }
        #expect(throws: CAError.self) { try register(f.researchAdmin, .patient) }
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .admin) }
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .node) }
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .patient, org: "research-inst") }
        #expect(throws: CAError.self) { try register(f.saAdmin, .patient, org: "no-such-org") }
        let doctor = try f.enrollUser("dr.x", role: .doctor, by: f.hospitalAdmin, rid: "X")
        let doctorID = try await CAFixture.identity(doctor, f.trust)
        do {
            try register(doctorID, .patient)
            Issue.record("a doctor registered a user")
        } catch let e as CAError {
            #expect(e.kind == .permissionDenied)
        }
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .patient, id: "bad id with spaces") }
        try register(f.hospitalAdmin, .patient, id: "dup")
        #expect(throws: CAError.self) { try register(f.hospitalAdmin, .patient, id: "dup") }
    }

    /// Unknown id, wrong secret, used secret, an id waiting out its back-off: the caller gets one and the
    /// same answer for all four, so probing learns nothing; the audit log keeps the real reason.
    @Test func everyRefusedEnrollmentGetsTheSameAnswerAndTheAuditKeepsTheReason() async throws {
        let clock = TestClock()
        let f = try await CAFixture(now: clock.read)
        let used = try f.register("p-used")
        _ = try f.ca.enroll(f.enrollRequest("p-used", secret: used))
        let pending = try f.register("p-pending")

        var answers = [CAError]()
        func attempt(_ id: String, _ secret: String) {
            do {
                _ = try f.ca.enroll(f.enrollRequest(id, secret: secret))
                Issue.record("\(id) enrolled with \(secret)")
            } catch let e as CAError { answers.append(e) } catch { Issue.record("not a CAError: \(error)") }
        }
        attempt("nobody", "whatever")  // unknown id
        attempt("p-used", used)  // used secret
        attempt("p-pending", "wrong")  // wrong secret
        attempt("p-pending", pending)  // the right secret, but during the back-off
        #expect(answers.count == 4)
        #expect(answers.allSatisfy { $0 == CertificateAuthority.enrollmentRefused }, "\(answers)")
        #expect(answers.allSatisfy { $0.kind == .unauthenticated })

        let denied = try String(contentsOfFile: f.audit.path, encoding: .utf8).split(separator: "\n")
            .filter { $0.contains("\"action\":\"user.enroll\"") && $0.contains("\"outcome\":\"denied\"") }
        #expect(denied.count == 4)
        for (line, reason) in zip(
            denied, ["unknown enrollment id", "already used", "wrong secret (failure 1", "during back-off"])
        {
            #expect(line.contains(reason), "\(line) should say \(reason)")
        }
        #expect(
            !denied.contains { $0.contains(pending) || $0.contains("wrong\"") }, "secrets never reach the audit log")
        // And the right secret works once the wait is over.
        clock.advance(1.01)
        #expect(try f.ca.enroll(f.enrollRequest("p-pending", secret: pending)).role == .patient)
    }

    /// Wrong secrets make the id wait 1 s, 2 s, 4 s, … up to the cap; attempts during a wait are refused
    /// unchecked and do not lengthen it; the id is never locked for good.
    @Test func wrongSecretsBackOffExponentiallyUpToACapAndNeverLockForGood() async throws {
        let clock = TestClock()
        var config = CAConfig()
        config.enrollBackoffFirst = 1
        config.enrollBackoffMax = 8
        let f = try await CAFixture(config: config, now: clock.read)
        let secret = try f.register("p-2")
        func enrolls(_ s: String) -> Bool { (try? f.ca.enroll(f.enrollRequest("p-2", secret: s))) != nil }
        func lastReason() throws -> String {
            try String(contentsOfFile: f.audit.path, encoding: .utf8).split(separator: "\n").last {
                $0.contains("\"action\":\"user.enroll\"")
            }.map(String.init) ?? ""
        }

        for (failure, wait) in [(1, 1.0), (2, 2), (3, 4), (4, 8), (5, 8), (6, 8)] {
            #expect(!enrolls("guess-\(failure)"))
            #expect(
                try lastReason().contains("wrong secret (failure \(failure);"),
                "the guess after a full wait is checked and counted")
            // Just before the wait ends even the right secret is refused (so the wait is not shorter),
            // and hammering is refused without being counted (so the next wait is not longer).
            clock.advance(wait - 0.01)
            #expect(!enrolls(secret), "failure \(failure): right secret accepted before a \(wait) s wait ended")
            #expect(!enrolls("hammer"))
            #expect(try lastReason().contains("during back-off"))
            clock.advance(0.02)
        }
        #expect(enrolls(secret), "after the last wait the right secret works: no permanent lock")
        #expect(!enrolls(secret), "and then it is used up")
    }

    @Test func theCADoesNothingItCannotAudit() async throws {
        let f = try await CAFixture()
        let patient = try f.enrollUser("p-audit", role: .patient, by: f.hospitalAdmin, rid: "Audit Person")
        // The disk under the audit log is full.
        let fd = f.audit.descriptorForTesting
        let saved = dup(fd)
        let full = open("/dev/full", O_WRONLY)
        #expect(dup2(full, fd) == fd)
        var reg = Medledger_RegisterRequest()
        reg.enrollmentID = "p-unaudited"
        reg.role = .patient
        reg.realIdentity = "Unaudited Person"
        let refused = #expect(throws: CAError.self) { _ = try f.ca.register(by: f.hospitalAdmin, reg) }
        #expect(refused?.kind == .unavailable, "\(String(describing: refused))")
        var resolve = Medledger_ResolvePIDRequest()
        resolve.pid = patient.pid
        resolve.justification = "court order"
        do {
            _ = try f.ca.resolvePID(by: f.saAdmin, resolve)
            Issue.record("a real identity was revealed without an audit line")
        } catch let e as CAError { #expect(e.kind == .unavailable) }
        #expect(dup2(saved, fd) == fd)
        close(saved)
        close(full)
        // Nothing was stored: the same registration now goes through as new.
        #expect(try f.ca.register(by: f.hospitalAdmin, reg).enrollmentID == "p-unaudited")
        let log = try String(contentsOfFile: f.audit.path, encoding: .utf8)
        #expect(!log.contains("pid.resolve"))
        #expect(try AuditVerifier.verify(path: f.audit.path).problems == [])
    }

    @Test func badCSRsAreRefusedAndNothingIsIssued() async throws {
        let f = try await CAFixture()
        var reg = Medledger_RegisterRequest()
        reg.enrollmentID = "p-csr"
        reg.role = .patient
        reg.realIdentity = "CSR Person"
        let secret = try f.ca.register(by: f.hospitalAdmin, reg).secret
        var enroll = Medledger_EnrollRequest()
        enroll.enrollmentID = "p-csr"
        enroll.secret = secret
        enroll.tlsCsrPem = KeyAndCSR().csr

        enroll.csrPem = Data("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".utf8)
        #expect(throws: CAError.self) { try f.ca.enroll(enroll) }
        enroll.csrPem = Data(repeating: 0x41, count: 20_000)
        #expect(throws: CAError.self) { try f.ca.enroll(enroll) }
        // A CSR whose signature does not match its key: sign with one key, claim another.
        let forged = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("x") },
            privateKey: Certificate.PrivateKey(P256.Signing.PrivateKey()), attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256)
        var der = DER.Serializer()
        try der.serialize(forged)
        var bytes = der.serializedBytes
        bytes[bytes.count - 3] ^= 0x01  // inside the signature
        enroll.csrPem = Data(PEMDocument(type: "CERTIFICATE REQUEST", derBytes: bytes).pemString.utf8)
        do {
            _ = try f.ca.enroll(enroll)
            Issue.record("a CSR with a broken signature was accepted")
        } catch let e as CAError {
            #expect(e.kind == .invalidArgument)
        }
        // Same key for signing and TLS is refused.
        let k = KeyAndCSR()
        enroll.csrPem = k.csr
        enroll.tlsCsrPem = k.csr
        #expect(throws: CAError.self) { try f.ca.enroll(enroll) }
        // None of that used up the secret or issued anything: a good request still enrolls.
        enroll.csrPem = KeyAndCSR().csr
        enroll.tlsCsrPem = KeyAndCSR().csr
        let ok = try f.ca.enroll(enroll)
        #expect(
            try f.ca.lookupCertificates(
                {
                    var r = Medledger_LookupCertificatesRequest()
                    r.pid = ok.pid
                    return r
                }()
            ).certificates.count == 2)
    }

    @Test func revocationReachesTheCRLAndTheTrustStore() async throws {
        let f = try await CAFixture()
        let device = try f.enrollUser("dev-1", role: .device, by: f.hospitalAdmin, rid: "bedside monitor 1")
        let tls = try cert(device.tlsCertPem)
        _ = try await f.trust.validate(leaf: tls, purpose: .tls)
        var revoke = Medledger_RevokeRequest()
        revoke.pid = device.pid
        revoke.reason = .keyCompromise
        let result = try f.ca.revoke(by: f.hospitalAdmin, revoke)
        #expect(result.revokedSerials.count == 2)
        let crl = try RevocationList.parse(try f.ca.currentCRL().der)
        #expect(crl.crlNumber == result.crlNumber)
        #expect(crl.revokedSerials.contains(tls.serialNumber))
        #expect(crl.entries.first?.reason == 1)
        try crl.verify(issuedBy: f.ca.rootCertificate)
        #expect(try f.trust.install(crl))
        await #expect(throws: IdentityRejection.revoked(serial: tls.serialHex)) {
            try await f.trust.validate(leaf: tls, purpose: .tls)
        }
        #expect(
            try f.ca.lookupCertificates(
                {
                    var r = Medledger_LookupCertificatesRequest()
                    r.pid = device.pid
                    return r
                }()
            ).certificates.allSatisfy { $0.status == .revoked })
        // An older CRL never replaces a newer one.
        #expect(try !f.trust.install(crl))
        // A research institute's admin cannot revoke a hospital's certificates.
        let other = try f.enrollUser("dev-2", role: .device, by: f.hospitalAdmin, rid: "monitor 2")
        revoke.pid = other.pid
        #expect(throws: CAError.self) { try f.ca.revoke(by: f.researchAdmin, revoke) }
        revoke.pid = "unknown-pid"
        #expect(throws: CAError.self) { try f.ca.revoke(by: f.saAdmin, revoke) }
    }

    @Test func certificatesFromAnotherCAOrOutOfDateAreRejected() async throws {
        let f = try await CAFixture()
        let otherKey = P384.Signing.PrivateKey()
        let otherRoot = try CertificateFactory.selfSignedRoot(
            key: otherKey, name: try DistinguishedName { CommonName("Rogue CA") }, validity: 86_400)
        let leafKey = P256.Signing.PrivateKey()
        let id = IdentityAttributes(pid: String(repeating: "A", count: 64), org: "hospital-a", role: "doctor")
        let rogue = try CertificateFactory.issue(
            publicKey: .init(leafKey.publicKey), identity: id, purpose: .tls, issuer: otherRoot, issuerKey: otherKey,
            validity: 86_400)
        await #expect(throws: IdentityRejection.self) { try await f.trust.validate(leaf: rogue, purpose: .tls) }
        let rootKey = try f.caKeyForTests()
        let expired = try CertificateFactory.issue(
            publicKey: .init(leafKey.publicKey), identity: id, purpose: .tls, issuer: f.ca.rootCertificate,
            issuerKey: rootKey, validity: 60, now: Date().addingTimeInterval(-3600))
        await #expect(throws: IdentityRejection.expired(expired.notValidAfter)) {
            try await f.trust.validate(leaf: expired, purpose: .tls)
        }
        let future = try CertificateFactory.issue(
            publicKey: .init(leafKey.publicKey), identity: id, purpose: .tls, issuer: f.ca.rootCertificate,
            issuerKey: rootKey, validity: 86_400, now: Date().addingTimeInterval(7200))
        await #expect(throws: IdentityRejection.notYetValid(future.notValidBefore)) {
            try await f.trust.validate(leaf: future, purpose: .tls)
        }
    }

    @Test func secretsAreNeverStoredInPlaintext() async throws {
        let f = try await CAFixture()
        let rid = "Plaintext-Canary-Person-7781"
        _ = try f.enrollUser("canary", role: .patient, by: f.hospitalAdmin, rid: rid)
        f.ca.close()
        let needle = Data(rid.utf8)
        var files = 0
        let root = f.dir.path + "/ca"
        for case let name as String in FileManager.default.enumerator(atPath: root)! {
            guard let data = FileManager.default.contents(atPath: root + "/" + name) else { continue }
            files += 1
            #expect(data.range(of: needle) == nil, "RID found in plaintext in \(name)")
        }
        #expect(files > 0)
        // And the store does not open with another master key.
        #expect(throws: (any Error).self) {
            try CertificateAuthority.open(dataDir: root, box: try SecretBox(key: Array(repeating: 9, count: 32)))
        }
        let reopened = try CertificateAuthority.open(dataDir: root, box: f.box)
        reopened.close()
    }

    @Test func aRevokedIdentityCannotReenroll() async throws {
        let f = try await CAFixture()
        let patient = try f.enrollUser("p-rv", role: .patient, by: f.hospitalAdmin, rid: "Revoked Person")
        let caller = try await CAFixture.identity(patient, f.trust)  // authenticated before the revocation
        var revoke = Medledger_RevokeRequest()
        revoke.pid = patient.pid
        _ = try f.ca.revoke(by: f.hospitalAdmin, revoke)
        var req = Medledger_ReenrollRequest()
        req.csrPem = KeyAndCSR().csr
        req.tlsCsrPem = KeyAndCSR().csr
        do {
            _ = try f.ca.reenroll(by: caller, req)
            Issue.record("a revoked identity re-enrolled")
        } catch let e as CAError {
            #expect(e.kind == .unauthenticated)
        }
    }

    @Test func admissionNeverOverwritesAnIdentity() async throws {
        let f = try await CAFixture()
        var admit = Medledger_AdmitOrganizationRequest()
        admit.orgID = "hospital-b"
        admit.type = .hospital
        admit.adminCsrPem = KeyAndCSR().csr
        admit.adminTlsCsrPem = KeyAndCSR().csr
        var node = Medledger_NodeRequest()
        node.name = "admin"
        node.csrPem = KeyAndCSR().csr
        node.tlsCsrPem = KeyAndCSR().csr
        admit.nodes = [node]
        #expect(throws: CAError.self) { try f.ca.admitOrganization(by: f.saAdmin, admit) }
        // A registrar pre-registering "admin@hospital-c" cannot make the admission take over its id.
        var reg = Medledger_RegisterRequest()
        reg.enrollmentID = "admin@hospital-c"
        reg.role = .patient
        reg.realIdentity = "squatter"
        _ = try f.ca.register(by: f.hospitalAdmin, reg)
        admit.orgID = "hospital-c"
        admit.nodes = []
        #expect(throws: CAError.self) { try f.ca.admitOrganization(by: f.saAdmin, admit) }
    }

    @Test func reenrollKeepsPIDOrgAndRole() async throws {
        let f = try await CAFixture()
        let patient = try f.enrollUser("p-re", role: .patient, by: f.hospitalAdmin, rid: "Re Enroll")
        let caller = try await CAFixture.identity(patient, f.trust)
        var req = Medledger_ReenrollRequest()
        req.csrPem = KeyAndCSR().csr
        req.tlsCsrPem = KeyAndCSR().csr
        let again = try f.ca.reenroll(by: caller, req)
        #expect(again.pid == patient.pid)
        #expect(
            try cert(again.tlsCertPem).attributes
                == IdentityAttributes(pid: patient.pid, org: "hospital-a", role: "patient"))
        #expect(try cert(again.tlsCertPem).serialNumber != cert(patient.tlsCertPem).serialNumber)
    }
}

extension CAFixture {
    /// The root key, reopened from the sealed store: only tests need it outside the CA.
    func caKeyForTests() throws -> P384.Signing.PrivateKey {
        try CertificateAuthority.rootKeyForTesting(ca)
    }
}
