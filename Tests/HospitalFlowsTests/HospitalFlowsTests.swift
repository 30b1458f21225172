import Crypto
import Foundation
import HospitalFlows
import LedgerPRE
import Testing

@Suite struct HospitalFlowsTests {
    @Test func aSessionKeyOpensOnlyWithTheDoctorsKey() throws {
        let doctor = SecretKey.random()
        let someoneElse = SecretKey.random()
        let tsk = TreatmentSessionKey(
            patientPID: "p", tID: "T-1", diseaseInfo: "cough for three weeks", patientCert: "PEM", doctorPID: "d",
            hospital: "h", channel: "c", issuedAt: "2026-01-01T00:00:00Z")
        let (capsule, ciphertext) = try tsk.seal(to: doctor.publicKey)
        #expect(!String(decoding: ciphertext, as: UTF8.self).contains("cough"))
        #expect(try TreatmentSessionKey.open(capsule: capsule, ciphertext: ciphertext, doctorKey: doctor) == tsk)
        #expect(throws: TreatmentSessionKey.OpenFailure.self) {
            try TreatmentSessionKey.open(capsule: capsule, ciphertext: ciphertext, doctorKey: someoneElse)
        }
        var altered = ciphertext
        altered[altered.count / 2] ^= 1
        #expect(throws: TreatmentSessionKey.OpenFailure.self) {
            try TreatmentSessionKey.open(capsule: capsule, ciphertext: altered, doctorKey: doctor)
        }
    }

    @Test func observationsRoundTripAndNameTheirPatientDeviceAndTreatment() throws {
        let v = VitalSigns(heartRate: 72, systolic: 118, diastolic: 76, note: "正常")
        let json = try v.observation(
            id: "o1", patientPID: "pat", devicePID: "dev", tID: "T-9", observedAt: "2026-11-21T10:00:00Z")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        #expect(o["resourceType"] as? String == "Observation" && o["status"] as? String == "final")
        let codes = (o["component"] as? [[String: Any]])?.compactMap {
            (($0["code"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["code"] as? String
        }
        #expect(codes == ["8867-4", "8480-6", "8462-4"])
        let (parsed, at) = try VitalSigns.parse(observation: json, patientPID: "pat", devicePID: "dev", tID: "T-9")
        #expect(parsed == v && at == "2026-11-21T10:00:00Z")
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns.parse(observation: json, patientPID: "other", devicePID: "dev", tID: "T-9")
        }
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns.parse(observation: json, patientPID: "pat", devicePID: "other-device", tID: "T-9")
        }
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns.parse(observation: json, patientPID: "pat", devicePID: "dev", tID: "T-8")
        }
    }

    @Test func impossibleValuesAreRefused() {
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns(heartRate: 0, systolic: 120, diastolic: 80, note: "").validate()
        }
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns(heartRate: 70, systolic: 80, diastolic: 90, note: "").validate()
        }
        #expect(throws: VitalSigns.Invalid.self) {
            try VitalSigns(heartRate: 70, systolic: 120, diastolic: 80, note: String(repeating: "x", count: 2000))
                .validate()
        }
    }

    @Test func aReadingSignatureCoversEveryField() throws {
        let key = P256.Signing.PrivateKey()
        let base = ReadingSigning.message(
            channel: "c", tID: "T", devicePID: "d", sequence: 7, observedAt: "t", capsule: [1], ciphertext: [2, 3])
        let sig = try ReadingSigning.sign(base, key: key)
        #expect(ReadingSigning.isValid(sig, message: base, key: key.publicKey))
        let variants = [
            ReadingSigning.message(
                channel: "c2", tID: "T", devicePID: "d", sequence: 7, observedAt: "t", capsule: [1], ciphertext: [2, 3]),
            ReadingSigning.message(
                channel: "c", tID: "T", devicePID: "d", sequence: 8, observedAt: "t", capsule: [1], ciphertext: [2, 3]),
            ReadingSigning.message(
                channel: "c", tID: "T", devicePID: "d", sequence: 7, observedAt: "t", capsule: [1, 2], ciphertext: [3]),
        ]
        for m in variants { #expect(!ReadingSigning.isValid(sig, message: m, key: key.publicKey)) }
        #expect(!ReadingSigning.isValid(sig, message: base, key: P256.Signing.PrivateKey().publicKey))
    }

    @Test func aBundleCarriesTheEMRAndTheObservations() throws {
        let obs = try VitalSigns(heartRate: 70, systolic: 110, diastolic: 70, note: "").observation(
            id: "1", patientPID: "p", devicePID: "d", tID: "T", observedAt: "x")
        let b = try RecordBundle.make(
            tID: "T", patientPID: "p", emr: Array(#"{"resourceType":"Condition"}"#.utf8), observations: [obs],
            createdAt: "now")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(b)) as? [String: Any])
        #expect(o["resourceType"] as? String == "Bundle" && (o["entry"] as? [Any])?.count == 2)
        #expect(throws: RecordBundle.Invalid.self) {
            try RecordBundle.make(tID: "T", patientPID: "p", emr: Array("[1]".utf8), observations: [], createdAt: "now")
        }
        #expect(throws: RecordBundle.Invalid.self) {
            try RecordBundle.make(tID: "T", patientPID: "p", emr: nil, observations: [], createdAt: "now")
        }
    }
}
