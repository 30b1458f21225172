import Foundation

/// FHIR R4 datatypes, as much of them as the resources here use. Optional fields stay out of the
/// JSON when nil (FHIR forbids empty elements and `null`).
public enum FHIR {
    /// The media type of every FHIR body this node sends (R4 §3.1.0.1.7).
    public static let mediaType = "application/fhir+json"
    public static let version = "4.0.1"

    /// JSON as FHIR wants it: no escaped slashes (URLs stay readable), keys in declaration order
    /// (`resourceType` first; sorting costs a search a fifth of its time).
    public static func encode(_ value: some Encodable) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return try e.encode(value)
    }
}

public struct Coding: Codable, Sendable, Equatable {
    public var system: String?
    public var code: String?
    public var display: String?

    public init(_ system: String?, _ code: String, _ display: String? = nil) {
        (self.system, self.code, self.display) = (system, code, display)
    }
}

public struct CodeableConcept: Codable, Sendable, Equatable {
    public var coding: [Coding]?
    public var text: String?

    public init(_ coding: Coding) { self.coding = [coding] }
    public init(text: String) { self.text = text }
}

public struct Identifier: Codable, Sendable, Equatable {
    public var system: String?
    public var value: String?

    public init(system: String, value: String) { (self.system, self.value) = (system, value) }
}

/// References here are logical (R4 §2.3.0.2: `type` + `identifier`): people are named by PID, which
/// is not a FHIR id (base64url has '_') and has no resource on this server to point at.
public struct Reference: Codable, Sendable, Equatable {
    public var reference: String?
    public var type: String?
    public var identifier: Identifier?
    public var display: String?

    public init(_ reference: String) { self.reference = reference }
    public init(display: String) { self.display = display }
    public init(type: String, system: String, value: String) {
        self.type = type
        identifier = Identifier(system: system, value: value)
    }
}

public struct Period: Codable, Sendable, Equatable {
    public var start: String?
    public var end: String?

    public init(start: String?, end: String?) { (self.start, self.end) = (start, end) }
}

public struct Meta: Codable, Sendable, Equatable {
    public var lastUpdated: String?
    public var versionId: String?
}

/// The references this node writes: every person is named by PID (`urn:medledger:pid`), never by
/// a real name; treatments by T_ID, organisations by their MedLedger id.
public enum Ref {
    public static let pidSystem = "urn:medledger:pid"
    public static let treatmentSystem = "urn:medledger:treatment"
    public static let organizationSystem = "urn:medledger:organization"

    public static func patient(_ pid: String) -> Reference { Reference(type: "Patient", system: pidSystem, value: pid) }
    public static func practitioner(_ pid: String) -> Reference {
        Reference(type: "Practitioner", system: pidSystem, value: pid)
    }
    public static func organization(_ id: String) -> Reference {
        Reference(type: "Organization", system: organizationSystem, value: id)
    }
    /// A record served here: a literal reference (record ids are FHIR ids).
    public static func document(_ id: String) -> Reference { Reference("DocumentReference/" + id) }
    public static func encounter(_ tID: String) -> Reference {
        Reference(type: "Encounter", system: treatmentSystem, value: tID)
    }

    /// A person's reference by role: patients are `Patient`, devices and nodes `Device`, everyone
    /// else who acts (doctors, administrators, third parties) a `Practitioner`.
    public static func person(_ pid: String, role: String) -> Reference {
        switch role {
        case "patient": return patient(pid)
        case "device", "node", "system": return Reference(type: "Device", system: pidSystem, value: pid)
        default: return practitioner(pid)
        }
    }
}

/// The answer for every error (R4 OperationOutcome): one issue with a severity, a code from
/// IssueType, and the text a person reads.
public struct OperationOutcome: Codable, Sendable, Equatable {
    public struct Issue: Codable, Sendable, Equatable {
        public var severity: String
        public var code: String
        public var diagnostics: String
    }

    public var resourceType = "OperationOutcome"
    public var issue: [Issue]

    public init(code: String, _ diagnostics: String, severity: String = "error") {
        issue = [Issue(severity: severity, code: code, diagnostics: diagnostics)]
    }

    /// The IssueType for an HTTP status (R4 `issue-type`).
    public static func issueCode(forStatus status: Int) -> String {
        switch status {
        case 400, 422: return "invalid"
        case 401: return "login"
        case 403: return "forbidden"
        case 404: return "not-found"
        case 405: return "not-supported"
        case 409: return "conflict"
        case 412: return "business-rule"
        case 413: return "too-costly"
        case 429: return "throttled"
        case 503: return "transient"
        default: return "exception"
        }
    }
}
