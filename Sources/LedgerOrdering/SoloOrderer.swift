import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import Synchronization

/// Why the ordering service refused an envelope, with the EMR-IG status.
public struct OrderingRejection: Error, Equatable, CustomStringConvertible {
    public var status: Int32  // 400 malformed, 403 not a member / not allowed, 404 unknown channel, 503 overloaded
    public var message: String
    public var description: String { "[\(status)] \(message)" }
    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// What peers and clients need from an ordering service. Solo implements it on one node; a Raft
/// cluster (later, on libraft) implements the same: accept envelopes, hand out the ordered chain.
public protocol OrderingService: Sendable {
    /// Accepts a signed envelope for ordering; returns once it is queued (not yet in a block).
    func broadcast(_ envelope: [UInt8]) throws(OrderingRejection)
    /// The ordered chain of `channel`, nil if this service does not order it.
    func chain(_ channel: String) -> (any BlockSource)?
    /// Starts ordering a channel from its genesis block.
    func join(genesis: Medledger_Block) throws
    func channels() -> [(name: String, height: UInt64)]
}

/// The solo ordering service: one node orders every channel it has joined. Per channel, one task
/// cuts blocks with `BlockCutter`, signs them, writes them durably to its own block store and wakes
/// the delivery streams. Adaptive batching: with `batch_timeout_ms` 0 a block is cut as soon as the
/// writer is idle, so a lone transaction waits for nothing while under load blocks fill up with
/// everything that arrived during the previous block's write.
public final class SoloOrderer: OrderingService {
    let store: LedgerStore
    let signer: SigningIdentity
    let log: @Sendable (String) -> Void
    private let chains = Mutex<[String: SoloChannel]>([:])

    public init(store: LedgerStore, signer: SigningIdentity, log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.store = store
        self.signer = signer
        self.log = log
        for name in try store.channelNames() {
            let ledger = try store.channel(name)
            let ctx = try ChannelContext.current(in: ledger)
            chains.withLock { $0[name] = SoloChannel(ledger: ledger, context: ctx, signer: signer, log: log) }
        }
    }

    public func shutdown() {
        for c in chains.withLock({ Array($0.values) }) { c.stop() }
    }

    public func join(genesis: Medledger_Block) throws {
        let ctx = try ConfigTransaction.verifyGenesis(genesis)
        guard ctx.config.orderer.org == signer.org else {
            throw OrderingRejection(403, "channel \(ctx.channel) is ordered by \(ctx.config.orderer.org), not by this node's organisation \(signer.org)")
        }
        if chains.withLock({ $0[ctx.channel] != nil }) { throw OrderingRejection(409, "this orderer already orders channel \(ctx.channel)") }
        let ledger = try store.createChannel(ctx.channel)
        try ledger.commit(genesis)
        chains.withLock { $0[ctx.channel] = SoloChannel(ledger: ledger, context: ctx, signer: signer, log: log) }
    }

    public func chain(_ channel: String) -> (any BlockSource)? { chains.withLock { $0[channel] } }

    public func channels() -> [(name: String, height: UInt64)] {
        chains.withLock { $0.values.map { ($0.channelName, $0.ledger.height) } }.sorted { $0.name < $1.name }
    }

    public func broadcast(_ envelope: [UInt8]) throws(OrderingRejection) {
        let env: Medledger_Envelope
        let payload: Medledger_Payload
        do {
            env = try Medledger_Envelope(serializedBytes: envelope)
            payload = try Medledger_Payload(serializedBytes: env.payload)
        } catch { throw OrderingRejection(400, "envelope does not parse: \(error)") }
        let name = payload.channelHeader.channelID
        guard let chain = chains.withLock({ $0[name] }) else { throw OrderingRejection(404, "this orderer does not order channel \(name.debugDescription)") }
        try chain.accept(envelope, env: env, payload: payload)
    }
}

final class SoloChannel: BlockSource, Sendable {
    /// Envelopes waiting for the cutting thread. `NSCondition` because that thread blocks on it.
    final class Queue: @unchecked Sendable {  // every field is read and written under `condition`
        let condition = NSCondition()
        var items: [(bytes: [UInt8], isConfig: Bool)] = []
        var stopped = false
    }

    let ledger: ChannelLedger
    let notifier: HeightNotifier
    let signer: SigningIdentity
    let log: @Sendable (String) -> Void
    private let current: Mutex<ChannelContext>
    private let queue = Queue()
    static let queueMax = 20_000

    var channelName: String { ledger.channel }
    var context: ChannelContext { current.withLock { $0 } }

    init(ledger: ChannelLedger, context: ChannelContext, signer: SigningIdentity, log: @escaping @Sendable (String) -> Void) {
        self.ledger = ledger
        self.notifier = HeightNotifier(height: ledger.height)
        self.signer = signer
        self.log = log
        self.current = Mutex(context)
        Thread.detachNewThread { [self] in self.runLoop() }
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

    func stop() {
        queue.condition.lock()
        queue.stopped = true
        queue.condition.broadcast()
        queue.condition.unlock()
        notifier.close()
    }

    /// Envelope checks before queueing: size, membership and signature of the creator, and for a
    /// configuration update the full update rules (majority of administrators).
    func accept(_ bytes: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload) throws(OrderingRejection) {
        let ctx = context
        let ch = payload.channelHeader
        guard bytes.count <= Int(ctx.config.batch.absoluteMaxBytes) else {
            throw OrderingRejection(400, "envelope is \(bytes.count) bytes, over the channel's absolute_max_bytes \(ctx.config.batch.absoluteMaxBytes)")
        }
        guard !ch.txID.isEmpty, ch.hasTimestamp else { throw OrderingRejection(400, "envelope header lacks tx id or timestamp") }
        if (try? ledger.transaction(id: ch.txID)) != nil { throw OrderingRejection(409, "transaction \(ch.txID) was already ordered") }
        let creator: VerifiedMember
        do { creator = try ctx.members.verify(serializedIdentity: payload.signatureHeader.creator, at: Date()) } catch {
            throw OrderingRejection(403, "creator is not a member of channel \(ctx.channel): \(error)")
        }
        guard creator.isValidSignature(env.signature, for: env.payload) else { throw OrderingRejection(403, "envelope signature does not verify") }
        let isConfig: Bool
        switch ch.type {
        case .endorserTransaction: isConfig = false
        case .config:
            do { _ = try ConfigTransaction.checkUpdate(envelope: bytes, current: ctx, blockNumber: ledger.height, at: ch.timestamp.date) } catch {
                throw OrderingRejection(403, "configuration update refused: \(error)")
            }
            isConfig = true
        default: throw OrderingRejection(400, "transaction type \(ch.type) is not accepted for ordering")
        }
        queue.condition.lock()
        defer { queue.condition.unlock() }
        guard !queue.stopped else { throw OrderingRejection(503, "orderer is shutting down") }
        guard queue.items.count < Self.queueMax else { throw OrderingRejection(503, "orderer queue is full (\(Self.queueMax)); retry later") }
        queue.items.append((bytes, isConfig))
        queue.condition.signal()
    }

    // MARK: - The cutting loop (its own thread: blocking writes never stall the async executor)

    /// Everything queued; with `wait`, blocks until something is. nil once stopped.
    private func take(wait: Bool) -> [(bytes: [UInt8], isConfig: Bool)]? {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        while wait, queue.items.isEmpty, !queue.stopped { queue.condition.wait() }
        if queue.stopped { return nil }
        defer { queue.items.removeAll(keepingCapacity: true) }
        return queue.items
    }

    private func runLoop() {
        var cutter = BlockCutter(config: BatchConfig(context.config.batch))
        while let items = take(wait: !cutter.isPending) {
            for item in items {
                do {
                    let d = try cutter.ordered(item.bytes, isConfig: item.isConfig)
                    for batch in d.batches { write(batch) }
                } catch {
                    log("orderer: dropped an envelope on \(channelName): \(error)")
                }
            }
            guard cutter.isPending else { continue }
            let timeout = context.config.batch.batchTimeoutMs
            if timeout > 0 {
                // Classic batching: wait for more until the timeout, then cut what there is.
                let deadline = Date().addingTimeInterval(Double(timeout) / 1000)
                while cutter.isPending, Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.001)
                    guard let more = take(wait: false) else { return }
                    for item in more {
                        if let d = try? cutter.ordered(item.bytes, isConfig: item.isConfig) { for batch in d.batches { write(batch) } }
                    }
                }
            }
            if let batch = cutter.timeout() { write(batch) }
            // A configuration block may have changed the batch parameters.
            let params = BatchConfig(context.config.batch)
            if params != cutter.config, !cutter.isPending { cutter = BlockCutter(config: params) }
        }
    }

    private func write(_ envelopes: [[UInt8]]) {
        do {
            let n = ledger.height
            let tip = ledger.info.tipHash
            var ctx = context
            var newContext: ChannelContext?
            if envelopes.count == 1, let e = try? Medledger_Envelope(serializedBytes: envelopes[0]), let p = try? Medledger_Payload(serializedBytes: e.payload), p.channelHeader.type == .config {
                // Re-checked at cut time: an earlier update may have raised the sequence meanwhile.
                do { newContext = try ConfigTransaction.checkUpdate(envelope: envelopes[0], current: ctx, blockNumber: n, at: p.channelHeader.timestamp.date) } catch {
                    log("orderer: configuration update on \(channelName) no longer applies: \(error)")
                }
            }
            var block = Medledger_Block.make(number: n, previousHash: tip, envelopes: envelopes)
            block.metadata.orderingSignature(signer: signer, headerHash: block.header.headerHash)
            block.metadata.lastConfigBlock = newContext != nil ? n : ctx.configBlock
            try ledger.commit(block)
            if let newContext {
                current.withLock { $0 = newContext }
                ctx = newContext
            }
            notifier.advance(to: n + 1)
        } catch {
            log("orderer: cannot write block on \(channelName): \(error)")
        }
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
