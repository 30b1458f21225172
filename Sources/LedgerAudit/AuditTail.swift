import Crypto
import Foundation
import LedgerCrypto

/// The end of an audit file as `AuditLog` finds it on open: the last whole line (where the chain goes
/// on from) and whatever follows it — nothing after a clean shutdown, or the bytes of a write that a
/// crash or a failing disk cut short.
struct AuditTail {
    /// Hash of the last whole line (32 zero bytes for an empty log) and its sequence number.
    var previousHash = [UInt8](repeating: 0, count: 32)
    var seq: UInt64 = 0
    /// Bytes after the last whole line; they stay in the file as found.
    var torn: Range<Int>?
    /// The file ends inside a line, so the recovery line must start on a new one.
    var endsMidLine = false
    /// Sequence number of the file's first line, if it parses (the name the file is rotated to).
    var firstSeq: UInt64?

    /// A crash during a recovery leaves one more unreadable line each time; more than this many whole
    /// unreadable lines at the end are not crash damage (an edited file, or the wrong file): refused.
    static let tornWholeLinesMax = 4

    /// An empty active file: the chain continues from the last whole line of the newest rotated file
    /// (if any). Bytes torn off that file's end stay there for the verifier to report.
    init(continuingFrom rotated: String?) throws {
        guard let rotated else { return }
        guard let data = FileManager.default.contents(atPath: rotated) else {
            throw AuditLog.Failure.cannotOpen(path: rotated, reason: "cannot read the newest rotated file")
        }
        let end = try AuditTail(scanning: [UInt8](data), path: rotated)
        previousHash = end.previousHash
        seq = end.seq
    }

    init(scanning data: [UInt8], path: String) throws {
        guard !data.isEmpty else { return }
        let newline = UInt8(ascii: "\n")
        if let firstEnd = data.firstIndex(of: newline) { firstSeq = AuditLine(bytes: Array(data[..<firstEnd]))?.seq }
        endsMidLine = data.last != newline
        // `cut` is the end (exclusive, after its newline) of the candidate last whole line.
        var cut = endsMidLine ? (data.lastIndex(of: newline).map { $0 + 1 } ?? 0) : data.count
        var unreadableWholeLines = 0
        while cut > 0 {
            let start = data[..<(cut - 1)].lastIndex(of: newline).map { $0 + 1 } ?? 0
            if let line = AuditLine(bytes: Array(data[start..<(cut - 1)])), let hash = line.hash {
                previousHash = hash
                seq = line.seq
                break
            }
            unreadableWholeLines += 1
            guard unreadableWholeLines <= Self.tornWholeLinesMax else {
                throw AuditLog.Failure.brokenTail(
                    path: path,
                    reason:
                        "more than \(Self.tornWholeLinesMax) whole lines at its end do not parse as audit lines (not a torn write)"
                )
            }
            cut = start
        }
        if cut < data.count { torn = cut..<data.count }
    }
}

/// The line `AuditLog` appends after a torn tail. It names the torn bytes (offsets and SHA-256) so the
/// verifier can tell a recovered crash from an edit: the bytes must be exactly those, unchanged.
enum AuditRecoveryLine {
    static let action = "audit.recover"

    static func event(torn: Range<Int>, sha256: [UInt8]) -> AuditEvent {
        AuditEvent(
            actor: .system, action: action,
            target: "bytes \(torn.lowerBound)..<\(torn.upperBound) sha256 \(Hex.encode(sha256))", outcome: .failed,
            detail:
                "the \(torn.count) bytes before this line are a write cut short (crash or failing disk), kept as found outside the hash chain, which continues from the last whole line"
        )
    }

    /// The byte range and digest a recovery line names; nil if `target` is not in that form.
    static func parse(target: String) -> (range: Range<Int>, sha256: [UInt8])? {
        let words = target.split(separator: " ")
        guard words.count == 4, words[0] == "bytes", words[2] == "sha256" else { return nil }
        let bounds = words[1].components(separatedBy: "..<")
        guard bounds.count == 2, let lo = Int(bounds[0]), let hi = Int(bounds[1]), lo >= 0, lo < hi,
            let digest = Hex.decode(String(words[3])), digest.count == 32
        else { return nil }
        return (lo..<hi, digest)
    }

    static func sha256(_ bytes: ArraySlice<UInt8>) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}

/// A torn tail found and marked when the log was opened.
public struct AuditRecovery: Sendable, Equatable {
    /// Byte offsets of the torn bytes, which stay in the file.
    public var tornBytes: Range<Int>
    /// SHA-256 of those bytes, hex.
    public var sha256: String
    /// Sequence number of the recovery line that names them.
    public var recordSeq: UInt64
}
