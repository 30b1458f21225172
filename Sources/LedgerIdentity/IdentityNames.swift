import Foundation
import LedgerCrypto
import LedgerProtos
import SwiftASN1
import X509

/// How an identity is written into a certificate subject, readable by any X.509 tool:
///
///     CN = PID (base64url of SHA-384(Enc_pk(RID)), 64 characters — the X.520 upper bound of a CN)
///     O  = organisation id (e.g. "hospital-a"; "sa" for the system administrator)
///     OU = role ("admin", "patient", "doctor", "third-party", "device", "node")
///
/// The real identity (RID) never appears in a certificate.
public enum RoleName {
    public static func name(_ role: Medledger_Role) -> String? {
        switch role {
        case .admin: return "admin"
        case .patient: return "patient"
        case .doctor: return "doctor"
        case .thirdParty: return "third-party"
        case .device: return "device"
        case .node: return "node"
        default: return nil
        }
    }

    public static func role(_ name: String) -> Medledger_Role? {
        switch name {
        case "admin": return .admin
        case "patient": return .patient
        case "doctor": return .doctor
        case "third-party": return .thirdParty
        case "device": return .device
        case "node": return .node
        default: return nil
        }
    }

    public static let all = ["admin", "patient", "doctor", "third-party", "device", "node"]
}

public enum OrgID {
    /// Lower-case letters, digits and '-', 1 to 64 characters, starting with a letter.
    public static func isValid(_ id: String) -> Bool {
        let b = Array(id.utf8)
        guard let f = b.first, (97...122).contains(f), b.count <= 64 else { return false }
        return b.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
    }

    public static let systemAdministrator = "sa"
}

/// What a certificate says about its holder.
public struct IdentityAttributes: Sendable, Equatable, Codable {
    public var pid: String
    public var org: String
    public var role: String

    public init(pid: String, org: String, role: String) {
        self.pid = pid
        self.org = org
        self.role = role
    }

    public var roleValue: Medledger_Role? { RoleName.role(role) }

    public func distinguishedName() throws -> DistinguishedName {
        try DistinguishedName {
            OrganizationName(org)
            OrganizationalUnitName(role)
            CommonName(pid)
        }
    }

    public init?(subject: DistinguishedName) {
        guard let pid = subject.strings(for: .RDNAttributeType.commonName).last,
            let org = subject.strings(for: .RDNAttributeType.organizationName).first,
            let role = subject.strings(for: .RDNAttributeType.organizationalUnitName).first
        else { return nil }
        self.init(pid: pid, org: org, role: role)
    }
}

extension DistinguishedName {
    public func strings(for oid: ASN1ObjectIdentifier) -> [String] {
        self.flatMap { rdn in rdn.filter { $0.type == oid }.compactMap { String($0.value) } }
    }
}

extension Certificate {
    /// Lower-case hex of the serial number, zero-padded: the key under which the CA files it.
    public var serialHex: String { Hex.encode(serialNumber.bytes) }

    public var attributes: IdentityAttributes? { IdentityAttributes(subject: subject) }

    public var derBytes: [UInt8] {
        var s = DER.Serializer()
        try? s.serialize(self)
        return s.serializedBytes
    }

    public var pem: String { (try? serializeAsPEM().pemString) ?? "" }

    /// Certificates in a PEM bundle, in order.
    public static func parseBundle(pem: String) throws -> [Certificate] {
        try PEMDocument.parseMultiple(pemString: pem).map { try Certificate(pemDocument: $0) }
    }
}
