import Foundation
import GRPCCore
import LedgerAudit
import LedgerChannel
import LedgerConsensus
import LedgerCore
import LedgerIdentity
import LedgerIncidents
import LedgerOrdering
import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
import LedgerRPC
import LedgerStorage
import LedgerTransport
import MedRecords
import Synchronization

/// Who may read a channel's ledger whole (blocks, any transaction, every event payload): node
/// identities and administrators of organisations that run a peer or orderer of the channel — their
/// nodes hold the ledger anyway. Everyone else reads records through chaincode queries, which apply
/// `medrecords`' rules, and sees only their own transactions. docs/ACCESS.md has the table.
enum LedgerAccess {
    static func holdsLedger(_ caller: AuthenticatedIdentity, _ ctx: ChannelContext) -> Bool {
        guard caller.role == .node || caller.role == .admin else { return false }
        return ctx.holdsLedger(caller.org)
    }

    static func eventAudience(_ caller: AuthenticatedIdentity, _ ctx: ChannelContext) -> EventAudience {
        holdsLedger(caller, ctx) ? .ledgerHolder : .creator(org: caller.org, pid: caller.pid)
    }
}

/// Peer API (peer.proto): endorsement, commit status, block and chaincode events, channels.
extension PeerChannel {
    /// Where `txID` committed, waiting up to `waitingMs` for blocks to bring it; nil when it did not
    /// come in time, the channel closed, or `until` says to stop (checked at each new block).
    func commit(of txID: String, waitingMs: Int, until stop: () -> Bool) async -> TxLocation? {
        let deadline = MonotonicTime.nowMs() + Int64(waitingMs)
        while true {
            let height = notifier.height
            if let loc = try? ledger.transaction(id: txID) { return loc }
            let left = deadline - MonotonicTime.nowMs()
            if left <= 0 || stop() || notifier.isClosed { return nil }
            await notifier.wait(untilAbove: height, timeoutMilliseconds: Int(left) + 1)
        }
    }
}

struct PeerService: Medledger_Peer.SimpleServiceProtocol {
    let runtime: PeerRuntime
    let nodeOrg: String
    let audit: AuditLog?
    var incidents: IncidentDesk? = nil

    /// Refusal for a caller who may not read the whole ledger of `ch` (docs/ACCESS.md).
    static func requireLedgerHolder(_ caller: AuthenticatedIdentity, _ ch: PeerChannel, _ what: String) throws {
        guard LedgerAccess.holdsLedger(caller, ch.context) else {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "\(what) are for nodes and administrators of organisations that run a peer or orderer of channel \(ch.channelName); read records through chaincode queries"
            )
        }
    }

    /// The channel, if the caller's organisation is one of its members; 404 otherwise (a non-member
    /// may not learn which channels exist).
    func channel(_ name: String, for caller: AuthenticatedIdentity) throws -> PeerChannel {
        guard let ch = runtime.channel(name, visibleTo: caller.org) else {
            throw RPCError(code: .notFound, message: "no channel \(name.debugDescription) on this node")
        }
        return ch
    }

    func processProposal(
        request: Medledger_SignedProposal, context: ServerContext
    ) async throws -> Medledger_ProposalResponse {
        switch endorse(request, caller: try context.requireCaller()) {
        case .success(let r): return r
        case .failure(let e): throw StatusMapping.rpcError(status: e.status, message: e.message)
        }
    }

    /// Batches of proposals on one stream. Each batch is endorsed on every core, and the answers are
    /// written in the order the proposals came (the client matches them by position).
    func processProposals(
        request: RPCAsyncSequence<Medledger_SignedProposalBatch, any Error>,
        response: RPCWriter<Medledger_ProposalStreamResponseBatch>, context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        try await InOrderPipeline.run(request, response) { batch in
            var m = Medledger_ProposalStreamResponseBatch()
            m.responses = batch.proposals.map { _ in
                var r = Medledger_ProposalStreamResponse()
                r.rejectionStatus = 503
                r.rejectionMessage = InOrderPipeline.overflowMessage
                return r
            }
            return m
        } work: { batch in
            var m = Medledger_ProposalStreamResponseBatch()
            let batchSignature = batch.batchSignature.isEmpty ? nil : ProposalBatchSignature(batch)
            m.responses = await ParallelMap.run(batch.proposals) { proposal in
                var r = Medledger_ProposalStreamResponse()
                switch self.endorse(proposal, caller: caller, batchSignature: batchSignature) {
                case .success(let endorsed): r.response = endorsed
                case .failure(let e):
                    // Unary calls' refusals are seen by `IncidentInterceptor`; these are inside a stream.
                    self.incidents?.observe(.refused(status: Int(e.status)), by: caller)
                    r.rejectionStatus = e.status
                    r.rejectionMessage = e.message
                }
                return r
            }
            return m
        }
    }

    /// Checks and simulates one proposal for `caller`; a refusal carries its EMR-IG status.
    func endorse(
        _ request: Medledger_SignedProposal, caller: AuthenticatedIdentity,
        batchSignature: ProposalBatchSignature? = nil
    ) -> Result<Medledger_ProposalResponse, ProposalRejection> {
        let parsed: ParsedProposal
        do { parsed = try ParsedProposal(request, batchSignature: batchSignature) } catch { return .failure(error) }
        guard let ch = runtime.channel(parsed.channel, visibleTo: caller.org) else {
            return .failure(ProposalRejection(404, "no channel \(parsed.channel.debugDescription) on this node"))
        }
        let result: Result<Medledger_ProposalResponse, ProposalRejection>
        do {
            let ledger = ch.ledger
            result = .success(
                try runtime.endorser.process(
                    parsed, context: ch.context, state: try ledger.stateSnapshot(), now: Date()
                ) { try ledger.transaction(id: $0) != nil })
        } catch let e as ProposalRejection {
            result = .failure(e)
        } catch {
            result = .failure(ProposalRejection(500, "internal error"))
        }
        report(parsed, result, caller)
        return result
    }

    /// Records whose records a `medrecords` read asked for — on the audit log, one line per patient
    /// (what the patient's `AuditTrail` shows), and to the anomaly rules — and tells the rules which
    /// proposals the chaincode refused (its 401/403/404 come back as answers, not as failed calls).
    func report(
        _ parsed: ParsedProposal, _ result: Result<Medledger_ProposalResponse, ProposalRejection>,
        _ caller: AuthenticatedIdentity
    ) {
        guard case .success(let endorsed) = result, incidents != nil || audit != nil else { return }
        let status = Int(endorsed.response.status)
        if [401, 403, 404].contains(status) { incidents?.observe(.refused(status: status), by: caller) }
        guard parsed.payload.chaincodeName == "medrecords" else { return }
        let input = parsed.payload.input
        let patients = ReadSubjects.patients(
            function: input.function, args: input.args.map { [UInt8]($0) },
            answer: status == 200 ? [UInt8](endorsed.response.payload) : nil)
        guard !patients.isEmpty else { return }
        incidents?.observe(.patientsRead(patients), by: caller)
        let outcome: AuditOutcome = status == 200 ? .success : status < 500 ? .denied : .failed
        for patient in patients {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "record.read", target: patient, outcome: outcome,
                    detail: "\(input.function) on channel \(parsed.channel), status \(status)"))
        }
    }

    func commitStatus(
        request: Medledger_CommitStatusRequest, context: ServerContext
    ) async throws -> Medledger_CommitStatusResponse {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        var r = Medledger_CommitStatusResponse()
        guard
            let loc = await ch.commit(
                of: request.txID, waitingMs: Int(min(request.waitMs, 120_000)), until: { Task.isCancelled })
        else { return r }
        r.committed = true
        r.code = loc.code
        r.blockNumber = loc.blockNum
        return r
    }

    func deliver(
        request: Medledger_DeliverRequest, response: RPCWriter<Medledger_DeliverResponse>, context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        if !request.filtered { try Self.requireLedgerHolder(caller, ch, "whole blocks") }
        let audience = LedgerAccess.eventAudience(caller, ch.context)
        try await BlockStreaming.stream(from: ch, start: request.start, follow: request.follow) { block in
            var m = Medledger_DeliverResponse()
            if request.filtered {
                m.filteredBlock = ch.filteredBlock(block, for: audience)
            } else {
                m.block = block
            }
            try await response.write(m)
        }
    }

    func chaincodeEvents(
        request: Medledger_ChaincodeEventsRequest, response: RPCWriter<Medledger_ChaincodeEventsResponse>,
        context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        let audience = LedgerAccess.eventAudience(caller, ch.context)
        try await BlockStreaming.stream(from: ch, start: request.start, follow: true) { block in
            let events = ch.filteredBlock(block, for: audience).transactions.filter { $0.code == .valid }
                .flatMap(\.events).filter { $0.chaincodeName == request.chaincode }
            guard !events.isEmpty else { return }
            var m = Medledger_ChaincodeEventsResponse()
            m.blockNumber = block.header.number
            m.events = events
            try await response.write(m)
        }
    }

    func joinChannel(
        request: Medledger_JoinChannelRequest, context: ServerContext
    ) async throws -> Medledger_JoinChannelResponse {
        let caller = try context.requireCaller()
        guard caller.role == .admin, caller.org == nodeOrg else {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "channel.join", target: "-", outcome: .denied,
                    detail: "only an administrator of \(nodeOrg) may join this node to a channel"))
            throw RPCError(
                code: .permissionDenied, message: "only an administrator of \(nodeOrg) may join this node to a channel")
        }
        let block: Medledger_Block
        do { block = try Medledger_Block(serializedBytes: request.genesisBlock) } catch {
            throw RPCError(code: .invalidArgument, message: "genesis block does not parse: \(error)")
        }
        do {
            let ch = try runtime.join(genesis: block)
            audit?.note(
                AuditEvent(actor: caller.auditActor, action: "channel.join", target: ch.channelName, outcome: .success))
            var r = Medledger_JoinChannelResponse()
            r.channel = ch.channelName
            r.height = ch.ledger.height
            return r
        } catch let e as ChannelConfigError {
            throw RPCError(code: .invalidArgument, message: e.description)
        } catch let e as PeerChannelError {
            throw RPCError(code: .alreadyExists, message: e.description)
        }
    }

    func listChannels(
        request: Medledger_ListChannelsRequest, context: ServerContext
    ) async throws -> Medledger_ListChannelsResponse {
        let caller = try context.requireCaller()
        var r = Medledger_ListChannelsResponse()
        r.channels = runtime.all.filter { $0.context.organizationIDs.contains(caller.org) }.map { ch in
            var s = Medledger_ChannelSummary()
            s.channel = ch.channelName
            s.height = ch.ledger.height
            s.configSequence = ch.context.sequence
            return s
        }
        return r
    }

    func getChannelConfig(
        request: Medledger_ChannelConfigRequest, context: ServerContext
    ) async throws -> Medledger_ChannelConfigResponse {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        var r = Medledger_ChannelConfigResponse()
        r.config = ch.context.config
        r.configBlock = ch.context.configBlock
        return r
    }

    func getBlock(request: Medledger_GetBlockRequest, context: ServerContext) async throws -> Medledger_Block {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        try Self.requireLedgerHolder(caller, ch, "whole blocks")
        let n = request.latest ? ch.ledger.height - 1 : request.number
        guard let b = try ch.ledger.block(number: n) else {
            throw RPCError(
                code: .notFound, message: "no block \(n) on channel \(ch.channelName) (height \(ch.ledger.height))")
        }
        return b
    }

    func getTransaction(
        request: Medledger_GetTransactionRequest, context: ServerContext
    ) async throws -> Medledger_GetTransactionResponse {
        let caller = try context.requireCaller()
        let ch = try channel(request.channel, for: caller)
        let notFound = RPCError(
            code: .notFound, message: "no transaction \(request.txID.debugDescription) on channel \(ch.channelName)")
        guard let loc = try ch.ledger.transaction(id: request.txID),
            let p = try ch.ledger.inclusionProof(txID: request.txID)
        else { throw notFound }
        // Anyone else's transaction is as absent as one that does not exist: its arguments and writes
        // are records the caller may only read through chaincode queries.
        if !LedgerAccess.holdsLedger(caller, ch.context) {
            guard let env = try? Medledger_Envelope(serializedBytes: p.envelope),
                let payload = try? Medledger_Payload(serializedBytes: env.payload),
                BlockEvents.isEntitled(
                    .creator(org: caller.org, pid: caller.pid), creator: payload.signatureHeader.creator)
            else { throw notFound }
        }
        var r = Medledger_GetTransactionResponse()
        r.envelope = Data(p.envelope)
        r.code = loc.code
        r.blockNumber = loc.blockNum
        r.txNumber = loc.txNum
        r.header = p.header
        r.proof.leafIndex = UInt64(p.proof.leafIndex)
        r.proof.treeSize = UInt64(p.proof.treeSize)
        r.proof.path = p.proof.path.map { Data($0) }
        return r
    }
}

/// Ordering API (peer.proto `Orderer`).
struct OrdererService: Medledger_Orderer.SimpleServiceProtocol {
    let orderer: OrderingServices
    let nodeOrg: String
    let audit: AuditLog?

    /// Answers once the envelope is in a durable block (200), or with the reason it never will be.
    func broadcast(request: Medledger_Envelope, context: ServerContext) async throws -> Medledger_BroadcastResponse {
        _ = try context.requireCaller()
        return await accept([request])[0]
    }

    /// Orders `envelopes` (their signatures are checked on every core) and answers each, in order, once
    /// its block is durable or it is refused.
    func accept(_ envelopes: [Medledger_Envelope]) async -> [Medledger_BroadcastResponse] {
        let tickets = await ParallelMap.run(envelopes) { envelope in
            let ticket = OrderingTicket()
            do { orderer.submit(try envelope.serializedBytes()) { ticket.complete($0) } } catch {
                ticket.complete(OrderingRejection(400, "envelope does not serialize: \(error)"))
            }
            return ticket
        }
        var responses = [Medledger_BroadcastResponse]()
        responses.reserveCapacity(tickets.count)
        for t in tickets {
            var r = Medledger_BroadcastResponse()
            if let refusal = await t.outcome() {
                r.status = refusal.status
                r.message = refusal.message
            } else {
                r.status = 200
            }
            responses.append(r)
        }
        return responses
    }

    /// Batches of envelopes on one stream. Several batches are in flight at once (each waits for its
    /// block), answered in order; past `InOrderPipeline.inFlightMax` a batch is refused with 503.
    func broadcastStream(
        request: RPCAsyncSequence<Medledger_EnvelopeBatch, any Error>,
        response: RPCWriter<Medledger_BroadcastResponseBatch>, context: ServerContext
    ) async throws {
        _ = try context.requireCaller()
        try await InOrderPipeline.run(request, response) { batch in
            var m = Medledger_BroadcastResponseBatch()
            m.responses = batch.envelopes.map { _ in
                var r = Medledger_BroadcastResponse()
                r.status = 503
                r.message = InOrderPipeline.overflowMessage
                return r
            }
            return m
        } work: { batch in
            var m = Medledger_BroadcastResponseBatch()
            m.responses = await self.accept(batch.envelopes)
            return m
        }
    }

    func deliver(
        request: Medledger_DeliverRequest, response: RPCWriter<Medledger_DeliverResponse>, context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        let notFound = RPCError(
            code: .notFound, message: "this orderer does not order channel \(request.channel.debugDescription)")
        guard let chain = orderer.chain(request.channel), let ctx = orderer.context(of: request.channel) else {
            throw notFound
        }
        guard ctx.organizationIDs.contains(caller.org) else { throw notFound }
        guard LedgerAccess.holdsLedger(caller, ctx) else {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "only nodes and administrators of organisations that run a peer or orderer of channel \(request.channel) may pull its blocks"
            )
        }
        try await BlockStreaming.stream(from: chain, start: request.start, follow: request.follow) { block in
            var m = Medledger_DeliverResponse()
            m.block = block
            try await response.write(m)
        }
    }

    func joinChannel(
        request: Medledger_JoinChannelRequest, context: ServerContext
    ) async throws -> Medledger_JoinChannelResponse {
        let caller = try context.requireCaller()
        guard caller.role == .admin, caller.org == nodeOrg else {
            throw RPCError(
                code: .permissionDenied,
                message: "only an administrator of \(nodeOrg) may join the orderer to a channel")
        }
        let block: Medledger_Block
        do { block = try Medledger_Block(serializedBytes: request.genesisBlock) } catch {
            throw RPCError(code: .invalidArgument, message: "genesis block does not parse: \(error)")
        }
        do {
            // A raft consenter joining from a configuration block pulls the chain first: on a thread
            // of its own, not the cooperative pool.
            let orderer = self.orderer
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                Thread {
                    do { try orderer.join(genesis: block) } catch { return done.resume(throwing: error) }
                    done.resume()
                }.start()
            }
        } catch let e as ChannelConfigError {
            throw RPCError(code: .invalidArgument, message: e.description)
        } catch let e as OrderingRejection {
            throw StatusMapping.rpcError(status: e.status, message: e.message)
        }
        audit?.note(AuditEvent(actor: caller.auditActor, action: "orderer.join", target: "-", outcome: .success))
        var r = Medledger_JoinChannelResponse()
        r.channel = (try? ConfigTransaction.config(in: [UInt8](block.data.envelopes.first ?? Data())).channelID) ?? ""
        r.height = orderer.channels().first { $0.name == r.channel }?.height ?? 0
        return r
    }

    /// Consensus status of a channel: for nodes and administrators of its organisations (no record
    /// data, only who orders and how far).
    func status(
        request: Medledger_OrdererStatusRequest, context: ServerContext
    ) async throws -> Medledger_OrdererStatusResponse {
        let caller = try context.requireCaller()
        let ctx = try channelFor(caller, request.channel)
        guard caller.role == .node || caller.role == .admin else {
            throw RPCError(code: .permissionDenied, message: "only nodes and administrators see the orderer's status")
        }
        var r = Medledger_OrdererStatusResponse()
        r.channel = ctx.channel
        r.type = ctx.ordering.kind.rawValue
        let summary = orderer.channels().first { $0.name == ctx.channel }
        r.height = summary?.height ?? 0
        r.stoppedReason = summary?.stoppedReason ?? ""
        guard ctx.ordering.kind == .raft, let s = await orderer.consensusStatus(of: ctx.channel) else {
            r.role = "leader"
            return r
        }
        r.consenterID = s.id
        r.role = s.role.rawValue
        r.leader = s.leader ?? 0
        r.term = s.term
        r.commitIndex = s.commitIndex
        r.appliedIndex = s.appliedIndex
        if let why = s.stoppedReason, r.stoppedReason.isEmpty { r.stoppedReason = why }
        r.consenters = ctx.ordering.consenters.map { c in
            var m = Medledger_ConsenterStatus()
            m.id = c.id
            m.org = c.org
            m.raftAddress = c.raftAddress
            m.endpoint = c.endpoint
            m.raftRole = s.members.first { $0.id == c.id }?.role.rawValue ?? ""
            return m
        }
        return r
    }

    /// Hands raft leadership over. Any administrator of a channel organisation may ask (it moves no
    /// data and changes no rule; it is audited); it must reach the current leader.
    func transferLeadership(
        request: Medledger_TransferLeadershipRequest, context: ServerContext
    ) async throws -> Medledger_TransferLeadershipResponse {
        let caller = try context.requireCaller()
        let ctx = try channelFor(caller, request.channel)
        guard caller.role == .admin else {
            throw RPCError(
                code: .permissionDenied,
                message: "only an administrator of a channel organisation may move raft leadership")
        }
        guard ctx.ordering.kind == .raft, let engine = orderer.raft?.engine(of: ctx.channel) else {
            throw RPCError(code: .failedPrecondition, message: "channel \(ctx.channel) is not ordered by raft here")
        }
        if request.to != 0, !ctx.ordering.consenters.contains(where: { $0.id == request.to }) {
            throw RPCError(code: .invalidArgument, message: "channel \(ctx.channel) has no consenter \(request.to)")
        }
        do {
            let leader = try await engine.transferLeadership(to: request.to == 0 ? nil : request.to)
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "orderer.transfer-leadership", target: ctx.channel,
                    outcome: .success, detail: "leader \(leader ?? 0)"))
            var r = Medledger_TransferLeadershipResponse()
            r.leader = leader ?? 0
            return r
        } catch {
            if case .notLeader(let leader) = error, let l = leader,
                let c = ctx.ordering.consenters.first(where: { $0.id == l })
            {
                throw RPCError(
                    code: .failedPrecondition,
                    message:
                        "this consenter is not the raft leader of \(ctx.channel); ask the leader, consenter \(l) at \(c.endpoint)"
                )
            }
            throw RPCError(code: .unavailable, message: "\(error)")
        }
    }

    /// The channel's configuration if the caller's organisation belongs to it (else 404, as for a
    /// channel this orderer does not order).
    private func channelFor(_ caller: AuthenticatedIdentity, _ channel: String) throws -> ChannelContext {
        guard let ctx = orderer.context(of: channel), ctx.organizationIDs.contains(caller.org) else {
            throw RPCError(code: .notFound, message: "this orderer does not order channel \(channel.debugDescription)")
        }
        return ctx
    }

    func listChannels(
        request: Medledger_ListChannelsRequest, context: ServerContext
    ) async throws -> Medledger_ListChannelsResponse {
        let caller = try context.requireCaller()
        var r = Medledger_ListChannelsResponse()
        r.channels = orderer.channels().filter {
            orderer.context(of: $0.name)?.organizationIDs.contains(caller.org) == true
        }.map { c in
            var s = Medledger_ChannelSummary()
            s.channel = c.name
            s.height = c.height
            s.stoppedReason = c.stoppedReason ?? ""
            return s
        }
        return r
    }
}

/// The outcome of one submitted envelope, awaited by the broadcast handler.
final class OrderingTicket: Sendable {
    private struct State {
        var outcome: OrderingRejection??
        var waiter: CheckedContinuation<OrderingRejection?, Never>?
    }
    private let state = Mutex(State())

    func complete(_ outcome: OrderingRejection?) {
        let waiter = state.withLock { s -> CheckedContinuation<OrderingRejection?, Never>? in
            s.outcome = .some(outcome)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: outcome)
    }

    /// nil: ordered and durable; otherwise why not.
    func outcome() async -> OrderingRejection? {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> OrderingRejection?? in
                if let o = s.outcome { return .some(o) }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}

/// `items.map(transform)` split over the cores, order kept.
enum ParallelMap {
    static func run<T: Sendable, U: Sendable>(_ items: [T], _ transform: @escaping @Sendable (T) -> U) async -> [U] {
        let parts = min(Cores.available, items.count)
        guard parts > 1 else { return items.map(transform) }
        let size = (items.count + parts - 1) / parts
        return await withTaskGroup(of: (Int, [U]).self) { group in
            for p in 0..<parts {
                let slice = Array(items[min(p * size, items.count)..<min((p + 1) * size, items.count)])
                group.addTask { (p, slice.map(transform)) }
            }
            var chunks = [[U]](repeating: [], count: parts)
            for await (p, chunk) in group { chunks[p] = chunk }
            return chunks.flatMap { $0 }
        }
    }
}

/// Sends blocks from `start` and, with `follow`, every block committed after, until the caller
/// goes away.
enum BlockStreaming {
    static func stream(
        from source: any BlockSource, start: UInt64, follow: Bool, send: (Medledger_Block) async throws -> Void
    ) async throws {
        var next = start
        while !Task.isCancelled {
            let height = source.notifier.height
            while next < height {
                guard let b = try source.block(number: next) else { break }
                try await send(b)
                next += 1
            }
            if !follow { return }
            await source.notifier.wait(untilAbove: next)
            if source.notifier.isClosed { return }
        }
    }
}
