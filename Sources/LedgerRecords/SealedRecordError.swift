/// Everything sealing or opening a record can refuse. Each case says what is wrong with the object,
/// not only that "decryption failed", so a client can tell a wrong key from a tampered or cut-off
/// download. Errors thrown by the caller's own read/write closures (I/O) pass through unchanged.
public enum SealedRecordError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input does not start with the sealed-record magic ("MLSEALED").
    case notASealedRecord
    /// The magic is right but the format version is one this build cannot read.
    case unsupportedVersion(UInt8)
    /// The header's fields are inconsistent: wrong lengths, a chunk size out of range, a capsule
    /// that does not parse or self-verify, a key commitment that does not match the wrapped key.
    case headerMalformed(String)
    /// The key does not open this record: the patient's secret key does not unwrap the data key,
    /// or the given data key does not match the header's key commitment.
    case dataKeyDoesNotOpen
    /// Chunk `chunk` (0-based) failed AES-GCM authentication, or its framing is invalid: the body
    /// was modified, chunks were reordered, or it belongs to another header.
    case chunkAuthenticationFailed(chunk: Int)
    /// The object ends before its final chunk (cut off, or the last chunks were dropped).
    case truncated
    /// Bytes follow the final chunk (appended data or chunks).
    case trailingData
    /// Caller error: `chunkSize` outside 1...`SealedRecord.maxChunkSize`.
    case invalidChunkSize(Int)
    /// Caller error: a data key must be exactly 32 bytes.
    case invalidDataKeyLength(Int)
    /// The input needs more than 2³² chunks (the nonce's chunk counter is 32 bits); use larger chunks.
    case tooManyChunks

    public var description: String {
        switch self {
        case .notASealedRecord:
            return "not a sealed record (bad magic)"
        case let .unsupportedVersion(v):
            return "unsupported sealed-record version \(v) (this build reads version \(SealedRecord.currentVersion))"
        case let .headerMalformed(reason):
            return "sealed-record header is malformed: \(reason)"
        case .dataKeyDoesNotOpen:
            return "the key does not open this record (wrong secret key or data key)"
        case let .chunkAuthenticationFailed(chunk):
            return "chunk \(chunk) failed authentication (tampered, reordered or foreign data)"
        case .truncated:
            return "sealed record is truncated (ends before its final chunk)"
        case .trailingData:
            return "sealed record has data after its final chunk"
        case let .invalidChunkSize(size):
            return "invalid chunk size \(size) (must be 1...\(SealedRecord.maxChunkSize))"
        case let .invalidDataKeyLength(n):
            return "a data key is 32 bytes, got \(n)"
        case .tooManyChunks:
            return "input needs more than 2^32 chunks; use a larger chunk size"
        }
    }
}
