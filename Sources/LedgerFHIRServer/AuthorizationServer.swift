import Foundation
import JWTKit
import LedgerFHIR
import Synchronization

/// An OAuth error at the token, introspection or revocation endpoint (RFC 6749 §5.2): the JSON
/// body `{error, error_description}` with its status (400, or 401 for `invalid_client`).
public struct OAuthError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var text: String

    public init(_ code: String, _ text: String, status: Int? = nil) {
        self.code = code
        self.text = text
        self.status = status ?? (code == "invalid_client" ? 401 : 400)
    }
    public var description: String { "\(code): \(text)" }
}

/// An authorization request that cannot go back to the app: unknown client or unregistered
/// redirect URI (RFC 6749 §4.1.2.1 forbids redirecting then), or a missing user certificate.
public enum AuthorizeOutcome: Sendable, Equatable {
    /// Show the user this request to approve (the ticket names it in the approval form).
    case approve(ticket: String, client: String, scope: String)
    /// Send the browser here (a code, or an error for the app).
    case redirect(String)
    /// Answer the browser with this status and text; nothing goes to the app.
    case refuse(status: Int, text: String)
}

/// The SMART on FHIR authorization server's logic, apart from HTTP: authorization codes with PKCE
/// for apps, `client_credentials` with `private_key_jwt` for backend services, access tokens,
/// introspection and revocation. Every store here is bounded and forgets what has expired.
public final class AuthorizationServer: Sendable {
    public struct Endpoints: Sendable {
        /// The FHIR base URL: tokens' audience, and what `aud` must name.
        public var fhirBase: String
        /// The token endpoint's URL: what client assertions' `aud` must name.
        public var tokenURL: String

        public init(fhirBase: String, tokenURL: String) { (self.fhirBase, self.tokenURL) = (fhirBase, tokenURL) }
    }

    struct Pending: Sendable {
        var clientID: String
        var redirectURI: String
        var state: String
        var challenge: String
        var scopes: ScopeSet
        var user: UserIdentity
        var expires: Date
    }

    struct State: Sendable {
        var pending: [String: Pending] = [:]
        var codes: [String: Pending] = [:]
        /// (client id, jti) of client assertions seen, until they expire.
        var assertions: [String: Int] = [:]
        /// How many of them each client has, for the per-client bound.
        var assertionsByClient: [String: Int] = [:]
        /// jti of revoked access tokens, until they expire.
        var revoked: [String: Int] = [:]
    }

    public static let codeLifetime: TimeInterval = 60
    public static let approvalLifetime: TimeInterval = 300
    public static let assertionLifetimeMax = 300
    /// How far a client's clock may run behind this node's, for `iat` after a start.
    static let clockSkew = 5
    /// Every store is bounded in total, and per user or client, so that one of them filling its
    /// share refuses only itself; nothing is dropped to make room (a dropped revocation would
    /// revive a token). Expired entries are purged as they are met.
    static let bound = 100_000
    static let perUser = 20
    static let assertionsPerClient = 20_000

    public let tokens: TokenAuthority
    public let clients: ClientRegistry
    public let endpoints: Endpoints
    let backend: any FHIRBackend
    let clock: @Sendable () -> Date
    private let state = Mutex(State())
    private let parsedScopes = Mutex<[String: ScopeSet]>([:])

    /// When this server started (Unix seconds): its assertion replay cache knows nothing older.
    let startedAt: Int

    public init(
        tokens: TokenAuthority, clients: ClientRegistry, endpoints: Endpoints, backend: any FHIRBackend,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        (self.tokens, self.clients, self.endpoints, self.backend, self.clock) = (
            tokens, clients, endpoints, backend, clock
        )
        startedAt = Int(clock().timeIntervalSince1970)
    }

    /// What each kind of user may be granted, whatever an app asks for. Patients read their own
    /// records in patient context; other people in user context (the ledger's rules decide which).
    /// A treatment's patient and doctor add its records (both sign each); patients grant and revoke
    /// their consents (signed by them).
    public static func policy(role: String) -> ScopeSet {
        let context: SMARTScope.Context = role == "patient" ? .patient : .user
        let writesRecords = role == "patient" || role == "doctor"
        var scopes: [SMARTScope] = [
            .resource(
                context, type: "DocumentReference", writesRecords ? [.create, .read, .search] : [.read, .search]),
            .resource(context, type: "Provenance", [.read, .search]),
            .resource(
                context, type: "Consent", role == "patient" ? [.create, .read, .update, .search] : [.read, .search]),
            .resource(context, type: "AuditEvent", [.read, .search]),
            .resource(context, type: "Binary", [.read]),
        ]
        // Device readings go to the treatment's doctor only (sealed to them).
        if role == "doctor" { scopes.append(.resource(context, type: "Observation", [.read, .search])) }
        if role == "patient" { scopes.append(.other("launch/patient")) }
        return ScopeSet(scopes)
    }

    /// Backend services act as the hospital's node: they read records and their provenance, and
    /// usage (D_UE), and add records both signers signed; consents only their patients and
    /// grantees read.
    public static let systemPolicy = ScopeSet([
        .resource(.system, type: "DocumentReference", [.create, .read, .search]),
        .resource(.system, type: "Provenance", [.read, .search]),
        .resource(.system, type: "AuditEvent", [.read, .search]),
    ])

    // MARK: - Authorization code

    /// Step one of `/authorize`: check the request and hold it for the user's approval.
    public func beginAuthorization(_ q: [String: String], user: UserIdentity?) -> AuthorizeOutcome {
        guard let clientID = q["client_id"], let client = clients.client(clientID), client.kind == .app else {
            return .refuse(
                status: 400, text: "unknown client_id: register the app first (medledger fhir client register)")
        }
        guard let redirect = q["redirect_uri"],
            client.redirectURIs.contains(where: { Self.redirectMatches(registered: $0, given: redirect) })
        else {
            return .refuse(status: 400, text: "redirect_uri is not one registered for \(client.clientID)")
        }
        let state = q["state"] ?? ""
        func back(_ error: String, _ text: String) -> AuthorizeOutcome {
            .redirect(Self.appending(redirect, ["error": error, "error_description": text, "state": state]))
        }
        guard q["response_type"] == "code" else { return back("unsupported_response_type", "only response_type=code") }
        // 122 bits of randomness need at least 21 base64 characters; refuse what is plainly shorter.
        guard (22...512).contains(state.count) else {
            return back("invalid_request", "state must carry at least 122 bits (22 or more characters)")
        }
        guard q["aud"] == endpoints.fhirBase else {
            return back("invalid_request", "aud must be this FHIR server's base URL, \(endpoints.fhirBase)")
        }
        guard q["code_challenge_method"] == "S256" else {
            return back("invalid_request", "PKCE with code_challenge_method=S256 is required")
        }
        guard let challenge = q["code_challenge"], PKCE.isWellFormedChallenge(challenge) else {
            return back("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier")
        }
        let asked = ScopeSet(lenient: q["scope"] ?? "")
        guard let user else {
            return .refuse(status: 401, text: "sign in: present your MedLedger wallet's TLS certificate to this page")
        }
        if let why = backend.refusal(of: user) { return .refuse(status: 401, text: why) }
        let granted = asked.granted(within: Self.policy(role: user.role)).granted(
            within: ScopeSet(lenient: client.scope))
        guard granted.scopes.contains(where: { if case .resource = $0 { return true } else { return false } }) else {
            return back(
                "invalid_scope",
                "none of the scopes asked for may be granted to a \(user.role) through \(client.clientID)")
        }
        let ticket = Self.randomToken()
        let now = clock()
        let pending = Pending(
            clientID: clientID, redirectURI: redirect, state: state, challenge: challenge, scopes: granted, user: user,
            expires: now + Self.approvalLifetime)
        guard self.state.withLock({ Self.insert(pending, as: ticket, into: &$0.pending, now: now) }) else {
            return .refuse(
                status: 503,
                text: "too many authorizations are waiting for approval; answer or let them expire, then try again")
        }
        return .approve(ticket: ticket, client: client.name, scope: granted.text)
    }

    /// Step two: the user approved (or denied) the request the ticket names; the same user only.
    public func finishAuthorization(ticket: String, user: UserIdentity?, approved: Bool) -> AuthorizeOutcome {
        let now = clock()
        guard let p = state.withLock({ $0.pending.removeValue(forKey: ticket) }), p.expires > now else {
            return .refuse(
                status: 400, text: "this approval has expired or was already answered; start again from the app")
        }
        guard let user, user.pid == p.user.pid else {
            return .refuse(status: 403, text: "only the user who was asked may answer")
        }
        guard approved else {
            audit(user, "smart.authorize", p.clientID, .denied, "the user declined")
            return .redirect(
                Self.appending(
                    p.redirectURI,
                    ["error": "access_denied", "error_description": "the user declined", "state": p.state]))
        }
        let code = Self.randomToken()
        var issued = p
        issued.expires = now + Self.codeLifetime
        guard state.withLock({ Self.insert(issued, as: code, into: &$0.codes, now: now) }) else {
            return .redirect(
                Self.appending(
                    p.redirectURI,
                    [
                        "error": "temporarily_unavailable",
                        "error_description": "too many codes are waiting to be redeemed", "state": p.state,
                    ]))
        }
        audit(user, "smart.authorize", p.clientID, .success, "granted \(p.scopes.text)")
        return .redirect(Self.appending(p.redirectURI, ["code": code, "state": p.state]))
    }

    // MARK: - Token endpoint

    public struct TokenResponse: Encodable, Sendable {
        public var access_token: String
        public var token_type = "Bearer"
        public var expires_in: Int
        public var scope: String
        public var patient: String?
    }

    public func token(_ form: [String: String]) async throws(OAuthError) -> TokenResponse {
        switch form["grant_type"] {
        case "authorization_code": return try await redeemCode(form)
        case "client_credentials": return try await backendToken(form)
        case nil: throw OAuthError("invalid_request", "grant_type is missing")
        default:
            throw OAuthError("unsupported_grant_type", "grant_type must be authorization_code or client_credentials")
        }
    }

    func redeemCode(_ form: [String: String]) async throws(OAuthError) -> TokenResponse {
        guard let code = form["code"], let verifier = form["code_verifier"], let clientID = form["client_id"],
            let redirect = form["redirect_uri"]
        else {
            throw OAuthError("invalid_request", "code, code_verifier, client_id and redirect_uri are required")
        }
        let now = clock()
        // A code is used once: taken out before anything else is checked.
        guard let p = state.withLock({ $0.codes.removeValue(forKey: code) }), p.expires > now else {
            throw OAuthError("invalid_grant", "the code is unknown, used or expired")
        }
        guard p.clientID == clientID, p.redirectURI == redirect else {
            throw OAuthError("invalid_grant", "the code was issued to another client or redirect_uri")
        }
        guard PKCE.verify(verifier: verifier, challenge: p.challenge) else {
            throw OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        }
        if backend.refusal(of: p.user) != nil {
            throw OAuthError("invalid_grant", "the user may no longer sign in to this node")
        }
        let issued: (token: String, claims: AccessTokenClaims)
        do {
            issued = try await tokens.issue(
                scopes: p.scopes, clientID: clientID, subject: p.user.pid, org: p.user.org, role: p.user.role,
                user: p.user, now: now)
        } catch { throw OAuthError("server_error", "cannot sign the token", status: 500) }
        audit(
            p.user, "smart.token", clientID, .success,
            "authorization_code, scope \(p.scopes.text), jti \(issued.claims.jti)")
        return TokenResponse(
            access_token: issued.token, expires_in: tokens.lifetime, scope: p.scopes.text,
            patient: issued.claims.patient)
    }

    struct AssertionClaims: JWTPayload {
        var iss: String
        var sub: String
        var aud: AudienceClaim
        var exp: Int
        var jti: String
        var iat: Int?
        var nbf: Int?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    func backendToken(_ form: [String: String]) async throws(OAuthError) -> TokenResponse {
        guard form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            let assertion = form["client_assertion"]
        else {
            throw OAuthError("invalid_client", "backend services authenticate with a private_key_jwt client_assertion")
        }
        let claims = try await verifyAssertion(assertion)
        guard let client = clients.client(claims.iss) else { throw OAuthError("invalid_client", "unknown client") }
        if backend.refusal(ofService: client.clientID) != nil {
            throw OAuthError("invalid_client", "\(client.clientID) may not act on this node")
        }
        let asked = ScopeSet(lenient: form["scope"] ?? "")
        let granted = asked.granted(within: Self.systemPolicy).granted(within: ScopeSet(lenient: client.scope))
        guard !granted.scopes.isEmpty else {
            throw OAuthError("invalid_scope", "none of the scopes asked for is registered for \(client.clientID)")
        }
        let issued: (token: String, claims: AccessTokenClaims)
        do {
            issued = try await tokens.issue(
                scopes: granted, clientID: client.clientID, subject: client.clientID, org: client.org, role: "system",
                user: nil, now: clock())
        } catch { throw OAuthError("server_error", "cannot sign the token", status: 500) }
        backend.audit(
            FHIRAuditNote(
                actorID: client.clientID, actorOrg: client.org, actorRole: "system", action: "smart.token",
                target: client.clientID, outcome: .success,
                detail: "client_credentials, scope \(granted.text), jti \(issued.claims.jti)"))
        return TokenResponse(access_token: issued.token, expires_in: tokens.lifetime, scope: granted.text)
    }

    /// A backend service's client assertion (SMART backend services): signed ES384 or RS384 by a key
    /// it registered, `iss` = `sub` = its client id, `aud` the token URL, `exp` within 5 minutes,
    /// and a `jti` not seen before. Every failure is `invalid_client`.
    func verifyAssertion(_ assertion: String) async throws(OAuthError) -> AssertionClaims {
        func refuse(_ why: String) -> OAuthError { OAuthError("invalid_client", why) }
        guard assertion.count <= 16_384 else { throw refuse("the client assertion is too long") }
        let parts = assertion.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Self.jsonObject(base64url: String(parts[0])),
            let body = Self.jsonObject(base64url: String(parts[1]))
        else {
            throw refuse("the client assertion is not a JWS")
        }
        guard let alg = header["alg"] as? String, ClientKeys.algorithms.contains(alg) else {
            throw refuse("the client assertion must be signed ES384 or RS384")
        }
        guard let kid = header["kid"] as? String else { throw refuse("the client assertion's header needs a kid") }
        guard let iss = body["iss"] as? String, let client = clients.client(iss), client.kind == .backend else {
            throw refuse("the client assertion's iss is not a registered backend service")
        }
        // The key the kid names, with the algorithm it was registered for (RFC 8725 §3.1).
        guard ClientKeys.algorithm(of: kid, in: client.jwks ?? "") == alg else {
            throw refuse("\(iss) registered no \(alg) key with kid \(kid)")
        }
        let claims: AssertionClaims
        do {
            let keys = try await clients.keys(of: client)
            claims = try await keys.verify(assertion, as: AssertionClaims.self)
        } catch { throw refuse("the client assertion's signature does not verify with the keys registered for \(iss)") }
        let now = Int(clock().timeIntervalSince1970)
        guard claims.sub == claims.iss else { throw refuse("the client assertion's sub must equal its iss") }
        guard claims.aud.value.contains(endpoints.tokenURL) else {
            throw refuse("the client assertion's aud must be \(endpoints.tokenURL)")
        }
        guard claims.exp > now else { throw refuse("the client assertion has expired") }
        guard claims.exp <= now + Self.assertionLifetimeMax else {
            throw refuse("the client assertion may live at most 5 minutes")
        }
        if let nbf = claims.nbf, nbf > now + 5 { throw refuse("the client assertion is not valid yet") }
        guard (1...256).contains(claims.jti.count) else { throw refuse("the client assertion needs a jti") }
        // The replay cache lives in memory and starts empty, so an assertion made before this start
        // could be replayed. For an assertion's lifetime after a start, assertions must say when
        // they were made (iat) and be made since (a few seconds of clock skew allowed).
        if now < startedAt + Self.assertionLifetimeMax {
            guard let iat = claims.iat else {
                throw refuse(
                    "the client assertion needs an iat for \(Self.assertionLifetimeMax) s after this server started")
            }
            guard iat >= startedAt - Self.clockSkew else {
                throw refuse("the client assertion was made before this server started; make a new one")
            }
        }
        let seen: String? = state.withLock { s in
            let key = claims.iss + "\u{0}" + claims.jti
            guard s.assertions[key] == nil else { return "the client assertion's jti was already used" }
            if s.assertions.count >= Self.bound / 2
                || (s.assertionsByClient[claims.iss] ?? 0) >= Self.assertionsPerClient
            {
                Self.purgeAssertions(&s, now: now)
            }
            guard s.assertions.count < Self.bound else {
                return "this server holds too many live client assertions; retry in a few minutes"
            }
            guard (s.assertionsByClient[claims.iss] ?? 0) < Self.assertionsPerClient else {
                return
                    "\(claims.iss) has \(Self.assertionsPerClient) live client assertions; let them expire (shorter exp)"
            }
            s.assertions[key] = claims.exp
            s.assertionsByClient[claims.iss, default: 0] += 1
            return nil
        }
        if let seen { throw refuse(seen) }
        return claims
    }

    // MARK: - Resource requests, introspection, revocation

    /// The caller behind an `Authorization: Bearer` header; 401 `FHIRFailure` when missing or refused.
    public func caller(bearer header: String?) async throws(FHIRFailure) -> FHIRCaller {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw FHIRFailure(401, "an access token is required (Authorization: Bearer …)")
        }
        let claims: AccessTokenClaims
        do { claims = try await tokens.verify(String(header.dropFirst(7)), now: clock()) } catch {
            throw FHIRFailure(401, error.description)
        }
        if whyInactive(claims) != nil { throw FHIRFailure(401, Self.inactive) }
        let kind: FHIRCaller.Kind = claims.kind == "system" ? .system : .user
        return FHIRCaller(
            kind: kind, id: claims.sub, org: claims.org, role: claims.role, clientID: claims.client_id,
            scopes: scopes(claims.scope), tokenID: claims.jti)
    }

    /// A token's scopes, parsed once per distinct text (tokens repeat a handful of them).
    func scopes(_ text: String) -> ScopeSet {
        if let known = parsedScopes.withLock({ $0[text] }) { return known }
        let parsed = ScopeSet(lenient: text)
        parsedScopes.withLock { cache in
            if cache.count >= 1024 { cache.removeAll() }
            cache[text] = parsed
        }
        return parsed
    }

    /// What apps are told about a token whose user or client may no longer act: the reason (a
    /// suspension, say) is the node's business, not the app's.
    static let inactive = "the access token is no longer active (revoked, or its user or client may no longer act)"

    /// Why a token that verifies may no longer be used: revoked, its client removed, its user's
    /// certificate revoked or the identity suspended since.
    func whyInactive(_ claims: AccessTokenClaims) -> String? {
        if state.withLock({ $0.revoked[claims.jti] != nil }) { return TokenRejection.revoked.description }
        guard clients.client(claims.client_id) != nil else {
            return "the client \(claims.client_id) is no longer registered"
        }
        if claims.kind == "system" { return backend.refusal(ofService: claims.client_id) }
        guard let serial = claims.cert_serial, let issuer = claims.cert_issuer else {
            return "the access token names no certificate"
        }
        return backend.refusal(
            of: UserIdentity(
                pid: claims.sub, org: claims.org, role: claims.role, certSerial: serial, certIssuer: issuer))
    }

    /// RFC 7662: `{"active": false}` for anything but a live token this node issued.
    public func introspect(_ token: String) async -> [String: Any] {
        guard let claims = try? await tokens.verify(token, now: clock()), whyInactive(claims) == nil else {
            return ["active": false]
        }
        var out: [String: Any] = [
            "active": true, "scope": claims.scope, "client_id": claims.client_id, "sub": claims.sub, "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss, "aud": claims.aud, "token_type": "Bearer", "jti": claims.jti, "org": claims.org,
            "role": claims.role,
        ]
        if let p = claims.patient { out["patient"] = p }
        return out
    }

    /// RFC 7009: revokes a token this node issued (anything else is ignored, and answered the same).
    /// False only when the store of revoked live tokens is full (answered 503: never dropped).
    public func revoke(_ token: String) async -> Bool {
        guard let claims = try? await tokens.verify(token, now: clock()) else { return true }
        let now = Int(clock().timeIntervalSince1970)
        let kept = state.withLock { s in
            if s.revoked.count >= 1000 { s.revoked = s.revoked.filter { $0.value > now } }
            guard s.revoked.count < Self.bound else { return false }
            s.revoked[claims.jti] = claims.exp
            return true
        }
        guard kept else { return false }
        backend.audit(
            FHIRAuditNote(
                actorID: claims.sub, actorOrg: claims.org, actorRole: claims.role, action: "smart.revoke",
                target: claims.client_id, outcome: .success, detail: "jti \(claims.jti)"))
        return true
    }

    // MARK: - Helpers

    func audit(
        _ user: UserIdentity, _ action: String, _ clientID: String, _ outcome: FHIRAuditNote.Outcome, _ detail: String
    ) {
        backend.audit(
            FHIRAuditNote(
                actorID: user.pid, actorOrg: user.org, actorRole: user.role, action: action, target: clientID,
                outcome: outcome, detail: detail))
    }

    /// Forgets expired client assertions and counts the rest by client.
    static func purgeAssertions(_ s: inout State, now: Int) {
        s.assertions = s.assertions.filter { $0.value > now }
        var counts: [String: Int] = [:]
        for key in s.assertions.keys { counts[String(key.prefix { $0 != "\u{0}" }), default: 0] += 1 }
        s.assertionsByClient = counts
    }

    /// Adds `p` unless its user already has `perUser` entries or the store is full (after purging
    /// what has expired).
    static func insert(_ p: Pending, as key: String, into map: inout [String: Pending], now: Date) -> Bool {
        if map.count >= 1000 { map = map.filter { $0.value.expires > now } }
        guard map.count < bound,
            map.values.lazy.filter({ $0.user.pid == p.user.pid && $0.expires > now }).count < perUser
        else { return false }
        map[key] = p
        return true
    }

    /// 256 random bits, base64url.
    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    /// Exactly, except that a loopback http URI matches on any port (RFC 8252 §7.3: native apps
    /// listen on a port they get at run time).
    public static func redirectMatches(registered: String, given: String) -> Bool {
        if registered == given { return true }
        guard var r = URLComponents(string: registered), var g = URLComponents(string: given), r.scheme == "http",
            g.scheme == "http",
            let host = r.host, ["127.0.0.1", "[::1]", "::1"].contains(host), g.host == host
        else { return false }
        (r.port, g.port) = (nil, nil)
        return r.string == g.string
    }

    static func appending(_ uri: String, _ params: [String: String]) -> String {
        var c = URLComponents(string: uri) ?? URLComponents()
        var items = c.queryItems ?? []
        for (k, v) in params.sorted(by: { $0.key < $1.key }) where !v.isEmpty {
            items.append(URLQueryItem(name: k, value: v))
        }
        c.queryItems = items
        // URLComponents leaves '+' alone in queries; form decoders read it as a space.
        c.percentEncodedQuery = c.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return c.string ?? uri
    }

    static func jsonObject(base64url s: String) -> [String: Any]? {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard let data = Data(base64Encoded: b) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }
}
