import Foundation
import LedgerFHIR
import LedgerFHIRServer
import MedRecords
import Testing

/// Reading what clients POST and PUT: the fields a P_DE or a consent needs, each signature with
/// its signer's certificate, and a clear refusal naming the element when something is missing.
@Suite struct SubmissionTests {
    static let tID = "T-" + String(repeating: "a", count: 24)
    static let digest = String(repeating: "ab", count: 48)
    static let certDER = Data([0x30, 0x03, 0x02, 0x01, 0x01])

    static func signature(
        _ code: String, data: String = "MEUCIQ==", format: String = Provenance.sigFormat, cert: Bool = true
    ) -> [String: Any] {
        var s: [String: Any] = [
            "type": [["system": "urn:iso-astm:E1762-95:2013", "code": code]], "when": "2030-01-01T00:00:00Z",
            "who": ["identifier": ["system": Ref.pidSystem, "value": "p"]], "sigFormat": format, "data": data,
        ]
        if cert {
            s["extension"] = [
                ["url": FHIRSubmission.signerCertificateExtension, "valueBase64Binary": certDER.base64EncodedString()]
            ]
        }
        return s
    }

    static func document(signatures: [[String: Any]], edit: (inout [String: Any]) -> Void = { _ in }) throws -> Data {
        var d: [String: Any] = [
            "resourceType": "DocumentReference", "status": "current",
            "identifier": [["system": DocumentReference.digestSystem, "value": digest]],
            "subject": ["type": "Patient", "identifier": ["system": Ref.pidSystem, "value": "patient-1"]],
            "content": [["attachment": ["url": "https://node/objects/x"]]],
            "context": ["encounter": [["identifier": ["system": Ref.treatmentSystem, "value": tID]]]],
            "contained": [["resourceType": "Provenance", "signature": signatures]],
        ]
        edit(&d)
        return try JSONSerialization.data(withJSONObject: d)
    }

    @Test func aDocumentReferenceYieldsTheP_DEsFieldsAndBothSignatures() throws {
        let both = [
            Self.signature(FHIRSubmission.authorSignature, data: "RA=="),
            Self.signature(FHIRSubmission.sourceSignature, data: "UA=="),
        ]
        let s = try FHIRSubmission.document(try Self.document(signatures: both))
        #expect(
            s.tID == Self.tID && s.digest == Self.digest && s.url == "https://node/objects/x"
                && s.subjectPID == "patient-1")
        #expect(s.doctor.data == "RA==" && s.patient.data == "UA==")
        #expect(
            s.patient.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----\n" + Self.certDER.base64EncodedString()))
    }

    @Test func whatIsMissingOrMalformedIsNamed() throws {
        let both = [Self.signature(FHIRSubmission.authorSignature), Self.signature(FHIRSubmission.sourceSignature)]
        let cases: [(Data, String)] = [
            (Data("[]".utf8), "not a JSON object"),
            (try Self.document(signatures: both) { $0["resourceType"] = "Consent" }, "resourceType"),
            (try Self.document(signatures: both) { $0["identifier"] = [] }, "identifier"),
            (try Self.document(signatures: both) { $0["content"] = [] }, "content"),
            (try Self.document(signatures: both) { $0["context"] = [:] }, "context.encounter"),
            (try Self.document(signatures: both) { $0["subject"] = ["reference": "Patient/1"] }, "subject"),
            (try Self.document(signatures: [Self.signature(FHIRSubmission.authorSignature)]), "source signature"),
            (
                try Self.document(signatures: [
                    Self.signature(FHIRSubmission.authorSignature, format: "application/jose"),
                    Self.signature(FHIRSubmission.sourceSignature),
                ]), "sigFormat"
            ),
            (
                try Self.document(signatures: [
                    Self.signature(FHIRSubmission.authorSignature, cert: false),
                    Self.signature(FHIRSubmission.sourceSignature),
                ]), "certificate"
            ),
            (try Self.document(signatures: both + [Self.signature(FHIRSubmission.sourceSignature)]), "two signatures"),
        ]
        for (body, named) in cases {
            #expect(throws: FHIRSubmission.Invalid.self, "\(named)") { try FHIRSubmission.document(body) }
            do { _ = try FHIRSubmission.document(body) } catch {
                #expect(error.description.contains(named), "\(error.description) lacks \(named)")
            }
        }
    }

    @Test func aConsentGrantAndItsRevocation() throws {
        let consent: [String: Any] = [
            "resourceType": "Consent", "status": "active",
            "identifier": [["system": FHIRSubmission.nonceSystem, "value": "n-1"]],
            "patient": ["identifier": ["system": Ref.pidSystem, "value": "patient-1"]],
            "provision": [
                "type": "permit", "period": ["end": "2031-01-01T00:00:00Z"],
                "actor": [["reference": ["identifier": ["system": Ref.pidSystem, "value": "researcher"]]]],
                "purpose": [["system": FHIRSubmission.purposeSystem, "code": "research"]],
                "data": [
                    [
                        "meaning": "related",
                        "reference": ["identifier": ["system": Ref.treatmentSystem, "value": Self.tID]],
                    ]
                ],
            ],
            "contained": [
                [
                    "resourceType": "Provenance",
                    "signature": [Self.signature(FHIRSubmission.consentSignature, data: "Qw==")],
                ]
            ],
        ]
        let g = try FHIRSubmission.consentGrant(try JSONSerialization.data(withJSONObject: consent))
        #expect(g.patientPID == "patient-1" && g.granteePID == "researcher" && g.tIDs == [Self.tID])
        #expect(g.purpose == "research" && g.expiresAt == "2031-01-01T00:00:00Z" && g.nonce == "n-1")
        #expect(g.signature.data == "Qw==")
        var unsigned = consent
        unsigned["identifier"] = nil
        #expect(throws: FHIRSubmission.Invalid.self) {
            try FHIRSubmission.consentGrant(try JSONSerialization.data(withJSONObject: unsigned))
        }

        var revocation = consent
        revocation["status"] = "inactive"
        revocation["id"] = "C-1"
        #expect(
            try FHIRSubmission.consentRevocation(try JSONSerialization.data(withJSONObject: revocation), id: "C-1").data
                == "Qw==")
        #expect(throws: FHIRSubmission.Invalid.self) {
            try FHIRSubmission.consentRevocation(try JSONSerialization.data(withJSONObject: revocation), id: "C-2")
        }
        revocation["status"] = "active"
        #expect(throws: FHIRSubmission.Invalid.self) {
            try FHIRSubmission.consentRevocation(try JSONSerialization.data(withJSONObject: revocation), id: "C-1")
        }
    }

    @Test func theCapabilityStatementListsTheWrites() throws {
        let kinds = Dictionary(uniqueKeysWithValues: FHIRSurface.resources.map { ($0.type, Set($0.interactions)) })
        #expect(
            kinds["DocumentReference"]?.contains("create") == true
                && kinds["Consent"] == ["read", "search-type", "create", "update"])
        #expect(kinds["Provenance"]?.contains("create") == false)
    }
}
