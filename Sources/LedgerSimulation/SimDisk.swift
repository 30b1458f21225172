import Foundation
import LedgerStorage

/// The injected disk fault: the one error a node meets as a crash. Any other error on the write
/// path is a finding.
public struct SimDiskFailure: Error, CustomStringConvertible {
    public var description: String { "IO error: simulated disk write failure" }
}

/// A node's disk as the simulator models it: writes are visible at once, but only what an fsync
/// covered survives a crash (RocksDB's write-ahead log without `sync` is lost with the page cache). A
/// write can also be made to fail, as a failing disk's would; RocksDB's batches are atomic, so a
/// failed or lost batch is lost whole.
public final class SimDisk: KVStore, @unchecked Sendable {  // one simulation thread owns it
    public let columnFamilyNames: [String]
    /// What a crash keeps: every batch up to the last synced one, in order.
    private var durable: [WriteBatch] = []
    /// Written since the last sync: visible, lost by a crash.
    private var volatile: [WriteBatch] = []
    /// What crashes discarded: gone from the node's view, but it reached the disk's cache once, so
    /// the plaintext check still reads it.
    private var lost: [WriteBatch] = []
    private var live: MemoryStore
    /// Injected bug: the node believes its syncs, the disk ignores them.
    public var ignoresSync = false
    /// Fault: the next write fails (and changes nothing).
    public var failNextWrite = false
    public private(set) var syncedWrites = 0

    public init(columnFamilies: [String] = StorageLayout.columnFamilies) {
        live = MemoryStore(columnFamilies: columnFamilies)
        columnFamilyNames = live.columnFamilyNames
    }

    /// The machine lost power: what was not synced is gone.
    public func crash() {
        lost.append(contentsOf: volatile)
        volatile.removeAll()
        live = MemoryStore(columnFamilies: columnFamilyNames)
        for batch in durable { try? live.write(batch, sync: false) }
    }

    /// Whether `needle` occurs in any key or value this disk was ever asked to write (kept or lost).
    public func everHeld(_ needle: [UInt8]) -> Bool {
        for batch in durable + volatile + lost {
            for op in batch.operations {
                if case .put(_, let k, let v) = op, Self.contains(k, needle) || Self.contains(v, needle) { return true }
            }
        }
        return false
    }

    /// memchr for the first byte, memcmp for the rest: the end-of-run scan reads every byte ever
    /// written once per secret.
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                guard let base = h.baseAddress, let first = n.baseAddress else { return false }
                let last = h.count - n.count
                var i = 0
                while i <= last {
                    guard let hit = memchr(base + i, Int32(first.pointee), last - i + 1) else { return false }
                    let at = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + at, first, n.count) == 0 { return true }
                    i = at + 1
                }
                return false
            }
        }
    }

    public func columnFamily(_ name: String) throws -> ColumnFamily { try live.columnFamily(name) }
    public func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? { try live.get(cf, key) }
    public func withValue<T>(
        _ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? {
        try live.withValue(cf, key, body)
    }
    public func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        try live.cursor(cf, range, reverse: reverse)
    }
    public func snapshot() throws -> any KVSnapshot { try live.snapshot() }
    public func close() {}

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        if failNextWrite {
            failNextWrite = false
            throw SimDiskFailure()
        }
        try live.write(batch, sync: false)
        volatile.append(batch)
        guard sync, !ignoresSync else { return }
        durable.append(contentsOf: volatile)
        volatile.removeAll()
        syncedWrites += 1
    }
}
