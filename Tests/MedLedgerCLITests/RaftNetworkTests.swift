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
/// channel configuration, so a restarted node must come back where it was).
final class RaftNetwork: @unchecked Sendable {
    let root: String
    let sa: DaemonProcess
    var nodes: [String: DaemonProcess] = [:]
    var ports: [String: (node: Int, raft: Int)] = [:]
    let orgs = ["hospital-a", "hospital-b", "hospital-c"]

    /// Ports the OS says are free now (bound and released at once).
    static func freePorts(_ n: Int) -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        return (0..<n).map { _ in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            sockets.append(fd)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s in
                    _ = bind(fd, s, len)
                    _ = getsockname(fd, s, &len)
                }
            }
            return Int(UInt16(bigEndian: addr.sin_port))
        }
    }

    init(root: String) throws {
        self.root = root
        let saDir = root + "/sa"
        try MedLedgerBinary.ok(["ca", "init", "--data", saDir, "--master-key-file", root + "/master.key", "--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0"])
        sa = try DaemonProcess(executable: MedLedgerBinary.url, arguments: ["ca", "serve", "--data", saDir])
        try sa.waitFor("medledgerd: ready")
        let ca = "127.0.0.1:\(try sa.port(after: "node sa-node"))", enroll = "127.0.0.1:\(try sa.port(after: "CA enrollment"))"
        let free = Self.freePorts(6)
        for (i, org) in orgs.enumerated() {
            ports[org] = (free[2 * i], free[2 * i + 1])
            try MedLedgerBinary.ok([
                "org", "admit", "--ca", ca, "--wallet", saDir + "/wallets/admin", "--org", org, "--node", "peer0", "--ip", "127.0.0.1",
                "--listen", "127.0.0.1:\(free[2 * i])", "--raft-listen", "127.0.0.1:\(free[2 * i + 1])", "--out", root + "/\(org)",
            ])
            try MedLedgerBinary.ok(["ca", "crl", "--ca", enroll, "--ca-cert", saDir + "/ca-cert.pem", "--out", root + "/\(org)/nodes/peer0/crl.pem"])
            try start(org)
        }
        var consenters = ""
        for (i, org) in orgs.enumerated() {
            consenters += "    - { id: \(i + 1), org: \(org), raft_address: \"127.0.0.1:\(ports[org]!.raft)\", endpoint: \"\(node(org))\", tls_certificate: \(org)/nodes/peer0/tls-cert.pem }\n"
        }
        let yaml = """
        channel: records
        organizations:
          - { id: sa, ca_root: sa/ca-cert.pem }
        \(orgs.map { "  - { id: \($0), ca_root: sa/ca-cert.pem, peers: [\"\(node($0))\"] }" }.joined(separator: "\n"))
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
        try MedLedgerBinary.ok(["channel", "create", "--config", root + "/channel.yaml", "--wallet", saDir + "/wallets/admin", "--out", root + "/records.block"])
        for org in orgs { try MedLedgerBinary.ok(["channel", "join", "--node", node(org), "--wallet", admin(org), "--block", root + "/records.block", "--orderer-node"]) }
        for org in orgs { try MedLedgerBinary.ok(["channel", "join", "--node", node(org), "--wallet", admin(org), "--block", root + "/records.block"]) }
    }

    func node(_ org: String) -> String { "127.0.0.1:\(ports[org]!.node)" }
    func admin(_ org: String) -> String { root + "/\(org)/admin" }

    func start(_ org: String) throws {
        let d = try DaemonProcess(executable: MedLedgerBinary.daemonURL, arguments: ["--config", root + "/\(org)/nodes/peer0/node.yaml"])
        try d.waitFor("medledgerd: ready")
        nodes[org] = d
    }

    func signal(_ org: String, _ sig: Int32) { kill(nodes[org]!.process.processIdentifier, sig) }

    func kill9(_ org: String) {
        signal(org, SIGKILL)
        nodes[org]!.process.waitUntilExit()
    }

    /// `orderer status --json` as `org`'s node sees it, nil if unreachable.
    func status(_ org: String) -> [String: Any]? {
        guard let r = try? MedLedgerBinary.run(["orderer", "status", "--node", node(org), "--wallet", admin(org), "--json"]), r.status == 0,
              let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return nil }
        return json
    }

    /// The leader `org`'s consenter knows of, asked over gRPC in this process (fast enough to time an
    /// election; the CLI's `orderer status` is checked separately).
    func leader(seenBy org: String) async -> String? {
        guard let w = try? Wallet.open(admin(org)), let address = NodeAddress(node(org)) else { return nil }
        var req = Medledger_OrdererStatusRequest()
        req.channel = "records"
        let request = req
        let r = try? await NodeConnection.with(address, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) { c in
            try await Medledger_Orderer.Client(wrapping: c).status(request)
        }
        guard let r, r.leader > 0, r.role != "unavailable" else { return nil }
        return orgs[Int(r.leader) - 1]
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
        try? MedLedgerBinary.run(["chaincode", "invoke", "--node", node(org), "--wallet", admin(org), "--channel", "records", "--chaincode", "kv", "--fn", "put", "--arg", key, "--arg", "v"])
    }

    func chainInfo(_ org: String) -> (height: Int, tip: String)? {
        guard let r = try? MedLedgerBinary.run(["node", "channel-info", "--node", node(org), "--wallet", admin(org), "--channel", "records"]), r.status == 0 else { return nil }
        func field(_ name: String) -> String { r.stdout.split(separator: "\n").first { $0.contains(name) }.map { String($0.split(separator: " ").last ?? "") } ?? "" }
        return (Int(field("height")) ?? -1, field("tip"))
    }

    /// The raft and orderer lines of every node's output, for a failure message.
    func logs() -> String {
        orgs.map { org in
            let lines = (nodes[org]?.text ?? "").split(separator: "\n").filter { $0.contains("raft") || $0.contains("orderer") || $0.contains("block") }
            return "--- \(org)\n" + lines.suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    func stopAll() {
        for d in nodes.values { _ = d.stop() }
        _ = sa.stop()
    }
}

@Suite(.serialized) struct RaftNetworkTests {
    /// kill -9 the leader while a client writes: a new leader within 3 s, writes go on, nothing
    /// acknowledged is lost, and once the dead node is back every ledger is the same.
    @Test(.timeLimit(.minutes(5))) func killingTheLeaderLosesNothingAcknowledged() async throws {
        let scratch = ScratchDir("raft-net")
        let net = try RaftNetwork(root: scratch.path)
        defer { net.stopAll() }
        let leader = try #require(await net.waitForLeader(among: net.orgs))
        let survivors = net.orgs.filter { $0 != leader }
        // A client on a surviving hospital's peer writes throughout.
        final class Writes: @unchecked Sendable { let acked = Mutex<[String]>([]); let failed = Mutex<[String]>([]) }
        let writes = Writes()
        let writer = Task.detached {
            for i in 0..<30 {
                let key = "k\(i)"
                if let r = net.put(key, via: survivors[0]), r.status == 0 { writes.acked.withLock { $0.append(key) } } else { writes.failed.withLock { $0.append(key) } }
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
                let r = try MedLedgerBinary.run(["chaincode", "query", "--node", net.node(org), "--wallet", net.admin(org), "--channel", "records", "--chaincode", "kv", "--fn", "get", "--arg", key])
                #expect(r.status == 0 && r.stdout.contains("v"), "\(key) acknowledged but not on \(org): \(r.stdout)\(r.stderr)")
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
        #expect(infos.count == 3 && Set(infos.map(\.tip)).count == 1, "ledgers differ after the restart: \(infos)\n\(net.logs())")
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
        let status = try MedLedgerBinary.ok(["orderer", "status", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a")])
        #expect(status.contains("ordering raft") && status.contains("consenter 3") && status.contains("*"), "\(status)")
        // One consenter frozen (SIGSTOP) while writes go on: the other two order; thawed, it catches up.
        net.signal("hospital-c", SIGSTOP)
        for i in 0..<5 { #expect(net.put("while-frozen-\(i)", via: "hospital-a")?.status == 0) }
        net.signal("hospital-c", SIGCONT)
        var caughtUp = false
        let thawDeadline = Date().addingTimeInterval(20)
        while !caughtUp, Date() < thawDeadline {
            if let a = net.chainInfo("hospital-a"), let c = net.chainInfo("hospital-c"), a.tip == c.tip { caughtUp = true } else { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(caughtUp, "hospital-c did not catch up after SIGCONT\n\(net.logs())")
        #expect(net.put("before", via: "hospital-a")?.status == 0)
        let before = try #require(net.chainInfo("hospital-a"))
        net.kill9("hospital-b")
        net.kill9("hospital-c")
        let refused = try #require(net.put("without-quorum", via: "hospital-a"))
        #expect(refused.status != 0)
        let text = refused.stdout + refused.stderr
        print("raft without quorum: \(text)")
        #expect(text.contains("503") || text.contains("no raft leader") || text.contains("quorum"), "unclear refusal: \(text)")
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
}
