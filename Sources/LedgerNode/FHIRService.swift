import Foundation
import GRPCCore
import LedgerAudit
import LedgerChaincode
import LedgerFHIR
import LedgerFHIRServer
import LedgerIdentity
import LedgerIncidents
import LedgerObjects
import LedgerProtos
import MedRecords
import SwiftASN1
import X509

/// The node's side of the FHIR face: identities through the node's trust store and suspension list,
/// reads through `medrecords`' own rules (`ChainQuery`) in the caller's name, and the same
/// `record.read` audit lines the gRPC reads write. A backend service (system token) reads in the
/// node's own name: what the hospital's node may read, and no more.
struct NodeFHIRBackend: FHIRBackend {
    let query: ChainQuery
    let channel: String
    let trust: TrustStore
    let suspensions: SuspensionList
    let audit: AuditLog?
    let node: CreatorIdentity
    /// The anomaly rules see FHIR reads as they see gRPC ones (patients read, refusals).
    let incidents: IncidentDesk?
    let objects: ObjectStore
    /// Submits the FHIR face's writes in the node's name (FHIRWrites.swift).
    let submitter: NodeSubmitter
    /// The collector's readings, served as masked Observations to the treatment's doctor.
    let inbox: ReadingInbox
    let trailGate = AuditTrailGate()

    func authenticate(chain: [Certificate]) async throws -> UserIdentity {
        guard let leaf = chain.first else { throw FHIRFailure(401, "no client certificate") }
        let identity: AuthenticatedIdentity
        do {
            identity = try await trust.validate(leaf: leaf, intermediates: Array(chain.dropFirst()), purpose: .tls)
        } catch {
            throw FHIRFailure(401, "client certificate refused: \(error)")
        }
        var issuer = DER.Serializer()
        try issuer.serialize(leaf.issuer)
        return UserIdentity(
            pid: identity.pid, org: identity.org, role: identity.attributes.role, certSerial: identity.serialHex,
            certIssuer: Data(issuer.serializedBytes).base64EncodedString())
    }

    func refusal(of user: UserIdentity) -> String? {
        if let s = suspensions.suspension(of: user.pid) {
            return "suspended: \(user.pid) is suspended on this node (\(s.by))"
        }
        guard let der = Data(base64Encoded: user.certIssuer),
            let issuer = try? DistinguishedName(derEncoded: Array(der)),
            let serialBytes = Self.bytes(hex: user.certSerial)
        else { return "the token names a certificate this node cannot check" }
        if trust.isRevoked(issuer: issuer, serial: Certificate.SerialNumber(bytes: serialBytes)) {
            return "the certificate behind this token has been revoked"
        }
        return nil
    }

    func refusal(ofService clientID: String) -> String? {
        suspensions.suspension(of: clientID).map { "suspended: \(clientID) is suspended on this node (\($0.by))" }
    }

    func indexRecord(_ id: String, for caller: FHIRCaller) async throws -> IndexRecord {
        try read(
            "getIndexRecord", caller, about: nil,
            { try MedRecordsReads.indexRecord(GetIndexRecordRequest(recordID: id), stub: $0) }
        ) { [$0.patientPID] }
    }

    func indexRecords(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<IndexRecord> {
        let r = ListIndexRecordsRequest(patientPID: patient, pageSize: pageSize, bookmark: bookmark)
        return try read("listIndexRecords", caller, about: patient, { try MedRecordsReads.indexRecords(r, stub: $0) }) {
            _ in [patient]
        }
    }

    func consent(_ id: String, for caller: FHIRCaller) async throws -> Consent {
        try read(
            "getConsent", caller, about: nil,
            { try MedRecordsReads.consent(GetConsentRequest(consentID: id), stub: $0) }
        ) { [$0.patientPID] }
    }

    func consents(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<Consent> {
        let r = ListConsentsRequest(patientPID: patient, pageSize: pageSize, bookmark: bookmark)
        return try read("listConsents", caller, about: patient, { try MedRecordsReads.consents(r, stub: $0) }) { _ in
            [patient]
        }
    }

    func usage(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<UsageRecord> {
        let r = ListUsageRequest(patientPID: patient, pageSize: pageSize, bookmark: bookmark)
        return try read("listUsage", caller, about: patient, { try MedRecordsReads.usage(r, stub: $0) }) { _ in
            [patient]
        }
    }

    func accessLog(patient: String, since: String?, limit: Int, for caller: FHIRCaller) async throws -> [AccessEntry] {
        guard caller.kind == .user, caller.role == "patient", caller.id == patient else { return [] }
        guard let audit else { return [] }
        guard trailGate.enter() else {
            throw FHIRFailure(503, "another audit trail query is running on this node; retry in a moment")
        }
        defer { trailGate.leave() }
        let found: AuditSearch.Result
        do {
            found = try AuditSearch.entries(
                about: patient, in: audit.path, since: since, limit: limit, excludingActor: patient)
        } catch {
            throw FHIRFailure(503, "cannot read this node's audit log: \(error)")
        }
        return found.entries.map { e in
            let function = e.action == "record.read" ? String(e.detail.split(separator: " ").first ?? "read") : e.action
            return AccessEntry(
                id: "log-\(e.seq)", kind: .read(function: function), time: e.time, actorPID: e.actor.pid,
                actorRole: e.actor.role, patientPID: patient,
                outcome: e.outcome == "success" ? "0" : e.outcome == "denied" ? "4" : "8")
        }
    }

    func objectSize(_ digest: String, for caller: FHIRCaller) async throws -> UInt64 {
        guard ObjectStore.isDigest(digest), let info = try? objects.info(digest) else {
            throw FHIRFailure(404, "no Binary \(digest.prefix(96))")
        }
        let actor = AuditActor(pid: caller.id, org: caller.org, role: caller.kind == .system ? "system" : caller.role)
        // The object store's rule: the treatment's patient or doctor, or a live grantee; never staff,
        // nodes or devices (a backend service reads as the node, so it never downloads records).
        let treatment: Treatment
        do {
            treatment = try query.read("getTreatment", as: try creator(caller), channel: info.channel) {
                try MedRecordsReads.treatment(GetTreatmentRequest(tID: info.tID), stub: $0)
            }
        } catch let e as RPCError {
            audit?.note(
                AuditEvent(actor: actor, action: "object.download", target: digest, outcome: .denied, detail: e.message)
            )
            if e.code == .permissionDenied { throw FHIRFailure(403, e.message) }
            throw FHIRFailure(404, "no Binary \(digest)")
        }
        let creator = try creator(caller)
        if [.admin, .node, .device].contains(creator.role), creator.pid != treatment.patientPID,
            creator.pid != treatment.doctorPID
        {
            audit?.note(
                AuditEvent(
                    actor: actor, action: "object.download", target: digest, outcome: .denied,
                    detail: "role \(actor.role) does not read records"))
            throw FHIRFailure(403, "role \(actor.role) does not download medical records")
        }
        // Checked before the status line goes out: a corrupt object is refused with a 500, not cut
        // short under a 200 (an HTTP answer cannot be voided once its status is sent).
        do { try objects.verify(info) } catch ObjectStoreError.notFound {
            throw FHIRFailure(404, "no Binary \(digest)")
        } catch {
            audit?.note(
                AuditEvent(
                    actor: actor, action: "object.download", target: treatment.patientPID, outcome: .failed,
                    detail: "sha384 \(digest), t_id \(info.tID): \(error)"))
            throw FHIRFailure(500, "\(error)")
        }
        incidents?.observe(
            .patientsRead([treatment.patientPID]), by: Subject(pid: actor.pid, org: actor.org, role: actor.role))
        incidents?.observe(.downloaded(bytes: info.size), by: Subject(pid: actor.pid, org: actor.org, role: actor.role))
        audit?.note(
            AuditEvent(
                actor: actor, action: "object.download", target: treatment.patientPID, outcome: .success,
                detail: "sha384 \(digest), t_id \(info.tID), fhir client \(caller.clientID)"))
        return info.size
    }

    /// The bytes `objectSize` verified, hashed again as they stream (a change in between aborts the
    /// body short of its Content-Length).
    func readObject(_ digest: String, for caller: FHIRCaller, _ each: ([UInt8]) async throws -> Void) async throws {
        try await objects.read(digest, each)
    }

    func readings(
        treatment tID: String, offset: Int, limit: Int, for caller: FHIRCaller
    ) async throws -> (readings: [SealedReading], total: Int) {
        // The collector's own rule (`fetchReadings`): the treatment's doctor, read in their name.
        let t = try read(
            "getTreatment", caller, about: nil,
            { try MedRecordsReads.treatment(GetTreatmentRequest(tID: tID), stub: $0) }
        ) { [$0.patientPID] }
        guard caller.kind == .user, caller.id == t.doctorPID else {
            throw FHIRFailure(403, "only the treatment's doctor reads its device readings")
        }
        let found: (readings: [Medledger_SignedReading], total: Int)
        do { found = try inbox.readings(tID: t.tID, offset: offset, limit: limit) } catch {
            throw FHIRFailure(503, "the collector's store cannot be read")
        }
        let actor = AuditActor(pid: caller.id, org: caller.org, role: caller.role)
        audit?.note(
            AuditEvent(
                actor: actor, action: "collector.fetch", target: t.tID, outcome: .success,
                detail: "\(found.readings.count) readings, fhir client \(caller.clientID)"))
        return (
            try found.readings.map { r in
                SealedReading(
                    tID: r.tID, patientPID: t.patientPID, devicePID: r.devicePid, sequence: r.sequence,
                    observedAt: r.observedAt, receivedAt: r.receivedAt,
                    sealed: Data(try r.serializedBytes() as [UInt8]))
            }, found.total
        )
    }

    func audit(_ note: FHIRAuditNote) {
        let outcome: AuditOutcome = note.outcome == .success ? .success : note.outcome == .denied ? .denied : .failed
        audit?.note(
            AuditEvent(
                actor: AuditActor(pid: note.actorID, org: note.actorOrg, role: note.actorRole), action: note.action,
                target: note.target, outcome: outcome, detail: note.detail))
    }

    // MARK: -

    /// A `medrecords` read in the caller's name, audited as `record.read` for each patient it names
    /// (`about` when the request names one, else those `patients` finds in the answer).
    func read<Response>(
        _ function: String, _ caller: FHIRCaller, about: String?, _ rules: (ChaincodeStub) throws -> Response,
        patients: (Response) -> [String]
    ) throws -> Response {
        let actor = AuditActor(pid: caller.id, org: caller.org, role: caller.kind == .system ? "system" : caller.role)
        let subject = Subject(pid: actor.pid, org: actor.org, role: actor.role)
        func note(_ patient: String, _ outcome: AuditOutcome, _ status: Int) {
            audit?.note(
                AuditEvent(
                    actor: actor, action: "record.read", target: patient, outcome: outcome,
                    detail: "\(function) on channel \(channel), status \(status), fhir client \(caller.clientID)"))
        }
        do {
            let answer = try query.read(function, as: try creator(caller), channel: channel, rules)
            let read = Set(patients(answer))
            for p in read { note(p, .success, 200) }
            if !read.isEmpty { incidents?.observe(.patientsRead(Array(read)), by: subject) }
            return answer
        } catch let e as RPCError {
            let status = StatusMapping.status(of: e.code)
            if let about { note(about, status < 500 ? .denied : .failed, status) }
            if [401, 403, 404].contains(status) { incidents?.observe(.refused(status: status), by: subject) }
            throw FHIRFailure(status, e.message)
        } catch let f as FHIRFailure {
            throw f
        } catch {
            throw FHIRFailure(500, "internal error")
        }
    }

    func creator(_ caller: FHIRCaller) throws -> CreatorIdentity {
        if caller.kind == .system { return node }
        guard let role = RoleName.role(caller.role) else { throw FHIRFailure(401, "the token names an unknown role") }
        return CreatorIdentity(pid: caller.id, org: caller.org, role: role, certificatePEM: "")
    }

    static func bytes(hex: String) -> [UInt8]? {
        guard hex.count % 2 == 0, hex.count <= 80 else { return nil }
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            guard let b = UInt8(hex[i..<j], radix: 16) else { return nil }
            out.append(b)
            i = j
        }
        return out
    }
}
