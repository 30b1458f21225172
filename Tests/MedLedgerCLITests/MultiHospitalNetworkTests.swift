import Foundation
import Testing

/// Two hospitals on one channel, every node a separate process with its own RocksDB and identity: the
/// SA's node orders (solo), hospital-a's and hospital-b's nodes endorse and commit. A `kv` transaction
/// needs both hospitals' endorsements; `medrecords` needs either. Hospital-b's node is stopped while
/// transactions commit, restarted, and must catch up from the orderer to the same block and commit
/// hashes as hospital-a's.
@Suite(.serialized) struct MultiHospitalNetworkTests {
    struct Network {
        let root: String
        let sa: DaemonProcess
        var peers: [String: DaemonProcess]
        var ports: [String: Int]
        let ordererPort: Int
        let enrollPort: Int
        func admin(_ org: String) -> String { org == "sa" ? root + "/sa/wallets/admin" : root + "/\(org)/admin" }
        func node(_ org: String) -> String { "127.0.0.1:\(ports[org]!)" }
    }

    /// `extra`: YAML lines added to the node's configuration (once).
    static func startPeer(_ root: String, _ org: String, port: Int, extra: String = "") throws -> (DaemonProcess, Int) {
        let dir = root + "/\(org)/nodes/peer0"
        var yaml = try String(contentsOfFile: dir + "/node.yaml", encoding: .utf8)
        yaml = yaml.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasPrefix("listen:") ? "listen: 127.0.0.1:\(port)" : String($0)
        }.joined(separator: "\n")
        if !extra.isEmpty && !yaml.contains(extra) { yaml += "\n" + extra + "\n" }
        try yaml.write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        let d = try DaemonProcess(executable: MedLedgerBinary.daemonURL, arguments: ["--config", dir + "/node.yaml"])
        try d.waitFor("medledgerd: ready")
        return (d, try d.port(after: "node peer0"))
    }

    /// `extra`: YAML lines for a hospital's node configuration.
    static func startNetwork(_ root: String, extra: [String: String] = [:]) throws -> Network {
        let sa = root + "/sa"
        try MedLedgerBinary.ok([
            "ca", "init", "--data", sa, "--master-key-file", root + "/master.key", "--listen", "127.0.0.1:0",
            "--enroll-listen", "127.0.0.1:0",
        ])
        let saNode = try DaemonProcess(executable: MedLedgerBinary.url, arguments: ["ca", "serve", "--data", sa])
        try saNode.waitFor("medledgerd: ready")
        let ordererPort = try saNode.port(after: "node sa-node")
        let enrollPort = try saNode.port(after: "CA enrollment")
        var peers = [String: DaemonProcess]()
        var ports = [String: Int]()
        for org in ["hospital-a", "hospital-b"] {
            try MedLedgerBinary.ok([
                "org", "admit", "--ca", "127.0.0.1:\(ordererPort)", "--wallet", sa + "/wallets/admin", "--org", org,
                "--node", "peer0", "--ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--out", root + "/\(org)",
            ])
            try MedLedgerBinary.ok([
                "ca", "crl", "--ca", "127.0.0.1:\(enrollPort)", "--ca-cert", sa + "/ca-cert.pem", "--out",
                root + "/\(org)/nodes/peer0/crl.pem",
            ])
            let (d, p) = try startPeer(root, org, port: 0, extra: extra[org] ?? "")
            peers[org] = d
            ports[org] = p
        }
        let yaml = """
            channel: records
            organizations:
              - { id: sa, ca_root: sa/ca-cert.pem }
              - { id: hospital-a, ca_root: sa/ca-cert.pem, peers: [127.0.0.1:\(ports["hospital-a"]!)] }
              - { id: hospital-b, ca_root: sa/ca-cert.pem, peers: [127.0.0.1:\(ports["hospital-b"]!)] }
            orderer: { org: sa, endpoints: [127.0.0.1:\(ordererPort)] }
            batch: { max_message_count: 100, batch_timeout_ms: 0 }
            chaincodes:
              - { name: kv, endorsement_policy: "AND('hospital-a.node', 'hospital-b.node')" }
              - { name: medrecords, endorsement_policy: "OR('hospital-a.node', 'hospital-b.node')" }

            """
        try yaml.write(toFile: root + "/channel.yaml", atomically: true, encoding: .utf8)
        try MedLedgerBinary.ok([
            "channel", "create", "--config", root + "/channel.yaml", "--wallet", sa + "/wallets/admin", "--out",
            root + "/records.block",
        ])
        try MedLedgerBinary.ok([
            "channel", "join", "--node", "127.0.0.1:\(ordererPort)", "--wallet", sa + "/wallets/admin", "--block",
            root + "/records.block", "--orderer-node",
        ])
        for org in ["hospital-a", "hospital-b"] {
            try MedLedgerBinary.ok([
                "channel", "join", "--node", "127.0.0.1:\(ports[org]!)", "--wallet", root + "/\(org)/admin", "--block",
                root + "/records.block",
            ])
        }
        return Network(
            root: root, sa: saNode, peers: peers, ports: ports, ordererPort: ordererPort, enrollPort: enrollPort)
    }

    static func chainInfo(_ net: Network, _ org: String) throws -> (height: Int, tip: String, commit: String) {
        let out = try MedLedgerBinary.ok([
            "node", "channel-info", "--node", net.node(org), "--wallet", net.admin(org), "--channel", "records",
        ])
        func field(_ name: String) -> String {
            out.split(separator: "\n").first { $0.contains(name) }.map { String($0.split(separator: " ").last ?? "") }
                ?? ""
        }
        return (Int(field("height")) ?? -1, field("tip"), field("commit"))
    }

    @Test func twoHospitalsEndorseCommitAndCatchUp() async throws {
        let scratch = ScratchDir("two-hospitals")
        var net = try Self.startNetwork(scratch.path)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let a = ["--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"), "--channel", "records"]
        let b = ["--node", net.node("hospital-b"), "--wallet", net.admin("hospital-b"), "--channel", "records"]

        // Both organisations must endorse a kv write: the gateway collects hospital-b's endorsement.
        let put = try MedLedgerBinary.ok(
            ["chaincode", "invoke"] + a + ["--chaincode", "kv", "--fn", "put", "--arg", "patient-count", "--arg", "41"])
        #expect(put.contains("VALID") || put.contains(": valid"))
        #expect(
            try MedLedgerBinary.ok(
                ["chaincode", "query"] + b + ["--chaincode", "kv", "--fn", "get", "--arg", "patient-count"]
            ).contains("41"))

        // Hospital-b goes down; hospital-a alone can still satisfy medrecords' OR policy, not kv's AND.
        let bPort = net.ports["hospital-b"]!
        #expect(net.peers["hospital-b"]!.stop() == 0)
        for i in 0..<3 {
            let out = try MedLedgerBinary.ok(
                ["chaincode", "invoke"] + a + [
                    "--chaincode", "medrecords", "--fn", "createTreatment", "--arg",
                    #"{"patient_pid":"patient-\#(i)","doctor_pid":"doctor-\#(i)"}"#,
                ])
            #expect(out.contains("valid"))
        }
        let refused = try MedLedgerBinary.run(
            ["chaincode", "invoke"] + a + ["--chaincode", "kv", "--fn", "put", "--arg", "k", "--arg", "v"])
        #expect(refused.status != 0)
        #expect((refused.stdout + refused.stderr).contains("endorsement"))

        // Restarted on its old port, hospital-b catches up from the orderer.
        let (restarted, _) = try Self.startPeer(net.root, "hospital-b", port: bPort)
        net.peers["hospital-b"] = restarted
        var infoA = try Self.chainInfo(net, "hospital-a")
        var infoB = try Self.chainInfo(net, "hospital-b")
        for _ in 0..<100 where infoB.height < infoA.height {
            try await Task.sleep(for: .milliseconds(100))
            infoB = try Self.chainInfo(net, "hospital-b")
        }
        infoA = try Self.chainInfo(net, "hospital-a")
        #expect(infoA.height == 5)  // genesis, the kv put, 3 treatments; the refused kv write never reached the orderer
        #expect(infoA.height == infoB.height)
        #expect(infoA.tip == infoB.tip)
        #expect(infoA.commit == infoB.commit)
        #expect(!infoA.commit.isEmpty)

        // After catching up it endorses again: the AND policy is satisfiable.
        let again = try MedLedgerBinary.ok(
            ["chaincode", "invoke"] + b + ["--chaincode", "kv", "--fn", "put", "--arg", "patient-count", "--arg", "42"])
        #expect(again.contains("valid"))
        #expect(
            try MedLedgerBinary.ok(
                ["chaincode", "query"] + a + ["--chaincode", "kv", "--fn", "get", "--arg", "patient-count"]
            ).contains("42"))
        let blocks = try MedLedgerBinary.ok(["block", "get", "latest"] + a)
        #expect(blocks.contains("\"number\""))
    }
}
