import ArgumentParser
import Foundation
import LedgerBench
import LedgerClient
import LedgerProtos
import LedgerRPC
import LedgerTransport
import Synchronization

/// `medledger bench failover`: the three-hospital raft network under load; kills the raft leader's
/// node (SIGKILL) N times and measures how long until a new leader is known and until the first
/// transaction submitted after the kill commits. The killed node restarts and catches up between rounds.
struct FailoverBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract:
            "Raft: kill the leader under load N times; time to a new leader and to the first commit after each kill.")

    @Option(help: "How many times to kill the leader.") var kills = 5
    @Option(help: "Transactions in flight in the background load.") var inFlight = 32
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Working directory (default: a temporary one, removed afterwards).") var dir: String?

    func run() async throws {
        guard (1...50).contains(kills), (0...500).contains(inFlight) else {
            throw ValidationError("--kills must be 1…50 and --in-flight 0…500")
        }
        let root = dir ?? NSTemporaryDirectory() + "medledger-failover-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }
        say("starting the raft network in \(root)")
        let net = try await LocalNetwork.start(in: root, orderers: 3, log: say)
        defer { net.stop() }

        var toLeader: [Double] = []
        var toCommit: [Double] = []
        for round in 1...kills {
            guard let leader = await Self.waitForLeader(net, among: LocalNetwork.raftHospitals, timeout: 30) else {
                throw CLIError("no raft leader before round \(round)")
            }
            let survivors = LocalNetwork.raftHospitals.filter { $0 != leader }
            // The load and the probe go through a surviving hospital's peer.
            let entry = net.nodes[survivors[0]]!.address
            let load = try await Gateway.connect(
                wallet: try Wallet.open(net.admin(survivors[0])), peer: entry, channel: "records")
            let stopLoad = StopFlag()
            let background = Task.detached { [inFlight] in
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<inFlight {
                        group.addTask {
                            var i = 0
                            while !stopLoad.value.load(ordering: .relaxed) {
                                _ = try? await load.submit(
                                    chaincode: "kv", function: "put", args: ["load-\(round)-\(worker)-\(i)", "v"])
                                i += 1
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .seconds(1))
            let killedAt = ContinuousClock.now
            net.kill(leader)
            // Time to first commit: a fresh transaction submitted right after the kill, retried until it commits.
            let probe = Task.detached { () -> Double? in
                var i = 0
                while ContinuousClock.now - killedAt < .seconds(30) {
                    if let r = try? await load.submit(
                        chaincode: "kv", function: "put", args: ["probe-\(round)-\(i)", "v"], commitTimeoutMs: 10_000),
                        r.isValid
                    {
                        return Self.seconds(ContinuousClock.now - killedAt)
                    }
                    i += 1
                }
                return nil
            }
            guard let next = await Self.waitForLeader(net, among: survivors, timeout: 30) else {
                throw CLIError("no new leader within 30 s of killing \(leader)")
            }
            let leaderSeconds = Self.seconds(ContinuousClock.now - killedAt)
            guard let commitSeconds = await probe.value else {
                throw CLIError("nothing committed within 30 s of killing \(leader)")
            }
            stopLoad.value.store(true, ordering: .relaxed)
            await background.value
            load.close()
            toLeader.append(leaderSeconds)
            toCommit.append(commitSeconds)
            say(
                String(
                    format: "round %d: killed %@ → %@ leads after %.2f s; first commit after %.2f s", round, leader,
                    next, leaderSeconds, commitSeconds))
            try net.startNode(leader, address: net.nodes[leader]!.address)
        }
        func row(_ name: String, _ values: [Double], target: Double) -> BenchRow {
            let sorted = values.sorted()
            return BenchRow(
                operation: name, count: values.count, seconds: values.reduce(0, +), rate: percentile(sorted, 0.5) ?? 0,
                rateUnit: "s (p50)",
                p50Micros: (percentile(sorted, 0.5) ?? 0) * 1e6, p99Micros: (sorted.last ?? 0) * 1e6,
                p50TargetMicros: target * 1e6)
        }
        let report = BenchReport(
            title:
                "medledger bench failover (raft, three hospitals' consenters, election timeout 600 ms; SIGKILL of the leader's node under load; p99 column = max)",
            environment: [
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)", "kills": "\(kills)",
                "background load": "\(inFlight) in flight (kv)",
            ],
            rows: [
                row("kill → new leader known", toLeader, target: 1.5),
                row("kill → first commit of a new transaction", toCommit, target: 1.5),
            ])
        print(json ? try report.json() : report.table())
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// The leader among `orgs` as their consenters report it (over gRPC, every 20 ms).
    static func waitForLeader(_ net: LocalNetwork, among orgs: [String], timeout: Double) async -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var request = Medledger_OrdererStatusRequest()
        request.channel = "records"
        let req = request
        while ContinuousClock.now < deadline {
            for org in orgs {
                guard let w = try? Wallet.open(net.admin(org)), let address = net.nodes[org]?.address else { continue }
                // No second try at a node that is down: that would add seconds to the time measured.
                let r = try? await NodeConnection.with(
                    address, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, retryDelays: []
                ) { c in
                    try await Medledger_Orderer.Client(wrapping: c).status(req)
                }
                if let r, r.leader > 0, r.role != "unavailable" {
                    let l = LocalNetwork.raftHospitals[Int(r.leader) - 1]
                    if orgs.contains(l) { return l }
                }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
