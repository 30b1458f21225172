import Crypto
import Foundation
import HospitalFlows
import LedgerClient
import LedgerCrypto
import LedgerObjects
import LedgerPRE
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The paper's whole data flow over real processes (two hospitals' nodes, the SA's orderer), mutual
/// TLS and RocksDB: appointment, device readings, a sealed record with both signatures, verification
/// (also by Python `cryptography`, without Swift), 2-of-2 sharing through both hospitals' proxies
/// with D_UE, and every bad input the issue names refused with a reason and nothing disclosed.
/// Finally every file the nodes wrote and every log line is searched for the plaintext.
@Suite(.serialized) struct PaperFlowNetworkTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Runs a Python script of scripts/; (status, stdout + stderr).
    static func python(_ script: String, _ args: [String]) throws -> (Int32, String) {
        try python3([repo.appendingPathComponent("scripts/" + script).path] + args)
    }

    /// Runs python3 with `args`, in `directory` if given; (status, stdout + stderr).
    static func python3(_ args: [String], in directory: String? = nil) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitForExit()
        return (p.terminationStatus, text)
    }

    /// Runs the Python of docs/LEDGER_FORMATS.md §4.9 and §8, as printed, in a directory holding the
    /// block, the sealed object and the CA certificate under the names §8 opens; (status, output).
    static func ledgerFormatsCheck(
        block: Medledger_Block, object: String, ca: String, in dir: String
    ) throws -> (Int32, String) {
        let doc = try String(contentsOf: repo.appendingPathComponent("docs/LEDGER_FORMATS.md"), encoding: .utf8)
        let code = doc.components(separatedBy: "```python\n").dropFirst().map {
            $0.components(separatedBy: "\n```")[0]
        }
        let builders = try #require(code.first { $0.contains("def header_hash") })
        let check = try #require(code.first { $0.contains("def pde_writes") })
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(try block.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: dir + "/block.bin"))
        try fm.copyItem(atPath: object, toPath: dir + "/object.bin")
        try fm.copyItem(atPath: ca, toPath: dir + "/ca-cert.pem")
        try Data((builders + "\n\n" + check).utf8).write(to: URL(fileURLWithPath: dir + "/check.py"))
        return try python3(["check.py"], in: dir)
    }

    static func expectRefused(
        _ status: Int, _ fragment: String, _ body: () async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            try await body()
            Issue.record(
                "expected a [\(status)] refusal mentioning \(fragment.debugDescription)", sourceLocation: sourceLocation
            )
        } catch let f as CallFailure {
            #expect(f.status == status && f.message.contains(fragment), "got \(f)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected a CallFailure, got \(error)", sourceLocation: sourceLocation)
        }
    }

    /// Byte search with libc's memchr and memcmp: the nodes' files run to many megabytes.
    static func contains(_ haystack: Data, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first else { return true }
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                guard let base = h.baseAddress, h.count >= n.count else { return false }
                var offset = 0
                let last = h.count - n.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, n.baseAddress!, n.count) == 0 { return true }
                    offset = at + 1
                }
                return false
            }
        }
    }

    @Test func thePapersStoryEndToEnd() async throws {
        let scratch = ScratchDir("paper-flow")
        let root = scratch.path
        let privateScratch = ScratchDir("paper-flow-plaintext")  // plaintext lives outside the nodes' tree
        let net = try MultiHospitalNetworkTests.startNetwork(root)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let ca = "127.0.0.1:\(net.ordererPort)"
        let enroll = "127.0.0.1:\(net.enrollPort)"
        let caCert = root + "/sa/ca-cert.pem"
        func wallet(_ id: String, _ role: String, _ org: String) throws -> Wallet {
            try IdentityNetworkTests.enroll(
                id, role: role, rid: "test \(id)", admin: net.admin(org), ca: ca, enroll: enroll, caCert: caCert,
                into: root + "/w/\(id)")
        }
        let nodeA = try #require(NodeAddress(net.node("hospital-a")))
        let nodeB = try #require(NodeAddress(net.node("hospital-b")))
        func client(_ w: Wallet, _ node: NodeAddress? = nil) async throws -> CareClient {
            CareClient(
                wallet: w, gateway: try await Gateway.connect(wallet: w, peer: node ?? nodeA, channel: "records"),
                node: node ?? nodeA)
        }
        let patientW = try wallet("patient", "patient", "hospital-a")
        let doctorW = try wallet("doctor", "doctor", "hospital-a")
        let granteeW = try wallet("doctor-b", "doctor", "hospital-b")
        let otherW = try wallet("doctor-b2", "doctor", "hospital-b")
        let deviceW = try wallet("monitor", "device", "hospital-a")
        let foreignDeviceW = try wallet("monitor-b", "device", "hospital-b")
        let patient = try await client(patientW)
        let doctor = try await client(doctorW)
        let grantee = try await client(granteeW, nodeB)
        let other = try await client(otherW, nodeB)
        let device = try await client(deviceW)
        let foreignDevice = try await client(foreignDeviceW)
        defer { for c in [patient, doctor, grantee, other, device, foreignDevice] { c.gateway.close() } }
        for c in [patient, doctor, grantee, other] { _ = try await c.publishKeys() }
        // 1. Appointment: H_Mj creates the treatment in its own name and seals T_SK to the doctor.
        let di = "DI-SECRET-7731 chest pain on exertion"
        await Self.expectRefused(412, "no doctors") { _ = try await patient.requestAppointment(diseaseInfo: di) }
        await Self.expectRefused(403, "only patients") {
            _ = try await doctor.requestAppointment(diseaseInfo: di, preferredDoctor: doctorW.info.pid)
        }
        await Self.expectRefused(412, "not a doctor of") {
            _ = try await patient.requestAppointment(diseaseInfo: di, preferredDoctor: granteeW.info.pid)
        }
        let appointment = try await patient.requestAppointment(diseaseInfo: di, preferredDoctor: doctorW.info.pid)
        #expect(appointment.doctorPid == doctorW.info.pid && appointment.patientPid == patientW.info.pid)
        let tsk = try await doctor.openAppointment(appointment)
        #expect(tsk.diseaseInfo == di && tsk.tID == appointment.tID && tsk.patientCert.contains("BEGIN CERTIFICATE"))
        await Self.expectRefused(403, "for doctor") { _ = try await other.openAppointment(appointment) }
        var forged = appointment
        forged.sessionKeyCiphertext[forged.sessionKeyCiphertext.count - 1] ^= 1
        await Self.expectRefused(422, "does not open") { _ = try await doctor.openAppointment(forged) }
        let tID = appointment.tID
        // 2. Device readings: accepted from the hospital's device; refused with a reason otherwise.
        let doctorKey = try await device.publishedKeys(of: doctorW.info.pid).encryption
        let vitals = VitalSigns(heartRate: 88, systolic: 131, diastolic: 84, note: "NOTE-SECRET-5519")
        let now = ISO8601DateFormatter().string(from: Date())
        _ = try await device.submitReading(
            vitals, tID: tID, patientPID: patientW.info.pid, doctorKey: doctorKey, sequence: 1, observedAt: now)
        await Self.expectRefused(409, "replayed") {
            _ = try await device.submitReading(
                vitals, tID: tID, patientPID: patientW.info.pid, doctorKey: doctorKey, sequence: 1, observedAt: now)
        }
        await Self.expectRefused(403, "mismatched device") {
            _ = try await foreignDevice.submitReading(
                vitals, tID: tID, patientPID: patientW.info.pid, doctorKey: doctorKey, sequence: 1, observedAt: now)
        }
        await Self.expectRefused(403, "only enrolled devices") {
            _ = try await patient.submitReading(
                vitals, tID: tID, patientPID: patientW.info.pid, doctorKey: doctorKey, sequence: 1, observedAt: now)
        }
        // A signature that fails (the envelope altered after signing) and one in another device's name.
        func raw(_ edit: (inout Medledger_SignedReading) -> Void) async throws {
            let (capsule, ct) = Umbral.encrypt(delegatingPK: doctorKey, plaintext: Array("{}".utf8))
            var r = Medledger_SignedReading()
            (r.channel, r.tID, r.devicePid, r.sequence, r.observedAt) = ("records", tID, deviceW.info.pid, 50, now)
            (r.capsule, r.ciphertext) = (Data(capsule.toBytes()), Data(ct))
            r.deviceCertPem = try Data(contentsOf: URL(fileURLWithPath: deviceW.signingCertPath))
            r.signature = Data(try ReadingSigning.sign(r.signedMessage, key: try deviceW.signingKey()))
            edit(&r)
            let frozen = r
            _ = try await NodeConnection.with(nodeA, trustedRootsPEM: deviceW.caCertPEM, identity: deviceW.tlsIdentity)
            { try await Medledger_Collector.Client(wrapping: $0).submitReading(frozen) }
        }
        await Self.expectRefused(400, "signature does not verify") { try await raw { $0.ciphertext[0] ^= 1 } }
        await Self.expectRefused(403, "mismatched device") { try await raw { $0.devicePid = foreignDeviceW.info.pid } }
        await Self.expectRefused(403, "mismatched device") {
            try await raw {
                $0.deviceCertPem =
                    (try? Data(contentsOf: URL(fileURLWithPath: foreignDeviceW.signingCertPath))) ?? Data()
            }
        }
        let readings = try await doctor.fetchReadings(tID: tID)
        #expect(readings.accepted.map(\.vitals) == [vitals] && readings.rejected.isEmpty, "\(readings.rejected)")
        await Self.expectRefused(403, "only the treatment's doctor") { _ = try await patient.fetchReadings(tID: tID) }
        // 3. The record: EMR + SHR bundled, sealed by the patient, stored, dual-signed, indexed.
        let emr = Array(#"{"resourceType":"Condition","code":{"text":"EMR-SECRET-4406 stable angina"}}"#.utf8)
        let bundle = try RecordBundle.make(
            tID: tID, patientPID: patientW.info.pid, emr: emr, observations: readings.accepted.map(\.observation),
            createdAt: now)
        let plainPath = privateScratch.path + "/bundle.json"
        let sealedPath = privateScratch.path + "/bundle.sealed"
        try Data(bundle).write(to: URL(fileURLWithPath: plainPath))
        _ = try patient.seal(plaintext: plainPath, to: sealedPath)
        let put = try await patient.putRecord(sealedFile: sealedPath, tID: tID, doctor: .wallet(doctorW))
        let record = put.record
        #expect(record.capsule != nil && ObjectURL(record.url)?.digest == record.digest)
        // 4. Verified and decrypted by the patient; verified by the doctor; checked by Python alone.
        _ = try await patient.verifyRecord(recordID: record.recordID, sealedPath: privateScratch.path + "/p.sealed")
        _ = try patient.openAsPatient(
            sealedPath: privateScratch.path + "/p.sealed", to: privateScratch.path + "/p.json")
        #expect(try Data(contentsOf: URL(fileURLWithPath: privateScratch.path + "/p.json")) == Data(bundle))
        _ = try await doctor.verifyRecord(recordID: record.recordID, sealedPath: privateScratch.path + "/d.sealed")
        let recordJSON = privateScratch.path + "/pde.json"
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: recordJSON))
        let stored = try #require(
            FileManager.default.enumerator(atPath: root + "/hospital-a/nodes/peer0/data/objects")?.compactMap {
                $0 as? String
            }.first { $0.hasSuffix(record.digest + ".obj") })
        let objectPath = root + "/hospital-a/nodes/peer0/data/objects/" + stored
        let (ok, okText) = try Self.python(
            "pde_check.py", ["--record", recordJSON, "--ciphertext", objectPath, "--ca", caCert])
        #expect(
            ok == 0 && okText.contains("sha384 ok") && okText.contains("patient signature ok")
                && okText.contains("doctor signature ok"), "\(okText)")
        // The same check fails on a forged signature (Python, independently).
        var forgedRecord = record
        forgedRecord.patientSignature = record.doctorSignature
        try JSONEncoder().encode(forgedRecord).write(to: URL(fileURLWithPath: recordJSON))
        let (bad, badText) = try Self.python(
            "pde_check.py", ["--record", recordJSON, "--ciphertext", objectPath, "--ca", caCert])
        #expect(bad == 1 && badText.contains("FAIL patient signature does not verify"), "\(badText)")
        // The offline check of LEDGER_FORMATS §8, as the document prints it, on the block itself (whole
        // blocks are for administrators). The patient submitted, so only the doctor's certificate is in
        // checked_signers.
        let auditor = try await Gateway.connect(
            wallet: try Wallet.open(net.admin("hospital-a")), peer: nodeA, channel: "records")
        let block = try await auditor.block(put.submit.blockNumber)
        auditor.close()
        let (docStatus, docText) = try Self.ledgerFormatsCheck(
            block: block, object: objectPath, ca: caCert, in: privateScratch.path + "/formats")
        #expect(
            docStatus == 0 && docText.contains("P_DE \(record.recordID) of \(tID) (tx \(put.submit.txID)) verifies"),
            "\(docText)")

        // A P_DE whose URL_C names another object (validly signed over that URL) is tampering.
        let otherSealed = privateScratch.path + "/other.sealed"
        _ = try patient.seal(plaintext: plainPath, to: otherSealed)
        let otherDigest = try ObjectClient.digest(ofFile: otherSealed).digest
        let swappedURL = record.url
        func sign(_ w: Wallet) throws -> String {
            try IndexRecordSigning.sign(tid: tID, url: swappedURL, digestHex: otherDigest, key: try w.signingKey())
        }
        let (swapped, _) = try await patient.submit(
            "putIndexRecord",
            PutIndexRecordRequest(
                tID: tID, url: swappedURL, digest: otherDigest, patientSignature: try sign(patientW),
                doctorSignature: try sign(doctorW),
                patientCert: try String(contentsOfFile: patientW.signingCertPath, encoding: .utf8),
                doctorCert: try String(contentsOfFile: doctorW.signingCertPath, encoding: .utf8)),
            IndexRecordReceipt.self)
        await Self.expectRefused(422, "URL_C") {
            _ = try await patient.verifyRecord(
                recordID: swapped.recordID, sealedPath: privateScratch.path + "/s.sealed")
        }
        // 5. Sharing: 2-of-2 over both hospitals' proxies; each records D_UE.
        await Self.expectRefused(404, "no index record") {
            _ = try await grantee.query(
                "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID), IndexRecord.self)
        }
        let expires = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let grant = try await patient.grant(
            grantee: granteeW.info.pid, tIDs: [tID], purpose: "second opinion", expiresAt: expires,
            proxies: [nodeA, nodeB], threshold: 2)
        #expect(grant.proxies == ["hospital-a/peer0", "hospital-b/peer0"])
        let consentID = grant.consent.consentID
        // Wrong key fragments: garbage, and a well-formed fragment for another receiver.
        func deposit(_ kfrag: [UInt8]) async throws {
            var req = Medledger_DepositKeyFragRequest()
            (req.channel, req.consentID, req.kfrag) = ("records", consentID, Data(kfrag))
            let frozen = req
            _ = try await NodeConnection.with(
                nodeA, trustedRootsPEM: patientW.caCertPEM, identity: patientW.tlsIdentity
            ) { try await Medledger_Proxy.Client(wrapping: $0).depositKeyFrag(frozen) }
        }
        await Self.expectRefused(400, "not an Umbral key fragment") { try await deposit([1, 2, 3]) }
        let keys = try patientW.proxyKeys()
        let stray = try Umbral.generateKFrags(
            delegatingSK: keys.encryption, receivingPK: SecretKey.random().publicKey, signer: keys.signer, threshold: 1,
            shares: 1, signDelegatingKey: true, signReceivingKey: true)
        await Self.expectRefused(400, "does not verify") { try await deposit(stray[0].toBytes()) }

        let sharedOut = privateScratch.path + "/shared.json"
        await Self.expectRefused(502, "1 valid capsule fragment(s), 2 needed") {
            _ = try await grantee.openShared(
                consentID: consentID, recordID: record.recordID, proxies: [nodeA], threshold: 2,
                sealedPath: privateScratch.path + "/g.sealed", to: sharedOut)
        }
        let opened = try await grantee.openShared(
            consentID: consentID, recordID: record.recordID, proxies: [nodeA, nodeB], threshold: 2,
            sealedPath: privateScratch.path + "/g.sealed", to: sharedOut)
        #expect(try Data(contentsOf: URL(fileURLWithPath: sharedOut)) == Data(bundle))
        #expect(Set(opened.usage.map(\.proxy)) == ["hospital-a/peer0", "hospital-b/peer0"])
        let usage = try await patient.listUsage(patientPID: patientW.info.pid)
        #expect(
            usage.count == 3
                && usage.allSatisfy {
                    $0.consentID == consentID && $0.purpose == "second opinion" && $0.thirdPartyPID == granteeW.info.pid
                })
        // The patient's own trail on hospital-a's node (EMR-IG: access to one's records is reviewable):
        // the doctor's read is there, by PID; a doctor may not read trails; a window after now is empty.
        _ = try await doctor.listRecords(patientPID: patientW.info.pid)
        let trail = try MedLedgerBinary.ok([
            "audit", "mine", "--node", net.node("hospital-a"), "--wallet", root + "/w/patient", "--json",
        ])
        let entries = try trail.split(separator: "\n").map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(
            entries.contains {
                $0["actor_pid"] as? String == doctorW.info.pid && $0["action"] as? String == "record.read"
                    && $0["outcome"] as? String == "success"
                    && ($0["detail"] as? String)?.contains("listIndexRecords") == true
            }, "\(trail)")
        #expect(!trail.contains("test doctor"), "a real name in the audit trail")
        #expect(
            entries.contains {
                $0["action"] as? String == "object.download" && $0["actor_pid"] as? String == granteeW.info.pid
            }, "the grantee's download of the ciphertext is in the trail:\n\(trail)")
        #expect(
            !entries.contains { $0["actor_pid"] as? String == patientW.info.pid },
            "the patient's own reads (listUsage) are not listed to them")
        let notYet = try MedLedgerBinary.ok([
            "audit", "mine", "--node", net.node("hospital-a"), "--wallet", root + "/w/patient", "--since",
            "2999-01-01T00:00:00Z",
        ])
        #expect(notYet.hasPrefix("0 access(es)"), "\(notYet)")
        let doctorTrail = try MedLedgerBinary.run([
            "audit", "mine", "--node", net.node("hospital-a"), "--wallet", root + "/w/doctor",
        ])
        #expect(doctorTrail.status != 0 && doctorTrail.stderr.contains("[403]"), "\(doctorTrail.stderr)")
        // Someone else cannot use this consent at a proxy (nor learn that it exists).
        await Self.expectRefused(404, "no consent") {
            var req = Medledger_ReencryptRequest()
            (req.channel, req.consentID, req.recordID) = ("records", consentID, record.recordID)
            let frozen = req
            _ = try await NodeConnection.with(nodeB, trustedRootsPEM: otherW.caCertPEM, identity: otherW.tlsIdentity) {
                try await Medledger_Proxy.Client(wrapping: $0).reencrypt(frozen)
            }
        }
        // 6. Revocation: the proxies refuse from the next block on; nothing more is disclosed.
        _ = try await patient.revoke(consentID: consentID, proxies: [])
        await Self.expectRefused(403, "revoked") {
            _ = try await grantee.openShared(
                consentID: consentID, recordID: record.recordID, proxies: [nodeA, nodeB], threshold: 2,
                sealedPath: privateScratch.path + "/g2.sealed", to: privateScratch.path + "/g2.json")
        }
        #expect(!FileManager.default.fileExists(atPath: privateScratch.path + "/g2.json"))
        #expect(try await patient.listUsage(patientPID: patientW.info.pid).count == 3)
        // Withdrawing the now inert fragments afterwards works on the revoked consent.
        #expect(try await patient.revoke(consentID: consentID, proxies: [nodeA, nodeB]).withdrawn == 2)
        // The CLI's `record get` downloads the ciphertext into a private scratch directory and decrypts
        // through a hidden file of its own: a user's files named like the output plus `.sealed` or
        // `.part` are neither replaced nor removed.
        let mine = privateScratch.path + "/mine.json"
        try Data("the user's notes".utf8).write(to: URL(fileURLWithPath: mine + ".sealed"))
        try Data("the user's notes".utf8).write(to: URL(fileURLWithPath: mine + ".part"))
        let got = try MedLedgerBinary.run([
            "record", "get", "--node", net.node("hospital-a"), "--wallet", patientW.directory, "--record-id",
            record.recordID, "--out", mine,
        ])
        #expect(got.status == 0, "\(got.stderr)")
        #expect(FileManager.default.fileExists(atPath: mine))
        for suffix in [".sealed", ".part"] {
            #expect(try Data(contentsOf: URL(fileURLWithPath: mine + suffix)) == Data("the user's notes".utf8))
        }
        // 7. Tampered ciphertext on the node's disk: verification names what failed.
        var object = try Data(contentsOf: URL(fileURLWithPath: objectPath))
        object[object.count / 2] ^= 0x01
        try object.write(to: URL(fileURLWithPath: objectPath))
        await Self.expectRefused(422, "ciphertext SHA-384") {
            _ = try await patient.verifyRecord(recordID: record.recordID, sealedPath: privateScratch.path + "/t.sealed")
        }
        // A file already at the path (the user's own copy) survives a download that proved tampering,
        // and the CLI refuses to keep a verified copy over an existing file at all.
        let ownCopy = privateScratch.path + "/own.sealed"
        try Data("the user's own copy".utf8).write(to: URL(fileURLWithPath: ownCopy))
        await Self.expectRefused(422, "ciphertext SHA-384") {
            _ = try await patient.verifyRecord(recordID: record.recordID, sealedPath: ownCopy)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: ownCopy)) == Data("the user's own copy".utf8))
        let overKept = try MedLedgerBinary.run([
            "record", "verify", "--node", net.node("hospital-a"), "--wallet", patientW.directory, "--record-id",
            record.recordID,
            "--keep", ownCopy,
        ])
        #expect(overKept.status != 0 && overKept.stderr.contains("already there"), "\(overKept.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: ownCopy)) == Data("the user's own copy".utf8))
        // 8. No plaintext anywhere the system wrote: blocks, state, object store, proxy and collector
        // files, audit logs, node logs.
        // And no real identity (RID): the CA keeps them encrypted, logs and blocks carry PIDs only.
        let realNames = ["patient", "doctor", "doctor-b", "doctor-b2", "monitor", "monitor-b"].map { "test \($0)" }
        let secrets =
            [di, "DI-SECRET-7731", "NOTE-SECRET-5519", "EMR-SECRET-4406", "stable angina", "beats/minute"] + realNames
        var searched = 0
        // Bytes, not Strings: ledger files are binary, and a byte search is what a leak check needs.
        var blobs = net.peers.values.map { Data($0.text.utf8) } + [Data(net.sa.text.utf8)]
        for dir in [root + "/hospital-a/nodes", root + "/hospital-b/nodes", root + "/sa"] {
            for case let name as String in FileManager.default.enumerator(atPath: dir)
                ?? FileManager.DirectoryEnumerator()
            {
                let path = dir + "/" + name
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                    let d = FileManager.default.contents(atPath: path)
                else { continue }
                searched += 1
                blobs.append(d)
            }
        }
        #expect(searched > 20)
        let needles = secrets.map { [UInt8]($0.utf8) }
        for blob in blobs {
            for needle in needles {
                #expect(
                    !Self.contains(blob, needle),
                    "plaintext or a real name \(String(decoding: needle, as: UTF8.self).debugDescription) found in what the nodes wrote"
                )
            }
        }
    }
}
