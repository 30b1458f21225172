import Crypto
import Foundation
import MedRecords

/// What the clients are asked to do. Doctors write kv keys, add to counters and file P_DE index
/// records for their treatments; each hospital's management node creates treatments for its doctors.
/// A record is sealed before anything reaches a chaincode: its plaintext (with the patient's name)
/// stays with the client, and the referee looks for it, and for every patient's name, on every
/// disk at the end.
struct SimWorkload {
    struct TreatmentRef {
        var tID: String
        var patient: Int
        var doctor: Int
    }

    let cast: SimCast
    let keys: Int
    /// Planted bug: the doctor's app puts the record's plaintext into the P_DE's URL.
    let leaksPlaintext: Bool
    private(set) var treatments: [TreatmentRef] = []
    private(set) var plaintexts: [[UInt8]] = []

    init(cast: SimCast, keys: Int, leaksPlaintext: Bool) {
        self.cast = cast
        self.keys = keys
        self.leaksPlaintext = leaksPlaintext
    }

    var doctors: Int { cast.clients.count }
    var hospitals: Int { cast.managers.count }

    /// Whether idle client `c` starts an operation at this tick: doctors always, managers now and then
    /// (a treatment is booked far less often than records are written).
    func startsNow(client c: Int, random: inout SimRandom) -> Bool {
        c < doctors || random.chance(0.15)
    }

    /// The next intent of client `c` (doctors first, then one manager per hospital).
    mutating func intent(client c: Int, op: Int, random: inout SimRandom) throws -> SimIntent {
        if c >= doctors { return treatment(hospital: c - doctors, random: &random) ?? kvPut(&random) }
        let roll = random.int(0..<10)
        if roll < 3, let record = try record(doctor: c, op: op, random: &random) { return record }
        return roll < 6 ? counterAdd(&random) : kvPut(&random)
    }

    /// A committed createTreatment: its treatment becomes available to its doctor's P_DE.
    mutating func treatmentCommitted(answer: [UInt8], patient: Int, doctor: Int) {
        guard let t = try? JSONDecoder().decode(Treatment.self, from: Data(answer)) else { return }
        treatments.append(TreatmentRef(tID: t.tID, patient: patient, doctor: doctor))
    }

    private func kvPut(_ random: inout SimRandom) -> SimIntent {
        let key = "k\(random.int(0..<keys))"
        return SimIntent(
            kind: .put, chaincode: "kv", function: "put",
            args: [Array(key.utf8), Array("v\(random.next() % 1_000_000)".utf8)])
    }

    private func counterAdd(_ random: inout SimRandom) -> SimIntent {
        let key = "k\(random.int(0..<keys))"
        return SimIntent(kind: .add, chaincode: "counter", function: "add", args: [Array(key.utf8)], counterKey: key)
    }

    /// createTreatment for a random patient and a random doctor of `hospital`.
    private func treatment(hospital h: Int, random: inout SimRandom) -> SimIntent? {
        let ownDoctors = (0..<doctors).filter { $0 % hospitals == h }
        guard !ownDoctors.isEmpty else { return nil }
        let patient = random.int(0..<cast.patients.count)
        let doctor = ownDoctors[random.int(0..<ownDoctors.count)]
        let request = CreateTreatmentRequest(patientPID: cast.patientPIDs[patient], doctorPID: cast.clientPIDs[doctor])
        var intent = SimIntent(
            kind: .treatment, chaincode: "medrecords", function: "createTreatment",
            args: [Array((try? JSONEncoder().encode(request)) ?? Data())])
        intent.patient = patient
        intent.doctor = doctor
        return intent
    }

    /// A P_DE for one of `doctor`'s treatments: the record sealed (AES-256-GCM under a fresh key),
    /// its SHA-384 signed by the patient and the doctor.
    private mutating func record(doctor: Int, op: Int, random: inout SimRandom) throws -> SimIntent? {
        let mine = treatments.indices.filter { treatments[$0].doctor == doctor }
        guard !mine.isEmpty else { return nil }
        let which = mine[random.int(0..<mine.count)]
        let t = treatments[which]
        let plaintext = Array(
            "diagnosis:J45.\(random.int(0..<1000));patient:\(cast.patientNames[t.patient]);op:\(op)".utf8)
        plaintexts.append(plaintext)
        let ciphertext = try AES.GCM.seal(plaintext, using: SymmetricKey(size: .bits256)).combined!
        let digest = IndexRecordSigning.digestHex(ofCiphertext: ciphertext)
        let hospital = cast.clients[doctor].org
        let url =
            "objstore://\(hospital)/sim/" + (leaksPlaintext ? String(decoding: plaintext, as: UTF8.self) : "\(op)")
        let patient = cast.patients[t.patient]
        let doctorID = cast.clients[doctor]
        let request = PutIndexRecordRequest(
            tID: t.tID, url: url, digest: digest,
            patientSignature: try IndexRecordSigning.sign(tid: t.tID, url: url, digestHex: digest, key: patient.key),
            doctorSignature: try IndexRecordSigning.sign(tid: t.tID, url: url, digestHex: digest, key: doctorID.key),
            patientCert: patient.certificatePEM, doctorCert: doctorID.certificatePEM)
        var intent = SimIntent(
            kind: .record, chaincode: "medrecords", function: "putIndexRecord",
            args: [Array(try JSONEncoder().encode(request))])
        intent.treatment = which
        return intent
    }
}
