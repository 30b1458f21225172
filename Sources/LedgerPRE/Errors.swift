/// Everything LedgerPRE can refuse, with a message that says what went wrong and, where it helps,
/// what it usually means. Verification failures are distinct cases so callers can tell a bad
/// signature (wrong signer or keys) from a bad proof (a proxy that did not re-encrypt honestly).
public enum PREError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A byte string has the wrong length for what it encodes.
    case invalidLength(what: String, expected: Int, got: Int)
    /// Bytes that do not parse: bad MessagePack structure, trailing bytes, a scalar ≥ the group order.
    case malformed(what: String, reason: String)
    /// 33 bytes that are not the compressed encoding of a point on secp256k1.
    case pointNotOnCurve(what: String)
    /// A secret key must be a scalar in [1, n).
    case invalidSecretKey
    /// A capsule whose points and signature do not satisfy s·G = V + h·E (tampered or corrupt).
    case capsuleVerificationFailed
    /// A key fragment whose commitment is not U·key (tampered or corrupt).
    case kfragCommitmentInvalid
    /// The kfrag's signature covers the delegating key, but none was given to `verify`.
    case delegatingKeyNotProvided
    /// The kfrag's signature covers the receiving key, but none was given to `verify`.
    case receivingKeyNotProvided
    /// The kfrag's signature does not verify: another signer, other keys, or tampered.
    case kfragSignatureInvalid
    /// The kfrag signature carried in a capsule fragment does not verify for these keys.
    case cfragSignatureInvalid
    /// The capsule fragment's correctness proof fails: the proxy did not re-encrypt this capsule
    /// with the key fragment it committed to (or the cfrag was tampered).
    case cfragProofInvalid
    /// `decryptReencrypted` got no capsule fragments.
    case noCapsuleFrags
    /// Capsule fragments from different `generateKFrags` calls (their precursors differ).
    case mismatchedCapsuleFrags
    /// The same capsule fragment was given twice.
    case repeatingCapsuleFrags
    /// The fragments do not open the capsule: fewer than the threshold, fragments of another capsule
    /// or another delegation, or the wrong receiving key. (The maths cannot tell these apart.)
    case notEnoughOrInvalidCapsuleFrags
    /// The ciphertext is shorter than the 24-byte nonce plus the 16-byte tag.
    case ciphertextTooShort
    /// XChaCha20-Poly1305 authentication failed: wrong key, or the ciphertext or capsule was modified.
    case decryptionFailed
    /// generateKFrags needs 1 ≤ threshold ≤ shares.
    case invalidThreshold(threshold: Int, shares: Int)

    public var description: String {
        switch self {
        case let .invalidLength(what, expected, got):
            return "\(what): expected \(expected) bytes, got \(got)"
        case let .malformed(what, reason):
            return "\(what) is malformed: \(reason)"
        case let .pointNotOnCurve(what):
            return "\(what) is not a compressed point on secp256k1"
        case .invalidSecretKey:
            return "secret key must be a non-zero scalar below the secp256k1 group order"
        case .capsuleVerificationFailed:
            return "capsule self-verification failed (tampered or corrupt capsule)"
        case .kfragCommitmentInvalid:
            return "key fragment commitment is invalid (tampered or corrupt kfrag)"
        case .delegatingKeyNotProvided:
            return "the kfrag signature covers the delegating key, but no delegating key was provided"
        case .receivingKeyNotProvided:
            return "the kfrag signature covers the receiving key, but no receiving key was provided"
        case .kfragSignatureInvalid:
            return "key fragment signature is invalid (wrong signer or keys, or tampered kfrag)"
        case .cfragSignatureInvalid:
            return
                "the kfrag signature inside the capsule fragment is invalid (wrong signer or keys, or tampered cfrag)"
        case .cfragProofInvalid:
            return "capsule fragment re-encryption proof is invalid (dishonest proxy or tampered cfrag)"
        case .noCapsuleFrags:
            return "no capsule fragments given"
        case .mismatchedCapsuleFrags:
            return "capsule fragments come from different key-fragment sets"
        case .repeatingCapsuleFrags:
            return "some capsule fragments are repeated"
        case .notEnoughOrInvalidCapsuleFrags:
            return
                "capsule fragments do not open the capsule: fewer than the threshold, wrong receiving key, or fragments of another capsule"
        case .ciphertextTooShort:
            return "ciphertext is too short (must hold a 24-byte nonce and a 16-byte tag)"
        case .decryptionFailed:
            return "decryption failed: wrong key, or the ciphertext or capsule was tampered with"
        case let .invalidThreshold(threshold, shares):
            return "invalid threshold \(threshold) of \(shares) shares (need 1 ≤ threshold ≤ shares)"
        }
    }
}
