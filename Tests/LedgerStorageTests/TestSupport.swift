import Foundation
import LedgerRocksDB
import Testing

@testable import LedgerStorage

/// A scratch directory removed when the value is dropped.
final class TempDir: @unchecked Sendable {
    let path: String

    init(_ label: String = "test") {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("medledger-\(label)-\(UUID().uuidString)")
            .path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The two storage backends every conformance test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, rocksdb

    var testDescription: String { rawValue }

    /// A fresh store with `columnFamilies`, and the directory keeping it alive (nil in memory).
    func makeStore(_ columnFamilies: [String]) throws -> (store: any KVStore, dir: TempDir?) {
        switch self {
        case .memory: return (MemoryStore(columnFamilies: columnFamilies), nil)
        case .rocksdb:
            let dir = TempDir("kv")
            return (try RocksDBStore.open(path: dir.path + "/db", columnFamilies: columnFamilies), dir)
        }
    }

    func makeLedgerStore() throws -> (store: LedgerStore, dir: TempDir?) {
        switch self {
        case .memory: return (try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies)), nil)
        case .rocksdb:
            let dir = TempDir("ledger")
            return (try LedgerStore.open(dataDir: dir.path), dir)
        }
    }
}

func bytes(_ s: String) -> Bytes { Array(s.utf8) }
func keysOf(_ pairs: [KVPair]) -> [String] { pairs.map { String(decoding: $0.key, as: UTF8.self) } }
