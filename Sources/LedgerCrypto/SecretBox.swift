import Crypto
import Foundation

/// Encrypts secrets at rest (the CA's private key, RID↔PID records) under a 256-bit key the operator
/// supplies. AES-256-GCM; the context string is authenticated (AAD), so a sealed value moved to another
/// record (a RID swapped between two PIDs) no longer opens.
public struct SecretBox: Sendable {
    public static let environmentVariable = "MEDLEDGER_CA_MASTER_KEY"

    private let key: SymmetricKey

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badKey(String)
        case noKey
        case cannotOpen(context: String)

        public var description: String {
            switch self {
            case .badKey(let why):
                return "master key is not usable: \(why) (expected 32 bytes as 64 hex characters or base64)"
            case .noKey: return "no master key: pass --master-key-file FILE or set \(SecretBox.environmentVariable)"
            case .cannotOpen(let c):
                return "secret '\(c)' does not open with this master key (wrong key, or the store was tampered with)"
            }
        }
    }

    public init(key bytes: [UInt8]) throws {
        guard bytes.count == 32 else { throw Failure.badKey("\(bytes.count) bytes") }
        key = SymmetricKey(data: bytes)
    }

    /// Parses 64 hex characters or base64 of 32 bytes (surrounding white space ignored).
    public init(encoded text: String) throws {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.count == 64, let bytes = Hex.decode(t) {
            try self.init(key: bytes)
        } else if let d = Data(base64Encoded: t) {
            try self.init(key: [UInt8](d))
        } else {
            throw Failure.badKey("neither hex nor base64")
        }
    }

    /// From a key file if given, else from `MEDLEDGER_CA_MASTER_KEY`.
    public static func load(
        keyFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SecretBox {
        if let keyFile {
            guard let text = try? String(contentsOfFile: keyFile, encoding: .utf8) else {
                throw Failure.badKey("cannot read \(keyFile)")
            }
            return try SecretBox(encoded: text)
        }
        guard let env = environment[environmentVariable] else { throw Failure.noKey }
        return try SecretBox(encoded: env)
    }

    /// A fresh random key, hex-encoded, for `ca init` to write out.
    public static func generateEncodedKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Hex.encode($0) }
    }

    public func seal(_ plaintext: some DataProtocol, context: String) throws -> [UInt8] {
        Array(try AES.GCM.seal(plaintext, using: key, authenticating: Array(context.utf8)).combined!)
    }

    public func open(_ sealed: [UInt8], context: String) throws -> [UInt8] {
        do {
            return Array(
                try AES.GCM.open(
                    try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: Array(context.utf8)))
        } catch {
            throw Failure.cannotOpen(context: context)
        }
    }
}
