import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import Synchronization

/// Why the ordering service refused an envelope, with the EMR-IG status.
public struct OrderingRejection: Error, Equatable, CustomStringConvertible {
    /// 400 malformed, 401 revoked creator, 403 not a member / not allowed, 404 unknown channel,
    /// 409 already ordered, 413 too large, 503 overloaded, shutting down or channel stopped.
    public var status: Int32
    public var message: String
    public var description: String { "[\(status)] \(message)" }
    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// A channel as the ordering service serves it.
public struct OrderedChannelStatus: Sendable, Equatable {
    public var name: String
    public var height: UInt64
    /// Why the service stopped ordering this channel; nil while it orders.
    public var stoppedReason: String?
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
        let refusal: OrderingRejection? = await withCheckedContinuation { c in submit(envelope) { c.resume(returning: $0) } }
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
        store: LedgerStore, signer: SigningIdentity, gate: (any RevocationGate)? = nil, clock: @escaping @Sendable () -> Date = { Date() },
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.store = store
        self.signer = signer
        self.gate = gate
        self.clock = clock
        self.log = log
        for name in try store.removeUnjoinedChannels() { log("orderer: channel \(name) was registered but its genesis block never written (interrupted join); removed, join it again") }
        for name in try store.channelNames() {
            let ledger = try store.channel(name)
            let ctx = try ChannelContext.current(in: ledger)
            chains.withLock { $0[name] = makeChannel(ledger, ctx) }
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
        guard ctx.config.orderer.org == signer.org else {
            throw OrderingRejection(403, "channel \(ctx.channel) is ordered by \(ctx.config.orderer.org), not by this node's organisation \(signer.org)")
        }
        if chains.withLock({ $0[ctx.channel] != nil }) { throw OrderingRejection(409, "this orderer already orders channel \(ctx.channel)") }
        let ledger = try store.createChannel(ctx.channel, genesis: genesis)
        chains.withLock { $0[ctx.channel] = makeChannel(ledger, ctx) }
    }

    public func chain(_ channel: String) -> (any BlockSource)? { chains.withLock { $0[channel] } }

    /// The configuration in force on `channel`, nil if this orderer does not order it.
    public func context(of channel: String) -> ChannelContext? { chains.withLock { $0[channel] }?.context }

    public func channels() -> [OrderedChannelStatus] {
        chains.withLock { $0.values.map { OrderedChannelStatus(name: $0.channelName, height: $0.ledger.height, stoppedReason: $0.stoppedReason) } }
            .sorted { $0.name < $1.name }
    }

    public func submit(_ envelope: [UInt8], done: @escaping @Sendable (OrderingRejection?) -> Void) {
        let env: Medledger_Envelope
        let payload: Medledger_Payload
        do {
            env = try Medledger_Envelope(serializedBytes: envelope)
            payload = try Medledger_Payload(serializedBytes: env.payload)
        } catch { return done(OrderingRejection(400, "envelope does not parse: \(error)")) }
        let name = payload.channelHeader.channelID
        guard let chain = chains.withLock({ $0[name] }) else { return done(OrderingRejection(404, "this orderer does not order channel \(name.debugDescription)")) }
        do throws(OrderingRejection) { try chain.accept(envelope, env: env, payload: payload, done: done) } catch { done(error) }
    }
}

/// One channel of the solo orderer: the queue of accepted envelopes and the thread that writes them.
final class SoloChannel: BlockSource, Sendable {
    struct Item {
        var bytes: [UInt8]
        var isConfig: Bool
        var txID: String
        var done: @Sendable (OrderingRejection?) -> Void
    }

    /// Envelopes waiting for the cutting thread. `NSCondition` because that thread blocks on it.
    final class Queue: @unchecked Sendable {  // every field is read and written under `condition`
        let condition = NSCondition()
        var items: [Item] = []
        /// Tx ids accepted but not yet in a written block: a resubmission is refused as a duplicate.
        var inFlight = Set<String>()
        var stopping = false
        var finished = false
        var stoppedReason: String?
    }

    let ledger: ChannelLedger
    let notifier: HeightNotifier
    let signer: SigningIdentity
    let gate: (any RevocationGate)?
    let clock: @Sendable () -> Date
    let log: @Sendable (String) -> Void
    private let current: Mutex<ChannelContext>
    /// The time the last block was signed at; the next is never earlier.
    private let lastBlockTime: Mutex<Date>
    private let queue = Queue()
    /// Envelopes accepted and not yet written, at most; past it submitters get 503.
    static let queueMax = 20_000

    var channelName: String { ledger.channel }
    var context: ChannelContext { current.withLock { $0 } }
    var stoppedReason: String? { locked { $0.stoppedReason } }

    init(
        ledger: ChannelLedger, context: ChannelContext, signer: SigningIdentity, gate: (any RevocationGate)?, clock: @escaping @Sendable () -> Date,
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
        Thread.detachNewThread { [self] in self.runLoop() }
    }

    private func locked<T>(_ body: (Queue) -> T) -> T {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        return body(queue)
    }

    func block(number: UInt64) throws -> Medledger_Block? {
        guard var b = try ledger.block(number: number) else { return nil }
        // What peers receive is the ordered block: validation codes and commit hash are theirs to set.
        if number > 0 {
            b.metadata.validationCodes = Array(repeating: .notValidated, count: b.data.envelopes.count)
            b.metadata.commitHash = Data()
        }
        return b
    }

    /// Refuses new envelopes from now on; the thread writes what was accepted, then finishes.
    func beginStop() {
        locked { q in
            q.stopping = true
            q.condition.broadcast()
        }
    }

    func waitUntilStopped() {
        queue.condition.lock()
        while !queue.finished { queue.condition.wait() }
        queue.condition.unlock()
        notifier.close()
    }

    /// Envelope checks before queueing — every check a block write could fail, so that nothing
    /// accepted is later dropped: size against the channel's and the ledger's limits, header, not
    /// already ordered or in flight, creator a live member (channel CRL and this node's), signature;
    /// for a configuration update the full update rules at the orderer's time.
    func accept(_ bytes: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload, done: @escaping @Sendable (OrderingRejection?) -> Void) throws(OrderingRejection) {
        let ctx = context
        let ch = payload.channelHeader
        let sizeMax = min(Int(ctx.config.batch.absoluteMaxBytes), ledger.limits.envelopeBytesMax)
        guard bytes.count <= sizeMax else {
            throw OrderingRejection(413, "envelope is \(bytes.count) bytes, over the \(sizeMax)-byte limit of channel \(ctx.channel)")
        }
        guard !ch.txID.isEmpty, ch.hasTimestamp else { throw OrderingRejection(400, "envelope header lacks tx id or timestamp") }
        if (try? ledger.transaction(id: ch.txID)) != nil { throw OrderingRejection(409, "transaction \(ch.txID) was already ordered") }
        let now = clock()
        let creator: VerifiedMember
        do { creator = try ctx.members.verify(serializedIdentity: payload.signatureHeader.creator, at: now) } catch {
            throw OrderingRejection(403, "creator is not a member of channel \(ctx.channel): \(error)")
        }
        if let why = gate?.refusal(of: creator) { throw OrderingRejection(401, "creator: \(why)") }
        guard creator.isValidSignature(env.signature, for: env.payload) else { throw OrderingRejection(403, "envelope signature does not verify") }
        let isConfig: Bool
        switch ch.type {
        case .endorserTransaction: isConfig = false
        case .config:
            do { _ = try ConfigTransaction.checkUpdate(envelope: bytes, current: ctx, blockNumber: ledger.height, at: now) } catch {
                throw OrderingRejection(403, "configuration update refused: \(error)")
            }
            isConfig = true
        default: throw OrderingRejection(400, "transaction type \(ch.type) is not accepted for ordering")
        }
        try enqueue(Item(bytes: bytes, isConfig: isConfig, txID: ch.txID, done: done))
    }

    private func enqueue(_ item: Item) throws(OrderingRejection) {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        if let why = queue.stoppedReason { throw OrderingRejection(503, "ordering of channel \(channelName) is stopped: \(why)") }
        guard !queue.stopping else { throw OrderingRejection(503, "orderer is shutting down; retry on another orderer or later") }
        guard queue.items.count < Self.queueMax else { throw OrderingRejection(503, "orderer queue is full (\(Self.queueMax)); retry in a second") }
        guard queue.inFlight.insert(item.txID).inserted else { throw OrderingRejection(409, "transaction \(item.txID) is already being ordered") }
        queue.items.append(item)
        queue.condition.signal()
    }

    // MARK: - The cutting loop (its own thread: blocking writes never stall the async executor)

    /// Everything queued; with `wait`, blocks until something is. nil once stopping and empty.
    private func take(wait: Bool) -> [Item]? {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        while wait, queue.items.isEmpty, !queue.stopping { queue.condition.wait() }
        if queue.items.isEmpty, queue.stopping { return nil }
        defer { queue.items.removeAll(keepingCapacity: true) }
        return queue.items
    }

    private func runLoop() {
        var cutter = BlockCutter(config: BatchConfig(context.config.batch))
        // The items the cutter holds, in order: every batch it cuts is a prefix of them.
        var pending = [Item]()
        func order(_ items: [Item]) -> Bool {
            for (i, item) in items.enumerated() {
                pending.append(item)
                // Accepted envelopes fit the channel's limits, so the cutter cannot refuse them.
                guard let d = try? cutter.ordered(item.bytes, isConfig: item.isConfig) else {
                    return fail(pending + items[(i + 1)...], "the block cutter refused an accepted envelope")
                }
                for batch in d.batches where !write(batch, &pending, unordered: items[(i + 1)...]) { return false }
            }
            return true
        }
        while let items = take(wait: !cutter.isPending) {
            guard order(items) else { return finish() }
            guard cutter.isPending else { continue }
            let timeout = context.config.batch.batchTimeoutMs
            if timeout > 0 {
                // Classic batching: wait for more until the timeout, then cut what there is.
                let deadline = Date().addingTimeInterval(Double(timeout) / 1000)
                while cutter.isPending, Date() < deadline, !locked({ $0.stopping }) {
                    Thread.sleep(forTimeInterval: 0.001)
                    guard let more = take(wait: false) else { break }
                    guard order(more) else { return finish() }
                }
            }
            if let batch = cutter.timeout(), !write(batch, &pending) { return finish() }
            // A configuration block may have changed the batch parameters.
            let params = BatchConfig(context.config.batch)
            if params != cutter.config, !cutter.isPending { cutter = BlockCutter(config: params) }
        }
        if let batch = cutter.timeout() { _ = write(batch, &pending) }
        finish()
    }

    private func finish() {
        locked { q in
            q.finished = true
            q.condition.broadcast()
        }
    }

    /// Writes one block and answers its submitters; false if the write failed (the channel is then
    /// stopped and every waiting submitter told so).
    /// `unordered`: items taken from the queue but not yet given to the cutter, answered on failure too.
    private func write(_ envelopes: [[UInt8]], _ pending: inout [Item], unordered: ArraySlice<Item> = []) -> Bool {
        let items = Array(pending.prefix(envelopes.count))
        pending.removeFirst(items.count)
        do {
            try writeBlock(envelopes)
        } catch {
            return fail(items + pending + unordered, "block \(ledger.height) could not be written: \(error)")
        }
        locked { q in for item in items { q.inFlight.remove(item.txID) } }
        for item in items { item.done(nil) }
        return true
    }

    private func writeBlock(_ envelopes: [[UInt8]]) throws {
        let n = ledger.height
        let ctx = context
        let time = max(clock(), lastBlockTime.withLock { $0 })
        var newContext: ChannelContext?
        if envelopes.count == 1, let p = try? Medledger_Envelope(serializedBytes: envelopes[0]), let payload = try? Medledger_Payload(serializedBytes: p.payload),
           payload.channelHeader.type == .config {
            // Re-checked at cut time: an earlier update may have raised the sequence meanwhile. A stale
            // update is still ordered (peers mark it invalid), as acknowledged envelopes always are.
            do { newContext = try ConfigTransaction.checkUpdate(envelope: envelopes[0], current: ctx, blockNumber: n, at: time) } catch {
                log("orderer: configuration update on \(channelName) no longer applies; peers will mark it invalid: \(error)")
            }
        }
        var block = Medledger_Block.make(number: n, previousHash: ledger.info.tipHash, envelopes: envelopes)
        block.metadata.orderingSignature(signer: signer, headerHash: block.header.headerHash, at: time)
        block.metadata.lastConfigBlock = newContext != nil ? n : ctx.configBlock
        try ledger.commit(block)
        lastBlockTime.withLock { $0 = block.judgedTime }
        if let newContext { current.withLock { $0 = newContext } }
        notifier.advance(to: n + 1)
    }

    /// Stops ordering this channel, loudly: nothing accepted is silently discarded.
    private func fail(_ items: [Item], _ why: String) -> Bool {
        log("orderer: STOPPED ordering channel \(channelName): \(why)")
        let waiting = locked { q -> [Item] in
            q.stoppedReason = why
            let all = q.items
            q.items.removeAll()
            q.inFlight.removeAll()
            return all
        }
        let refusal = OrderingRejection(503, "ordering of channel \(channelName) stopped: \(why); nothing of this transaction was written")
        for item in items + waiting { item.done(refusal) }
        return false
    }
}

extension BatchConfig {
    public init(_ p: Medledger_BatchParameters) {
        self.init()
        maxMessageCount = Int(p.maxMessageCount)
        absoluteMaxBytes = Int(p.absoluteMaxBytes)
        preferredMaxBytes = Int(p.preferredMaxBytes)
        batchTimeoutSeconds = Double(p.batchTimeoutMs) / 1000
    }
}
