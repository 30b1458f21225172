import Foundation
import Glibc
import LedgerClient
import LedgerTransport
import MedRecords
import Testing

/// The FHIR face end to end over real processes and HTTPS: two hospitals' nodes with FHIR
/// endpoints, records made through the gRPC API, and an independent Python client (authlib for
/// OAuth, fhir.resources and fhirpathpy for validation) running SMART's authorization-code + PKCE
/// and backend-services flows, and the token refusals.
@Suite(.serialized) struct FHIRNetworkTests {
    static func freePort() throws -> Int {
        guard let p = NodeAddress.freeLoopbackPort() else {
            throw DaemonProcess.Failure(message: "cannot find a free port")
        }
        return p
    }

    static func smart(_ args: [String]) throws -> (status: Int32, output: String) {
        try PaperFlowNetworkTests.python("smart_client.py", args)
    }

    /// The last line of the script's output, as JSON.
    static func lastJSON(_ output: String) -> [String: Any] {
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? "{}"
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func smartAppsAndBackendServicesReadTheLedgerAsFHIR() async throws {
        let scratch = ScratchDir("fhir-net")
        let root = scratch.path
        let portA = try Self.freePort()
        let portB = try Self.freePort()
        let net = try MultiHospitalNetworkTests.startNetwork(
            root,
            extra: [
                "hospital-a": "fhir: { listen: 127.0.0.1:\(portA), channel: records }",
                "hospital-b":
                    "fhir: { listen: 127.0.0.1:\(portB), channel: records, connections_max: 512, connections_per_source_max: 200 }",
            ])
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        // node.yaml's connection limits reach the endpoint (A keeps the defaults).
        let logB = try #require(net.peers["hospital-b"]).text
        #expect(logB.contains("at most 512 connections, 200 from one source"), "\(logB.suffix(4000))")
        #expect(try #require(net.peers["hospital-a"]).text.contains("at most 1024 connections, 256 from one source"))
        // Past B's 200 from this address, a connection is closed unserved, and the node says so in its
        // log (it has no operations endpoint, so no metrics).
        let (held, closed) = try await SourceLimitTests.openAndSeeWhichClose(port: portB, count: 201, seconds: 20)
        held.forEach { close($0) }
        #expect(closed.count == 1, "of 201 connections from one address, these were closed: \(closed.sorted())")
        let nodeB = try #require(net.peers["hospital-b"])
        var refusalLogged = false
        for _ in 0..<50 where !refusalLogged {
            refusalLogged = nodeB.text.contains(
                "the fhir endpoint closed connections unserved (1 source_full since the last such line)")
            if !refusalLogged { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(refusalLogged, "\(nodeB.text.suffix(3000))")
        let ca = "127.0.0.1:\(net.ordererPort)"
        let enroll = "127.0.0.1:\(net.enrollPort)"
        let caCert = root + "/sa/ca-cert.pem"
        func wallet(_ id: String, _ role: String, _ org: String) throws -> Wallet {
            try IdentityNetworkTests.enroll(
                id, role: role, rid: "test \(id)", admin: net.admin(org), ca: ca, enroll: enroll, caCert: caCert,
                into: root + "/w/\(id)")
        }
        let nodeA = try #require(NodeAddress(net.node("hospital-a")))
        func client(_ w: Wallet) async throws -> CareClient {
            CareClient(
                wallet: w, gateway: try await Gateway.connect(wallet: w, peer: nodeA, channel: "records"), node: nodeA)
        }
        let patientW = try wallet("patient", "patient", "hospital-a")
        let doctorW = try wallet("doctor", "doctor", "hospital-a")
        let patient = try await client(patientW)
        let doctor = try await client(doctorW)
        defer { for c in [patient, doctor] { c.gateway.close() } }
        for c in [patient, doctor] { _ = try await c.publishKeys() }

        // Two sealed records of one treatment, through the gRPC API; the doctor reads them (an access
        // the patient's AuditEvents must show).
        let appointment = try await patient.requestAppointment(
            diseaseInfo: "DI-SECRET-3391", preferredDoctor: doctorW.info.pid)
        var recordIDs: [String] = []
        for i in 0..<2 {
            let plain = root + "/plain-\(i).json"
            let sealed = root + "/sealed-\(i)"
            try Data(#"{"resourceType":"Condition","code":{"text":"EMR-SECRET-\#(i)"}}"#.utf8).write(
                to: URL(fileURLWithPath: plain))
            _ = try patient.seal(plaintext: plain, to: sealed)
            recordIDs.append(
                try await patient.putRecord(sealedFile: sealed, tID: appointment.tID, doctor: .wallet(doctorW)).record
                    .recordID)
            try FileManager.default.removeItem(atPath: plain)
        }
        #expect(try await doctor.listRecords(patientPID: patientW.info.pid).count == 2)

        // The administrators register a patient app on both nodes and a backend service on A
        // (an ES384 key from the CLI, an RS384 key from Python).
        let fhirA = "127.0.0.1:\(portA)"
        let fhirB = "127.0.0.1:\(portB)"
        let appScope = "patient/*.cruds user/*.cruds launch/patient"
        try MedLedgerBinary.ok([
            "fhir", "client", "register", "--fhir", fhirA, "--wallet", net.admin("hospital-a"), "--client-id",
            "patient-app", "--redirect-uri", "http://127.0.0.1:9/callback", "--scope", appScope,
        ])
        try MedLedgerBinary.ok([
            "fhir", "client", "register", "--fhir", fhirB, "--wallet", net.admin("hospital-b"), "--client-id",
            "patient-app", "--redirect-uri", "http://127.0.0.1:9/callback", "--scope", appScope,
        ])
        let refused = try MedLedgerBinary.run([
            "fhir", "client", "register", "--fhir", fhirA, "--wallet", patientW.directory, "--client-id", "rogue",
            "--redirect-uri", "https://rogue.example/cb", "--scope", appScope,
        ])
        #expect(refused.status != 0 && refused.stderr.contains("[403]"), "\(refused.stderr)")
        let keys = root + "/ehr-keys"
        try MedLedgerBinary.ok(["fhir", "keygen", "--out", keys, "--kid", "ehr-es384"])
        try Self.rsaKey(into: keys)
        let es =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: keys + "/jwks.json")))
            as! [String: Any]
        let rs =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: keys + "/rsa-jwk.json")))
            as! [String: Any]
        let jwks = ["keys": (es["keys"] as! [Any]) + [rs]]
        try JSONSerialization.data(withJSONObject: jwks).write(to: URL(fileURLWithPath: keys + "/both.json"))
        try MedLedgerBinary.ok([
            "fhir", "client", "register", "--fhir", fhirA, "--wallet", net.admin("hospital-a"), "--client-id", "ehr",
            "--jwks", keys + "/both.json", "--scope", "system/DocumentReference.crs",
        ])
        #expect(
            try MedLedgerBinary.ok(["fhir", "client", "list", "--fhir", fhirA, "--wallet", net.admin("hospital-a")])
                .contains("ehr  backend"))
        // A browser holding the administrator's certificate cannot be made to change clients from
        // another site: a form post is refused, and so is a DELETE without the guard header.
        let adminW = try Wallet.open(net.admin("hospital-a"))
        let tls = ["--cacert", caCert, "--cert", adminW.tlsCertPath, "--key", adminW.tlsKeyPath]
        #expect(try Self.curl(tls + ["-d", "client_id=evil&kind=app", "https://\(fhirA)/oauth/clients"]) == "415")
        #expect(try Self.curl(tls + ["-X", "DELETE", "https://\(fhirA)/oauth/clients/ehr"]) == "400")
        try MedLedgerBinary.ok([
            "fhir", "client", "register", "--fhir", fhirA, "--wallet", net.admin("hospital-a"), "--client-id",
            "old-app", "--redirect-uri", "http://127.0.0.1/cb", "--scope", appScope,
        ])
        #expect(
            try MedLedgerBinary.ok([
                "fhir", "client", "remove", "--fhir", fhirA, "--wallet", net.admin("hospital-a"), "--client-id",
                "old-app",
            ]).contains("removed"))

        // The patient app: authorization code + PKCE, then every resource validated.
        let baseA = "https://\(fhirA)/fhir"
        let baseB = "https://\(fhirB)/fhir"
        let patientTLS = ["--cert", patientW.tlsCertPath, "--key", patientW.tlsKeyPath]
        let app = try Self.smart(
            [
                "patient", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app", "--expect-records", "2",
                "--expect-reader=" + doctorW.info.pid,
            ] + patientTLS)
        #expect(app.status == 0, "\(app.output)")
        #expect(Self.lastJSON(app.output)["documents"] as? Int == 2, "\(app.output)")

        // A token from node B is for B's audience.
        let atB = try Self.smart(["login", "--fhir", baseB, "--ca", caCert, "--client-id", "patient-app"] + patientTLS)
        #expect(atB.status == 0, "\(atB.output)")
        let tokenB = try #require(Self.lastJSON(atB.output)["access_token"] as? String, "\(atB.output)")

        // The backend service with ES384 through authlib; then the token matrix.
        let ehr = try Self.smart([
            "backend", "--fhir", baseA, "--ca", caCert, "--client-id", "ehr", "--key", keys + "/client-key.pem",
            "--kid", "ehr-es384", "--scope", "system/DocumentReference.rs", "--patient=" + patientW.info.pid,
            "--expect-records", "2",
        ])
        #expect(ehr.status == 0, "\(ehr.output)")
        let matrix = try Self.smart([
            "matrix", "--fhir", baseA, "--ca", caCert, "--client-id", "ehr", "--key", keys + "/client-key.pem", "--kid",
            "ehr-es384",
            "--rsa-key", keys + "/rsa-key.pem", "--rsa-kid", "ehr-rs384", "--patient=" + patientW.info.pid,
            "--other-token", tokenB,
        ])
        #expect(matrix.status == 0, "\(matrix.output)")

        // Writes through FHIR. The doctor stores a sealed record in the object store; the doctor's
        // app posts its P_DE as a DocumentReference, both signatures made in Python; the gRPC API
        // then lists it too. The patient's app grants a consent it signed, and revokes it.
        let plainW = root + "/plain-w.json"
        let sealedW = root + "/sealed-w"
        try Data(#"{"resourceType":"Condition","code":{"text":"EMR-SECRET-W"}}"#.utf8).write(
            to: URL(fileURLWithPath: plainW))
        _ = try patient.seal(plaintext: plainW, to: sealedW)
        let stored = try MedLedgerBinary.ok([
            "object", "put", "--node", net.node("hospital-a"), "--wallet", doctorW.directory, "--t-id", appointment.tID,
            "--file", sealedW,
        ])
        func field(_ name: String) -> String {
            stored.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map {
                String($0.dropFirst(name.count + 2))
            } ?? ""
        }
        let written = try Self.smart([
            "record", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app", "--scope",
            "user/DocumentReference.crs",
            "--cert", doctorW.tlsCertPath, "--key", doctorW.tlsKeyPath, "--patient-wallet", patientW.directory,
            "--doctor-wallet", doctorW.directory,
            "--patient=" + patientW.info.pid, "--doctor-pid=" + doctorW.info.pid, "--t-id", appointment.tID, "--url",
            field("url"), "--digest", field("sha384"),
        ])
        #expect(written.status == 0, "\(written.output)")
        // The hospital's EHR (a backend service) posts one too, for a second sealed record.
        let sealedE = root + "/sealed-e"
        _ = try patient.seal(plaintext: plainW, to: sealedE)
        try FileManager.default.removeItem(atPath: plainW)
        let storedE = try MedLedgerBinary.ok([
            "object", "put", "--node", net.node("hospital-a"), "--wallet", patientW.directory, "--t-id",
            appointment.tID, "--file", sealedE,
        ])
        func fieldE(_ name: String) -> String {
            storedE.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map {
                String($0.dropFirst(name.count + 2))
            } ?? ""
        }
        let byEHR = try Self.smart([
            "record", "--fhir", baseA, "--ca", caCert, "--client-id", "ehr", "--key", keys + "/client-key.pem", "--kid",
            "ehr-es384",
            "--patient-wallet", patientW.directory, "--doctor-wallet", doctorW.directory,
            "--patient=" + patientW.info.pid, "--doctor-pid=" + doctorW.info.pid, "--t-id", appointment.tID, "--url",
            fieldE("url"), "--digest", fieldE("sha384"),
        ])
        #expect(byEHR.status == 0, "\(byEHR.output)")
        let listed = try await doctor.listRecords(patientPID: patientW.info.pid)
        #expect(
            listed.count == 4 && listed.contains { $0.recordID == Self.lastJSON(written.output)["record"] as? String },
            "\(written.output)")
        // The grantee: a researcher of an organisation the CA admitted as a third party.
        try MedLedgerBinary.ok([
            "org", "admit", "--ca", ca, "--wallet", root + "/sa/wallets/admin", "--org", "research-1", "--type",
            "third-party", "--out", root + "/research-1",
        ])
        let researcher = try wallet("researcher", "third-party", "research-1")
        let consented = try Self.smart(
            [
                "consent", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app", "--scope",
                "patient/Consent.cru launch/patient", "--patient-wallet", patientW.directory,
                "--grantee=" + researcher.info.pid, "--t-id", appointment.tID,
            ] + patientTLS)
        #expect(
            consented.status == 0,
            "\(consented.output)\nnode A said:\n\(net.peers["hospital-a"]?.text.suffix(20000) ?? "")")

        // Device readings: a device sends two to the collector, sealed to the doctor; the doctor's
        // app finds them as masked vital-signs Observations; the patient's token has no such scope.
        let device = try wallet("monitor", "device", "hospital-a")
        _ = try MedLedgerBinary.ok([
            "device", "simulate", "--node", net.node("hospital-a"), "--wallet", device.directory, "--count", "2",
            "--interval", "0",
            "--t-id", appointment.tID, "--patient=" + patientW.info.pid, "--doctor=" + doctorW.info.pid,
        ])
        let observed = try Self.smart([
            "observations", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app", "--scope",
            "user/Observation.rs",
            "--cert", doctorW.tlsCertPath, "--key", doctorW.tlsKeyPath, "--t-id", appointment.tID, "--expect-records",
            "2", "--doctor-wallet", doctorW.directory,
        ])
        #expect(observed.status == 0, "\(observed.output)")

        // A doctor's token, then the doctor's certificate revoked: the still-valid token is refused.
        let dr = try Self.smart([
            "login", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app", "--scope",
            "user/DocumentReference.rs", "--cert", doctorW.tlsCertPath, "--key", doctorW.tlsKeyPath,
        ])
        let drToken = try #require(Self.lastJSON(dr.output)["access_token"] as? String, "\(dr.output)")
        let recordURL = "\(baseA)/DocumentReference/\(recordIDs[0])"
        #expect(
            Self.lastJSON(try Self.smart(["call", "--ca", caCert, "--url", recordURL, "--token", drToken]).output)[
                "status"] as? Int == 200)
        try MedLedgerBinary.ok([
            "ca", "revoke", "--ca", ca, "--wallet", net.admin("hospital-a"), "--pid", doctorW.info.pid, "--reason",
            "key-compromise",
        ])
        try MedLedgerBinary.ok([
            "ca", "crl", "--ca", enroll, "--ca-cert", caCert, "--out", root + "/hospital-a/nodes/peer0/crl.pem",
        ])
        var status = 0
        let deadline = Date().addingTimeInterval(15)
        repeat {
            status =
                Self.lastJSON(try Self.smart(["call", "--ca", caCert, "--url", recordURL, "--token", drToken]).output)[
                    "status"] as? Int ?? 0
            if status != 401 { usleep(300_000) }
        } while status != 401 && Date() < deadline
        #expect(status == 401, "a revoked doctor's token still reads")
        // Nor does the revoked certificate get through a handshake on the FHIR port (audited).
        #expect(
            try Self.curl([
                "--cacert", caCert, "--cert", doctorW.tlsCertPath, "--key", doctorW.tlsKeyPath,
                "https://\(fhirA)/fhir/metadata",
            ]) == "000")

        // An object rots on the node's disk: its Binary is refused with a 500 before any byte, not sent
        // as a 200 cut short (the patient's own token; the record was read whole above).
        let rottenDigest = try ObjectClient.digest(ofFile: root + "/sealed-0").digest
        let nodeDir = root + "/hospital-a/nodes/peer0/"
        let rottenFile = try #require(
            FileManager.default.enumerator(atPath: nodeDir)?.compactMap { $0 as? String }
                .first { $0.hasSuffix(rottenDigest + ".obj") })
        let rotting = try #require(FileHandle(forUpdatingAtPath: nodeDir + rottenFile))
        try rotting.seek(toOffset: 100)
        let byte = try #require(try rotting.read(upToCount: 1)?.first)
        try rotting.seek(toOffset: 100)
        try rotting.write(contentsOf: Data([byte ^ 0x01]))
        try rotting.close()
        let loginA = try Self.smart(
            ["login", "--fhir", baseA, "--ca", caCert, "--client-id", "patient-app"] + patientTLS)
        let tokenA = try #require(Self.lastJSON(loginA.output)["access_token"] as? String, "\(loginA.output)")
        func binary(_ digest: String) throws -> String {
            try Self.curl(["--cacert", caCert, "-H", "Authorization: Bearer \(tokenA)", "\(baseA)/Binary/\(digest)"])
        }
        #expect(try binary(rottenDigest) == "500")
        #expect(try binary(rottenDigest) == "500", "set aside by the first request, and still refused")
        #expect(FileManager.default.fileExists(atPath: nodeDir + rottenFile + ".corrupt"))
        #expect(try binary(ObjectClient.digest(ofFile: root + "/sealed-1").digest) == "200", "the token itself is good")

        // Audited: token issuance and the FHIR reads; no token on the log; the chain verifies.
        let peerA = try #require(net.peers["hospital-a"])
        #expect(peerA.stop() == 0)
        let log = try String(contentsOfFile: root + "/hospital-a/nodes/peer0/audit.log", encoding: .utf8)
        #expect(
            log.contains("\"smart.token\"") && log.contains("\"smart.authorize\"")
                && log.contains("fhir client patient-app"))
        #expect(
            log.contains("\"record.write\"") && log.contains("putIndexRecord on channel records, tx ")
                && log.contains("revokeAccess on channel records, tx "), "the FHIR writes are not audited")
        #expect(
            log.contains("\"action\":\"tls.handshake\"") && log.contains("\"target\":\"fhir\""),
            "the refused FHIR handshake is not on the audit log")
        // A JWS in compact form: base64url header (`{"` encodes as "eyJ"), payload and signature
        // joined by dots. Looking for "eyJ" alone also matched random identifiers: a PID of 64
        // base64url characters contains it now and then.
        #expect(
            log.firstMatch(of: /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./) == nil,
            "an access token or assertion reached the audit log")
        #expect(
            log.split(separator: "\n").contains {
                $0.contains("\"outcome\":\"failed\"") && $0.contains("sha384 \(rottenDigest)")
            },
            "the refused corrupt Binary is not on the audit log")
        let verified = try MedLedgerBinary.run(["audit", "verify", root + "/hospital-a/nodes/peer0/audit.log"])
        #expect(verified.status == 0, "\(verified.stdout)")
    }

    /// curl's status code for a request (the body is dropped).
    static func curl(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitForExit()
        return text
    }

    /// An RS384 key pair made by Python (joserfc): rsa-key.pem (private) and rsa-jwk.json (public).
    static func rsaKey(into dir: String) throws {
        let code = """
            import json, sys
            from joserfc.jwk import RSAKey
            k = RSAKey.generate_key(2048, private=True)
            open(sys.argv[1] + '/rsa-key.pem', 'wb').write(k.as_pem(private=True))
            pub = k.as_dict(private=False); pub.update(kid='ehr-rs384', alg='RS384')
            json.dump(pub, open(sys.argv[1] + '/rsa-jwk.json', 'w'))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", code, dir]
        try p.run()
        p.waitForExit()
        guard p.terminationStatus == 0 else { throw DaemonProcess.Failure(message: "python could not make an RSA key") }
    }
}
