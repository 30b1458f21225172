import Foundation
import LedgerIdentity
import LedgerProtos

/// One transaction's way from a signed proposal to its commit, as a gateway takes it, written as a
/// state machine: it is given events (an endorsement answered, the orderer answered, the commit seen,
/// a timer) and answers with actions (ask these peers, send the envelope there, wake me then, done).
/// It reads no clock and does no I/O, so the client SDK's gateway, the node submitting in its own name
/// and the simulator run the same decisions over a network, in-process calls, or simulated messages.
///
/// The path: the gateway's own peer endorses first (its refusal is the answer); while the endorsement
/// goal is unmet, one peer of each further organisation is asked at once, and the first answers that
/// agree with the first peer's and meet the goal are taken. The envelope is then sent to the ordering
/// endpoints in turn: a 503 (no leader, unreachable) moves to the next endpoint, with a back-off after
/// each pass, until `Timing.failoverMs` is spent; a 409 means the same envelope got in already (its tx
/// id is the proposal's, which only this signer made), so its commit is awaited. The commit is watched
/// from before the first send, so an answer lost on the way back does not lose the outcome.
public struct SubmitFlow: Sendable {
    /// A peer, named as its driver names it (an endpoint, an index). Not generic on purpose: the flow
    /// runs in the client's hot path, and generic values crossing modules are copied through runtime
    /// metadata (it cost 6 % of the whole network's CPU per transaction in `bench load`).
    public typealias Peer = String
    public typealias Failure = SubmitFailure
    public typealias Committed = SubmittedTransaction

    public typealias Timing = SubmitTiming
    public typealias Goal = SubmitGoal

    public enum Action: Sendable {
        case endorse(Medledger_SignedProposal, on: [Peer])
        /// Start watching for the transaction's commit (answer with `.commit` or `.commitNotSeen`).
        case watchCommit(txID: String, timeoutMs: Int64)
        case broadcast(Medledger_Envelope, endpoint: Int, attempt: Int)
        /// Hand the flow a `.tick` at or after this time.
        case wake(atMs: Int64)
        case committed(Committed)
        case failed(Failure)
    }

    public enum Event: Sendable {
        case endorsement(from: Peer, Result<Medledger_ProposalResponse, Failure>)
        /// The answer to broadcast attempt `attempt`: nil when the orderer acknowledged it.
        case ordering(attempt: Int, refusal: Failure?)
        case commit(code: Medledger_TxValidationCode, blockNumber: UInt64)
        /// The commit watch ended without seeing the transaction: its time ran out, or (`unknown`) it
        /// could not tell, for that reason.
        case commitNotSeen(unknown: String?)
        case tick
    }

    enum Phase {
        case created
        case endorsingFirst(since: Int64)
        case endorsingOthers(since: Int64, waiting: Set<Peer>)
        case ordering(attempt: Int, sentAt: Int64)
        case backingOff(nextAttempt: Int, until: Int64)
        case awaitingCommit(lastSent: Int64)
        case done
    }

    public let proposal: TransactionBuilder.Proposal
    let signer: SigningIdentity
    let first: Peer
    let othersFor: @Sendable (Medledger_ProposalResponse) -> [Peer]
    let goal: Goal
    let endpoints: Int
    public let timing: Timing
    var phase = Phase.created
    var accepted: [Medledger_ProposalResponse] = []
    var problems: [String] = []
    /// The next broadcast attempt's number; endpoint = attempt % endpoints.
    var attempts = 0
    var failoverDeadline: Int64 = 0
    /// An orderer acknowledged the envelope, or answered 409 (an earlier copy got in).
    var gotIn = false
    /// The envelope, once endorsed and assembled.
    public private(set) var envelope: Medledger_Envelope?

    public var txID: String { proposal.txID }
    public var isDone: Bool { if case .done = phase { return true } else { return false } }
    /// The chaincode's answer as the first peer endorsed it (empty before).
    public var response: Medledger_Response { accepted.first?.response ?? Medledger_Response() }

    /// - Parameters:
    ///   - first: the gateway's own peer; `others`: given its endorsement, one peer of each further
    ///     organisation, asked only when the first endorsement does not meet `goal`.
    ///   - endpoints: how many ordering endpoints the driver can send to (at least one).
    public init(
        proposal: TransactionBuilder.Proposal, signer: SigningIdentity, first: Peer,
        others: @escaping @Sendable (_ firstEndorsement: Medledger_ProposalResponse) -> [Peer], goal: Goal,
        endpoints: Int, timing: Timing
    ) {
        self.proposal = proposal
        self.signer = signer
        self.first = first
        self.othersFor = others
        self.goal = goal
        self.endpoints = max(1, endpoints)
        self.timing = timing
    }

    public mutating func start(nowMs: Int64) -> [Action] {
        guard case .created = phase else { return [] }
        phase = .endorsingFirst(since: nowMs)
        return [.endorse(proposal.signed, on: [first])] + patience(timing.endorsePatienceMs, from: nowMs)
    }

    public mutating func handle(_ event: Event, nowMs: Int64) -> [Action] {
        switch event {
        case .endorsement(let peer, let answer): return endorsed(by: peer, answer, nowMs: nowMs)
        case .ordering(let attempt, let refusal): return ordered(attempt: attempt, refusal: refusal, nowMs: nowMs)
        case .commit(let code, let block):
            guard envelope != nil, !isDone else { return [] }
            phase = .done
            return [
                .committed(Committed(txID: txID, response: response, code: code, blockNumber: block))
            ]
        case .commitNotSeen(let unknown):
            guard envelope != nil, !isDone else { return [] }
            let sent = gotIn ? "was ordered" : "was sent for ordering, unacknowledged,"
            guard let unknown else {
                return fail(
                    504, "transaction \(txID) \(sent) but its commit was not seen within \(timing.commitMs) ms")
            }
            return fail(504, "transaction \(txID) \(sent) but whether it committed is unknown: \(unknown)")
        case .tick: return tick(nowMs: nowMs)
        }
    }

    // MARK: Endorsing

    mutating func endorsed(
        by peer: Peer, _ answer: Result<Medledger_ProposalResponse, Failure>, nowMs: Int64
    ) -> [Action] {
        switch phase {
        case .endorsingFirst where peer == first:
            let r: Medledger_ProposalResponse
            switch answer {
            case .failure(let f): return fail(f.status, f.message)
            case .success(let response): r = response
            }
            guard r.response.status == 200 else {
                return fail(
                    Int(r.response.status), r.response.message.isEmpty ? "chaincode refused" : r.response.message)
            }
            accepted = [r]
            if goal.isMet(accepted) { return assemble(nowMs: nowMs) }
            var seen: Set<Peer> = [first]
            let others = othersFor(r).filter { seen.insert($0).inserted }  // in the caller's order
            guard !others.isEmpty else { return unmet() }
            phase = .endorsingOthers(since: nowMs, waiting: Set(others))
            return [.endorse(proposal.signed, on: others)] + patience(timing.endorsePatienceMs, from: nowMs)
        case .endorsingOthers(let since, var waiting):
            guard waiting.remove(peer) != nil else { return [] }
            // Failures of other peers are reasons, not the answer: the goal decides.
            switch answer {
            case .success(let r) where r.response.status != 200:
                problems.append("[\(r.response.status)] \(r.response.message)")
            case .success(let r) where r.payload != accepted[0].payload:
                problems.append("a peer whose state differs (its answer disagrees with the first)")
            case .success(let r): accepted.append(r)
            case .failure(let f): problems.append(f.description)
            }
            if goal.isMet(accepted) { return assemble(nowMs: nowMs) }
            if waiting.isEmpty { return unmet() }
            phase = .endorsingOthers(since: since, waiting: waiting)
            return []
        default: return []
        }
    }

    mutating func unmet() -> [Action] {
        let others = problems.isEmpty ? "" : "; other peers: " + problems.joined(separator: "; ")
        return fail(
            412,
            "could not collect endorsements satisfying \(goal.name) (endorsed by \(goal.endorsers(accepted))\(others))")
    }

    mutating func assemble(nowMs: Int64) -> [Action] {
        let built: Medledger_Envelope
        do { built = try TransactionBuilder.envelope(proposal, responses: accepted, signer: signer) } catch {
            return fail(409, "\(error)")
        }
        envelope = built
        failoverDeadline = nowMs + timing.failoverMs
        return [.watchCommit(txID: txID, timeoutMs: timing.commitMs)] + send(nowMs: nowMs)
    }

    // MARK: Ordering

    mutating func send(nowMs: Int64) -> [Action] {
        guard let envelope else { return [] }
        let attempt = attempts
        attempts += 1
        phase = .ordering(attempt: attempt, sentAt: nowMs)
        return [.broadcast(envelope, endpoint: attempt % endpoints, attempt: attempt)]
            + patience(timing.attemptPatienceMs, from: nowMs)
    }

    mutating func ordered(attempt: Int, refusal: Failure?, nowMs: Int64) -> [Action] {
        switch phase {
        case .ordering(let current, _), .backingOff(let current, _):
            // Any attempt that got in (acknowledged, or 409: an earlier copy is being ordered) is enough.
            if refusal == nil || refusal?.status == 409 { return awaitCommit(nowMs: nowMs) }
            guard case .ordering = phase, attempt == current, let refusal else { return [] }
            guard refusal.status == 503 else {
                return fail(refusal.status, "orderer refused the transaction: \(refusal.message)")
            }
            return failover(after: refusal, nowMs: nowMs)
        default: return []
        }
    }

    /// The next endpoint, after a back-off once every endpoint has been tried in this pass.
    mutating func failover(after refusal: Failure, nowMs: Int64) -> [Action] {
        guard nowMs < failoverDeadline else {
            return fail(refusal.status, "orderer refused the transaction: \(refusal.message)")
        }
        guard attempts % endpoints == 0 else { return send(nowMs: nowMs) }
        // An election takes about a second: retry often, backing off per pass over the endpoints.
        let pass = attempts / endpoints
        let until = nowMs + Int64(min(400, 25 << min(pass, 4)))
        phase = .backingOff(nextAttempt: attempts, until: until)
        return [.wake(atMs: until)]
    }

    mutating func awaitCommit(nowMs: Int64) -> [Action] {
        gotIn = true
        phase = .awaitingCommit(lastSent: nowMs)
        return patience(timing.resendAfterMs, from: nowMs)
    }

    // MARK: Timers

    mutating func tick(nowMs: Int64) -> [Action] {
        switch phase {
        case .endorsingFirst(let since), .endorsingOthers(let since, _):
            guard let limit = timing.endorsePatienceMs, nowMs - since >= limit else { return [] }
            return fail(504, "endorsement timed out: no answer within \(limit) ms")
        case .ordering(_, let sentAt):
            guard let limit = timing.attemptPatienceMs, nowMs - sentAt >= limit else { return [] }
            return failover(after: Failure(503, "no answer within \(limit) ms"), nowMs: nowMs)
        case .backingOff(_, let until):
            return nowMs >= until ? send(nowMs: nowMs) : []
        case .awaitingCommit(let lastSent):
            guard let limit = timing.resendAfterMs, nowMs - lastSent >= limit, let envelope else { return [] }
            let attempt = attempts
            attempts += 1
            phase = .awaitingCommit(lastSent: nowMs)
            return [.broadcast(envelope, endpoint: attempt % endpoints, attempt: attempt), .wake(atMs: nowMs + limit)]
        case .created, .done: return []
        }
    }

    func patience(_ ms: Int64?, from nowMs: Int64) -> [Action] {
        ms.map { [.wake(atMs: nowMs + $0)] } ?? []
    }

    mutating func fail(_ status: Int, _ message: String) -> [Action] {
        phase = .done
        return [.failed(Failure(status, message))]
    }
}

/// Why a submission ended without its commit: an EMR-IG status (the chaincode's refusal, 412 for an
/// unmet endorsement policy, the orderer's refusal, 504 when the commit was not seen) and its reason.
public struct SubmitFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { "[\(status)] \(message)" }
}

/// A submitted transaction on the ledger (valid or not: `code` says).
public struct SubmittedTransaction: Sendable {
    public var txID: String
    /// The chaincode's answer, as the first peer endorsed it.
    public var response: Medledger_Response
    public var code: Medledger_TxValidationCode
    public var blockNumber: UInt64
    public var isValid: Bool { code == .valid }
}

/// How long to wait and when to try again. Drivers over real connections leave the patiences nil:
/// their calls end in an error when a stream stalls. The simulator, whose messages can vanish,
/// sets them.
public struct SubmitTiming: Sendable {
    /// An endorsement not answered after this fails the submission (504); nil: wait for the answer.
    public var endorsePatienceMs: Int64?
    /// A broadcast attempt not answered after this counts as a 503 from that endpoint.
    public var attemptPatienceMs: Int64?
    /// How long 503s move the envelope on to the next endpoint; 0: the first 503 is the answer.
    public var failoverMs: Int64
    /// Ordered (or answered 409) but not committed after this: the same envelope is sent again, in
    /// case the orderer that held it crashed before making it durable. nil: never.
    public var resendAfterMs: Int64?
    /// How long the commit is waited for once the envelope is sent.
    public var commitMs: Int64

    public init(
        endorsePatienceMs: Int64? = nil, attemptPatienceMs: Int64? = nil, failoverMs: Int64,
        resendAfterMs: Int64? = nil, commitMs: Int64
    ) {
        self.endorsePatienceMs = endorsePatienceMs
        self.attemptPatienceMs = attemptPatienceMs
        self.failoverMs = failoverMs
        self.resendAfterMs = resendAfterMs
        self.commitMs = commitMs
    }

    /// How long a broadcast keeps trying other ordering endpoints before it gives up.
    public static var failoverSeconds: Int64 { 15 }

    /// Over real connections: a raft cluster's endpoints are tried for `failoverSeconds` (an
    /// election takes about a second); a single orderer's 503 is the answer.
    public static func network(endpoints: Int, commitMs: Int64 = 60_000) -> SubmitTiming {
        SubmitTiming(failoverMs: endpoints > 1 ? failoverSeconds * 1000 : 0, commitMs: commitMs)
    }
}

/// What the endorsements must amount to before the transaction is ordered.
public struct SubmitGoal: Sendable {
    /// Named in the refusal when the goal is not met.
    public var name: String
    public var isMet: @Sendable ([Medledger_ProposalResponse]) -> Bool
    /// Who endorsed, for the refusal.
    public var endorsers: @Sendable ([Medledger_ProposalResponse]) -> String

    public init(
        name: String, isMet: @escaping @Sendable ([Medledger_ProposalResponse]) -> Bool,
        endorsers: @escaping @Sendable ([Medledger_ProposalResponse]) -> String
    ) {
        self.name = name
        self.isMet = isMet
        self.endorsers = endorsers
    }

    /// A chaincode's endorsement policy; `principal` names an endorser identity's organisation and
    /// role (an X.509 parse the caller may cache).
    public static func policy(
        _ text: String, _ policy: EndorsementPolicy, channelOrgs: Set<String>,
        principal: @escaping @Sendable (Data) -> EndorsementPolicy.Endorser?
    ) -> SubmitGoal {
        let principals = { @Sendable (rs: [Medledger_ProposalResponse]) in
            rs.compactMap { principal($0.endorsement.endorser) }
        }
        return SubmitGoal(
            name: text, isMet: { policy.isSatisfied(by: principals($0), channelOrgs: channelOrgs) },
            endorsers: { principals($0).map { "\($0.org).\($0.role)" }.joined(separator: ", ") })
    }

    /// No policy known for the chaincode: the first peer's endorsement is all that can be asked for
    /// (the validators decide).
    public static var anyOne: SubmitGoal {
        SubmitGoal(name: "one endorsement", isMet: { !$0.isEmpty }, endorsers: { "\($0.count) peer(s)" })
    }

    /// `count` agreeing endorsements from distinct peers.
    public static func count(_ count: Int) -> SubmitGoal {
        SubmitGoal(name: "\(count) endorsements", isMet: { $0.count >= count }, endorsers: { "\($0.count) peer(s)" })
    }
}
