import Crypto
import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerPRE

/// A refusal a handler throws; `invoke` turns it into the response. Thrown rather than returned so a
/// check deep in a helper ends the call without every caller passing responses up.
struct Refusal: Error, Equatable {
    var status: Int32
    var message: String

    static func badRequest(_ m: String) -> Refusal { Refusal(status: 400, message: m) }
    static func forbidden(_ m: String) -> Refusal { Refusal(status: 403, message: m) }
    static func notFound(_ m: String) -> Refusal { Refusal(status: 404, message: m) }
    static func conflict(_ m: String) -> Refusal { Refusal(status: 409, message: m) }
    static func internalError(_ m: String) -> Refusal { Refusal(status: 500, message: m) }

    var response: ChaincodeResponse { ChaincodeResponse(status: status, message: message) }
}

/// Stored data that does not decode: a bug or corruption, never the caller's fault.
struct CorruptRecord: Error, CustomStringConvertible {
    var key: String
    var reason: String
    var description: String { "stored record \(key.debugDescription) does not decode: \(reason)" }
}

// MARK: - JSON

enum Wire {
    /// Sorted keys: every endorser must produce the same bytes for the same record, or their
    /// endorsements (and the write sets) would differ.
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        if let flat = value as? any FlatJSONEncodable { return FlatJSON.object(flat.flatJSONFields) }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    static func decodeStored<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], key: String) throws -> T {
        if let cached = StoredDecodeCache.shared.value(T.self, bytes) { return cached }
        do {
            let value = try JSONDecoder().decode(T.self, from: Data(bytes))
            StoredDecodeCache.shared.keep(value, bytes)
            return value
        } catch { throw CorruptRecord(key: key, reason: "\(error)") }
    }

    /// The request in args[0]: exactly one argument, a JSON object with only known fields.
    static func request<T: MedRecordsRequest>(_ type: T.Type, args: [[UInt8]], function: String) throws(Refusal) -> T {
        guard args.count == 1 else {
            throw .badRequest("\(function) takes one argument, a JSON object; got \(args.count)")
        }
        if let flat = T.self as? any FlatJSONDecodable.Type, let fields = FlatJSON.stringFields(args[0]),
            fields.keys.allSatisfy(T.fieldNames.contains), let request = flat.init(flatJSONFields: fields) as? T
        {
            return request
        }
        let request: Result<T, any Error>
        do { request = try JSONDecoder().decode(Strict<T>.self, from: Data(args[0])).request } catch {
            // Not JSON, or JSON but not an object.
            throw .badRequest("\(function): args[0] is not a JSON object")
        }
        do {
            return try request.get()
        } catch let unknown as Strict<T>.UnknownField {
            throw .badRequest(
                "\(function): unknown field \(unknown.name.debugDescription) (fields: \(T.fieldNames.sorted().joined(separator: ", ")))"
            )
        } catch let DecodingError.keyNotFound(key, _) {
            throw .badRequest("\(function): missing field \(key.stringValue.debugDescription)")
        } catch let DecodingError.valueNotFound(_, context) {
            throw .badRequest("\(function): field \(path(context).debugDescription) is null")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw .badRequest("\(function): field \(path(context).debugDescription) must be \(kind(expected))")
        } catch let DecodingError.dataCorrupted(context) {
            throw .badRequest(
                "\(function): field \(path(context).debugDescription) is not valid: \(context.debugDescription)")
        } catch {
            throw .badRequest("\(function): \(error)")
        }
    }

    /// A request decoded in one parse: its object's keys are checked against the request's fields, then
    /// the request is decoded from the same document. What the request's own decoding throws is kept
    /// in `request`, so that only a document that is not an object fails the decode itself.
    private struct Strict<R: MedRecordsRequest>: Decodable {
        struct UnknownField: Error { var name: String }
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        let request: Result<R, any Error>

        init(from decoder: any Decoder) throws {
            // A closure, not a key path: a key path into this generic type is built anew on every call
            // (1 % of a peer's CPU under P_DE load).
            let keys = try decoder.container(keyedBy: AnyKey.self).allKeys.map { $0.stringValue }
            if let unknown = keys.filter({ !R.fieldNames.contains($0) }).sorted().first {
                request = .failure(UnknownField(name: unknown))
            } else {
                request = Result { try R(from: decoder) }
            }
        }
    }

    private static func path(_ c: DecodingError.Context) -> String {
        c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func kind(_ t: Any.Type) -> String {
        if t == String.self { return "a string" }
        if t == Int.self { return "an integer" }
        if t is [Any].Type || t == [String].self { return "an array" }
        return "of type \(t)"
    }
}

// MARK: - Fields

/// Syntax checks of request fields, all 400s. Lengths are capped so that no request can make a record
/// (or a key) of unbounded size.
enum Field {
    static let pidBytesMax = 128
    static let urlBytesMax = 2048
    static let purposeBytesMax = 256
    /// A signed grant's nonce (a UUID or 16+ random bytes in hex fit).
    static let nonceBytesMax = 64
    static let certificateBytesMax = 16 * 1024
    /// A DER ECDSA P-256 signature is at most 72 bytes, 96 characters of base64.
    static let signatureCharactersMax = 128
    static let digestHexCount = 96
    static let treatmentsPerConsentMax = 100

    /// PIDs are base64url in real certificates; any printable ASCII without spaces is accepted, which
    /// also keeps them out of the reserved composite-key characters.
    static func pid(_ value: String, _ name: String) throws(Refusal) -> String {
        guard !value.isEmpty else { throw .badRequest("\(name) must not be empty") }
        guard value.utf8.count <= pidBytesMax, value.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw .badRequest("\(name) must be 1 to \(pidBytesMax) printable ASCII characters without spaces")
        }
        return value
    }

    static func text(_ value: String, _ name: String, max: Int) throws(Refusal) -> String {
        guard !value.isEmpty else { throw .badRequest("\(name) must not be empty") }
        guard value.utf8.count <= max else { throw .badRequest("\(name) is longer than \(max) bytes") }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badRequest("\(name) must not contain control characters")
        }
        return value
    }

    static func id(_ value: String, _ kind: IDKind, _ name: String) throws(Refusal) -> String {
        guard kind.matches(value) else {
            throw .badRequest(
                "\(name) \(value.debugDescription) is not a \(kind.noun) id (\(kind.rawValue)-, then 24 hex digits)")
        }
        return value
    }

    /// Lower-cased: one spelling of each digest, so equal digests compare equal as strings.
    static func digest(_ value: String) throws(Refusal) -> String {
        guard value.utf8.count == digestHexCount, Hex.decode(value) != nil else {
            throw .badRequest("digest must be the SHA-384 of the ciphertext in hex (\(digestHexCount) hex digits)")
        }
        return value.lowercased()
    }

    static func signature(_ value: String, _ name: String) throws(Refusal) -> String {
        guard !value.isEmpty, value.count <= signatureCharactersMax, Data(base64Encoded: value) != nil else {
            throw .badRequest("\(name) must be a base64 (standard alphabet) DER ECDSA signature")
        }
        return value
    }

    static func certificate(_ value: String, _ name: String) throws(Refusal) -> String {
        guard !value.isEmpty else { throw .badRequest("\(name) must not be empty") }
        guard value.utf8.count <= certificateBytesMax else {
            throw .badRequest("\(name) is longer than \(certificateBytesMax) bytes")
        }
        return value
    }

    /// A 33-byte compressed secp256k1 point in hex, checked to be on the curve; lower-cased.
    static func publicKey(_ value: String, _ name: String) throws(Refusal) -> String {
        guard let bytes = Hex.decode(value), (try? PublicKey(compressedBytes: bytes)) != nil else {
            throw .badRequest("\(name) must be a compressed secp256k1 public key in hex (66 hex digits)")
        }
        return value.lowercased()
    }

    /// An Umbral capsule (105 bytes as umbral-pre serialises it) in hex, checked to parse; lower-cased.
    static func capsule(_ value: String) throws(Refusal) -> String {
        guard let bytes = Hex.decode(value), (try? Capsule(bytes: bytes)) != nil else {
            throw .badRequest("capsule must be an Umbral capsule in hex, as umbral-pre serialises it (210 hex digits)")
        }
        return value.lowercased()
    }

    static let pageSizeDefault = 50
    static let pageSizeMax = 500

    static func pageSize(_ value: Int?) throws(Refusal) -> Int {
        guard let value else { return pageSizeDefault }
        guard (1...pageSizeMax).contains(value) else { throw .badRequest("page_size must be 1 to \(pageSizeMax)") }
        return value
    }

    /// Exactly one of two selectors (`patient_pid` or `t_id`, ...).
    static func oneOf(_ a: (String, String?), _ b: (String, String?)) throws(Refusal) {
        guard (a.1 == nil) != (b.1 == nil) else { throw .badRequest("give exactly one of \(a.0) and \(b.0)") }
    }
}

// MARK: - Ids

/// Record ids. Derived from the transaction id, never random: every endorser must compute the same
/// id. Distinct prefixes keep the kinds apart and make a wrong kind of id a 400, not a lookup.
enum IDKind: String, Sendable {
    case treatment = "T"
    case record = "R"
    case consent = "C"
    case usage = "U"

    var noun: String {
        switch self {
        case .treatment: return "treatment"
        case .record: return "index record"
        case .consent: return "consent"
        case .usage: return "usage record"
        }
    }

    static let hexCount = 24

    /// Prefix + the first 24 hex digits (96 bits) of SHA-256(txID). One record of each kind per
    /// transaction, so the transaction id alone is unique enough.
    func make(txID: String) -> String {
        rawValue + "-" + String(Hex.encode(SHA256.hash(data: Array(txID.utf8))).prefix(Self.hexCount))
    }

    func matches(_ id: String) -> Bool {
        let b = Array(id.utf8)
        guard b.count == 2 + Self.hexCount, id.hasPrefix(rawValue + "-") else { return false }
        return b[2...].allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

// MARK: - Time

/// RFC 3339 timestamps written and read by hand: pure arithmetic on the proleptic Gregorian calendar,
/// so that formatting and parsing cannot depend on a platform's locale, calendar or Foundation
/// version. Times are compared as whole milliseconds since 1970 (UTC).
enum RFC3339 {
    /// Milliseconds since 1970, rounded down.
    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// "2025-06-15T12:00:00.000Z".
    static func format(_ date: Date) -> String { format(milliseconds: milliseconds(date)) }

    static func format(milliseconds ms: Int64) -> String {
        let (days, msOfDay) = floorDivMod(ms, 86_400_000)
        let (y, m, d) = civil(fromDays: days)
        let h = msOfDay / 3_600_000
        let mi = msOfDay / 60_000 % 60
        let s = msOfDay / 1000 % 60
        let f = msOfDay % 1000
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(f, 3))Z"
    }

    /// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (RFC 3339 §5.6; leap seconds not
    /// accepted); fractions beyond milliseconds are truncated. nil if it is not that.
    static func parse(_ text: String) -> Int64? {
        let c = Array(text.utf8)
        func digits(_ at: Int, _ n: Int) -> Int64? {
            guard at + n <= c.count else { return nil }
            var v: Int64 = 0
            for b in c[at..<(at + n)] {
                guard (0x30...0x39).contains(b) else { return nil }
                v = v * 10 + Int64(b - 0x30)
            }
            return v
        }
        func at(_ i: Int, _ ch: Character) -> Bool { i < c.count && c[i] == ch.asciiValue! }
        guard let y = digits(0, 4), at(4, "-"), let mo = digits(5, 2), at(7, "-"), let d = digits(8, 2),
            at(10, "T") || at(10, "t"), let h = digits(11, 2), at(13, ":"), let mi = digits(14, 2), at(16, ":"),
            let s = digits(17, 2),
            (1...12).contains(mo), d >= 1, d <= daysInMonth(y, mo), h <= 23, mi <= 59, s <= 59
        else { return nil }
        var i = 19
        var fractionMS: Int64 = 0
        if at(i, ".") {
            i += 1
            let start = i
            while i < c.count, (0x30...0x39).contains(c[i]) { i += 1 }
            guard i > start else { return nil }
            let f = c[start..<i].prefix(3)
            fractionMS = f.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
            for _ in f.count..<3 { fractionMS *= 10 }
        }
        var offsetMinutes: Int64 = 0
        if at(i, "Z") || at(i, "z") {
            i += 1
        } else if at(i, "+") || at(i, "-") {
            let sign: Int64 = at(i, "-") ? -1 : 1
            guard let oh = digits(i + 1, 2), at(i + 3, ":"), let om = digits(i + 4, 2), oh <= 23, om <= 59 else {
                return nil
            }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        let days = daysFromCivil(y, mo, d)
        return ((days * 86_400 + h * 3600 + mi * 60 + s) - offsetMinutes * 60) * 1000 + fractionMS
    }

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    private static func isLeap(_ y: Int64) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }

    private static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (H. Hinnant's days_from_civil).
    private static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse (civil_from_days).
    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }
}

// MARK: - Keys

/// The object types of the world state. Primary records are composite keys (type, id); each listing
/// has its own index of empty-valued composite keys (type, owner, time, id), so a partial-key scan on
/// the owner lists oldest first (the times are fixed-width RFC 3339, which sort as text).
enum Keys {
    static let treatment = "treatment"
    static let record = "pde"
    static let consent = "consent"
    static let usage = "usage"

    static let treatmentsByPatient = "treatment~patient"
    static let treatmentsByDoctor = "treatment~doctor"
    static let recordsByPatient = "pde~patient"
    static let recordsByTreatment = "pde~treatment"
    /// (t_id, digest) → the record holding that digest: one index record per ciphertext and treatment.
    static let recordByDigest = "pde~digest"
    static let consentsByPatient = "consent~patient"
    static let consentsByGrantee = "consent~grantee"
    /// (grantee, t_id, consent_id): the consents to check when a grantee uses a treatment's records.
    static let consentsByGranteeTreatment = "consent~grantee~treatment"
    /// (patient, nonce): the signed grants a node has submitted, so none is submitted twice.
    static let consentNonce = "consent~nonce"
    static let usageByTreatment = "usage~treatment"
    static let usageByPatient = "usage~patient"
    /// pid → its published re-encryption keys.
    static let keyDirectory = "keys"
    /// A node's audit log anchors: by (node, seq), the node's latest, and the index of a node's.
    static let auditAnchor = "auditanchor"
    static let auditAnchorLatest = "auditanchor~latest"
    static let auditAnchorsByNode = "auditanchor~node"

    /// Index entries need no value; one byte because an empty value is indistinguishable from "absent"
    /// in some tools.
    static let present: [UInt8] = [0]
}

/// Decoded stored records, by their exact bytes: decoding is a pure function of the bytes, and a
/// P_DE (with its two certificates) costs more to decode than the rest of a read. Records that do
/// change (a revoked consent) have new bytes, so they miss. Bounded; emptied when full.
final class StoredDecodeCache: @unchecked Sendable {
    static let shared = StoredDecodeCache()
    static let max = 4096
    /// Only objects worth it (the smallest decode faster than they hash).
    static let minBytes = 128

    private struct Key: Hashable {
        var type: ObjectIdentifier
        var bytes: [UInt8]

        /// The bytes in one go (an array's own hashing combines them one by one).
        func hash(into hasher: inout Hasher) {
            hasher.combine(type)
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
    private let lock = NSLock()
    private var entries: [Key: Any] = [:]

    func value<T>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        guard bytes.count >= Self.minBytes else { return nil }
        lock.lock()
        defer { lock.unlock() }
        return entries[Key(type: ObjectIdentifier(type), bytes: bytes)] as? T
    }

    func keep<T>(_ value: T, _ bytes: [UInt8]) {
        guard bytes.count >= Self.minBytes else { return }
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= Self.max { entries.removeAll(keepingCapacity: true) }
        entries[Key(type: ObjectIdentifier(T.self), bytes: bytes)] = value
    }
}
