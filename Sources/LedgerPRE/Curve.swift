import CLibCrypto

// secp256k1 scalar and point arithmetic over OpenSSL's libcrypto.
//
// Why OpenSSL: libcrypto is already on every MedLedger machine (libssl-dev) and exposes general
// EC point arithmetic (EC_POINT_mul / EC_POINT_add / encoding) and BIGNUM arithmetic modulo the
// group order, which is everything Umbral needs. libsecp256k1's public API only offers keys,
// ECDSA and tweaks, not arbitrary point addition or multiplication of arbitrary points.
//
// Every OpenSSL object is owned by a small final class that frees it in `deinit`. Objects are
// never mutated after construction, so the values built on them are safe to share between
// threads; each operation allocates its own BN_CTX (no shared mutable state).
//
// Lifetimes: an owner's raw pointer is only ever passed to C while the owner is a named local,
// a parameter or a stored property (never an unnamed temporary, which Swift may release right
// after reading `.ptr`); named locals keep their lexical lifetime across the C call.

/// An owned OpenSSL BIGNUM. Cleared (BN_clear_free) on release because many hold secrets.
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

/// The secp256k1 group and the constants derived from its order n. Built once, then read only.
final class Secp256k1: @unchecked Sendable {
    static let shared = Secp256k1()

    let group: OpaquePointer
    /// n, the group order.
    let order: BigNum
    /// n − 1: hashing to a non-zero scalar reduces modulo n − 1 and adds one.
    let orderMinusOne: BigNum
    /// n − 2: the exponent for constant-time inversion by Fermat's little theorem.
    let orderMinusTwo: BigNum
    /// ⌊n / 2⌋: ECDSA signatures are normalised to s ≤ n/2 ("low S"), as k256 does.
    let halfOrder: BigNum

    private init() {
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

    deinit { EC_GROUP_free(group) }
}

/// Fills `count` bytes from OpenSSL's CSPRNG. A failing system RNG is not recoverable.
func secureRandomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    let ok = out.withUnsafeMutableBufferPointer { RAND_priv_bytes($0.baseAddress, Int32(count)) }
    precondition(ok == 1, "LedgerPRE: RAND_priv_bytes failed (no entropy)")
    return out
}

/// A scalar modulo the group order n, always in [0, n). Immutable.
struct Scalar: Sendable {
    let bn: BigNum

    static let byteCount = 32

    fileprivate init(_ bn: BigNum) { self.bn = bn }

    /// Parses exactly 32 big-endian bytes; nil if the value is ≥ n (as k256's `from_repr`).
    init?(bigEndian bytes: [UInt8]) {
        guard bytes.count == Scalar.byteCount else { return nil }
        let v = BigNum(bigEndian: bytes)
        guard BN_cmp(v.ptr, Secp256k1.shared.order.ptr) < 0 else { return nil }
        bn = v
    }

    static let one: Scalar = {
        let v = BigNum()
        precondition(BN_set_word(v.ptr, 1) == 1)
        return Scalar(v)
    }()

    /// Uniform in [1, n).
    static func randomNonZero() -> Scalar {
        let curve = Secp256k1.shared
        let v = BigNum()
        repeat {
            precondition(BN_priv_rand_range(v.ptr, curve.order.ptr) == 1, "LedgerPRE: BN_priv_rand_range failed")
        } while BN_is_zero(v.ptr) == 1
        v.markConstantTime()
        return Scalar(v)
    }

    /// Umbral's hash-to-scalar: a 32-byte digest read big-endian, reduced to a non-zero scalar as
    /// (h mod (n − 1)) + 1 — what k256's `NonZeroScalar::reduce` does (checked against umbral-pre).
    static func nonZero(fromDigest digest: [UInt8]) -> Scalar {
        precondition(digest.count == 32)
        let curve = Secp256k1.shared
        let h = BigNum(bigEndian: digest)
        let v = BigNum()
        let ctx = BNContext()
        precondition(BN_nnmod(v.ptr, h.ptr, curve.orderMinusOne.ptr, ctx.ptr) == 1)
        precondition(BN_add_word(v.ptr, 1) == 1)
        return Scalar(v)
    }

    /// A big-endian integer reduced modulo n (ECDSA's bits2int for a 256-bit hash).
    static func reduced(fromDigest digest: [UInt8]) -> Scalar {
        let h = BigNum(bigEndian: digest)
        let v = BigNum()
        let ctx = BNContext()
        precondition(BN_nnmod(v.ptr, h.ptr, Secp256k1.shared.order.ptr, ctx.ptr) == 1)
        return Scalar(v)
    }

    var bigEndianBytes: [UInt8] { bn.bigEndian(count: Scalar.byteCount) }
    var isZero: Bool { BN_is_zero(bn.ptr) == 1 }

    /// s > n/2 (a "high S" ECDSA value).
    var isHigh: Bool { BN_cmp(bn.ptr, Secp256k1.shared.halfOrder.ptr) > 0 }

    static func + (a: Scalar, b: Scalar) -> Scalar {
        let r = BigNum(), ctx = BNContext()
        precondition(BN_mod_add(r.ptr, a.bn.ptr, b.bn.ptr, Secp256k1.shared.order.ptr, ctx.ptr) == 1)
        return Scalar(r)
    }

    static func - (a: Scalar, b: Scalar) -> Scalar {
        let r = BigNum(), ctx = BNContext()
        precondition(BN_mod_sub(r.ptr, a.bn.ptr, b.bn.ptr, Secp256k1.shared.order.ptr, ctx.ptr) == 1)
        return Scalar(r)
    }

    static func * (a: Scalar, b: Scalar) -> Scalar {
        let r = BigNum(), ctx = BNContext()
        precondition(BN_mod_mul(r.ptr, a.bn.ptr, b.bn.ptr, Secp256k1.shared.order.ptr, ctx.ptr) == 1)
        return Scalar(r)
    }

    /// n − self.
    var negated: Scalar { Scalar.zero - self }

    static var zero: Scalar { Scalar(BigNum()) }

    /// The multiplicative inverse, or nil for zero. Computed as self^(n−2) mod n with
    /// BN_mod_exp_mont_consttime, so the time taken does not depend on the (often secret) value.
    var inverse: Scalar? {
        if isZero { return nil }
        let curve = Secp256k1.shared
        let base = BigNum(copying: bn)
        base.markConstantTime()
        let r = BigNum(), ctx = BNContext()
        precondition(BN_mod_exp_mont_consttime(r.ptr, base.ptr, curve.orderMinusTwo.ptr, curve.order.ptr, ctx.ptr, nil) == 1)
        return Scalar(r)
    }

    static func == (a: Scalar, b: Scalar) -> Bool { BN_cmp(a.bn.ptr, b.bn.ptr) == 0 }
}

/// An owned EC_POINT.
final class ECPointBox: @unchecked Sendable {
    let ptr: OpaquePointer

    init() {
        guard let p = EC_POINT_new(Secp256k1.shared.group) else { fatalError("LedgerPRE: EC_POINT_new failed") }
        ptr = p
    }

    deinit { EC_POINT_clear_free(ptr) }
}

/// A point on secp256k1 (possibly the identity). Immutable.
struct Point: Sendable {
    let box: ECPointBox

    static let compressedCount = 33

    private init(_ box: ECPointBox) { self.box = box }

    /// Wraps a point already known to be on the curve (EC_POINT_set_affine_coordinates checks it).
    init(box: ECPointBox) { self.box = box }

    static var identity: Point {
        let b = ECPointBox()
        precondition(EC_POINT_set_to_infinity(Secp256k1.shared.group, b.ptr) == 1)
        return Point(b)
    }

    /// Parses a 33-byte compressed SEC1 point. OpenSSL decompresses it, which fails unless x is
    /// the abscissa of a point on the curve; the identity has no 33-byte form and is refused.
    init?(compressed bytes: [UInt8]) {
        guard bytes.count == Point.compressedCount, bytes[0] == 2 || bytes[0] == 3 else { return nil }
        let b = ECPointBox(), ctx = BNContext()
        let group = Secp256k1.shared.group
        let ok = bytes.withUnsafeBufferPointer { EC_POINT_oct2point(group, b.ptr, $0.baseAddress, $0.count, ctx.ptr) }
        guard ok == 1, EC_POINT_is_at_infinity(group, b.ptr) == 0, EC_POINT_is_on_curve(group, b.ptr, ctx.ptr) == 1 else {
            ERR_clear_error()
            return nil
        }
        box = b
    }

    /// g · k for the standard generator g.
    static func generatorTimes(_ k: Scalar) -> Point {
        let r = ECPointBox(), ctx = BNContext()
        precondition(EC_POINT_mul(Secp256k1.shared.group, r.ptr, k.bn.ptr, nil, nil, ctx.ptr) == 1, "LedgerPRE: EC_POINT_mul failed")
        return Point(r)
    }

    /// g · a + q · b in one pass (ECDSA verification; public values only).
    static func generatorTimes(_ a: Scalar, plus q: Point, times b: Scalar) -> Point {
        let r = ECPointBox(), ctx = BNContext()
        precondition(EC_POINT_mul(Secp256k1.shared.group, r.ptr, a.bn.ptr, q.box.ptr, b.bn.ptr, ctx.ptr) == 1, "LedgerPRE: EC_POINT_mul failed")
        return Point(r)
    }

    static func * (p: Point, k: Scalar) -> Point {
        let r = ECPointBox(), ctx = BNContext()
        precondition(EC_POINT_mul(Secp256k1.shared.group, r.ptr, nil, p.box.ptr, k.bn.ptr, ctx.ptr) == 1, "LedgerPRE: EC_POINT_mul failed")
        return Point(r)
    }

    static func + (p: Point, q: Point) -> Point {
        let r = ECPointBox(), ctx = BNContext()
        precondition(EC_POINT_add(Secp256k1.shared.group, r.ptr, p.box.ptr, q.box.ptr, ctx.ptr) == 1, "LedgerPRE: EC_POINT_add failed")
        return Point(r)
    }

    static func == (p: Point, q: Point) -> Bool {
        let ctx = BNContext()
        return EC_POINT_cmp(Secp256k1.shared.group, p.box.ptr, q.box.ptr, ctx.ptr) == 0
    }

    var isIdentity: Bool { EC_POINT_is_at_infinity(Secp256k1.shared.group, box.ptr) == 1 }

    /// The 33-byte compressed SEC1 encoding (what Umbral hashes and serializes). The identity,
    /// which never arises from non-zero scalars on this prime-order curve, encodes as 33 zero bytes
    /// (which no parser accepts).
    var compressed: [UInt8] {
        if isIdentity { return [UInt8](repeating: 0, count: Point.compressedCount) }
        var out = [UInt8](repeating: 0, count: Point.compressedCount)
        let ctx = BNContext()
        let n = out.withUnsafeMutableBufferPointer {
            EC_POINT_point2oct(Secp256k1.shared.group, box.ptr, POINT_CONVERSION_COMPRESSED, $0.baseAddress, $0.count, ctx.ptr)
        }
        precondition(n == Point.compressedCount, "LedgerPRE: EC_POINT_point2oct failed")
        return out
    }

    /// The affine x coordinate reduced modulo n (ECDSA's r); nil for the identity.
    var xModOrder: Scalar? {
        if isIdentity { return nil }
        let x = BigNum(), ctx = BNContext()
        precondition(EC_POINT_get_affine_coordinates(Secp256k1.shared.group, box.ptr, x.ptr, nil, ctx.ptr) == 1)
        let r = BigNum()
        precondition(BN_nnmod(r.ptr, x.ptr, Secp256k1.shared.order.ptr, ctx.ptr) == 1)
        return Scalar(r)
    }
}
