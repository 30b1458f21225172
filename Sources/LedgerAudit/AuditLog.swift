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
