import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProtos
import Synchronization

/// Where a transaction is: its block, its position, and the validation code it got.
public struct TxLocation: Sendable, Equatable, CustomStringConvertible {
    public var blockNum: UInt64
    public var txNum: UInt64
    public var code: Medledger_TxValidationCode

    public var description: String { "block \(blockNum) tx \(txNum) (\(code))" }
}

/// The chain's current end.
public struct ChainInfo: Sendable, Equatable {
    /// Number of blocks; the next block's number.
    public var height: UInt64
    /// Header hash of the last block (32 zero bytes when empty).
    public var tipHash: Bytes
    /// Commit hash after the last block (32 zero bytes when empty).
    public var commitHash: Bytes
}

public struct CommitReceipt: Sendable, Equatable {
    public var blockNumber: UInt64
    public var headerHash: Bytes
    public var commitHash: Bytes
    public var validTransactions: Int
    /// Every transaction's code, in block order (set by the peer that validated the block).
    public var validationCodes: [Medledger_TxValidationCode] = []
}

/// One channel's ledger: block store, transaction index, world state and history, kept in one store and
/// committed together.
///
/// Durability: `commit` writes the block, its indexes, its state and history changes and the state
/// savepoint in one atomic `WriteBatch` with sync — one fsync per block. A crash leaves either all of the
/// block or none of it. On open, if the state savepoint is behind the block store (a store restored from
/// an older state, or a state rebuilt by hand), the missing blocks are replayed: the block store is the
/// truth. Opened read-only, it does neither: the state stays as found (`ChainVerifier` reports a
/// savepoint behind or ahead of the blocks) and every write is refused.
public final class ChannelLedger: Sendable {
    public let channel: String
    public let limits: LedgerLimits
    public let isReadOnly: Bool

    let kv: any KVStore
    let families: LedgerFamilies
    let keys: LedgerKeys
    private let tip: Mutex<ChainInfo>
    /// Serialises commits; reads never take it.
    private let commitLock = Mutex(())

    init(
        kv: any KVStore, families: LedgerFamilies, channel: String, limits: LedgerLimits, readOnly: Bool = false
    ) throws {
        self.kv = kv
        self.families = families
        self.channel = channel
        self.limits = limits
        self.isReadOnly = readOnly
        self.keys = LedgerKeys(channel: channel)
        self.tip = Mutex(ChainInfo(height: 0, tipHash: LedgerHash.zero, commitHash: LedgerHash.zero))
        try recover()
    }

    // MARK: - Reads

    public var info: ChainInfo { tip.withLock { $0 } }
    public var height: UInt64 { info.height }

    public var state: WorldStateReader { WorldStateReader(reader: kv, families: families, keys: keys) }

    /// A point-in-time view of the state, for simulations that must not see commits made meanwhile.
    public func stateSnapshot() throws -> WorldStateReader {
        WorldStateReader(reader: try kv.snapshot(), families: families, keys: keys)
    }

    public func serializedBlock(number: UInt64) throws -> Bytes? {
        try kv.get(families.blocks, keys.block(number))
    }

    public func block(number: UInt64) throws -> Medledger_Block? {
        guard let bytes = try serializedBlock(number: number) else { return nil }
        return try Self.decode(bytes, number: number)
    }

    public func block(hash: Bytes) throws -> Medledger_Block? {
        guard let v = try kv.get(families.blockHashes, keys.blockHash(hash)) else { return nil }
        guard let n = BigEndian.uint64(v) else {
            throw StorageError.corrupt(what: "block hash index", reason: "value is not a block number")
        }
        return try block(number: n)
    }

    public func transaction(id txID: String) throws -> TxLocation? {
        guard let v = try kv.get(families.txIndex, keys.tx(txID)) else { return nil }
        guard v.count == 17, let h = Height(encoded: v) else {
            throw StorageError.corrupt(what: "tx index entry \(txID)", reason: "expected 17 bytes, found \(v.count)")
        }
        return TxLocation(
            blockNum: h.blockNum, txNum: h.txNum,
            code: Medledger_TxValidationCode(rawValue: Int(v[16])) ?? .UNRECOGNIZED(Int(v[16])))
    }

    /// Blocks [from, to] in order (`to` clamped to the chain's end).
    public func blocks(from: UInt64, through to: UInt64) throws -> [Medledger_Block] {
        let end = min(to, height == 0 ? 0 : height - 1)
        guard from <= end, height > 0 else { return [] }
        var out = [Medledger_Block]()
        for n in from...end {
            guard let b = try block(number: n) else {
                throw StorageError.corrupt(what: "block store", reason: "block \(n) missing below height \(height)")
            }
            out.append(b)
        }
        return out
    }

    /// The inclusion proof of `txID` in its block, with the block header to check it against.
    public func inclusionProof(
        txID: String
    ) throws -> (header: Medledger_BlockHeader, envelope: Bytes, proof: MerkleProof)? {
        guard let loc = try transaction(id: txID), let b = try block(number: loc.blockNum) else { return nil }
        let envelopes = b.envelopeBytes
        guard let proof = MerkleTree(leaves: envelopes).proof(forLeaf: Int(loc.txNum)) else { return nil }
        return (b.header, envelopes[Int(loc.txNum)], proof)
    }

    // MARK: - Commit

    public func commit(serializedBlock bytes: Bytes) throws -> CommitReceipt {
        guard bytes.count <= limits.blockBytesMax else {
            throw BlockRejection.blockTooLarge(number: height, size: bytes.count, limit: limits.blockBytesMax)
        }
        let block: Medledger_Block
        do { block = try Medledger_Block(serializedBytes: bytes) } catch {
            throw BlockRejection.malformed(reason: "\(error)")
        }
        return try commit(block)
    }

    /// Checks `block` against the chain and commits it with its state changes, durably (one fsync).
    /// Throws `BlockRejection` (nothing written) when the block does not fit the chain.
    @discardableResult
    /// `parsed`: the block's transactions as the caller parsed them already (see `BlockCheck.check`).
    public func commit(_ block: Medledger_Block, parsed: [ParsedTransaction?]? = nil) throws -> CommitReceipt {
        try commitLock.withLock { _ in try commitLocked(block, applyState: true, parsed: parsed) }
    }

    /// Test hook: stores the block and its indexes but not its state changes, as a crash between two
    /// separate writes would. Recovery must replay it.
    func commitBlockOnlyForTesting(_ block: Medledger_Block) throws {
        _ = try commitLock.withLock { _ in try commitLocked(block, applyState: false) }
    }

    private func commitLocked(
        _ block: Medledger_Block, applyState: Bool, parsed: [ParsedTransaction?]? = nil
    ) throws -> CommitReceipt {
        guard !isReadOnly else { throw StorageError.readOnly(path: "channel \(channel)") }
        let current = info
        let checked = try BlockCheck.check(
            block, channel: channel, expectedNumber: current.height, previousHash: current.tipHash, limits: limits,
            parsed: parsed)
        let n = checked.number
        let valid = checked.validTransactions
        try checkNamespaces(valid, block: n)

        var batch = WriteBatch()
        batch.reserveCapacity(checked.transactions.count * 3 + 4)
        try stageIndexes(checked, into: &batch)

        let commitHash = CommitHash.next(previous: current.commitHash, blockNumber: n, validTransactions: valid)
        var stored = checked.block
        if !stored.metadata.commitHash.isEmpty, [UInt8](stored.metadata.commitHash) != commitHash {
            throw BlockRejection.commitHashMismatch(
                number: n, block: Hex.encode(stored.metadata.commitHash), computed: Hex.encode(commitHash))
        }
        stored.metadata.commitHash = Data(commitHash)
        let bytes: Bytes = try stored.serializedBytes()
        guard bytes.count <= limits.blockBytesMax else {
            throw BlockRejection.blockTooLarge(number: n, size: bytes.count, limit: limits.blockBytesMax)
        }
        batch.put(families.blocks, keys.block(n), bytes)
        batch.put(families.blockHashes, keys.blockHash(checked.headerHash), BigEndian.bytes(n))
        if applyState { stageState(n, valid, into: &batch) }

        try kv.write(batch, sync: true)
        tip.withLock { $0 = ChainInfo(height: n + 1, tipHash: checked.headerHash, commitHash: commitHash) }
        return CommitReceipt(
            blockNumber: n, headerHash: checked.headerHash, commitHash: commitHash, validTransactions: valid.count)
    }

    /// Tx index entries; a transaction marked valid whose id is already indexed is refused.
    private func stageIndexes(_ checked: CheckedBlock, into batch: inout WriteBatch) throws {
        let codes = checked.block.metadata.validationCodes
        var indexedHere = Set<String>()
        for (i, tx) in checked.transactions.enumerated() {
            guard let tx else { continue }
            if let existing = try transaction(id: tx.txID) {
                if codes[i].isValid {
                    throw BlockRejection.duplicateTxID(
                        number: checked.number, txNum: i, txID: tx.txID, existing: existing.description)
                }
                continue
            }
            guard indexedHere.insert(tx.txID).inserted else { continue }
            batch.put(
                families.txIndex, keys.tx(tx.txID),
                Height(blockNum: checked.number, txNum: UInt64(i)).encoded + [
                    UInt8(truncatingIfNeeded: codes[i].rawValue)
                ])
        }
    }

    /// State, history and savepoint for the valid transactions of block `n`.
    private func stageState(
        _ n: UInt64, _ valid: [(txNum: Int, transaction: ParsedTransaction)], into batch: inout WriteBatch
    ) {
        for (txNum, tx) in valid {
            let height = Height(blockNum: n, txNum: UInt64(txNum))
            let version = height.encoded
            for (ns, w) in tx.writes {
                let stateKey = keys.state(ns, w.key)
                if w.isDelete {
                    batch.delete(families.state, stateKey)
                    batch.put(families.history, keys.history(ns, w.key, height), [1])
                } else {
                    let value = [UInt8](w.value)
                    batch.put(families.state, stateKey, version + value)
                    batch.put(families.history, keys.history(ns, w.key, height), [0])  // the value stays in the block
                }
            }
        }
        batch.put(families.meta, keys.savepoint, BigEndian.bytes(n))
    }

    private func checkNamespaces(_ valid: [(txNum: Int, transaction: ParsedTransaction)], block n: UInt64) throws {
        for (txNum, tx) in valid {
            for ns in tx.rwset?.nsRwset ?? [] where !NamespaceName.isValid(ns.namespace) {
                throw BlockRejection.malformedTransaction(
                    number: n, txNum: txNum, reason: "namespace \(ns.namespace.debugDescription) is not valid")
            }
        }
    }

    // MARK: - Recovery

    /// The last block whose state changes are applied, nil if none.
    public func stateSavepoint() throws -> UInt64? {
        guard let v = try kv.get(families.meta, keys.savepoint) else { return nil }
        guard let n = BigEndian.uint64(v), v.count == 8 else {
            throw StorageError.corrupt(what: "state savepoint", reason: "not an 8-byte block number")
        }
        return n
    }

    private func recover() throws {
        guard let last = try kv.last(families.blocks, keys.allBlocks) else { return }
        guard let n = keys.blockNumber(fromKey: last.key) else {
            throw StorageError.corrupt(what: "block store", reason: "key of unexpected length")
        }
        let block = try Self.decode(last.value, number: n)
        tip.withLock {
            $0 = ChainInfo(
                height: n + 1, tipHash: block.header.headerHash, commitHash: [UInt8](block.metadata.commitHash))
        }
        if isReadOnly { return }  // no replay: the state is left as found, for the verifier to judge
        let savepoint = try stateSavepoint()
        if let s = savepoint, s > n {
            throw StorageError.corrupt(
                what: "channel \(channel)",
                reason:
                    "state savepoint (block \(s)) is ahead of the block store (last block \(n)); run `medledger ledger rebuild-state`"
            )
        }
        let firstMissing = savepoint.map { $0 + 1 } ?? 0
        if firstMissing <= n { try replayState(from: firstMissing, through: n) }
    }

    /// Re-applies the state changes of blocks [from, through] from the block store.
    private func replayState(from: UInt64, through: UInt64) throws {
        var previousHash = LedgerHash.zero
        var previousCommit = LedgerHash.zero
        if from > 0 {
            guard let prev = try block(number: from - 1) else {
                throw StorageError.corrupt(what: "block store", reason: "block \(from - 1) missing")
            }
            previousHash = prev.header.headerHash
            previousCommit = [UInt8](prev.metadata.commitHash)
        }
        for n in from...through {
            guard let b = try block(number: n) else {
                throw StorageError.corrupt(what: "block store", reason: "block \(n) missing during state replay")
            }
            let checked = try BlockCheck.check(
                b, channel: channel, expectedNumber: n, previousHash: previousHash, limits: limits)
            let valid = checked.validTransactions
            let commitHash = CommitHash.next(previous: previousCommit, blockNumber: n, validTransactions: valid)
            guard commitHash == [UInt8](b.metadata.commitHash) else {
                throw BlockRejection.commitHashMismatch(
                    number: n, block: Hex.encode(b.metadata.commitHash), computed: Hex.encode(commitHash))
            }
            var batch = WriteBatch()
            stageState(n, valid, into: &batch)
            try kv.write(batch, sync: n == through)
            previousHash = checked.headerHash
            previousCommit = commitHash
        }
    }

    /// Drops this channel's state and history and rebuilds them from the block store.
    public func rebuildState() throws {
        guard !isReadOnly else { throw StorageError.readOnly(path: "channel \(channel)") }
        try commitLock.withLock { _ in
            try Self.clearState(kv: kv, families: families, keys: keys)
            let h = height
            if h > 0 { try replayState(from: 0, through: h - 1) }
        }
    }

    /// Deletes a channel's state, history and savepoint, so that the next recovery replays every block.
    static func clearState(kv: any KVStore, families: LedgerFamilies, keys: LedgerKeys) throws {
        var batch = WriteBatch()
        let range = keys.allState
        batch.deleteRange(families.state, lower: range.lower, upper: range.upper!)
        batch.deleteRange(families.history, lower: range.lower, upper: range.upper!)
        batch.delete(families.meta, keys.savepoint)
        try kv.write(batch, sync: true)
    }

    static func decode(_ bytes: Bytes, number: UInt64) throws -> Medledger_Block {
        do {
            return try Medledger_Block(serializedBytes: bytes)
        } catch {
            throw StorageError.corrupt(what: "block \(number)", reason: "does not parse (\(error))")
        }
    }
}
