import Crypto

/// A secp256k1 secret key: a scalar in [1, n). Serialized as 32 big-endian bytes, like umbral-pre's
/// `SecretKey.to_be_bytes()` / `from_be_bytes()`. The scalar lives in an OpenSSL BIGNUM that is
/// cleared when released; byte arrays returned by `toSecretBytes()` are the caller's to protect.
public struct SecretKey: Sendable {
    let scalar: Scalar

    init(scalar: Scalar) {
        precondition(!scalar.isZero)
        scalar.bn.markConstantTime()
        self.scalar = scalar
    }

    /// A fresh key from OpenSSL's CSPRNG.
    public static func random() -> SecretKey { SecretKey(scalar: .randomNonZero()) }

    /// Parses 32 big-endian bytes; refuses zero and values ≥ n, as umbral-pre does.
    public init(bigEndianBytes bytes: [UInt8]) throws {
        guard bytes.count == Scalar.byteCount else {
            throw PREError.invalidLength(what: "secret key", expected: Scalar.byteCount, got: bytes.count)
        }
        guard let s = Scalar(bigEndian: bytes), !s.isZero else { throw PREError.invalidSecretKey }
        self.init(scalar: s)
    }

    /// The 32 big-endian bytes (umbral-pre `to_be_bytes()`, formerly `to_secret_bytes()`).
    public func toSecretBytes() -> [UInt8] { scalar.bigEndianBytes }

    /// G · sk.
    public var publicKey: PublicKey { PublicKey(point: .generatorTimes(scalar)) }
}

/// A secp256k1 public key, serialized as the 33-byte compressed SEC1 point
/// (umbral-pre `PublicKey.to_compressed_bytes()` / `from_compressed_bytes()`).
public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
    let point: Point
    /// Kept alongside the point: it is what gets hashed, signed over, compared and serialized.
    public let compressedBytes: [UInt8]

    init(point: Point) {
        self.point = point
        self.compressedBytes = point.compressed
    }

    /// Parses a 33-byte compressed point; refuses anything not on the curve.
    public init(compressedBytes bytes: [UInt8]) throws {
        guard bytes.count == Point.compressedCount else {
            throw PREError.invalidLength(what: "public key", expected: Point.compressedCount, got: bytes.count)
        }
        guard let p = Point(compressed: bytes) else { throw PREError.pointNotOnCurve(what: "public key") }
        self.init(point: p)
    }

    public static func == (a: PublicKey, b: PublicKey) -> Bool { a.compressedBytes == b.compressedBytes }
    public func hash(into h: inout Hasher) { h.combine(compressedBytes) }

    /// Like umbral-pre's `str()`: the type and the first 8 bytes in hex.
    public var description: String { "PublicKey:" + compressedBytes.prefix(8).map { hex2($0) }.joined() }
}

func hex2(_ b: UInt8) -> String {
    let d = Array("0123456789abcdef".utf8)
    return String(decoding: [d[Int(b >> 4)], d[Int(b & 0xf)]], as: UTF8.self)
}

/// Signs kfrags. ECDSA over secp256k1 with SHA-256 of the message, signatures normalised to
/// low S — what umbral-pre's `Signer` (k256 `SigningKey` with a SHA-256 digest) produces, so either
/// side verifies the other's signatures. The nonce is fresh CSPRNG output (k256 uses RFC 6979 with
/// added randomness; signatures from either are equally valid and equally non-deterministic).
public struct Signer: Sendable {
    let secretKey: SecretKey

    public init(_ secretKey: SecretKey) { self.secretKey = secretKey }

    /// The public key that verifies this signer's signatures.
    public var verifyingKey: PublicKey { secretKey.publicKey }

    /// libsecp256k1's ECDSA: RFC 6979 nonces with 32 fresh random bytes mixed in, low S.
    public func sign(_ message: [UInt8]) -> Signature {
        let digest = Array(SHA256.hash(data: message))
        let rs = ECDSA.sign(digest: digest, secretKey: secretKey.scalar)
        // r and s come from libsecp256k1 in [1, n): they always parse.
        guard let r = Scalar(bigEndian: Array(rs[0..<32])), let s = Scalar(bigEndian: Array(rs[32..<64])) else {
            preconditionFailure("LedgerPRE: libsecp256k1 made a signature out of range")
        }
        return Signature(r: r, s: s)
    }
}

/// An ECDSA signature (r, s). Serialized as 64 bytes r ‖ s big-endian (umbral-pre `to_be_bytes()`,
/// also the form inside kfrags and cfrags) or as DER (`to_der_bytes()`).
public struct Signature: Sendable, Equatable {
    let r: Scalar
    let s: Scalar

    init(r: Scalar, s: Scalar) {
        self.r = r
        self.s = s
    }

    /// Parses r ‖ s; both must be in [1, n). High-S values are accepted (umbral-pre 0.11 accepts them too).
    public init(bigEndianBytes bytes: [UInt8]) throws {
        guard bytes.count == 64 else { throw PREError.invalidLength(what: "signature", expected: 64, got: bytes.count) }
        guard let r = Scalar(bigEndian: Array(bytes[0..<32])), let s = Scalar(bigEndian: Array(bytes[32..<64])),
            !r.isZero, !s.isZero
        else {
            throw PREError.malformed(what: "signature", reason: "r and s must be in [1, n)")
        }
        self.init(r: r, s: s)
    }

    public func toBigEndianBytes() -> [UInt8] { r.bigEndianBytes + s.bigEndianBytes }

    /// DER: SEQUENCE { INTEGER r, INTEGER s }, minimal encodings.
    public func toDERBytes() -> [UInt8] {
        func integer(_ v: [UInt8]) -> [UInt8] {
            var b = Array(v.drop(while: { $0 == 0 }))
            if b.isEmpty { b = [0] }
            if b[0] & 0x80 != 0 { b.insert(0, at: 0) }
            return [0x02, UInt8(b.count)] + b
        }
        let body = integer(r.bigEndianBytes) + integer(s.bigEndianBytes)
        return [0x30, UInt8(body.count)] + body
    }

    /// Parses strict DER as written by `toDERBytes()` (and by umbral-pre).
    public init(derBytes der: [UInt8]) throws {
        let bad = PREError.malformed(what: "DER signature", reason: "not a DER SEQUENCE of two INTEGERs")
        guard der.count >= 8, der[0] == 0x30, Int(der[1]) == der.count - 2 else { throw bad }
        var pos = 2
        func integer() throws -> [UInt8] {
            guard pos + 2 <= der.count, der[pos] == 0x02 else { throw bad }
            let n = Int(der[pos + 1])
            guard n >= 1, n <= 33, pos + 2 + n <= der.count else { throw bad }
            var v = Array(der[(pos + 2)..<(pos + 2 + n)])
            pos += 2 + n
            if v[0] & 0x80 != 0 { throw bad }  // negative
            if v.count > 1, v[0] == 0, v[1] & 0x80 == 0 { throw bad }  // non-minimal
            if v.count == 33 {
                guard v[0] == 0 else { throw bad }
                v.removeFirst()
            }
            return [UInt8](repeating: 0, count: 32 - v.count) + v
        }
        let r = try integer()
        let s = try integer()
        guard pos == der.count else { throw bad }
        try self.init(bigEndianBytes: r + s)
    }

    /// Verifies against `verifyingKey` over SHA-256(message); high S is accepted, as umbral-pre does.
    public func verify(_ verifyingKey: PublicKey, message: [UInt8]) -> Bool {
        ECDSA.verify(rs: toBigEndianBytes(), digest: Array(SHA256.hash(data: message)), key: verifyingKey.point)
    }

    public static func == (a: Signature, b: Signature) -> Bool { a.r == b.r && a.s == b.s }
}
