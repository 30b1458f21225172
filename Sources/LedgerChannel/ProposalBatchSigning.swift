import Crypto
import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import Synchronization

/// One creator signature over a batch of proposals (docs/LEDGER_FORMATS.md §4.1). A proposal's
/// signature only admits it to an endorser and never goes on chain (the envelope's does), so a client
/// that sends several proposals in one stream message may sign them together: the endorser checks
/// one signature for the batch instead of one per proposal. The signed message commits to every
/// proposal's exact bytes and their order:
///
///     "medledger/proposal-batch/v1\n" ‖ SHA-256(proposal_bytes₁) ‖ … ‖ SHA-256(proposal_bytesₙ)
///
/// The domain string keeps it from ever being taken for a single proposal's signature (a serialized
/// `Proposal` starts with a protobuf tag, never with "m"), or for any other message of §4.
public enum ProposalBatchSigning {
    public static let domain = Array("medledger/proposal-batch/v1\n".utf8)

    /// The bytes the batch signature covers.
    public static func message(_ proposals: [Medledger_SignedProposal]) -> [UInt8] {
        var m = domain
        m.reserveCapacity(domain.count + proposals.count * SHA256.byteCount)
        for p in proposals { m.append(contentsOf: SHA256.hash(data: p.proposalBytes)) }
        return m
    }

    /// `proposals` as one batch signed by `signer`: their own signatures cleared, one for all.
    public static func sign(
        _ proposals: [Medledger_SignedProposal], signer: SigningIdentity
    ) throws -> Medledger_SignedProposalBatch {
        var batch = Medledger_SignedProposalBatch()
        batch.proposals = proposals.map { p in
            var unsigned = p
            unsigned.signature = Data()
            return unsigned
        }
        batch.batchSignature = Data(try signer.sign(message(batch.proposals)))
        return batch
    }
}

/// A received batch's signature, checked at most once per creator however many of the batch's
/// proposals (and tasks working on them) ask. Lives as long as the batch is worked on.
public final class ProposalBatchSignature: Sendable {
    let message: [UInt8]
    let signature: Data
    /// Creator identity bytes → whether the batch signature verifies under that creator's key.
    private let verdicts = Mutex(Verdicts())

    /// A batch holds at most a stream message's proposals, so `byCreator` stays small; keyed like the
    /// other identity caches (`WholeBytesKey`), so that creators alike in their first bytes hash
    /// apart. A batch nearly always has one creator: `last` answers it by comparing the bytes, without
    /// hashing a kilobyte of certificate for every proposal.
    struct Verdicts {
        var last: (creator: Data, verdict: Bool)?
        var byCreator: [WholeBytesKey: Bool] = [:]
    }

    public init(_ batch: Medledger_SignedProposalBatch) {
        message = ProposalBatchSigning.message(batch.proposals)
        signature = batch.batchSignature
    }

    /// True when `creator` (the member the proposal's `signature_header.creator` names) signed this
    /// batch. The lock is held while verifying, so a second task with the same creator waits for the
    /// first's answer (one verification, about 25 µs here) instead of verifying again; a batch nearly
    /// always has one creator, so waiting on another creator's verification is rare.
    public func isSigned(by creator: VerifiedMember, creatorBytes: Data) -> Bool {
        verdicts.withLock { v in
            if let last = v.last, last.creator == creatorBytes { return last.verdict }
            let key = WholeBytesKey(creatorBytes)
            let verdict: Bool
            if let known = v.byCreator[key] {
                verdict = known
            } else {
                verdict = creator.isValidSignature(signature, for: message)
                v.byCreator[key] = verdict
            }
            v.last = (creatorBytes, verdict)
            return verdict
        }
    }
}
