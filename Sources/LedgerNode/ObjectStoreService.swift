import Foundation
import GRPCCore
import LedgerAudit
import LedgerIdentity
import LedgerIncidents
import LedgerObjects
import LedgerOperations
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords

/// The object store API (objects.proto) of a hospital node. Access follows the chain: the
/// `medrecords` chaincode's own read rules are run, as a query in the caller's name, against the
/// channel's current state. Uploads: the treatment's patient or doctor. Downloads: those two, or a
/// grantee whose consent is live (a revoked consent refuses from the block that revoked it on).
struct ObjectStoreService: Medledger_ObjectStore.SimpleServiceProtocol {
    let store: ObjectStore
    let runtime: PeerRuntime
    /// host:port that goes into URL_C.
    let publicAddress: @Sendable () -> String
    let audit: AuditLog?
    var incidents: IncidentDesk? = nil
    var metrics: NodeMetrics? = nil

    func upload(
        request: RPCAsyncSequence<Medledger_UploadRequest, any Error>, context: ServerContext
    ) async throws -> Medledger_UploadResponse {
        let caller = try context.requireCaller()
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .header(let header)? = first.part else {
            throw RPCError(
                code: .invalidArgument, message: "an upload starts with its header (channel, t_id, sha384, size)")
        }
        let treatment = try visibleTreatment(header.tID, channel: header.channel, caller: caller)
        guard caller.pid == treatment.patientPID || caller.pid == treatment.doctorPID else {
            deny(caller, "object.upload", header.sha384, "not the patient or doctor of treatment \(header.tID)")
            throw RPCError(
                code: .permissionDenied,
                message: "only the patient or the doctor of treatment \(header.tID) may store its records")
        }
        let upload: ObjectStore.Upload
        do {
            upload = try store.beginUpload(
                digest: header.sha384, declaredSize: header.size, channel: header.channel, tID: header.tID,
                uploaderPID: caller.pid)
        } catch let e as ObjectStoreError {
            throw Self.rpcError(e)
        }
        let already: Bool
        do {
            while let part = try await iterator.next() {
                guard case .chunk(let bytes)? = part.part else {
                    throw RPCError(code: .invalidArgument, message: "only chunks may follow the header")
                }
                try upload.append(bytes)
            }
            already = try upload.finish()
        } catch let e as ObjectStoreError {
            upload.abort()
            throw Self.rpcError(e)
        } catch {
            upload.abort()
            throw error
        }
        let repaired = upload.replacedCorruptCopy ? "; replaced a stored copy found corrupt" : ""
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "object.upload", target: header.sha384, outcome: .success,
                detail: "t_id \(header.tID), \(header.size) bytes\(repaired)"))
        metrics?.counter("object_store_bytes_written_total", help: "Ciphertext bytes stored by uploads.").increment(
            by: Int64(clamping: header.size))
        var r = Medledger_UploadResponse()
        r.url = ObjectURL(node: publicAddress(), digest: header.sha384).description
        r.sha384 = header.sha384
        r.size = header.size
        r.alreadyStored = already
        return r
    }

    func download(
        request: Medledger_DownloadRequest, response: RPCWriter<Medledger_DownloadChunk>, context: ServerContext
    ) async throws {
        let caller = try context.requireCaller()
        let digest = ObjectURL(request.url)?.digest ?? request.url
        guard ObjectStore.isDigest(digest) else {
            throw RPCError(
                code: .invalidArgument, message: "not an object URL or SHA-384 digest: \(request.url.debugDescription)")
        }
        let info: ObjectInfo
        do {
            guard let i = try store.info(digest) else {
                throw RPCError(code: .notFound, message: "no object \(digest) on this node")
            }
            info = i
        } catch let e as ObjectStoreError { throw Self.rpcError(e) }
        // Hospital staff and devices are parties to the treatment on chain, but its records are for
        // the patient, the doctor and consented grantees only.
        let treatment: Treatment
        do { treatment = try visibleTreatment(info.tID, channel: info.channel, caller: caller) } catch let e as RPCError
        {
            deny(caller, "object.download", digest, e.message)
            throw RPCError(
                code: e.code == .permissionDenied ? .permissionDenied : .notFound,
                message: e.code == .permissionDenied ? e.message : "no object \(digest) on this node")
        }
        if [.admin, .node, .device].contains(caller.role), caller.pid != treatment.patientPID,
            caller.pid != treatment.doctorPID
        {
            deny(caller, "object.download", digest, "role \(caller.attributes.role) does not read records")
            throw RPCError(
                code: .permissionDenied, message: "role \(caller.attributes.role) does not download medical records")
        }
        func failed(_ e: ObjectStoreError) -> RPCError {
            if e.meansCorrupt {
                audit?.note(
                    AuditEvent(
                        actor: caller.auditActor, action: "object.download", target: treatment.patientPID,
                        outcome: .failed, detail: "sha384 \(digest), t_id \(info.tID): \(e)"))
            }
            return Self.rpcError(e)
        }
        // Nothing to serve (set aside as corrupt, lost in a crash, or a file of the wrong size): refused
        // before it counts as a read.
        let reading: ObjectStore.Reading
        do { reading = try store.open(info, from: request.offset) } catch let e as ObjectStoreError { throw failed(e) }
        incidents?.observe(.patientsRead([treatment.patientPID]), by: caller)
        if request.offset < info.size { incidents?.observe(.downloaded(bytes: info.size - request.offset), by: caller) }
        // The first message describes the object; an offset at the end still gets that one message.
        var next = Medledger_DownloadChunk.with {
            $0.offset = request.offset
            $0.size = info.size
            $0.sha384 = info.digest
            $0.tID = info.tID
            $0.channel = info.channel
        }
        do {
            // Verified as it streams: a corrupt object's stream ends in DATA_LOSS, which voids it (and
            // the client checks the digest of what it received in any case).
            try await reading.stream { piece in
                next.data = Data(piece)
                try await response.write(next)
                next = Medledger_DownloadChunk.with { $0.offset = next.offset + UInt64(piece.count) }
            }
        } catch let e as ObjectStoreError {
            throw failed(e)
        }
        if next.hasDescription { try await response.write(next) }
        // Named by the patient, like every read of their records, so their audit trail shows it.
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "object.download", target: treatment.patientPID, outcome: .success,
                detail: "sha384 \(digest), t_id \(info.tID), from \(request.offset)"))
        metrics?.counter("object_store_bytes_read_total", help: "Ciphertext bytes sent by downloads.").increment(
            by: Int64(clamping: info.size - min(request.offset, info.size)))
    }

    /// The treatment as `medrecords` shows it to `caller` right now; its refusals as gRPC errors.
    func visibleTreatment(_ tID: String, channel: String, caller: AuthenticatedIdentity) throws -> Treatment {
        try ChainQuery(runtime: runtime).run(
            "getTreatment", GetTreatmentRequest(tID: tID), as: caller.creator, channel: channel)
    }

    func deny(_ caller: AuthenticatedIdentity, _ action: String, _ target: String, _ reason: String) {
        audit?.note(
            AuditEvent(actor: caller.auditActor, action: action, target: target, outcome: .denied, detail: reason))
    }

    static func rpcError(_ e: ObjectStoreError) -> RPCError {
        switch e {
        case .badDigest, .sizeMismatch, .digestMismatch, .offsetBeyondEnd:
            return RPCError(code: .invalidArgument, message: e.description)
        case .tooLarge: return RPCError(code: .resourceExhausted, message: e.description)
        case .belongsToAnotherTreatment: return RPCError(code: .alreadyExists, message: e.description)
        case .notFound: return RPCError(code: .notFound, message: e.description)
        case .corrupt, .setAside: return RPCError(code: .dataLoss, message: e.description)
        case .io: return RPCError(code: .internalError, message: "object store: \(e.description)")
        }
    }
}

extension Medledger_DownloadChunk {
    /// Whether this is the describing first message (not yet sent).
    fileprivate var hasDescription: Bool { !sha384.isEmpty }
}
