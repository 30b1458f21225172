import ArgumentParser
import Foundation
import LedgerBench
import LedgerCore
import LedgerCrypto
import LedgerRocksDB
import LedgerStorage

struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract:
            "Inspect, verify and repair a node's ledger data directory, or write sample chains (offline: stop the node first).",
        subcommands: [Verify.self, Block.self, Info.self, Sample.self, RebuildState.self])
}

struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "The node's data directory.")
    var data: String

    @Option(name: .long, help: "Channel name (default: the only channel in the ledger).")
    var channel: String?

    func openStore(create: Bool = false) throws -> LedgerStore {
        if !create { try requireLedger() }
        return try LedgerStore.open(dataDir: data)
    }

    /// For commands that only look: read-only RocksDB and no recovery, so not a byte of the directory
    /// changes (a state savepoint behind the tip is reported, not replayed).
    func openStoreReadOnly() throws -> LedgerStore {
        try requireLedger()
        return try LedgerStore.openReadOnly(dataDir: data)
    }

    private func requireLedger() throws {
        guard FileManager.default.fileExists(atPath: StorageLayout.databasePath(dataDir: data)) else {
            throw CLIError("no ledger in \(data) (expected \(StorageLayout.databasePath(dataDir: data)))")
        }
    }

    func channelNames(in store: LedgerStore) throws -> [String] {
        if let channel { return [channel] }
        let names = try store.channelNames()
        guard !names.isEmpty else { throw CLIError("the ledger in \(data) has no channels") }
        return names
    }

    func singleChannel(in store: LedgerStore) throws -> ChannelLedger {
        let names = try channelNames(in: store)
        guard names.count == 1 else {
            throw ValidationError("the ledger has several channels (\(names.joined(separator: ", "))): pass --channel")
        }
        return try store.channel(names[0])
    }
}

extension LedgerCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Walk the chain: recheck hash links, Merkle roots, commit hashes and indexes; print height and tip hash.",
            discussion: "Exit status 0 when every channel checked is intact, 1 when a problem was found.")

        @OptionGroup var options: DataOptions
        @Flag(name: .long, help: "Also replay the chain and compare the whole world state and history with it.")
        var state = false
        @Flag(name: .long, help: "Print the report as JSON.")
        var json = false

        func run() throws {
            let store = try options.openStoreReadOnly()
            defer { store.close() }
            var reports = [ChainReport]()
            for name in try options.channelNames(in: store) {
                reports.append(ChainVerifier(ledger: try store.channel(name)).verify(checkState: state))
            }
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(reports), as: UTF8.self))
            } else {
                for r in reports {
                    print(
                        "channel \(r.channel): height \(r.height), tip hash \(r.tipHash), commit hash \(r.commitHash)")
                    if r.isValid {
                        print(
                            "  OK: chain links, Merkle roots, commit hashes and indexes verified\(r.stateChecked ? "; state and history equal a replay" : "")"
                        )
                    } else {
                        print("  FAILED: \(r.problems.count) problem(s)")
                        for p in r.problems { print("  - \(p)") }
                    }
                    for n in r.notes { print("  note: \(n)") }
                }
            }
            if reports.contains(where: { !$0.isValid }) { throw ExitCode(1) }
        }
    }

    struct Block: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print block N as JSON.")

        @Argument(help: "Block number.")
        var number: UInt64
        @OptionGroup var options: DataOptions

        func run() throws {
            let store = try options.openStoreReadOnly()
            defer { store.close() }
            let ledger = try options.singleChannel(in: store)
            guard let block = try ledger.block(number: number) else {
                throw CLIError("channel \(ledger.channel) has no block \(number) (height \(ledger.height))")
            }
            print(try BlockJSON.render(block))
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the channels with their height, tip hash and commit hash.")

        @OptionGroup var options: DataOptions

        func run() throws {
            let store = try options.openStoreReadOnly()
            defer { store.close() }
            for name in try options.channelNames(in: store) {
                let ledger = try store.channel(name)
                let info = ledger.info
                print(
                    "\(name)\theight \(info.height)\ttip \(Hex.encode(info.tipHash))\tcommit \(Hex.encode(info.commitHash))"
                )
                let savepoint = try ledger.stateSavepoint()
                if info.height > 0, savepoint.map({ $0 < info.height - 1 }) ?? true {
                    print(
                        "  note: the state is applied through \(savepoint.map { "block \($0)" } ?? "no block"); the rest is replayed when the node next opens the ledger"
                    )
                }
            }
        }
    }

    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append deterministic sample blocks to a channel (creating it), for demos and crash tests.",
            discussion:
                "With --report-durable, prints `durable N HEADER_HASH COMMIT_HASH` once block N is on stable storage.")

        @OptionGroup var options: DataOptions
        @Option(help: "Blocks to append; 0 appends until the process is stopped.")
        var blocks = 10
        @Option(help: "Seed of the sample content.")
        var seed: UInt64 = 1
        @Option(help: "Most transactions per block (at least 1).")
        var maxTx = 20
        @Flag(help: "Print a line per durable block.")
        var reportDurable = false

        func run() throws {
            guard maxTx >= 1 else { throw ValidationError("--max-tx must be at least 1") }
            guard blocks >= 0 else { throw ValidationError("--blocks must be 0 or more") }
            let store = try options.openStore(create: true)
            defer { store.close() }
            let ledger = try store.channelCreatingIfNeeded(options.channel ?? "sample")
            let chain = SampleChain(channel: ledger.channel, seed: seed, transactionsPerBlock: 1...maxTx)
            let out = FileHandle.standardOutput
            try chain.extend(ledger, count: blocks) { r in
                if reportDurable {
                    // One write(2) per line, after the synced commit returned: a line seen is a block durable.
                    out.write(
                        Data("durable \(r.blockNumber) \(Hex.encode(r.headerHash)) \(Hex.encode(r.commitHash))\n".utf8))
                }
            }
            let info = ledger.info
            if !reportDurable {
                print("channel \(ledger.channel): height \(info.height), tip hash \(Hex.encode(info.tipHash))")
            }
        }
    }

    struct RebuildState: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rebuild-state",
            abstract: "Drop a channel's world state and history and rebuild them from the block store.")

        @OptionGroup var options: DataOptions

        func run() throws {
            let store = try options.openStore()
            defer { store.close() }
            let names = try options.channelNames(in: store)
            guard names.count == 1 else {
                throw ValidationError(
                    "the ledger has several channels (\(names.joined(separator: ", "))): pass --channel")
            }
            // Not through singleChannel: opening runs recovery, which refuses a state ahead of the blocks.
            let ledger = try store.rebuildState(channel: names[0])
            print("channel \(ledger.channel): state rebuilt from \(ledger.height) blocks")
        }
    }
}
