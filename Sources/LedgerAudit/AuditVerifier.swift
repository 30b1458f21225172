import Foundation
import LedgerCrypto

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
