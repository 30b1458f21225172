import ArgumentParser
import AsyncHTTPClient
import Foundation
import JWTKit
import LedgerBench
import LedgerClient
import LedgerFHIRServer
import LedgerHTTPConnections
import NIOCore
import NIOSSL

/// `medledger bench fhir`: the FHIR endpoint under load over HTTPS, on the local solo network with
/// `--records` P_DE of one patient: backend-service token issuance (client assertions signed
/// beforehand, so the client's signing is not timed), then DocumentReference reads by id and
/// searches by patient with a bearer token, each at `--clients` concurrent connections.
struct FHIRBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fhir",
        abstract:
            "FHIR endpoint throughput: token issuance, DocumentReference read by id and search by patient, over HTTPS at 64 concurrent clients."
    )

    @Option(help: "Concurrent clients (one kept-alive HTTPS connection each).") var clients = 64
    @Option(help: "Requests per measured run of reads and searches.") var requests = 20_000
    @Option(help: "Token requests per measured run.") var tokens = 4_000
    @Option(help: "P_DE of the patient on the ledger (a search answers 20 of them).") var records = 40
    @Option(name: .customLong("repeat"), help: "Measured runs of each; the table shows medians.") var repeats = 3
    @Flag(help: "Print JSON instead of a table.") var json = false

    struct Sample {
        var rate: Double
        var micros: [Double]
    }

    func run() async throws {
        // A backend service may hold 20,000 live client assertions; each run registers its own.
        // Every client connects from this machine's address, which the endpoint admits that many times.
        guard (1...ConnectionLimits.fhir.perSource).contains(clients), requests >= clients,
            (clients...19_000).contains(tokens), (1...1000).contains(records), (1...20).contains(repeats)
        else {
            throw ValidationError(
                "--clients 1…\(ConnectionLimits.fhir.perSource) (the FHIR endpoint's connections from one address), --requests at least --clients, --tokens from --clients to 19000, --records 1…1000, --repeat 1…20"
            )
        }
        let root = NSTemporaryDirectory() + "medledger-bench-fhir-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }
        let net = try await LocalNetwork.start(in: root, fhir: true, log: say)
        defer { net.stop() }
        guard let fhir = net.fhirAddress else { throw CLIError("the peer has no FHIR endpoint") }
        let (patientPID, recordID) = try await Self.seed(net: net, records: records, say: say)
        let http = Self.client(ca: net.root + "/sa/ca-cert.pem", connections: clients)
        let rows: [String: [Sample]]
        do {
            rows = try await measure(http, net: net, fhir: fhir, patientPID: patientPID, recordID: recordID, say: say)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try? await http.shutdown()
        report(rows)
    }

    func measure(
        _ http: HTTPClient, net: LocalNetwork, fhir: String, patientPID: String, recordID: String, say: (String) -> Void
    ) async throws -> [String: [Sample]] {
        let tokenURL = "https://\(fhir)/oauth/token"
        var rows: [String: [Sample]] = [:]
        for run in 0..<repeats {
            let (clientID, keys, kid) = try await Self.registerBackend(
                net: net, fhir: fhir, clientID: "bench-ehr-\(run + 1)")
            say(
                "run \(run + 1)/\(repeats): \(tokens) tokens, \(requests) reads, \(requests) searches at \(clients) clients"
            )
            let forms = try await Self.assertions(
                count: tokens + 1, clientID: clientID, keys: keys, kid: kid, tokenURL: tokenURL)
            @Sendable func request(_ i: Int) -> HTTPClientRequest {
                var r = HTTPClientRequest(url: tokenURL)
                r.method = .POST
                r.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                r.body = .bytes(ByteBuffer(string: forms[i]))
                return r
            }
            rows["token", default: []].append(
                try await Self.load(http, count: tokens, clients: clients, make: request) { status, _ in status == 200 }
            )
            let answer = try await http.execute(request(tokens), timeout: .seconds(30))
            let body = try await answer.body.collect(upTo: 1 << 20)
            guard let o = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                let token = o["access_token"] as? String
            else {
                throw CLIError("no token: \(String(buffer: body))")
            }
            let bearer = "Bearer " + token
            rows["read", default: []].append(
                try await Self.load(http, count: requests, clients: clients) { _ in
                    var r = HTTPClientRequest(url: "https://\(fhir)/fhir/DocumentReference/\(recordID)")
                    r.headers.add(name: "Authorization", value: bearer)
                    return r
                } check: { status, _ in
                    status == 200
                })
            rows["search", default: []].append(
                try await Self.load(http, count: requests, clients: clients) { _ in
                    var r = HTTPClientRequest(
                        url: "https://\(fhir)/fhir/DocumentReference?patient=\(patientPID)&_count=20")
                    r.headers.add(name: "Authorization", value: bearer)
                    return r
                } check: { status, body in
                    status == 200 && body.readableBytes > 1000
                })
        }
        return rows
    }

    func report(_ rows: [String: [Sample]]) {
        func row(_ key: String, _ label: String, count: Int, target: Double) -> BenchRow {
            let samples = rows[key] ?? []
            let rate = OperationsBench.median(samples.map(\.rate))
            let all = samples.flatMap(\.micros)
            return BenchRow(
                operation: "\(label) (median of \(samples.count))", count: count, seconds: Double(count) / max(rate, 1),
                rate: rate, rateUnit: "req/s",
                p50Micros: OperationsBench.median(all), p99Micros: OperationsBench.percentile(all, 0.99), target: target
            )
        }
        let report = BenchReport(
            title:
                "medledger bench fhir (solo network, HTTPS with TLS 1.3, \(clients) concurrent kept-alive connections, client and node on this machine)",
            environment: [
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)",
                "runs": ["token", "read", "search"].map { k in
                    "\(k): " + (rows[k] ?? []).map { String(format: "%.0f", $0.rate) }.joined(separator: ", ")
                }.joined(separator: "; "),
                "data":
                    "\(records) P_DE of one patient; a search answers 20 in a Bundle; reads as a backend service (system/DocumentReference.rs)",
            ],
            rows: [
                row("token", "token issuance, client_credentials + private_key_jwt ES384", count: tokens, target: 1000),
                row("read", "DocumentReference read by id", count: requests, target: 5000),
                row("search", "DocumentReference search by patient, _count=20", count: requests, target: 2000),
            ])
        print(json ? ((try? report.json()) ?? "{}") : report.table())
    }

    /// `count` requests from `clients` concurrent workers; the rate and each request's time.
    static func load(
        _ http: HTTPClient, count: Int, clients: Int, make: @escaping @Sendable (Int) -> HTTPClientRequest,
        check: @escaping @Sendable (UInt, ByteBuffer) -> Bool
    ) async throws -> Sample {
        let next = Counter()
        let start = DispatchTime.now().uptimeNanoseconds
        let micros = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<clients {
                group.addTask {
                    var mine: [Double] = []
                    while let i = next.take(below: count) {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let response = try await http.execute(make(i), timeout: .seconds(30))
                        let body = try await response.body.collect(upTo: 4 << 20)
                        guard check(response.status.code, body) else {
                            throw CLIError(
                                "request \(i) answered \(response.status.code): \(String(buffer: body).prefix(300))")
                        }
                        mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
                    }
                    return mine
                }
            }
            var all: [Double] = []
            for try await m in group { all += m }
            return all
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Sample(rate: Double(count) / seconds, micros: micros)
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func take(below limit: Int) -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard value < limit else { return nil }
            value += 1
            return value - 1
        }
    }

    static func client(ca: String, connections: Int) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .file(ca)
        var config = HTTPClient.Configuration(tlsConfiguration: tls)
        config.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// `records` P_DE of the network's patient, submitted by the doctor; the patient's PID and one record id.
    static func seed(net: LocalNetwork, records: Int, say: (String) -> Void) async throws -> (String, String) {
        say("writing \(records) P_DE")
        let gateway = try await Gateway.connect(
            wallet: try Wallet.open(net.submitterWallet("pde")), peer: net.peer, channel: "records")
        defer { gateway.close() }
        let pde = try await PDEWorkload.prepare(net: net, gateway: gateway)
        var recordID = ""
        for i in 0..<records {
            let r = try await gateway.submit(chaincode: "medrecords", function: "putIndexRecord", try pde.record(i))
            guard r.isValid, let o = try JSONSerialization.jsonObject(with: Data(r.result.payload)) as? [String: Any],
                let id = o["record_id"] as? String
            else {
                throw CLIError("putIndexRecord failed: \(r.code) \(r.result.text)")
            }
            recordID = id
        }
        return (pde.patient.info.pid, recordID)
    }

    /// A backend service with a fresh ES384 key, registered by hospital-a's administrator.
    static func registerBackend(
        net: LocalNetwork, fhir: String, clientID: String
    ) async throws -> (String, JWTKeyCollection, String) {
        let key = ES384PrivateKey()
        let kid = "bench"
        guard let p = key.parameters else { throw CLIError("no key coordinates") }
        let jwks = try JSONSerialization.data(withJSONObject: [
            "keys": [["kty": "EC", "crv": "P-384", "x": p.x, "y": p.y, "kid": kid]]
        ])
        let body = try JSONSerialization.data(withJSONObject: [
            "client_id": clientID, "kind": "backend", "jwks": String(decoding: jwks, as: UTF8.self),
            "scope": "system/DocumentReference.rs",
        ])
        let admin = try OperationsClient(address: fhir, wallet: try Wallet.open(net.admin("hospital-a")))
        let answer: (status: UInt, body: Data)
        do {
            answer = try await admin.send(
                .POST, "/oauth/clients", data: body, contentType: "application/json",
                headers: [("X-Requested-With", "medledger")])
        } catch {
            await admin.shutdown()
            throw error
        }
        await admin.shutdown()
        guard answer.status == 201 else {
            throw CLIError(
                "registering the backend service: [\(answer.status)] \(String(decoding: answer.body, as: UTF8.self))")
        }
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
        return (clientID, keys, kid)
    }

    /// `count` token request bodies, each with its own signed assertion (a jti is used once).
    static func assertions(
        count: Int, clientID: String, keys: JWTKeyCollection, kid: String, tokenURL: String
    ) async throws -> [String] {
        let now = Int(Date().timeIntervalSince1970)
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var out: [String] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let claims = FHIRCommand.Token.Assertion(
                iss: clientID, sub: clientID, aud: tokenURL, exp: now + 280, iat: now, jti: UUID().uuidString)
            let signed = try await keys.sign(claims, kid: JWKIdentifier(string: kid), header: ["typ": "JWT"])
            out.append(
                "grant_type=client_credentials&scope=system%2FDocumentReference.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
                    + (signed.addingPercentEncoding(withAllowedCharacters: allowed) ?? signed))
        }
        return out
    }
}
