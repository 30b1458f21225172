import Foundation
import JWTKit
import LedgerFHIR
import LedgerFHIRServer
import MedRecords
import Synchronization
import Testing
import X509

/// A backend with no ledger: identities and revocations set by the test, reads refused.
final class FakeBackend: FHIRBackend {
    let revoked = Mutex<Set<String>>([])
    let notes = Mutex<[FHIRAuditNote]>([])

    func authenticate(chain: [Certificate]) async throws -> UserIdentity {
        throw FHIRFailure(401, "no certificates here")
    }
    func refusal(of user: UserIdentity) -> String? { revoked.withLock { $0.contains(user.pid) } ? "revoked" : nil }
    func refusal(ofService clientID: String) -> String? {
        revoked.withLock { $0.contains(clientID) } ? "suspended" : nil
    }
    func indexRecord(_ id: String, for caller: FHIRCaller) async throws -> IndexRecord {
        throw FHIRFailure(404, "none")
    }
    func indexRecords(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<IndexRecord> { throw FHIRFailure(404, "none") }
    func consent(_ id: String, for caller: FHIRCaller) async throws -> Consent { throw FHIRFailure(404, "none") }
    func consents(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<Consent> { throw FHIRFailure(404, "none") }
    func usage(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<UsageRecord> { throw FHIRFailure(404, "none") }
    func accessLog(patient: String, since: String?, limit: Int, for caller: FHIRCaller) async throws -> [AccessEntry] {
        []
    }
    func objectSize(_ digest: String, for caller: FHIRCaller) async throws -> UInt64 { throw FHIRFailure(404, "none") }
    func readObject(_ digest: String, for caller: FHIRCaller, _ each: ([UInt8]) async throws -> Void) async throws {
        throw FHIRFailure(404, "none")
    }
    func readings(
        treatment tID: String, offset: Int, limit: Int, for caller: FHIRCaller
    ) async throws -> (readings: [SealedReading], total: Int) { throw FHIRFailure(404, "none") }
    func createIndexRecord(_ submission: DocumentSubmission, for caller: FHIRCaller) async throws -> IndexRecord {
        throw FHIRFailure(404, "none")
    }
    func grantConsent(_ submission: ConsentGrantSubmission, for caller: FHIRCaller) async throws -> Consent {
        throw FHIRFailure(404, "none")
    }
    func revokeConsent(
        _ consentID: String, signature: SubmittedSignature, for caller: FHIRCaller
    ) async throws -> Consent { throw FHIRFailure(404, "none") }
    func audit(_ note: FHIRAuditNote) { notes.withLock { $0.append(note) } }
}

final class TestClock: Sendable {
    let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    func advance(_ seconds: TimeInterval) { now.withLock { $0 += seconds } }
    var read: @Sendable () -> Date { { self.now.withLock { $0 } } }
}

@Suite struct AuthorizationServerTests {
    static let base = "https://fhir.hospital-a.example/fhir"
    static let tokenURL = "https://fhir.hospital-a.example/oauth/token"
    static let redirect = "https://app.example/callback"
    static let patient = UserIdentity(
        pid: "pid-patient", org: "hospital-a", role: "patient", certSerial: "0a0b", certIssuer: "AAAA")

    struct Setup {
        let server: AuthorizationServer
        let backend: FakeBackend
        let clock: TestClock
        let dir: String
    }

    static func setup() async throws -> Setup {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fhir-auth-\(UUID().uuidString)").path
        let clock = TestClock()
        let backend = FakeBackend()
        let tokens = await TokenAuthority(
            key: ES384PrivateKey(), issuer: "https://fhir.hospital-a.example/oauth", audience: base)
        let clients = try ClientRegistry(path: dir + "/clients.json")
        try await clients.register(
            RegisteredClient(
                clientID: "app", kind: .app, name: "Patient app", org: "hospital-a", redirectURIs: [redirect],
                jwks: nil,
                scope: "patient/*.rs launch/patient", registeredBy: "admin", registeredAt: "2026-12-01T00:00:00Z"))
        let server = AuthorizationServer(
            tokens: tokens, clients: clients, endpoints: .init(fhirBase: base, tokenURL: tokenURL), backend: backend,
            clock: clock.read)
        return Setup(server: server, backend: backend, clock: clock, dir: dir)
    }

    static let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

    static func request(_ edit: (inout [String: String]) -> Void = { _ in }) -> [String: String] {
        var q = [
            "response_type": "code", "client_id": "app", "redirect_uri": redirect,
            "state": "state-with-enough-entropy-123",
            "aud": base, "code_challenge": PKCE.challenge(for: verifier), "code_challenge_method": "S256",
            "scope": "patient/DocumentReference.rs patient/Consent.cruds user/DocumentReference.rs launch/patient",
        ]
        edit(&q)
        return q
    }

    /// The code the redirect carries after the user approves.
    static func code(_ s: Setup, _ q: [String: String] = request()) throws -> String {
        guard case .approve(let ticket, _, let scope) = s.server.beginAuthorization(q, user: patient) else {
            throw FHIRFailure(500, "not asked to approve")
        }
        // narrowed: no c/u/d, no user/ for a patient
        #expect(scope == "patient/DocumentReference.rs patient/Consent.rs launch/patient")
        guard case .redirect(let url) = s.server.finishAuthorization(ticket: ticket, user: patient, approved: true)
        else { throw FHIRFailure(500, "no redirect") }
        let items = URLComponents(string: url)?.queryItems ?? []
        #expect(items.first { $0.name == "state" }?.value == q["state"])
        return try #require(items.first { $0.name == "code" }?.value)
    }

    static func redeem(
        _ s: Setup, _ code: String, verifier: String = verifier, redirect: String = redirect
    ) async throws(OAuthError) -> AuthorizationServer.TokenResponse {
        try await s.server.token([
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": "app",
            "redirect_uri": redirect,
        ])
    }

    @Test func authorizationCodeWithPKCEIssuesAShortScopedToken() async throws {
        let s = try await Self.setup()
        let answer = try await Self.redeem(s, try Self.code(s))
        #expect(answer.expires_in == 300 && answer.patient == "pid-patient" && answer.token_type == "Bearer")
        let caller = try await s.server.caller(bearer: "Bearer " + answer.access_token)
        #expect(
            caller.id == "pid-patient" && caller.context == .patient
                && caller.scopes.permits("DocumentReference", .search, in: .patient))
        #expect(s.backend.notes.withLock { $0.map(\.action) } == ["smart.authorize", "smart.token"])
    }

    @Test func badAuthorizationRequestsNeverYieldACode() async throws {
        let s = try await Self.setup()
        // Unknown client or redirect: answered in the browser, never sent to the unregistered address.
        #expect(
            s.server.beginAuthorization(Self.request { $0["client_id"] = "nobody" }, user: Self.patient)
                == .refuse(
                    status: 400, text: "unknown client_id: register the app first (medledger fhir client register)"))
        guard
            case .refuse(400, _) = s.server.beginAuthorization(
                Self.request { $0["redirect_uri"] = "https://evil.example/cb" }, user: Self.patient)
        else {
            Issue.record("redirected to an unregistered URI")
            return
        }
        for (edit, error) in [
            ({ (q: inout [String: String]) in q["code_challenge_method"] = "plain" }, "invalid_request"),
            ({ (q: inout [String: String]) in q["state"] = "short" }, "invalid_request"),
            ({ (q: inout [String: String]) in q["aud"] = "https://other.example/fhir" }, "invalid_request"),
            ({ (q: inout [String: String]) in q["response_type"] = "token" }, "unsupported_response_type"),
            ({ (q: inout [String: String]) in q["scope"] = "system/DocumentReference.rs" }, "invalid_scope"),
        ] {
            guard case .redirect(let url) = s.server.beginAuthorization(Self.request(edit), user: Self.patient) else {
                Issue.record("no error redirect")
                continue
            }
            #expect(url.hasPrefix(Self.redirect) && url.contains("error=\(error)") && !url.contains("code="), "\(url)")
        }
        // Without a signed-in user: 401, nothing issued.
        guard case .refuse(401, _) = s.server.beginAuthorization(Self.request(), user: nil) else {
            Issue.record("no sign-in asked")
            return
        }
        // Declined: access_denied.
        guard case .approve(let ticket, _, _) = s.server.beginAuthorization(Self.request(), user: Self.patient) else {
            Issue.record("no approval")
            return
        }
        let other = UserIdentity(
            pid: "pid-other", org: "hospital-a", role: "patient", certSerial: "01", certIssuer: "AAAA")
        guard case .refuse(403, _) = s.server.finishAuthorization(ticket: ticket, user: other, approved: true) else {
            Issue.record("another user answered")
            return
        }
        guard case .approve(let ticket2, _, _) = s.server.beginAuthorization(Self.request(), user: Self.patient),
            case .redirect(let denied) = s.server.finishAuthorization(
                ticket: ticket2, user: Self.patient, approved: false)
        else {
            Issue.record("no denial redirect")
            return
        }
        #expect(denied.contains("error=access_denied"))
    }

    @Test func codesAreSingleUseShortLivedAndBoundToVerifierAndRedirect() async throws {
        let s = try await Self.setup()
        func refused(_ body: () async throws -> AuthorizationServer.TokenResponse) async -> String? {
            do {
                _ = try await body()
                return nil
            } catch { return (error as? OAuthError)?.code ?? "\(error)" }
        }
        let c1 = try Self.code(s)
        #expect(
            await refused { try await Self.redeem(s, c1, verifier: String(repeating: "x", count: 43)) }
                == "invalid_grant")
        #expect(await refused { try await Self.redeem(s, c1) } == "invalid_grant")  // spent by the failed attempt
        let c2 = try Self.code(s)
        #expect(
            await refused { try await Self.redeem(s, c2, redirect: "https://app.example/other") } == "invalid_grant")
        let c3 = try Self.code(s)
        s.clock.advance(61)
        #expect(await refused { try await Self.redeem(s, c3) } == "invalid_grant")
        let c4 = try Self.code(s)
        _ = try await Self.redeem(s, c4)
        #expect(await refused { try await Self.redeem(s, c4) } == "invalid_grant")
        #expect(await refused { try await s.server.token(["grant_type": "password"]) } == "unsupported_grant_type")
    }

    @Test func tokensAreRefusedWhenExpiredEarlyForeignRevokedOrTheirUserRevoked() async throws {
        let s = try await Self.setup()
        let token = try await Self.redeem(s, try Self.code(s)).access_token
        func status(_ header: String?) async -> Int {
            do {
                _ = try await s.server.caller(bearer: header)
                return 200
            } catch { return error.status }
        }
        #expect(await status("Bearer " + token) == 200)
        #expect(await status(nil) == 401)
        #expect(await status("Basic " + token) == 401)
        // Not yet valid (a clock behind the issuer's) and expired.
        s.clock.advance(-30)
        #expect(await status("Bearer " + token) == 401)
        s.clock.advance(30 + 300)
        #expect(await status("Bearer " + token) == 401)
        s.clock.advance(-300)
        // Another node's token (its own key and audience) is refused; with the same key but another
        // audience it is refused for the audience.
        let other = await TokenAuthority(
            key: ES384PrivateKey(), issuer: "https://fhir.hospital-a.example/oauth",
            audience: "https://elsewhere.example/fhir")
        let foreign = try await other.issue(
            scopes: ScopeSet([]), clientID: "app", subject: "pid-patient", org: "hospital-a", role: "patient",
            user: Self.patient, now: s.clock.read())
        #expect(await status("Bearer " + foreign.token) == 401)
        let key = ES384PrivateKey()
        let here = await TokenAuthority(key: key, issuer: "i", audience: Self.base)
        let there = await TokenAuthority(key: key, issuer: "i", audience: "https://elsewhere.example/fhir")
        let misdirected = try await there.issue(
            scopes: ScopeSet([]), clientID: "app", subject: "p", org: "o", role: "patient", user: Self.patient,
            now: s.clock.read())
        for (authority, token, expected) in [
            (s.server.tokens, foreign.token, TokenRejection.badSignature), (here, misdirected.token, .wrongAudience),
        ] {
            do {
                _ = try await authority.verify(token, now: s.clock.read())
                Issue.record("a token verified that should not")
            } catch { #expect(error == expected) }
        }
        // The user's certificate revoked: the token dies with it.
        s.backend.revoked.withLock { _ = $0.insert("pid-patient") }
        #expect(await status("Bearer " + token) == 401)
        s.backend.revoked.withLock { $0.removeAll() }
        #expect(await status("Bearer " + token) == 200)
        // Revoked (RFC 7009); introspection then says inactive.
        #expect(await s.server.introspect(token)["active"] as? Bool == true)
        await s.server.revoke(token)
        #expect(await status("Bearer " + token) == 401)
        #expect(await s.server.introspect(token)["active"] as? Bool == false)
    }

    @Test func oneUserCannotCrowdOutOthersAndLoopbackRedirectsMayPickTheirPort() async throws {
        let s = try await Self.setup()
        for _ in 0..<20 {
            guard case .approve = s.server.beginAuthorization(Self.request(), user: Self.patient) else {
                Issue.record("refused early")
                return
            }
        }
        guard case .refuse(503, _) = s.server.beginAuthorization(Self.request(), user: Self.patient) else {
            Issue.record("no per-user bound")
            return
        }
        let other = UserIdentity(
            pid: "pid-other", org: "hospital-a", role: "patient", certSerial: "01", certIssuer: "AAAA")
        guard case .approve = s.server.beginAuthorization(Self.request(), user: other) else {
            Issue.record("another user was crowded out")
            return
        }
        // Unparseable scopes are dropped, not fatal to the request.
        guard
            case .approve(_, _, let scope) = s.server.beginAuthorization(
                Self.request { $0["scope"] = "patient/DocumentReference.rs patient/Observation.rs?category=x bad!" },
                user: other)
        else {
            Issue.record("a granular scope spoiled the request")
            return
        }
        #expect(scope == "patient/DocumentReference.rs")
        #expect(
            AuthorizationServer.redirectMatches(registered: "http://127.0.0.1/cb", given: "http://127.0.0.1:53111/cb"))
        #expect(
            !AuthorizationServer.redirectMatches(
                registered: "http://127.0.0.1/cb", given: "http://127.0.0.1:53111/other"))
        #expect(
            !AuthorizationServer.redirectMatches(
                registered: "https://app.example/cb", given: "https://app.example:8443/cb"))
        #expect(
            !AuthorizationServer.redirectMatches(
                registered: "http://127.0.0.1/cb", given: "http://localhost.evil.example/cb"))
    }

    struct Assertion: JWTPayload {
        var iss: String
        var sub: String
        var aud: String
        var exp: Int
        var iat: Int?
        var jti: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// The jti replay cache starts empty at each start, so for an assertion's lifetime after a start
    /// only assertions made since are taken: one captured before a restart cannot be replayed.
    @Test func assertionsMadeBeforeAStartAreRefusedWhileTheyCouldStillLive() async throws {
        let s = try await Self.setup()
        let key = ES384PrivateKey()
        let p = try #require(key.parameters)
        let jwks =
            #"{"keys":[{"kty":"EC","crv":"P-384","x":"\#(p.x)","y":"\#(p.y)","kid":"k1","alg":"ES384","use":"sig"}]}"#
        try await s.server.clients.register(
            RegisteredClient(
                clientID: "ehr", kind: .backend, name: "EHR", org: "hospital-a", redirectURIs: [], jwks: jwks,
                scope: "system/DocumentReference.rs",
                registeredBy: "admin", registeredAt: "2026-12-01T00:00:00Z"))
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: "k1")
        let start = Int(s.clock.read().timeIntervalSince1970)
        func ask(iat: Int?, exp: Int) async throws -> String? {
            let signed = try await keys.sign(
                Assertion(iss: "ehr", sub: "ehr", aud: Self.tokenURL, exp: exp, iat: iat, jti: UUID().uuidString),
                kid: "k1")
            do {
                _ = try await s.server.token([
                    "grant_type": "client_credentials", "scope": "system/DocumentReference.rs",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": signed,
                ])
                return nil
            } catch { return error.text }
        }
        #expect(try await ask(iat: start - 60, exp: start + 200)?.contains("made before this server started") == true)
        #expect(try await ask(iat: nil, exp: start + 200)?.contains("needs an iat") == true)
        #expect(try await ask(iat: start - 2, exp: start + 200) == nil)  // a client clock a little behind
        s.clock.advance(301)
        let now = start + 301
        #expect(try await ask(iat: nil, exp: now + 200) == nil)  // nothing from before the start can still live
    }

    @Test func clientRegistrationsAreCheckedAndSurviveARestart() async throws {
        let s = try await Self.setup()
        func refused(_ c: RegisteredClient) async -> Int? {
            do {
                try await s.server.clients.register(c)
                return nil
            } catch let f as FHIRFailure { return f.status } catch { return -1 }
        }
        let base = RegisteredClient(
            clientID: "x", kind: .app, name: "x", org: "hospital-a", redirectURIs: ["http://evil.example/cb"],
            jwks: nil, scope: "patient/*.rs", registeredBy: "a", registeredAt: "t")
        #expect(await refused(base) == 400)  // http to a non-loopback host
        var sys = base
        (sys.redirectURIs, sys.scope) = (["https://ok.example/cb"], "system/DocumentReference.rs")
        #expect(await refused(sys) == 400)  // apps hold no system/ scopes
        let privateKey = #"{"keys":[{"kty":"EC","crv":"P-384","kid":"k","x":"AA","y":"AA","d":"AA"}]}"#
        let backend = RegisteredClient(
            clientID: "ehr", kind: .backend, name: "ehr", org: "hospital-a", redirectURIs: [], jwks: privateKey,
            scope: "system/DocumentReference.rs", registeredBy: "a", registeredAt: "t")
        #expect(await refused(backend) == 400)
        var p256 = backend
        p256.jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AA","y":"AA"}]}"#
        #expect(await refused(p256) == 400)
        var stolen = RegisteredClient(
            clientID: "app", kind: .app, name: "x", org: "hospital-b", redirectURIs: ["https://b.example/cb"],
            jwks: nil, scope: "patient/*.rs", registeredBy: "b", registeredAt: "t")
        #expect(await refused(stolen) == 409)  // another organisation's client id
        stolen.org = "hospital-a"
        #expect(await refused(stolen) == nil)
        let reopened = try ClientRegistry(path: s.dir + "/clients.json")
        #expect(reopened.client("app")?.redirectURIs == ["https://b.example/cb"])
        #expect(try reopened.remove("app", org: "hospital-b") == false)
        #expect(try reopened.remove("app", org: "hospital-a"))
        #expect(try ClientRegistry(path: s.dir + "/clients.json").client("app") == nil)
    }
}
