import Foundation
import LedgerCrypto

/// Checks a whole audit file: every line parses, every hash recomputes, every `prev` is the hash of
/// the line before and `seq` counts up by one. Unreadable bytes are a problem unless the recovery line
/// right after them names exactly those bytes (offsets and SHA-256): that is a torn write the log
/// marked when it was reopened, reported under `recoveries`.
public enum AuditVerifier {
    public struct Report: Sendable {
        public var lines: Int
        public var head: String
        public var problems: [String]
        /// Torn tails found after a crash and marked on reopening, kept as found: events, not damage.
        public var recoveries: [String] = []
        public var isValid: Bool { problems.isEmpty }
    }

    /// `anchors`: line number → the hash the ledger holds for it (`audit_anchor`). Each anchored line
    /// must be in the file with that hash: a missing one means the tail was cut, another hash that the
    /// file was rewritten (even with every hash recomputed, which the chain alone cannot show).
    public static func verify(path: String, expectedHead: String? = nil, anchors: [UInt64: String] = [:]) throws -> Report {
        var walk = Walk(data: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        walk.anchors = anchors
        walk.run()
        let head = Hex.encode(walk.prev)
        if let expectedHead, expectedHead != head {
            walk.problems.append("the log ends at \(head), not at the expected head \(expectedHead) (lines missing at the end)")
        }
        for seq in anchors.keys.sorted() where seq >= walk.expectedSeq {
            walk.problems.append("anchored line \(seq) is missing: the log ends at line \(walk.expectedSeq - 1) (its tail was cut)")
        }
        return Report(lines: walk.count, head: head, problems: walk.problems, recoveries: walk.recoveries)
    }

    /// One pass over the file, line by line, keeping byte offsets (recovery lines refer to them).
    struct Walk {
        let data: [UInt8]
        var prev = [UInt8](repeating: 0, count: 32)
        var expectedSeq: UInt64 = 1
        var count = 0
        var problems = [String]()
        var recoveries = [String]()
        /// Lines that did not parse and are not yet explained by a recovery line: (line number, bytes).
        var unreadable = [(line: Int, bytes: Range<Int>)]()
        var anchors: [UInt64: String] = [:]

        init(data: [UInt8]) { self.data = data }

        mutating func run() {
            var start = 0
            while start < data.count {
                let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.count
                count += 1
                check(line: count, bytes: start..<end)
                start = end + 1
            }
            reportUnreadable(suffix: unreadable.last?.bytes.upperBound == data.count && data.last != UInt8(ascii: "\n")
                ? " (a torn last line: the writer marks it when it next opens the log)" : "")
        }

        mutating func check(line n: Int, bytes: Range<Int>) {
            guard let line = AuditLine(bytes: Array(data[bytes])), let hash = line.hash else {
                unreadable.append((n, bytes))
                return
            }
            if line.action == AuditRecoveryLine.action, let named = AuditRecoveryLine.parse(target: line.target) {
                checkRecovery(line: n, at: bytes.lowerBound, names: named)
            } else {
                reportUnreadable(suffix: "")
            }
            if line.prev != prev { problems.append("line \(n): does not follow the line before it (a line was removed, inserted or reordered)") }
            if line.seq != expectedSeq { problems.append("line \(n): sequence number \(line.seq), expected \(expectedSeq)") }
            if AuditLine.chainHash(previous: line.prev, body: line.body) != hash { problems.append("line \(n): content does not match its hash (edited)") }
            if let anchored = anchors[line.seq], anchored != Hex.encode(hash) {
                problems.append("line \(n) (seq \(line.seq)): hash \(Hex.encode(hash).prefix(16))… differs from the one anchored on chain, \(anchored.prefix(16))… (the log was rewritten)")
            }
            prev = hash
            expectedSeq = line.seq + 1
        }

        /// A recovery line must name exactly the unreadable bytes before it — from the first of them to
        /// its own start, or to the newline the writer added when they ended mid-line — and their hash.
        mutating func checkRecovery(line n: Int, at lineStart: Int, names: (range: Range<Int>, sha256: [UInt8])) {
            guard let first = unreadable.first, let last = unreadable.last else {
                problems.append("line \(n): a recovery line for bytes \(names.range) with no torn bytes before it")
                return
            }
            let r = names.range
            let endsRight = r.upperBound == lineStart || (r.upperBound == lineStart - 1 && data[r.upperBound] == UInt8(ascii: "\n"))
            guard r.lowerBound == first.bytes.lowerBound, endsRight, AuditRecoveryLine.sha256(data[r]) == names.sha256 else {
                reportUnreadable(suffix: "")
                problems.append("line \(n): the recovery line does not match the bytes it names (\(r)): they were changed after the crash")
                return
            }
            let lines = first.line == last.line ? "line \(first.line)" : "lines \(first.line)–\(last.line)"
            recoveries.append("\(lines): \(r.count) torn bytes (offsets \(r.lowerBound)..<\(r.upperBound)) kept as found, marked by line \(n); the chain continues from the line before")
            unreadable = []
        }

        mutating func reportUnreadable(suffix: String) {
            for u in unreadable { problems.append("line \(u.line): does not parse as an audit line (edited or torn)\(suffix)") }
            unreadable = []
        }
    }
}
