import Crypto
import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos

/// `medrecords`: the paper's on-chain records — treatments T_ID, index records P_DE, patients'
/// consents, and usage records D_UE. Every function takes one argument, a JSON object (see the
/// `…Request` types), and answers JSON with sorted keys; refusals are 400 (bad input), 403, 404 and
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
        try save(t, Keys.treatment, tID)
        try index(Keys.treatmentsByPatient, [patient, t.createdAt, tID])
        try index(Keys.treatmentsByDoctor, [doctor, t.createdAt, tID])
        try event(MedRecordsChaincode.Event.treatmentCreated, TreatmentCreatedEvent(tID: tID))
        return try Wire.encode(t)
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

    func putIndexRecord(_ r: PutIndexRecordRequest) throws -> [UInt8] {
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
        let patientCert = try Field.certificate(r.patientCert, "patient_cert")
        let doctorCert = try Field.certificate(r.doctorCert, "doctor_cert")
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
        return try Wire.encode(record)
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

    // MARK: - Consents

    func grantAccess(_ r: GrantAccessRequest) throws -> [UInt8] {
        let signed = [r.patientCert, r.patientSignature, r.nonce].contains { $0 != nil }
        guard me.role == .patient || (signed && me.role == .node) else {
            throw Refusal.forbidden("only a patient grants access to their treatments")
        }
        let grantee = try Field.pid(r.granteePID, "grantee_pid")
        let signature = try signed ? signedGrant(r) : nil
        let grantor = signature?.pid ?? me.pid
        guard grantee != grantor else {
            throw Refusal.badRequest("a patient needs no consent to read their own records")
        }
        guard (1...Field.treatmentsPerConsentMax).contains(r.tIDs.count) else {
            throw Refusal.badRequest("t_ids must list 1 to \(Field.treatmentsPerConsentMax) treatments")
        }
        var tIDs = [String]()
        for (i, raw) in r.tIDs.enumerated() {
            let tID = try Field.id(raw, .treatment, "t_ids[\(i)]")
            guard !tIDs.contains(tID) else { throw Refusal.badRequest("t_ids lists \(tID) twice") }
            tIDs.append(tID)
        }
        let purpose = try Field.text(r.purpose, "purpose", max: Field.purposeBytesMax)
        guard let expires = RFC3339.parse(r.expiresAt) else {
            throw Refusal.badRequest("expires_at must be an RFC 3339 time with a zone, such as 2030-01-31T00:00:00Z")
        }
        guard expires > now else {
            throw Refusal.badRequest("expires_at must be after the transaction's time \(nowText)")
        }
        for tID in tIDs {
            guard let t = try load(Treatment.self, Keys.treatment, tID) else {
                throw Refusal.notFound("no treatment \(tID)")
            }
            guard t.patientPID == grantor else { throw Refusal.forbidden("treatment \(tID) is not yours to share") }
        }

        let consentID = IDKind.consent.make(txID: stub.txID)
        try requireNew(Keys.consent, consentID)
        let consent = Consent(
            consentID: consentID, patientPID: grantor, granteePID: grantee, tIDs: tIDs, purpose: purpose,
            grantedAt: nowText, expiresAt: RFC3339.format(milliseconds: expires), grantSignature: signature?.kept)
        try save(consent, Keys.consent, consentID)
        try index(Keys.consentsByPatient, [grantor, consent.grantedAt, consentID])
        try index(Keys.consentsByGrantee, [grantee, consent.grantedAt, consentID])
        for tID in tIDs { try index(Keys.consentsByGranteeTreatment, [grantee, tID, consentID]) }
        try event(
            MedRecordsChaincode.Event.accessGranted, AccessGrantedEvent(consentID: consentID, granteePID: grantee))
        return try Wire.encode(consent)
    }

    func revokeAccess(_ r: RevokeAccessRequest) throws -> [UInt8] {
        let who = "only the patient who granted a consent revokes it"
        let signed = r.patientCert != nil || r.patientSignature != nil
        guard me.role == .patient || (signed && me.role == .node) else { throw Refusal.forbidden(who) }
        let consentID = try Field.id(r.consentID, .consent, "consent_id")
        let signature =
            try signed
            ? signingPatient(
                r.patientCert, r.patientSignature, ConsentSigning.revokeMessage(consentID: consentID), act: "revocation"
            )
            : nil
        let revoker = signature?.pid ?? me.pid
        guard var consent = try load(Consent.self, Keys.consent, consentID) else {
            throw Refusal.notFound("no consent \(consentID)")
        }
        guard consent.patientPID == revoker else {
            // The grantee knows the consent; another patient must not learn it exists.
            throw consent.granteePID == revoker ? Refusal.forbidden(who) : Refusal.notFound("no consent \(consentID)")
        }
        if let at = consent.revokedAt { throw Refusal.conflict("consent \(consentID) is already revoked (at \(at))") }
        consent.revokedAt = nowText
        consent.revocationSignature = signature?.kept
        try save(consent, Keys.consent, consentID)
        try event(
            MedRecordsChaincode.Event.accessRevoked,
            AccessRevokedEvent(consentID: consentID, granteePID: consent.granteePID))
        return try Wire.encode(consent)
    }

    func listConsents(_ r: ListConsentsRequest) throws -> [UInt8] { try Wire.encode(try consents(r)) }

    func consents(_ r: ListConsentsRequest) throws -> RecordPage<Consent> {
        try Field.oneOf(("patient_pid", r.patientPID), ("grantee_pid", r.granteePID))
        let size = try Field.pageSize(r.pageSize)
        let indexType: String
        let owner: String
        if let p = r.patientPID {
            owner = try Field.pid(p, "patient_pid")
            guard me.role == .patient, me.pid == owner else {
                throw Refusal.forbidden("a patient lists only their own consents")
            }
            indexType = Keys.consentsByPatient
        } else {
            owner = try Field.pid(r.granteePID ?? "", "grantee_pid")
            guard me.pid == owner else { throw Refusal.forbidden("a grantee lists only the consents granted to them") }
            indexType = Keys.consentsByGrantee
        }
        return try list(
            Consent.self, index: indexType, owner: owner, primary: Keys.consent, pageSize: size, bookmark: r.bookmark
        ) { _ in true }
    }

    func getConsent(_ r: GetConsentRequest) throws -> [UInt8] { try Wire.encode(try consent(r)) }

    func consent(_ r: GetConsentRequest) throws -> Consent {
        let consentID = try Field.id(r.consentID, .consent, "consent_id")
        // Only its patient and its grantee learn that a consent exists.
        guard let consent = try load(Consent.self, Keys.consent, consentID),
            consent.patientPID == me.pid || consent.granteePID == me.pid
        else {
            throw Refusal.notFound("no consent \(consentID)")
        }
        return consent
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
        try save(entry, Keys.keyDirectory, me.pid)
        try event(MedRecordsChaincode.Event.keysPublished, KeysPublishedEvent(pid: me.pid))
        return try Wire.encode(entry)
    }

    func getKeys(_ r: GetKeysRequest) throws -> [UInt8] {
        let pid = try Field.pid(r.pid, "pid")
        guard let entry = try load(KeyDirectoryEntry.self, Keys.keyDirectory, pid) else {
            throw Refusal.notFound("\(pid) has published no keys (medledger keys publish)")
        }
        return try Wire.encode(entry)
    }

    // MARK: - Usage (D_UE)

    func recordUsage(_ r: RecordUsageRequest) throws -> [UInt8] {
        guard (me.role == .thirdParty && me.pid == r.thirdPartyPID) || me.role == .node else {
            throw Refusal.forbidden(
                "usage is recorded by the third party itself or by the proxy node that re-encrypts for it")
        }
        let tID = try Field.id(r.tID, .treatment, "t_id")
        let thirdParty = try Field.pid(r.thirdPartyPID, "third_party_pid")
        let proxyNode = try Field.text(r.proxyNode, "proxy_node", max: Field.pidBytesMax)
        let purpose = try Field.text(r.purpose, "purpose", max: Field.purposeBytesMax)
        guard let t = try load(Treatment.self, Keys.treatment, tID) else {
            throw Refusal.notFound("no treatment \(tID)")
        }
        // Key fragments are spread over the proxies of several hospitals (m of n), so a node of any
        // hospital may be the proxy that re-encrypts; the live consent below is what authorises it.
        if me.role == .node, me.org == OrgID.systemAdministrator {
            throw Refusal.forbidden("the system administrator's node is no proxy")
        }
        // The consent is read here, so a revocation committed before this transaction makes it fail
        // validation (MVCC) even if it was endorsed while the consent still stood.
        let consent = try liveConsent(
            grantee: thirdParty, tID: tID, purpose: purpose,
            cited: r.consentID.map { try Field.id($0, .consent, "consent_id") })

        let usageID = IDKind.usage.make(txID: stub.txID)
        try requireNew(Keys.usage, usageID)
        let usage = UsageRecord(
            usageID: usageID, tID: tID, patientPID: t.patientPID, thirdPartyPID: thirdParty, proxyNode: proxyNode,
            purpose: purpose, time: nowText, consentID: consent.consentID, submittedBy: me.pid)
        try save(usage, Keys.usage, usageID)
        try index(Keys.usageByTreatment, [tID, usage.time, usageID])
        try index(Keys.usageByPatient, [t.patientPID, usage.time, usageID])
        try event(MedRecordsChaincode.Event.usageRecorded, UsageRecordedEvent(usageID: usageID, tID: tID))
        return try Wire.encode(usage)
    }

    func listUsage(_ r: ListUsageRequest) throws -> [UInt8] { try Wire.encode(try usage(r)) }

    func usage(_ r: ListUsageRequest) throws -> RecordPage<UsageRecord> {
        try Field.oneOf(("t_id", r.tID), ("patient_pid", r.patientPID))
        let size = try Field.pageSize(r.pageSize)
        if let p = r.patientPID {
            let patient = try Field.pid(p, "patient_pid")
            let scope = try listScope(patient: patient)
            var treatments = [String: Treatment]()
            return try list(
                UsageRecord.self, index: Keys.usageByPatient, owner: patient, primary: Keys.usage, pageSize: size,
                bookmark: r.bookmark
            ) { u in
                if treatments[u.tID] == nil { treatments[u.tID] = try load(Treatment.self, Keys.treatment, u.tID) }
                guard let t = treatments[u.tID] else {
                    throw CorruptRecord(key: u.tID, reason: "usage \(u.usageID) names a missing treatment")
                }
                return scope.admits(patient: t.patientPID, doctor: t.doctorPID, hospital: t.hospital)
            }
        }
        let tID = try Field.id(r.tID ?? "", .treatment, "t_id")
        let (_, standing) = try visibleTreatment(tID, missing: "no treatment \(tID)")
        // A grantee, live or lapsed, sees its own usage only, never other grantees'.
        let mine = me.pid
        let onlyMine = standing != .party
        return try list(
            UsageRecord.self, index: Keys.usageByTreatment, owner: tID, primary: Keys.usage, pageSize: size,
            bookmark: r.bookmark
        ) {
            !onlyMine || $0.thirdPartyPID == mine
        }
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

    func isLive(_ c: Consent) -> Bool { c.whyNotLive(at: stub.timestamp) == nil }

    /// At most this many consents are examined for one (grantee, treatment): a bound on the reads of
    /// one check, far above any real count.
    static let consentsScannedMax = 1000

    /// Every consent naming `tID` granted to `grantee`.
    func consents(grantee: String, tID: String) throws -> [Consent] {
        var out = [Consent]()
        var bookmark: String?
        repeat {
            let page = try stub.getStateByPartialCompositeKey(
                objectType: Keys.consentsByGranteeTreatment, attributes: [grantee, tID], pageSize: 100,
                bookmark: bookmark)
            for entry in page.entries {
                guard let id = try stub.splitCompositeKey(entry.key).attributes.last,
                    let c = try load(Consent.self, Keys.consent, id)
                else { throw CorruptRecord(key: entry.key, reason: "consent index entry without its consent") }
                out.append(c)
            }
            bookmark = page.bookmark
        } while bookmark != nil && out.count < Self.consentsScannedMax
        return out
    }

    /// The live consent under which `grantee` may use `tID` for `purpose` — the `cited` one if given
    /// (the consent whose key fragment a proxy used), else the latest-expiring — or 403 saying why
    /// there is none.
    func liveConsent(grantee: String, tID: String, purpose: String, cited: String? = nil) throws -> Consent {
        let all = try consents(grantee: grantee, tID: tID).filter { cited == nil || $0.consentID == cited }
        if let cited, all.isEmpty {
            throw Refusal.forbidden("no live consent: consent \(cited) does not grant treatment \(tID) to \(grantee)")
        }
        let forPurpose = all.filter { $0.purpose == purpose }
        let live = forPurpose.filter(isLive)
        if let best = live.max(by: { ($0.expiresAt, $0.consentID) < ($1.expiresAt, $1.consentID) }) { return best }
        let why: String
        if all.isEmpty {
            why = "no consent grants treatment \(tID) to \(grantee)"
        } else if forPurpose.isEmpty {
            why = "no consent for treatment \(tID) covers purpose \(purpose.debugDescription)"
        } else if forPurpose.allSatisfy({ $0.revokedAt != nil }) {
            why = "the consent was revoked"
        } else {
            why = "the consent expired"
        }
        throw Refusal.forbidden("no live consent: \(why)")
    }

    /// The patient whose signed grant a node submits, once the signature holds and its nonce is new
    /// (the nonce is then kept: the same signed grant never makes a second consent).
    func signedGrant(_ r: GrantAccessRequest) throws -> (pid: String, kept: PatientSignature) {
        let nonce = try Field.text(r.nonce ?? "", "nonce", max: Field.nonceBytesMax)
        let message = ConsentSigning.grantMessage(
            granteePID: r.granteePID, tIDs: r.tIDs, purpose: r.purpose, expiresAt: r.expiresAt, nonce: nonce)
        let grant = try signingPatient(r.patientCert, r.patientSignature, message, act: "grant")
        let nonceKey = try stub.createCompositeKey(objectType: Keys.consentNonce, attributes: [grant.pid, nonce])
        guard try stub.getState(nonceKey) == nil else {
            throw Refusal.conflict("this signed grant (nonce \(nonce)) was already submitted")
        }
        try stub.putState(nonceKey, Array(stub.txID.utf8))
        return grant
    }

    /// The patient who signed `message` with the certificate given (a live member, role patient),
    /// and the signature as the consent keeps it.
    func signingPatient(
        _ cert: String?, _ signature: String?, _ message: [UInt8], act: String
    ) throws -> (pid: String, kept: PatientSignature) {
        let pem = try Field.certificate(cert ?? "", "patient_cert")
        let signature = try Field.signature(signature ?? "", "patient_signature")
        let patient = try member(pem, "patient certificate")
        guard patient.role == .patient else {
            throw Refusal.forbidden(
                "a consent \(act) is signed by the patient, not a \(RoleName.name(patient.role) ?? "member")")
        }
        try verify(
            signature, by: patient, message: message,
            failing: "the patient's signature of the consent \(act) does not verify")
        return (
            patient.pid,
            PatientSignature(message: String(decoding: message, as: UTF8.self), signature: signature, certificate: pem)
        )
    }

    /// The member identity, with its signing key, of a certificate carried in the arguments.
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
        guard IndexRecordSigning.isValid(signatureBase64: signature, publicKey: member.publicKey, message: message)
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

    func save(_ value: some Encodable, _ objectType: String, _ id: String) throws {
        try stub.putState(try key(objectType, id), try Wire.encode(value))
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
