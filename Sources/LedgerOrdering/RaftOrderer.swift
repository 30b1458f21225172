import Foundation
import LedgerChannel
import LedgerConsensus
import LedgerCore
import LedgerIdentity
import LedgerOrderingCore
import LedgerProtos
import LedgerStorage
import Synchronization

/// What a follower does with an envelope: hands it to the leader's ordering service (over mutual TLS,
/// as any client would) and relays the answer. Clients never need to know who leads.
public protocol LeaderForwarding: Sendable {
    func forward(_ envelope: [UInt8], channel: String, to endpoint: String) async -> OrderingRejection?
}

/// Fetches blocks a consenter is missing from the other consenters' ordering services (catch-up after
/// a snapshot). Blocking: it runs on the raft thread, which waits for it.
public protocol BlockPulling: Sendable {
    func pull(
        channel: String, from first: UInt64, through last: UInt64, endpoints: [String]
    ) throws -> [Medledger_Block]
}

/// Makes the consensus engine of one channel (a `RaftServer` in production; tests may use others).
public typealias ConsensusEngineFactory =
    @Sendable (
        _ channel: String, _ me: OrderingConfig.Consenter, _ machine: any ReplicatedStateMachine,
        _ options: Medledger_RaftOptions
    ) throws -> any ConsensusEngine

/// The raft ordering service. Per channel, like Fabric's etcdraft: the leader cuts blocks with
/// `BlockCutter` (the same `CuttingLoop` as solo, so batching is as adaptive), signs each block and
/// proposes it whole as one raft entry; every consenter writes a block when its entry applies, and only
/// at height+1; followers forward broadcasts to the leader. A raft snapshot is the last block's number
/// and hash; a consenter behind a snapshot pulls the missing blocks. The consenter set lives in the
/// channel configuration and changes one consenter per configuration update.
public final class RaftOrderer: OrderingService {
    let store: LedgerStore
    let signer: SigningIdentity
    /// This node's TLS public key (DER SPKI): the consenter entry carrying it is this node.
    let tlsPublicKey: [UInt8]
    let engines: ConsensusEngineFactory
    let peersChanged: @Sendable (_ channel: String, _ consenters: [OrderingConfig.Consenter]) -> Void
    let forwarder: (any LeaderForwarding)?
    let puller: (any BlockPulling)?
    let gate: (any RevocationGate)?
    let clock: @Sendable () -> Date
    let log: @Sendable (String) -> Void
    private let chains = Mutex<[String: RaftChannel]>([:])

    /// `engines`: the consensus engine for a channel; `peersChanged`: the transport's view of a
    /// channel's consenters (called before the engine starts and after each configuration block).
    public init(
        store: LedgerStore, signer: SigningIdentity, tlsPublicKey: [UInt8], engines: @escaping ConsensusEngineFactory,
        peersChanged: @escaping @Sendable (String, [OrderingConfig.Consenter]) -> Void,
        forwarder: (any LeaderForwarding)?, puller: (any BlockPulling)?,
        gate: (any RevocationGate)? = nil, clock: @escaping @Sendable () -> Date = { Date() },
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.store = store
        self.signer = signer
        self.tlsPublicKey = tlsPublicKey
        self.engines = engines
        self.peersChanged = peersChanged
        self.forwarder = forwarder
        self.puller = puller
        self.gate = gate
        self.clock = clock
        self.log = log
        // A channel whose configuration no longer names this node (removed, or an onboarding pull not
        // yet at the block that added it) stays closed.
        for (ledger, ctx) in try store.orderedChannels(.raft, log: log) {
            guard let me = ctx.ordering.consenters.first(where: { $0.publicKey == tlsPublicKey }) else { continue }
            let genesis = try ledger.block(number: 0).map { try ConfigTransaction.verifyGenesis($0) }
            try open(ledger, ctx, me: me, genesis: genesis)
        }
    }

    private func open(
        _ ledger: ChannelLedger, _ ctx: ChannelContext, me: OrderingConfig.Consenter, genesis: ChannelContext?
    ) throws {
        let channel = RaftChannel(ledger: ledger, context: ctx, me: me, orderer: self)
        peersChanged(ctx.channel, ctx.ordering.consenters)
        let engine = try engines(ctx.channel, me, channel.machine, ctx.config.orderer.raft)
        // Only the genesis consenters bootstrap (all with the same configuration entry); a consenter
        // added later starts with an empty log and waits for the leader to bring it in.
        let initial = genesis?.ordering.consenters ?? []
        let bootstrap =
            initial.contains { $0.id == me.id }
            ? initial.map { ConsensusMember(id: $0.id, address: $0.raftAddress, role: .voter) } : nil
        try channel.start(engine: engine, bootstrap: bootstrap)
        chains.withLock { $0[ctx.channel] = channel }
    }

    /// Joins a channel from its genesis block, or (a consenter added after the genesis) from the
    /// configuration block that made this node a consenter: the administrator vouches for that block,
    /// and every block from the genesis to it is pulled from the other consenters and must chain to
    /// it. Joining again after an interrupted pull resumes it. Blocking (pulls over the network).
    public func join(genesis block: Medledger_Block) throws {
        guard block.header.number > 0 else { return try joinFromGenesis(block) }
        guard block.metadata.lastConfigBlock == block.header.number, let env = block.data.envelopes.first else {
            throw OrderingRejection(
                400,
                "block \(block.header.number) is not a configuration block; join with the genesis block, or with the configuration block that made this node a consenter"
            )
        }
        let vouched = try ChannelContext(
            config: try ConfigTransaction.config(in: [UInt8](env)), configBlock: block.header.number)
        guard vouched.ordering.kind == .raft,
            let me = vouched.ordering.consenters.first(where: { $0.publicKey == tlsPublicKey })
        else {
            throw OrderingRejection(
                403,
                "this node's TLS key is not a raft consenter in configuration block \(block.header.number) of channel \(vouched.channel)"
            )
        }
        if chains.withLock({ $0[vouched.channel] != nil }) {
            throw OrderingRejection(409, "this orderer already orders channel \(vouched.channel)")
        }
        guard let puller else { throw OrderingRejection(500, "this node cannot pull blocks") }
        let endpoints = vouched.ordering.consenters.filter { $0.id != me.id }.map(\.endpoint)
        let ledger: ChannelLedger
        if try store.channelNames().contains(vouched.channel) {
            ledger = try store.channel(vouched.channel)
            log("orderer: resuming the join of channel \(vouched.channel) at height \(ledger.height)")
        } else {
            let genesis = try puller.pull(channel: vouched.channel, from: 0, through: 0, endpoints: endpoints)[0]
            _ = try ConfigTransaction.verifyGenesis(genesis)
            ledger = try store.createChannel(vouched.channel, genesis: genesis)
        }
        var ctx = try ChannelContext.current(in: ledger)
        try BlockCatchUp.commit(
            into: ledger, through: block.header.number, context: &ctx, endpoints: endpoints, puller: puller,
            channel: vouched.channel)
        guard let tip = try ledger.block(number: block.header.number), tip.header.headerHash == block.header.headerHash
        else {
            throw OrderingRejection(
                409,
                "the chain pulled for \(vouched.channel) does not lead to the configuration block given (block \(block.header.number) differs); not joined"
            )
        }
        log(
            "orderer: channel \(vouched.channel) pulled through block \(block.header.number); raft consenter \(me.id) waits for the leader to add it"
        )
        let genesisContext = try ledger.block(number: 0).map { try ConfigTransaction.verifyGenesis($0) }
        try open(ledger, ctx, me: me, genesis: genesisContext)
    }

    private func joinFromGenesis(_ genesis: Medledger_Block) throws {
        let ctx = try ConfigTransaction.verifyGenesis(genesis)
        guard ctx.ordering.kind == .raft else {
            throw OrderingRejection(400, "channel \(ctx.channel) is ordered by solo, not by a raft cluster")
        }
        guard let me = ctx.ordering.consenters.first(where: { $0.publicKey == tlsPublicKey }) else {
            throw OrderingRejection(
                403,
                "this node's TLS key is not a raft consenter in the genesis block of channel \(ctx.channel); a consenter added later joins with the configuration block that added it (medledger block get config --out FILE)"
            )
        }
        if chains.withLock({ $0[ctx.channel] != nil }) {
            throw OrderingRejection(409, "this orderer already orders channel \(ctx.channel)")
        }
        let ledger = try store.createChannel(ctx.channel, genesis: genesis)
        try open(ledger, ctx, me: me, genesis: ctx)
    }

    public func chain(_ channel: String) -> (any BlockSource)? { chains.withLock { $0[channel] } }

    public func context(of channel: String) -> ChannelContext? { chains.withLock { $0[channel] }?.context }

    /// The consensus view of one channel (for `orderer status`).
    public func consensusStatus(of channel: String) async -> ConsensusStatus? {
        guard let c = chains.withLock({ $0[channel] }) else { return nil }
        return await c.engine?.status()
    }

    public func engine(of channel: String) -> (any ConsensusEngine)? { chains.withLock { $0[channel] }?.engine }

    /// Blocks cut on each channel since the last call (for the operations endpoint's metrics).
    public func takeCuts() -> [String: [CutRecord]] {
        chains.withLock { Dictionary(uniqueKeysWithValues: $0.values.map { ($0.channelName, $0.takeCuts()) }) }
    }

    public func channels() -> [OrderedChannelStatus] {
        chains.withLock {
            $0.values.map {
                OrderedChannelStatus(
                    name: $0.channelName, height: $0.ledger.height, stoppedReason: $0.stoppedReason,
                    queueDepth: $0.queueDepth)
            }
        }
        .sorted { $0.name < $1.name }
    }

    public func submit(_ envelope: [UInt8], done: @escaping @Sendable (OrderingRejection?) -> Void) {
        let env: Medledger_Envelope
        let payload: Medledger_Payload
        do throws(OrderingRejection) { (env, payload) = try EnvelopeAdmission.parse(envelope) } catch {
            return done(error)
        }
        submit(envelope, env: env, payload: payload, done: done)
    }

    /// `submit` of an envelope already parsed (by `OrderingServices`, to find the channel's owner).
    func submit(
        _ envelope: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload,
        done: @escaping @Sendable (OrderingRejection?) -> Void
    ) {
        let name = payload.channelHeader.channelID
        guard let chain = chains.withLock({ $0[name] }) else {
            return done(OrderingRejection(404, "this orderer does not order channel \(name.debugDescription)"))
        }
        chain.accept(envelope, env: env, payload: payload, done: done)
    }

    public func shutdown() {
        let all = chains.withLock { Array($0.values) }
        for c in all { c.stop() }
    }
}

/// One raft-ordered channel on one consenter.
final class RaftChannel: BlockSource, @unchecked Sendable {
    // @unchecked Sendable: mutable state is under locks or confined to the raft thread
    let ledger: ChannelLedger
    let notifier: HeightNotifier
    let me: OrderingConfig.Consenter
    unowned let orderer: RaftOrderer
    private let current: Mutex<ChannelContext>
    private let lastBlockTime: Mutex<Date>
    private let lastMembershipError = Mutex<String?>(nil)
    private let state = Mutex<
        (
            engine: (any ConsensusEngine)?, cutting: CuttingLoop?, barrierTerm: UInt64, membership: Task<Void, Never>?,
            stopped: String?
        )
    >((nil, nil, 0, nil, nil))
    private(set) lazy var machine = BlockStateMachine(channel: self)

    var channelName: String { ledger.channel }
    var context: ChannelContext { current.withLock { $0 } }
    var engine: (any ConsensusEngine)? { state.withLock { $0.engine } }
    var queueDepth: Int { state.withLock { $0.cutting }?.queueDepth ?? 0 }
    func takeCuts() -> [CutRecord] { state.withLock { $0.cutting }?.takeCuts() ?? [] }

    var stoppedReason: String? {
        state.withLock { $0.stopped ?? $0.cutting?.stoppedReason } ?? engine?.observed.failure
    }

    init(ledger: ChannelLedger, context: ChannelContext, me: OrderingConfig.Consenter, orderer: RaftOrderer) {
        self.ledger = ledger
        self.notifier = HeightNotifier(height: ledger.height)
        self.me = me
        self.orderer = orderer
        self.current = Mutex(context)
        self.lastBlockTime = Mutex((try? ledger.block(number: ledger.height - 1))?.judgedTime ?? .distantPast)
    }

    func start(engine: any ConsensusEngine, bootstrap: [ConsensusMember]?) throws {
        let cutting = CuttingLoop(
            channel: ledger.channel, batchConfig: { [self] in BatchConfig(self.context.config.batch) },
            writeBlock: { [self] envelopes in try self.proposeBlock(envelopes) }, log: orderer.log)
        state.withLock {
            $0.engine = engine
            $0.cutting = cutting
        }
        try engine.startBlocking(bootstrap: bootstrap)
        // The leader keeps raft membership in line with the configuration: a consenter added while
        // down, or whose promotion timed out, is retried every second until it is in.
        let membership = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                guard let self, !Task.isCancelled else { return }
                await self.reconcileMembership(self.context.ordering.consenters)
            }
        }
        state.withLock { $0.membership = membership }
        orderer.log(
            "orderer: raft consenter \(me.id) (\(me.org)) of channel \(channelName) started at height \(ledger.height)")
    }

    func stop() {
        let (engine, cutting, membership) = state.withLock { ($0.engine, $0.cutting, $0.membership) }
        membership?.cancel()
        cutting?.beginStop()
        cutting?.waitUntilStopped()
        // Waits on the raft thread only: shutdown is synchronous and may run on the cooperative pool.
        engine?.stopBlocking()
        notifier.close()
    }

    func block(number: UInt64) throws -> Medledger_Block? { try ledger.orderedBlock(number: number) }

    // MARK: Broadcast

    func accept(
        _ bytes: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload,
        done: @escaping @Sendable (OrderingRejection?) -> Void
    ) {
        let (engine, cutting, stopped) = state.withLock { ($0.engine, $0.cutting, $0.stopped) }
        if let stopped {
            return done(OrderingRejection(503, "this node no longer orders channel \(channelName): \(stopped)"))
        }
        guard let engine, let cutting else {
            return done(OrderingRejection(503, "raft consenter of channel \(channelName) is starting"))
        }
        let observed = engine.observed
        if observed.role == .leader {
            do throws(OrderingRejection) {
                let admitted = try EnvelopeAdmission.check(
                    bytes, env: env, payload: payload, context: context, ledger: ledger, gate: orderer.gate,
                    now: orderer.clock())
                try cutting.enqueue(
                    CuttingLoop.Item(bytes: bytes, isConfig: admitted.isConfig, txID: admitted.txID, done: done))
            } catch { done(error) }
            return
        }
        if let why = observed.stoppedReason, observed.role == .unavailable {
            return done(
                OrderingRejection(503, "the raft consenter of channel \(channelName) on this node is stopped: \(why)"))
        }
        guard let leader = observed.leader, let target = context.ordering.consenters.first(where: { $0.id == leader })
        else {
            return done(
                OrderingRejection(
                    503,
                    "channel \(channelName) has no raft leader at the moment (no quorum, or an election is running); retry shortly"
                ))
        }
        guard let forwarder = orderer.forwarder else {
            return done(
                OrderingRejection(
                    503, "this consenter is not the raft leader of \(channelName); submit to \(target.endpoint)"))
        }
        // Cheap checks first, so that garbage is refused here and not forwarded.
        do throws(OrderingRejection) {
            _ = try EnvelopeAdmission.check(
                bytes, env: env, payload: payload, context: context, ledger: ledger, gate: orderer.gate,
                now: orderer.clock())
        } catch { return done(error) }
        let channel = channelName
        Task { done(await forwarder.forward(bytes, channel: channel, to: target.endpoint)) }
    }

    // MARK: Cutting (the leader's cutting thread)

    /// Proposes one block and returns once it is written here. Leadership moving meanwhile is a
    /// retryable failure: the submitters are told to retry, and a retry of an envelope that did get in
    /// is refused as already ordered (409).
    private func proposeBlock(_ envelopes: [[UInt8]]) throws {
        guard let engine = engine else { throw RetryableWriteFailure(description: "the raft consenter is stopping") }
        let observed = engine.observed
        guard observed.role == .leader else {
            throw RetryableWriteFailure(description: "consenter \(me.id) is no longer the raft leader")
        }
        do throws(ConsensusError) {
            // A new leader first applies everything its predecessors committed, so that the block it
            // cuts extends the chain every consenter will have.
            if state.withLock({ $0.barrierTerm }) != observed.term {
                try engine.barrierBlocking()
                state.withLock { $0.barrierTerm = observed.term }
            }
            let n = ledger.height
            let time = max(orderer.clock(), lastBlockTime.withLock { $0 })
            let (block, _) = OrderedBlock.make(
                envelopes, number: n, previousHash: ledger.info.tipHash, context: context, signer: orderer.signer,
                at: time, log: orderer.log)
            let bytes: [UInt8]
            do { bytes = try block.serializedBytes() } catch {
                throw ConsensusError.failed("cannot encode block \(n): \(error)")
            }
            try engine.proposeBlocking(bytes)
            // Applied here before the proposal returned: it is ours only if block n is this block.
            guard let written = try? ledger.block(number: n), written.header.headerHash == block.header.headerHash
            else {
                throw ConsensusError.leadershipLost
            }
        } catch {
            switch error {
            case .notLeader, .leadershipLost, .shuttingDown, .noQuorum, .busy:
                throw RetryableWriteFailure(description: "raft: \(error)")
            default:
                throw error
            }
        }
    }

    // MARK: Applying (the raft thread)

    /// Writes a committed block, if it is the next one and properly signed. A block that does not
    /// extend the chain (a deposed leader's, superseded) or is not signed by a consenter's node is
    /// refused the same way on every consenter, since all apply the same log: logged, skipped.
    func apply(_ entry: [UInt8]) throws {
        do { try applyBlock(entry) } catch {
            // The engine stops this consenter (a failed write: the disk); peers must not wait on it.
            _ = stopServing("applying a block failed: \(error)")
            throw error
        }
    }

    private func applyBlock(_ entry: [UInt8]) throws {
        var decision = try decide(entry)
        if case .catchUp(let n) = decision {
            try catchUp(to: n)
            decision = try decide(entry)
        }
        let block: Medledger_Block
        let newContext: ChannelContext?
        switch decision {
        case .skip(let why):
            if let why { orderer.log("orderer: \(why)") }
            return
        case .catchUp(let n):
            throw ConsensusError.failed("channel \(channelName) caught up yet still lacks the blocks before \(n)")
        case .commit(let b, let c): (block, newContext) = (b, c)
        }
        let n = block.header.number
        let ctx = context
        do {
            try ledger.commit(block)
        } catch let rejection as BlockRejection {
            orderer.log("orderer: refused raft block \(n) on \(channelName): \(rejection)")
            return
        }
        lastBlockTime.withLock { $0 = max($0, block.judgedTime) }
        if let newContext {
            current.withLock { $0 = newContext }
            notifier.advance(to: n + 1)
            if newContext.ordering.consenters != ctx.ordering.consenters { consentersChanged(newContext) }
            return
        }
        notifier.advance(to: n + 1)
    }

    /// The leader's membership task brings raft in line within a second. A consenter the
    /// configuration no longer names stops ordering the channel at once (on the raft thread, so its
    /// engine is stopped from outside it); the others remove it from raft. A removed leader first hands
    /// leadership to the most up-to-date voter, so the others need not wait out an election timeout
    /// before ordering again (libraft ends a transfer that has not completed within one).
    private func consentersChanged(_ ctx: ChannelContext) {
        orderer.peersChanged(channelName, ctx.ordering.consenters)
        orderer.log("orderer: channel \(channelName) consenters are now \(ctx.ordering.summary)")
        guard !ctx.ordering.consenters.contains(where: { $0.id == me.id }) else { return }
        let why = "consenter \(me.id) was removed by configuration block \(ctx.configBlock)"
        orderer.log("orderer: \(why); this node stops ordering channel \(channelName) (its peer keeps the ledger)")
        let engine = stopServing(why)
        let (log, channelName) = (orderer.log, channelName)
        Task.detached {
            if let engine, engine.observed.role == .leader {
                do {
                    let next = try await engine.transferLeadership(to: nil)
                    log(
                        "orderer: handed raft leadership of \(channelName) to consenter \(next.map(String.init) ?? "?") before leaving"
                    )
                } catch {
                    log(
                        "orderer: could not hand raft leadership of \(channelName) over before leaving (\(error)); the others elect a leader"
                    )
                }
            }
            engine?.stopBlocking()
        }
    }

    /// Stops taking envelopes and ends the Deliver streams that follow this consenter, so peers
    /// (its own node's first) move to one that still orders. Returns the engine, for the caller to stop.
    private func stopServing(_ why: String) -> (any ConsensusEngine)? {
        let (engine, cutting, membership) = state.withLock { s in
            s.stopped = s.stopped ?? why
            return (s.engine, s.cutting, s.membership)
        }
        membership?.cancel()
        cutting?.beginStop()
        notifier.close()
        return engine
    }

    /// On the leader: adds consenters new to the configuration (as standbys that receive the log, then
    /// promoted once caught up) and removes those it dropped. One change at a time, as libraft requires.
    func reconcileMembership(_ desired: [OrderingConfig.Consenter]) async {
        guard let engine, engine.observed.role == .leader else { return }
        let members = await engine.status().members
        let have = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) })
        do {
            for c in desired where have[c.id] == nil {
                try await engine.addStandby(c.id, address: c.raftAddress)
                try await engine.promote(c.id)
                orderer.log("orderer: raft consenter \(c.id) joined channel \(channelName) as a voter")
            }
            for c in desired where have[c.id].map({ $0.role != .voter }) ?? false {
                try await engine.promote(c.id)
                orderer.log("orderer: raft consenter \(c.id) of channel \(channelName) caught up and is now a voter")
            }
            // A leader never removes itself: it stopped ordering when the configuration dropped it.
            for m in members where m.id != me.id && !desired.contains(where: { $0.id == m.id }) {
                try await engine.remove(m.id)
                orderer.log("orderer: raft consenter \(m.id) left channel \(channelName)")
            }
            lastMembershipError.withLock { $0 = nil }
        } catch {
            // Logged once per distinct error, not every second.
            let text = "\(error)"
            guard
                lastMembershipError.withLock({ old in
                    defer { old = text }
                    return old != text
                })
            else { return }
            orderer.log(
                "orderer: raft membership of \(channelName) not yet in line with its configuration: \(text); retried every second"
            )
        }
    }

    /// Pulls the blocks between this consenter's height and `n` from the other consenters.
    private func catchUp(to n: UInt64) throws {
        let from = ledger.height
        guard let puller = orderer.puller else {
            throw ConsensusError.failed(
                "channel \(channelName) is at height \(from) but raft applied block \(n), and this node cannot pull blocks"
            )
        }
        let endpoints = context.ordering.consenters.filter { $0.id != me.id }.map(\.endpoint)
        orderer.log("orderer: channel \(channelName) catches up from block \(from) to \(n - 1)")
        let before = context
        var ctx = before
        defer {
            current.withLock { $0 = ctx }
            if ctx.ordering.consenters != before.ordering.consenters { consentersChanged(ctx) }
        }
        try BlockCatchUp.commit(
            into: ledger, through: n - 1, context: &ctx, endpoints: endpoints, puller: puller, channel: channelName
        ) { notifier.advance(to: $0) }
        guard ledger.height == n else {
            throw ConsensusError.failed(
                "catching up on \(channelName) stopped at height \(ledger.height), short of \(n)")
        }
    }

    private func decide(_ entry: [UInt8]) throws -> RaftEntryRules.Decision {
        try RaftEntryRules.decide(
            entry, channel: channelName, height: ledger.height, context: context,
            headerHash: { try ledger.block(number: $0)?.header.headerHash })
    }

    /// The snapshot: height and tip hash (the blocks themselves are pulled, never sent through raft).
    func snapshot() -> [UInt8] {
        let info = ledger.info
        return withUnsafeBytes(of: info.height.bigEndian, Array.init) + info.tipHash
    }

    func restore(_ bytes: [UInt8]) throws {
        guard bytes.count == 8 + LedgerHash.byteCount else {
            throw ConsensusError.failed(
                "raft snapshot of \(channelName) is \(bytes.count) bytes, not a height and a hash")
        }
        let height = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if height > ledger.height { try catchUp(to: height) }
        guard let tip = try ledger.block(number: height - 1), tip.header.headerHash == Array(bytes[8...]) else {
            throw ConsensusError.failed(
                "raft snapshot of \(channelName) names a block \(height - 1) this ledger does not have")
        }
    }
}

/// The raft state machine of a channel: the block store, through `RaftChannel`.
final class BlockStateMachine: ReplicatedStateMachine, @unchecked Sendable {
    unowned let channel: RaftChannel
    init(channel: RaftChannel) { self.channel = channel }
    func apply(_ entry: [UInt8], index: UInt64) throws { try channel.apply(entry) }
    func snapshot() throws -> [UInt8] { channel.snapshot() }
    func restore(_ snapshot: [UInt8]) throws { try channel.restore(snapshot) }
}

/// Commits blocks pulled from other consenters, in bounded chunks, each checked as signed by a
/// consenter's node under the configuration in force at its height (a configuration block changes
/// it for the next). Used to catch up after a snapshot and to onboard an added consenter.
enum BlockCatchUp {
    static let chunk: UInt64 = 256

    static func commit(
        into ledger: ChannelLedger, through last: UInt64, context: inout ChannelContext, endpoints: [String],
        puller: any BlockPulling, channel: String,
        advanced: (UInt64) -> Void = { _ in }
    ) throws {
        while ledger.height <= last {
            let first = ledger.height
            let blocks = try puller.pull(
                channel: channel, from: first, through: min(last, first + chunk - 1), endpoints: endpoints)
            for block in blocks {
                try ConfigTransaction.checkBlockSignature(block, context: context, at: block.judgedTime)
                try ledger.commit(block)
                if block.metadata.lastConfigBlock == block.header.number {
                    context = try ChannelContext.current(in: ledger)
                }
                advanced(ledger.height)
            }
        }
    }
}
