import Crypto
import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerPeer
import LedgerProtos
import Synchronization
import Testing

/// One creator signature over a batch of proposals (LEDGER_FORMATS §4.1): it admits exactly the
/// proposals it was made over, of the creator who made it, and nothing else.
@Suite struct ProposalBatchSigningTests {
    func proposals(_ f: ChannelFixture, _ n: Int, signer: SigningIdentity? = nil) throws -> [Medledger_SignedProposal] {
        try (0..<n).map { i in
            try TransactionBuilder.proposal(
                channel: "records", chaincode: "kv", function: "put", args: [Array("k\(i)".utf8), Array("v".utf8)],
                signer: signer ?? f.aDoctor, at: f.now, signAlone: false
            ).signed
        }
    }

    /// Each proposal's status when endorsed as part of `batch` (with its refusal's message), the
    /// proposals worked on at once, as the stream's parallel map does, sharing one batch signature.
    func outcomes(
        _ f: ChannelFixture, _ batch: Medledger_SignedProposalBatch, endorser: Endorser? = nil
    ) -> [(status: Int32, message: String)] {
        let shared = ProposalBatchSignature(batch)
        let endorser = endorser ?? f.endorserA
        let results = Mutex([(Int32, String)](repeating: (-1, ""), count: batch.proposals.count))
        DispatchQueue.concurrentPerform(iterations: batch.proposals.count) { i in
            let outcome: (Int32, String)
            do {
                let r = try endorser.process(
                    try ParsedProposal(batch.proposals[i], batchSignature: shared), context: f.channel.context,
                    state: f.channel.ledger.state, now: f.now
                ) { _ in false }
                outcome = (r.response.status, r.hasEndorsement ? "endorsed" : "answered")
            } catch let e as ProposalRejection { outcome = (e.status, e.message) } catch { outcome = (-1, "\(error)") }
            results.withLock { $0[i] = outcome }
        }
        return results.withLock { $0 }.map { (status: $0.0, message: $0.1) }
    }

    func statuses(_ f: ChannelFixture, _ batch: Medledger_SignedProposalBatch) -> [Int32] {
        outcomes(f, batch).map(\.status)
    }

    @Test func aSignedBatchAdmitsEachOfItsProposals() throws {
        let f = try ChannelFixture()
        let batch = try ProposalBatchSigning.sign(try proposals(f, 5), signer: f.aDoctor)
        #expect(batch.proposals.allSatisfy { $0.signature.isEmpty })
        #expect(statuses(f, batch) == [200, 200, 200, 200, 200])
        // The message is the domain and each proposal's SHA-256, in order; the signature is the
        // creator's over it, as any P-256 verifier checks it.
        var message = Array("medledger/proposal-batch/v1\n".utf8)
        for p in batch.proposals { message += SHA256.hash(data: p.proposalBytes) }
        #expect(ProposalBatchSigning.message(batch.proposals) == message)
        let key = f.aDoctor.key.publicKey
        let sig = try P256.Signing.ECDSASignature(derRepresentation: batch.batchSignature)
        #expect(key.isValidSignature(sig, for: message))
    }

    @Test func anyChangeToTheBatchIsRefusedForEveryProposal() throws {
        let f = try ChannelFixture()
        let batch = try ProposalBatchSigning.sign(try proposals(f, 4), signer: f.aDoctor)

        // The last byte is the last argument's ("v" becomes "w"): the proposal still parses.
        var tampered = batch
        tampered.proposals[2].proposalBytes[tampered.proposals[2].proposalBytes.count - 1] ^= 1
        #expect(statuses(f, tampered) == [401, 401, 401, 401])
        #expect(outcomes(f, tampered).allSatisfy { $0.message.contains("batch signature does not verify") })

        var reordered = batch
        reordered.proposals.swapAt(0, 1)
        #expect(statuses(f, reordered) == [401, 401, 401, 401])

        var shorter = batch
        shorter.proposals.removeLast()
        #expect(statuses(f, shorter) == [401, 401, 401])

        var longer = batch
        longer.proposals.append(try proposals(f, 1)[0])
        #expect(statuses(f, longer) == [401, 401, 401, 401, 401])

        var flipped = batch
        flipped.batchSignature[flipped.batchSignature.count - 2] ^= 1
        #expect(statuses(f, flipped) == [401, 401, 401, 401])
    }

    @Test func theBatchSignatureCountsOnlyForItsSignersProposals() throws {
        let f = try ChannelFixture()
        // The doctor's proposals and one of the hospital administrator's, signed by the doctor: the
        // administrator's is refused, the doctor's pass.
        var mixed = try proposals(f, 2)
        mixed.insert(try proposals(f, 1, signer: f.aAdmin)[0], at: 1)
        let batch = try ProposalBatchSigning.sign(mixed, signer: f.aDoctor)
        #expect(statuses(f, batch) == [200, 401, 200])
        // Creators alternating, so that each proposal's creator differs from the one asked before
        // it (the shared verdicts remember the last creator as well as every creator).
        var alternating = try proposals(f, 3)
        for (i, p) in try proposals(f, 2, signer: f.aAdmin).enumerated() { alternating.insert(p, at: 2 * i + 1) }
        let alternatingBatch = try ProposalBatchSigning.sign(alternating, signer: f.aDoctor)
        #expect(statuses(f, alternatingBatch) == [200, 401, 200, 401, 200])
        // Signed by someone whose proposals are not in it: refused throughout.
        let stranger = try ProposalBatchSigning.sign(try proposals(f, 3), signer: f.bAdmin)
        #expect(statuses(f, stranger) == [401, 401, 401])
    }

    @Test func aProposalMayNotBringItsOwnSignatureIntoASignedBatch() throws {
        let f = try ChannelFixture()
        var batch = try ProposalBatchSigning.sign(try proposals(f, 2), signer: f.aDoctor)
        batch.proposals[0].signature = Data(try f.aDoctor.sign([UInt8](batch.proposals[0].proposalBytes)))
        #expect(statuses(f, batch) == [400, 200])
    }

    @Test func anUnsignedProposalOutsideABatchIsRefused() throws {
        let f = try ChannelFixture()
        let p = try proposals(f, 1)[0]
        #expect(p.signature.isEmpty)
        let e = try #require(throws: ProposalRejection.self) {
            try f.endorserA.process(
                try ParsedProposal(p), context: f.channel.context, state: f.channel.ledger.state, now: f.now
            ) { _ in false }
        }
        #expect(e.status == 401 && e.message == "proposal signature does not verify")
    }

    @Test func aSuspendedCreatorIsRefusedWhateverItsBatchSignature() throws {
        let f = try ChannelFixture()
        var suspending = f.endorserA
        suspending.creatorGate = { _ in "suspended on this node" }
        let batch = try ProposalBatchSigning.sign(try proposals(f, 3), signer: f.aDoctor)
        let refused = outcomes(f, batch, endorser: suspending)
        #expect(refused.map(\.status) == [401, 401, 401])
        #expect(refused.allSatisfy { $0.message.contains("suspended on this node") })
    }

    @Test func aProposalThatDoesNotParseIsRefusedAloneAndQueriesAreAnswered() throws {
        let f = try ChannelFixture()
        var mixed = try proposals(f, 3)
        mixed[1].proposalBytes = Data([0xFF, 0x01])
        mixed[2].evaluateOnly = true
        let batch = try ProposalBatchSigning.sign(mixed, signer: f.aDoctor)
        let o = outcomes(f, batch)
        #expect(o.map(\.status) == [200, 400, 200])
        #expect(o[0].message == "endorsed" && o[2].message == "answered")
    }
}
