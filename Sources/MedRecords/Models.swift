import Foundation
import LedgerCrypto
import LedgerPRE

// The records the `medrecords` chaincode keeps, and the JSON bodies of its functions. Every field is
// snake_case on the wire. None of these holds medical data: the ciphertext stays in the hospital's
// object store; the chain keeps where it is (URL), what it hashes to (SHA-384) and who signed that.

/// A treatment T_ID(P, D): the appointment a hospital's administrator H_Mj books, tying one patient
/// to one doctor of that hospital. Every index record, consent and usage record hangs off one.
public struct Treatment: Codable, Sendable, Equatable {
    public var tID: String
    public var patientPID: String
    public var doctorPID: String
    /// The organisation of the administrator who created it.
    public var hospital: String
    /// RFC 3339, UTC, from the transaction's timestamp.
    public var createdAt: String
    /// PID of that administrator.
    public var createdBy: String

    public init(
        tID: String, patientPID: String, doctorPID: String, hospital: String, createdAt: String, createdBy: String
    ) {
        self.tID = tID
        self.patientPID = patientPID
        self.doctorPID = doctorPID
        self.hospital = hospital
        self.createdAt = createdAt
        self.createdBy = createdBy
    }

    enum CodingKeys: String, CodingKey {
        case tID = "t_id"
        case patientPID = "patient_pid"
        case doctorPID = "doctor_pid"
        case hospital
        case createdAt = "created_at"
        case createdBy = "created_by"
    }
}

/// The paper's P_DE = (T_ID, URL_C, D_SP, D_SD), plus the digest both signatures cover and the
/// signers' certificates, so that anyone allowed to read it can re-verify the signatures offline.
public struct IndexRecord: Codable, Sendable, Equatable {
    public var recordID: String
    public var tID: String
    public var patientPID: String
    public var doctorPID: String
    public var hospital: String
    /// Where the ciphertext is (URL_C).
    public var url: String
    /// Lower-case hex of SHA-384 of the ciphertext.
    public var digest: String
    /// Base64 of DER ECDSA P-256 signatures over `IndexRecordSigning.message`.
    public var patientSignature: String
    public var doctorSignature: String
    public var patientCert: String
    public var doctorCert: String
    public var time: String
    public var submittedBy: String
    /// Hex of the sealed record's Umbral capsule (105 bytes, umbral-pre's serialisation), when the record was sealed for proxy
    /// re-encryption: a proxy re-encrypts this capsule and no other, so a grantee cannot have a
    /// capsule of a treatment it was not granted re-encrypted. Public by design: a capsule alone
    /// opens nothing.
    public var capsule: String?

    public init(
        recordID: String, tID: String, patientPID: String, doctorPID: String, hospital: String, url: String,
        digest: String,
        patientSignature: String, doctorSignature: String, patientCert: String, doctorCert: String, time: String,
        submittedBy: String,
        capsule: String? = nil
    ) {
        self.capsule = capsule
        self.recordID = recordID
        self.tID = tID
        self.patientPID = patientPID
        self.doctorPID = doctorPID
        self.hospital = hospital
        self.url = url
        self.digest = digest
        self.patientSignature = patientSignature
        self.doctorSignature = doctorSignature
        self.patientCert = patientCert
        self.doctorCert = doctorCert
        self.time = time
        self.submittedBy = submittedBy
    }

    enum CodingKeys: String, CodingKey {
        case recordID = "record_id"
        case tID = "t_id"
        case patientPID = "patient_pid"
        case doctorPID = "doctor_pid"
        case hospital, url, digest
        case patientSignature = "patient_signature"
        case doctorSignature = "doctor_signature"
        case patientCert = "patient_cert"
        case doctorCert = "doctor_cert"
        case time
        case submittedBy = "submitted_by"
        case capsule
    }
}

/// What `putIndexRecord` answers: the stored record's fields that its request did not carry, or that
/// the chaincode normalised (the digest, lower-cased). The rest (URL_C, both signatures and
/// certificates, the capsule) the submitter sent; `IndexRecord(request:receipt:)` puts the two
/// together, and `getIndexRecord` reads the record as stored. An answer travels in the endorsement and
/// stays in the block: echoing the whole record (2.4 KB with both certificates) made it a quarter of
/// every P_DE transaction's bytes, hashed, copied and compressed at every step.
public struct IndexRecordReceipt: Codable, Sendable, Equatable {
    public var recordID: String
    public var tID: String
    public var patientPID: String
    public var doctorPID: String
    public var hospital: String
    public var digest: String
    public var time: String
    public var submittedBy: String

    public init(_ record: IndexRecord) {
        recordID = record.recordID
        tID = record.tID
        patientPID = record.patientPID
        doctorPID = record.doctorPID
        hospital = record.hospital
        digest = record.digest
        time = record.time
        submittedBy = record.submittedBy
    }

    enum CodingKeys: String, CodingKey {
        case recordID = "record_id"
        case tID = "t_id"
        case patientPID = "patient_pid"
        case doctorPID = "doctor_pid"
        case hospital, digest, time
        case submittedBy = "submitted_by"
    }
}

extension IndexRecord {
    /// The record `putIndexRecord` stored for `request`, from its receipt: the same as `getIndexRecord`
    /// returns (the capsule lower-cased, as the chaincode stores it).
    public init(request: PutIndexRecordRequest, receipt: IndexRecordReceipt) {
        self.init(
            recordID: receipt.recordID, tID: receipt.tID, patientPID: receipt.patientPID,
            doctorPID: receipt.doctorPID, hospital: receipt.hospital, url: request.url, digest: receipt.digest,
            patientSignature: request.patientSignature, doctorSignature: request.doctorSignature,
            patientCert: request.patientCert, doctorCert: request.doctorCert, time: receipt.time,
            submittedBy: receipt.submittedBy, capsule: request.capsule?.lowercased())
    }
}

/// A patient's permission for one grantee to use the records of some treatments for one purpose,
/// until `expires_at` or until revoked. Usage (D_UE) is only recorded under a live one.
public struct Consent: Codable, Sendable, Equatable {
    public var consentID: String
    public var patientPID: String
    public var granteePID: String
    public var tIDs: [String]
    public var purpose: String
    public var grantedAt: String
    public var expiresAt: String
    /// Absent while the consent stands.
    public var revokedAt: String?
    /// When a node submitted the grant (or the revocation) for the patient: what the patient
    /// signed, kept so that anyone auditing the ledger can check the patient's own authority.
    public var grantSignature: PatientSignature?
    public var revocationSignature: PatientSignature?

    public init(
        consentID: String, patientPID: String, granteePID: String, tIDs: [String], purpose: String, grantedAt: String,
        expiresAt: String, revokedAt: String? = nil,
        grantSignature: PatientSignature? = nil
    ) {
        self.consentID = consentID
        self.patientPID = patientPID
        self.granteePID = granteePID
        self.tIDs = tIDs
        self.purpose = purpose
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.grantSignature = grantSignature
    }

    enum CodingKeys: String, CodingKey {
        case consentID = "consent_id"
        case patientPID = "patient_pid"
        case granteePID = "grantee_pid"
        case tIDs = "t_ids"
        case purpose
        case grantedAt = "granted_at"
        case expiresAt = "expires_at"
        case revokedAt = "revoked_at"
        case grantSignature = "grant_signature"
        case revocationSignature = "revocation_signature"
    }
}

/// A patient's signature of a consent act a node submitted (`ConsentSigning`): the exact message,
/// the base64 DER ECDSA signature and the signing certificate (PEM).
public struct PatientSignature: Codable, Sendable, Equatable {
    public var message: String
    public var signature: String
    public var certificate: String

    public init(message: String, signature: String, certificate: String) {
        (self.message, self.signature, self.certificate) = (message, signature, certificate)
    }
}

/// The paper's D_UE = (T_ID, T_H): one use of a treatment's records by a third party, through a
/// proxy node's re-encryption, under a named consent.
public struct UsageRecord: Codable, Sendable, Equatable {
    public var usageID: String
    public var tID: String
    public var patientPID: String
    public var thirdPartyPID: String
    public var proxyNode: String
    public var purpose: String
    public var time: String
    public var consentID: String
    /// PID of the identity that wrote it (the third party itself or the proxy node).
    public var submittedBy: String

    public init(
        usageID: String, tID: String, patientPID: String, thirdPartyPID: String, proxyNode: String, purpose: String,
        time: String, consentID: String, submittedBy: String
    ) {
        self.usageID = usageID
        self.tID = tID
        self.patientPID = patientPID
        self.thirdPartyPID = thirdPartyPID
        self.proxyNode = proxyNode
        self.purpose = purpose
        self.time = time
        self.consentID = consentID
        self.submittedBy = submittedBy
    }

    enum CodingKeys: String, CodingKey {
        case usageID = "usage_id"
        case tID = "t_id"
        case patientPID = "patient_pid"
        case thirdPartyPID = "third_party_pid"
        case proxyNode = "proxy_node"
        case purpose, time
        case consentID = "consent_id"
        case submittedBy = "submitted_by"
    }
}

/// One page of a listing. `bookmark` is empty when nothing follows; otherwise pass it back for the
/// next page. A filtered listing (a doctor listing a patient's records) may return fewer records than
/// `page_size`, even none, while a bookmark still says more may follow.
public struct RecordPage<Record: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var records: [Record]
    public var bookmark: String

    public init(records: [Record], bookmark: String) {
        self.records = records
        self.bookmark = bookmark
    }
}

// MARK: - Requests

/// A request body: the JSON object in args[0]. `fieldNames` lets the chaincode refuse unknown fields,
/// so that a misspelt optional field (`page_sise`) is an error rather than silently ignored.
public protocol MedRecordsRequest: Codable, Sendable {
    static var fieldNames: Set<String> { get }
}

public struct CreateTreatmentRequest: MedRecordsRequest, Equatable {
    public var patientPID: String
    public var doctorPID: String

    public init(patientPID: String, doctorPID: String) {
        self.patientPID = patientPID
        self.doctorPID = doctorPID
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patientPID = "patient_pid"
        case doctorPID = "doctor_pid"
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct PutIndexRecordRequest: MedRecordsRequest, Equatable {
    public var tID: String
    public var url: String
    public var digest: String
    public var patientSignature: String
    public var doctorSignature: String
    public var patientCert: String
    public var doctorCert: String
    /// Optional: hex of the sealed record's Umbral capsule (see `IndexRecord.capsule`).
    public var capsule: String?

    public init(
        tID: String, url: String, digest: String, patientSignature: String, doctorSignature: String,
        patientCert: String, doctorCert: String, capsule: String? = nil
    ) {
        self.capsule = capsule
        self.tID = tID
        self.url = url
        self.digest = digest
        self.patientSignature = patientSignature
        self.doctorSignature = doctorSignature
        self.patientCert = patientCert
        self.doctorCert = doctorCert
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tID = "t_id"
        case url, digest
        case patientSignature = "patient_signature"
        case doctorSignature = "doctor_signature"
        case patientCert = "patient_cert"
        case doctorCert = "doctor_cert"
        case capsule
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct GetTreatmentRequest: MedRecordsRequest, Equatable {
    public var tID: String

    public init(tID: String) { self.tID = tID }

    enum CodingKeys: String, CodingKey, CaseIterable { case tID = "t_id" }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct GetIndexRecordRequest: MedRecordsRequest, Equatable {
    public var recordID: String

    public init(recordID: String) { self.recordID = recordID }

    enum CodingKeys: String, CodingKey, CaseIterable { case recordID = "record_id" }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

/// Exactly one of `patient_pid`, `t_id`.
public struct ListIndexRecordsRequest: MedRecordsRequest, Equatable {
    public var patientPID: String?
    public var tID: String?
    public var pageSize: Int?
    public var bookmark: String?

    public init(patientPID: String? = nil, tID: String? = nil, pageSize: Int? = nil, bookmark: String? = nil) {
        self.patientPID = patientPID
        self.tID = tID
        self.pageSize = pageSize
        self.bookmark = bookmark
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patientPID = "patient_pid"
        case tID = "t_id"
        case pageSize = "page_size"
        case bookmark
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

/// Exactly one of `patient_pid`, `doctor_pid`.
public struct ListTreatmentsRequest: MedRecordsRequest, Equatable {
    public var patientPID: String?
    public var doctorPID: String?
    public var pageSize: Int?
    public var bookmark: String?

    public init(patientPID: String? = nil, doctorPID: String? = nil, pageSize: Int? = nil, bookmark: String? = nil) {
        self.patientPID = patientPID
        self.doctorPID = doctorPID
        self.pageSize = pageSize
        self.bookmark = bookmark
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patientPID = "patient_pid"
        case doctorPID = "doctor_pid"
        case pageSize = "page_size"
        case bookmark
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct GrantAccessRequest: MedRecordsRequest, Equatable {
    public var granteePID: String
    public var tIDs: [String]
    public var purpose: String
    /// RFC 3339 with a time zone ("Z" or an offset); must be after the transaction's timestamp.
    public var expiresAt: String
    /// A grant the patient signed (`ConsentSigning.grantMessage`) for a node to submit: the
    /// patient's signing certificate (PEM), the signature, and the nonce it covers. All or none.
    public var patientCert: String?
    public var patientSignature: String?
    public var nonce: String?

    public init(
        granteePID: String, tIDs: [String], purpose: String, expiresAt: String, patientCert: String? = nil,
        patientSignature: String? = nil, nonce: String? = nil
    ) {
        self.granteePID = granteePID
        self.tIDs = tIDs
        self.purpose = purpose
        self.expiresAt = expiresAt
        (self.patientCert, self.patientSignature, self.nonce) = (patientCert, patientSignature, nonce)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case granteePID = "grantee_pid"
        case tIDs = "t_ids"
        case purpose
        case expiresAt = "expires_at"
        case patientCert = "patient_cert"
        case patientSignature = "patient_signature"
        case nonce
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct RevokeAccessRequest: MedRecordsRequest, Equatable {
    public var consentID: String
    /// A revocation the patient signed (`ConsentSigning.revokeMessage`) for a node to submit.
    public var patientCert: String?
    public var patientSignature: String?

    public init(consentID: String, patientCert: String? = nil, patientSignature: String? = nil) {
        self.consentID = consentID
        (self.patientCert, self.patientSignature) = (patientCert, patientSignature)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case consentID = "consent_id"
        case patientCert = "patient_cert"
        case patientSignature = "patient_signature"
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

/// Exactly one of `patient_pid`, `grantee_pid`.
public struct ListConsentsRequest: MedRecordsRequest, Equatable {
    public var patientPID: String?
    public var granteePID: String?
    public var pageSize: Int?
    public var bookmark: String?

    public init(patientPID: String? = nil, granteePID: String? = nil, pageSize: Int? = nil, bookmark: String? = nil) {
        self.patientPID = patientPID
        self.granteePID = granteePID
        self.pageSize = pageSize
        self.bookmark = bookmark
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patientPID = "patient_pid"
        case granteePID = "grantee_pid"
        case pageSize = "page_size"
        case bookmark
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct RecordUsageRequest: MedRecordsRequest, Equatable {
    public var tID: String
    public var thirdPartyPID: String
    public var proxyNode: String
    public var purpose: String
    /// The consent whose key fragment the proxy used; the D_UE cites it, and it must be live. Absent:
    /// the latest-expiring live consent for the purpose (a third party recording its own use).
    public var consentID: String?

    public init(tID: String, thirdPartyPID: String, proxyNode: String, purpose: String, consentID: String? = nil) {
        self.tID = tID
        self.thirdPartyPID = thirdPartyPID
        self.proxyNode = proxyNode
        self.purpose = purpose
        self.consentID = consentID
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tID = "t_id"
        case thirdPartyPID = "third_party_pid"
        case proxyNode = "proxy_node"
        case purpose
        case consentID = "consent_id"
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

/// Exactly one of `t_id`, `patient_pid`.
public struct ListUsageRequest: MedRecordsRequest, Equatable {
    public var tID: String?
    public var patientPID: String?
    public var pageSize: Int?
    public var bookmark: String?

    public init(tID: String? = nil, patientPID: String? = nil, pageSize: Int? = nil, bookmark: String? = nil) {
        self.tID = tID
        self.patientPID = patientPID
        self.pageSize = pageSize
        self.bookmark = bookmark
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tID = "t_id"
        case patientPID = "patient_pid"
        case pageSize = "page_size"
        case bookmark
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

/// A member's published proxy re-encryption keys (the key directory): hex of compressed secp256k1
/// points. Anyone on the channel may read them; only the member itself publishes (or replaces) them,
/// so a key under a PID is that PID's own.
public struct KeyDirectoryEntry: Codable, Sendable, Equatable {
    public var pid: String
    public var org: String
    public var role: String
    /// Umbral public key: records are sealed to it, capsule fragments re-encrypted to it.
    public var encryptionKey: String
    /// Umbral verifying key: checks the key fragments this member signs as a delegating patient.
    public var verifyingKey: String
    public var publishedAt: String

    public init(
        pid: String, org: String, role: String, encryptionKey: String, verifyingKey: String, publishedAt: String
    ) {
        self.pid = pid
        self.org = org
        self.role = role
        self.encryptionKey = encryptionKey
        self.verifyingKey = verifyingKey
        self.publishedAt = publishedAt
    }

    enum CodingKeys: String, CodingKey {
        case pid, org, role
        case encryptionKey = "encryption_key"
        case verifyingKey = "verifying_key"
        case publishedAt = "published_at"
    }
}

public struct PublishKeysRequest: MedRecordsRequest, Equatable {
    public var encryptionKey: String
    public var verifyingKey: String

    public init(encryptionKey: String, verifyingKey: String) {
        self.encryptionKey = encryptionKey
        self.verifyingKey = verifyingKey
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case encryptionKey = "encryption_key"
        case verifyingKey = "verifying_key"
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct GetKeysRequest: MedRecordsRequest, Equatable {
    public var pid: String

    public init(pid: String) { self.pid = pid }

    enum CodingKeys: String, CodingKey, CaseIterable { case pid }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct GetConsentRequest: MedRecordsRequest, Equatable {
    public var consentID: String

    public init(consentID: String) { self.consentID = consentID }

    enum CodingKeys: String, CodingKey, CaseIterable { case consentID = "consent_id" }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

// MARK: - Event payloads

/// Events carry ids only: anyone subscribed to the channel's events sees them.
public struct TreatmentCreatedEvent: Codable, Sendable, Equatable {
    public var tID: String
    enum CodingKeys: String, CodingKey { case tID = "t_id" }
}

public struct IndexRecordAddedEvent: Codable, Sendable, Equatable {
    public var recordID: String
    public var tID: String
    enum CodingKeys: String, CodingKey {
        case recordID = "record_id"
        case tID = "t_id"
    }
}

public struct AccessGrantedEvent: Codable, Sendable, Equatable {
    public var consentID: String
    public var granteePID: String
    enum CodingKeys: String, CodingKey {
        case consentID = "consent_id"
        case granteePID = "grantee_pid"
    }
}

public struct AccessRevokedEvent: Codable, Sendable, Equatable {
    public var consentID: String
    public var granteePID: String
    enum CodingKeys: String, CodingKey {
        case consentID = "consent_id"
        case granteePID = "grantee_pid"
    }
}

public struct UsageRecordedEvent: Codable, Sendable, Equatable {
    public var usageID: String
    public var tID: String
    enum CodingKeys: String, CodingKey {
        case usageID = "usage_id"
        case tID = "t_id"
    }
}

public struct KeysPublishedEvent: Codable, Sendable, Equatable {
    public var pid: String
}

// MARK: - Rules shared with the node and clients

/// The syntax of the ids `medrecords` makes, for code outside the chaincode that must refuse
/// anything else before using one (as a file name, say).
public enum RecordIDSyntax {
    public static func isTreatmentID(_ id: String) -> Bool { IDKind.treatment.matches(id) }
    public static func isConsentID(_ id: String) -> Bool { IDKind.consent.matches(id) }
}

extension Consent {
    /// Why the consent is not live at `time` (revoked, expired), or nil: the rule `recordUsage`
    /// applies by the transaction's time, for callers that decide before a transaction exists.
    public func whyNotLive(at time: Date) -> String? {
        if let at = revokedAt { return "was revoked at \(at)" }
        guard let expires = RFC3339.parse(expiresAt) else { return "has an unreadable expiry" }
        return RFC3339.milliseconds(time) < expires ? nil : "expired at \(expiresAt)"
    }
}

extension KeyDirectoryEntry {
    /// The published keys as Umbral public keys (the chaincode checked them when they were published).
    public func publicKeys() throws -> (encryption: PublicKey, verifying: PublicKey) {
        (
            try PublicKey(compressedBytes: Hex.decode(encryptionKey) ?? []),
            try PublicKey(compressedBytes: Hex.decode(verifyingKey) ?? [])
        )
    }
}
