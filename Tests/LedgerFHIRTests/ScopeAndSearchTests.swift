import Foundation
import LedgerFHIR
import MedRecords
import Testing

@Suite struct ScopeAndSearchTests {
    @Test func scopesParseInBothSpellingsAndRefuseMalformedOnes() throws {
        #expect(SMARTScope("patient/DocumentReference.rs")?.description == "patient/DocumentReference.rs")
        #expect(SMARTScope("user/Consent.read")?.description == "user/Consent.rs")
        #expect(SMARTScope("system/*.*")?.description == "system/*.cruds")
        #expect(SMARTScope("launch/patient") == .other("launch/patient"))
        // Out of order, repeated, unknown letters, a query, a lower-case type: refused.
        for bad in [
            "patient/DocumentReference.sr", "patient/DocumentReference.rr", "patient/DocumentReference.x",
            "patient/Observation.rs?category=vital-signs", "patient/documentreference.rs", "patient/Doc.", "a b",
        ] {
            #expect(SMARTScope(bad) == nil, "\(bad)")
        }
        // an unknown context is just another scope
        #expect(ScopeSet(parsing: "patient/DocumentReference.rs bogus/.x") != nil)
        #expect(ScopeSet(parsing: "patient/DocumentReference.sr") == nil)
    }

    @Test func grantsAreNarrowedToWhatThePolicyAllows() throws {
        let policy = try #require(
            ScopeSet(parsing: "patient/DocumentReference.rs patient/AuditEvent.rs launch/patient"))
        let asked = try #require(ScopeSet(parsing: "patient/*.cruds user/DocumentReference.rs openid launch/patient"))
        let granted = asked.granted(within: policy)
        #expect(granted.text == "patient/DocumentReference.rs patient/AuditEvent.rs launch/patient")
        #expect(granted.permits("DocumentReference", .read, in: .patient))
        #expect(!granted.permits("DocumentReference", .create, in: .patient))
        #expect(!granted.permits("DocumentReference", .read, in: .user))
        #expect(!granted.permits("Consent", .read, in: .patient))
        #expect(try #require(ScopeSet(parsing: "patient/Consent.rs")).granted(within: policy).scopes.isEmpty)
    }

    @Test func pkceIsRFC7636sS256() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        #expect(PKCE.challenge(for: verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE.verify(verifier: verifier, challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"))
        #expect(!PKCE.verify(verifier: verifier, challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"))
        #expect(!PKCE.verify(verifier: "short", challenge: PKCE.challenge(for: "short")))  // under 43 characters
        #expect(!PKCE.isWellFormedChallenge(verifier + "x"))
    }

    @Test func dateSearchCoversTheRangeItsPrecisionNames() throws {
        let t = try #require(RFC3339Time.parse("2026-12-01T10:00:00Z"))
        #expect(try #require(DateFilter("2026-12-01")).matches(t))
        #expect(try #require(DateFilter("eq2026-12")).matches(t))
        #expect(!(try #require(DateFilter("2026-11")).matches(t)))
        #expect(try #require(DateFilter("ge2026-12-01")).matches(t))
        #expect(!(try #require(DateFilter("gt2026-12-01")).matches(t)))  // after the whole day
        #expect(try #require(DateFilter("lt2026-12-02")).matches(t))
        #expect(try #require(DateFilter("le2026-12-01T10:00:00Z")).matches(t))
        #expect(!(try #require(DateFilter("lt2026-12-01T10:00:00Z")).matches(t)))
        #expect(try #require(DateFilter("2026")).matches(t))
        for bad in ["sa2026-01-01", "2026-13-01", "2026-02-30", "26-12-01", "yesterday", ""] {
            #expect(DateFilter(bad) == nil, "\(bad)")
        }
    }

    @Test func formsDecodeAndRefuseRepeatedOAuthParameters() throws {
        let pairs = try #require(FormEncoding.pairs("a=1&b=x+y%2Bz&c="))
        #expect(pairs.map(\.0) == ["a", "b", "c"] && pairs.map(\.1) == ["1", "x y+z", ""])
        #expect(FormEncoding.single(try #require(FormEncoding.pairs("code=1&code=2"))) == nil)
        #expect(FormEncoding.pairs("a=%ZZ") == nil)
        #expect(try #require(FormEncoding.pairs(FormEncoding.encode([("k", "a b&c=d/é")]))).first?.1 == "a b&c=d/é")
    }

    @Test func searchSetsAreSplicedIntoValidJSON() throws {
        let odd = "https://h/fhir/DocumentReference?patient=a\"b\\c\n\u{1}&_page=é/x"
        let bundle = SearchSet.assemble(
            [(id: "R-1", json: Data(#"{"resourceType":"DocumentReference","id":"R-1"}"#.utf8))],
            type: "DocumentReference", base: "https://h/fhir",
            selfURL: odd, nextURL: "https://h/next", total: 1)
        let object = try #require(try JSONSerialization.jsonObject(with: bundle) as? [String: Any])
        let links = try #require(object["link"] as? [[String: String]])
        #expect(links.first?["url"] == odd && links.last?["relation"] == "next" && object["total"] as? Int == 1)
        let entry = try #require((object["entry"] as? [[String: Any]])?.first)
        #expect(
            entry["fullUrl"] as? String == "https://h/fhir/DocumentReference/R-1"
                && (entry["resource"] as? [String: Any])?["id"] as? String == "R-1")
        let empty = try #require(
            try JSONSerialization.jsonObject(
                with: SearchSet.assemble([], type: "Consent", base: "b", selfURL: "s", nextURL: nil)) as? [String: Any])
        #expect(empty["entry"] == nil && empty["type"] as? String == "searchset")
    }

    static let record = IndexRecord(
        recordID: "R-0123456789abcdef01234567", tID: "T-1", patientPID: "pid-patient", doctorPID: "pid-doctor",
        hospital: "hospital-a",
        url: "medledger://peer0.hospital-a/objects/" + String(repeating: "ab", count: 48),
        digest: String(repeating: "ab", count: 48),
        patientSignature: "cGF0aWVudA==", doctorSignature: "ZG9jdG9y", patientCert: "PEM-P", doctorCert: "PEM-D",
        time: "2026-12-01T10:00:00Z", submittedBy: "pid-patient")

    @Test func resourcesNameOnlyPseudonymsAndCarryTheRecord() throws {
        let doc = DocumentReference(Self.record)
        #expect(doc.subject == Reference(type: "Patient", system: Ref.pidSystem, value: "pid-patient"))
        #expect(doc.author == [Reference(type: "Practitioner", system: Ref.pidSystem, value: "pid-doctor")])
        #expect(doc.identifier == [Identifier(system: DocumentReference.digestSystem, value: Self.record.digest)])
        #expect(
            doc.content.first?.attachment.url == Self.record.url
                && doc.context.encounter == [Reference(type: "Encounter", system: Ref.treatmentSystem, value: "T-1")])
        let prov = Provenance(Self.record)
        #expect(prov.signature.map(\.data) == ["ZG9jdG9y", "cGF0aWVudA=="])
        #expect(prov.signature.map { $0.type[0].code } == ["1.2.840.10065.1.12.1.1", "1.2.840.10065.1.12.1.14"])
        let text = String(decoding: try FHIR.encode(doc), as: UTF8.self)
        #expect(!text.contains("PEM-P") && !text.contains("\\/"))  // no certificates; URLs unescaped
    }

    @Test func consentsAreActiveOnlyWhileLive() throws {
        var c = Consent(
            consentID: "C-1", patientPID: "p", granteePID: "g", tIDs: ["T-1"], purpose: "second opinion",
            grantedAt: "2026-12-01T00:00:00Z", expiresAt: "2026-12-31T00:00:00Z", revokedAt: nil)
        let during = try #require(RFC3339Time.parse("2026-12-10T00:00:00Z"))
        let after = try #require(RFC3339Time.parse("2027-01-02T00:00:00Z"))
        #expect(FHIRConsent(c, now: during).status == "active")
        #expect(FHIRConsent(c, now: after).status == "inactive")
        c.revokedAt = "2026-12-05T00:00:00Z"
        let revoked = FHIRConsent(c, now: during)
        #expect(revoked.status == "inactive" && revoked.provision.period.end == "2026-12-05T00:00:00Z")
        #expect(revoked.provision.actor.first?.reference == Ref.practitioner("g"))
    }
}
