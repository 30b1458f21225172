import Foundation
import LedgerCore
import LedgerProtos
import LedgerRocksDB
import LedgerStorage

/// `medledger bench storage`: commit throughput with fsync, point reads, range scans and Merkle proofs
/// on a real RocksDB ledger, against the issue's targets.
public struct StorageBenchmark {
    public struct Parameters: Sendable {
        public var blocks = 100
        public var transactionsPerBlock = 500
        public var pointReads = 200_000
        public var rangeScans = 20_000
        public var rangeLength = 100
        public var merkleIterations = 2_000
        public var dataDir: String?

        public init() {}
    }

    public static let commitTarget = 50_000.0
    public static let pointReadTarget = 500_000.0
    public static let rangeScanTarget = 50_000.0

    let parameters: Parameters
    let progress: (String) -> Void

    public init(parameters: Parameters, progress: @escaping (String) -> Void = { _ in }) {
        self.parameters = parameters
        self.progress = progress
    }

    public func run() throws -> BenchReport {
        let p = parameters
        let dir =
            p.dataDir
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("medledger-bench-\(UUID().uuidString)")
            .path
        let ownsDir = p.dataDir == nil
        defer { if ownsDir { try? FileManager.default.removeItem(atPath: dir) } }

        let store = try LedgerStore.open(dataDir: dir)
        defer { store.close() }
        let ledger = try store.channelCreatingIfNeeded("bench")
        let startHeight = ledger.height
        func key(_ b: Int, _ t: Int) -> String { "bench-\(startHeight)-\(String(format: "%06d-%04d", b, t))" }

        var rng = SplitMix64(seed: 42)
        let envelopesPerBlock = try buildBlocks(key: key, rng: &rng)
        var rows = try [measureCommits(envelopesPerBlock, to: ledger)]

        progress("point reads")
        let state = ledger.state
        var readKeys = [String]()
        readKeys.reserveCapacity(4096)
        for _ in 0..<4096 {
            readKeys.append(
                key(Int.random(in: 0..<p.blocks, using: &rng), Int.random(in: 0..<p.transactionsPerBlock, using: &rng)))
        }
        rows.append(try measurePointReads(state, keys: readKeys))

        // Scans twice: right after the commits (recent blocks' state still in the memtable, a skiplist)
        // and after a flush (state in SST files, where most of a running node's data lives).
        rows += try measureScans(state, from: readKeys, "state in memtable", target: Self.rangeScanTarget)
        if let rocks = store.kv as? RocksDBStore {
            try rocks.flush()
            rows += try measureScans(state, from: readKeys, "state flushed to SST", target: Self.rangeScanTarget)
        }

        rows += try measureMerkleTrees(envelopesPerBlock[0])

        return BenchReport(
            title: "medledger bench storage — RocksDB ledger, one fsync per block",
            environment: [
                "data directory": dir + (ownsDir ? " (temporary, removed)" : ""),
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)",
                "blocks": "\(p.blocks) x \(p.transactionsPerBlock) tx, 32-byte values",
            ],
            rows: rows)
    }

    /// The workload namespace every benchmark transaction writes to and every read and scan reads.
    private static let namespace = "kv"

    /// Signs and serialises every block's envelopes before the timed commits.
    private func buildBlocks(key: (Int, Int) -> String, rng: inout SplitMix64) throws -> [[Bytes]] {
        let p = parameters
        // Build every block first: signing and serialising envelopes is the client's and orderer's
        // work, not the ledger's, so it stays out of the timed commit loop.
        let factory = SampleTransactionFactory(channel: "bench")
        progress("building \(p.blocks) blocks of \(p.transactionsPerBlock) signed transactions")
        var envelopesPerBlock = [[Bytes]]()
        for b in 0..<p.blocks {
            var envs = [Bytes]()
            envs.reserveCapacity(p.transactionsPerBlock)
            for t in 0..<p.transactionsPerBlock {
                let value = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
                envs.append(
                    try factory.envelope(
                        txID: UUID().uuidString, namespace: Self.namespace,
                        writes: [.init(key: key(b, t), value: value)]))
            }
            envelopesPerBlock.append(envs)
        }
        return envelopesPerBlock
    }

    /// Commits the prepared blocks one by one, each with its fsync, timing every commit.
    private func measureCommits(_ envelopesPerBlock: [[Bytes]], to ledger: ChannelLedger) throws -> BenchRow {
        let p = parameters
        progress("committing with fsync")
        var blockMicros = [Double]()
        let commitStart = now()
        for envs in envelopesPerBlock {
            let info = ledger.info
            let block = Medledger_Block.make(
                number: info.height, previousHash: info.tipHash, envelopes: envs,
                validationCodes: Array(repeating: .valid, count: envs.count))
            let t0 = now()
            try ledger.commit(block)
            blockMicros.append(Double(now() - t0) / 1000)
        }
        let commitSeconds = Double(now() - commitStart) / 1e9
        let txCount = p.blocks * p.transactionsPerBlock
        blockMicros.sort()
        return BenchRow(
            operation: "commit blocks of \(p.transactionsPerBlock) tx, 1 write each, fsync per block",
            count: txCount,
            seconds: commitSeconds, rate: Double(txCount) / commitSeconds, rateUnit: "tx/s",
            p50Micros: percentile(blockMicros, 0.5), p99Micros: percentile(blockMicros, 0.99),
            target: Self.commitTarget)
    }

    /// Reads committed keys by point lookup; every one must be found.
    private func measurePointReads(_ state: WorldStateReader, keys readKeys: [String]) throws -> BenchRow {
        let p = parameters
        var found = 0
        let readStart = now()
        for i in 0..<p.pointReads where try state.get(namespace: Self.namespace, key: readKeys[i & 4095]) != nil {
            found += 1
        }
        let readSeconds = Double(now() - readStart) / 1e9
        guard found == p.pointReads else {
            throw BenchError.inconsistent("only \(found) of \(p.pointReads) committed keys were found")
        }
        return BenchRow(
            operation: "point read (committed key)", count: p.pointReads, seconds: readSeconds,
            rate: Double(p.pointReads) / readSeconds, rateUnit: "reads/s", target: Self.pointReadTarget)
    }

    /// Range scans starting at committed keys: the scans' rate and the rate of the keys they return.
    private func measureScans(
        _ state: WorldStateReader, from readKeys: [String], _ label: String, target: Double?
    ) throws -> [BenchRow] {
        let p = parameters
        progress("range scans (\(label))")
        var scanned = 0
        let start = now()
        for i in 0..<p.rangeScans {
            let page = try state.range(
                namespace: Self.namespace, startKey: readKeys[i & 4095], endKey: "", limit: p.rangeLength)
            // Touch every key and value so the figure includes reading what the scan returned.
            for j in 0..<page.count {
                scanned += page.keyBytes(at: j).isEmpty || page.valueBytes(at: j).isEmpty ? 0 : 1
            }
        }
        let seconds = Double(now() - start) / 1e9
        return [
            BenchRow(
                operation: "range scan of \(p.rangeLength) keys, \(label)", count: p.rangeScans, seconds: seconds,
                rate: Double(p.rangeScans) / seconds, rateUnit: "scans/s", target: target),
            BenchRow(
                operation: "  keys returned by those scans", count: scanned, seconds: seconds,
                rate: Double(scanned) / seconds, rateUnit: "keys/s"),
        ]
    }

    /// Merkle trees over one block's envelopes: building them, then building and verifying proofs.
    private func measureMerkleTrees(_ envs: [Bytes]) throws -> [BenchRow] {
        let p = parameters
        progress("merkle proofs")
        let buildStart = now()
        var root = [UInt8]()
        for _ in 0..<max(1, p.merkleIterations / 10) { root = MerkleTree(leaves: envs).root }
        let builds = max(1, p.merkleIterations / 10)
        let buildSeconds = Double(now() - buildStart) / 1e9
        var rows = [
            BenchRow(
                operation: "merkle tree build, \(envs.count) leaves", count: builds, seconds: buildSeconds,
                rate: Double(builds) / buildSeconds, rateUnit: "trees/s", p50Micros: buildSeconds * 1e6 / Double(builds)
            )
        ]
        let tree = MerkleTree(leaves: envs)
        var proofMicros = [Double]()
        let proofStart = now()
        for i in 0..<p.merkleIterations {
            let leaf = i % envs.count
            let t0 = now()
            guard let proof = tree.proof(forLeaf: leaf), proof.verify(leaf: envs[leaf], root: root) else {
                throw BenchError.inconsistent("merkle proof for leaf \(leaf) did not verify")
            }
            proofMicros.append(Double(now() - t0) / 1000)
        }
        let proofSeconds = Double(now() - proofStart) / 1e9
        proofMicros.sort()
        rows.append(
            BenchRow(
                operation: "merkle proof build + verify, \(envs.count)-tx block", count: p.merkleIterations,
                seconds: proofSeconds,
                rate: Double(p.merkleIterations) / proofSeconds, rateUnit: "proofs/s",
                p50Micros: percentile(proofMicros, 0.5), p99Micros: percentile(proofMicros, 0.99)))
        return rows
    }
}

public enum BenchError: Error, CustomStringConvertible {
    case inconsistent(String)

    public var description: String {
        switch self {
        case .inconsistent(let m): return "benchmark found an inconsistency: \(m)"
        }
    }
}
