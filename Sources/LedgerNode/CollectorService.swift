import Crypto
import Foundation
import GRPCCore
import HospitalFlows
import LedgerAudit
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import Synchronization
import X509

/// The collector that takes IoT devices' readings for a treatment's doctor (seed 000's upload demo,
/// done the EMR-IG way). A reading arrives encrypted to the doctor's key and signed by the device;
/// the collector checks who sent it and that the signature holds, never what it says (it cannot
/// read it), and keeps it for the doctor. Refused with a reason, and not kept: a caller that is not a
/// device, a reading signed in another device's name, a signing certificate that is unknown, revoked
/// or not the caller's, a bad signature, a treatment of another hospital, a replayed sequence number.
struct CollectorService: Medledger_Collector.SimpleServiceProtocol {
    let inbox: ReadingInbox
    let trust: TrustStore
    let query: ChainQuery
    let node: NodeSubmitter
    let audit: AuditLog?

    static let ciphertextBytesMax = 64 * 1024

    func submitReading(
        request: Medledger_SignedReading, context: ServerContext
    ) async throws -> Medledger_ReadingReceipt {
        let caller = try context.requireCaller()
        do {
            let receipt = try await accept(request, from: caller)
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "collector.reading", target: request.tID, outcome: .success,
                    detail: "sequence \(request.sequence)"))
            return receipt
        } catch let e as RPCError {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "collector.reading", target: request.tID, outcome: .denied,
                    detail: e.message))
            throw e
        }
    }

    func accept(
        _ r: Medledger_SignedReading, from caller: AuthenticatedIdentity
    ) async throws -> Medledger_ReadingReceipt {
        guard caller.role == .device else {
            throw RPCError(
                code: .permissionDenied,
                message: "only enrolled devices submit readings (you are \(caller.attributes.role))")
        }
        guard r.devicePid == caller.pid else {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "mismatched device: the reading is signed in the name of \(r.devicePid.debugDescription), the connection is \(caller.pid)'s"
            )
        }
        guard !r.ciphertext.isEmpty, r.ciphertext.count <= Self.ciphertextBytesMax else {
            throw RPCError(
                code: .invalidArgument, message: "a reading's ciphertext must be 1 to \(Self.ciphertextBytesMax) bytes")
        }
        guard (try? Capsule(bytes: [UInt8](r.capsule))) != nil else {
            throw RPCError(code: .invalidArgument, message: "the reading's capsule is not an Umbral capsule")
        }
        let cert: Certificate
        do { cert = try Certificate(pemEncoded: String(decoding: r.deviceCertPem, as: UTF8.self)) } catch {
            throw RPCError(code: .invalidArgument, message: "device_cert_pem is not a PEM certificate")
        }
        let signer: AuthenticatedIdentity
        do { signer = try await trust.validate(leaf: cert, purpose: .signing) } catch {
            throw RPCError(
                code: .permissionDenied,
                message: "unknown or revoked device: its signing certificate is rejected (\(error))")
        }
        guard signer.pid == caller.pid, signer.role == .device else {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "mismatched device: the signing certificate is \(signer.pid)'s (\(signer.attributes.role)), the connection is \(caller.pid)'s"
            )
        }
        guard let key = P256.Signing.PublicKey(cert.publicKey) else {
            throw RPCError(code: .invalidArgument, message: "the device's key is not ECDSA P-256")
        }
        guard ReadingSigning.isValid([UInt8](r.signature), message: r.signedMessage, key: key) else {
            throw RPCError(
                code: .invalidArgument,
                message: "the device signature does not verify: the reading was altered or signed with another key")
        }
        // The treatment as this node sees it: only its own hospital's treatments are visible to it.
        let t: Treatment
        do {
            t = try query.run("getTreatment", GetTreatmentRequest(tID: r.tID), as: node.creator, channel: r.channel)
        } catch let e as RPCError where e.code == .notFound {
            throw RPCError(
                code: .notFound, message: "no treatment \(r.tID) of \(node.creator.org) on channel \(r.channel)")
        }
        guard caller.org == t.hospital else {
            throw RPCError(
                code: .permissionDenied,
                message: "mismatched device: a device of \(caller.org) reports for a treatment of \(t.hospital)")
        }
        var stored = r
        stored.receivedAt = ISO8601DateFormatter().string(from: Date())
        try inbox.add(stored)
        return Medledger_ReadingReceipt.with {
            $0.tID = r.tID
            $0.sequence = r.sequence
            $0.receivedAt = stored.receivedAt
        }
    }

    func fetchReadings(
        request: Medledger_FetchReadingsRequest, response: RPCWriter<Medledger_SignedReading>, context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        let t: Treatment = try query.run(
            "getTreatment", GetTreatmentRequest(tID: request.tID), as: caller.creator, channel: request.channel)
        guard caller.pid == t.doctorPID else {
            throw RPCError(code: .permissionDenied, message: "only the treatment's doctor fetches its readings")
        }
        for reading in try inbox.readings(tID: t.tID) { try await response.write(reading) }
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "collector.fetch", target: t.tID, outcome: .success, detail: ""))
    }
}

/// Readings kept for doctors: DATA_DIR/collector/<t_id>/<arrival>_<device PID in hex>_<sequence>.pb
/// (PIDs are base64url and may hold any separator, hence the hex), each the serialized
/// signed (and encrypted) reading. A sequence number at or below the last one kept from a device for
/// a treatment is a replay and refused.
final class ReadingInbox: Sendable {
    let directory: URL
    private let lock = Mutex(0)
    /// Readings kept per treatment at most (a bedside monitor every second for about a day); past it
    /// a device gets 503 until the doctor's `device readings` has bundled them into a record.
    static let readingsPerTreatmentMax = 100_000

    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    private func folder(_ tID: String) throws -> URL {
        guard RecordIDSyntax.isTreatmentID(tID) else {
            throw RPCError(code: .invalidArgument, message: "not a treatment id: \(tID.debugDescription)")
        }
        return directory.appendingPathComponent(tID)
    }

    func add(_ r: Medledger_SignedReading) throws {
        let dir = try folder(r.tID)
        try lock.withLock { arrivals in
            let fm = FileManager.default
            try fm.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let existing = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pb") }.sorted()
            guard existing.count < Self.readingsPerTreatmentMax else {
                throw RPCError(
                    code: .unavailable,
                    message:
                        "the collector holds \(existing.count) readings of treatment \(r.tID), its limit; retry later")
            }
            let device = Hex.encode(Array(r.devicePid.utf8))
            for name in existing {
                let parts = name.dropLast(3).split(separator: "_")
                if parts.count == 3, parts[1] == device, let last = UInt64(parts[2]), r.sequence <= last {
                    throw RPCError(
                        code: .alreadyExists,
                        message:
                            "replayed reading: sequence \(r.sequence) of device \(r.devicePid) is not above \(last), already received"
                    )
                }
            }
            arrivals = max(arrivals, existing.count) + 1
            let name = String(format: "%010d", arrivals) + "_" + device + "_" + String(r.sequence) + ".pb"
            do {
                try SecureFile.write(
                    try r.serializedBytes() as [UInt8], to: dir.appendingPathComponent(name).path, mode: 0o600)
            } catch {
                throw RPCError(code: .internalError, message: "collector store: \(error)")
            }
        }
    }

    func readings(tID: String) throws -> [Medledger_SignedReading] {
        try readings(tID: tID, offset: 0, limit: Self.readingsPerTreatmentMax).readings
    }

    /// In arrival order, `limit` from `offset` (only those are read from disk), and how many are kept.
    func readings(tID: String, offset: Int, limit: Int) throws -> (readings: [Medledger_SignedReading], total: Int) {
        let dir = try folder(tID)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return ([], 0) }
        let kept = names.filter { $0.hasSuffix(".pb") }.sorted()
        let page = try kept.dropFirst(offset).prefix(limit).map { name in
            guard let d = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                throw RPCError(code: .dataLoss, message: "reading \(name) vanished")
            }
            return try Medledger_SignedReading(serializedBytes: d)
        }
        return (page, kept.count)
    }
}
