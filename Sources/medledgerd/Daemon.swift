import ArgumentParser
import Foundation
import LedgerConfig
import LedgerNode

/// The node daemon: `medledgerd --config node.yaml`. Stops cleanly on SIGINT/SIGTERM.
@main
struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledgerd",
        abstract: "MedLedger node: the mutual-TLS node API (and, on the system administrator's node, the CA).")

    @Option(name: .long, help: "Node configuration file (YAML).")
    var config: String

    func run() async throws {
        let cfg = try NodeConfig.load(path: config)
        let logging = try NodeLogging.start(spec: cfg.logSpec)
        try await NodeServer(config: cfg, log: logging.line, logLevels: logging.levels, logAs: logging.component).run()
    }
}
