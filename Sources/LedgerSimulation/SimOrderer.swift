import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerOrderingCore
import LedgerProtos
import LedgerStorage

/// A message to send: to whom, what.
typealias Outgoing = (to: SimNode, message: SimMessage)

/// The solo orderer as a state machine: the same admission rules, block cutter and block making as
/// the real one (LedgerOrderingCore), its ledger on a `SimDisk`. Adaptive batching as in the real
/// cutting loop: what is pending is cut at the next tick. A submitter is answered only after the
/// block holding its envelope was written (synced) — the rule the simulator checks.
final class SimOrderer {
    let identity: SigningIdentity
    let disk: SimDisk
    private(set) var ledger: ChannelLedger
    private var context: ChannelContext
    private var cutter: BlockCutter
    /// Who waits for each envelope the cutter holds, in the cutter's order.
    private var waiting: [(client: Int, op: Int, attempt: Int, txID: String)] = []
    private var inFlight = Set<String>()
    private var lastBlockTime: Date
    /// Operations acknowledged since the referee last took them.
    private var acknowledged: [Int] = []

    /// The operations acknowledged since the last call (the orderer's own record, not the clients').
    func takeAcknowledged() -> [Int] {
        defer { acknowledged.removeAll() }
        return acknowledged
    }
    /// Deliver streams: for each peer that asked, the next block it gets. Lost in a crash (the
    /// streams break); peers ask again.
    private var subscribers: [Int: UInt64] = [:]

    init(identity: SigningIdentity, genesis: Medledger_Block, disk: SimDisk) throws {
        self.identity = identity
        self.disk = disk
        context = try ConfigTransaction.verifyGenesis(genesis)
        ledger = try LedgerStore(kv: disk).createChannel(context.channel, genesis: genesis)
        cutter = BlockCutter(config: BatchConfig(context.config.batch))
        lastBlockTime = genesis.judgedTime
    }

    /// After a crash: everything in memory is gone; the ledger is what the disk kept.
    func restart() throws {
        ledger = try LedgerStore(kv: disk).channel(SimCast.channel)
        context = try ChannelContext.current(in: ledger)
        cutter = BlockCutter(config: BatchConfig(context.config.batch))
        waiting = []
        inFlight = []
        subscribers = [:]
        lastBlockTime = try ledger.block(number: ledger.height - 1)?.judgedTime ?? .distantPast
    }

    var height: UInt64 { ledger.height }
    /// The channel's configuration as the orderer holds it now.
    var currentContext: ChannelContext { context }

    /// A client's envelope: refused at once, or held until its block is written. Throws `SimCrash`
    /// when a block write fails.
    func broadcast(_ bytes: [UInt8], op: Int, attempt: Int, from client: Int, now: Date) throws -> [Outgoing] {
        let refusal: OrderingRejection
        do {
            let (env, payload) = try EnvelopeAdmission.parse(bytes)
            let admitted = try EnvelopeAdmission.check(
                bytes, env: env, payload: payload, context: context, ledger: ledger, gate: nil, now: now)
            guard inFlight.insert(admitted.txID).inserted else { throw OrderingRejection(409, "already being ordered") }
            let decision: BlockCutter.Decision
            do { decision = try cutter.ordered(bytes, isConfig: admitted.isConfig) } catch {
                inFlight.remove(admitted.txID)
                throw error
            }
            waiting.append((client, op, attempt, admitted.txID))
            var out: [Outgoing] = []
            for batch in decision.batches { out += try write(batch, now: now) }
            return out
        } catch let e as OrderingRejection {
            refusal = e
        } catch let e as BlockCutter.Rejection {
            refusal = OrderingRejection(413, e.description)
        }
        return [(.client(client), .broadcastAnswer(op: op, attempt: attempt, refusal: refusal))]
    }

    /// The timer: cut what is pending (the writer is idle).
    func tick(now: Date) throws -> [Outgoing] {
        guard let batch = cutter.timeout() else { return [] }
        return try write(batch, now: now)
    }

    /// Makes, signs and writes the next block, then answers its submitters. A disk failure throws:
    /// the node stops, answering no one, as the real orderer does.
    private func write(_ batch: [[UInt8]], now: Date) throws -> [Outgoing] {
        let time = max(now, lastBlockTime)
        let (block, _) = OrderedBlock.make(
            batch, number: ledger.height, previousHash: ledger.info.tipHash, context: context, signer: identity,
            at: time, log: { _ in })
        do { try ledger.commit(block) } catch let e as SimDiskFailure { throw SimCrash(reason: "orderer disk: \(e)") }
        lastBlockTime = block.judgedTime
        let answered = waiting.prefix(batch.count)
        acknowledged += answered.map(\.op)
        waiting.removeFirst(answered.count)
        for w in answered { inFlight.remove(w.txID) }
        return answered.map { (.client($0.client), .broadcastAnswer(op: $0.op, attempt: $0.attempt, refusal: nil)) }
    }

    /// Whether envelopes wait in the cutter for the next tick.
    var isPending: Bool { cutter.isPending }

    /// Deliver: a peer opens (or reopens) its stream at `from`; it gets what exists from there now
    /// and every block written later.
    func subscribe(peer: Int, from: UInt64) -> [Outgoing] {
        subscribers[peer] = from
        return push()
    }

    /// What each stream has not had yet, up to `max` blocks per message, peers in index order.
    func push(max: Int = 8) -> [Outgoing] {
        var out: [Outgoing] = []
        for peer in subscribers.keys.sorted() {
            let from = subscribers[peer]!
            guard from < ledger.height else { continue }
            let upTo = min(ledger.height, from + UInt64(max))
            let blocks = (from..<upTo).compactMap { try? ledger.orderedBlock(number: $0) }
            subscribers[peer] = upTo
            out.append((.peer(peer), .blocks(blocks)))
        }
        return out
    }
}

/// A node stopped (a disk write failed): the world marks it down and restarts it later.
struct SimCrash: Error {
    var reason: String
}
