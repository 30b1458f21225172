import Foundation
import JWTKit
import LedgerFHIR
import Synchronization

/// An application the hospital's administrator registered with this node's authorization server.
public struct RegisteredClient: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A patient or practitioner app: authorization code with PKCE, a public client.
        case app
        /// A hospital system: client_credentials with a `private_key_jwt` assertion.
        case backend
    }
    public var clientID: String
    public var kind: Kind
    public var name: String
    public var org: String
    /// Apps: where the authorization server may send the code.
    public var redirectURIs: [String]
    /// Backend services: their public keys (a JWKS, ES384 or RS384).
    public var jwks: String?
    /// The most this client may be granted.
    public var scope: String
    public var registeredBy: String
    public var registeredAt: String

    public init(
        clientID: String, kind: Kind, name: String, org: String, redirectURIs: [String], jwks: String?, scope: String,
        registeredBy: String, registeredAt: String
    ) {
        (self.clientID, self.kind, self.name, self.org, self.redirectURIs, self.jwks, self.scope) = (
            clientID, kind, name, org, redirectURIs, jwks, scope
        )
        (self.registeredBy, self.registeredAt) = (registeredBy, registeredAt)
    }

    /// A client as registered, or why not (400).
    public func validated() throws(FHIRFailure) -> RegisteredClient {
        guard (1...64).contains(clientID.count),
            clientID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
        else {
            throw FHIRFailure(400, "client_id must be 1–64 characters of letters, digits, '-', '.', '_'")
        }
        guard (1...128).contains(name.count) else { throw FHIRFailure(400, "name must be 1–128 characters") }
        guard let scopes = ScopeSet(parsing: scope), !scopes.scopes.isEmpty else {
            throw FHIRFailure(400, "scope \(scope.debugDescription) is not a list of SMART scopes")
        }
        var out = self
        switch kind {
        case .app:
            guard jwks == nil else {
                throw FHIRFailure(400, "an app is a public client: it registers redirect URIs, not keys")
            }
            guard (1...10).contains(redirectURIs.count) else {
                throw FHIRFailure(400, "an app registers 1–10 redirect URIs")
            }
            for uri in redirectURIs { try Self.checkRedirect(uri) }
            for case .resource(let context, _, _) in scopes.scopes where context == .system {
                throw FHIRFailure(400, "an app may not hold system/ scopes; register a backend service")
            }
        case .backend:
            guard redirectURIs.isEmpty else { throw FHIRFailure(400, "a backend service has no redirect URIs") }
            guard let jwks else { throw FHIRFailure(400, "a backend service registers its public keys (--jwks FILE)") }
            out.jwks = try ClientKeys.normalized(jwks)
            for s in scopes.scopes {
                guard case .resource(.system, _, _) = s else {
                    throw FHIRFailure(400, "a backend service holds only system/ scopes, not \(s)")
                }
            }
        }
        out.scope = scopes.text
        return out
    }

    /// https anywhere, or http only to the loopback address (a native app's local listener, RFC 8252).
    static func checkRedirect(_ uri: String) throws(FHIRFailure) {
        guard uri.count <= 512, let c = URLComponents(string: uri), let host = c.host, !host.isEmpty, c.fragment == nil
        else {
            throw FHIRFailure(400, "redirect URI \(uri.debugDescription) is not an absolute URL without a fragment")
        }
        let loopback = ["127.0.0.1", "localhost", "[::1]", "::1"].contains(host)
        guard c.scheme == "https" || (c.scheme == "http" && loopback) else {
            throw FHIRFailure(400, "redirect URI \(uri) must be https (http only to the loopback address)")
        }
    }
}

/// A backend service's registered public keys, as jwt-kit reads them.
enum ClientKeys {
    static let algorithms: Set<String> = ["ES384", "RS384"]

    /// The JWKS with every key's `alg` set (ES384 for P-384, RS384 for RSA); refuses private keys,
    /// other curves and algorithms, keys without `kid`, and RSA under 2048 bits.
    static func normalized(_ json: String) throws(FHIRFailure) -> String {
        guard json.utf8.count <= 64 * 1024,
            let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]], (1...10).contains(keys.count)
        else { throw FHIRFailure(400, "the JWKS must be a JSON object {\"keys\": [1–10 keys]}") }
        var out: [[String: Any]] = []
        for var k in keys {
            guard let kid = k["kid"] as? String, (1...128).contains(kid.count) else {
                throw FHIRFailure(400, "every key needs a kid")
            }
            guard k["d"] == nil, k["p"] == nil else {
                throw FHIRFailure(400, "key \(kid) holds a private part; register only public keys")
            }
            switch k["kty"] as? String {
            case "EC":
                guard k["crv"] as? String == "P-384" else {
                    throw FHIRFailure(400, "key \(kid): EC keys must be P-384 (ES384)")
                }
                k["alg"] = try alg(k["alg"], "ES384", kid)
            case "RSA":
                guard let n = k["n"] as? String, n.count >= 342 else {
                    throw FHIRFailure(400, "key \(kid): RSA keys must have at least 2048 bits")
                }
                k["alg"] = try alg(k["alg"], "RS384", kid)
            default:
                throw FHIRFailure(400, "key \(kid): kty must be EC (P-384) or RSA")
            }
            out.append(k)
        }
        guard let data = try? JSONSerialization.data(withJSONObject: ["keys": out], options: [.sortedKeys]),
            let text = String(data: data, encoding: .utf8)
        else {
            throw FHIRFailure(400, "the JWKS does not re-encode")
        }
        return text
    }

    static func alg(_ given: Any?, _ expected: String, _ kid: String) throws(FHIRFailure) -> String {
        guard let given else { return expected }
        guard given as? String == expected else { throw FHIRFailure(400, "key \(kid): alg must be \(expected)") }
        return expected
    }

    /// The `alg` a registered JWKS gives the key `kid`, nil if it has no such key.
    static func algorithm(of kid: String, in jwks: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(jwks.utf8)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else { return nil }
        return keys.first { $0["kid"] as? String == kid }?["alg"] as? String
    }

    /// The keys as a jwt-kit collection (fails for a key jwt-kit cannot use).
    static func collection(_ jwks: String) async throws(FHIRFailure) -> JWTKeyCollection {
        do { return try await JWTKeyCollection().add(jwksJSON: jwks) } catch {
            throw FHIRFailure(400, "the JWKS holds a key that cannot verify signatures: \(error)")
        }
    }
}

/// The registered clients, in one JSON file in the node's data directory (replaced atomically).
public final class ClientRegistry: Sendable {
    public static let maxClients = 1000
    let path: String
    private let clients: Mutex<[String: RegisteredClient]>
    /// jwt-kit collections of backend services' keys, built once per registration. Keyed by the
    /// JWKS itself too, so that a collection built from keys since replaced is never used.
    private let keyCache = Mutex<[String: (jwks: String, keys: JWTKeyCollection)]>([:])

    public init(path: String) throws {
        self.path = path
        var loaded: [String: RegisteredClient] = [:]
        if let data = FileManager.default.contents(atPath: path) {
            do {
                for c in try JSONDecoder().decode([RegisteredClient].self, from: data) { loaded[c.clientID] = c }
            } catch { throw FHIRFailure(500, "the client registry \(path) does not decode: \(error)") }
        }
        clients = Mutex(loaded)
    }

    public func client(_ id: String) -> RegisteredClient? { clients.withLock { $0[id] } }

    public func all(org: String? = nil) -> [RegisteredClient] {
        clients.withLock { Array($0.values) }.filter { org == nil || $0.org == org }.sorted {
            $0.clientID < $1.clientID
        }
    }

    /// Registers (or replaces, within the same organisation) a client; false if it replaced one.
    @discardableResult
    public func register(_ client: RegisteredClient) async throws -> Bool {
        let c = try client.validated()
        if c.kind == .backend { _ = try await ClientKeys.collection(c.jwks ?? "") }
        // Saved under the lock, so two registrations cannot write their files out of order.
        let fresh: Bool = try clients.withLock { all in
            if let old = all[c.clientID], old.org != c.org {
                throw FHIRFailure(409, "client_id \(c.clientID) belongs to another organisation")
            }
            guard all[c.clientID] != nil || all.count < Self.maxClients else {
                throw FHIRFailure(413, "this node holds \(Self.maxClients) clients; remove some first")
            }
            var next = all
            next[c.clientID] = c
            try save(Array(next.values))
            let fresh = all[c.clientID] == nil
            all = next
            return fresh
        }
        keyCache.withLock { _ = $0.removeValue(forKey: c.clientID) }
        return fresh
    }

    /// Removes a client of `org`; its tokens stop working at once (each request looks it up).
    public func remove(_ id: String, org: String) throws -> Bool {
        let removed: Bool = try clients.withLock { all in
            guard let c = all[id], c.org == org else { return false }
            var next = all
            next[id] = nil
            try save(Array(next.values))
            all = next
            return true
        }
        if removed { keyCache.withLock { _ = $0.removeValue(forKey: id) } }
        return removed
    }

    func keys(of client: RegisteredClient) async throws(FHIRFailure) -> JWTKeyCollection {
        let jwks = client.jwks ?? ""
        if let cached = keyCache.withLock({ $0[client.clientID] }), cached.jwks == jwks { return cached.keys }
        let built = try await ClientKeys.collection(jwks)
        keyCache.withLock { $0[client.clientID] = (jwks, built) }
        return built
    }

    private func save(_ list: [RegisteredClient]) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try e.encode(list.sorted { $0.clientID < $1.clientID }).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
