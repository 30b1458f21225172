/// Umbral threshold proxy re-encryption (Nuñez, "Umbral: a threshold proxy re-encryption scheme"),
/// byte-compatible with umbral-pre 0.11 (nucypher/rust-umbral). In MedLedger terms: a patient
/// (delegator, A) encrypts a record to her own key; to share it she gives `shares` proxies one kfrag
/// each; any `threshold` of them re-encrypt the capsule for a doctor (receiver, B), who verifies the
/// cfrags and decrypts. No proxy, nor fewer than `threshold` of them together, learns the plaintext or
/// either secret key.
public enum Umbral {
    /// Encrypts `plaintext` to `delegatingPK`: a fresh capsule (KEM) and XChaCha20-Poly1305
    /// ciphertext (DEM) bound to that capsule as associated data.
    public static func encrypt(delegatingPK: PublicKey, plaintext: [UInt8]) -> (capsule: Capsule, ciphertext: [UInt8]) {
        let (capsule, seed) = Capsule.make(for: delegatingPK)
        let ct = DEM.encrypt(seed: seed, plaintext: plaintext, aad: capsule.toBytesSimple())
        return (capsule, ct)
    }

    /// The delegator opens her own ciphertext.
    public static func decryptOriginal(delegatingSK: SecretKey, capsule: Capsule, ciphertext: [UInt8]) throws -> [UInt8]
    {
        try DEM.decrypt(seed: capsule.openOriginal(delegatingSK), ciphertext: ciphertext, aad: capsule.toBytesSimple())
    }

    /// Splits a re-encryption key from `delegatingSK` to `receivingPK` into `shares` kfrags, any
    /// `threshold` of which suffice. Each kfrag is signed by `signer`; `signDelegatingKey` /
    /// `signReceivingKey` put those keys under the proxy-facing signature, so a proxy verifying the
    /// kfrag must know (and can check) whom it re-encrypts from and for.
    public static func generateKFrags(
        delegatingSK: SecretKey, receivingPK: PublicKey, signer: Signer,
        threshold: Int, shares: Int,
        signDelegatingKey: Bool, signReceivingKey: Bool
    ) throws -> [VerifiedKeyFrag] {
        guard threshold >= 1, shares >= threshold else {
            throw PREError.invalidThreshold(threshold: threshold, shares: shares)
        }
        let delegatingPK = delegatingSK.publicKey
        // Ephemeral DH with B: d is known to A now and to B later (from the precursor), never to proxies.
        let privatePrecursor = Scalar.randomNonZero()
        let precursor = Point.generatorTimes(privatePrecursor)
        let dh = receivingPK.point * privatePrecursor
        let d = UmbralHash.sharedSecret(precursor: precursor, receivingPK: receivingPK.point, dhPoint: dh)
        guard let dInv = d.inverse else { fatalError("unreachable: hash-to-scalar is non-zero") }

        var coefficients = [delegatingSK.scalar * dInv]
        for _ in 1..<threshold { coefficients.append(Scalar.randomNonZero()) }

        var result: [VerifiedKeyFrag] = []
        for _ in 0..<shares {
            let id = secureRandomBytes(KeyFrag.idCount)
            let x = UmbralHash.polynomialArg(
                precursor: precursor, receivingPK: receivingPK.point, dhPoint: dh, kfragID: id)
            var rk = coefficients[coefficients.count - 1]
            for c in coefficients.dropLast().reversed() { rk = rk * x + c }  // Horner
            let commitment = Parameters.u * rk
            let forReceiver = signer.sign(
                UmbralHash.kfragSignatureMessage(
                    kfragID: id, commitment: commitment, precursor: precursor, delegatingPK: delegatingPK,
                    receivingPK: receivingPK))
            let forProxy = signer.sign(
                UmbralHash.kfragSignatureMessage(
                    kfragID: id, commitment: commitment, precursor: precursor,
                    delegatingPK: signDelegatingKey ? delegatingPK : nil,
                    receivingPK: signReceivingKey ? receivingPK : nil))
            let kfrag = KeyFrag(
                id: id, key: rk, precursor: precursor, commitment: commitment,
                signatureForProxy: forProxy, signatureForReceiver: forReceiver,
                delegatingKeySigned: signDelegatingKey, receivingKeySigned: signReceivingKey)
            result.append(VerifiedKeyFrag(kfrag: kfrag))
        }
        return result
    }

    /// A proxy re-encrypts `capsule` with its verified kfrag.
    public static func reencrypt(capsule: Capsule, kfrag: VerifiedKeyFrag) -> VerifiedCapsuleFrag {
        VerifiedCapsuleFrag(cfrag: CapsuleFrag.reencrypt(capsule, with: kfrag.kfrag))
    }

    /// The receiver combines ≥ threshold verified cfrags and decrypts.
    public static func decryptReencrypted(
        receivingSK: SecretKey, delegatingPK: PublicKey, capsule: Capsule,
        cfrags: [VerifiedCapsuleFrag], ciphertext: [UInt8]
    ) throws -> [UInt8] {
        let seed = try capsule.openReencrypted(
            receivingSK: receivingSK, delegatingPK: delegatingPK, cfrags: cfrags.map(\.cfrag))
        return try DEM.decrypt(seed: seed, ciphertext: ciphertext, aad: capsule.toBytesSimple())
    }
}
