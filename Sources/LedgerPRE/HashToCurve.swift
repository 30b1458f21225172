import CLibCrypto
import Crypto

/// RFC 9380 hash_to_curve for secp256k1 (suite secp256k1_XMD:SHA-256_SSWU_RO_): expand_message_xmd
/// with SHA-256 → two field elements → simplified SWU on the 3-isogenous curve E' → 3-isogeny map
/// to secp256k1 → add (cofactor 1). umbral-pre derives its parameter point U this way (k256's
/// `hash_from_bytes::<ExpandMsgXmd<Sha256>>`). Only used on public inputs, so it is not constant time.
enum HashToCurve {
    static func hash(message: [UInt8], dst: [UInt8]) -> Point {
        let uniform = expandMessageXMD(message, dst: dst, length: 96)
        let f = Field()
        let u0 = f.reduce(Array(uniform[0..<48]))
        let u1 = f.reduce(Array(uniform[48..<96]))
        let q0 = f.isoMap(f.mapToCurveSSWU(u0))
        let q1 = f.isoMap(f.mapToCurveSSWU(u1))
        return q0 + q1
    }

    /// RFC 9380 §5.3.1 with SHA-256 (b_in_bytes 32, s_in_bytes 64).
    static func expandMessageXMD(_ msg: [UInt8], dst: [UInt8], length: Int) -> [UInt8] {
        precondition(dst.count <= 255 && length <= 255 * 32)
        let dstPrime = dst + [UInt8(dst.count)]
        let ell = (length + 31) / 32
        let b0 = Array(
            SHA256.hash(
                data: [UInt8](repeating: 0, count: 64) + msg + [UInt8(length >> 8), UInt8(length & 0xff), 0] + dstPrime)
        )
        var bi = Array(SHA256.hash(data: b0 + [1] + dstPrime))
        var out = bi
        if ell > 1 {
            for i in 2...ell {
                bi = Array(SHA256.hash(data: zip(b0, bi).map { $0 ^ $1 } + [UInt8(i)] + dstPrime))
                out += bi
            }
        }
        return Array(out.prefix(length))
    }

    /// Arithmetic in GF(p), p the secp256k1 field prime, and the curve-specific maps.
    final class Field {
        let p = BigNum()
        let ctx = BNContext()

        init() {
            precondition(EC_GROUP_get_curve(Secp256k1.shared.group, p.ptr, nil, nil, ctx.ptr) == 1)
        }

        func num(_ hex: String) -> BigNum { BigNum(bigEndian: hexBytes(hex)) }
        func word(_ w: UInt) -> BigNum {
            let b = BigNum()
            precondition(BN_set_word(b.ptr, w) == 1)
            return b
        }
        func reduce(_ bytes: [UInt8]) -> BigNum { mod(BigNum(bigEndian: bytes)) }
        func mod(_ a: BigNum) -> BigNum {
            let r = BigNum()
            precondition(BN_nnmod(r.ptr, a.ptr, p.ptr, ctx.ptr) == 1)
            return r
        }
        func add(_ a: BigNum, _ b: BigNum) -> BigNum {
            let r = BigNum()
            precondition(BN_mod_add(r.ptr, a.ptr, b.ptr, p.ptr, ctx.ptr) == 1)
            return r
        }
        func mul(_ a: BigNum, _ b: BigNum) -> BigNum {
            let r = BigNum()
            precondition(BN_mod_mul(r.ptr, a.ptr, b.ptr, p.ptr, ctx.ptr) == 1)
            return r
        }
        func neg(_ a: BigNum) -> BigNum {
            let r = BigNum()
            let zero = BigNum()  // named: a temporary's pointer may outlive the object
            precondition(BN_mod_sub(r.ptr, zero.ptr, a.ptr, p.ptr, ctx.ptr) == 1)
            return r
        }
        func isZero(_ a: BigNum) -> Bool { BN_is_zero(a.ptr) == 1 }
        /// inv0: the inverse, or 0 for 0.
        func inv0(_ a: BigNum) -> BigNum {
            if isZero(a) { return BigNum() }
            let r = BigNum()
            precondition(BN_mod_inverse(r.ptr, a.ptr, p.ptr, ctx.ptr) != nil)
            return r
        }
        /// A square root, or nil for a non-residue.
        func sqrt(_ a: BigNum) -> BigNum? {
            let r = BigNum()
            guard BN_mod_sqrt(r.ptr, a.ptr, p.ptr, ctx.ptr) != nil else {
                ERR_clear_error()
                return nil
            }
            return r
        }
        func sgn0(_ a: BigNum) -> Bool { BN_is_odd(a.ptr) == 1 }
        /// Σ kᵢ xⁱ (coefficients in ascending degree).
        func poly(_ k: [BigNum], _ x: BigNum) -> BigNum {
            var acc = BigNum()
            for c in k.reversed() { acc = add(mul(acc, x), c) }
            return acc
        }

        // E': y² = x³ + A'x + B' (RFC 9380 §8.7), Z = −11.
        lazy var aPrime = num("3f8731abdd661adca08a5558f0f5d272e953d363cb6f0e5d405447c01a444533")
        lazy var bPrime = word(1771)
        lazy var z = neg(word(11))

        /// Simplified SWU (RFC 9380 §6.6.2), straight-line form of §F.2 is not needed for public input.
        func mapToCurveSSWU(_ u: BigNum) -> (BigNum, BigNum) {
            let u2 = mul(u, u)
            let zu2 = mul(z, u2)
            let tv1 = inv0(add(mul(zu2, zu2), zu2))
            var x1 = mul(mul(neg(bPrime), inv0(aPrime)), add(word(1), tv1))
            if isZero(tv1) { x1 = mul(bPrime, inv0(mul(z, aPrime))) }
            func g(_ x: BigNum) -> BigNum { add(add(mul(mul(x, x), x), mul(aPrime, x)), bPrime) }
            var x = x1
            var y: BigNum
            if let s = sqrt(g(x1)) {
                y = s
            } else {
                x = mul(zu2, x1)
                guard let s = sqrt(g(x)) else { fatalError("LedgerPRE: SSWU found neither g(x1) nor g(x2) square") }
                y = s
            }
            if sgn0(u) != sgn0(y) { y = neg(y) }
            return (x, y)
        }

        // RFC 9380 Appendix E.1: the 3-isogeny E' → secp256k1.
        lazy var xNum = [
            "8e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38daaaaa8c7",
            "07d3d4c80bc321d5b9f315cea7fd44c5d595d2fc0bf63b92dfff1044f17c6581",
            "534c328d23f234e6e2a413deca25caece4506144037c40314ecbd0b53d9dd262",
            "8e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38e38daaaaa88c",
        ].map(num)
        lazy var xDen =
            [
                "d35771193d94918a9ca34ccbb7b640dd86cd409542f8487d9fe6b745781eb49b",
                "edadc6f64383dc1df7c4b2d51b54225406d36b641f5e41bbc52a56612a8c6d14",
            ].map(num) + [word(1)]
        lazy var yNum = [
            "4bda12f684bda12f684bda12f684bda12f684bda12f684bda12f684b8e38e23c",
            "c75e0c32d5cb7c0fa9d0a54b12a0a6d5647ab046d686da6fdffc90fc201d71a3",
            "29a6194691f91a73715209ef6512e576722830a201be2018a765e85a9ecee931",
            "2f684bda12f684bda12f684bda12f684bda12f684bda12f684bda12f38e38d84",
        ].map(num)
        lazy var yDen =
            [
                "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffff93b",
                "7a06534bb8bdb49fd5e9e6632722c2989467c1bfc8e8d978dfb425d2685c2573",
                "6484aa716545ca2cf3a70c3fa8fe337e0a3d21162f0d6299a7bf8192bfd2a76f",
            ].map(num) + [word(1)]

        func isoMap(_ pt: (BigNum, BigNum)) -> Point {
            let (xp, yp) = pt
            let xd = poly(xDen, xp)
            let yd = poly(yDen, xp)
            if isZero(xd) || isZero(yd) { return .identity }  // exceptional case: the isogeny's kernel
            let x = mul(poly(xNum, xp), inv0(xd))
            let y = mul(mul(yp, poly(yNum, xp)), inv0(yd))
            let box = ECPointBox()
            precondition(
                EC_POINT_set_affine_coordinates(Secp256k1.shared.group, box.ptr, x.ptr, y.ptr, ctx.ptr) == 1,
                "LedgerPRE: hash_to_curve produced a point off the curve")
            return Point(box: box)
        }
    }
}
