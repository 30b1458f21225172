import Foundation
import LedgerCrypto

/// One audit line as a reader sees it: who did what to what, when, and how it ended.
public struct AuditEntry: Sendable, Equatable {
    public var seq: UInt64
    /// RFC 3339 UTC with milliseconds, as written.
    public var time: String
    public var actor: AuditActor
    public var action: String
    public var target: String
    public var outcome: String
    public var detail: String
}

/// Finds the lines about one subject (a patient's PID, written as the line's `target`) in an audit log
/// and the files rotated out of it, newest first. Used to show patients who accessed their records
/// (EMR exchange guide: access to one's own records is logged and reviewable). It reads the files
/// from the newest back and stops at `limit` entries or at the first line older than `since`, so a
/// query costs at most one pass over the kept files (`AuditLog.Rotation` bounds them).
public enum AuditSearch {
    public static let limitMax = 1_000

    public struct Result: Sendable {
        public var entries: [AuditEntry]
        /// More matching lines exist beyond `limit` (ask again with an earlier `since` window).
        public var truncated: Bool
    }

    /// `excludingActor`: leave out what this PID did itself (a patient reading their own records).
    /// An RFC 3339 time as the audit lines write times (UTC, milliseconds), so that text order is
    /// time order for `since`; nil if `text` is not one.
    public static func lineTime(_ text: String) -> String? {
        // Formatters of its own: the log's (`auditFormatter`) is used by writers under their lock.
        let lines = ISO8601DateFormatter()
        lines.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        lines.timeZone = TimeZone(identifier: "UTC")
        guard let date = ISO8601DateFormatter().date(from: text) ?? lines.date(from: text) else { return nil }
        return lines.string(from: date)
    }

    public static func entries(
        about subject: String, in path: String, since: String? = nil, limit: Int, excludingActor: String? = nil
    ) throws -> Result {
        let limit = min(max(limit, 1), limitMax)
        // A line about `subject` contains this exact text; only those lines are parsed.
        let needle = Array(("\"target\":" + JSONText.quoted(subject) + ",").utf8)
        var found = [AuditEntry]()
        for file in AuditFiles.all(path).reversed() {
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            var end = data.count
            while end > 0 {
                let start = data[..<(end - 1)].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
                let line = data[start..<end]
                end = start
                guard let entry = parse(line, needle: needle), entry.target == subject,
                    entry.actor.pid != excludingActor
                else { continue }
                if let since, entry.time < since { return Result(entries: found, truncated: false) }
                guard found.count < limit else { return Result(entries: found, truncated: true) }
                found.append(entry)
            }
        }
        return Result(entries: found, truncated: false)
    }

    static func parse(_ line: ArraySlice<UInt8>, needle: [UInt8]) -> AuditEntry? {
        guard line.count > needle.count, line.firstRange(of: needle) != nil,
            let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            let seq = (obj["seq"] as? NSNumber).flatMap({ UInt64(exactly: $0) }), let time = obj["ts"] as? String,
            let actor = obj["actor"] as? [String: Any]
        else { return nil }
        return AuditEntry(
            seq: seq, time: time,
            actor: AuditActor(
                pid: actor["pid"] as? String ?? "-", org: actor["org"] as? String ?? "-",
                role: actor["role"] as? String ?? "-"),
            action: obj["action"] as? String ?? "", target: obj["target"] as? String ?? "",
            outcome: obj["outcome"] as? String ?? "", detail: obj["detail"] as? String ?? "")
    }
}
