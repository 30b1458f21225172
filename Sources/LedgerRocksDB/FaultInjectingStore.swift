import Foundation
import LedgerStorage

/// A store whose writes fail, as a failing disk's would, while a trigger file exists. Only debug
/// builds of the daemon use it, and only when a test asks (`MEDLEDGER_TEST_ORDERER_DISK_FAILS_WHILE`
/// names the file), so a test over real processes can fail one consenter's disk at a moment it picks.
/// Reads pass through; a failed write changes nothing, as RocksDB's atomic batches guarantee.
public final class FaultInjectingStore: KVStore {
    let base: any KVStore
    let triggerFile: String

    public init(base: any KVStore, failWritesWhileExists triggerFile: String) {
        self.base = base
        self.triggerFile = triggerFile
    }

    public var columnFamilyNames: [String] { base.columnFamilyNames }
    public func columnFamily(_ name: String) throws -> ColumnFamily { try base.columnFamily(name) }
    public func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? { try base.get(cf, key) }
    public func withValue<T>(
        _ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? { try base.withValue(cf, key, body) }
    public func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        try base.cursor(cf, range, reverse: reverse)
    }
    public func snapshot() throws -> any KVSnapshot { try base.snapshot() }
    public func close() { base.close() }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        if FileManager.default.fileExists(atPath: triggerFile) {
            throw StorageError.rocksDB(
                operation: "write", message: "IO error: injected disk write failure (\(triggerFile) exists)")
        }
        try base.write(batch, sync: sync)
    }
}
