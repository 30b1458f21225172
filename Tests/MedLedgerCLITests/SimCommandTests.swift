import Foundation
import Testing

/// `medledger sim` as a user runs it: two processes, one seed, one trace; a planted bug fails the
/// run with the seed and the command that reproduces it; bad options are refused plainly.
@Suite struct SimCommandTests {
    @Test func sameSeedSameTraceAcrossProcesses() throws {
        let a = try MedLedgerBinary.run(["sim", "--seed", "5", "--steps", "1500", "--quiet"])
        let b = try MedLedgerBinary.run(["sim", "--seed", "5", "--steps", "1500", "--quiet"])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr)\(b.stderr)")
        #expect(a.stdout.contains("seed 5: ok"))
        let trace = { (s: String) in s.split(separator: ",").first { $0.contains("trace") } }
        #expect(trace(a.stdout) != nil && trace(a.stdout) == trace(b.stdout))
    }

    @Test func aPlantedBugFailsWithItsReproducer() throws {
        let r = try MedLedgerBinary.run(["sim", "--seed", "10", "--steps", "3000", "--bug", "orderer-skips-fsync"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("VIOLATION at step"))
        let line = try #require(r.stdout.split(separator: "\n").first { $0.contains("reproduce:") })
        let command = line.split(separator: ":", maxSplits: 1)[1].split(separator: " ").map(String.init)
        #expect(command.prefix(2) == ["medledger", "sim"])
        // The printed command, run as printed, fails the same way.
        let again = try MedLedgerBinary.run(Array(command.dropFirst()))
        #expect(
            again.status == 1
                && again.stdout.contains(
                    String(r.stdout.split(separator: "\n").first { $0.contains("VIOLATION") } ?? ""))
        )
    }

    @Test func badOptionsAreRefused() throws {
        let r = try MedLedgerBinary.run(["sim", "--seed", "1", "--faults", "drop,meteor"])
        #expect(r.status != 0 && r.stderr.contains("unknown fault \"meteor\""))
        let b = try MedLedgerBinary.run(["sim", "--seed", "1", "--bug", "nope"])
        #expect(b.status != 0 && b.stderr.contains("unknown --bug"))
        let p = try MedLedgerBinary.run(["sim", "--seed", "1", "--peers", "9"])
        #expect(p.status != 0 && p.stderr.contains("--peers must be 1 to 5"))
    }
}
