/// A fragment of the re-encryption key, held by one proxy. Its `key` is the share f(x) of a
/// degree-(threshold−1) polynomial whose constant term is sk_A / d; `commitment` = U·key lets the
/// proxy's later re-encryption be proven; the delegator signs (id, commitment, precursor, keys).
///
/// Bytes (umbral-pre `bytes(kfrag)` / `KeyFrag.from_bytes`): MessagePack
/// `[[bin(U)], bin(id, 32), bin(key, 32), bin(precursor, 33),
///   [bin(commitment), bin(sig_for_proxy, 64), bin(sig_for_receiver, 64), bool, bool]]`, 310 bytes.
public struct KeyFrag: Sendable, Equatable {
    let id: [UInt8]
    let key: Scalar
    let precursor: Point
    let commitment: Point
    let signatureForProxy: Signature
    let signatureForReceiver: Signature
    let delegatingKeySigned: Bool
    let receivingKeySigned: Bool

    static let idCount = 32

    init(
        id: [UInt8], key: Scalar, precursor: Point, commitment: Point, signatureForProxy: Signature,
        signatureForReceiver: Signature, delegatingKeySigned: Bool, receivingKeySigned: Bool
    ) {
        self.id = id
        self.key = key
        self.precursor = precursor
        self.commitment = commitment
        self.signatureForProxy = signatureForProxy
        self.signatureForReceiver = signatureForReceiver
        self.delegatingKeySigned = delegatingKeySigned
        self.receivingKeySigned = receivingKeySigned
    }

    /// Parses a kfrag (it still has to be verified before use). The embedded parameter U must be
    /// the standard one (umbral-pre would parse any U and then fail verification later).
    public init(bytes: [UInt8]) throws {
        var r = MsgPackReader(bytes, what: "kfrag")
        try r.array(count: 5)
        try r.array(count: 1)
        let u = try r.point(field: "parameters.u")
        guard u == Parameters.u else {
            throw PREError.malformed(what: "kfrag", reason: "parameter U is not the standard one")
        }
        let id = try r.bin(count: KeyFrag.idCount, field: "id")
        let key = try r.scalar(field: "key")
        let precursor = try r.point(field: "precursor")
        try r.array(count: 5)
        let commitment = try r.point(field: "commitment")
        let sp = try Signature(bigEndianBytes: r.bin(count: 64, field: "signature for proxy"))
        let sr = try Signature(bigEndianBytes: r.bin(count: 64, field: "signature for receiver"))
        let dks = try r.bool(field: "delegating key signed")
        let rks = try r.bool(field: "receiving key signed")
        try r.finish()
        self.init(
            id: id, key: key, precursor: precursor, commitment: commitment, signatureForProxy: sp,
            signatureForReceiver: sr, delegatingKeySigned: dks, receivingKeySigned: rks)
    }

    public func toBytes() -> [UInt8] {
        var w = MsgPackWriter()
        w.array(5)
        w.array(1)
        w.bin(Parameters.uCompressed)
        w.bin(id)
        w.bin(key.bigEndianBytes)
        w.bin(precursor.compressed)
        w.array(5)
        w.bin(commitment.compressed)
        w.bin(signatureForProxy.toBigEndianBytes())
        w.bin(signatureForReceiver.toBigEndianBytes())
        w.bool(delegatingKeySigned)
        w.bool(receivingKeySigned)
        return w.bytes
    }

    /// Checks the commitment and the delegator's signature. A proxy must do this before
    /// re-encrypting; if the kfrag was signed over the delegating or receiving key, that key must be
    /// supplied (and match), which is how a proxy learns whom the kfrag is for.
    public func verify(
        verifyingPK: PublicKey, delegatingPK: PublicKey? = nil, receivingPK: PublicKey? = nil
    ) throws -> VerifiedKeyFrag {
        guard commitment == Parameters.u * key else { throw PREError.kfragCommitmentInvalid }
        if delegatingKeySigned && delegatingPK == nil { throw PREError.delegatingKeyNotProvided }
        if receivingKeySigned && receivingPK == nil { throw PREError.receivingKeyNotProvided }
        let message = UmbralHash.kfragSignatureMessage(
            kfragID: id, commitment: commitment, precursor: precursor,
            delegatingPK: delegatingKeySigned ? delegatingPK : nil,
            receivingPK: receivingKeySigned ? receivingPK : nil)
        guard signatureForProxy.verify(verifyingPK, message: message) else { throw PREError.kfragSignatureInvalid }
        return VerifiedKeyFrag(kfrag: self)
    }

    /// Marks the kfrag verified without checking (only for kfrags from trusted storage).
    public func skipVerification() -> VerifiedKeyFrag { VerifiedKeyFrag(kfrag: self) }

    public static func == (a: KeyFrag, b: KeyFrag) -> Bool { a.toBytes() == b.toBytes() }
}

/// A kfrag that passed `KeyFrag.verify` (or came from `generateKFrags`): the only kind `reencrypt`
/// takes, so an unchecked kfrag cannot be used by accident. Serializes exactly as its `KeyFrag`;
/// parse bytes as `KeyFrag` and verify again.
public struct VerifiedKeyFrag: Sendable, Equatable {
    public let kfrag: KeyFrag

    public func toBytes() -> [UInt8] { kfrag.toBytes() }
}
