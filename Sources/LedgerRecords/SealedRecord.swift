import Crypto
import Foundation
import LedgerPRE

/// Client-side sealing of a medical record bundle (Wen et al. 2024, data flow step ①): the patient
/// encrypts the bundle with a fresh AES-256-GCM data key, wraps the data key for herself in an
/// Umbral capsule, and the SHA-384 of the sealed object is what the P_DE index record carries and
/// both patient and doctor sign. Everything streams: memory use is one or two chunks, whatever the
/// record size.
///
/// ## Format, version 1 (all integers big-endian; docs/SEALED_RECORDS.md has the rationale)
///
///     header (233 bytes):
///       off len
///         0   8  magic "MLSEALED"
///         8   1  version = 0x01
///         9   2  capsule length = 105
///        11 105  Umbral capsule (umbral-pre 0.11 `bytes(capsule)`, MessagePack [E, V, s])
///       116   2  wrapped data key length = 72
///       118  72  Umbral.encrypt(patientPK, dataKey) DEM ciphertext: nonce(24) ‖ XChaCha20-Poly1305(32) ‖ tag(16)
///       190  32  key commitment = HMAC-SHA-256(key: dataKey, "medledger/sealed-record/v1/key-commitment")
///       222   7  nonce prefix (random per object)
///       229   4  chunk size C (plaintext bytes per non-final chunk), 1 ≤ C ≤ 16 MiB; default 64 KiB
///     body: chunks i = 0, 1, …, n−1 (n ≥ 1), each
///       non-final:  0x00 ‖ AES-256-GCM ciphertext of exactly C bytes ‖ tag(16)
///       final:      0x01 ‖ u32 L (0 ≤ L ≤ C) ‖ AES-256-GCM ciphertext of L bytes ‖ tag(16)
///     AES-256-GCM: key = data key, nonce(12) = prefix(7) ‖ u32 i ‖ (0x01 final | 0x00), AAD = header (233 bytes)
///     digest = SHA-384 over header ‖ body (the whole object, as stored)
///
/// The sealer writes an empty final chunk only for an empty plaintext; a plaintext that is a
/// multiple of C ends with a full final chunk. Readers accept any L in 0...C.
///
/// Why each piece: the counter in the nonce makes a reordered, dropped or duplicated chunk fail
/// authentication at its position; the final flag in the nonce means a stream cut after a non-final
/// chunk cannot pass as complete, and a chunk cannot claim to be final without the key; the header as
/// AAD ties every chunk to this capsule, key commitment, prefix and chunk size. The 1-byte marker and
/// the final length make the end of the stream explicit on disk (both are authenticated: a changed
/// marker changes the nonce, a changed length the ciphertext), so bytes after the final chunk are
/// reported as trailing data rather than as a corrupt last chunk, and the reader needs no look-ahead.
public enum SealedRecord {
    public static let magic: [UInt8] = Array("MLSEALED".utf8)
    public static let currentVersion: UInt8 = 1
    public static let defaultChunkSize = 64 * 1024
    public static let maxChunkSize = 16 * 1024 * 1024
    public static let headerCount = 233
    static let chunkSizeRange = 1...maxChunkSize
    static let capsuleCount = 105
    static let wrappedKeyCount = 72
    static let keyCommitmentCount = 32
    static let noncePrefixCount = 7
    static let tagCount = 16
    static let nonFinalMarker: UInt8 = 0x00
    static let finalMarker: UInt8 = 0x01
    static let keyCommitmentLabel = Array("medledger/sealed-record/v1/key-commitment".utf8)

    /// Reads up to `count` bytes; returns fewer only at end of input, an empty array at end of input.
    /// (A short read before the end is fine: the library keeps reading until it has `count` or EOF.)
    public typealias Reader = (_ count: Int) throws -> [UInt8]
    /// Writes all the given bytes.
    public typealias Writer = (_ bytes: [UInt8]) throws -> Void

    /// What `seal` produced: the digest the P_DE records and both parties sign, and the object size.
    public struct SealResult: Sendable {
        /// Lowercase hex SHA-384 of the whole sealed object (96 characters).
        public let digestHex: String
        /// Bytes written (header + body).
        public let sealedSize: UInt64
        public let plaintextSize: UInt64
        public let header: SealedRecordHeader
    }

    /// What `open` read: the digest of the sealed object as read (compare it with the P_DE's).
    public struct OpenResult: Sendable {
        public let digestHex: String
        public let sealedSize: UInt64
        public let plaintextSize: UInt64
        public let header: SealedRecordHeader
    }

    /// How to get the data key when opening.
    public enum Opener: Sendable {
        /// The patient: unwrap the data key with Umbral `decryptOriginal`.
        case patientSecretKey(SecretKey)
        /// Someone who already holds the data key (a third party that got it through capsule
        /// fragments: `SealedRecordHeader.openDataKey(receivingSK:delegatingPK:cfrags:)`).
        case dataKey(DataKey)
    }

    // MARK: Seal

    /// Seals everything `read` yields into `write`: a fresh data key wrapped to `patientPK`, the
    /// header, then the chunks. SHA-384 is computed over exactly the bytes written.
    public static func seal(
        patientPK: PublicKey, chunkSize: Int = defaultChunkSize,
        read: Reader, write: Writer
    ) throws -> SealResult {
        guard chunkSizeRange.contains(chunkSize) else { throw SealedRecordError.invalidChunkSize(chunkSize) }
        let dataKey = DataKey.random()
        let (capsule, wrapped) = Umbral.encrypt(delegatingPK: patientPK, plaintext: dataKey.bytes)
        var rng = SystemRandomNumberGenerator()
        let prefix = (0..<noncePrefixCount).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
        let header = SealedRecordHeader(
            capsule: capsule, wrappedDataKey: wrapped, keyCommitment: dataKey.commitment,
            noncePrefix: prefix, chunkSize: chunkSize)

        var out = Tally()
        func emit(_ bytes: [UInt8]) throws {
            try write(bytes)
            out.add(bytes)
        }
        try emit(header.bytes)
        let key = dataKey.symmetricKey
        var plaintextSize: UInt64 = 0
        var index: UInt32 = 0
        // One chunk of look-ahead: a chunk is final when it is short or nothing follows it.
        var current = try readFully(read, chunkSize)
        while true {
            let next = current.count == chunkSize ? try readFully(read, chunkSize) : []
            let isFinal = next.isEmpty
            let box = try AES.GCM.seal(
                current, using: key, nonce: nonce(prefix, index, final: isFinal), authenticating: header.bytes)
            if isFinal {
                try emit([finalMarker] + bigEndian(UInt32(current.count)) + Array(box.ciphertext) + Array(box.tag))
            } else {
                try emit([nonFinalMarker] + Array(box.ciphertext) + Array(box.tag))
            }
            plaintextSize += UInt64(current.count)
            if isFinal { break }
            guard index < UInt32.max else { throw SealedRecordError.tooManyChunks }
            index += 1
            current = next
        }
        return SealResult(
            digestHex: out.digestHex(), sealedSize: out.count, plaintextSize: plaintextSize, header: header)
    }

    // MARK: Header only

    /// Reads just the header (233 bytes) — enough for the proxy re-encryption path, which needs
    /// the capsule and the wrapped data key but never the body.
    public static func readHeader(read: Reader) throws -> SealedRecordHeader {
        var discard = Tally()
        return try readHeader(read, &discard)
    }

    // MARK: Open

    /// Decrypts the sealed object `read` yields into `write`, chunk by chunk.
    ///
    /// Plaintext is written as each chunk authenticates, so when this throws, `write` has already
    /// received the chunks before the failure: discard that output (`openFile` does). The digest in
    /// the result is over the bytes read; the caller compares it with the signed P_DE digest.
    public static func open(_ opener: Opener, read: Reader, write: Writer) throws -> OpenResult {
        var tally = Tally()
        func take(_ n: Int) throws -> [UInt8] {
            let b = try readFully(read, n)
            tally.add(b)
            return b
        }
        let header = try readHeader(read, &tally)
        let dataKey: DataKey
        switch opener {
        case let .patientSecretKey(sk): dataKey = try header.openDataKey(patientSK: sk)
        case let .dataKey(k):
            try header.verify(k)
            dataKey = k
        }
        let key = dataKey.symmetricKey
        var plaintextSize: UInt64 = 0
        var index = 0
        while true {
            let marker = try take(1)
            guard let m = marker.first else { throw SealedRecordError.truncated }  // ended after a non-final chunk
            guard index <= Int(UInt32.max) else { throw SealedRecordError.chunkAuthenticationFailed(chunk: index) }
            let isFinal: Bool
            let length: Int
            switch m {
            case nonFinalMarker:
                isFinal = false
                length = header.chunkSize
            case finalMarker:
                isFinal = true
                let l = try take(4)
                guard l.count == 4 else { throw SealedRecordError.truncated }
                length = Int(readBigEndian(l))
                // A length the sealer could not have written: framing tampered with.
                guard length <= header.chunkSize else {
                    throw SealedRecordError.chunkAuthenticationFailed(chunk: index)
                }
            default:
                throw SealedRecordError.chunkAuthenticationFailed(chunk: index)
            }
            let sealed = try take(length + tagCount)
            guard sealed.count == length + tagCount else { throw SealedRecordError.truncated }
            let plaintext: [UInt8]
            do {
                let box = try AES.GCM.SealedBox(
                    nonce: nonce(header.noncePrefix, UInt32(index), final: isFinal),
                    ciphertext: sealed[0..<length], tag: sealed[length...])
                plaintext = Array(try AES.GCM.open(box, using: key, authenticating: header.bytes))
            } catch {
                throw SealedRecordError.chunkAuthenticationFailed(chunk: index)
            }
            // Check for trailing bytes before releasing the final plaintext.
            if isFinal {
                let extra = try take(1)
                guard extra.isEmpty else { throw SealedRecordError.trailingData }
            }
            try write(plaintext)
            plaintextSize += UInt64(plaintext.count)
            if isFinal { break }
            index += 1
        }
        return OpenResult(
            digestHex: tally.digestHex(), sealedSize: tally.count, plaintextSize: plaintextSize, header: header)
    }

    // MARK: FileHandle and file conveniences

    public static func seal(
        patientPK: PublicKey, chunkSize: Int = defaultChunkSize,
        from input: FileHandle, to output: FileHandle
    ) throws -> SealResult {
        try seal(patientPK: patientPK, chunkSize: chunkSize, read: reader(input), write: writer(output))
    }

    public static func readHeader(from input: FileHandle) throws -> SealedRecordHeader {
        try readHeader(read: reader(input))
    }

    public static func open(_ opener: Opener, from input: FileHandle, to output: FileHandle) throws -> OpenResult {
        try open(opener, read: reader(input), write: writer(output))
    }

    /// Opens the sealed file at `input` into `output` without ever leaving unauthenticated
    /// plaintext at `output`: decrypts into a temporary file beside it (mode 0600), renames it into
    /// place on success, removes it on any failure.
    public static func openFile(_ opener: Opener, at input: URL, to output: URL) throws -> OpenResult {
        let partial = output.deletingLastPathComponent()
            .appendingPathComponent(".\(output.lastPathComponent).\(UUID().uuidString).partial")
        guard
            FileManager.default.createFile(atPath: partial.path, contents: nil, attributes: [.posixPermissions: 0o600])
        else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: partial.path])
        }
        var renamed = false
        defer { if !renamed { try? FileManager.default.removeItem(at: partial) } }
        let inHandle = try FileHandle(forReadingFrom: input)
        defer { try? inHandle.close() }
        let outHandle = try FileHandle(forWritingTo: partial)
        let result: OpenResult
        do {
            result = try open(opener, from: inHandle, to: outHandle)
            try outHandle.synchronize()
            try outHandle.close()
        } catch {
            try? outHandle.close()
            throw error
        }
        if FileManager.default.fileExists(atPath: output.path) { try FileManager.default.removeItem(at: output) }
        try FileManager.default.moveItem(at: partial, to: output)
        renamed = true
        return result
    }

    // MARK: Internals

    static func nonce(_ prefix: [UInt8], _ index: UInt32, final: Bool) throws -> AES.GCM.Nonce {
        try AES.GCM.Nonce(data: prefix + bigEndian(index) + [final ? 0x01 : 0x00])
    }

    static func readHeader(_ read: Reader, _ tally: inout Tally) throws -> SealedRecordHeader {
        func take(_ n: Int) throws -> [UInt8] {
            let b = try readFully(read, n)
            tally.add(b)
            return b
        }
        // Magic and version first, so a foreign file or a future version is named as such even
        // when it is shorter than a version-1 header.
        let start = try take(magic.count + 1)
        guard start.count == magic.count + 1 else { return try SealedRecordHeader(bytes: start) }  // throws
        guard Array(start[0..<magic.count]) == magic else { throw SealedRecordError.notASealedRecord }
        guard start[magic.count] == currentVersion else {
            throw SealedRecordError.unsupportedVersion(start[magic.count])
        }
        let rest = try take(headerCount - start.count)
        guard rest.count == headerCount - start.count else { throw SealedRecordError.truncated }
        return try SealedRecordHeader(bytes: start + rest)
    }

    static func reader(_ handle: FileHandle) -> Reader {
        { count in try handle.read(upToCount: count).map { Array($0) } ?? [] }
    }

    static func writer(_ handle: FileHandle) -> Writer {
        { bytes in try handle.write(contentsOf: bytes) }
    }
}

/// Reads exactly `count` bytes, or fewer only at end of input.
func readFully(_ read: SealedRecord.Reader, _ count: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(count)
    while out.count < count {
        let part = try read(count - out.count)
        if part.isEmpty { break }
        out += part.prefix(count - out.count)  // a reader returning too much is not trusted past `count`
    }
    return out
}

/// SHA-384 and byte count of everything that passed through a seal or open call, so the digest
/// is over exactly the bytes written or authenticated. A value owned by one call: no shared state.
struct Tally {
    private var hasher = SHA384()
    private(set) var count: UInt64 = 0

    mutating func add(_ bytes: [UInt8]) {
        hasher.update(data: bytes)
        count += UInt64(bytes.count)
    }

    func digestHex() -> String { hexString(hasher.finalize()) }
}

func hexString<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
