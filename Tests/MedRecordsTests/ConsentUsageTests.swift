import Foundation
import LedgerChaincode
import LedgerStorage
import MedRecords
import Testing

/// grantAccess, revokeAccess, listConsents, recordUsage: the patient decides, usage needs a live
/// consent for exactly this grantee, treatment and purpose.
@Suite struct ConsentUsageTests {
    func request(
        _ w: World, _ t: Treatment, for grantee: Person? = nil, purpose: String = "research"
    ) -> RecordUsageRequest {
        RecordUsageRequest(
            tID: t.tID, thirdPartyPID: (grantee ?? w.research1).pid, proxyNode: w.nodeA.pid, purpose: purpose)
    }

    @Test func onlyThePatientOfEveryListedTreatmentGrants() throws {
        let w = try World()
        let mine = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let theirs = try w.createTreatment(patient: w.patient2, doctor: w.doctorA1)
        let expires = World.rfc3339(w.clock.addingTimeInterval(86_400))
        let body = GrantAccessRequest(
            granteePID: w.research1.pid, tIDs: [mine.tID], purpose: "research", expiresAt: expires)
        for caller in [w.doctorA1, w.adminA, w.nodeA, w.deviceA, w.research1] {
            expectRefused(try w.call(caller, "grantAccess", body), 403, "only a patient")
        }
        expectRefused(try w.call(w.patient2, "grantAccess", body), 403, "not yours")
        expectRefused(
            try w.call(
                w.patient1, "grantAccess",
                GrantAccessRequest(
                    granteePID: w.research1.pid, tIDs: [mine.tID, theirs.tID], purpose: "research", expiresAt: expires)),
            403, "\(theirs.tID) is not yours")
        expectRefused(
            try w.call(
                w.patient1, "grantAccess",
                GrantAccessRequest(
                    granteePID: w.research1.pid, tIDs: [mine.tID, "T-" + String(repeating: "a", count: 24)],
                    purpose: "research", expiresAt: expires)), 404, "no treatment")
        let ok = try w.call(w.patient1, "grantAccess", body)
        #expect(ok.response.status == 200, "\(ok.response.message)")
        let eventBody = try #require(
            try JSONSerialization.jsonObject(with: ok.event?.payload ?? Data()) as? [String: String])
        #expect(Set(eventBody.keys) == ["consent_id", "grantee_pid"])
    }

    @Test func grantInputIsChecked() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        func grant(
            _ tIDs: [String], expires: String, grantee: String? = nil, purpose: String = "research"
        ) throws -> SimulationResult {
            try w.call(
                w.patient1, "grantAccess",
                GrantAccessRequest(
                    granteePID: grantee ?? w.research1.pid, tIDs: tIDs, purpose: purpose, expiresAt: expires))
        }
        let future = World.rfc3339(w.clock.addingTimeInterval(86_400))
        expectRefused(
            try grant([t.tID], expires: World.rfc3339(w.clock.addingTimeInterval(-60))), 400,
            "after the transaction's time")
        expectRefused(
            try grant([t.tID], expires: World.rfc3339(w.clock.addingTimeInterval(1))), 400,
            "after the transaction's time")  // the call's own second
        expectRefused(try grant([t.tID], expires: "tomorrow"), 400, "RFC 3339")
        expectRefused(try grant([t.tID], expires: "2031-01-01T00:00:00"), 400, "RFC 3339")  // no zone
        expectRefused(try grant([t.tID], expires: "2031-02-30T00:00:00Z"), 400, "RFC 3339")
        expectRefused(try grant([], expires: future), 400, "t_ids must list")
        expectRefused(try grant([t.tID, t.tID], expires: future), 400, "twice")
        expectRefused(try grant([t.tID], expires: future, grantee: w.patient1.pid), 400, "own records")
        expectRefused(try grant([t.tID], expires: future, purpose: ""), 400, "purpose must not be empty")
        expectRefused(
            try grant([t.tID], expires: future, purpose: String(repeating: "x", count: 257)), 400, "purpose is longer")
        // An offset is accepted and stored in UTC, to the millisecond.
        let r = try grant([t.tID], expires: "2031-01-01T02:00:00.123456+02:00")
        #expect(r.response.status == 200, "\(r.response.message)")
        #expect(try World.decode(Consent.self, r).expiresAt == "2031-01-01T00:00:00.123Z")
    }

    @Test func usageNeedsALiveConsentForThisGranteeTreatmentAndPurpose() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let other = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        expectRefused(
            try w.call(w.research1, "recordUsage", request(w, t)), 403, "no live consent: no consent grants treatment")

        _ = try w.grant(w.research1, [other.tID])  // another treatment
        expectRefused(
            try w.call(w.research1, "recordUsage", request(w, t)), 403, "no live consent: no consent grants treatment")
        _ = try w.grant(w.research1, [t.tID], purpose: "insurance")  // another purpose
        expectRefused(
            try w.call(w.research1, "recordUsage", request(w, t)), 403,
            "no live consent: no consent for treatment \(t.tID) covers purpose \"research\"")
        _ = try w.grant(w.research2, [t.tID])  // another grantee
        expectRefused(try w.call(w.research1, "recordUsage", request(w, t)), 403, "no live consent")
        expectRefused(try w.call(w.nodeA, "recordUsage", request(w, t)), 403, "no live consent")

        // research2's consent is for research2 only, even through the proxy.
        #expect(try w.submit(w.nodeA, "recordUsage", request(w, t, for: w.research2)).response.status == 200)
        #expect(try w.submit(w.research1, "recordUsage", request(w, t, purpose: "insurance")).response.status == 200)
        #expect(try w.submit(w.research1, "recordUsage", request(w, other)).response.status == 200)
    }

    /// A proxy's D_UE cites the consent whose key fragment it used: that one must be live, even when
    /// another consent for the same grantee, treatment and purpose would be.
    @Test func aProxysUsageRecordCitesTheConsentItUsed() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let first = try w.grant(w.research1, [t.tID])
        let second = try w.grant(w.research1, [t.tID])
        var cited = request(w, t)
        cited.consentID = first.consentID
        let usage = try World.decode(UsageRecord.self, try w.submit(w.nodeA, "recordUsage", cited))
        #expect(usage.consentID == first.consentID)
        #expect(
            try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: first.consentID)).response.status
                == 200)
        expectRefused(try w.call(w.nodeA, "recordUsage", cited), 403, "the consent was revoked")
        cited.consentID = second.consentID
        #expect(
            try World.decode(UsageRecord.self, try w.submit(w.nodeA, "recordUsage", cited)).consentID
                == second.consentID)
        // A consent of someone else's cannot be cited.
        let theirs = try w.grant(w.research2, [t.tID])
        cited.consentID = theirs.consentID
        expectRefused(try w.call(w.nodeA, "recordUsage", cited), 403, "does not grant treatment")
    }

    @Test func whoMayRecordUsage() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        _ = try w.grant(w.research1, [t.tID])
        // Another third party cannot write usage in research1's name; nor can patients, doctors, admins, devices.
        for caller in [w.research2, w.patient1, w.doctorA1, w.adminA, w.deviceA] {
            expectRefused(
                try w.call(caller, "recordUsage", request(w, t)), 403, "third party itself or by the proxy node")
        }
        // Key fragments are spread over several hospitals' proxies: another hospital's node may record
        // usage too, under the live consent; the SA's node is no proxy.
        #expect(try w.call(w.nodeB, "recordUsage", request(w, t)).response.status == 200)
        var unknown = request(w, t)
        unknown.tID = "T-" + String(repeating: "b", count: 24)
        expectRefused(try w.call(w.research1, "recordUsage", unknown), 404, "no treatment")
        var noProxy = request(w, t)
        noProxy.proxyNode = ""
        expectRefused(try w.call(w.research1, "recordUsage", noProxy), 400, "proxy_node")
        let ok = try w.call(w.nodeA, "recordUsage", request(w, t))
        #expect(ok.response.status == 200, "\(ok.response.message)")
        #expect(try World.decode(UsageRecord.self, ok).submittedBy == w.nodeA.pid)
    }

    @Test func expiryIsDecidedByTheTransactionsTimestamp() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        _ = try w.grant(w.research1, [t.tID], for: 60)
        // expires_at is 59 s after the grant's own second; the next call is at 58 s
        w.clock = w.clock.addingTimeInterval(57)
        #expect(try w.submit(w.research1, "recordUsage", request(w, t)).response.status == 200)
        // The next call is at exactly expires_at: no longer live.
        expectRefused(try w.call(w.research1, "recordUsage", request(w, t)), 403, "the consent expired")
    }

    @Test func aLaterLiveConsentServesAfterAnEarlierOneLapsed() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let first = try w.grant(w.research1, [t.tID])
        #expect(
            try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: first.consentID)).response.status
                == 200)
        let second = try w.grant(w.research1, [t.tID])
        let used = try w.submit(w.research1, "recordUsage", request(w, t))
        #expect(try World.decode(UsageRecord.self, used).consentID == second.consentID)
    }

    @Test func usageReadsItsConsentSoARevocationCommittedFirstInvalidatesIt() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let consent = try w.grant(w.research1, [t.tID])
        let consentKey = "\u{0}consent\u{0}\(consent.consentID)\u{0}"
        let endorsed = try w.call(w.research1, "recordUsage", request(w, t))  // endorsed, not yet ordered
        #expect(endorsed.response.status == 200)
        let read = try #require(endorsed.results.nsRwset.first?.rwset.reads.first { $0.key == consentKey })
        #expect(
            try w.ledger.state.get(namespace: "medrecords", key: consentKey)?.version.blockNum == read.version.blockNum)
        // The revocation commits first: the version the usage read is gone, which MVCC validation refuses.
        #expect(
            try w.submit(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: consent.consentID)).response.status
                == 200)
        let now = try #require(try w.ledger.state.get(namespace: "medrecords", key: consentKey))
        #expect(now.version.blockNum != read.version.blockNum)
    }

    @Test func revocationIsThePatientsAlone() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let consent = try w.grant(w.research1, [t.tID])
        let body = RevokeAccessRequest(consentID: consent.consentID)
        for caller in [w.research1, w.doctorA1, w.adminA, w.nodeA] {
            expectRefused(try w.call(caller, "revokeAccess", body), 403, "only the patient who granted")
        }
        expectRefused(try w.call(w.patient2, "revokeAccess", body), 404, "no consent")  // must not learn it exists
        expectRefused(
            try w.call(
                w.patient1, "revokeAccess", RevokeAccessRequest(consentID: "C-" + String(repeating: "c", count: 24))),
            404, "no consent")
        expectRefused(
            try w.call(w.patient1, "revokeAccess", RevokeAccessRequest(consentID: t.tID)), 400, "not a consent id")
        let revoked = try w.submit(w.patient1, "revokeAccess", body)
        #expect(revoked.response.status == 200)
        // Only the consent itself changes.
        #expect(writtenKeys(revoked).count == 1)
        expectRefused(try w.call(w.patient1, "revokeAccess", body), 409, "already revoked")
    }

    @Test func consentsAreListedForThePatientAndTheGranteeOnly() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let a = try w.grant(w.research1, [t.tID])
        let b = try w.grant(w.research2, [t.tID])
        #expect(
            try World.decode(
                RecordPage<Consent>.self,
                try w.call(w.patient1, "listConsents", ListConsentsRequest(patientPID: w.patient1.pid))
            ).records == [a, b])
        #expect(
            try World.decode(
                RecordPage<Consent>.self,
                try w.call(w.research2, "listConsents", ListConsentsRequest(granteePID: w.research2.pid))
            ).records == [b])
        for caller in [w.patient2, w.doctorA1, w.adminA, w.research1] {
            expectRefused(try w.call(caller, "listConsents", ListConsentsRequest(patientPID: w.patient1.pid)), 403)
        }
        for caller in [w.research2, w.patient1, w.adminA] {
            expectRefused(try w.call(caller, "listConsents", ListConsentsRequest(granteePID: w.research1.pid)), 403)
        }
    }
}

/// A consent the patient signed and a node submits (the FHIR face's Consent writes): the patient's
/// signature is the authority, once, and only for what it covers.
@Suite struct SignedConsentTests {
    func signedGrant(
        _ w: World, _ t: Treatment, by signer: Person, nonce: String = "n-1", purpose: String = "research",
        tamper: ((inout GrantAccessRequest) -> Void)? = nil
    ) throws -> GrantAccessRequest {
        let expires = World.rfc3339(w.clock.addingTimeInterval(86_400))
        let message = ConsentSigning.grantMessage(
            granteePID: w.research1.pid, tIDs: [t.tID], purpose: purpose, expiresAt: expires, nonce: nonce)
        var r = GrantAccessRequest(
            granteePID: w.research1.pid, tIDs: [t.tID], purpose: purpose, expiresAt: expires,
            patientCert: signer.pem, patientSignature: try ConsentSigning.sign(message, key: signer.key), nonce: nonce)
        tamper?(&r)
        return r
    }

    @Test func aNodeSubmitsAPatientsSignedGrantOnceAndItsSignedRevocation() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let grant = try signedGrant(w, t, by: w.patient1)
        // Only a node (or the patient) carries it; a doctor holding the signature cannot.
        expectRefused(try w.call(w.doctorA1, "grantAccess", grant), 403, "only a patient")
        let r = try w.submit(w.nodeB, "grantAccess", grant)
        #expect(r.response.status == 200, "\(r.response.message)")
        let consent = try World.decode(Consent.self, r)
        #expect(consent.patientPID == w.patient1.pid && consent.granteePID == w.research1.pid)
        // The consent keeps what the patient signed: an auditor checks it without the transaction.
        let kept = try #require(consent.grantSignature)
        let key = try #require(try IndexRecordSigning.publicKey(certificatePEM: kept.certificate))
        #expect(
            ConsentSigning.isValid(signatureBase64: kept.signature, publicKey: key, message: Array(kept.message.utf8)))
        #expect(
            kept.message.hasPrefix(ConsentSigning.grantDomain + "\n" + w.research1.pid + "\n" + t.tID + "\nresearch\n"))
        // The same signed grant again (a replay after a revocation, say) makes no second consent.
        expectRefused(try w.call(w.nodeA, "grantAccess", grant), 409, "already submitted")

        let revokeMessage = ConsentSigning.revokeMessage(consentID: consent.consentID)
        let byOther = RevokeAccessRequest(
            consentID: consent.consentID, patientCert: w.patient2.pem,
            patientSignature: try ConsentSigning.sign(revokeMessage, key: w.patient2.key))
        expectRefused(try w.call(w.nodeA, "revokeAccess", byOther), 404, "no consent")
        let unsigned = RevokeAccessRequest(consentID: consent.consentID)
        expectRefused(try w.call(w.nodeA, "revokeAccess", unsigned), 403, "only the patient")
        let revoke = RevokeAccessRequest(
            consentID: consent.consentID, patientCert: w.patient1.pem,
            patientSignature: try ConsentSigning.sign(revokeMessage, key: w.patient1.key))
        let revoked = try w.submit(w.nodeA, "revokeAccess", revoke)
        #expect(revoked.response.status == 200, "\(revoked.response.message)")
        let after = try World.decode(Consent.self, revoked)
        #expect(
            after.revokedAt != nil
                && after.revocationSignature?.message == String(decoding: revokeMessage, as: UTF8.self))
        #expect(after.grantSignature == consent.grantSignature)
    }

    @Test func theSignatureCoversEveryFieldAndComesFromTheTreatmentsPatient() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let cases: [(GrantAccessRequest, Int32, String)] = [
            (try signedGrant(w, t, by: w.patient1) { $0.purpose = "marketing" }, 400, "does not verify"),
            (try signedGrant(w, t, by: w.patient1) { $0.granteePID = w.research2.pid }, 400, "does not verify"),
            (try signedGrant(w, t, by: w.patient1) { $0.nonce = "n-2" }, 400, "does not verify"),
            (try signedGrant(w, t, by: w.patient1) { $0.patientCert = w.patient2.pem }, 400, "does not verify"),
            (try signedGrant(w, t, by: w.patient2), 403, "not yours"),
            (try signedGrant(w, t, by: w.doctorA1), 403, "signed by the patient"),
            (try signedGrant(w, t, by: w.patient1) { $0.nonce = nil }, 400, "nonce must not be empty"),
            (try signedGrant(w, t, by: w.patient1) { $0.patientSignature = nil }, 400, "patient_signature"),
        ]
        for (request, status, message) in cases {
            expectRefused(try w.call(w.nodeA, "grantAccess", request), status, message)
        }
        w.revoked.insert(w.patient1.cert.serialNumber)
        expectRefused(
            try w.call(w.nodeA, "grantAccess", try signedGrant(w, t, by: w.patient1)), 403,
            "patient certificate rejected")
    }
}
