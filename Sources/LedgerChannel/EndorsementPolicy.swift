import LedgerProtos

/// Who must endorse a chaincode's transactions. Two kinds, as in Fabric:
///
/// - signature policies over organisation roles: `AND('hospital-a.admin', 'hospital-b.node')`,
///   `OR(…)`, `OutOf(2, …)`; a principal `org.member` matches any endorsing identity of that
///   organisation, which is a node's: only a policy that names another role lets that role endorse;
/// - implicit policies over the channel's organisations: `ANY`, `MAJORITY`, `ALL` (one endorsement by
///   a node of each counted organisation).
///
/// Evaluation is pure: it takes the (already signature-checked) endorsers and answers yes or no.
public indirect enum EndorsementPolicy: Sendable, Equatable, CustomStringConvertible {
    case principal(org: String, role: String)  // role "member" matches every role
    case outOf(Int, [EndorsementPolicy])
    case implicitAny
    case implicitMajority
    case implicitAll

    public static func and(_ p: [EndorsementPolicy]) -> EndorsementPolicy { .outOf(p.count, p) }
    public static func or(_ p: [EndorsementPolicy]) -> EndorsementPolicy { .outOf(1, p) }

    public struct Endorser: Sendable, Equatable, Hashable {
        public var org: String
        public var role: String

        public init(org: String, role: String) {
            self.org = org
            self.role = role
        }
    }

    /// True when `endorsers` satisfy the policy. Each endorser counts once: `AND('a.member','a.member')`
    /// needs two different endorsers of a.
    public func isSatisfied(by endorsers: [Endorser], channelOrgs: Set<String>) -> Bool {
        switch self {
        case .implicitAny: return endorsers.contains { $0.role == Self.endorsingRole && channelOrgs.contains($0.org) }
        case .implicitMajority: return endorsingOrgs(endorsers, channelOrgs) * 2 > channelOrgs.count
        case .implicitAll: return endorsingOrgs(endorsers, channelOrgs) == channelOrgs.count && !channelOrgs.isEmpty
        case .principal, .outOf:
            return Self.match(self, endorsers, [], { _ in true })
        }
    }

    /// The role whose identities endorse unless a policy names another: the peers' node identities.
    static let endorsingRole = "node"

    private func endorsingOrgs(_ endorsers: [Endorser], _ channelOrgs: Set<String>) -> Int {
        Set(endorsers.filter { $0.role == Self.endorsingRole }.map(\.org)).intersection(channelOrgs).count
    }

    /// Full backtracking in continuation-passing style: every way of giving distinct endorsers to the
    /// principals is tried until one satisfies the rest of the policy (`k`). Policies are small (parse
    /// caps them), so the search is too.
    private static func match(
        _ policy: EndorsementPolicy, _ endorsers: [Endorser], _ used: Set<Int>, _ k: (Set<Int>) -> Bool
    ) -> Bool {
        switch policy {
        case .principal(let org, let role):
            for i in endorsers.indices
            where !used.contains(i) && endorsers[i].org == org
                && endorsers[i].role == (role == "member" ? endorsingRole : role)
            {
                if k(used.union([i])) { return true }
            }
            return false
        case .outOf(let n, let subs):
            return choose(n, subs[...], endorsers, used, k)
        default:
            return false
        }
    }

    private static func choose(
        _ n: Int, _ subs: ArraySlice<EndorsementPolicy>, _ endorsers: [Endorser], _ used: Set<Int>,
        _ k: (Set<Int>) -> Bool
    ) -> Bool {
        if n <= 0 { return k(used) }
        guard subs.count >= n, let first = subs.first else { return false }
        let rest = subs.dropFirst()
        if match(first, endorsers, used, { u in choose(n - 1, rest, endorsers, u, k) }) { return true }
        return choose(n, rest, endorsers, used, k)
    }

    var principalCount: Int {
        switch self {
        case .principal: return 1
        case .outOf(_, let subs): return subs.reduce(0) { $0 + $1.principalCount }
        default: return 0
        }
    }

    public var description: String {
        switch self {
        case .principal(let o, let r): return "'\(o).\(r)'"
        case .outOf(let n, let subs):
            if n == subs.count { return "AND(\(subs.map(\.description).joined(separator: ", ")))" }
            if n == 1 { return "OR(\(subs.map(\.description).joined(separator: ", ")))" }
            return "OutOf(\(n), \(subs.map(\.description).joined(separator: ", ")))"
        case .implicitAny: return "ANY"
        case .implicitMajority: return "MAJORITY"
        case .implicitAll: return "ALL"
        }
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Parses the textual form: `ANY`, `MAJORITY`, `ALL`, `'org.role'`, `AND(…)`, `OR(…)`, `OutOf(n, …)`.
    public static func parse(_ text: String) throws -> EndorsementPolicy {
        guard text.count <= 4096 else { throw ParseError(description: "policy longer than 4096 characters") }
        var p = Parser(chars: Array(text.unicodeScalars))
        let policy = try p.policy()
        guard policy.principalCount <= 64 else { throw ParseError(description: "policy names more than 64 principals") }
        p.skipSpace()
        guard p.atEnd else { throw ParseError(description: "unexpected text after policy at position \(p.i): \(text)") }
        return policy
    }

    struct Parser {
        let chars: [Unicode.Scalar]
        var i = 0
        var atEnd: Bool { i >= chars.count }

        mutating func skipSpace() { while !atEnd, chars[i].properties.isWhitespace { i += 1 } }

        mutating func word() -> String {
            skipSpace()
            var w = ""
            while !atEnd, chars[i].properties.isAlphabetic || ("0"..."9").contains(chars[i]) {
                w.unicodeScalars.append(chars[i])
                i += 1
            }
            return w
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            skipSpace()
            guard !atEnd, chars[i] == c else { throw ParseError(description: "expected '\(c)' at position \(i)") }
            i += 1
        }

        mutating func policy() throws -> EndorsementPolicy {
            skipSpace()
            if !atEnd, chars[i] == "'" {
                i += 1
                var s = ""
                while !atEnd, chars[i] != "'" {
                    s.unicodeScalars.append(chars[i])
                    i += 1
                }
                try expect("'")
                guard let dot = s.lastIndex(of: "."), dot != s.startIndex else {
                    throw ParseError(description: "principal \(s.debugDescription) is not 'org.role'")
                }
                let role = String(s[s.index(after: dot)...])
                guard
                    role == "member" || ["admin", "patient", "doctor", "third-party", "device", "node"].contains(role)
                else {
                    throw ParseError(description: "unknown role \(role.debugDescription) in \(s.debugDescription)")
                }
                return .principal(org: String(s[..<dot]), role: role)
            }
            let w = word()
            switch w.uppercased() {
            case "ANY": return .implicitAny
            case "MAJORITY": return .implicitMajority
            case "ALL": return .implicitAll
            case "AND", "OR":
                let subs = try list()
                return w.uppercased() == "AND" ? .and(subs) : .or(subs)
            case "OUTOF":
                try expect("(")
                let numText = word()
                guard let n = Int(numText), n > 0 else {
                    throw ParseError(description: "OutOf needs a positive count, got \(numText.debugDescription)")
                }
                try expect(",")
                var subs = [try policy()]
                skipSpace()
                while !atEnd, chars[i] == "," {
                    i += 1
                    subs.append(try policy())
                    skipSpace()
                }
                try expect(")")
                guard n <= subs.count else {
                    throw ParseError(description: "OutOf(\(n), …) has only \(subs.count) policies")
                }
                return .outOf(n, subs)
            default:
                throw ParseError(description: "unknown policy \(w.debugDescription)")
            }
        }

        mutating func list() throws -> [EndorsementPolicy] {
            try expect("(")
            var subs = [try policy()]
            skipSpace()
            while !atEnd, chars[i] == "," {
                i += 1
                subs.append(try policy())
                skipSpace()
            }
            try expect(")")
            return subs
        }
    }
}
