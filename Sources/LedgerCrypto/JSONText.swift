import Foundation

/// JSON text written by hand where the byte layout matters (audit lines, log lines).
public enum JSONText {
    /// A JSON string literal (RFC 8259 escapes; every other character as it is).
    public static func quoted(_ s: String) -> String {
        // Most strings (PIDs, ids, actions) need no escape: one scan of the bytes, then as they are.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + s + "\""
        }
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
}
