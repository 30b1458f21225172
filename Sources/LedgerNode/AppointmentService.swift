import Foundation
import GRPCCore
import HospitalFlows
import LedgerAudit
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import Synchronization
import X509

/// H_Mj, the hospital's management node (the paper's appointment step): a patient asks for an
/// appointment; the node assigns one of its doctors, creates the treatment on chain in its own name,
/// and seals T_SK = (PID, T_ID, DI, patient certificate) to the doctor's published encryption key.
/// The disease information is used only to seal T_SK: it is not stored, logged or audited here.
struct AppointmentService: Medledger_Appointments.SimpleServiceProtocol {
    let doctors: [String]
    let trust: TrustStore
    let query: ChainQuery
    let submitter: NodeSubmitter
    let audit: AuditLog?
    let nextDoctor = Counter()

    static let diseaseInfoBytesMax = 16 * 1024

    final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int {
            value.withLock { v in
                defer { v &+= 1 }
                return v
            }
        }
    }

    func requestAppointment(
        request: Medledger_AppointmentRequest, context: ServerContext
    ) async throws -> Medledger_Appointment {
        let caller = try context.requireCaller()
        guard caller.role == .patient else {
            throw RPCError(
                code: .permissionDenied,
                message: "only patients ask for appointments (you are \(caller.attributes.role))")
        }
        guard !request.channel.isEmpty else { throw RPCError(code: .invalidArgument, message: "channel is required") }
        guard !request.diseaseInfo.isEmpty, request.diseaseInfo.count <= Self.diseaseInfoBytesMax,
            let di = String(data: request.diseaseInfo, encoding: .utf8)
        else {
            throw RPCError(
                code: .invalidArgument, message: "disease_info must be 1 to \(Self.diseaseInfoBytesMax) bytes of UTF-8")
        }
        // The certificate that goes into T_SK must be the caller's own signing certificate, live now.
        let certPEM = String(decoding: request.patientCertPem, as: UTF8.self)
        let cert: Certificate
        do { cert = try Certificate(pemEncoded: certPEM) } catch {
            throw RPCError(code: .invalidArgument, message: "patient_cert_pem is not a PEM certificate")
        }
        let signer: AuthenticatedIdentity
        do { signer = try await trust.validate(leaf: cert, purpose: .signing) } catch {
            throw RPCError(code: .permissionDenied, message: "patient certificate rejected: \(error)")
        }
        guard signer.pid == caller.pid, signer.role == .patient else {
            throw RPCError(
                code: .permissionDenied, message: "patient_cert_pem is \(signer.pid)'s signing certificate, not yours")
        }
        // A named doctor may be any doctor of this hospital (checked in the key directory below); the
        // configured list is whom the node assigns in turn when the patient names none.
        let doctor: String
        if !request.preferredDoctorPid.isEmpty {
            doctor = request.preferredDoctorPid
        } else {
            guard !doctors.isEmpty else {
                throw RPCError(
                    code: .failedPrecondition,
                    message:
                        "this node assigns no doctors (its configuration lists none under appointments.doctors): name one"
                )
            }
            doctor = doctors[nextDoctor.next() % doctors.count]
        }
        // Checked before the treatment exists: a doctor without a published key could never open T_SK.
        let keys: KeyDirectoryEntry
        do {
            keys = try query.run(
                "getKeys", GetKeysRequest(pid: doctor), as: submitter.creator, channel: request.channel)
        } catch let e as RPCError where e.code == .notFound {
            throw RPCError(
                code: .failedPrecondition,
                message: "\(doctor) is no doctor here with a published encryption key (medledger keys publish)")
        }
        guard keys.role == "doctor", keys.org == submitter.creator.org else {
            throw RPCError(code: .failedPrecondition, message: "\(doctor) is not a doctor of \(submitter.creator.org)")
        }
        let doctorKey: PublicKey
        do { doctorKey = try keys.publicKeys().encryption } catch {
            throw RPCError(code: .internalError, message: "doctor \(doctor)'s published key does not parse")
        }

        let (treatment, tx) = try await submitter.submit(
            "createTreatment", CreateTreatmentRequest(patientPID: caller.pid, doctorPID: doctor),
            channel: request.channel, Treatment.self)
        let tsk = TreatmentSessionKey(
            patientPID: caller.pid, tID: treatment.tID, diseaseInfo: di, patientCert: certPEM, doctorPID: doctor,
            hospital: treatment.hospital, channel: request.channel, issuedAt: treatment.createdAt)
        let sealed = try tsk.seal(to: doctorKey)
        audit?.note(
            AuditEvent(
                actor: caller.auditActor, action: "appointment.request", target: treatment.tID, outcome: .success,
                detail: "doctor \(doctor)"))
        return Medledger_Appointment.with {
            $0.tID = treatment.tID
            $0.doctorPid = doctor
            $0.patientPid = caller.pid
            $0.hospital = treatment.hospital
            $0.channel = request.channel
            $0.txID = tx.txID
            $0.block = tx.blockNumber
            $0.sessionKeyCapsule = Data(sealed.capsule)
            $0.sessionKeyCiphertext = Data(sealed.ciphertext)
        }
    }
}
