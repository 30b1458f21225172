import ArgumentParser
import Foundation
import LedgerClient
import LedgerProtos
import LedgerRPC
import LedgerTransport

/// `medledger orderer …`: the ordering service's consensus, for hospital operators.
struct OrdererCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orderer", abstract: "The ordering service: raft status and leadership.",
        subcommands: [Status.self, TransferLeadership.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A channel's ordering: for raft, the consenters, the leader, the term and each consenter's height (asked of each)."
        )
        @Option(help: "An orderer node, host:port.") var node: String
        @Option(help: "Wallet of a node or administrator of a channel organisation.") var wallet: String
        @Option(help: "Channel name.") var channel: String = "records"
        @Flag(help: "JSON output.") var json = false

        func run() async throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            var req = Medledger_OrdererStatusRequest()
            req.channel = channel
            let request = req
            let s = try await calling {
                try await NodeConnection.with(a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) { client in
                    try await Medledger_Orderer.Client(wrapping: client).status(request)
                }
            }
            // Every consenter's own view: its height and whom it follows (unreachable ones say so).
            var views: [UInt64: Result<Medledger_OrdererStatusResponse, any Error>] = [:]
            for c in s.consenters {
                if c.id == s.consenterID {
                    views[c.id] = .success(s)
                    continue
                }
                guard let address = NodeAddress(c.endpoint) else { continue }
                views[c.id] = await Result(catching: {
                    try await NodeConnection.with(address, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) {
                        client in
                        try await Medledger_Orderer.Client(wrapping: client).status(request)
                    }
                })
            }
            if json {
                var rows: [[String: Any]] = []
                for c in s.consenters {
                    var row: [String: Any] = [
                        "id": c.id, "org": c.org, "raft_address": c.raftAddress, "endpoint": c.endpoint,
                        "raft_role": c.raftRole,
                    ]
                    switch views[c.id] {
                    case .success(let v)?:
                        row["height"] = v.height
                        row["role"] = v.role
                        row["term"] = v.term
                    case .failure(let e)?: row["error"] = "\(e)"
                    case nil: break
                    }
                    rows.append(row)
                }
                let out: [String: Any] = [
                    "channel": s.channel, "type": s.type, "height": s.height, "leader": s.leader, "term": s.term,
                    "consenters": rows, "stopped_reason": s.stoppedReason,
                ]
                print(
                    String(
                        decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self
                    ))
                return
            }
            print(
                "channel \(s.channel)  ordering \(s.type)  height \(s.height)\(s.stoppedReason.isEmpty ? "" : "  STOPPED: \(s.stoppedReason)")"
            )
            guard s.type == "raft" else { return }
            print(
                "leader \(s.leader == 0 ? "none" : String(s.leader))  term \(s.term)  (as consenter \(s.consenterID) sees it: \(s.role), commit index \(s.commitIndex), applied \(s.appliedIndex))"
            )
            for c in s.consenters {
                let view: String
                switch views[c.id] {
                case .success(let v)?:
                    view =
                        "height \(v.height)  \(v.role)\(v.stoppedReason.isEmpty ? "" : "  stopped: \(v.stoppedReason)")"
                case .failure(let e)?: view = "unreachable: \(CallFailure.classify(e).message)"
                case nil: view = "bad endpoint"
                }
                print(
                    "  \(c.id == s.leader ? "*" : " ") consenter \(c.id)  \(c.org)  raft \(c.raftAddress)  orderer \(c.endpoint)  \(c.raftRole.isEmpty ? "not yet in raft" : c.raftRole)  \(view)"
                )
            }
        }
    }

    struct TransferLeadership: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "transfer-leadership",
            abstract:
                "Move raft leadership of a channel (asks the current leader; before maintenance or a certificate change)."
        )
        @Option(help: "An orderer node, host:port (any consenter: the leader is found).") var node: String
        @Option(help: "Wallet of an administrator of a channel organisation.") var wallet: String
        @Option(help: "Channel name.") var channel: String = "records"
        @Option(help: "The consenter to lead (default: the most up-to-date voter).") var to: UInt64 = 0

        func run() async throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            var sreq = Medledger_OrdererStatusRequest()
            sreq.channel = channel
            let statusRequest = sreq
            let s = try await calling {
                try await NodeConnection.with(a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) { client in
                    try await Medledger_Orderer.Client(wrapping: client).status(statusRequest)
                }
            }
            guard s.type == "raft" else { throw CLIError("channel \(channel) is ordered by \(s.type), not raft") }
            guard let leader = s.consenters.first(where: { $0.id == s.leader }),
                let leaderAddress = NodeAddress(leader.endpoint)
            else {
                throw CLIError("channel \(channel) has no raft leader at the moment; retry shortly")
            }
            // Already there: nothing to move (raft would refuse a transfer to the leader itself).
            if to == s.leader {
                print("raft leader of \(channel): consenter \(s.leader) (already)")
                return
            }
            var req = Medledger_TransferLeadershipRequest()
            req.channel = channel
            req.to = to
            let request = req
            let r = try await calling {
                try await NodeConnection.with(leaderAddress, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) {
                    client in
                    try await Medledger_Orderer.Client(wrapping: client).transferLeadership(request)
                }
            }
            if r.leader == 0 || r.leader == s.leader {
                throw CLIError(
                    "leadership of \(channel) did not move (still \(r.leader == 0 ? "no leader" : "consenter \(r.leader)")); retry"
                )
            }
            print("raft leader of \(channel): consenter \(r.leader) (was \(s.leader))")
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
