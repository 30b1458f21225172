import Foundation
import GRPCCore
import LedgerAudit
import LedgerFHIR
import LedgerFHIRServer
import LedgerIdentity
import LedgerIncidents
import LedgerObjects
import MedRecords
import X509

/// The FHIR face's writes. A SMART token says who asks; the node then submits in its own name
/// (`NodeSubmitter`, endorsed, ordered and validated like any transaction) what the caller's
/// signatures authorise, and `medrecords` verifies those signatures: the node cannot make a P_DE
/// or a consent that its signers did not sign. Audited as `record.write`.
extension NodeFHIRBackend {
    func createIndexRecord(_ s: DocumentSubmission, for caller: FHIRCaller) async throws -> IndexRecord {
        let digest = s.digest.lowercased()
        // A P_DE points at a sealed object this node keeps, stored for this treatment.
        guard ObjectStore.isDigest(digest), (try? objects.isStored(digest)) == true,
            let info = try? objects.info(digest)
        else {
            throw FHIRFailure(
                422,
                "this node stores no object with SHA-384 \(s.digest.prefix(96)): upload the sealed record first (medledger object put)"
            )
        }
        guard info.tID == s.tID, info.channel == channel else {
            throw FHIRFailure(422, "the object with that SHA-384 was stored for another treatment")
        }
        let treatment = try read(
            "getTreatment", caller, about: nil,
            { try MedRecordsReads.treatment(GetTreatmentRequest(tID: s.tID), stub: $0) }
        ) { [$0.patientPID] }
        let mayAdd =
            caller.kind == .system
            ? treatment.hospital == node.org : [treatment.patientPID, treatment.doctorPID].contains(caller.id)
        guard mayAdd else {
            throw FHIRFailure(
                403, "only the treatment's patient or doctor, or a backend service of its hospital, adds its records")
        }
        if let subject = s.subjectPID, subject != treatment.patientPID {
            throw FHIRFailure(400, "subject: not the treatment's patient")
        }
        let request = PutIndexRecordRequest(
            tID: s.tID, url: s.url, digest: digest, patientSignature: s.patient.data, doctorSignature: s.doctor.data,
            patientCert: s.patient.certificatePEM, doctorCert: s.doctor.certificatePEM, capsule: s.capsule)
        let receipt = try await submit(
            "putIndexRecord", try request.proposalInputs(), as: IndexRecordReceipt.self, caller,
            about: treatment.patientPID)
        return IndexRecord(request: request, receipt: receipt)
    }

    func grantConsent(_ s: ConsentGrantSubmission, for caller: FHIRCaller) async throws -> Consent {
        try requireSigningPatient(caller, s.signature, naming: s.patientPID)
        let request = GrantAccessRequest(
            granteePID: s.granteePID, tIDs: s.tIDs, purpose: s.purpose, expiresAt: s.expiresAt,
            patientCert: s.signature.certificatePEM, patientSignature: s.signature.data, nonce: s.nonce)
        return try await submit(
            "grantAccess", try ProposalInputs.json(request), as: Consent.self, caller, about: caller.id)
    }

    func revokeConsent(
        _ consentID: String, signature: SubmittedSignature, for caller: FHIRCaller
    ) async throws -> Consent {
        try requireSigningPatient(caller, signature, naming: caller.id)
        let request = RevokeAccessRequest(
            consentID: consentID, patientCert: signature.certificatePEM, patientSignature: signature.data)
        return try await submit(
            "revokeAccess", try ProposalInputs.json(request), as: Consent.self, caller, about: caller.id)
    }

    /// Consents are the patient's own acts: their token, their certificate, about themselves.
    func requireSigningPatient(_ caller: FHIRCaller, _ signature: SubmittedSignature, naming patient: String) throws {
        guard caller.kind == .user, caller.role == "patient" else {
            throw FHIRFailure(403, "only a patient grants or revokes consents, with their own token")
        }
        guard patient == caller.id else {
            throw FHIRFailure(403, "patient: a patient's token grants consents only for that patient")
        }
        let signer = (try? Certificate(pemEncoded: signature.certificatePEM)).flatMap {
            IdentityAttributes(subject: $0.subject)
        }
        guard let signer else { throw FHIRFailure(400, "the signer's certificate does not parse or names no PID") }
        guard signer.pid == caller.id else {
            throw FHIRFailure(403, "the consent is signed by \(signer.pid), not by the token's patient")
        }
    }

    /// Submits in the node's name, waits for the commit, and audits the outcome about `patient`.
    func submit<Answer: Decodable>(
        _ function: String, _ inputs: ProposalInputs, as: Answer.Type, _ caller: FHIRCaller, about patient: String
    ) async throws -> Answer {
        let actor = AuditActor(pid: caller.id, org: caller.org, role: caller.kind == .system ? "system" : caller.role)
        func note(_ outcome: AuditOutcome, _ detail: String) {
            audit?.note(
                AuditEvent(
                    actor: actor, action: "record.write", target: patient, outcome: outcome,
                    detail: "\(function) on channel \(channel), \(detail), fhir client \(caller.clientID)"))
        }
        do {
            let (answer, result) = try await submitter.submit(function, inputs, channel: channel, Answer.self)
            note(.success, "tx \(result.txID)")
            return answer
        } catch let e as RPCError {
            let status = StatusMapping.status(of: e.code)
            note(status < 500 ? .denied : .failed, "status \(status)")
            if [401, 403, 404].contains(status) {
                incidents?.observe(
                    .refused(status: status), by: Subject(pid: actor.pid, org: actor.org, role: actor.role))
            }
            throw FHIRFailure(status, e.message)
        }
    }
}
