import Foundation
import LedgerChaincode
import LedgerCrypto
import LedgerIdentity
import LedgerProtos

/// `medrecords`' usage records D_UE: what a third party did with a record, under which consent.
extension Call {
    func recordUsage(_ r: RecordUsageRequest) throws -> [UInt8] {
        guard (me.role == .thirdParty && me.pid == r.thirdPartyPID) || me.role == .node else {
            throw Refusal.forbidden(
                "usage is recorded by the third party itself or by the proxy node that re-encrypts for it")
        }
        let tID = try Field.id(r.tID, .treatment, "t_id")
        let thirdParty = try Field.pid(r.thirdPartyPID, "third_party_pid")
        let proxyNode = try Field.text(r.proxyNode, "proxy_node", max: Field.pidBytesMax)
        let purpose = try Field.text(r.purpose, "purpose", max: Field.purposeBytesMax)
        guard let t = try load(Treatment.self, Keys.treatment, tID) else {
            throw Refusal.notFound("no treatment \(tID)")
        }
        // Key fragments are spread over the proxies of several hospitals (m of n), so a node of any
        // hospital may be the proxy that re-encrypts; the live consent below is what authorises it.
        if me.role == .node, me.org == OrgID.systemAdministrator {
            throw Refusal.forbidden("the system administrator's node is no proxy")
        }
        // The consent is read here, so a revocation committed before this transaction makes it fail
        // validation (MVCC) even if it was endorsed while the consent still stood.
        let consent = try liveConsent(
            grantee: thirdParty, tID: tID, purpose: purpose,
            cited: r.consentID.map { try Field.id($0, .consent, "consent_id") })

        let usageID = IDKind.usage.make(txID: stub.txID)
        try requireNew(Keys.usage, usageID)
        let usage = UsageRecord(
            usageID: usageID, tID: tID, patientPID: t.patientPID, thirdPartyPID: thirdParty, proxyNode: proxyNode,
            purpose: purpose, time: nowText, consentID: consent.consentID, submittedBy: me.pid)
        let stored = try save(usage, Keys.usage, usageID)
        try index(Keys.usageByTreatment, [tID, usage.time, usageID])
        try index(Keys.usageByPatient, [t.patientPID, usage.time, usageID])
        try event(MedRecordsChaincode.Event.usageRecorded, UsageRecordedEvent(usageID: usageID, tID: tID))
        return stored
    }

    func listUsage(_ r: ListUsageRequest) throws -> [UInt8] { try Wire.encode(try usage(r)) }

    func usage(_ r: ListUsageRequest) throws -> RecordPage<UsageRecord> {
        try Field.oneOf(("t_id", r.tID), ("patient_pid", r.patientPID))
        let size = try Field.pageSize(r.pageSize)
        if let p = r.patientPID {
            let patient = try Field.pid(p, "patient_pid")
            let scope = try listScope(patient: patient)
            var treatments = [String: Treatment]()
            return try list(
                UsageRecord.self, index: Keys.usageByPatient, owner: patient, primary: Keys.usage, pageSize: size,
                bookmark: r.bookmark
            ) { u in
                if treatments[u.tID] == nil { treatments[u.tID] = try load(Treatment.self, Keys.treatment, u.tID) }
                guard let t = treatments[u.tID] else {
                    throw CorruptRecord(key: u.tID, reason: "usage \(u.usageID) names a missing treatment")
                }
                return scope.admits(patient: t.patientPID, doctor: t.doctorPID, hospital: t.hospital)
            }
        }
        let tID = try Field.id(r.tID ?? "", .treatment, "t_id")
        let (_, standing) = try visibleTreatment(tID, missing: "no treatment \(tID)")
        // A grantee, live or lapsed, sees its own usage only, never other grantees'.
        let mine = me.pid
        let onlyMine = standing != .party
        return try list(
            UsageRecord.self, index: Keys.usageByTreatment, owner: tID, primary: Keys.usage, pageSize: size,
            bookmark: r.bookmark
        ) {
            !onlyMine || $0.thirdPartyPID == mine
        }
    }
}
