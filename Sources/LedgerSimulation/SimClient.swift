import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
import LedgerStorage

/// One chaincode call a client is asked to make. The world chooses (`SimWorkload`); the client
/// carries it out.
struct SimIntent {
    enum Kind: String {
        /// kv put: a blind write.
        case put
        /// counter add: read-modify-write, so concurrent adds of a key conflict.
        case add
        /// medrecords createTreatment by a hospital's management node.
        case treatment
        /// medrecords putIndexRecord: a P_DE signed by the treatment's patient and doctor.
        case record
    }

    var kind: Kind
    var chaincode: String
    var function: String
    var args: [[UInt8]]
    var counterKey: String?
    /// For a P_DE: the treatment (its position in the world's list).
    var treatment: Int?
    /// For a treatment: its patient and doctor (positions in the cast).
    var patient: Int?
    var doctor: Int?
}

/// What happened to one client operation, as the referee needs it.
struct SimOperation {
    var client: Int
    var txID: String
    var intent: SimIntent
    /// The orderer answered success: the envelope is in a durable block.
    var ordererAcknowledged = false
    /// The client's peer reported it committed, with this location.
    var committed: TxLocation?
    /// The chaincode's answer the endorsers agreed on.
    var answer: [UInt8] = []
    var abandoned: String?
}

/// A client writing the way the gateway does: propose, ask every peer to endorse and take the first
/// `needed` answers that agree, assemble, broadcast (again on silence, the same envelope), then ask
/// its peer for the commit status until it is committed.
final class SimClient {
    enum Phase {
        case idle
        case endorsing(
            op: Int, proposal: TransactionBuilder.Proposal, answers: [Int: Medledger_ProposalResponse],
            refused: Set<Int>, since: Int64)
        case ordering(op: Int, envelope: [UInt8], sentAt: Int64, tries: Int)
        case awaitingCommit(op: Int, txID: String, envelope: [UInt8], askedAt: Int64, since: Int64)
    }

    let index: Int
    let identity: SigningIdentity
    let home: Int
    private(set) var phase = Phase.idle
    static let answerPatienceMs: Int64 = 200
    static let statusEveryMs: Int64 = 20
    /// A 409 from the orderer ("already being ordered") may be an envelope that a crash then lost:
    /// after this long without a commit the envelope is broadcast again.
    static let commitPatienceMs: Int64 = 1_500

    init(index: Int, identity: SigningIdentity, home: Int) {
        self.index = index
        self.identity = identity
        self.home = home
    }

    var isIdle: Bool { if case .idle = phase { return true } else { return false } }

    /// Proposes `intent` to every peer.
    func start(
        op: Int, intent: SimIntent, peers: Int, now: Date, ms: Int64, random: inout SimRandom
    ) throws -> (SimOperation, [Outgoing]) {
        let proposal = try TransactionBuilder.proposal(
            channel: SimCast.channel, chaincode: intent.chaincode, function: intent.function, args: intent.args,
            signer: identity, at: now, nonce: random.bytes(24))
        phase = .endorsing(op: op, proposal: proposal, answers: [:], refused: [], since: ms)
        let operation = SimOperation(client: index, txID: proposal.txID, intent: intent)
        return (operation, (0..<peers).map { (.peer($0), .endorse(op: op, proposal: proposal.signed)) })
    }

    /// Outcome of handling a message or a tick, for the referee.
    enum Event {
        case none
        case abandoned(op: Int, why: String)
        /// Endorsed and sent for ordering, with the chaincode's agreed answer.
        case assembled(op: Int, answer: [UInt8])
        case acknowledged(op: Int)
        case committed(op: Int, TxLocation)
    }

    func endorsed(
        op: Int, peer: Int, answer: Result<Medledger_ProposalResponse, ProposalRejection>, needed: Int, peers: Int,
        ms: Int64
    ) -> (Event, [Outgoing]) {
        guard case .endorsing(let current, let proposal, var answers, var refused, let since) = phase, current == op,
            answers[peer] == nil, !refused.contains(peer)
        else {
            return (.none, [])
        }
        if case .success(let r) = answer, r.response.status == 200 {
            answers[peer] = r
        } else {
            refused.insert(peer)
        }
        // The first `needed` answers with one payload (peers at different heights may differ).
        let agreeing = answers.keys.sorted().map { answers[$0]! }
            .reduce(into: [[Medledger_ProposalResponse]]()) { groups, r in
                if let i = groups.firstIndex(where: { $0[0].payload == r.payload }) {
                    groups[i].append(r)
                } else {
                    groups.append([r])
                }
            }
            .first { $0.count >= needed }
        guard let responses = agreeing else {
            phase = .endorsing(op: op, proposal: proposal, answers: answers, refused: refused, since: since)
            guard answers.count + refused.count == peers else { return (.none, []) }
            phase = .idle
            return (
                .abandoned(op: op, why: refused.count > peers - needed ? "endorsement refused" : "endorsers disagree"),
                []
            )
        }
        let chosen = Array(responses.prefix(needed))
        guard
            let envelope = try? TransactionBuilder.envelope(proposal, responses: chosen, signer: identity)
                .serializedBytes() as [UInt8]
        else {
            phase = .idle
            return (.abandoned(op: op, why: "cannot assemble"), [])
        }
        phase = .ordering(op: op, envelope: envelope, sentAt: ms, tries: 1)
        return (
            .assembled(op: op, answer: [UInt8](chosen[0].response.payload)),
            [(.orderer, .broadcast(op: op, envelope: envelope))]
        )
    }

    func broadcastAnswer(op: Int, refusal: OrderingRejection?, txID: String, ms: Int64) -> (Event, [Outgoing]) {
        guard case .ordering(let current, let envelope, _, let tries) = phase, current == op else { return (.none, []) }
        switch refusal?.status {
        case nil:
            phase = .awaitingCommit(op: op, txID: txID, envelope: envelope, askedAt: ms, since: ms)
            return (.acknowledged(op: op), [(.peer(home), .status(op: op, txID: txID))])
        case 409:
            // Ordered already (an earlier copy got in) or being ordered: wait for the commit.
            phase = .awaitingCommit(op: op, txID: txID, envelope: envelope, askedAt: ms, since: ms)
            return (.none, [(.peer(home), .status(op: op, txID: txID))])
        case 503 where tries < 5:
            phase = .ordering(op: op, envelope: envelope, sentAt: ms, tries: tries + 1)
            return (.none, [])
        default:
            phase = .idle
            return (.abandoned(op: op, why: "orderer refused: \(refusal!.status)"), [])
        }
    }

    func statusAnswer(op: Int, location: TxLocation?) -> Event {
        guard case .awaitingCommit(let current, _, _, _, _) = phase, current == op, let location else { return .none }
        phase = .idle
        return .committed(op: op, location)
    }

    /// The timer: resend what went unanswered. Endorsements are not retried (the op is dropped, as a
    /// user would see an error); envelopes are, the same bytes, as the gateway's failover does.
    func tick(ms: Int64) -> (Event, [Outgoing]) {
        switch phase {
        case .idle: return (.none, [])
        case .endorsing(let op, _, _, _, let since):
            guard ms - since > Self.answerPatienceMs else { return (.none, []) }
            phase = .idle
            return (.abandoned(op: op, why: "endorsement timed out"), [])
        case .ordering(let op, let envelope, let sentAt, let tries):
            guard ms - sentAt > Self.answerPatienceMs else { return (.none, []) }
            phase = .ordering(op: op, envelope: envelope, sentAt: ms, tries: tries + 1)
            return (.none, [(.orderer, .broadcast(op: op, envelope: envelope))])
        case .awaitingCommit(let op, let txID, let envelope, let askedAt, let since):
            if ms - since > Self.commitPatienceMs {
                phase = .ordering(op: op, envelope: envelope, sentAt: ms, tries: 1)
                return (.none, [(.orderer, .broadcast(op: op, envelope: envelope))])
            }
            guard ms - askedAt >= Self.statusEveryMs else { return (.none, []) }
            phase = .awaitingCommit(op: op, txID: txID, envelope: envelope, askedAt: ms, since: since)
            return (.none, [(.peer(home), .status(op: op, txID: txID))])
        }
    }
}
