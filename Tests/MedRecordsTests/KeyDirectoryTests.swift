import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerPRE
import MedRecords
import Testing

/// publishKeys / getKeys (the key directory proxies and clients trust), getConsent, and the capsule a
/// P_DE may carry for proxy re-encryption.
@Suite struct KeyDirectoryTests {
    static func keys() -> PublishKeysRequest {
        PublishKeysRequest(
            encryptionKey: Hex.encode(SecretKey.random().publicKey.compressedBytes),
            verifyingKey: Hex.encode(SecretKey.random().publicKey.compressedBytes))
    }

    @Test func membersPublishTheirOwnKeysAndAnyoneReadsThem() throws {
        let w = try World()
        let mine = Self.keys()
        let r = try w.submit(w.patient1, "publishKeys", mine)
        #expect(r.response.status == 200, "\(r.response.message)")
        let entry = try World.decode(KeyDirectoryEntry.self, r)
        #expect(
            entry.pid == w.patient1.pid && entry.role == "patient" && entry.org == "hospital-a"
                && entry.encryptionKey == mine.encryptionKey)
        // Read by anyone on the channel, devices included (they seal readings to the doctor's key).
        for reader in [w.research1, w.deviceA, w.doctorB, w.nodeB] {
            let got = try w.call(reader, "getKeys", GetKeysRequest(pid: w.patient1.pid))
            #expect(try World.decode(KeyDirectoryEntry.self, got) == entry)
        }
        // Replacing them is the owner's own act: a new entry under the caller's PID, never another's.
        let rotated = Self.keys()
        #expect(try w.submit(w.patient1, "publishKeys", rotated).response.status == 200)
        #expect(
            try World.decode(
                KeyDirectoryEntry.self, try w.call(w.doctorA1, "getKeys", GetKeysRequest(pid: w.patient1.pid))
            ).encryptionKey == rotated.encryptionKey)
        expectRefused(try w.call(w.doctorA1, "getKeys", GetKeysRequest(pid: w.patient2.pid)), 404, "published no keys")
    }

    @Test func keysMustBePointsOnTheCurve() throws {
        let w = try World()
        var bad = Self.keys()
        bad.encryptionKey = "02" + String(repeating: "ff", count: 32)  // x beyond the field: not a point
        expectRefused(
            try w.call(w.patient1, "publishKeys", bad), 400, "encryption_key must be a compressed secp256k1 public key")
        bad = Self.keys()
        bad.verifyingKey = "not hex"
        expectRefused(try w.call(w.patient1, "publishKeys", bad), 400, "verifying_key")
    }

    @Test func aConsentIsVisibleToItsPatientAndGranteeOnly() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let c = try w.grant(w.research1, [t.tID])
        for who in [w.patient1, w.research1] {
            #expect(
                try World.decode(Consent.self, try w.call(who, "getConsent", GetConsentRequest(consentID: c.consentID)))
                    == c)
        }
        for stranger in [w.research2, w.patient2, w.doctorA1, w.nodeA, w.adminA] {
            expectRefused(
                try w.call(stranger, "getConsent", GetConsentRequest(consentID: c.consentID)), 404, "no consent")
        }
        expectRefused(try w.call(w.patient1, "getConsent", GetConsentRequest(consentID: "nonsense")), 400, "consent_id")
    }

    @Test func anIndexRecordMayCarryAWellFormedCapsule() throws {
        let w = try World()
        let t = try w.createTreatment(patient: w.patient1, doctor: w.doctorA1)
        let (capsule, _) = Umbral.encrypt(delegatingPK: SecretKey.random().publicKey, plaintext: [1, 2, 3])
        var req = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)
        req.capsule = Hex.encode(capsule.toBytes()).uppercased()
        let r = try w.submit(w.patient1, "putIndexRecord", req)
        #expect(r.response.status == 200, "\(r.response.message)")
        let receipt = try World.decode(IndexRecordReceipt.self, r)
        #expect(IndexRecord(request: req, receipt: receipt).capsule == Hex.encode(capsule.toBytes()))
        let stored = try w.call(w.patient1, "getIndexRecord", GetIndexRecordRequest(recordID: receipt.recordID))
        #expect(
            try World.decode(IndexRecord.self, stored).capsule == Hex.encode(capsule.toBytes()), "stored lower-cased")
        var bad = try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1)
        bad.capsule = String(repeating: "ab", count: 105)
        expectRefused(try w.call(w.patient1, "putIndexRecord", bad), 400, "capsule must be an Umbral capsule")
        // Without one the record is still valid (it just cannot be shared through a proxy).
        #expect(
            try w.submit(w.patient1, "putIndexRecord", try w.indexRequest(t, patient: w.patient1, doctor: w.doctorA1))
                .response.status == 200)
    }
}

/// anchorAudit / listAuditAnchors: a node's audit log heads on chain.
@Suite struct AuditAnchorTests {
    static let head = String(repeating: "ab", count: 32)

    @Test func nodesAnchorTheirOwnLogInOrderAndTheirOrganisationReadsThem() throws {
        let w = try World()
        let first = try w.submit(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 10, head: Self.head))
        #expect(first.response.status == 200, "\(first.response.message)")
        let anchor = try World.decode(AuditAnchor.self, first)
        #expect(
            anchor.nodePID == w.nodeA.pid && anchor.org == "hospital-a" && anchor.seq == 10 && anchor.head == Self.head)
        #expect(
            try w.submit(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 12, head: String(repeating: "CD", count: 32)))
                .response.status == 200)
        // Never back: an anchor at or before the last one would let a shorter log pass.
        expectRefused(
            try w.call(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 12, head: Self.head)), 409,
            "not after this node's last anchor (line 12)")
        expectRefused(try w.call(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 3, head: Self.head)), 409, "not after")
        expectRefused(
            try w.call(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 0, head: Self.head)), 400, "numbered from 1")
        expectRefused(
            try w.call(w.nodeA, "anchorAudit", AnchorAuditRequest(seq: 20, head: "abc")), 400, "64 hex digits")
        for who in [w.doctorA1, w.patient1] {
            expectRefused(
                try w.call(who, "anchorAudit", AnchorAuditRequest(seq: 20, head: Self.head)), 403, "only nodes")
        }
        // In line order, lower-cased, for the node's organisation only.
        let page = try World.decode(
            RecordPage<AuditAnchor>.self,
            try w.call(w.nodeA, "listAuditAnchors", ListAuditAnchorsRequest(nodePID: w.nodeA.pid)))
        #expect(page.records.map(\.seq) == [10, 12] && page.records[1].head == String(repeating: "cd", count: 32))
        for outsider in [w.nodeB, w.doctorA1, w.research1] {
            expectRefused(
                try w.call(outsider, "listAuditAnchors", ListAuditAnchorsRequest(nodePID: w.nodeA.pid)), 404,
                "no audit anchors")
        }
    }
}
