import Foundation
import LedgerTransport

/// A single-machine network of real processes, made with this CLI's own commands: the SA's node
/// (CA and solo orderer) and hospital-a's peer, on a channel `records` with `kv` (ANY) and
/// `medrecords`, plus an enrolled doctor, patient and (research-1's) researcher. Used by `bench load`
/// and `bench paper`. With `orderers: 3`, the raft network instead (LocalRaftNetwork.swift).
final class LocalNetwork: @unchecked Sendable {  // set up once, then only read (and `nodes` by one caller)
    let root: String
    var processes: [Process] = []
    var peer = NodeAddress(host: "127.0.0.1", port: 0)
    let log: (String) -> Void
    /// Raft network: each hospital's node, its address and its running process.
    var nodes: [String: (address: NodeAddress, process: Process)] = [:]
    /// The peer's operations endpoint (host:port), when started with `operations`.
    var operationsAddress: String?
    /// The peer's FHIR endpoint (host:port), when started with `fhir`.
    var fhirAddress: String?
    /// The `records` channel's configuration, for `addChannels`.
    var channelYAML = ""
    var ordererAddress = ""

    init(root: String, log: @escaping (String) -> Void) {
        self.root = root
        self.log = log
    }

    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
    static var daemon: String {
        URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("medledgerd").path
    }

    @discardableResult
    func cli(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.executable)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitForExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw CLIError("medledger \(args.joined(separator: " ")) failed:\n\(text)")
        }
        return text
    }

    /// Starts a long-running process and waits for "medledgerd: ready"; returns its output so far.
    func daemon(_ path: String, _ args: [String], logFile: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        p.standardOutput = h
        p.standardError = h
        try p.run()
        processes.append(p)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            if text.contains("medledgerd: ready") { return text }
            guard p.isRunning else { throw CLIError("\(path) exited:\n\(text)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CLIError("\(path) did not become ready; see \(logFile)")
    }

    static func port(in text: String, after label: String) -> Int? {
        for line in text.split(separator: "\n") where line.contains(label) && line.contains("listening on") {
            if let hp = line.split(separator: " ").first(where: { $0.contains(":") && $0.first?.isNumber == true }),
                let p = Int(hp.split(separator: ":").last ?? "")
            {
                return p
            }
        }
        return nil
    }

    /// `operations`, `fhir`: the peer serves its operations or FHIR endpoint (solo only).
    static func start(
        in root: String, blockMaxTx: Int = 1000, orderers: Int = 1, peersOnAll: Bool = true, operations: Bool = false,
        fhir: Bool = false, log: @escaping (String) -> Void
    ) async throws -> LocalNetwork {
        let n = LocalNetwork(root: root, log: log)
        do {
            try orderers == 3
                ? n.setUpRaft(blockMaxTx: blockMaxTx, peersOnAll: peersOnAll)
                : n.setUp(blockMaxTx: blockMaxTx, operations: operations, fhir: fhir)
        } catch {
            n.stop()
            throw error
        }
        return n
    }

    private func setUp(blockMaxTx: Int, operations: Bool, fhir: Bool) throws {
        let sa = root + "/sa"
        try cli([
            "ca", "init", "--data", sa, "--master-key-file", root + "/master.key", "--listen", "127.0.0.1:0",
            "--enroll-listen", "127.0.0.1:0",
        ])
        let saOut = try daemon(Self.executable, ["ca", "serve", "--data", sa], logFile: root + "/sa.log")
        guard let ordererPort = Self.port(in: saOut, after: "node sa-node"),
            let enrollPort = Self.port(in: saOut, after: "CA enrollment")
        else { throw CLIError("SA node did not report its ports") }
        let ca = "127.0.0.1:\(ordererPort)"
        let enroll = "127.0.0.1:\(enrollPort)"
        try cli([
            "org", "admit", "--ca", ca, "--wallet", sa + "/wallets/admin", "--org", "hospital-a", "--node", "peer0",
            "--ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--out", root + "/hospital-a",
        ])
        let peerDir = root + "/hospital-a/nodes/peer0"
        try cli(["ca", "crl", "--ca", enroll, "--ca-cert", sa + "/ca-cert.pem", "--out", peerDir + "/crl.pem"])
        if operations {
            let yaml = try String(contentsOfFile: peerDir + "/node.yaml", encoding: .utf8)
            try (yaml + "\noperations: { listen: 127.0.0.1:0 }\n").write(
                toFile: peerDir + "/node.yaml", atomically: true, encoding: .utf8)
        }
        if fhir {
            // Tokens name the endpoint's address, so it needs a fixed port: one free now.
            guard let port = NodeAddress.freeLoopbackPort() else {
                throw CLIError("cannot find a free port for the FHIR endpoint")
            }
            let address = "127.0.0.1:\(port)"
            let yaml = try String(contentsOfFile: peerDir + "/node.yaml", encoding: .utf8)
            try (yaml + "\nfhir: { listen: \(address), channel: records }\n").write(
                toFile: peerDir + "/node.yaml", atomically: true, encoding: .utf8)
            fhirAddress = address
        }
        let peerOut = try daemon(Self.daemon, ["--config", peerDir + "/node.yaml"], logFile: root + "/peer.log")
        guard let peerPort = Self.port(in: peerOut, after: "node peer0") else {
            throw CLIError("peer did not report its port")
        }
        if operations {
            // The endpoint starts beside the gRPC server and may report after "ready".
            let deadline = Date().addingTimeInterval(15)
            while operationsAddress == nil && Date() < deadline {
                let text = (try? String(contentsOfFile: root + "/peer.log", encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").first(where: {
                    $0.contains("operations endpoint on https://")
                }),
                    let url = line.split(separator: " ").first(where: { $0.hasPrefix("https://") })
                {
                    operationsAddress = String(url.dropFirst("https://".count))
                } else {
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            guard operationsAddress != nil else {
                throw CLIError("peer did not report its operations endpoint; see \(root)/peer.log")
            }
        }
        peer = NodeAddress(host: "127.0.0.1", port: peerPort)
        try cli([
            "org", "admit", "--ca", ca, "--wallet", sa + "/wallets/admin", "--org", "research-1", "--type",
            "third-party", "--out", root + "/research-1",
        ])
        for (id, role, registrar) in [
            ("doctor", "doctor", "hospital-a"), ("patient", "patient", "hospital-a"),
            ("researcher", "third-party", "research-1"),
        ] {
            let out = try cli([
                "user", "register", "--ca", ca, "--wallet", root + "/\(registrar)/admin", "--id", id, "--role", role,
                "--rid", "bench \(role)",
            ])
            guard
                let secret = out.split(separator: "\n").first(where: { $0.contains("secret") })?.split(separator: " ")
                    .last.map(String.init)
            else { throw CLIError("no secret in: \(out)") }
            try cli([
                "user", "enroll", "--ca", enroll, "--ca-cert", sa + "/ca-cert.pem", "--id", id, "--secret", secret,
                "--wallet", root + "/\(id)",
            ])
        }
        let yaml = """
            channel: records
            organizations:
              - { id: sa, ca_root: sa/ca-cert.pem }
              - { id: hospital-a, ca_root: sa/ca-cert.pem, peers: [127.0.0.1:\(peerPort)] }
              - { id: research-1, ca_root: sa/ca-cert.pem }
            orderer: { org: sa, endpoints: [127.0.0.1:\(ordererPort)] }
            batch: { max_message_count: \(blockMaxTx), absolute_max_bytes: 10485760, preferred_max_bytes: 4194304, batch_timeout_ms: 0 }
            chaincodes:
              - { name: kv, endorsement_policy: ANY }
              - { name: medrecords, endorsement_policy: "OR('hospital-a.node')" }

            """
        try yaml.write(toFile: root + "/channel.yaml", atomically: true, encoding: .utf8)
        channelYAML = yaml
        ordererAddress = ca
        try cli([
            "channel", "create", "--config", root + "/channel.yaml", "--wallet", sa + "/wallets/admin", "--out",
            root + "/records.block",
        ])
        try cli([
            "channel", "join", "--node", ca, "--wallet", sa + "/wallets/admin", "--block", root + "/records.block",
            "--orderer-node",
        ])
        try cli([
            "channel", "join", "--node", peer.description, "--wallet", root + "/hospital-a/admin", "--block",
            root + "/records.block",
        ])
    }

    /// Creates channels `records-2` … `records-<total>` like `records` and joins the orderer and the
    /// peer to each, so that the node holds `total` channels.
    func addChannels(upTo total: Int) throws {
        guard total > 1 else { return }
        for i in 2...total {
            let name = "records-\(i)"
            let file = root + "/\(name).yaml"
            try channelYAML.replacingOccurrences(of: "channel: records\n", with: "channel: \(name)\n").write(
                toFile: file, atomically: true, encoding: .utf8)
            try cli([
                "channel", "create", "--config", file, "--wallet", root + "/sa/wallets/admin", "--out",
                root + "/\(name).block",
            ])
            try cli([
                "channel", "join", "--node", ordererAddress, "--wallet", root + "/sa/wallets/admin", "--block",
                root + "/\(name).block", "--orderer-node",
            ])
            try cli([
                "channel", "join", "--node", peer.description, "--wallet", root + "/hospital-a/admin", "--block",
                root + "/\(name).block",
            ])
        }
    }

    func submitterWallet(_ workload: String) -> String {
        workload == "pde" ? root + "/doctor" : root + "/hospital-a/admin"
    }

    func admin(_ org: String) -> String { root + "/\(org)/admin" }

    /// SIGTERM to each process, and SIGKILL to one still running after `grace` seconds.
    func stop(grace: Double = 15) {
        for p in processes where p.isRunning {
            p.terminate()
            if !p.waitForExit(within: grace) {
                Glibc.kill(p.processIdentifier, SIGKILL)
                p.waitForExit()
            }
        }
    }

    /// User + system CPU seconds of the network's processes, from /proc.
    func cpuSeconds() -> Double {
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        return processes.reduce(0) { sum, p in
            guard let stat = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return sum }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 3; utime and stime are fields 14 and 15.
            guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return sum }
            return sum + (u + s) / tick
        }
    }

    /// Context switches (voluntary and involuntary) of each thread of the network's processes, from
    /// /proc. Compare two of them with `switches(since:)`: a thread that ended in between takes its
    /// count with it, and one that started counts from zero.
    func threadSwitches() -> [String: Double] {
        var all = [String: Double]()
        for p in processes {
            let dir = "/proc/\(p.processIdentifier)/task"
            for thread in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                guard let status = try? String(contentsOfFile: "\(dir)/\(thread)/status", encoding: .utf8) else {
                    continue
                }
                // "voluntary_ctxt_switches:\tN" and "nonvoluntary_ctxt_switches:\tN"
                all["\(p.processIdentifier)/\(thread)"] = status.split(separator: "\n").reduce(0) { s, line in
                    guard line.contains("ctxt_switches:"),
                        let n = Double(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "")
                    else { return s }
                    return s + n
                }
            }
        }
        return all
    }

    /// The switches of threads alive now since `before` (per thread, so a thread that ended in between
    /// cannot make the sum smaller).
    static func switches(_ now: [String: Double], since before: [String: Double]) -> Double {
        now.reduce(0) { $0 + max(0, $1.value - (before[$1.key] ?? 0)) }
    }

    /// This process's context switches, over all its threads (ended ones included).
    static func selfContextSwitches() -> Double {
        var r = rusage()
        getrusage(RUSAGE_SELF.rawValue, &r)
        return Double(r.ru_nvcsw + r.ru_nivcsw)
    }

    static func selfCPUSeconds() -> Double {
        var r = rusage()
        getrusage(RUSAGE_SELF.rawValue, &r)
        return Double(r.ru_utime.tv_sec) + Double(r.ru_utime.tv_usec) / 1e6 + Double(r.ru_stime.tv_sec) + Double(
            r.ru_stime.tv_usec) / 1e6
    }
}

extension Process {
    /// Waits for the process to exit without holding a core: Foundation's `waitUntilExit` spins its
    /// run loop on Linux when called off the main thread, which on a small machine takes a core from
    /// the very processes being waited for (a node draining its calls at SIGTERM takes seconds).
    /// Returns false if the process still runs after `seconds` (without a limit: never).
    @discardableResult
    func waitForExit(within seconds: Double = .infinity) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(5_000) }
        return !isRunning
    }
}
