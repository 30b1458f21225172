import LedgerCore
import LedgerProtos
import LedgerStorage

/// Multi-version concurrency control at commit: a transaction is valid only if everything it read is
/// still what it read. Transactions of a block are checked in order against the committed state *plus*
/// the writes of the valid transactions before them in the same block:
///
/// - a key read at version v must still be at v (absent stays absent) and not be written earlier in the
///   block → else `MVCC_READ_CONFLICT` (the client re-simulates and resubmits);
/// - a range read must return exactly the same keys at the same versions when re-run, and no key in it
///   may be written earlier in the block → else `PHANTOM_READ_CONFLICT`.
///
/// Pure over a state reader: the committer calls it with the state before the block.
public struct MVCCValidator {
    let state: WorldStateReader

    public init(state: WorldStateReader) { self.state = state }

    struct NamespacedKey: Hashable {
        var namespace: String
        var key: String
    }

    /// Updates `codes` in place: entries that are `.valid` on entry may become MVCC or phantom conflicts.
    public func validate(_ rwsets: [Medledger_TxReadWriteSet?], codes: inout [Medledger_TxValidationCode]) throws {
        precondition(rwsets.count == codes.count, "one read-write set slot per transaction")
        var writtenInBlock = Set<NamespacedKey>()
        var writtenByNamespace = [String: [String]]()
        for i in rwsets.indices where codes[i] == .valid {
            guard let rwset = rwsets[i] else { continue }
            if let conflict = try check(rwset, writtenInBlock: writtenInBlock, writtenByNamespace: writtenByNamespace) {
                codes[i] = conflict
                continue
            }
            for ns in rwset.nsRwset {
                for w in ns.rwset.writes {
                    if writtenInBlock.insert(NamespacedKey(namespace: ns.namespace, key: w.key)).inserted {
                        writtenByNamespace[ns.namespace, default: []].append(w.key)
                    }
                }
            }
        }
    }

    private func check(
        _ rwset: Medledger_TxReadWriteSet, writtenInBlock: Set<NamespacedKey>, writtenByNamespace: [String: [String]]
    ) throws -> Medledger_TxValidationCode? {
        for ns in rwset.nsRwset {
            for read in ns.rwset.reads {
                if writtenInBlock.contains(NamespacedKey(namespace: ns.namespace, key: read.key)) {
                    return .mvccReadConflict
                }
                let committed = try state.get(namespace: ns.namespace, key: read.key)?.version
                let readAt: Height? =
                    read.hasVersion ? Height(blockNum: read.version.blockNum, txNum: read.version.txNum) : nil
                if committed != readAt { return .mvccReadConflict }
            }
            for range in ns.rwset.rangeQueriesInfo {
                if try isPhantom(range, namespace: ns.namespace, writtenInBlock: writtenByNamespace[ns.namespace] ?? [])
                {
                    return .phantomReadConflict
                }
            }
        }
        return nil
    }

    /// Re-runs the range up to where the simulation stopped reading and compares.
    private func isPhantom(
        _ range: Medledger_RangeQueryInfo, namespace: String, writtenInBlock: [String]
    ) throws -> Bool {
        // Where the checked range ends: the range's end if the simulation read to the end, else just
        // after the last key it read.
        let end: String
        if range.itrExhausted || range.rawReads.isEmpty {
            end = range.endKey
        } else {
            end = range.rawReads[range.rawReads.count - 1].key + "\u{0}"
        }
        func inRange(_ k: String) -> Bool {
            !k.utf8.lexicographicallyPrecedes(range.startKey.utf8)
                && (end.isEmpty || k.utf8.lexicographicallyPrecedes(end.utf8))
        }
        if writtenInBlock.contains(where: inRange) { return true }
        let expected = range.rawReads
        let page = try state.range(
            namespace: namespace, startKey: range.startKey, endKey: end, limit: expected.count + 1)
        guard page.count == expected.count else { return true }
        for (i, r) in expected.enumerated() {
            let v = page.version(at: i)
            if page.key(at: i) != r.key || v.blockNum != r.version.blockNum || v.txNum != r.version.txNum {
                return true
            }
        }
        return false
    }
}
