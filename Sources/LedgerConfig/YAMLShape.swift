import Foundation

/// Bounds on a YAML file's size and nesting, checked before Yams sees it.
///
/// Yams composes documents recursively (`Parser.loadNode` ↔ `loadMapping`/`loadSequence`), one stack
/// frame pair per nesting level, so a file of a few thousand `{` or `- ` overflows the stack and kills
/// the process instead of failing with an error (found by fuzzing `node-yaml`). Configuration files
/// are small and shallow, so these bounds refuse only hostile or broken files.
///
/// The scan over-estimates depth and never under-estimates it, whatever the quoting:
/// - flow nesting is at most the number of `{` and `[` anywhere in the file (inside quotes and
///   comments too, so no quoting trick can hide one);
/// - block nesting grows only with a line's indentation or with the indicators (`- `, `? `, `: `)
///   before its first content, so it is bounded by the length of that prefix (about two levels per
///   column at worst).
public enum YAMLShape {
    public static let maxBytes = 1 << 20
    public static let maxFlowCollections = 200
    public static let maxLinePrefix = 100

    public struct Violation: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Throws when `text` is larger or nested deeper than a configuration file can reasonably be.
    public static func check(_ text: String, file: String) throws(Violation) {
        let bytes = text.utf8
        guard bytes.count <= maxBytes else {
            throw Violation(
                description: "\(file) is \(bytes.count) bytes; a configuration file may have at most \(maxBytes)")
        }
        var flowOpeners = 0
        var line = 1
        var prefix = 0
        var inPrefix = true
        for b in bytes {
            switch b {
            case UInt8(ascii: "\n"):
                line += 1
                prefix = 0
                inPrefix = true
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                flowOpeners += 1
                guard flowOpeners <= maxFlowCollections else {
                    throw Violation(
                        description:
                            "\(file) line \(line): more than \(maxFlowCollections) flow collections ('{' or '['); nesting this deep is refused"
                    )
                }
            default: break
            }
            guard inPrefix else { continue }
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":"),
                UInt8(ascii: "\r"):
                prefix += 1
                guard prefix <= maxLinePrefix else {
                    throw Violation(
                        description:
                            "\(file) line \(line): indented or nested more than \(maxLinePrefix) columns deep; nesting this deep is refused"
                    )
                }
            default:
                inPrefix = false
            }
        }
    }
}

extension YAMLShape {
    /// Reads a configuration file of at most `maxBytes` (never more, however large the file is),
    /// as UTF-8, and checks its shape; `nil` when it cannot be read or is not UTF-8.
    static func readChecked(path: String) throws(Violation) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: maxBytes + 1) else { return nil }
        guard data.count <= maxBytes else {
            throw Violation(
                description:
                    "\(path) is larger than \(maxBytes) bytes; a configuration file may have at most \(maxBytes)")
        }
        guard let text = String(data: data, encoding: .utf8) else { return nil }
        try check(text, file: path)
        return text
    }
}
