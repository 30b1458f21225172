import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import LedgerHTTPConnections
import LedgerIdentity
import LedgerIncidents
import LedgerProtos
import Logging
import NIOCore
import NIOSSL
import X509

/// One health check: nil when healthy, else why not (named in `/healthz`'s `failed_checks`).
public struct HealthCheck: Sendable {
    public let name: String
    public let check: @Sendable () async -> String?

    public init(name: String, check: @escaping @Sendable () async -> String?) {
        self.name = name
        self.check = check
    }
}

/// The node's operations endpoint (like Fabric's operations service), over HTTPS with the node's TLS
/// certificate:
/// - `GET /healthz` and `GET /version`: open (load balancers and monitors call them). `/healthz` names
///   each failed component to anyone, but says why (which may name a channel, or a file) only to
///   those who may read `/metrics`: the node API hides channels from non-members, and so does this;
/// - `GET /metrics` (Prometheus text format): only with a client certificate of an administrator or a
///   node of this node's organisation, checked against the node's trust store (roots and CRLs).
/// - `/incidents` (`medledger incident`): `GET` lists recent alerts and suspensions (administrators
///   and nodes of the organisation); `PUT /incidents/suspended/PID` suspends an identity on this node
///   and `DELETE` of the same resumes it (administrators only).
/// A client certificate is optional at the handshake; one that is presented must validate.
public struct OperationsServer: Sendable {
    public let host: String
    public let port: Int
    public let certificatePath: String
    public let keyPath: String
    public let trust: TrustStore
    public let organization: String
    public let version: String
    public let metrics: NodeMetrics
    /// Refreshes the gauges sampled at scrape time (heights, CRL age, raft roles).
    public let sample: @Sendable () async -> Void
    public let checks: [HealthCheck]
    public let incidents: IncidentsEndpoint?
    public let logLevels: LogLevels?
    /// A connection that sends nothing for this long is closed, one that never finishes its TLS
    /// handshake included. Connections are bounded, and silent ones need no certificate: without it
    /// each would hold its slot for ever. A scrape interval under this keeps Prometheus's connection.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once (node.yaml `operations.connections_max`), and from one source: one
    /// caller reopening connections as fast as they are closed can take no more than its share, and
    /// the monitors still get in.
    public var connectionLimits = ConnectionLimits.operations
    /// Who hears of its connections (nil: its metrics alone).
    public var connectionEvents: SourceConnections.Events?

    public init(
        host: String, port: Int, certificatePath: String, keyPath: String, trust: TrustStore, organization: String,
        version: String,
        metrics: NodeMetrics, sample: @escaping @Sendable () async -> Void, checks: [HealthCheck],
        incidents: IncidentsEndpoint? = nil,
        logLevels: LogLevels? = nil
    ) {
        self.incidents = incidents
        self.logLevels = logLevels
        self.host = host
        self.port = port
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.trust = trust
        self.organization = organization
        self.version = version
        self.metrics = metrics
        self.sample = sample
        self.checks = checks
    }

    /// Serves until the task is cancelled; `listening` hears the bound port.
    public func run(listening: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(
            router: router(),
            server: try .tls(
                http1: .init(idleTimeout: TimeAmount(idleTimeout)), tls: try tlsConfiguration(),
                limitingEachSource: SourceConnections(
                    perSourceMax: connectionLimits.perSource,
                    events: connectionEvents ?? metrics.connectionEvents(listener: "operations"))),
            // Monitors need few connections; a bound keeps a flood from holding file descriptors.
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(connectionLimits.total)),
            onServerRunning: { channel in listening(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "medledger.operations", factory: { _ in SwiftLogNoOpLogHandler() }))
        // The node stops it by cancelling this task; its own signal handling stays in one place.
        try await app.runService(gracefulShutdownSignals: [])
    }

    func tlsConfiguration() throws -> TLSChannelConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates(try trust.roots.map { try NIOSSLCertificate(bytes: $0.derBytes, format: .der) })
        let trust = self.trust
        return TLSChannelConfiguration(tlsConfiguration: tls) { presented in
            guard let first = presented.first, let leaf = try? Certificate(derEncoded: first.toDERBytes()) else {
                return .failed
            }
            let intermediates = presented.dropFirst().compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
            do {
                _ = try await trust.validate(leaf: leaf, intermediates: intermediates, purpose: .tls)
                return .certificateVerified
            } catch { return .failed }
        }
    }

    func router() -> Router<OperationsContext> {
        let router = Router(context: OperationsContext.self)
        router.get("/healthz") { _, context in
            try await self.health(detailed: await self.authorize(context).refusal == nil)
        }
        router.get("/version") { _, _ in
            Self.json(.ok, ["version": version])
        }
        router.get("/metrics") { _, context in
            if let refusal = await self.authorize(context).refusal { return refusal }
            await self.sample()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
        }
        if let incidents { addIncidentRoutes(router, incidents) }
        if let logLevels { addLogSpecRoutes(router, logLevels) }
        return router
    }

    /// Fabric's `/logspec`: `GET` the levels in force, `PUT {"spec": "info:raft=debug"}` to change
    /// them (administrators only). A malformed spec is 400 and changes nothing.
    func addLogSpecRoutes(_ router: Router<OperationsContext>, _ levels: LogLevels) {
        router.get("/logspec") { _, context in
            if let refusal = await self.authorize(context).refusal { return refusal }
            return Self.json(.ok, ["spec": levels.spec.description])
        }
        router.put("/logspec") { request, context in
            let (_, refusal) = await self.authorize(context, administratorsOnly: true)
            if let refusal { return refusal }
            let body = try await request.body.collect(upTo: 4096)
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                let text = object["spec"] as? String, object.count == 1
            else {
                return Self.json(
                    .badRequest, ["error": "the body is {\"spec\": \"LEVEL[:COMPONENT[,COMPONENT]=LEVEL]…\"}"])
            }
            do {
                levels.spec = try LogSpec(parsing: text)
            } catch {
                return Self.json(.badRequest, ["error": "\(error)"])
            }
            return Self.json(.ok, ["spec": levels.spec.description])
        }
    }

    func addIncidentRoutes(_ router: Router<OperationsContext>, _ incidents: IncidentsEndpoint) {
        router.get("/incidents") { _, context in
            if let refusal = await self.authorize(context).refusal { return refusal }
            let (alerts, suspended) = incidents.list()
            return Self.json(.ok, ["alerts": try Self.plain(alerts), "suspended": try Self.plain(suspended)])
        }
        router.put("/incidents/suspended/:pid") { request, context in
            let (admin, refusal) = await self.authorize(context, administratorsOnly: true)
            guard let admin else { return refusal! }
            guard let pid = context.parameters.get("pid"), Self.isPID(pid) else {
                return Self.json(.badRequest, ["error": "not a PID"])
            }
            let body = try await request.body.collect(upTo: 4096)
            var reason = "suspended by an administrator"
            if body.readableBytes > 0 {
                guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                    let r = object["reason"] as? String, r.count <= 512
                else {
                    return Self.json(.badRequest, ["error": "the body is {\"reason\": \"…\"} (at most 512 characters)"])
                }
                reason = r
            }
            do {
                let done = try incidents.suspend(pid, reason, admin)
                return Self.json(done ? .created : .ok, ["pid": pid, "suspended": true, "already": !done])
            } catch {
                return Self.json(.internalServerError, ["error": "\(error)"])
            }
        }
        router.delete("/incidents/suspended/:pid") { _, context in
            let (admin, refusal) = await self.authorize(context, administratorsOnly: true)
            guard let admin else { return refusal! }
            guard let pid = context.parameters.get("pid"), Self.isPID(pid) else {
                return Self.json(.badRequest, ["error": "not a PID"])
            }
            guard pid != admin.pid else {
                return Self.json(
                    .forbidden,
                    ["error": "an administrator does not resume their own suspension; another administrator does"])
            }
            do {
                guard let lifted = try incidents.resume(pid, admin) else {
                    return Self.json(.notFound, ["error": "\(pid) is not suspended on this node"])
                }
                return Self.json(.ok, ["resumed": try Self.plain(lifted)])
            } catch {
                return Self.json(.internalServerError, ["error": "\(error)"])
            }
        }
    }

    /// PIDs are base64url (64 characters); the bound keeps junk out of the audit log.
    static func isPID(_ s: String) -> Bool {
        (1...128).contains(s.count)
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.=".contains($0)) }
    }

    /// An Encodable as JSONSerialization's objects (dates ISO 8601).
    static func plain(_ value: some Encodable) throws -> Any {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        return try JSONSerialization.jsonObject(with: try e.encode(value))
    }

    /// 200 `{"status":"OK"}`, or 503 naming each failed check (Fabric's shape).
    func health(detailed: Bool) async throws -> Response {
        var failed: [[String: String]] = []
        for c in checks {
            if let why = await c.check() {
                failed.append(detailed ? ["component": c.name, "reason": why] : ["component": c.name])
            }
        }
        let now = ISO8601DateFormatter().string(from: Date())
        if failed.isEmpty { return Self.json(.ok, ["status": "OK", "time": now]) }
        return Self.json(.serviceUnavailable, ["status": "Service Unavailable", "time": now, "failed_checks": failed])
    }

    /// The caller if it is an administrator (or, unless `administratorsOnly`, a node) of this
    /// node's organisation; else the refusal to send.
    func authorize(
        _ context: OperationsContext, administratorsOnly: Bool = false
    ) async -> (identity: AuthenticatedIdentity?, refusal: Response?) {
        let who = administratorsOnly ? "administrator" : "administrator or node"
        guard let presented = try? await context.channel.nioSSL_peerCertificate().get(),
            let leaf = try? Certificate(derEncoded: presented.toDERBytes())
        else {
            return (
                nil,
                Self.json(.unauthorized, ["error": "a client certificate of an \(who) of \(organization) is required"])
            )
        }
        let identity: AuthenticatedIdentity
        do { identity = try await trust.validate(leaf: leaf, purpose: .tls) } catch {
            return (nil, Self.json(.unauthorized, ["error": "client certificate refused: \(error)"]))
        }
        guard identity.org == organization, identity.role == .admin || (!administratorsOnly && identity.role == .node)
        else {
            return (nil, Self.json(.forbidden, ["error": "only an \(who) of \(organization) may do this on this node"]))
        }
        if let why = incidents?.refusal(identity) { return (nil, Self.json(.unauthorized, ["error": why])) }
        return (identity, nil)
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: Any]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// What the operations endpoint offers incident response (the node's `IncidentDesk`).
public struct IncidentsEndpoint: Sendable {
    public let list: @Sendable () -> (alerts: [Alert], suspended: [Suspension])
    /// pid, reason, the administrator: true if newly suspended.
    public let suspend: @Sendable (String, String, AuthenticatedIdentity) throws -> Bool
    /// pid, the administrator: the suspension lifted, nil if there was none.
    public let resume: @Sendable (String, AuthenticatedIdentity) throws -> Suspension?
    /// Why this caller is refused here (suspended), nil if not: a suspended administrator may not
    /// lift their own suspension, nor read metrics or change log levels.
    public var refusal: @Sendable (AuthenticatedIdentity) -> String? = { _ in nil }

    public init(
        list: @escaping @Sendable () -> (alerts: [Alert], suspended: [Suspension]),
        suspend: @escaping @Sendable (String, String, AuthenticatedIdentity) throws -> Bool,
        resume: @escaping @Sendable (String, AuthenticatedIdentity) throws -> Suspension?
    ) {
        self.list = list
        self.suspend = suspend
        self.resume = resume
    }
}

/// A request's context, keeping the connection so `/metrics` can read the client certificate.
public struct OperationsContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
