import Crypto
import Foundation
import LedgerCrypto

/// Parsing and hashing of one audit line.
struct AuditLine {
    var seq: UInt64
    var prev: [UInt8]
    var hash: [UInt8]?
    var body: [UInt8]
    var action: String
    var target: String

    static let hashMarker = Array(",\"hash\":\"".utf8)

    init?(bytes: [UInt8]) {
        guard let markerAt = AuditLine.lastIndex(of: AuditLine.hashMarker, in: bytes) else { return nil }
        body = Array(bytes[..<markerAt])
        let rest = bytes[(markerAt + AuditLine.hashMarker.count)...]
        guard rest.count == 64 + 2, rest.suffix(2).elementsEqual(Array("\"}".utf8)),
            let h = Hex.decode(String(decoding: rest.prefix(64), as: UTF8.self))
        else { return nil }
        hash = h
        // seq must be a whole number a log can reach and continue from: NSNumber.uint64Value would turn
        // -1 or 1e300 into UInt64.max, and the next line's seq + 1 would trap (found by fuzzing).
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body + Array("}".utf8))) as? [String: Any],
            let seqNum = obj["seq"] as? NSNumber, let s = UInt64(exactly: seqNum), s < UInt64.max,
            let prevHex = obj["prev"] as? String, let p = Hex.decode(prevHex)
        else { return nil }
        seq = s
        prev = p
        action = obj["action"] as? String ?? ""
        target = obj["target"] as? String ?? ""
    }

    static func body(event: AuditEvent, seq: UInt64, date: Date, previous: [UInt8]) -> [UInt8] {
        let ts = ISO8601DateFormatter.auditFormatter.string(from: date)
        let fields: [(String, String)] = [
            ("action", json(event.action)),
            (
                "actor",
                "{\"org\":\(json(event.actor.org)),\"pid\":\(json(event.actor.pid)),\"role\":\(json(event.actor.role))}"
            ),
            ("detail", json(event.detail)),
            ("outcome", json(event.outcome.rawValue)),
            ("prev", json(Hex.encode(previous))),
            ("seq", "\(seq)"),
            ("target", json(event.target)),
            ("ts", json(ts)),
        ]
        return Array(("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")).utf8)
    }

    /// The whole line, newline included, and its hash (the next line's `prev`).
    static func encode(event: AuditEvent, seq: UInt64, date: Date, previous: [UInt8]) -> (bytes: [UInt8], hash: [UInt8])
    {
        let body = body(event: event, seq: seq, date: date, previous: previous)
        let hash = chainHash(previous: previous, body: body)
        return (body + Array(",\"hash\":\"\(Hex.encode(hash))\"}\n".utf8), hash)
    }

    static func chainHash(previous: [UInt8], body: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: previous)
        h.update(data: body)
        return Array(h.finalize())
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func json(_ s: String) -> String { JSONText.quoted(s) }

    static func lastIndex(of needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let auditFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()
}
