import Foundation
import Glibc
import LedgerTransport
import Testing

/// The operations endpoint of a running node, checked with tools no one here wrote: Python's `ssl`
/// client for the access rules, and a real Prometheus server (Debian's `prometheus`) scraping it over
/// mutual TLS with an administrator's certificate.
@Suite(.serialized) struct OperationsTests {
    /// GET over HTTPS with Python's standard library: (status, body). `identity`: a wallet directory
    /// whose TLS certificate and key are presented.
    static func get(_ url: String, ca: String, identity: String?) throws -> (Int, String) {
        try request("GET", url, body: nil, ca: ca, identity: identity)
    }

    /// Any method, with an optional body (JSON).
    static func request(
        _ method: String, _ url: String, body: String?, ca: String, identity: String?
    ) throws -> (Int, String) {
        let script = """
            import ssl, sys, urllib.request, urllib.error
            method, url, ca, ident, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
            ctx = ssl.create_default_context(cafile=ca)
            if ident:
                ctx.load_cert_chain(ident + "/tls-cert.pem", ident + "/tls-key.pem")
            req = urllib.request.Request(url, method=method, data=body.encode() if body else None, headers={"Content-Type": "application/json"})
            try:
                r = urllib.request.urlopen(req, context=ctx, timeout=10)
                print(r.status); sys.stdout.write(r.read().decode())
            except urllib.error.HTTPError as e:
                print(e.code); sys.stdout.write(e.read().decode())
            """
        let r = try MedLedgerBinary.runTool(
            "/usr/bin/env", ["python3", "-c", script, method, url, ca, identity ?? "", body ?? ""])
        let lines = r.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        guard let code = lines.first.flatMap({ Int($0) }) else {
            throw Failure(message: "python: \(r.stdout)\(r.stderr)")
        }
        return (code, lines.count > 1 ? String(lines[1]) : "")
    }

    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    @Test(.timeLimit(.minutes(5))) func aRunningNodeIsScrapedByPrometheus() async throws {
        let scratch = ScratchDir("operations")
        let net = try RaftNetwork(root: scratch.path, operations: true)
        defer { net.stopAll() }
        let leader = try #require(await net.waitForLeader(among: net.orgs))
        #expect(net.put("scraped", via: "hospital-a")?.status == 0)
        let port = try #require(Self.operationsPort(net.nodes["hospital-a"]!.text))
        let base = "https://127.0.0.1:\(port)"
        let ca = net.root + "/sa/ca-cert.pem"

        // node.yaml's connections_per_source_max (4 in RaftNetwork): a fifth connection from this
        // address is closed unserved, and counted.
        let (held, closed) = try await SourceLimitTests.openAndSeeWhichClose(port: port, count: 5, seconds: 20)
        held.forEach { close($0) }
        #expect(closed.count == 1, "of five connections from one address, these were closed: \(closed.sorted())")
        for _ in 0..<50 where (try? Self.get(base + "/healthz", ca: ca, identity: nil).0) != 200 {
            try await Task.sleep(for: .milliseconds(100))  // until the server has seen the four close
        }

        // Open: health and version; the rest needs hospital-a's administrators (or nodes).
        let health = try Self.get(base + "/healthz", ca: ca, identity: nil)
        #expect(health.0 == 200 && health.1.contains("\"status\":\"OK\""), "\(health)")
        #expect(try Self.get(base + "/version", ca: ca, identity: nil).1.contains("version"))
        #expect(try Self.get(base + "/metrics", ca: ca, identity: nil).0 == 401)
        #expect(try Self.get(base + "/metrics", ca: ca, identity: net.admin("hospital-b")).0 == 403)
        let scrape = try Self.get(base + "/metrics", ca: ca, identity: net.admin("hospital-a"))
        #expect(scrape.0 == 200)
        for name in [
            "grpc_server_requests_total", "grpc_server_request_duration_seconds_bucket",
            "ledger_height{channel=\"records\"}", "ledger_transactions_total{channel=\"records\",code=\"valid\"}",
            "ledger_block_commit_duration_seconds_bucket", "orderer_height", "consensus_raft_term", "crl_age_seconds",
            "medledger_build_info",
            // Registered at start, so a scrape shows 0 before any corrupt object is found.
            "object_store_corrupt_total 0",
            // The fifth connection above.
            "http_connections_refused_total{listener=\"operations\",reason=\"source_full\"} 1\n",
            "http_connections_open{listener=\"operations\"}",
        ] {
            #expect(scrape.1.contains(name), "no \(name) in:\n\(scrape.1.prefix(3000))")
        }
        // The leader cut the block of that put: its size and why (adaptive batching: the writer was idle).
        let leaderPort = try #require(Self.operationsPort(net.nodes[leader]!.text))
        let leaderScrape = try Self.get("https://127.0.0.1:\(leaderPort)/metrics", ca: ca, identity: net.admin(leader))
            .1
        for name in [
            "orderer_batch_size_bucket{channel=\"records\"",
            "orderer_blocks_cut_total{channel=\"records\",reason=\"timeout\"}",
            "orderer_queue_depth{channel=\"records\"} 0",
        ] {
            #expect(leaderScrape.contains(name), "no \(name) on the leader \(leader):\n\(leaderScrape.prefix(4000))")
        }

        // Log levels at run time (Fabric's /logspec): read by the organisation, changed by its administrators.
        let admin = net.admin("hospital-a")
        #expect(try Self.get(base + "/logspec", ca: ca, identity: admin).1.contains("\"spec\":\"info\""))
        #expect(
            try Self.request("PUT", base + "/logspec", body: #"{"spec":"info:node=shout"}"#, ca: ca, identity: admin).0
                == 400)
        #expect(
            try Self.request(
                "PUT", base + "/logspec", body: #"{"spec":"debug:node=warning"}"#, ca: ca,
                identity: net.admin("hospital-b")
            ).0 == 403)
        #expect(
            try Self.get(base + "/logspec", ca: ca, identity: admin).1.contains("\"spec\":\"info\""),
            "a refused change changes nothing")
        let changed = try Self.request(
            "PUT", base + "/logspec", body: #"{"spec":"info:node,raft=warning"}"#, ca: ca, identity: admin)
        #expect(changed.0 == 200 && changed.1.contains("info:node=warning:raft=warning"), "\(changed)")
        #expect(try Self.request("PUT", base + "/logspec", body: #"{"spec":"info"}"#, ca: ca, identity: admin).0 == 200)
        // Every line the node wrote is one JSON object with the time, level, component and message;
        // the components are the node's parts, which a logspec names.
        var components = Set<String>()
        for line in net.nodes["hospital-a"]!.text.split(separator: "\n") {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(
                object?["ts"] is String && object?["level"] is String && object?["component"] is String
                    && object?["msg"] is String, "not a JSON log line: \(line)")
            if let c = object?["component"] as? String { components.insert(c) }
        }
        #expect(components.isSuperset(of: ["node", "operations"]) && components.count >= 3, "\(components)")

        // A real Prometheus scrapes it every second over mutual TLS.
        let promPort = LoopbackPorts.free(1)[0]
        let config = """
            global: { scrape_interval: 1s, scrape_timeout: 1s }
            scrape_configs:
              - job_name: medledger
                scheme: https
                tls_config: { ca_file: \(ca), cert_file: \(net.admin("hospital-a"))/tls-cert.pem, key_file: \(net.admin("hospital-a"))/tls-key.pem }
                static_configs: [ { targets: ["127.0.0.1:\(port)"] } ]
            """
        try config.write(toFile: net.root + "/prometheus.yml", atomically: true, encoding: .utf8)
        let prometheus = try DaemonProcess(
            executable: URL(fileURLWithPath: "/usr/bin/prometheus"),
            arguments: [
                "--config.file=\(net.root)/prometheus.yml", "--storage.tsdb.path=\(net.root)/prometheus-data",
                "--web.listen-address=127.0.0.1:\(promPort)",
            ])
        defer { _ = prometheus.stop() }
        func query(_ q: String) -> String {
            let url =
                "http://127.0.0.1:\(promPort)/api/v1/query?query="
                + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)
            return
                (try? MedLedgerBinary.runTool(
                    "/usr/bin/env",
                    [
                        "python3", "-c",
                        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                        url,
                    ]
                ).stdout) ?? ""
        }
        let scraped = await eventually(within: 30) {
            query("up{job=\"medledger\"}").contains("\"1\"]") && query("ledger_height").contains("records")
        }
        #expect(scraped, "Prometheus did not scrape the node:\n\(query("up"))\n\(prometheus.text.suffix(2000))")
        let writes = query("sum(grpc_server_requests_total{result=\"ok\"})")
        print("prometheus: \(writes)")
        #expect(writes.contains("\"value\""), "\(writes)")
    }

    static func operationsPort(_ log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("operations endpoint on https://") }),
            let url = line.split(separator: " ").first(where: { $0.hasPrefix("https://") })
        else { return nil }
        return Int(url.split(separator: ":").last ?? "")
    }
}
