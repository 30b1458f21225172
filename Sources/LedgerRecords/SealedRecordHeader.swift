import Crypto
import LedgerPRE

/// A fresh AES-256 key for one sealed record. Never reused: each `seal` makes a new one, which is
/// what lets the per-object nonce be a short random prefix plus a counter.
public struct DataKey: Sendable {
    public static let count = 32
    /// The raw 32 key bytes (what Umbral wraps). Secret.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.count else { throw SealedRecordError.invalidDataKeyLength(bytes.count) }
        self.bytes = bytes
    }

    static func random() -> DataKey {
        // swift-crypto draws from the system CSPRNG.
        DataKey(unchecked: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }

    /// HMAC-SHA-256(key: data key, "medledger/sealed-record/v1/key-commitment"). Stored in the
    /// header: it makes the object commit to one key (AES-GCM alone does not — a crafted ciphertext
    /// can open under two keys to two plaintexts), so the signed digest pins one plaintext; and it
    /// lets a wrong data key be reported as such instead of as "chunk 0 tampered".
    var commitment: [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: SealedRecord.keyCommitmentLabel, using: symmetricKey))
    }
}

/// The fixed-size header of a version-1 sealed record (layout in `SealedRecord`). `bytes` are the
/// exact bytes on disk; they are the associated data of every chunk, so no header field can be
/// changed without every chunk failing.
public struct SealedRecordHeader: Sendable {
    public let version: UInt8
    /// Umbral capsule encapsulating the wrapping key to the patient's public key; a proxy
    /// re-encrypts this (and only this) for a third party.
    public let capsule: Capsule
    /// Umbral DEM ciphertext of the 32-byte data key (24-byte nonce ‖ 32 ‖ 16-byte tag).
    public let wrappedDataKey: [UInt8]
    /// HMAC-SHA-256 key commitment of the data key (see `DataKey.commitment`).
    public let keyCommitment: [UInt8]
    /// Random per-object prefix of every chunk nonce (7 bytes).
    public let noncePrefix: [UInt8]
    /// Plaintext bytes per non-final chunk.
    public let chunkSize: Int
    /// The exact header bytes (`SealedRecord.headerCount` of them).
    public let bytes: [UInt8]

    init(capsule: Capsule, wrappedDataKey: [UInt8], keyCommitment: [UInt8], noncePrefix: [UInt8], chunkSize: Int) {
        precondition(
            wrappedDataKey.count == SealedRecord.wrappedKeyCount
                && keyCommitment.count == SealedRecord.keyCommitmentCount
                && noncePrefix.count == SealedRecord.noncePrefixCount && SealedRecord.chunkSizeRange.contains(chunkSize)
        )
        let capsuleBytes = capsule.toBytes()
        precondition(capsuleBytes.count == SealedRecord.capsuleCount)
        var b = SealedRecord.magic
        b.append(SealedRecord.currentVersion)
        b += bigEndian(UInt16(capsuleBytes.count)) + capsuleBytes
        b += bigEndian(UInt16(wrappedDataKey.count)) + wrappedDataKey
        b += keyCommitment + noncePrefix + bigEndian(UInt32(chunkSize))
        precondition(b.count == SealedRecord.headerCount)
        self.version = SealedRecord.currentVersion
        self.capsule = capsule
        self.wrappedDataKey = wrappedDataKey
        self.keyCommitment = keyCommitment
        self.noncePrefix = noncePrefix
        self.chunkSize = chunkSize
        self.bytes = b
    }

    /// Parses a complete header. Version 1 fixes every length, so anything else is malformed.
    public init(bytes b: [UInt8]) throws {
        let magicCount = SealedRecord.magic.count
        guard b.count >= magicCount, Array(b[0..<magicCount]) == SealedRecord.magic else {
            // A short prefix of the magic is a cut-off record, anything else is not ours.
            if b.count < magicCount, Array(SealedRecord.magic.prefix(b.count)) == b, !b.isEmpty {
                throw SealedRecordError.truncated
            }
            throw SealedRecordError.notASealedRecord
        }
        guard b.count > magicCount else { throw SealedRecordError.truncated }
        guard b[magicCount] == SealedRecord.currentVersion else {
            throw SealedRecordError.unsupportedVersion(b[magicCount])
        }
        guard b.count >= SealedRecord.headerCount else { throw SealedRecordError.truncated }
        guard b.count == SealedRecord.headerCount else {
            throw SealedRecordError.headerMalformed("header must be \(SealedRecord.headerCount) bytes, got \(b.count)")
        }

        var at = magicCount + 1
        func take(_ n: Int) -> [UInt8] {
            defer { at += n }
            return Array(b[at..<(at + n)])
        }
        func length(_ field: String, expected: Int) throws {
            let n = Int(readBigEndian(take(2)))
            guard n == expected else {
                throw SealedRecordError.headerMalformed("\(field) length is \(n), version 1 requires \(expected)")
            }
        }
        try length("capsule", expected: SealedRecord.capsuleCount)
        let capsuleBytes = take(SealedRecord.capsuleCount)
        let capsule: Capsule
        do { capsule = try Capsule(bytes: capsuleBytes) } catch {
            throw SealedRecordError.headerMalformed("capsule: \(error)")
        }
        try length("wrapped data key", expected: SealedRecord.wrappedKeyCount)
        let wrapped = take(SealedRecord.wrappedKeyCount)
        let commitment = take(SealedRecord.keyCommitmentCount)
        let prefix = take(SealedRecord.noncePrefixCount)
        let chunkSize = Int(readBigEndian(take(4)))
        guard SealedRecord.chunkSizeRange.contains(chunkSize) else {
            throw SealedRecordError.headerMalformed("chunk size \(chunkSize) outside \(SealedRecord.chunkSizeRange)")
        }
        self.version = SealedRecord.currentVersion
        self.capsule = capsule
        self.wrappedDataKey = wrapped
        self.keyCommitment = commitment
        self.noncePrefix = prefix
        self.chunkSize = chunkSize
        self.bytes = b
    }

    /// The patient opens her own record: Umbral `decryptOriginal` of the wrapped data key.
    public func openDataKey(patientSK: SecretKey) throws -> DataKey {
        let raw: [UInt8]
        do {
            raw = try Umbral.decryptOriginal(delegatingSK: patientSK, capsule: capsule, ciphertext: wrappedDataKey)
        } catch PREError.decryptionFailed {
            throw SealedRecordError.dataKeyDoesNotOpen
        }
        return try checked(raw)
    }

    /// A third party opens the data key from ≥ threshold verified capsule fragments of `capsule`
    /// (the proxy re-encryption path). Too few or foreign fragments throw LedgerPRE's
    /// `PREError.notEnoughOrInvalidCapsuleFrags` (or another `PREError` naming the problem).
    public func openDataKey(
        receivingSK: SecretKey, delegatingPK: PublicKey, cfrags: [VerifiedCapsuleFrag]
    ) throws -> DataKey {
        let raw: [UInt8]
        do {
            raw = try Umbral.decryptReencrypted(
                receivingSK: receivingSK, delegatingPK: delegatingPK,
                capsule: capsule, cfrags: cfrags, ciphertext: wrappedDataKey)
        } catch PREError.decryptionFailed {
            throw SealedRecordError.dataKeyDoesNotOpen
        }
        return try checked(raw)
    }

    /// Throws `.dataKeyDoesNotOpen` unless `key` is the one this header commits to.
    public func verify(_ key: DataKey) throws {
        // Constant-time comparison through swift-crypto's MAC check.
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                keyCommitment, authenticating: SealedRecord.keyCommitmentLabel,
                using: key.symmetricKey)
        else {
            throw SealedRecordError.dataKeyDoesNotOpen
        }
    }

    /// An unwrapped key that is authentic under the capsule but is not 32 bytes or not the
    /// committed one means whoever sealed the record built an inconsistent header.
    private func checked(_ raw: [UInt8]) throws -> DataKey {
        guard raw.count == DataKey.count else {
            throw SealedRecordError.headerMalformed("wrapped data key is \(raw.count) bytes, not 32")
        }
        let key = try DataKey(bytes: raw)
        do { try verify(key) } catch {
            throw SealedRecordError.headerMalformed("key commitment does not match the wrapped data key")
        }
        return key
    }
}

func bigEndian(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func bigEndian(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
}
func readBigEndian(_ b: [UInt8]) -> UInt32 { b.reduce(0) { $0 << 8 | UInt32($1) } }
