import Crypto
import Foundation
import SwiftASN1
import X509

/// An X.509 v2 certificate revocation list (RFC 5280 §5), encoded and parsed with SwiftASN1 because
/// swift-certificates has no CRL support. Only what MedLedger issues and reads: ECDSA signatures,
/// CRL number and authority key id extensions, a reason code per entry.
public struct RevocationList: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Hashable {
        public var serial: Certificate.SerialNumber
        public var revocationDate: Date
        /// RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded,
        /// 5 cessationOfOperation, 6 certificateHold).
        public var reason: Int?

        public init(serial: Certificate.SerialNumber, revocationDate: Date, reason: Int?) {
            self.serial = serial
            self.revocationDate = revocationDate
            self.reason = reason
        }
    }

    public var issuer: DistinguishedName
    public var thisUpdate: Date
    public var nextUpdate: Date?
    public var crlNumber: UInt64
    public var authorityKeyID: ArraySlice<UInt8>?
    public var entries: [Entry]
    public var signatureAlgorithm: Certificate.SignatureAlgorithm = .ecdsaWithSHA384
    /// Set by `parse`: the exact signed bytes and the signature.
    public private(set) var tbsBytes: ArraySlice<UInt8> = []
    public private(set) var signatureBytes: ArraySlice<UInt8> = []

    public init(
        issuer: DistinguishedName, thisUpdate: Date, nextUpdate: Date?, crlNumber: UInt64,
        authorityKeyID: ArraySlice<UInt8>?, entries: [Entry]
    ) {
        self.issuer = issuer
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.crlNumber = crlNumber
        self.authorityKeyID = authorityKeyID
        self.entries = entries
    }

    public var revokedSerials: Set<Certificate.SerialNumber> { Set(entries.map(\.serial)) }

    enum OID {
        static let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
        static let ecdsaWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 3]
        static let crlNumber: ASN1ObjectIdentifier = [2, 5, 29, 20]
        static let reasonCode: ASN1ObjectIdentifier = [2, 5, 29, 21]
    }

    public enum Failure: Error, CustomStringConvertible {
        case malformed(String)
        case wrongIssuer
        case badSignature
        case stale(nextUpdate: Date)

        public var description: String {
            switch self {
            case .malformed(let m): return "CRL does not parse: \(m)"
            case .wrongIssuer: return "CRL was not issued by this CA"
            case .badSignature: return "CRL signature does not verify"
            case .stale(let d): return "CRL expired at \(d) (nextUpdate passed)"
            }
        }
    }

    // MARK: Encoding

    func tbsDER() throws -> [UInt8] {
        var c = DER.Serializer()
        try c.appendConstructedNode(identifier: .sequence) { c in
            try c.serialize(Int(1))  // v2
            try Self.serializeAlgorithm(try Self.algorithmOID(signatureAlgorithm), into: &c)
            try c.serialize(issuer)
            try Self.serializeTime(thisUpdate, into: &c)
            if let nextUpdate { try Self.serializeTime(nextUpdate, into: &c) }
            if !entries.isEmpty {  // RFC 5280: omitted, not empty, when nothing is revoked
                try c.appendConstructedNode(identifier: .sequence) { c in
                    for e in entries {
                        try c.appendConstructedNode(identifier: .sequence) { c in
                            try c.serialize(e.serial.bytes)
                            try Self.serializeTime(e.revocationDate, into: &c)
                            if let reason = e.reason {
                                var v = DER.Serializer()
                                try reason.serialize(into: &v, withIdentifier: .enumerated)
                                try c.serializeSequenceOf([
                                    Certificate.Extension(
                                        oid: OID.reasonCode, critical: false, value: v.serializedBytes[...])
                                ])
                            }
                        }
                    }
                }
            }
            var extensions = [Certificate.Extension]()
            if let authorityKeyID {
                extensions.append(try AuthorityKeyIdentifier(keyIdentifier: authorityKeyID).makeCertificateExtension())
            }
            var n = DER.Serializer()
            try n.serialize(crlNumber)
            extensions.append(Certificate.Extension(oid: OID.crlNumber, critical: false, value: n.serializedBytes[...]))
            try c.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { c in
                try c.serializeSequenceOf(extensions)
            }
        }
        return c.serializedBytes
    }

    /// The signed CRL in DER.
    public func signedDER(key: P384.Signing.PrivateKey) throws -> [UInt8] {
        let tbs = try tbsDER()
        let signature = try Certificate.PrivateKey(key).sign(bytes: tbs, signatureAlgorithm: signatureAlgorithm)
            .rawRepresentation
        var c = DER.Serializer()
        try c.appendConstructedNode(identifier: .sequence) { c in
            c.serializeRawBytes(tbs)
            try Self.serializeAlgorithm(try Self.algorithmOID(signatureAlgorithm), into: &c)
            try c.serialize(ASN1BitString(bytes: signature[...]))
        }
        return c.serializedBytes
    }

    public static func pem(der: [UInt8]) -> String { PEMDocument(type: "X509 CRL", derBytes: der).pemString }

    // MARK: Parsing

    /// Parses a DER or PEM CRL. Does not check the signature: call `verify(issuedBy:)`.
    public static func parse(_ bytes: [UInt8]) throws -> RevocationList {
        let der = try derBytes(bytes)
        do { return try parseDER(der) } catch let f as Failure { throw f } catch { throw Failure.malformed("\(error)") }
    }

    /// The DER of a CRL given as PEM ("X509 CRL") or already as DER.
    public static func derBytes(_ bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.starts(with: Array("-----BEGIN".utf8)) else { return bytes }
        do {
            let doc = try PEMDocument(pemString: String(decoding: bytes, as: UTF8.self))
            guard doc.discriminator == "X509 CRL" else {
                throw Failure.malformed("PEM block is \(doc.discriminator), not X509 CRL")
            }
            return doc.derBytes
        } catch let f as Failure { throw f } catch { throw Failure.malformed("\(error)") }
    }

    private static func parseDER(_ der: [UInt8]) throws -> RevocationList {
        try DER.sequence(try DER.parse(der), identifier: .sequence) { outer in
            guard let tbsNode = outer.next(), let algNode = outer.next(), let sigNode = outer.next() else {
                throw Failure.malformed("CertificateList needs three elements")
            }
            let outerAlg = try parseAlgorithm(algNode)
            let signature = try ASN1BitString(derEncoded: sigNode)
            var list = try DER.sequence(tbsNode, identifier: .sequence) { n -> RevocationList in
                var peek = n
                if let first = peek.next(), first.identifier == .integer {
                    guard try Int(derEncoded: first) == 1 else { throw Failure.malformed("not a v2 CRL") }
                    n = peek
                }
                guard let a = n.next(), let iss = n.next(), let tu = n.next() else {
                    throw Failure.malformed("truncated TBSCertList")
                }
                guard try parseAlgorithm(a) == outerAlg else {
                    throw Failure.malformed("inner and outer signature algorithms differ")
                }
                let issuer = try DistinguishedName(derEncoded: iss)
                let thisUpdate = try parseTime(tu)
                var nextUpdate: Date?
                var entries = [Entry]()
                var number: UInt64 = 0
                var akid: ArraySlice<UInt8>?
                var node = n.next()
                if let t = node, t.identifier == .utcTime || t.identifier == .generalizedTime {
                    nextUpdate = try parseTime(t)
                    node = n.next()
                }
                if let s = node, s.identifier == .sequence {
                    guard case .constructed(let children) = s.content else {
                        throw Failure.malformed("revokedCertificates")
                    }
                    for e in children { entries.append(try parseEntry(e)) }
                    node = n.next()
                }
                if let x = node {
                    let exts = try DER.explicitlyTagged(x, tagNumber: 0, tagClass: .contextSpecific) {
                        try DER.sequence(of: Certificate.Extension.self, identifier: .sequence, rootNode: $0)
                    }
                    for ext in exts {
                        switch ext.oid {
                        case OID.crlNumber: number = try UInt64(derEncoded: ext.value)
                        case .X509ExtensionID.authorityKeyIdentifier:
                            akid = try AuthorityKeyIdentifier(ext).keyIdentifier
                        default: if ext.critical { throw Failure.malformed("unknown critical extension \(ext.oid)") }
                        }
                    }
                }
                return RevocationList(
                    issuer: issuer, thisUpdate: thisUpdate, nextUpdate: nextUpdate, crlNumber: number,
                    authorityKeyID: akid, entries: entries)
            }
            list.signatureAlgorithm = outerAlg == OID.ecdsaWithSHA384 ? .ecdsaWithSHA384 : .ecdsaWithSHA256
            list.tbsBytes = tbsNode.encodedBytes
            list.signatureBytes = signature.bytes
            return list
        }
    }

    /// Checks issuer, signature and freshness against the CA certificate.
    public func verify(issuedBy ca: Certificate, at now: Date = Date()) throws {
        guard issuer == ca.subject else { throw Failure.wrongIssuer }
        guard ca.publicKey.isValidSignature(signatureBytes, for: tbsBytes, signatureAlgorithm: signatureAlgorithm)
        else { throw Failure.badSignature }
        if let nextUpdate, nextUpdate <= now { throw Failure.stale(nextUpdate: nextUpdate) }
    }

    // MARK: Helpers

    private static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    private static func serializeTime(_ date: Date, into c: inout DER.Serializer) throws {
        let d = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        if (1950..<2050).contains(d.year!) {
            try c.serialize(
                UTCTime(
                    year: d.year!, month: d.month!, day: d.day!, hours: d.hour!, minutes: d.minute!, seconds: d.second!)
            )
        } else {
            try c.serialize(
                GeneralizedTime(
                    year: d.year!, month: d.month!, day: d.day!, hours: d.hour!, minutes: d.minute!, seconds: d.second!,
                    fractionalSeconds: 0))
        }
    }

    private static func parseTime(_ node: ASN1Node) throws -> Date {
        let dc: DateComponents
        switch node.identifier {
        case .utcTime:
            let t = try UTCTime(derEncoded: node)
            dc = DateComponents(
                year: t.year, month: t.month, day: t.day, hour: t.hours, minute: t.minutes, second: t.seconds)
        case .generalizedTime:
            let t = try GeneralizedTime(derEncoded: node)
            dc = DateComponents(
                year: t.year, month: t.month, day: t.day, hour: t.hours, minute: t.minutes, second: t.seconds)
        default:
            throw Failure.malformed("unexpected time type")
        }
        guard let date = utc.date(from: dc) else { throw Failure.malformed("bad time") }
        return date
    }

    private static func algorithmOID(_ alg: Certificate.SignatureAlgorithm) throws -> ASN1ObjectIdentifier {
        switch alg {
        case .ecdsaWithSHA256: return OID.ecdsaWithSHA256
        case .ecdsaWithSHA384: return OID.ecdsaWithSHA384
        default: throw Failure.malformed("unsupported signature algorithm \(alg)")
        }
    }

    private static func serializeAlgorithm(_ oid: ASN1ObjectIdentifier, into c: inout DER.Serializer) throws {
        try c.appendConstructedNode(identifier: .sequence) { c in try c.serialize(oid) }
    }

    private static func parseAlgorithm(_ node: ASN1Node) throws -> ASN1ObjectIdentifier {
        try DER.sequence(node, identifier: .sequence) { n in
            let oid = try ASN1ObjectIdentifier(derEncoded: &n)
            _ = n.next()
            return oid
        }
    }

    private static func parseEntry(_ node: ASN1Node) throws -> Entry {
        try DER.sequence(node, identifier: .sequence) { f in
            let serial = try ArraySlice<UInt8>(derEncoded: &f)
            guard let t = f.next() else { throw Failure.malformed("entry without revocation date") }
            let date = try parseTime(t)
            var reason: Int?
            if let extsNode = f.next() {
                let exts = try DER.sequence(of: Certificate.Extension.self, identifier: .sequence, rootNode: extsNode)
                if let r = exts.first(where: { $0.oid == OID.reasonCode }) {
                    reason = try Int(derEncoded: try DER.parse(r.value), withIdentifier: .enumerated)
                }
            }
            return Entry(serial: Certificate.SerialNumber(bytes: serial), revocationDate: date, reason: reason)
        }
    }
}
