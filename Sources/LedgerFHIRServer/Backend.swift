import Foundation
import LedgerFHIR
import MedRecords
import X509

/// A refusal with the HTTP status the EMR exchange guide gives it (400, 401, 403, 404, 412, 503…).
public struct FHIRFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String

    public init(_ status: Int, _ message: String) { (self.status, self.message) = (status, message) }
    public var description: String { "[\(status)] \(message)" }
}

/// A person as their certificate names them (the wallet's TLS certificate at `/authorize`), with
/// what it takes to ask later whether that certificate has been revoked.
public struct UserIdentity: Sendable, Equatable, Codable {
    public var pid: String
    public var org: String
    /// patient, doctor, admin, third-party, …
    public var role: String
    /// The certificate's serial (hex) and its issuer's distinguished name (base64 DER).
    public var certSerial: String
    public var certIssuer: String

    public init(pid: String, org: String, role: String, certSerial: String, certIssuer: String) {
        (self.pid, self.org, self.role, self.certSerial, self.certIssuer) = (pid, org, role, certSerial, certIssuer)
    }
}

/// Who a request acts for, once its bearer token checked out.
public struct FHIRCaller: Sendable, Equatable {
    public enum Kind: String, Sendable { case user, system }
    public var kind: Kind
    /// The user's PID; for a backend service, its client id.
    public var id: String
    public var org: String
    public var role: String
    public var clientID: String
    public var scopes: ScopeSet
    public var tokenID: String

    public init(kind: Kind, id: String, org: String, role: String, clientID: String, scopes: ScopeSet, tokenID: String)
    {
        (self.kind, self.id, self.org, self.role, self.clientID, self.scopes, self.tokenID) = (
            kind, id, org, role, clientID, scopes, tokenID
        )
    }

    /// The SMART context a token of this caller's kind carries: patients `patient/`, other people
    /// `user/`, backend services `system/`.
    public var context: SMARTScope.Context {
        kind == .system ? .system : role == "patient" ? .patient : .user
    }
}

/// One line the FHIR face asks the node's audit log to keep.
public struct FHIRAuditNote: Sendable, Equatable {
    public enum Outcome: String, Sendable { case success, denied, failed }
    public var actorID: String
    public var actorOrg: String
    public var actorRole: String
    public var action: String
    public var target: String
    public var outcome: Outcome
    public var detail: String

    public init(
        actorID: String, actorOrg: String, actorRole: String, action: String, target: String, outcome: Outcome,
        detail: String
    ) {
        (self.actorID, self.actorOrg, self.actorRole, self.action, self.target, self.outcome, self.detail) = (
            actorID, actorOrg, actorRole, action, target, outcome, detail
        )
    }
}

/// What the FHIR face needs from the node: identities checked against its trust store, and the
/// ledger's records read with `medrecords`' own rules in the caller's name. Reads throw
/// `FHIRFailure` with the chaincode's status (403, 404…).
public protocol FHIRBackend: Sendable {
    /// The user a presented TLS client certificate chain names, or a 401 `FHIRFailure`.
    func authenticate(chain: [Certificate]) async throws -> UserIdentity
    /// Why a user may no longer act on a token issued to them (certificate revoked since, identity
    /// suspended on this node), nil if they may.
    func refusal(of user: UserIdentity) -> String?
    /// Why a backend service may not act (suspended), nil if it may.
    func refusal(ofService clientID: String) -> String?

    func indexRecord(_ id: String, for caller: FHIRCaller) async throws -> IndexRecord
    func indexRecords(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<IndexRecord>
    func consent(_ id: String, for caller: FHIRCaller) async throws -> Consent
    func consents(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<Consent>
    func usage(
        patient: String, pageSize: Int, bookmark: String?, for caller: FHIRCaller
    ) async throws -> RecordPage<UsageRecord>
    /// This node's audit lines about the patient's records, by others, newest first (at most `limit`).
    func accessLog(patient: String, since: String?, limit: Int, for caller: FHIRCaller) async throws -> [AccessEntry]

    /// A stored ciphertext (the object store) the caller may download — the same rules as the
    /// object store's own API: the treatment's patient or doctor, or a grantee with a live consent —
    /// with its size; 404 or 403 `FHIRFailure` otherwise.
    func objectSize(_ digest: String, for caller: FHIRCaller) async throws -> UInt64
    /// The object's bytes, in pieces, once `objectSize` allowed it.
    func readObject(_ digest: String, for caller: FHIRCaller, _ each: ([UInt8]) async throws -> Void) async throws

    /// A treatment's device readings the collector verified, oldest first, `limit` from `offset`,
    /// with how many there are; only the treatment's doctor reads them (403 otherwise).
    func readings(
        treatment tID: String, offset: Int, limit: Int, for caller: FHIRCaller
    ) async throws -> (readings: [SealedReading], total: Int)

    /// Writes, submitted by the node in its own name once the caller may ask for them; the
    /// signatures they carry are the authority the chaincode checks. Each returns after the commit.
    /// A P_DE over an object already in this node's store; the caller is the treatment's patient or
    /// doctor, or a backend service of its hospital.
    func createIndexRecord(_ submission: DocumentSubmission, for caller: FHIRCaller) async throws -> IndexRecord
    /// A grant the calling patient signed.
    func grantConsent(_ submission: ConsentGrantSubmission, for caller: FHIRCaller) async throws -> Consent
    /// A revocation the calling patient signed.
    func revokeConsent(
        _ consentID: String, signature: SubmittedSignature, for caller: FHIRCaller
    ) async throws -> Consent

    func audit(_ note: FHIRAuditNote)
}
