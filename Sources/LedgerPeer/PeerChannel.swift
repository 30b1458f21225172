import Foundation
import LedgerChannel
import LedgerCore
import LedgerProtos
import LedgerStorage
import Synchronization

public struct PeerChannelError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One channel on a peer: its ledger, its current configuration, and the commit path for blocks that
/// arrive from the ordering service (check the orderer's signature, validate, commit, notify).
public final class PeerChannel: BlockSource, Sendable {
    public let ledger: ChannelLedger
    public let notifier: HeightNotifier
    /// What event subscribers see of recent blocks, parsed once for all of them.
    public let eventFacts = BlockEventCache()

    /// `block` (one of this channel's) as `audience` sees it in a filtered block, from the shared facts.
    public func filteredBlock(_ block: Medledger_Block, for audience: EventAudience) -> Medledger_FilteredBlock {
        BlockEvents.filtered(
            eventFacts.facts(for: block), number: block.header.number, channel: channelName, audience: audience)
    }
    private let current: Mutex<ChannelContext>
    /// The time the last committed block was signed at (nil until first needed): the next may not be earlier.
    private let receiving = Mutex<Date?>(nil)
    let validator: BlockValidator

    public var channelName: String { ledger.channel }
    public var context: ChannelContext { current.withLock { $0 } }

    init(ledger: ChannelLedger, context: ChannelContext, ownSignatures: SignatureMemory?) {
        self.ledger = ledger
        self.validator = BlockValidator(ownSignatures: ownSignatures)
        self.current = Mutex(context)
        self.notifier = HeightNotifier(height: ledger.height)
    }

    /// Joins a channel from its genesis block: checks the block, creates the ledger, commits block 0.
    /// `ownSignatures`: the node's endorser's memory, so blocks need not re-verify what it signed.
    public static func join(
        genesis: Medledger_Block, store: LedgerStore, ownSignatures: SignatureMemory? = nil
    ) throws -> PeerChannel {
        let context = try ConfigTransaction.verifyGenesis(genesis)
        if try store.channelNames().contains(context.channel) {
            throw PeerChannelError("this node has already joined channel \(context.channel)")
        }
        var block = genesis
        block.metadata.validationCodes = [.valid]
        block.metadata.commitHash = Data()
        block.metadata.lastConfigBlock = 0
        let ledger = try store.createChannel(context.channel, genesis: block)
        return PeerChannel(ledger: ledger, context: context, ownSignatures: ownSignatures)
    }

    /// Opens a joined channel: its configuration is the one in the last configuration block.
    public static func open(
        _ name: String, store: LedgerStore, ownSignatures: SignatureMemory? = nil
    ) throws -> PeerChannel {
        let ledger = try store.channel(name)
        do {
            return PeerChannel(
                ledger: ledger, context: try ChannelContext.current(in: ledger), ownSignatures: ownSignatures)
        } catch let e as ChannelConfigError {
            throw PeerChannelError(e.description)
        }
    }

    public func block(number: UInt64) throws -> Medledger_Block? { try ledger.block(number: number) }

    /// Validates and commits the next block from the ordering service. Blocks below the height are
    /// ignored (a re-delivery after reconnect); a gap or a bad orderer signature is refused. Nothing
    /// here reads the clock: the block is judged at its own time, which may not precede the previous
    /// block's, so a peer syncing years later reaches the same verdicts as one that kept up.
    @discardableResult
    public func receive(_ ordered: Medledger_Block) throws -> CommitReceipt? {
        try receiving.withLock { lastTime in
            let height = ledger.height
            guard ordered.header.number >= height else { return nil }
            guard ordered.header.number == height else {
                throw PeerChannelError("block \(ordered.header.number) arrived but the next is \(height)")
            }
            let ctx = context
            let time = ordered.judgedTime
            if lastTime == nil { lastTime = try ledger.block(number: height - 1)?.judgedTime }
            if let previous = lastTime, ordered.signedTime != nil, time < previous {
                throw PeerChannelError("block \(height) is signed at \(time), before block \(height - 1) (\(previous))")
            }
            try ConfigTransaction.checkBlockSignature(ordered, context: ctx, at: time)
            var block = ordered
            block.metadata.commitHash = Data()
            let outcome = try validator.validate(block, context: ctx, ledger: ledger, blockTime: time)
            block.metadata.validationCodes = outcome.codes
            block.metadata.lastConfigBlock = outcome.newContext.map { _ in block.header.number } ?? ctx.configBlock
            var receipt = try ledger.commit(block, parsed: outcome.parsed)
            receipt.validationCodes = outcome.codes
            lastTime = time
            if let next = outcome.newContext { current.withLock { $0 = next } }
            notifier.advance(to: receipt.blockNumber + 1)
            return receipt
        }
    }
}
