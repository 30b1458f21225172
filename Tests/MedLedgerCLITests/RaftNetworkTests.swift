import Foundation
import Glibc
import LedgerClient
import LedgerProtos
import LedgerRPC
import LedgerTransport
import Synchronization
import Testing

/// The three-hospital raft network as real processes on loopback: the SA's node (CA) and hospital-a,
/// -b and -c, each running a peer and a raft consenter on fixed ports (raft addresses live in the
/// channel configuration, so a restarted node must come back where it was). With `spare`, hospital-d
/// is a channel member whose node has a raft listener but is not (yet) a consenter.
final class RaftNetwork: @unchecked Sendable {
    let root: String
    let sa: DaemonProcess
    /// The SA's node: CA, and a peer of the channel (so revocations reach it).
    let saNode: String
    var nodes: [String: DaemonProcess] = [:]
    var ports: [String: (node: Int, raft: Int)] = [:]
    let orgs = ["hospital-a", "hospital-b", "hospital-c"]
    /// Every hospital running a node; raft id n is `everyOrg[n - 1]`.
    let everyOrg: [String]

    /// `operations`: every hospital node also serves its operations endpoint (port chosen at start).
    init(root: String, spare: Bool = false, operations: Bool = false) throws {
        self.root = root
        everyOrg = orgs + (spare ? ["hospital-d"] : [])
        let saDir = root + "/sa"
        try MedLedgerBinary.ok([
            "ca", "init", "--data", saDir, "--master-key-file", root + "/master.key", "--listen", "127.0.0.1:0",
            "--enroll-listen", "127.0.0.1:0",
        ])
        sa = try DaemonProcess(executable: MedLedgerBinary.url, arguments: ["ca", "serve", "--data", saDir])
        try sa.waitFor("medledgerd: ready")
        saNode = "127.0.0.1:\(try sa.port(after: "node sa-node"))"
        let ca = saNode
        let enroll = "127.0.0.1:\(try sa.port(after: "CA enrollment"))"
        let free = LoopbackPorts.free(2 * everyOrg.count)
        for (i, org) in everyOrg.enumerated() {
            ports[org] = (free[2 * i], free[2 * i + 1])
            try MedLedgerBinary.ok([
                "org", "admit", "--ca", ca, "--wallet", saDir + "/wallets/admin", "--org", org, "--node", "peer0",
                "--ip", "127.0.0.1",
                "--listen", "127.0.0.1:\(free[2 * i])", "--raft-listen", "127.0.0.1:\(free[2 * i + 1])", "--out",
                root + "/\(org)",
            ])
            try MedLedgerBinary.ok([
                "ca", "crl", "--ca", enroll, "--ca-cert", saDir + "/ca-cert.pem", "--out",
                root + "/\(org)/nodes/peer0/crl.pem",
            ])
            if operations {
                let yaml = root + "/\(org)/nodes/peer0/node.yaml"
                // Four connections from one address (of the default 64): OperationsTests holds them all.
                let section = "operations: { listen: 127.0.0.1:0, connections_per_source_max: 4 }\n"
                try (try String(contentsOfFile: yaml, encoding: .utf8) + section).write(
                    toFile: yaml, atomically: true, encoding: .utf8)
            }
            try start(org)
        }
        var consenters = ""
        for (i, org) in orgs.enumerated() {
            consenters +=
                "    - { id: \(i + 1), org: \(org), raft_address: \"127.0.0.1:\(ports[org]!.raft)\", endpoint: \"\(node(org))\", tls_certificate: \(org)/nodes/peer0/tls-cert.pem }\n"
        }
        let yaml = """
            channel: records
            organizations:
              - { id: sa, ca_root: sa/ca-cert.pem, peers: ["\(saNode)"] }
            \(everyOrg.map { "  - { id: \($0), ca_root: sa/ca-cert.pem, peers: [\"\(node($0))\"] }" }.joined(separator: "\n"))
            orderer:
              type: raft
              consenters:
            \(consenters)  raft: { election_timeout_ms: 500, heartbeat_ms: 50 }
            crl_publisher: sa
            batch: { max_message_count: 100, batch_timeout_ms: 0 }
            chaincodes:
              - { name: kv, endorsement_policy: "OR('hospital-a.node', 'hospital-b.node', 'hospital-c.node')" }

            """
        try yaml.write(toFile: root + "/channel.yaml", atomically: true, encoding: .utf8)
        try MedLedgerBinary.ok([
            "channel", "create", "--config", root + "/channel.yaml", "--wallet", saDir + "/wallets/admin", "--out",
            root + "/records.block",
        ])
        for org in orgs {
            try MedLedgerBinary.ok([
                "channel", "join", "--node", node(org), "--wallet", admin(org), "--block", root + "/records.block",
                "--orderer-node",
            ])
        }
        for org in everyOrg {
            try MedLedgerBinary.ok([
                "channel", "join", "--node", node(org), "--wallet", admin(org), "--block", root + "/records.block",
            ])
        }
        try MedLedgerBinary.ok([
            "channel", "join", "--node", saNode, "--wallet", saDir + "/wallets/admin", "--block",
            root + "/records.block",
        ])
    }

    /// The consenter line of raft id `id` (hospital `everyOrg[id - 1]`) in a channel YAML.
    func consenterYAML(_ id: Int) -> String {
        let org = everyOrg[id - 1]
        return
            "    - { id: \(id), org: \(org), raft_address: \"127.0.0.1:\(ports[org]!.raft)\", endpoint: \"\(node(org))\", tls_certificate: \(org)/nodes/peer0/tls-cert.pem }\n"
    }

    /// A configuration update to `consenterIDs` (the rest as at the genesis), signed by the
    /// administrators of `signers` and submitted through `via`'s peer.
    func updateConsenters(_ consenterIDs: [Int], signers: [String], via: String) throws {
        let yaml = try String(contentsOfFile: root + "/channel.yaml", encoding: .utf8)
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        var out: [String] = []
        var inConsenters = false
        for line in lines {
            if line.hasPrefix("  consenters:") {
                inConsenters = true
                out.append(String(line))
                out += consenterIDs.map { consenterYAML($0).trimmingCharacters(in: .newlines) }
                continue
            }
            if inConsenters, line.hasPrefix("    - ") { continue }
            inConsenters = false
            out.append(String(line))
        }
        let path = root + "/channel-\(consenterIDs.map(String.init).joined()).yaml"
        try out.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let update = path + ".update"
        try MedLedgerBinary.ok([
            "channel", "update", "--node", node(via), "--wallet", admin(signers[0]), "--channel", "records", "--config",
            path, "--out", update,
        ])
        for org in signers.dropFirst() {
            try MedLedgerBinary.ok(["channel", "sign-update", "--update", update, "--wallet", admin(org)])
        }
        try MedLedgerBinary.ok([
            "channel", "submit-update", "--node", node(via), "--wallet", admin(via), "--channel", "records", "--update",
            update,
        ])
    }

    /// The file whose existence fails `org`'s orderer disk writes (debug builds of the daemon).
    func diskFaultTrigger(_ org: String) -> String { root + "/\(org).disk-fails" }

    func node(_ org: String) -> String { "127.0.0.1:\(ports[org]!.node)" }
    func admin(_ org: String) -> String { root + "/\(org)/admin" }

    func start(_ org: String) throws {
        let d = try DaemonProcess(
            executable: MedLedgerBinary.daemonURL, arguments: ["--config", root + "/\(org)/nodes/peer0/node.yaml"],
            environment: ["MEDLEDGER_TEST_ORDERER_DISK_FAILS_WHILE": diskFaultTrigger(org)])
        try d.waitFor("medledgerd: ready")
        nodes[org] = d
    }

    func signal(_ org: String, _ sig: Int32) { kill(nodes[org]!.process.processIdentifier, sig) }

    func kill9(_ org: String) {
        signal(org, SIGKILL)
        nodes[org]!.process.waitForExit()
    }

    /// `orderer status --json` as `org`'s node sees it, nil if unreachable.
    func status(_ org: String) -> [String: Any]? {
        guard
            let r = try? MedLedgerBinary.run([
                "orderer", "status", "--node", node(org), "--wallet", admin(org), "--json",
            ]), r.status == 0,
            let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        else { return nil }
        return json
    }

    /// The leader `org`'s consenter knows of, asked over gRPC in this process (fast enough to time an
    /// election; the CLI's `orderer status` is checked separately).
    func leader(seenBy org: String) async -> String? {
        guard let w = try? Wallet.open(admin(org)), let address = NodeAddress(node(org)) else { return nil }
        var req = Medledger_OrdererStatusRequest()
        req.channel = "records"
        let request = req
        // No second try at a node that is down: the poll moves on to the next one.
        let r = try? await NodeConnection.with(
            address, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, retryDelays: []
        ) { c in
            try await Medledger_Orderer.Client(wrapping: c).status(request)
        }
        guard let r, r.leader > 0, r.role != "unavailable" else { return nil }
        return everyOrg[Int(r.leader) - 1]
    }

    /// Polls until one of `orgs` reports a leader among `orgs`.
    func waitForLeader(among orgs: [String], timeout: TimeInterval = 15) async -> String? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            for org in orgs {
                if let l = await leader(seenBy: org), orgs.contains(l) { return l }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func put(_ key: String, via org: String) -> MedLedgerBinary.Result? {
        try? MedLedgerBinary.run([
            "chaincode", "invoke", "--node", node(org), "--wallet", admin(org), "--channel", "records", "--chaincode",
            "kv", "--fn", "put", "--arg", key, "--arg", "v",
        ])
    }

    func chainInfo(_ org: String) -> (height: Int, tip: String)? {
        guard
            let r = try? MedLedgerBinary.run([
                "node", "channel-info", "--node", node(org), "--wallet", admin(org), "--channel", "records",
            ]), r.status == 0
        else { return nil }
        func field(_ name: String) -> String {
            r.stdout.split(separator: "\n").first { $0.contains(name) }.map {
                String($0.split(separator: " ").last ?? "")
            } ?? ""
        }
        return (Int(field("height")) ?? -1, field("tip"))
    }

    /// The raft and orderer lines of every node's output, for a failure message.
    func logs() -> String {
        everyOrg.map { org in
            let lines = (nodes[org]?.text ?? "").split(separator: "\n").filter {
                $0.contains("raft") || $0.contains("orderer") || $0.contains("block")
            }
            return "--- \(org)\n" + lines.suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    func stopAll() {
        for d in nodes.values { _ = d.stop() }
        _ = sa.stop()
    }
}

/// Polls `condition` every 200 ms until it holds or `seconds` pass; whether it held.
func eventually(within seconds: TimeInterval, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

extension RaftNetwork {
    /// The orderer heights of `orgs` are all known and equal.
    func orderersAgree(_ orgs: [String]) -> Bool {
        let heights = orgs.compactMap { status($0)?["height"] as? Int }
        return heights.count == orgs.count && Set(heights).count == 1
    }

    /// The raft role of each consenter, as `org`'s node reports it.
    func roles(seenBy org: String) -> [Int: String] {
        let rows = (status(org)?["consenters"] as? [[String: Any]]) ?? []
        return Dictionary(
            rows.compactMap { r in (r["id"] as? Int).map { ($0, (r["raft_role"] as? String) ?? "") } },
            uniquingKeysWith: { a, _ in a })
    }
}

@Suite(.serialized) struct RaftNetworkTests {
    /// A fresh network (with `spare`, hospital-d too) with a leader and a first write; stopped after `body`.
    static func withNetwork(
        _ name: String, spare: Bool = false, operations: Bool = false, _ body: (RaftNetwork) async throws -> Void
    ) async throws {
        let scratch = ScratchDir(name)
        let net = try RaftNetwork(root: scratch.path, spare: spare, operations: operations)
        defer { net.stopAll() }
        _ = try #require(await net.waitForLeader(among: net.orgs))
        #expect(net.put("first", via: "hospital-a")?.status == 0)
        try await body(net)
    }

    /// kill -9 the leader while a client writes: a new leader within 3 s, writes go on, nothing
    /// acknowledged is lost, and once the dead node is back every ledger is the same.
    @Test(.timeLimit(.minutes(5))) func killingTheLeaderLosesNothingAcknowledged() async throws {
        let scratch = ScratchDir("raft-net")
        let net = try RaftNetwork(root: scratch.path)
        defer { net.stopAll() }
        let leader = try #require(await net.waitForLeader(among: net.orgs))
        let survivors = net.orgs.filter { $0 != leader }
        // A client on a surviving hospital's peer writes throughout.
        final class Writes: @unchecked Sendable {
            let acked = Mutex<[String]>([])
            let failed = Mutex<[String]>([])
        }
        let writes = Writes()
        let writer = Task.detached {
            for i in 0..<30 {
                let key = "k\(i)"
                if let r = net.put(key, via: survivors[0]), r.status == 0 {
                    writes.acked.withLock { $0.append(key) }
                } else {
                    writes.failed.withLock { $0.append(key) }
                }
            }
        }
        try await Task.sleep(for: .seconds(2))
        let killedAt = Date()
        net.kill9(leader)
        let next = try #require(await net.waitForLeader(among: survivors, timeout: 10))
        let electionTime = Date().timeIntervalSince(killedAt)
        #expect(electionTime < 3, "a new leader took \(electionTime) s")
        print("raft failover: leader \(leader) killed; \(next) leads after \(String(format: "%.2f", electionTime)) s")
        await writer.value
        #expect(survivors.contains(next))
        let acked = writes.acked.withLock { $0 }
        print("raft failover: \(acked.count) writes acknowledged, failed: \(writes.failed.withLock { $0 })")
        #expect(acked.count >= 25, "writes failed during failover: \(writes.failed.withLock { $0 })")
        // Every acknowledged write is readable on both surviving peers.
        for org in survivors {
            for key in acked {
                let r = try MedLedgerBinary.run([
                    "chaincode", "query", "--node", net.node(org), "--wallet", net.admin(org), "--channel", "records",
                    "--chaincode", "kv", "--fn", "get", "--arg", key,
                ])
                #expect(
                    r.status == 0 && r.stdout.contains("v"),
                    "\(key) acknowledged but not on \(org): \(r.stdout)\(r.stderr)")
            }
        }
        // The killed node comes back, catches up, and all three ledgers are the same.
        try net.start(leader)
        var infos: [(height: Int, tip: String)] = []
        let deadline = Date().addingTimeInterval(20)
        repeat {
            infos = net.orgs.compactMap(net.chainInfo)
            if infos.count == 3, Set(infos.map(\.tip)).count == 1 { break }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        #expect(
            infos.count == 3 && Set(infos.map(\.tip)).count == 1,
            "ledgers differ after the restart: \(infos)\n\(net.logs())")
    }

    /// One consenter frozen: the others go on, and it catches up when thawed. Two of three stopped: no
    /// quorum, a clear 503; one back: ordering resumes. Then the whole cluster restarts and resumes
    /// where it was.
    @Test(.timeLimit(.minutes(5))) func losingQuorumRefusesClearlyAndRestartsResume() async throws {
        let scratch = ScratchDir("raft-quorum")
        let net = try RaftNetwork(root: scratch.path)
        defer { net.stopAll() }
        _ = try #require(await net.waitForLeader(among: net.orgs))
        // The operator's view: three consenters, one leader, every height.
        let status = try MedLedgerBinary.ok([
            "orderer", "status", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
        ])
        #expect(status.contains("ordering raft") && status.contains("consenter 3") && status.contains("*"), "\(status)")
        // One consenter frozen (SIGSTOP) while writes go on: the other two order; thawed, it catches up.
        net.signal("hospital-c", SIGSTOP)
        for i in 0..<5 { #expect(net.put("while-frozen-\(i)", via: "hospital-a")?.status == 0) }
        net.signal("hospital-c", SIGCONT)
        var caughtUp = false
        let thawDeadline = Date().addingTimeInterval(20)
        while !caughtUp, Date() < thawDeadline {
            if let a = net.chainInfo("hospital-a"), let c = net.chainInfo("hospital-c"), a.tip == c.tip {
                caughtUp = true
            } else {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(caughtUp, "hospital-c did not catch up after SIGCONT\n\(net.logs())")
        // The first ordering endpoint frozen (hospital-a: every peer and client tries it first; its
        // connections stay open but answer nothing): a write through hospital-b still commits, once
        // the gateway's attempt timeout and keepalive move the client and the peers on.
        net.signal("hospital-a", SIGSTOP)
        let frozenAt = Date()
        let viaB = net.put("a-frozen", via: "hospital-b")
        let took = Date().timeIntervalSince(frozenAt)
        print("raft: with hospital-a frozen, a write through hospital-b took \(String(format: "%.1f", took)) s")
        net.signal("hospital-a", SIGCONT)
        #expect(viaB?.status == 0, "\(viaB.map { $0.stdout + $0.stderr } ?? "")\n\(net.logs())")
        // About the gateway's 5 s attempt timeout: hospital-b's peer follows its own consenter, so it
        // never waits for keepalive to give up on hospital-a (10–15 s more).
        #expect(took < 12, "the write took \(took) s")
        #expect(net.put("before", via: "hospital-a")?.status == 0)
        let before = try #require(net.chainInfo("hospital-a"))
        net.kill9("hospital-b")
        net.kill9("hospital-c")
        let refused = try #require(net.put("without-quorum", via: "hospital-a"))
        #expect(refused.status != 0)
        let text = refused.stdout + refused.stderr
        print("raft without quorum: \(text)")
        #expect(
            text.contains("503") || text.contains("no raft leader") || text.contains("quorum"),
            "unclear refusal: \(text)")
        try net.start("hospital-b")
        _ = try #require(await net.waitForLeader(among: ["hospital-a", "hospital-b"]))
        let withQuorum = net.put("with-quorum", via: "hospital-a")
        let withQuorumText = withQuorum.map { $0.stdout + $0.stderr } ?? "(did not run)"
        #expect(withQuorum?.status == 0, "\(withQuorumText)\n\(net.logs())")
        // Whole cluster down and up again.
        for org in ["hospital-a", "hospital-b"] { _ = net.nodes[org]!.stop() }
        for org in net.orgs { try net.start(org) }
        _ = try #require(await net.waitForLeader(among: net.orgs))
        #expect(net.put("after-restart", via: "hospital-c")?.status == 0)
        let after = try #require(net.chainInfo("hospital-c"))
        #expect(after.height >= before.height + 2)
    }

    /// A consenter whose disk fails stops ordering cleanly (the process lives on and says why), the
    /// other two go on; with its disk back and a restart it catches up.
    @Test(.timeLimit(.minutes(5))) func aConsenterWhoseDiskFailsStopsAndTheOthersContinue() async throws {
        try await Self.withNetwork("raft-disk", operations: true) { net in
            FileManager.default.createFile(atPath: net.diskFaultTrigger("hospital-c"), contents: Data())
            for i in 0..<5 {
                let r = net.put("disk-failed-\(i)", via: "hospital-a")
                #expect(r?.status == 0, "\(r.map { $0.stdout + $0.stderr } ?? "")\n\(net.logs())")
            }
            // hospital-c stopped ordering and says why; its process did not crash.
            var reason = ""
            _ = await eventually(within: 10) {
                reason = (net.status("hospital-c")?["stopped_reason"] as? String) ?? ""
                return !reason.isEmpty
            }
            print("raft disk failure: hospital-c says \(reason)")
            #expect(
                reason.contains("injected disk write failure"),
                "hospital-c's orderer: \(net.status("hospital-c") ?? [:])\n\(net.logs())")
            #expect(net.nodes["hospital-c"]!.process.isRunning)
            // Its operations endpoint reports it unhealthy, naming the check; why, only to its own
            // administrators (the reason names the channel, which non-members must not learn).
            let port = try #require(OperationsTests.operationsPort(net.nodes["hospital-c"]!.text))
            let health = try OperationsTests.get(
                "https://127.0.0.1:\(port)/healthz", ca: net.root + "/sa/ca-cert.pem", identity: net.admin("hospital-c")
            )
            #expect(
                health.0 == 503 && health.1.contains("\"component\":\"orderer\"")
                    && health.1.contains("injected disk write failure"), "\(health)")
            let anonymous = try OperationsTests.get(
                "https://127.0.0.1:\(port)/healthz", ca: net.root + "/sa/ca-cert.pem", identity: nil)
            #expect(
                anonymous.0 == 503 && anonymous.1.contains("\"component\":\"orderer\"")
                    && !anonymous.1.contains("records") && !anonymous.1.contains("reason"), "\(anonymous)")
            // A client that names hospital-c's orderer is moved on to one that still orders.
            let viaC = try MedLedgerBinary.run([
                "chaincode", "invoke", "--node", net.node("hospital-c"), "--wallet", net.admin("hospital-c"),
                "--channel", "records", "--orderer", net.node("hospital-c"), "--chaincode", "kv", "--fn", "put",
                "--arg", "via-c", "--arg", "v",
            ])
            #expect(viaC.status == 0, "\(viaC.stdout)\(viaC.stderr)")
            // Disk repaired, node restarted: it catches up with the others.
            try FileManager.default.removeItem(atPath: net.diskFaultTrigger("hospital-c"))
            _ = net.nodes["hospital-c"]!.stop()
            try net.start("hospital-c")
            #expect(net.put("after-repair", via: "hospital-b")?.status == 0)
            let same = await eventually(within: 20) { net.orderersAgree(["hospital-a", "hospital-c"]) }
            #expect(same, "hospital-c's orderer did not catch up: \(net.status("hospital-c") ?? [:])\n\(net.logs())")
        }
    }

    /// Membership through configuration updates, one consenter each: hospital-d is added (it joins
    /// from the configuration block, pulls the chain, enters raft as a standby and is promoted), then
    /// hospital-a is removed while it leads (it hands leadership over, stops ordering, and the others
    /// drop it from raft). Finally b is killed:
    /// c and d are two of the three consenters left and still order, so d really votes.
    @Test(.timeLimit(.minutes(5))) func aConsenterIsAddedThenAnotherRemovedOneUpdateAtATime() async throws {
        try await Self.withNetwork("raft-members", spare: true) { net in
            // hospital-d's orderer cannot join from the genesis block: it is not a consenter there.
            let early = try MedLedgerBinary.run([
                "channel", "join", "--node", net.node("hospital-d"), "--wallet", net.admin("hospital-d"), "--block",
                net.root + "/records.block", "--orderer-node",
            ])
            #expect(
                early.status != 0 && (early.stdout + early.stderr).contains("configuration block that added it"),
                "\(early.stdout)\(early.stderr)")

            // Add consenter 4 (hospital-d): three of the five organisations' administrators sign.
            try net.updateConsenters(
                [1, 2, 3, 4], signers: ["hospital-a", "hospital-b", "hospital-c"], via: "hospital-a")
            let configBlock = net.root + "/config.block"
            try MedLedgerBinary.ok([
                "block", "get", "config", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
                "--channel", "records", "--out", configBlock,
            ])
            try MedLedgerBinary.ok([
                "channel", "join", "--node", net.node("hospital-d"), "--wallet", net.admin("hospital-d"), "--block",
                configBlock, "--orderer-node",
            ])
            let promoted = await eventually(within: 30) {
                net.roles(seenBy: "hospital-a")[4] == "voter" || net.roles(seenBy: "hospital-b")[4] == "voter"
            }
            #expect(promoted, "hospital-d was not promoted: \(net.roles(seenBy: "hospital-a"))\n\(net.logs())")
            print("raft membership: after adding 4: \(net.roles(seenBy: "hospital-a"))")
            #expect(net.put("four", via: "hospital-b")?.status == 0)

            // Remove consenter 1 (hospital-a) while it leads: it hands leadership over before it leaves.
            let toA = try MedLedgerBinary.run([
                "orderer", "transfer-leadership", "--node", net.node("hospital-b"), "--wallet", net.admin("hospital-b"),
                "--to", "1",
            ])
            #expect(toA.status == 0, "\(toA.stdout)\(toA.stderr)")
            #expect(await net.waitForLeader(among: ["hospital-a"]) == "hospital-a")
            try net.updateConsenters(
                [2, 3, 4], signers: ["hospital-b", "hospital-c", "hospital-d"], via: "hospital-b")
            let handedOver = await eventually(within: 30) {
                net.nodes["hospital-a"]?.text.contains("handed raft leadership of records to consenter") == true
            }
            #expect(handedOver, "hospital-a left without handing leadership over:\n\(net.logs())")
            let removed = await eventually(within: 30) {
                let r = net.roles(seenBy: "hospital-b")
                return r[1] == nil && r.count == 3 && r.values.allSatisfy { $0 == "voter" }
            }
            #expect(removed, "consenter 1 still in raft: \(net.roles(seenBy: "hospital-b"))\n\(net.logs())")
            let aStatus = net.status("hospital-a") ?? [:]
            print(
                "raft membership: after removing 1: \(net.roles(seenBy: "hospital-b")); hospital-a says \(aStatus["stopped_reason"] ?? "")"
            )
            #expect(
                ((aStatus["stopped_reason"] as? String) ?? "").contains("removed"), "hospital-a's orderer: \(aStatus)")
            #expect(net.put("without-a", via: "hospital-c")?.status == 0)
            // The channel's configuration drops consenter 1 at once; raft drops it only when the leader's
            // membership loop has committed the removal (it logs then). Until that, 1 still counts toward
            // raft's quorum, and with b gone c and d would be two of four.
            let raftDropped = await eventually(within: 30) {
                ["hospital-b", "hospital-c", "hospital-d"].contains {
                    net.nodes[$0]?.text.contains("raft consenter 1 left channel records") == true
                }
            }
            #expect(raftDropped, "raft never committed the removal of consenter 1:\n\(net.logs())")

            // hospital-d is a voter: with b gone too, c and d are two of three and still order.
            net.kill9("hospital-b")
            guard await net.waitForLeader(among: ["hospital-c", "hospital-d"]) != nil else {
                Issue.record(
                    "no leader among c and d after b's kill: c sees \(net.roles(seenBy: "hospital-c")), d sees \(net.roles(seenBy: "hospital-d"))\n\(net.logs())"
                )
                return
            }
            let last = net.put("c-and-d", via: "hospital-c")
            #expect(last?.status == 0, "\(last.map { $0.stdout + $0.stderr } ?? "")\n\(net.logs())")
            let same = await eventually(within: 20) {
                let c = net.chainInfo("hospital-c")
                let d = net.chainInfo("hospital-d")
                return c != nil && c?.tip == d?.tip
            }
            #expect(
                same,
                "hospital-c and hospital-d differ: \(String(describing: net.chainInfo("hospital-c"))) \(String(describing: net.chainInfo("hospital-d")))"
            )
        }
    }

    /// `ca revoke` reaches a raft channel the SA's node does not order: its peer knows the channel,
    /// and its CRL publisher hands the CRL update to the consenters. Every hospital then refuses the
    /// revoked identity from the next block on.
    @Test(.timeLimit(.minutes(5))) func aRevocationReachesTheRaftChannel() async throws {
        try await Self.withNetwork("raft-revoke") { net in
            let revoked = try Wallet.open(net.admin("hospital-c")).info.pid
            let out = try MedLedgerBinary.ok([
                "ca", "revoke", "--ca", net.saNode, "--wallet", net.root + "/sa/wallets/admin", "--pid", revoked,
                "--reason", "key-compromise",
            ])
            #expect(out.contains("is in the configuration of channel records"), "\(out)\n\(net.sa.text.suffix(2000))")
            // Every hospital's peer has the CRL in the channel's configuration.
            for org in net.orgs {
                let found = try await eventually(within: 10) {
                    let r = try MedLedgerBinary.run([
                        "channel", "info", "--node", net.node(org), "--wallet", net.admin("hospital-a"), "--channel",
                        "records", "--json",
                    ])
                    return r.status == 0 && r.stdout.contains("\"crl\"")
                }
                #expect(found, "no CRL in \(org)'s channel configuration")
            }
            // The revoked administrator is refused on a hospital whose CRL file was never refreshed.
            let refused = try MedLedgerBinary.run([
                "chaincode", "invoke", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-c"),
                "--channel", "records", "--chaincode", "kv", "--fn", "put", "--arg", "k", "--arg", "v",
            ])
            #expect(
                refused.status != 0 && (refused.stdout + refused.stderr).contains("revoked"),
                "\(refused.stdout)\(refused.stderr)")
            #expect(net.put("after", via: "hospital-b")?.status == 0)
        }
    }

    /// A consenter's key replaced, one node at a time: hospital-b's node gets new certificates (new
    /// keys), one configuration update pins its new key, and the node restarts with them. Writes go
    /// on throughout (a and c are a quorum), and b orders again under its new key.
    @Test(.timeLimit(.minutes(5))) func aConsentersKeyIsReplacedWithoutLosingQuorum() async throws {
        try await Self.withNetwork("raft-rekey") { net in
            let nodeWallet = net.root + "/hospital-b/nodes/peer0"
            let oldCert = try String(contentsOfFile: nodeWallet + "/tls-cert.pem", encoding: .utf8)
            try MedLedgerBinary.ok(["user", "reenroll", "--ca", net.saNode, "--wallet", nodeWallet])
            #expect(try String(contentsOfFile: nodeWallet + "/tls-cert.pem", encoding: .utf8) != oldCert)
            try net.updateConsenters(
                [1, 2, 3], signers: ["hospital-a", "hospital-b", "hospital-c"], via: "hospital-a")
            #expect(net.put("key-changed", via: "hospital-a")?.status == 0)
            // hospital-b restarts with its new key and takes part again.
            _ = net.nodes["hospital-b"]!.stop()
            #expect(net.put("b-restarting", via: "hospital-c")?.status == 0)
            try net.start("hospital-b")
            #expect(net.put("new-key", via: "hospital-b")?.status == 0)
            let same = await eventually(within: 20) { net.orderersAgree(net.orgs) }
            #expect(same, "orderer heights differ: \(net.orgs.map { net.status($0)?["height"] ?? "?" })\n\(net.logs())")
            // b can lead under its new key.
            let moved = try MedLedgerBinary.run([
                "orderer", "transfer-leadership", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
                "--to", "2",
            ])
            #expect(moved.status == 0, "\(moved.stdout)\(moved.stderr)")
            #expect(await net.waitForLeader(among: ["hospital-b"]) == "hospital-b")
            #expect(net.put("b-leads", via: "hospital-a")?.status == 0)
        }
    }
}
