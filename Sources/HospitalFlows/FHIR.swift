import Foundation

/// The few FHIR R4 shapes MedLedger writes: an Observation for device readings and a Bundle that
/// carries a treatment's EMR and SHR. Only the elements used are modelled; JSON keys follow FHIR.
public enum FHIR {
    public struct Coding: Codable, Sendable, Equatable {
        public var system: String
        public var code: String
        public var display: String?
    }

    public struct Concept: Codable, Sendable, Equatable {
        public var coding: [Coding]
        public var text: String?
    }

    public struct Reference: Codable, Sendable, Equatable {
        public var reference: String
    }

    public struct Quantity: Codable, Sendable, Equatable {
        public var value: Int
        public var unit: String
        public var system: String
        public var code: String
    }

    public struct Component: Codable, Sendable, Equatable {
        public var code: Concept
        public var valueQuantity: Quantity
    }

    public struct Annotation: Codable, Sendable, Equatable {
        public var text: String
    }

    public struct Observation: Codable, Sendable, Equatable {
        public var resourceType: String
        public var id: String?
        public var status: String
        public var category: [Concept]?
        public var code: Concept
        public var subject: Reference
        public var encounter: Reference?
        public var device: Reference?
        public var effectiveDateTime: String
        public var component: [Component]
        public var note: [Annotation]?
    }

    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }
}

/// The record a treatment produces: the doctor's EMR (a FHIR resource, or any JSON object) and the
/// devices' SHR (Observations), as one FHIR Bundle of type "collection". This is the plaintext that
/// gets sealed; it never leaves the patient's or doctor's machine unencrypted.
public enum RecordBundle {
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Builds the Bundle JSON. `emr` must be a JSON object; each of `observations` a JSON object.
    public static func make(
        tID: String, patientPID: String, emr: [UInt8]?, observations: [[UInt8]], createdAt: String
    ) throws -> [UInt8] {
        var entries = [[String: Any]]()
        if let emr {
            guard let o = try? JSONSerialization.jsonObject(with: Data(emr)) as? [String: Any] else {
                throw Invalid(description: "the EMR is not a JSON object")
            }
            entries.append(["resource": o])
        }
        for (i, obs) in observations.enumerated() {
            guard let o = try? JSONSerialization.jsonObject(with: Data(obs)) as? [String: Any] else {
                throw Invalid(description: "observation \(i) is not a JSON object")
            }
            entries.append(["resource": o])
        }
        guard !entries.isEmpty else { throw Invalid(description: "a record needs an EMR or at least one reading") }
        let bundle: [String: Any] = [
            "resourceType": "Bundle", "type": "collection", "timestamp": createdAt,
            "identifier": ["system": "urn:medledger:treatment", "value": tID],
            "meta": ["tag": [["system": "urn:medledger:patient", "code": patientPID]]],
            "entry": entries,
        ]
        return Array(
            try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .withoutEscapingSlashes]))
    }
}
