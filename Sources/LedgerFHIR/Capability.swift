import Foundation

/// What the node's FHIR endpoint serves, as `GET /fhir/metadata` states it: exactly the resources,
/// interactions and search parameters the routes implement (one table, read by both).
public enum FHIRSurface {
    public struct ResourceSupport: Sendable {
        public var type: String
        public var interactions: [String]
        public var searchParams: [(name: String, type: String)]
    }

    public static let resources: [ResourceSupport] = [
        .init(
            type: "DocumentReference", interactions: ["read", "search-type", "create"],
            searchParams: [("patient", "reference"), ("date", "date")]),
        .init(type: "Provenance", interactions: ["read", "search-type"], searchParams: [("target", "reference")]),
        .init(
            type: "Consent", interactions: ["read", "search-type", "create", "update"],
            searchParams: [("patient", "reference")]),
        .init(
            type: "AuditEvent", interactions: ["search-type"],
            searchParams: [("patient", "reference"), ("date", "date")]),
        .init(type: "Binary", interactions: ["read"], searchParams: []),
        .init(
            type: "Observation", interactions: ["search-type"],
            searchParams: [("encounter", "reference"), ("_count", "number")]),
    ]
}

public struct CapabilityStatement: Codable, Sendable {
    public struct Software: Codable, Sendable {
        public var name: String
        public var version: String
    }
    public struct Implementation: Codable, Sendable {
        public var description: String
        public var url: String
    }
    public struct Extension: Codable, Sendable {
        public var url: String
        public var valueUri: String?
        public var `extension`: [Extension]?
    }
    public struct Security: Codable, Sendable {
        public var `extension`: [Extension]
        public var cors: Bool
        public var service: [CodeableConcept]
        public var description: String
    }
    public struct Interaction: Codable, Sendable { public var code: String }
    public struct SearchParam: Codable, Sendable {
        public var name: String
        public var type: String
    }
    public struct Resource: Codable, Sendable {
        public var type: String
        public var interaction: [Interaction]
        public var searchParam: [SearchParam]?
    }
    public struct Rest: Codable, Sendable {
        public var mode: String
        public var security: Security
        public var resource: [Resource]
    }

    public var resourceType = "CapabilityStatement"
    public var status = "active"
    public var date: String
    public var kind = "instance"
    public var software: Software
    public var implementation: Implementation
    public var fhirVersion = FHIR.version
    public var format = [FHIR.mediaType, "json"]
    public var rest: [Rest]

    /// `base`: the FHIR base URL; `oauth`: where the authorization server's endpoints are.
    public init(base: String, oauth: String, version: String, date: String) {
        self.date = date
        software = Software(name: "medledgerd", version: version)
        implementation = Implementation(
            description: "MedLedger node: the ledger's records as FHIR R4, SMART on FHIR authorization", url: base)
        let oauth = Extension(
            url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            extension: [
                Extension(url: "authorize", valueUri: oauth + "/authorize"),
                Extension(url: "token", valueUri: oauth + "/token"),
                Extension(url: "introspect", valueUri: oauth + "/introspect"),
                Extension(url: "revoke", valueUri: oauth + "/revoke"),
            ])
        let security = Security(
            extension: [oauth], cors: false,
            service: [
                CodeableConcept(
                    Coding("http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR"))
            ],
            description:
                "SMART on FHIR: authorization code with PKCE (S256) for apps, client_credentials with private_key_jwt for backend services; bearer tokens (ES384, at most 300 s)"
        )
        rest = [
            Rest(
                mode: "server", security: security,
                resource: FHIRSurface.resources.map { r in
                    Resource(
                        type: r.type, interaction: r.interactions.map { Interaction(code: $0) },
                        searchParam: r.searchParams.isEmpty
                            ? nil : r.searchParams.map { SearchParam(name: $0.name, type: $0.type) })
                })
        ]
    }
}
