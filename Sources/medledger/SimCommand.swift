import ArgumentParser
import Foundation
import LedgerSimulation

/// `medledger sim`: the whole network in one process and one thread from one seed, with faults.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract:
            "Deterministic simulation: orderer, peers and clients from one seed, with faults; checks the ledger's invariants.",
        discussion: """
            Runs --steps events with the chosen faults, then heals (partitions end, crashed nodes restart, no new \
            operations) and requires convergence. Invariants: no fork; identical validation codes and commit hashes \
            across peers at every height; nothing the orderer acknowledged is lost; every transaction acknowledged or \
            seen committed is on every peer alike; no counter update lost; no transaction of the doctor the SA \
            revoked is valid after the revocation block; no usage record (D_UE) is valid before its consent's grant \
            or after its withdrawal; no record plaintext or patient name on any disk. The workload: kv puts, counter \
            adds, treatments, P_DE records, patient-signed consents, D_UE records and withdrawals. The same seed \
            gives the same trace hash. A violation prints the \
            seed and the shortest command that reproduces it, and exits 1.
            """)

    @Option(help: "The seed (with --seeds, the first of a range).") var seed: UInt64
    @Option(help: "How many consecutive seeds to run, from --seed.") var seeds: Int = 1
    @Option(help: "Events with faults on, before healing.") var steps: Int = 4_000
    @Option(help: "all, none, or a list of drop,dup,delay,partition,crash,disk,clock.") var faults: String = "all"
    @Option(help: "Plant a bug to see it caught: \(SimBug.allCases.map(\.rawValue).joined(separator: ", ")).") var bug:
        [String] = []
    @Option(help: "Hospital peers (1–5); kv writes need a majority's endorsements.") var peers: Int = 3
    @Option(help: "Clients writing kv keys.") var clients: Int = 8
    @Option(help: "Distinct keys written (few keys, more MVCC conflicts).") var keys: Int = 16
    @Flag(help: "One line per seed only.") var quiet = false

    func run() throws {
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard steps >= 0 && steps <= 10_000_000 else { throw ValidationError("--steps must be 0…10000000") }
        var options = SimulationOptions(seed: seed)
        options.steps = steps
        do { options.faults = try SimFaults(parsing: faults) } catch { throw ValidationError("\(error)") }
        for b in bug {
            guard let parsed = SimBug(rawValue: b) else {
                throw ValidationError(
                    "unknown --bug \(b.debugDescription); known: \(SimBug.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            options.bugs.insert(parsed)
        }
        options.peers = peers
        options.clients = clients
        options.keys = keys
        var failed: [SimulationResult] = []
        for s in 0..<UInt64(seeds) {
            options.seed = seed &+ s
            let started = ContinuousClock.now
            let r: SimulationResult
            do { r = try Simulation.run(options) } catch let e as SimOptionError {
                throw ValidationError(e.description)
            }
            let took = (ContinuousClock.now - started).components
            let seconds = Double(took.seconds) + Double(took.attoseconds) / 1e18
            print(summary(r, seconds: seconds))
            if let v = r.violation {
                failed.append(r)
                print("  VIOLATION at \(v)")
                print("  reproduce: \(r.reproduce)")
            }
        }
        if !failed.isEmpty {
            throw CLIError(
                "\(failed.count) of \(seeds) seeds broke an invariant: \(failed.map { "\($0.options.seed)" }.joined(separator: ", "))"
            )
        }
    }

    func summary(_ r: SimulationResult, seconds: Double) -> String {
        let s = r.stats
        let line =
            "seed \(r.options.seed): \(r.violation == nil ? "ok" : "FAILED"), \(r.events) events, trace \(r.traceHash.prefix(16)), verdicts \(r.verdictHash.prefix(16)), \(String(format: "%.1f", seconds)) s"
        if quiet { return line }
        return line + """

              operations \(s.operations): acknowledged \(s.acknowledged), committed valid \(s.committedValid), invalid \(s.committedInvalid) (treatments \(s.treatments), P_DE \(s.indexRecords), consents \(s.consents), D_UE \(s.usages), consents withdrawn \(s.withdrawals), D_UE invalid after a withdrawal \(s.usagesRacingWithdrawal), doctors revoked \(s.revocations), their operations refused after \(s.refusedAfterRevocation)), abandoned \(s.abandoned) (endorsement timed out \(s.endorsementTimeouts), endorsers disagreed \(s.endorserDisagreements), refused \(s.refusals)); blocks \(s.blocks)
              faults: dropped \(s.dropped), duplicated \(s.duplicated), delayed \(s.delayed), partitions \(s.partitions), crashes \(s.crashes), disk failures \(s.diskFailures), clock jumps \(s.clockJumps)
            """
    }
}
