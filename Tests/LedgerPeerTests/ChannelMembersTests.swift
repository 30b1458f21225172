import Crypto
import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerProtos
import Testing
import X509

/// `ChannelMembers` remembers the certificates it has checked; what depends on the time or on the channel's
/// CRL is still decided on every use, and a refusal is never remembered as an admission.
@Suite struct ChannelMembersTests {
    func identity(_ org: String, certificatePEM: String) throws -> Data {
        var id = Medledger_SerializedIdentity()
        id.mspID = org
        id.idBytes = Data(certificatePEM.utf8)
        return try id.serializedBytes()
    }

    @Test func aRememberedIdentityIsCheckedForItsTimeOnEveryUse() throws {
        let f = try ChannelFixture()
        let members = f.channel.context.members
        let doctor = Data(f.aDoctor.serialized)
        #expect(try members.verify(serializedIdentity: doctor, at: f.now).org == "hospital-a")
        // Issued an hour before `now` for a day.
        let late = #expect(throws: MemberRejection.self) {
            try members.verify(serializedIdentity: doctor, at: f.now.addingTimeInterval(86_400))
        }
        #expect(late?.description.contains("expired at") == true)
        let early = #expect(throws: MemberRejection.self) {
            try members.verify(serializedIdentity: doctor, at: f.now.addingTimeInterval(-7_200))
        }
        #expect(early?.description.contains("is not valid before") == true)
        #expect(try members.verify(serializedIdentity: doctor, at: f.now).org == "hospital-a")
    }

    @Test func anIdentityClaimingAnotherOrganisationIsRefusedEveryTime() throws {
        let f = try ChannelFixture()
        let members = f.channel.context.members
        let claimed = try identity("hospital-b", certificatePEM: f.aDoctor.certificatePEM)
        for _ in 0..<2 {
            #expect(throws: MemberRejection.self) { try members.verify(serializedIdentity: claimed, at: f.now) }
        }
        // Its certificate, under its own organisation, is admitted; the false claim still is not.
        let honest = try identity("hospital-a", certificatePEM: f.aDoctor.certificatePEM)
        #expect(try members.verify(serializedIdentity: honest, at: f.now).org == "hospital-a")
        let error = #expect(throws: MemberRejection.self) {
            try members.verify(serializedIdentity: claimed, at: f.now)
        }
        #expect(error?.description.contains("claims organisation \"hospital-b\"") == true)
    }

    @Test func aRevokedIdentityIsRefusedOnEveryUse() throws {
        let f = try ChannelFixture()
        let crl = try f.crl(1, revoking: [f.aDoctor])
        var config = f.config
        for i in config.organizations.indices where config.organizations[i].id == "hospital-a" {
            config.organizations[i].crl = Data(crl.der)
        }
        let members = try ChannelMembers(config: config)
        for _ in 0..<2 {
            let error = #expect(throws: MemberRejection.self) {
                try members.verify(serializedIdentity: Data(f.aDoctor.serialized), at: f.now)
            }
            #expect(error?.description.contains("is revoked") == true)
        }
        #expect(try members.verify(serializedIdentity: Data(f.aNode.serialized), at: f.now).org == "hospital-a")
    }

    /// The PEM parser takes any text before the block, so one certificate has endless texts; a caller
    /// sending new ones must not cost a P-384 chain check each, nor push out what was checked.
    @Test func anotherTextOfACheckedCertificateIsNotCheckedAgainstItsRootAgain() throws {
        let f = try ChannelFixture()
        let members = try ChannelMembers(config: f.config)
        let pem = f.aDoctor.certificatePEM
        let first = try members.verify(certificatePEM: Data(pem.utf8), at: f.now)
        #expect(members.chainCheckCount == 1)
        for i in 0..<3 {
            let variant = "variant \(i)\n" + pem
            let member = try members.verify(certificatePEM: Data(variant.utf8), at: f.now)
            #expect(member.identity.certificatePEM == variant)
            #expect(member.identity.pid == first.identity.pid && member.serialHex == first.serialHex)
        }
        #expect(try members.verify(certificatePEM: Data(pem.utf8), at: f.now).identity.certificatePEM == pem)
        #expect(members.chainCheckCount == 1)
        // A new text is still judged for its time on every use.
        let late = #expect(throws: MemberRejection.self) {
            try members.verify(certificatePEM: Data(("late\n" + pem).utf8), at: f.now.addingTimeInterval(86_400))
        }
        #expect(late?.description.contains("expired at") == true)
        _ = try members.verify(certificatePEM: Data(f.aNode.certificatePEM.utf8), at: f.now)
        #expect(members.chainCheckCount == 2)
    }

    @Test func aCertificateThatDoesNotChainIsCheckedAndRefusedEveryTime() throws {
        let f = try ChannelFixture()
        let members = try ChannelMembers(config: f.config)
        let otherKey = P384.Signing.PrivateKey()
        let otherRoot = try CertificateFactory.selfSignedRoot(
            key: otherKey, name: try DistinguishedName { CommonName("Other Root") }, validity: 86_400,
            now: f.now.addingTimeInterval(-3600))
        let key = P256.Signing.PrivateKey()
        let outsider = try CertificateFactory.issue(
            publicKey: .init(key.publicKey),
            identity: IdentityAttributes(pid: "outsider", org: "hospital-a", role: "doctor"),
            purpose: .signing, issuer: otherRoot, issuerKey: otherKey, validity: 86_400,
            now: f.now.addingTimeInterval(-3600))
        for text in [outsider.pem, "again\n" + outsider.pem, outsider.pem] {
            let error = #expect(throws: MemberRejection.self) {
                try members.verify(certificatePEM: Data(text.utf8), at: f.now)
            }
            #expect(error?.description.contains("does not chain") == true)
        }
        #expect(members.chainCheckCount == 3)
    }
}
