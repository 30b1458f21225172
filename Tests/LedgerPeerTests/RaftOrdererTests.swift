import Crypto
import Foundation
import LedgerChannel
import LedgerConsensus
import LedgerCore
import LedgerIdentity
import LedgerOrdering
import LedgerOrderingCore
import LedgerProtos
import LedgerRocksDB
import LedgerStorage
import NIOSSL
import SwiftASN1
import Synchronization
import Testing
import X509

/// Three raft orderers in this process (sa, hospital-a, hospital-b), each with its own raft loop and
/// TLS listener on loopback, ordering the fixture's channel. Followers forward to the leader through
/// an in-process stand-in for the gRPC broadcast client.
final class RaftOrdererCluster: @unchecked Sendable {
    struct Member {
        let id: UInt64
        let signer: SigningIdentity
        let transport: TLSRaftTransport
        let tlsKey: [UInt8]
        let loop: RaftLoop
        var orderer: RaftOrderer?
        let endpoint: String
    }

    final class Forwarder: LeaderForwarding, @unchecked Sendable {
        var byEndpoint: [String: RaftOrderer] = [:]
        let lock = NSLock()
        func forward(_ envelope: [UInt8], channel: String, to endpoint: String) async -> OrderingRejection? {
            let target = lock.withLock { byEndpoint[endpoint] }
            guard let target else { return OrderingRejection(503, "no orderer at \(endpoint)") }
            do { try await target.broadcast(envelope) } catch { return error }
            return nil
        }
    }

    let f: ChannelFixture
    let scratch: String
    var members: [Member] = []
    let forwarder = Forwarder()
    let genesis: Medledger_Block

    init() async throws {
        f = try ChannelFixture()
        scratch = NSTemporaryDirectory() + "medledger-raft-orderer-\(UUID().uuidString)"
        var consenters: [Medledger_Consenter] = []
        for (i, signer) in [f.saNode, f.aNode, f.bNode].enumerated() {
            let key = P256.Signing.PrivateKey()
            let certKey = Certificate.PrivateKey(key)
            let dn = try DistinguishedName { CommonName("orderer\(i + 1)") }
            let cert = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: certKey.publicKey,
                notValidBefore: Date().addingTimeInterval(-60),
                notValidAfter: Date().addingTimeInterval(3600), issuer: dn, subject: dn,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions { Critical(BasicConstraints.notCertificateAuthority) },
                issuerPrivateKey: certKey)
            let pem = try cert.serializeAsPEM().pemString
            let identity = RaftTLSIdentity(
                certificateChain: [try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)],
                privateKey: try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der))
            let transport = TLSRaftTransport(listenHost: "127.0.0.1", listenPort: 0, identity: identity)
            try await transport.start()
            var c = Medledger_Consenter()
            c.id = UInt64(i + 1)
            c.org = signer.org
            c.raftAddress = "127.0.0.1:\(transport.listenPort)"
            c.endpoint = "127.0.0.1:\(17050 + i)"
            c.tlsCertificate = Data(pem.utf8)
            consenters.append(c)
            members.append(
                Member(
                    id: c.id, signer: signer, transport: transport, tlsKey: Array(key.publicKey.derRepresentation),
                    loop: try RaftLoop(), orderer: nil, endpoint: c.endpoint))
        }
        var config = f.config
        config.orderer.type = "raft"
        config.orderer.org = ""
        config.orderer.consenters = consenters
        config.orderer.endpoints = consenters.map(\.endpoint)
        config.orderer.raft.electionTimeoutMs = 300
        config.orderer.raft.heartbeatMs = 50
        genesis = try ConfigTransaction.genesisBlock(config: config, creator: f.saAdmin, at: f.now)
        for i in members.indices { try start(i) }
    }

    func start(_ i: Int) throws {
        let m = members[i]
        let dir = "\(scratch)/\(m.id)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let transport = m.transport
        let loop = m.loop
        let orderer = try RaftOrderer(
            store: try LedgerStore(
                kv: RocksDBStore.open(path: dir + "/ledger", columnFamilies: StorageLayout.columnFamilies)),
            signer: m.signer, tlsPublicKey: m.tlsKey,
            engines: { channel, me, machine, options in
                var tuning = RaftTuning()
                tuning.electionTimeoutMs = options.electionTimeoutMs
                tuning.heartbeatTimeoutMs = options.heartbeatMs
                return RaftServer(
                    id: me.id, address: me.raftAddress, channel: channel, dataDirectory: dir + "/raft-\(channel)",
                    loop: loop, machine: machine, transport: transport, tuning: tuning)
            },
            peersChanged: { channel, consenters in
                transport.setPeers(
                    consenters.map { RaftPeer(id: $0.id, address: $0.raftAddress, publicKey: $0.publicKey) },
                    channel: channel)
            },
            forwarder: forwarder, puller: nil, clock: { [f] in f.now })
        if orderer.chain("records") == nil { try orderer.join(genesis: genesis) }
        members[i].orderer = orderer
        forwarder.lock.withLock { forwarder.byEndpoint[m.endpoint] = orderer }
    }

    /// Election timing is not what these tests check (RaftNetworkTests bounds it, alone): the wait
    /// is generous, since the parallel suite can starve three in-process consenters for seconds.
    func leader(among indices: [Int]? = nil) async -> Int? {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for i in indices ?? Array(members.indices)
            where members[i].orderer?.engine(of: "records")?.observed.role == .leader { return i }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func chainHashes(_ i: Int) throws -> [[UInt8]] {
        let chain = try #require(members[i].orderer?.chain("records"))
        return try (0..<chain.notifier.height).map { try #require(try chain.block(number: $0)).header.headerHash }
    }

    func stop(_ i: Int) {
        members[i].orderer?.shutdown()
        forwarder.lock.withLock { forwarder.byEndpoint[members[i].endpoint] = nil }
        members[i].orderer = nil
    }

    func shutdown() async {
        for i in members.indices { members[i].orderer?.shutdown() }
        for m in members {
            m.loop.shutdown()
            await m.transport.shutdown()
        }
        try? FileManager.default.removeItem(atPath: scratch)
    }
}

@Suite(.serialized) struct RaftOrdererTests {
    @Test func threeConsentersOrderOneChainWhicheverReceivesTheEnvelope() async throws {
        let c = try await RaftOrdererCluster()
        _ = try #require(await c.leader())
        let envelopes = try (0..<30).map { try c.f.envelope("put", ["k\($0)", "v"]) }
        // Every orderer takes a third: followers forward to the leader.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, e) in envelopes.enumerated() {
                let o = try #require(c.members[n % 3].orderer)
                group.addTask { try await o.broadcast(e) }
            }
            try await group.waitForAll()
        }
        // Acknowledged on the leader once applied there; the followers apply within a heartbeat or two.
        let leaderHeight = try c.chainHashes(try #require(await c.leader())).count
        for i in 0..<3 {
            let deadline = Date().addingTimeInterval(5)
            while try c.chainHashes(i).count < leaderHeight, Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let chains = try (0..<3).map(c.chainHashes)
        #expect(chains[0] == chains[1] && chains[1] == chains[2])
        // Each envelope exactly once.
        let chain = try #require(c.members[0].orderer?.chain("records"))
        var seen: [Data] = []
        for n in 1..<chain.notifier.height { seen += try #require(try chain.block(number: n)).data.envelopes }
        #expect(seen.count == 30)
        #expect(Set(seen).count == 30)
        // Blocks are signed by the node of the consenter that led when they were cut.
        let signers = try (1..<chain.notifier.height).map {
            try #require(try chain.block(number: $0)).metadata.ordererSignature.signer
        }
        #expect(signers.allSatisfy { s in [c.f.saNode, c.f.aNode, c.f.bNode].contains { Data($0.serialized) == s } })
        await c.shutdown()
    }

    @Test func losingTheLeaderLosesNoAcknowledgedEnvelope() async throws {
        let c = try await RaftOrdererCluster()
        let leader = try #require(await c.leader())
        let followers = (0..<3).filter { $0 != leader }
        final class Acked: @unchecked Sendable {
            let set = Mutex(Set<Data>())
        }
        let acked = Acked()
        let envelopes = try (0..<120).map { try c.f.envelope("put", ["k\($0)", "v"]) }
        let stopped = Date()
        await withTaskGroup(of: Void.self) { group in
            for (n, e) in envelopes.enumerated() {
                let o = c.members[followers[n % 2]].orderer!
                group.addTask {
                    // A client retries what was not acknowledged, with the same envelope, as the gateway does.
                    for _ in 0..<40 {
                        do {
                            try await o.broadcast(e)
                            acked.set.withLock { _ = $0.insert(Data(e)) }
                            return
                        } catch let r as OrderingRejection where r.status == 409 {
                            acked.set.withLock { _ = $0.insert(Data(e)) }
                            return
                        } catch {
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
                if n == 40 { group.addTask { c.stop(leader) } }
            }
        }
        let next = try #require(await c.leader(among: followers))
        #expect(Date().timeIntervalSince(stopped) < 15)
        let chain = try #require(c.members[next].orderer?.chain("records"))
        var written = Set<Data>()
        for n in 1..<chain.notifier.height {
            written.formUnion(try #require(try chain.block(number: n)).data.envelopes)
        }
        let ackedSet = acked.set.withLock { $0 }
        #expect(ackedSet.count == 120, "every envelope was eventually acknowledged")
        #expect(ackedSet.isSubset(of: written), "an acknowledged envelope is missing from the ledger")
        let other = followers.first { $0 != next }!
        let deadline = Date().addingTimeInterval(5)
        while try c.chainHashes(other) != c.chainHashes(next), Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try c.chainHashes(other) == c.chainHashes(next))
        await c.shutdown()
    }

    @Test func aBlockNotSignedByAConsenterNodeOrNotExtendingTheChainIsRefused() async throws {
        let c = try await RaftOrdererCluster()
        let leader = try #require(await c.leader())
        try await c.members[leader].orderer!.broadcast(try c.f.envelope("put", ["k", "v"]))
        let engine = try #require(c.members[leader].orderer?.engine(of: "records"))
        let chain = try #require(c.members[leader].orderer?.chain("records"))
        let height = chain.notifier.height
        let tip = try #require(try chain.block(number: height - 1))
        let e = try c.f.envelope("put", ["forged", "v"])
        // Signed by a doctor, not an orderer node.
        var forged = Medledger_Block.make(number: height, previousHash: tip.header.headerHash, envelopes: [e])
        forged.metadata.orderingSignature(signer: c.f.aDoctor, headerHash: forged.header.headerHash, at: c.f.now)
        // Signed by a consenter's node, but not at the next height.
        var stale = Medledger_Block.make(
            number: height - 1, previousHash: [UInt8](tip.header.previousHash), envelopes: [e])
        stale.metadata.orderingSignature(signer: c.f.aNode, headerHash: stale.header.headerHash, at: c.f.now)
        for block in [forged, stale] {
            let bytes: [UInt8] = try block.serializedBytes()
            try await Task.detached { try engine.proposeBlocking(bytes) }.value
        }
        // Followers apply the same entries a little later (much later on a loaded machine): wait for
        // them; a block that got in would leave a chain longer than `height` for good.
        let deadline = Date().addingTimeInterval(15)
        while try (0..<3).contains(where: { try c.chainHashes($0).count < Int(height) }), Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        for i in 0..<3 { #expect(try c.chainHashes(i).count == Int(height)) }
        // The channel goes on.
        try await c.members[leader].orderer!.broadcast(try c.f.envelope("put", ["k2", "v"]))
        #expect(chain.notifier.height == height + 1)
        await c.shutdown()
    }

    @Test func consentersChangeOneAtATime() throws {
        let c = try ChannelFixture()
        func ordering(_ ids: [UInt64], certOf: [UInt64: String] = [:]) throws -> OrderingConfig {
            var o = Medledger_OrdererConfig()
            o.type = "raft"
            for id in ids {
                var k = Medledger_Consenter()
                k.id = id
                k.org = "hospital-a"
                k.raftAddress = "127.0.0.1:\(7100 + id)"
                k.endpoint = "127.0.0.1:\(7200 + id)"
                k.tlsCertificate = Data((certOf[id] ?? Self.pem(seed: id)).utf8)
                o.consenters.append(k)
            }
            return try OrderingConfig(o, organizations: Set(c.config.organizations.map(\.id)))
        }
        let three = try ordering([1, 2, 3])
        #expect(throws: Never.self) { try OrderingConfig.checkChange(from: three, to: try ordering([1, 2, 3, 4])) }
        #expect(throws: Never.self) { try OrderingConfig.checkChange(from: three, to: try ordering([1, 2])) }
        #expect(throws: Never.self) {
            try OrderingConfig.checkChange(from: three, to: try ordering([1, 2, 3], certOf: [2: Self.pem(seed: 99)]))
        }
        #expect(throws: ChannelConfigError.self) {
            try OrderingConfig.checkChange(from: three, to: try ordering([1, 2, 3, 4, 5]))
        }
        #expect(throws: ChannelConfigError.self) { try OrderingConfig.checkChange(from: three, to: try ordering([1])) }
        #expect(throws: ChannelConfigError.self) {
            try OrderingConfig.checkChange(
                from: three, to: try ordering([1, 2, 3], certOf: [1: Self.pem(seed: 98), 2: Self.pem(seed: 99)]))
        }
        // Bad sets are refused outright.
        #expect(throws: ChannelConfigError.self) { try ordering([1, 1]) }
        #expect(throws: ChannelConfigError.self) { try ordering([0]) }
        #expect(throws: ChannelConfigError.self) { try ordering([1, 2], certOf: [2: Self.pem(seed: 1)]) }
    }

    static let pems = Mutex<[UInt64: String]>([:])
    /// A certificate per seed, the same on every call.
    static func pem(seed: UInt64) -> String {
        if let p = pems.withLock({ $0[seed] }) { return p }
        let key = P256.Signing.PrivateKey()
        let certKey = Certificate.PrivateKey(key)
        let dn = try! DistinguishedName { CommonName("c\(seed)") }
        let cert = try! Certificate(
            version: .v3, serialNumber: .init(), publicKey: certKey.publicKey, notValidBefore: Date(),
            notValidAfter: Date().addingTimeInterval(60),
            issuer: dn, subject: dn, signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(),
            issuerPrivateKey: certKey)
        let pem = try! cert.serializeAsPEM().pemString
        pems.withLock { $0[seed] = pem }
        return pem
    }
}
