import Crypto

/// The ledger's structural hash (block headers, Merkle tree, commit hash) is SHA-256.
/// Medical-record digests are SHA-384 as the paper says; they are a different concern and live with the
/// record workflows, not here.
public enum LedgerHash {
    public static let byteCount = 32
    public static let zero = [UInt8](repeating: 0, count: byteCount)

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// SHA-256 over several parts without concatenating them first.
    public static func sha256(parts: [UInt8]...) -> [UInt8] {
        var hasher = SHA256()
        for p in parts { hasher.update(data: p) }
        return Array(hasher.finalize())
    }
}
