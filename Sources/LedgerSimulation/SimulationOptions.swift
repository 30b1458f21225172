import Foundation

/// The faults a run may inject. Each is drawn from the seed, step by step.
public struct SimFaults: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// A message is lost.
    public static let drop = SimFaults(rawValue: 1 << 0)
    /// A message arrives twice.
    public static let duplicate = SimFaults(rawValue: 1 << 1)
    /// A message is late (20–300 ms), so later ones overtake it.
    public static let delay = SimFaults(rawValue: 1 << 2)
    /// A node is cut off from everyone for a while, then the partition heals.
    public static let partition = SimFaults(rawValue: 1 << 3)
    /// The orderer or a peer loses power: what it did not fsync is gone; it restarts later.
    public static let crash = SimFaults(rawValue: 1 << 4)
    /// A node's next disk write fails; the node stops and restarts later.
    public static let disk = SimFaults(rawValue: 1 << 5)
    /// A node's clock jumps forward or back by up to two minutes.
    public static let clock = SimFaults(rawValue: 1 << 6)

    public static let all: SimFaults = [.drop, .duplicate, .delay, .partition, .crash, .disk, .clock]
    static let names: [(String, SimFaults)] = [
        ("drop", .drop), ("dup", .duplicate), ("delay", .delay), ("partition", .partition), ("crash", .crash),
        ("disk", .disk), ("clock", .clock),
    ]

    /// `all`, `none`, or a comma-separated list of drop, dup, delay, partition, crash, disk, clock.
    public init(parsing text: String) throws {
        switch text {
        case "all": self = .all
        case "none", "": self = []
        default:
            var set: SimFaults = []
            for word in text.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                guard let f = Self.names.first(where: { $0.0 == word })?.1 else {
                    throw SimOptionError(
                        description:
                            "unknown fault \(word.debugDescription); use all, none or a list of \(Self.names.map(\.0).joined(separator: ", "))"
                    )
                }
                set.insert(f)
            }
            self = set
        }
    }

    public var description: String {
        if self == .all { return "all" }
        let on = Self.names.filter { contains($0.1) }.map(\.0)
        return on.isEmpty ? "none" : on.joined(separator: ",")
    }
}

/// A bug the simulator can be asked to plant, to show that its invariants catch it.
public enum SimBug: String, CaseIterable, Sendable {
    /// The orderer's disk ignores fsync: it acknowledges envelopes in blocks a crash then loses.
    case ordererSkipsFsync = "orderer-skips-fsync"
    /// Peers do not fsync their commits: a crash loses blocks they reported committed, which they
    /// pull again from the orderer — harmless by design, so the invariants must hold (a control that
    /// the referee does not cry wolf).
    case peerSkipsFsync = "peer-skips-fsync"
    /// The doctor's app writes the record's plaintext into the P_DE's URL.
    case doctorLeaksPlaintext = "doctor-leaks-plaintext"
}

public struct SimOptionError: Error, CustomStringConvertible {
    public var description: String
}

public struct SimulationOptions: Sendable {
    public var seed: UInt64
    /// Events processed with faults on; then the run heals and must converge.
    public var steps = 4_000
    public var faults: SimFaults = .all
    public var bugs: Set<SimBug> = []
    public var peers = 3
    public var clients = 8
    /// Distinct keys the clients write: few keys, many MVCC conflicts.
    public var keys = 16
    public var blockMaxTx = 10
    /// Events the healing phase may take before the run is declared stuck.
    public var healSteps = 60_000

    public init(seed: UInt64) { self.seed = seed }

    /// The command that replays this run (with `steps` events before healing).
    public func command(steps: Int? = nil) -> String {
        var c =
            "medledger sim --seed \(seed) --steps \(steps ?? self.steps) --faults \(faults) --peers \(peers) --clients \(clients) --keys \(keys)"
        for bug in SimBug.allCases where bugs.contains(bug) { c += " --bug \(bug.rawValue)" }
        return c
    }
}

/// Counts of what a run did.
public struct SimStats: Sendable {
    public var operations = 0
    public var acknowledged = 0
    public var committedValid = 0
    public var committedInvalid = 0
    public var abandoned = 0
    /// medrecords: treatments created and P_DE index records filed (committed valid).
    public var treatments = 0
    public var indexRecords = 0
    /// The sharing half (committed valid): consents granted, D_UE usage records, consents withdrawn.
    public var consents = 0
    public var usages = 0
    public var withdrawals = 0
    /// Usage records endorsed while their consent stood but ordered after its withdrawal (invalid).
    public var usagesRacingWithdrawal = 0
    /// Doctors revoked (the configuration block committed), and the revoked doctor's operations
    /// refused afterwards.
    public var revocations = 0
    public var refusedAfterRevocation = 0
    /// Why operations were abandoned: no endorsement in time, endorsers at different states,
    /// refused by a peer, the chaincode or the orderer.
    public var endorsementTimeouts = 0
    public var endorserDisagreements = 0
    public var refusals = 0
    public var blocks: UInt64 = 0
    public var dropped = 0
    public var duplicated = 0
    public var delayed = 0
    public var partitions = 0
    public var crashes = 0
    public var diskFailures = 0
    public var clockJumps = 0

    public init() {}
}

public struct SimulationResult: Sendable {
    public var options: SimulationOptions
    /// Events processed, the healing phase included.
    public var events: Int
    /// SHA-256 over the trace: every event, in order, as seed-determined text.
    public var traceHash: String
    /// SHA-256 over the peers' agreed verdicts (block number and validation codes).
    public var verdictHash: String
    public var violation: SimViolation?
    public var stats: SimStats
    /// The shortest command that reproduces the violation (fewest steps before healing).
    public var reproduce: String
}
