import LedgerCore
import LedgerProtos

public struct VersionedValue: Sendable, Equatable {
    public var value: Bytes
    public var version: Height

    /// Decodes straight from a storage buffer: version (16 bytes) then value.
    init?(raw: UnsafeRawBufferPointer) {
        guard raw.count >= 16, let h = Height(encoded: raw) else { return nil }
        version = h
        value = Bytes(UnsafeRawBufferPointer(rebasing: raw[16...]))
    }

    public init(value: Bytes, version: Height) {
        self.value = value
        self.version = version
    }
}

public struct StateEntry: Sendable, Equatable {
    public var key: String
    public var value: VersionedValue
}

/// One page of a range or prefix scan. `bookmark` is set when more entries may follow: pass it back to
/// get the next page.
///
/// Packed: all keys and values of the page sit in one byte buffer with a slot per entry, so a scan makes
/// two allocations rather than two per entry; `entries`, `key(at:)` and `value(at:)` materialise on use.
public struct StatePage: Sendable, Equatable {
    struct Slot: Sendable, Equatable {
        var keyStart: Int
        var keyCount: Int
        var valueCount: Int
        var version: Height
    }

    var bytes: [UInt8] = []
    var slots: [Slot] = []
    public var bookmark: String?

    init(reserving n: Int) {
        slots.reserveCapacity(n)
        bytes.reserveCapacity(n * 64)
    }

    public var count: Int { slots.count }
    public var isEmpty: Bool { slots.isEmpty }

    public func keyBytes(at i: Int) -> ArraySlice<UInt8> {
        let s = slots[i]
        return bytes[s.keyStart..<(s.keyStart + s.keyCount)]
    }

    public func valueBytes(at i: Int) -> ArraySlice<UInt8> {
        let s = slots[i]
        let start = s.keyStart + s.keyCount
        return bytes[start..<(start + s.valueCount)]
    }

    public func version(at i: Int) -> Height { slots[i].version }
    public func key(at i: Int) -> String { String(decoding: keyBytes(at: i), as: UTF8.self) }
    public func value(at i: Int) -> VersionedValue {
        VersionedValue(value: Array(valueBytes(at: i)), version: slots[i].version)
    }
    public var entries: [StateEntry] { (0..<count).map { StateEntry(key: key(at: $0), value: value(at: $0)) } }

    mutating func append(key: UnsafeRawBufferPointer, version: Height, value: UnsafeRawBufferPointer) {
        slots.append(Slot(keyStart: bytes.count, keyCount: key.count, valueCount: value.count, version: version))
        bytes.append(contentsOf: key)
        bytes.append(contentsOf: value)
    }
}

public struct HistoryEntry: Sendable, Equatable {
    public var version: Height
    public var isDelete: Bool
    public var value: Bytes
}

/// One page of a key's history, oldest first. `bookmark` is set when more entries may follow: pass it
/// back to get the next page. It is the version (`block:tx`) of the page's last entry.
public struct HistoryPage: Sendable, Equatable {
    public var entries: [HistoryEntry]
    public var bookmark: String?
}

public enum StateQueryError: Error, Equatable, CustomStringConvertible {
    case invalidNamespace(String)
    case invalidHistoryBookmark(String)

    public var description: String {
        switch self {
        case .invalidNamespace(let ns): return "invalid namespace \(ns.debugDescription): 1 to 255 bytes, no U+0000"
        case .invalidHistoryBookmark(let b):
            return
                "invalid history bookmark \(b.debugDescription): pass back the bookmark a history page returned (a version block:tx)"
        }
    }
}

/// Reads of a channel's versioned world state and key history, from the live store or a snapshot.
public struct WorldStateReader: Sendable {
    /// Largest page a range query returns, whatever the caller asks for.
    public static let pageSizeMax = 10_000
    public static let historyEntriesMax = 10_000
    /// Block bytes one history page may read to find its values (format 2 keeps them only in the
    /// blocks). Past it the page ends early, with a bookmark: one query cannot make the peer decode
    /// thousands of large blocks at once.
    public static let historyBlockBytesMax = 64 << 20

    let reader: any KVReader
    let families: LedgerFamilies
    let keys: LedgerKeys

    public func get(namespace: String, key: String) throws -> VersionedValue? {
        try checkNamespace(namespace)
        let decoded = try reader.withValue(families.state, keys.state(namespace, key)) { VersionedValue(raw: $0) }
        guard let decoded else { return nil }
        guard let v = decoded else {
            throw StorageError.corrupt(
                what: "state value \(namespace)/\(key.debugDescription)", reason: "shorter than its 16-byte version")
        }
        return v
    }

    /// Keys in [startKey, endKey) of `namespace`; an empty `endKey` means to the end of the namespace.
    public func range(
        namespace: String, startKey: String, endKey: String, limit: Int, bookmark: String? = nil
    ) throws -> StatePage {
        try checkNamespace(namespace)
        let nsPrefix = keys.namespacePrefix(namespace)
        var lower = nsPrefix + Array(startKey.utf8)
        if let bookmark {
            let after: Bytes = nsPrefix + Array(bookmark.utf8) + [0]
            if lower.lexicographicallyPrecedes(after) { lower = after }
        }
        let upper = endKey.isEmpty ? KeyRange.successor(ofPrefix: nsPrefix) : nsPrefix + Array(endKey.utf8)
        return try page(KeyRange(lower: lower, upper: upper), keyOffset: nsPrefix.count, limit: limit)
    }

    /// Keys of `namespace` that start with `keyPrefix` (for example a partial composite key).
    public func prefix(namespace: String, keyPrefix: String, limit: Int, bookmark: String? = nil) throws -> StatePage {
        try checkNamespace(namespace)
        let full = keys.namespacePrefix(namespace) + Array(keyPrefix.utf8)
        var range = KeyRange.prefix(full)
        if let bookmark {
            let after: Bytes = keys.namespacePrefix(namespace) + Array(bookmark.utf8) + [0]
            if range.lower.lexicographicallyPrecedes(after) { range.lower = after }
        }
        return try page(range, keyOffset: full.count - keyPrefix.utf8.count, limit: limit)
    }

    /// The first `limit` committed writes of `key`, oldest first (at most `historyEntriesMax`): the
    /// first page of `history(namespace:key:limit:bookmark:)`, for callers that need no more.
    public func history(namespace: String, key: String, limit: Int = historyEntriesMax) throws -> [HistoryEntry] {
        guard limit > 0 else { return [] }
        return try history(namespace: namespace, key: key, limit: limit, bookmark: nil).entries
    }

    /// Every committed write of `key`, oldest first, a page at a time (at most `historyEntriesMax`
    /// entries): start with no bookmark, then pass back each page's bookmark until it is nil. A page
    /// can hold fewer entries than asked, with a bookmark, when its values span more than
    /// `historyBlockBytesMax` of blocks.
    public func history(
        namespace: String, key: String, limit: Int = historyEntriesMax, bookmark: String?
    ) throws -> HistoryPage {
        try history(
            namespace: namespace, key: key, limit: limit, bookmark: bookmark,
            blockBytesBudget: Self.historyBlockBytesMax)
    }

    func history(
        namespace: String, key: String, limit: Int, bookmark: String?, blockBytesBudget: Int
    ) throws -> HistoryPage {
        try checkNamespace(namespace)
        let prefix = keys.historyPrefix(namespace, key)
        var range = KeyRange.prefix(prefix)
        if let bookmark {
            guard let after = Self.height(bookmark: bookmark) else {
                throw StateQueryError.invalidHistoryBookmark(bookmark)
            }
            range.lower = prefix + after.encoded + [0]  // the first key past that version's entry
        }
        let cap = min(max(limit, 1), Self.historyEntriesMax)
        // One entry more than the page tells whether a bookmark is needed.
        var stored = try reader.scan(families.history, range, limit: cap + 1)
        var more = stored.count > cap
        if more { stored.removeLast() }
        var block: (number: UInt64, block: Medledger_Block)?  // consecutive entries often share one
        var blockBytesRead = 0
        var entries = [HistoryEntry]()
        entries.reserveCapacity(stored.count)
        for pair in stored {
            guard pair.key.count == prefix.count + 16, let h = Height(encoded: Array(pair.key[prefix.count...])),
                let flag = pair.value.first
            else {
                throw StorageError.corrupt(
                    what: "history entry of \(namespace)/\(key.debugDescription)", reason: "bad key or value length")
            }
            // Entries written before format 2 carry a copy of the value; newer ones only point at the write.
            guard flag == 0 && pair.value.count == 1 else {
                entries.append(HistoryEntry(version: h, isDelete: flag == 1, value: Array(pair.value.dropFirst())))
                continue
            }
            if block?.number != h.blockNum {
                if blockBytesRead >= blockBytesBudget, !entries.isEmpty {
                    more = true
                    break
                }
                let read = try self.block(h.blockNum, for: "\(namespace)/\(key.debugDescription)")
                block = (h.blockNum, read.block)
                blockBytesRead += read.storedBytes
            }
            let value = try writtenValue(namespace, key, at: h, in: block!.block)
            entries.append(HistoryEntry(version: h, isDelete: false, value: value))
        }
        return HistoryPage(entries: entries, bookmark: more ? entries.last?.version.description : nil)
    }

    /// The block a history entry points at, and its size as stored (what the page budget counts).
    private func block(_ number: UInt64, for what: String) throws -> (block: Medledger_Block, storedBytes: Int) {
        guard let bytes = try reader.get(families.blocks, keys.block(number)) else {
            throw StorageError.corrupt(
                what: "history of \(what)", reason: "block \(number), which it refers to, is not in the block store")
        }
        return (try ChannelLedger.decode(bytes, number: number), bytes.count)
    }

    /// The value that the transaction at `height` wrote to `key` (its last write of it), from its
    /// block, as Fabric's history does: a history entry keeps no copy of the value, which would store
    /// every P_DE record twice.
    private func writtenValue(
        _ namespace: String, _ key: String, at height: Height, in block: Medledger_Block
    ) throws -> Bytes {
        let what = "history entry \(namespace)/\(key.debugDescription) (version \(height))"
        let envelopes = block.data.envelopes
        guard height.txNum < UInt64(envelopes.count) else {
            throw StorageError.corrupt(what: what, reason: "its block has \(envelopes.count) transactions")
        }
        let tx: ParsedTransaction
        do { tx = try ParsedTransaction(envelope: [UInt8](envelopes[Int(height.txNum)])) } catch {
            throw StorageError.corrupt(what: what, reason: "its transaction does not parse (\(error))")
        }
        guard let write = tx.writes.last(where: { $0.namespace == namespace && $0.write.key == key })?.write,
            !write.isDelete
        else {
            throw StorageError.corrupt(what: what, reason: "its transaction does not write that key")
        }
        return [UInt8](write.value)
    }

    /// A history bookmark is the `block:tx` version of the last entry of the page before.
    static func height(bookmark: String) -> Height? {
        let parts = bookmark.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let b = UInt64(parts[0]), let t = UInt64(parts[1]) else { return nil }
        return Height(blockNum: b, txNum: t)
    }

    /// Reads up to `limit` entries of `range`, decoding each in place; one extra entry tells whether a
    /// bookmark is needed. `keyOffset` is where the user key starts in the stored key.
    private func page(_ range: KeyRange, keyOffset: Int, limit: Int) throws -> StatePage {
        let cap = min(max(limit, 1), Self.pageSizeMax)
        let cursor = try reader.cursor(families.state, range, reverse: false)
        var page = StatePage(reserving: min(cap, 256))
        var more = false
        var corrupt = false
        try cursor.forEach { k, v in
            guard k.count >= keyOffset, v.count >= 16, let version = Height(encoded: v) else {
                corrupt = true
                return false
            }
            if page.count == cap {
                more = true
                return false
            }
            page.append(
                key: UnsafeRawBufferPointer(rebasing: k[keyOffset...]), version: version,
                value: UnsafeRawBufferPointer(rebasing: v[16...]))
            return true
        }
        if corrupt { throw StorageError.corrupt(what: "state entry", reason: "undecodable key or value") }
        if more, page.count > 0 { page.bookmark = page.key(at: page.count - 1) }
        return page
    }

    private func checkNamespace(_ ns: String) throws {
        guard NamespaceName.isValid(ns) else { throw StateQueryError.invalidNamespace(ns) }
    }
}
