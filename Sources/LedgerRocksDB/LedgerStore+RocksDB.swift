import Foundation
import LedgerCore
import LedgerStorage

/// Opening a node's ledgers on RocksDB: the only place `LedgerStore` meets a real disk.
extension LedgerStore {
    /// Opens (creating if needed) the node database under `dataDir`. `failWritesWhileExists`: tests
    /// only (`FaultInjectingStore`).
    public static func open(
        dataDir: String, limits: LedgerLimits = LedgerLimits(), options: RocksDBOptions = RocksDBOptions(),
        failWritesWhileExists trigger: String? = nil
    ) throws -> LedgerStore {
        let path = StorageLayout.databasePath(dataDir: dataDir)
        let kv: RocksDBStore
        do {
            kv = try RocksDBStore.open(path: path, columnFamilies: StorageLayout.columnFamilies, options: options)
        } catch StorageError.locked {
            throw LedgerStoreError.inUse(path: dataDir)
        }
        do {
            return try LedgerStore(
                kv: trigger.map { FaultInjectingStore(base: kv, failWritesWhileExists: $0) } ?? kv, limits: limits,
                path: dataDir)
        } catch {
            kv.close()
            throw error
        }
    }

    /// Opens the node database under `dataDir` for reading only: RocksDB's read-only mode, and channels
    /// that skip recovery (a state savepoint behind the tip stays as found, for `ChainVerifier` to
    /// report). For `ledger verify`, `info` and `block`, which must leave the directory as they found it.
    public static func openReadOnly(
        dataDir: String, limits: LedgerLimits = LedgerLimits(), options: RocksDBOptions = RocksDBOptions()
    ) throws -> LedgerStore {
        let path = StorageLayout.databasePath(dataDir: dataDir)
        let kv: RocksDBStore
        do {
            kv = try RocksDBStore.openReadOnly(
                path: path, columnFamilies: StorageLayout.columnFamilies, options: options)
        } catch StorageError.locked {
            throw LedgerStoreError.inUse(path: dataDir)
        }
        do {
            return try LedgerStore(kv: kv, limits: limits, path: dataDir, readOnly: true)
        } catch {
            kv.close()
            throw error
        }
    }
}
