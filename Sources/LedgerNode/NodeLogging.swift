import Foundation
import LedgerOperations
import Logging

/// The daemon's logs: swift-log, one JSON object per line on standard output (`JSONLogHandler`), at
/// the levels of node.yaml's `log_spec` (Fabric's syntax), changed at run time with `PUT /logspec`.
public enum NodeLogging {
    /// Sets up swift-log for this process (once) and returns the levels and the line closure the
    /// node's parts log through: a line naming a WARNING is logged as a warning, an ERROR as an
    /// error, the rest as info, under the component "node".
    public static func start(spec: String?) throws -> (levels: LogLevels, line: @Sendable (String) -> Void) {
        let parsed: LogSpec
        do { parsed = try LogSpec(parsing: spec ?? "info") } catch { throw NodeServer.StartupError(description: "log_spec: \(error)") }
        let levels = LogLevels(parsed)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, levels: levels) }
        let logger = Logger(label: "medledger.node")
        return (levels, { line in logger.log(level: level(of: line), "\(line)") })
    }

    static func level(of line: String) -> Logger.Level {
        if line.contains("ERROR") || line.contains("FATAL") { return .error }
        if line.contains("WARNING") { return .warning }
        return .info
    }
}
