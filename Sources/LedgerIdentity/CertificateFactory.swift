import Crypto
import Foundation
import LedgerCrypto
import SwiftASN1
import X509

/// What a certificate is for. Signing and TLS keys are separate: a signing certificate cannot be used
/// to authenticate a TLS connection and a TLS certificate cannot sign transactions.
public enum CertificatePurpose: String, Sendable, Codable {
    case signing
    case tls
}

public enum CSRError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int, limit: Int)
    case malformed(String)
    case badSignature
    case unsupportedKey

    public var description: String {
        switch self {
        case .tooLarge(let n, let l): return "certificate signing request is \(n) bytes, over the limit of \(l)"
        case .malformed(let m): return "certificate signing request does not parse: \(m)"
        case .badSignature:
            return "certificate signing request signature does not verify (the requester does not hold the key)"
        case .unsupportedKey: return "certificate signing request key must be ECDSA P-256 or P-384"
        }
    }
}

/// Parses and checks CSRs, and issues certificates. Pure: keys, names and times are passed in.
public enum CertificateFactory {
    public static let csrBytesMax = 16 * 1024

    /// A positive 20-octet serial (RFC 5280 §4.1.2.2: at most 20 octets, which a random 20-byte value with
    /// its top bit set would exceed once DER adds its sign byte).
    public static func randomSerial() -> Certificate.SerialNumber {
        var b = (0..<20).map { _ in UInt8.random(in: 0...255) }
        b[0] = (b[0] & 0x7F) | 0x40
        return Certificate.SerialNumber(bytes: b)
    }

    /// Parses a PEM CSR, checks its size, key type and self-signature.
    public static func checkedCSR(pem: [UInt8]) throws(CSRError) -> CertificateSigningRequest {
        guard pem.count <= csrBytesMax else { throw .tooLarge(pem.count, limit: csrBytesMax) }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pemEncoded: String(decoding: pem, as: UTF8.self)) } catch {
            throw .malformed("\(error)")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil || P384.Signing.PublicKey(csr.publicKey) != nil else {
            throw .unsupportedKey
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else { throw .badSignature }
        return csr
    }

    /// The X9.63 form of an EC public key (what hybrid encryption needs).
    public static func x963(_ key: Certificate.PublicKey) -> [UInt8]? {
        if let k = P256.Signing.PublicKey(key) { return Array(k.x963Representation) }
        if let k = P384.Signing.PublicKey(key) { return Array(k.x963Representation) }
        return nil
    }

    /// PID = base64url(SHA-384(Enc_pk(RID))), with Enc the hybrid encryption to the key `pk`.
    public static func pseudoIdentity(realIdentity: String, publicKey: Certificate.PublicKey) throws -> String {
        guard let pk = x963(publicKey) else { throw CSRError.unsupportedKey }
        let sealed = try HybridEncryption.seal(
            Array(realIdentity.utf8), toX963: pk, aad: Array("medledger/pid/v1".utf8))
        return Base64URL.encode(Digests.sha384(sealed))
    }

    public static func selfSignedRoot(
        key: P384.Signing.PrivateKey, name: DistinguishedName, validity: TimeInterval, now: Date = Date()
    ) throws -> Certificate {
        let caKey = Certificate.PrivateKey(key)
        let ski = SubjectKeyIdentifier(hash: caKey.publicKey)
        return try Certificate(
            version: .v3, serialNumber: randomSerial(), publicKey: caKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validity),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA384,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                ski
            },
            issuerPrivateKey: caKey)
    }

    /// An end-entity certificate for `publicKey` with the identity in its subject.
    public static func issue(
        publicKey: Certificate.PublicKey, identity: IdentityAttributes, purpose: CertificatePurpose,
        dnsNames: [String] = [], ipAddresses: [String] = [], serverAuth: Bool = false,
        issuer: Certificate, issuerKey: P384.Signing.PrivateKey, validity: TimeInterval, now: Date = Date()
    ) throws -> Certificate {
        let caKeyID =
            try issuer.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: issuer.publicKey).keyIdentifier
        var sans: [GeneralName] = dnsNames.map { .dnsName($0) }
        for ip in ipAddresses {
            guard let raw = IPAddress.bytes(ip) else { throw CertificateIssueError.badIPAddress(ip) }
            sans.append(.ipAddress(ASN1OctetString(contentBytes: raw[...])))
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            switch purpose {
            case .signing:
                Critical(KeyUsage(digitalSignature: true, nonRepudiation: true))
            case .tls:
                Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
                try ExtendedKeyUsage(serverAuth ? [.serverAuth, .clientAuth] : [.clientAuth])
            }
            if !sans.isEmpty { SubjectAlternativeNames(sans) }
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: caKeyID)
        }
        return try Certificate(
            version: .v3, serialNumber: randomSerial(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validity),
            issuer: issuer.subject, subject: try identity.distinguishedName(), signatureAlgorithm: .ecdsaWithSHA384,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(issuerKey))
    }

    /// A PKCS#10 request for `key` (client side). The subject is informational: the CA sets the real one.
    public static func makeCSR(key: P256.Signing.PrivateKey, commonName: String) throws -> String {
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(commonName) },
            privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .ecdsaWithSHA256)
        return try csr.serializeAsPEM().pemString
    }
}

public enum CertificateIssueError: Error, Equatable, CustomStringConvertible {
    case badIPAddress(String)

    public var description: String {
        switch self {
        case .badIPAddress(let ip): return "not an IP address: \(ip)"
        }
    }
}

enum IPAddress {
    /// 4 or 16 bytes for a textual IPv4/IPv6 address.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
