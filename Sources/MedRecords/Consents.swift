import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerIdentity
import LedgerProtos

/// `medrecords`' consents: a patient's signed grants and revocations, and the checks that a
/// grantee's consent is live.
extension Call {
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
        let stored = try save(consent, Keys.consent, consentID)
        try index(Keys.consentsByPatient, [grantor, consent.grantedAt, consentID])
        try index(Keys.consentsByGrantee, [grantee, consent.grantedAt, consentID])
        for tID in tIDs { try index(Keys.consentsByGranteeTreatment, [grantee, tID, consentID]) }
        try event(
            MedRecordsChaincode.Event.accessGranted, AccessGrantedEvent(consentID: consentID, granteePID: grantee))
        return stored
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
        let stored = try save(consent, Keys.consent, consentID)
        try event(
            MedRecordsChaincode.Event.accessRevoked,
            AccessRevokedEvent(consentID: consentID, granteePID: consent.granteePID))
        return stored
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

    // MARK: - Checks

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
}
