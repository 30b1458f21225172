import Foundation
import LedgerCrypto
import MedRecords

/// P_DE as a DocumentReference: the patient by PID, the treatment as the context, URL_C as the
/// attachment's URL, the SHA-384 of the ciphertext as an identifier (R4's `attachment.hash` is
/// SHA-1 only), the hospital as custodian. The record's id is the resource id.
public struct DocumentReference: Codable, Sendable, Equatable {
    public struct Content: Codable, Sendable, Equatable {
        public struct Attachment: Codable, Sendable, Equatable {
            public var contentType: String
            public var url: String
            public var creation: String?
        }
        public var attachment: Attachment
        public var format: Coding?
    }
    public struct Context: Codable, Sendable, Equatable {
        public var encounter: [Reference]?
    }

    public var resourceType = "DocumentReference"
    public var id: String
    public var masterIdentifier: Identifier
    public var identifier: [Identifier]
    public var status: String
    public var subject: Reference
    public var date: String
    public var author: [Reference]
    public var custodian: Reference
    public var securityLabel: [CodeableConcept]
    public var content: [Content]
    public var context: Context

    public static let digestSystem = "urn:medledger:digest:sha384"

    public init(_ r: IndexRecord) {
        id = r.recordID
        masterIdentifier = Identifier(system: "urn:ietf:rfc:3986", value: "urn:medledger:record:" + r.recordID)
        identifier = [Identifier(system: Self.digestSystem, value: r.digest)]
        status = "current"
        subject = Ref.patient(r.patientPID)
        date = r.time
        author = [Ref.practitioner(r.doctorPID)]
        custodian = Ref.organization(r.hospital)
        // Restricted: every record is sealed to its patient and shared only by consent.
        securityLabel = [CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"))]
        content = [
            Content(
                attachment: .init(contentType: "application/octet-stream", url: r.url, creation: r.time),
                format: Coding("urn:medledger:format", "sealed-bundle-v1"))
        ]
        context = Context(encounter: [Ref.encounter(r.tID)])
    }
}

/// D_SP and D_SD as a Provenance of the DocumentReference: the doctor's signature is the author's
/// (ASTM E1762 1.2.840.10065.1.12.1.1), the patient's the source's (…1.14). `data` is the raw
/// signature: DER ECDSA P-256 with SHA-256 over `IndexRecordSigning.message` (domain, T_ID, URL,
/// digest), so `sigFormat` names that format rather than JOSE.
public struct Provenance: Codable, Sendable, Equatable {
    public struct Agent: Codable, Sendable, Equatable {
        public var type: CodeableConcept
        public var who: Reference
        public var onBehalfOf: Reference?
    }
    public struct Signature: Codable, Sendable, Equatable {
        public var type: [Coding]
        public var when: String
        public var who: Reference
        public var sigFormat: String
        public var data: String
    }

    public var resourceType = "Provenance"
    public var id: String
    public var target: [Reference]
    public var recorded: String
    public var activity: CodeableConcept
    public var agent: [Agent]
    public var signature: [Signature]

    /// The media type of `data`, documented in docs/FHIR.md.
    public static let sigFormat = "application/x-medledger-pde-signature"
    public static let idPrefix = "prov-"

    public init(_ r: IndexRecord) {
        id = Self.idPrefix + r.recordID
        target = [Ref.document(r.recordID)]
        recorded = r.time
        activity = CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE"))
        let participant = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
        agent = [
            Agent(
                type: CodeableConcept(Coding(participant, "author")), who: Ref.practitioner(r.doctorPID),
                onBehalfOf: Ref.organization(r.hospital)),
            // The patient co-signs the record (D_SP): an attester of it.
            Agent(type: CodeableConcept(Coding(participant, "attester")), who: Ref.patient(r.patientPID)),
        ]
        let astm = "urn:iso-astm:E1762-95:2013"
        signature = [
            Signature(
                type: [Coding(astm, "1.2.840.10065.1.12.1.1", "Author's Signature")], when: r.time,
                who: Ref.practitioner(r.doctorPID), sigFormat: Self.sigFormat, data: r.doctorSignature),
            Signature(
                type: [Coding(astm, "1.2.840.10065.1.12.1.14", "Source Signature")], when: r.time,
                who: Ref.patient(r.patientPID), sigFormat: Self.sigFormat, data: r.patientSignature),
        ]
    }
}

/// A share grant as a Consent: `active` with a permit provision for the grantee, the consent's
/// period and the treatments' records; a revoked or lapsed grant is `inactive`.
public struct FHIRConsent: Codable, Sendable, Equatable {
    public struct Provision: Codable, Sendable, Equatable {
        public struct Actor: Codable, Sendable, Equatable {
            public var role: CodeableConcept
            public var reference: Reference
        }
        public struct DataItem: Codable, Sendable, Equatable {
            public var meaning: String
            public var reference: Reference
        }
        public var type: String
        public var period: Period
        public var actor: [Actor]
        public var action: [CodeableConcept]
        public var purpose: [Coding]?
        public var data: [DataItem]
    }

    public var resourceType = "Consent"
    public var id: String
    public var status: String
    public var scope: CodeableConcept
    public var category: [CodeableConcept]
    public var patient: Reference
    public var dateTime: String
    public var performer: [Reference]
    public var policyRule: CodeableConcept
    public var provision: Provision

    /// `now` decides whether an unrevoked grant has lapsed.
    public init(_ c: Consent, now: Date) {
        id = c.consentID
        status = c.whyNotLive(at: now) == nil ? "active" : "inactive"
        scope = CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"))
        category = [CodeableConcept(Coding("http://loinc.org", "59284-0", "Patient Consent"))]
        patient = Ref.patient(c.patientPID)
        dateTime = c.grantedAt
        performer = [Ref.patient(c.patientPID)]
        policyRule = CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN"))
        provision = Provision(
            type: "permit", period: Period(start: c.grantedAt, end: c.revokedAt ?? c.expiresAt),
            actor: [
                .init(
                    role: CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP")),
                    reference: Ref.practitioner(c.granteePID))
            ],
            action: [CodeableConcept(Coding("http://terminology.hl7.org/CodeSystem/consentaction", "access"))],
            purpose: [Coding("urn:medledger:purpose", c.purpose)],
            data: c.tIDs.map { .init(meaning: "related", reference: Ref.encounter($0)) })
    }
}

/// What one AuditEvent is built from: a D_UE on chain, or a line of this node's audit log about a
/// patient's records.
public struct AccessEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// D_UE: a grantee's use through a proxy (DCM 110106 Export).
        case usage(proxyNode: String, tID: String)
        /// An access-log line: a read of the patient's records (DCM 110110 Patient Record).
        case read(function: String)
    }
    public var id: String
    public var kind: Kind
    public var time: String
    public var actorPID: String
    public var actorRole: String
    public var patientPID: String
    /// 0 success, 4 minor failure (refused), 8 serious failure.
    public var outcome: String
    public var purpose: String?

    public init(
        id: String, kind: Kind, time: String, actorPID: String, actorRole: String, patientPID: String, outcome: String,
        purpose: String? = nil
    ) {
        (self.id, self.kind, self.time, self.actorPID, self.actorRole, self.patientPID, self.outcome, self.purpose) = (
            id, kind, time, actorPID, actorRole, patientPID, outcome, purpose
        )
    }

    public init(_ u: UsageRecord) {
        self.init(
            id: "due-" + u.usageID, kind: .usage(proxyNode: u.proxyNode, tID: u.tID), time: u.time,
            actorPID: u.thirdPartyPID, actorRole: "third-party",
            patientPID: u.patientPID, outcome: "0", purpose: u.purpose)
    }
}

public struct FHIRAuditEvent: Codable, Sendable, Equatable {
    public struct Agent: Codable, Sendable, Equatable {
        public var who: Reference
        public var requestor: Bool
    }
    public struct Source: Codable, Sendable, Equatable {
        public var site: String?
        public var observer: Reference
    }
    public struct Entity: Codable, Sendable, Equatable {
        public var what: Reference
        public var type: Coding
        public var role: Coding
    }

    public var resourceType = "AuditEvent"
    public var id: String
    public var type: Coding
    public var subtype: [Coding]?
    public var action: String
    public var recorded: String
    public var outcome: String
    public var purposeOfEvent: [CodeableConcept]?
    public var agent: [Agent]
    public var source: Source
    public var entity: [Entity]

    /// `observer`: the node whose ledger or log the entry comes from.
    public init(_ e: AccessEntry, observer: String, site: String) {
        id = e.id
        let dcm = "http://dicom.nema.org/resources/ontology/DCM"
        var entities = [
            Entity(
                what: Ref.patient(e.patientPID),
                type: Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1"),
                role: Coding("http://terminology.hl7.org/CodeSystem/object-role", "1"))
        ]
        switch e.kind {
        case .usage(let proxy, let tID):
            type = Coding(dcm, "110106", "Export")
            action = "E"
            entities.append(
                Entity(
                    what: Ref.encounter(tID),
                    type: Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2"),
                    role: Coding("http://terminology.hl7.org/CodeSystem/object-role", "4")))
            source = Source(site: site, observer: Reference(display: proxy))
        case .read(let function):
            type = Coding(dcm, "110110", "Patient Record")
            subtype = [Coding("urn:medledger:function", function)]
            action = "R"
            source = Source(site: site, observer: Reference(display: observer))
        }
        recorded = e.time
        outcome = e.outcome
        purposeOfEvent = e.purpose.map { [CodeableConcept(text: $0)] }
        agent = [Agent(who: Ref.person(e.actorPID, role: e.actorRole), requestor: true)]
        entity = entities
    }
}

/// A search result (Bundle `searchset`), assembled from resources already encoded: resources are
/// rendered once (and may come from a cache), then spliced in rather than encoded again.
public enum SearchSet {
    /// `entries`: each resource's id and JSON; `base`: the FHIR base URL (for full URLs).
    public static func assemble(
        _ entries: [(id: String, json: Data)], type: String, base: String, selfURL: String, nextURL: String?,
        total: Int? = nil
    ) -> Data {
        var out = Data(#"{"resourceType":"Bundle","type":"searchset""#.utf8)
        if let total { out += Data(",\"total\":\(total)".utf8) }
        out += Data(#","link":[{"relation":"self","url":"#.utf8) + string(selfURL) + Data("}".utf8)
        if let nextURL { out += Data(#",{"relation":"next","url":"#.utf8) + string(nextURL) + Data("}".utf8) }
        out += Data("]".utf8)
        if !entries.isEmpty {
            out += Data(#","entry":["#.utf8)
            for (i, e) in entries.enumerated() {
                if i > 0 { out += Data(",".utf8) }
                out +=
                    Data(#"{"fullUrl":"#.utf8) + string("\(base)/\(type)/\(e.id)") + Data(#","resource":"#.utf8)
                    + e.json + Data(#","search":{"mode":"match"}}"#.utf8)
            }
            out += Data("]".utf8)
        }
        return out + Data("}".utf8)
    }

    /// A JSON string literal.
    static func string(_ s: String) -> Data { Data(JSONText.quoted(s).utf8) }
}
