import Crypto
import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerProtos
import Testing
import X509

@testable import LedgerClient

/// What a gateway's endorser stream sends: a message of several proposals signed once for all, a
/// message of one with the proposal's own signature, made once for every peer it goes to.
@Suite struct ProposalSignerTests {
    static func identity() throws -> SigningIdentity {
        let now = Date()
        let rootKey = P384.Signing.PrivateKey()
        let root = try CertificateFactory.selfSignedRoot(
            key: rootKey, name: try DistinguishedName { CommonName("Test Root") }, validity: 86_400,
            now: now.addingTimeInterval(-60))
        let key = P256.Signing.PrivateKey()
        let cert = try CertificateFactory.issue(
            publicKey: .init(key.publicKey),
            identity: IdentityAttributes(pid: "P-test", org: "hospital-a", role: "doctor"),
            purpose: .signing, issuer: root, issuerKey: rootKey, validity: 86_400, now: now.addingTimeInterval(-60))
        return try SigningIdentity(org: "hospital-a", certificatePEM: cert.pem, key: key)
    }

    static func proposals(_ n: Int, _ id: SigningIdentity) throws -> [Medledger_SignedProposal] {
        try (0..<n).map { i in
            try TransactionBuilder.proposal(
                channel: "records", chaincode: "kv", function: "put", args: [Array("k\(i)".utf8)], signer: id,
                at: Date(), signAlone: false
            ).signed
        }
    }

    static func verifies(_ der: Data, _ message: some DataProtocol, _ id: SigningIdentity) throws -> Bool {
        id.key.publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message)
    }

    @Test func severalProposalsGoWithOneSignatureForTheBatch() throws {
        let id = try Self.identity()
        let signer = ProposalSigner(id)
        let m = try signer.message(try Self.proposals(3, id))
        #expect(m.proposals.count == 3 && m.proposals.allSatisfy { $0.signature.isEmpty })
        #expect(try Self.verifies(m.batchSignature, ProposalBatchSigning.message(m.proposals), id))
        #expect(signer.rememberedCount == 0)
    }

    @Test func oneProposalGoesWithItsOwnSignatureMadeOnceForEveryStream() throws {
        let id = try Self.identity()
        let signer = ProposalSigner(id)
        let p = try Self.proposals(1, id)
        let first = try signer.message(p)
        #expect(first.batchSignature.isEmpty)
        #expect(try Self.verifies(first.proposals[0].signature, first.proposals[0].proposalBytes, id))
        // ECDSA signatures are randomised: the same bytes again means the signature was remembered.
        let second = try signer.message(p)
        #expect(second.proposals[0].signature == first.proposals[0].signature)
        let other = try signer.message(try Self.proposals(1, id))
        #expect(other.proposals[0].signature != first.proposals[0].signature)
        #expect(try Self.verifies(other.proposals[0].signature, other.proposals[0].proposalBytes, id))
    }

    @Test func theMemoryOfSignaturesIsBounded() throws {
        let id = try Self.identity()
        let signer = ProposalSigner(id)
        for p in try Self.proposals(ProposalSigner.recentMax + 50, id) { _ = try signer.message([p]) }
        #expect(signer.rememberedCount == ProposalSigner.recentMax)
    }
}
