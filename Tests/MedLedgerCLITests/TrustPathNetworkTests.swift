import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerChannel
import LedgerClient
import LedgerIdentity
import LedgerProtos
import LedgerRPC
import LedgerTransport
import MedRecords
import Synchronization
import Testing

/// The trust issues of the transaction path, each shown over real processes (the SA node with CA and
/// solo orderer, two hospital nodes), through the README's commands and an independent client made
/// from the generated protos: revocation that reaches the ledger, read rules on every API, an orderer
/// that acknowledges only what it keeps, recoverable joins, and 503 (not 401) for a node that is down.
/// A value shared by concurrent test tasks.
final class Shared<T>: @unchecked Sendable {  // every access holds `lock`
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func with<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

@Suite(.serialized) struct TrustPathNetworkTests {
    typealias Net = MultiHospitalNetworkTests.Network

    struct Users {
        let patient, doctor, patientB: Wallet
    }

    /// Starts the SA node and both hospitals' nodes in a scratch directory, runs `body`, stops them.
    static func withNetwork(_ label: String, _ body: (Net) async throws -> Void) async throws {
        let scratch = ScratchDir(label)
        let net = try MultiHospitalNetworkTests.startNetwork(scratch.path)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        try await body(net)
    }

    static func users(_ net: Net) throws -> Users {
        let ca = "127.0.0.1:\(net.ordererPort)"
        let enroll = "127.0.0.1:\(net.enrollPort)"
        let caCert = net.root + "/sa/ca-cert.pem"
        func wallet(_ id: String, _ role: String, _ org: String) throws -> Wallet {
            try IdentityNetworkTests.enroll(
                id, role: role, rid: "test \(id)", admin: net.admin(org), ca: ca, enroll: enroll, caCert: caCert,
                into: net.root + "/w/\(id)")
        }
        return Users(
            patient: try wallet("patient", "patient", "hospital-a"),
            doctor: try wallet("doctor", "doctor", "hospital-a"),
            patientB: try wallet("patient-b", "patient", "hospital-b"))
    }

    static func signer(_ w: Wallet) throws -> SigningIdentity {
        try SigningIdentity.load(certificatePath: w.signingCertPath, keyPath: w.signingKeyPath)
    }

    static func address(_ s: String) throws -> NodeAddress { try #require(NodeAddress(s)) }

    /// ProcessProposal on `node` over `caller`'s TLS connection (the proposal may be someone else's).
    static func endorse(
        _ p: TransactionBuilder.Proposal, at node: String, over caller: Wallet
    ) async throws -> Medledger_ProposalResponse {
        let signed = p.signed
        return try await NodeConnection.with(
            try address(node), trustedRootsPEM: caller.caCertPEM, identity: caller.tlsIdentity
        ) { c in
            try await Medledger_Peer.Client(wrapping: c).processProposal(signed)
        }
    }

    static func broadcast(
        _ e: Medledger_Envelope, to orderer: String, over caller: Wallet
    ) async throws -> Medledger_BroadcastResponse {
        try await NodeConnection.with(
            try address(orderer), trustedRootsPEM: caller.caCertPEM, identity: caller.tlsIdentity
        ) { c in
            try await Medledger_Orderer.Client(wrapping: c).broadcast(e)
        }
    }

    static func commitCode(
        _ txID: String, at node: String, over caller: Wallet
    ) async throws -> Medledger_TxValidationCode? {
        try await NodeConnection.with(
            try address(node), trustedRootsPEM: caller.caCertPEM, identity: caller.tlsIdentity
        ) { c in
            var r = Medledger_CommitStatusRequest()
            r.channel = "records"
            r.txID = txID
            r.waitMs = 10_000
            let s = try await Medledger_Peer.Client(wrapping: c).commitStatus(r)
            return s.committed ? s.code : nil
        }
    }

    static func height(_ net: Net, _ org: String) throws -> Int {
        try MultiHospitalNetworkTests.chainInfo(net, org).height
    }

    /// Waits until both hospitals' peers reach `height`.
    static func waitForPeers(_ net: Net, height: Int) async throws {
        for _ in 0..<200 {
            if try Self.height(net, "hospital-a") >= height, try Self.height(net, "hospital-b") >= height { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("peers did not reach height \(height)")
    }

    /// A P_DE request for `tID`, signed by `patient` and `doctor` (over a made-up ciphertext digest).
    static func pde(_ tID: String, _ n: Int, patient: Wallet, doctor: Wallet) throws -> PutIndexRecordRequest {
        let digest = String(repeating: String(format: "%02x", n), count: 48)
        let url = "medledger://127.0.0.1:7051/objects/\(digest)"
        let ps = try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: try patient.signingKey())
        let ds = try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest, key: try doctor.signingKey())
        return PutIndexRecordRequest(
            tID: tID, url: url, digest: digest, patientSignature: ps, doctorSignature: ds,
            patientCert: try String(contentsOfFile: patient.signingCertPath, encoding: .utf8),
            doctorCert: try String(contentsOfFile: doctor.signingCertPath, encoding: .utf8))
    }

    static func proposal(_ fn: String, _ arg: some Encodable, by w: Wallet) throws -> TransactionBuilder.Proposal {
        try TransactionBuilder.proposal(
            channel: "records", chaincode: "medrecords", function: fn, args: [Array(try JSONEncoder().encode(arg))],
            signer: try signer(w), at: Date())
    }

    // MARK: 1. Revocation

    @Test func aRevocationReachesTheLedgerWithinOneBlock() async throws {
        try await Self.withNetwork("trust-revoke") { net in
            let u = try Self.users(net)
            let a = net.node("hospital-a")
            let b = net.node("hospital-b")
            let orderer = "127.0.0.1:\(net.ordererPort)"
            let admin = try Wallet.open(net.admin("hospital-a"))
            let gateway = try await Gateway.connect(wallet: admin, peer: try Self.address(a), channel: "records")
            defer { gateway.close() }
            let t = try await gateway.submit(
                chaincode: "medrecords", function: "createTreatment",
                args: [#"{"patient_pid":"\#(u.patient.info.pid)","doctor_pid":"\#(u.doctor.info.pid)"}"#])
            let treatment = try JSONDecoder().decode(Treatment.self, from: Data(t.result.payload))
            let patientGateway = try await Gateway.connect(
                wallet: u.patient, peer: try Self.address(a), channel: "records")
            defer { patientGateway.close() }

            // Before: a P_DE the doctor signed commits VALID.
            let earlier = try await patientGateway.submit(
                chaincode: "medrecords", function: "putIndexRecord",
                byteArgs: [
                    Array(
                        try JSONEncoder().encode(try Self.pde(treatment.tID, 1, patient: u.patient, doctor: u.doctor)))
                ])
            #expect(earlier.code == .valid)
            // Endorsed now, broadcast after the revocation (the "other path" into a block).
            let pending = try Self.proposal(
                "putIndexRecord", try Self.pde(treatment.tID, 2, patient: u.patient, doctor: u.doctor), by: u.patient)
            let pendingResponse = try await Self.endorse(pending, at: a, over: u.patient)
            #expect(pendingResponse.response.status == 200)
            // A proposal created by the doctor, to be relayed later over the patient's connection.
            let relayed = try Self.proposal(
                "createTreatment", ["patient_pid": u.patient.info.pid, "doctor_pid": u.doctor.info.pid], by: u.doctor)

            // The README's revocation: `ca revoke`. It also puts the CA's new CRL into the channel.
            let before = try Self.height(net, "hospital-a")
            let out = try MedLedgerBinary.ok([
                "ca", "revoke", "--ca", orderer, "--wallet", net.admin("hospital-a"), "--pid", u.doctor.info.pid,
                "--reason", "key-compromise",
            ])
            #expect(out.contains("is in the configuration of channel records"), "\(out)")
            try await Self.waitForPeers(net, height: before + 1)

            // A P_DE the revoked doctor signs (offline, `record sign` still works) is refused at endorsement.
            let late = try Self.pde(treatment.tID, 3, patient: u.patient, doctor: u.doctor)
            do {
                _ = try await patientGateway.submit(
                    chaincode: "medrecords", function: "putIndexRecord",
                    byteArgs: [Array(try JSONEncoder().encode(late))])
                Issue.record("a P_DE signed by a revoked doctor was endorsed")
            } catch {
                #expect("\(error)".contains("[403]"), "\(error)")
                #expect("\(error)".contains("revoked"), "\(error)")
            }
            // Forced into a block with the endorsement made before: the peers mark it SIGNER_NOT_MEMBER.
            let envelope = try TransactionBuilder.envelope(
                pending, responses: [pendingResponse], signer: try Self.signer(u.patient))
            #expect(try await Self.broadcast(envelope, to: orderer, over: u.patient).status == 200)
            #expect(try await Self.commitCode(pending.txID, at: a, over: u.patient) == .signerNotMember)
            #expect(try await Self.commitCode(pending.txID, at: b, over: u.patientB) == .signerNotMember)
            // The revoked doctor's proposal, relayed over the patient's connection, is refused on every node.
            for node in [a, b] {
                await #expect(throws: CallFailure.self, "endorsed on \(node)") {
                    _ = try await Self.endorse(relayed, at: node, over: node == a ? u.patient : u.patientB)
                }
            }
            // Its own connection is refused too (the node installed the channel's CRL).
            await #expect(throws: CallFailure.self) {
                _ = try await NodeClient(
                    endpoint: try Self.address(b), trustedRootsPEM: u.doctor.caCertPEM, identity: u.doctor.tlsIdentity
                ).whoAmI()
            }
            // The earlier P_DE is still there and still valid.
            let earlierID = try JSONDecoder().decode(IndexRecordReceipt.self, from: Data(earlier.result.payload))
                .recordID
            let record = try await patientGateway.evaluate(
                chaincode: "medrecords", function: "getIndexRecord", args: [#"{"record_id":"\#(earlierID)"}"#])
            #expect(record.status == 200, "\(record.message)")
            #expect(try await Self.commitCode(earlier.txID, at: b, over: u.patientB) == .valid)

            // `node status` shows the CRL the hospital node enforces, learnt from the channel.
            let status = try MedLedgerBinary.ok(["node", "status", "--node", b, "--wallet", net.admin("hospital-b")])
            #expect(status.contains("from channel records") || status.contains("CRL"), "\(status)")
        }
    }

    // MARK: 2. The orderer acknowledges only what it keeps

    @Test func theOrdererAcknowledgesOnlyWhatItKeeps() async throws {
        try await Self.withNetwork("trust-orderer") { net in
            let a = net.node("hospital-a")
            let admin = try Wallet.open(net.admin("hospital-a"))
            let g = try await Gateway.connect(wallet: admin, peer: try Self.address(a), channel: "records")
            defer { g.close() }
            // A 1.2 MB value: refused at submit with 413 (over the ledger's value limit), while small puts
            // around it all commit. A 1,000,000-byte value fits the value limit, but its envelope (argument
            // plus write set, about 2 MB) does not fit a block: the orderer refuses it at once, 413.
            let big = String(repeating: "x", count: 1_200_000)
            let almost = String(repeating: "y", count: 1_000_000)
            try big.write(toFile: net.root + "/big.txt", atomically: true, encoding: .utf8)
            try almost.write(toFile: net.root + "/almost.txt", atomically: true, encoding: .utf8)
            async let refused = MedLedgerBinary.run([
                "chaincode", "invoke", "--node", a, "--wallet", net.admin("hospital-a"), "--channel", "records",
                "--chaincode", "kv", "--fn", "put", "--arg", "big", "--arg-file", net.root + "/big.txt",
            ])
            async let refusedByOrderer = MedLedgerBinary.run([
                "chaincode", "invoke", "--node", a, "--wallet", net.admin("hospital-a"), "--channel", "records",
                "--chaincode", "kv", "--fn", "put", "--arg", "almost", "--arg-file", net.root + "/almost.txt",
            ])
            let small = try await withThrowingTaskGroup(of: Medledger_TxValidationCode.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        try await g.submit(chaincode: "kv", function: "put", args: ["small-\(i)", "v"]).code
                    }
                }
                return try await group.reduce(into: [Medledger_TxValidationCode]()) { $0.append($1) }
            }
            for r in [try await refused, try await refusedByOrderer] {
                #expect(r.status != 0)
                #expect((r.stdout + r.stderr).contains("[413]"), "\(r.stdout)\(r.stderr)")
            }
            #expect(small.count == 20 && small.allSatisfy { $0 == .valid })
            for i in 0..<20 {
                #expect(try await g.evaluate(chaincode: "kv", function: "get", args: ["small-\(i)"]).status == 200)
            }
            #expect(try await g.evaluate(chaincode: "kv", function: "get", args: ["big"]).status == 404)
            #expect(try await g.evaluate(chaincode: "kv", function: "get", args: ["almost"]).status == 404)
        }
    }

    @Test func sigtermUnderLoadLosesNoAcknowledgedEnvelope() async throws {
        let scratch = ScratchDir("trust-sigterm")
        var net = try MultiHospitalNetworkTests.startNetwork(scratch.path)
        defer {
            for p in net.peers.values { _ = p.stop() }
            _ = net.sa.stop()
        }
        let a = net.node("hospital-a")
        let orderer = "127.0.0.1:\(net.ordererPort)"
        let admin = try Wallet.open(net.admin("hospital-a"))
        let adminSigner = try Self.signer(admin)
        // Endorse 400 transactions first (both hospitals, as kv requires), then broadcast them all
        // while the orderer is stopped with SIGTERM part-way.
        let g = try await Gateway.connect(wallet: admin, peer: try Self.address(a), channel: "records")
        let adminB = try Wallet.open(net.admin("hospital-b"))
        let b = net.node("hospital-b")
        let envelopes = try await withThrowingTaskGroup(of: [(String, Medledger_Envelope)].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var out = [(String, Medledger_Envelope)]()
                    for i in stride(from: worker, to: 320, by: 8) {
                        let p = try TransactionBuilder.proposal(
                            channel: "records", chaincode: "kv", function: "put",
                            args: [Array("load-\(i)".utf8), Array("v".utf8)], signer: adminSigner, at: Date())
                        let ra = try await Self.endorse(p, at: a, over: admin)
                        let rb = try await Self.endorse(p, at: b, over: adminB)
                        out.append(
                            (p.txID, try TransactionBuilder.envelope(p, responses: [ra, rb], signer: adminSigner)))
                    }
                    return out
                }
            }
            return try await group.reduce(into: [(String, Medledger_Envelope)]()) { $0 += $1 }
        }
        g.close()
        let acknowledged = Shared<[String]>([])
        let saProcess = net.sa.process
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: envelopes.count, by: 40) {
                let part = Array(envelopes[chunk..<min(chunk + 40, envelopes.count)])
                group.addTask {
                    try? await NodeConnection.with(
                        try Self.address(orderer), trustedRootsPEM: admin.caCertPEM, identity: admin.tlsIdentity
                    ) { c in
                        let client = Medledger_Orderer.Client(wrapping: c)
                        for (id, e) in part where (try? await client.broadcast(e))?.status == 200 {
                            acknowledged.with { $0.append(id) }
                        }
                    }
                }
            }
            group.addTask {
                // SIGTERM once the orderer has acknowledged some, with more in flight.
                for _ in 0..<400 where acknowledged.with({ $0.count }) < 40 {
                    try await Task.sleep(for: .milliseconds(10))
                }
                saProcess.terminate()
            }
            try await group.waitForAll()
        }
        net.sa.process.waitForExit()
        #expect(net.sa.process.terminationStatus == 0, "\(net.sa.text)")
        let acked = acknowledged.with { $0 }
        #expect(!acked.isEmpty)
        // Restarted, the orderer has every acknowledged envelope, and keeps ordering.
        let saNode = try DaemonProcess(
            executable: MedLedgerBinary.url,
            arguments: ["ca", "serve", "--data", net.root + "/sa", "--listen", orderer])
        net = Net(
            root: net.root, sa: saNode, peers: net.peers, ports: net.ports, ordererPort: net.ordererPort,
            enrollPort: net.enrollPort)
        try saNode.waitFor("medledgerd: ready")
        for id in acked {
            #expect(try await Self.commitCode(id, at: a, over: admin) == .valid, "acknowledged \(id) was lost")
        }
        let after = try MedLedgerBinary.ok([
            "chaincode", "invoke", "--node", a, "--wallet", net.admin("hospital-a"), "--channel", "records",
            "--chaincode", "kv", "--fn", "put", "--arg", "after", "--arg", "1",
        ])
        #expect(after.lowercased().contains("valid"))
    }

    // MARK: 3. Read rules on every API

    @Test func readRulesHoldOnEveryAPI() async throws {
        try await Self.withNetwork("trust-read") { net in
            let ca = "127.0.0.1:\(net.ordererPort)"
            let enroll = "127.0.0.1:\(net.enrollPort)"
            let caCert = net.root + "/sa/ca-cert.pem"
            // A third-party organisation the CA admitted that is no member of the channel.
            try MedLedgerBinary.ok([
                "org", "admit", "--ca", ca, "--wallet", net.root + "/sa/wallets/admin", "--org", "research-9", "--type",
                "third-party", "--out", net.root + "/research-9",
            ])
            func wallet(_ id: String, _ role: String, _ org: String) throws -> Wallet {
                try IdentityNetworkTests.enroll(
                    id, role: role, rid: "test \(id)", admin: net.admin(org), ca: ca, enroll: enroll, caCert: caCert,
                    into: net.root + "/w/\(id)")
            }
            let patient = try wallet("m-patient", "patient", "hospital-a")
            let doctor = try wallet("m-doctor", "doctor", "hospital-a")
            let device = try wallet("m-device", "device", "hospital-a")
            let otherPatient = try wallet("m-patient-2", "patient", "hospital-a")
            let outsider = try wallet("m-researcher", "third-party", "research-9")
            let outsiderAdmin = try Wallet.open(net.root + "/research-9/admin")
            let hospitalAdmin = try Wallet.open(net.admin("hospital-a"))
            let saAdmin = try Wallet.open(net.admin("sa"))
            let a = net.node("hospital-a")
            let orderer = "127.0.0.1:\(net.ordererPort)"

            // The patient's own transaction, carrying a chaincode event (consent grant names the grantee).
            let pg = try await Gateway.connect(wallet: hospitalAdmin, peer: try Self.address(a), channel: "records")
            defer { pg.close() }
            let t = try await pg.submit(
                chaincode: "medrecords", function: "createTreatment",
                args: [#"{"patient_pid":"\#(patient.info.pid)","doctor_pid":"\#(doctor.info.pid)"}"#])
            let own = try await Gateway.connect(wallet: patient, peer: try Self.address(a), channel: "records")
            defer { own.close() }
            let tID = try JSONDecoder().decode(Treatment.self, from: Data(t.result.payload)).tID
            let grant = try await own.submit(
                chaincode: "medrecords", function: "grantAccess",
                args: [
                    #"{"grantee_pid":"\#(otherPatient.info.pid)","t_ids":["\#(tID)"],"purpose":"second opinion","expires_at":"2099-01-01T00:00:00Z"}"#
                ])
            #expect(grant.code == .valid, "\(grant.result.message)")

            enum Outcome: Equatable {
                case ok
                case denied(Int)
            }
            func outcome(_ body: @Sendable () async throws -> Void) async -> Outcome {
                do {
                    try await body()
                    return .ok
                } catch let e as CallFailure { return .denied(e.status) } catch { return .denied(-1) }
            }
            @Sendable func call<T: Sendable>(
                _ w: Wallet, _ node: String,
                _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
            ) async throws -> T {
                try await NodeConnection.with(
                    try Self.address(node), trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, body)
            }
            func getBlock(_ w: Wallet) async -> Outcome {
                await outcome {
                    _ = try await call(w, a) { c in
                        try await Medledger_Peer.Client(wrapping: c).getBlock(
                            .with {
                                $0.channel = "records"
                                $0.latest = true
                            })
                    }
                }
            }
            func getTx(_ w: Wallet, _ id: String) async -> Outcome {
                await outcome {
                    _ = try await call(w, a) { c in
                        try await Medledger_Peer.Client(wrapping: c).getTransaction(
                            .with {
                                $0.channel = "records"
                                $0.txID = id
                            })
                    }
                }
            }
            func deliver(_ w: Wallet, filtered: Bool) async -> (Outcome, [Medledger_FilteredTransaction]) {
                let seen = Shared<[Medledger_FilteredTransaction]>([])
                let o = await outcome {
                    try await call(w, a) { c in
                        try await Medledger_Peer.Client(wrapping: c).deliver(
                            .with {
                                $0.channel = "records"
                                $0.start = 0
                                $0.follow = false
                                $0.filtered = filtered
                            }
                        ) { r in
                            for try await m in r.messages {
                                if case .filteredBlock(let fb)? = m.type { seen.with { $0 += fb.transactions } }
                            }
                        }
                    }
                }
                return (o, seen.with { $0 })
            }
            func ordererDeliver(_ w: Wallet) async -> Outcome {
                await outcome {
                    try await call(w, orderer) { c in
                        try await Medledger_Orderer.Client(wrapping: c).deliver(
                            .with {
                                $0.channel = "records"
                                $0.start = 0
                                $0.follow = false
                            }
                        ) { r in for try await _ in r.messages {} }
                    }
                }
            }
            func events(_ w: Wallet) async -> Int {
                let n = Shared(0)
                _ = await outcome {
                    try await call(w, a) { c in
                        try await Medledger_Peer.Client(wrapping: c).chaincodeEvents(
                            .with {
                                $0.channel = "records"
                                $0.chaincode = "medrecords"
                                $0.start = 0
                            }
                        ) { r in
                            for try await m in r.messages {
                                n.with { $0 += m.events.count }
                                if m.blockNumber >= grant.blockNumber { return }
                            }
                        }
                    }
                }
                return n.with { $0 }
            }
            func info(_ w: Wallet) async -> Outcome {
                await outcome {
                    _ = try await NodeClient(
                        endpoint: try Self.address(a), trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity
                    ).channelInfo("records")
                }
            }
            func listed(_ w: Wallet, _ node: String, orderer: Bool) async throws -> [String] {
                try await call(w, node) { c in
                    orderer
                        ? try await Medledger_Orderer.Client(wrapping: c).listChannels(.init()).channels.map(\.channel)
                        : try await Medledger_Peer.Client(wrapping: c).listChannels(.init()).channels.map(\.channel)
                }
            }

            // Ledger holders: nodes' organisations' administrators (and nodes) read everything.
            for w in [hospitalAdmin, saAdmin] {
                #expect(await getBlock(w) == .ok)
                #expect(await getTx(w, grant.txID) == .ok)
                #expect(await deliver(w, filtered: false).0 == .ok)
                #expect(await ordererDeliver(w) == .ok)
            }
            let holderView = await deliver(hospitalAdmin, filtered: true).1
            #expect(holderView.contains { !$0.events.isEmpty })
            #expect(await events(hospitalAdmin) >= 2)
            #expect(await info(hospitalAdmin) == .ok)
            // Members who hold no ledger: no whole blocks, no one else's transactions, no one else's events.
            for w in [doctor, patient, otherPatient, device] {
                #expect(await getBlock(w) == .denied(403), "\(w.info.role) read a block")
                #expect(await deliver(w, filtered: false).0 == .denied(403))
                #expect(await ordererDeliver(w) == .denied(403))
                #expect(await getTx(w, t.txID) == .denied(404), "\(w.info.role) read someone else's transaction")
                let (o, txs) = await deliver(w, filtered: true)
                #expect(o == .ok)
                #expect(txs.contains { $0.txID == grant.txID })  // ids and codes for everyone
                let ownEvents = txs.filter { !$0.events.isEmpty }.map(\.txID)
                #expect(
                    ownEvents == (w.info.pid == patient.info.pid ? [grant.txID] : []),
                    "\(w.info.role) saw events of others: \(ownEvents)")
            }
            #expect(await getTx(patient, grant.txID) == .ok)  // a caller's own transaction
            #expect(await events(patient) == 1)
            #expect(await info(doctor) == .ok)
            #expect(await info(patient) == .denied(403))
            // Non-members: the channel does not exist for them.
            for w in [outsider, outsiderAdmin] {
                #expect(await getBlock(w) == .denied(404))
                #expect(await getTx(w, grant.txID) == .denied(404))
                #expect(await deliver(w, filtered: true).0 == .denied(404))
                #expect(await ordererDeliver(w) == .denied(404))
                #expect(await info(w) == .denied(404))
                #expect(try await listed(w, a, orderer: false).isEmpty)
                #expect(try await listed(w, orderer, orderer: true).isEmpty)
            }
            #expect(try await listed(patient, a, orderer: false) == ["records"])
            #expect(try await listed(hospitalAdmin, orderer, orderer: true) == ["records"])
        }
    }

    // MARK: 5. Recoverable join; 503 for a node that is down

    @Test func aJoinInterruptedByACrashCanBeRepeated() async throws {
        try await Self.withNetwork("trust-join") { net in
            // A second channel for hospital-a; its node dies (SIGKILL) between registering and writing block 0.
            let yaml = try String(contentsOfFile: net.root + "/channel.yaml", encoding: .utf8).replacingOccurrences(
                of: "channel: records", with: "channel: second")
            try yaml.write(toFile: net.root + "/second.yaml", atomically: true, encoding: .utf8)
            try MedLedgerBinary.ok([
                "channel", "create", "--config", net.root + "/second.yaml", "--wallet", net.admin("sa"), "--out",
                net.root + "/second.block",
            ])
            let port = net.ports["hospital-a"]!
            net.peers["hospital-a"]!.process.terminate()
            net.peers["hospital-a"]!.process.waitForExit()
            // While the node is down its administrator is told 503 "unavailable", not 401.
            let down = try MedLedgerBinary.run([
                "node", "whoami", "--node", net.node("hospital-a"), "--wallet", net.admin("hospital-a"),
            ])
            #expect(down.status != 0)
            #expect((down.stdout + down.stderr).contains("[503]"), "\(down.stdout)\(down.stderr)")
            #expect(!(down.stdout + down.stderr).contains("[401]"))

            let dir = net.root + "/hospital-a/nodes/peer0"
            let yamlPath = dir + "/node.yaml"
            let nodeYAML = try String(contentsOfFile: yamlPath, encoding: .utf8).split(
                separator: "\n", omittingEmptySubsequences: false
            )
            .map { $0.hasPrefix("listen:") ? "listen: 127.0.0.1:\(port)" : String($0) }.joined(separator: "\n")
            try nodeYAML.write(toFile: yamlPath, atomically: true, encoding: .utf8)
            let crashing = Process()
            crashing.executableURL = MedLedgerBinary.daemonURL
            crashing.arguments = ["--config", dir + "/node.yaml"]
            crashing.environment = ProcessInfo.processInfo.environment.merging(["MEDLEDGER_CRASH_AT": "join-registered"]
            ) { $1 }
            crashing.standardOutput = FileHandle.nullDevice
            crashing.standardError = FileHandle.nullDevice
            try crashing.run()
            var joined = MedLedgerBinary.Result(status: 1, stdout: "", stderr: "")
            for _ in 0..<100 {
                joined = try MedLedgerBinary.run([
                    "channel", "join", "--node", "127.0.0.1:\(port)", "--wallet", net.admin("hospital-a"), "--block",
                    net.root + "/second.block",
                ])
                if !crashing.isRunning || joined.status == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            if crashing.isRunning {
                crashing.terminate()
                Issue.record("the node did not die mid-join: \(joined.stdout)\(joined.stderr)")
            }
            crashing.waitForExit()
            #expect(crashing.terminationReason == .uncaughtSignal, "the node was to die mid-join")
            // Restarted: the half-made channel is gone, the join works, and the old channel is intact.
            let (restarted, _) = try MultiHospitalNetworkTests.startPeer(net.root, "hospital-a", port: port)
            defer { _ = restarted.stop() }
            #expect(restarted.text.contains("interrupted join"), "\(restarted.text)")
            try MedLedgerBinary.ok([
                "channel", "join", "--node", "127.0.0.1:\(port)", "--wallet", net.admin("hospital-a"), "--block",
                net.root + "/second.block",
            ])
            let list = try MedLedgerBinary.ok([
                "channel", "list", "--node", "127.0.0.1:\(port)", "--wallet", net.admin("hospital-a"),
            ])
            #expect(list.contains("second") && list.contains("records"), "\(list)")
        }
    }
}
