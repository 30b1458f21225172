import Crypto
import Foundation
import LedgerChaincode
import MedRecords
import Testing

/// putIndexRecord: who may submit, whose signatures count, and what a signature binds.
@Suite struct IndexRecordTests {
    @Test func createTreatmentIsForHospitalAdministratorsAndManagementNodesOnly() throws {
        let w = try World()
        let body = CreateTreatmentRequest(patientPID: w.patient1.pid, doctorPID: w.doctorA1.pid)
        for caller in [w.patient1, w.doctorA1, w.deviceA, w.research1] {
            expectRefused(try w.call(caller, "createTreatment", body), 403, "administrator or management node")
        }
        expectRefused(try w.call(w.saAdmin, "createTreatment", body), 403, "hospital's administrator")
        let ok = try w.call(w.adminB, "createTreatment", body)
        #expect(ok.response.status == 200)
        #expect(try World.decode(Treatment.self, ok).hospital == "hospital-b")
        // The management node H_Mj books appointments in its own name.
        let byNode = try w.call(w.nodeA, "createTreatment", body)
        #expect(byNode.response.status == 200, "\(byNode.response.message)")
        #expect(try World.decode(Treatment.self, byNode).createdBy == w.nodeA.pid)
        // Indexed by patient and by doctor, stored under its id.
        #expect(writtenKeys(ok).count == 3)
    }

    @Test func theTreatmentsPartiesAndItsHospitalsAdminDevicesAndNodeMaySubmit() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        // The node carries P_DEs its FHIR face receives; the two signatures still decide.
        for submitter in [w.doctorA1, w.patient1, w.adminA, w.deviceA, w.nodeA] {
            let r = try w.submit(
                submitter, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1))
            #expect(r.response.status == 200, "\(submitter.label): \(r.response.message)")
            #expect(try World.decode(IndexRecordReceipt.self, r).submittedBy == submitter.pid)
        }
        for outsider in [w.patient2, w.doctorA2, w.adminB, w.doctorB, w.nodeB, w.research1, w.saAdmin] {
            expectRefused(
                try w.call(outsider, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)),
                403, "submits its index records")
        }
        let page = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.patient1, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID)))
        #expect(page.records.count == 5)
    }

    @Test func theCertificatesTravelInTheTransientMapOrTheRequestNeverBoth() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let request = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)
        let inputs = try request.proposalInputs()
        // What the transaction will carry: the argument, without either certificate.
        let argument = try #require(try JSONSerialization.jsonObject(with: Data(inputs.args[0])) as? [String: Any])
        #expect(
            argument["patient_cert"] == nil && argument["doctor_cert"] == nil && argument["t_id"] as? String == t.tID)
        #expect(
            inputs.transient == ["patient_cert": Array(w.patient1.pem.utf8), "doctor_cert": Array(w.doctorA1.pem.utf8)])

        let r = w.call(w.nodeA, "putIndexRecord", inputs)
        #expect(r.response.status == 200, "\(r.response.message)")
        // The record the chaincode stored keeps both certificates, as when they came in the request.
        let stored = try #require(
            r.results.nsRwset.flatMap(\.rwset.writes).first { $0.key.hasPrefix("\u{0}pde\u{0}") })
        let record = try JSONDecoder().decode(IndexRecord.self, from: stored.value)
        #expect(record.patientCert == w.patient1.pem && record.doctorCert == w.doctorA1.pem)
        #expect(record == IndexRecord(request: request, receipt: try World.decode(IndexRecordReceipt.self, r)))

        var both = inputs
        both.args = [try World.encode(request)]
        expectRefused(w.call(w.nodeA, "putIndexRecord", both), 400, "patient_cert is given twice")
        var neither = inputs
        neither.transient["doctor_cert"] = nil
        expectRefused(w.call(w.nodeA, "putIndexRecord", neither), 400, "missing field \"doctor_cert\"")
        // A null is not an absent certificate.
        var nullArgument = try #require(try JSONSerialization.jsonObject(with: Data(inputs.args[0])) as? [String: Any])
        nullArgument["doctor_cert"] = NSNull()
        var withNull = inputs
        withNull.args = [Array(try JSONSerialization.data(withJSONObject: nullArgument))]
        expectRefused(w.call(w.nodeA, "putIndexRecord", withNull), 400, "field \"doctor_cert\" is null")
        var notText = inputs
        notText.transient["doctor_cert"] = [0xff, 0xfe, 0x00]
        expectRefused(w.call(w.nodeA, "putIndexRecord", notText), 400, "transient doctor_cert is not UTF-8")
        // A certificate in the transient map is judged as one in the request is.
        var swapped = inputs
        swapped.transient["doctor_cert"] = Array(w.doctorA2.pem.utf8)
        expectRefused(
            w.call(w.nodeA, "putIndexRecord", swapped), 403, "signers are not the treatment's patient and doctor")
    }

    @Test func theCreatorsOwnCertificateIsNotListedAgainAsACheckedSigner() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        // Validation re-checks the creator anyway; each other signer the chaincode accepted is listed.
        let cases: [(Person, [String])] = [
            (w.doctorA1, [w.patient1.pem]), (w.patient1, [w.doctorA1.pem]),
            (w.nodeA, [w.patient1.pem, w.doctorA1.pem]),
        ]
        for (submitter, listed) in cases {
            let r = w.call(
                submitter, "putIndexRecord",
                try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1).proposalInputs())
            #expect(r.response.status == 200, "\(submitter.label): \(r.response.message)")
            #expect(r.results.checkedSigners == listed.map { Data($0.utf8) }, "\(submitter.label)")
        }
    }

    @Test func unknownAndMalformedTreatments() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        var request = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)
        request.tID = "T-" + String(repeating: "0", count: 24)
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", request), 404, "no treatment")
        request.tID = "T-123"
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", request), 400, "not a treatment id")
    }

    @Test func signersMustBeTheTreatmentsPatientAndDoctor() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let wrongPairs: [(Person, Person)] = [
            (w.patient2, w.doctorA1),  // another patient
            (w.patient1, w.doctorA2),  // another doctor of the same hospital
            (w.doctorA1, w.patient1),  // the right people in the wrong places
            (w.patient1, w.adminA),  // an administrator is no doctor
        ]
        for (p, d) in wrongPairs {
            let r = try w.call(w.doctorA1, "putIndexRecord", try w.indexRequest(t, patient: p, doctor: d))
            expectRefused(r, 403, "signers are not the treatment's patient and doctor")
        }
    }

    @Test func aDoctorOfAnotherHospitalCannotSign() throws {
        let w = try World()
        // Hospital A booked a treatment naming hospital B's doctor (nothing checks PIDs at booking).
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorB)
        let r = try w.call(w.patient1, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: w.doctorB))
        expectRefused(r, 403, "signers are not the treatment's patient and doctor")
    }

    @Test func revokedExpiredAndForeignCertificatesAreRejected() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let request = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)

        w.revoked = [w.doctorA1.cert.serialNumber]
        expectRefused(
            try w.call(w.patient1, "putIndexRecord", request), 403,
            "doctor certificate rejected: certificate \(w.doctorA1.cert.serialHex) is revoked")
        w.revoked = [w.patient1.cert.serialNumber]
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", request), 403, "patient certificate rejected")
        w.revoked = []

        // The same PID and role, issued by a CA the channel does not trust.
        let rogue = try TestCA(now: World.start)
        let forged = try rogue.person("patient-1", org: "hospital-a", role: .patient, now: World.start)
        #expect(forged.pid == w.patient1.pid)
        expectRefused(
            try w.call(w.doctorA1, "putIndexRecord", try w.indexRequest(t, patient: forged, doctor: w.doctorA1)), 403,
            "not issued by the channel's CA")

        // A doctor certificate that expired before the transaction.
        let shortLived = try w.ca.person(
            "doctor-a1", org: "hospital-a", role: .doctor, now: World.start.addingTimeInterval(-3600), validity: 10)
        expectRefused(
            try w.call(w.doctorA1, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: shortLived)),
            403, "not valid at the transaction's time")

        var garbage = request
        garbage.patientCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", garbage), 403, "patient certificate rejected")
        #expect(try w.call(w.doctorA1, "putIndexRecord", request).response.status == 200)
    }

    @Test func signaturesMustVerifyOverThisTreatmentURLAndDigest() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let other = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let good = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)

        var tampered = good
        tampered.digest = IndexRecordSigning.digestHex(ofCiphertext: [1, 2, 3])
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", tampered), 400, "patient signature does not verify")

        var moved = good
        moved.url = "https://elsewhere.example/o/1"
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", moved), 400, "patient signature does not verify")

        // Signatures made for another treatment cannot be replayed into this one.
        var replayed = try w.indexRequest(other, patient: w.patient1, doctor: w.doctorA1)
        replayed.tID = t.tID
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", replayed), 400, "patient signature does not verify")

        var doctorSignedForPatient = good
        doctorSignedForPatient.patientSignature = good.doctorSignature
        expectRefused(
            try w.call(w.doctorA1, "putIndexRecord", doctorSignedForPatient), 400, "patient signature does not verify")

        var badDoctor = good
        badDoctor.doctorSignature = try IndexRecordSigning.sign(
            tid: t.tID, url: good.url, digestHex: IndexRecordSigning.digestHex(ofCiphertext: [9]), key: w.doctorA1.key)
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", badDoctor), 400, "doctor signature does not verify")

        var notDER = good
        notDER.patientSignature = Data(repeating: 7, count: 64).base64EncodedString()
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", notDER), 400, "patient signature does not verify")

        var notBase64 = good
        notBase64.patientSignature = "%%%"
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", notBase64), 400, "base64")

        var shortDigest = good
        shortDigest.digest = String(good.digest.dropLast(2))
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", shortDigest), 400, "96 hex digits")

        var emptyURL = good
        emptyURL.url = ""
        expectRefused(try w.call(w.doctorA1, "putIndexRecord", emptyURL), 400, "url must not be empty")

        // The digest may come in upper case; it is stored in lower case and signatures still verify.
        var upper = good
        upper.digest = good.digest.uppercased()
        let r = try w.call(w.doctorA1, "putIndexRecord", upper)
        #expect(r.response.status == 200, "\(r.response.message)")
        #expect(try World.decode(IndexRecordReceipt.self, r).digest == good.digest)
    }

    @Test func theSameCiphertextIsIndexedOncePerTreatment() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let request = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)
        let first = try w.submit(w.doctorA1, "putIndexRecord", request)
        #expect(first.response.status == 200)
        let recordID = try World.decode(IndexRecordReceipt.self, first).recordID
        expectRefused(try w.call(w.patient1, "putIndexRecord", request), 409, recordID)
    }

    @Test func withoutChannelMembershipNothingIsAccepted() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        w.withMembership = false
        expectRefused(
            try w.call(w.doctorA1, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)),
            500, "channel membership")
    }

    @Test func theSignedMessageIsDomainSeparated() throws {
        let digest = String(repeating: "AB", count: 48)
        let message = IndexRecordSigning.message(tid: "T-1", url: "https://x/y", digestHex: digest)
        #expect(
            String(decoding: message, as: UTF8.self) == "medledger/pde/v1\nT-1\nhttps://x/y\n"
                + String(repeating: "ab", count: 48))
        let key = P256.Signing.PrivateKey()
        let signature = try IndexRecordSigning.sign(tid: "T-1", url: "https://x/y", digestHex: digest, key: key)
        let der = try #require(Data(base64Encoded: signature))
        #expect(key.publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message))
        #expect(
            IndexRecordSigning.isValid(
                signatureBase64: signature, publicKey: key.publicKey, tid: "T-1", url: "https://x/y",
                digestHex: digest.lowercased()))
        #expect(
            !IndexRecordSigning.isValid(
                signatureBase64: signature, publicKey: key.publicKey, tid: "T-2", url: "https://x/y", digestHex: digest)
        )
        #expect(
            !IndexRecordSigning.isValid(
                signatureBase64: signature, publicKey: P256.Signing.PrivateKey().publicKey, tid: "T-1",
                url: "https://x/y", digestHex: digest))
    }
}
