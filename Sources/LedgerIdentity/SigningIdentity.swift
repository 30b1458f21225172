import Crypto
import Foundation
import LedgerCrypto
import LedgerProtos
import SwiftProtobuf
import X509

/// A member's signing key with its certificate: signs proposals, envelopes, endorsements, blocks and
/// configuration updates. `serialized` is the `SerializedIdentity` that travels beside signatures.
public struct SigningIdentity: Sendable {
    public let org: String
    public let certificatePEM: String
    public let key: P256.Signing.PrivateKey
    public let serialized: [UInt8]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(org: String, certificatePEM: String, key: P256.Signing.PrivateKey) throws {
        self.org = org
        self.certificatePEM = certificatePEM
        self.key = key
        var id = Medledger_SerializedIdentity()
        id.mspID = org
        id.idBytes = Data(certificatePEM.utf8)
        serialized = try id.serializedBytes()
    }

    /// Loads a PEM certificate and PEM P-256 key; the organisation is read from the certificate.
    public static func load(certificatePath: String, keyPath: String) throws -> SigningIdentity {
        guard let certPEM = try? String(contentsOfFile: certificatePath, encoding: .utf8) else {
            throw Failure(description: "cannot read signing certificate \(certificatePath)")
        }
        guard let keyPEM = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            throw Failure(description: "cannot read signing key \(keyPath)")
        }
        let cert: Certificate
        do { cert = try Certificate(pemEncoded: certPEM) } catch {
            throw Failure(description: "\(certificatePath) is not a PEM certificate: \(error)")
        }
        guard let attrs = cert.attributes else {
            throw Failure(description: "\(certificatePath) has no MedLedger identity in its subject")
        }
        let key: P256.Signing.PrivateKey
        do { key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM) } catch {
            throw Failure(description: "\(keyPath) is not a P-256 private key: \(error)")
        }
        guard key.publicKey.x963Representation == P256.Signing.PublicKey(cert.publicKey)?.x963Representation else {
            throw Failure(description: "\(keyPath) does not belong to \(certificatePath)")
        }
        return try SigningIdentity(org: attrs.org, certificatePEM: certPEM, key: key)
    }

    /// ECDSA P-256 / SHA-256, DER.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        ECDSADER.encode(try key.signature(for: message))
    }

    /// The same signature as `sign` over the message whose SHA-256 this is: for a caller that needs
    /// the digest anyway, so the message is hashed once.
    public func sign(digest: SHA256Digest) throws -> [UInt8] {
        ECDSADER.encode(try key.signature(for: digest))
    }
}
