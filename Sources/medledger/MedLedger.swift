import ArgumentParser

@main
struct MedLedger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledger",
        abstract: "MedLedger: a permissioned ledger for sharing medical records between hospitals.",
        subcommands: [
            CACommand.self, OrgCommand.self, UserCommand.self, CertCommand.self, NodeCommand.self,
            AuditCommand.self, ChannelCommand.self, ChaincodeCommand.self, RecordCommand.self, ObjectCommand.self,
            KeysCommand.self, AppointmentCommand.self, ShareCommand.self, UsageCommand.self, DeviceCommand.self,
            BlockCommand.self, TxCommand.self,
            LedgerCommand.self, BenchCommand.self, OrdererCommand.self, IncidentCommand.self, FHIRCommand.self,
            SimCommand.self,
        ])
}

/// A failure while running a command (not a usage mistake): printed as "Error: …", exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
