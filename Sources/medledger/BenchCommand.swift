import ArgumentParser
import Foundation
import LedgerBench

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print a table (build with -c release for meaningful figures).",
        subcommands: [
            Storage.self, LoadBench.self, PaperBench.self, FailoverBench.self, OperationsBench.self, FHIRBench.self,
        ])

    struct Storage: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ledger storage: fsync'd block commits, point reads, range scans, Merkle proofs.")

        @Flag(help: "Print the figures as JSON instead of a table.")
        var json = false
        @Option(help: "Blocks of 500 transactions to commit.")
        var blocks = 100
        @Option(help: "Point reads to time.")
        var reads = 200_000
        @Option(help: "Range scans of 100 keys to time.")
        var scans = 20_000
        @Option(help: "Data directory to benchmark in (default: a temporary directory, removed afterwards).")
        var data: String?

        func run() throws {
            guard blocks > 0, reads > 0, scans > 0 else {
                throw ValidationError("--blocks, --reads and --scans must be positive")
            }
            var p = StorageBenchmark.Parameters()
            p.blocks = blocks
            p.pointReads = reads
            p.rangeScans = scans
            p.dataDir = data
            let report = try StorageBenchmark(parameters: p) { step in
                FileHandle.standardError.write(Data("bench: \(step)…\n".utf8))
            }.run()
            print(json ? try report.json() : report.table())
        }
    }
}
