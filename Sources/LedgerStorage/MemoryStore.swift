import Synchronization

/// The in-memory backend: same contract as `RocksDBStore`, nothing on disk. For unit tests and for
/// replaying a chain into a scratch state to compare with the stored one.
public final class MemoryStore: KVStore {
    /// One column family: a hash map plus its keys in order. Keys added since the last ordered read
    /// wait in `pending` and are merged in (sorting only them), so a table that grows by a block's
    /// keys at a time is not sorted whole again each time; a delete has it sorted again from scratch.
    struct Table: Sendable {
        var values: [Bytes: Bytes] = [:]
        private var sortedKeys: [Bytes] = []
        private var pending: [Bytes] = []
        private var needsRebuild = false

        mutating func sorted() -> [Bytes] {
            if needsRebuild {
                sortedKeys = values.keys.sorted { $0.lexicographicallyPrecedes($1) }
                (pending, needsRebuild) = ([], false)
            } else if !pending.isEmpty {
                pending.sort { $0.lexicographicallyPrecedes($1) }
                sortedKeys = Self.merge(sortedKeys, pending)
                pending = []
            }
            return sortedKeys
        }

        mutating func put(_ k: Bytes, _ v: Bytes) {
            if values.updateValue(v, forKey: k) == nil, !needsRebuild { pending.append(k) }
        }

        mutating func delete(_ k: Bytes) {
            if values.removeValue(forKey: k) != nil { needsRebuild = true }
        }

        /// Two ascending key lists with no key in both, as one.
        static func merge(_ a: [Bytes], _ b: [Bytes]) -> [Bytes] {
            var out: [Bytes] = []
            out.reserveCapacity(a.count + b.count)
            var (i, j) = (0, 0)
            while i < a.count, j < b.count {
                if a[i].lexicographicallyPrecedes(b[j]) {
                    out.append(a[i])
                    i += 1
                } else {
                    out.append(b[j])
                    j += 1
                }
            }
            out.append(contentsOf: a[i...])
            out.append(contentsOf: b[j...])
            return out
        }
    }

    struct State: Sendable {
        var tables: [Table]
        var closed = false
    }

    public let columnFamilyNames: [String]
    private let state: Mutex<State>

    public init(columnFamilies: [String]) {
        var names = ["default"]
        for n in columnFamilies where !names.contains(n) { names.append(n) }
        columnFamilyNames = names
        state = Mutex(State(tables: Array(repeating: Table(), count: names.count)))
    }

    public func columnFamily(_ name: String) throws -> ColumnFamily {
        guard let i = columnFamilyNames.firstIndex(of: name) else {
            throw StorageError.unknownColumnFamily(name: name, known: columnFamilyNames)
        }
        return ColumnFamily(name: name, index: i)
    }

    public func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? {
        try state.withLock { s in
            guard !s.closed else { throw StorageError.closed }
            return s.tables[cf.index].values[key]
        }
    }

    public func withValue<T>(
        _ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? {
        try get(cf, key).map { v in try v.withUnsafeBytes(body) }
    }

    public func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        let table = try state.withLock { s in
            guard !s.closed else { throw StorageError.closed }
            _ = s.tables[cf.index].sorted()
            return s.tables[cf.index]
        }
        return MemoryCursor(table: table, range: range, reverse: reverse)
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try state.withLock { s in
            guard !s.closed else { throw StorageError.closed }
            for op in batch.operations {
                switch op {
                case .put(let cf, let k, let v): s.tables[cf].put(k, v)
                case .delete(let cf, let k): s.tables[cf].delete(k)
                case .deleteRange(let cf, let lower, let upper):
                    let range = KeyRange(lower: lower, upper: upper)
                    for k in s.tables[cf].values.keys where range.contains(k) { s.tables[cf].delete(k) }
                }
            }
        }
    }

    public func snapshot() throws -> any KVSnapshot {
        let tables = try state.withLock { s in
            guard !s.closed else { throw StorageError.closed }
            for i in s.tables.indices { _ = s.tables[i].sorted() }
            return s.tables
        }
        return MemorySnapshot(tables: tables)
    }

    public func close() {
        state.withLock { $0.closed = true }
    }
}

final class MemorySnapshot: KVSnapshot {
    let tables: [MemoryStore.Table]

    init(tables: [MemoryStore.Table]) { self.tables = tables }

    func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? { tables[cf.index].values[key] }

    func withValue<T>(_ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try tables[cf.index].values[key].map { v in try v.withUnsafeBytes(body) }
    }

    func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        MemoryCursor(table: tables[cf.index], range: range, reverse: reverse)
    }
}

/// Walks a frozen copy of a table (copy-on-write makes the copy cheap), so writes made after the cursor
/// was opened are not seen — as with a RocksDB iterator, which reads from an implicit snapshot.
final class MemoryCursor: KVCursor {
    private let values: [Bytes: Bytes]
    private let keys: ArraySlice<Bytes>
    private var position: Int
    private let reverse: Bool

    init(table: MemoryStore.Table, range: KeyRange, reverse: Bool) {
        var t = table
        let sorted = t.sorted()
        let lo = MemoryCursor.lowerBound(sorted, range.lower)
        let hi = range.upper.map { MemoryCursor.lowerBound(sorted, $0) } ?? sorted.count
        keys = lo < hi ? sorted[lo..<hi] : []
        values = t.values
        self.reverse = reverse
        position = reverse ? keys.endIndex - 1 : keys.startIndex
    }

    func next() throws -> KVPair? {
        guard position >= keys.startIndex, position < keys.endIndex else { return nil }
        let k = keys[position]
        position += reverse ? -1 : 1
        return KVPair(key: k, value: values[k]!)
    }

    func next<T>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> T) throws -> T? {
        guard let p = try next() else { return nil }
        return try p.key.withUnsafeBytes { k in try p.value.withUnsafeBytes { v in try body(k, v) } }
    }

    /// Index of the first key >= `key`.
    static func lowerBound(_ sorted: [Bytes], _ key: Bytes) -> Int {
        var lo = 0
        var hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid].lexicographicallyPrecedes(key) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
