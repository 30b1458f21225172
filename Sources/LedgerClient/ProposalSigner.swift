import Crypto
import DequeModule
import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerProtos
import Synchronization

/// Signs what a gateway's endorser streams send: a message of several proposals with one signature
/// for the batch (`ProposalBatchSigning`), a message of one proposal with that proposal's own
/// signature. A proposal alone is the common case at low load, and a policy that needs several
/// organisations sends the same proposal to each of their peers on separate streams: its own
/// signature is made once and remembered for the other streams, where a batch signature would be made
/// again for each.
final class ProposalSigner: Sendable {
    let identity: SigningIdentity
    /// The latest proposals signed alone, by the SHA-256 of their bytes; a few seconds' worth at most.
    private let recent = Mutex(Recent())
    static let recentMax = 1_024

    private struct Recent {
        var signatures: [SHA256Digest: Data] = [:]
        var order = Deque<SHA256Digest>()
    }

    /// Why a stream's message could not be signed: the client's fault, not the node's.
    struct Failure: Error, CustomStringConvertible {
        var cause: any Error
        var description: String { "this client could not sign its proposals: \(cause)" }
    }

    init(_ identity: SigningIdentity) { self.identity = identity }

    /// The stream message for `proposals`, which this client made unsigned.
    func message(_ proposals: [Medledger_SignedProposal]) throws -> Medledger_SignedProposalBatch {
        do {
            guard proposals.count == 1 else { return try ProposalBatchSigning.sign(proposals, signer: identity) }
            var alone = proposals[0]
            alone.signature = try signatureAlone(alone.proposalBytes)
            var m = Medledger_SignedProposalBatch()
            m.proposals = [alone]
            return m
        } catch {
            throw Failure(cause: error)
        }
    }

    /// How many signatures made alone are remembered now.
    var rememberedCount: Int { recent.withLock { $0.signatures.count } }

    func signatureAlone(_ proposalBytes: Data) throws -> Data {
        let digest = SHA256.hash(data: proposalBytes)
        if let known = recent.withLock({ $0.signatures[digest] }) { return known }
        let signature = Data(try identity.sign(digest: digest))
        recent.withLock { r in
            guard r.signatures.updateValue(signature, forKey: digest) == nil else { return }
            r.order.append(digest)
            if r.order.count > Self.recentMax { r.signatures[r.order.removeFirst()] = nil }
        }
        return signature
    }
}
