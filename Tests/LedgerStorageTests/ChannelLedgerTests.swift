import Foundation
import LedgerBench
import LedgerCore
import LedgerProtos
import LedgerRocksDB
import Testing

@testable import LedgerStorage

/// Builds blocks of signed sample transactions for one channel.
struct ChainBuilder {
    let factory: SampleTransactionFactory
    let namespace = "kv"

    init(channel: String = "ch") { factory = SampleTransactionFactory(channel: channel) }

    struct Tx {
        var id: String
        var writes: [(String, String?)]
        var code: Medledger_TxValidationCode = .valid
    }

    func envelope(_ tx: Tx) throws -> Bytes {
        try factory.envelope(
            txID: tx.id, namespace: namespace, writes: tx.writes.map { .init(key: $0.0, value: $0.1.map(bytes)) })
    }

    func block(on ledger: ChannelLedger, _ txs: [Tx]) throws -> Medledger_Block {
        let info = ledger.info
        return .make(
            number: info.height, previousHash: info.tipHash, envelopes: try txs.map(envelope),
            validationCodes: txs.map(\.code))
    }

    @discardableResult
    func commit(_ ledger: ChannelLedger, _ txs: [Tx]) throws -> CommitReceipt {
        try ledger.commit(block(on: ledger, txs))
    }
}

func value(_ l: ChannelLedger, _ key: String, ns: String = "kv") throws -> String? {
    try l.state.get(namespace: ns, key: key).map { String(decoding: $0.value, as: UTF8.self) }
}

@Suite struct ChannelLedgerTests {
    let chain = ChainBuilder()

    @Test(arguments: Backend.allCases)
    func blocksAreReadableByNumberHashAndTxID(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        let r0 = try chain.commit(
            l, [.init(id: "t0", writes: [("a", "1")]), .init(id: "t1", writes: [("b", "2")], code: .mvccReadConflict)])
        let r1 = try chain.commit(l, [.init(id: "t2", writes: [("c", "3")])])
        #expect(l.height == 2)
        #expect(l.info.tipHash == r1.headerHash)
        #expect(l.info.commitHash == r1.commitHash)
        #expect(r0.validTransactions == 1)
        #expect(try l.block(number: 0)?.header.headerHash == r0.headerHash)
        #expect(try l.block(hash: r1.headerHash)?.header.number == 1)
        #expect(try l.block(number: 2) == nil)
        #expect(try l.transaction(id: "t1") == TxLocation(blockNum: 0, txNum: 1, code: .mvccReadConflict))
        #expect(try l.transaction(id: "t2") == TxLocation(blockNum: 1, txNum: 0, code: .valid))
        #expect(try l.transaction(id: "nope") == nil)
        #expect(try l.blocks(from: 0, through: 9).map(\.header.number) == [0, 1])

        let (header, envelope, proof) = try #require(try l.inclusionProof(txID: "t1"))
        #expect(header.number == 0)
        #expect(proof.verify(leaf: envelope, root: [UInt8](header.dataHash)))
        // The stored block carries the commit hash the ledger computed.
        #expect([UInt8](try l.block(number: 1)!.metadata.commitHash) == r1.commitHash)
    }

    @Test(arguments: Backend.allCases)
    func onlyValidWritesReachStateWithVersionsAndHistory(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        try chain.commit(
            l,
            [
                .init(id: "1", writes: [("k", "one"), ("j", "x")]),
                .init(id: "2", writes: [("k", "bad")], code: .mvccReadConflict),
            ])
        try chain.commit(l, [.init(id: "3", writes: [("k", "two")]), .init(id: "4", writes: [("j", nil)])])
        #expect(try value(l, "k") == "two")
        #expect(try l.state.get(namespace: "kv", key: "k")?.version == Height(blockNum: 1, txNum: 0))
        #expect(try value(l, "j") == nil)
        let h = try l.state.history(namespace: "kv", key: "k")
        #expect(h.map(\.version) == [Height(blockNum: 0, txNum: 0), Height(blockNum: 1, txNum: 0)])
        #expect(h.map { String(decoding: $0.value, as: UTF8.self) } == ["one", "two"])
        let hj = try l.state.history(namespace: "kv", key: "j")
        #expect(hj.map(\.isDelete) == [false, true])
        #expect(try l.state.history(namespace: "kv", key: "nothing").isEmpty)
        #expect(throws: StateQueryError.invalidNamespace("")) { try l.state.get(namespace: "", key: "k") }
    }

    @Test(arguments: Backend.allCases)
    func rangeQueriesPageWithBookmarks(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        let keys = (0..<25).map { String(format: "r%02d", $0) }
        try chain.commit(l, keys.map { .init(id: "tx-" + $0, writes: [($0, "v" + $0)]) })
        try chain.commit(l, [.init(id: "other", writes: [("s00", "outside")])])

        var collected = [String]()
        var bookmark: String? = nil
        var pages = 0
        repeat {
            let page = try l.state.range(namespace: "kv", startKey: "r", endKey: "s", limit: 10, bookmark: bookmark)
            collected += page.entries.map(\.key)
            bookmark = page.bookmark
            pages += 1
        } while bookmark != nil
        #expect(collected == keys)
        #expect(pages == 3)
        #expect(
            try l.state.range(namespace: "kv", startKey: "r05", endKey: "r08", limit: 100).entries.map(\.key) == [
                "r05", "r06", "r07",
            ])
        #expect(try l.state.range(namespace: "kv", startKey: "", endKey: "", limit: 1000).entries.count == 26)
        #expect(try l.state.range(namespace: "other", startKey: "", endKey: "", limit: 10).entries.isEmpty)
    }

    /// More than `historyEntriesMax` writes of one key: paging with the bookmark returns every entry
    /// exactly once, in commit order, whatever the page size; other keys' history never leaks in.
    @Test(arguments: Backend.allCases)
    func keyHistoryPagesPastTenThousandEntriesWithABookmark(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        var expected = [(version: Height, isDelete: Bool, value: String)]()
        var block: UInt64 = 0
        for (blockStart, count) in [(0, 3_000), (3_000, 3_000), (6_000, 3_000), (9_000, 3_345)] {
            var txs = [ChainBuilder.Tx]()
            for i in blockStart..<(blockStart + count) {
                let delete = i % 1_000 == 999
                let invalid = i % 1_000 == 500  // stays in the block, writes nothing, has no history
                // Neighbours share the prefix "k": their history must not appear in k's.
                txs.append(
                    .init(
                        id: "t\(i)", writes: [("k", delete ? nil : "v\(i)"), ("k\(i % 3)", "n")],
                        code: invalid ? .mvccReadConflict : .valid))
                if !invalid {
                    expected.append(
                        (Height(blockNum: block, txNum: UInt64(txs.count - 1)), delete, delete ? "" : "v\(i)"))
                }
            }
            try chain.commit(l, txs)
            block += 1
        }
        #expect(expected.count > WorldStateReader.historyEntriesMax)

        for pageSize in [WorldStateReader.historyEntriesMax, 997] {
            var seen = [HistoryEntry]()
            var bookmark: String?
            var pages = 0
            repeat {
                let page = try l.state.history(namespace: "kv", key: "k", limit: pageSize, bookmark: bookmark)
                #expect(page.entries.count <= pageSize)
                #expect(page.bookmark == nil || page.entries.count == pageSize, "a short page is the last")
                seen += page.entries
                bookmark = page.bookmark
                pages += 1
            } while bookmark != nil && pages < 1_000
            #expect(pages == (expected.count + pageSize - 1) / pageSize, "page size \(pageSize)")
            #expect(seen.count == expected.count)
            #expect(
                seen.map(\.version) == expected.map(\.version), "every entry once, in order (page size \(pageSize))")
            #expect(seen.map(\.isDelete) == expected.map(\.isDelete))
            #expect(seen.map { String(decoding: $0.value, as: UTF8.self) } == expected.map(\.value))
        }

        // The old call shape is the first page; a page never exceeds the cap whatever is asked.
        let first = try l.state.history(namespace: "kv", key: "k")
        #expect(first.count == WorldStateReader.historyEntriesMax)
        #expect(first.map(\.version) == expected.prefix(first.count).map(\.version))
        #expect(
            try l.state.history(namespace: "kv", key: "k", limit: 50_000, bookmark: nil).entries.count
                == WorldStateReader.historyEntriesMax)
        // A bookmark at the last entry ends the history; a bookmark that is not a version is refused.
        let end = try l.state.history(namespace: "kv", key: "k", bookmark: expected.last!.version.description)
        #expect(end.entries.isEmpty && end.bookmark == nil)
        for bad in ["", "12", "a:b", "1:2:3", "-1:0"] {
            #expect(throws: StateQueryError.invalidHistoryBookmark(bad)) {
                try l.state.history(namespace: "kv", key: "k", bookmark: bad)
            }
        }
    }

    /// A history entry keeps no copy of the value (format 2): the value is read back from the block.
    /// A format-1 ledger (entries with their value) still reads, verifies and takes new commits, and
    /// is marked format 2 once opened for writing, so that an older build refuses it.
    /// The values of a history page are read from their blocks: past the page's budget of block bytes
    /// the page ends early, with a bookmark, and paging on returns every entry once.
    @Test func aHistoryPageStopsAtItsBudgetOfBlockBytes() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let l = try LedgerStore(kv: kv).createChannel("ch")
        try chain.commit(l, [.init(id: "a", writes: [("k", "v0")]), .init(id: "b", writes: [("k", "v1")])])
        try chain.commit(l, [.init(id: "c", writes: [("k", "v2")])])
        try chain.commit(l, [.init(id: "d", writes: [("k", "v3")])])
        var pages = [[String]]()
        var bookmark: String?
        repeat {
            let page = try l.state.history(
                namespace: "kv", key: "k", limit: 100, bookmark: bookmark, blockBytesBudget: 1)
            pages.append(page.entries.map { String(decoding: $0.value, as: UTF8.self) })
            bookmark = page.bookmark
        } while bookmark != nil && pages.count < 10
        #expect(pages == [["v0", "v1"], ["v2"], ["v3"]], "one block per page, its entries together")
        let whole = try l.state.history(namespace: "kv", key: "k", limit: 100, bookmark: nil)
        #expect(whole.entries.count == 4 && whole.bookmark == nil, "the default budget holds small blocks")
    }

    @Test func historyValuesComeFromTheBlockAndFormatOneEntriesStillRead() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        var l = try LedgerStore(kv: kv).createChannel("ch")
        try chain.commit(
            l, [.init(id: "1", writes: [("k", "one"), ("j", "x")]), .init(id: "2", writes: [("k", "1b")])])
        let historyKey = l.keys.history("kv", "k", Height(blockNum: 0, txNum: 0))
        #expect(try kv.get(l.families.history, historyKey) == [0], "no copy of the value")

        // Make it a format-1 ledger: version 1, and the same entries with their values.
        var batch = WriteBatch()
        batch.put(l.families.meta, LedgerKeys.formatVersionKey, [0, 0, 0, 1])
        batch.put(l.families.history, historyKey, [0] + bytes("one"))
        try kv.write(batch, sync: true)
        #expect(try LedgerStore(kv: kv, readOnly: true).formatVersion() == 1, "a read-only open marks nothing")
        let reopened = try LedgerStore(kv: kv)
        #expect(try reopened.formatVersion() == 2)
        l = try reopened.channel("ch")

        try chain.commit(l, [.init(id: "3", writes: [("k", "two")]), .init(id: "4", writes: [("k", nil)])])
        try chain.commit(l, [.init(id: "5", writes: [("k", ""), ("k", "last of two")])])
        let h = try l.state.history(namespace: "kv", key: "k")
        #expect(h.map { String(decoding: $0.value, as: UTF8.self) } == ["one", "1b", "two", "", "last of two"])
        #expect(h.map(\.isDelete) == [false, false, false, true, false])
        #expect(try l.state.history(namespace: "kv", key: "j").map(\.value) == [bytes("x")])
        #expect(ChainVerifier(ledger: l).verify(checkState: true).problems == [])

        // A format-1 copy that disagrees with the block is found by the verifier.
        batch = WriteBatch()
        batch.put(l.families.history, historyKey, [0] + bytes("forged"))
        try kv.write(batch, sync: true)
        let problems = ChainVerifier(ledger: l).verify(checkState: true).problems
        #expect(
            problems.count == 1 && problems[0].hasPrefix("history: ") && problems[0].contains("differs"), "\(problems)")
        // An entry pointing at a transaction that never wrote the key is corruption, not an empty value.
        batch = WriteBatch()
        batch.put(l.families.history, l.keys.history("kv", "k", Height(blockNum: 0, txNum: 0)), [0])
        batch.put(l.families.history, l.keys.history("kv", "never", Height(blockNum: 0, txNum: 1)), [0])
        try kv.write(batch, sync: true)
        #expect(try l.state.history(namespace: "kv", key: "k").first?.value == bytes("one"))
        #expect(throws: StorageError.self) { try l.state.history(namespace: "kv", key: "never") }
    }

    @Test(arguments: Backend.allCases)
    func partialCompositeKeyQueries(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        let k1 = try CompositeKey.make(objectType: "pde~patient", attributes: ["P1", "T1"])
        let k2 = try CompositeKey.make(objectType: "pde~patient", attributes: ["P1", "T2"])
        let k3 = try CompositeKey.make(objectType: "pde~patient", attributes: ["P10", "T3"])
        try chain.commit(l, [.init(id: "a", writes: [(k1, "1"), (k2, "2"), (k3, "3"), ("plain", "p")])])
        let p1 = try CompositeKey.partial(objectType: "pde~patient", attributes: ["P1"])
        let page = try l.state.prefix(namespace: "kv", keyPrefix: p1, limit: 1)
        #expect(page.entries.map(\.key) == [k1])
        let rest = try l.state.prefix(namespace: "kv", keyPrefix: p1, limit: 10, bookmark: page.bookmark)
        #expect(rest.entries.map(\.key) == [k2])
        #expect(rest.bookmark == nil)
        let all = try l.state.prefix(
            namespace: "kv", keyPrefix: try CompositeKey.partial(objectType: "pde~patient"), limit: 10)
        #expect(all.entries.count == 3)
    }

    @Test(arguments: Backend.allCases)
    func duplicateTxIDIsRefusedAndChangesNothing(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        try chain.commit(l, [.init(id: "same", writes: [("k", "first")])])
        let before = l.info
        #expect(throws: BlockRejection.self) {
            try chain.commit(
                l, [.init(id: "fresh", writes: [("x", "1")]), .init(id: "same", writes: [("k", "second")])])
        }
        #expect(l.info == before)
        #expect(try value(l, "k") == "first")
        #expect(try value(l, "x") == nil)
        #expect(try l.transaction(id: "fresh") == nil)
        // Marked invalid by a validator, the duplicate is stored but neither indexed nor applied.
        try chain.commit(l, [.init(id: "same", writes: [("k", "second")], code: .duplicateTxid)])
        #expect(try l.transaction(id: "same") == TxLocation(blockNum: 0, txNum: 0, code: .valid))
        #expect(try value(l, "k") == "first")
    }

    @Test(arguments: Backend.allCases)
    func badBlocksAreRefusedWithReasonsAndChangeNothing(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        try chain.commit(l, [.init(id: "g", writes: [("k", "v")])])
        let before = l.info
        let good = try chain.block(on: l, [.init(id: "n", writes: [("k", "changed")])])

        var wrongNumber = good
        wrongNumber.header.number = 5
        var wrongPrev = good
        wrongPrev.header.previousHash = Data(LedgerHash.zero)
        var wrongData = good
        wrongData.data.envelopes[0] = Data(try chain.envelope(.init(id: "n", writes: [("k", "forged")])))
        var wrongCommit = good
        wrongCommit.metadata.commitHash = Data(repeating: 3, count: 32)
        let cases: [(Medledger_Block, String)] = [
            (wrongNumber, "does not follow the chain"), (wrongPrev, "previous hash"),
            (wrongData, "Merkle root"), (wrongCommit, "commit hash"),
        ]
        for (block, phrase) in cases {
            do {
                try l.commit(block)
                Issue.record("accepted a bad block (\(phrase))")
            } catch let e as BlockRejection {
                #expect(e.description.contains(phrase), "\(e)")
            }
            #expect(l.info == before)
            #expect(try value(l, "k") == "v")
        }

        let bytesGood: Bytes = try good.serializedBytes()
        #expect(throws: BlockRejection.self) {
            try l.commit(serializedBlock: Array(bytesGood.prefix(bytesGood.count / 2)))
        }
        #expect(throws: BlockRejection.self) { try l.commit(serializedBlock: [0x0a, 0xff, 0xff, 0xff, 0x0f]) }
        #expect(l.info == before)
        // The good block still goes in after all that.
        try l.commit(serializedBlock: bytesGood)
        #expect(try value(l, "k") == "changed")
    }

    @Test func oversizedBlocksAndEnvelopesAreRefused() throws {
        let kv = MemoryStore(columnFamilies: StorageLayout.columnFamilies)
        let store = try LedgerStore(
            kv: kv, limits: LedgerLimits(blockBytesMax: 2_000, envelopeBytesMax: 1_500, transactionsPerBlockMax: 100))
        let l = try store.createChannel("ch")
        let big = String(repeating: "x", count: 1_600)
        #expect(throws: BlockRejection.self) { try chain.commit(l, [.init(id: "big", writes: [("k", big)])]) }
        let medium = String(repeating: "y", count: 700)
        do {
            try chain.commit(l, [.init(id: "m1", writes: [("a", medium)]), .init(id: "m2", writes: [("b", medium)])])
            Issue.record("a block over blockBytesMax was accepted")
        } catch let BlockRejection.blockTooLarge(_, size, limit) {
            #expect(size > limit)
        }
        #expect(l.height == 0)
    }

    @Test(arguments: Backend.allCases)
    func channelsAreIsolatedAndNamed(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let a = try store.createChannel("alpha")
        let b = try store.createChannel("beta")
        try ChainBuilder(channel: "alpha").commit(a, [.init(id: "t", writes: [("k", "in alpha")])])
        #expect(try value(a, "k") == "in alpha")
        #expect(try value(b, "k") == nil)
        #expect(b.height == 0)
        // A transaction for another channel is refused.
        #expect(throws: BlockRejection.self) {
            try ChainBuilder(channel: "alpha").commit(b, [.init(id: "t2", writes: [("k", "x")])])
        }
        #expect(try store.channelNames() == ["alpha", "beta"])
        #expect(throws: LedgerStoreError.channelExists("alpha")) { try store.createChannel("alpha") }
        #expect(throws: LedgerStoreError.channelNotFound("gamma")) { try store.channel("gamma") }
        #expect(throws: LedgerStoreError.invalidChannelName("Bad Name")) { try store.createChannel("Bad Name") }
    }

    @Test(arguments: Backend.allCases)
    func stateSnapshotsDoNotSeeLaterCommits(_ backend: Backend) throws {
        let (store, dir) = try backend.makeLedgerStore()
        defer {
            store.close()
            _ = dir
        }
        let l = try store.createChannel("ch")
        try chain.commit(l, [.init(id: "1", writes: [("k", "old")])])
        let snap = try l.stateSnapshot()
        try chain.commit(l, [.init(id: "2", writes: [("k", "new")])])
        #expect(try snap.get(namespace: "kv", key: "k").map { String(decoding: $0.value, as: UTF8.self) } == "old")
        #expect(try value(l, "k") == "new")
    }

    @Test func sameBlocksGiveTheSameCommitHashOnTwoNodes() throws {
        let n1 = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        let n2Dir = TempDir("node2")
        let n2 = try LedgerStore.open(dataDir: n2Dir.path)
        defer { n2.close() }
        let a = try n1.createChannel("ch")
        let b = try n2.createChannel("ch")
        for i in 0..<5 {
            let block = try chain.block(
                on: a,
                [
                    .init(id: "tx\(i)", writes: [("k\(i % 2)", "v\(i)")]),
                    .init(id: "bad\(i)", writes: [("z", "no")], code: .mvccReadConflict),
                ])
            try a.commit(block)
            try b.commit(block)
        }
        #expect(a.info == b.info)
        // A node that validated one transaction differently ends with a different commit hash.
        let c = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies)).createChannel("ch")
        for n in 0..<5 {
            var block = try a.block(number: UInt64(n))!
            block.metadata.commitHash = Data()
            if n == 3 { block.metadata.validationCodes[1] = .valid }
            try c.commit(block)
        }
        #expect(c.info.tipHash == a.info.tipHash)
        #expect(c.info.commitHash != a.info.commitHash)
    }
}
