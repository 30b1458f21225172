import Foundation
import LedgerCore
import LedgerCrypto
import LedgerRocksDB
import Testing

@testable import LedgerStorage

@Suite struct LedgerCLITests {
    @Test func verifyPassesOnAFreshLedgerAndFailsOnATamperedBlock() throws {
        let dir = ScratchDir("cli-verify")
        let sample = try MedLedgerBinary.run([
            "ledger", "sample", "--data", dir.path, "--channel", "demo", "--blocks", "20", "--seed", "5",
        ])
        #expect(sample.status == 0, "\(sample.stderr)")

        let ok = try MedLedgerBinary.run(["ledger", "verify", "--data", dir.path, "--state"])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("channel demo: height 20"))
        #expect(ok.stdout.contains("OK"))

        // Flip one byte inside block 13's stored bytes, behind the ledger's back.
        do {
            let store = try LedgerStore.open(dataDir: dir.path)
            defer { store.close() }
            let blocks = try store.kv.columnFamily(StorageLayout.Family.blocks)
            let key: [UInt8] = [UInt8("demo".utf8.count)] + Array("demo".utf8) + BigEndian.bytes(13)
            var stored = try #require(try store.kv.get(blocks, key))
            stored[stored.count / 2] ^= 0x20
            var batch = WriteBatch()
            batch.put(blocks, key, stored)
            try store.kv.write(batch, sync: true)
        }
        let bad = try MedLedgerBinary.run(["ledger", "verify", "--data", dir.path])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("FAILED"))
        #expect(bad.stdout.contains("block 13"), "\(bad.stdout)")
    }

    /// `ledger verify`, `info` and `block` only look: every file and directory of the data directory
    /// keeps its size, modification time and bytes — also when the state savepoint is behind the tip,
    /// which a read-write open would replay (and write).
    @Test func verifyInfoAndBlockChangeNoFileEvenWithTheStateBehind() throws {
        let dir = ScratchDir("cli-read-only")
        try MedLedgerBinary.ok([
            "ledger", "sample", "--data", dir.path, "--channel", "demo", "--blocks", "12", "--seed", "3",
        ])
        let looks: [[String]] = [
            ["ledger", "verify", "--data", dir.path, "--state"], ["ledger", "verify", "--data", dir.path, "--json"],
            ["ledger", "info", "--data", dir.path], ["ledger", "block", "5", "--data", dir.path],
        ]
        func runAll() throws -> [String] {
            try looks.map { args in
                let r = try MedLedgerBinary.run(args)
                #expect(r.status == 0, "\(args): \(r.stdout)\(r.stderr)")
                return r.stdout
            }
        }
        let intact = try snapshot(dir.path)
        _ = try runAll()
        #expect(try snapshot(dir.path) == intact)

        // Drop the state, history and savepoint (as a rebuild does first), and leave it so.
        do {
            let store = try LedgerStore.open(dataDir: dir.path)
            defer { store.close() }
            let l = try store.channel("demo")
            try ChannelLedger.clearState(kv: store.kv, families: store.families, keys: l.keys)
        }
        let behind = try snapshot(dir.path)
        let out = try runAll()
        #expect(try snapshot(dir.path) == behind, "read-only commands wrote to a ledger whose state is behind")
        #expect(
            out[0].contains("OK") && out[0].contains("note: state savepoint is unset but the chain ends at block 11"),
            "\(out[0])")
        #expect(out[1].contains("\"notes\""))
        #expect(out[2].contains("note: the state is applied through no block"), "\(out[2])")
    }

    /// Path → size, mtime (ns) and SHA-256 of every file and directory under `root`.
    func snapshot(_ root: String) throws -> [String: String] {
        var out = [String: String]()
        for rel in [""] + (try FileManager.default.subpathsOfDirectory(atPath: root)).sorted() {
            let path = rel.isEmpty ? root : root + "/" + rel
            var st = stat()
            #expect(lstat(path, &st) == 0)
            let isDir = (st.st_mode & S_IFMT) == S_IFDIR
            let digest =
                isDir ? "" : Hex.encode(Digests.sha256(Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
            out[rel] =
                "\(isDir ? "dir" : "file") size \(st.st_size) mtime \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(digest)"
        }
        #expect(out.count > 5, "the snapshot sees RocksDB's files")
        return out
    }

    @Test func blockPrintsDecodedJSON() throws {
        let dir = ScratchDir("cli-block")
        _ = try MedLedgerBinary.run(["ledger", "sample", "--data", dir.path, "--blocks", "3"])
        let r = try MedLedgerBinary.run(["ledger", "block", "1", "--data", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["number"] as? Int == 1)
        #expect((json["headerHash"] as? String)?.count == 64)
        let txs = try #require(json["transactions"] as? [[String: Any]])
        #expect(!txs.isEmpty)
        #expect(txs[0]["txID"] is String)

        let missing = try MedLedgerBinary.run(["ledger", "block", "99", "--data", dir.path])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no block 99"))
    }

    @Test func clearErrorsForMissingOrBusyDirectories() throws {
        let dir = ScratchDir("cli-errors")
        let none = try MedLedgerBinary.run(["ledger", "verify", "--data", dir.path + "/nothing"])
        #expect(none.status != 0)
        #expect(none.stderr.contains("no ledger in"))

        _ = try MedLedgerBinary.run(["ledger", "sample", "--data", dir.path, "--blocks", "1"])
        let holder = try LedgerStore.open(dataDir: dir.path)
        defer { holder.close() }
        let busy = try MedLedgerBinary.run(["ledger", "verify", "--data", dir.path])
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("in use by another process"), "\(busy.stderr)")
    }

    @Test func valuesThatBeginWithADashAreValuesNotOptions() throws {
        // base64url PIDs and secrets begin with '-' one time in 64.
        let dir = ScratchDir("cli-dash")
        for args in [
            ["cert", "lookup", "--pid", "-_7tPID"], ["ca", "resolve-pid", "--pid", "-x", "--justification", "-why"],
            ["ca", "revoke", "--pid", "-x"],
        ] {
            let r = try MedLedgerBinary.run(args + ["--ca", "127.0.0.1:1", "--wallet", dir.path + "/none"])
            #expect(r.status != 0)
            #expect(!r.stderr.contains("Missing value"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("no wallet"), "\(args): \(r.stderr)")
        }
        let enroll = try MedLedgerBinary.run([
            "user", "enroll", "--ca", "127.0.0.1:1", "--ca-cert", dir.path + "/none.pem", "--id", "x", "--secret",
            "-s3cr3t", "--wallet", dir.path + "/w",
        ])
        #expect(!enroll.stderr.contains("Missing value"), "\(enroll.stderr)")
    }

    @Test func benchStoragePrintsItsTableAndJSON() throws {
        let small = ["bench", "storage", "--blocks", "2", "--reads", "2000", "--scans", "200"]
        let table = try MedLedgerBinary.run(small)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("commit blocks of 500 tx"))
        #expect(table.stdout.contains("point read"))
        #expect(table.stdout.contains("range scan of 100 keys"))
        #expect(table.stdout.contains("merkle proof build + verify"))
        let json = try MedLedgerBinary.run(small + ["--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.count >= 5)
        #expect(rows.allSatisfy { ($0["rate"] as? Double ?? 0) > 0 })
    }

    @Test func benchLoadReadsEachLevelAgainstTheSignatureBound() throws {
        let r = try MedLedgerBinary.run(["bench", "load", "--in-flight", "1,64", "--transactions", "64", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rows = try #require(report["rows"] as? [[String: Any]])
        func row(_ prefix: String) -> [String: Any]? {
            rows.first { ($0["operation"] as? String)?.hasPrefix(prefix) == true }
        }
        let bound = try #require(row("signature bound, kv (2 ×"))
        #expect((bound["rate"] as? Double ?? 0) > 0)
        let loaded = try #require(row("kv, 64 in flight"))
        #expect((loaded["rate"] as? Double ?? 0) > 0)
        let share = try #require(loaded["percentOfBound"] as? Double)
        #expect(share > 0 && share <= 100, "a level cannot beat its signatures: \(share) %")
        #expect(try #require(row("kv, 1 in flight"))["percentOfBound"] == nil)
        // One transaction at a time crosses three processes (proposal, envelope, block, commit event), so
        // each costs several context switches; counted from /proc, over every thread.
        let switches = try #require(row("kv, 1 in flight")?["switchesPerOp"] as? Double)
        #expect(switches > 2, "\(switches) context switches per transaction")
        // The ledger's bytes per transaction, read once RocksDB has settled, and the unflushed log's part.
        let ledger = try #require(row("peer ledger on disk per kv tx"))
        #expect((ledger["rate"] as? Double ?? 0) > 0)
        #expect((try #require(row("  of which write-ahead log"))["rate"] as? Double ?? 0) > 0)
        // And after the stopped peer's database is opened again (its recovery flushes the log).
        #expect((try #require(row("  after the peer restarts"))["rate"] as? Double ?? 0) > 0)
    }
}
