import Foundation
import LedgerClient
import LedgerTransport
import Testing

/// The hospital node's object store over real processes and mutual TLS: who may store and fetch a
/// ciphertext follows the chain (treatment parties; a grantee only while the consent is live),
/// downloads resume and are checked, and a corrupted object is refused (its stream voided).
@Suite(.serialized) struct ObjectStoreNetworkTests {
    static func firstJSON(_ output: String) throws -> [String: Any] {
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") })
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func accessFollowsTheChainAndBytesAreChecked() async throws {
        let scratch = ScratchDir("objects")
        let root = scratch.path
        let net = try MultiHospitalNetworkTests.startNetwork(root)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let ca = "127.0.0.1:\(net.ordererPort)"
        let enroll = "127.0.0.1:\(net.enrollPort)"
        let caCert = root + "/sa/ca-cert.pem"
        func user(_ id: String, _ role: String, _ org: String) throws -> (dir: String, pid: String) {
            let dir = root + "/w/\(id)"
            let w = try IdentityNetworkTests.enroll(
                id, role: role, rid: "test \(id)", admin: net.admin(org), ca: ca, enroll: enroll, caCert: caCert,
                into: dir)
            return (dir, w.info.pid)
        }
        let doctor = try user("doctor", "doctor", "hospital-a")
        let patient = try user("patient", "patient", "hospital-a")
        let otherPatient = try user("patient2", "patient", "hospital-a")
        let grantee = try user("doctor-b", "doctor", "hospital-b")
        let nodeA = net.node("hospital-a")
        func invoke(_ wallet: String, _ fn: String, _ arg: String) throws -> String {
            try MedLedgerBinary.ok([
                "chaincode", "invoke", "--node", nodeA, "--wallet", wallet, "--channel", "records", "--chaincode",
                "medrecords", "--fn", fn, "--arg", arg,
            ])
        }
        let tID = try #require(
            try Self.firstJSON(
                try invoke(
                    net.admin("hospital-a"), "createTreatment",
                    #"{"patient_pid":"\#(patient.pid)","doctor_pid":"\#(doctor.pid)"}"#))["t_id"] as? String)

        // 3 MiB and a bit: several chunks each way.
        let original = root + "/ciphertext.bin"
        let bytes = (0..<(3 << 20) + 12_345).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: original))
        let put = ["object", "put", "--node", nodeA, "--channel", "records", "--t-id", tID, "--file", original]

        let stranger = try MedLedgerBinary.run(put + ["--wallet", otherPatient.dir])
        #expect(
            stranger.status != 0 && stranger.stderr.contains("[404]"),
            "another patient cannot even see the treatment: \(stranger.stderr)")
        let stored = try MedLedgerBinary.ok(put + ["--wallet", patient.dir])
        let url = try #require(
            stored.split(separator: "\n").first { $0.hasPrefix("url: ") }.map { String($0.dropFirst(5)) })
        #expect(url.hasPrefix("medledger://127.0.0.1:\(net.ports["hospital-a"]!)/objects/"))
        let (digest, _) = try ObjectClient.digest(ofFile: original)
        #expect(url.hasSuffix(digest))
        #expect(try MedLedgerBinary.ok(put + ["--wallet", doctor.dir]).contains("already stored"))

        func get(_ wallet: String, _ out: String) throws -> MedLedgerBinary.Result {
            try MedLedgerBinary.run(["object", "get", "--url", url, "--wallet", wallet, "--out", out])
        }
        let byDoctor = root + "/by-doctor.bin"
        #expect(try get(doctor.dir, byDoctor).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: byDoctor)) == Data(bytes))

        // An app keeps one connection for several transfers (NodeConnectionPool); a digest it says it
        // knows is checked by the node against the bytes.
        let doctorWallet = try Wallet.open(doctor.dir)
        let pool = NodeConnectionPool(trustedRootsPEM: doctorWallet.caCertPEM, identity: doctorWallet.tlsIdentity)
        defer { pool.close() }
        let pooled = ObjectClient(wallet: doctorWallet, pool: pool)
        let node = try #require(NodeAddress(nodeA))
        for i in 0..<2 {
            let out = root + "/pooled-\(i).bin"
            _ = try await pooled.download(url: url, to: out, node: node)
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(bytes))
        }
        let second = root + "/second.bin"
        try Data((0..<70_000).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: second))
        let (secondDigest, secondSize) = try ObjectClient.digest(ofFile: second)
        await #expect(throws: CallFailure.self) {
            try await pooled.upload(file: second, node: node, channel: "records", tID: tID, known: (digest, secondSize))
        }
        let up = try await pooled.upload(
            file: second, node: node, channel: "records", tID: tID, known: (secondDigest, secondSize))
        #expect(up.digest == secondDigest && !up.alreadyStored)

        // Not a party, no consent: 404; hospital staff: 403.
        #expect(try get(otherPatient.dir, root + "/x.bin").stderr.contains("[404]"))
        #expect(try get(grantee.dir, root + "/x.bin").stderr.contains("[404]"))
        #expect(try get(net.admin("hospital-a"), root + "/x.bin").stderr.contains("[403]"))
        #expect(!FileManager.default.fileExists(atPath: root + "/x.bin"))

        // A live consent lets the grantee fetch it; revoking it stops them from the next block on.
        let expires = ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))
        let consent = try Self.firstJSON(
            try invoke(
                patient.dir, "grantAccess",
                #"{"grantee_pid":"\#(grantee.pid)","t_ids":["\#(tID)"],"purpose":"research","expires_at":"\#(expires)"}"#
            ))
        let consentID = try #require(consent["consent_id"] as? String)
        // A partial earlier download resumes where it stopped.
        let byGrantee = root + "/by-grantee.bin"
        try Data(bytes.prefix(1_000_000)).write(to: URL(fileURLWithPath: byGrantee + ".part"))
        let resumed = try get(grantee.dir, byGrantee)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resumed at byte 1000000"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: byGrantee)) == Data(bytes))
        _ = try invoke(patient.dir, "revokeAccess", #"{"consent_id":"\#(consentID)"}"#)
        #expect(try get(grantee.dir, root + "/y.bin").stderr.contains("[403]"))

        // A corrupt partial download is discarded as tampering, not kept.
        try Data(bytes.prefix(500).map { $0 ^ 0xFF }).write(to: URL(fileURLWithPath: root + "/z.bin.part"))
        let tampered = try get(doctor.dir, root + "/z.bin")
        #expect(tampered.status != 0 && tampered.stderr.contains("tampering"))
        #expect(
            !FileManager.default.fileExists(atPath: root + "/z.bin")
                && !FileManager.default.fileExists(atPath: root + "/z.bin.part"))

        // The stored bytes rot on disk: the node voids the stream (DATA_LOSS) and the client keeps nothing.
        let onDisk = root + "/hospital-a/nodes/peer0/data/objects/\(digest.prefix(2))/\(digest).obj"
        // Flip the byte's bits: writing a fixed value left the object intact whenever the random
        // byte there already had it (one run in 256).
        let h = try #require(FileHandle(forUpdatingAtPath: onDisk))
        try h.seek(toOffset: 4096)
        let old = try #require(try h.read(upToCount: 1)?.first)
        try h.seek(toOffset: 4096)
        try h.write(contentsOf: Data([old ^ 0xFF]))
        try h.close()
        let rotten = try get(doctor.dir, root + "/r.bin")
        #expect(rotten.status != 0 && rotten.stderr.contains("corrupt"), "\(rotten.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: root + "/r.bin")
                && !FileManager.default.fileExists(atPath: root + "/r.bin.part"),
            "what a corrupt object's stream delivered is discarded, not kept for a resume")
        // The node set the rotten copy aside: asking again says so, and an upload of the same bytes
        // (from the patient's copy) restores the object instead of being taken as already stored.
        let again = try get(doctor.dir, root + "/r.bin")
        #expect(again.status != 0 && again.stderr.contains("set aside"), "\(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: onDisk + ".corrupt"))
        let repaired = try MedLedgerBinary.ok(put + ["--wallet", patient.dir])
        #expect(!repaired.contains("already stored"), "\(repaired)")
        #expect(try get(doctor.dir, root + "/r.bin").status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/r.bin")) == Data(bytes))
    }
}
