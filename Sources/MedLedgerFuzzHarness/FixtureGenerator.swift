import Crypto
import Foundation
import LedgerChannel
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos
import SwiftASN1
import X509

/// Makes `FixtureData.swift`: the parts of the fixture that carry randomised signatures, generated
/// once with the production code (CA issuing, CRL, genesis block, Umbral) and then compiled in.
/// `MedLedgerFuzz make-fixture > Sources/MedLedgerFuzzHarness/FixtureData.swift`. Regenerating
/// invalidates the committed seed corpus: run `make-seeds` afterwards.
public enum FixtureGenerator {
    static let certificateValidity: TimeInterval = 10 * 365 * 86_400

    /// The channel `records`: sa (orderer organisation), hospital-a (with a CRL), hospital-b; every
    /// organisation trusts the SA's root, as on the real network.
    static func channelConfig(rootPEM: String, crlDER: [UInt8]) -> Medledger_ChannelConfig {
        var c = Medledger_ChannelConfig()
        c.channelID = Fixture.channel
        for (id, peers) in [("sa", [String]()), ("hospital-a", ["127.0.0.1:7051"]), ("hospital-b", ["127.0.0.1:8051"])]
        {
            var o = Medledger_OrganizationConfig()
            o.id = id
            o.rootCertificates = [Data(rootPEM.utf8)]
            if id == "hospital-a" { o.crl = Data(crlDER) }
            o.peerEndpoints = peers
            c.organizations.append(o)
        }
        c.orderer.org = "sa"
        c.orderer.endpoints = ["127.0.0.1:7050"]
        c.batch.maxMessageCount = 500
        c.batch.absoluteMaxBytes = 10 * 1024 * 1024
        c.batch.preferredMaxBytes = 2 * 1024 * 1024
        c.batch.batchTimeoutMs = 0
        for (name, policy) in [("kv", "ANY"), ("medrecords", "OR('hospital-a.node', 'hospital-b.node')")] {
            var d = Medledger_ChaincodeDefinition()
            d.name = name
            d.endorsementPolicy = policy
            c.chaincodes.append(d)
        }
        return c
    }

    public static func swiftSource() throws -> String {
        let now = Fixture.now
        let rootKey = FixtureKeys.p384("root")
        let rootName = try DistinguishedName {
            OrganizationName("sa")
            CommonName("MedLedger fuzz fixture root")
        }
        let root = try CertificateFactory.selfSignedRoot(
            key: rootKey, name: rootName, validity: certificateValidity, now: now)
        var certs = [String: String]()
        var revokedSerial: Certificate.SerialNumber?
        for spec in Fixture.memberSpecs {
            let key = FixtureKeys.p256(spec.label)
            let cert = try CertificateFactory.issue(
                publicKey: .init(key.publicKey),
                identity: IdentityAttributes(
                    pid: FixtureKeys.pid(spec.label), org: spec.org, role: RoleName.name(spec.role)!),
                purpose: .signing, issuer: root, issuerKey: rootKey, validity: certificateValidity, now: now)
            certs[spec.label] = cert.pem
            if spec.label == "a-revoked" { revokedSerial = cert.serialNumber }
        }
        let tlsKey = FixtureKeys.p256("a-peer/tls")
        let tls = try CertificateFactory.issue(
            publicKey: .init(tlsKey.publicKey),
            identity: IdentityAttributes(pid: FixtureKeys.pid("a-peer"), org: "hospital-a", role: "node"),
            purpose: .tls, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], serverAuth: true,
            issuer: root, issuerKey: rootKey, validity: certificateValidity, now: now)
        let crl = RevocationList(
            issuer: root.subject, thisUpdate: now.addingTimeInterval(-3600),
            nextUpdate: now.addingTimeInterval(7 * 86_400), crlNumber: 1,
            authorityKeyID: try root.extensions.subjectKeyIdentifier?.keyIdentifier,
            entries: [
                RevocationList.Entry(serial: revokedSerial!, revocationDate: now.addingTimeInterval(-3600), reason: 1)
            ])
        let crlDER = try crl.signedDER(key: rootKey)

        let config = channelConfig(rootPEM: root.pem, crlDER: crlDER)
        let admin = try SigningIdentity(
            org: "sa", certificatePEM: certs["sa-admin"]!, key: FixtureKeys.p256("sa-admin"))
        let genesis = try ConfigTransaction.genesisBlock(config: config, creator: admin, at: now)

        let patientSK = FixtureKeys.umbral("a-patient/encryption")
        let signer = Signer(FixtureKeys.umbral("a-patient/signing"))
        let researchSK = FixtureKeys.umbral("b-research/encryption")
        let dataKey = Array(SHA256.hash(data: Array("medledger-fuzz/data-key".utf8)))
        let (capsule, wrapped) = Umbral.encrypt(delegatingPK: patientSK.publicKey, plaintext: dataKey)
        let kfrags = try Umbral.generateKFrags(
            delegatingSK: patientSK, receivingPK: researchSK.publicKey, signer: signer, threshold: 2, shares: 3,
            signDelegatingKey: true, signReceivingKey: true)

        func literal(_ s: String) -> String {
            "\"\"\"\n" + s.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n") + "\n        \"\"\""
        }
        var out = """
            // Generated by `MedLedgerFuzz make-fixture` (FixtureGenerator.swift): test certificates, CRL, genesis
            // block and Umbral fragments of the fuzz fixture. Do not edit; regenerate, then run `make-seeds`.
            // The private keys are derived from labels in Fixture.swift: test keys, used nowhere else.

            enum FixtureData {
                static let rootCertificatePEM = \(literal(root.pem))

                static let tlsCertificatePEM = \(literal(tls.pem))

                static let certificatePEMs: [String: String] = [

            """
        for spec in Fixture.memberSpecs {
            out += "        \"\(spec.label)\": \(literal(certs[spec.label]!)),\n"
        }
        out += """
                ]

                static let crlDERHex = "\(Hex.encode(crlDER))"

                static let genesisBlockHex = "\(Hex.encode(try genesis.serializedBytes() as [UInt8]))"

                static let capsuleHex = "\(Hex.encode(capsule.toBytes()))"

                static let wrappedKeyHex = "\(Hex.encode(wrapped))"

                static let kfragHexes = [

            """
        for k in kfrags { out += "        \"\(Hex.encode(k.toBytes()))\",\n" }
        out += "    ]\n}\n"
        return out
    }
}
