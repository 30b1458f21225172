import CRocksDB
import Foundation
import LedgerStorage
import Synchronization

/// Tuning for a RocksDB store. Defaults suit a hospital node on a small machine.
public struct RocksDBOptions: Sendable {
    /// Shared LRU block cache for all column families.
    public var blockCacheBytes = 64 << 20
    /// Bloom filter bits per key: makes "is this tx id already in the ledger?" a memory lookup.
    public var bloomBitsPerKey = 10.0
    /// Background flush/compaction threads.
    public var backgroundThreads: Int32 = 2
    public var createIfMissing = true
    /// SST data block size. 16 KiB (RocksDB's default is 4 KiB): a range query of a page of index
    /// records then mostly stays inside one block; point reads lose nothing measurable (bench storage).
    public var blockBytes = 16 * 1024
    /// The write-ahead log is shared by every column family and kept until all of them have flushed
    /// what it holds; past this size RocksDB flushes the laggards, so the log does not grow with the
    /// ledger (without it a peer kept ~2.4 KB of log per transaction).
    public var walBytesMax: UInt64 = 32 << 20
    /// Share of each memtable's size given to its bloom filter (RocksDB suggests ≤ 0.25; 0.02 of a
    /// 64 MiB memtable is about 1.3 MiB).
    public var memtableBloomRatio = 0.02
    /// ZSTD dictionary per SST file (0: none), in the column families named below. Each block is
    /// compressed on its own, and every block repeats the same few certificates (creator's,
    /// endorser's): a dictionary made of samples of the file's own data holds them once for the whole
    /// file. Offline, on a kv run's 1,651 blocks, it cut the compressed block store from 414 to 323
    /// bytes per transaction. State, history and the tx index gained 0–4 %, not worth buffering their
    /// flushes for.
    public var compressionDictionaryBytes: UInt32 = 16 * 1024
    public var compressionDictionaryFamilies: Set<String> = [StorageLayout.Family.blocks]
    /// Sample bytes for ZSTD's dictionary trainer; 0 uses the samples as the dictionary. Training
    /// gained 1 % more (320 bytes per transaction) and cost about 0.1 s of CPU per SST file, 5 % of a
    /// loaded network's CPU, so it is off.
    public var compressionTrainingBytes: UInt32 = 0
    /// SST data buffered for sampling before the dictionary is fixed (charged to the block cache).
    public var compressionBufferBytes: UInt64 = 4 << 20
    /// ZSTD's level for every SST file. Level 1 kept the same bytes per transaction as RocksDB's
    /// default (ZSTD's 3) in P_DE and kv runs (1,454 against 1,454 and 408–411 against 409–411 after
    /// a restart: the dictionary finds the repeats), for 2–4 % less CPU per P_DE; flushes and
    /// compactions were 12 % of a loaded network's CPU, ZSTD two thirds of that.
    public var compressionLevel: Int32 = 1
    /// RocksDB's own text log (`LOG` in the database directory): rolled to `LOG.old.*` past this size
    /// and at each open, and only this many old ones kept. RocksDB's defaults (no size limit, 1,000
    /// old files) let it grow with the node's uptime and restarts.
    public var infoLogBytesMax = 8 << 20
    public var infoLogFilesKept = 4

    public init() {}
}

/// The RocksDB backend, over Debian's librocksdb C API.
///
/// Every column family the caller declares is created if missing; a column family on disk that the
/// caller did not declare makes `open` fail (see `StorageError.undeclaredColumnFamilies`).
/// All reads and writes are thread-safe (RocksDB's guarantee). `close()` waits for no one: it marks the
/// store closed, and the database is released once the last open cursor or snapshot is gone.
public final class RocksDBStore: KVStore, @unchecked Sendable {
    public let path: String
    public let columnFamilyNames: [String]
    /// Opened with `openReadOnly`: every write throws `StorageError.readOnly`.
    public let isReadOnly: Bool

    private let db: OpaquePointer
    private let handles: [OpaquePointer]
    private let options: FamilyOptions
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let bufferedWrite: OpaquePointer

    private struct Lifecycle {
        var closeRequested = false
        var released = false
        /// Operations in flight plus open cursors and snapshots: the database is released when this is 0.
        var users = 0
    }
    private let lifecycle = Mutex(Lifecycle())

    public static func open(
        path: String, columnFamilies: [String], options tuning: RocksDBOptions = RocksDBOptions()
    ) throws -> RocksDBStore {
        var names = ["default"]
        for n in columnFamilies where !names.contains(n) { names.append(n) }

        let options = FamilyOptions(tuning, families: names)
        var opened = false
        defer { if !opened { options.destroy() } }

        if tuning.createIfMissing {
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        _ = try existingColumnFamilies(path: path, options: options.base, declared: names)

        var err: UnsafeMutablePointer<CChar>? = nil
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let db = withCNames(names) { constNames in
            let cfOptions: [OpaquePointer?] = names.map { options.forFamily($0) }
            return rocksdb_open_column_families(
                options.base, path, Int32(names.count), constNames, cfOptions, &handles, &err)
        }
        do {
            try RocksDBStore.check(err, "open \(path)")
        } catch StorageError.rocksDB(_, let message)
            where message.contains("While lock file") || message.contains("/LOCK:")
        {
            // RocksDB: "IO error: While lock file: DIR/LOCK: Resource temporarily unavailable" (another
            // process), or "IO error: lock hold by current process, …: DIR/LOCK: No locks available".
            throw StorageError.locked(path: path)
        }
        guard let db else {
            throw StorageError.rocksDB(operation: "open \(path)", message: "no database handle returned")
        }
        opened = true
        return RocksDBStore(
            path: path, names: names, db: db, handles: handles.map { $0! }, options: options, readOnly: false)
    }

    /// Opens an existing database without writing to its directory: RocksDB's read-only mode (no lock
    /// file taken, no WAL replayed to disk, no flush, no compaction, no OPTIONS file). A database a
    /// running process holds is refused like `open` refuses it — its files may be compacted away under
    /// a reader — so offline tools keep one rule. Only the declared column families that exist are
    /// opened; asking for another is `unknownColumnFamily`.
    public static func openReadOnly(
        path: String, columnFamilies: [String], options tuning: RocksDBOptions = RocksDBOptions()
    ) throws -> RocksDBStore {
        var declared = ["default"]
        for n in columnFamilies where !declared.contains(n) { declared.append(n) }
        try refuseIfLocked(path: path)

        let options = FamilyOptions(tuning, families: declared)
        var opened = false
        defer { if !opened { options.destroy() } }
        let existing = try existingColumnFamilies(path: path, options: options.base, declared: declared)
        let names = declared.filter { existing?.contains($0) ?? ($0 == "default") }

        var err: UnsafeMutablePointer<CChar>? = nil
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let db = withCNames(names) { constNames in
            let cfOptions: [OpaquePointer?] = names.map { options.forFamily($0) }
            return rocksdb_open_for_read_only_column_families(
                options.base, path, Int32(names.count), constNames, cfOptions, &handles, 0, &err)
        }
        try RocksDBStore.check(err, "open \(path) read-only")
        guard let db else {
            throw StorageError.rocksDB(operation: "open \(path) read-only", message: "no database handle returned")
        }
        opened = true
        return RocksDBStore(
            path: path, names: names, db: db, handles: handles.map { $0! }, options: options, readOnly: true)
    }

    /// RocksDB holds an fcntl write lock on `DIR/LOCK` while a read-write open lasts; asking whether one
    /// is held (F_GETLK) writes nothing. Locks of this very process are not seen, as with any fcntl lock.
    private static func refuseIfLocked(path: String) throws {
        let fd = Glibc.open(path + "/LOCK", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }  // no lock file: nobody has it open read-write
        defer { Glibc.close(fd) }
        var probe = Glibc.flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &probe) == 0 else { return }
        if probe.l_type != Int16(F_UNLCK) { throw StorageError.locked(path: path) }
    }

    /// Refuses a directory holding column families we do not know about; returns the ones it holds
    /// (nil when there is no database yet).
    private static func existingColumnFamilies(
        path: String, options: OpaquePointer, declared: [String]
    ) throws -> [String]? {
        var err: UnsafeMutablePointer<CChar>? = nil
        var count = 0
        guard let list = rocksdb_list_column_families(options, path, &count, &err) else {
            if let e = err { rocksdb_free(e) }  // no database yet
            return nil
        }
        var existing = [String]()
        for i in 0..<count { existing.append(String(cString: list[i]!)) }
        rocksdb_list_column_families_destroy(list, count)
        let unknown = existing.filter { !declared.contains($0) }
        if !unknown.isEmpty { throw StorageError.undeclaredColumnFamilies(path: path, names: unknown) }
        return existing
    }

    private static func withCNames<R>(_ names: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let cNames = names.map { strdup($0)! }
        defer { cNames.forEach { free($0) } }
        return body(cNames.map { UnsafePointer($0) })
    }

    private static func makeOptions(_ tuning: RocksDBOptions) -> OpaquePointer {
        let options = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(options, tuning.createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(options, 1)
        rocksdb_options_increase_parallelism(options, tuning.backgroundThreads)
        // ZSTD: blocks repeat certificates and headers from one transaction to the next, which ZSTD
        // finds and LZ4 mostly does not (bench load prints the ledger's bytes per transaction).
        rocksdb_options_set_compression(options, Int32(rocksdb_zstd_compression))
        // Window bits and strategy at RocksDB's defaults (-14, 0), no dictionary.
        rocksdb_options_set_compression_options(options, -14, tuning.compressionLevel, 0, 0)
        rocksdb_options_set_max_total_wal_size(options, tuning.walBytesMax)
        rocksdb_options_set_max_log_file_size(options, tuning.infoLogBytesMax)
        rocksdb_options_set_keep_log_file_num(options, tuning.infoLogFilesKept)
        // A bloom filter over the memtable's whole keys: most point reads on the transaction path ask
        // for a key that is not there (is this tx id committed already?), and without it each one walks
        // the memtable's skiplist (2 % of a peer's CPU under load) before the SST filters answer.
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(options, tuning.memtableBloomRatio)
        rocksdb_options_set_memtable_whole_key_filtering(options, 1)
        let table = rocksdb_block_based_options_create()!
        rocksdb_block_based_options_set_block_size(table, tuning.blockBytes)
        let cache = rocksdb_cache_create_lru(tuning.blockCacheBytes)!
        rocksdb_block_based_options_set_block_cache(table, cache)
        // The table options take ownership of the filter policy.
        rocksdb_block_based_options_set_filter_policy(
            table, rocksdb_filterpolicy_create_bloom_full(tuning.bloomBitsPerKey))
        rocksdb_options_set_block_based_table_factory(options, table)
        rocksdb_block_based_options_destroy(table)
        rocksdb_cache_destroy(cache)  // releases our reference; the table factory keeps its own
        return options
    }

    /// The database's options, and a copy with a ZSTD dictionary for the column families that get one
    /// (same block cache and table settings: the copy shares the table factory).
    struct FamilyOptions: @unchecked Sendable {
        let base: OpaquePointer
        let dictionary: OpaquePointer?
        let dictionaryFamilies: Set<String>

        init(_ tuning: RocksDBOptions, families: [String]) {
            base = RocksDBStore.makeOptions(tuning)
            dictionaryFamilies = tuning.compressionDictionaryBytes > 0 ? tuning.compressionDictionaryFamilies : []
            guard families.contains(where: dictionaryFamilies.contains) else {
                dictionary = nil
                return
            }
            let copy = rocksdb_options_create_copy(base)!
            rocksdb_options_set_compression_options(
                copy, -14, tuning.compressionLevel, 0, Int32(clamping: tuning.compressionDictionaryBytes))
            rocksdb_options_set_compression_options_zstd_max_train_bytes(
                copy, Int32(clamping: tuning.compressionTrainingBytes))
            rocksdb_options_set_compression_options_max_dict_buffer_bytes(copy, tuning.compressionBufferBytes)
            dictionary = copy
        }

        func forFamily(_ name: String) -> OpaquePointer? {
            dictionaryFamilies.contains(name) ? dictionary ?? base : base
        }

        func destroy() {
            rocksdb_options_destroy(base)
            if let dictionary { rocksdb_options_destroy(dictionary) }
        }
    }

    private init(
        path: String, names: [String], db: OpaquePointer, handles: [OpaquePointer], options: FamilyOptions,
        readOnly: Bool
    ) {
        self.path = path
        self.isReadOnly = readOnly
        self.columnFamilyNames = names
        self.db = db
        self.handles = handles
        self.options = options
        self.readOptions = rocksdb_readoptions_create()
        self.syncWrite = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(syncWrite, 1)
        self.bufferedWrite = rocksdb_writeoptions_create()
    }

    deinit {
        release()
    }

    public func columnFamily(_ name: String) throws -> ColumnFamily {
        guard let i = columnFamilyNames.firstIndex(of: name) else {
            throw StorageError.unknownColumnFamily(name: name, known: columnFamilyNames)
        }
        return ColumnFamily(name: name, index: i)
    }

    public func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? {
        try enter()
        defer { leave() }
        return try RocksDBStore.get(db: db, readOptions: readOptions, handle: handle(cf), key: key)
    }

    public func withValue<T>(
        _ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? {
        try enter()
        defer { leave() }
        return try RocksDBStore.withValue(db: db, readOptions: readOptions, handle: handle(cf), key: key, body)
    }

    public func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        try enter()
        return RocksDBCursor(store: self, handle: handle(cf), snapshot: nil, range: range, reverse: reverse)
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        guard !isReadOnly else { throw StorageError.readOnly(path: path) }
        try enter()
        defer { leave() }
        let wb = rocksdb_writebatch_create()!
        defer { rocksdb_writebatch_destroy(wb) }
        for op in batch.operations {
            switch op {
            case .put(let cf, let k, let v):
                k.withCChars { kp, kn in
                    v.withCChars { vp, vn in rocksdb_writebatch_put_cf(wb, handles[cf], kp, kn, vp, vn) }
                }
            case .delete(let cf, let k):
                k.withCChars { kp, kn in rocksdb_writebatch_delete_cf(wb, handles[cf], kp, kn) }
            case .deleteRange(let cf, let lo, let hi):
                lo.withCChars { lp, ln in
                    hi.withCChars { hp, hn in rocksdb_writebatch_delete_range_cf(wb, handles[cf], lp, ln, hp, hn) }
                }
            }
        }
        var err: UnsafeMutablePointer<CChar>? = nil
        rocksdb_write(db, sync ? syncWrite : bufferedWrite, wb, &err)
        try RocksDBStore.check(err, "write")
    }

    public func snapshot() throws -> any KVSnapshot {
        try enter()
        return RocksDBSnapshot(store: self, snapshot: rocksdb_create_snapshot(db))
    }

    /// Writes every column family's memtable to SST files and waits for it. Committed data is already
    /// durable through the WAL; this is for checkpoints, backups and measuring reads from SST files.
    public func flush() throws {
        guard !isReadOnly else { throw StorageError.readOnly(path: path) }
        try enter()
        defer { leave() }
        let fo = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(fo) }
        rocksdb_flushoptions_set_wait(fo, 1)
        for h in handles {
            var err: UnsafeMutablePointer<CChar>? = nil
            rocksdb_flush_cf(db, fo, h, &err)
            try RocksDBStore.check(err, "flush")
        }
    }

    /// Bytes of the SST files of column family `name` (RocksDB's `total-sst-files-size`): what it
    /// keeps on disk once flushed, compressed.
    public func sstBytes(_ name: String) throws -> UInt64 {
        let cf = try columnFamily(name)
        try enter()
        defer { leave() }
        var bytes: UInt64 = 0
        guard rocksdb_property_int_cf(db, handles[cf.index], "rocksdb.total-sst-files-size", &bytes) == 0 else {
            throw StorageError.rocksDB(operation: "total-sst-files-size of \(name)", message: "property not available")
        }
        return bytes
    }

    public func close() {
        let releaseNow = lifecycle.withLock { l -> Bool in
            l.closeRequested = true
            return l.users == 0 && !l.released
        }
        if releaseNow { release() }
    }

    // MARK: - Internals shared with cursors and snapshots

    fileprivate var rawDB: OpaquePointer { db }

    fileprivate func handle(_ cf: ColumnFamily) -> OpaquePointer {
        precondition(
            cf.index < handles.count && columnFamilyNames[cf.index] == cf.name,
            "column family \(cf.name) belongs to another store")
        return handles[cf.index]
    }

    /// Registers a user of the database; fails once `close()` was called.
    fileprivate func enter() throws {
        try lifecycle.withLock { l in
            guard !l.closeRequested else { throw StorageError.closed }
            l.users += 1
        }
    }

    fileprivate func leave() {
        let releaseNow = lifecycle.withLock { l -> Bool in
            l.users -= 1
            return l.closeRequested && l.users == 0 && !l.released
        }
        if releaseNow { release() }
    }

    private func release() {
        let first = lifecycle.withLock { l -> Bool in
            defer { l.released = true }
            return !l.released
        }
        guard first else { return }
        for h in handles { rocksdb_column_family_handle_destroy(h) }
        rocksdb_close(db)
        options.destroy()
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWrite)
        rocksdb_writeoptions_destroy(bufferedWrite)
    }

    static func get(db: OpaquePointer, readOptions: OpaquePointer, handle: OpaquePointer, key: Bytes) throws -> Bytes? {
        try withValue(db: db, readOptions: readOptions, handle: handle, key: key) { Bytes($0) }
    }

    /// A pinned read: RocksDB hands out its own buffer (block cache or memtable) without a copy.
    static func withValue<T>(
        db: OpaquePointer, readOptions: OpaquePointer, handle: OpaquePointer, key: Bytes,
        _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T? {
        var err: UnsafeMutablePointer<CChar>? = nil
        let slice = key.withCChars { kp, kn in rocksdb_get_pinned_cf(db, readOptions, handle, kp, kn, &err) }
        try check(err, "get")
        guard let slice else { return nil }
        defer { rocksdb_pinnableslice_destroy(slice) }
        var n = 0
        let p = rocksdb_pinnableslice_value(slice, &n)
        return try body(UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n))
    }

    static func check(_ err: UnsafeMutablePointer<CChar>?, _ operation: String) throws {
        guard let err else { return }
        let message = String(cString: err)
        rocksdb_free(err)
        throw StorageError.rocksDB(operation: operation, message: message)
    }
}

final class RocksDBSnapshot: KVSnapshot, @unchecked Sendable {
    private let store: RocksDBStore
    fileprivate let snapshot: OpaquePointer
    private let readOptions: OpaquePointer

    fileprivate init(store: RocksDBStore, snapshot: OpaquePointer) {
        self.store = store
        self.snapshot = snapshot
        readOptions = rocksdb_readoptions_create()
        rocksdb_readoptions_set_snapshot(readOptions, snapshot)
    }

    deinit {
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_release_snapshot(store.rawDB, snapshot)
        store.leave()
    }

    func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? {
        try RocksDBStore.get(db: store.rawDB, readOptions: readOptions, handle: store.handle(cf), key: key)
    }

    func withValue<T>(_ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try RocksDBStore.withValue(db: store.rawDB, readOptions: readOptions, handle: store.handle(cf), key: key, body)
    }

    func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        try store.enter()
        return RocksDBCursor(store: store, handle: store.handle(cf), snapshot: self, range: range, reverse: reverse)
    }
}

/// A RocksDB iterator bounded to a key range. Holds its store (and snapshot) alive until it is gone.
final class RocksDBCursor: KVCursor {
    private let store: RocksDBStore
    private let snapshot: RocksDBSnapshot?
    private let readOptions: OpaquePointer
    private let iterator: OpaquePointer
    private let range: KeyRange
    private let reverse: Bool
    private var started = false
    // RocksDB keeps pointers to the bound keys: they must live as long as the iterator.
    private let lowerBound: UnsafeMutableBufferPointer<CChar>
    private let upperBound: UnsafeMutableBufferPointer<CChar>?

    fileprivate init(
        store: RocksDBStore, handle: OpaquePointer, snapshot: RocksDBSnapshot?, range: KeyRange, reverse: Bool
    ) {
        self.store = store
        self.snapshot = snapshot
        self.range = range
        self.reverse = reverse
        readOptions = rocksdb_readoptions_create()
        if let snapshot { rocksdb_readoptions_set_snapshot(readOptions, snapshot.snapshot) }
        lowerBound = RocksDBCursor.copy(range.lower)
        rocksdb_readoptions_set_iterate_lower_bound(readOptions, lowerBound.baseAddress, lowerBound.count)
        if let upper = range.upper {
            let u = RocksDBCursor.copy(upper)
            upperBound = u
            rocksdb_readoptions_set_iterate_upper_bound(readOptions, u.baseAddress, u.count)
        } else {
            upperBound = nil
        }
        // Perf-context counting is per thread and on by default in Debian's build; scans do not need it.
        rocksdb_set_perf_level(Int32(rocksdb_disable))
        iterator = rocksdb_create_iterator_cf(store.rawDB, readOptions, handle)
    }

    deinit {
        rocksdb_iter_destroy(iterator)
        rocksdb_readoptions_destroy(readOptions)
        lowerBound.deallocate()
        upperBound?.deallocate()
        store.leave()
    }

    func next() throws -> KVPair? {
        try next { k, v in KVPair(key: Bytes(k), value: Bytes(v)) }
    }

    /// RocksDB enforces the range itself (iterate_lower_bound / iterate_upper_bound on the read
    /// options), so keys are not compared again here; only the reverse seek needs one check.
    func next<T>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> T) throws -> T? {
        if !started {
            started = true
            if reverse {
                if let upper = range.upper {
                    upper.withCChars { p, n in rocksdb_iter_seek_for_prev(iterator, p, n) }
                    // seek_for_prev lands on a key <= upper; the range excludes upper itself.
                    if rocksdb_iter_valid(iterator) != 0, currentKey() == upper { rocksdb_iter_prev(iterator) }
                } else {
                    rocksdb_iter_seek_to_last(iterator)
                }
            } else {
                range.lower.withCChars { p, n in rocksdb_iter_seek(iterator, p, n) }
            }
        } else if reverse {
            rocksdb_iter_prev(iterator)
        } else {
            rocksdb_iter_next(iterator)
        }
        guard rocksdb_iter_valid(iterator) != 0 else {
            var err: UnsafeMutablePointer<CChar>? = nil
            rocksdb_iter_get_error(iterator, &err)
            try RocksDBStore.check(err, "iterate")
            return nil
        }
        var kn = 0
        var vn = 0
        let k = rocksdb_iter_key(iterator, &kn)
        let v = rocksdb_iter_value(iterator, &vn)
        return try body(
            UnsafeRawBufferPointer(start: k, count: k == nil ? 0 : kn),
            UnsafeRawBufferPointer(start: v, count: v == nil ? 0 : vn))
    }

    func forEach(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        while let goOn = try next(body), goOn {}
    }

    private func currentKey() -> Bytes {
        var n = 0
        guard let k = rocksdb_iter_key(iterator, &n) else { return [] }
        return Bytes(UnsafeRawBufferPointer(start: k, count: n))
    }

    private static func copy(_ bytes: Bytes) -> UnsafeMutableBufferPointer<CChar> {
        let buf = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(bytes.count, 1))
        bytes.withUnsafeBytes { src in
            if !src.isEmpty { UnsafeMutableRawBufferPointer(buf).copyMemory(from: src) }
        }
        return UnsafeMutableBufferPointer(rebasing: buf[0..<bytes.count])
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with a C char pointer (never nil, even for an empty array) and the length.
    @inline(__always)
    func withCChars<R>(_ body: (UnsafePointer<CChar>, Int) throws -> R) rethrows -> R {
        if isEmpty {
            var zero: CChar = 0
            return try body(&zero, 0)
        }
        return try withUnsafeBufferPointer { b in
            try b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { try body($0, b.count) }
        }
    }
}
