import Crypto
import Foundation
import MedRecords

/// What the clients are asked to do. Doctors write kv keys, add to counters and file P_DE index
/// records for their treatments; each hospital's management node creates treatments for its doctors,
/// carries consents its patients signed (grants to doctors of other hospitals, and their withdrawal)
/// and, as the proxy that re-encrypts, records D_UE usage under consents it believes live.
/// A record is sealed before anything reaches a chaincode: its plaintext (with the patient's name)
/// stays with the client, and the referee looks for it, and for every patient's name, on every
/// disk at the end.
struct SimWorkload {
    struct TreatmentRef {
        var tID: String
        var patient: Int
        var doctor: Int
    }

    /// A consent seen committed; `withdrawn` once its withdrawal committed (usage may still be
    /// attempted under it: it must then be refused, or be invalid if it raced the withdrawal).
    struct ConsentRef {
        var consentID: String
        var tID: String
        var granteePID: String
        var purpose: String
        var patient: Int
        /// The grant's operation.
        var op: Int
        var withdrawalAsked = false
        var withdrawn = false
    }

    static let purpose = "treatment"
    /// Far past any simulated time (runs last minutes of simulated time; clocks jump by seconds).
    static let consentExpiry = "2027-01-01T00:00:00Z"

    let cast: SimCast
    let keys: Int
    /// Planted bug: the doctor's app puts the record's plaintext into the P_DE's URL.
    let leaksPlaintext: Bool
    private(set) var treatments: [TreatmentRef] = []
    private(set) var plaintexts: [[UInt8]] = []
    private(set) var consents: [ConsentRef] = []

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
        if c >= doctors { return try managerIntent(hospital: c - doctors, op: op, random: &random) }
        let roll = random.int(0..<10)
        if roll < 3, let record = try record(doctor: c, op: op, random: &random) { return record }
        return roll < 6 ? counterAdd(&random) : kvPut(&random)
    }

    /// A committed createTreatment: its treatment becomes available to its doctor's P_DE.
    mutating func treatmentCommitted(answer: [UInt8], patient: Int, doctor: Int) {
        guard let t = try? JSONDecoder().decode(Treatment.self, from: Data(answer)) else { return }
        treatments.append(TreatmentRef(tID: t.tID, patient: patient, doctor: doctor))
    }

    /// A consent committed: usage may be recorded under it from now on.
    mutating func consentCommitted(answer: [UInt8], patient: Int, op: Int) {
        guard let c = try? JSONDecoder().decode(Consent.self, from: Data(answer)), let tID = c.tIDs.first else {
            return
        }
        consents.append(
            ConsentRef(
                consentID: c.consentID, tID: tID, granteePID: c.granteePID, purpose: c.purpose, patient: patient, op: op
            ))
    }

    mutating func consentWithdrawn(_ consent: Int) { consents[consent].withdrawn = true }

    /// A management node's next intent: mostly treatments; once there are some, consents for them,
    /// usage under live consents, and now and then a withdrawal.
    private mutating func managerIntent(hospital h: Int, op: Int, random: inout SimRandom) throws -> SimIntent {
        let live = consents.indices.filter { !consents[$0].withdrawn }
        // Half the usage goes under consents whose withdrawal was asked for: the race that matters.
        let racing = live.filter { consents[$0].withdrawalAsked }
        let roll = random.int(0..<10)
        if (4...5).contains(roll), !treatments.isEmpty { return try grant(op: op, random: &random) }
        if (6...7).contains(roll), !live.isEmpty {
            let pool = !racing.isEmpty && random.chance(0.5) ? racing : live
            return try usage(of: pool[random.int(0..<pool.count)], hospital: h)
        }
        if roll == 8, !live.isEmpty { return try withdrawal(of: live[random.int(0..<live.count)]) }
        return try treatment(hospital: h, random: &random) ?? kvPut(&random)
    }

    /// The patient of a committed treatment grants a doctor (of another hospital when there is one)
    /// access to it; a management node carries the signed grant.
    private func grant(op: Int, random: inout SimRandom) throws -> SimIntent {
        let t = treatments[random.int(0..<treatments.count)]
        let others = (0..<doctors).filter { $0 % hospitals != t.doctor % hospitals }
        let candidates = others.isEmpty ? Array(0..<doctors) : others
        let grantee = cast.clientPIDs[candidates[random.int(0..<candidates.count)]]
        let nonce = "op\(op)"
        let message = ConsentSigning.grantMessage(
            granteePID: grantee, tIDs: [t.tID], purpose: Self.purpose, expiresAt: Self.consentExpiry, nonce: nonce)
        let patient = cast.patients[t.patient]
        let request = GrantAccessRequest(
            granteePID: grantee, tIDs: [t.tID], purpose: Self.purpose, expiresAt: Self.consentExpiry,
            patientCert: patient.certificatePEM, patientSignature: try ConsentSigning.sign(message, key: patient.key),
            nonce: nonce)
        var intent = try SimIntent.medrecords(.grant, "grantAccess", request)
        intent.patient = t.patient
        return intent
    }

    /// Hospital `h`'s node, as the proxy that re-encrypted for the grantee, records the use.
    private func usage(of consent: Int, hospital h: Int) throws -> SimIntent {
        let c = consents[consent]
        let request = RecordUsageRequest(
            tID: c.tID, thirdPartyPID: c.granteePID, proxyNode: SimCast.hospitals[h], purpose: c.purpose,
            consentID: c.consentID)
        var intent = try SimIntent.medrecords(.usage, "recordUsage", request)
        intent.consent = consent
        return intent
    }

    /// The patient withdraws a consent (signed; a management node carries it).
    private mutating func withdrawal(of consent: Int) throws -> SimIntent {
        consents[consent].withdrawalAsked = true
        let c = consents[consent]
        let patient = cast.patients[c.patient]
        let request = RevokeAccessRequest(
            consentID: c.consentID, patientCert: patient.certificatePEM,
            patientSignature: try ConsentSigning.sign(
                ConsentSigning.revokeMessage(consentID: c.consentID), key: patient.key))
        var intent = try SimIntent.medrecords(.withdraw, "revokeAccess", request)
        intent.consent = consent
        return intent
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
    private func treatment(hospital h: Int, random: inout SimRandom) throws -> SimIntent? {
        let ownDoctors = (0..<doctors).filter { $0 % hospitals == h }
        guard !ownDoctors.isEmpty else { return nil }
        let patient = random.int(0..<cast.patients.count)
        let doctor = ownDoctors[random.int(0..<ownDoctors.count)]
        let request = CreateTreatmentRequest(patientPID: cast.patientPIDs[patient], doctorPID: cast.clientPIDs[doctor])
        var intent = try SimIntent.medrecords(.treatment, "createTreatment", request)
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
        var intent = SimIntent.medrecords(.record, "putIndexRecord", try request.proposalInputs())
        intent.treatment = which
        return intent
    }
}
