import Foundation
import LedgerChannel
import LedgerCore
import LedgerProtos

/// What a raft consenter does with an entry its log committed: the decision alone, with no ledger,
/// thread or engine, so it is tested without a cluster. Every consenter applies the same log, so
/// the same entry is decided the same way everywhere: a block that does not extend the chain (a
/// deposed leader's, superseded) or is not signed by an orderer node of the channel is skipped on
/// every consenter alike.
public enum RaftEntryRules {
    public enum Decision {
        /// Nothing to write. `why` is worth a log line (nil: the block is already here, unchanged).
        case skip(why: String?)
        /// The entry is a block ahead of the ledger: blocks `height..<block` are pulled from other
        /// consenters first, then the entry is decided again.
        case catchUp(to: UInt64)
        /// Write the block; `newContext` when it is a configuration block that changes the channel.
        case commit(Medledger_Block, newContext: ChannelContext?)
    }

    /// - Parameters:
    ///   - height: the ledger's height (the next block's number).
    ///   - headerHash: the header hash of a block the ledger holds.
    public static func decide(
        _ entry: [UInt8], channel: String, height: UInt64, context: ChannelContext,
        headerHash: (UInt64) throws -> [UInt8]?
    ) rethrows -> Decision {
        let block: Medledger_Block
        do { block = try Medledger_Block(serializedBytes: entry) } catch {
            return .skip(why: "raft entry on \(channel) is not a block; skipped: \(error)")
        }
        let n = block.header.number
        if n > height { return .catchUp(to: n) }
        guard n == height else {
            guard let mine = try headerHash(n), mine != block.header.headerHash else { return .skip(why: nil) }
            return .skip(why: "raft block \(n) on \(channel) does not extend the chain (a deposed leader's); skipped")
        }
        do {
            try ConfigTransaction.checkBlockSignature(block, context: context, at: block.judgedTime)
        } catch {
            return .skip(why: "refused raft block \(n) on \(channel): \(error)")
        }
        var newContext: ChannelContext?
        if block.metadata.lastConfigBlock == n, let env = block.data.envelopes.first {
            newContext = try? ConfigTransaction.checkUpdate(
                envelope: [UInt8](env), current: context, blockNumber: n, at: block.judgedTime)
        }
        return .commit(block, newContext: newContext)
    }
}
