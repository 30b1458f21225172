import Foundation
import GRPCCore
import LedgerChaincode
import LedgerChannel
import LedgerIdentity
import LedgerOrdering
import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import Synchronization
import X509

/// The node acting in its own name: the management node creating treatments, the proxy recording
/// usage, the audit anchor. Its transactions take the way every gateway's take (`SubmitFlow`), with the
/// node's own parts in-process instead of a TLS connection to itself: its peer endorses through the same
/// checks, audit lines and anomaly rules as a call from outside (`PeerService.endorse`, the caller being
/// the node's signing identity, validated against the trust store at each submission, so a revoked node
/// stops); other organisations' peers are asked over mutual TLS when the policy needs them; the envelope
/// goes to this node's orderer when it orders the channel, else to the channel's ordering endpoints;
/// the commit is awaited on the node's own ledger.
final class NodeSubmitter: Sendable {
    let signer: SigningIdentity
    /// The node as the chaincode sees it, for local reads in its own name.
    let creator: CreatorIdentity
    let certificate: Certificate
    let trust: TrustStore
    let peer: PeerService
    let orderer: OrderingServices?
    let pool: NodeClients
    let principals = EndorserPrincipals()
    private let closed = Mutex(false)

    init(
        signer: SigningIdentity, trust: TrustStore, peer: PeerService, orderer: OrderingServices?, pool: NodeClients
    ) throws {
        self.signer = signer
        certificate = try Certificate(pemEncoded: signer.certificatePEM)
        guard let attributes = IdentityAttributes(subject: certificate.subject) else {
            throw NodeServer.StartupError(
                description: "the node's signing certificate names no PID, organisation and role")
        }
        creator = CreatorIdentity(
            pid: attributes.pid, org: attributes.org, role: attributes.roleValue ?? .unspecified,
            certificatePEM: signer.certificatePEM)
        self.trust = trust
        self.peer = peer
        self.orderer = orderer
        self.pool = pool
    }

    /// Submits a `medrecords` call and waits for its commit; a chaincode refusal or an invalid
    /// transaction is an RPCError carrying the reason.
    func submit<Response: Decodable>(
        _ function: String, _ request: some Encodable, channel: String, _ type: Response.Type = Response.self
    ) async throws -> (Response, SubmittedTransaction) {
        try await submit(function, try ProposalInputs.json(request), channel: channel, type)
    }

    /// The same, with the function's inputs as the proposal carries them (some of them transient).
    func submit<Response: Decodable>(
        _ function: String, _ inputs: ProposalInputs, channel: String, _ type: Response.Type = Response.self
    ) async throws -> (Response, SubmittedTransaction) {
        let tx = try await run(
            try TransactionBuilder.proposal(
                channel: channel, chaincode: "medrecords", function: function, args: inputs.args,
                transient: inputs.transient, signer: signer, at: Date()))
        guard tx.isValid else {
            // MVCC_READ_CONFLICT here means a state it read (a consent, say) changed before it committed.
            throw RPCError(
                code: .failedPrecondition,
                message:
                    "the node's \(function) transaction \(tx.txID) was invalidated (\(tx.code)): what it relied on changed before it committed"
            )
        }
        do { return (try JSONDecoder().decode(Response.self, from: tx.response.payload), tx) } catch {
            throw RPCError(code: .internalError, message: "medrecords \(function) answered what does not decode")
        }
    }

    /// Endorses, orders and awaits one proposal; a refusal is an RPCError with the refusal's status.
    private func run(_ proposal: TransactionBuilder.Proposal) async throws -> SubmittedTransaction {
        if closed.withLock({ $0 }) { throw RPCError(code: .unavailable, message: "the node is shutting down") }
        let name = proposal.proposal.channelHeader.channelID
        guard let ch = peer.runtime.channel(name) else {
            throw RPCError(
                code: .unavailable, message: "this node holds no peer of channel \(name): it cannot submit there")
        }
        let caller: AuthenticatedIdentity
        do { caller = try await trust.validate(leaf: certificate, purpose: .signing) } catch {
            throw RPCError(code: .unauthenticated, message: "the node's own signing certificate: \(error)")
        }
        let config = ch.context.config
        let local = orderer?.context(of: name) != nil
        let endpoints = local ? ["this node"] : config.orderer.endpoints
        guard !endpoints.isEmpty else {
            throw RPCError(code: .unavailable, message: "channel \(name) names no ordering endpoint")
        }
        let transport = NodeSubmitTransport(
            channel: ch, caller: caller, peer: peer, orderer: local ? orderer : nil, endpoints: endpoints,
            forwarder: GRPCLeaderForwarder(pool: pool), pool: pool)
        let principals = self.principals
        let flow = SubmitFlow(
            proposal: proposal, signer: signer, first: NodeSubmitTransport.ownPeer,
            others: { first in
                let endorsed = principals.principal(of: first.endorsement.endorser)?.org
                return config.onePeerOfEachOrganisation(except: endorsed)
            },
            goal: .forChaincode(proposal.payload.chaincodeName, in: config, principals: principals),
            endpoints: endpoints.count, timing: timing(endpoints: endpoints.count, raftHere: local && raft(name)))
        switch await SubmitFlow.run(flow, over: transport) {
        case .success(let tx): return tx
        case .failure(let f): throw StatusMapping.rpcError(status: Int32(f.status), message: f.message)
        }
    }

    /// Whether this node is a raft consenter of the channel.
    private func raft(_ channel: String) -> Bool { orderer?.raft?.context(of: channel) != nil }

    /// As any gateway's; but a consenter's own orderer answers 503 while an election runs (it forwards
    /// to a leader that is being chosen), so there the one endpoint is retried as a cluster's would be.
    private func timing(endpoints: Int, raftHere: Bool) -> SubmitTiming {
        var timing = SubmitTiming.network(endpoints: endpoints)
        if raftHere { timing.failoverMs = SubmitTiming.failoverSeconds * 1000 }
        return timing
    }

    /// Later submissions fail with UNAVAILABLE.
    func close() {
        closed.withLock { $0 = true }
    }
}

/// The calls of a node's own submission: its peer in-process, other peers and remote orderers over
/// the node's mutual-TLS clients, its ledger for the commit.
struct NodeSubmitTransport: SubmitTransport {
    /// This node's peer, in-process; any other name is another node's endpoint. Not an endpoint form
    /// (no port), so a configured endpoint cannot collide with it.
    static let ownPeer = "this node's peer"

    let channel: PeerChannel
    let caller: AuthenticatedIdentity
    let peer: PeerService
    /// Set when this node orders the channel: the envelope goes to it in-process.
    let orderer: OrderingServices?
    let endpoints: [String]
    let forwarder: GRPCLeaderForwarder
    let pool: NodeClients

    func endorse(
        _ proposal: Medledger_SignedProposal, on endpoint: String
    ) async -> Result<Medledger_ProposalResponse, SubmitFailure> {
        if endpoint == Self.ownPeer {
            return peer.endorse(proposal, caller: caller).mapError { SubmitFailure(Int($0.status), $0.message) }
        }
        guard let address = NodeAddress(endpoint) else {
            return .failure(SubmitFailure(500, "peer endpoint \(endpoint) is not host:port"))
        }
        let pooled: NodeClients.Client
        do { pooled = try pool.client(address) } catch {
            return .failure(SubmitFailure(503, "\(endpoint): \(error)"))
        }
        do {
            return .success(try await Medledger_Peer.Client(wrapping: pooled).processProposal(proposal))
        } catch let e as RPCError where e.code != .unavailable {
            // The peer's refusal is the answer (a reason, for the policy); the connection is kept only
            // when the peer decided.
            if !NodeClients.isDecision(e) { pool.drop(address, failed: pooled) }
            return .failure(SubmitFailure(StatusMapping.status(of: e.code), "\(endpoint): \(e.message)"))
        } catch {
            pool.drop(address, failed: pooled)
            return .failure(SubmitFailure(503, "\(endpoint): \(error)"))
        }
    }

    func broadcast(_ envelope: Medledger_Envelope, endpoint: Int) async -> SubmitFailure? {
        let bytes: [UInt8]
        do { bytes = try envelope.serializedBytes() } catch { return SubmitFailure(500, "envelope: \(error)") }
        let refusal: OrderingRejection?
        if let orderer {
            do {
                try await orderer.broadcast(bytes)
                refusal = nil
            } catch { refusal = error }
        } else {
            refusal = await forwarder.forward(bytes, channel: channel.channelName, to: endpoints[endpoint])
        }
        return refusal.map { SubmitFailure(Int($0.status), $0.message) }
    }

    func watch(
        txID: String, timeoutMs: Int64
    ) async throws(SubmitFailure) -> @Sendable () async -> SubmitWatchOutcome {
        { [channel] in
            let found = await channel.commit(of: txID, waitingMs: Int(timeoutMs), until: { Task.isCancelled })
            return found.map { .committed(SubmitCommit(code: $0.code, blockNumber: $0.blockNum)) } ?? .notSeen
        }
    }

    func stopWatching(txID: String) {}
    func nowMs() -> Int64 { MonotonicTime.nowMs() }
    func sleep(untilMs: Int64) async { await MonotonicTime.sleep(untilMs: untilMs) }
}
