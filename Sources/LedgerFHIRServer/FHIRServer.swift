import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import LedgerFHIR
import LedgerHTTPConnections
import Logging
import NIOCore
import NIOSSL
import X509

/// The node's FHIR face over HTTPS (TLS 1.2+, the node's TLS certificate; a client certificate is
/// optional, and one that is presented must validate):
/// - `/fhir/…`: FHIR R4 reads of the ledger's records with a SMART bearer token;
/// - `/oauth/…`: the SMART authorization server (authorize, token, introspect, revoke, and the
///   administrators' client registrations);
/// - `/.well-known/smart-configuration` (also under `/fhir`).
public struct FHIRServer: Sendable {

    public struct Listen: Sendable {
        public var host: String
        public var port: Int
        public var certificatePath: String
        public var keyPath: String
        public var trustedRoots: [Certificate]

        public init(host: String, port: Int, certificatePath: String, keyPath: String, trustedRoots: [Certificate]) {
            (self.host, self.port, self.certificatePath, self.keyPath, self.trustedRoots) = (
                host, port, certificatePath, keyPath, trustedRoots
            )
        }
    }

    public let listen: Listen
    public let organization: String
    public let version: String
    public let authorization: AuthorizationServer
    public let backend: any FHIRBackend
    /// Observes each answered request: route, status, seconds (the node's metrics).
    public let observe: @Sendable (String, Int, Double) -> Void
    /// Connections open at once (node.yaml `fhir.connections_max`), and from one address or IPv6 /64.
    public var connectionLimits = ConnectionLimits.fhir
    /// Who hears of its connections: refusals, and how many are open (the node's metrics and log).
    public var connectionEvents = SourceConnections.Events()
    /// Resources rendered from immutable ledger records, reused across requests.
    let rendered = RenderCache()

    public init(
        listen: Listen, organization: String, version: String, authorization: AuthorizationServer,
        backend: any FHIRBackend,
        observe: @escaping @Sendable (String, Int, Double) -> Void = { _, _, _ in }
    ) {
        (self.listen, self.organization, self.version, self.authorization, self.backend, self.observe) = (
            listen, organization, version, authorization, backend, observe
        )
    }

    var fhirBase: String { authorization.endpoints.fhirBase }
    /// The authorization server's endpoints sit beside `/fhir`, under `/oauth`.
    var oauthBase: String { String(fhirBase.dropLast("/fhir".count)) + "/oauth" }

    /// Serves until the task is cancelled; `listening` hears the bound port.
    public func run(listening: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(
            router: router(),
            // An idle connection is closed after 60 s, so slow or silent clients cannot hold the port,
            // and one address may hold at most its share of the connections (by default a quarter).
            server: try .tls(
                http1: .init(idleTimeout: .seconds(60)), tls: try tlsConfiguration(),
                limitingEachSource: SourceConnections(
                    perSourceMax: connectionLimits.perSource, events: connectionEvents)),
            configuration: ApplicationConfiguration(
                address: .hostname(listen.host, port: listen.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(connectionLimits.total)),
            onServerRunning: { channel in listening(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "medledger.fhir", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await app.runService(gracefulShutdownSignals: [])
    }

    func tlsConfiguration() throws -> TLSChannelConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(listen.certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: listen.keyPath, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates(
            try listen.trustedRoots.map { try NIOSSLCertificate(bytes: $0.derBytes, format: .der) })
        let backend = self.backend
        return TLSChannelConfiguration(tlsConfiguration: tls) { presented in
            // Refused handshakes are audited, as on the gRPC port (docs/ACCESS.md).
            func refuse(_ why: String) -> NIOSSLVerificationResult {
                backend.audit(
                    FHIRAuditNote(
                        actorID: "-", actorOrg: "-", actorRole: "-", action: "tls.handshake", target: "fhir",
                        outcome: .denied, detail: why))
                return .failed
            }
            let chain = presented.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
            guard chain.count == presented.count, !chain.isEmpty else {
                return refuse("the client certificate does not parse")
            }
            do { _ = try await backend.authenticate(chain: chain) } catch { return refuse("\(error)") }
            return .certificateVerified
        }
    }

    func router() -> Router<FHIRRequestContext> {
        let router = Router(context: FHIRRequestContext.self)
        router.add(middleware: Observe(observe: observe))
        addDiscovery(router)
        addAuthorization(router)
        addClientRegistration(router)
        addResources(router)
        return router
    }

    // MARK: - Discovery

    func addDiscovery(_ router: Router<FHIRRequestContext>) {
        router.get("/fhir/metadata") { _, _ in
            Self.fhir(
                .ok,
                CapabilityStatement(
                    base: fhirBase, oauth: oauthBase, version: version, date: RFC3339Time.format(Date())))
        }
        let smart: @Sendable (Request, FHIRRequestContext) async throws -> Response = { _, _ in
            Self.json(
                .ok,
                [
                    "issuer": authorization.tokens.issuer,
                    "authorization_endpoint": oauthBase + "/authorize",
                    "token_endpoint": authorization.endpoints.tokenURL,
                    "introspection_endpoint": oauthBase + "/introspect",
                    "revocation_endpoint": oauthBase + "/revoke",
                    "grant_types_supported": ["authorization_code", "client_credentials"],
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
                    "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
                    "scopes_supported": Self.supportedScopes,
                    "capabilities": [
                        "launch-standalone", "client-public", "client-confidential-asymmetric",
                        "context-standalone-patient", "permission-patient", "permission-user", "permission-v2",
                    ],
                ])
        }
        router.get("/.well-known/smart-configuration", use: smart)
        router.get("/fhir/.well-known/smart-configuration", use: smart)
    }

    static let pragma = HTTPField.Name("Pragma")!
    static let requestedWith = HTTPField.Name("X-Requested-With")!

    static let supportedScopes: [String] = {
        let all =
            AuthorizationServer.policy(role: "patient").scopes + AuthorizationServer.policy(role: "doctor").scopes
            + AuthorizationServer.systemPolicy.scopes
        return all.map(\.description)
    }()

    // MARK: - Authorization code and tokens

    func addAuthorization(_ router: Router<FHIRRequestContext>) {
        router.get("/oauth/authorize") { request, context in
            guard let q = FormEncoding.pairs(request.uri.query ?? "").flatMap(FormEncoding.single) else {
                return Self.page(.badRequest, "Malformed request", "a parameter is repeated or does not decode")
            }
            let user = try? await context.user(backend)
            return Self.answer(authorization.beginAuthorization(q, user: user), oauthBase: oauthBase)
        }
        router.post("/oauth/authorize") { request, context in
            guard let form = try await Self.form(request) else {
                return Self.page(.badRequest, "Malformed request", "the form does not decode")
            }
            let user = try? await context.user(backend)
            return Self.answer(
                authorization.finishAuthorization(
                    ticket: form["ticket"] ?? "", user: user, approved: form["decision"] == "approve"),
                oauthBase: oauthBase)
        }
        router.post("/oauth/token") { request, _ in
            guard let form = try await Self.form(request) else {
                return Self.oauthError(OAuthError("invalid_request", "the form is malformed or repeats a parameter"))
            }
            let answer: AuthorizationServer.TokenResponse
            do { answer = try await authorization.token(form) } catch let error as OAuthError {
                if error.code == "invalid_client" || error.code == "invalid_grant" {
                    // Unauthenticated: the claimed client id is detail, never the actor.
                    let claimed = String((form["client_id"] ?? "-").prefix(64))
                    backend.audit(
                        FHIRAuditNote(
                            actorID: "-", actorOrg: "-", actorRole: "-", action: "smart.token",
                            target: String((form["grant_type"] ?? "-").prefix(32)), outcome: .denied,
                            detail: "client \(claimed): \(error.description)"))
                }
                return Self.oauthError(error)
            } catch { return Self.oauthError(OAuthError("server_error", "\(error)", status: 500)) }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.cacheControl] = "no-store"
            headers[Self.pragma] = "no-cache"
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try e.encode(answer))))
        }
        // RFC 7662: for this hospital's resource servers (its administrators and nodes, by certificate).
        router.post("/oauth/introspect") { request, context in
            let who = try? await context.user(backend)
            guard let who, who.org == organization, who.role == "admin" || who.role == "node",
                backend.refusal(of: who) == nil
            else {
                return Self.json(
                    .unauthorized,
                    [
                        "error": "invalid_client",
                        "error_description":
                            "introspection is for \(organization)'s nodes and administrators (client certificate)",
                    ])
            }
            guard let form = try await Self.form(request), let token = form["token"] else {
                return Self.oauthError(OAuthError("invalid_request", "token is required"))
            }
            return Self.json(.ok, await authorization.introspect(token))
        }
        // RFC 7009: whoever holds a token may revoke it; the answer is the same for any token.
        router.post("/oauth/revoke") { request, _ in
            guard let form = try await Self.form(request), let token = form["token"] else {
                return Self.oauthError(OAuthError("invalid_request", "token is required"))
            }
            guard await authorization.revoke(token) else {
                return Self.oauthError(
                    OAuthError(
                        "temporarily_unavailable", "too many revoked tokens are live; retry in a few minutes",
                        status: 503))
            }
            return Response(status: .ok)
        }
    }

    static func answer(_ outcome: AuthorizeOutcome, oauthBase: String) -> Response {
        switch outcome {
        case .refuse(let status, let text):
            return page(HTTPResponse.Status(code: status), status == 401 ? "Sign in" : "Request refused", text)
        case .redirect(let url):
            var headers = HTTPFields()
            headers[.location] = url
            headers[.cacheControl] = "no-store"
            return Response(status: .seeOther, headers: headers)
        case .approve(let ticket, let client, let scope):
            let items = scope.split(separator: " ").map { "<li><code>\(html($0))</code></li>" }.joined()
            let body = """
                <p><b>\(html(client))</b> asks to read, in your name:</p><ul>\(items)</ul>
                <form method="post" action="\(html(oauthBase))/authorize">
                <input type="hidden" name="ticket" value="\(html(ticket))">
                <button name="decision" value="approve">Allow</button> <button name="decision" value="deny">Deny</button>
                </form>
                """
            return page(.ok, "Allow access?", body, raw: true)
        }
    }

    // MARK: - Client registration (administrators of this node's organisation)

    struct Registration: Decodable {
        var client_id: String
        var kind: RegisteredClient.Kind
        var name: String?
        var redirect_uris: [String]?
        var jwks: String?
        var scope: String
    }

    func addClientRegistration(_ router: Router<FHIRRequestContext>) {
        router.get("/oauth/clients") { _, context in
            let (found, refusal) = await admin(context)
            guard let admin = found else { return refusal! }
            let list = authorization.clients.all(org: admin.org).map { c -> [String: Any] in
                [
                    "client_id": c.clientID, "kind": c.kind.rawValue, "name": c.name, "scope": c.scope,
                    "redirect_uris": c.redirectURIs, "registered_by": c.registeredBy, "registered_at": c.registeredAt,
                ]
            }
            return Self.json(.ok, ["clients": list])
        }
        router.post("/oauth/clients") { request, context in
            let (found, refusal) = await admin(context)
            guard let admin = found else { return refusal! }
            // A browser holding an administrator's certificate could be made to post a form here
            // from another site; a JSON body cannot be sent cross-site without a CORS preflight.
            guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
                return Self.json(.unsupportedMediaType, ["error": "the body must be application/json"])
            }
            let body = try await request.body.collect(upTo: 128 * 1024)
            guard let r = try? JSONDecoder().decode(Registration.self, from: Data(buffer: body)) else {
                return Self.json(
                    .badRequest,
                    ["error": "the body is {client_id, kind: app|backend, name, redirect_uris | jwks, scope}"])
            }
            let client = RegisteredClient(
                clientID: r.client_id, kind: r.kind, name: r.name ?? r.client_id, org: admin.org,
                redirectURIs: r.redirect_uris ?? [], jwks: r.jwks, scope: r.scope,
                registeredBy: admin.pid, registeredAt: RFC3339Time.format(Date()))
            do {
                let fresh = try await authorization.clients.register(client)
                let stored = authorization.clients.client(client.clientID)
                backend.audit(
                    FHIRAuditNote(
                        actorID: admin.pid, actorOrg: admin.org, actorRole: admin.role, action: "smart.client.register",
                        target: client.clientID, outcome: .success,
                        detail: "\(client.kind.rawValue), scope \(stored?.scope ?? "")"))
                return Self.json(
                    fresh ? .created : .ok,
                    [
                        "client_id": client.clientID, "kind": client.kind.rawValue, "scope": stored?.scope ?? "",
                        "token_endpoint": authorization.endpoints.tokenURL, "replaced": !fresh,
                    ])
            } catch let e as FHIRFailure {
                backend.audit(
                    FHIRAuditNote(
                        actorID: admin.pid, actorOrg: admin.org, actorRole: admin.role, action: "smart.client.register",
                        target: String(client.clientID.prefix(64)), outcome: .denied, detail: e.message))
                return Self.json(HTTPResponse.Status(code: e.status), ["error": e.message])
            }
        }
        router.delete("/oauth/clients/:id") { request, context in
            let (found, refusal) = await admin(context)
            guard let admin = found else { return refusal! }
            // As for registration: no cross-site request can carry this header without a preflight.
            guard request.headers[Self.requestedWith] == "medledger" else {
                return Self.json(
                    .badRequest, ["error": "send X-Requested-With: medledger (a guard against cross-site requests)"])
            }
            let id = context.parameters.get("id").flatMap { $0.removingPercentEncoding } ?? ""
            guard try authorization.clients.remove(id, org: admin.org) else {
                return Self.json(.notFound, ["error": "\(organization) has no client \(id)"])
            }
            backend.audit(
                FHIRAuditNote(
                    actorID: admin.pid, actorOrg: admin.org, actorRole: admin.role, action: "smart.client.remove",
                    target: id, outcome: .success, detail: ""))
            return Self.json(.ok, ["removed": id])
        }
    }

    /// The caller if an administrator of this node's organisation, else the refusal to send.
    func admin(_ context: FHIRRequestContext) async -> (UserIdentity?, Response?) {
        guard let who = try? await context.user(backend) else {
            return (
                nil,
                Self.json(
                    .unauthorized, ["error": "a client certificate of an administrator of \(organization) is required"])
            )
        }
        guard who.org == organization, who.role == "admin" else {
            return (
                nil,
                Self.json(.forbidden, ["error": "only administrators of \(organization) manage clients on this node"])
            )
        }
        if let why = backend.refusal(of: who) { return (nil, Self.json(.unauthorized, ["error": why])) }
        return (who, nil)
    }

    // MARK: - Responses

    static func fhir(
        _ status: HTTPResponse.Status, _ value: some Encodable, headers extra: HTTPFields = [:]
    ) -> Response {
        fhirJSON(status, (try? FHIR.encode(value)) ?? Data("{}".utf8), headers: extra)
    }

    static func fhirJSON(_ status: HTTPResponse.Status, _ data: Data, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = FHIR.mediaType + "; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An error as an OperationOutcome; a 401 carries the `WWW-Authenticate` challenge RFC 6750 asks for.
    static func outcome(_ failure: FHIRFailure, tokenPresented: Bool = true, scope: String? = nil) -> Response {
        var headers = HTTPFields()
        if failure.status == 401 {
            headers[.wwwAuthenticate] =
                tokenPresented
                ? "Bearer realm=\"medledger\", error=\"invalid_token\", error_description=\"\(failure.message.replacingOccurrences(of: "\"", with: "'"))\""
                : "Bearer realm=\"medledger\""
        } else if failure.status == 403, let scope {
            headers[.wwwAuthenticate] = "Bearer realm=\"medledger\", error=\"insufficient_scope\", scope=\"\(scope)\""
        }
        return fhir(
            HTTPResponse.Status(code: failure.status),
            OperationOutcome(code: OperationOutcome.issueCode(forStatus: failure.status), failure.message),
            headers: headers)
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: Any]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        let data =
            (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func oauthError(_ e: OAuthError) -> Response {
        var r = json(HTTPResponse.Status(code: e.status), ["error": e.code, "error_description": e.text])
        if e.status == 401 { r.headers[.wwwAuthenticate] = "private_key_jwt realm=\"medledger\"" }
        return r
    }

    static func page(_ status: HTTPResponse.Status, _ title: String, _ body: String, raw: Bool = false) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        // The approval page must not be framed by another site (clickjacking). No form-action: some
        // browsers apply it to the redirect that follows the form, which goes to the app.
        headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        let text =
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>\(html(title))</title></head><body><h1>\(html(title))</h1>\(raw ? body : "<p>" + html(body) + "</p>")</body></html>"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func html(_ s: some StringProtocol) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;"
        ).replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A form body (at most 32 KiB), one value per name.
    static func form(_ request: Request) async throws -> [String: String]? {
        let body = try await request.body.collect(upTo: 32 * 1024)
        guard let text = String(data: Data(buffer: body), encoding: .utf8) else { return nil }
        return FormEncoding.pairs(text).flatMap(FormEncoding.single)
    }
}

/// A request's context, keeping the connection so the routes can read the client certificate.
public struct FHIRRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The user the TLS client certificate names; throws when none was presented.
    func user(_ backend: any FHIRBackend) async throws -> UserIdentity {
        guard let presented = try await channel.nioSSL_peerCertificate().get() else {
            throw FHIRFailure(401, "no client certificate")
        }
        return try await backend.authenticate(chain: [try Certificate(derEncoded: presented.toDERBytes())])
    }
}

/// Times every request for the node's metrics, by route pattern (never by path: paths carry ids).
struct Observe: RouterMiddleware {
    typealias Context = FHIRRequestContext
    let observe: @Sendable (String, Int, Double) -> Void

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let route = context.endpointPath ?? "unmatched"
        do {
            let r = try await next(request, context)
            observe(context.endpointPath ?? route, Int(r.status.code), Self.seconds(since: start))
            return r
        } catch {
            observe(
                context.endpointPath ?? route, (error as? HTTPResponseError)?.status.code ?? 500,
                Self.seconds(since: start))
            throw error
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
