import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerOrderingCore
import LedgerProtos
import LedgerStorage
import Synchronization

/// A channel as the ordering service serves it.
public struct OrderedChannelStatus: Sendable, Equatable {
    public var name: String
    public var height: UInt64
    /// Why the service stopped ordering this channel; nil while it orders.
    public var stoppedReason: String?
    /// Envelopes accepted and not yet in a written block (0 on a raft follower, which cuts nothing).
    public var queueDepth = 0
}

/// What peers and clients need from an ordering service. Solo implements it on one node; a Raft
/// cluster implements the same: accept envelopes, hand out the ordered chain.
///
/// The rule every implementation keeps: **acknowledge only what is kept.** `submit` answers success
/// only once the block holding the envelope is durably written; everything a later stage could refuse
/// is refused at submit, and if a block write still fails the service stops ordering that channel
/// (reported by `channels()`) instead of dropping the batch.
public protocol OrderingService: Sendable {
    /// Checks a signed envelope and orders it. `done` is called exactly once: nil when the block
    /// holding the envelope is durable, a rejection otherwise (at once for a refused envelope).
    func submit(_ envelope: [UInt8], done: @escaping @Sendable (OrderingRejection?) -> Void)
    /// The ordered chain of `channel`, nil if this service does not order it.
    func chain(_ channel: String) -> (any BlockSource)?
    /// Starts ordering a channel from its genesis block.
    func join(genesis: Medledger_Block) throws
    func channels() -> [OrderedChannelStatus]
    /// Graceful stop: refuses new envelopes, writes every accepted one into blocks, then returns.
    func shutdown()
}

extension OrderingService {
    /// `submit`, awaited: returns once the envelope is in a durable block.
    public func broadcast(_ envelope: [UInt8]) async throws(OrderingRejection) {
        let refusal: OrderingRejection? = await withCheckedContinuation { c in
            submit(envelope) { c.resume(returning: $0) }
        }
        if let refusal { throw refusal }
    }
}

/// The solo ordering service: one node orders every channel it has joined. Per channel, one thread
/// cuts blocks with `BlockCutter`, signs them, writes them durably to its own block store, answers the
/// submitters and wakes the delivery streams. Adaptive batching: with `batch_timeout_ms` 0 a block is
/// cut as soon as the writer is idle, so a lone transaction waits for nothing while under load blocks
/// fill up with everything that arrived during the previous block's write.
public final class SoloOrderer: OrderingService {
    let store: LedgerStore
    let signer: SigningIdentity
    let gate: (any RevocationGate)?
    let clock: @Sendable () -> Date
    let log: @Sendable (String) -> Void
    private let chains = Mutex<[String: SoloChannel]>([:])

    /// `gate`: the node's freshest revocations (its CRL), checked on every envelope's creator.
    /// `clock`: the orderer's time, at which creators and configuration signatures are judged and
    /// blocks are stamped.
    public init(
        store: LedgerStore, signer: SigningIdentity, gate: (any RevocationGate)? = nil,
        clock: @escaping @Sendable () -> Date = { Date() },
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.store = store
        self.signer = signer
        self.gate = gate
        self.clock = clock
        self.log = log
        // A raft channel in the same store is the raft orderer's: solo must never cut its blocks.
        for (ledger, ctx) in try store.orderedChannels(.solo, log: log) {
            chains.withLock { $0[ctx.channel] = makeChannel(ledger, ctx) }
        }
    }

    private func makeChannel(_ ledger: ChannelLedger, _ ctx: ChannelContext) -> SoloChannel {
        SoloChannel(ledger: ledger, context: ctx, signer: signer, gate: gate, clock: clock, log: log)
    }

    public func shutdown() {
        let all = chains.withLock { Array($0.values) }
        for c in all { c.beginStop() }
        for c in all { c.waitUntilStopped() }
    }

    public func join(genesis: Medledger_Block) throws {
        let ctx = try ConfigTransaction.verifyGenesis(genesis)
        guard ctx.ordering.kind == .solo else {
            throw OrderingRejection(400, "channel \(ctx.channel) is ordered by a raft cluster, not by solo")
        }
        guard ctx.config.orderer.org == signer.org else {
            throw OrderingRejection(
                403,
                "channel \(ctx.channel) is ordered by \(ctx.config.orderer.org), not by this node's organisation \(signer.org)"
            )
        }
        if chains.withLock({ $0[ctx.channel] != nil }) {
            throw OrderingRejection(409, "this orderer already orders channel \(ctx.channel)")
        }
        let ledger = try store.createChannel(ctx.channel, genesis: genesis)
        chains.withLock { $0[ctx.channel] = makeChannel(ledger, ctx) }
    }

    public func chain(_ channel: String) -> (any BlockSource)? { chains.withLock { $0[channel] } }

    /// The configuration in force on `channel`, nil if this orderer does not order it.
    public func context(of channel: String) -> ChannelContext? { chains.withLock { $0[channel] }?.context }

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
        do throws(OrderingRejection) { try chain.accept(envelope, env: env, payload: payload, done: done) } catch {
            done(error)
        }
    }
}

/// One channel of the solo orderer: a `CuttingLoop` whose blocks are signed and written to this node's
/// own store.
final class SoloChannel: BlockSource, Sendable {
    let ledger: ChannelLedger
    let notifier: HeightNotifier
    let signer: SigningIdentity
    let gate: (any RevocationGate)?
    let clock: @Sendable () -> Date
    let log: @Sendable (String) -> Void
    private let current: Mutex<ChannelContext>
    /// The time the last block was signed at; the next is never earlier.
    private let lastBlockTime: Mutex<Date>
    private let loop = Mutex<CuttingLoop?>(nil)

    var channelName: String { ledger.channel }
    var context: ChannelContext { current.withLock { $0 } }
    var stoppedReason: String? { cutting.stoppedReason }
    var queueDepth: Int { cutting.queueDepth }
    func takeCuts() -> [CutRecord] { cutting.takeCuts() }
    private var cutting: CuttingLoop { loop.withLock { $0! } }

    init(
        ledger: ChannelLedger, context: ChannelContext, signer: SigningIdentity, gate: (any RevocationGate)?,
        clock: @escaping @Sendable () -> Date,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.ledger = ledger
        self.notifier = HeightNotifier(height: ledger.height)
        self.signer = signer
        self.gate = gate
        self.clock = clock
        self.log = log
        self.current = Mutex(context)
        self.lastBlockTime = Mutex((try? ledger.block(number: ledger.height - 1))?.judgedTime ?? .distantPast)
        let cutting = CuttingLoop(
            channel: ledger.channel, batchConfig: { [self] in BatchConfig(self.context.config.batch) },
            writeBlock: { [self] envelopes in try self.writeBlock(envelopes) }, log: log)
        loop.withLock { $0 = cutting }
    }

    func block(number: UInt64) throws -> Medledger_Block? { try ledger.orderedBlock(number: number) }

    /// Refuses new envelopes from now on; the thread writes what was accepted, then finishes.
    func beginStop() { cutting.beginStop() }

    func waitUntilStopped() {
        cutting.waitUntilStopped()
        notifier.close()
    }

    func accept(
        _ bytes: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload,
        done: @escaping @Sendable (OrderingRejection?) -> Void
    ) throws(OrderingRejection) {
        let admitted = try EnvelopeAdmission.check(
            bytes, env: env, payload: payload, context: context, ledger: ledger, gate: gate, now: clock())
        try cutting.enqueue(
            CuttingLoop.Item(bytes: bytes, isConfig: admitted.isConfig, txID: admitted.txID, done: done))
    }

    private func writeBlock(_ envelopes: [[UInt8]]) throws {
        let n = ledger.height
        let time = max(clock(), lastBlockTime.withLock { $0 })
        let (block, newContext) = OrderedBlock.make(
            envelopes, number: n, previousHash: ledger.info.tipHash, context: context, signer: signer, at: time,
            log: log)
        try ledger.commit(block)
        lastBlockTime.withLock { $0 = block.judgedTime }
        if let newContext { current.withLock { $0 = newContext } }
        notifier.advance(to: n + 1)
    }
}

extension LedgerStore {
    /// The channels in this store that `kind` orders, each with the configuration in force at its tip.
    /// First removes channels whose join stopped before the genesis block was written.
    func orderedChannels(_ kind: OrderingConfig.Kind, log: (String) -> Void) throws -> [(ChannelLedger, ChannelContext)]
    {
        for name in try removeUnjoinedChannels() {
            log(
                "orderer: channel \(name) was registered but its genesis block never written (interrupted join); removed, join it again"
            )
        }
        return try channelNames().compactMap { name in
            let ledger = try channel(name)
            let ctx = try ChannelContext.current(in: ledger)
            return ctx.ordering.kind == kind ? (ledger, ctx) : nil
        }
    }
}
