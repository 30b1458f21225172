import Crypto
import Foundation
import LedgerCrypto
import LedgerProtos

/// One vital-sign reading of an IoT device: the fields of the EMR-IG IoT demo (seed 000), carried as
/// a FHIR R4 Observation (vital-signs panel with LOINC-coded components).
public struct VitalSigns: Codable, Sendable, Equatable {
    public var heartRate: Int
    public var systolic: Int
    public var diastolic: Int
    public var note: String

    public init(heartRate: Int, systolic: Int, diastolic: Int, note: String) {
        self.heartRate = heartRate
        self.systolic = systolic
        self.diastolic = diastolic
        self.note = note
    }

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Physiologically possible ranges; anything outside is a device fault, not a reading.
    public static let heartRateRange = 20...300
    public static let systolicRange = 40...300
    public static let diastolicRange = 20...200
    public static let noteBytesMax = 1024

    public func validate() throws(Invalid) {
        guard Self.heartRateRange.contains(heartRate) else {
            throw Invalid(description: "heart rate \(heartRate)/min is outside \(Self.heartRateRange)")
        }
        guard Self.systolicRange.contains(systolic) else {
            throw Invalid(description: "systolic \(systolic) mmHg is outside \(Self.systolicRange)")
        }
        guard Self.diastolicRange.contains(diastolic) else {
            throw Invalid(description: "diastolic \(diastolic) mmHg is outside \(Self.diastolicRange)")
        }
        guard diastolic < systolic else {
            throw Invalid(description: "diastolic \(diastolic) is not below systolic \(systolic)")
        }
        guard note.utf8.count <= Self.noteBytesMax else {
            throw Invalid(description: "note is longer than \(Self.noteBytesMax) bytes")
        }
    }

    static let heartRateCode = "8867-4", systolicCode = "8480-6", diastolicCode = "8462-4", panelCode = "85353-1"

    /// The FHIR R4 Observation (JSON, sorted keys) for this reading of `devicePID` about the patient
    /// `patientPID` in treatment `tID`.
    public func observation(
        id: String, patientPID: String, devicePID: String, tID: String, observedAt: String
    ) throws -> [UInt8] {
        func quantity(_ code: String, _ display: String, _ value: Int, _ unit: String, _ ucum: String) -> FHIR.Component
        {
            FHIR.Component(
                code: FHIR.Concept(
                    coding: [FHIR.Coding(system: "http://loinc.org", code: code, display: display)], text: nil),
                valueQuantity: FHIR.Quantity(value: value, unit: unit, system: "http://unitsofmeasure.org", code: ucum))
        }
        let o = FHIR.Observation(
            resourceType: "Observation", id: id, status: "final",
            category: [
                FHIR.Concept(
                    coding: [
                        FHIR.Coding(
                            system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs",
                            display: "Vital Signs")
                    ], text: nil)
            ],
            code: FHIR.Concept(
                coding: [
                    FHIR.Coding(
                        system: "http://loinc.org", code: Self.panelCode,
                        display: "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel")
                ], text: "Vital signs"),
            subject: FHIR.Reference(reference: "Patient/" + patientPID),
            encounter: FHIR.Reference(reference: "Encounter/" + tID),
            device: FHIR.Reference(reference: "Device/" + devicePID),
            effectiveDateTime: observedAt,
            component: [
                quantity(Self.heartRateCode, "Heart rate", heartRate, "beats/minute", "/min"),
                quantity(Self.systolicCode, "Systolic blood pressure", systolic, "mmHg", "mm[Hg]"),
                quantity(Self.diastolicCode, "Diastolic blood pressure", diastolic, "mmHg", "mm[Hg]"),
            ],
            note: note.isEmpty ? nil : [FHIR.Annotation(text: note)])
        return try FHIR.encode(o)
    }

    /// What an Observation says, checked: a final vital-signs Observation naming the expected
    /// patient, device and treatment, with the three components in range.
    public static func parse(
        observation bytes: [UInt8], patientPID: String, devicePID: String, tID: String
    ) throws -> (VitalSigns, observedAt: String) {
        let o: FHIR.Observation
        do { o = try JSONDecoder().decode(FHIR.Observation.self, from: Data(bytes)) } catch {
            throw Invalid(description: "not a FHIR Observation: \(error)")
        }
        guard o.resourceType == "Observation" else {
            throw Invalid(description: "resourceType is \(o.resourceType), not Observation")
        }
        guard o.subject.reference == "Patient/" + patientPID else {
            throw Invalid(description: "the reading is about \(o.subject.reference), not this treatment's patient")
        }
        guard o.device?.reference == "Device/" + devicePID else {
            throw Invalid(
                description: "the reading names device \(o.device?.reference ?? "none"), not its signer \(devicePID)")
        }
        guard o.encounter?.reference == "Encounter/" + tID else {
            throw Invalid(
                description: "the reading is for \(o.encounter?.reference ?? "no encounter"), not treatment \(tID)")
        }
        func value(_ code: String) throws -> Int {
            guard let c = o.component.first(where: { $0.code.coding.contains { $0.code == code } }) else {
                throw Invalid(description: "component LOINC \(code) is missing")
            }
            return c.valueQuantity.value
        }
        let v = VitalSigns(
            heartRate: try value(heartRateCode), systolic: try value(systolicCode), diastolic: try value(diastolicCode),
            note: o.note?.first?.text ?? "")
        try v.validate()
        return (v, o.effectiveDateTime)
    }
}

/// What a device signs for one reading: the envelope the collector stores, so that the collector
/// (which never decrypts) and the doctor (who does) check the same signature.
public enum ReadingSigning {
    public static let domain = "medledger/reading/v1"

    /// Domain label, then each field as a 4-byte big-endian length and its bytes.
    public static func message(
        channel: String, tID: String, devicePID: String, sequence: UInt64, observedAt: String, capsule: [UInt8],
        ciphertext: [UInt8]
    ) -> [UInt8] {
        var out = [UInt8]()
        func field(_ b: [UInt8]) {
            let n = UInt32(b.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + b
        }
        field(Array(domain.utf8))
        for text in [channel, tID, devicePID, String(sequence), observedAt] { field(Array(text.utf8)) }
        field(capsule)
        field(ciphertext)
        return out
    }

    public static func sign(_ message: [UInt8], key: P256.Signing.PrivateKey) throws -> [UInt8] {
        ECDSADER.encode(try key.signature(for: message))
    }

    public static func isValid(_ signature: [UInt8], message: [UInt8], key: P256.Signing.PublicKey) -> Bool {
        guard let s = ECDSADER.p256Signature(signature) else { return false }
        return key.isValidSignature(s, for: message)
    }
}

extension Medledger_SignedReading {
    /// The bytes its `signature` covers: device, collector and doctor all compute them here.
    public var signedMessage: [UInt8] {
        ReadingSigning.message(
            channel: channel, tID: tID, devicePID: devicePid, sequence: sequence, observedAt: observedAt,
            capsule: [UInt8](capsule), ciphertext: [UInt8](ciphertext))
    }
}
