import Foundation
import LedgerPRE

/// The paper's treatment session key T_SK = (PID, T_ID, DI, patient certificate): what the management
/// node H_Mj hands the assigned doctor, sealed to the doctor's published encryption key so that only
/// the doctor reads the disease information DI.
public struct TreatmentSessionKey: Codable, Sendable, Equatable {
    public var patientPID: String
    public var tID: String
    public var diseaseInfo: String
    /// The patient's signing certificate (PEM): the doctor checks the patient's record signatures with it.
    public var patientCert: String
    public var doctorPID: String
    public var hospital: String
    public var channel: String
    public var issuedAt: String

    public init(
        patientPID: String, tID: String, diseaseInfo: String, patientCert: String, doctorPID: String, hospital: String,
        channel: String, issuedAt: String
    ) {
        self.patientPID = patientPID
        self.tID = tID
        self.diseaseInfo = diseaseInfo
        self.patientCert = patientCert
        self.doctorPID = doctorPID
        self.hospital = hospital
        self.channel = channel
        self.issuedAt = issuedAt
    }

    enum CodingKeys: String, CodingKey {
        case patientPID = "patient_pid"
        case tID = "t_id"
        case diseaseInfo = "disease_info"
        case patientCert = "patient_cert"
        case doctorPID = "doctor_pid"
        case hospital, channel
        case issuedAt = "issued_at"
    }

    /// Sealed to `doctorKey` with Umbral's KEM/DEM (a fresh capsule per session key).
    public func seal(to doctorKey: PublicKey) throws -> (capsule: [UInt8], ciphertext: [UInt8]) {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let (capsule, ciphertext) = Umbral.encrypt(delegatingPK: doctorKey, plaintext: Array(try e.encode(self)))
        return (capsule.toBytes(), ciphertext)
    }

    public struct OpenFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens a sealed T_SK with the doctor's secret key.
    public static func open(capsule: [UInt8], ciphertext: [UInt8], doctorKey: SecretKey) throws -> TreatmentSessionKey {
        let c: Capsule
        do { c = try Capsule(bytes: capsule) } catch {
            throw OpenFailure(description: "the session key's capsule is malformed: \(error)")
        }
        let plaintext: [UInt8]
        do { plaintext = try Umbral.decryptOriginal(delegatingSK: doctorKey, capsule: c, ciphertext: ciphertext) } catch
        {
            throw OpenFailure(
                description: "the session key does not open with this key: it was sealed to another doctor, or altered")
        }
        do { return try JSONDecoder().decode(TreatmentSessionKey.self, from: Data(plaintext)) } catch {
            throw OpenFailure(description: "the session key opened but is not a T_SK: \(error)")
        }
    }
}
