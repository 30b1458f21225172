import LedgerSimulation
import Testing

/// The seeds CI runs (a few minutes in a debug build); `scripts/sim.sh` runs random ones for hours.
let ciSeeds: [UInt64] = Array(1...24)
let ciSteps = 6_000

@Suite struct SimulationTests {
    func options(_ seed: UInt64, steps: Int = ciSteps) -> SimulationOptions {
        var o = SimulationOptions(seed: seed)
        o.steps = steps
        return o
    }

    /// One seed, one run: the trace (every event, fault and verdict, in order) hashes the same twice;
    /// another seed gives another trace.
    @Test func sameSeedSameTrace() throws {
        let a = try Simulation.run(options(7, steps: 1_500))
        let b = try Simulation.run(options(7, steps: 1_500))
        let c = try Simulation.run(options(8, steps: 1_500))
        #expect(a.violation == nil && b.violation == nil)
        #expect(a.traceHash == b.traceHash)
        #expect(a.verdictHash == b.verdictHash)
        #expect(a.events == b.events)
        #expect(c.traceHash != a.traceHash)
    }

    /// Every CI seed, all faults on: the invariants hold, the runs did real work and the faults
    /// really happened (a quiet simulator proves nothing).
    @Test func invariantsHoldForTheCISeeds() throws {
        var total = SimStats()
        for seed in ciSeeds {
            let r = try Simulation.run(options(seed))
            #expect(r.violation == nil, "seed \(seed): \(r.violation.map(\.description) ?? "") — \(r.reproduce)")
            total.committedValid += r.stats.committedValid
            total.committedInvalid += r.stats.committedInvalid
            total.crashes += r.stats.crashes
            total.diskFailures += r.stats.diskFailures
            total.partitions += r.stats.partitions
            total.dropped += r.stats.dropped
            total.duplicated += r.stats.duplicated
            total.clockJumps += r.stats.clockJumps
            total.treatments += r.stats.treatments
            total.indexRecords += r.stats.indexRecords
            total.revocations += r.stats.revocations
            total.consents += r.stats.consents
            total.usages += r.stats.usages
            total.withdrawals += r.stats.withdrawals
            total.refusedAfterRevocation += r.stats.refusedAfterRevocation
        }
        #expect(total.committedValid > 100)
        #expect(
            total.treatments > 0 && total.indexRecords > 0,
            "the paper's flow did not run: \(total.treatments) treatments, \(total.indexRecords) P_DE")
        #expect(
            total.consents > 0 && total.usages > 0 && total.withdrawals > 0,
            "the sharing half did not run: \(total.consents) consents, \(total.usages) D_UE, \(total.withdrawals) withdrawals"
        )
        #expect(
            total.committedInvalid > 0, "no MVCC conflict in any seed: the key space is too large to test validation")
        // The SA revoked a doctor in (almost) every seed, and the revoked doctors were refused afterwards.
        #expect(total.revocations >= 20, "\(total.revocations) revocations")
        #expect(total.refusedAfterRevocation > 0)
        #expect(total.crashes > 0 && total.diskFailures > 0 && total.partitions > 0)
        #expect(total.dropped > 0 && total.duplicated > 0 && total.clockJumps > 0)
    }

    /// The planted bug (the orderer acknowledges blocks its disk did not keep) is found within the CI
    /// seeds, and the report names a reproducing command.
    @Test func findsAnOrdererThatSkipsFsync() throws {
        var found: [SimulationResult] = []
        for seed in ciSeeds {
            var o = options(seed)
            o.bugs = [.ordererSkipsFsync]
            let r = try Simulation.run(o)
            if r.violation != nil {
                found.append(r)
                break
            }
        }
        #expect(!found.isEmpty, "no CI seed caught an orderer that skips fsync")
        if let first = found.first, let v = first.violation {
            #expect(v.message.contains("acknowledged data lost") || v.message.contains("fork"), "\(v)")
            #expect(
                first.reproduce.contains("--seed \(first.options.seed)")
                    && first.reproduce.contains("--bug orderer-skips-fsync"))
            // The shortest command reproduces the same violation at the same step.
            var again = first.options
            again.steps = v.step
            let replay = try Simulation.run(again)
            #expect(replay.violation?.step == v.step && replay.violation?.message == v.message)
        }
    }

    /// A doctor's app that writes the record's plaintext into the P_DE is caught by the end-of-run
    /// search of every disk.
    @Test func findsPlaintextThatReachedTheLedger() throws {
        var found: SimViolation?
        for seed in ciSeeds where found == nil {
            var o = options(seed)
            o.bugs = [.doctorLeaksPlaintext]
            found = try Simulation.run(o).violation
        }
        let v = try #require(found, "no CI seed caught plaintext written to the ledger")
        #expect(v.message.contains("plaintext or a real name reached the disk"), "\(v)")
    }

    /// A control: peers that do not fsync lose commits in crashes but pull them again; nothing a
    /// client was told is contradicted, so the referee must stay quiet.
    @Test func peersThatRepullAfterACrashBreakNothing() throws {
        for seed in ciSeeds.prefix(4) {
            var o = options(seed)
            o.bugs = [.peerSkipsFsync]
            let r = try Simulation.run(o)
            #expect(r.violation == nil, "seed \(seed): \(r.violation.map(\.description) ?? "")")
        }
    }

    @Test func faultListsParse() throws {
        #expect(try SimFaults(parsing: "all") == .all)
        #expect(try SimFaults(parsing: "none") == [])
        #expect(try SimFaults(parsing: "drop,crash") == [.drop, .crash])
        #expect(throws: SimOptionError.self) { try SimFaults(parsing: "drop,meteor") }
        #expect(SimFaults([.drop, .crash]).description == "drop,crash")
    }

    @Test func seededRandomIsReproducible() {
        var a = SimRandom(seed: 42)
        var b = SimRandom(seed: 42)
        var c = SimRandom(seed: 43)
        let xs = (0..<8).map { _ in a.next() }
        #expect(xs == (0..<8).map { _ in b.next() })
        #expect(xs != (0..<8).map { _ in c.next() })
    }
}
