import Crypto
import Foundation
import LedgerAudit
import LedgerChannel
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerPeer
import LedgerProtos
import LedgerRecords
import MedRecords
import SwiftASN1
import X509

/// The seed corpus (`Tests/Fuzz/<target>/`): small valid inputs made by the production code paths
/// (endorser, transaction builder, CA factory, CRL encoder, Umbral, sealing, audit log) against the
/// fixture. `MedLedgerFuzz make-seeds Tests/Fuzz` rewrites it.
public enum Seeds {
    static var fx: Fixture { Fixture.shared }

    /// The proposal whose responses the proposal-response harness assembles: `kv put fz 1` by the patient.
    static let responseProposal: TransactionBuilder.Proposal = try! proposal(
        "a-patient", "kv", "put", ["fz", "1"], nonce: "response-proposal")

    static func proposal(
        _ who: String, _ chaincode: String, _ function: String, _ args: [String], nonce: String
    ) throws -> TransactionBuilder.Proposal {
        try TransactionBuilder.proposal(
            channel: Fixture.channel, chaincode: chaincode, function: function, args: args.map { Array($0.utf8) },
            signer: Fixture.shared.member(who).identity, at: Fixture.callTime, nonce: Fixture.nonce(nonce))
    }

    static func json(_ object: [String: Any]) -> String {
        String(
            decoding: try! JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    /// A proposal endorsed by the fixture's peer, assembled and signed by its creator.
    static func endorsedEnvelope(
        _ p: TransactionBuilder.Proposal, _ who: String
    ) throws -> (response: Medledger_ProposalResponse, envelope: Medledger_Envelope) {
        let ledger = fx.ledger
        let response = try fx.endorser.process(
            try ParsedProposal(p.signed), context: fx.context, state: ledger.state, now: Fixture.callTime
        ) {
            try ledger.transaction(id: $0) != nil
        }
        guard response.response.status == 200 else {
            throw FixtureError(
                "seed \(p.payload.input.function): [\(response.response.status)] \(response.response.message)")
        }
        return (response, try TransactionBuilder.envelope(p, responses: [response], signer: fx.member(who).identity))
    }

    /// DER signatures by a fixture member, and ones over r, s at the edges (short, top bit set).
    static func ecdsaSignatures() throws -> [String: [UInt8]] {
        var out = [String: [UInt8]]()
        let signer = fx.member("a-patient").identity
        for i in 0..<4 { out["signature-\(i).der"] = try signer.sign(Array("seed \(i)".utf8)) }
        let short = [UInt8](repeating: 0, count: 31) + [1]
        let high = [UInt8](repeating: 0xFF, count: 32)
        for (name, raw) in [("short-r", short + high), ("short-s", high + short)] {
            out["\(name).der"] = ECDSADER.encode(try P256.Signing.ECDSASignature(rawRepresentation: raw))
        }
        return out
    }

    /// r‖s then the message, signed by the fixture patient (the key `p256-verify` checks against).
    static func signedMessages() throws -> [String: [UInt8]] {
        var out = [String: [UInt8]]()
        let key = fx.member("a-patient").key
        for i in 0..<4 {
            let message = Array("seed message \(i)".utf8) + [UInt8](repeating: UInt8(i), count: i * 40)
            let raw = Array(try key.signature(for: message).rawRepresentation)
            out["signed-\(i).bin"] = raw + message
            // And what must fail: the message altered, r zero.
            if i == 0 {
                out["altered-message.bin"] = raw + message.dropLast() + [message.last! ^ 1]
                out["zero-r.bin"] = [UInt8](repeating: 0, count: 32) + raw[32..<64] + message
            }
        }
        return out
    }

    /// Every target's seeds: file name → bytes.
    public static func all() throws -> [String: [String: [UInt8]]] {
        var out = [String: [String: [UInt8]]]()
        let ids = fx.ids
        let tID = ids["t_id"]!
        let recordID = ids["record_id"]!
        let consentID = ids["consent_id"]!
        let patient = fx.member("a-patient")
        let doctor = fx.member("a-doctor")
        let research = fx.member("b-research")

        // medrecords calls: (seed name, function, caller, argument).
        let calls: [(String, String, String, String)] = [
            (
                "create-treatment", "createTreatment", "a-peer",
                json(["patient_pid": patient.pid, "doctor_pid": fx.member("a-doctor").pid])
            ),
            ("get-treatment", "getTreatment", "a-patient", json(["t_id": tID])),
            ("list-treatments", "listTreatments", "a-doctor", json(["doctor_pid": doctor.pid, "page_size": 10])),
            ("put-index-record", "putIndexRecord", "a-doctor", try putIndexRecordArgument(tID: tID)),
            ("get-index-record", "getIndexRecord", "b-research", json(["record_id": recordID])),
            (
                "list-index-records", "listIndexRecords", "a-patient",
                json(["patient_pid": patient.pid, "bookmark": ""])
            ),
            (
                "grant-access", "grantAccess", "a-patient",
                json([
                    "grantee_pid": research.pid, "t_ids": [tID], "purpose": "insurance",
                    "expires_at": "2030-05-01T12:00:00.5+02:00",
                ])
            ),
            ("revoke-access", "revokeAccess", "a-patient", json(["consent_id": consentID])),
            ("get-consent", "getConsent", "b-research", json(["consent_id": consentID])),
            ("list-consents", "listConsents", "b-research", json(["grantee_pid": research.pid, "page_size": 1])),
            (
                "record-usage", "recordUsage", "b-research",
                json(["t_id": tID, "third_party_pid": research.pid, "proxy_node": "b-peer", "purpose": "research"])
            ),
            ("list-usage", "listUsage", "a-patient", json(["t_id": tID])),
            (
                "publish-keys", "publishKeys", "a-doctor",
                json([
                    "encryption_key": Hex.encode(FixtureKeys.umbral("a-doctor/encryption").publicKey.compressedBytes),
                    "verifying_key": Hex.encode(FixtureKeys.umbral("a-doctor/signing").publicKey.compressedBytes),
                ])
            ),
            ("get-keys", "getKeys", "a-patient", json(["pid": research.pid])),
        ]
        out["medrecords"] = Dictionary(
            uniqueKeysWithValues: calls.map { name, function, caller, argument in
                (
                    "\(name).txt",
                    MedRecordsInput.join(function: function, caller: caller, argument: Array(argument.utf8))
                )
            })
        // As clients send a P_DE: the certificates in the transient map.
        let pde = try putIndexRecordRequest(tID: tID).proposalInputs()
        out["medrecords"]!["put-index-record-transient.txt"] = MedRecordsInput.join(
            function: "putIndexRecord", caller: "a-patient", argument: pde.args[0], transient: pde.transient)

        // Proposals (the endorser signs nothing it is not asked to; the harness signs as the creator).
        var proposals = [String: TransactionBuilder.Proposal]()
        proposals["kv-put"] = try proposal("a-admin", "kv", "put", ["key-1", "value"], nonce: "seed-kv-put")
        proposals["kv-get"] = try proposal("b-peer", "kv", "get", ["k1"], nonce: "seed-kv-get")
        proposals["kv-range"] = try proposal("a-doctor", "kv", "range", ["k", "l", "10"], nonce: "seed-kv-range")
        proposals["kv-history"] = try proposal("a-doctor", "kv", "history", ["k2"], nonce: "seed-kv-history")
        for (name, function, caller, argument) in calls
        where ["create-treatment", "get-treatment", "grant-access", "record-usage", "put-index-record"].contains(name) {
            proposals["medrecords-" + name] = try proposal(
                caller, "medrecords", function, [argument], nonce: "seed-\(name)")
        }
        out["proposal"] = Dictionary(
            uniqueKeysWithValues: proposals.map { ("\($0.key).pb", [UInt8]($0.value.signed.proposalBytes)) })
        // Stream messages: one creator's proposals, and two creators' (the harness signs as the first).
        func batch(_ names: [String]) throws -> [UInt8] {
            var b = Medledger_SignedProposalBatch()
            b.proposals = names.map { name in
                var p = proposals[name]!.signed
                p.signature = Data()
                return p
            }
            b.batchSignature = Data(repeating: 0, count: 1)  // replaced by the harness
            return try b.serializedBytes()
        }
        out["proposal-batch"] = [
            "one-creator.pb": try batch(["kv-range", "kv-history"]),
            "two-creators.pb": try batch(["kv-put", "kv-get"]),
        ]

        // Envelopes and payloads from endorsed transactions.
        var envelopes = [String: [UInt8]]()
        for (name, p) in proposals
        where ["kv-put", "medrecords-create-treatment", "medrecords-grant-access", "medrecords-record-usage"].contains(
            name)
        {
            let creator = fx.member(serialized: p.proposal.signatureHeader.creator)!.label
            envelopes[name] = try endorsedEnvelope(p, creator).envelope.serializedBytes()
        }
        let update = try configUpdate()
        envelopes["config-update"] = try update.serializedBytes()
        out["envelope"] = Dictionary(uniqueKeysWithValues: envelopes.map { ("\($0.key).pb", $0.value) })
        out["payload"] = try Dictionary(
            uniqueKeysWithValues: envelopes.map {
                ("\($0.key).pb", [UInt8](try Medledger_Envelope(serializedBytes: $0.value).payload))
            })

        // Proposal responses to `responseProposal`: endorsed, and refused.
        let endorsed = try endorsedEnvelope(responseProposal, "a-patient").response
        var refused = Medledger_ProposalResponse()
        refused.response.status = 404
        refused.response.message = "no key"
        out["proposal-response"] = [
            "kv-put-endorsed.pb": try endorsed.serializedBytes(), "refused.pb": try refused.serializedBytes(),
        ]

        // Blocks: block 1 as the orderer cuts it, a configuration block, and the genesis block.
        let info = (height: UInt64(1), tip: fx.genesis.header.headerHash)
        func ordered(_ envs: [[UInt8]]) throws -> [UInt8] {
            var b = Medledger_Block.make(number: info.height, previousHash: info.tip, envelopes: envs)
            b.metadata.orderingSignature(
                signer: fx.member("sa-orderer").identity, headerHash: b.header.headerHash, at: Fixture.now)
            return try b.serializedBytes()
        }
        out["block"] = [
            "block-1.pb": try ordered([envelopes["kv-put"]!, envelopes["medrecords-create-treatment"]!]),
            "config-block.pb": try ordered([envelopes["config-update"]!]),
            "genesis.pb": try fx.genesis.serializedBytes(),
        ]
        out["config-update"] = [
            "batch-and-policy.pb": try update.serializedBytes(),
            "add-org.pb": try configUpdate(addOrg: true).serializedBytes(),
        ]

        // Identity: CRLs, CSRs, certificates.
        let rootDER = fx.root.derBytes
        let emptyCRL = RevocationList(
            issuer: fx.root.subject, thisUpdate: Fixture.now, nextUpdate: nil, crlNumber: 7, authorityKeyID: nil,
            entries: [])
        var entries = [RevocationList.Entry]()
        for (i, reason) in [nil, 0, 3, 6].enumerated() {
            entries.append(
                .init(
                    serial: Certificate.SerialNumber(bytes: [0x40, UInt8(i + 1)] + Array(repeating: 0x11, count: 18)),
                    revocationDate: Fixture.now.addingTimeInterval(Double(-i * 60)), reason: reason))
        }
        let longCRL = RevocationList(
            issuer: fx.root.subject, thisUpdate: Fixture.now.addingTimeInterval(-60),
            nextUpdate: Date(timeIntervalSince1970: 2_600_000_000),
            crlNumber: 9, authorityKeyID: try fx.root.extensions.subjectKeyIdentifier?.keyIdentifier, entries: entries)
        out["crl"] = [
            "fixture.der": fx.crlDER,
            "fixture.pem": Array(RevocationList.pem(der: fx.crlDER).utf8),
            "empty.der": try emptyCRL.signedDER(key: fx.rootKey),
            "reasons-generalized-time.der": try longCRL.signedDER(key: fx.rootKey),
        ]
        let p384 = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("fuzz-384") },
            privateKey: Certificate.PrivateKey(FixtureKeys.p384("csr")),
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA384)
        let p256PEM = try CertificateFactory.makeCSR(key: FixtureKeys.p256("csr"), commonName: "fuzz-256")
        out["csr"] = [
            "p256.der": try PEMDocument(pemString: p256PEM).derBytes,
            "p256.pem": Array(p256PEM.utf8),
            "p384.der": try p384.serializeAsPEM().derBytes,
        ]
        out["certificate"] = [
            "doctor.der": try PEMDocument(pemString: doctor.certificatePEM).derBytes,
            "peer-tls.der": try PEMDocument(pemString: fx.tlsCertificatePEM).derBytes,
            "root.der": rootDER,
            "revoked.pem": Array(fx.member("a-revoked").certificatePEM.utf8),
        ]

        // Umbral.
        let (otherCapsule, _) = Umbral.encrypt(delegatingPK: fx.researchSK.publicKey, plaintext: [1, 2, 3])
        out["capsule"] = ["fixture.bin": fx.capsule.toBytes(), "other.bin": otherCapsule.toBytes()]
        out["kfrag"] = Dictionary(
            uniqueKeysWithValues: fx.kfrags.enumerated().map { ("kfrag-\($0.offset).bin", $0.element.toBytes()) })
        out["cfrag"] = Dictionary(
            uniqueKeysWithValues: fx.cfrags.enumerated().map { ("cfrag-\($0.offset).bin", $0.element.toBytes()) })

        // Sealed records to the patient: empty, several small chunks, one short chunk.
        var sealed = [String: [UInt8]]()
        for (name, size, chunk) in [("empty", 0, 16), ("three-chunks", 40, 16), ("one-chunk", 100, 4096)] {
            var input = Array((0..<size).map { UInt8(truncatingIfNeeded: $0) })[...]
            var output = [UInt8]()
            _ = try SealedRecord.seal(
                patientPK: fx.patientSK.publicKey, chunkSize: chunk,
                read: { n in
                    let part = Array(input.prefix(n))
                    input = input.dropFirst(part.count)
                    return part
                }, write: { output += $0 })
            sealed["\(name).sealed"] = output
        }
        out["sealed-record"] = sealed

        // Configuration files.
        out["channel-yaml"] = [
            "channel.yaml": Array(
                """
                # The records channel (network-config/channel.yaml), with files beside this one.
                channel: records
                organizations:
                  - { id: sa, ca_root: ca-cert.pem }
                  - { id: hospital-a, ca_root: ca-cert.pem, crl: crl.pem, peers: ["127.0.0.1:7051"] }
                  - { id: hospital-b, ca_root: ca-cert.pem, peers: ["127.0.0.1:8051"] }
                orderer: { org: sa, endpoints: ["127.0.0.1:7050"] }
                batch:
                  max_message_count: 500
                  absolute_max_bytes: 10485760
                  preferred_max_bytes: 2097152
                  batch_timeout_ms: 0
                chaincodes:
                  - { name: medrecords, endorsement_policy: "OR('hospital-a.node', 'hospital-b.node')" }
                  - { name: kv, endorsement_policy: "OutOf(1, AND('hospital-a.node', 'hospital-b.member'), MAJORITY)" }

                """.utf8),
            "minimal.yaml": Array(
                """
                channel: c1
                organizations: [{ id: sa, ca_root: ca-cert.pem }]
                orderer: { org: sa, endpoints: [localhost:7050] }
                chaincodes: [{ name: kv, endorsement_policy: ANY }]

                """.utf8),
        ]
        out["node-yaml"] = [
            "peer.yaml": Array(
                """
                # medledgerd configuration of peer0 of hospital-a (as `medledger org admit` writes it).
                node: { name: peer0, org: hospital-a }
                data_dir: data
                listen: 127.0.0.1:7051
                tls: { cert: tls-cert.pem, key: tls-key.pem }
                trusted_roots: [ca-cert.pem]
                crl_files: [crl.pem]
                crl_poll_seconds: 2
                audit_log: audit.log
                object_store: { data_dir: objects, max_bytes: 67108864, public_address: "peer0.a:7051" }
                appointments:
                  doctors: [\(doctor.pid)]

                """.utf8),
            "sa-node.yaml": Array(
                """
                node: { name: sa-node, org: sa }
                data_dir: node-data
                listen: 127.0.0.1:7050
                tls: { cert: wallets/sa-node/tls-cert.pem, key: wallets/sa-node/tls-key.pem }
                signing: { cert: /abs/signing-cert.pem, key: signing-key.pem }
                trusted_roots: [ca-cert.pem]
                audit_log: audit.log
                peer: false
                orderer: { data_dir: orderer-data }
                ca:
                  data_dir: ca
                  master_key_file: master.key
                  enroll_listen: 127.0.0.1:7054

                """.utf8),
        ]

        // Audit logs written by AuditLog itself.
        out["audit-log"] = try auditLogs()
        out["ecdsa-der"] = try ecdsaSignatures()
        out["p256-verify"] = try signedMessages()
        return out
    }

    static func putIndexRecordArgument(tID: String) throws -> String {
        let r = try putIndexRecordRequest(tID: tID)
        return json([
            "t_id": r.tID, "url": r.url, "digest": r.digest, "patient_signature": r.patientSignature,
            "doctor_signature": r.doctorSignature, "patient_cert": r.patientCert, "doctor_cert": r.doctorCert,
            "capsule": r.capsule ?? "",
        ])
    }

    static func putIndexRecordRequest(tID: String) throws -> PutIndexRecordRequest {
        let patient = fx.member("a-patient")
        let doctor = fx.member("a-doctor")
        let url = "medledger://127.0.0.1:7051/objects/" + String(repeating: "cd", count: 48)
        let digest = String(repeating: "cd", count: 48)
        return PutIndexRecordRequest(
            tID: tID, url: url, digest: digest,
            patientSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: patient.key),
            doctorSignature: try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: doctor.key),
            patientCert: patient.certificatePEM, doctorCert: doctor.certificatePEM,
            capsule: Hex.encode(fx.capsule.toBytes()))
    }

    /// Sequence 1: a new batch size and kv policy (or a fourth organisation), signed by the
    /// administrators of sa and hospital-a (2 of 3), submitted by hospital-a's.
    static func configUpdate(addOrg: Bool = false) throws -> Medledger_Envelope {
        var config = fx.context.config
        config.sequence = 1
        config.batch.maxMessageCount = 100
        if let i = config.chaincodes.firstIndex(where: { $0.name == "kv" }) {
            config.chaincodes[i].endorsementPolicy = "AND('hospital-a.member', 'hospital-b.node')"
        }
        if addOrg {
            var o = Medledger_OrganizationConfig()
            o.id = "research-1"
            o.rootCertificates = [Data(fx.root.pem.utf8)]
            config.organizations.append(o)
        }
        return try ConfigTransaction.envelope(
            config: config, admins: [fx.member("sa-admin").identity, fx.member("a-admin").identity],
            submitter: fx.member("a-admin").identity, at: Fixture.callTime)
    }

    static func auditLogs() throws -> [String: [UInt8]] {
        let dir = NSTemporaryDirectory() + "/medledger-fuzz-seeds-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var out = [String: [UInt8]]()
        for (name, count) in [("one-line.log", 1), ("three-lines.log", 3)] {
            let path = dir + "/" + name
            let log = try AuditLog(path: path)
            for i in 0..<count {
                try log.record(
                    AuditEvent(
                        actor: AuditActor(pid: fx.member("a-admin").pid, org: "hospital-a", role: "admin"),
                        action: "ca.register",
                        target: "dr.\(i)", outcome: i == 1 ? .denied : .success, detail: "role \"doctor\"\t\u{1}"),
                    at: Fixture.now.addingTimeInterval(Double(i)))
            }
            try log.close()
            out[name] = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        return out
    }

    /// Writes the corpus under `directory/<target>/`. Files already there that are not seeds (inputs
    /// kept from fuzzing runs, regression inputs) stay.
    public static func write(to directory: String) throws {
        let fm = FileManager.default
        for (target, files) in try all() {
            guard FuzzTargets.named(target) != nil else { throw FixtureError("seeds for unknown target \(target)") }
            let dir = directory + "/" + target
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        }
        for t in FuzzTargets.all where !fm.fileExists(atPath: directory + "/" + t.name) {
            throw FixtureError("no seeds for target \(t.name)")
        }
    }
}
