import LedgerCore

public struct VersionedValue: Sendable, Equatable {
    public var value: Bytes
    public var version: Height

    init?(stored: Bytes) {
        guard stored.count >= 16, let h = Height(encoded: stored) else { return nil }
        version = h
        value = Bytes(stored[16...])
    }

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

    var stored: Bytes { version.encoded + value }
}

public struct StateEntry: Sendable, Equatable {
    public var key: String
    public var value: VersionedValue
}

/// One page of a range or prefix scan. `bookmark` is set when more entries may follow: pass it back to
/// get the next page.
public struct StatePage: Sendable, Equatable {
    public var entries: [StateEntry]
    public var bookmark: String?
}

public struct HistoryEntry: Sendable, Equatable {
    public var version: Height
    public var isDelete: Bool
    public var value: Bytes
}

public enum StateQueryError: Error, Equatable, CustomStringConvertible {
    case invalidNamespace(String)

    public var description: String {
        switch self {
        case .invalidNamespace(let ns): return "invalid namespace \(ns.debugDescription): 1 to 255 bytes, no U+0000"
        }
    }
}

/// Reads of a channel's versioned world state and key history, from the live store or a snapshot.
public struct WorldStateReader: Sendable {
    /// Largest page a range query returns, whatever the caller asks for.
    public static let pageSizeMax = 10_000
    public static let historyEntriesMax = 10_000

    let reader: any KVReader
    let families: LedgerFamilies
    let keys: LedgerKeys

    public func get(namespace: String, key: String) throws -> VersionedValue? {
        try checkNamespace(namespace)
        let decoded = try reader.withValue(families.state, keys.state(namespace, key)) { VersionedValue(raw: $0) }
        guard let decoded else { return nil }
        guard let v = decoded else {
            throw StorageError.corrupt(what: "state value \(namespace)/\(key.debugDescription)", reason: "shorter than its 16-byte version")
        }
        return v
    }

    /// Keys in [startKey, endKey) of `namespace`; an empty `endKey` means to the end of the namespace.
    public func range(namespace: String, startKey: String, endKey: String, limit: Int, bookmark: String? = nil) throws -> StatePage {
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

    /// Every committed write of `key`, oldest first.
    public func history(namespace: String, key: String, limit: Int = historyEntriesMax) throws -> [HistoryEntry] {
        try checkNamespace(namespace)
        let prefix = keys.historyPrefix(namespace, key)
        let cap = min(max(limit, 0), Self.historyEntriesMax)
        return try reader.scan(families.history, .prefix(prefix), limit: cap).map { pair in
            guard pair.key.count == prefix.count + 16, let h = Height(encoded: Array(pair.key[prefix.count...])), let flag = pair.value.first else {
                throw StorageError.corrupt(what: "history entry of \(namespace)/\(key.debugDescription)", reason: "bad key or value length")
            }
            return HistoryEntry(version: h, isDelete: flag == 1, value: Array(pair.value.dropFirst()))
        }
    }

    /// Reads up to `limit` entries of `range`, decoding each in place; one extra entry tells whether a
    /// bookmark is needed. `keyOffset` is where the user key starts in the stored key.
    private func page(_ range: KeyRange, keyOffset: Int, limit: Int) throws -> StatePage {
        let cap = min(max(limit, 1), Self.pageSizeMax)
        let cursor = try reader.cursor(families.state, range, reverse: false)
        var entries = [StateEntry]()
        entries.reserveCapacity(min(cap, 256))
        var more = false
        var corrupt = false
        try cursor.forEach { k, v in
            guard k.count >= keyOffset, let value = VersionedValue(raw: v) else {
                corrupt = true
                return false
            }
            if entries.count == cap {
                more = true
                return false
            }
            entries.append(StateEntry(key: String(decoding: UnsafeRawBufferPointer(rebasing: k[keyOffset...]), as: UTF8.self), value: value))
            return true
        }
        if corrupt { throw StorageError.corrupt(what: "state entry", reason: "undecodable key or value") }
        return StatePage(entries: entries, bookmark: more ? entries.last?.key : nil)
    }

    private func checkNamespace(_ ns: String) throws {
        guard NamespaceName.isValid(ns) else { throw StateQueryError.invalidNamespace(ns) }
    }
}
