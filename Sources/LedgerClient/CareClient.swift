import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HospitalFlows
import LedgerCrypto
import LedgerIdentity
import LedgerObjects
import LedgerPRE
import LedgerProtos
import LedgerRPC
import LedgerRecords
import LedgerTransport
import MedRecords
import X509

/// The paper's data flow from one user's side (patient, doctor, third party, device): appointments,
/// sealed records with both signatures, verification, sharing through proxies, device readings. It
/// speaks to one hospital node (its gateway for the chain, its services for the rest); proxies of
/// other hospitals are reached by address.
///
/// Failures are `CallFailure`s with the EMR-IG status: 4xx for refusals and bad input, 422 for
/// tampering (naming every check that failed).
public struct CareClient: Sendable {
    public let wallet: Wallet
    public let gateway: Gateway
    public let node: NodeAddress
    public var channel: String { gateway.channel }

    public init(wallet: Wallet, gateway: Gateway, node: NodeAddress) {
        self.wallet = wallet
        self.gateway = gateway
        self.node = node
    }

    // MARK: - Chain calls

    /// A `medrecords` query, decoded; a refusal becomes its status and message.
    public func query<R: Decodable>(
        _ function: String, _ request: some Encodable, _ type: R.Type = R.self
    ) async throws -> R {
        let r = try await gateway.evaluate(
            chaincode: "medrecords", function: function,
            args: [String(decoding: try JSONEncoder().encode(request), as: UTF8.self)])
        guard r.status == 200 else { throw CallFailure(status: Int(r.status), message: r.message) }
        return try Self.decode(R.self, r.payload, function)
    }

    /// A `medrecords` transaction, committed and valid, decoded.
    public func submit<R: Decodable>(
        _ function: String, _ request: some Encodable, _ type: R.Type = R.self
    ) async throws -> (R, SubmitResult) {
        try await submit(function, try ProposalInputs.json(request), type)
    }

    public func submit<R: Decodable>(
        _ function: String, _ inputs: ProposalInputs, _ type: R.Type = R.self
    ) async throws -> (R, SubmitResult) {
        let r: SubmitResult
        do {
            r = try await gateway.submit(chaincode: "medrecords", function: function, inputs)
        } catch let f as Gateway.Failure {
            throw CallFailure(status: f.status, message: f.message)
        }
        guard r.isValid else {
            throw CallFailure(
                status: 409, message: "transaction \(r.txID) committed as \(r.code), not valid: nothing was written")
        }
        return (try Self.decode(R.self, r.result.payload, function), r)
    }

    static func decode<R: Decodable>(_ t: R.Type, _ payload: [UInt8], _ function: String) throws -> R {
        do { return try JSONDecoder().decode(R.self, from: Data(payload)) } catch {
            throw CallFailure(status: 500, message: "medrecords \(function) answered what does not decode: \(error)")
        }
    }

    func call<T: Sendable>(
        _ address: NodeAddress? = nil,
        _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await NodeConnection.with(
            address ?? node, trustedRootsPEM: wallet.caCertPEM, identity: wallet.tlsIdentity, body)
    }

    // MARK: - Keys

    /// Publishes the wallet's Umbral public keys (made now if it has none) in the key directory.
    public func publishKeys() async throws -> KeyDirectoryEntry {
        let keys = try wallet.proxyKeys()
        return try await submit(
            "publishKeys",
            PublishKeysRequest(
                encryptionKey: Hex.encode(keys.encryptionKey.compressedBytes),
                verifyingKey: Hex.encode(keys.verifyingKey.compressedBytes))
        ).0
    }

    public struct PublishedKeys: Sendable {
        public var entry: KeyDirectoryEntry
        public var encryption: PublicKey
        public var verifying: PublicKey
    }

    public func publishedKeys(of pid: String) async throws -> PublishedKeys {
        let entry: KeyDirectoryEntry = try await query("getKeys", GetKeysRequest(pid: pid))
        do {
            let (e, v) = try entry.publicKeys()
            return PublishedKeys(entry: entry, encryption: e, verifying: v)
        } catch { throw CallFailure(status: 500, message: "\(pid)'s published keys do not parse") }
    }

    // MARK: - Appointment (patient asks H_Mj; the doctor opens T_SK)

    public func requestAppointment(
        diseaseInfo: String, preferredDoctor: String? = nil
    ) async throws -> Medledger_Appointment {
        var req = Medledger_AppointmentRequest()
        req.channel = channel
        req.diseaseInfo = Data(diseaseInfo.utf8)
        req.preferredDoctorPid = preferredDoctor ?? ""
        req.patientCertPem = try Data(contentsOf: URL(fileURLWithPath: wallet.signingCertPath))
        let frozen = req
        return try await call { try await Medledger_Appointments.Client(wrapping: $0).requestAppointment(frozen) }
    }

    /// The doctor opens T_SK and checks it against the chain: the treatment exists with this patient
    /// and this doctor, and the patient certificate inside is the patient's, issued by the CA.
    public func openAppointment(_ a: Medledger_Appointment) async throws -> TreatmentSessionKey {
        guard a.doctorPid == wallet.info.pid else {
            throw CallFailure(
                status: 403, message: "this appointment is for doctor \(a.doctorPid), not for \(wallet.info.pid)")
        }
        let tsk: TreatmentSessionKey
        do {
            tsk = try TreatmentSessionKey.open(
                capsule: [UInt8](a.sessionKeyCapsule), ciphertext: [UInt8](a.sessionKeyCiphertext),
                doctorKey: try wallet.proxyKeys().encryption)
        } catch let e as TreatmentSessionKey.OpenFailure {
            throw CallFailure(status: 422, message: e.description)
        }
        let t: Treatment = try await query("getTreatment", GetTreatmentRequest(tID: tsk.tID))
        var problems = [String]()
        if tsk.tID != a.tID { problems.append("T_SK names treatment \(tsk.tID), the appointment \(a.tID)") }
        if t.patientPID != tsk.patientPID {
            problems.append("the chain's treatment is for patient \(t.patientPID), T_SK says \(tsk.patientPID)")
        }
        if t.doctorPID != wallet.info.pid || tsk.doctorPID != wallet.info.pid {
            problems.append("the treatment is not assigned to you")
        }
        do {
            let id = try await trustStore().validate(
                leaf: try Certificate(pemEncoded: tsk.patientCert), purpose: .signing)
            if id.pid != tsk.patientPID || id.role != .patient {
                problems.append("the patient certificate in T_SK is \(id.pid)'s (\(id.attributes.role))")
            }
        } catch {
            problems.append("the patient certificate in T_SK is not valid: \(error)")
        }
        guard problems.isEmpty else {
            throw CallFailure(status: 422, message: "T_SK does not check out: " + problems.joined(separator: "; "))
        }
        return tsk
    }

    // MARK: - Records

    /// Seals a plaintext file to the patient's own encryption key (the wallet's), into `sealedPath`.
    public func seal(plaintext: String, to sealedPath: String) throws -> SealedRecord.SealResult {
        try Self.seal(wallet: wallet, plaintext: plaintext, to: sealedPath)
    }

    /// Sealing needs no node: the same, offline.
    public static func seal(wallet: Wallet, plaintext: String, to sealedPath: String) throws -> SealedRecord.SealResult
    {
        let keys = try wallet.proxyKeys()
        guard FileManager.default.createFile(atPath: sealedPath, contents: nil, attributes: [.posixPermissions: 0o600]),
            let out = FileHandle(forWritingAtPath: sealedPath)
        else { throw CallFailure(status: 400, message: "cannot write \(sealedPath)") }
        defer { try? out.close() }
        guard let input = FileHandle(forReadingAtPath: plaintext) else {
            throw CallFailure(status: 400, message: "cannot read \(plaintext)")
        }
        defer { try? input.close() }
        do { return try SealedRecord.seal(patientPK: keys.encryptionKey, from: input, to: out) } catch {
            throw CallFailure(status: 400, message: "sealing \(plaintext): \(error)")
        }
    }

    /// Who supplies the doctor's signature D_SD.
    public enum DoctorSignature: Sendable {
        /// The doctor's wallet is at hand (signs here).
        case wallet(Wallet)
        /// Signed elsewhere (`medledger record sign` by the doctor) over the same treatment, URL and digest.
        case given(signature: String, certificatePEM: String)
    }

    public struct PutRecordResult: Sendable {
        public var record: IndexRecord
        public var stored: ObjectClient.Stored
        public var submit: SubmitResult
    }

    /// The patient's part of record creation: uploads the sealed file to the hospital node's object
    /// store (URL_C), signs (tid, URL_C, SHA-384) as D_SP, adds the doctor's D_SD, and submits the
    /// P_DE with the capsule proxies will re-encrypt.
    public func putRecord(sealedFile: String, tID: String, doctor: DoctorSignature) async throws -> PutRecordResult {
        let header: SealedRecordHeader
        do {
            guard let h = FileHandle(forReadingAtPath: sealedFile) else {
                throw CallFailure(status: 400, message: "cannot read \(sealedFile)")
            }
            defer { try? h.close() }
            header = try SealedRecord.readHeader(from: h)
        } catch let e as SealedRecordError {
            throw CallFailure(status: 400, message: "\(sealedFile) is not a sealed record: \(e)")
        }
        let stored = try await ObjectClient(wallet: wallet).upload(
            file: sealedFile, node: node, channel: channel, tID: tID)
        let patientSig = try IndexRecordSigning.sign(
            tid: tID, url: stored.url, digestHex: stored.digest, key: try wallet.signingKey())
        let (doctorSig, doctorCert): (String, String)
        switch doctor {
        case .wallet(let d):
            doctorSig = try IndexRecordSigning.sign(
                tid: tID, url: stored.url, digestHex: stored.digest, key: try d.signingKey())
            doctorCert = try String(contentsOfFile: d.signingCertPath, encoding: .utf8)
        case .given(let s, let c):
            (doctorSig, doctorCert) = (s, c)
        }
        let req = PutIndexRecordRequest(
            tID: tID, url: stored.url, digest: stored.digest, patientSignature: patientSig, doctorSignature: doctorSig,
            patientCert: try String(contentsOfFile: wallet.signingCertPath, encoding: .utf8), doctorCert: doctorCert,
            capsule: Hex.encode(header.capsule.toBytes()))
        let (receipt, r) = try await submit("putIndexRecord", try req.proposalInputs(), IndexRecordReceipt.self)
        return PutRecordResult(record: IndexRecord(request: req, receipt: receipt), stored: stored, submit: r)
    }

    public func listRecords(patientPID: String? = nil, tID: String? = nil) async throws -> [IndexRecord] {
        try await listAll("listIndexRecords") {
            ListIndexRecordsRequest(patientPID: patientPID, tID: tID, pageSize: 500, bookmark: $0)
        }
    }

    /// Every page of a `medrecords` listing, following bookmarks.
    func listAll<R: Codable & Sendable & Equatable, Request: Encodable>(
        _ function: String, _ page: (String?) -> Request
    ) async throws -> [R] {
        var out = [R]()
        var bookmark: String?
        repeat {
            let p: RecordPage<R> = try await query(function, page(bookmark))
            out += p.records
            bookmark = p.bookmark.isEmpty ? nil : p.bookmark
        } while bookmark != nil
        return out
    }

    /// What `verifyRecord` checked; every failed check is named in the tampering report.
    public struct Verification: Sendable {
        public var record: IndexRecord
        public var header: SealedRecordHeader
        public var sealedSize: UInt64
        public var checks: [(name: String, passed: Bool, detail: String)]
        public var failures: [String] { checks.filter { !$0.passed }.map { "\($0.name): \($0.detail)" } }
    }

    /// Fetches a record's P_DE and its ciphertext (to `sealedPath`), and checks: the URL names the
    /// digest on chain, the bytes hash to it, both signatures verify over (tid, URL_C, digest), both
    /// certificates chain to the CA and belong to the treatment's patient and doctor, and the capsule
    /// in the object is the one on chain. Any failure throws 422 naming every failed check. The
    /// download goes to `<sealedPath>.unverified` and takes `sealedPath`'s place only once every check
    /// has passed: a failed verification removes only what it downloaded, never a file already at
    /// `sealedPath`.
    public func verifyRecord(
        recordID: String, sealedPath: String, objectNode: NodeAddress? = nil
    ) async throws -> Verification {
        let record: IndexRecord = try await query("getIndexRecord", GetIndexRecordRequest(recordID: recordID))
        var checks = [(name: String, passed: Bool, detail: String)]()
        let unverified = sealedPath + ".unverified"
        func tampering() -> CallFailure {
            try? FileManager.default.removeItem(atPath: unverified)
            return CallFailure(
                status: 422,
                message: "tampering detected in record \(recordID): "
                    + checks.filter { !$0.passed }.map { "\($0.name): \($0.detail)" }.joined(separator: "; "))
        }
        guard let url = ObjectURL(record.url) else {
            checks.append(("URL_C", false, "\(record.url.debugDescription) is not an object URL"))
            throw tampering()
        }
        checks.append(
            (
                "URL_C", url.digest == record.digest,
                url.digest == record.digest
                    ? "names the P_DE's digest"
                    : "names object \(url.digest.prefix(16))…, not the P_DE's \(record.digest.prefix(16))…"
            ))
        // Fetched by URL_C, as the paper does; the bytes are then held to the digest on chain.
        let target = objectNode ?? NodeAddress(url.node) ?? node
        do {
            let d = try await ObjectClient(wallet: wallet).download(url: record.url, to: unverified, node: target)
            checks.append(
                (
                    "ciphertext SHA-384", d.digest == record.digest,
                    d.digest == record.digest
                        ? "matches the P_DE"
                        : "the object at URL_C hashes to \(d.digest.prefix(16))…, the P_DE says \(record.digest.prefix(16))…"
                ))
        } catch let f as CallFailure where f.status == 422 || f.message.hasPrefix("data loss") {
            checks.append(
                (
                    "ciphertext SHA-384", false,
                    "the stored object does not hash to the digest its URL_C names (altered in storage)"
                ))
            throw tampering()
        }
        let trust = try trustStore()
        for (who, cert, sig, pid, role) in [
            ("patient", record.patientCert, record.patientSignature, record.patientPID, Medledger_Role.patient),
            ("doctor", record.doctorCert, record.doctorSignature, record.doctorPID, Medledger_Role.doctor),
        ] {
            do {
                let c = try Certificate(pemEncoded: cert)
                let id = try await trust.validate(leaf: c, purpose: .signing)
                checks.append(
                    (
                        "\(who) certificate", id.pid == pid && id.role == role,
                        id.pid == pid && id.role == role
                            ? "issued by the CA to \(pid)"
                            : "belongs to \(id.pid) (\(id.attributes.role)), not the treatment's \(who) \(pid)"
                    ))
            } catch {
                checks.append(("\(who) certificate", false, "not valid under the CA: \(error)"))
            }
            let key = try? IndexRecordSigning.publicKey(certificatePEM: cert)
            let ok =
                key.map {
                    IndexRecordSigning.isValid(
                        signatureBase64: sig, publicKey: $0, tid: record.tID, url: record.url, digestHex: record.digest)
                } ?? false
            checks.append(
                (
                    "\(who) signature (\(who == "patient" ? "D_SP" : "D_SD"))", ok,
                    ok ? "verifies" : "does not verify over (t_id, URL_C, digest)"
                ))
        }
        let header: SealedRecordHeader
        do {
            guard let h = FileHandle(forReadingAtPath: unverified) else {
                throw CallFailure(status: 500, message: "cannot reopen \(unverified)")
            }
            defer { try? h.close() }
            header = try SealedRecord.readHeader(from: h)
            let same = record.capsule.map { $0 == Hex.encode(header.capsule.toBytes()) } ?? true
            checks.append(("capsule", same, same ? "matches the P_DE" : "the object's capsule is not the one on chain"))
        } catch let e as SealedRecordError {
            checks.append(("sealed header", false, "\(e)"))
            throw tampering()
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: unverified)[.size] as? UInt64) ?? 0
        let v = Verification(record: record, header: header, sealedSize: size, checks: checks)
        guard v.failures.isEmpty else { throw tampering() }
        do {
            _ = try? FileManager.default.removeItem(atPath: sealedPath)
            try FileManager.default.moveItem(atPath: unverified, toPath: sealedPath)
        } catch {
            try? FileManager.default.removeItem(atPath: unverified)
            throw CallFailure(status: 500, message: "cannot move the verified record to \(sealedPath): \(error)")
        }
        return v
    }

    /// Decrypts a verified sealed file with the patient's own key (the record's owner).
    public func openAsPatient(sealedPath: String, to out: String) throws -> SealedRecord.OpenResult {
        try open(.patientSecretKey(try wallet.proxyKeys().encryption), sealedPath: sealedPath, to: out)
    }

    /// Decrypts into `out`, which is replaced only once the whole record has decrypted and
    /// authenticated (`openFile` writes a hidden file of its own beside it first; no other file is touched).
    func open(_ opener: SealedRecord.Opener, sealedPath: String, to out: String) throws -> SealedRecord.OpenResult {
        do {
            return try SealedRecord.openFile(
                opener, at: URL(fileURLWithPath: sealedPath), to: URL(fileURLWithPath: out))
        } catch let e as SealedRecordError {
            throw CallFailure(status: 422, message: "tampering detected: the record does not decrypt: \(e)")
        }
    }

    func trustStore() throws -> TrustStore {
        do {
            return TrustStore(
                roots: try Certificate.parseBundle(pem: String(decoding: wallet.caCertPEM, as: UTF8.self)))
        } catch {
            throw CallFailure(status: 400, message: "the wallet's ca-cert.pem does not parse: \(error)")
        }
    }

    // MARK: - Sharing through proxies

    public struct Grant: Sendable {
        public var consent: Consent
        public var proxies: [String]
        public var threshold: Int
    }

    /// Grants `grantee` a consent on chain, then splits a re-encryption key to them into one key
    /// fragment per proxy, any `threshold` of which re-encrypt; each proxy checks and keeps its own.
    /// A proxy that refuses fails the grant (the consent is then revoked again, so no half-shared
    /// consent is left standing).
    public func grant(
        grantee: String, tIDs: [String], purpose: String, expiresAt: String, proxies: [NodeAddress], threshold: Int
    ) async throws -> Grant {
        guard !proxies.isEmpty, (1...proxies.count).contains(threshold) else {
            throw CallFailure(
                status: 400, message: "the threshold must be between 1 and the number of proxies (\(proxies.count))")
        }
        let keys = try wallet.proxyKeys()
        let receiving = try await publishedKeys(of: grantee)
        let mine = try await publishedKeys(of: wallet.info.pid)
        guard mine.encryption == keys.encryptionKey, mine.verifying == keys.verifyingKey else {
            throw CallFailure(
                status: 412,
                message: "the keys published for you are not this wallet's: run `medledger keys publish` with it first")
        }
        let kfrags = try Umbral.generateKFrags(
            delegatingSK: keys.encryption, receivingPK: receiving.encryption, signer: keys.signer,
            threshold: threshold, shares: proxies.count, signDelegatingKey: true, signReceivingKey: true)
        let (consent, _) = try await submit(
            "grantAccess", GrantAccessRequest(granteePID: grantee, tIDs: tIDs, purpose: purpose, expiresAt: expiresAt),
            Consent.self)
        var names = [String]()
        do {
            for (proxy, kfrag) in zip(proxies, kfrags) {
                var req = Medledger_DepositKeyFragRequest()
                req.channel = channel
                req.consentID = consent.consentID
                req.kfrag = Data(kfrag.toBytes())
                let frozen = req
                names.append(
                    try await call(proxy) { try await Medledger_Proxy.Client(wrapping: $0).depositKeyFrag(frozen) }
                        .proxyNode)
            }
        } catch {
            _ = try? await revoke(consentID: consent.consentID, proxies: proxies)
            throw error
        }
        return Grant(consent: consent, proxies: names, threshold: threshold)
    }

    /// Revokes a consent on chain (proxies refuse from the next block on) and asks the proxies to
    /// drop their key fragments; a proxy that cannot be reached keeps an inert fragment.
    public func revoke(consentID: String, proxies: [NodeAddress]) async throws -> (Consent, withdrawn: Int) {
        let consent: Consent
        do {
            consent = try await submit("revokeAccess", RevokeAccessRequest(consentID: consentID), Consent.self).0
        } catch let f as CallFailure where f.status == 409 {
            // Already revoked: withdrawing the fragments is all that is left to do.
            consent = try await query("getConsent", GetConsentRequest(consentID: consentID))
        }
        var withdrawn = 0
        for proxy in proxies {
            var req = Medledger_WithdrawKeyFragsRequest()
            req.channel = channel
            req.consentID = consentID
            let frozen = req
            if let r = try? await call(
                proxy, { try await Medledger_Proxy.Client(wrapping: $0).withdrawKeyFrags(frozen) }), r.removed
            {
                withdrawn += 1
            }
        }
        return (consent, withdrawn)
    }

    public struct SharedOpen: Sendable {
        public var verification: Verification
        public var opened: SealedRecord.OpenResult
        public var usage: [(proxy: String, usageID: String)]
    }

    /// The third party's side. Asks proxies in turn until `threshold` of them returned capsule
    /// fragments (each proxy decides on chain and records D_UE first), then fetches and verifies the
    /// record (digest, signatures, certificates, capsule), checks every fragment's proof against the
    /// record's capsule, opens the data key and decrypts. Refusals and bad fragments are reported
    /// when too few remain.
    public func openShared(
        consentID: String, recordID: String, proxies: [NodeAddress], threshold: Int, sealedPath: String, to out: String
    ) async throws -> SharedOpen {
        guard threshold >= 1 else { throw CallFailure(status: 400, message: "the threshold must be at least 1") }
        let consent: Consent = try await query("getConsent", GetConsentRequest(consentID: consentID))
        let patient = try await publishedKeys(of: consent.patientPID)
        let keys = try wallet.proxyKeys()
        var answers = [(proxy: String, usageID: String, cfrag: CapsuleFrag)]()
        var refusals = [String]()
        for proxy in proxies where answers.count < threshold {
            var req = Medledger_ReencryptRequest()
            req.channel = channel
            req.consentID = consentID
            req.recordID = recordID
            let frozen = req
            do {
                let r = try await call(proxy) { try await Medledger_Proxy.Client(wrapping: $0).reencrypt(frozen) }
                answers.append((r.proxyNode, r.usageID, try CapsuleFrag(bytes: [UInt8](r.cfrag))))
            } catch let f as CallFailure {
                refusals.append("proxy \(proxy): \(f)")
            } catch {
                refusals.append("proxy \(proxy): malformed capsule fragment (\(error))")
            }
        }
        func tooFew(_ got: Int) -> CallFailure {
            let status =
                refusals.contains { $0.contains("[403]") }
                ? 403 : refusals.contains { $0.contains("[422]") } ? 422 : 502
            let asked =
                proxies.count < threshold
                ? " (only \(proxies.count) prox\(proxies.count == 1 ? "y" : "ies") given)" : ""
            return CallFailure(
                status: status,
                message: "\(got) valid capsule fragment(s), \(threshold) needed\(asked)"
                    + (refusals.isEmpty ? "" : ": " + refusals.joined(separator: "; ")))
        }
        guard answers.count >= threshold else { throw tooFew(answers.count) }
        let v = try await verifyRecord(recordID: recordID, sealedPath: sealedPath)
        var cfrags = [VerifiedCapsuleFrag]()
        var usage = [(proxy: String, usageID: String)]()
        for a in answers {
            do {
                cfrags.append(
                    try a.cfrag.verify(
                        capsule: v.header.capsule, verifyingPK: patient.verifying, delegatingPK: patient.encryption,
                        receivingPK: keys.encryptionKey))
                usage.append((a.proxy, a.usageID))
            } catch {
                refusals.append(
                    "[422] proxy \(a.proxy): its capsule fragment's correctness proof does not verify (\(error))")
            }
        }
        guard cfrags.count >= threshold else {
            try? FileManager.default.removeItem(atPath: sealedPath)
            throw tooFew(cfrags.count)
        }
        let dataKey: DataKey
        do {
            dataKey = try v.header.openDataKey(
                receivingSK: keys.encryption, delegatingPK: patient.encryption, cfrags: cfrags)
        } catch {
            throw CallFailure(status: 422, message: "the capsule fragments do not open the data key: \(error)")
        }
        let opened = try open(.dataKey(dataKey), sealedPath: sealedPath, to: out)
        return SharedOpen(verification: v, opened: opened, usage: usage)
    }

    public func listUsage(patientPID: String? = nil, tID: String? = nil) async throws -> [UsageRecord] {
        try await listAll("listUsage") {
            ListUsageRequest(tID: tID, patientPID: patientPID, pageSize: 500, bookmark: $0)
        }
    }
}
