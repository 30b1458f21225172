import Foundation
import LedgerCrypto
import LedgerPRE

/// A user's Umbral (secp256k1) key pairs, kept in the wallet beside the X.509 ones as
/// `pre-keys.json` (0600): the encryption key records are sealed to (and capsule fragments
/// re-encrypted to), and the signing key that signs the key fragments a patient hands to proxies.
/// Made on the user's machine the first time they are needed; the public halves are published on
/// chain (`medrecords.publishKeys`), the secret halves never leave the wallet.
public struct ProxyKeys: Sendable {
    public let encryption: SecretKey
    public let signing: SecretKey

    public var encryptionKey: PublicKey { encryption.publicKey }
    public var verifyingKey: PublicKey { signing.publicKey }
    public var signer: Signer { Signer(signing) }

    struct File: Codable {
        var encryptionSecret: String
        var signingSecret: String
        enum CodingKeys: String, CodingKey {
            case encryptionSecret = "encryption_secret"
            case signingSecret = "signing_secret"
        }
    }
}

extension Wallet {
    public var proxyKeysPath: String { directory + "/pre-keys.json" }

    /// The wallet's Umbral keys, made (and stored) now if it has none yet.
    public func proxyKeys() throws -> ProxyKeys {
        if let data = FileManager.default.contents(atPath: proxyKeysPath) {
            do {
                let f = try JSONDecoder().decode(ProxyKeys.File.self, from: data)
                return ProxyKeys(
                    encryption: try SecretKey(bigEndianBytes: Hex.decode(f.encryptionSecret) ?? []),
                    signing: try SecretKey(bigEndianBytes: Hex.decode(f.signingSecret) ?? []))
            } catch {
                throw Failure(
                    description:
                        "wallet \(directory): pre-keys.json is damaged (\(error)); it holds the key your records are sealed to, restore it from a backup"
                )
            }
        }
        let keys = ProxyKeys(encryption: SecretKey.random(), signing: SecretKey.random())
        let f = ProxyKeys.File(
            encryptionSecret: Hex.encode(keys.encryption.toSecretBytes()),
            signingSecret: Hex.encode(keys.signing.toSecretBytes()))
        try Self.write(String(decoding: try JSONEncoder().encode(f), as: UTF8.self), to: proxyKeysPath, mode: 0o600)
        return keys
    }
}
