import Crypto
import Foundation
import LedgerClient
import LedgerTransport
import Testing

/// Anomaly detection and incident response on running nodes: a doctor's script that sweeps 200
/// patients' records is caught by the default rules, suspended on the node (on new calls and on its
/// open streams), listed and resumed by the hospital's administrator with `medledger incident`.
@Suite(.serialized) struct IncidentNetworkTests {
    static func randomPID() -> String {
        Data(
            SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
                + SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
        )
        .base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    @Test(.timeLimit(.minutes(5))) func aScrapeOf200PatientsIsSuspendedWithin10SecondsAndResumed() async throws {
        let scratch = ScratchDir("incident")
        let root = scratch.path
        let net = try MultiHospitalNetworkTests.startNetwork(
            root, extra: ["hospital-a": "operations: { listen: 127.0.0.1:0 }"])
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        try net.peers["hospital-a"]!.waitFor("operations endpoint on https://")  // it may report after "ready"
        let ops = "127.0.0.1:\(try #require(OperationsTests.operationsPort(net.peers["hospital-a"]!.text)))"
        let ca = "127.0.0.1:\(net.ordererPort)"
        let enroll = "127.0.0.1:\(net.enrollPort)"
        let caCert = root + "/sa/ca-cert.pem"
        let doctorW = try IdentityNetworkTests.enroll(
            "scraper", role: "doctor", rid: "test scraper", admin: net.admin("hospital-a"), ca: ca, enroll: enroll,
            caCert: caCert, into: root + "/w/scraper")
        let nodeA = try #require(NodeAddress(net.node("hospital-a")))
        let doctor = CareClient(
            wallet: doctorW, gateway: try await Gateway.connect(wallet: doctorW, peer: nodeA, channel: "records"),
            node: nodeA)
        defer { doctor.gateway.close() }
        _ = try await doctor.listRecords(patientPID: Self.randomPID())  // a doctor's ordinary read works

        // The script: one query per patient, 16 at a time, as fast as the node answers.
        let patients = (0..<200).map { _ in Self.randomPID() }
        let start = ContinuousClock.now
        let outcomes = await withTaskGroup(of: (answered: Bool, suspendedAt: Duration?, other: CallFailure?).self) {
            group in
            var next = 0
            var results: [(answered: Bool, suspendedAt: Duration?, other: CallFailure?)] = []
            func launch() {
                guard next < patients.count else { return }
                let p = patients[next]
                next += 1
                group.addTask {
                    do {
                        _ = try await doctor.listRecords(patientPID: p)
                        return (true, nil, nil)
                    } catch let f as CallFailure {
                        if f.status == 401 && f.message.contains("suspended") {
                            return (false, ContinuousClock.now - start, nil)
                        }
                        return (false, nil, [403, 404].contains(f.status) ? nil : f)
                    } catch { return (false, nil, CallFailure(status: 0, message: "\(error)")) }
                }
            }
            for _ in 0..<16 { launch() }
            while let r = await group.next() {
                results.append(r)
                launch()
            }
            return results
        }
        for case let f? in outcomes.map(\.other) { Issue.record("unexpected refusal \(f)") }
        let answered = outcomes.filter(\.answered).count
        let firstSuspended = outcomes.compactMap(\.suspendedAt).min()
        let caughtAfter = try #require(firstSuspended, "the sweep was never suspended (\(answered) answered)")
        print("incident: scrape suspended after \(caughtAfter), \(answered) of 200 reads answered")
        #expect(caughtAfter < .seconds(10))
        // The rule fires at the 100th distinct patient; reads already in flight then may still finish.
        #expect(
            answered < 100 + 16, "the default rule suspends at the 100th distinct patient; \(answered) were answered")

        // Refused on new calls too, and listed for the administrator, with no patient named.
        await PaperFlowNetworkTests.expectRefused(401, "suspended") {
            _ = try await doctor.listRecords(patientPID: patients[0])
        }
        let list = try MedLedgerBinary.ok([
            "incident", "list", "--operations", ops, "--wallet", net.admin("hospital-a"),
        ])
        #expect(
            list.contains("suspended: 1") && list.contains(doctorW.info.pid) && list.contains("patient-sweep"),
            "\(list)")
        #expect(!patients.contains { list.contains($0) }, "a patient's PID in the incident list")
        let json = try MedLedgerBinary.ok([
            "incident", "list", "--json", "--operations", ops, "--wallet", net.admin("hospital-a"),
        ])
        #expect(json.contains("\"action\" : \"suspend\""), "\(json)")
        // Only hospital-a's administrators act on hospital-a's node; the doctor is not one.
        let foreign = try MedLedgerBinary.run([
            "incident", "resume", "--operations", ops, "--wallet", net.admin("hospital-b"), "--pid", doctorW.info.pid,
        ])
        #expect(foreign.status != 0 && foreign.stderr.contains("[403]"), "\(foreign.stderr)")
        let selfResume = try MedLedgerBinary.run([
            "incident", "resume", "--operations", ops, "--wallet", root + "/w/scraper", "--pid", doctorW.info.pid,
        ])
        #expect(selfResume.status != 0 && selfResume.stderr.contains("[403]"), "\(selfResume.stderr)")

        // The metric and the audit lines.
        let metrics = try OperationsTests.get("https://\(ops)/metrics", ca: caCert, identity: net.admin("hospital-a")).1
        #expect(
            metrics.contains("anomaly_alerts_total{rule=\"patient-sweep\"} 1")
                && metrics.contains("incident_suspended_identities 1"), "\(metrics.prefix(4000))")
        let audit = try String(contentsOfFile: root + "/hospital-a/nodes/peer0/audit.log", encoding: .utf8)
        #expect(audit.contains("\"action\":\"anomaly.alert\"") && audit.contains("\"action\":\"incident.suspend\""))
        // Swept patients appear only as the targets of the reads (their own audit trail), never in
        // the alert or suspension lines.
        let incidentLines = audit.split(separator: "\n").filter {
            $0.contains("\"action\":\"anomaly.alert\"") || $0.contains("\"action\":\"incident.")
        }
        #expect(
            !patients.contains { p in incidentLines.contains { $0.contains(p) } },
            "a swept patient's PID in an incident line")
        #expect(audit.contains("\"action\":\"record.read\""))
        #expect(net.peers["hospital-a"]!.text.contains("anomaly rule patient-sweep fired for \(doctorW.info.pid)"))

        // The suspension survives a restart of the node.
        _ = net.peers["hospital-a"]!.stop()
        let (restarted, _) = try MultiHospitalNetworkTests.startPeer(root, "hospital-a", port: net.ports["hospital-a"]!)
        defer { _ = restarted.stop() }
        try restarted.waitFor("operations endpoint on https://")  // it may report after "ready"
        let ops2 = "127.0.0.1:\(try #require(OperationsTests.operationsPort(restarted.text)))"
        // The client reconnects within its back-off; until then the node is unreachable (503).
        var afterRestart: CallFailure?
        let deadline = ContinuousClock.now + .seconds(20)
        repeat {
            do { _ = try await doctor.listRecords(patientPID: patients[1]) } catch let f as CallFailure {
                afterRestart = f
            }
            if afterRestart?.status == 503 { try await Task.sleep(for: .milliseconds(300)) }
        } while afterRestart?.status == 503 && ContinuousClock.now < deadline
        #expect(
            afterRestart?.status == 401 && afterRestart?.message.contains("suspended") == true,
            "after a restart: \(String(describing: afterRestart))")

        // Resumed: the doctor works again, and a second resume says there was nothing to resume.
        let resumed = try MedLedgerBinary.ok([
            "incident", "resume", "--operations", ops2, "--wallet", net.admin("hospital-a"), "--pid", doctorW.info.pid,
        ])
        #expect(resumed.contains("resumed"), "\(resumed)")
        _ = try await doctor.listRecords(patientPID: patients[2])
        let again = try MedLedgerBinary.run([
            "incident", "resume", "--operations", ops2, "--wallet", net.admin("hospital-a"), "--pid", doctorW.info.pid,
        ])
        #expect(
            again.status != 0 && again.stderr.contains("[404]") && again.stderr.contains("not suspended"),
            "\(again.stderr)")

        // An administrator suspends by hand, with a reason; the audit log names who did.
        #expect(
            try MedLedgerBinary.ok([
                "incident", "suspend", "--operations", ops2, "--wallet", net.admin("hospital-a"), "--pid",
                doctorW.info.pid, "--reason", "phone reported stolen",
            ]).contains("suspended"))
        await PaperFlowNetworkTests.expectRefused(401, "suspended") {
            _ = try await doctor.listRecords(patientPID: patients[3])
        }
        let audit2 = try String(contentsOfFile: root + "/hospital-a/nodes/peer0/audit.log", encoding: .utf8)
        #expect(audit2.contains("phone reported stolen") && audit2.contains("\"action\":\"incident.resume\""))
    }
}

/// The audit log anchored on chain by a running node: `audit verify --anchors` passes on the intact
/// file and catches its cut tail, which the hash chain alone cannot.
@Suite(.serialized) struct AuditAnchorNetworkTests {
    @Test(.timeLimit(.minutes(5))) func aCutTailShowsAgainstTheAnchorsOnChain() async throws {
        let scratch = ScratchDir("audit-anchor")
        let root = scratch.path
        let net = try MultiHospitalNetworkTests.startNetwork(
            root, extra: ["hospital-a": "audit_anchor: { channel: records, every_seconds: 1 }"])
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let log = root + "/hospital-a/nodes/peer0/audit.log"
        // Audited calls on hospital-a's node, a line each.
        for _ in 0..<4 {
            try MedLedgerBinary.ok([
                "node", "channel-info", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
                "--channel", "records",
            ])
        }
        func lineCount() throws -> Int { try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").count }
        let written = try lineCount()
        #expect(written >= 5)
        // Read through hospital-b's peer: the anchors are on the channel, not only on the node.
        let verify = [
            "audit", "verify", log, "--anchors", "--node", net.node("hospital-b"), "--wallet", net.admin("hospital-a"),
            "--node-cert", root + "/hospital-a/nodes/peer0/signing-cert.pem",
        ]
        var anchoredAll = false
        let deadline = ContinuousClock.now + .seconds(60)
        var last = MedLedgerBinary.Result(status: -1, stdout: "", stderr: "")
        while !anchoredAll && ContinuousClock.now < deadline {
            last = try MedLedgerBinary.run(verify)
            let count = try lineCount()
            anchoredAll = last.status == 0 && count == written && last.stdout.contains("the last at line \(written),")
            if !anchoredAll { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(anchoredAll, "the last line was never anchored: \(last.stdout)\(last.stderr)")
        #expect(
            last.stdout.contains("chain intact") && last.stdout.contains("anchor(s) on chain match"), "\(last.stdout)")
        _ = net.peers["hospital-a"]!.stop()

        // Cut the last line: the chain that remains is intact, the anchor of the cut line is not there.
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        try (lines.dropLast().joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        #expect(try MedLedgerBinary.run(["audit", "verify", log]).status == 0, "the chain alone does not see it")
        let cut = try MedLedgerBinary.run(verify)
        #expect(
            cut.status == 1 && cut.stdout.contains("anchored line \(lines.count) is missing")
                && cut.stdout.contains("tail was cut"), "\(cut.stdout)\(cut.stderr)")
        // Someone else's administrator learns nothing about hospital-a's anchors.
        var foreign = verify
        foreign[foreign.firstIndex(of: net.admin("hospital-a"))!] = net.admin("hospital-b")
        let refused = try MedLedgerBinary.run(foreign)
        #expect(refused.status != 0 && refused.stderr.contains("[404]"), "\(refused.stdout)\(refused.stderr)")
    }
}

/// A node whose audit disk fills: it reports unhealthy naming the check, keeps answering reads,
/// refuses the writes it cannot audit (503), and takes them again once there is room. The audit log
/// is on a small tmpfs mounted for the test (root is needed to mount it).
@Suite(.serialized) struct AuditDiskNetworkTests {
    @Test(.timeLimit(.minutes(5))) func aFullAuditDiskRefusesWritesServesReadsAndRecovers() async throws {
        let scratch = ScratchDir("audit-disk")
        let root = scratch.path
        let net = try MultiHospitalNetworkTests.startNetwork(root)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        // Move hospital-a's audit log to a 256 KiB disk of its own.
        let dir = root + "/hospital-a/nodes/peer0"
        _ = net.peers["hospital-a"]!.stop()
        let disk = dir + "/auditdisk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let mount = try MedLedgerBinary.runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", disk])
        try #require(mount.status == 0, "this test mounts a tmpfs for the audit log and needs root: \(mount.stderr)")
        defer { _ = try? MedLedgerBinary.runTool("/bin/umount", ["-l", disk]) }
        var yaml = try String(contentsOfFile: dir + "/node.yaml", encoding: .utf8)
        yaml = yaml.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasPrefix("audit_log:") ? "audit_log: auditdisk/audit.log" : String($0)
        }.joined(separator: "\n")
        try yaml.write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        let (node, _) = try MultiHospitalNetworkTests.startPeer(
            root, "hospital-a", port: net.ports["hospital-a"]!, extra: "operations: { listen: 127.0.0.1:0 }")
        defer { _ = node.stop() }
        try node.waitFor("operations endpoint on https://")
        let caCert = root + "/sa/ca-cert.pem"
        let health = "https://127.0.0.1:\(try #require(OperationsTests.operationsPort(node.text)))/healthz"
        #expect(try OperationsTests.get(health, ca: caCert, identity: nil).0 == 200)

        let doctorW = try IdentityNetworkTests.enroll(
            "doctor", role: "doctor", rid: "test doctor", admin: net.admin("hospital-a"),
            ca: "127.0.0.1:\(net.ordererPort)",
            enroll: "127.0.0.1:\(net.enrollPort)", caCert: caCert, into: root + "/w/doctor")
        let nodeA = try #require(NodeAddress(net.node("hospital-a")))
        let doctor = CareClient(
            wallet: doctorW, gateway: try await Gateway.connect(wallet: doctorW, peer: nodeA, channel: "records"),
            node: nodeA)
        defer { doctor.gateway.close() }
        _ = try await doctor.publishKeys()  // a write, audited while there is room

        // Fill the disk, then read until an audit line no longer fits.
        let filler = open(disk + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(filler >= 0)
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
        close(filler)
        var unhealthy = (0, "")
        for _ in 0..<200 where unhealthy.0 != 503 {
            // reads are answered throughout
            _ = try await doctor.listRecords(patientPID: "PATIENT-\(UUID().uuidString)")
            unhealthy = try OperationsTests.get(health, ca: caCert, identity: nil)
        }
        #expect(unhealthy.0 == 503 && unhealthy.1.contains("audit") && unhealthy.1.contains("disk"), "\(unhealthy)")
        await PaperFlowNetworkTests.expectRefused(503, "cannot write its audit log") {
            _ = try await doctor.publishKeys()
        }
        _ = try await doctor.listRecords(patientPID: "PATIENT-after")

        // Room again: the next write is taken (the node retries its log at most once a second).
        try FileManager.default.removeItem(atPath: disk + "/filler")
        var written = false
        for _ in 0..<20 where !written {
            try await Task.sleep(for: .milliseconds(600))
            written = (try? await doctor.publishKeys()) != nil
        }
        #expect(written, "writes were still refused once the audit disk had room")
        #expect(try OperationsTests.get(health, ca: caCert, identity: nil).0 == 200)
        // SIGTERM ends the node at once although the doctor's gateway is still open: its endorsement
        // and broadcast streams end with the shutdown instead of waiting for the server's drain time
        // (5 s) to cut them. scripts/test.sh runs the suites of this file on their own, where the
        // client is free to answer; with the client's threads held, the cut (5 s) and the node's last
        // resort (2 s more) still end it.
        let stopping = ContinuousClock.now
        #expect(node.stop() == 0)
        let took = ContinuousClock.now - stopping
        #expect(took < .seconds(3), "SIGTERM took \(took)")
        #expect(!node.text.contains("calls still open"), "\(node.text)")
        let verify = try MedLedgerBinary.run(["audit", "verify", disk + "/audit.log"])
        #expect(verify.status == 0 && verify.stdout.contains("chain intact"), "\(verify.stdout)\(verify.stderr)")
    }
}

/// An alert webhook whose receiver takes each POST and never answers: the node keeps answering at
/// once, posts at most 4 alerts at a time (the rest are dropped with a warning) and gives up on each
/// after its 5 s time-out.
@Suite(.serialized) struct WebhookNetworkTests {
    static let receiver = """
        import http.server, signal, socketserver, sys, time
        # The test process may spawn this with SIGTERM blocked (an inherited signal mask): stop() sends it.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                print("POST", self.path, body.decode(), flush=True)
                time.sleep(120)  # never answers within the node's time-out
            def log_message(self, *args):
                pass
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
        server = Server(("127.0.0.1", 0), Hook)
        print("hook listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
        server.serve_forever()
        """

    @Test(.timeLimit(.minutes(5))) func aHangingWebhookNeitherSlowsNorGrowsTheNode() async throws {
        let scratch = ScratchDir("webhook")
        let hook = try DaemonProcess(
            executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: ["python3", "-u", "-c", Self.receiver])
        defer { _ = hook.stop() }
        try hook.waitFor("hook listening on")
        let port = try hook.port(after: "hook")
        // Six rules that each fire on one refusal: one refused call raises six alerts at once.
        let rules = (1...6).map { "{ name: r\($0), kind: denied, threshold: 1, window_seconds: 600, action: alert }" }
            .joined(separator: ", ")
        let net = try MultiHospitalNetworkTests.startNetwork(
            scratch.path,
            extra: ["hospital-a": "anomaly: { rules: [\(rules)], webhook: \"http://127.0.0.1:\(port)/alerts\" }"])
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let node = net.peers["hospital-a"]!
        let channelInfo = { (channel: String) in
            try MedLedgerBinary.run([
                "node", "channel-info", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
                "--channel", channel,
            ])
        }
        let refused = try channelInfo("no-such-channel")
        #expect(refused.status != 0 && refused.stderr.contains("[404]"), "\(refused.stderr)")

        // The receiver holds four posts; the other two alerts are dropped, and the node says so.
        try hook.waitFor("POST /alerts", timeout: 10)
        try node.waitFor("anomaly webhook busy", timeout: 10)
        #expect(hook.text.contains("\"rule\":\"r") && hook.text.contains("\"action\":\"alert\""), "\(hook.text)")
        // While they hang, the node answers as usual.
        let started = ContinuousClock.now
        for _ in 0..<3 { #expect(try channelInfo("records").status == 0) }
        #expect(
            ContinuousClock.now - started < .seconds(30),
            "calls held up by a hanging webhook (it holds each post 120 s)")
        #expect(
            hook.text.components(separatedBy: "POST /alerts").count - 1 <= 4, "more than 4 posts at once:\n\(hook.text)"
        )
        // Each post gives up after its time-out, and the node goes on.
        try node.waitFor("anomaly webhook failed", timeout: 20)
        #expect(try channelInfo("records").status == 0)
    }
}
