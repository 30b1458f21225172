import Foundation
import LedgerHTTPConnections
import Prometheus
import Synchronization

/// The node's metrics, in one Prometheus registry. Hot-path metrics (calls) are recorded as they
/// happen through cached handles; state (heights, CRL age, roles) is sampled when `/metrics` is
/// scraped, so it costs nothing between scrapes. Every name is registered once with fixed label
/// names (the registry traps on a name reused with other labels or help).
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// How a call ended, as the EMR exchange guide counts them.
    public enum Result: String, Sendable, CaseIterable {
        case ok
        case unauthenticated = "401"
        case forbidden = "403"
        case notFound = "404"
        case clientError = "4xx"
        case serverError = "5xx"
    }

    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10),
    ]

    private struct CallHandles: Sendable {
        let results: [Result: Counter]
        let latency: DurationHistogram
    }
    private let calls = Mutex<[String: CallHandles]>([:])
    /// Methods are the node's own gRPC methods; the bound stops a caller from growing the registry.
    static let maxMethods = 256

    public init(version: String) {
        registry.makeGauge(
            descriptor: Self.named("medledger_build_info", "Always 1; the version label says which build runs."),
            labels: [("version", version)]
        ).set(to: 1)
    }

    /// One finished gRPC call.
    public func recordCall(method: String, result: Result, duration: Duration) {
        let handles = Self.cached(method, in: calls, max: Self.maxMethods) {
            callHandles(
                label: ("method", method),
                counter: (
                    "grpc_server_requests_total",
                    "gRPC calls the node answered, by method and result (ok, 401, 403, 404, 4xx, 5xx)."
                ),
                histogram: (
                    "grpc_server_request_duration_seconds",
                    "Time from a call's arrival to its answer (for a stream, to its end)."
                ))
        }
        guard let handles else { return }
        handles.results[result]?.increment()
        handles.latency.record(duration)
    }

    private let httpCalls = Mutex<[String: CallHandles]>([:])

    /// A counter per result and a latency histogram, labelled with one (name, value).
    private func callHandles(
        label: (String, String), counter: (String, String), histogram: (String, String)
    ) -> CallHandles {
        CallHandles(
            results: Dictionary(
                uniqueKeysWithValues: Result.allCases.map { r in
                    (
                        r,
                        registry.makeCounter(
                            descriptor: Self.named(counter.0, counter.1), labels: [label, ("result", r.rawValue)])
                    )
                }),
            latency: registry.makeDurationHistogram(
                descriptor: Self.named(histogram.0, histogram.1), labels: [label], buckets: Self.latencyBuckets))
    }

    /// One answered request of the FHIR endpoint, by route pattern (never by path: paths carry ids).
    public func recordFHIR(route: String, status: Int, duration: Duration) {
        let handles = Self.cached(route, in: httpCalls, max: Self.maxMethods) {
            callHandles(
                label: ("route", route),
                counter: (
                    "fhir_requests_total",
                    "FHIR and SMART requests the node answered, by route and result (ok, 401, 403, 404, 4xx, 5xx)."
                ),
                histogram: (
                    "fhir_request_duration_seconds", "Time from a FHIR or SMART request's arrival to its answer."
                ))
        }
        guard let handles else { return }
        let result: Result =
            switch status {
            case 200..<400: .ok
            case 401: .unauthenticated
            case 403: .forbidden
            case 404: .notFound
            case 400..<500: .clientError
            default: .serverError
            }
        handles.results[result]?.increment()
        handles.latency.record(duration)
    }

    /// An HTTPS listener's connection metrics: the connections it closed unserved, by why (each
    /// registered at 0 now, so that the first refusals show as an increase), and those open now.
    /// Listeners and reasons are fixed names, so the series stay few.
    public func connectionEvents(listener: String) -> SourceConnections.Events {
        let refused = Dictionary(
            uniqueKeysWithValues: SourceConnections.Refusal.allCases.map { reason in
                (
                    reason,
                    counter(
                        "http_connections_refused_total",
                        help:
                            "Connections an HTTPS endpoint (operations, fhir) closed before their TLS handshake, by why: source_full (that address or IPv6 /64 had its connections_per_source_max open) or no_address (gone before it was set up).",
                        labels: [("listener", listener), ("reason", reason.rawValue)])
                )
            })
        let open = gauge(
            "http_connections_open",
            help:
                "Connections an HTTPS endpoint (operations, fhir) holds open now; at connections_max it accepts no more.",
            labels: [("listener", listener)])
        return SourceConnections.Events(
            refused: { refused[$0]?.increment() }, openChanged: { open.set(to: Double($0)) })
    }

    private final class ChannelHandles: Sendable {
        let commit: DurationHistogram
        let transactions = Mutex<[String: Counter]>([:])
        init(commit: DurationHistogram) { self.commit = commit }
    }
    private let channels = Mutex<[String: ChannelHandles]>([:])
    /// A node joins few channels; the bound keeps a misbehaving caller from growing the registry.
    static let maxChannels = 256

    /// One block the peer validated and committed: its time, and each transaction's code.
    public func recordCommit(channel: String, codes: [String], duration: Duration) {
        let handles = Self.cached(channel, in: channels, max: Self.maxChannels) {
            ChannelHandles(
                commit: registry.makeDurationHistogram(
                    descriptor: Self.named(
                        "ledger_block_commit_duration_seconds", "Time to validate and commit one block on the peer."),
                    labels: [("channel", channel)], buckets: Self.latencyBuckets))
        }
        guard let handles else { return }
        handles.commit.record(duration)
        var counts: [String: Int] = [:]
        for code in codes { counts[code, default: 0] += 1 }
        for (code, n) in counts {
            // Codes are the validator's enum: few, so no bound beyond it.
            let counter = Self.cached(code, in: handles.transactions, max: .max) {
                registry.makeCounter(
                    descriptor: Self.named(
                        "ledger_transactions_total",
                        "Transactions the peer committed, by validation code (VALID or why not)."),
                    labels: [("channel", channel), ("code", code)])
            }
            counter?.increment(by: Int64(n))
        }
    }

    static let batchSizeBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

    /// Blocks the orderer cut on `channel` since the last scrape: their sizes, and why each was cut
    /// (`BlockCutter.CutReason`'s names). The registry returns the same collectors for the same
    /// labels, and channels are few (an orderer joins them by administrator action).
    public func recordCuts(channel: String, _ cuts: [(reason: String, transactions: Int)]) {
        guard !cuts.isEmpty else { return }
        let sizes = registry.makeValueHistogram(
            descriptor: Self.named("orderer_batch_size", "Transactions in each block the orderer cut."),
            labels: [("channel", channel)],
            buckets: Self.batchSizeBuckets)
        var byReason: [String: Int64] = [:]
        for cut in cuts {
            sizes.record(Double(cut.transactions))
            byReason[cut.reason, default: 0] += 1
        }
        for (reason, n) in byReason {
            counter(
                "orderer_blocks_cut_total",
                help: "Blocks the orderer cut, by why (count, size, timeout, config, oversized).",
                labels: [("channel", channel), ("reason", reason)]
            )
            .increment(by: n)
        }
    }

    /// The handle cached under `key`, made (registering its metrics) on first use; nil once `max`
    /// keys exist, so that a label's values stay bounded.
    private static func cached<V: Sendable>(
        _ key: String, in map: borrowing Mutex<[String: V]>, max: Int, make: () -> V
    ) -> V? {
        map.withLock { m in
            if let v = m[key] { return v }
            guard m.count < max else { return nil }
            let v = make()
            m[key] = v
            return v
        }
    }

    /// A gauge sampled at scrape time (see `Sampler`).
    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: Self.named(name, help), labels: labels)
    }

    /// A counter for rare events (alerts, suspensions); the registry returns the same one for the
    /// same name and labels.
    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: Self.named(name, help), labels: labels)
    }

    /// A full metric name (the registry's unit suffix is part of it here).
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Prometheus text format (version 0.0.4).
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
