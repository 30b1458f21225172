import Crypto
import Foundation
import LedgerChaincode
import LedgerCrypto
import MedRecords
import Testing

/// The paper's whole flow, from appointment to a third party's use and its end.
@Suite struct EndToEndTests {
    @Test func appointmentIndexRecordConsentUsageRevocationAndExpiry() throws {
        let w = try World()

        // Appointment: H_Mj books T_ID(P, D).
        let created = try w.submit(
            w.adminA, "createTreatment", CreateTreatmentRequest(patientPID: w.patient1.pid, doctorPID: w.doctorA1.pid))
        #expect(created.response.status == 200)
        #expect(created.event?.eventName == "TreatmentCreated")
        let t = try World.decode(Treatment.self, created)
        #expect(t.tID.wholeMatch(of: /T-[0-9a-f]{24}/) != nil)
        #expect(t.patientPID == w.patient1.pid && t.doctorPID == w.doctorA1.pid)
        #expect(t.hospital == "hospital-a" && t.createdBy == w.adminA.pid)
        #expect(t.createdAt.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)

        // Upload: the P_DE, signed by both, submitted by the doctor.
        let ciphertext = Array("not really AES-GCM, but only its digest reaches the chain".utf8)
        let request = try w.indexRequest(
            t, patient: w.patient1, doctor: w.doctorA1, url: "https://store.hospital-a.example/o/1",
            ciphertext: ciphertext)
        let put = try w.submit(w.doctorA1, "putIndexRecord", request)
        #expect(put.response.status == 200, "\(put.response.message)")
        // The answer is a receipt (the request already carries the rest); with the request it is the record.
        let record = IndexRecord(request: request, receipt: try World.decode(IndexRecordReceipt.self, put))
        #expect(record.recordID.wholeMatch(of: /R-[0-9a-f]{24}/) != nil)
        #expect(
            record.tID == t.tID && record.patientPID == w.patient1.pid && record.doctorPID == w.doctorA1.pid
                && record.hospital == "hospital-a")
        #expect(record.digest == IndexRecordSigning.digestHex(ofCiphertext: ciphertext))
        #expect(record.submittedBy == w.doctorA1.pid)
        #expect(put.event?.eventName == "IndexRecordAdded")
        let eventBody = try #require(
            try JSONSerialization.jsonObject(with: put.event?.payload ?? Data()) as? [String: String])
        #expect(eventBody == ["record_id": record.recordID, "t_id": t.tID], "ids only in events")
        // Nothing but the URL, digest, signatures and certificates: no plaintext anywhere.
        #expect(!String(decoding: put.response.payload, as: UTF8.self).contains("not really AES-GCM"))

        // Query: the parties read it; the patient re-verifies both signatures from the record alone.
        for reader in [w.patient1, w.doctorA1, w.adminA, w.nodeA] {
            let got = try w.call(reader, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID))
            #expect(got.response.status == 200, "\(reader.label): \(got.response.message)")
            #expect(try World.decode(IndexRecord.self, got) == record)
            #expect(got.results.nsRwset.first?.rwset.writes.isEmpty == true, "reads write nothing")
        }
        let patientKey = try #require(try IndexRecordSigning.publicKey(certificatePEM: record.patientCert))
        #expect(
            IndexRecordSigning.isValid(
                signatureBase64: record.patientSignature, publicKey: patientKey, tid: record.tID, url: record.url,
                digestHex: record.digest))
        let byPatient = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.patient1, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid)))
        #expect(byPatient.records == [record] && byPatient.bookmark == "")
        let byTreatment = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.doctorA1, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID)))
        #expect(byTreatment.records == [record])
        #expect(
            try World.decode(Treatment.self, try w.call(w.patient1, "getTreatment", GetTreatmentRequest(tID: t.tID)))
                == t)

        // Sharing: the patient grants a research institute access for one purpose.
        expectRefused(try w.call(w.research1, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)), 404)
        let granted = try w.submit(
            w.patient1, "grantAccess",
            GrantAccessRequest(
                granteePID: w.research1.pid, tIDs: [t.tID], purpose: "study-42",
                expiresAt: World.rfc3339(w.clock.addingTimeInterval(86_400))))
        #expect(granted.response.status == 200, "\(granted.response.message)")
        #expect(granted.event?.eventName == "AccessGranted")
        let consent = try World.decode(Consent.self, granted)
        #expect(consent.consentID.wholeMatch(of: /C-[0-9a-f]{24}/) != nil)
        #expect(
            consent.patientPID == w.patient1.pid && consent.granteePID == w.research1.pid && consent.tIDs == [t.tID]
                && consent.revokedAt == nil)
        #expect(
            try w.call(w.research1, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)).response.status
                == 200)
        #expect(
            try World.decode(
                RecordPage<IndexRecord>.self,
                try w.call(w.research1, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID))
            ).records == [record])

        // The third party records its own use, and the hospital's proxy node records one too.
        let used = try w.submit(
            w.research1, "recordUsage",
            RecordUsageRequest(tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42"))
        #expect(used.response.status == 200, "\(used.response.message)")
        #expect(used.event?.eventName == "UsageRecorded")
        let usage = try World.decode(UsageRecord.self, used)
        #expect(usage.usageID.wholeMatch(of: /U-[0-9a-f]{24}/) != nil)
        #expect(
            usage.consentID == consent.consentID && usage.patientPID == w.patient1.pid
                && usage.thirdPartyPID == w.research1.pid)
        #expect(usage.submittedBy == w.research1.pid)
        let proxied = try w.submit(
            w.nodeA, "recordUsage",
            RecordUsageRequest(tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42"))
        #expect(proxied.response.status == 200, "\(proxied.response.message)")
        let usage2 = try World.decode(UsageRecord.self, proxied)

        for reader in [w.patient1, w.doctorA1, w.adminA, w.research1] {
            let page = try World.decode(
                RecordPage<UsageRecord>.self, try w.call(reader, "listUsage", ListUsageRequest(tID: t.tID)))
            #expect(page.records == [usage, usage2], "\(reader.label)")
        }
        #expect(
            try World.decode(
                RecordPage<UsageRecord>.self,
                try w.call(w.patient1, "listUsage", ListUsageRequest(patientPID: w.patient1.pid))
            ).records == [usage, usage2])
        #expect(
            try World.decode(
                RecordPage<Consent>.self,
                try w.call(w.patient1, "listConsents", ListConsentsRequest(patientPID: w.patient1.pid))
            ).records == [consent])
        #expect(
            try World.decode(
                RecordPage<Consent>.self,
                try w.call(w.research1, "listConsents", ListConsentsRequest(granteePID: w.research1.pid))
            ).records == [consent])

        // The patient revokes: no more usage, no more reading, and no second revocation.
        let revoked = try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: consent.consentID))
        #expect(revoked.response.status == 200, "\(revoked.response.message)")
        #expect(revoked.event?.eventName == "AccessRevoked")
        #expect(try World.decode(Consent.self, revoked).revokedAt != nil)
        expectRefused(
            try w.call(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: consent.consentID)), 409,
            "already revoked")
        expectRefused(
            try w.call(
                w.research1, "recordUsage",
                RecordUsageRequest(
                    tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42")), 403,
            "no live consent: the consent was revoked")
        expectRefused(
            try w.call(
                w.nodeA, "recordUsage",
                RecordUsageRequest(
                    tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42")), 403,
            "no live consent")
        expectRefused(
            try w.call(w.research1, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)), 403,
            "no live consent")
        // Its own usage stays visible to the third party.
        #expect(
            try World.decode(
                RecordPage<UsageRecord>.self, try w.call(w.research1, "listUsage", ListUsageRequest(tID: t.tID))
            ).records.count == 2)

        // A fresh consent for an hour: usable now, refused once the hour has passed.
        let hour = try w.grant(w.research1, [t.tID], purpose: "study-42", for: 3600)
        #expect(
            try w.submit(
                w.research1, "recordUsage",
                RecordUsageRequest(
                    tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42")
            ).response.status == 200)
        w.clock = w.clock.addingTimeInterval(3600)
        expectRefused(
            try w.call(
                w.research1, "recordUsage",
                RecordUsageRequest(
                    tID: t.tID, thirdPartyPID: w.research1.pid, proxyNode: w.nodeA.pid, purpose: "study-42")), 403,
            "no live consent: the consent expired")
        expectRefused(try w.call(w.research1, "getTreatment", GetTreatmentRequest(tID: t.tID)), 403)
        // Revoking an expired consent is still allowed (it records the patient's intent).
        #expect(
            try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: hour.consentID)).response.status
                == 200)
    }

    @Test func answersAreDeterministicSortedSnakeCaseJSON() throws {
        let w = try World()
        let body = try World.encode(CreateTreatmentRequest(patientPID: w.patient1.pid, doctorPID: w.doctorA1.pid))
        let inv = Invocation(
            channel: "ch", txID: "same-tx", timestamp: World.start, creator: w.adminA.identity,
            function: "createTreatment", args: [body])
        let a = Simulator.simulate(MedRecordsChaincode(), invocation: inv, state: w.ledger.state)
        let b = Simulator.simulate(MedRecordsChaincode(), invocation: inv, state: w.ledger.state)
        #expect(a.response == b.response)
        #expect(try a.results.serializedBytes() == b.results.serializedBytes())
        #expect(a.event == b.event)
        let text = String(decoding: a.response.payload, as: UTF8.self)
        let keys = ["created_at", "created_by", "doctor_pid", "hospital", "patient_pid", "t_id"]
        let positions = keys.map { text.range(of: "\"\($0)\"")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "keys sorted: \(text)")
        #expect(text.contains("\"created_at\":\"2030-03-17T17:46:40.000Z\""), "\(text)")
        // The id comes from the transaction id: T- and the first 24 hex digits of SHA-256("same-tx").
        let expectedID = "T-" + Hex.encode(SHA256.hash(data: Array("same-tx".utf8))).prefix(24)
        #expect(try World.decode(Treatment.self, a).tID == expectedID)
    }

    @Test func unknownFunctionsAndMalformedArgumentsAre400() throws {
        let w = try World()
        expectRefused(w.call(w.adminA, "frobnicate", json: "{}"), 400, "unknown function")
        expectRefused(w.call(w.adminA, "createTreatment", args: []).result, 400, "one argument")
        expectRefused(
            w.call(w.adminA, "createTreatment", args: [Array("{}".utf8), Array("{}".utf8)]).result, 400, "one argument")
        expectRefused(w.call(w.adminA, "createTreatment", json: "not json"), 400, "not a JSON object")
        expectRefused(w.call(w.adminA, "createTreatment", json: "[1, 2]"), 400, "not a JSON object")
        expectRefused(w.call(w.adminA, "createTreatment", json: "null"), 400, "not a JSON object")
        expectRefused(w.call(w.adminA, "createTreatment", json: #""text""#), 400, "not a JSON object")
        expectRefused(w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "p""#), 400, "not a JSON object")
        // Well-formed structure, malformed content: refused at the field (the JSON scanner checks escapes
        // and numbers as it decodes them), or as an unknown field before its content is read.
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "\x", "doctor_pid": "d"}"#), 400,
            #"createTreatment: "#)
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "p", "doctor_pid": "d", "zz": 1.2.3}"#), 400,
            #"unknown field "zz""#)
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "p"}"#), 400, #"missing field "doctor_pid""#)
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": 7, "doctor_pid": "d"}"#), 400,
            #"field "patient_pid" must be a string"#)
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": null, "doctor_pid": "d"}"#), 400, "is null")
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "p", "doctor_pid": "d", "rid": "Jane Doe"}"#),
            400, #"unknown field "rid""#)
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "", "doctor_pid": "d"}"#), 400,
            "patient_pid must not be empty")
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "p q", "doctor_pid": "d"}"#), 400,
            "printable ASCII")
        expectRefused(
            w.call(w.adminA, "createTreatment", json: #"{"patient_pid": "same", "doctor_pid": "same"}"#), 400,
            "must differ")
        expectRefused(
            w.call(w.patient1, "getTreatment", json: #"{"t_id": "R-000000000000000000000000"}"#), 400,
            "not a treatment id")
        expectRefused(w.call(w.patient1, "listTreatments", json: "{}"), 400, "exactly one of")
        expectRefused(
            w.call(w.patient1, "listTreatments", json: #"{"patient_pid": "a", "doctor_pid": "b"}"#), 400,
            "exactly one of")
        expectRefused(
            w.call(w.patient1, "listTreatments", json: #"{"patient_pid": "a", "page_sise": 3}"#), 400, "unknown field")
    }
}
