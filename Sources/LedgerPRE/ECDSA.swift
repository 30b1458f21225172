import CSecp256k1

/// ECDSA over secp256k1 on libsecp256k1's own signing and verification (faster than composing them
/// from point and scalar operations: no inversion by exponentiation, one multi-multiplication).
enum ECDSA {
    /// r ‖ s (64 bytes, low S) of `digest` (32 bytes, taken mod n as ECDSA's bits2int does).
    static func sign(digest: [UInt8], secretKey: Scalar) -> [UInt8] {
        precondition(digest.count == 32, "LedgerPRE: ECDSA signs a 32-byte digest")
        let context = Secp256k1.shared.context
        var signature = secp256k1_ecdsa_signature()
        // RFC 6979 with added randomness (as k256 does): a weak RNG cannot leak the key, and a
        // fault in one signing cannot be repeated at will.
        var extra = secureRandomBytes(32)
        let signed = secp256k1_ecdsa_sign(
            context, &signature, digest, secretKey.bn.ptr, secp256k1_nonce_function_rfc6979, &extra)
        precondition(signed == 1, "LedgerPRE: secp256k1_ecdsa_sign failed (a secret key out of range)")
        var out = [UInt8](repeating: 0, count: 64)
        _ = secp256k1_ecdsa_signature_serialize_compact(context, &out, &signature)
        return out
    }

    /// Whether r ‖ s is a signature of `digest` by `key`. High S is normalised first (libsecp256k1
    /// accepts low S only; umbral-pre accepts both); r or s of 0 or ≥ n never verify.
    static func verify(rs: [UInt8], digest: [UInt8], key: Point) -> Bool {
        guard rs.count == 64, digest.count == 32, var pubkey = key.pubkey else { return false }
        let context = Secp256k1.shared.context
        var signature = secp256k1_ecdsa_signature()
        guard secp256k1_ecdsa_signature_parse_compact(context, &signature, rs) == 1 else { return false }
        var normal = secp256k1_ecdsa_signature()
        _ = secp256k1_ecdsa_signature_normalize(context, &normal, &signature)
        return secp256k1_ecdsa_verify(context, &normal, digest, &pubkey) == 1
    }
}
