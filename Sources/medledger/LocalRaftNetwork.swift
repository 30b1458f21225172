import Foundation
import LedgerTransport

/// The raft variant of `LocalNetwork`: the SA's node (CA) and hospital-a, -b and -c, each running a
/// peer and a raft consenter on ports fixed at set-up, so that a killed node restarts where it was
/// (the raft addresses are in the channel configuration). Used by `bench load --orderers 3` and
/// `bench failover`.
extension LocalNetwork {
    static let raftHospitals = ["hospital-a", "hospital-b", "hospital-c"]

    /// `peersOnAll` false: only hospital-a runs a peer; -b and -c are consenters alone, so that the
    /// network differs from the solo one only in its ordering (what `bench load --orderers 3` compares).
    func setUpRaft(blockMaxTx: Int, peersOnAll: Bool = true) throws {
        let sa = root + "/sa"
        try cli([
            "ca", "init", "--data", sa, "--master-key-file", root + "/master.key", "--listen", "127.0.0.1:0",
            "--enroll-listen", "127.0.0.1:0",
        ])
        let saOut = try daemon(Self.executable, ["ca", "serve", "--data", sa], logFile: root + "/sa.log")
        guard let caPort = Self.port(in: saOut, after: "node sa-node"),
            let enrollPort = Self.port(in: saOut, after: "CA enrollment")
        else {
            throw CLIError("SA node did not report its ports")
        }
        let ca = "127.0.0.1:\(caPort)"
        let enroll = "127.0.0.1:\(enrollPort)"
        let free = LoopbackPorts.free(2 * Self.raftHospitals.count)
        var consenters = ""
        var organisations = ""
        for (i, org) in Self.raftHospitals.enumerated() {
            let node = "127.0.0.1:\(free[2 * i])"
            let raft = "127.0.0.1:\(free[2 * i + 1])"
            try cli([
                "org", "admit", "--ca", ca, "--wallet", sa + "/wallets/admin", "--org", org, "--node", "peer0", "--ip",
                "127.0.0.1",
                "--listen", node, "--raft-listen", raft, "--out", root + "/\(org)",
            ])
            try cli([
                "ca", "crl", "--ca", enroll, "--ca-cert", sa + "/ca-cert.pem", "--out",
                root + "/\(org)/nodes/peer0/crl.pem",
            ])
            let runsPeer = peersOnAll || i == 0
            if !runsPeer {
                let yamlPath = root + "/\(org)/nodes/peer0/node.yaml"
                try (try String(contentsOfFile: yamlPath, encoding: .utf8) + "peer: false\n").write(
                    toFile: yamlPath, atomically: true, encoding: .utf8)
            }
            try startNode(org, address: NodeAddress(node)!)
            consenters +=
                "    - { id: \(i + 1), org: \(org), raft_address: \"\(raft)\", endpoint: \"\(node)\", tls_certificate: \(org)/nodes/peer0/tls-cert.pem }\n"
            organisations += "  - { id: \(org), ca_root: sa/ca-cert.pem\(runsPeer ? ", peers: [\"\(node)\"]" : "") }\n"
        }
        peer = nodes["hospital-a"]!.address
        let yaml = """
            channel: records
            organizations:
              - { id: sa, ca_root: sa/ca-cert.pem }
            \(organisations)orderer:
              type: raft
              consenters:
            \(consenters)  raft: { election_timeout_ms: 600, heartbeat_ms: 60 }
            batch: { max_message_count: \(blockMaxTx), absolute_max_bytes: 10485760, preferred_max_bytes: 4194304, batch_timeout_ms: 0 }
            chaincodes:
              - { name: kv, endorsement_policy: ANY }

            """
        try yaml.write(toFile: root + "/channel.yaml", atomically: true, encoding: .utf8)
        try cli([
            "channel", "create", "--config", root + "/channel.yaml", "--wallet", sa + "/wallets/admin", "--out",
            root + "/records.block",
        ])
        for org in Self.raftHospitals {
            try cli([
                "channel", "join", "--node", nodes[org]!.address.description, "--wallet", admin(org), "--block",
                root + "/records.block", "--orderer-node",
            ])
        }
        for org in Self.raftHospitals where peersOnAll || org == Self.raftHospitals[0] {
            try cli([
                "channel", "join", "--node", nodes[org]!.address.description, "--wallet", admin(org), "--block",
                root + "/records.block",
            ])
        }
    }

    /// Starts (or restarts) `org`'s node of the raft network.
    func startNode(_ org: String, address: NodeAddress) throws {
        _ = try daemon(
            Self.daemon, ["--config", root + "/\(org)/nodes/peer0/node.yaml"],
            logFile: root + "/\(org)-\(processes.count).log")
        nodes[org] = (address, processes.last!)
    }

    /// SIGKILL `org`'s node and wait until it is gone.
    func kill(_ org: String) {
        guard let p = nodes[org]?.process, p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitForExit()
    }
}
