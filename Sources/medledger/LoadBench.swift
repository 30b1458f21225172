import ArgumentParser
import Foundation
import LedgerBench
import LedgerClient
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerRocksDB
import LedgerStorage
import MedRecords
import Synchronization

/// `medledger bench load`: a local network of real processes (the SA's node as CA and solo
/// orderer, one hospital peer), mutual TLS everywhere, fsync on every block, and a client in this
/// process submitting through the gateway at several in-flight levels.
struct LoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "End-to-end transaction throughput and latency (submit → committed) at several in-flight levels.")

    @Option(help: "Transactions per in-flight level.") var transactions = 10_000
    @Option(help: "In-flight levels, comma-separated.") var inFlight = "1,64,250,500,1000"
    @Option(
        help:
            "kv (32-byte values under unique keys), pde (signed P_DE index records) or read (kv gets, evaluated by the peer without ordering)."
    )
    var workload = "kv"
    @Option(
        name: .customLong("repeat"),
        help: "Measured runs at each in-flight level; the row shows their median and spread.") var repeats = 1
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Working directory (default: a temporary one, removed afterwards).") var dir: String?
    @Option(help: "The channel's max_message_count (transactions per block at most).") var blockMaxTx = 1000
    @Option(
        help:
            "1: the solo orderer; 3: a raft cluster of three hospitals' consenters, measured side by side with solo in the same run."
    )
    var orderers = 1

    func run() async throws {
        let levels = try validatedLevels()
        let root = dir ?? NSTemporaryDirectory() + "medledger-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }

        guard orderers == 1 || orderers == 3 else { throw ValidationError("--orderers must be 1 or 3") }
        guard orderers == 1 || workload == "kv" else { throw ValidationError("--orderers 3 runs the kv workload") }
        // Timed first, on a machine not yet busy with the network, then again after each level's runs.
        let bounds = BoundSamples(try SignatureBound.measure())
        var rows = [BenchRow]()
        for kind in orderers == 3 ? [1, 3] : [1] {
            rows += try await measureNetwork(kind: kind, root: root, levels: levels, bounds: bounds, say: say)
        }
        if orderers == 3 {
            // Raft against solo at each level, from this run's own figures.
            appendRaftAgainstSolo(to: &rows, levels: levels)
        }
        if let row = Self.signatureBoundRow(bounds.median, workload: workload) { rows.append(row) }
        let report = makeReport(rows)
        print(json ? try report.json() : report.table())
    }

    /// The in-flight levels, once the options are checked (all but `--orderers`, checked later).
    private func validatedLevels() throws -> [Int] {
        let levels = inFlight.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }), transactions > 0 else {
            throw ValidationError("--in-flight must list positive numbers and --transactions must be positive")
        }
        guard ["kv", "pde", "read"].contains(workload) else {
            throw ValidationError("--workload must be kv, pde or read")
        }
        guard (1...20).contains(repeats) else { throw ValidationError("--repeat must be 1…20") }
        guard (1...10_000).contains(blockMaxTx) else { throw ValidationError("--block-max-tx must be 1…10000") }
        return levels
    }

    /// One network's rows: every level on a new solo (`kind` 1) or raft (3) network, and the bytes per written tx.
    private func measureNetwork(
        kind: Int, root: String, levels: [Int], bounds: BoundSamples, say: @escaping (String) -> Void
    ) async throws -> [BenchRow] {
        let netRoot = root + (kind == 3 ? "/raft" : "/solo")
        try FileManager.default.createDirectory(atPath: netRoot, withIntermediateDirectories: true)
        say("starting a local \(kind == 3 ? "raft (3 consenters)" : "solo") network in \(netRoot)")
        // Raft: hospital-a runs the peer and a consenter, -b and -c a consenter each, so that the two
        // networks differ only in their ordering.
        let net = try await LocalNetwork.start(
            in: netRoot, blockMaxTx: blockMaxTx, orderers: kind, peersOnAll: false, log: say)
        defer { net.stop() }
        let gateway = try await Gateway.connect(
            wallet: try Wallet.open(net.submitterWallet(workload)), peer: net.peer, channel: "records")
        defer { gateway.close() }
        let pde = workload == "pde" ? try await PDEWorkload.prepare(net: net, gateway: gateway) : nil
        let readKeys =
            workload == "read"
            ? try await Self.preload(gateway, keys: min(transactions, Self.readKeysMax), say: say) : 0
        let label = orderers == 3 ? (kind == 3 ? "raft ×3, " : "solo, ") : ""
        let ledger = StorageLayout.databasePath(dataDir: net.root + "/hospital-a/nodes/peer0/data")
        let bytesBefore = Self.directoryBytes(ledger)
        let measured = await measure(
            net: net, gateway: gateway, pde: pde, readKeys: readKeys, levels: levels, label: label, raft: kind == 3,
            bounds: bounds, say: say)
        guard workload != "read", kind == 1 else { return measured }
        let committed = measured.reduce(0) { $0 + $1.count * repeats }
        let bytesAfter = await Self.settledDirectoryBytes(ledger)
        let logBytes = Self.directoryBytes(ledger, suffix: ".log")
        // The client's streams are told to end first: a node still serving them drains them at SIGTERM.
        gateway.close()
        net.stop()
        var rows =
            measured + [
                Self.bytesPerTransaction(workload, before: bytesBefore, after: bytesAfter, committed: committed),
                Self.unflushedLogPerTransaction(logBytes, committed: committed),
            ]
        do {
            let restarted = try await Self.bytesAfterRecovery(dataDir: net.root + "/hospital-a/nodes/peer0/data")
            rows.append(Self.afterRecoveryPerTransaction(restarted, committed: committed))
        } catch {
            say("the peer's database did not reopen for the after-restart row: \(error)")
        }
        return rows
    }

    /// Appends, for each level, raft's throughput as a share of solo's (rows of both must be there).
    private func appendRaftAgainstSolo(to rows: inout [BenchRow], levels: [Int]) {
        for level in levels {
            guard let solo = rows.first(where: { $0.operation == "solo, \(workload), \(level) in flight" }),
                let raft = rows.first(where: { $0.operation == "raft ×3, \(workload), \(level) in flight" }),
                solo.rate > 0
            else { continue }
            rows.append(
                BenchRow(
                    operation: "raft/solo throughput, \(level) in flight", count: raft.count, seconds: raft.seconds,
                    rate: raft.rate / solo.rate * 100,
                    rateUnit: "% of solo", target: level == 500 ? 80 : nil))
        }
    }

    /// What the workload's signatures alone allow on this machine: no level can beat it.
    static func signatureBoundRow(_ bound: SignatureBound, workload: String) -> BenchRow? {
        guard let cost = SignatureBound.cost(of: workload) else { return nil }
        let timing = String(
            format: "%d × %.1f µs sign + %d × %.1f µs verify, %d cores", cost.signatures, bound.signMicros,
            cost.verifications, bound.verifyMicros, bound.cores)
        return BenchRow(
            operation: "signature bound, \(workload) (\(timing))", count: 0, seconds: 0,
            rate: bound.operationsPerSecond(cost), rateUnit: workload == "read" ? "reads/s" : "tx/s")
    }

    /// The report of all rows, its title and environment describing this run's options.
    private func makeReport(_ rows: [BenchRow]) -> BenchReport {
        BenchReport(
            title:
                "medledger bench load (\(workload); mutual TLS, 1 endorsement, fsync per block at orderer and peer; client, orderer and peer are separate processes on this machine\(orderers == 3 ? "; raft ×3: three consenters (hospital-a's node also runs the one peer, as the SA's node does for solo); raft/solo is this run's ratio" : ""))",
            environment: [
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)", "transactions per level": "\(transactions)",
                "runs per level": "\(repeats) (median; spread in brackets)",
                "block": "at most \(blockMaxTx) tx, cut as soon as the orderer is idle",
                "cpu/op": "user+system CPU of client, orderer and peer per committed transaction",
                "switches/op":
                    "context switches (voluntary and involuntary) of the client's, orderer's and peer's threads per operation (committed transaction, or answered evaluation): how often the work moved between threads",
                "signature bound":
                    "the workload's P-256 signatures and verifications (every process's; verifications with the key's table, as nodes check the keys in steady use), timed in this process before the run and after each level (the row: their median), on all cores with nothing else to do: no level can beat it; 'of bound' is a level's rate against the bound timed just after its runs",
            ],
            rows: rows)
    }

    /// One measured run: committed (or, for reads, answered) operations, wall time, their latencies
    /// (ascending, µs) and the CPU all processes spent.
    struct Run {
        var ok: Int
        var seconds: Double
        var latencies: [Double]
        var cpu: Double
        var switches: Double
    }

    /// `repeats` runs of `transactions` operations at each in-flight level; one row per level, the
    /// median of each figure across the runs.
    func measure(
        net: LocalNetwork, gateway: Gateway, pde: PDEWorkload?, readKeys: Int, levels: [Int], label: String, raft: Bool,
        bounds: BoundSamples? = nil, say: (String) -> Void
    ) async -> [BenchRow] {
        var rows = [BenchRow]()
        let cost = SignatureBound.cost(of: workload)
        for level in levels {
            var runs = [Run]()
            for n in 0..<repeats {
                say(
                    "\(transactions) \(workload) \(workload == "read" ? "evaluations" : "transactions") at \(level) in flight\(repeats > 1 ? ", run \(n + 1) of \(repeats)" : "")…"
                )
                runs.append(await run(net: net, gateway: gateway, pde: pde, readKeys: readKeys, level: level, say: say))
            }
            let rates = runs.map { Double($0.ok) / $0.seconds }
            let rate = median(rates) ?? 0
            let kv = workload == "kv" && !raft
            // Throughput against what the signatures allow, timed just after the runs (the machine's speed
            // drifts by tens of percent within minutes); meaningless at one in flight (latency-bound), and
            // not given for raft, whose followers check envelopes and blocks again (more than the count).
            let allowed =
                level >= 64 && !raft ? bounds?.sample().flatMap { b in cost.map { b.operationsPerSecond($0) } } : nil
            rows.append(
                BenchRow(
                    operation: "\(label)\(workload), \(level) in flight", count: runs.map(\.ok).min() ?? 0,
                    seconds: median(runs.map(\.seconds)) ?? 0,
                    rate: rate, rateUnit: workload == "read" ? "reads/s" : "tx/s",
                    p50Micros: median(runs.compactMap { percentile($0.latencies, 0.5) }),
                    p99Micros: median(runs.compactMap { percentile($0.latencies, 0.99) }),
                    target: level == 500 && kv
                        ? 5500
                        : level >= 64 && workload == "read" ? 30_000 : level == 500 && workload == "pde" ? 3800 : nil,
                    cpuMicrosPerOp: median(runs.filter { $0.ok > 0 }.map { $0.cpu * 1e6 / Double($0.ok) }),
                    p50TargetMicros: level == 1 && kv ? 2500 : nil,
                    runRates: repeats > 1 ? rates : nil,
                    percentOfBound: allowed.map { rate / $0 * 100 },
                    switchesPerOp: median(runs.filter { $0.ok > 0 }.map { $0.switches / Double($0.ok) })))
        }
        return rows
    }

    /// `transactions` operations with `level` of them in flight.
    func run(
        net: LocalNetwork, gateway: Gateway, pde: PDEWorkload?, readKeys: Int, level: Int, say: (String) -> Void
    ) async -> Run {
        let cpuBefore = net.cpuSeconds() + LocalNetwork.selfCPUSeconds()
        let (threadsBefore, selfBefore) = (net.threadSwitches(), LocalNetwork.selfContextSwitches())
        let state = LoadState()
        let started = DispatchTime.now().uptimeNanoseconds
        let count = transactions
        let runID = UUID().uuidString.prefix(8)
        let workload = self.workload
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<min(level, count) {
                group.addTask {
                    while true {
                        let i = state.next.add(1, ordering: .relaxed).oldValue
                        guard i < count else { return }
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        do {
                            let valid: Bool
                            let code: String
                            if workload == "read" {
                                let r = try await gateway.evaluate(
                                    chaincode: "kv", function: "get", byteArgs: [Self.readKey(i % readKeys)])
                                (valid, code) = (
                                    r.status == 200 && r.payload.count == 32,
                                    "status \(r.status), \(r.payload.count) bytes"
                                )
                            } else if let pde {
                                let r = try await gateway.submit(
                                    chaincode: "medrecords", function: "putIndexRecord", try pde.record(i))
                                (valid, code) = (r.isValid, "\(r.code)")
                            } else {
                                let r = try await gateway.submit(
                                    chaincode: "kv", function: "put",
                                    byteArgs: [Array("bench-\(runID)-\(level)-\(i)".utf8), Self.randomValue()])
                                (valid, code) = (r.isValid, "\(r.code)")
                            }
                            if valid {
                                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000
                                state.latencies.withLock { $0.append(dt) }
                            } else {
                                state.failures.withLock { $0[code, default: 0] += 1 }
                            }
                        } catch {
                            state.failures.withLock { $0["\(error)".prefix(120).description, default: 0] += 1 }
                        }
                    }
                }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let cpu = net.cpuSeconds() + LocalNetwork.selfCPUSeconds() - cpuBefore
        let switches =
            LocalNetwork.switches(net.threadSwitches(), since: threadsBefore) + LocalNetwork.selfContextSwitches()
            - selfBefore
        for (why, n) in state.failures.withLock({ $0 }) { say("  \(n) failed: \(why)") }
        let sorted = state.latencies.withLock { $0.sorted() }
        return Run(ok: sorted.count, seconds: seconds, latencies: sorted, cpu: cpu, switches: switches)
    }

    /// 32 random bytes in one system call: the client's CPU counts in every row.
    static func randomValue() -> [UInt8] { RandomBytes.make(count: 32) }

    // MARK: - The read workload and the ledger's size

    /// Keys the read workload reads, written (unmeasured) before it starts.
    static let readKeysMax = 5_000
    static func readKey(_ i: Int) -> [UInt8] { Array("bench-read-\(i)".utf8) }

    static func preload(_ gateway: Gateway, keys: Int, say: (String) -> Void) async throws -> Int {
        say("writing \(keys) keys for the read workload…")
        let state = LoadState()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<min(500, keys) {
                group.addTask {
                    while true {
                        let i = state.next.add(1, ordering: .relaxed).oldValue
                        guard i < keys else { return }
                        let r = try await gateway.submit(
                            chaincode: "kv", function: "put", byteArgs: [readKey(i), randomValue()])
                        guard r.isValid else { throw CLIError("preloading key \(i) failed: \(r.code)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        return keys
    }

    /// Bytes of the regular files under `path` (only those whose name ends in `suffix`, if given),
    /// without RocksDB's own text log (`LOG`, and `LOG.old.*` after each start): it records what the
    /// database did, holds no ledger data, and would charge the restart row with one more copy.
    static func directoryBytes(_ path: String, suffix: String? = nil) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let name = walker.nextObject() as? String {
            if let suffix, !name.hasSuffix(suffix) { continue }
            if name == "LOG" || name.hasPrefix("LOG.old.") { continue }
            guard let a = try? FileManager.default.attributesOfItem(atPath: path + "/" + name),
                a[.type] as? FileAttributeType == .typeRegular
            else { continue }
            total += a[.size] as? Int ?? 0
        }
        return total
    }

    /// The directory's size once RocksDB's background work is done with it: a flush still running
    /// holds both the log it empties and the tables it writes (measured once at 2.8 × the settled
    /// size). Settled means two readings 500 ms apart agree; gives up after 15 s with the last.
    static func settledDirectoryBytes(_ path: String) async -> Int {
        var last = directoryBytes(path)
        for _ in 0..<30 {
            try? await Task.sleep(for: .milliseconds(500))
            let now = directoryBytes(path)
            if now == last { return now }
            last = now
        }
        return last
    }

    /// The issue's target (500 bytes) is for kv's 32-byte values; a P_DE transaction carries a signed
    /// index record of about 2.4 KB, so its row has no target.
    /// The peer's ledger directory once the stopped peer's database has been opened again, as the
    /// peer's next start does: recovery flushes the log's transactions into compressed tables and
    /// deletes the log. Unlike the "as kept" row, this does not depend on where in the flush cycle the
    /// run ended.
    static func bytesAfterRecovery(dataDir: String) async throws -> Int {
        try LedgerStore.open(dataDir: dataDir).close()
        return await settledDirectoryBytes(StorageLayout.databasePath(dataDir: dataDir))
    }

    /// The whole directory, the network's set-up included (a few kilobytes: a little high for a short
    /// run): the directory measured before the run holds the set-up's log uncompressed, so subtracting
    /// it would understate.
    static func afterRecoveryPerTransaction(_ bytes: Int, committed: Int) -> BenchRow {
        BenchRow(
            operation: "  after the peer restarts (its recovery flushes the log into tables)", count: committed,
            seconds: 0, rate: committed > 0 ? Double(bytes) / Double(committed) : 0, rateUnit: "bytes/tx")
    }

    static func bytesPerTransaction(_ workload: String, before: Int, after: Int, committed: Int) -> BenchRow {
        BenchRow(
            operation: "peer ledger on disk per \(workload) tx (RocksDB as kept, no outside compaction)",
            count: committed, seconds: 0,
            rate: committed > 0 ? Double(after - before) / Double(committed) : 0, rateUnit: "bytes/tx",
            rateAtMost: workload == "kv" ? 500 : nil)
    }

    /// The part of the row above still in the write-ahead log: the transactions since the last flush,
    /// uncompressed (with the network's set-up, if nothing has been flushed since; a short run's figure
    /// is then a little high). It rises and falls with the flush cycle (up to `walBytesMax`), so a run's length
    /// decides where in the cycle its figure lands.
    static func unflushedLogPerTransaction(_ bytes: Int, committed: Int) -> BenchRow {
        BenchRow(
            operation: "  of which write-ahead log not yet flushed", count: committed, seconds: 0,
            rate: committed > 0 ? Double(bytes) / Double(committed) : 0, rateUnit: "bytes/tx")
    }
}

/// The signature bound as timed before the run and after each level: the latest for a level's row,
/// their median for the table's bound row.
final class BoundSamples {
    private(set) var all: [SignatureBound]

    init(_ first: SignatureBound) { all = [first] }

    /// Times the bound again now; nil if that failed (the row then shows no share).
    func sample() -> SignatureBound? {
        guard let b = try? SignatureBound.measure() else { return nil }
        all.append(b)
        return b
    }

    var median: SignatureBound {
        SignatureBound(
            signMicros: LedgerBench.median(all.map(\.signMicros)) ?? 0,
            verifyMicros: LedgerBench.median(all.map(\.verifyMicros)) ?? 0, cores: all[0].cores)
    }
}

/// What the submitting tasks of one level share.
final class LoadState: Sendable {
    let next = Atomic<Int>(0)
    let latencies = Mutex([Double]())
    let failures = Mutex([String: Int]())
}

/// Signed P_DE records for one treatment: the doctor submits, the patient and doctor sign.
struct PDEWorkload: Sendable {
    let tID: String
    let patient: Wallet
    let doctor: Wallet
    let patientKey: P256Key
    let doctorKey: P256Key
    let patientCert: String
    let doctorCert: String

    typealias P256Key = LedgerIdentity.SigningIdentity

    static func prepare(net: LocalNetwork, gateway: Gateway) async throws -> PDEWorkload {
        let patient = try Wallet.open(net.root + "/patient")
        let doctor = try Wallet.open(net.root + "/doctor")
        let admin = try await Gateway.connect(
            wallet: try Wallet.open(net.root + "/hospital-a/admin"), peer: net.peer, channel: "records")
        defer { admin.close() }
        let req = CreateTreatmentRequest(patientPID: patient.info.pid, doctorPID: doctor.info.pid)
        let r = try await admin.submit(
            chaincode: "medrecords", function: "createTreatment", byteArgs: [Array(try JSONEncoder().encode(req))])
        guard r.isValid, let t = try JSONSerialization.jsonObject(with: Data(r.result.payload)) as? [String: Any],
            let tID = t["t_id"] as? String
        else {
            throw CLIError("createTreatment failed: \(r.code) \(r.result.text)")
        }
        let p = try SigningIdentity.load(certificatePath: patient.signingCertPath, keyPath: patient.signingKeyPath)
        let d = try SigningIdentity.load(certificatePath: doctor.signingCertPath, keyPath: doctor.signingKeyPath)
        return PDEWorkload(
            tID: tID, patient: patient, doctor: doctor, patientKey: p, doctorKey: d, patientCert: p.certificatePEM,
            doctorCert: d.certificatePEM)
    }

    /// Record `i`: a fresh ciphertext digest, signed by both.
    func record(_ i: Int) throws -> ProposalInputs {
        let digest = IndexRecordSigning.digestHex(ofCiphertext: Array("ciphertext \(i) \(UUID())".utf8))
        let url = "objstore://hospital-a/bench/\(i)"
        let req = PutIndexRecordRequest(
            tID: tID, url: url, digest: digest,
            patientSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: patientKey.key),
            doctorSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: doctorKey.key),
            patientCert: patientCert, doctorCert: doctorCert)
        return try req.proposalInputs()
    }
}
