import Crypto

/// Umbral's domain-separated hash to a non-zero scalar:
///
///     h = SHA-256( u32be(len(dst)) ‖ dst ‖ part₁ ‖ part₂ ‖ … )      (points as 33-byte compressed)
///     scalar = (h mod (n − 1)) + 1
///
/// The length prefix keeps one tag from being a prefix of another; the "+1" form gives a
/// non-zero scalar without rejection sampling (so hashing is one pass and never fails).
enum UmbralHash {
    static func scalar(dst: String, _ parts: [[UInt8]]) -> Scalar {
        var h = SHA256()
        let tag = Array(dst.utf8)
        let len = UInt32(tag.count)
        h.update(data: [
            UInt8(len >> 24), UInt8(truncatingIfNeeded: len >> 16), UInt8(truncatingIfNeeded: len >> 8),
            UInt8(truncatingIfNeeded: len),
        ])
        h.update(data: tag)
        for p in parts { h.update(data: p) }
        return Scalar.nonZero(fromDigest: Array(h.finalize()))
    }

    /// x-coordinate of a kfrag in the Shamir polynomial; derived with Bob's DH point so that
    /// only Bob can recompute it and combine fragments.
    static func polynomialArg(precursor: Point, receivingPK: Point, dhPoint: Point, kfragID: [UInt8]) -> Scalar {
        scalar(dst: "POLYNOMIAL_ARG", [precursor.compressed, receivingPK.compressed, dhPoint.compressed, kfragID])
    }

    /// d, the non-interactive shared secret between the delegator's precursor and Bob.
    static func sharedSecret(precursor: Point, receivingPK: Point, dhPoint: Point) -> Scalar {
        scalar(dst: "SHARED_SECRET", [precursor.compressed, receivingPK.compressed, dhPoint.compressed])
    }

    /// The capsule's Schnorr-like challenge binding E and V.
    static func capsulePoints(e: Point, v: Point) -> Scalar {
        scalar(dst: "CAPSULE_POINTS", [e.compressed, v.compressed])
    }

    /// The cfrag correctness proof's challenge over [e, e1, e2, v, v1, v2, u, u1, u2].
    static func cfragVerification(_ points: [Point]) -> Scalar {
        scalar(dst: "CFRAG_VERIFICATION", points.map(\.compressed))
    }

    /// The message a kfrag's signatures cover: id ‖ commitment ‖ precursor ‖ (1 ‖ pk | 0) ‖ (1 ‖ pk | 0).
    static func kfragSignatureMessage(
        kfragID: [UInt8], commitment: Point, precursor: Point,
        delegatingPK: PublicKey?, receivingPK: PublicKey?
    ) -> [UInt8] {
        var m = kfragID + commitment.compressed + precursor.compressed
        if let d = delegatingPK {
            m.append(1)
            m += d.compressedBytes
        } else {
            m.append(0)
        }
        if let r = receivingPK {
            m.append(1)
            m += r.compressedBytes
        } else {
            m.append(0)
        }
        return m
    }
}

/// Shared scheme parameters.
public enum Parameters {
    /// The second generator U, whose discrete log with respect to G nobody knows: RFC 9380
    /// hash_to_curve (secp256k1_XMD:SHA-256_SSWU_RO_) of the message "POINT_U" with DST "PARAMETERS",
    /// as umbral-pre derives it. Kfrags carry it, so it must match umbral-pre's exactly.
    static let u: Point = HashToCurve.hash(message: Array("POINT_U".utf8), dst: Array("PARAMETERS".utf8))

    /// U compressed (33 bytes).
    public static let uCompressed: [UInt8] = u.compressed

    /// The same point pinned from umbral-pre 0.11's `Parameters().u`: a cross-check of the derivation.
    static let pinnedUmbralPreU = "03079390d0fbe220fc34aab8ecbf49098098036820fadb98c03143e55db8ec73cd"
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.utf8.makeIterator()
    func nib(_ c: UInt8) -> UInt8 {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: fatalError("bad hex")
        }
    }
    while let a = it.next(), let b = it.next() { out.append(nib(a) << 4 | nib(b)) }
    return out
}
