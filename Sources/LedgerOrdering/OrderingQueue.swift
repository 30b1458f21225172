import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerOrderingCore
import LedgerProtos
import LedgerStorage

/// A block write that failed without harm to the channel (for raft: leadership moved while the block
/// was proposed). Its submitters are told to retry; the channel goes on ordering.
struct RetryableWriteFailure: Error, CustomStringConvertible {
    var description: String
}

/// One block the cutting loop cut: why, and how many transactions it holds.
public struct CutRecord: Sendable, Equatable {
    public var reason: BlockCutter.CutReason
    public var transactions: Int
}

/// The queue of accepted envelopes and the thread that cuts them into blocks and hands each block to
/// `writeBlock`, answering the block's submitters once it returns. Solo writes the block to its own
/// store; raft proposes it to the cluster. Adaptive batching: with `batch_timeout_ms` 0 a block is cut
/// as soon as the writer is idle, so a lone transaction waits for nothing while under load blocks fill
/// with everything that arrived during the previous block's write.
///
/// If `writeBlock` throws, the channel stops, loudly, and every waiting submitter is told (503): an
/// accepted envelope is never silently dropped. A `RetryableWriteFailure` instead answers the block's
/// and the queue's submitters with 503 (retry) and goes on.
final class CuttingLoop: @unchecked Sendable {  // every mutable field is read and written under `condition`
    struct Item {
        var bytes: [UInt8]
        var isConfig: Bool
        var txID: String
        var done: @Sendable (OrderingRejection?) -> Void
    }

    private let condition = NSCondition()
    private var items: [Item] = []
    /// Tx ids accepted but not yet in a written block: a resubmission is refused as a duplicate.
    private var inFlight = Set<String>()
    private var stopping = false
    private var finished = false
    private(set) var stoppedReasonLocked: String?
    /// Blocks cut since the operations endpoint last took them (`takeCuts`); bounded, oldest dropped.
    private var cuts: [CutRecord] = []
    static let cutsKept = 4_096

    let channelName: String
    let batchConfig: @Sendable () -> BatchConfig
    let writeBlock: @Sendable ([[UInt8]]) throws -> Void
    let log: @Sendable (String) -> Void
    /// Envelopes accepted and not yet written, at most; past it submitters get 503.
    static let queueMax = 20_000

    init(
        channel: String, batchConfig: @escaping @Sendable () -> BatchConfig,
        writeBlock: @escaping @Sendable ([[UInt8]]) throws -> Void,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.channelName = channel
        self.batchConfig = batchConfig
        self.writeBlock = writeBlock
        self.log = log
        Thread.detachNewThread { [self] in self.runLoop() }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    var stoppedReason: String? { locked { stoppedReasonLocked } }

    /// Envelopes accepted and not yet in a written block (queued, pending in the cutter, being written).
    var queueDepth: Int { locked { inFlight.count } }

    /// The blocks cut since the last call, oldest first (at most `cutsKept`).
    func takeCuts() -> [CutRecord] {
        locked {
            defer { cuts.removeAll(keepingCapacity: true) }
            return cuts
        }
    }

    func enqueue(_ item: Item) throws(OrderingRejection) {
        condition.lock()
        defer { condition.unlock() }
        if let why = stoppedReasonLocked {
            throw OrderingRejection(503, "ordering of channel \(channelName) is stopped: \(why)")
        }
        guard !stopping else {
            throw OrderingRejection(503, "orderer is shutting down; retry on another orderer or later")
        }
        guard items.count < Self.queueMax else {
            throw OrderingRejection(503, "orderer queue is full (\(Self.queueMax)); retry in a second")
        }
        guard inFlight.insert(item.txID).inserted else {
            throw OrderingRejection(409, "transaction \(item.txID) is already being ordered")
        }
        items.append(item)
        condition.signal()
    }

    /// Refuses new envelopes from now on; the thread writes what was accepted, then finishes.
    func beginStop() {
        locked {
            stopping = true
            condition.broadcast()
        }
    }

    func waitUntilStopped() {
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }

    /// Everything queued; with `wait`, blocks until something is. nil once stopping and empty.
    private func take(wait: Bool) -> [Item]? {
        condition.lock()
        defer { condition.unlock() }
        while wait, items.isEmpty, !stopping { condition.wait() }
        if items.isEmpty, stopping { return nil }
        defer { items.removeAll(keepingCapacity: true) }
        return items
    }

    /// What is queued, waiting until `deadline` for something to be; nil at the deadline, or once
    /// stopping with nothing queued.
    private func take(until deadline: Date) -> [Item]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty, !stopping, condition.wait(until: deadline) {}
        if items.isEmpty { return nil }
        defer { items.removeAll(keepingCapacity: true) }
        return items
    }

    private func runLoop() {
        var cutter = BlockCutter(config: batchConfig())
        // The items the cutter holds, in order: every batch it cuts is a prefix of them.
        var pending = [Item]()
        func order(_ items: [Item]) -> Bool {
            for (i, item) in items.enumerated() {
                pending.append(item)
                // Accepted envelopes fit the channel's limits, so the cutter cannot refuse them.
                guard let d = try? cutter.ordered(item.bytes, isConfig: item.isConfig) else {
                    return fail(pending + items[(i + 1)...], "the block cutter refused an accepted envelope")
                }
                for (batch, reason) in zip(d.batches, d.reasons)
                where !write(batch, reason, &pending, unordered: items[(i + 1)...]) { return false }
            }
            return true
        }
        while let items = take(wait: !cutter.isPending) {
            guard order(items) else { return finish() }
            guard cutter.isPending else { continue }
            let timeout = cutter.config.batchTimeoutSeconds
            if timeout > 0 {
                // Classic batching: more envelopes join until the batch timer fires, then what there is
                // is cut. The thread sleeps on the condition (an enqueue wakes it), it does not poll.
                let deadline = Date().addingTimeInterval(timeout)
                while cutter.isPending, Date() < deadline, let more = take(until: deadline) {
                    guard order(more) else { return finish() }
                }
            }
            if let batch = cutter.timeout(), !write(batch, .timeout, &pending) { return finish() }
            // A configuration block may have changed the batch parameters.
            let params = batchConfig()
            if params != cutter.config, !cutter.isPending { cutter = BlockCutter(config: params) }
        }
        if let batch = cutter.timeout() { _ = write(batch, .timeout, &pending) }
        finish()
    }

    private func finish() {
        locked {
            finished = true
            condition.broadcast()
        }
    }

    /// Writes one block and answers its submitters; false if the write failed fatally (the channel is
    /// then stopped and every waiting submitter told so).
    /// `unordered`: items taken from the queue but not yet given to the cutter, answered on failure too.
    private func write(
        _ envelopes: [[UInt8]], _ reason: BlockCutter.CutReason, _ pending: inout [Item],
        unordered: ArraySlice<Item> = []
    ) -> Bool {
        let items = Array(pending.prefix(envelopes.count))
        pending.removeFirst(items.count)
        locked {
            if cuts.count >= Self.cutsKept { cuts.removeFirst(Self.cutsKept / 2) }
            cuts.append(CutRecord(reason: reason, transactions: envelopes.count))
        }
        do {
            try writeBlock(envelopes)
        } catch let retry as RetryableWriteFailure {
            answer(items, OrderingRejection(503, "\(retry); the transaction was not ordered here, submit it again"))
            return true
        } catch {
            return fail(items + pending + unordered, "a block could not be written: \(error)")
        }
        answer(items, nil)
        return true
    }

    private func answer(_ items: [Item], _ result: OrderingRejection?) {
        locked { for item in items { inFlight.remove(item.txID) } }
        for item in items { item.done(result) }
    }

    /// Stops ordering this channel, loudly: nothing accepted is silently discarded.
    private func fail(_ items: [Item], _ why: String) -> Bool {
        log("orderer: STOPPED ordering channel \(channelName): \(why)")
        let waiting = locked { () -> [Item] in
            stoppedReasonLocked = why
            let all = self.items
            self.items.removeAll()
            inFlight.removeAll()
            return all
        }
        let refusal = OrderingRejection(
            503, "ordering of channel \(channelName) stopped: \(why); nothing of this transaction was written")
        for item in items + waiting { item.done(refusal) }
        return false
    }
}
