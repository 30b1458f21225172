import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerProtos
import Synchronization
import Testing

@testable import LedgerPeer

/// The gateway's submit as a state machine (`SubmitFlow`), driven by hand with real endorsements from
/// the fixture's two hospital endorsers under the channel's policy AND(hospital-a.node, hospital-b.node).
struct SubmitFlowTests {
    /// The flow names peers as its driver does; here, by organisation.
    enum Peer {
        static let a = "hospital-a"
        static let b = "hospital-b"
    }

    let fx: ChannelFixture
    let proposal: TransactionBuilder.Proposal
    let fromA, fromB: Medledger_ProposalResponse

    init() throws {
        fx = try ChannelFixture()
        let (p, responses) = try fx.endorse("put", ["k", "v"])
        proposal = p
        (fromA, fromB) = (responses[0], responses[1])
    }

    func flow(endpoints: Int = 1, timing: SubmitTiming = .network(endpoints: 1)) -> SubmitFlow {
        let config = fx.config
        let policy = config.chaincodes[0]
        return SubmitFlow(
            proposal: proposal, signer: fx.aDoctor, first: Peer.a, others: { _ in [Peer.a, Peer.b] },
            goal: .policy(
                policy.endorsementPolicy, try! EndorsementPolicy.parse(policy.endorsementPolicy),
                channelOrgs: Set(config.organizations.map(\.id)), principal: EndorserPrincipals().principal),
            endpoints: endpoints, timing: timing)
    }

    /// Endorsed by both hospitals: the flow's envelope, with the actions that sent it.
    func endorsed(_ f: inout SubmitFlow, at ms: Int64 = 0) -> [SubmitFlow.Action] {
        _ = f.start(nowMs: ms)
        _ = f.handle(.endorsement(from: Peer.a, .success(fromA)), nowMs: ms)
        return f.handle(.endorsement(from: Peer.b, .success(fromB)), nowMs: ms)
    }

    func sent(_ actions: [SubmitFlow.Action]) -> [(endpoint: Int, attempt: Int)] {
        actions.compactMap {
            if case .broadcast(_, let endpoint, let attempt) = $0 { return (endpoint, attempt) } else { return nil }
        }
    }

    func failure(_ actions: [SubmitFlow.Action]) -> SubmitFailure? {
        actions.lazy.compactMap { if case .failed(let f) = $0 { return f } else { return nil } }.first
    }

    @Test func theFirstPeerIsAskedAloneThenTheOtherOrganisationThenTheAgreeingPairIsOrdered() throws {
        var f = flow()
        guard case .endorse(_, let first) = try #require(f.start(nowMs: 0).first) else {
            Issue.record("the flow did not start by endorsing")
            return
        }
        #expect(first == [Peer.a])
        let next = f.handle(.endorsement(from: Peer.a, .success(fromA)), nowMs: 1)
        guard case .endorse(_, let others) = try #require(next.first) else {
            Issue.record("one endorsement does not meet AND(a, b), yet the flow did not ask b: \(next)")
            return
        }
        #expect(others == [Peer.b], "the first peer is not asked twice")
        let ordering = f.handle(.endorsement(from: Peer.b, .success(fromB)), nowMs: 2)
        guard case .watchCommit(let txID, _) = try #require(ordering.first) else {
            Issue.record("the commit is not watched before the envelope is sent: \(ordering)")
            return
        }
        #expect(txID == proposal.txID)
        #expect(sent(ordering).map(\.endpoint) == [0])
        let envelope = try #require(f.envelope)
        let payload = try Medledger_Payload(serializedBytes: envelope.payload)
        let tx = try Medledger_EndorsedTransaction(serializedBytes: payload.data)
        #expect(tx.endorsements.count == 2)
        #expect(f.handle(.ordering(attempt: 0, refusal: nil), nowMs: 3).isEmpty)
        let done = f.handle(.commit(code: .valid, blockNumber: 7), nowMs: 4)
        guard case .committed(let c) = try #require(done.first) else {
            Issue.record("no commit: \(done)")
            return
        }
        #expect(c.txID == proposal.txID && c.blockNumber == 7 && c.isValid && c.response.status == 200)
        #expect(f.isDone)
    }

    @Test func theFirstPeersRefusalIsTheAnswerAndNothingIsOrdered() {
        var f = flow()
        _ = f.start(nowMs: 0)
        var refused = fromA
        refused.response.status = 403
        refused.response.message = "not your record"
        let out = f.handle(.endorsement(from: Peer.a, .success(refused)), nowMs: 1)
        #expect(failure(out) == SubmitFailure(403, "not your record"))
        #expect(sent(out).isEmpty && f.envelope == nil)
        let unreachable = SubmitFailure(503, "peer down")
        var g = flow()
        _ = g.start(nowMs: 0)
        #expect(failure(g.handle(.endorsement(from: Peer.a, .failure(unreachable)), nowMs: 1)) == unreachable)
    }

    @Test func anUnmetPolicyIs412NamingWhoEndorsedAndWhyTheOthersDidNot() throws {
        var f = flow()
        _ = f.start(nowMs: 0)
        _ = f.handle(.endorsement(from: Peer.a, .success(fromA)), nowMs: 1)
        let out = f.handle(.endorsement(from: Peer.b, .failure(SubmitFailure(503, "b is down"))), nowMs: 2)
        let refusal = try #require(failure(out))
        #expect(refusal.status == 412)
        #expect(refusal.message.contains("AND('hospital-a.node', 'hospital-b.node')"), "\(refusal)")
        #expect(refusal.message.contains("hospital-a.node") && refusal.message.contains("[503] b is down"))

        // An answer that disagrees with the first (the peers' states differ) does not count either.
        var g = flow()
        _ = g.start(nowMs: 0)
        _ = g.handle(.endorsement(from: Peer.a, .success(fromA)), nowMs: 1)
        let (_, other) = try fx.endorse("put", ["k", "something else"])
        let disagreeing = try #require(failure(g.handle(.endorsement(from: Peer.b, .success(other[1])), nowMs: 2)))
        #expect(disagreeing.status == 412 && disagreeing.message.contains("disagrees"), "\(disagreeing)")
    }

    @Test func fiveHundredThreesMoveToTheNextEndpointBackOffAfterEachPassAndStopAtTheDeadline() throws {
        var f = flow(endpoints: 2, timing: .network(endpoints: 2))
        #expect(sent(endorsed(&f, at: 0)).map(\.endpoint) == [0])
        let busy = SubmitFailure(503, "no raft leader")
        #expect(sent(f.handle(.ordering(attempt: 0, refusal: busy), nowMs: 10)).map(\.endpoint) == [1])
        // Both endpoints tried: wait before the next pass.
        let wait = f.handle(.ordering(attempt: 1, refusal: busy), nowMs: 20)
        guard case .wake(let at) = try #require(wait.first) else {
            Issue.record("no back-off after a pass: \(wait)")
            return
        }
        #expect(at > 20)
        #expect(f.handle(.tick, nowMs: at - 1).isEmpty, "woken early, it waits")
        let again = sent(f.handle(.tick, nowMs: at))
        #expect(again.map(\.endpoint) == [0] && again.map(\.attempt) == [2])
        // A late 503 of an earlier attempt changes nothing.
        #expect(f.handle(.ordering(attempt: 1, refusal: busy), nowMs: at + 1).isEmpty)
        let late = SubmitTiming.failoverSeconds * 1000 + 1
        let refusal = try #require(failure(f.handle(.ordering(attempt: 2, refusal: busy), nowMs: late)))
        #expect(refusal.status == 503 && refusal.message == "orderer refused the transaction: no raft leader")
        // One orderer: its 503 is the answer at once.
        var solo = flow()
        _ = endorsed(&solo)
        #expect(failure(solo.handle(.ordering(attempt: 0, refusal: busy), nowMs: 1))?.status == 503)
    }

    @Test func a409MeansTheEnvelopeGotInAndOtherRefusalsAreTheAnswer() throws {
        var f = flow(endpoints: 3, timing: .network(endpoints: 3))
        _ = endorsed(&f)
        let got = f.handle(.ordering(attempt: 0, refusal: SubmitFailure(409, "already being ordered")), nowMs: 1)
        #expect(got.isEmpty && !f.isDone, "a 409 waits for the commit")
        #expect(f.handle(.ordering(attempt: 0, refusal: SubmitFailure(503, "late")), nowMs: 2).isEmpty)
        guard case .committed = try #require(f.handle(.commit(code: .mvccReadConflict, blockNumber: 3), nowMs: 3).first)
        else {
            Issue.record("the commit of a transaction that got in was not reported")
            return
        }
        var g = flow(endpoints: 3, timing: .network(endpoints: 3))
        _ = endorsed(&g)
        let out = g.handle(.ordering(attempt: 0, refusal: SubmitFailure(403, "creator suspended")), nowMs: 1)
        #expect(failure(out) == SubmitFailure(403, "orderer refused the transaction: creator suspended"))
        #expect(sent(out).isEmpty, "a refusal is not tried elsewhere")
        var h = flow()
        _ = endorsed(&h)
        _ = h.handle(.ordering(attempt: 0, refusal: nil), nowMs: 1)
        let notSeen = try #require(failure(h.handle(.commitNotSeen(unknown: nil), nowMs: 60_001)))
        #expect(notSeen.status == 504 && notSeen.message.contains("was ordered but"))
        // Never acknowledged (the orderer went silent): the 504 does not claim it was ordered.
        var silent = flow()
        _ = endorsed(&silent)
        let unacknowledged = try #require(failure(silent.handle(.commitNotSeen(unknown: nil), nowMs: 60_001)))
        #expect(unacknowledged.status == 504 && unacknowledged.message.contains("unacknowledged"), "\(unacknowledged)")
        // The watch could not tell (the peer was not reachable after the stream broke): said so, not a timeout.
        var unsure = flow()
        _ = endorsed(&unsure)
        _ = unsure.handle(.ordering(attempt: 0, refusal: nil), nowMs: 1)
        let unknown = try #require(failure(unsure.handle(.commitNotSeen(unknown: "peer unreachable"), nowMs: 5)))
        #expect(unknown.status == 504 && unknown.message.hasSuffix("whether it committed is unknown: peer unreachable"))
    }

    @Test func patiencesGiveUpOnSilenceAndSendTheSameEnvelopeAgain() throws {
        let timing = SubmitTiming(
            endorsePatienceMs: 200, attemptPatienceMs: 200, failoverMs: 2_000, resendAfterMs: 1_500, commitMs: 60_000)
        var silent = flow(timing: timing)
        _ = silent.start(nowMs: 0)
        #expect(silent.handle(.tick, nowMs: 199).isEmpty)
        let timedOut = try #require(failure(silent.handle(.tick, nowMs: 200)))
        #expect(timedOut.status == 504 && timedOut.message.contains("timed out"))

        var f = flow(timing: timing)
        _ = endorsed(&f, at: 0)
        let first = try #require(f.envelope)
        // The attempt went unanswered: after a back-off, the same bytes again.
        let wait = f.handle(.tick, nowMs: 200)
        guard case .wake(let at) = try #require(wait.first) else {
            Issue.record("no back-off: \(wait)")
            return
        }
        let resent = f.handle(.tick, nowMs: at)
        guard case .broadcast(let again, _, 1) = try #require(resent.first) else {
            Issue.record("not sent again: \(resent)")
            return
        }
        #expect(again == first)
        // Acknowledged, then no commit for 1.5 s: sent once more, still the same envelope.
        #expect(f.handle(.ordering(attempt: 1, refusal: nil), nowMs: at + 10).count == 1)
        #expect(sent(f.handle(.tick, nowMs: at + 1_000)).isEmpty)
        #expect(sent(f.handle(.tick, nowMs: at + 1_510)).map(\.attempt) == [2])
    }

    /// The async driver over an in-memory transport: the endorsers run in-process, the orderer
    /// acknowledges, and the commit arrives only after the envelope was sent.
    @Test func theDriverRunsTheFlowToItsCommit() async throws {
        final class Sent: Sendable { let envelopes = Mutex<[Medledger_Envelope]>([]) }
        let sentEnvelopes = Sent()
        struct Memory: SubmitTransport {
            let fx: ChannelFixture
            let sent: @Sendable (Medledger_Envelope) -> Int
            let count: @Sendable () -> Int
            func endorse(
                _ p: Medledger_SignedProposal, on peer: String
            ) async -> Result<
                Medledger_ProposalResponse, SubmitFailure
            > {
                let endorser = peer == Peer.a ? fx.endorserA : fx.endorserB
                do {
                    return .success(
                        try endorser.process(
                            try ParsedProposal(p), context: fx.channel.context, state: fx.channel.ledger.state,
                            now: fx.now
                        ) { _ in false })
                } catch { return .failure(SubmitFailure(500, "\(error)")) }
            }
            func broadcast(_ envelope: Medledger_Envelope, endpoint: Int) async -> SubmitFailure? {
                _ = sent(envelope)
                return nil
            }
            func watch(
                txID: String, timeoutMs: Int64
            ) async throws(SubmitFailure) -> @Sendable () async -> SubmitWatchOutcome {
                { [count] in
                    while count() == 0 { await Task.yield() }
                    return .committed(SubmitCommit(code: .valid, blockNumber: 1))
                }
            }
            func stopWatching(txID: String) {}
            func nowMs() -> Int64 { 0 }
            func sleep(untilMs: Int64) async {}
        }
        let transport = Memory(
            fx: fx,
            sent: { e in
                sentEnvelopes.envelopes.withLock {
                    $0.append(e)
                    return $0.count
                }
            },
            count: { sentEnvelopes.envelopes.withLock { $0.count } })
        let result = await SubmitFlow.run(flow(), over: transport)
        let tx = try result.get()
        #expect(tx.txID == proposal.txID && tx.isValid && tx.blockNumber == 1)
        #expect(sentEnvelopes.envelopes.withLock { $0.count } == 1)
    }
}
