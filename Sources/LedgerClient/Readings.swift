import Crypto
import Foundation
import HospitalFlows
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos
import LedgerRPC
import MedRecords
import X509

extension CareClient {
    /// A device sends one reading: the FHIR Observation is encrypted to the doctor's published key
    /// and the envelope signed with the device's signing key.
    public func submitReading(
        _ vitals: VitalSigns, tID: String, patientPID: String, doctorKey: PublicKey, sequence: UInt64,
        observedAt: String
    ) async throws -> Medledger_ReadingReceipt {
        try vitals.validate()
        let observation = try vitals.observation(
            // A FHIR id allows [A-Za-z0-9.-]; a PID is base64url, whose '_' it does not.
            id: "\(wallet.info.pid.prefix(12).replacingOccurrences(of: "_", with: "."))-\(sequence)",
            patientPID: patientPID, devicePID: wallet.info.pid, tID: tID, observedAt: observedAt)
        let (capsule, ciphertext) = Umbral.encrypt(delegatingPK: doctorKey, plaintext: observation)
        var r = Medledger_SignedReading()
        r.channel = channel
        r.tID = tID
        r.devicePid = wallet.info.pid
        r.sequence = sequence
        r.observedAt = observedAt
        r.capsule = Data(capsule.toBytes())
        r.ciphertext = Data(ciphertext)
        r.deviceCertPem = try Data(contentsOf: URL(fileURLWithPath: wallet.signingCertPath))
        r.signature = Data(try ReadingSigning.sign(r.signedMessage, key: try wallet.signingKey()))
        let frozen = r
        return try await call { try await Medledger_Collector.Client(wrapping: $0).submitReading(frozen) }
    }

    public struct Reading: Sendable {
        public var devicePID: String
        public var sequence: UInt64
        public var vitals: VitalSigns
        public var observedAt: String
        /// The FHIR Observation JSON as the device made it.
        public var observation: [UInt8]
    }

    /// The doctor fetches a treatment's readings from the collector and checks each again, end to
    /// end (the collector is not trusted for this): the device certificate is the CA's and a device's,
    /// the signature holds, the Observation decrypts with the doctor's key and names this patient,
    /// device and treatment, with values in range. Readings that fail are returned with the reason.
    public func fetchReadings(tID: String) async throws -> (accepted: [Reading], rejected: [String]) {
        let t: Treatment = try await query("getTreatment", GetTreatmentRequest(tID: tID))
        var req = Medledger_FetchReadingsRequest()
        req.channel = channel
        req.tID = tID
        let frozen = req
        let all = try await call { c in
            try await Medledger_Collector.Client(wrapping: c).fetchReadings(frozen) { response in
                var out = [Medledger_SignedReading]()
                for try await m in response.messages { out.append(m) }
                return out
            }
        }
        let trust = try trustStore()
        let doctorKey = try wallet.proxyKeys().encryption
        var accepted = [Reading]()
        var rejected = [String]()
        for r in all {
            let label = "reading \(r.sequence) of device \(r.devicePid)"
            do {
                let cert = try Certificate(pemEncoded: String(decoding: r.deviceCertPem, as: UTF8.self))
                let id = try await trust.validate(leaf: cert, purpose: .signing)
                guard id.pid == r.devicePid, id.role == .device else {
                    throw CallFailure(
                        status: 422, message: "signed by \(id.pid) (\(id.attributes.role)), not device \(r.devicePid)")
                }
                guard let key = P256.Signing.PublicKey(cert.publicKey),
                    ReadingSigning.isValid([UInt8](r.signature), message: r.signedMessage, key: key)
                else { throw CallFailure(status: 422, message: "the device signature does not verify") }
                let plain = try Umbral.decryptOriginal(
                    delegatingSK: doctorKey, capsule: try Capsule(bytes: [UInt8](r.capsule)),
                    ciphertext: [UInt8](r.ciphertext))
                let (vitals, observedAt) = try VitalSigns.parse(
                    observation: plain, patientPID: t.patientPID, devicePID: r.devicePid, tID: tID)
                accepted.append(
                    Reading(
                        devicePID: r.devicePid, sequence: r.sequence, vitals: vitals, observedAt: observedAt,
                        observation: plain))
            } catch {
                rejected.append("\(label): \(error)")
            }
        }
        return (accepted, rejected)
    }
}
