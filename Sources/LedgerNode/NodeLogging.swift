import Foundation
import LedgerOperations
import Logging

/// The daemon's logs: swift-log, one JSON object per line on standard output (`JSONLogHandler`), at
/// the levels of node.yaml's `log_spec` (Fabric's syntax), changed at run time with `PUT /logspec`.
public enum NodeLogging {
    /// What `start` gives the node: the levels `PUT /logspec` changes, and the line closures its parts
    /// log through, one per component (the `component` field, and what a logspec override names).
    public struct Setup: Sendable {
        public let levels: LogLevels
        /// The closure of one component ("peer", "orderer", "raft", "audit", …).
        public let component: @Sendable (String) -> @Sendable (String) -> Void
        /// The general "node" component.
        public var line: @Sendable (String) -> Void { component("node") }
    }

    /// Sets up swift-log for this process (once). A line naming a WARNING is logged as a warning, an
    /// ERROR as an error, the rest as info.
    public static func start(spec: String?) throws -> Setup {
        let parsed: LogSpec
        do { parsed = try LogSpec(parsing: spec ?? "info") } catch {
            throw NodeServer.StartupError(description: "log_spec: \(error)")
        }
        let levels = LogLevels(parsed)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, levels: levels) }
        return Setup(levels: levels) { component in
            let logger = Logger(label: "medledger." + component)
            return { line in logger.log(level: level(of: line), "\(line)") }
        }
    }

    static func level(of line: String) -> Logger.Level {
        if line.contains("ERROR") || line.contains("FATAL") || line.contains("STOPPED") { return .error }
        if line.contains("WARNING") { return .warning }
        return .info
    }
}
