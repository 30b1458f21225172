import LedgerConfig
import LedgerHTTPConnections
import LedgerOperations
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's open-file limit. Debian's and systemd's default soft limit is 1,024 descriptors, fewer
/// than the FHIR endpoint alone may hold open by default, while the hard limit is far higher; the node
/// raises its soft limit to the hard one at start, as Go's runtime does for every program.
enum FileDescriptorLimit {
    /// Descriptors kept for everything but the HTTPS endpoints' connections: the ledger's RocksDB
    /// files, the object store, gRPC connections to and from other nodes, logs.
    static let reserved = 1_024

    /// Raises the soft limit to the hard one; both as they are afterwards (nil: unknown).
    static func raise() -> (soft: Int, hard: Int)? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        // Unlimited (all bits set) clamps to Int.max.
        return (Int(clamping: limit.rlim_cur), Int(clamping: limit.rlim_max))
    }

    /// A warning when the soft limit cannot hold the endpoints' connections and the reserve.
    static func warning(
        _ limit: (soft: Int, hard: Int)?, operations: ConnectionLimits?, fhir: ConnectionLimits?
    ) -> String? {
        guard let limit else { return nil }
        let endpoints = (operations?.total ?? 0) + (fhir?.total ?? 0)
        guard limit.soft < endpoints + reserved else { return nil }
        let raised = limit.soft == limit.hard ? "its hard limit" : "it could not be raised to the hard \(limit.hard)"
        return
            "medledgerd: WARNING: the open-file limit is \(limit.soft) (\(raised)), below the \(endpoints) connections the HTTPS endpoints may hold plus \(reserved) for the ledger and other nodes; raise it (systemd LimitNOFILE=, docker --ulimit nofile=) or lower connections_max in node.yaml"
    }
}

/// At most one log line a minute about an endpoint's refused connections, so that an operator sees
/// them without metrics, and a flood of them does not flood the log. A line counts the refusals since
/// the last one; it never names the source (an address can point at a person). Refusals counted
/// during the quiet minute are logged when it ends, even if no refusal follows.
final class RefusalLog: Sendable {
    static let interval = Duration.seconds(60)
    /// Runs `body` once after `delay` (a task that sleeps, or a test's clock).
    typealias Schedule = @Sendable (_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> Void

    private struct State {
        var counts: [SourceConnections.Refusal: Int] = [:]
        var lastLine: ContinuousClock.Instant?
        /// A line is due at the end of the quiet minute (refusals were counted during it).
        var lineDue = false
    }

    let listener: String
    let limits: ConnectionLimits
    private let log: @Sendable (String) -> Void
    private let now: @Sendable () -> ContinuousClock.Instant
    private let schedule: Schedule
    private let state = Mutex(State())

    init(
        listener: String, limits: ConnectionLimits, log: @escaping @Sendable (String) -> Void,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        schedule: @escaping Schedule = { delay, body in
            Task {
                try? await Task.sleep(for: delay)
                body()
            }
        }
    ) {
        (self.listener, self.limits, self.log, self.now, self.schedule) = (listener, limits, log, now, schedule)
    }

    func note(_ refusal: SourceConnections.Refusal) {
        let (line, dueIn) = state.withLock { s -> (String?, Duration?) in
            s.counts[refusal, default: 0] += 1
            let t = now()
            if let last = s.lastLine, t - last < Self.interval {
                guard !s.lineDue else { return (nil, nil) }
                s.lineDue = true
                return (nil, Self.interval - (t - last))
            }
            return (makeLine(&s, at: t), nil)
        }
        if let line { log(line) }
        if let dueIn { schedule(dueIn) { [weak self] in self?.quietMinuteEnded() } }
    }

    /// Logs what was counted during the quiet minute, unless a refusal after it already did.
    private func quietMinuteEnded() {
        let line = state.withLock { s -> String? in
            guard s.lineDue else { return nil }
            return makeLine(&s, at: now())
        }
        if let line { log(line) }
    }

    /// The line for what was counted, which starts a new quiet minute.
    private func makeLine(_ s: inout State, at t: ContinuousClock.Instant) -> String {
        s.lastLine = t
        s.lineDue = false
        defer { s.counts = [:] }
        let counted = SourceConnections.Refusal.allCases.compactMap { r in s.counts[r].map { "\($0) \(r.rawValue)" } }
        return
            "medledgerd: WARNING: the \(listener) endpoint closed connections unserved (\(counted.joined(separator: ", ")) since the last such line): source_full means one address or IPv6 /64 already held \(limits.perSource) (\(listener).connections_per_source_max)"
    }
}

extension NodeServer {
    /// node.yaml's connection limits for the endpoints it runs (nil: not run); a bad pair stops the
    /// node at start, named.
    func connectionLimits() throws -> (operations: ConnectionLimits?, fhir: ConnectionLimits?) {
        let operations = try config.operations.map {
            try Self.connectionLimits(
                $0.connectionsMax, $0.connectionsPerSourceMax, over: .operations, section: "operations")
        }
        let fhir = try config.fhir.map {
            try Self.connectionLimits($0.connectionsMax, $0.connectionsPerSourceMax, over: .fhir, section: "fhir")
        }
        return (operations, fhir)
    }

    /// An endpoint's connection limits from node.yaml.
    static func connectionLimits(
        _ total: Int?, _ perSource: Int?, over defaults: ConnectionLimits, section: String
    ) throws -> ConnectionLimits {
        do {
            return try .configured(total: total, perSource: perSource, over: defaults, section: section)
        } catch { throw StartupError(description: "\(error)") }
    }

    /// Who hears of an endpoint's connections: its metrics (with an operations endpoint) and the log.
    func connectionEvents(
        listener: String, limits: ConnectionLimits, metrics: NodeMetrics?
    ) -> SourceConnections.Events {
        let refusals = RefusalLog(listener: listener, limits: limits, log: self.log(as: listener))
        let logged = SourceConnections.Events(refused: { refusals.note($0) })
        return metrics.map { $0.connectionEvents(listener: listener).and(logged) } ?? logged
    }
}
