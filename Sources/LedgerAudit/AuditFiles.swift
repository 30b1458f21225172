import Foundation

/// The files of one audit log: the active file (`audit.log`) and the files rotated out of it, each
/// named after the sequence number of its first line (`audit.log.000000000001`), so that sorting by
/// name is sorting by time. The hash chain runs through them in that order and on into the active
/// file: the first line after a rotation names the last line of the file before it.
public enum AuditFiles {
    static let digits = 12

    /// The name a file gets when it is rotated out, from the sequence number of its first line.
    public static func rotatedPath(_ path: String, firstSeq: UInt64) -> String {
        let n = String(firstSeq)
        return path + "." + String(repeating: "0", count: max(digits - n.count, 0)) + n
    }

    /// The rotated files of `path`, oldest first (the active file not included).
    public static func rotated(_ path: String) -> [String] {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + "."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { name in
            guard name.hasPrefix(prefix) else { return false }
            let suffix = name.dropFirst(prefix.count)
            return suffix.count == digits && suffix.allSatisfy(\.isASCII) && suffix.allSatisfy(\.isNumber)
        }
        .sorted()
        .map { dir + "/" + $0 }
    }

    /// Every file of the log, oldest first: the rotated ones, then the active one if it exists.
    public static func all(_ path: String) -> [String] {
        rotated(path) + (FileManager.default.fileExists(atPath: path) ? [path] : [])
    }
}
