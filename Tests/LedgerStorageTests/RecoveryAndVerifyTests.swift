import Foundation
import LedgerBench
import LedgerCore
import LedgerCrypto
import LedgerProtos
import LedgerRocksDB
import Testing

@testable import LedgerStorage

@Suite struct RecoveryTests {
    let chain = ChainBuilder()

    @Test func missingStateIsReplayedFromTheBlockStoreOnOpen() throws {
        let dir = TempDir("replay")
        do {
            let store = try LedgerStore.open(dataDir: dir.path)
            let l = try store.createChannel("ch")
            try chain.commit(l, [.init(id: "1", writes: [("k", "a")])])
            // Two blocks stored without their state, as a crash between separate writes would leave them.
            try l.commitBlockOnlyForTesting(
                try chain.block(on: l, [.init(id: "2", writes: [("k", "b"), ("gone", "x")])]))
            try l.commitBlockOnlyForTesting(try chain.block(on: l, [.init(id: "3", writes: [("gone", nil)])]))
            #expect(try value(l, "k") == "a")
            #expect(try l.stateSavepoint() == 0)
            store.close()
        }
        let store = try LedgerStore.open(dataDir: dir.path)
        defer { store.close() }
        let l = try store.channel("ch")
        #expect(l.height == 3)
        #expect(try l.stateSavepoint() == 2)
        #expect(try value(l, "k") == "b")
        #expect(try value(l, "gone") == nil)
        #expect(ChainVerifier(ledger: l).verify(checkState: true).problems == [])
    }

    @Test func memoryBackendRecoversTheSameWay() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try l.commitBlockOnlyForTesting(try chain.block(on: l, [.init(id: "1", writes: [("k", "a")])]))
        #expect(try value(l, "k") == nil)
        let reopened = try LedgerStore(kv: kv).channel("ch")
        #expect(try value(reopened, "k") == "a")
    }

    @Test func stateAheadOfBlocksIsReportedAsCorruption() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try chain.commit(l, [.init(id: "1", writes: [("k", "a")])])
        var batch = WriteBatch()
        batch.put(l.families.meta, l.keys.savepoint, BigEndian.bytes(10))
        try kv.write(batch, sync: true)
        do {
            _ = try LedgerStore(kv: kv).channel("ch")
            Issue.record("opened a ledger whose state is ahead of its blocks")
        } catch let StorageError.corrupt(_, reason) {
            #expect(reason.contains("ahead of the block store"))
        }
        // The repair the message names works on the ledger that cannot open.
        let rebuilt = try LedgerStore(kv: kv).rebuildState(channel: "ch")
        #expect(try rebuilt.stateSavepoint() == 0)
        #expect(ChainVerifier(ledger: rebuilt).verify(checkState: true).problems == [])
    }

    @Test func newerFormatVersionIsRefused() throws {
        let dir = TempDir("format")
        do {
            let store = try LedgerStore.open(dataDir: dir.path)
            var batch = WriteBatch()
            batch.put(store.families.meta, LedgerKeys.formatVersionKey, [0, 0, 0, 3])
            try store.kv.write(batch, sync: true)
            store.close()
        }
        do {
            _ = try LedgerStore.open(dataDir: dir.path)
            Issue.record("opened a newer format")
        } catch let e as StorageError {
            #expect(e == .formatTooNew(path: dir.path, found: 3, supported: 2))
            #expect(e.description.contains("newer than this build supports"))
        }
    }

    /// Keys are bytes: a planted history entry whose key Swift calls equal to one the transaction
    /// wrote ("café" precomposed against "e" and a combining accent) is still not that key's entry.
    @Test func aPlantedHistoryEntryIsMatchedByBytesNotByStringEquality() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try chain.commit(l, [.init(id: "a", writes: [("caf\u{E9}", "v")])])
        #expect("caf\u{E9}" == "cafe\u{301}", "the premise: Swift's string equality")
        var batch = WriteBatch()
        batch.put(l.families.history, l.keys.history("kv", "cafe\u{301}", Height(blockNum: 0, txNum: 0)), [0])
        try kv.write(batch, sync: true)
        let problems = ChainVerifier(ledger: l).verify(checkState: true).problems
        #expect(
            problems.count == 1 && problems[0].hasSuffix("at 0:0 is stored but no valid transaction wrote it"),
            "\(problems)")
    }

    @Test func rebuildStateRestoresATamperedState() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try SampleChain(channel: "ch", seed: 3).extend(l, count: 15)
        var batch = WriteBatch()
        batch.put(
            l.families.state, l.keys.state("sample", "key-9999"),
            Height(blockNum: 0, txNum: 0).encoded + bytes("planted"))
        try kv.write(batch, sync: true)
        let tampered = ChainVerifier(ledger: l).verify(checkState: true)
        #expect(tampered.problems.contains { $0.contains("key-9999") })
        try l.rebuildState()
        #expect(ChainVerifier(ledger: l).verify(checkState: true).problems == [])
        #expect(try l.state.get(namespace: "sample", key: "key-9999") == nil)
    }
}

@Suite struct ChainVerifierTests {
    func sampleLedger(blocks: Int = 12) throws -> (MemoryStore, ChannelLedger) {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try SampleChain(channel: "ch", seed: 11).extend(l, count: blocks)
        return (kv, l)
    }

    func overwriteBlock(
        _ kv: MemoryStore, _ l: ChannelLedger, _ n: UInt64, _ change: (inout Medledger_Block) -> Void
    ) throws {
        var block = try l.block(number: n)!
        change(&block)
        var batch = WriteBatch()
        batch.put(l.families.blocks, l.keys.block(n), try block.serializedBytes())
        try kv.write(batch, sync: true)
    }

    @Test func anIntactChainVerifiesWithState() throws {
        let (_, l) = try sampleLedger()
        let r = ChainVerifier(ledger: l).verify(checkState: true)
        #expect(r.problems == [])
        #expect(r.height == 12)
        #expect(r.tipHash == Hex.encode(l.info.tipHash))
        #expect(r.commitHash == Hex.encode(l.info.commitHash))
    }

    /// `verify --state` keeps only digests and looks history up: each kind of damage to the state or
    /// history is still found, and named where it can be.
    @Test func everyKindOfStateAndHistoryDamageIsReported() throws {
        func damaged(_ change: (ChannelLedger, inout WriteBatch) throws -> Void) throws -> [String] {
            let (kv, l) = try sampleLedger()
            var batch = WriteBatch()
            try change(l, &batch)
            try kv.write(batch, sync: true)
            return ChainVerifier(ledger: l).verify(checkState: true).problems
        }
        func first(_ l: ChannelLedger, _ family: ColumnFamily) throws -> KVPair {
            try #require(try l.kv.scan(family, l.keys.allState, limit: 1).first)
        }
        let changedValue = try damaged { l, b in
            let p = try first(l, l.families.state)
            b.put(l.families.state, p.key, Array(p.value.prefix(16)) + bytes("not what was written"))
        }
        #expect(changedValue.count == 1 && changedValue[0].hasPrefix("state: sample/"), "\(changedValue)")
        #expect(changedValue.first?.contains("differs from a replay") == true)
        let droppedState = try damaged { l, b in b.delete(l.families.state, try first(l, l.families.state).key) }
        #expect(droppedState == ["state: 1 entries written by the chain are missing from the store"])
        let droppedHistory = try damaged { l, b in b.delete(l.families.history, try first(l, l.families.history).key) }
        #expect(droppedHistory == ["history: 1 entries written by the chain are missing from the store"])
        let changedHistory = try damaged { l, b in
            b.put(l.families.history, try first(l, l.families.history).key, [1])
        }
        #expect(changedHistory.count == 1 && changedHistory[0].contains("differs from a replay"), "\(changedHistory)")
        // An entry at a real transaction that never wrote that key, and one past the chain's end.
        let planted = try damaged { l, b in
            b.put(l.families.history, l.keys.history("sample", "never-written", Height(blockNum: 3, txNum: 0)), [0])
            b.put(l.families.history, l.keys.history("sample", "from-the-future", Height(blockNum: 99, txNum: 0)), [0])
        }
        #expect(
            Set(planted) == [
                #"history: sample/"never-written" at 3:0 is stored but no valid transaction wrote it"#,
                #"history: sample/"from-the-future" at 99:0 is stored but no valid transaction wrote it"#,
            ], "\(planted)")
    }

    @Test func aChangedEnvelopeBreaksTheMerkleRoot() throws {
        let (kv, l) = try sampleLedger()
        try overwriteBlock(kv, l, 4) { b in
            var env = [UInt8](b.data.envelopes[0])
            env[env.count - 1] ^= 0x01
            b.data.envelopes[0] = Data(env)
        }
        let r = ChainVerifier(ledger: l).verify(checkState: false)
        #expect(r.problems.contains { $0.contains("block 4") && $0.contains("Merkle root") }, "\(r.problems)")
    }

    @Test func aFlippedValidationCodeBreaksTheCommitHash() throws {
        let (kv, l) = try sampleLedger()
        let target = try (0..<12).first {
            try l.block(number: UInt64($0))!.metadata.validationCodes.contains(.mvccReadConflict)
        }!
        try overwriteBlock(kv, l, UInt64(target)) { b in
            let i = b.metadata.validationCodes.firstIndex(of: .mvccReadConflict)!
            b.metadata.validationCodes[i] = .valid
        }
        let r = ChainVerifier(ledger: l).verify(checkState: false)
        #expect(r.problems.contains { $0.contains("block \(target)") && $0.contains("commit hash") }, "\(r.problems)")
    }

    @Test func aChangedHeaderBreaksTheChainLink() throws {
        let (kv, l) = try sampleLedger()
        try overwriteBlock(kv, l, 7) { b in b.header.previousHash = Data(repeating: 0xab, count: 32) }
        let r = ChainVerifier(ledger: l).verify(checkState: false)
        #expect(r.problems.contains { $0.contains("block 7") && $0.contains("previous hash") }, "\(r.problems)")
    }

    @Test func truncatedAndMissingBlocksAreReported() throws {
        let (kv, l) = try sampleLedger()
        let stored = try l.serializedBlock(number: 3)!
        var batch = WriteBatch()
        batch.put(l.families.blocks, l.keys.block(3), Array(stored.prefix(stored.count - 7)))
        batch.delete(l.families.blocks, l.keys.block(9))
        try kv.write(batch, sync: true)
        let r = ChainVerifier(ledger: l).verify(checkState: false)
        #expect(r.problems.contains { $0.contains("block 3") }, "\(r.problems)")
        #expect(r.problems.contains { $0.contains("block 10 where block 9 should be") }, "\(r.problems)")
    }

    @Test func aDroppedTxIndexEntryIsReported() throws {
        let (kv, l) = try sampleLedger()
        let tx = try ParsedTransaction(envelope: try l.block(number: 2)!.envelopeBytes[0])
        var batch = WriteBatch()
        batch.delete(l.families.txIndex, l.keys.tx(tx.txID))
        try kv.write(batch, sync: true)
        let r = ChainVerifier(ledger: l).verify(checkState: false)
        #expect(r.problems.contains { $0.contains("block 2 tx 0") }, "\(r.problems)")
    }
}

/// Every file and directory under `root` with its size, modification time (ns) and SHA-256: two equal
/// snapshots mean nothing was created, deleted, written or even touched.
func directorySnapshot(_ root: String) throws -> [String: String] {
    var out = [String: String]()
    let fm = FileManager.default
    for rel in [""] + (try fm.subpathsOfDirectory(atPath: root)).sorted() {
        let path = rel.isEmpty ? root : root + "/" + rel
        var st = stat()
        guard lstat(path, &st) == 0 else { throw StorageError.corrupt(what: path, reason: "cannot stat") }
        let mtime = "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        if (st.st_mode & S_IFMT) == S_IFDIR {
            out[rel + "/"] = "dir mtime \(mtime)"
        } else {
            let digest = Hex.encode(Digests.sha256(Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
            out[rel] = "size \(st.st_size) mtime \(mtime) sha256 \(digest)"
        }
    }
    return out
}

@Suite struct ReadOnlyOpenTests {
    let chain = ChainBuilder()

    /// A ledger whose last two blocks are stored without their state, as a crash between separate
    /// writes (or a state restored from an older backup) leaves it: a read-write open would replay them.
    func ledgerWithStateBehind(_ dir: TempDir) throws {
        let store = try LedgerStore.open(dataDir: dir.path)
        defer { store.close() }
        let l = try store.createChannel("ch")
        try chain.commit(l, [.init(id: "1", writes: [("k", "a"), ("j", "x")])])
        try chain.commit(l, [.init(id: "2", writes: [("k", "b")])])
        try l.commitBlockOnlyForTesting(try chain.block(on: l, [.init(id: "3", writes: [("k", "c"), ("j", nil)])]))
        try l.commitBlockOnlyForTesting(try chain.block(on: l, [.init(id: "4", writes: [("new", "n")])]))
    }

    @Test func readingAndVerifyingReadOnlyChangesNoFileAndReportsTheSavepointBehind() throws {
        let dir = TempDir("read-only")
        try ledgerWithStateBehind(dir)
        let before = try directorySnapshot(dir.path)
        #expect(
            before.keys.contains { $0.hasSuffix("LOCK") }, "the snapshot sees RocksDB's files: \(before.keys.sorted())")

        do {
            let store = try LedgerStore.openReadOnly(dataDir: dir.path)
            defer { store.close() }
            #expect(store.isReadOnly)
            let l = try store.channel("ch")
            #expect(l.height == 4)
            #expect(try l.stateSavepoint() == 1, "no replay on a read-only open")
            #expect(try value(l, "k") == "b")
            #expect(try l.block(number: 3)?.header.number == 3)
            let r = ChainVerifier(ledger: l).verify(checkState: true)
            #expect(r.problems == [], "the state equals a replay through its savepoint")
            #expect(r.notes.count == 1)
            #expect(
                r.notes.first?.contains("savepoint is block 1") == true
                    && r.notes.first?.contains("blocks 2…3") == true, "\(r.notes)")
            #expect(
                ChainVerifier(ledger: l).verify(checkState: false).notes
                    == r.notes.map {
                        $0.replacingOccurrences(of: "; the state was compared with a replay through block 1", with: "")
                    })
            // Writes are refused before they reach RocksDB (which would refuse them too).
            #expect(throws: StorageError.self) { try chain.commit(l, [.init(id: "5", writes: [("k", "d")])]) }
            #expect(throws: StorageError.self) { try l.rebuildState() }
            #expect(throws: StorageError.self) { try store.createChannel("other") }
            var batch = WriteBatch()
            batch.put(try store.kv.columnFamily(StorageLayout.Family.meta), [1], [1])
            #expect(throws: StorageError.readOnly(path: StorageLayout.databasePath(dataDir: dir.path))) {
                try store.kv.write(batch, sync: true)
            }
        }
        #expect(try directorySnapshot(dir.path) == before, "a read-only open, read, verify and close wrote nothing")

        // The read-write open still recovers the same directory.
        let store = try LedgerStore.open(dataDir: dir.path)
        defer { store.close() }
        let l = try store.channel("ch")
        #expect(try l.stateSavepoint() == 3)
        #expect(try value(l, "k") == "c" && value(l, "new") == "n" && value(l, "j") == nil)
        let r = ChainVerifier(ledger: l).verify(checkState: true)
        #expect(r.problems == [] && r.notes == [])
    }

    @Test func aSavepointAheadIsAProblemNotARefusalWhenReadOnly() throws {
        let dir = TempDir("read-only-ahead")
        do {
            let store = try LedgerStore.open(dataDir: dir.path)
            defer { store.close() }
            let l = try store.createChannel("ch")
            try chain.commit(l, [.init(id: "1", writes: [("k", "a")])])
            var batch = WriteBatch()
            batch.put(l.families.meta, l.keys.savepoint, BigEndian.bytes(7))
            try store.kv.write(batch, sync: true)
        }
        let store = try LedgerStore.openReadOnly(dataDir: dir.path)
        defer { store.close() }
        let r = ChainVerifier(ledger: try store.channel("ch")).verify(checkState: false)
        #expect(
            r.problems.contains { $0.contains("ahead of the block store") && $0.contains("rebuild-state") },
            "\(r.problems)")
    }

    @Test func aReadOnlyOpenIsRefusedWhileAnotherProcessHoldsTheLedger() throws {
        // Another process: fcntl locks of this process are invisible to it, so use a child that holds
        // RocksDB's LOCK the way RocksDB does (a write lock on the whole file) while we try.
        let dir = TempDir("read-only-busy")
        do { try LedgerStore.open(dataDir: dir.path).close() }
        let lockPath = StorageLayout.databasePath(dataDir: dir.path) + "/LOCK"
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = [
            "python3", "-c",
            "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(20)",
            lockPath,
        ]
        let out = Pipe()
        child.standardOutput = out
        try child.run()
        // SIGKILL: a child may inherit a blocked SIGTERM from the test runner.
        defer {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        _ = out.fileHandleForReading.availableData  // "locked"
        #expect(throws: LedgerStoreError.inUse(path: dir.path)) { try LedgerStore.openReadOnly(dataDir: dir.path) }
    }
}
