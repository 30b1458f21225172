import ArgumentParser

struct MedLedger: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledger",
        abstract: "MedLedger: a permissioned ledger for sharing medical records between hospitals.",
        subcommands: [LedgerCommand.self, BenchCommand.self])
}

MedLedger.main()

/// A failure while running a command (not a usage mistake): printed as "Error: …", exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
