import Foundation
import LedgerCore
import LedgerCrypto
import LedgerRocksDB
import LedgerStorage
import Testing

/// A child process commits sample blocks as fast as it can and reports each block once its commit has
/// returned (durable). We SIGKILL it at random moments, reopen the ledger, and check every time that no
/// reported block was lost, the chain verifies, no torn block is visible, and the state equals a replay.
@Suite(.serialized) struct CrashTests {
    /// At least 50 in CI; `MEDLEDGER_CRASH_KILLS=500 swift test --filter CrashTests` for a longer run.
    static let kills = max(50, Int(ProcessInfo.processInfo.environment["MEDLEDGER_CRASH_KILLS"] ?? "") ?? 50)

    struct Durable: Equatable {
        var number: UInt64
        var headerHash: String
        var commitHash: String
    }

    static func parseDurable(_ text: String) -> [Durable] {
        // A line without its newline was cut by the kill mid-write: not a report.
        text.split(separator: "\n", omittingEmptySubsequences: true).dropLast(text.hasSuffix("\n") ? 0 : 1).compactMap {
            line in
            let f = line.split(separator: " ")
            guard f.count == 4, f[0] == "durable", let n = UInt64(f[1]) else { return nil }
            return Durable(number: n, headerHash: String(f[2]), commitHash: String(f[3]))
        }
    }

    @Test func sigkillDuringCommitsLosesNothing() throws {
        let scratch = ScratchDir("crash")
        let data = scratch.path + "/node"
        var rng = SystemRandomNumberGenerator()
        var totalDurable = 0
        var killedMidRun = 0
        var lastHeight: UInt64 = 0

        for round in 0..<Self.kills {
            let outPath = scratch.path + "/round-\(round).out"
            FileManager.default.createFile(atPath: outPath, contents: nil)
            let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
            let child = Process()
            child.executableURL = MedLedgerBinary.url
            child.arguments = [
                "ledger", "sample", "--data", data, "--channel", "crash", "--blocks", "0",
                "--seed", "\(round)", "--max-tx", "40", "--report-durable",
            ]
            child.standardOutput = outHandle
            child.standardError = FileHandle.nullDevice
            try child.run()
            // Anywhere from "still opening the database" to "hundreds of blocks in". On odd rounds the
            // kill comes only after the writer has reported a first durable block (a loaded machine can
            // take longer than any fixed delay just to start it), so every run kills mid-commit often.
            if round % 2 == 1 {
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline, child.isRunning,
                    (try? String(contentsOfFile: outPath, encoding: .utf8))?.isEmpty ?? true
                { usleep(5_000) }
            }
            let delay = UInt32.random(in: 20_000...400_000, using: &rng)
            usleep(delay)
            kill(child.processIdentifier, SIGKILL)
            child.waitForExit()
            try outHandle.close()
            if child.terminationReason == .uncaughtSignal {
                killedMidRun += 1
            } else {
                Issue.record("round \(round): writer exited by itself with status \(child.terminationStatus)")
            }

            let reported = Self.parseDurable(try String(contentsOfFile: outPath, encoding: .utf8))
            totalDurable += reported.count
            guard FileManager.default.fileExists(atPath: StorageLayout.databasePath(dataDir: data)) else { continue }

            let store = try LedgerStore.open(dataDir: data)
            defer { store.close() }
            guard let ledger = try? store.channel("crash") else {
                #expect(reported.isEmpty, "round \(round): blocks reported durable but the channel is gone")
                continue
            }
            let report = ChainVerifier(ledger: ledger).verify(checkState: true)
            #expect(report.problems == [], "round \(round) after \(delay) µs")
            #expect(
                ledger.height >= lastHeight, "round \(round): the chain shrank from \(lastHeight) to \(ledger.height)")
            for d in reported {
                let block = try #require(
                    try ledger.block(number: d.number), "round \(round): durable block \(d.number) lost")
                #expect(
                    Hex.encode(block.header.headerHash) == d.headerHash, "round \(round): block \(d.number) changed")
                #expect(
                    Hex.encode(block.metadata.commitHash) == d.commitHash,
                    "round \(round): commit hash of \(d.number) changed")
            }
            if let last = reported.last { #expect(ledger.height > last.number) }
            lastHeight = ledger.height
        }
        #expect(killedMidRun == Self.kills)
        #expect(totalDurable > Self.kills, "the writer hardly ever got a block in: the test proves little")
        print(
            "crash test: \(Self.kills) SIGKILLs, \(totalDurable) blocks reported durable, final height \(lastHeight), none lost"
        )
    }
}
