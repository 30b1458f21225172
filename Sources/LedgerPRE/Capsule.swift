/// The KEM half of an Umbral ciphertext: E = G·r, V = G·u and s = u + r·h(E, V). It encapsulates
/// the data key to the delegating public key; the proof s lets anyone check it was well formed
/// (s·G = V + h·E), which is done on every parse so a tampered capsule never gets further.
///
/// Bytes (umbral-pre `bytes(capsule)` / `Capsule.from_bytes`): MessagePack
/// `[bin(E, 33), bin(V, 33), bin(s, 32)]`, 105 bytes.
public struct Capsule: Sendable, Equatable {
    let pointE: Point
    let pointV: Point
    let signature: Scalar

    init(pointE: Point, pointV: Point, signature: Scalar) {
        self.pointE = pointE
        self.pointV = pointV
        self.signature = signature
    }

    /// Parses and self-verifies a capsule.
    public init(bytes: [UInt8]) throws {
        var r = MsgPackReader(bytes, what: "capsule")
        try r.array(count: 3)
        let e = try r.point(field: "E")
        let v = try r.point(field: "V")
        let s = try r.scalar(field: "signature")
        try r.finish()
        self.init(pointE: e, pointV: v, signature: s)
        guard isValid else { throw PREError.capsuleVerificationFailed }
    }

    public func toBytes() -> [UInt8] {
        var w = MsgPackWriter()
        w.array(3)
        w.bin(pointE.compressed)
        w.bin(pointV.compressed)
        w.bin(signature.bigEndianBytes)
        return w.bytes
    }

    /// E ‖ V ‖ s (98 bytes): umbral-pre's `to_bytes_simple()`, and the DEM's associated data, which
    /// ties the ciphertext to this exact capsule.
    public func toBytesSimple() -> [UInt8] { pointE.compressed + pointV.compressed + signature.bigEndianBytes }

    var isValid: Bool {
        let h = UmbralHash.capsulePoints(e: pointE, v: pointV)
        return Point.generatorTimes(signature) == pointV + pointE * h
    }

    public static func == (a: Capsule, b: Capsule) -> Bool { a.toBytesSimple() == b.toBytesSimple() }

    /// A fresh capsule for `delegatingPK` and its 33-byte key seed (the compressed shared point).
    static func make(for delegatingPK: PublicKey) -> (Capsule, [UInt8]) {
        let r = Scalar.randomNonZero()
        let u = Scalar.randomNonZero()
        let e = Point.generatorTimes(r)
        let v = Point.generatorTimes(u)
        let h = UmbralHash.capsulePoints(e: e, v: v)
        let s = u + r * h
        let shared = delegatingPK.point * (r + u)
        return (Capsule(pointE: e, pointV: v, signature: s), shared.compressed)
    }

    /// The key seed for the delegator: (E + V)·sk.
    func openOriginal(_ sk: SecretKey) -> [UInt8] { ((pointE + pointV) * sk.scalar).compressed }

    /// The key seed for the receiver from ≥ threshold verified capsule fragments: Lagrange-combine
    /// E₁ and V₁ at the fragments' x-coordinates, check the result against the capsule and the
    /// delegating key (so too few or foreign fragments are refused rather than giving a wrong key).
    func openReencrypted(receivingSK: SecretKey, delegatingPK: PublicKey, cfrags: [CapsuleFrag]) throws -> [UInt8] {
        guard let first = cfrags.first else { throw PREError.noCapsuleFrags }
        let precursor = first.precursor
        guard cfrags.allSatisfy({ $0.precursor == precursor }) else { throw PREError.mismatchedCapsuleFrags }

        let receivingPK = receivingSK.publicKey.point
        let dh = precursor * receivingSK.scalar
        let xs = cfrags.map {
            UmbralHash.polynomialArg(precursor: precursor, receivingPK: receivingPK, dhPoint: dh, kfragID: $0.kfragID)
        }

        var ePrime = Point.identity
        var vPrime = Point.identity
        for (i, cfrag) in cfrags.enumerated() {
            var lambda = Scalar.one
            for j in xs.indices where j != i {
                guard let inv = (xs[j] - xs[i]).inverse else { throw PREError.repeatingCapsuleFrags }
                lambda = lambda * xs[j] * inv
            }
            ePrime = ePrime + cfrag.pointE1 * lambda
            vPrime = vPrime + cfrag.pointV1 * lambda
        }

        let d = UmbralHash.sharedSecret(precursor: precursor, receivingPK: receivingPK, dhPoint: dh)
        let h = UmbralHash.capsulePoints(e: pointE, v: pointV)
        guard let dInv = d.inverse else { throw PREError.notEnoughOrInvalidCapsuleFrags }
        guard delegatingPK.point * (signature * dInv) == ePrime * h + vPrime else {
            throw PREError.notEnoughOrInvalidCapsuleFrags
        }
        return ((ePrime + vPrime) * d).compressed
    }
}
