import Crypto
import Foundation
import LedgerCrypto

/// A device reading as the collector keeps it: who sent it, when, and the signed, sealed bytes. The
/// node never sees the values: the device encrypted its FHIR Observation to the treatment's doctor.
public struct SealedReading: Sendable, Equatable {
    public var tID: String
    public var patientPID: String
    public var devicePID: String
    public var sequence: UInt64
    public var observedAt: String
    public var receivedAt: String
    /// The serialized signed reading (protobuf `SignedReading`: capsule, ciphertext, the device's
    /// certificate and signature).
    public var sealed: Data

    public init(
        tID: String, patientPID: String, devicePID: String, sequence: UInt64, observedAt: String, receivedAt: String,
        sealed: Data
    ) {
        (self.tID, self.patientPID, self.devicePID, self.sequence, self.observedAt, self.receivedAt, self.sealed) =
            (tID, patientPID, devicePID, sequence, observedAt, receivedAt, sealed)
    }
}

/// A verified device reading as a vital-signs Observation whose values are masked: the category,
/// the vital-signs panel code, subject, encounter, device and times are in clear; the values are
/// in the sealed reading (extension `urn:medledger:fhir:sealed-reading`), which the doctor's app
/// decrypts to the device's own Observation. `dataAbsentReason` `masked` says so (vs-2, obs-6).
public struct FHIRObservation: Codable, Sendable, Equatable {
    public struct Attachment: Codable, Sendable, Equatable {
        public var contentType: String
        public var data: String
    }
    public struct Extension: Codable, Sendable, Equatable {
        public var url: String
        public var valueAttachment: Attachment
    }

    public var resourceType = "Observation"
    public var id: String
    public var `extension`: [Extension]
    public var status = "final"
    public var category: [CodeableConcept]
    public var code: CodeableConcept
    public var subject: Reference
    public var encounter: Reference
    public var effectiveDateTime: String
    public var issued: String
    public var device: Reference
    public var dataAbsentReason: CodeableConcept

    public static let sealedReadingExtension = "urn:medledger:fhir:sealed-reading"
    public static let sealedReadingType = "application/x-medledger-signed-reading"
    public static let idPrefix = "rd-"

    public init(_ r: SealedReading) {
        id = Self.idPrefix + Hex.encode(Array(SHA256.hash(data: r.sealed))).prefix(40)
        `extension` = [
            Extension(
                url: Self.sealedReadingExtension,
                valueAttachment: Attachment(contentType: Self.sealedReadingType, data: r.sealed.base64EncodedString()))
        ]
        category = [
            CodeableConcept(
                Coding("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs"))
        ]
        code = CodeableConcept(
            Coding(
                "http://loinc.org", "85353-1",
                "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel"))
        subject = Ref.patient(r.patientPID)
        encounter = Ref.encounter(r.tID)
        effectiveDateTime = r.observedAt
        issued = r.receivedAt
        device = Reference(type: "Device", system: Ref.pidSystem, value: r.devicePID)
        dataAbsentReason = CodeableConcept(
            Coding("http://terminology.hl7.org/CodeSystem/data-absent-reason", "masked", "Masked"))
    }
}
