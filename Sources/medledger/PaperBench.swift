import ArgumentParser
import Crypto
import CryptoExtras
import Foundation
import LedgerBench
import LedgerClient
import LedgerCrypto
import LedgerPRE
import LedgerRecords
import MedRecords

/// `medledger bench paper`: the paper's 15 operations (its evaluation table), each timed `--runs`
/// times per record size, against a local network of real processes (the SA's node as CA and solo
/// orderer, hospital-a's node with its object store and proxy), over mutual TLS, every block fsync'd.
struct PaperBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paper",
        abstract:
            "The paper's 15 operations (RSA-OAEP, SHA-384, AES-GCM, signatures, P_DE/D_UE put and query, re-encryption, object store) per record size."
    )

    @Option(help: "Record sizes, comma-separated, with k/m suffixes (binary).") var sizes = "64k,256k,1m"
    @Option(help: "Timed runs of each operation per size.") var runs = 1000
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Working directory (default: a temporary one, removed afterwards).") var dir: String?

    struct Row: Encodable {
        var operation: String
        var sizeBytes: Int
        var runs: Int
        var meanMs: Double
        var p50Ms: Double
        var p99Ms: Double
        enum CodingKeys: String, CodingKey {
            case operation
            case sizeBytes = "size_bytes"
            case runs
            case meanMs = "mean_ms"
            case p50Ms = "p50_ms"
            case p99Ms = "p99_ms"
        }
    }

    /// "64k" → 65536, "1m" → 1048576, "1000" → 1000; at most 64 MiB.
    static func parseSize(_ s: String) -> Int? {
        var t = Substring(s.trimmingCharacters(in: .whitespaces).lowercased())
        var factor = 1
        if t.hasSuffix("k") {
            factor = 1 << 10
            t = t.dropLast()
        } else if t.hasSuffix("m") {
            factor = 1 << 20
            t = t.dropLast()
        }
        guard let n = Int(t), n > 0, n <= (64 << 20) / factor else { return nil }
        return n * factor
    }

    static let operations = [
        "RSA-OAEP encrypt (data key, RSA-2048)", "RSA-OAEP decrypt (data key, RSA-2048)", "SHA-384 of the ciphertext",
        "AES-256-GCM encrypt (seal record)", "AES-256-GCM decrypt (open record)", "Sign (ECDSA P-256, D_SP)",
        "Verify signature",
        "Put P_DE (committed)", "Query P_DE", "Re-encryption key generation", "Re-encryption (capsule fragment)",
        "Put D_UE (committed)", "Query D_UE", "Upload to object store (kept connection)",
        "Download from object store (kept connection)",
    ]

    func run() async throws {
        let sizeList = try sizes.split(separator: ",").map { s -> Int in
            guard let n = Self.parseSize(String(s)) else {
                throw ValidationError("--sizes: \(s) is not a size such as 64k or 1m (at most 64m)")
            }
            return n
        }
        guard !sizeList.isEmpty, runs > 0 else {
            throw ValidationError("--sizes must list sizes and --runs must be positive")
        }
        let root = dir ?? NSTemporaryDirectory() + "medledger-paper-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        func say(_ s: String) { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) }

        say("starting a local network in \(root)")
        let net = try await LocalNetwork.start(in: root, log: say)
        defer { net.stop() }
        let s = try await Setup.make(net)
        defer { s.close() }

        let progress = ProgressBar(total: sizeList.count * Self.operations.count * runs)
        var rows = [Row]()
        for size in sizeList {
            rows += try await measure(size: size, s, root: root, progress: progress)
        }
        progress.finish()
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(rows), as: UTF8.self))
        } else {
            print(Self.table(rows, runs: runs))
        }
    }

    /// Everything the operations need, made once: wallets, gateways, keys, a treatment, a consent.
    struct Setup {
        let patient: CareClient, doctor: Wallet, researcher: CareClient
        /// hospital-a's object store on disk (the bench removes its own objects from it between runs).
        let objectStoreDirectory: String
        let tID: String, consentID: String
        let patientKeys: ProxyKeys, researcherKeys: ProxyKeys

        static func make(_ net: LocalNetwork) async throws -> Setup {
            func care(_ path: String) async throws -> CareClient {
                let w = try Wallet.open(path)
                return CareClient(
                    wallet: w, gateway: try await Gateway.connect(wallet: w, peer: net.peer, channel: "records"),
                    node: net.peer)
            }
            let patient = try await care(net.root + "/patient")
            let researcher = try await care(net.root + "/researcher")
            let admin = try await care(net.root + "/hospital-a/admin")
            defer { admin.gateway.close() }
            let doctor = try Wallet.open(net.root + "/doctor")
            _ = try await patient.publishKeys()
            _ = try await researcher.publishKeys()
            let (t, _) = try await admin.submit(
                "createTreatment",
                CreateTreatmentRequest(patientPID: patient.wallet.info.pid, doctorPID: doctor.info.pid), Treatment.self)
            let expires = ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))
            let grant = try await patient.grant(
                grantee: researcher.wallet.info.pid, tIDs: [t.tID], purpose: "benchmark", expiresAt: expires,
                proxies: [net.peer], threshold: 1)
            return Setup(
                patient: patient, doctor: doctor, researcher: researcher,
                objectStoreDirectory: net.root + "/hospital-a/nodes/peer0/data/objects", tID: t.tID,
                consentID: grant.consent.consentID,
                patientKeys: try patient.wallet.proxyKeys(), researcherKeys: try researcher.wallet.proxyKeys())
        }

        func close() {
            patient.gateway.close()
            researcher.gateway.close()
        }
    }

    func measure(size: Int, _ s: Setup, root: String, progress: ProgressBar) async throws -> [Row] {
        let label = size >= 1 << 20 && size % (1 << 20) == 0 ? "\(size >> 20) MiB" : "\(size >> 10) KiB"
        var timer = OperationTimer(size: size, label: label, runs: runs, progress: progress)

        // The record of this size, sealed once for the operations that need a ciphertext.
        let plaintext = (0..<size).map { _ in UInt8.random(in: 0...255) }
        let (sealed, sealResult) = try Self.sealInMemory(plaintext, to: s.patientKeys.encryptionKey)
        let dataKey = try sealResult.header.openDataKey(patientSK: s.patientKeys.encryption)
        let sealedPath = root + "/sealed-\(size).bin"
        try Data(sealed).write(to: URL(fileURLWithPath: sealedPath))

        try await timeRSA(&timer)
        try await timeSealing(&timer, s, plaintext: plaintext, sealed: sealed, dataKey: dataKey)
        let signingKey = try s.patient.wallet.signingKey()
        try await timeSignatures(&timer, s, sealResult: sealResult, signingKey: signingKey)
        try await timeIndexRecords(&timer, s, sealResult: sealResult, signingKey: signingKey)
        try await timeReencryption(&timer, s, sealResult: sealResult)
        try await timeUsageRecords(&timer, s)
        try await timeObjectStore(
            &timer, s, sealed: sealed, sealResult: sealResult, sealedPath: sealedPath,
            downloadPath: root + "/download-\(size).bin")
        return timer.rows
    }

    /// Times operations at one record size, `runs` runs each, and keeps one row per operation.
    private struct OperationTimer {
        let size: Int
        let label: String
        let runs: Int
        let progress: ProgressBar
        var rows = [Row]()

        /// Runs `body` `runs` times (given the run's index), each after an untimed `prepare`, advancing
        /// the progress bar, and records the row.
        mutating func time(
            _ op: String, prepare: (Int) async throws -> Void = { _ in }, _ body: (Int) async throws -> Void
        ) async throws {
            progress.phase = "\(op), \(label)"
            var samples = [Double]()
            samples.reserveCapacity(runs)
            for i in 0..<runs {
                try await prepare(i)
                let t0 = DispatchTime.now().uptimeNanoseconds
                try await body(i)
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                progress.advance()
            }
            record(op, samples)
        }

        /// Appends the row of `op`: the mean, p50 and p99 of `samples` (seconds) in milliseconds.
        private mutating func record(_ op: String, _ samples: [Double]) {
            let sorted = samples.sorted()
            rows.append(
                Row(
                    operation: op, sizeBytes: size, runs: samples.count,
                    meanMs: samples.reduce(0, +) / Double(samples.count) * 1000,
                    p50Ms: (percentile(sorted, 0.50) ?? 0) * 1000, p99Ms: (percentile(sorted, 0.99) ?? 0) * 1000))
        }
    }

    /// 1–2: the paper's RSA rows: the 32-byte data key under RSA-2048 with OAEP (SHA-256).
    private func timeRSA(_ timer: inout OperationTimer) async throws {
        let rsa = try _RSA.Encryption.PrivateKey(keySize: .bits2048)
        let rawKey = (0..<32).map { _ in UInt8.random(in: 0...255) }
        var wrapped = Data()
        try await timer.time(Self.operations[0]) { _ in
            wrapped = try rsa.publicKey.encrypt(rawKey, padding: .PKCS1_OAEP_SHA256)
        }
        try await timer.time(Self.operations[1]) { _ in _ = try rsa.decrypt(wrapped, padding: .PKCS1_OAEP_SHA256) }
    }

    /// 3–5: digest, seal, open.
    private func timeSealing(
        _ timer: inout OperationTimer, _ s: Setup, plaintext: [UInt8], sealed: [UInt8], dataKey: DataKey
    ) async throws {
        try await timer.time(Self.operations[2]) { _ in _ = Digests.sha384(sealed) }
        try await timer.time(Self.operations[3]) { _ in
            _ = try Self.sealInMemory(plaintext, to: s.patientKeys.encryptionKey)
        }
        try await timer.time(Self.operations[4]) { _ in
            var pos = 0
            _ = try SealedRecord.open(
                .dataKey(dataKey),
                read: { n in
                    let end = min(pos + n, sealed.count)
                    defer { pos = end }
                    return Array(sealed[pos..<end])
                }, write: { _ in })
        }
    }

    /// 6–7: D_SP over (t_id, URL_C, digest), and its verification.
    private func timeSignatures(
        _ timer: inout OperationTimer, _ s: Setup, sealResult: SealedRecord.SealResult,
        signingKey: P256.Signing.PrivateKey
    ) async throws {
        let url = "medledger://\(s.patient.node.host):\(s.patient.node.port)/objects/\(sealResult.digestHex)"
        var signature = ""
        try await timer.time(Self.operations[5]) { _ in
            signature = try IndexRecordSigning.sign(
                tid: s.tID, url: url, digestHex: sealResult.digestHex, key: signingKey)
        }
        try await timer.time(Self.operations[6]) { _ in
            guard
                IndexRecordSigning.isValid(
                    signatureBase64: signature, publicKey: signingKey.publicKey, tid: s.tID, url: url,
                    digestHex: sealResult.digestHex)
            else { throw CLIError("signature did not verify") }
        }
    }

    /// 8–9: P_DE put (each a distinct digest: one P_DE per ciphertext) and query.
    private func timeIndexRecords(
        _ timer: inout OperationTimer, _ s: Setup, sealResult: SealedRecord.SealResult,
        signingKey: P256.Signing.PrivateKey
    ) async throws {
        // Requests are signed before the clock starts: signing is row 6.
        let patientCert = try String(contentsOfFile: s.patient.wallet.signingCertPath, encoding: .utf8)
        let doctorCert = try String(contentsOfFile: s.doctor.signingCertPath, encoding: .utf8)
        let doctorKey = try s.doctor.signingKey()
        let capsuleHex = Hex.encode(sealResult.header.capsule.toBytes())
        var requests = [PutIndexRecordRequest]()
        for _ in 0..<runs {
            let digest = Hex.encode((0..<48).map { _ in UInt8.random(in: 0...255) })
            let u = "medledger://\(s.patient.node.host):\(s.patient.node.port)/objects/\(digest)"
            requests.append(
                PutIndexRecordRequest(
                    tID: s.tID, url: u, digest: digest,
                    patientSignature: try IndexRecordSigning.sign(
                        tid: s.tID, url: u, digestHex: digest, key: signingKey),
                    doctorSignature: try IndexRecordSigning.sign(tid: s.tID, url: u, digestHex: digest, key: doctorKey),
                    patientCert: patientCert, doctorCert: doctorCert, capsule: capsuleHex))
        }
        var recordID = ""
        try await timer.time(Self.operations[7]) { i in
            recordID = try await s.patient.submit(
                "putIndexRecord", try requests[i].proposalInputs(), IndexRecordReceipt.self
            ).0.recordID
        }
        try await timer.time(Self.operations[8]) { _ in
            _ = try await s.patient.query("getIndexRecord", GetIndexRecordRequest(recordID: recordID), IndexRecord.self)
        }
    }

    /// 10–11: re-encryption key generation (1 of 1, as in the paper) and re-encryption.
    private func timeReencryption(
        _ timer: inout OperationTimer, _ s: Setup, sealResult: SealedRecord.SealResult
    ) async throws {
        var kfrag: VerifiedKeyFrag?
        try await timer.time(Self.operations[9]) { _ in
            kfrag = try Umbral.generateKFrags(
                delegatingSK: s.patientKeys.encryption, receivingPK: s.researcherKeys.encryptionKey,
                signer: s.patientKeys.signer,
                threshold: 1, shares: 1, signDelegatingKey: true, signReceivingKey: true)[0]
        }
        try await timer.time(Self.operations[10]) { _ in
            _ = Umbral.reencrypt(capsule: sealResult.header.capsule, kfrag: kfrag!)
        }
    }

    /// 12–13: D_UE put (by the third party under the live consent) and query.
    private func timeUsageRecords(_ timer: inout OperationTimer, _ s: Setup) async throws {
        let usage = RecordUsageRequest(
            tID: s.tID, thirdPartyPID: s.researcher.wallet.info.pid, proxyNode: "hospital-a/peer0", purpose: "benchmark"
        )
        try await timer.time(Self.operations[11]) { _ in
            _ = try await s.researcher.submit("recordUsage", usage, UsageRecord.self)
        }
        try await timer.time(Self.operations[12]) { _ in
            _ = try await s.researcher.query(
                "listUsage", ListUsageRequest(tID: s.tID, pageSize: 10), RecordPage<UsageRecord>.self)
        }
    }

    /// 14–15: upload and download of the sealed record through the object store.
    private func timeObjectStore(
        _ timer: inout OperationTimer, _ s: Setup, sealed: [UInt8], sealResult: SealedRecord.SealResult,
        sealedPath: String, downloadPath out: String
    ) async throws {
        // 14–15: the object store, over mutual TLS, streamed in 256 KiB chunks, on one kept connection
        // (as an app storing records in a row; `medledger object put` dials once per run). Every
        // upload stores a new object, as a real one does (the node writes and fsyncs it): the sealed
        // bytes with their last 8 set to the run's index, written and hashed before the clock starts
        // (the digest is known from sealing in real use). The previous run's object is then removed
        // from the node's store, untimed, so that the runs do not fill the disk.
        let pool = NodeConnectionPool(
            trustedRootsPEM: s.patient.wallet.caCertPEM, identity: s.patient.wallet.tlsIdentity)
        defer { pool.close() }
        let objects = ObjectClient(wallet: s.patient.wallet, pool: pool)
        var stored: ObjectClient.Stored?
        var variant = sealed
        var known = (digest: sealResult.digestHex, size: UInt64(sealed.count))
        let storeDirectory = s.objectStoreDirectory
        try await timer.time(
            Self.operations[13],
            prepare: { i in
                if let previous = stored?.digest {
                    for suffix in [".json", ".obj"] {
                        try FileManager.default.removeItem(
                            atPath: "\(storeDirectory)/\(previous.prefix(2))/\(previous)\(suffix)")
                    }
                }
                variant.replaceSubrange(
                    (variant.count - 8)..., with: withUnsafeBytes(of: UInt64(i).bigEndian, Array.init))
                try Data(variant).write(to: URL(fileURLWithPath: sealedPath))
                known.digest = Hex.encode(Array(SHA384.hash(data: variant)))
            }
        ) { _ in
            stored = try await objects.upload(
                file: sealedPath, node: s.patient.node, channel: "records", tID: s.tID, known: known)
            guard stored?.alreadyStored == false else {
                throw ValidationError("bench: the node already had the object of this run; the figure would be wrong")
            }
        }
        try await timer.time(Self.operations[14]) { _ in
            try? FileManager.default.removeItem(atPath: out)
            _ = try await objects.download(url: stored!.url, to: out, node: s.patient.node)
        }
    }

    static func sealInMemory(_ plaintext: [UInt8], to key: PublicKey) throws -> ([UInt8], SealedRecord.SealResult) {
        var out = [UInt8]()
        out.reserveCapacity(plaintext.count + plaintext.count / 1000 + 512)
        var pos = 0
        let r = try SealedRecord.seal(
            patientPK: key,
            read: { n in
                let end = min(pos + n, plaintext.count)
                defer { pos = end }
                return Array(plaintext[pos..<end])
            }, write: { out += $0 })
        return (out, r)
    }

    static func table(_ rows: [Row], runs: Int) -> String {
        let sizes = Array(Set(rows.map(\.sizeBytes))).sorted()
        func label(_ size: Int) -> String {
            size >= 1 << 20 && size % (1 << 20) == 0 ? "\(size >> 20) MiB" : "\(size >> 10) KiB"
        }
        func ms(_ v: Double) -> String {
            v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.3f", v)
        }
        let opWidth = operations.map(\.count).max()! + 2
        var lines = [
            "The paper's operations: mean / p50 / p99 in ms, \(runs) runs each (release build for meaningful figures)",
            "",
        ]
        var header = "#  " + "operation".padding(toLength: opWidth, withPad: " ", startingAt: 0)
        for s in sizes { header += ("| " + label(s)).padding(toLength: 27, withPad: " ", startingAt: 0) }
        lines.append(header)
        lines.append(String(repeating: "-", count: header.count))
        for (i, op) in operations.enumerated() {
            var line = String(format: "%-3d", i + 1) + op.padding(toLength: opWidth, withPad: " ", startingAt: 0)
            for s in sizes {
                let cell =
                    rows.first { $0.operation == op && $0.sizeBytes == s }.map {
                        "\(ms($0.meanMs)) / \(ms($0.p50Ms)) / \(ms($0.p99Ms))"
                    } ?? "-"
                line += ("| " + cell).padding(toLength: 27, withPad: " ", startingAt: 0)
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

/// A one-line progress bar on standard error (only when it is a terminal or MEDLEDGER_PROGRESS=1):
/// the benchmark runs for minutes.
final class ProgressBar: @unchecked Sendable {  // used from one task at a time
    let total: Int
    var done = 0
    var phase = ""
    private var lastDrawn = -1
    private let enabled = isatty(2) != 0 || ProcessInfo.processInfo.environment["MEDLEDGER_PROGRESS"] == "1"

    init(total: Int) { self.total = max(1, total) }

    func advance() {
        done += 1
        let permille = done * 1000 / total
        guard enabled, permille != lastDrawn else { return }
        lastDrawn = permille
        let width = 30
        let filled = done * width / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        FileHandle.standardError.write(
            Data("\r\(bar) \(String(format: "%5.1f", Double(permille) / 10))%  \(phase)\u{1B}[K".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
