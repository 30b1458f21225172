import Foundation

// How a P_DE request travels in a proposal: its certificates in the transient map (which transactions
// leave out), the rest as the JSON argument the chaincode reads.

extension PutIndexRecordRequest {
    /// The transient-map keys the two certificates travel under: their field names.
    public static let patientCertKey = CodingKeys.patientCert.rawValue
    public static let doctorCertKey = CodingKeys.doctorCert.rawValue

    /// The request as a proposal carries it: the JSON argument without the two certificates, which go
    /// in the proposal's transient map under the same names. The endorser's chaincode reads them there
    /// and stores them in the record; the transaction leaves the transient map out, so the block does
    /// not carry them in the argument as well. The chaincode also takes them in the argument (as older
    /// clients send them), but not in both places at once. Endorsing peers must be this version or later.
    public func proposalInputs() throws -> ProposalInputs {
        ProposalInputs(
            args: [try Wire.encode(PutIndexRecordArgument(withoutCertificatesOf: self))],
            transient: [Self.patientCertKey: Array(patientCert.utf8), Self.doctorCertKey: Array(doctorCert.utf8)])
    }
}

/// A function's arguments and transient inputs, as a proposal carries them.
public struct ProposalInputs: Sendable, Equatable {
    public var args: [[UInt8]]
    public var transient: [String: [UInt8]]

    public init(args: [[UInt8]], transient: [String: [UInt8]] = [:]) {
        self.args = args
        self.transient = transient
    }

    /// A `medrecords` request as its one argument, JSON, nothing transient.
    public static func json(_ request: some Encodable) throws -> ProposalInputs {
        ProposalInputs(args: [Array(try JSONEncoder().encode(request))])
    }
}

/// `putIndexRecord`'s argument as the chaincode reads it: `PutIndexRecordRequest` with each
/// certificate either here or in the transient map (`PutIndexRecordRequest.proposalInputs`).
struct PutIndexRecordArgument: MedRecordsRequest, Equatable {
    var tID: String
    var url: String
    var digest: String
    var patientSignature: String
    var doctorSignature: String
    var patientCert: String?
    var doctorCert: String?
    var capsule: String?

    /// The argument a client sends when the certificates travel in the transient map.
    init(withoutCertificatesOf r: PutIndexRecordRequest) {
        (tID, url, digest, capsule) = (r.tID, r.url, r.digest, r.capsule)
        (patientSignature, doctorSignature) = (r.patientSignature, r.doctorSignature)
    }

    typealias CodingKeys = PutIndexRecordRequest.CodingKeys
    static let fieldNames = PutIndexRecordRequest.fieldNames

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tID = try c.decode(String.self, forKey: .tID)
        url = try c.decode(String.self, forKey: .url)
        digest = try c.decode(String.self, forKey: .digest)
        patientSignature = try c.decode(String.self, forKey: .patientSignature)
        doctorSignature = try c.decode(String.self, forKey: .doctorSignature)
        patientCert = try Self.absentOrText(c, .patientCert)
        doctorCert = try Self.absentOrText(c, .doctorCert)
        capsule = try c.decodeIfPresent(String.self, forKey: .capsule)
    }

    /// A certificate may be absent (it is then in the transient map), but not null: a null is refused
    /// as it was when the field was required.
    private static func absentOrText(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> String? {
        guard c.contains(key) else { return nil }
        return try c.decode(String.self, forKey: key)
    }
}
