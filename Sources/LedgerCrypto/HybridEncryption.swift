import Crypto
import Foundation

/// Hybrid public-key encryption (ECIES shape) to an EC public key — the paper's `Enc_pk`:
///
///     ephemeral key pair on the recipient's curve; Z = ECDH(ephemeral, recipient)
///     key = HKDF-SHA-384(Z, salt: "", info: "medledger/hybrid/v1" || curve || ephemeral pub || recipient pub), 32 bytes
///     box = AES-256-GCM(key, random nonce, plaintext, aad: caller's context)
///     output = 0x01 || curve id || ephemeral pub (X9.63) || nonce || ciphertext || tag
///
/// Binding both public keys into the KDF stops a ciphertext being replayed to another recipient.
/// Encryption is randomised, so the same plaintext gives a different ciphertext every time.
public enum HybridEncryption {
    public enum Curve: UInt8, Sendable {
        case p256 = 1
        case p384 = 2

        var publicKeyLength: Int { self == .p256 ? 65 : 97 }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case wrongKey
        case unsupportedCurve

        public var description: String {
            switch self {
            case .malformed(let m): return "hybrid ciphertext is malformed: \(m)"
            case .wrongKey: return "hybrid ciphertext does not open with this key (wrong key or tampered)"
            case .unsupportedCurve: return "hybrid encryption supports P-256 and P-384 keys only"
            }
        }
    }

    static let version: UInt8 = 1
    static let info = Array("medledger/hybrid/v1".utf8)

    /// Encrypts to a recipient given by its public key in X9.63 form (what a certificate's EC key is).
    public static func seal(
        _ plaintext: some DataProtocol, toX963 recipient: [UInt8], aad: [UInt8] = []
    ) throws -> [UInt8] {
        switch recipient.count {
        case Curve.p256.publicKeyLength:
            let pub = try P256.KeyAgreement.PublicKey(x963Representation: recipient)
            let eph = P256.KeyAgreement.PrivateKey()
            let z = try eph.sharedSecretFromKeyAgreement(with: pub)
            return try box(
                .p256, z, ephemeral: Array(eph.publicKey.x963Representation), recipient: recipient, plaintext, aad)
        case Curve.p384.publicKeyLength:
            let pub = try P384.KeyAgreement.PublicKey(x963Representation: recipient)
            let eph = P384.KeyAgreement.PrivateKey()
            let z = try eph.sharedSecretFromKeyAgreement(with: pub)
            return try box(
                .p384, z, ephemeral: Array(eph.publicKey.x963Representation), recipient: recipient, plaintext, aad)
        default:
            throw Failure.unsupportedCurve
        }
    }

    /// Opens with a P-256 private key.
    public static func open(
        _ sealed: [UInt8], with key: P256.KeyAgreement.PrivateKey, aad: [UInt8] = []
    ) throws -> [UInt8] {
        let (eph, rest) = try split(sealed, expecting: .p256)
        let z = try key.sharedSecretFromKeyAgreement(with: try P256.KeyAgreement.PublicKey(x963Representation: eph))
        return try unbox(.p256, z, ephemeral: eph, recipient: Array(key.publicKey.x963Representation), rest, aad)
    }

    /// Opens with a P-384 private key.
    public static func open(
        _ sealed: [UInt8], with key: P384.KeyAgreement.PrivateKey, aad: [UInt8] = []
    ) throws -> [UInt8] {
        let (eph, rest) = try split(sealed, expecting: .p384)
        let z = try key.sharedSecretFromKeyAgreement(with: try P384.KeyAgreement.PublicKey(x963Representation: eph))
        return try unbox(.p384, z, ephemeral: eph, recipient: Array(key.publicKey.x963Representation), rest, aad)
    }

    private static func derive(
        _ curve: Curve, _ z: SharedSecret, ephemeral: [UInt8], recipient: [UInt8]
    ) -> SymmetricKey {
        z.hkdfDerivedSymmetricKey(
            using: SHA384.self, salt: [UInt8](), sharedInfo: info + [curve.rawValue] + ephemeral + recipient,
            outputByteCount: 32)
    }

    private static func box(
        _ curve: Curve, _ z: SharedSecret, ephemeral: [UInt8], recipient: [UInt8], _ plaintext: some DataProtocol,
        _ aad: [UInt8]
    ) throws -> [UInt8] {
        let key = derive(curve, z, ephemeral: ephemeral, recipient: recipient)
        let sealed = try AES.GCM.seal(plaintext, using: key, authenticating: aad)
        return [version, curve.rawValue] + ephemeral + Array(sealed.combined!)
    }

    private static func split(_ sealed: [UInt8], expecting curve: Curve) throws -> ([UInt8], [UInt8]) {
        guard sealed.count >= 2, sealed[0] == version else { throw Failure.malformed("unknown version") }
        guard sealed[1] == curve.rawValue else { throw Failure.wrongKey }
        let n = curve.publicKeyLength
        guard sealed.count >= 2 + n + 12 + 16 else { throw Failure.malformed("too short") }
        return (Array(sealed[2..<(2 + n)]), Array(sealed[(2 + n)...]))
    }

    private static func unbox(
        _ curve: Curve, _ z: SharedSecret, ephemeral: [UInt8], recipient: [UInt8], _ combined: [UInt8], _ aad: [UInt8]
    ) throws -> [UInt8] {
        let key = derive(curve, z, ephemeral: ephemeral, recipient: recipient)
        do {
            return Array(try AES.GCM.open(try AES.GCM.SealedBox(combined: combined), using: key, authenticating: aad))
        } catch {
            throw Failure.wrongKey
        }
    }
}
