import Foundation
import GRPCCore
import LedgerAudit
import LedgerCrypto
import LedgerOperations
import LedgerPRE
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords

/// The semi-trusted proxy of the paper (§1.2.3): it keeps patients' key fragments and re-encrypts
/// index records' capsules for consented grantees. It never holds a data key or plaintext: a key
/// fragment turns a capsule into a capsule fragment, and only `threshold` fragments from different
/// proxies, combined by the grantee, open the data key.
///
/// Every decision is taken from the chain at the moment of the call: the consent (live, covering the
/// record's treatment, granted to the caller), the record's capsule, and the published keys. The
/// usage record D_UE is committed before the capsule fragment leaves the node, and the chaincode
/// re-checks the consent inside that transaction, so a revocation that commits first wins.
struct ProxyService: Medledger_Proxy.SimpleServiceProtocol {
    let store: KeyFragStore
    let query: ChainQuery
    let submitter: NodeSubmitter
    /// "org/name", written into D_UE.
    let proxyName: String
    let audit: AuditLog?
    var metrics: NodeMetrics? = nil

    func depositKeyFrag(
        request: Medledger_DepositKeyFragRequest, context: ServerContext
    ) async throws -> Medledger_DepositKeyFragResponse {
        let caller = try context.requireCaller()
        guard caller.role == .patient else {
            throw RPCError(
                code: .permissionDenied, message: "only a patient deposits key fragments, for their own consents")
        }
        let consent: Consent = try query.run(
            "getConsent", GetConsentRequest(consentID: request.consentID), as: caller.creator, channel: request.channel)
        guard consent.patientPID == caller.pid else {
            throw RPCError(code: .permissionDenied, message: "consent \(consent.consentID) is not yours")
        }
        if let why = consent.whyNotLive(at: Date()) {
            throw RPCError(code: .permissionDenied, message: "consent \(consent.consentID) \(why)")
        }
        let kfrag: KeyFrag
        do { kfrag = try KeyFrag(bytes: [UInt8](request.kfrag)) } catch {
            throw RPCError(code: .invalidArgument, message: "kfrag is not an Umbral key fragment: \(error)")
        }
        _ = try verified(kfrag, consent: consent, channel: request.channel)
        try store.put(
            KeyFragStore.Entry(
                consentID: consent.consentID, patientPID: consent.patientPID, granteePID: consent.granteePID,
                kfrag: Hex.encode(kfrag.toBytes()), depositedAt: ISO8601DateFormatter().string(from: Date())))
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "proxy.deposit", target: consent.consentID, outcome: .success,
                detail: "grantee \(consent.granteePID)"))
        return Medledger_DepositKeyFragResponse.with { $0.proxyNode = proxyName }
    }

    func reencrypt(
        request: Medledger_ReencryptRequest, context: ServerContext
    ) async throws -> Medledger_ReencryptResponse {
        let caller = try context.requireCaller()
        do {
            let consent: Consent = try query.run(
                "getConsent", GetConsentRequest(consentID: request.consentID), as: caller.creator,
                channel: request.channel)
            guard consent.granteePID == caller.pid else {
                throw RPCError(
                    code: .permissionDenied,
                    message:
                        "consent \(consent.consentID) was granted to someone else; only its grantee asks for re-encryption"
                )
            }
            if let why = consent.whyNotLive(at: Date()) {
                throw RPCError(
                    code: .permissionDenied,
                    message: "consent \(consent.consentID) \(why): the proxy re-encrypts nothing under it")
            }
            // Read in the caller's name: the chaincode itself decides whether the grantee may see it.
            let record: IndexRecord = try query.run(
                "getIndexRecord", GetIndexRecordRequest(recordID: request.recordID), as: caller.creator,
                channel: request.channel)
            guard consent.tIDs.contains(record.tID) else {
                throw RPCError(
                    code: .permissionDenied,
                    message:
                        "consent \(consent.consentID) does not cover treatment \(record.tID) of record \(record.recordID)"
                )
            }
            guard let capsuleHex = record.capsule, let capsuleBytes = Hex.decode(capsuleHex),
                let capsule = try? Capsule(bytes: capsuleBytes)
            else {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "record \(record.recordID) carries no capsule: it was not sealed for sharing")
            }
            guard let entry = try store.get(consent.consentID) else {
                throw RPCError(
                    code: .notFound,
                    message: "this proxy (\(proxyName)) holds no key fragment for consent \(consent.consentID)")
            }
            guard let bytes = Hex.decode(entry.kfrag), let kfrag = try? KeyFrag(bytes: bytes) else {
                throw RPCError(
                    code: .dataLoss, message: "the stored key fragment for consent \(consent.consentID) is corrupt")
            }
            let vkfrag = try verified(kfrag, consent: consent, channel: request.channel)
            let cfrag = Umbral.reencrypt(capsule: capsule, kfrag: vkfrag)
            // D_UE first: no capsule fragment leaves without its usage record committed.
            let (usage, tx) = try await submitter.submit(
                "recordUsage",
                RecordUsageRequest(
                    tID: record.tID, thirdPartyPID: caller.pid, proxyNode: proxyName, purpose: consent.purpose,
                    consentID: consent.consentID),
                channel: request.channel, UsageRecord.self)
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "proxy.reencrypt", target: record.recordID, outcome: .success,
                    detail: "consent \(consent.consentID), usage \(usage.usageID)"))
            metrics?.counter(
                "proxy_reencryptions_total",
                help: "Capsule fragments this proxy re-encrypted, by result (ok, refused).", labels: [("result", "ok")]
            ).increment()
            return Medledger_ReencryptResponse.with {
                $0.cfrag = Data(cfrag.toBytes())
                $0.usageID = usage.usageID
                $0.txID = tx.txID
                $0.proxyNode = proxyName
            }
        } catch let e as RPCError {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "proxy.reencrypt", target: request.recordID, outcome: .denied,
                    detail: e.message))
            metrics?.counter(
                "proxy_reencryptions_total",
                help: "Capsule fragments this proxy re-encrypted, by result (ok, refused).",
                labels: [("result", "refused")]
            ).increment()
            throw e
        }
    }

    func withdrawKeyFrags(
        request: Medledger_WithdrawKeyFragsRequest, context: ServerContext
    ) async throws -> Medledger_WithdrawKeyFragsResponse {
        let caller = try context.requireCaller()
        guard let entry = try store.get(request.consentID), entry.patientPID == caller.pid else {
            return Medledger_WithdrawKeyFragsResponse.with { $0.removed = false }
        }
        try store.remove(entry.consentID)
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "proxy.withdraw", target: entry.consentID, outcome: .success,
                detail: ""))
        return Medledger_WithdrawKeyFragsResponse.with { $0.removed = true }
    }

    /// The kfrag checked against the keys the patient and the grantee published on chain: signed by
    /// the patient, from the patient's key, to the grantee's key. Anything else is refused.
    func verified(_ kfrag: KeyFrag, consent: Consent, channel: String) throws -> VerifiedKeyFrag {
        let patient = try publishedKeys(consent.patientPID, channel: channel)
        let grantee = try publishedKeys(consent.granteePID, channel: channel)
        do {
            return try kfrag.verify(
                verifyingPK: patient.verifying, delegatingPK: patient.encryption, receivingPK: grantee.encryption)
        } catch {
            throw RPCError(
                code: .invalidArgument,
                message:
                    "the key fragment does not verify against the keys \(consent.patientPID) and \(consent.granteePID) published: \(error)"
            )
        }
    }

    func publishedKeys(_ pid: String, channel: String) throws -> (encryption: PublicKey, verifying: PublicKey) {
        let entry: KeyDirectoryEntry
        do {
            entry = try query.run("getKeys", GetKeysRequest(pid: pid), as: submitter.creator, channel: channel)
        } catch let e as RPCError where e.code == .notFound {
            throw RPCError(code: .failedPrecondition, message: "\(pid) has published no keys")
        }
        do { return try entry.publicKeys() } catch {
            throw RPCError(code: .internalError, message: "\(pid)'s published keys do not parse")
        }
    }
}

/// Key fragments a proxy keeps, one file per consent (0600) under DATA_DIR/proxy. A fragment alone
/// re-encrypts nothing a grantee can open without `threshold - 1` others, but it is still kept from
/// other users of the machine.
struct KeyFragStore: Sendable {
    struct Entry: Codable, Sendable, Equatable {
        var consentID: String
        var patientPID: String
        var granteePID: String
        var kfrag: String
        var depositedAt: String

        enum CodingKeys: String, CodingKey {
            case consentID = "consent_id"
            case patientPID = "patient_pid"
            case granteePID = "grantee_pid"
            case kfrag
            case depositedAt = "deposited_at"
        }
    }

    let directory: URL

    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Only a consent id (the chaincode's syntax) ever names a file.
    func path(_ consentID: String) throws -> URL {
        guard RecordIDSyntax.isConsentID(consentID) else {
            throw RPCError(code: .invalidArgument, message: "not a consent id: \(consentID.debugDescription)")
        }
        return directory.appendingPathComponent(consentID + ".json")
    }

    func put(_ e: Entry) throws {
        let data = try JSONEncoder().encode(e)
        do { try SecureFile.write(data, to: try path(e.consentID).path, mode: 0o600) } catch let e as RPCError {
            throw e
        } catch {
            throw RPCError(code: .internalError, message: "proxy store: \(error)")
        }
    }

    func get(_ consentID: String) throws -> Entry? {
        guard let data = FileManager.default.contents(atPath: try path(consentID).path) else { return nil }
        do { return try JSONDecoder().decode(Entry.self, from: data) } catch {
            throw RPCError(code: .dataLoss, message: "the proxy's record of consent \(consentID) is corrupt")
        }
    }

    func remove(_ consentID: String) throws {
        try? FileManager.default.removeItem(at: try path(consentID))
    }
}
