import Crypto

/// Umbral's data encapsulation: XChaCha20-Poly1305 keyed by HKDF-SHA-256 of the capsule's key seed.
///
///     key = HKDF-SHA-256(ikm: key seed (33-byte compressed shared point), salt: none, info: none, 32 bytes)
///     ciphertext = nonce (24 random bytes) ‖ XChaCha20-Poly1305(key, nonce, plaintext, aad) (ct ‖ 16-byte tag)
///
/// swift-crypto only has the IETF ChaCha20-Poly1305 (12-byte nonce), so XChaCha20 is built the
/// standard way (draft-irtf-cfrg-xchacha §2.3): subkey = HChaCha20(key, nonce[0..<16]), then
/// ChaCha20-Poly1305 with the subkey and nonce 0x00000000 ‖ nonce[16..<24].
enum DEM {
    static let nonceCount = 24
    static let tagCount = 16

    static func key(fromSeed seed: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: seed), salt: [UInt8](), info: [UInt8](), outputByteCount: 32)
    }

    static func encrypt(seed: [UInt8], plaintext: [UInt8], aad: [UInt8]) -> [UInt8] {
        let nonce = secureRandomBytes(nonceCount)
        return seal(key: key(fromSeed: seed), nonce: nonce, plaintext: plaintext, aad: aad)
    }

    static func decrypt(seed: [UInt8], ciphertext: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        try open(key: key(fromSeed: seed), ciphertext: ciphertext, aad: aad)
    }

    /// XChaCha20-Poly1305 seal; returns nonce ‖ ciphertext ‖ tag.
    static func seal(key: SymmetricKey, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]) -> [UInt8] {
        precondition(nonce.count == nonceCount)
        let (subkey, ietfNonce) = derive(key: key, nonce: nonce)
        // Only fails for nonce/key size errors, which cannot happen here.
        let box = try! ChaChaPoly.seal(plaintext, using: subkey, nonce: ietfNonce, authenticating: aad)
        return nonce + Array(box.ciphertext) + Array(box.tag)
    }

    static func open(key: SymmetricKey, ciphertext: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        guard ciphertext.count >= nonceCount + tagCount else { throw PREError.ciphertextTooShort }
        let nonce = Array(ciphertext[0..<nonceCount])
        let body = ciphertext[nonceCount..<(ciphertext.count - tagCount)]
        let tag = ciphertext[(ciphertext.count - tagCount)...]
        let (subkey, ietfNonce) = derive(key: key, nonce: nonce)
        do {
            let box = try ChaChaPoly.SealedBox(nonce: ietfNonce, ciphertext: body, tag: tag)
            return Array(try ChaChaPoly.open(box, using: subkey, authenticating: aad))
        } catch {
            throw PREError.decryptionFailed
        }
    }

    private static func derive(key: SymmetricKey, nonce: [UInt8]) -> (SymmetricKey, ChaChaPoly.Nonce) {
        let keyBytes = key.withUnsafeBytes { Array($0) }
        let subkey = SymmetricKey(data: HChaCha20.block(key: keyBytes, nonce: Array(nonce[0..<16])))
        let n = try! ChaChaPoly.Nonce(data: [0, 0, 0, 0] + Array(nonce[16..<24]))
        return (subkey, n)
    }
}

/// HChaCha20 (draft-irtf-cfrg-xchacha §2.2): the ChaCha20 block function without the final
/// addition, keeping words 0–3 and 12–15 of the state as a 256-bit subkey.
enum HChaCha20 {
    static func block(key: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(key.count == 32 && nonce.count == 16)
        func word(_ b: [UInt8], _ i: Int) -> UInt32 {
            UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
        }
        var s: [UInt32] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]
        for i in 0..<8 { s.append(word(key, 4 * i)) }
        for i in 0..<4 { s.append(word(nonce, 4 * i)) }
        func qr(_ a: Int, _ b: Int, _ c: Int, _ d: Int) {
            s[a] = s[a] &+ s[b]
            s[d] ^= s[a]
            s[d] = s[d] << 16 | s[d] >> 16
            s[c] = s[c] &+ s[d]
            s[b] ^= s[c]
            s[b] = s[b] << 12 | s[b] >> 20
            s[a] = s[a] &+ s[b]
            s[d] ^= s[a]
            s[d] = s[d] << 8 | s[d] >> 24
            s[c] = s[c] &+ s[d]
            s[b] ^= s[c]
            s[b] = s[b] << 7 | s[b] >> 25
        }
        for _ in 0..<10 {
            qr(0, 4, 8, 12)
            qr(1, 5, 9, 13)
            qr(2, 6, 10, 14)
            qr(3, 7, 11, 15)
            qr(0, 5, 10, 15)
            qr(1, 6, 11, 12)
            qr(2, 7, 8, 13)
            qr(3, 4, 9, 14)
        }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for i in [0, 1, 2, 3, 12, 13, 14, 15] {
            let w = s[i]
            out += [UInt8(w & 0xff), UInt8((w >> 8) & 0xff), UInt8((w >> 16) & 0xff), UInt8(w >> 24)]
        }
        for i in s.indices { s[i] = 0 }
        return out
    }
}
