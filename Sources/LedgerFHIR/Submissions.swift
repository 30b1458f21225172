import Foundation

/// One signature a client sends inside a resource it creates: a contained Provenance's
/// `signature`, with the signer's certificate in an extension (R4's Signature has no element for it).
public struct SubmittedSignature: Sendable, Equatable {
    /// Base64 DER ECDSA P-256 (`Provenance.sigFormat`).
    public var data: String
    /// The signer's signing certificate, PEM.
    public var certificatePEM: String
}

/// What `POST /fhir/DocumentReference` asks for: a P_DE over a sealed object already in the node's
/// store, with the patient's (source) and the doctor's (author) signatures.
public struct DocumentSubmission: Sendable, Equatable {
    public var tID: String
    public var url: String
    public var digest: String
    /// The PID the client names as the subject, if any: it must be the treatment's patient.
    public var subjectPID: String?
    public var patient: SubmittedSignature
    public var doctor: SubmittedSignature
    /// Hex of the sealed record's Umbral capsule, so proxies can re-encrypt it.
    public var capsule: String?
}

/// What `POST /fhir/Consent` asks for: a grant the patient signed (`ConsentSigning.grantMessage`).
public struct ConsentGrantSubmission: Sendable, Equatable {
    public var patientPID: String
    public var granteePID: String
    public var tIDs: [String]
    public var purpose: String
    public var expiresAt: String
    public var nonce: String
    public var signature: SubmittedSignature
}

/// Reading what clients write. Lenient about what it does not use, strict about what it does: every
/// refusal a 400-class message naming the element (the route wraps it in an OperationOutcome).
public enum FHIRSubmission {
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// `Signature.extension` carrying the signer's certificate (base64 DER).
    public static let signerCertificateExtension = "urn:medledger:fhir:signer-certificate"
    /// `DocumentReference.extension` carrying the sealed record's capsule (hex).
    public static let capsuleExtension = "urn:medledger:fhir:umbral-capsule"
    /// `Consent.identifier.system` of the nonce a signed grant covers.
    public static let nonceSystem = "urn:medledger:consent-nonce"
    public static let purposeSystem = "urn:medledger:purpose"
    static let astm = "urn:iso-astm:E1762-95:2013"
    public static let authorSignature = "1.2.840.10065.1.12.1.1"
    public static let sourceSignature = "1.2.840.10065.1.12.1.14"
    public static let consentSignature = "1.2.840.10065.1.12.1.7"

    public static func document(_ body: Data) throws(Invalid) -> DocumentSubmission {
        let json = try object(body, "DocumentReference")
        let digests = array(json["identifier"]).compactMap(dictionary).filter {
            $0["system"] as? String == DocumentReference.digestSystem
        }
        guard digests.count == 1, let digest = digests[0]["value"] as? String else {
            throw Invalid(
                "identifier: one identifier with system \(DocumentReference.digestSystem) and the ciphertext's SHA-384 (hex) as its value"
            )
        }
        let contents = array(json["content"]).compactMap(dictionary)
        guard contents.count == 1, let url = dictionary(contents[0]["attachment"])?["url"] as? String else {
            throw Invalid("content: exactly one content with attachment.url, the sealed object's URL_C")
        }
        let encounters = array(dictionary(json["context"])?["encounter"]).compactMap(dictionary)
        guard encounters.count == 1, let tID = identifier(encounters[0], Ref.treatmentSystem) else {
            throw Invalid(
                "context.encounter: one logical reference to the treatment (identifier system \(Ref.treatmentSystem), value T_ID)"
            )
        }
        var subject: String?
        if let s = dictionary(json["subject"]) {
            guard let pid = identifier(s, Ref.pidSystem) else {
                throw Invalid("subject: a logical reference by PID (identifier system \(Ref.pidSystem))")
            }
            subject = pid
        }
        let signatures = try provenanceSignatures(json)
        guard let doctor = signatures[authorSignature], let patient = signatures[sourceSignature] else {
            throw Invalid(
                "contained Provenance: needs the doctor's author signature (\(authorSignature)) and the patient's source signature (\(sourceSignature))"
            )
        }
        let capsule =
            array(json["extension"]).compactMap(dictionary).first { $0["url"] as? String == capsuleExtension }?[
                "valueString"] as? String
        return DocumentSubmission(
            tID: tID, url: url, digest: digest, subjectPID: subject, patient: patient, doctor: doctor, capsule: capsule)
    }

    public static func consentGrant(_ body: Data) throws(Invalid) -> ConsentGrantSubmission {
        let json = try object(body, "Consent")
        guard json["status"] as? String == "active" else {
            throw Invalid("status: a new Consent is \"active\" (revoke one with PUT and status \"inactive\")")
        }
        guard let patientRef = dictionary(json["patient"]), let patient = identifier(patientRef, Ref.pidSystem) else {
            throw Invalid("patient: a logical reference by PID (identifier system \(Ref.pidSystem))")
        }
        guard let provision = dictionary(json["provision"]), provision["type"] as? String == "permit" else {
            throw Invalid("provision: one provision of type \"permit\"")
        }
        guard let end = dictionary(provision["period"])?["end"] as? String else {
            throw Invalid("provision.period.end: when the grant lapses (RFC 3339)")
        }
        let actors = array(provision["actor"]).compactMap(dictionary).compactMap { dictionary($0["reference"]) }
        guard actors.count == 1, let grantee = identifier(actors[0], Ref.pidSystem) else {
            throw Invalid("provision.actor: one actor, the grantee, by PID (identifier system \(Ref.pidSystem))")
        }
        let data = array(provision["data"]).compactMap(dictionary).map { dictionary($0["reference"]) }
        let tIDs = data.compactMap { $0.flatMap { identifier($0, Ref.treatmentSystem) } }
        guard !tIDs.isEmpty, tIDs.count == data.count else {
            throw Invalid(
                "provision.data: the treatments shared, each a logical reference (identifier system \(Ref.treatmentSystem))"
            )
        }
        let purposes = array(provision["purpose"]).compactMap(dictionary).filter {
            $0["system"] as? String == purposeSystem
        }
        guard purposes.count == 1, let purpose = purposes[0]["code"] as? String else {
            throw Invalid("provision.purpose: one coding with system \(purposeSystem)")
        }
        let nonces = array(json["identifier"]).compactMap(dictionary).filter { $0["system"] as? String == nonceSystem }
        guard nonces.count == 1, let nonce = nonces[0]["value"] as? String else {
            throw Invalid(
                "identifier: one identifier with system \(nonceSystem), the nonce the patient's signature covers")
        }
        guard let signature = try provenanceSignatures(json)[consentSignature] else {
            throw Invalid("contained Provenance: needs the patient's consent signature (\(consentSignature))")
        }
        return ConsentGrantSubmission(
            patientPID: patient, granteePID: grantee, tIDs: tIDs, purpose: purpose, expiresAt: end, nonce: nonce,
            signature: signature)
    }

    /// `PUT /fhir/Consent/ID` with status `inactive`: the patient's signed revocation.
    public static func consentRevocation(_ body: Data, id: String) throws(Invalid) -> SubmittedSignature {
        let json = try object(body, "Consent")
        if let given = json["id"] as? String, given != id {
            throw Invalid("id: the body's id \(given.debugDescription) is not the URL's \(id)")
        }
        guard json["status"] as? String == "inactive" else {
            throw Invalid("status: only a revocation (status \"inactive\") updates a Consent")
        }
        guard let signature = try provenanceSignatures(json)[consentSignature] else {
            throw Invalid("contained Provenance: needs the patient's signature of the revocation (\(consentSignature))")
        }
        return signature
    }

    // MARK: -

    static func object(_ body: Data, _ type: String) throws(Invalid) -> [String: Any] {
        guard let any = try? JSONSerialization.jsonObject(with: body), let json = any as? [String: Any] else {
            throw Invalid("the body is not a JSON object")
        }
        guard json["resourceType"] as? String == type else { throw Invalid("resourceType: expected \(type)") }
        return json
    }

    /// The contained Provenances' signatures by ASTM type code; each needs our `sigFormat`, its
    /// data and the signer's certificate.
    static func provenanceSignatures(_ json: [String: Any]) throws(Invalid) -> [String: SubmittedSignature] {
        var found: [String: SubmittedSignature] = [:]
        for p in array(json["contained"]).compactMap(dictionary) where p["resourceType"] as? String == "Provenance" {
            for s in array(p["signature"]).compactMap(dictionary) {
                let codes = array(s["type"]).compactMap(dictionary).filter { $0["system"] as? String == astm }
                    .compactMap { $0["code"] as? String }
                guard let code = codes.first else { continue }
                guard s["sigFormat"] as? String == Provenance.sigFormat else {
                    throw Invalid("Provenance.signature.sigFormat: must be \(Provenance.sigFormat)")
                }
                guard let data = s["data"] as? String else {
                    throw Invalid("Provenance.signature.data: the signature, base64 DER")
                }
                let certificate =
                    array(s["extension"]).compactMap(dictionary).first {
                        $0["url"] as? String == signerCertificateExtension
                    }?["valueBase64Binary"] as? String
                guard let certificate, let der = Data(base64Encoded: certificate), !der.isEmpty, der.count <= 8192
                else {
                    throw Invalid(
                        "Provenance.signature.extension: the signer's certificate (url \(signerCertificateExtension), valueBase64Binary DER)"
                    )
                }
                guard found[code] == nil else { throw Invalid("Provenance.signature: two signatures of type \(code)") }
                found[code] = SubmittedSignature(data: data, certificatePEM: pem(der))
            }
        }
        return found
    }

    static func pem(_ der: Data) -> String {
        let b64 = der.base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----\n"
    }

    static func identifier(_ reference: [String: Any], _ system: String) -> String? {
        guard let id = dictionary(reference["identifier"]), id["system"] as? String == system,
            let value = id["value"] as? String, !value.isEmpty
        else { return nil }
        return value
    }

    static func array(_ v: Any?) -> [Any] { v as? [Any] ?? [] }
    static func dictionary(_ v: Any?) -> [String: Any]? { v as? [String: Any] }
}
