import Crypto
import Foundation

/// One SMART scope: `patient|user|system/Type.cruds` (v2), or the v1 spellings `.read`, `.write`,
/// `.*`, which mean `rs`, `cud` and `cruds`. Non-resource scopes (`openid`, `fhirUser`,
/// `launch/patient`, `offline_access`) are `.other`.
public enum SMARTScope: Hashable, Sendable, CustomStringConvertible {
    public enum Context: String, Sendable, Hashable { case patient, user, system }
    public enum Interaction: Character, Sendable, Hashable, CaseIterable {
        case create = "c"
        case read = "r"
        case update = "u"
        case delete = "d"
        case search = "s"
    }

    case resource(Context, type: String, Set<Interaction>)
    case other(String)

    public init?(_ text: String) {
        guard (1...256).contains(text.count), text.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else { return nil }
        guard let slash = text.firstIndex(of: "/"), let context = Context(rawValue: String(text[..<slash])),
            let dot = text[slash...].firstIndex(of: ".")
        else {
            self = .other(text)
            return
        }
        let type = String(text[text.index(after: slash)..<dot])
        guard type == "*" || (type.first?.isUppercase == true && type.allSatisfy(\.isLetter)) else { return nil }
        var permissions = String(text[text.index(after: dot)...])
        // v2 allows a query after the permissions (`?category=…`); this node grants none such.
        if permissions.contains("?") { return nil }
        switch permissions {
        case "read": permissions = "rs"
        case "write": permissions = "cud"
        case "*": permissions = "cruds"
        default: break
        }
        // v2 wants the letters in order c, r, u, d, s, each at most once.
        let order = Interaction.allCases.map(\.rawValue)
        var seen = Set<Interaction>()
        var last = -1
        for ch in permissions {
            guard let i = order.firstIndex(of: ch), i > last, let interaction = Interaction(rawValue: ch) else {
                return nil
            }
            last = i
            seen.insert(interaction)
        }
        guard !seen.isEmpty else { return nil }
        self = .resource(context, type: type, seen)
    }

    public var description: String {
        switch self {
        case .other(let s): return s
        case .resource(let c, let type, let set):
            return "\(c.rawValue)/\(type)." + String(Interaction.allCases.filter(set.contains).map(\.rawValue))
        }
    }
}

/// The scopes of a request or a token, and what they permit.
public struct ScopeSet: Sendable, Equatable {
    public var scopes: [SMARTScope]

    public init(_ scopes: [SMARTScope]) { self.scopes = scopes }

    /// Space-separated scopes; nil when any one is malformed (an `invalid_scope` for the client).
    public init?(parsing text: String) {
        var out: [SMARTScope] = []
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            guard let s = SMARTScope(String(word)) else { return nil }
            if !out.contains(s) { out.append(s) }
        }
        guard out.count <= 64 else { return nil }
        scopes = out
    }

    /// The well-formed scopes of a request, the rest dropped (SMART: a server grants what it can of
    /// what was asked, and an unknown or granular scope is simply not granted). At most 64.
    public init(lenient text: String) {
        var out: [SMARTScope] = []
        for word in text.split(separator: " ", omittingEmptySubsequences: true).prefix(64) {
            if let s = SMARTScope(String(word)), !out.contains(s) { out.append(s) }
        }
        scopes = out
    }

    public var text: String { scopes.map(\.description).joined(separator: " ") }

    /// Whether some scope of `context` allows `interaction` on `type`.
    public func permits(_ type: String, _ interaction: SMARTScope.Interaction, in context: SMARTScope.Context) -> Bool {
        scopes.contains {
            guard case .resource(let c, let t, let set) = $0 else { return false }
            return c == context && (t == type || t == "*") && set.contains(interaction)
        }
    }

    /// The scopes of `self` that `allowed` covers, narrowed to what `allowed` grants: a request for
    /// `patient/*.cruds` against a policy of `patient/DocumentReference.rs` yields that one scope.
    public func granted(within allowed: ScopeSet) -> ScopeSet {
        var out: [SMARTScope] = []
        for asked in scopes {
            switch asked {
            case .other(let s):
                if allowed.scopes.contains(.other(s)) { out.append(asked) }
            case .resource(let c, let type, let wanted):
                for case .resource(let ac, let at, let give) in allowed.scopes
                where ac == c && (type == "*" || type == at || at == "*") {
                    let both = wanted.intersection(give)
                    let scope = SMARTScope.resource(c, type: type == "*" ? at : type, both)
                    if !both.isEmpty, !out.contains(scope) { out.append(scope) }
                }
            }
        }
        return ScopeSet(out)
    }
}

/// PKCE (RFC 7636) with S256 only: `plain` would let a stolen code be redeemed with itself.
public enum PKCE {
    /// A verifier is 43–128 characters of [A-Z a-z 0-9 - . _ ~].
    public static func isWellFormedVerifier(_ v: String) -> Bool {
        (43...128).contains(v.count)
            && v.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-._~".unicodeScalars.contains($0))
            }
    }

    /// A challenge is the base64url (unpadded) of a SHA-256: 43 characters.
    public static func isWellFormedChallenge(_ c: String) -> Bool {
        c.count == 43
            && c.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_".unicodeScalars.contains($0))
            }
    }

    public static func challenge(for verifier: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(verifier.utf8))))
    }

    public static func verify(verifier: String, challenge: String) -> Bool {
        guard isWellFormedVerifier(verifier) else { return false }
        // Both sides are public-length strings; compare without an early exit anyway.
        let a = Array(Self.challenge(for: verifier).utf8)
        let b = Array(challenge.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_"
        ).replacingOccurrences(of: "=", with: "")
    }
}
