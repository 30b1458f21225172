import ArgumentParser
import Foundation
import LedgerBench
import LedgerClient

/// `medledger bench operations`: what the operations endpoint costs. The kv load at one in-flight
/// level on the local solo network, alternately without and with metrics (the peer's operations
/// endpoint on, scraped every second as Prometheus would), `--repeat` times each; then the time of
/// one `/metrics` scrape of that peer holding `--channels` channels.
struct OperationsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operations",
        abstract:
            "The cost of metrics: bench load with the operations endpoint off and on (scraped every second), and the scrape time with 10 channels."
    )

    @Option(help: "Transactions per run.") var transactions = 10_000
    @Option(help: "In-flight level of the load.") var inFlight = 500
    @Option(name: .customLong("repeat"), help: "Runs with and without metrics each, alternating.") var repeats = 3
    @Option(help: "Channels the peer holds for the scrape timing.") var channels = 10
    @Option(help: "Scrapes timed.") var scrapes = 30
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        guard transactions > 0, inFlight > 0, (1...20).contains(repeats), (1...100).contains(channels),
            (1...1000).contains(scrapes)
        else {
            throw ValidationError(
                "--transactions and --in-flight positive, --repeat 1…20, --channels 1…100, --scrapes 1…1000")
        }
        let root = NSTemporaryDirectory() + "medledger-bench-operations-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }
        let load = try LoadBench.parse(["--transactions", "\(transactions)"])
        var rates: [Bool: [Double]] = [false: [], true: []]
        var scrapeMillis: [Double] = []
        for run in 0..<repeats {
            // Alternating which goes first spreads the machine's drift over both.
            for metrics in run % 2 == 0 ? [false, true] : [true, false] {
                let netRoot = root + "/run\(run)-\(metrics ? "metrics" : "plain")"
                try FileManager.default.createDirectory(atPath: netRoot, withIntermediateDirectories: true)
                say("run \(run + 1)/\(repeats), metrics \(metrics ? "on" : "off")")
                let net = try await LocalNetwork.start(in: netRoot, operations: metrics, log: say)
                defer { net.stop() }
                let admin = try Wallet.open(net.admin("hospital-a"))
                let gateway = try await Gateway.connect(wallet: admin, peer: net.peer, channel: "records")
                defer { gateway.close() }
                let client = try net.operationsAddress.map { try OperationsClient(address: $0, wallet: admin) }
                let scraper = client.map { c in
                    Task {
                        while !Task.isCancelled {
                            _ = try? await c.send(.GET, "/metrics")
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                }
                let rows = await load.measure(
                    net: net, gateway: gateway, pde: nil, readKeys: 0, levels: [inFlight], label: "", raft: false,
                    say: say)
                scraper?.cancel()
                _ = await scraper?.value
                if let rate = rows.first?.rate { rates[metrics]!.append(rate) }
                do {
                    if let client, run == repeats - 1 {
                        scrapeMillis = try await timeScrapes(net: net, client: client, say: say)
                    }
                } catch {
                    await client?.shutdown()  // an HTTP client must be shut down before it goes
                    throw error
                }
                await client?.shutdown()
            }
        }
        let off = Self.median(rates[false]!)
        let on = Self.median(rates[true]!)
        let rows = [
            BenchRow(
                operation: "kv, \(inFlight) in flight, metrics off (median of \(repeats))", count: transactions,
                seconds: Double(transactions) / off, rate: off, rateUnit: "tx/s"),
            BenchRow(
                operation: "kv, \(inFlight) in flight, metrics on, scraped every 1 s (median of \(repeats))",
                count: transactions, seconds: Double(transactions) / on, rate: on, rateUnit: "tx/s"),
            BenchRow(
                operation: "metrics on / off throughput", count: repeats, seconds: 0, rate: on / off * 100,
                rateUnit: "% of off", target: 97),
            BenchRow(
                operation: "/metrics scrape, \(channels) channels (p50 of \(scrapes))", count: scrapeMillis.count,
                seconds: scrapeMillis.reduce(0, +) / 1000,
                rate: scrapeMillis.isEmpty ? 0 : 1000 / Self.median(scrapeMillis), rateUnit: "scrapes/s",
                p50Micros: Self.median(scrapeMillis) * 1000, p99Micros: Self.percentile(scrapeMillis, 0.99) * 1000,
                p50TargetMicros: 50_000),
        ]
        let report = BenchReport(
            title:
                "medledger bench operations (solo network, mutual TLS, fsync per block; runs alternate metrics off and on)",
            environment: [
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)",
                "runs":
                    "each: off \(rates[false]!.map { String(format: "%.0f", $0) }.joined(separator: ", ")); on \(rates[true]!.map { String(format: "%.0f", $0) }.joined(separator: ", "))",
                "scrape": "HTTPS with an administrator's certificate, one kept-alive connection, after the load",
            ],
            rows: rows)
        print(json ? try report.json() : report.table())
    }

    /// Milliseconds of each of `scrapes` scrapes, once the peer holds `channels` channels.
    func timeScrapes(net: LocalNetwork, client: OperationsClient, say: (String) -> Void) async throws -> [Double] {
        say("adding channels up to \(channels), then \(scrapes) scrapes")
        try net.addChannels(upTo: channels)
        var millis: [Double] = []
        for _ in 0..<scrapes {
            let start = DispatchTime.now().uptimeNanoseconds
            let (status, body) = try await client.send(.GET, "/metrics")
            guard status == 200, channels == 1 || String(decoding: body, as: UTF8.self).contains("records-\(channels)")
            else {
                throw CLIError("scrape answered \(status) without channel records-\(channels)")
            }
            millis.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return millis
    }

    static func median(_ xs: [Double]) -> Double { percentile(xs, 0.5) }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }
}
