import Crypto
import Foundation
import LedgerCrypto
import Synchronization

/// Who did something: taken from the caller's verified certificate (or "anonymous").
public struct AuditActor: Sendable, Codable, Equatable {
    public var pid: String
    public var org: String
    public var role: String

    public init(pid: String, org: String, role: String) {
        self.pid = pid
        self.org = org
        self.role = role
    }

    public static let anonymous = AuditActor(pid: "-", org: "-", role: "-")
    public static let system = AuditActor(pid: "-", org: "-", role: "system")
}

public enum AuditOutcome: String, Sendable, Codable {
    case success, denied, failed
}

/// One security-relevant event. Never put a real identity (RID) or medical content in `target` or
/// `detail`: audit lines are read by operators and shipped to log systems.
public struct AuditEvent: Sendable {
    public var actor: AuditActor
    public var action: String
    public var target: String
    public var outcome: AuditOutcome
    public var detail: String

    public init(actor: AuditActor, action: String, target: String, outcome: AuditOutcome, detail: String = "") {
        self.actor = actor
        self.action = action
        self.target = target
        self.outcome = outcome
        self.detail = detail
    }
}

/// An append-only, hash-chained JSON-lines audit log.
///
/// Each line is `{"action":…,"actor":{…},"detail":…,"outcome":…,"prev":"<hex>","seq":n,"target":…,"ts":…,"hash":"<hex>"}`
/// where `hash` = SHA-256(previous line's hash ‖ the line's bytes up to, not including, `,"hash":`).
/// The first line's previous hash is 32 zero bytes. Editing a line breaks its hash; deleting or
/// reordering lines breaks the `prev`/`seq` links (`AuditVerifier`). Truncating the tail can only be
/// seen against a head hash kept elsewhere (`AuditLog.head`).
public final class AuditLog: Sendable {
    public let path: String
    private struct Tail {
        var handle: FileHandle
        var previousHash: [UInt8]
        var seq: UInt64
    }
    private let tail: Mutex<Tail>

    public enum Failure: Error, CustomStringConvertible {
        case cannotOpen(String)
        case brokenTail(String)

        public var description: String {
            switch self {
            case .cannotOpen(let p): return "cannot open audit log \(p)"
            case .brokenTail(let why): return "audit log tail does not verify (\(why)); run `medledger audit verify` and rotate the file"
            }
        }
    }

    /// Opens or creates the log, continuing the chain from its last line.
    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            // Created 0600 in one step (Foundation's createFile chmods only after creating).
            let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw Failure.cannotOpen(path) }
            Glibc.close(fd)
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw Failure.cannotOpen(path) }
        var prev = [UInt8](repeating: 0, count: 32)
        var seq: UInt64 = 0
        let data = try handle.readToEnd() ?? Data()
        if let lastLine = data.split(separator: UInt8(ascii: "\n")).last {
            guard let parsed = AuditLine(bytes: Array(lastLine)), let h = parsed.hash else { throw Failure.brokenTail("last line does not parse") }
            prev = h
            seq = parsed.seq
        }
        try handle.seekToEnd()
        tail = Mutex(Tail(handle: handle, previousHash: prev, seq: seq))
    }

    /// The hash of the last line written: keep it elsewhere to detect truncation later.
    public var head: String { tail.withLock { Hex.encode($0.previousHash) } }

    public func record(_ event: AuditEvent, at date: Date = Date()) {
        tail.withLock { t in
            let seq = t.seq + 1
            let body = AuditLine.body(event: event, seq: seq, date: date, previous: t.previousHash)
            let hash = AuditLine.chainHash(previous: t.previousHash, body: body)
            let line = body + Array(",\"hash\":\"\(Hex.encode(hash))\"}\n".utf8)
            // One write per line: a crash leaves whole lines (a torn last line is reported by verify).
            t.handle.write(Data(line))
            t.previousHash = hash
            t.seq = seq
        }
    }

    public func close() {
        tail.withLock { t in
            try? t.handle.synchronize()
            try? t.handle.close()
        }
    }
}

/// Parsing and hashing of one audit line.
struct AuditLine {
    var seq: UInt64
    var prev: [UInt8]
    var hash: [UInt8]?
    var body: [UInt8]

    static let hashMarker = Array(",\"hash\":\"".utf8)

    init?(bytes: [UInt8]) {
        guard let markerAt = AuditLine.lastIndex(of: AuditLine.hashMarker, in: bytes) else { return nil }
        body = Array(bytes[..<markerAt])
        let rest = bytes[(markerAt + AuditLine.hashMarker.count)...]
        guard rest.count == 64 + 2, rest.suffix(2).elementsEqual(Array("\"}".utf8)), let h = Hex.decode(String(decoding: rest.prefix(64), as: UTF8.self)) else { return nil }
        hash = h
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body + Array("}".utf8))) as? [String: Any],
              let seqNum = obj["seq"] as? NSNumber, let prevHex = obj["prev"] as? String, let p = Hex.decode(prevHex)
        else { return nil }
        seq = seqNum.uint64Value
        prev = p
    }

    static func body(event: AuditEvent, seq: UInt64, date: Date, previous: [UInt8]) -> [UInt8] {
        let ts = ISO8601DateFormatter.auditFormatter.string(from: date)
        let fields: [(String, String)] = [
            ("action", json(event.action)),
            ("actor", "{\"org\":\(json(event.actor.org)),\"pid\":\(json(event.actor.pid)),\"role\":\(json(event.actor.role))}"),
            ("detail", json(event.detail)),
            ("outcome", json(event.outcome.rawValue)),
            ("prev", json(Hex.encode(previous))),
            ("seq", "\(seq)"),
            ("target", json(event.target)),
            ("ts", json(ts)),
        ]
        return Array(("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")).utf8)
    }

    static func chainHash(previous: [UInt8], body: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: previous)
        h.update(data: body)
        return Array(h.finalize())
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

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

/// Checks a whole audit file: every line parses, every hash recomputes, every `prev` is the hash of
/// the line before and `seq` counts up by one.
public enum AuditVerifier {
    public struct Report: Sendable {
        public var lines: Int
        public var head: String
        public var problems: [String]
        public var isValid: Bool { problems.isEmpty }
    }

    public static func verify(path: String, expectedHead: String? = nil) throws -> Report {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var problems = [String]()
        var prev = [UInt8](repeating: 0, count: 32)
        var expectedSeq: UInt64 = 1
        var count = 0
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (i, raw) in lines.enumerated() {
            if raw.isEmpty && i == lines.count - 1 { break }
            count += 1
            let n = i + 1
            guard let line = AuditLine(bytes: Array(raw)), let hash = line.hash else {
                problems.append("line \(n): does not parse as an audit line (edited or torn)")
                continue
            }
            if line.prev != prev { problems.append("line \(n): does not follow the line before it (a line was removed, inserted or reordered)") }
            if line.seq != expectedSeq { problems.append("line \(n): sequence number \(line.seq), expected \(expectedSeq)") }
            if AuditLine.chainHash(previous: line.prev, body: line.body) != hash { problems.append("line \(n): content does not match its hash (edited)") }
            prev = hash
            expectedSeq = line.seq + 1
        }
        let head = Hex.encode(prev)
        if let expectedHead, expectedHead != head {
            problems.append("the log ends at \(head), not at the expected head \(expectedHead) (lines missing at the end)")
        }
        return Report(lines: count, head: head, problems: problems)
    }
}
