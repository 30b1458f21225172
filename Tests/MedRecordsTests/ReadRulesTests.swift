import Foundation
import LedgerChaincode
import Testing

@testable import MedRecords

/// Who reads what: parties read, grantees of a live consent read, strangers get the same 404 as for
/// an id that does not exist, devices never read (403), listings by PID filter or refuse.
@Suite struct ReadRulesTests {
    @Test func treatmentsAndIndexRecordsAreReadByPartiesOnly() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let record = try w.putIndexRecord(t)
        let missingT = "T-" + String(repeating: "0", count: 24)
        let missingR = "R-" + String(repeating: "0", count: 24)

        for reader in [w.patient1, w.doctorA1, w.adminA, w.nodeA] {
            #expect(
                try w.call(reader, "getTreatment", GetTreatmentRequest(tID: t.tID)).response.status == 200,
                "\(reader.label)")
            #expect(
                try w.call(reader, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)).response.status
                    == 200, "\(reader.label)")
            #expect(
                try w.call(reader, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID)).response.status == 200,
                "\(reader.label)")
            #expect(
                try w.call(reader, "listUsage", ListUsageRequest(tID: t.tID)).response.status == 200, "\(reader.label)")
        }
        // Strangers cannot tell an existing id from a missing one.
        for stranger in [w.patient2, w.doctorA2, w.adminB, w.doctorB, w.nodeB, w.research1, w.saAdmin] {
            let r = try w.call(stranger, "getTreatment", GetTreatmentRequest(tID: t.tID))
            expectRefused(r, 404)
            #expect(
                r.response.message
                    == (try w.call(stranger, "getTreatment", GetTreatmentRequest(tID: missingT))).response.message
                    .replacingOccurrences(of: missingT, with: t.tID))
            let g = try w.call(stranger, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID))
            expectRefused(g, 404)
            #expect(
                g.response.message
                    == (try w.call(stranger, "getIndexRecord", GetIndexRecordRequest(recordID: missingR))).response
                    .message.replacingOccurrences(of: missingR, with: record.recordID))
            expectRefused(try w.call(stranger, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID)), 404)
            expectRefused(try w.call(stranger, "listUsage", ListUsageRequest(tID: t.tID)), 404)
        }
        // Devices submit records but never read them, whatever the id.
        for request in [GetTreatmentRequest(tID: t.tID), GetTreatmentRequest(tID: missingT)] {
            expectRefused(try w.call(w.deviceA, "getTreatment", request), 403, "does not read")
        }
        expectRefused(try w.call(w.deviceA, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)), 403)
        expectRefused(try w.call(w.deviceA, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID)), 403)
        expectRefused(
            try w.call(w.deviceA, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid)), 403)
    }

    @Test func listingsByPatientFilterToWhatTheCallerMayReadOrRefuse() throws {
        let w = try World()
        let withA1 = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let withA2 = try w.createTreatment(patient: w.patient1, doctor: w.doctorA2)
        let atB = try w.createTreatment(patient: w.patient1, doctor: w.doctorB, by: w.adminB)
        let r1 = try w.putIndexRecord(withA1)
        let r2 = try w.submit(
            w.doctorA2, "putIndexRecord", try w.indexRequest(withA2, patient: w.patient1, doctor: w.doctorA2))
        let r3 = try w.submit(
            w.doctorB, "putIndexRecord", try w.indexRequest(atB, patient: w.patient1, doctor: w.doctorB))
        #expect(r2.response.status == 200 && r3.response.status == 200)

        func records(_ who: Person) throws -> [String] {
            try World.decode(
                RecordPage<IndexRecord>.self,
                try w.call(who, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid))
            ).records.map(\.tID)
        }
        func treatments(_ who: Person, patient: Person? = nil, doctor: Person? = nil) throws -> [String] {
            let r = try w.call(
                who, "listTreatments", ListTreatmentsRequest(patientPID: patient?.pid, doctorPID: doctor?.pid))
            return try World.decode(RecordPage<Treatment>.self, r).records.map(\.tID)
        }
        #expect(try records(w.patient1) == [withA1.tID, withA2.tID, atB.tID])
        #expect(try records(w.doctorA1) == [withA1.tID])
        #expect(try records(w.doctorA2) == [withA2.tID])
        #expect(try records(w.adminA) == [withA1.tID, withA2.tID])
        #expect(try records(w.nodeB) == [atB.tID])
        #expect(try records(w.adminB) == [atB.tID])
        #expect(r1.tID == withA1.tID)

        #expect(try treatments(w.patient1, patient: w.patient1) == [withA1.tID, withA2.tID, atB.tID])
        #expect(try treatments(w.doctorB, patient: w.patient1) == [atB.tID])
        #expect(try treatments(w.doctorA1, doctor: w.doctorA1) == [withA1.tID])
        #expect(try treatments(w.patient1, doctor: w.doctorA2) == [withA2.tID])
        #expect(try treatments(w.patient2, doctor: w.doctorA2) == [])
        #expect(try treatments(w.adminB, doctor: w.doctorA2) == [])

        // Refused: another patient's PID, another doctor's PID, and third parties and devices altogether.
        expectRefused(
            try w.call(w.patient2, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid)), 403,
            "only their own")
        expectRefused(
            try w.call(w.patient2, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid)), 403,
            "only their own")
        expectRefused(
            try w.call(w.doctorA2, "listTreatments", ListTreatmentsRequest(doctorPID: w.doctorA1.pid)), 403,
            "only their own")
        _ = try w.grant(w.research1, [withA1.tID])
        for caller in [w.research1, w.deviceA] {
            expectRefused(
                try w.call(caller, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid)), 403)
            expectRefused(try w.call(caller, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid)), 403)
            expectRefused(try w.call(caller, "listTreatments", ListTreatmentsRequest(doctorPID: w.doctorA1.pid)), 403)
            expectRefused(try w.call(caller, "listUsage", ListUsageRequest(patientPID: w.patient1.pid)), 403)
        }
        // The grantee reaches the granted treatment by its id, and only that one.
        #expect(
            try w.call(w.research1, "listIndexRecords", ListIndexRecordsRequest(tID: withA1.tID)).response.status == 200
        )
        expectRefused(try w.call(w.research1, "listIndexRecords", ListIndexRecordsRequest(tID: withA2.tID)), 404)
    }

    @Test func usageIsVisibleToPartiesAndToEachGranteeForItsOwn() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let atB = try w.createTreatment(patient: w.patient1, doctor: w.doctorB, by: w.adminB)
        _ = try w.grant(w.research1, [t.tID, atB.tID])
        _ = try w.grant(w.research2, [t.tID])
        for (grantee, tID, node) in [
            (w.research1, t.tID, w.nodeA), (w.research2, t.tID, w.nodeA), (w.research1, atB.tID, w.nodeB),
        ] {
            let r = try w.submit(
                node, "recordUsage",
                RecordUsageRequest(tID: tID, thirdPartyPID: grantee.pid, proxyNode: node.pid, purpose: "research"))
            #expect(r.response.status == 200, "\(r.response.message)")
        }
        func usage(_ who: Person, _ request: ListUsageRequest) throws -> [String] {
            try World.decode(RecordPage<UsageRecord>.self, try w.call(who, "listUsage", request)).records.map(
                \.thirdPartyPID)
        }
        #expect(try usage(w.patient1, ListUsageRequest(tID: t.tID)) == [w.research1.pid, w.research2.pid])
        #expect(try usage(w.nodeA, ListUsageRequest(tID: t.tID)) == [w.research1.pid, w.research2.pid])
        #expect(try usage(w.research1, ListUsageRequest(tID: t.tID)) == [w.research1.pid])
        #expect(try usage(w.research2, ListUsageRequest(tID: t.tID)) == [w.research2.pid])
        #expect(try usage(w.patient1, ListUsageRequest(patientPID: w.patient1.pid)).count == 3)
        #expect(
            try usage(w.adminA, ListUsageRequest(patientPID: w.patient1.pid)) == [w.research1.pid, w.research2.pid])
        #expect(try usage(w.doctorB, ListUsageRequest(patientPID: w.patient1.pid)) == [w.research1.pid])
        expectRefused(try w.call(w.research2, "listUsage", ListUsageRequest(tID: atB.tID)), 404)
        expectRefused(try w.call(w.patient2, "listUsage", ListUsageRequest(patientPID: w.patient1.pid)), 403)
    }

    @Test func aGranteeOfAnyRoleReadsUnderALiveConsent() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let record = try w.putIndexRecord(t)
        // A doctor of another hospital, for a second opinion.
        expectRefused(try w.call(w.doctorB, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)), 404)
        let consent = try w.grant(w.doctorB, [t.tID], purpose: "second opinion")
        #expect(
            try w.call(w.doctorB, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)).response.status
                == 200)
        #expect(
            try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: consent.consentID)).response.status
                == 200)
        expectRefused(
            try w.call(w.doctorB, "getIndexRecord", GetIndexRecordRequest(recordID: record.recordID)), 403,
            "no live consent")
    }
}

@Suite struct PaginationTests {
    @Test func treatmentsPageOldestFirstWithBookmarks() throws {
        let w = try World()
        var created = [String]()
        for i in 0..<7 {
            created.append(
                try w.createTreatment(patient: w.patient1, doctor: i.isMultiple(of: 2) ? w.doctorA1 : w.doctorA2).tID)
        }
        var seen = [String]()
        var bookmark: String?
        var pages = [Int]()
        repeat {
            let r = try w.call(
                w.patient1, "listTreatments",
                ListTreatmentsRequest(patientPID: w.patient1.pid, pageSize: 3, bookmark: bookmark))
            #expect(r.response.status == 200, "\(r.response.message)")
            let page = try World.decode(RecordPage<Treatment>.self, r)
            pages.append(page.records.count)
            seen += page.records.map(\.tID)
            bookmark = page.bookmark.isEmpty ? nil : page.bookmark
        } while bookmark != nil
        #expect(pages == [3, 3, 1])
        #expect(seen == created)

        // Filtered pages: doctor A2 sees its 3 treatments across pages of the patient's 7.
        var a2 = [String]()
        bookmark = nil
        repeat {
            let page = try World.decode(
                RecordPage<Treatment>.self,
                try w.call(
                    w.doctorA2, "listTreatments",
                    ListTreatmentsRequest(patientPID: w.patient1.pid, pageSize: 2, bookmark: bookmark)))
            #expect(page.records.count <= 2)
            a2 += page.records.map(\.tID)
            bookmark = page.bookmark.isEmpty ? nil : page.bookmark
        } while bookmark != nil
        #expect(a2 == [created[1], created[3], created[5]])

        // Default page size, and the bounds.
        let all = try World.decode(
            RecordPage<Treatment>.self,
            try w.call(w.patient1, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid)))
        #expect(all.records.map(\.tID) == created && all.bookmark.isEmpty)
        expectRefused(
            try w.call(w.patient1, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid, pageSize: 0)),
            400, "page_size")
        expectRefused(
            try w.call(w.patient1, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid, pageSize: 501)),
            400, "page_size")
        #expect(
            try w.call(w.patient1, "listTreatments", ListTreatmentsRequest(patientPID: w.patient1.pid, pageSize: 500))
                .response.status == 200)
    }

    @Test func indexRecordsPageAndBookmarksStayInTheirListing() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let other = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        var ids = [String]()
        for _ in 0..<5 { ids.append(try w.putIndexRecord(t).recordID) }
        _ = try w.putIndexRecord(other)

        let first = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.doctorA1, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID, pageSize: 2)))
        #expect(first.records.map(\.recordID) == Array(ids[0..<2]))
        #expect(!first.bookmark.isEmpty)
        let second = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(
                w.doctorA1, "listIndexRecords",
                ListIndexRecordsRequest(tID: t.tID, pageSize: 2, bookmark: first.bookmark)))
        #expect(second.records.map(\.recordID) == Array(ids[2..<4]))
        let last = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(
                w.doctorA1, "listIndexRecords",
                ListIndexRecordsRequest(tID: t.tID, pageSize: 2, bookmark: second.bookmark)))
        #expect(last.records.map(\.recordID) == [ids[4]])
        #expect(last.bookmark == "")

        // A bookmark of one listing is refused by another.
        expectRefused(
            try w.call(
                w.doctorA1, "listIndexRecords",
                ListIndexRecordsRequest(tID: other.tID, pageSize: 2, bookmark: first.bookmark)), 400, "bookmark")
        expectRefused(
            try w.call(
                w.patient1, "listIndexRecords",
                ListIndexRecordsRequest(patientPID: w.patient1.pid, bookmark: first.bookmark)), 400, "bookmark")
        // An exactly full last page says so.
        let exact = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.doctorA1, "listIndexRecords", ListIndexRecordsRequest(tID: t.tID, pageSize: 5)))
        #expect(exact.records.count == 5 && exact.bookmark == "")
        // The patient's listing spans both treatments, oldest first.
        let mine = try World.decode(
            RecordPage<IndexRecord>.self,
            try w.call(w.patient1, "listIndexRecords", ListIndexRecordsRequest(patientPID: w.patient1.pid)))
        #expect(mine.records.count == 6 && Array(mine.records.map(\.recordID).prefix(5)) == ids)
    }
}

@Suite struct TimeAndIDTests {
    @Test func rfc3339FormatsAndParsesByArithmetic() throws {
        #expect(RFC3339.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_900_000_000.25)) == "2030-03-17T17:46:40.250Z")
        #expect(RFC3339.format(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(RFC3339.format(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(RFC3339.parse("2030-03-17T17:46:40Z") == 1_900_000_000_000)
        #expect(RFC3339.parse("2030-03-17t17:46:40.25z") == 1_900_000_000_250)
        #expect(RFC3339.parse("2030-03-17T19:46:40.2509+02:00") == 1_900_000_000_250)
        #expect(RFC3339.parse("2030-03-17T12:16:40-05:30") == 1_900_000_000_000)
        #expect(RFC3339.parse("2000-02-29T00:00:00Z") == 951_782_400_000)
        for bad in [
            "", "2030-03-17", "2030-03-17T17:46:40", "2030-03-17 17:46:40Z", "2030-13-01T00:00:00Z",
            "2030-02-29T00:00:00Z",
            "2030-03-17T24:00:00Z", "2030-03-17T17:46:60Z", "2030-03-17T17:46:40.Z", "2030-03-17T17:46:40+0200",
            "2030-03-17T17:46:40Zjunk", "+2030-03-17T17:46:40Z",
        ] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
        for ms: Int64 in [0, 1, 999, 86_399_999, 1_900_000_000_123, 4_102_444_800_000, -86_400_001] {
            #expect(RFC3339.parse(RFC3339.format(milliseconds: ms)) == ms)
        }
    }

    @Test func idsComeFromTheTransactionID() {
        let t = IDKind.treatment.make(txID: "tx-1")
        #expect(t.count == 26 && t.hasPrefix("T-") && IDKind.treatment.matches(t))
        #expect(IDKind.record.make(txID: "tx-1").dropFirst(2) == t.dropFirst(2))
        #expect(!IDKind.record.matches(t))
        #expect(!IDKind.treatment.matches("T-" + String(repeating: "A", count: 24)))
        #expect(!IDKind.treatment.matches(t + "0"))
    }
}

@Suite struct ReadSubjectsTests {
    func args(_ json: String) -> [[UInt8]] { [Array(json.utf8)] }

    @Test func readsNameTheAskedForPatientAndAGetsRecordButNotAListing() {
        #expect(
            ReadSubjects.patients(
                function: "listIndexRecords", args: args(#"{"patient_pid":"P1"}"#),
                answer: Array(#"{"records":[{"patient_pid":"P2"}],"bookmark":""}"#.utf8)) == ["P1"])
        #expect(
            ReadSubjects.patients(
                function: "getIndexRecord", args: args(#"{"record_id":"R"}"#),
                answer: Array(#"{"record_id":"R","patient_pid":"P3"}"#.utf8)) == ["P3"])
        #expect(
            ReadSubjects.patients(function: "getIndexRecord", args: args(#"{"record_id":"R"}"#), answer: nil).isEmpty,
            "refused: no patient learnt")
        #expect(
            ReadSubjects.patients(
                function: "listTreatments", args: args(#"{"doctor_pid":"D"}"#),
                answer: Array(#"{"records":[{"patient_pid":"P4"}]}"#.utf8)
            ).isEmpty)
        #expect(
            ReadSubjects.patients(function: "putIndexRecord", args: args(#"{"patient_pid":"P5"}"#), answer: nil)
                .isEmpty, "writes are not reads")
        #expect(ReadSubjects.patients(function: "listIndexRecords", args: args("not json"), answer: nil).isEmpty)
    }
}
