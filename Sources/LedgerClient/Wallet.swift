import Crypto
import Foundation
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerTransport
import X509

/// An identity on disk: one directory, PEM files, private keys readable by the owner only (0600).
///
///     identity.json     name, PID, organisation, role
///     signing-key.pem   signing-cert.pem     (sign transactions and records)
///     tls-key.pem       tls-cert.pem         (mutual TLS)
///     ca-cert.pem                            (the trusted root)
public struct Wallet: Sendable {
    public struct Info: Codable, Sendable, Equatable {
        public var name: String
        public var pid: String
        public var org: String
        public var role: String
    }

    public let directory: String
    public let info: Info

    public var signingKeyPath: String { directory + "/signing-key.pem" }
    public var signingCertPath: String { directory + "/signing-cert.pem" }
    public var tlsKeyPath: String { directory + "/tls-key.pem" }
    public var tlsCertPath: String { directory + "/tls-cert.pem" }
    public var caCertPath: String { directory + "/ca-cert.pem" }
    public var tlsIdentity: TLSIdentityFiles { TLSIdentityFiles(certificatePath: tlsCertPath, keyPath: tlsKeyPath) }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func open(_ directory: String) throws -> Wallet {
        let path = directory + "/identity.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "no wallet in \(directory) (missing identity.json)")
        }
        let info: Info
        do { info = try JSONDecoder().decode(Info.self, from: data) } catch {
            throw Failure(description: "wallet \(directory): identity.json is not valid: \(error)")
        }
        let w = Wallet(directory: directory, info: info)
        for p in [w.signingKeyPath, w.signingCertPath, w.tlsKeyPath, w.tlsCertPath, w.caCertPath]
        where !FileManager.default.fileExists(atPath: p) {
            throw Failure(description: "wallet \(directory) is incomplete: \(p) is missing")
        }
        return w
    }

    /// Writes an enrolled identity with the keys generated locally for it.
    @discardableResult
    public static func store(
        _ enrolled: Medledger_EnrolledIdentity, keys: KeyPairs, in directory: String
    ) throws -> Wallet {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let info = Info(
            name: enrolled.name, pid: enrolled.pid, org: enrolled.orgID, role: RoleName.name(enrolled.role) ?? "unknown"
        )
        let w = Wallet(directory: directory, info: info)
        try write(keys.signing.pemRepresentation, to: w.signingKeyPath, mode: 0o600)
        try write(keys.tls.pemRepresentation, to: w.tlsKeyPath, mode: 0o600)
        try write(String(decoding: enrolled.signingCertPem, as: UTF8.self), to: w.signingCertPath, mode: 0o644)
        try write(String(decoding: enrolled.tlsCertPem, as: UTF8.self), to: w.tlsCertPath, mode: 0o644)
        try write(String(decoding: enrolled.caCertPem, as: UTF8.self), to: w.caCertPath, mode: 0o644)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(
            String(decoding: try enc.encode(info), as: UTF8.self) + "\n", to: directory + "/identity.json", mode: 0o644)
        return w
    }

    static func write(_ text: String, to path: String, mode: Int) throws {
        // Created with its final mode and renamed into place: a key is never readable by others.
        do { try SecureFile.write(Data(text.utf8), to: path, mode: mode_t(mode)) } catch {
            throw Failure(description: "\(error)")
        }
    }

    public var caCertPEM: [UInt8] { [UInt8](FileManager.default.contents(atPath: caCertPath) ?? Data()) }

    public func tlsCertificate() throws -> Certificate {
        try Certificate(pemEncoded: String(contentsOfFile: tlsCertPath, encoding: .utf8))
    }

    public func signingKey() throws -> P256.Signing.PrivateKey {
        try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: signingKeyPath, encoding: .utf8))
    }
}

/// A user's two key pairs, generated on the user's machine: the private keys never leave it.
public struct KeyPairs: Sendable {
    public let signing: P256.Signing.PrivateKey
    public let tls: P256.Signing.PrivateKey

    public init() {
        signing = P256.Signing.PrivateKey()
        tls = P256.Signing.PrivateKey()
    }

    public func csrs(name: String) throws -> (signing: Data, tls: Data) {
        (
            Data(try CertificateFactory.makeCSR(key: signing, commonName: name).utf8),
            Data(try CertificateFactory.makeCSR(key: tls, commonName: name).utf8)
        )
    }
}
