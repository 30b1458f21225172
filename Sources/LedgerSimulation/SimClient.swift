import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
import LedgerStorage
import MedRecords

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
        /// The SA's administrator revokes a doctor: a CRL-only configuration update.
        case revoke
        /// medrecords grantAccess: a consent the patient signed, carried by a management node.
        case grant
        /// medrecords recordUsage: a D_UE a proxy node records under a consent it cites.
        case usage
        /// medrecords revokeAccess: the patient's signed withdrawal of a consent.
        case withdraw
    }

    var kind: Kind
    var chaincode: String
    var function: String
    var args: [[UInt8]]
    /// Inputs the endorsers see and the transaction leaves out (a P_DE's certificates).
    var transient: [String: [UInt8]] = [:]
    var counterKey: String?
    /// For a P_DE: the treatment (its position in the world's list).
    var treatment: Int?
    /// For a treatment: its patient and doctor (positions in the cast).
    var patient: Int?
    var doctor: Int?
    /// For a usage record or a withdrawal: the consent (its position in the world's list).
    var consent: Int?

    /// A `medrecords` call whose one argument is the request as JSON.
    static func medrecords(_ kind: Kind, _ function: String, _ request: some Encodable) throws -> SimIntent {
        try medrecords(kind, function, ProposalInputs.json(request))
    }

    /// A `medrecords` call with its inputs as the proposal carries them.
    static func medrecords(_ kind: Kind, _ function: String, _ inputs: ProposalInputs) -> SimIntent {
        SimIntent(
            kind: kind, chaincode: "medrecords", function: function, args: inputs.args, transient: inputs.transient)
    }
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

/// A client writing the way every gateway does: its operation is a `SubmitFlow` (the one the client
/// SDK and the node run), whose actions become simulated messages. Its home peer endorses first, the
/// others when the goal (a majority of peers) needs them; the envelope is sent again on silence (the
/// same bytes); the commit is asked of the home peer every `statusEveryMs` until it shows.
final class SimClient {
    struct Current {
        var op: Int
        var flow: SubmitFlow
        var watching = false
        var askedAt: Int64 = 0
        var acknowledged = false
        var location: TxLocation?
    }

    let index: Int
    let identity: SigningIdentity
    let home: Int
    private var current: Current?
    static let statusEveryMs: Int64 = 20
    /// Messages vanish here, so the flow is told how long to wait: an endorsement or a broadcast
    /// attempt unanswered after 200 ms is given up (the attempt sent again); a 409 or an
    /// acknowledgement not followed by the commit within 1.5 s is sent again (the orderer that held it
    /// may have crashed); the commit itself is waited for as long as the run lasts.
    static let timing = SubmitTiming(
        endorsePatienceMs: 200, attemptPatienceMs: 200, failoverMs: 2_000, resendAfterMs: 1_500,
        commitMs: Int64.max / 4)

    init(index: Int, identity: SigningIdentity, home: Int) {
        self.index = index
        self.identity = identity
        self.home = home
    }

    var isIdle: Bool { current == nil }

    /// Outcome of handling a message or a tick, for the referee.
    enum Event {
        case abandoned(op: Int, why: String)
        /// Endorsed and sent for ordering, with the chaincode's agreed answer.
        case assembled(op: Int, answer: [UInt8])
        case acknowledged(op: Int)
        case committed(op: Int, TxLocation)
    }

    /// Proposes `intent` to the home peer.
    func start(
        op: Int, intent: SimIntent, peers: Int, needed: Int, now: Date, ms: Int64, random: inout SimRandom
    ) throws -> (SimOperation, [Outgoing]) {
        let proposal = try TransactionBuilder.proposal(
            channel: SimCast.channel, chaincode: intent.chaincode, function: intent.function, args: intent.args,
            transient: intent.transient, signer: identity, at: now, nonce: random.bytes(24))
        let others = (0..<peers).filter { $0 != home }.map(String.init)
        var flow = SubmitFlow(
            proposal: proposal, signer: identity, first: String(home), others: { _ in others }, goal: .count(needed),
            endpoints: 1, timing: Self.timing)
        let actions = flow.start(nowMs: ms)
        current = Current(op: op, flow: flow)
        return (SimOperation(client: index, txID: proposal.txID, intent: intent), perform(actions, ms: ms).1)
    }

    func endorsed(
        op: Int, peer: Int, answer: Result<Medledger_ProposalResponse, ProposalRejection>, ms: Int64
    ) -> ([Event], [Outgoing]) {
        let event = SubmitFlow.Event.endorsement(
            from: String(peer), answer.mapError { SubmitFailure(Int($0.status), $0.message) })
        return handle(event, op: op, ms: ms)
    }

    func broadcastAnswer(op: Int, attempt: Int, refusal: OrderingRejection?, ms: Int64) -> ([Event], [Outgoing]) {
        var early: [Event] = []
        if refusal == nil, current?.op == op, current?.acknowledged == false {
            current?.acknowledged = true
            early.append(.acknowledged(op: op))
        }
        let (events, out) = handle(
            .ordering(attempt: attempt, refusal: refusal.map { SubmitFailure(Int($0.status), $0.message) }), op: op,
            ms: ms)
        return (early + events, out)
    }

    func statusAnswer(op: Int, location: TxLocation?, ms: Int64) -> ([Event], [Outgoing]) {
        guard let location, current?.op == op else { return ([], []) }
        current?.location = location
        return handle(.commit(code: location.code, blockNumber: location.blockNum), op: op, ms: ms)
    }

    /// The timer: the flow's patience, and the next commit-status question.
    func tick(ms: Int64) -> ([Event], [Outgoing]) {
        guard let op = current?.op else { return ([], []) }
        let (events, out) = handle(.tick, op: op, ms: ms)
        guard var c = current, c.watching, ms - c.askedAt >= Self.statusEveryMs else { return (events, out) }
        c.askedAt = ms
        current = c
        return (events, out + [(.peer(home), .status(op: c.op, txID: c.flow.txID))])
    }

    private func handle(_ event: SubmitFlow.Event, op: Int, ms: Int64) -> ([Event], [Outgoing]) {
        guard var c = current, c.op == op else { return ([], []) }
        let assembledBefore = c.flow.envelope != nil
        let actions = c.flow.handle(event, nowMs: ms)
        current = c
        var (events, out) = perform(actions, ms: ms)
        if !assembledBefore, let flow = current?.flow, flow.envelope != nil {
            events.insert(.assembled(op: op, answer: [UInt8](flow.response.payload)), at: 0)
        }
        return (events, out)
    }

    /// The flow's actions as messages; its end as the referee's event.
    private func perform(_ actions: [SubmitFlow.Action], ms: Int64) -> ([Event], [Outgoing]) {
        guard var c = current else { return ([], []) }
        var events: [Event] = []
        var out: [Outgoing] = []
        for action in actions {
            switch action {
            case .endorse(let signed, let peers):
                out += peers.compactMap(Int.init).map { (.peer($0), .endorse(op: c.op, proposal: signed)) }
            case .broadcast(let envelope, _, let attempt):
                guard let bytes = try? envelope.serializedBytes() as [UInt8] else { continue }
                out.append((.orderer, .broadcast(op: c.op, attempt: attempt, envelope: bytes)))
            case .watchCommit:
                c.watching = true
                c.askedAt = ms
                out.append((.peer(home), .status(op: c.op, txID: c.flow.txID)))
            case .wake: break  // the client's own ticks come every few milliseconds
            case .committed(let tx):
                // The commit comes from a status answer, whose location the client kept.
                if let location = c.location, location.blockNum == tx.blockNumber {
                    events.append(.committed(op: c.op, location))
                }
                current = nil
                return (events, out)
            case .failed(let f):
                events.append(.abandoned(op: c.op, why: f.description))
                current = nil
                return (events, out)
            }
        }
        current = c
        return (events, out)
    }
}
