import ArgumentParser
import Foundation
import LedgerBench
import LedgerClient
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
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
    @Option(help: "kv (32-byte values under unique keys) or pde (signed P_DE index records).") var workload = "kv"
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Working directory (default: a temporary one, removed afterwards).") var dir: String?
    @Option(help: "The channel's max_message_count (transactions per block at most).") var blockMaxTx = 1000
    @Option(help: "1: the solo orderer; 3: a raft cluster of three hospitals' consenters, measured side by side with solo in the same run.")
    var orderers = 1

    func run() async throws {
        let levels = inFlight.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }), transactions > 0 else { throw ValidationError("--in-flight must list positive numbers and --transactions must be positive") }
        guard ["kv", "pde"].contains(workload) else { throw ValidationError("--workload must be kv or pde") }
        guard (1...10_000).contains(blockMaxTx) else { throw ValidationError("--block-max-tx must be 1…10000") }
        let root = dir ?? NSTemporaryDirectory() + "medledger-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }

        guard orderers == 1 || orderers == 3 else { throw ValidationError("--orderers must be 1 or 3") }
        guard orderers == 1 || workload == "kv" else { throw ValidationError("--orderers 3 runs the kv workload") }
        var rows = [BenchRow]()
        for kind in orderers == 3 ? [1, 3] : [1] {
            let netRoot = root + (kind == 3 ? "/raft" : "/solo")
            try FileManager.default.createDirectory(atPath: netRoot, withIntermediateDirectories: true)
            say("starting a local \(kind == 3 ? "raft (3 consenters)" : "solo") network in \(netRoot)")
            // Raft: hospital-a runs the peer and a consenter, -b and -c a consenter each, so that the two
            // networks differ only in their ordering.
            let net = try await LocalNetwork.start(in: netRoot, blockMaxTx: blockMaxTx, orderers: kind, peersOnAll: false, log: say)
            defer { net.stop() }
            let gateway = try await Gateway.connect(wallet: try Wallet.open(net.submitterWallet(workload)), peer: net.peer, channel: "records")
            defer { gateway.close() }
            let pde = workload == "pde" ? try await PDEWorkload.prepare(net: net, gateway: gateway) : nil
            let label = orderers == 3 ? (kind == 3 ? "raft ×3, " : "solo, ") : ""
            rows += await measure(net: net, gateway: gateway, pde: pde, levels: levels, label: label, raft: kind == 3, say: say)
        }
        if orderers == 3 {
            // Raft against solo at each level, from this run's own figures.
            for level in levels {
                guard let solo = rows.first(where: { $0.operation == "solo, \(workload), \(level) in flight" }),
                      let raft = rows.first(where: { $0.operation == "raft ×3, \(workload), \(level) in flight" }), solo.rate > 0 else { continue }
                rows.append(BenchRow(
                    operation: "raft/solo throughput, \(level) in flight", count: raft.count, seconds: raft.seconds, rate: raft.rate / solo.rate * 100,
                    rateUnit: "% of solo", target: level == 500 ? 80 : nil))
            }
        }
        let report = BenchReport(
            title: "medledger bench load (\(workload); mutual TLS, 1 endorsement, fsync per block at orderer and peer; client, orderer and peer are separate processes on this machine\(orderers == 3 ? "; raft ×3: three consenters (hospital-a's node also runs the one peer, as the SA's node does for solo); raft/solo is this run's ratio" : ""))",
            environment: ["cores": "\(ProcessInfo.processInfo.activeProcessorCount)", "transactions per level": "\(transactions)", "block": "at most \(blockMaxTx) tx, cut as soon as the orderer is idle", "cpu/op": "user+system CPU of client, orderer and peer per committed transaction"],
            rows: rows)
        print(json ? try report.json() : report.table())
    }

    /// Runs `transactions` submissions at each in-flight level; one row per level.
    func measure(net: LocalNetwork, gateway: Gateway, pde: PDEWorkload?, levels: [Int], label: String, raft: Bool, say: (String) -> Void) async -> [BenchRow] {
        var rows = [BenchRow]()
        for level in levels {
            say("\(transactions) \(workload) transactions at \(level) in flight…")
            let cpuBefore = net.cpuSeconds() + LocalNetwork.selfCPUSeconds()
            let state = LoadState()
            let started = DispatchTime.now().uptimeNanoseconds
            let count = transactions
            let runID = UUID().uuidString.prefix(8)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<min(level, count) {
                    group.addTask {
                        while true {
                            let i = state.next.add(1, ordering: .relaxed).oldValue
                            guard i < count else { return }
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            do {
                                let r: SubmitResult
                                if let pde {
                                    r = try await gateway.submit(chaincode: "medrecords", function: "putIndexRecord", byteArgs: [try pde.record(i)])
                                } else {
                                    var value = [UInt8](repeating: 0, count: 32)
                                    for j in value.indices { value[j] = UInt8.random(in: 0...255) }
                                    r = try await gateway.submit(chaincode: "kv", function: "put", byteArgs: [Array("bench-\(runID)-\(level)-\(i)".utf8), value])
                                }
                                if r.isValid {
                                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000
                                    state.latencies.withLock { $0.append(dt) }
                                } else {
                                    state.failures.withLock { $0["\(r.code)", default: 0] += 1 }
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
            let sorted = state.latencies.withLock { $0.sorted() }
            for (why, n) in state.failures.withLock({ $0 }) { say("  \(n) failed: \(why)") }
            let ok = sorted.count
            rows.append(BenchRow(
                operation: "\(label)\(workload), \(level) in flight", count: ok, seconds: seconds, rate: Double(ok) / seconds, rateUnit: "tx/s",
                p50Micros: percentile(sorted, 0.5), p99Micros: percentile(sorted, 0.99),
                target: level == 500 && workload == "kv" && !raft ? 3000 : nil,
                cpuMicrosPerOp: ok > 0 ? cpu * 1e6 / Double(ok) : nil,
                p50TargetMicros: level == 1 && workload == "kv" && !raft ? 5000 : nil))
        }
        return rows
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
        let admin = try await Gateway.connect(wallet: try Wallet.open(net.root + "/hospital-a/admin"), peer: net.peer, channel: "records")
        defer { admin.close() }
        let req = CreateTreatmentRequest(patientPID: patient.info.pid, doctorPID: doctor.info.pid)
        let r = try await admin.submit(chaincode: "medrecords", function: "createTreatment", byteArgs: [Array(try JSONEncoder().encode(req))])
        guard r.isValid, let t = try JSONSerialization.jsonObject(with: Data(r.result.payload)) as? [String: Any], let tID = t["t_id"] as? String else {
            throw CLIError("createTreatment failed: \(r.code) \(r.result.text)")
        }
        let p = try SigningIdentity.load(certificatePath: patient.signingCertPath, keyPath: patient.signingKeyPath)
        let d = try SigningIdentity.load(certificatePath: doctor.signingCertPath, keyPath: doctor.signingKeyPath)
        return PDEWorkload(tID: tID, patient: patient, doctor: doctor, patientKey: p, doctorKey: d, patientCert: p.certificatePEM, doctorCert: d.certificatePEM)
    }

    /// Record `i`: a fresh ciphertext digest, signed by both.
    func record(_ i: Int) throws -> [UInt8] {
        let digest = IndexRecordSigning.digestHex(ofCiphertext: Array("ciphertext \(i) \(UUID())".utf8))
        let url = "objstore://hospital-a/bench/\(i)"
        let req = PutIndexRecordRequest(
            tID: tID, url: url, digest: digest,
            patientSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: patientKey.key),
            doctorSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: doctorKey.key),
            patientCert: patientCert, doctorCert: doctorCert)
        return Array(try JSONEncoder().encode(req))
    }
}
