import Foundation
import Testing

@testable import LedgerIncidents

struct AnomalyDetectorTests {
    let doctor = Subject(pid: "PID-doc", org: "hospital-a", role: "doctor")
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func detector(_ rules: [AnomalyRule]) throws -> AnomalyDetector { try AnomalyDetector(rules: rules) }

    @Test func aSweepOfDistinctPatientsFiresOnceAtTheThresholdThenIsQuietForAWindow() throws {
        let d = try detector([
            AnomalyRule(name: "sweep", kind: .distinctPatients, threshold: 5, windowSeconds: 60, action: .suspend)
        ])
        // The same patient again and again is not a sweep.
        for i in 0..<20 { #expect(d.observe(.patientsRead(["P1"]), by: doctor, at: t0 + Double(i)).isEmpty) }
        for i in 2...4 { #expect(d.observe(.patientsRead(["P\(i)"]), by: doctor, at: t0 + 21).isEmpty) }
        let alerts = d.observe(.patientsRead(["P5"]), by: doctor, at: t0 + 22)
        #expect(
            alerts.count == 1 && alerts[0].rule == "sweep" && alerts[0].action == .suspend
                && alerts[0].subject == doctor)
        #expect(!alerts[0].detail.contains("P5"), "an alert names no patient: \(alerts[0].detail)")
        // Quiet for one window after firing, then counting again from nothing.
        for i in 6...20 { #expect(d.observe(.patientsRead(["P\(i)"]), by: doctor, at: t0 + 30).isEmpty) }
        for i in 30...33 { #expect(d.observe(.patientsRead(["P\(i)"]), by: doctor, at: t0 + 90).isEmpty) }
        #expect(d.observe(.patientsRead(["P34"]), by: doctor, at: t0 + 91).count == 1)
    }

    @Test func patientsOutsideTheWindowDoNotCount() throws {
        let d = try detector([
            AnomalyRule(name: "sweep", kind: .distinctPatients, threshold: 3, windowSeconds: 10, action: .alert)
        ])
        #expect(d.observe(.patientsRead(["A"]), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.patientsRead(["B"]), by: doctor, at: t0 + 5).isEmpty)
        #expect(d.observe(.patientsRead(["C"]), by: doctor, at: t0 + 11).isEmpty, "A left the window")
        #expect(d.observe(.patientsRead(["D"]), by: doctor, at: t0 + 12).count == 1)
    }

    @Test func refusalsCountOnly401403And404PerIdentity() throws {
        let d = try detector([
            AnomalyRule(name: "burst", kind: .denied, threshold: 3, windowSeconds: 60, action: .alert)
        ])
        let other = Subject(pid: "PID-other", org: "hospital-a", role: "doctor")
        #expect(d.observe(.refused(status: 409), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.refused(status: 500), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.refused(status: 403), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.refused(status: 404), by: other, at: t0).isEmpty)
        #expect(d.observe(.refused(status: 404), by: doctor, at: t0 + 1).isEmpty)
        #expect(d.observe(.refused(status: 401), by: doctor, at: t0 + 2).map(\.rule) == ["burst"])
    }

    @Test func downloadVolumeAndAddresses() throws {
        let d = try detector([
            AnomalyRule(name: "bulk", kind: .downloadBytes, threshold: 1000, windowSeconds: 60, action: .alert),
            AnomalyRule(name: "roaming", kind: .addresses, threshold: 2, windowSeconds: 60, action: .alert),
        ])
        #expect(d.observe(.downloaded(bytes: 600), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.downloaded(bytes: 600), by: doctor, at: t0 + 61).isEmpty, "the first left the window")
        #expect(d.observe(.downloaded(bytes: 400), by: doctor, at: t0 + 62).map(\.rule) == ["bulk"])
        #expect(d.observe(.call(address: "10.0.0.1"), by: doctor, at: t0).isEmpty)
        #expect(d.observe(.call(address: "10.0.0.1"), by: doctor, at: t0 + 1).isEmpty)
        #expect(d.observe(.call(address: "10.0.0.2"), by: doctor, at: t0 + 2).map(\.rule) == ["roaming"])
    }

    @Test func hoursWrapMidnightAndUseTheHospitalsOffset() throws {
        // 07:00-19:00 in UTC+8; t0 is 2027-01-15 08:00:00 UTC = 16:00 in Taipei.
        let d = try detector([
            AnomalyRule(
                name: "night", kind: .outsideHours, threshold: 1, windowSeconds: 3600, action: .alert,
                roles: ["doctor"], hours: "07:00-19:00", utcOffsetMinutes: 480)
        ])
        #expect(d.observe(.call(address: nil), by: doctor, at: t0).isEmpty)
        let late = d.observe(.call(address: nil), by: doctor, at: t0 + 4 * 3600)  // 20:00 local
        #expect(late.count == 1 && late[0].detail.contains("20:00"), "\(late)")
        #expect(d.observe(.call(address: nil), by: doctor, at: t0 + 4 * 3600 + 60).isEmpty, "quiet for a window")
        #expect(
            d.observe(.call(address: nil), by: Subject(pid: "p", org: "hospital-a", role: "patient"), at: t0 + 4 * 3600)
                .isEmpty, "rule is for doctors")
        #expect(
            HourRange("22:00-06:00")!.contains(minuteOfDay: 23 * 60)
                && HourRange("22:00-06:00")!.contains(minuteOfDay: 5 * 60))
        #expect(!HourRange("22:00-06:00")!.contains(minuteOfDay: 12 * 60))
    }

    @Test func everyRoleACertificateCarriesIsWatchedButNodes() throws {
        let d = try detector(AnomalyRule.defaults)
        for role in ["admin", "doctor", "patient", "third-party", "device"] {
            let who = Subject(pid: "p-\(role)", org: "research-1", role: role)
            let fired = (0..<100).flatMap { d.observe(.patientsRead(["P\($0)"]), by: who, at: t0) }
            #expect(fired.map(\.rule) == ["patient-sweep"], "\(role): \(fired)")
        }
        var r = AnomalyRule.defaults[0]
        r.roles = ["third-party"]
        #expect(throws: Never.self) { try AnomalyRule.validate([r]) }
    }

    @Test func nodesAreNeverWatched() throws {
        let d = try detector([
            AnomalyRule(name: "burst", kind: .denied, threshold: 1, windowSeconds: 60, action: .suspend)
        ])
        #expect(
            d.observe(.refused(status: 403), by: Subject(pid: "n", org: "hospital-b", role: "node"), at: t0).isEmpty)
        #expect(d.observe(.refused(status: 403), by: doctor, at: t0).count == 1)
    }

    @Test func badRulesAreRefusedWithTheirName() {
        func refusal(_ rules: [AnomalyRule]) -> String {
            do {
                try AnomalyRule.validate(rules)
                return ""
            } catch { return "\(error)" }
        }
        let ok = AnomalyRule(name: "a", kind: .denied, threshold: 3, windowSeconds: 60, action: .alert)
        #expect(refusal([ok]).isEmpty)
        #expect(refusal([ok, ok]).contains("used twice"))
        var r = ok
        r.windowSeconds = 0
        #expect(refusal([r]).contains("window_seconds"))
        r = ok
        r.threshold = 0
        #expect(refusal([r]).contains("threshold"))
        r = ok
        r.roles = ["node"]
        #expect(refusal([r]).contains("unknown role \"node\""))
        #expect(
            refusal([
                AnomalyRule(
                    name: "h", kind: .outsideHours, threshold: 1, windowSeconds: 60, action: .alert,
                    hours: "25:00-07:00")
            ]).contains("HH:MM"))
        #expect(
            refusal([AnomalyRule(name: "bad name!", kind: .denied, threshold: 1, windowSeconds: 60, action: .alert)])
                .contains("letters"))
        #expect(refusal(AnomalyRule.defaults).isEmpty)
    }

    @Test func trackedIdentitiesAreBounded() throws {
        let d = try detector([
            AnomalyRule(name: "burst", kind: .denied, threshold: 1000, windowSeconds: 60, action: .alert)
        ])
        for i in 0..<(AnomalyDetector.identitiesMax + 500) {
            _ = d.observe(
                .refused(status: 403), by: Subject(pid: "p\(i)", org: "o", role: "patient"), at: t0 + Double(i) / 1000)
        }
        #expect(d.trackedIdentities <= AnomalyDetector.identitiesMax)
    }

    @Test func suspensionsSurviveReopeningAndABadFileIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("suspensions-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/suspended.json"
        let list = try SuspensionList(path: path)
        #expect(list.suspension(of: doctor.pid) == nil)
        #expect(
            try list.suspend(Suspension(subject: doctor, since: t0, by: "sweep", reason: "records of 100 patients")))
        #expect(
            try !list.suspend(Suspension(subject: doctor, since: t0 + 1, by: "administrator", reason: "again")),
            "already suspended")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let reopened = try SuspensionList(path: path)
        #expect(reopened.suspension(of: doctor.pid)?.by == "sweep")
        #expect(try reopened.resume(doctor.pid)?.subject == doctor)
        #expect(try reopened.resume(doctor.pid) == nil)
        #expect(try SuspensionList(path: path).all.isEmpty)
        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: SuspensionList.Failure.self) { try SuspensionList(path: path) }
    }
}
