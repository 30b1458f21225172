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
        /// Files checked (the active one and those rotated out of it).
        public var files = 1
        /// Sequence number of the first line kept: above 1 once the oldest rotated files were deleted.
        public var firstSeq: UInt64 = 1
        /// Anchors of lines in files no longer kept: not checkable here.
        public var anchorsBeforeKept = 0
        public var isValid: Bool { problems.isEmpty }
    }

    /// Checks the log at `path` with the files rotated out of it (`AuditFiles`), oldest first, as one
    /// chain. `anchors`: line number → the hash the ledger holds for it (`audit_anchor`). Each anchored
    /// line must be in the files with that hash: a missing one means the tail was cut, another hash
    /// that a file was rewritten (even with every hash recomputed, which the chain alone cannot show).
    /// Anchors of lines in files no longer kept (rotated out and deleted) cannot be checked: counted.
    public static func verify(
        path: String, expectedHead: String? = nil, anchors: [UInt64: String] = [:]
    ) throws -> Report {
        let files = AuditFiles.all(path)
        guard !files.isEmpty else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        var report = Report(lines: 0, head: "", problems: [])
        var prev = [UInt8](repeating: 0, count: 32)
        var expectedSeq: UInt64 = 1
        var firstSeq: UInt64?
        for (i, file) in files.enumerated() {
            var walk = Walk(data: [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))))
            // Only a rotated file may begin past line 1 (its predecessors deleted by retention), and
            // only at the line its name gives: cutting the head of a file still shows.
            let named = file == path ? nil : UInt64((file as NSString).pathExtension)
            (walk.prev, walk.expectedSeq, walk.adoptStart, walk.anchors) = (
                prev, expectedSeq, i == 0 && named != nil, anchors
            )
            walk.run()
            let label = files.count > 1 ? (file as NSString).lastPathComponent + ": " : ""
            if let named, let first = walk.firstSeq, first != named {
                report.problems.append(
                    label
                        + "its name says it begins at line \(named), but its first line is \(first) (lines cut from its start, or the file renamed)"
                )
            }
            report.problems += walk.problems.map { label + $0 }
            report.recoveries += walk.recoveries.map { label + $0 }
            report.lines += walk.count
            firstSeq = firstSeq ?? walk.firstSeq
            (prev, expectedSeq) = (walk.prev, walk.expectedSeq)
        }
        report.head = Hex.encode(prev)
        report.files = files.count
        report.firstSeq = firstSeq ?? 1
        if let expectedHead, expectedHead != report.head {
            report.problems.append(
                "the log ends at \(report.head), not at the expected head \(expectedHead) (lines missing at the end)")
        }
        for seq in anchors.keys.sorted() where seq >= expectedSeq {
            report.problems.append(
                "anchored line \(seq) is missing: the log ends at line \(expectedSeq - 1) (its tail was cut)")
        }
        report.anchorsBeforeKept = anchors.keys.filter { $0 < report.firstSeq }.count
        return report
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
        /// The first file of the set: its first line may continue a file no longer kept, so the chain
        /// is taken up from there instead of from line 1.
        var adoptStart = false
        var firstSeq: UInt64?

        init(data: [UInt8]) { self.data = data }

        mutating func run() {
            var start = 0
            while start < data.count {
                let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.count
                count += 1
                check(line: count, bytes: start..<end)
                start = end + 1
            }
            reportUnreadable(
                suffix: unreadable.last?.bytes.upperBound == data.count && data.last != UInt8(ascii: "\n")
                    ? " (a torn last line: the writer marks it when it next opens the log)" : "")
        }

        mutating func check(line n: Int, bytes: Range<Int>) {
            guard let line = AuditLine(bytes: Array(data[bytes])), let hash = line.hash else {
                unreadable.append((n, bytes))
                return
            }
            if adoptStart {
                adoptStart = false
                if line.seq > 1 { (prev, expectedSeq) = (line.prev, line.seq) }
            }
            firstSeq = firstSeq ?? line.seq
            if line.action == AuditRecoveryLine.action, let named = AuditRecoveryLine.parse(target: line.target) {
                checkRecovery(line: n, at: bytes.lowerBound, names: named)
            } else {
                reportUnreadable(suffix: "")
            }
            if line.prev != prev {
                problems.append(
                    "line \(n): does not follow the line before it (a line was removed, inserted or reordered)")
            }
            if line.seq != expectedSeq {
                problems.append("line \(n): sequence number \(line.seq), expected \(expectedSeq)")
            }
            if AuditLine.chainHash(previous: line.prev, body: line.body) != hash {
                problems.append("line \(n): content does not match its hash (edited)")
            }
            if let anchored = anchors[line.seq], anchored != Hex.encode(hash) {
                problems.append(
                    "line \(n) (seq \(line.seq)): hash \(Hex.encode(hash).prefix(16))… differs from the one anchored on chain, \(anchored.prefix(16))… (the log was rewritten)"
                )
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
            let endsRight =
                r.upperBound == lineStart || (r.upperBound == lineStart - 1 && data[r.upperBound] == UInt8(ascii: "\n"))
            guard r.lowerBound == first.bytes.lowerBound, endsRight, AuditRecoveryLine.sha256(data[r]) == names.sha256
            else {
                reportUnreadable(suffix: "")
                problems.append(
                    "line \(n): the recovery line does not match the bytes it names (\(r)): they were changed after the crash"
                )
                return
            }
            let lines = first.line == last.line ? "line \(first.line)" : "lines \(first.line)–\(last.line)"
            recoveries.append(
                "\(lines): \(r.count) torn bytes (offsets \(r.lowerBound)..<\(r.upperBound)) kept as found, marked by line \(n); the chain continues from the line before"
            )
            unreadable = []
        }

        mutating func reportUnreadable(suffix: String) {
            for u in unreadable {
                problems.append("line \(u.line): does not parse as an audit line (edited or torn)\(suffix)")
            }
            unreadable = []
        }
    }
}
