/// The storage protocol every ledger structure is written against. Two backends implement it:
/// `RocksDBStore` (what a node runs on) and `MemoryStore` (unit tests, replay checks). One conformance
/// suite (Tests/LedgerStorageTests/KVConformanceTests.swift) runs against both, so they cannot drift.
///
/// Keys and values are bytes; keys order bytewise (RocksDB's default comparator), so big-endian
/// numbers in keys scan in numeric order.
public typealias Bytes = [UInt8]

/// A column family of one open store. Obtained from `KVStore.columnFamily(_:)`, which fails for a name
/// the store was not opened with.
public struct ColumnFamily: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    package let index: Int

    /// For backends: the family at `index` in the store's list.
    package init(name: String, index: Int) {
        self.name = name
        self.index = index
    }

    public var description: String { name }
}

/// A half-open key range [lower, upper); `upper == nil` runs to the end of the column family.
public struct KeyRange: Sendable, Equatable {
    public var lower: Bytes
    public var upper: Bytes?

    public init(lower: Bytes = [], upper: Bytes? = nil) {
        self.lower = lower
        self.upper = upper
    }

    public static let all = KeyRange()

    /// Every key that starts with `prefix`.
    public static func prefix(_ prefix: Bytes) -> KeyRange {
        KeyRange(lower: prefix, upper: successor(ofPrefix: prefix))
    }

    /// The smallest key greater than every key starting with `prefix`; nil if there is none
    /// (the prefix is empty or all 0xFF).
    public static func successor(ofPrefix prefix: Bytes) -> Bytes? {
        var p = prefix
        while let last = p.last {
            if last < 0xFF {
                p[p.count - 1] = last + 1
                return p
            }
            p.removeLast()
        }
        return nil
    }

    public func contains(_ key: Bytes) -> Bool {
        guard !key.lexicographicallyPrecedes(lower) else { return false }
        if let upper { return key.lexicographicallyPrecedes(upper) }
        return true
    }
}

public struct KVPair: Sendable, Equatable {
    public var key: Bytes
    public var value: Bytes

    public init(key: Bytes, value: Bytes) {
        self.key = key
        self.value = value
    }
}

/// A forward or reverse walk over a key range. Not thread-safe: one cursor, one thread.
public protocol KVCursor: AnyObject {
    /// The next pair, or nil at the end of the range.
    func next() throws -> KVPair?
    /// The next pair handed to `body` in place, without copying it out: the hot path of range queries.
    /// The buffers are valid only during the call.
    func next<T>(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> T) throws -> T?
    /// Hands pairs to `body` in place until it returns false or the range ends. Non-generic, so a
    /// whole page is read with one dynamic call instead of one per entry.
    func forEach(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
}

extension KVCursor {
    public func forEach(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
    {
        while let goOn = try next(body), goOn {}
    }
}

/// Point reads and range scans: implemented by a store (latest data) and by its snapshots.
public protocol KVReader: AnyObject, Sendable {
    func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes?
    /// Point read that hands the value to `body` in place (no copy); nil when the key is absent.
    func withValue<T>(_ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T?
    func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor
}

/// A consistent point-in-time view; released when the last reference goes.
public protocol KVSnapshot: KVReader {}

public protocol KVStore: KVReader {
    var columnFamilyNames: [String] { get }
    func columnFamily(_ name: String) throws -> ColumnFamily
    /// Applies every operation of `batch` atomically. With `sync`, returns only once the batch is on
    /// stable storage (one fsync for the whole batch).
    func write(_ batch: WriteBatch, sync: Bool) throws
    func snapshot() throws -> any KVSnapshot
    /// Releases the store. Operations after `close()` throw `StorageError.closed`.
    func close()
}

/// An ordered list of puts and deletes applied atomically by `KVStore.write`.
public struct WriteBatch: Sendable {
    public enum Operation: Sendable, Equatable {
        case put(cf: Int, key: Bytes, value: Bytes)
        case delete(cf: Int, key: Bytes)
        /// Deletes every key in [lower, upper).
        case deleteRange(cf: Int, lower: Bytes, upper: Bytes)
    }

    public private(set) var operations: [Operation] = []

    public init() {}

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    public mutating func reserveCapacity(_ n: Int) { operations.reserveCapacity(n) }

    public mutating func put(_ cf: ColumnFamily, _ key: Bytes, _ value: Bytes) {
        operations.append(.put(cf: cf.index, key: key, value: value))
    }

    public mutating func delete(_ cf: ColumnFamily, _ key: Bytes) {
        operations.append(.delete(cf: cf.index, key: key))
    }

    public mutating func deleteRange(_ cf: ColumnFamily, lower: Bytes, upper: Bytes) {
        operations.append(.deleteRange(cf: cf.index, lower: lower, upper: upper))
    }
}

extension KVReader {
    /// Up to `limit` pairs of `range`, in order.
    public func scan(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool = false, limit: Int = .max) throws -> [KVPair]
    {
        let c = try cursor(cf, range, reverse: reverse)
        var out = [KVPair]()
        while out.count < limit, let p = try c.next() { out.append(p) }
        return out
    }

    /// The last pair of `range` (largest key), if any.
    public func last(_ cf: ColumnFamily, _ range: KeyRange) throws -> KVPair? {
        try cursor(cf, range, reverse: true).next()
    }
}

public enum StorageError: Error, Equatable, CustomStringConvertible, Sendable {
    /// RocksDB reported an error; `message` is RocksDB's own text.
    case rocksDB(operation: String, message: String)
    case unknownColumnFamily(name: String, known: [String])
    /// The data directory holds column families this build does not know: it was written by another
    /// program or a newer version, and opening it would risk silently ignoring data.
    case undeclaredColumnFamilies(path: String, names: [String])
    case closed
    /// Another process (or another open in this one) holds the database.
    case locked(path: String)
    case formatTooNew(path: String, found: UInt32, supported: UInt32)
    case corrupt(what: String, reason: String)
    /// A write to a store (or ledger) opened read-only.
    case readOnly(path: String)

    public var description: String {
        switch self {
        case .rocksDB(let op, let m): return "RocksDB \(op) failed: \(m)"
        case .unknownColumnFamily(let n, let k):
            return "unknown column family '\(n)' (this store has: \(k.joined(separator: ", ")))"
        case .undeclaredColumnFamilies(let p, let n):
            return
                "data directory \(p) contains unknown column families: \(n.joined(separator: ", ")); it was not written by this version of medledger"
        case .closed: return "the store is closed"
        case .locked(let p): return "database \(p) is in use by another process"
        case .formatTooNew(let p, let f, let s):
            return
                "data directory \(p) has format version \(f), newer than this build supports (\(s)); use a newer medledger"
        case .corrupt(let w, let r): return "corrupt \(w): \(r)"
        case .readOnly(let p): return "\(p) is open read-only: nothing may be written"
        }
    }
}
