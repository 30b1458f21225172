import CLibCrypto
import CSecp256k1

// secp256k1 scalar and point arithmetic over Bitcoin Core's libsecp256k1 (Debian libsecp256k1-dev 0.2.0,
// module CSecp256k1), with OpenSSL's libcrypto kept for what libsecp256k1 does not offer publicly.
//
// Why libsecp256k1: it is ~10× faster than OpenSSL's generic EC code on this curve (P·k ~48 µs
// against ~460 µs, G·k ~22 µs against ~400 µs on the build machine) and everything Umbral needs is
// reachable through its public API:
//   P · k (secret k)   secp256k1_ecdh with a "hash" callback that hands back x ‖ y (constant time,
//                      ecmult_const), then secp256k1_ec_pubkey_parse of 04 ‖ x ‖ y
//   G · k              secp256k1_ec_pubkey_create (constant time, blinded by the randomized context)
//   G · a + Q · b      secp256k1_ec_pubkey_tweak_mul then secp256k1_ec_pubkey_tweak_add (variable time:
//                      ECDSA verification only, public values)
//   P + Q              secp256k1_ec_pubkey_combine
//   P == Q             secp256k1_ec_pubkey_cmp
//   parse / encode     secp256k1_ec_pubkey_parse / secp256k1_ec_pubkey_serialize
//   a + b, a · b, −a   secp256k1_ec_seckey_tweak_add / _tweak_mul / _negate
//   a⁻¹                a^(n−2) by a fixed 4-bit window of secp256k1_ec_seckey_tweak_mul (327 calls)
//   0 < a < n ?        secp256k1_ec_seckey_verify
// What stays on OpenSSL: the CSPRNG (RAND_priv_bytes, as before), BigNum/BNContext/ECPointBox and the
// EC_GROUP, which HashToCurve.swift uses for its GF(p) arithmetic (run once, for the parameter U),
// and OPENSSL_cleanse to wipe secret scalars. The two reductions of a 32-byte digest (mod n, and
// mod n − 1 then + 1) are a conditional 256-bit subtraction done here (U256 below).
//
// Edge cases. libsecp256k1 works on *keys*: it has no point at infinity and refuses a zero secret key
// and a zero multiplier. Umbral does meet both: the identity starts the Lagrange sums
// (Capsule.openReencrypted) and comes out of P + (−P) or P · 0 for hostile inputs (a parsed capsule
// signature or cfrag proof scalar may be 0, since `Scalar(bigEndian:)` accepts 0 like k256's
// from_repr), and sums or differences of scalars may be 0. So, exactly as the OpenSSL version behaved:
//   * `Point` holds an optional secp256k1_pubkey; nil is the identity. O + P = P, P · 0 = O · k = O,
//     G · 0 = O, P + (−P) = O (combine fails only then), O == O, O encodes as 33 zero bytes (which no
//     parser accepts).
//   * Scalars are canonical 32 big-endian bytes in [0, n). Zero operands are handled before calling
//     libsecp256k1 (0 + b = b, 0 · b = 0, −0 = 0, 0⁻¹ = nil); a + b = 0 is the only way
//     seckey_tweak_add fails on canonical operands, so its failure means the zero scalar.
// Every other libsecp256k1 failure would be a bug here (a non-canonical scalar or an invalid key) and
// stops the process (precondition), as the OpenSSL failures did.
//
// Context and threads: one secp256k1_context (SECP256K1_CONTEXT_NONE, the only non-deprecated flag
// in 0.2.0, which builds a context good for every call), randomized once at creation before it is
// published through `Secp256k1.shared` (a Swift `static let`: initialized once, thread safe). Every
// call below takes it as `const secp256k1_context*`, which libsecp256k1 documents as safe to share
// between threads; nothing calls secp256k1_context_randomize or _destroy on it afterwards. Its
// illegal-argument and error callbacks are the defaults (print and abort): only a bug can reach them.
//
// Lifetimes: a ScalarBytes' pointer is only passed to C while the owner is a parameter, `self`, or a
// named local used after the call (the same rule as for the OpenSSL owners below).

// MARK: - OpenSSL leftovers (HashToCurve.swift's GF(p) arithmetic and its EC_POINT result)

/// An owned OpenSSL BIGNUM. Cleared (BN_clear_free) on release. Used by HashToCurve.swift only.
final class BigNum: @unchecked Sendable {
    let ptr: OpaquePointer

    init() {
        guard let p = BN_new() else { fatalError("LedgerPRE: BN_new failed (out of memory)") }
        ptr = p
    }

    convenience init(bigEndian bytes: [UInt8]) {
        self.init()
        let ok = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), ptr) }
        precondition(ok != nil, "LedgerPRE: BN_bin2bn failed")
    }

    convenience init(copying other: BigNum) {
        self.init()
        precondition(BN_copy(ptr, other.ptr) != nil, "LedgerPRE: BN_copy failed")
    }

    /// Big-endian bytes left-padded to `count`.
    func bigEndian(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBufferPointer { BN_bn2binpad(ptr, $0.baseAddress, Int32(count)) }
        precondition(n == Int32(count), "LedgerPRE: BN_bn2binpad failed")
        return out
    }

    /// Marks the number secret: OpenSSL then takes its constant-time paths where it has them.
    func markConstantTime() { BN_set_flags(ptr, BN_FLG_CONSTTIME) }

    deinit { BN_clear_free(ptr) }
}

/// A per-operation BN_CTX (scratch space for OpenSSL's arithmetic); never shared between threads.
final class BNContext {
    let ptr: OpaquePointer

    init() {
        guard let p = BN_CTX_secure_new() ?? BN_CTX_new() else { fatalError("LedgerPRE: BN_CTX_new failed") }
        ptr = p
    }

    deinit { BN_CTX_free(ptr) }
}

/// An owned OpenSSL EC_POINT: only how HashToCurve.swift builds a point from affine coordinates;
/// `Point(box:)` converts it.
final class ECPointBox: @unchecked Sendable {
    let ptr: OpaquePointer

    init() {
        guard let p = EC_POINT_new(Secp256k1.shared.group) else { fatalError("LedgerPRE: EC_POINT_new failed") }
        ptr = p
    }

    deinit { EC_POINT_clear_free(ptr) }
}

// MARK: - The curve

/// The libsecp256k1 context, and OpenSSL's secp256k1 group with constants derived from the order n.
/// Built once, then read only.
final class Secp256k1: @unchecked Sendable {
    static let shared = Secp256k1()

    /// libsecp256k1's context: created with SECP256K1_CONTEXT_NONE and randomized here, once, so
    /// the calls below (which all take it as const) need no locking.
    let context: OpaquePointer
    /// OpenSSL's EC_GROUP: HashToCurve.swift reads p from it and builds EC_POINTs on it.
    let group: OpaquePointer
    /// n, the group order, and n − 1, n − 2, ⌊n / 2⌋. The arithmetic no longer uses these BIGNUMs
    /// (it uses the byte constants on `Scalar` and `U256`); they stay so that no other file changes.
    let order: BigNum
    let orderMinusOne: BigNum
    let orderMinusTwo: BigNum
    let halfOrder: BigNum

    private init() {
        guard let ctx = secp256k1_context_create(UInt32(SECP256K1_CONTEXT_NONE)) else {
            fatalError("LedgerPRE: secp256k1_context_create failed")
        }
        // Randomization blinds secp256k1_ec_pubkey_create's multiplication (side channels). Done
        // once, before the context is shared: libsecp256k1 requires exclusive access for it.
        var seed = [UInt8](repeating: 0, count: 32)
        // (Calls with side effects are kept out of `precondition`, whose condition -Ounchecked skips.)
        let drawn = RAND_priv_bytes(&seed, 32)
        precondition(drawn == 1, "LedgerPRE: RAND_priv_bytes failed (no entropy)")
        let randomized = secp256k1_context_randomize(ctx, seed)
        OPENSSL_cleanse(&seed, 32)
        precondition(randomized == 1, "LedgerPRE: secp256k1_context_randomize failed")
        context = ctx

        guard let g = EC_GROUP_new_by_curve_name(NID_secp256k1) else {
            fatalError("LedgerPRE: OpenSSL has no secp256k1 (EC_GROUP_new_by_curve_name failed)")
        }
        group = g
        let n = BigNum()
        precondition(EC_GROUP_get_order(g, n.ptr, nil) == 1, "LedgerPRE: EC_GROUP_get_order failed")
        order = n
        orderMinusOne = BigNum(copying: n)
        precondition(BN_sub_word(orderMinusOne.ptr, 1) == 1)
        orderMinusTwo = BigNum(copying: n)
        precondition(BN_sub_word(orderMinusTwo.ptr, 2) == 1)
        halfOrder = BigNum()
        precondition(BN_rshift1(halfOrder.ptr, n.ptr) == 1)
    }

    deinit {
        secp256k1_context_destroy(context)
        EC_GROUP_free(group)
    }
}

/// Fills `count` bytes from OpenSSL's CSPRNG. A failing system RNG is not recoverable.
func secureRandomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    let ok = out.withUnsafeMutableBufferPointer { RAND_priv_bytes($0.baseAddress, Int32(count)) }
    precondition(ok == 1, "LedgerPRE: RAND_priv_bytes failed (no entropy)")
    return out
}

// MARK: - Scalars

/// 32 big-endian bytes of a scalar, in their own allocation, wiped (OPENSSL_cleanse) on release
/// because many are secrets. Written only while the owning `Scalar` is being computed, then read only.
final class ScalarBytes: @unchecked Sendable {
    let ptr: UnsafeMutablePointer<UInt8>

    /// Zero.
    init() {
        ptr = .allocate(capacity: Scalar.byteCount)
        ptr.initialize(repeating: 0, count: Scalar.byteCount)
    }

    convenience init(copying other: ScalarBytes) {
        self.init()
        ptr.update(from: other.ptr, count: Scalar.byteCount)
    }

    /// Exactly 32 bytes, copied as they are (the caller checks the range).
    convenience init(bigEndian bytes: [UInt8]) {
        precondition(bytes.count == Scalar.byteCount)
        self.init()
        bytes.withUnsafeBufferPointer { ptr.update(from: $0.baseAddress!, count: Scalar.byteCount) }
    }

    /// All 32 bytes zero, checked without an early exit.
    var isZero: Bool {
        var acc: UInt8 = 0
        for i in 0..<Scalar.byteCount { acc |= ptr[i] }
        return acc == 0
    }

    /// Kept for Keys.swift (`scalar.bn.markConstantTime()`, from the OpenSSL version): libsecp256k1's
    /// scalar code is constant time for every value, so there is nothing to switch on.
    func markConstantTime() {}

    deinit {
        OPENSSL_cleanse(ptr, Scalar.byteCount)
        ptr.deallocate()
    }
}

/// A scalar modulo the group order n, always in [0, n). Immutable.
struct Scalar: Sendable {
    /// The value's bytes. Still named `bn` (it was an OpenSSL BIGNUM) so Keys.swift compiles unchanged.
    let bn: ScalarBytes

    static let byteCount = 32

    fileprivate init(_ bn: ScalarBytes) { self.bn = bn }

    /// Parses exactly 32 big-endian bytes; nil if the value is ≥ n (as k256's `from_repr`). Zero is
    /// accepted, as before: callers that need non-zero (secret keys, signatures) check `isZero`;
    /// a zero capsule signature or cfrag proof scalar just fails its verification equation.
    init?(bigEndian bytes: [UInt8]) {
        guard bytes.count == Scalar.byteCount else { return nil }
        let v = ScalarBytes(bigEndian: bytes)
        // seckey_verify is "0 < v < n"; zero is let through separately.
        guard v.isZero || secp256k1_ec_seckey_verify(Secp256k1.shared.context, v.ptr) == 1 else { return nil }
        bn = v
    }

    static let one: Scalar = {
        let v = ScalarBytes()
        v.ptr[Scalar.byteCount - 1] = 1
        return Scalar(v)
    }()

    static var zero: Scalar { Scalar(ScalarBytes()) }

    /// Uniform in [1, n): 32 CSPRNG bytes, redrawn until 0 < v < n (a redraw has probability ≈ 2⁻¹²⁸).
    /// The bytes go straight into the wiped allocation, never through a Swift array.
    static func randomNonZero() -> Scalar {
        let context = Secp256k1.shared.context
        let v = ScalarBytes()
        repeat {
            let drawn = RAND_priv_bytes(v.ptr, Int32(Scalar.byteCount))
            precondition(drawn == 1, "LedgerPRE: RAND_priv_bytes failed (no entropy)")
        } while secp256k1_ec_seckey_verify(context, v.ptr) != 1
        return Scalar(v)
    }

    /// Umbral's hash-to-scalar: a 32-byte digest read big-endian, reduced to a non-zero scalar as
    /// (h mod (n − 1)) + 1 — what k256's `NonZeroScalar::reduce` does (checked against umbral-pre).
    /// h < 2²⁵⁶ < 2(n − 1), so one conditional subtraction is the whole reduction. (libsecp256k1
    /// has no public reduction; its set_b32 reduces mod n only, and inside the library.)
    static func nonZero(fromDigest digest: [UInt8]) -> Scalar {
        precondition(digest.count == 32)
        let h = U256(bigEndian: digest)
        let r = h.isAtLeast(U256.nMinusOne) ? h.minus(U256.nMinusOne) : h
        let v = ScalarBytes()
        r.plusOne().write(to: v.ptr)  // r ≤ n − 2, so r + 1 ∈ [1, n − 1]: no carry out
        return Scalar(v)
    }

    var bigEndianBytes: [UInt8] { Array(UnsafeBufferPointer(start: bn.ptr, count: Scalar.byteCount)) }
    var isZero: Bool { bn.isZero }

    /// ⌊n / 2⌋ big-endian.
    private static let halfOrderBytes: [UInt8] = [
        0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
    ]

    /// n − 2 big-endian: the exponent of the inversion.
    private static let orderMinusTwoBytes: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
        0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x3F,
    ]

    /// s > n/2 (a "high S" ECDSA value). Big-endian bytes of equal length compare as the numbers do.
    var isHigh: Bool {
        let half = Scalar.halfOrderBytes
        for i in 0..<Scalar.byteCount where bn.ptr[i] != half[i] { return bn.ptr[i] > half[i] }
        return false  // equal to ⌊n/2⌋: not high
    }

    /// seckey_tweak_add refuses a zero key (not a zero tweak) and fails exactly when the sum is
    /// 0 mod n; both operands are canonical, so a failure *is* the zero result.
    static func + (a: Scalar, b: Scalar) -> Scalar {
        if a.isZero { return b }
        if b.isZero { return a }
        let r = ScalarBytes(copying: a.bn)
        guard secp256k1_ec_seckey_tweak_add(Secp256k1.shared.context, r.ptr, b.bn.ptr) == 1 else { return .zero }
        return Scalar(r)
    }

    static func - (a: Scalar, b: Scalar) -> Scalar { a + b.negated }

    /// seckey_tweak_mul refuses a zero key or a zero tweak; the product of two non-zero scalars is
    /// non-zero (n is prime), so with the zeros handled first it cannot fail.
    static func * (a: Scalar, b: Scalar) -> Scalar {
        if a.isZero || b.isZero { return .zero }
        let r = ScalarBytes(copying: a.bn)
        let ok = secp256k1_ec_seckey_tweak_mul(Secp256k1.shared.context, r.ptr, b.bn.ptr)
        precondition(ok == 1, "LedgerPRE: secp256k1_ec_seckey_tweak_mul failed")
        return Scalar(r)
    }

    /// n − self (0 for 0: seckey_negate refuses a zero key).
    var negated: Scalar {
        if isZero { return self }
        let r = ScalarBytes(copying: bn)
        let ok = secp256k1_ec_seckey_negate(Secp256k1.shared.context, r.ptr)
        precondition(ok == 1, "LedgerPRE: secp256k1_ec_seckey_negate failed")
        return Scalar(r)
    }

    /// The multiplicative inverse, or nil for zero: self^(n−2) mod n (Fermat), with a fixed 4-bit
    /// window over the public exponent: 14 multiplications for the table self^2…self^15, then for
    /// each of the 63 remaining nibbles 4 squarings and (if the nibble is not 0) one multiplication:
    /// 14 + 252 + 61 = 327 seckey_tweak_mul calls (~27 µs, the same as OpenSSL's
    /// BN_mod_exp_mont_consttime). The sequence of operations depends only on n, and libsecp256k1's
    /// scalar multiplication is constant time, so the time does not depend on the (often secret)
    /// value. Every intermediate is a power of a non-zero element of the prime field, never 0, so no
    /// call can fail. (libsecp256k1 0.2's own safegcd inverse is not public.)
    var inverse: Scalar? {
        if isZero { return nil }
        let context = Secp256k1.shared.context
        let size = Scalar.byteCount
        // Slots 0…15: self^0 … self^15; slot 16: the accumulator; slot 17: a copy for squaring (the
        // key and the tweak of one call must not be the same Swift-managed buffer).
        let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: 18 * size)
        buf.initialize(repeating: 0, count: 18 * size)
        defer {
            OPENSSL_cleanse(buf, 18 * size)
            buf.deallocate()
        }
        func slot(_ i: Int) -> UnsafeMutablePointer<UInt8> { buf + i * size }
        slot(0)[size - 1] = 1
        slot(1).update(from: bn.ptr, count: size)
        for i in 2..<16 {
            slot(i).update(from: slot(i - 1), count: size)
            let ok = secp256k1_ec_seckey_tweak_mul(context, slot(i), bn.ptr)
            precondition(ok == 1, "LedgerPRE: inversion failed")
        }
        let acc = slot(16)
        let tmp = slot(17)
        let e = Scalar.orderMinusTwoBytes
        for i in 0..<(2 * size) {
            let nibble = Int(i % 2 == 0 ? e[i / 2] >> 4 : e[i / 2] & 0x0F)
            if i == 0 {
                acc.update(from: slot(nibble), count: size)  // the top nibble of n − 2 is 0xF
                continue
            }
            for _ in 0..<4 {
                tmp.update(from: acc, count: size)
                let ok = secp256k1_ec_seckey_tweak_mul(context, acc, tmp)
                precondition(ok == 1, "LedgerPRE: inversion failed")
            }
            if nibble != 0 {
                let ok = secp256k1_ec_seckey_tweak_mul(context, acc, slot(nibble))
                precondition(ok == 1, "LedgerPRE: inversion failed")
            }
        }
        let r = ScalarBytes()
        r.ptr.update(from: acc, count: size)
        return Scalar(r)
    }

    static func == (a: Scalar, b: Scalar) -> Bool {
        for i in 0..<Scalar.byteCount where a.bn.ptr[i] != b.bn.ptr[i] { return false }
        return true
    }
}

/// A 256-bit unsigned integer as four 64-bit limbs, most significant first: just enough for the
/// reductions of a 32-byte value modulo n and n − 1.
private struct U256 {
    var w: [UInt64]

    init(limbs: [UInt64]) { w = limbs }

    init(bigEndian bytes: [UInt8]) {
        precondition(bytes.count == 32)
        var limbs = [UInt64](repeating: 0, count: 4)
        for i in 0..<32 { limbs[i / 8] = limbs[i / 8] << 8 | UInt64(bytes[i]) }
        w = limbs
    }

    func write(to out: UnsafeMutablePointer<UInt8>) {
        for i in 0..<32 { out[i] = UInt8(truncatingIfNeeded: w[i / 8] >> (56 - 8 * (i % 8))) }
    }

    func isAtLeast(_ other: U256) -> Bool {
        for i in 0..<4 where w[i] != other.w[i] { return w[i] > other.w[i] }
        return true
    }

    /// self − other, for self ≥ other.
    func minus(_ other: U256) -> U256 {
        var r = [UInt64](repeating: 0, count: 4)
        var borrow = false
        for i in (0..<4).reversed() {
            let (d1, o1) = w[i].subtractingReportingOverflow(other.w[i])
            let (d2, o2) = d1.subtractingReportingOverflow(borrow ? 1 : 0)
            r[i] = d2
            borrow = o1 || o2
        }
        return U256(limbs: r)
    }

    /// self + 1, for self < 2²⁵⁶ − 1.
    func plusOne() -> U256 {
        var r = w
        for i in (0..<4).reversed() {
            r[i] &+= 1
            if r[i] != 0 { break }
        }
        return U256(limbs: r)
    }

    static let n = U256(limbs: [
        0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE, 0xBAAE_DCE6_AF48_A03B, 0xBFD2_5E8C_D036_4141,
    ])
    static let nMinusOne = U256(limbs: [
        0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE, 0xBAAE_DCE6_AF48_A03B, 0xBFD2_5E8C_D036_4140,
    ])
}

// MARK: - Points

/// A point on secp256k1 (possibly the identity). Immutable; a plain value (libsecp256k1's 64-byte
/// secp256k1_pubkey, which "can be safely copied/moved"), hence Sendable.
struct Point: @unchecked Sendable {
    /// The point, or nil for the identity, which a secp256k1_pubkey cannot represent. Only ever a
    /// key that libsecp256k1 itself produced (parse, create, tweak, combine), so always valid.
    let pubkey: secp256k1_pubkey?

    static let compressedCount = 33

    fileprivate init(_ pubkey: secp256k1_pubkey?) { self.pubkey = pubkey }

    /// Converts a point HashToCurve.swift built with OpenSSL (EC_POINT_set_affine_coordinates has
    /// already checked it is on the curve) by its 65-byte uncompressed encoding.
    init(box: ECPointBox) {
        let group = Secp256k1.shared.group
        if EC_POINT_is_at_infinity(group, box.ptr) == 1 {
            pubkey = nil
            return
        }
        var octets = [UInt8](repeating: 0, count: 65)
        let ctx = BNContext()
        let n = octets.withUnsafeMutableBufferPointer {
            EC_POINT_point2oct(group, box.ptr, POINT_CONVERSION_UNCOMPRESSED, $0.baseAddress, 65, ctx.ptr)
        }
        precondition(n == 65, "LedgerPRE: EC_POINT_point2oct failed")
        var pk = secp256k1_pubkey()
        let parsed = secp256k1_ec_pubkey_parse(Secp256k1.shared.context, &pk, octets, 65)
        precondition(parsed == 1, "LedgerPRE: hash_to_curve point refused by libsecp256k1")
        pubkey = pk
    }

    static var identity: Point { Point(nil) }

    /// Parses a 33-byte compressed SEC1 point. secp256k1_ec_pubkey_parse refuses x ≥ p and an x
    /// that is not the abscissa of a curve point, like OpenSSL's EC_POINT_oct2point did; the length
    /// and prefix are checked first because it would also take the 65-byte uncompressed and hybrid
    /// forms. The identity has no 33-byte form and is refused.
    init?(compressed bytes: [UInt8]) {
        guard bytes.count == Point.compressedCount, bytes[0] == 2 || bytes[0] == 3 else { return nil }
        var pk = secp256k1_pubkey()
        guard secp256k1_ec_pubkey_parse(Secp256k1.shared.context, &pk, bytes, Point.compressedCount) == 1 else {
            return nil
        }
        pubkey = pk
    }

    /// g · k for the standard generator g: secp256k1_ec_pubkey_create (constant time, blinded).
    /// It refuses k = 0, whose product is the identity; that happens for a capsule parsed with s = 0
    /// (whose check then fails, as before).
    static func generatorTimes(_ k: Scalar) -> Point {
        if k.isZero { return .identity }
        var pk = secp256k1_pubkey()
        let ok = secp256k1_ec_pubkey_create(Secp256k1.shared.context, &pk, k.bn.ptr)
        precondition(ok == 1, "LedgerPRE: secp256k1_ec_pubkey_create failed")
        return Point(pk)
    }

    /// p · k in constant time: secp256k1_ecdh (ecmult_const) with a callback that returns the
    /// product's coordinates instead of hashing them, then secp256k1_ec_pubkey_parse of 04 ‖ x ‖ y
    /// (an on-curve check, no square root). secp256k1_ecdh refuses k = 0 and cannot represent the
    /// identity, so O · k and p · 0 are the identity here; for k in [1, n) and p ≠ O the product
    /// is never the identity (prime order) and neither call can fail.
    static func * (p: Point, k: Scalar) -> Point {
        guard let base = p.pubkey, !k.isZero else { return .identity }
        let context = Secp256k1.shared.context
        var point = base
        var product = [UInt8](repeating: 0, count: 65)
        defer { OPENSSL_cleanse(&product, 65) }  // the product may be a secret (a key seed, a DH point)
        let ok = product.withUnsafeMutableBufferPointer { out -> Int32 in
            secp256k1_ecdh(
                context, out.baseAddress!, &point, k.bn.ptr,
                { (output, x32, y32, _) -> Int32 in
                    guard let output, let x32, let y32 else { return 0 }
                    output[0] = 0x04
                    (output + 1).update(from: x32, count: 32)
                    (output + 33).update(from: y32, count: 32)
                    return 1
                }, nil)
        }
        precondition(ok == 1, "LedgerPRE: secp256k1_ecdh failed")
        var result = secp256k1_pubkey()
        let parsed = secp256k1_ec_pubkey_parse(context, &result, product, 65)
        precondition(parsed == 1, "LedgerPRE: secp256k1_ecdh produced an invalid point")
        return Point(result)
    }

    /// secp256k1_ec_pubkey_combine of the two points (it doubles correctly when p = q). It fails
    /// exactly when the sum is the identity (q = −p), which is what this returns then; an identity
    /// operand is handled first (combine has no way to take one).
    static func + (p: Point, q: Point) -> Point {
        guard let a = p.pubkey else { return q }
        guard let b = q.pubkey else { return p }
        let context = Secp256k1.shared.context
        var sum = secp256k1_pubkey()
        let ok = withUnsafePointer(to: a) { pa -> Int32 in
            withUnsafePointer(to: b) { pb -> Int32 in
                let summands: [UnsafePointer<secp256k1_pubkey>?] = [pa, pb]
                return secp256k1_ec_pubkey_combine(context, &sum, summands, 2)
            }
        }
        return ok == 1 ? Point(sum) : .identity
    }

    /// secp256k1_ec_pubkey_cmp (compares the compressed encodings); the identity equals only itself.
    static func == (p: Point, q: Point) -> Bool {
        guard let a = p.pubkey, let b = q.pubkey else { return p.pubkey == nil && q.pubkey == nil }
        var x = a
        var y = b
        return secp256k1_ec_pubkey_cmp(Secp256k1.shared.context, &x, &y) == 0
    }

    var isIdentity: Bool { pubkey == nil }

    /// The 33-byte compressed SEC1 encoding (what Umbral hashes and serializes). The identity,
    /// which never arises from non-zero scalars on this prime-order curve, encodes as 33 zero bytes
    /// (which no parser accepts), as before.
    var compressed: [UInt8] {
        guard var pk = pubkey else { return [UInt8](repeating: 0, count: Point.compressedCount) }
        var out = [UInt8](repeating: 0, count: Point.compressedCount)
        var length = Point.compressedCount
        let ok = secp256k1_ec_pubkey_serialize(
            Secp256k1.shared.context, &out, &length, &pk, UInt32(SECP256K1_EC_COMPRESSED))
        precondition(ok == 1 && length == Point.compressedCount, "LedgerPRE: secp256k1_ec_pubkey_serialize failed")
        return out
    }
}
