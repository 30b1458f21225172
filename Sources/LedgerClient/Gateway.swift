import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import SwiftProtobuf
import Synchronization
import X509

/// The result of a chaincode call: its status, message and payload.
public struct ChaincodeResult: Sendable, Equatable {
    public var status: Int32
    public var message: String
    public var payload: [UInt8]
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// A submitted transaction's outcome: committed (with its validation code) or not.
public struct SubmitResult: Sendable {
    public var txID: String
    public var result: ChaincodeResult
    public var code: Medledger_TxValidationCode
    public var blockNumber: UInt64
    public var isValid: Bool { code == .valid }
}

/// One long-lived connection to a node (peer or orderer).
final class Connection: Sendable {
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let runner: Task<Void, Never>
    let address: NodeAddress

    /// Proposals and envelopes travel on these shared streams (opened on first use).
    let endorser: PipelinedStream<Medledger_SignedProposal, Medledger_ProposalStreamResponse>
    let broadcaster: PipelinedStream<Medledger_Envelope, Medledger_BroadcastResponse>

    /// `signer`: signs the messages of the endorser stream, whose proposals come unsigned (one
    /// signature per message: `ProposalSigner`).
    /// `broadcastStallAfter`: a broadcast stream with calls waiting and no answer for this long ends
    /// (503), so that a gateway with other ordering endpoints moves on.
    init(
        _ address: NodeAddress, roots: [UInt8], tls: TLSIdentityFiles, signer: ProposalSigner,
        broadcastStallAfter: Duration? = nil
    ) throws {
        self.address = address
        let c = GRPCClient(transport: try ClientSecurity.transport(to: address, trustedRootsPEM: roots, identity: tls))
        client = c
        runner = Task { try? await c.runConnections() }
        endorser = PipelinedStream { batches, answer in
            try await Medledger_Peer.Client(wrapping: c).processProposals { writer in
                for await batch in batches {
                    try await writer.write(try signer.message(batch))
                }
            } onResponse: { response in
                for try await m in response.messages { m.responses.forEach(answer) }
            }
        }
        broadcaster = PipelinedStream(holdAtUnanswered: .max, stallAfter: broadcastStallAfter) { batches, answer in
            try await Medledger_Orderer.Client(wrapping: c).broadcastStream { writer in
                for await batch in batches {
                    var m = Medledger_EnvelopeBatch()
                    m.envelopes = batch
                    try await writer.write(m)
                }
            } onResponse: { response in
                for try await m in response.messages { m.responses.forEach(answer) }
            }
        }
    }

    var peer: Medledger_Peer.Client<HTTP2ClientTransport.Posix> { Medledger_Peer.Client(wrapping: client) }
    var orderer: Medledger_Orderer.Client<HTTP2ClientTransport.Posix> { Medledger_Orderer.Client(wrapping: client) }

    func close() {
        endorser.close()
        broadcaster.close()
        client.beginGracefulShutdown()
    }
}

/// The gateway-style client API: `evaluate` (query one peer), `submit` (endorse on enough peers to
/// satisfy the chaincode's policy, order, wait for the commit), and event streams. Learns the
/// orderer and the other organisations' peers from the channel configuration its peer serves.
public final class Gateway: Sendable {
    public let channel: String
    public var signer: SigningIdentity { proposalSigner.identity }
    /// Signs the proposals this gateway sends, per stream message.
    let proposalSigner: ProposalSigner
    let roots: [UInt8]
    let tls: TLSIdentityFiles
    let primary: Connection
    /// The primary peer as `SubmitFlow` names it.
    let primaryName: String
    let connections = Mutex<[String: Connection]>([:])
    public let config: Medledger_ChannelConfig
    let ordererAddress: NodeAddress
    /// Parsed once: the chaincodes' policies, and each endorser identity's principal (an X.509 parse).
    let policies: [String: (text: String, policy: EndorsementPolicy)]
    let principals = EndorserPrincipals()
    /// Follows the gateway's peer's filtered blocks to learn when submitted transactions commit.
    let commits: CommitWatcher

    public struct Failure: Error, CustomStringConvertible {
        public var status: Int
        public var message: String
        public var description: String { "[\(status)] \(message)" }
    }

    public static func connect(
        wallet: Wallet, peer: NodeAddress, channel: String, orderer: NodeAddress? = nil
    ) async throws -> Gateway {
        let signer = try SigningIdentity.load(certificatePath: wallet.signingCertPath, keyPath: wallet.signingKeyPath)
        return try await connect(
            signer: signer, trustedRootsPEM: wallet.caCertPEM, tls: wallet.tlsIdentity, peer: peer, channel: channel,
            orderer: orderer)
    }

    /// A gateway for an identity that is not a wallet (a node submitting in its own name).
    public static func connect(
        signer: SigningIdentity, trustedRootsPEM: [UInt8], tls: TLSIdentityFiles, peer: NodeAddress, channel: String,
        orderer: NodeAddress? = nil
    ) async throws -> Gateway {
        let proposalSigner = ProposalSigner(signer)
        let primary = try Connection(peer, roots: trustedRootsPEM, tls: tls, signer: proposalSigner)
        do {
            var req = Medledger_ChannelConfigRequest()
            req.channel = channel
            let config = try await primary.peer.getChannelConfig(req).config
            guard let o = orderer ?? config.orderer.endpoints.compactMap(NodeAddress.init).first else {
                throw Failure(status: 500, message: "channel \(channel) names no orderer endpoint")
            }
            return Gateway(
                channel: channel, signer: proposalSigner, roots: trustedRootsPEM, tls: tls, primary: primary,
                config: config, orderer: o)
        } catch {
            primary.close()
            throw CallFailure.classify(error)
        }
    }

    init(
        channel: String, signer: ProposalSigner, roots: [UInt8], tls: TLSIdentityFiles, primary: Connection,
        config: Medledger_ChannelConfig, orderer: NodeAddress
    ) {
        self.channel = channel
        self.proposalSigner = signer
        self.roots = roots
        self.tls = tls
        self.primary = primary
        self.primaryName = primary.address.description
        self.config = config
        self.ordererAddress = orderer
        var policies = [String: (text: String, policy: EndorsementPolicy)]()
        for cc in config.chaincodes {
            if let p = try? EndorsementPolicy.parse(cc.endorsementPolicy) {
                policies[cc.name] = (cc.endorsementPolicy, p)
            }
        }
        self.policies = policies
        commits = CommitWatcher(
            height: {
                let req = Medledger_ListChannelsRequest()
                let channels: [Medledger_ChannelSummary]
                do { channels = try await primary.peer.listChannels(req).channels } catch {
                    throw CallFailure.classify(error)
                }
                guard let c = channels.first(where: { $0.channel == channel }) else {
                    throw CallFailure(
                        status: 404, message: "no channel \(channel.debugDescription) on \(primary.address)")
                }
                return c.height
            },
            follow: { start, onBlock in
                var req = Medledger_DeliverRequest()
                req.channel = channel
                req.start = start
                req.follow = true
                req.filtered = true
                try await primary.peer.deliver(req) { response in
                    for try await m in response.messages { onBlock(m.filteredBlock) }
                }
            })
        // The primary's broadcast stream has no stall watchdog (the channel was not known when it was
        // made). With other ordering endpoints to go to, a broadcast to the primary's node gets a
        // connection of its own that has one: a node that stops answering must not hold a
        // submission for as long as it stays stopped.
        if config.orderer.endpoints.count <= 1 {
            connections.withLock { $0[primary.address.description] = primary }
        }
    }

    public func close() {
        commits.close()
        var all = connections.withLock { Array($0.values) }
        if !all.contains(where: { $0 === primary }) { all.append(primary) }
        for c in all { c.close() }
    }

    func connection(_ address: NodeAddress) throws -> Connection {
        try connections.withLock { cs in
            if let c = cs[address.description] { return c }
            // With other ordering endpoints to go to, a broadcast stream that stalls is given up.
            let stall: Duration? = config.orderer.endpoints.count > 1 ? .seconds(Self.attemptSeconds) : nil
            let c = try Connection(
                address, roots: roots, tls: tls, signer: proposalSigner, broadcastStallAfter: stall)
            cs[address.description] = c
            return c
        }
    }

    // MARK: Proposals

    typealias Proposal = TransactionBuilder.Proposal

    func propose(chaincode: String, function: String, args: [[UInt8]], transient: [String: [UInt8]]) throws -> Proposal
    {
        try TransactionBuilder.proposal(
            channel: channel, chaincode: chaincode, function: function, args: args, transient: transient,
            signer: signer, at: Date(), signAlone: false)
    }

    func endorse(
        _ signed: Medledger_SignedProposal, on connection: Connection
    ) async throws
        -> Medledger_ProposalResponse
    {
        let answer: Medledger_ProposalStreamResponse
        do { answer = try await connection.endorser.call(signed) } catch let e
            as PipelinedStream<Medledger_SignedProposal, Medledger_ProposalStreamResponse>.Ended
        {
            throw Self.failure(e, e.underlying, at: connection.address)
        } catch { throw CallFailure.classify(error) }
        guard answer.rejectionStatus == 0 else {
            throw CallFailure(status: Int(answer.rejectionStatus), message: answer.rejectionMessage)
        }
        return answer.response
    }

    /// A stream that ended under waiting calls: the node's refusal of the caller (401, 403: a
    /// suspension, a revocation) as it is; anything else 503, which another endpoint may not give.
    static func failure(_ ended: any Error, _ underlying: (any Error)?, at address: NodeAddress) -> CallFailure {
        if let rpc = underlying as? RPCError, rpc.code == .unauthenticated || rpc.code == .permissionDenied {
            return CallFailure.classify(rpc)
        }
        return CallFailure(status: 503, message: "\(address): \(ended)")
    }

    /// Runs a query on the gateway's peer; nothing is ordered or committed.
    public func evaluate(
        chaincode: String, function: String, args: [String] = [], transient: [String: [UInt8]] = [:]
    ) async throws -> ChaincodeResult {
        try await evaluate(
            chaincode: chaincode, function: function, byteArgs: args.map { Array($0.utf8) }, transient: transient)
    }

    public func evaluate(
        chaincode: String, function: String, byteArgs: [[UInt8]], transient: [String: [UInt8]] = [:]
    ) async throws -> ChaincodeResult {
        var p = try propose(chaincode: chaincode, function: function, args: byteArgs, transient: transient)
        p.signed.evaluateOnly = true
        let r = try await endorse(p.signed, on: primary)
        return ChaincodeResult(
            status: r.response.status, message: r.response.message, payload: [UInt8](r.response.payload))
    }

    /// Endorses on enough peers for the chaincode's policy, orders, and waits for the commit on the
    /// gateway's peer. A chaincode refusal throws (nothing is ordered); a committed-but-invalid
    /// transaction returns its validation code.
    public func submit(
        chaincode: String, function: String, args: [String] = [], transient: [String: [UInt8]] = [:],
        commitTimeoutMs: UInt32 = 60_000
    ) async throws -> SubmitResult {
        try await submit(
            chaincode: chaincode, function: function, byteArgs: args.map { Array($0.utf8) }, transient: transient,
            commitTimeoutMs: commitTimeoutMs)
    }

    public func submit(
        chaincode: String, function: String, byteArgs: [[UInt8]], transient: [String: [UInt8]] = [:],
        commitTimeoutMs: UInt32 = 60_000
    ) async throws -> SubmitResult {
        let p = try propose(chaincode: chaincode, function: function, args: byteArgs, transient: transient)
        let endpoints = orderingEndpoints
        let flow = SubmitFlow(
            proposal: p, signer: signer, first: primaryName, others: { [self] in peers(besides: $0) },
            goal: goal(for: chaincode), endpoints: endpoints.count,
            timing: .network(endpoints: endpoints.count, commitMs: Int64(commitTimeoutMs)))
        switch await SubmitFlow.run(flow, over: GatewayTransport(gateway: self, endpoints: endpoints)) {
        case .success(let c):
            let result = ChaincodeResult(
                status: c.response.status, message: c.response.message, payload: [UInt8](c.response.payload))
            return SubmitResult(txID: c.txID, result: result, code: c.code, blockNumber: c.blockNumber)
        case .failure(let f):
            throw Failure(status: f.status, message: f.message)
        }
    }

    /// `submit` with the function's arguments and transient inputs as one value (a P_DE's, say).
    public func submit(
        chaincode: String, function: String, _ inputs: ProposalInputs, commitTimeoutMs: UInt32 = 60_000
    ) async throws -> SubmitResult {
        try await submit(
            chaincode: chaincode, function: function, byteArgs: inputs.args, transient: inputs.transient,
            commitTimeoutMs: commitTimeoutMs)
    }

    /// The gateway's orderer first, then the channel's other ordering endpoints.
    var orderingEndpoints: [NodeAddress] {
        [ordererAddress] + config.orderer.endpoints.compactMap(NodeAddress.init).filter { $0 != ordererAddress }
    }

    /// The chaincode's endorsement policy as the flow's goal (the first endorsement, if it has none).
    func goal(for chaincode: String) -> SubmitGoal {
        guard let (text, policy) = policies[chaincode] else { return .anyOne }
        return .policy(text, policy, channelOrgs: Set(config.organizations.map(\.id)), principal: principals.principal)
    }

    /// One peer of each organisation other than the first endorser's.
    func peers(besides first: Medledger_ProposalResponse) -> [String] {
        let endorsed = principals.principal(of: first.endorsement.endorser)?.org
        return config.onePeerOfEachOrganisation(except: endorsed)
    }

    /// Sends a signed envelope to the orderer (on the shared broadcast stream). With several ordering
    /// endpoints (a raft cluster), an envelope that was not acknowledged (the orderer was unreachable or
    /// answered 503, e.g. while a new leader is elected) is sent again, the same envelope with the same
    /// tx id, to the next endpoint, for up to `failoverSeconds`; a retry answered 409 got in the first
    /// time and its commit is awaited.
    public func broadcast(_ envelope: Medledger_Envelope) async throws {
        let others = config.orderer.endpoints.compactMap(NodeAddress.init).filter { $0 != ordererAddress }
        let endpoints = [ordererAddress] + others
        guard endpoints.count > 1 else { return try await broadcast(envelope, to: ordererAddress) }
        try await OrderingFailover.send(to: endpoints, for: Self.failoverSeconds, status: Self.status(of:)) { address in
            try await self.broadcast(envelope, to: address)
        }
    }

    /// How long a broadcast keeps trying other ordering endpoints before it gives up.
    public static var failoverSeconds: Int64 { SubmitTiming.failoverSeconds }

    /// The EMR-IG status a failed call carries, if it is one of this client's failures.
    public static func status(of error: any Error) -> Int? {
        (error as? Failure)?.status ?? (error as? CallFailure)?.status
    }
    /// How long a broadcast stream may leave calls unanswered before the next endpoint is tried. A
    /// frozen or cut-off orderer keeps its connection open and answers nothing (`PipelinedStream`'s
    /// `stallAfter`; the connection itself goes when keepalive drops it). Far above a loaded cluster's
    /// commit latency, and measured from the last answer, so a busy orderer never trips it.
    static let attemptSeconds = 5

    private func broadcast(_ envelope: Medledger_Envelope, to address: NodeAddress) async throws {
        let r = try await broadcastResponse(envelope, to: address)
        guard r.status == 200 else {
            throw Failure(status: Int(r.status), message: "orderer refused the transaction: \(r.message)")
        }
    }

    /// The orderer's answer; a call that failed throws (`CallFailure`).
    func broadcastResponse(
        _ envelope: Medledger_Envelope, to address: NodeAddress
    ) async throws
        -> Medledger_BroadcastResponse
    {
        let orderer = try connection(address)
        do { return try await orderer.broadcaster.call(envelope) } catch let e
            as PipelinedStream<Medledger_Envelope, Medledger_BroadcastResponse>.Ended
        {
            throw Self.failure(e, e.underlying, at: orderer.address)
        } catch { throw CallFailure.classify(error) }
    }

    // MARK: Ledger reads and events

    public func commitStatus(txID: String, waitMs: UInt32) async throws -> Medledger_CommitStatusResponse {
        var req = Medledger_CommitStatusRequest()
        req.channel = channel
        req.txID = txID
        req.waitMs = waitMs
        do { return try await primary.peer.commitStatus(req) } catch { throw CallFailure.classify(error) }
    }

    public func transaction(_ txID: String) async throws -> Medledger_GetTransactionResponse {
        var req = Medledger_GetTransactionRequest()
        req.channel = channel
        req.txID = txID
        do { return try await primary.peer.getTransaction(req) } catch { throw CallFailure.classify(error) }
    }

    public func block(_ number: UInt64?) async throws -> Medledger_Block {
        var req = Medledger_GetBlockRequest()
        req.channel = channel
        if let number { req.number = number } else { req.latest = true }
        do { return try await primary.peer.getBlock(req) } catch { throw CallFailure.classify(error) }
    }

    /// Streams blocks (whole or filtered) from `start`; `body` returns false to stop.
    public func blocks(
        from start: UInt64, filtered: Bool, follow: Bool = true,
        _ body: @escaping @Sendable (Medledger_DeliverResponse) async throws -> Bool
    ) async throws {
        var req = Medledger_DeliverRequest()
        req.channel = channel
        req.start = start
        req.follow = follow
        req.filtered = filtered
        do {
            try await primary.peer.deliver(req) { response in
                for try await m in response.messages {
                    if try await !body(m) { return }
                }
            }
        } catch { throw CallFailure.classify(error) }
    }

    /// Streams a chaincode's events from block `start`; `body` returns false to stop.
    public func chaincodeEvents(
        chaincode: String, from start: UInt64 = 0,
        _ body: @escaping @Sendable (Medledger_ChaincodeEventsResponse) async throws -> Bool
    ) async throws {
        var req = Medledger_ChaincodeEventsRequest()
        req.channel = channel
        req.chaincode = chaincode
        req.start = start
        do {
            try await primary.peer.chaincodeEvents(req) { response in
                for try await m in response.messages {
                    if try await !body(m) { return }
                }
            }
        } catch { throw CallFailure.classify(error) }
    }
}
