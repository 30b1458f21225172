import Crypto
import Foundation
import LedgerCrypto
import X509

/// What the patient and the doctor sign for an index record (D_SP, D_SD), shared by the chaincode
/// that verifies and the clients that sign.
///
/// The paper signs the digest of the ciphertext alone. Here the message also names the treatment and
/// the URL, behind a domain label: a signature for one record then cannot be replayed into another
/// treatment's P_DE or pointed at a different location, nor mistaken for a signature made for any
/// other purpose with the same key.
public enum IndexRecordSigning {
    public static let domain = "medledger/pde/v1"

    /// UTF-8 of "medledger/pde/v1\n" + tid + "\n" + url + "\n" + lower-case digest hex.
    public static func message(tid: String, url: String, digestHex: String) -> [UInt8] {
        Array((domain + "\n" + tid + "\n" + url + "\n" + digestHex.lowercased()).utf8)
    }

    /// Base64 (standard alphabet) of the DER ECDSA P-256 / SHA-256 signature of `message`.
    public static func sign(tid: String, url: String, digestHex: String, key: P256.Signing.PrivateKey) throws -> String
    {
        try sign(message: message(tid: tid, url: url, digestHex: digestHex), key: key)
    }

    /// Whether `signatureBase64` is `publicKey`'s signature of the message. False, never a throw, for
    /// anything that is not a base64 DER ECDSA signature.
    public static func isValid(
        signatureBase64: String, publicKey: P256.Signing.PublicKey, tid: String, url: String, digestHex: String
    ) -> Bool {
        isValid(
            signatureBase64: signatureBase64, publicKey: publicKey,
            message: message(tid: tid, url: url, digestHex: digestHex))
    }

    /// The signature form every signed message of `medrecords` uses (P_DE, consent acts): base64 of
    /// the DER ECDSA P-256 / SHA-256 signature of `message`.
    public static func sign(message: [UInt8], key: P256.Signing.PrivateKey) throws -> String {
        Data(ECDSADER.encode(try key.signature(for: message))).base64EncodedString()
    }

    /// False, never a throw, for anything that is not a base64 DER ECDSA signature of `message`.
    public static func isValid(signatureBase64: String, publicKey: P256.Signing.PublicKey, message: [UInt8]) -> Bool {
        isValid(signatureBase64: signatureBase64, key: P256VerifyingKey(publicKey), message: message)
    }

    /// As above, for a key kept with the bytes that name it (the chaincode's signers).
    public static func isValid(signatureBase64: String, key: P256VerifyingKey, message: [UInt8]) -> Bool {
        guard let der = Data(base64Encoded: signatureBase64),
            let signature = ECDSADER.p256Signature(der)
        else { return false }
        return P256Verifier.shared.isValidSignature(signature, for: message, key: key)
    }

    /// The signing key a certificate carries, nil when it is not ECDSA P-256 (the only key type the
    /// CA issues to users). For clients checking a record they read; the chaincode gets the key from
    /// the membership check instead (`ValidatedSigner`).
    public static func publicKey(certificatePEM: String) throws -> P256.Signing.PublicKey? {
        P256.Signing.PublicKey(try Certificate(pemEncoded: certificatePEM).publicKey)
    }

    /// The digest an index record carries: lower-case hex of SHA-384 of the ciphertext.
    public static func digestHex(ofCiphertext ciphertext: some DataProtocol) -> String {
        Hex.encode(Digests.sha384(ciphertext))
    }
}
