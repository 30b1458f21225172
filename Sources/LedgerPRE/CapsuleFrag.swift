/// A capsule re-encrypted by one proxy with its kfrag: E₁ = E·rk, V₁ = V·rk, plus a
/// Chaum–Pedersen-style proof that the same rk (committed as U₁ = U·rk in the signed kfrag) was
/// used for E, V and U, and the delegator's kfrag signature for the receiver.
///
/// Bytes (umbral-pre `bytes(cfrag)` / `CapsuleFrag.from_bytes`): MessagePack
/// `[bin(E1), bin(V1), bin(kfrag_id, 32), bin(precursor),
///   [bin(E2), bin(V2), bin(U1), bin(U2), bin(z3, 32), bin(kfrag_signature, 64)]]`, 381 bytes.
public struct CapsuleFrag: Sendable, Equatable {
    let pointE1: Point
    let pointV1: Point
    let kfragID: [UInt8]
    let precursor: Point
    let pointE2: Point
    let pointV2: Point
    let kfragCommitment: Point
    let kfragPok: Point
    let proofSignature: Scalar
    let kfragSignature: Signature

    init(
        pointE1: Point, pointV1: Point, kfragID: [UInt8], precursor: Point, pointE2: Point, pointV2: Point,
        kfragCommitment: Point, kfragPok: Point, proofSignature: Scalar, kfragSignature: Signature
    ) {
        self.pointE1 = pointE1
        self.pointV1 = pointV1
        self.kfragID = kfragID
        self.precursor = precursor
        self.pointE2 = pointE2
        self.pointV2 = pointV2
        self.kfragCommitment = kfragCommitment
        self.kfragPok = kfragPok
        self.proofSignature = proofSignature
        self.kfragSignature = kfragSignature
    }

    /// Parses a cfrag (it still has to be verified against its capsule and keys before use).
    public init(bytes: [UInt8]) throws {
        var r = MsgPackReader(bytes, what: "cfrag")
        try r.array(count: 5)
        let e1 = try r.point(field: "E1")
        let v1 = try r.point(field: "V1")
        let id = try r.bin(count: KeyFrag.idCount, field: "kfrag id")
        let precursor = try r.point(field: "precursor")
        try r.array(count: 6)
        let e2 = try r.point(field: "E2")
        let v2 = try r.point(field: "V2")
        let u1 = try r.point(field: "kfrag commitment")
        let u2 = try r.point(field: "kfrag pok")
        let z3 = try r.scalar(field: "proof signature")
        let ks = try Signature(bigEndianBytes: r.bin(count: 64, field: "kfrag signature"))
        try r.finish()
        self.init(
            pointE1: e1, pointV1: v1, kfragID: id, precursor: precursor, pointE2: e2, pointV2: v2,
            kfragCommitment: u1, kfragPok: u2, proofSignature: z3, kfragSignature: ks)
    }

    public func toBytes() -> [UInt8] {
        var w = MsgPackWriter()
        w.array(5)
        w.bin(pointE1.compressed)
        w.bin(pointV1.compressed)
        w.bin(kfragID)
        w.bin(precursor.compressed)
        w.array(6)
        w.bin(pointE2.compressed)
        w.bin(pointV2.compressed)
        w.bin(kfragCommitment.compressed)
        w.bin(kfragPok.compressed)
        w.bin(proofSignature.bigEndianBytes)
        w.bin(kfragSignature.toBigEndianBytes())
        return w.bytes
    }

    /// All fields concatenated in order (359 bytes): umbral-pre's `to_bytes_simple()`, meant for
    /// contracts that check re-encryption on chain.
    public func toBytesSimple() -> [UInt8] {
        pointE1.compressed + pointV1.compressed + kfragID + precursor.compressed + pointE2.compressed
            + pointV2.compressed + kfragCommitment.compressed + kfragPok.compressed + proofSignature.bigEndianBytes
            + kfragSignature.toBigEndianBytes()
    }

    static func reencrypt(_ capsule: Capsule, with kfrag: KeyFrag) -> CapsuleFrag {
        let rk = kfrag.key
        let e = capsule.pointE
        let v = capsule.pointV
        let u = Parameters.u
        let e1 = e * rk
        let v1 = v * rk
        let t = Scalar.randomNonZero()
        let e2 = e * t
        let v2 = v * t
        let u2 = u * t
        let h = UmbralHash.cfragVerification([e, e1, e2, v, v1, v2, u, kfrag.commitment, u2])
        let z3 = rk * h + t
        return CapsuleFrag(
            pointE1: e1, pointV1: v1, kfragID: kfrag.id, precursor: kfrag.precursor,
            pointE2: e2, pointV2: v2, kfragCommitment: kfrag.commitment, kfragPok: u2,
            proofSignature: z3, kfragSignature: kfrag.signatureForReceiver)
    }

    /// Checks the delegator's kfrag signature (over both public keys) and the re-encryption proof
    /// for this capsule. The receiver must do this for every cfrag before decrypting.
    public func verify(
        capsule: Capsule, verifyingPK: PublicKey, delegatingPK: PublicKey, receivingPK: PublicKey
    ) throws -> VerifiedCapsuleFrag {
        let e = capsule.pointE
        let v = capsule.pointV
        let u = Parameters.u
        let u1 = kfragCommitment
        let h = UmbralHash.cfragVerification([e, pointE1, pointE2, v, pointV1, pointV2, u, u1, kfragPok])
        let message = UmbralHash.kfragSignatureMessage(
            kfragID: kfragID, commitment: u1, precursor: precursor,
            delegatingPK: delegatingPK, receivingPK: receivingPK)
        guard kfragSignature.verify(verifyingPK, message: message) else { throw PREError.cfragSignatureInvalid }
        let z = proofSignature
        let okE = e * z == pointE2 + pointE1 * h
        let okV = v * z == pointV2 + pointV1 * h
        let okU = u * z == kfragPok + u1 * h
        guard okE && okV && okU else { throw PREError.cfragProofInvalid }
        return VerifiedCapsuleFrag(cfrag: self)
    }

    /// Marks the cfrag verified without checking (only for cfrags from trusted storage).
    public func skipVerification() -> VerifiedCapsuleFrag { VerifiedCapsuleFrag(cfrag: self) }

    public static func == (a: CapsuleFrag, b: CapsuleFrag) -> Bool { a.toBytes() == b.toBytes() }
}

/// A cfrag that passed `CapsuleFrag.verify` (or was just made by `reencrypt`); the only kind
/// `decryptReencrypted` takes. Serializes exactly as its `CapsuleFrag`.
public struct VerifiedCapsuleFrag: Sendable, Equatable {
    public let cfrag: CapsuleFrag

    public func toBytes() -> [UInt8] { cfrag.toBytes() }
}
