import Crypto
import Foundation
import JWTKit
import LedgerFHIR
import Synchronization

/// The claims of an access token this node issues (JWS compact, ES384). Times are checked by
/// `TokenAuthority` with its own clock, not by jwt-kit's, so tests can move time.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var iss: String
    public var aud: String
    /// The user's PID, or a backend service's client id.
    public var sub: String
    public var exp: Int
    public var nbf: Int
    public var iat: Int
    public var jti: String
    public var scope: String
    public var client_id: String
    public var org: String
    public var role: String
    /// `user` or `system`.
    public var kind: String
    /// The patient in context (patients' own tokens).
    public var patient: String?
    /// The user's certificate, so that each request can ask whether it has been revoked since.
    public var cert_serial: String?
    public var cert_issuer: String?

    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Why a bearer token is refused: every case is a 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
public enum TokenRejection: Error, Equatable, CustomStringConvertible {
    case malformed, badSignature, expired, notYetValid, wrongAudience, wrongIssuer, revoked

    public var description: String {
        switch self {
        case .malformed: return "the access token is not a JWS this node issued"
        case .badSignature: return "the access token's signature does not verify"
        case .expired: return "the access token has expired"
        case .notYetValid: return "the access token is not valid yet"
        case .wrongAudience: return "the access token is for another audience"
        case .wrongIssuer: return "the access token is from another issuer"
        case .revoked: return "the access token has been revoked"
        }
    }
}

/// Signs and checks the node's access tokens with its ES384 key. The node makes a new key at each
/// start: revocations are kept in memory, so a token revoked before a restart must not come back
/// after it (apps ask for a new token; none lives over 5 minutes anyway).
public final class TokenAuthority: Sendable {
    public let issuer: String
    public let audience: String
    public let lifetime: Int
    let keys: JWTKeyCollection
    let kid: String
    /// Tokens whose signature has verified, with their claims: a P-384 verification costs more than
    /// the rest of a read, and an app presents the same token for minutes. A tampered token is
    /// another string, so it misses and is verified; times and audience are checked on every use.
    private let verified = Mutex<[String: AccessTokenClaims]>([:])
    static let verifiedMax = 10_000

    /// An authority with a key made now (the node's way: see above).
    public static func withNewKey(issuer: String, audience: String, lifetime: Int = 300) async -> TokenAuthority {
        await TokenAuthority(key: ES384PrivateKey(), issuer: issuer, audience: audience, lifetime: lifetime)
    }

    public init(key: ES384PrivateKey, issuer: String, audience: String, lifetime: Int = 300) async {
        precondition((1...300).contains(lifetime), "access tokens live at most 300 s")
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        // The kid names the key by its public half, so a new key gets a new kid.
        kid = String(Base64URL.encode(Array(SHA256.hash(data: Array(key.publicKey.pemRepresentation.utf8)))).prefix(16))
        keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
    }

    /// A token for `user` (scopes granted, the app's client id), or for a backend service when `user` is nil.
    public func issue(
        scopes: ScopeSet, clientID: String, subject: String, org: String, role: String, user: UserIdentity?, now: Date
    ) async throws -> (token: String, claims: AccessTokenClaims) {
        let t = Int(now.timeIntervalSince1970)
        let claims = AccessTokenClaims(
            iss: issuer, aud: audience, sub: subject, exp: t + lifetime, nbf: t, iat: t,
            jti: UUID().uuidString.lowercased(), scope: scopes.text,
            client_id: clientID, org: org, role: role, kind: user == nil ? "system" : "user",
            patient: role == "patient" ? subject : nil,
            cert_serial: user?.certSerial, cert_issuer: user?.certIssuer)
        var header = JWTHeader()
        header.typ = "at+jwt"
        return (try await keys.sign(claims, kid: JWKIdentifier(string: kid), header: header), claims)
    }

    /// The claims of a token this node signed for this audience, valid at `now`.
    public func verify(_ token: String, now: Date) async throws(TokenRejection) -> AccessTokenClaims {
        guard token.count <= 8192, token.split(separator: ".", omittingEmptySubsequences: false).count == 3 else {
            throw .malformed
        }
        let claims = try await signatureChecked(token)
        let t = Int(now.timeIntervalSince1970)
        guard claims.iss == issuer else { throw .wrongIssuer }
        guard claims.aud == audience else { throw .wrongAudience }
        guard t < claims.exp else { throw .expired }
        guard t >= claims.nbf else { throw .notYetValid }
        return claims
    }

    /// The claims of a token whose signature verifies with this node's key (cached).
    func signatureChecked(_ token: String) async throws(TokenRejection) -> AccessTokenClaims {
        if let known = verified.withLock({ $0[token] }) { return known }
        let claims: AccessTokenClaims
        do { claims = try await keys.verify(token, as: AccessTokenClaims.self) } catch let e as JWTError {
            // A signature that fails, or a kid or algorithm this node has no key for: another signer.
            throw [.signatureVerificationFailed, .unknownKID, .noKeyProvided].contains(e.errorType)
                ? .badSignature : .malformed
        } catch {
            throw .malformed
        }
        verified.withLock { cache in
            if cache.count >= Self.verifiedMax {
                // Expired tokens go first; if all are live (a flood of fresh tokens), start over.
                let now = Int(Date().timeIntervalSince1970)
                cache = cache.filter { $0.value.exp > now }
                if cache.count >= Self.verifiedMax { cache.removeAll(keepingCapacity: true) }
            }
            cache[token] = claims
        }
        return claims
    }
}
