import Foundation
import LedgerRocksDB
import Testing

@testable import LedgerStorage

/// The storage contract, run against both backends: what passes here for memory must pass for RocksDB.
@Suite struct KVConformanceTests {
    @Test(arguments: Backend.allCases)
    func putGetDeleteAcrossColumnFamilies(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["a", "b"])
        defer {
            kv.close()
            _ = dir
        }
        let a = try kv.columnFamily("a")
        let b = try kv.columnFamily("b")
        var batch = WriteBatch()
        batch.put(a, bytes("k"), bytes("in a"))
        batch.put(b, bytes("k"), bytes("in b"))
        batch.put(a, [], [])  // empty key and value are legal
        try kv.write(batch, sync: true)
        #expect(try kv.get(a, bytes("k")) == bytes("in a"))
        #expect(try kv.get(b, bytes("k")) == bytes("in b"))
        #expect(try kv.get(a, []) == [])
        #expect(try kv.get(a, bytes("missing")) == nil)

        var del = WriteBatch()
        del.delete(a, bytes("k"))
        del.put(b, bytes("k"), bytes("overwritten"))
        try kv.write(del, sync: false)
        #expect(try kv.get(a, bytes("k")) == nil)
        #expect(try kv.get(b, bytes("k")) == bytes("overwritten"))
    }

    @Test(arguments: Backend.allCases)
    func unknownColumnFamilyIsAnErrorNamingIt(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["a"])
        defer {
            kv.close()
            _ = dir
        }
        #expect(throws: StorageError.unknownColumnFamily(name: "nope", known: ["default", "a"])) {
            try kv.columnFamily("nope")
        }
        let e = StorageError.unknownColumnFamily(name: "nope", known: ["default", "a"])
        #expect(e.description.contains("'nope'"))
    }

    func fill(_ kv: any KVStore, _ cf: ColumnFamily, _ keys: [String]) throws {
        var batch = WriteBatch()
        for k in keys { batch.put(cf, bytes(k), bytes("v:" + k)) }
        try kv.write(batch, sync: false)
    }

    @Test(arguments: Backend.allCases)
    func rangesForwardAndReverseRespectBounds(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        defer {
            kv.close()
            _ = dir
        }
        let c = try kv.columnFamily("c")
        try fill(kv, c, ["a", "b", "ba", "bb", "c", "d"])
        #expect(keysOf(try kv.scan(c, .all)) == ["a", "b", "ba", "bb", "c", "d"])
        #expect(keysOf(try kv.scan(c, .all, reverse: true)) == ["d", "c", "bb", "ba", "b", "a"])
        let r = KeyRange(lower: bytes("b"), upper: bytes("c"))
        #expect(keysOf(try kv.scan(c, r)) == ["b", "ba", "bb"])
        #expect(keysOf(try kv.scan(c, r, reverse: true)) == ["bb", "ba", "b"])
        #expect(keysOf(try kv.scan(c, r, limit: 2)) == ["b", "ba"])
        #expect(keysOf(try kv.scan(c, .prefix(bytes("b")))) == ["b", "ba", "bb"])
        #expect(keysOf(try kv.scan(c, .prefix(bytes("b")), reverse: true)) == ["bb", "ba", "b"])
        #expect(keysOf(try kv.scan(c, KeyRange(lower: bytes("bz"), upper: bytes("c")))) == [])
        #expect(keysOf(try kv.scan(c, KeyRange(lower: bytes("x")))) == [])
        #expect(try kv.last(c, .prefix(bytes("b")))?.value == bytes("v:bb"))
        // Upper bound is exclusive even in reverse, where RocksDB seeks at the bound itself.
        #expect(
            keysOf(try kv.scan(c, KeyRange(lower: bytes("a"), upper: bytes("c")), reverse: true)) == [
                "bb", "ba", "b", "a",
            ])
    }

    @Test(arguments: Backend.allCases)
    func prefixScansHandleHighBytes(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        defer {
            kv.close()
            _ = dir
        }
        let c = try kv.columnFamily("c")
        var batch = WriteBatch()
        for k: Bytes in [[0x01, 0xff], [0x01, 0xff, 0x00], [0x01, 0xff, 0xff], [0x02], [0xff], [0xff, 0xff, 1]] {
            batch.put(c, k, k)
        }
        try kv.write(batch, sync: false)
        #expect(
            try kv.scan(c, .prefix([0x01, 0xff])).map(\.key) == [
                [0x01, 0xff], [0x01, 0xff, 0x00], [0x01, 0xff, 0xff],
            ])
        #expect(try kv.scan(c, .prefix([0xff, 0xff])).map(\.key) == [[0xff, 0xff, 1]])
        #expect(KeyRange.successor(ofPrefix: [0xff, 0xff]) == nil)
        #expect(KeyRange.successor(ofPrefix: [0x01, 0xff]) == [0x02])
    }

    @Test(arguments: Backend.allCases)
    func snapshotsAndCursorsSeeAFixedPointInTime(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        defer {
            kv.close()
            _ = dir
        }
        let c = try kv.columnFamily("c")
        try fill(kv, c, ["a", "b"])
        let snap = try kv.snapshot()
        let cursor = try kv.cursor(c, .all, reverse: false)
        var later = WriteBatch()
        later.put(c, bytes("a"), bytes("changed"))
        later.put(c, bytes("c"), bytes("new"))
        later.delete(c, bytes("b"))
        try kv.write(later, sync: false)

        #expect(try snap.get(c, bytes("a")) == bytes("v:a"))
        #expect(try snap.get(c, bytes("b")) == bytes("v:b"))
        #expect(try snap.get(c, bytes("c")) == nil)
        #expect(keysOf(try snap.scan(c, .all)) == ["a", "b"])
        var seen = [String]()
        while let p = try cursor.next() { seen.append(String(decoding: p.key, as: UTF8.self)) }
        #expect(seen == ["a", "b"])
        #expect(keysOf(try kv.scan(c, .all)) == ["a", "c"])
        #expect(try kv.get(c, bytes("a")) == bytes("changed"))
    }

    @Test(arguments: Backend.allCases)
    func deleteRangeRemovesExactlyTheRange(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        defer {
            kv.close()
            _ = dir
        }
        let c = try kv.columnFamily("c")
        try fill(kv, c, ["a", "b1", "b2", "c"])
        var batch = WriteBatch()
        batch.deleteRange(c, lower: bytes("b"), upper: bytes("c"))
        try kv.write(batch, sync: true)
        #expect(keysOf(try kv.scan(c, .all)) == ["a", "c"])
    }

    @Test(arguments: Backend.allCases)
    func largeValuesRoundTrip(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        defer {
            kv.close()
            _ = dir
        }
        let c = try kv.columnFamily("c")
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var batch = WriteBatch()
        batch.put(c, bytes("big"), big)
        try kv.write(batch, sync: true)
        #expect(try kv.get(c, bytes("big")) == big)
    }

    @Test(arguments: Backend.allCases)
    func closedStoreRefusesWork(_ backend: Backend) throws {
        let (kv, dir) = try backend.makeStore(["c"])
        _ = dir
        let c = try kv.columnFamily("c")
        kv.close()
        #expect(throws: StorageError.closed) { try kv.get(c, bytes("a")) }
        #expect(throws: StorageError.closed) { try kv.write(WriteBatch(), sync: true) }
        #expect(throws: StorageError.closed) { try kv.snapshot() }
    }
}

/// What only the RocksDB backend has: a disk, other processes, other versions.
@Suite struct RocksDBStoreTests {
    @Test func dataSurvivesReopen() throws {
        let dir = TempDir("reopen")
        let path = dir.path + "/db"
        do {
            let kv = try RocksDBStore.open(path: path, columnFamilies: ["c"])
            var batch = WriteBatch()
            batch.put(try kv.columnFamily("c"), bytes("k"), bytes("v"))
            try kv.write(batch, sync: true)
            kv.close()
        }
        let kv = try RocksDBStore.open(path: path, columnFamilies: ["c"])
        defer { kv.close() }
        #expect(try kv.get(try kv.columnFamily("c"), bytes("k")) == bytes("v"))
    }

    /// RocksDB's text log is rolled at each open and past its size; only `infoLogFilesKept` old ones
    /// stay, however often the node restarts.
    @Test func theTextLogKeepsOnlyAFewOldFiles() throws {
        let dir = TempDir("infolog")
        let path = dir.path + "/db"
        var options = RocksDBOptions()
        options.infoLogFilesKept = 2
        for _ in 0..<6 { try RocksDBStore.open(path: path, columnFamilies: ["c"], options: options).close() }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        let old = names.filter { $0.hasPrefix("LOG.old.") }
        #expect(names.contains("LOG"))
        #expect((1...2).contains(old.count), "\(names.sorted())")
    }

    @Test func refusesColumnFamiliesItWasNotToldAbout() throws {
        let dir = TempDir("cf")
        let path = dir.path + "/db"
        try RocksDBStore.open(path: path, columnFamilies: ["c", "stranger"]).close()
        #expect(throws: StorageError.undeclaredColumnFamilies(path: path, names: ["stranger"])) {
            try RocksDBStore.open(path: path, columnFamilies: ["c"])
        }
    }

    @Test func errorsCarryRocksDBsMessage() throws {
        let dir = TempDir("err")
        let file = dir.path + "/plainfile"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        do {
            _ = try RocksDBStore.open(path: file, columnFamilies: [])
            Issue.record("opened a plain file as a database")
        } catch let StorageError.rocksDB(op, message) {
            #expect(op.contains("open"))
            #expect(!message.isEmpty)
        }
    }

    @Test func aSecondOpenOfTheSameDirectoryIsRefusedClearly() throws {
        let dir = TempDir("lock")
        let first = try LedgerStore.open(dataDir: dir.path)
        defer { first.close() }
        #expect(throws: LedgerStoreError.inUse(path: dir.path)) { try LedgerStore.open(dataDir: dir.path) }
        // The wrapper itself names the lock, for every store built on it (the CA's too).
        let db = StorageLayout.databasePath(dataDir: dir.path)
        #expect(throws: StorageError.locked(path: db)) {
            try RocksDBStore.open(path: db, columnFamilies: StorageLayout.columnFamilies)
        }
    }

    /// Values that repeat the same few kilobytes (as blocks repeat certificates), five or so to a data
    /// block: with the blocks family's dictionary the table holding them is much smaller than the same
    /// values in a family without one, and everything reads back after a reopen.
    @Test func theBlocksFamilyCompressesWithADictionary() throws {
        let dir = TempDir("dictionary")
        let path = dir.path + "/db"
        let families = [StorageLayout.Family.blocks, "plain"]
        var rng = SystemRandomNumberGenerator()
        let shared = (0..<3_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let values = (0..<300).map { _ in
            shared + (0..<100).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        do {
            let kv = try RocksDBStore.open(path: path, columnFamilies: families)
            for family in families {
                var batch = WriteBatch()
                for (i, v) in values.enumerated() { batch.put(try kv.columnFamily(family), bytes("k\(i)"), v) }
                try kv.write(batch, sync: true)
            }
            try kv.flush()
            let blocks = try kv.sstBytes(StorageLayout.Family.blocks)
            let plain = try kv.sstBytes("plain")
            #expect(blocks > 0 && blocks * 2 < plain, "with a dictionary \(blocks) bytes, without \(plain)")
            kv.close()
        }
        let kv = try RocksDBStore.open(path: path, columnFamilies: families)
        defer { kv.close() }
        for family in families {
            #expect(try kv.get(try kv.columnFamily(family), bytes("k7")) == values[7])
        }
    }

    @Test func cursorsKeepTheDatabaseAliveAfterClose() throws {
        let dir = TempDir("close")
        let kv = try RocksDBStore.open(path: dir.path + "/db", columnFamilies: ["c"])
        let c = try kv.columnFamily("c")
        var batch = WriteBatch()
        batch.put(c, bytes("a"), bytes("1"))
        try kv.write(batch, sync: true)
        let cursor = try kv.cursor(c, .all, reverse: false)
        kv.close()
        #expect(try cursor.next()?.value == bytes("1"))
        #expect(throws: StorageError.closed) { try kv.get(c, bytes("a")) }
    }
}
