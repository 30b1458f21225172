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
        // Replay target: the state a correct ledger must hold, each live key's version and value digest.
        // History is checked as the replay goes, entry by entry, and only counted here.
        var replayState = [Bytes: Bytes]()
        var history = HistoryTally()
        // Blocks up to the savepoint that do not parse or fail their checks, so are not replayed.
        var unreplayed = Set<UInt64>()
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
                    unreplayed.insert(n)
                    continue
                }
                let checked: CheckedBlock
                do {
                    checked = try BlockCheck.check(
                        block, channel: ledger.channel, expectedNumber: n, previousHash: previousHash,
                        limits: ledger.limits)
                } catch {
                    problem("\(error)")
                    unreplayed.insert(n)
                    previousHash = block.header.headerHash
                    previousCommit = [UInt8](block.metadata.commitHash)
                    continue
                }
                let valid = checked.validTransactions
                let commit = checkCommitHash(
                    of: block, number: n, valid: valid, previousCommit: previousCommit, problem: problem)
                try checkIndexes(of: block, checked: checked, number: n, problem: problem)
                if checkState, let s = savepoint, n <= s {
                    try replayWrites(
                        of: valid, blockNumber: n, state: &replayState, history: &history, problem: problem)
                }
                previousHash = checked.headerHash
                previousCommit = commit
            }
            if checkState {
                try compareState(with: replayState, problem: problem)
                try checkHistoryHasNoMore(
                    than: history, replayed: { n in savepoint.map { n <= $0 } == true && !unreplayed.contains(n) },
                    problem: problem)
            }
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

    /// How many of the replay's history entries the store held, and how many it lacked.
    struct HistoryTally {
        var found = 0
        var missing = 0
    }

    /// Applies block `n`'s valid writes to the replayed state, as committing them would, and checks
    /// each one's history entry in the store. The replay keeps no values: a P_DE is 2.4 KB, its
    /// digest 32 bytes, and history is looked up rather than replayed, so memory follows the number
    /// of live keys, not the chain's length or its values' size.
    private func replayWrites(
        of valid: [(txNum: Int, transaction: ParsedTransaction)], blockNumber n: UInt64, state: inout [Bytes: Bytes],
        history: inout HistoryTally, problem: (String) -> Void
    ) throws {
        let keys = ledger.keys
        for (txNum, tx) in valid {
            let h = Height(blockNum: n, txNum: UInt64(txNum))
            // A transaction's last write of a key is the one its history entry stands for.
            var entries = [Bytes: (label: String, entry: Bytes)]()
            for (ns, w) in tx.writes {
                let label = "\(ns)/\(w.key.debugDescription) at \(h)"
                if w.isDelete {
                    state[keys.state(ns, w.key)] = nil
                    entries[keys.history(ns, w.key, h)] = (label, [1])
                } else {
                    let digest = LedgerHash.sha256([UInt8](w.value))
                    state[keys.state(ns, w.key)] = h.encoded + digest
                    entries[keys.history(ns, w.key, h)] = (label, [0] + digest)
                }
            }
            for (key, expected) in entries {
                guard let stored = try ledger.kv.get(ledger.families.history, key) else {
                    history.missing += 1
                    continue
                }
                history.found += 1
                if !Self.historyMatches(stored: stored, replayed: expected.entry) {
                    problem("history: \(expected.label) differs from a replay of the chain")
                }
            }
        }
    }

    /// Compares the stored state, streamed, with the replay's versions and value digests.
    private func compareState(with replay: [Bytes: Bytes], problem: (String) -> Void) throws {
        let cursor = try ledger.kv.cursor(ledger.families.state, ledger.keys.allState, reverse: false)
        var seen = 0
        while let pair = try cursor.next() {
            let label = describe(pair.key)
            guard let expected = replay[pair.key] else {
                problem("state: \(label) is stored but no valid transaction wrote it")
                continue
            }
            seen += 1
            if !Self.stateMatches(stored: pair.value, replayed: expected) {
                problem("state: \(label) differs from a replay of the chain")
            }
        }
        if seen != replay.count {
            problem("state: \(replay.count - seen) entries written by the chain are missing from the store")
        }
    }

    /// The replay found its entries; the store must hold no others. Counted first (one pass over the
    /// keys); only if there are more are they looked for, each against the transaction it names in a
    /// replayed block (on damage only: one block decoded per entry, as the keys are not in block order).
    private func checkHistoryHasNoMore(
        than replay: HistoryTally, replayed: (UInt64) -> Bool, problem: (String) -> Void
    ) throws {
        if replay.missing > 0 {
            problem("history: \(replay.missing) entries written by the chain are missing from the store")
        }
        let family = ledger.families.history
        var stored = 0
        try ledger.kv.cursor(family, ledger.keys.allState, reverse: false).forEach { _, _ in
            stored += 1
            return true
        }
        var extra = stored - replay.found
        guard extra > 0 else { return }
        let cursor = try ledger.kv.cursor(family, ledger.keys.allState, reverse: false)
        var block: (number: UInt64, block: Medledger_Block?)?
        while extra > 0, let pair = try cursor.next() {
            guard let (ns, key, h) = ledger.keys.historyKeyParts(pair.key) else {
                problem("history: key \(Hex.encode(pair.key)) is not a history key")
                extra -= 1
                continue
            }
            if block?.number != h.blockNum { block = (h.blockNum, try? ledger.block(number: h.blockNum)) }
            guard replayed(h.blockNum), let b = block?.block,
                Self.validTransaction(b, h, wroteHistoryKey: pair.key, keys: ledger.keys)
            else {
                problem("history: \(ns)/\(key.debugDescription) at \(h) is stored but no valid transaction wrote it")
                extra -= 1
                continue
            }
        }
        if extra > 0 { problem("history: \(extra) entries are stored that no valid transaction wrote") }
    }

    /// Whether the transaction at `height` in `block` is valid and wrote the key whose history entry
    /// is `historyKey`: the key rebuilt from its write must be the same bytes (strings that Swift
    /// calls equal can differ in bytes).
    static func validTransaction(
        _ block: Medledger_Block, _ height: Height, wroteHistoryKey historyKey: Bytes, keys: LedgerKeys
    ) -> Bool {
        let codes = block.metadata.validationCodes
        let envelopes = block.data.envelopes
        guard height.txNum < UInt64(envelopes.count), height.txNum < UInt64(codes.count),
            codes[Int(height.txNum)] == .valid,
            let tx = try? ParsedTransaction(envelope: [UInt8](envelopes[Int(height.txNum)]))
        else { return false }
        return tx.writes.contains { keys.history($0.namespace, $0.write.key, height) == historyKey }
    }

    /// A state entry is the version (16 bytes) and the value; the replay keeps the version and the
    /// value's SHA-256.
    static func stateMatches(stored: Bytes, replayed: Bytes) -> Bool {
        stored.count >= 16 && stored.prefix(16) == replayed.prefix(16)
            && LedgerHash.sha256(Array(stored.dropFirst(16))) == Array(replayed.dropFirst(16))
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

    private func describe(_ key: Bytes) -> String {
        guard let parts = ledger.keys.stateKeyParts(key) else { return Hex.encode(key) }
        return "\(parts.namespace)/\(parts.key.debugDescription)"
    }
}
