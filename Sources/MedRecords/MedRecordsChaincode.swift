import Crypto
import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos

/// `medrecords`: the paper's on-chain records — treatments T_ID, index records P_DE, patients'
/// consents, and usage records D_UE. Every function takes one argument, a JSON object (see the
/// `…Request` types; `putIndexRecord` may take its certificates as transient inputs instead), and
/// answers JSON with sorted keys; refusals are 400 (bad input), 403, 404 and
/// 409 (exists already / already revoked), and write nothing.
///
/// Who may read. A treatment, its index records and its usage are readable by its patient, its
/// doctor, an administrator or node of its hospital (the "parties"), and by the grantee of a live
/// consent that names the treatment. Reads refuse:
///   - 403 before any lookup when the role never reads records (devices only submit them): the
///     answer cannot depend on whether the id exists;
///   - 404, the same answer as for an id that does not exist, to anyone else of a reading role with
///     no connection to the treatment, so that reads cannot confirm that someone was treated;
///   - 403 to a grantee whose consents naming the treatment are all revoked or expired: they learnt
///     the id from the consent, so there is nothing to hide, and the reason helps.
/// Listings by PID refuse with 403 when they could never return anything (a patient listing another
/// patient's PID) and for third parties and devices, who reach records through a consent's t_ids,
/// never by PID; otherwise they filter to what the caller may read.
///
/// Writes refuse with 403 any caller who lacks the right to act on a treatment that exists, and 404
/// when it does not; the treatment id they name is a 96-bit value a caller only learns from a party.
public struct MedRecordsChaincode: Chaincode {
    public let name = "medrecords"

    public init() {}

    public static let functions = [
        "createTreatment", "getTreatment", "listTreatments", "putIndexRecord", "getIndexRecord", "listIndexRecords",
        "grantAccess", "revokeAccess", "getConsent", "listConsents", "recordUsage", "listUsage", "publishKeys",
        "getKeys",
        "anchorAudit", "listAuditAnchors",
    ]

    public enum Event {
        public static let treatmentCreated = "TreatmentCreated"
        public static let indexRecordAdded = "IndexRecordAdded"
        public static let accessGranted = "AccessGranted"
        public static let accessRevoked = "AccessRevoked"
        public static let usageRecorded = "UsageRecorded"
        public static let keysPublished = "KeysPublished"
    }

    public func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
        let call = Call(stub: stub)
        do {
            switch stub.function {
            case "createTreatment": return .ok(try call.createTreatment(try call.request()))
            case "getTreatment": return .ok(try call.getTreatment(try call.request()))
            case "listTreatments": return .ok(try call.listTreatments(try call.request()))
            case "putIndexRecord": return .ok(try call.putIndexRecord(try call.request()))
            case "getIndexRecord": return .ok(try call.getIndexRecord(try call.request()))
            case "listIndexRecords": return .ok(try call.listIndexRecords(try call.request()))
            case "grantAccess": return .ok(try call.grantAccess(try call.request()))
            case "revokeAccess": return .ok(try call.revokeAccess(try call.request()))
            case "getConsent": return .ok(try call.getConsent(try call.request()))
            case "listConsents": return .ok(try call.listConsents(try call.request()))
            case "publishKeys": return .ok(try call.publishKeys(try call.request()))
            case "getKeys": return .ok(try call.getKeys(try call.request()))
            case "recordUsage": return .ok(try call.recordUsage(try call.request()))
            case "listUsage": return .ok(try call.listUsage(try call.request()))
            case "anchorAudit": return .ok(try call.anchorAudit(try call.request()))
            case "listAuditAnchors": return .ok(try call.listAuditAnchors(try call.request()))
            default:
                return .badRequest(
                    "medrecords: unknown function \(stub.function.debugDescription) (functions: \(Self.functions.joined(separator: ", ")))"
                )
            }
        } catch let refusal as Refusal {
            return refusal.response
        }
    }
}

/// One invocation: the stub plus the handlers. Errors other than `Refusal` (stub limits, corrupt
/// state) go up to the simulator, which answers 400 or 500.
struct Call {
    let stub: ChaincodeStub

    var me: CreatorIdentity { stub.creator }
    var now: Int64 { RFC3339.milliseconds(stub.timestamp) }
    var nowText: String { RFC3339.format(stub.timestamp) }

    func request<T: MedRecordsRequest>() throws(Refusal) -> T {
        try Wire.request(T.self, args: stub.args, function: stub.function)
    }

    // MARK: - Treatments

    func createTreatment(_ r: CreateTreatmentRequest) throws -> [UInt8] {
        // The SA's administrator is role admin too, but runs no hospital. A hospital's node is its
        // management node H_Mj, which books appointments (the Appointments service).
        guard me.role == .admin || me.role == .node, me.org != OrgID.systemAdministrator else {
            throw Refusal.forbidden("only a hospital's administrator or management node creates treatments")
        }
        let patient = try Field.pid(r.patientPID, "patient_pid")
        let doctor = try Field.pid(r.doctorPID, "doctor_pid")
        guard patient != doctor else { throw Refusal.badRequest("patient_pid and doctor_pid must differ") }
        let tID = IDKind.treatment.make(txID: stub.txID)
        try requireNew(Keys.treatment, tID)
        let t = Treatment(
            tID: tID, patientPID: patient, doctorPID: doctor, hospital: me.org, createdAt: nowText, createdBy: me.pid)
        let stored = try save(t, Keys.treatment, tID)
        try index(Keys.treatmentsByPatient, [patient, t.createdAt, tID])
        try index(Keys.treatmentsByDoctor, [doctor, t.createdAt, tID])
        try event(MedRecordsChaincode.Event.treatmentCreated, TreatmentCreatedEvent(tID: tID))
        return stored
    }

    func getTreatment(_ r: GetTreatmentRequest) throws -> [UInt8] { try Wire.encode(try treatment(r)) }

    func treatment(_ r: GetTreatmentRequest) throws -> Treatment {
        let tID = try Field.id(r.tID, .treatment, "t_id")
        let (t, standing) = try visibleTreatment(tID, missing: "no treatment \(tID)")
        try requireLive(standing, tID)
        return t
    }

    func listTreatments(_ r: ListTreatmentsRequest) throws -> [UInt8] { try Wire.encode(try treatments(r)) }

    func treatments(_ r: ListTreatmentsRequest) throws -> RecordPage<Treatment> {
        try Field.oneOf(("patient_pid", r.patientPID), ("doctor_pid", r.doctorPID))
        let size = try Field.pageSize(r.pageSize)
        let (indexType, owner, scope): (String, String, Scope)
        if let p = r.patientPID {
            owner = try Field.pid(p, "patient_pid")
            (indexType, scope) = (Keys.treatmentsByPatient, try listScope(patient: owner))
        } else {
            owner = try Field.pid(r.doctorPID ?? "", "doctor_pid")
            (indexType, scope) = (Keys.treatmentsByDoctor, try listScope(doctor: owner))
        }
        return try list(
            Treatment.self, index: indexType, owner: owner, primary: Keys.treatment, pageSize: size,
            bookmark: r.bookmark
        ) {
            scope.admits(patient: $0.patientPID, doctor: $0.doctorPID, hospital: $0.hospital)
        }
    }

    // MARK: - Index records (P_DE)

    func putIndexRecord(_ r: PutIndexRecordArgument) throws -> [UInt8] {
        // A node of the treatment's hospital submits for its FHIR face (an EHR or app holding both
        // signatures): the signatures, checked below, are what make a P_DE, not who carries it.
        let submitters: [Medledger_Role] = [.patient, .doctor, .admin, .device, .node]
        let who =
            "only the treatment's patient or doctor, or an administrator, device or node of its hospital, submits its index records"
        guard submitters.contains(me.role) else { throw Refusal.forbidden(who) }
        let tID = try Field.id(r.tID, .treatment, "t_id")
        let url = try Field.text(r.url, "url", max: Field.urlBytesMax)
        let digest = try Field.digest(r.digest)
        let patientSignature = try Field.signature(r.patientSignature, "patient_signature")
        let doctorSignature = try Field.signature(r.doctorSignature, "doctor_signature")
        let patientCert = try Field.certificate(
            try signerCertificate(r.patientCert, PutIndexRecordRequest.patientCertKey), "patient_cert")
        let doctorCert = try Field.certificate(
            try signerCertificate(r.doctorCert, PutIndexRecordRequest.doctorCertKey), "doctor_cert")
        let capsule = try r.capsule.map { c throws(Refusal) in try Field.capsule(c) }

        guard let t = try load(Treatment.self, Keys.treatment, tID) else {
            throw Refusal.notFound("no treatment \(tID)")
        }
        guard isParty(t, roles: submitters) else { throw Refusal.forbidden(who) }

        // The certificates must be live members' now (not revoked, in date, chained to their
        // organisation's root), and be the treatment's own patient and doctor: a valid signature by
        // anyone else proves nothing about this treatment.
        let patient = try member(patientCert, "patient certificate")
        let doctor = try member(doctorCert, "doctor certificate")
        guard patient.pid == t.patientPID, patient.role == .patient,
            doctor.pid == t.doctorPID, doctor.role == .doctor, doctor.org == t.hospital
        else { throw Refusal.forbidden("signers are not the treatment's patient and doctor") }
        try verify(patientSignature, by: patient, signer: "patient", tID: tID, url: url, digest: digest)
        try verify(doctorSignature, by: doctor, signer: "doctor", tID: tID, url: url, digest: digest)

        // One index record per ciphertext and treatment: a resubmission (a retried transaction) must
        // not list the same record twice.
        let digestKey = try stub.createCompositeKey(objectType: Keys.recordByDigest, attributes: [tID, digest])
        if let existing = try stub.getState(digestKey) {
            throw Refusal.conflict(
                "treatment \(tID) already has an index record for this digest: \(String(decoding: existing, as: UTF8.self))"
            )
        }
        let recordID = IDKind.record.make(txID: stub.txID)
        try requireNew(Keys.record, recordID)
        let record = IndexRecord(
            recordID: recordID, tID: tID, patientPID: t.patientPID, doctorPID: t.doctorPID, hospital: t.hospital,
            url: url, digest: digest,
            patientSignature: patientSignature, doctorSignature: doctorSignature, patientCert: patientCert,
            doctorCert: doctorCert,
            time: nowText, submittedBy: me.pid, capsule: capsule)
        try save(record, Keys.record, recordID)
        try stub.putState(digestKey, Array(recordID.utf8))
        try index(Keys.recordsByPatient, [t.patientPID, record.time, recordID])
        try index(Keys.recordsByTreatment, [tID, record.time, recordID])
        try event(MedRecordsChaincode.Event.indexRecordAdded, IndexRecordAddedEvent(recordID: recordID, tID: tID))
        return try Wire.encode(IndexRecordReceipt(record))
    }

    /// A P_DE signer's certificate, from the request or from the transient map under the same name
    /// (`PutIndexRecordRequest.proposalInputs`), never both: two copies that could differ leave it
    /// unclear which one the record would keep.
    func signerCertificate(_ inRequest: String?, _ name: String) throws(Refusal) -> String {
        switch (inRequest, stub.transient[name]) {
        case (let pem?, nil): return pem
        case (nil, let bytes?):
            guard let pem = String(validating: bytes, as: UTF8.self) else {
                throw .badRequest("putIndexRecord: transient \(name) is not UTF-8 text")
            }
            return pem
        case (nil, nil): throw .badRequest("putIndexRecord: missing field \(name.debugDescription)")
        case (_?, _?):
            throw .badRequest("putIndexRecord: \(name) is given twice, in the request and in the transient map")
        }
    }

    func getIndexRecord(_ r: GetIndexRecordRequest) throws -> [UInt8] { try Wire.encode(try indexRecord(r)) }

    func indexRecord(_ r: GetIndexRecordRequest) throws -> IndexRecord {
        let recordID = try Field.id(r.recordID, .record, "record_id")
        try requireReaderRole()
        let missing = "no index record \(recordID)"
        guard let record = try load(IndexRecord.self, Keys.record, recordID) else { throw Refusal.notFound(missing) }
        let (_, standing) = try visibleTreatment(record.tID, missing: missing)
        try requireLive(standing, record.tID)
        return record
    }

    func listIndexRecords(_ r: ListIndexRecordsRequest) throws -> [UInt8] { try Wire.encode(try indexRecords(r)) }

    func indexRecords(_ r: ListIndexRecordsRequest) throws -> RecordPage<IndexRecord> {
        try Field.oneOf(("patient_pid", r.patientPID), ("t_id", r.tID))
        let size = try Field.pageSize(r.pageSize)
        if let p = r.patientPID {
            let patient = try Field.pid(p, "patient_pid")
            let scope = try listScope(patient: patient)
            return try list(
                IndexRecord.self, index: Keys.recordsByPatient, owner: patient, primary: Keys.record, pageSize: size,
                bookmark: r.bookmark
            ) {
                scope.admits(patient: $0.patientPID, doctor: $0.doctorPID, hospital: $0.hospital)
            }
        }
        let tID = try Field.id(r.tID ?? "", .treatment, "t_id")
        let (_, standing) = try visibleTreatment(tID, missing: "no treatment \(tID)")
        try requireLive(standing, tID)
        return try list(
            IndexRecord.self, index: Keys.recordsByTreatment, owner: tID, primary: Keys.record, pageSize: size,
            bookmark: r.bookmark
        ) { _ in true }
    }

    // MARK: - Key directory

    func publishKeys(_ r: PublishKeysRequest) throws -> [UInt8] {
        guard [.patient, .doctor, .thirdParty, .device, .node, .admin].contains(me.role) else {
            throw Refusal.forbidden("role \(roleName) publishes no keys")
        }
        let encryptionKey = try Field.publicKey(r.encryptionKey, "encryption_key")
        let verifyingKey = try Field.publicKey(r.verifyingKey, "verifying_key")
        let entry = KeyDirectoryEntry(
            pid: me.pid, org: me.org, role: roleName, encryptionKey: encryptionKey, verifyingKey: verifyingKey,
            publishedAt: nowText)
        let stored = try save(entry, Keys.keyDirectory, me.pid)
        try event(MedRecordsChaincode.Event.keysPublished, KeysPublishedEvent(pid: me.pid))
        return stored
    }

    func getKeys(_ r: GetKeysRequest) throws -> [UInt8] {
        let pid = try Field.pid(r.pid, "pid")
        guard let entry = try load(KeyDirectoryEntry.self, Keys.keyDirectory, pid) else {
            throw Refusal.notFound("\(pid) has published no keys (medledger keys publish)")
        }
        return try Wire.encode(entry)
    }
}

// MARK: - Access

/// How the caller stands toward one treatment.
enum Standing: Equatable {
    /// Its patient, its doctor, an administrator or node of its hospital.
    case party
    /// Grantee of a live consent naming it.
    case consented
    /// Grantee of consents naming it, none of them live.
    case lapsed
    /// No connection.
    case stranger
}

/// What a listing by PID may show its caller.
struct Scope {
    var patient: String?
    var doctor: String?
    var hospital: String?

    func admits(patient p: String, doctor d: String, hospital h: String) -> Bool {
        (patient ?? p) == p && (doctor ?? d) == d && (hospital ?? h) == h
    }
}

extension Call {
    static let readerRoles: [Medledger_Role] = [.patient, .doctor, .admin, .node, .thirdParty]

    var roleName: String { RoleName.name(me.role) ?? "unspecified" }

    func requireReaderRole() throws(Refusal) {
        guard Self.readerRoles.contains(me.role) else {
            throw .forbidden("role \(roleName) does not read medical records")
        }
    }

    /// Whether the caller is a party of `t` in one of `roles`.
    func isParty(_ t: Treatment, roles: [Medledger_Role] = Call.readerRoles) -> Bool {
        guard roles.contains(me.role) else { return false }
        switch me.role {
        case .patient: return me.pid == t.patientPID
        case .doctor: return me.pid == t.doctorPID
        case .admin, .node, .device: return me.org == t.hospital
        default: return false
        }
    }

    func standing(toward t: Treatment) throws -> Standing {
        if isParty(t) { return .party }
        // A grantee may be of any reading role (a doctor of another hospital, say), not only a third party.
        let consents = try consents(grantee: me.pid, tID: t.tID)
        if consents.contains(where: isLive) { return .consented }
        return consents.isEmpty ? .stranger : .lapsed
    }

    /// The treatment and the caller's standing toward it; 404 (`missing`) if it does not exist or the
    /// caller has no connection to it, 403 for roles that never read.
    func visibleTreatment(_ tID: String, missing: String) throws -> (Treatment, Standing) {
        try requireReaderRole()
        guard let t = try load(Treatment.self, Keys.treatment, tID) else { throw Refusal.notFound(missing) }
        let standing = try standing(toward: t)
        guard standing != .stranger else { throw Refusal.notFound(missing) }
        return (t, standing)
    }

    func requireLive(_ standing: Standing, _ tID: String) throws(Refusal) {
        if standing == .lapsed { throw .forbidden("no live consent grants you treatment \(tID): revoked or expired") }
    }

    func listScope(patient pid: String) throws(Refusal) -> Scope {
        switch me.role {
        case .patient:
            guard me.pid == pid else { throw .forbidden("a patient lists only their own records") }
            return Scope()
        case .doctor: return Scope(doctor: me.pid)
        case .admin, .node: return Scope(hospital: me.org)
        default: throw .forbidden("role \(roleName) may not list by patient; use the t_ids of a consent")
        }
    }

    func listScope(doctor pid: String) throws(Refusal) -> Scope {
        switch me.role {
        case .doctor:
            guard me.pid == pid else { throw .forbidden("a doctor lists only their own treatments") }
            return Scope()
        case .patient: return Scope(patient: me.pid)
        case .admin, .node: return Scope(hospital: me.org)
        default: throw .forbidden("role \(roleName) may not list by doctor")
        }
    }

    /// The member identity, with its signing key, of a certificate carried in the arguments or the
    /// transient inputs.
    func member(_ pem: String, _ what: String) throws -> ValidatedSigner {
        do {
            return try stub.validateMember(certificatePEM: pem)
        } catch StubError.noMembership {
            throw Refusal.internalError(
                "medrecords needs the channel membership to check signer certificates, and this peer gave none")
        } catch {
            throw Refusal.forbidden("\(what) rejected: \(error)")
        }
    }

    func verify(
        _ signature: String, by member: ValidatedSigner, signer: String, tID: String, url: String, digest: String
    ) throws {
        let message = IndexRecordSigning.message(tid: tID, url: url, digestHex: digest)
        try verify(signature, by: member, message: message, failing: "\(signer) signature does not verify")
    }

    /// `signature` by `member`'s key (from the certificate the membership check accepted) over
    /// `message`, or a 400 saying `failing`.
    func verify(_ signature: String, by member: ValidatedSigner, message: [UInt8], failing: String) throws {
        guard IndexRecordSigning.isValid(signatureBase64: signature, key: member.verifyingKey, message: message)
        else { throw Refusal.badRequest(failing) }
    }
}

// MARK: - State

extension Call {
    func key(_ objectType: String, _ id: String) throws -> String {
        try stub.createCompositeKey(objectType: objectType, attributes: [id])
    }

    func load<T: Decodable>(_ type: T.Type, _ objectType: String, _ id: String) throws -> T? {
        let k = try key(objectType, id)
        guard let bytes = try stub.getState(k) else { return nil }
        return try Wire.decodeStored(T.self, bytes, key: k)
    }

    /// Stores `value` and returns the bytes stored, which a handler answers with (a P_DE is 2.4 KB
    /// of JSON: encoding it a second time for the answer cost 1–2 % of a loaded peer).
    @discardableResult
    func save(_ value: some Encodable, _ objectType: String, _ id: String) throws -> [UInt8] {
        let bytes = try Wire.encode(value)
        try stub.putState(try key(objectType, id), bytes)
        return bytes
    }

    func index(_ objectType: String, _ attributes: [String]) throws {
        try stub.putState(try stub.createCompositeKey(objectType: objectType, attributes: attributes), Keys.present)
    }

    /// Ids come from the transaction id; a record already under one means the id was reused.
    func requireNew(_ objectType: String, _ id: String) throws {
        if try stub.getState(try key(objectType, id)) != nil {
            throw Refusal.conflict("\(id) exists already: transaction id \(stub.txID) was used before")
        }
    }

    func event(_ name: String, _ payload: some Encodable) throws {
        try stub.setEvent(name: name, payload: try Wire.encode(payload))
    }

    /// One page of index `index` under `owner`, each entry's record loaded from `primary` and kept if
    /// `keep` says so. The bookmark is the last index key read (what the stub returns); one from
    /// another listing is refused rather than silently starting elsewhere.
    func list<R: Codable & Sendable & Equatable>(
        _ type: R.Type, index: String, owner: String, primary: String, pageSize: Int, bookmark: String?,
        keep: (R) throws -> Bool
    ) throws -> RecordPage<R> {
        let prefix = try stub.createCompositeKey(objectType: index, attributes: [owner])
        var from: String?
        if let bookmark, !bookmark.isEmpty {
            guard bookmark.utf8.starts(with: prefix.utf8) else {
                throw Refusal.badRequest("bookmark does not belong to this listing")
            }
            from = bookmark
        }
        let page = try stub.getStateByPartialCompositeKey(
            objectType: index, attributes: [owner], pageSize: pageSize, bookmark: from)
        var records = [R]()
        for entry in page.entries {
            guard let id = try stub.splitCompositeKey(entry.key).attributes.last,
                let record = try load(R.self, primary, id)
            else { throw CorruptRecord(key: entry.key, reason: "index entry without its record") }
            if try keep(record) { records.append(record) }
        }
        return RecordPage(records: records, bookmark: page.bookmark ?? "")
    }
}
