import Crypto
import Foundation

/// SHA-384 is the paper's digest for records and pseudo identities.
public enum Digests {
    public static func sha384(_ data: some DataProtocol) -> [UInt8] {
        let h = SHA384Stream()
        h.update(data)
        return h.finalize()
    }
    public static func sha256(_ data: some DataProtocol) -> [UInt8] { Array(SHA256.hash(data: data)) }
}

/// Base64url without padding (RFC 4648 §5): how PIDs and other binary identifiers are written in
/// certificate names, file names and URLs.
public enum Base64URL {
    public static func encode(_ bytes: some DataProtocol) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return nil
        }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { [UInt8]($0) }
    }
}
