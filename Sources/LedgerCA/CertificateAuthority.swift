import Crypto
import Foundation
import LedgerAudit
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerRocksDB
import LedgerStorage
import Synchronization
import X509

public struct CAConfig: Sendable {
    public var caName = "MedLedger SA Root CA"
    public var rootValidity: TimeInterval = 10 * 365 * 86_400
    public var userValidity: TimeInterval = 365 * 86_400
    public var nodeValidity: TimeInterval = 365 * 86_400
    /// How long an issued CRL is valid (its nextUpdate); nodes refuse a CRL past it.
    public var crlValidity: TimeInterval = 7 * 86_400
    /// After a wrong enrollment secret the id is refused for this long, doubling with each further
    /// failure up to `enrollBackoffMax`; a success ends it. Refusals during the wait do not count, so
    /// hammering an id cannot keep it closed longer than one wait per failure.
    public var enrollBackoffFirst: TimeInterval = 1
    public var enrollBackoffMax: TimeInterval = 15 * 60
    public var realIdentityBytesMax = 1024

    public init() {}
}

/// The system administrator's certificate authority (paper §1.2.1): admits organisations, registers and
/// enrolls users, derives pseudo identities, revokes, and issues CRLs. Every decision is audited.
///
/// All mutating operations are serialised and each writes its records in one synced batch, so a crash
/// never leaves a certificate issued without its records.
public final class CertificateAuthority: Sendable {
    public let config: CAConfig
    public let rootCertificate: Certificate
    private let rootKey: P384.Signing.PrivateKey
    private let records: CARecordsBox
    private let box: SecretBox
    private let audit: AuditLog?
    private let now: @Sendable () -> Date
    private let writeLock = Mutex(())

    final class CARecordsBox: @unchecked Sendable {
        let records: CARecords
        init(_ r: CARecords) { records = r }
    }

    private var store: CARecords { records.records }

    // MARK: Creation and opening

    /// Creates a new CA in `dataDir`: a P-384 root key (sealed with the master key) and a self-signed root.
    /// `now` is the CA's clock (enrollment back-off); tests pass their own.
    public static func initialize(
        dataDir: String, box: SecretBox, config: CAConfig = CAConfig(), audit: AuditLog? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> CertificateAuthority {
        let kv = try RocksDBStore.open(
            path: CALayout.databasePath(dataDir: dataDir), columnFamilies: CALayout.columnFamilies)
        do {
            let r = try CARecords(kv: kv)
            guard try kv.get(r.meta, Array("root_cert".utf8)) == nil else {
                throw CAError(.alreadyExists, "a CA already exists in \(dataDir)")
            }
            let key = P384.Signing.PrivateKey()
            let name = try DistinguishedName {
                OrganizationName(OrgID.systemAdministrator)
                CommonName(config.caName)
            }
            let root = try CertificateFactory.selfSignedRoot(key: key, name: name, validity: config.rootValidity)
            var batch = WriteBatch()
            batch.put(r.meta, Array("root_cert".utf8), Array(root.pem.utf8))
            batch.put(
                r.meta, Array("root_key".utf8), try box.seal(Array(key.rawRepresentation), context: "ca-root-key"))
            try r.put(
                OrgRecord(
                    id: OrgID.systemAdministrator, type: Medledger_OrgType.systemAdministrator.rawValue,
                    displayName: "System administrator", admittedAt: Date()), r.orgs, OrgID.systemAdministrator,
                into: &batch)
            // Audited before it exists: a CA whose creation the log does not show is not created.
            try Self.writeAhead(
                audit,
                AuditEvent(
                    actor: .system, action: "ca.init", target: root.serialHex, outcome: .success, detail: config.caName)
            )
            try kv.write(batch, sync: true)
            let ca = CertificateAuthority(
                config: config, root: root, key: key, records: r, box: box, audit: audit, now: now)
            _ = try ca.issueCRL()
            return ca
        } catch {
            kv.close()
            throw error
        }
    }

    public static func open(
        dataDir: String, box: SecretBox, config: CAConfig = CAConfig(), audit: AuditLog? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> CertificateAuthority {
        let path = CALayout.databasePath(dataDir: dataDir)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CAError(.notFound, "no CA in \(dataDir): run `medledger ca init --data \(dataDir)` first")
        }
        let kv = try RocksDBStore.open(
            path: path, columnFamilies: CALayout.columnFamilies,
            options: {
                var o = RocksDBOptions()
                o.createIfMissing = false
                return o
            }())
        do {
            let r = try CARecords(kv: kv)
            guard let pem = try kv.get(r.meta, Array("root_cert".utf8)),
                let sealed = try kv.get(r.meta, Array("root_key".utf8))
            else {
                throw CAError(.notFound, "no CA in \(dataDir): run `medledger ca init` first")
            }
            let root = try Certificate(pemEncoded: String(decoding: pem, as: UTF8.self))
            let key = try P384.Signing.PrivateKey(rawRepresentation: try box.open(sealed, context: "ca-root-key"))
            return CertificateAuthority(
                config: config, root: root, key: key, records: r, box: box, audit: audit, now: now)
        } catch {
            kv.close()
            throw error
        }
    }

    private init(
        config: CAConfig, root: Certificate, key: P384.Signing.PrivateKey, records: CARecords, box: SecretBox,
        audit: AuditLog?, now: @escaping @Sendable () -> Date
    ) {
        self.config = config
        self.rootCertificate = root
        self.rootKey = key
        self.records = CARecordsBox(records)
        self.box = box
        self.audit = audit
        self.now = now
    }

    public func close() { store.kv.close() }

    /// The root signing key, for tests that must forge out-of-date certificates from the right issuer.
    @_spi(Testing) public static func rootKeyForTesting(_ ca: CertificateAuthority) -> P384.Signing.PrivateKey {
        ca.rootKey
    }

    // MARK: Organisations

    /// Creates the SA's own identities at `ca init`: its administrator (who admits organisations) and the
    /// SA node's identity (which serves the CA over TLS). Each name once.
    public func bootstrapIdentity(
        name: String, role: String, csrPEM: [UInt8], tlsCSRPEM: [UInt8], dnsNames: [String] = [],
        ipAddresses: [String] = []
    ) throws -> Medledger_EnrolledIdentity {
        guard role == "admin" || role == "node" else { throw CAError.invalid("bootstrap identities are admin or node") }
        return try writeLock.withLock { _ in
            let enrollmentID = "\(name)@\(OrgID.systemAdministrator)"
            guard try store.read(store.registrations, enrollmentID, as: RegistrationRecord.self) == nil else {
                throw CAError(.alreadyExists, "\(enrollmentID) already exists")
            }
            var batch = WriteBatch()
            var issued = try issueIdentity(
                enrollmentID: enrollmentID, realIdentity: enrollmentID, org: OrgID.systemAdministrator, role: role,
                csrPEM: csrPEM, tlsCSRPEM: tlsCSRPEM, registeredBy: "ca-init",
                validity: role == "node" ? config.nodeValidity : config.userValidity,
                dnsNames: dnsNames, ipAddresses: ipAddresses, serverAuth: role == "node", into: &batch)
            try Self.writeAhead(
                audit,
                AuditEvent(actor: .system, action: "ca.bootstrap", target: "\(role) \(issued.pid)", outcome: .success))
            try store.kv.write(batch, sync: true)
            issued.name = name
            return issued
        }
    }

    public func admitOrganization(
        by caller: AuthenticatedIdentity, _ request: Medledger_AdmitOrganizationRequest
    ) throws -> Medledger_AdmitOrganizationResponse {
        let actor = caller.auditActor
        return try audited(actor, "org.admit", request.orgID) { commit in
            guard caller.isSystemAdministrator else {
                throw CAError.denied("only the system administrator admits organisations")
            }
            guard OrgID.isValid(request.orgID) else {
                throw CAError.invalid(
                    "organisation id \(request.orgID.debugDescription) is not valid: lower-case letters, digits and '-', starting with a letter, at most 64"
                )
            }
            guard request.type == .hospital || request.type == .thirdPartyOrg else {
                throw CAError.invalid("organisation type must be HOSPITAL or THIRD_PARTY_ORG")
            }
            var names = Set<String>()
            for node in request.nodes {
                guard OrgID.isValid(node.name), node.name != "admin", names.insert(node.name).inserted else {
                    throw CAError.invalid(
                        "node name \(node.name.debugDescription) is not valid, is reserved (admin) or is repeated")
                }
                if request.type != .hospital { throw CAError.invalid("only hospitals run nodes") }
            }
            return try writeLock.withLock { _ in
                guard try store.read(store.orgs, request.orgID, as: OrgRecord.self) == nil else {
                    throw CAError(.alreadyExists, "organisation \(request.orgID) is already admitted")
                }
                var batch = WriteBatch()
                try store.put(
                    OrgRecord(
                        id: request.orgID, type: request.type.rawValue, displayName: request.displayName,
                        admittedAt: Date()), store.orgs, request.orgID, into: &batch)
                var response = Medledger_AdmitOrganizationResponse()
                response.admin = try issueIdentity(
                    enrollmentID: "admin@\(request.orgID)", realIdentity: "admin@\(request.orgID)", org: request.orgID,
                    role: "admin",
                    csrPEM: Array(request.adminCsrPem), tlsCSRPEM: Array(request.adminTlsCsrPem),
                    registeredBy: caller.pid,
                    validity: config.userValidity, into: &batch)
                for node in request.nodes {
                    var issued = try issueIdentity(
                        enrollmentID: "\(node.name)@\(request.orgID)",
                        realIdentity: "node:\(node.name)@\(request.orgID)", org: request.orgID, role: "node",
                        csrPEM: Array(node.csrPem), tlsCSRPEM: Array(node.tlsCsrPem), registeredBy: caller.pid,
                        validity: config.nodeValidity, dnsNames: node.dnsNames, ipAddresses: node.ipAddresses,
                        serverAuth: true, into: &batch)
                    issued.name = node.name
                    response.nodes.append(issued)
                }
                try commit(batch)
                return response
            }
        }
    }

    // MARK: Registration and enrollment

    public func register(
        by caller: AuthenticatedIdentity, _ request: Medledger_RegisterRequest
    ) throws -> Medledger_RegisterResponse {
        let org = request.orgID.isEmpty ? caller.org : request.orgID
        return try audited(
            caller.auditActor, "user.register",
            "\(request.enrollmentID) role=\(RoleName.name(request.role) ?? "?") org=\(org)"
        ) { commit in
            guard caller.role == .admin else { throw CAError.denied("only organisation administrators register users") }
            guard let roleName = RoleName.name(request.role), request.role != .node, request.role != .admin else {
                throw CAError.invalid("role must be patient, doctor, third-party or device")
            }
            guard Self.isValidEnrollmentID(request.enrollmentID) else {
                throw CAError.invalid(
                    "enrollment id \(request.enrollmentID.debugDescription) is not valid: 1 to 128 of A-Z a-z 0-9 . _ @ -"
                )
            }
            let rid = request.realIdentity.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !rid.isEmpty, rid.utf8.count <= config.realIdentityBytesMax else {
                throw CAError.invalid("real identity must be 1 to \(config.realIdentityBytesMax) bytes")
            }
            guard let orgRecord = try store.read(store.orgs, org, as: OrgRecord.self) else {
                throw CAError(.notFound, "no organisation \(org)")
            }
            if !caller.isSystemAdministrator && org != caller.org {
                throw CAError.denied("an administrator of \(caller.org) cannot register users of \(org)")
            }
            let orgType = Medledger_OrgType(rawValue: orgRecord.type) ?? .unspecified
            switch (orgType, request.role) {
            case (.hospital, .patient), (.hospital, .doctor), (.hospital, .device), (.thirdPartyOrg, .thirdParty): break
            default: throw CAError.denied("a \(orgType) organisation cannot have \(roleName) users")
            }
            return try writeLock.withLock { _ in
                guard try store.read(store.registrations, request.enrollmentID, as: RegistrationRecord.self) == nil
                else {
                    throw CAError(.alreadyExists, "enrollment id \(request.enrollmentID) is already registered")
                }
                let secret = Base64URL.encode((0..<18).map { _ in UInt8.random(in: 0...255) })
                let record = RegistrationRecord(
                    enrollmentID: request.enrollmentID, org: org, role: roleName,
                    secretHash: Self.secretHash(secret, request.enrollmentID),
                    failedAttempts: 0, refusedUntilEpochSeconds: nil, state: .registered,
                    sealedRID: Data(try box.seal(Array(rid.utf8), context: "registration:\(request.enrollmentID)")),
                    pid: nil, registeredBy: caller.pid, registeredAt: Date())
                var batch = WriteBatch()
                try store.put(record, store.registrations, request.enrollmentID, into: &batch)
                try commit(batch)
                var response = Medledger_RegisterResponse()
                response.enrollmentID = request.enrollmentID
                response.secret = secret
                return response
            }
        }
    }

    /// The one answer to every refused enrollment — unknown id, wrong secret, used secret, id waiting
    /// out a back-off — so the answer never tells whether an id exists. The audit line says which.
    public static let enrollmentRefused = CAError(
        .unauthenticated,
        "enrollment refused: unknown enrollment id, wrong or already used secret, or too soon after a failed attempt (wait and retry, or ask the registrar)"
    )

    /// Enrollment needs no certificate: the one-time secret authenticates. A wrong secret makes the id
    /// wait before its next attempt (`CAConfig.enrollBackoffFirst`, doubling, capped); a used secret
    /// never works again.
    public func enroll(_ request: Medledger_EnrollRequest) throws -> Medledger_EnrolledIdentity {
        try audited(.anonymous, "user.enroll", request.enrollmentID) { commit in
            try writeLock.withLock { _ in
                let at = now()
                guard var reg = try store.read(store.registrations, request.enrollmentID, as: RegistrationRecord.self)
                else {
                    throw Refusal(Self.enrollmentRefused, reason: "unknown enrollment id")
                }
                if reg.state == .enrolled {
                    throw Refusal(Self.enrollmentRefused, reason: "the secret was already used")
                }
                if let until = reg.refusedUntil, at < until {
                    // Not checked and not counted: guesses during the wait cost the guesser nothing but
                    // also lengthen nothing, so nobody can keep an id closed by hammering it.
                    throw Refusal(
                        Self.enrollmentRefused,
                        reason:
                            "attempt during back-off (until \(Self.auditTime(until)), after \(reg.failedAttempts) failed)"
                    )
                }
                guard Self.secretHash(request.secret, request.enrollmentID) == reg.secretHash else {
                    reg.failedAttempts += 1
                    let until = at.addingTimeInterval(enrollBackoff(afterFailures: reg.failedAttempts))
                    reg.refusedUntil = until
                    var batch = WriteBatch()
                    try store.put(reg, store.registrations, reg.enrollmentID, into: &batch)
                    // Not synced: losing a back-off in a crash only shortens one wait, and an unsynced
                    // write keeps this answer about as fast as the unknown-id one. Even if it fails the
                    // caller gets the one refusal (a different answer would say the id exists).
                    var reason = "wrong secret (failure \(reg.failedAttempts); refused until \(Self.auditTime(until)))"
                    do { try store.kv.write(batch, sync: false) } catch {
                        reason += "; the back-off could not be stored: \(error)"
                    }
                    throw Refusal(Self.enrollmentRefused, reason: reason)
                }
                let rid = String(
                    decoding: try box.open(Array(reg.sealedRID), context: "registration:\(reg.enrollmentID)"),
                    as: UTF8.self)
                var batch = WriteBatch()
                let issued = try issueIdentity(
                    enrollmentID: reg.enrollmentID, realIdentity: rid, org: reg.org, role: reg.role,
                    csrPEM: Array(request.csrPem), tlsCSRPEM: Array(request.tlsCsrPem), registeredBy: reg.registeredBy,
                    validity: config.userValidity, into: &batch)
                try commit(batch)
                return issued
            }
        }
    }

    /// How long an id waits after its `failures`-th consecutive wrong secret: first, 2×, 4×, … capped.
    func enrollBackoff(afterFailures failures: Int) -> TimeInterval {
        let doublings = Double(min(max(failures - 1, 0), 62))
        return min(config.enrollBackoffFirst * pow(2, doublings), config.enrollBackoffMax)
    }

    /// New certificates for an enrolled identity (same PID, organisation and role), e.g. before expiry.
    public func reenroll(
        by caller: AuthenticatedIdentity, _ request: Medledger_ReenrollRequest
    ) throws -> Medledger_EnrolledIdentity {
        try audited(caller.auditActor, "user.reenroll", caller.pid) { commit in
            try writeLock.withLock { _ in
                guard var pidRecord = try store.read(store.pids, caller.pid, as: PIDRecord.self) else {
                    throw CAError(.notFound, "no identity \(caller.pid) at this CA")
                }
                // The CA's own records decide, not only the CRL the node had when the call arrived: a
                // revocation that raced this call must not be escaped by re-enrolling.
                guard let presented = try store.read(store.certificates, caller.serialHex, as: CertificateRecord.self),
                    presented.pid == caller.pid, presented.revokedAt == nil
                else {
                    throw CAError(.unauthenticated, "certificate \(caller.serialHex) is revoked or unknown to this CA")
                }
                let signingCSR = try checkedCSR(request.csrPem, "signing")
                let tlsCSR = try checkedCSR(request.tlsCsrPem, "TLS")
                guard signingCSR.publicKey != tlsCSR.publicKey else {
                    throw CAError.invalid("the signing and TLS keys must differ")
                }
                let identity = IdentityAttributes(pid: caller.pid, org: pidRecord.org, role: pidRecord.role)
                let validity = pidRecord.role == "node" ? config.nodeValidity : config.userValidity
                var batch = WriteBatch()
                let previousTLS = try pidRecord.serials.compactMap {
                    try store.read(store.certificates, $0, as: CertificateRecord.self)
                }.last { $0.purpose == "tls" }
                let previousTLSCert = try previousTLS.map { try Certificate(pemEncoded: $0.pem) }
                let sans = try previousTLSCert?.extensions.subjectAlternativeNames
                let dns: [String] =
                    sans?.compactMap { name -> String? in
                        if case .dnsName(let n) = name { return n } else { return nil }
                    } ?? []
                let ips: [String] =
                    sans?.compactMap { name -> String? in
                        if case .ipAddress(let raw) = name {
                            return Self.ipString(Array(raw.bytes))
                        } else {
                            return nil
                        }
                    } ?? []
                let serverAuth = (try? previousTLSCert?.extensions.extendedKeyUsage?.contains(.serverAuth)) == true
                let signing = try CertificateFactory.issue(
                    publicKey: signingCSR.publicKey, identity: identity, purpose: .signing, issuer: rootCertificate,
                    issuerKey: rootKey, validity: validity)
                let tls = try CertificateFactory.issue(
                    publicKey: tlsCSR.publicKey, identity: identity, purpose: .tls, dnsNames: dns, ipAddresses: ips,
                    serverAuth: serverAuth, issuer: rootCertificate, issuerKey: rootKey, validity: validity)
                for (cert, purpose) in [(signing, "signing"), (tls, "tls")] {
                    try recordCertificate(
                        cert, identity: identity, purpose: purpose, enrollmentID: pidRecord.enrollmentID, into: &batch)
                    pidRecord.serials.append(cert.serialHex)
                }
                try store.put(pidRecord, store.pids, caller.pid, into: &batch)
                try commit(batch)
                return enrolled(name: pidRecord.enrollmentID, identity: identity, signing: signing, tls: tls)
            }
        }
    }

    // MARK: Revocation

    public func revoke(
        by caller: AuthenticatedIdentity, _ request: Medledger_RevokeRequest
    ) throws -> Medledger_RevokeResponse {
        let target: String
        switch request.target {
        case .serialHex(let s): target = "serial \(s)"
        case .pid(let p): target = "pid \(p)"
        case nil: target = "-"
        }
        return try audited(caller.auditActor, "cert.revoke", target) { commit in
            guard caller.role == .admin else { throw CAError.denied("only administrators revoke certificates") }
            return try writeLock.withLock { _ in
                var certs = [CertificateRecord]()
                switch request.target {
                case .serialHex(let s):
                    guard let c = try store.read(store.certificates, s.lowercased(), as: CertificateRecord.self) else {
                        throw CAError(.notFound, "no certificate with serial \(s)")
                    }
                    certs = [c]
                case .pid(let p):
                    guard let rec = try store.read(store.pids, p, as: PIDRecord.self) else {
                        throw CAError(.notFound, "no identity \(p)")
                    }
                    certs = try rec.serials.compactMap {
                        try store.read(store.certificates, $0, as: CertificateRecord.self)
                    }
                case nil:
                    throw CAError.invalid("name a serial or a PID to revoke")
                }
                for c in certs where !caller.isSystemAdministrator && c.org != caller.org {
                    throw CAError.denied("an administrator of \(caller.org) cannot revoke certificates of \(c.org)")
                }
                let now = Date()
                var batch = WriteBatch()
                var revoked = [String]()
                var updated = [String: CertificateRecord]()
                for var c in certs where c.revokedAt == nil {
                    c.revokedAt = now
                    c.reason = request.reason.rawValue
                    try store.put(c, store.certificates, c.serialHex, into: &batch)
                    revoked.append(c.serialHex)
                    updated[c.serialHex] = c
                }
                // The revocations and the CRL that lists them are written together, or not at all.
                let crl = try stageCRL(overriding: updated, into: &batch)
                try commit(batch)
                var response = Medledger_RevokeResponse()
                response.revokedSerials = revoked
                response.crlNumber = crl.number
                return response
            }
        }
    }

    /// The current signed CRL (DER) and its number. Re-issued when past half its validity.
    public func currentCRL() throws -> (der: [UInt8], number: UInt64, thisUpdate: Date) {
        try writeLock.withLock { _ in
            if let der = try store.kv.get(store.meta, Array("crl".utf8)), let list = try? RevocationList.parse(der),
                Date() < list.thisUpdate.addingTimeInterval(config.crlValidity / 2)
            {
                return (der, list.crlNumber, list.thisUpdate)
            }
            return try issueCRLLocked()
        }
    }

    @discardableResult
    public func issueCRL() throws -> (der: [UInt8], number: UInt64, thisUpdate: Date) {
        try writeLock.withLock { _ in try issueCRLLocked() }
    }

    private func issueCRLLocked() throws -> (der: [UInt8], number: UInt64, thisUpdate: Date) {
        var batch = WriteBatch()
        let crl = try stageCRL(overriding: [:], into: &batch)
        try store.kv.write(batch, sync: true)
        return crl
    }

    /// Builds the next CRL from the stored certificates (with `overriding` records not yet written) and
    /// stages it and its number into `batch`.
    private func stageCRL(
        overriding: [String: CertificateRecord], into batch: inout WriteBatch
    ) throws -> (der: [UInt8], number: UInt64, thisUpdate: Date) {
        let numberKey = Array("crl_number".utf8)
        let number =
            (try store.kv.get(store.meta, numberKey).flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0) + 1
        var all = try store.all(store.certificates, as: CertificateRecord.self)
        for i in all.indices { if let o = overriding[all[i].serialHex] { all[i] = o } }
        let revoked = all.filter { $0.revokedAt != nil }
        let now = Date()
        let entries = revoked.compactMap { c -> RevocationList.Entry? in
            guard let raw = Hex.decode(c.serialHex) else { return nil }
            return RevocationList.Entry(
                serial: Certificate.SerialNumber(bytes: raw), revocationDate: c.revokedAt!, reason: c.reason)
        }
        let ski = try rootCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
        let list = RevocationList(
            issuer: rootCertificate.subject, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(config.crlValidity), crlNumber: number, authorityKeyID: ski,
            entries: entries)
        let der = try list.signedDER(key: rootKey)
        batch.put(store.meta, numberKey, Array("\(number)".utf8))
        batch.put(store.meta, Array("crl".utf8), der)
        return (der, number, list.thisUpdate)
    }

    // MARK: Pseudo identities and the certificate directory

    /// RID of a PID. System administrators only; every attempt is audited (never with the RID itself).
    public func resolvePID(
        by caller: AuthenticatedIdentity, _ request: Medledger_ResolvePIDRequest
    ) throws -> Medledger_ResolvePIDResponse {
        try audited(caller.auditActor, "pid.resolve", request.pid, detail: "justification: \(request.justification)") {
            _ in
            guard caller.isSystemAdministrator else {
                throw CAError.denied("only the system administrator resolves pseudo identities")
            }
            guard !request.justification.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw CAError.invalid("a justification is required to resolve a PID")
            }
            guard let rec = try store.read(store.pids, request.pid, as: PIDRecord.self) else {
                throw CAError(.notFound, "no identity \(request.pid)")
            }
            var response = Medledger_ResolvePIDResponse()
            response.realIdentity = String(
                decoding: try box.open(Array(rec.sealedRID), context: "rid:\(rec.pid)"), as: UTF8.self)
            response.enrollmentID = rec.enrollmentID
            response.orgID = rec.org
            response.role = RoleName.role(rec.role) ?? .unspecified
            return response
        }
    }

    public func lookupCertificates(
        _ request: Medledger_LookupCertificatesRequest
    ) throws -> Medledger_LookupCertificatesResponse {
        guard let rec = try store.read(store.pids, request.pid, as: PIDRecord.self) else {
            throw CAError(.notFound, "no identity \(request.pid)")
        }
        var response = Medledger_LookupCertificatesResponse()
        response.pid = rec.pid
        response.orgID = rec.org
        response.role = RoleName.role(rec.role) ?? .unspecified
        let now = Date()
        for serial in rec.serials {
            guard let c = try store.read(store.certificates, serial, as: CertificateRecord.self) else { continue }
            var entry = Medledger_CertificateEntry()
            entry.certPem = Data(c.pem.utf8)
            entry.serialHex = c.serialHex
            entry.purpose = c.purpose
            entry.status = c.revokedAt != nil ? .revoked : (c.notAfter <= now ? .expired : .good)
            entry.notAfter = .init(date: c.notAfter)
            response.certificates.append(entry)
        }
        return response
    }

    // MARK: Internals

    private func checkedCSR(_ pem: Data, _ what: String) throws -> CertificateSigningRequest {
        guard !pem.isEmpty else { throw CAError.invalid("the \(what) certificate signing request is missing") }
        do { return try CertificateFactory.checkedCSR(pem: Array(pem)) } catch {
            throw CAError.invalid("\(what) CSR: \(error)")
        }
    }

    /// Checks both CSRs, computes the PID from the signing key, issues both certificates and stages every
    /// record (registration, PID, certificates) into `batch`.
    private func issueIdentity(
        enrollmentID: String, realIdentity: String, org: String, role: String, csrPEM: [UInt8], tlsCSRPEM: [UInt8],
        registeredBy: String, validity: TimeInterval, dnsNames: [String] = [], ipAddresses: [String] = [],
        serverAuth: Bool = false,
        into batch: inout WriteBatch
    ) throws -> Medledger_EnrolledIdentity {
        let signingCSR = try checkedCSR(Data(csrPEM), "signing")
        let tlsCSR = try checkedCSR(Data(tlsCSRPEM), "TLS")
        if let existing = try store.read(store.registrations, enrollmentID, as: RegistrationRecord.self),
            existing.state != .registered || existing.org != org
        {
            throw CAError(.alreadyExists, "enrollment id \(enrollmentID) is already taken")
        }
        guard signingCSR.publicKey != tlsCSR.publicKey else {
            throw CAError.invalid("the signing and TLS keys must differ")
        }
        let pid = try CertificateFactory.pseudoIdentity(realIdentity: realIdentity, publicKey: signingCSR.publicKey)
        let identity = IdentityAttributes(pid: pid, org: org, role: role)
        let signing = try CertificateFactory.issue(
            publicKey: signingCSR.publicKey, identity: identity, purpose: .signing, issuer: rootCertificate,
            issuerKey: rootKey, validity: validity)
        let tls: Certificate
        do {
            tls = try CertificateFactory.issue(
                publicKey: tlsCSR.publicKey, identity: identity, purpose: .tls, dnsNames: dnsNames,
                ipAddresses: ipAddresses, serverAuth: serverAuth, issuer: rootCertificate, issuerKey: rootKey,
                validity: validity)
        } catch let e as CertificateIssueError {
            throw CAError.invalid(e.description)
        }
        try recordCertificate(signing, identity: identity, purpose: "signing", enrollmentID: enrollmentID, into: &batch)
        try recordCertificate(tls, identity: identity, purpose: "tls", enrollmentID: enrollmentID, into: &batch)
        let pidRecord = PIDRecord(
            pid: pid, enrollmentID: enrollmentID, org: org, role: role,
            sealedRID: Data(try box.seal(Array(realIdentity.utf8), context: "rid:\(pid)")),
            serials: [signing.serialHex, tls.serialHex])
        try store.put(pidRecord, store.pids, pid, into: &batch)
        let registration = RegistrationRecord(
            enrollmentID: enrollmentID, org: org, role: role, secretHash: "", failedAttempts: 0,
            refusedUntilEpochSeconds: nil, state: .enrolled,
            sealedRID: Data(try box.seal(Array(realIdentity.utf8), context: "registration:\(enrollmentID)")),
            pid: pid, registeredBy: registeredBy, registeredAt: Date())
        try store.put(registration, store.registrations, enrollmentID, into: &batch)
        return enrolled(name: enrollmentID, identity: identity, signing: signing, tls: tls)
    }

    private func recordCertificate(
        _ cert: Certificate, identity: IdentityAttributes, purpose: String, enrollmentID: String,
        into batch: inout WriteBatch
    ) throws {
        let record = CertificateRecord(
            serialHex: cert.serialHex, pid: identity.pid, org: identity.org, role: identity.role, purpose: purpose,
            pem: cert.pem, notAfter: cert.notValidAfter, enrollmentID: enrollmentID, revokedAt: nil, reason: nil)
        try store.put(record, store.certificates, cert.serialHex, into: &batch)
    }

    private func enrolled(
        name: String, identity: IdentityAttributes, signing: Certificate, tls: Certificate
    ) -> Medledger_EnrolledIdentity {
        var out = Medledger_EnrolledIdentity()
        out.name = name
        out.pid = identity.pid
        out.orgID = identity.org
        out.role = identity.roleValue ?? .unspecified
        out.signingCertPem = Data(signing.pem.utf8)
        out.tlsCertPem = Data(tls.pem.utf8)
        out.caCertPem = Data(rootCertificate.pem.utf8)
        return out
    }

    /// A refusal whose caller learns less than the audit log: `error` is the answer, `reason` is audited.
    struct Refusal: Error {
        var error: CAError
        var reason: String
        init(_ error: CAError, reason: String) {
            self.error = error
            self.reason = reason
        }
    }

    /// Runs one operation and audits its outcome, synced. The CA does nothing its log does not show:
    /// `commit` writes the success line *before* the operation's records (so a crash cannot leave a
    /// change unaudited), an operation that changes nothing is audited before its answer leaves, and
    /// if a line cannot be written the caller gets 503 (`unavailable`) and nothing is changed.
    private func audited<T>(
        _ actor: AuditActor, _ action: String, _ target: String, detail: String = "",
        _ body: (_ commit: (WriteBatch) throws -> Void) throws -> T
    ) throws -> T {
        func line(_ outcome: AuditOutcome, _ more: String = "") -> AuditEvent {
            AuditEvent(
                actor: actor, action: action, target: target, outcome: outcome,
                detail: [detail, more].filter { !$0.isEmpty }.joined(separator: "; "))
        }
        var audited = false
        var stored = false
        do {
            let result = try body { batch in
                try Self.writeAhead(audit, line(.success))
                audited = true
                try store.kv.write(batch, sync: true)
                stored = true
            }
            if !audited { try Self.writeAhead(audit, line(.success)) }
            return result
        } catch let e as CAError where e.kind == .unavailable {
            throw e  // the log itself failed: nothing more can be written to it
        } catch let r as Refusal {
            try Self.writeAhead(audit, line(.denied, r.reason))
            throw r.error
        } catch {
            let outcome: AuditOutcome =
                (error as? CAError).map {
                    $0.kind == .permissionDenied || $0.kind == .unauthenticated ? .denied : .failed
                } ?? .failed
            let why = (error as? CAError)?.message ?? "\(error)"
            // A success line already written is corrected, not left standing.
            let correction =
                audited ? (stored ? "failed after its records were stored: " : "not stored after all: ") : ""
            try Self.writeAhead(audit, line(outcome, correction + why))
            throw error
        }
    }

    /// Writes one line durably; a failure becomes the CA's 503 (the AuditLog's failure handler tells
    /// the operator why).
    static func writeAhead(_ audit: AuditLog?, _ event: AuditEvent) throws {
        do { try audit?.record(event, durable: true) } catch {
            throw CAError(
                .unavailable,
                "the CA cannot write its audit log, so it changes and reveals nothing until it can; the operator's log says why"
            )
        }
    }

    static func auditTime(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    static func isValidEnrollmentID(_ id: String) -> Bool {
        let b = Array(id.utf8)
        return !b.isEmpty && b.count <= 128
            && b.allSatisfy { c in
                (65...90).contains(c) || (97...122).contains(c) || (48...57).contains(c) || c == 46 || c == 95
                    || c == 64 || c == 45
            }
    }

    /// Secrets are random (144 bits), so a salted SHA-256 is enough; the enrollment id is the salt.
    static func secretHash(_ secret: String, _ enrollmentID: String) -> String {
        Hex.encode(Digests.sha256(Array("medledger/enroll/\(enrollmentID)/\(secret)".utf8)))
    }

    static func ipString(_ raw: [UInt8]) -> String? {
        var buf = [CChar](repeating: 0, count: 64)
        let family = raw.count == 4 ? AF_INET : AF_INET6
        guard raw.count == 4 || raw.count == 16 else { return nil }
        let ok = raw.withUnsafeBytes { p in inet_ntop(family, p.baseAddress, &buf, socklen_t(buf.count)) != nil }
        guard ok else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension AuthenticatedIdentity {
    public var auditActor: AuditActor { AuditActor(pid: pid, org: org, role: attributes.role) }
    public var isSystemAdministrator: Bool { org == OrgID.systemAdministrator && role == .admin }
}
