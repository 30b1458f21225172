import Foundation
import LedgerCrypto
import Logging
import Synchronization

/// Which levels are logged, in Fabric's logspec syntax: a default level, then `:`-separated
/// `component[,component]=level` overrides, e.g. `info:raft,orderer=debug:operations=warning`.
/// Levels: trace, debug, info, notice, warning (or warn), error, critical (or fatal, panic).
public struct LogSpec: Sendable, Equatable, CustomStringConvertible {
    public var defaultLevel: Logger.Level
    public var components: [String: Logger.Level]

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(defaultLevel: Logger.Level = .info, components: [String: Logger.Level] = [:]) {
        self.defaultLevel = defaultLevel
        self.components = components
    }

    public init(parsing text: String) throws {
        let spec = text.trimmingCharacters(in: .whitespaces)
        guard !spec.isEmpty, spec.utf8.count <= 1024 else {
            throw Invalid(description: "a logspec is 1-1024 characters, e.g. \"info:raft=debug\"")
        }
        var defaultLevel: Logger.Level?
        var components: [String: Logger.Level] = [:]
        for part in spec.split(separator: ":", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "=", omittingEmptySubsequences: false)
            switch pieces.count {
            case 1:
                guard defaultLevel == nil else {
                    throw Invalid(description: "logspec \(text.debugDescription): more than one default level")
                }
                defaultLevel = try Self.level(String(pieces[0]), in: text)
            case 2:
                let level = try Self.level(String(pieces[1]), in: text)
                for name in pieces[0].split(separator: ",", omittingEmptySubsequences: false) {
                    guard !name.isEmpty, name.count <= 64,
                        name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
                    else {
                        throw Invalid(
                            description:
                                "logspec \(text.debugDescription): \(String(name).debugDescription) is not a component name"
                        )
                    }
                    components[String(name)] = level
                }
            default:
                throw Invalid(
                    description:
                        "logspec \(text.debugDescription): \(String(part).debugDescription) is neither LEVEL nor COMPONENT=LEVEL"
                )
            }
        }
        guard components.count <= 64 else {
            throw Invalid(description: "logspec \(text.debugDescription): at most 64 components")
        }
        self.init(defaultLevel: defaultLevel ?? .info, components: components)
    }

    static let names: [String: Logger.Level] = [
        "trace": .trace, "debug": .debug, "info": .info, "notice": .notice, "warning": .warning, "warn": .warning,
        "error": .error, "critical": .critical, "fatal": .critical, "panic": .critical,
    ]

    static func level(_ name: String, in text: String) throws -> Logger.Level {
        guard let l = names[name.lowercased()] else {
            throw Invalid(
                description:
                    "logspec \(text.debugDescription): unknown level \(name.debugDescription) (levels: trace, debug, info, notice, warning, error, critical)"
            )
        }
        return l
    }

    public func level(for component: String) -> Logger.Level { components[component] ?? defaultLevel }

    /// Canonical text: the default level, then the overrides sorted by component.
    public var description: String {
        ([defaultLevel.rawValue] + components.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" })
            .joined(separator: ":")
    }
}

/// The node's levels, changed at run time (`PUT /logspec`) without a restart.
public final class LogLevels: Sendable {
    private let current: Mutex<LogSpec>

    public init(_ spec: LogSpec) { current = Mutex(spec) }

    public var spec: LogSpec {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    func level(for component: String) -> Logger.Level { current.withLock { $0.level(for: component) } }
}

/// swift-log handler writing one JSON object per line: `ts` (UTC, milliseconds), `level`,
/// `component` (the logger's label after "medledger."), `msg`, then the metadata. Callers put PIDs
/// and transaction ids in messages, never real identities or medical data.
public struct JSONLogHandler: LogHandler {
    public let component: String
    let levels: LogLevels
    let write: @Sendable ([UInt8]) -> Void
    public var metadata: Logger.Metadata = [:]

    public init(
        label: String, levels: LogLevels, write: @escaping @Sendable ([UInt8]) -> Void = JSONLogHandler.standardOutput
    ) {
        component = label.hasPrefix("medledger.") ? String(label.dropFirst("medledger.".count)) : label
        self.levels = levels
        self.write = write
    }

    /// The level comes from the node's logspec; setting it on one logger changes nothing.
    public var logLevel: Logger.Level {
        get { levels.level(for: component) }
        set {}
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line =
            "{\"ts\":\(Self.quoted(Self.timestamp(Date()))),\"level\":\(Self.quoted(event.level.rawValue)),\"component\":\(Self.quoted(component)),\"msg\":\(Self.quoted("\(event.message)"))"
        let all = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        for (key, value) in all.sorted(by: { $0.key < $1.key })
        where !["ts", "level", "component", "msg"].contains(key) {
            line += ",\(Self.quoted(key)):\(Self.quoted("\(value)"))"
        }
        write(Array((line + "}\n").utf8))
    }

    /// One write(2) per line, so lines from many threads never interleave.
    public static let standardOutput: @Sendable ([UInt8]) -> Void = { bytes in
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let ms = Int((date.timeIntervalSince1970 - Double(t)) * 1000)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, ms)
    }

    static func quoted(_ s: String) -> String { JSONText.quoted(s) }
}
