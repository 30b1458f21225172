import LedgerCore
import LedgerCrypto
import LedgerProtos

/// The result of walking a channel's chain end to end.
public struct ChainReport: Sendable, Codable {
    public var channel: String
    public var height: UInt64
    public var tipHash: String
    public var commitHash: String
    public var stateChecked: Bool
    public var problems: [String]
    /// Findings that are not damage: a state savepoint behind the tip (the blocks after it are
    /// replayed into the state when the ledger is next opened for writing).
    public var notes: [String] = []

    public var isValid: Bool { problems.isEmpty }
}

/// Re-derives everything the ledger stores from the blocks themselves and reports each disagreement:
/// block numbering, hash chain, Merkle data hashes, validation codes, commit-hash chain, block-hash and
/// tx-id indexes, and (optionally) the whole world state and history against a replay of the chain up
/// to the state savepoint. Reads only: on a ledger opened read-only it changes nothing on disk.
public struct ChainVerifier {
    /// Stop listing after this many problems: one broken link makes many follow.
    public static let problemsMax = 50

    let ledger: ChannelLedger

    public init(ledger: ChannelLedger) { self.ledger = ledger }

    public func verify(checkState: Bool) -> ChainReport {
        var problems = [String]()
        var notes = [String]()
        func problem(_ p: String) { if problems.count < Self.problemsMax { problems.append(p) } }

        var expected: UInt64 = 0
        var previousHash = LedgerHash.zero
        var previousCommit = LedgerHash.zero
        // Replay target: the state and history a correct ledger must hold.
        var replayState = [Bytes: Bytes]()
        var replayHistory = [Bytes: Bytes]()
        let keys = ledger.keys
        let fam = ledger.families

        do {
            // The state holds the writes of blocks up to its savepoint: that is what it is compared with.
            let savepoint = try ledger.stateSavepoint()
            let cursor = try ledger.kv.cursor(fam.blocks, keys.allBlocks, reverse: false)
            while let pair = try cursor.next() {
                guard let n = keys.blockNumber(fromKey: pair.key) else {
                    problem("block store: key \(Hex.encode(pair.key)) is not a block key")
                    continue
                }
                if n != expected { problem("block store: found block \(n) where block \(expected) should be") }
                expected = n + 1
                let block: Medledger_Block
                do { block = try Medledger_Block(serializedBytes: pair.value) } catch {
                    problem("block \(n): corrupt, does not parse (\(error))")
                    previousHash = LedgerHash.zero
                    continue
                }
                let checked: CheckedBlock
                do {
                    checked = try BlockCheck.check(
                        block, channel: ledger.channel, expectedNumber: n, previousHash: previousHash,
                        limits: ledger.limits)
                } catch {
                    problem("\(error)")
                    previousHash = block.header.headerHash
                    previousCommit = [UInt8](block.metadata.commitHash)
                    continue
                }
                let valid = checked.validTransactions
                let commit = checkCommitHash(
                    of: block, number: n, valid: valid, previousCommit: previousCommit, problem: problem)
                try checkIndexes(of: block, checked: checked, number: n, problem: problem)
                if checkState, let s = savepoint, n <= s {
                    replayWrites(of: valid, blockNumber: n, state: &replayState, history: &replayHistory)
                }
                previousHash = checked.headerHash
                previousCommit = commit
            }
            if checkState { try compareWithReplay(state: replayState, history: replayHistory, problem: problem) }
            judge(savepoint: savepoint, blocks: expected, stateChecked: checkState, problem: problem) {
                notes.append($0)
            }
        } catch {
            problem("read failed: \(error)")
        }
        let info = ledger.info
        if info.height != expected {
            problem("ledger height \(info.height) but the block store holds \(expected) blocks")
        }
        return ChainReport(
            channel: ledger.channel, height: expected, tipHash: Hex.encode(previousHash),
            commitHash: Hex.encode(previousCommit),
            stateChecked: checkState, problems: problems, notes: notes)
    }

    /// The commit hash chained from `previousCommit` over block `n`'s valid transactions; reports a mismatch.
    private func checkCommitHash(
        of block: Medledger_Block, number n: UInt64, valid: [(txNum: Int, transaction: ParsedTransaction)],
        previousCommit: [UInt8], problem: (String) -> Void
    ) -> [UInt8] {
        let commit = CommitHash.next(previous: previousCommit, blockNumber: n, validTransactions: valid)
        if commit != [UInt8](block.metadata.commitHash) {
            problem(
                BlockRejection.commitHashMismatch(
                    number: n, block: Hex.encode(block.metadata.commitHash), computed: Hex.encode(commit)
                ).description)
        }
        return commit
    }

    /// Checks that the block-hash index and the tx-id index point to block `n` and agree with its codes.
    private func checkIndexes(
        of block: Medledger_Block, checked: CheckedBlock, number n: UInt64, problem: (String) -> Void
    ) throws {
        if let indexed = try ledger.kv.get(ledger.families.blockHashes, ledger.keys.blockHash(checked.headerHash)),
            BigEndian.uint64(indexed) == n
        {
        } else {
            problem("block \(n): block-hash index does not point to it")
        }
        for (i, tx) in checked.transactions.enumerated() {
            guard let tx, let loc = try ledger.transaction(id: tx.txID) else {
                if checked.transactions[i] != nil {
                    problem("block \(n) tx \(i): tx id missing from the tx index")
                }
                continue
            }
            if loc.blockNum == n, loc.txNum == UInt64(i), loc.code != block.metadata.validationCodes[i] {
                problem(
                    "block \(n) tx \(i): tx index says \(loc.code), block says \(block.metadata.validationCodes[i])"
                )
            }
        }
    }

    /// Applies block `n`'s valid writes to the replayed state and history, as committing them would.
    private func replayWrites(
        of valid: [(txNum: Int, transaction: ParsedTransaction)], blockNumber n: UInt64, state: inout [Bytes: Bytes],
        history: inout [Bytes: Bytes]
    ) {
        let keys = ledger.keys
        for (txNum, tx) in valid {
            let h = Height(blockNum: n, txNum: UInt64(txNum))
            for (ns, w) in tx.writes {
                let sk = keys.state(ns, w.key)
                if w.isDelete {
                    state[sk] = nil
                    history[keys.history(ns, w.key, h)] = [1]
                } else {
                    state[sk] = h.encoded + [UInt8](w.value)
                    // A digest of the value, not the value: enough to check a format-1 copy, and the
                    // replay of a long chain of P_DE records stays small (`historyMatches`).
                    history[keys.history(ns, w.key, h)] = [0] + LedgerHash.sha256([UInt8](w.value))
                }
            }
        }
    }

    /// Reports every difference between the stored state and history and the replay of the chain.
    private func compareWithReplay(
        state: [Bytes: Bytes], history: [Bytes: Bytes], problem: (String) -> Void
    ) throws {
        let keys = ledger.keys
        let fam = ledger.families
        compare(stored: try ledger.kv.scan(fam.state, keys.allState), replay: state, what: "state", report: problem)
        compare(
            stored: try ledger.kv.scan(fam.history, keys.allState), replay: history, what: "history",
            matches: Self.historyMatches, report: problem)
    }

    /// A write's history entry is `[0]` (the value stays in its block; format 2) or, written by format 1,
    /// `[0] ‖ value` with the value the block holds (the replay keeps `[0] ‖ SHA-256(value)`); a
    /// delete's is `[1]`.
    static func historyMatches(stored: Bytes, replayed: Bytes) -> Bool {
        guard replayed.first == 0 else { return stored == replayed }
        guard stored.first == 0 else { return false }
        return stored.count == 1 || LedgerHash.sha256(Array(stored.dropFirst())) == Array(replayed.dropFirst())
    }

    /// A savepoint ahead of the blocks is damage (`rebuild-state` repairs it); one behind them is what a
    /// crash between separate writes or a restored backup leaves, and opening for writing replays it.
    private func judge(
        savepoint: UInt64?, blocks: UInt64, stateChecked: Bool, problem: (String) -> Void, note: (String) -> Void
    ) {
        let last: UInt64? = blocks > 0 ? blocks - 1 : nil
        switch (savepoint, last) {
        case (let s?, nil):
            problem(
                "state savepoint (block \(s)) is ahead of the block store (no blocks); run `medledger ledger rebuild-state`"
            )
        case (let s?, let l?) where s > l:
            problem(
                "state savepoint (block \(s)) is ahead of the block store (last block \(l)); run `medledger ledger rebuild-state`"
            )
        case (let s, let l?) where s.map({ $0 < l }) ?? true:
            let from = s.map { $0 + 1 } ?? 0
            let compared =
                stateChecked
                ? (s.map { "; the state was compared with a replay through block \($0)" }
                    ?? "; the state was checked to be empty") : ""
            note(
                "state savepoint is \(s.map { "block \($0)" } ?? "unset") but the chain ends at block \(l): blocks \(from)…\(l) are replayed into the state when the ledger is next opened for writing\(compared)"
            )
        default:
            break
        }
    }

    private func compare(
        stored: [KVPair], replay: [Bytes: Bytes], what: String,
        matches: (_ stored: Bytes, _ replayed: Bytes) -> Bool = { $0 == $1 }, report: (String) -> Void
    ) {
        var seen = 0
        for pair in stored {
            let label = describe(pair.key)
            guard let expected = replay[pair.key] else {
                report("\(what): \(label) is stored but no valid transaction wrote it")
                continue
            }
            seen += 1
            if !matches(pair.value, expected) { report("\(what): \(label) differs from a replay of the chain") }
        }
        if seen != replay.count {
            report("\(what): \(replay.count - seen) entries written by the chain are missing from the store")
        }
    }

    private func describe(_ key: Bytes) -> String {
        guard let parts = ledger.keys.stateKeyParts(key) else { return Hex.encode(key) }
        return "\(parts.namespace)/\(parts.key.debugDescription)"
    }
}
