import Foundation
import LedgerStorage

/// The CA's private store: one RocksDB under the CA's data directory, separate from any ledger.
/// Records are JSON; secrets (the CA key, each RID) are sealed with the SA's master key before they
/// are written.
enum CALayout {
    static let meta = "ca_meta"
    static let orgs = "ca_orgs"
    static let registrations = "ca_registrations"
    static let certificates = "ca_certs"
    static let pids = "ca_pids"
    static let columnFamilies = [meta, orgs, registrations, certificates, pids]

    static func databasePath(dataDir: String) -> String { dataDir + "/ca-rocksdb" }
}

struct OrgRecord: Codable, Sendable {
    var id: String
    var type: Int
    var displayName: String
    var admittedAt: Date
}

struct RegistrationRecord: Codable, Sendable {
    /// `locked` was written by versions that locked an id after five wrong secrets; such an id is now
    /// treated as registered and governed by the back-off like any other.
    enum State: String, Codable { case registered, enrolled, locked }
    var enrollmentID: String
    var org: String
    var role: String
    var secretHash: String
    /// Wrong secrets since registration (an enrollment ends the count).
    var failedAttempts: Int
    /// No attempt is checked before this instant (back-off after a wrong secret), in seconds since
    /// 1970: a number, because the ISO 8601 dates of the other fields keep whole seconds only and would
    /// cut a 1 s wait short. Absent in records written before back-off existed.
    var refusedUntilEpochSeconds: Double?
    var state: State
    var sealedRID: Data  // sealed with context "registration:<enrollmentID>"
    var pid: String?
    var registeredBy: String
    var registeredAt: Date

    var refusedUntil: Date? {
        get { refusedUntilEpochSeconds.map { Date(timeIntervalSince1970: $0) } }
        set { refusedUntilEpochSeconds = newValue?.timeIntervalSince1970 }
    }
}

struct CertificateRecord: Codable, Sendable {
    var serialHex: String
    var pid: String
    var org: String
    var role: String
    var purpose: String
    var pem: String
    var notAfter: Date
    var enrollmentID: String
    var revokedAt: Date?
    var reason: Int?
}

struct PIDRecord: Codable, Sendable {
    var pid: String
    var enrollmentID: String
    var org: String
    var role: String
    var sealedRID: Data  // sealed with context "rid:<pid>"
    var serials: [String]
}

/// Typed access to the CA's column families.
struct CARecords {
    let kv: any KVStore
    let meta, orgs, registrations, certificates, pids: ColumnFamily

    init(kv: any KVStore) throws {
        self.kv = kv
        meta = try kv.columnFamily(CALayout.meta)
        orgs = try kv.columnFamily(CALayout.orgs)
        registrations = try kv.columnFamily(CALayout.registrations)
        certificates = try kv.columnFamily(CALayout.certificates)
        pids = try kv.columnFamily(CALayout.pids)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = .sortedKeys
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    func read<T: Decodable>(_ cf: ColumnFamily, _ key: String, as: T.Type) throws -> T? {
        guard let bytes = try kv.get(cf, Array(key.utf8)) else { return nil }
        do { return try Self.decoder.decode(T.self, from: Data(bytes)) } catch {
            throw StorageError.corrupt(what: "CA record \(cf.name)/\(key)", reason: "\(error)")
        }
    }

    func put<T: Encodable>(_ value: T, _ cf: ColumnFamily, _ key: String, into batch: inout WriteBatch) throws {
        batch.put(cf, Array(key.utf8), Array(try Self.encoder.encode(value)))
    }

    func all<T: Decodable>(_ cf: ColumnFamily, as: T.Type) throws -> [T] {
        try kv.scan(cf, .all).map { try Self.decoder.decode(T.self, from: Data($0.value)) }
    }
}
