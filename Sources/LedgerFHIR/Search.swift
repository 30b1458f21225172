import Foundation

/// A FHIR `date` search parameter (R4 §3.1.1.5.6): a prefix (eq, lt, le, gt, ge; eq if none) and a
/// date of any precision (year, month, day, or a dateTime with a zone), which stands for the whole
/// range it names.
public struct DateFilter: Sendable, Equatable {
    public enum Prefix: String, Sendable { case eq, lt, le, gt, ge }
    public var prefix: Prefix
    public var start: Date
    public var end: Date

    public init?(_ text: String) {
        guard text.count <= 64 else { return nil }
        var value = Substring(text)
        var prefix = Prefix.eq
        if let p = Prefix(rawValue: String(text.prefix(2))) {
            prefix = p
            value = value.dropFirst(2)
        } else if text.first?.isLetter == true {
            return nil  // sa, eb, ap and the like are not supported
        }
        guard let (start, end) = Self.range(String(value)) else { return nil }
        (self.prefix, self.start, self.end) = (prefix, start, end)
    }

    public func matches(_ t: Date) -> Bool {
        switch prefix {
        case .eq: return start <= t && t < end
        case .lt: return t < start
        case .le: return t < end
        case .gt: return t >= end
        case .ge: return t >= start
        }
    }

    /// The instants a FHIR date or dateTime covers: [start, end).
    static func range(_ s: String) -> (Date, Date)? {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        if !s.contains("T"), (1...3).contains(parts.count), parts.allSatisfy({ $0.allSatisfy(\.isNumber) }) {
            guard parts[0].count == 4, parts.dropFirst().allSatisfy({ $0.count == 2 }) else { return nil }
            let n = parts.compactMap { Int($0) }
            let c = DateComponents(year: n[0], month: n.count > 1 ? n[1] : 1, day: n.count > 2 ? n[2] : 1)
            guard let start = utc.date(from: c),
                utc.dateComponents([.year, .month, .day], from: start)
                    == DateComponents(year: c.year, month: c.month, day: c.day)
            else { return nil }
            let unit: Calendar.Component = n.count == 1 ? .year : n.count == 2 ? .month : .day
            guard let end = utc.date(byAdding: unit, value: 1, to: start) else { return nil }
            return (start, end)
        }
        guard let t = RFC3339Time.parse(s) else { return nil }
        return (t, t + 1)
    }
}

/// RFC 3339 times as the ledger writes them (with or without fractional seconds).
public enum RFC3339Time {
    public static func parse(_ s: String) -> Date? {
        let plain = ISO8601DateFormatter()
        if let d = plain.date(from: s) { return d }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: s)
    }

    public static func format(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }
}

/// URL query strings and form bodies (`application/x-www-form-urlencoded`): pairs in order,
/// percent-decoded, '+' read as a space. Nil for text that does not decode.
public enum FormEncoding {
    public static func pairs(_ text: String) -> [(String, String)]? {
        var out: [(String, String)] = []
        for part in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let k = decode(kv[0]), let v = kv.count > 1 ? decode(kv[1]) : "" else { return nil }
            out.append((k, v))
        }
        return out
    }

    /// One value per name (OAuth forbids repeating a parameter, RFC 6749 §3.1); nil if any repeats.
    public static func single(_ pairs: [(String, String)]) -> [String: String]? {
        var out: [String: String] = [:]
        for (k, v) in pairs {
            guard out[k] == nil else { return nil }
            out[k] = v
        }
        return out
    }

    public static func encode(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return pairs.map {
            "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
        }.joined(separator: "&")
    }
}
