import Crypto
import Foundation

/// What a patient signs to grant or revoke a consent through a node rather than in their own
/// transaction: a patient app speaking FHIR has the patient's signing key but not a gateway, so the
/// node submits, and the patient's signature, not the node's word, is what the chaincode trusts.
///
/// Each message names its purpose behind a domain label, so it cannot be mistaken for a P_DE
/// signature (`IndexRecordSigning`) or for the other act. A grant carries a nonce the patient chose,
/// kept on chain once used: a node cannot replay a signed grant to restore access the patient has
/// since revoked. Fields never contain control characters (the chaincode refuses them), so the
/// newline-separated message has one reading.
public enum ConsentSigning {
    public static let grantDomain = "medledger/consent-grant/v1"
    public static let revokeDomain = "medledger/consent-revoke/v1"

    /// UTF-8 of the domain, grantee, comma-separated T_IDs, purpose, expiry and nonce, one per line.
    public static func grantMessage(
        granteePID: String, tIDs: [String], purpose: String, expiresAt: String, nonce: String
    ) -> [UInt8] {
        Array(
            [grantDomain, granteePID, tIDs.joined(separator: ","), purpose, expiresAt, nonce].joined(separator: "\n")
                .utf8)
    }

    /// UTF-8 of "medledger/consent-revoke/v1\n" + the consent's id.
    public static func revokeMessage(consentID: String) -> [UInt8] {
        Array((revokeDomain + "\n" + consentID).utf8)
    }

    /// Base64 of the DER ECDSA P-256 / SHA-256 signature of `message` (as for a P_DE).
    public static func sign(_ message: [UInt8], key: P256.Signing.PrivateKey) throws -> String {
        try IndexRecordSigning.sign(message: message, key: key)
    }

    /// False, never a throw, for anything that is not a base64 DER ECDSA signature of `message`.
    public static func isValid(signatureBase64: String, publicKey: P256.Signing.PublicKey, message: [UInt8]) -> Bool {
        IndexRecordSigning.isValid(signatureBase64: signatureBase64, publicKey: publicKey, message: message)
    }
}
