import Foundation
import Testing

@testable import LedgerConsensus

/// Three libraft consenters in this process, each with its own loop thread and TLS listener on
/// loopback, talking only through the pinned mutual-TLS transport.
final class TLSCluster {
    struct Node {
        let id: ConsenterID
        let tls: TestTLSIdentity
        let transport: TLSRaftTransport
        var loop: RaftLoop
        var server: RaftServer
        var machine: RecordingMachine
    }

    let scratch = ScratchDirectory("raft")
    var nodes: [Node] = []
    var peers: [RaftPeer] = []
    let channel = "records"

    init(size: Int = 3, failAt: [ConsenterID: Int] = [:]) async throws {
        var identities: [TestTLSIdentity] = []
        var transports: [TLSRaftTransport] = []
        for i in 1...size {
            let tls = try TestTLSIdentity(name: "orderer\(i)")
            let transport = TLSRaftTransport(listenHost: "127.0.0.1", listenPort: 0, identity: tls.identity)
            try await transport.start()
            identities.append(tls)
            transports.append(transport)
            peers.append(
                RaftPeer(id: ConsenterID(i), address: "127.0.0.1:\(transport.listenPort)", publicKey: tls.publicKey))
        }
        for (i, transport) in transports.enumerated() {
            transport.setPeers(peers, channel: channel)
            let id = ConsenterID(i + 1)
            let machine = RecordingMachine(failAt: failAt[id])
            let (loop, server) = try makeServer(id: id, transport: transport, machine: machine)
            nodes.append(
                Node(id: id, tls: identities[i], transport: transport, loop: loop, server: server, machine: machine))
        }
        for n in nodes { try await n.server.start(bootstrap: members) }
    }

    var members: [ConsensusMember] { peers.map { ConsensusMember(id: $0.id, address: $0.address, role: .voter) } }

    func makeServer(
        id: ConsenterID, transport: TLSRaftTransport, machine: RecordingMachine
    ) throws -> (RaftLoop, RaftServer) {
        let loop = try RaftLoop(name: "raft-\(id)")
        var tuning = RaftTuning()
        tuning.electionTimeoutMs = 300
        tuning.heartbeatTimeoutMs = 50
        let server = RaftServer(
            id: id, address: peers[Int(id) - 1].address, channel: channel, dataDirectory: "\(scratch.path)/\(id)",
            loop: loop,
            machine: machine, transport: transport, tuning: tuning)
        return (loop, server)
    }

    /// Restarts node `id` from its directory with a fresh (empty) state machine.
    func restart(_ id: ConsenterID) async throws {
        let i = Int(id) - 1
        await nodes[i].server.stop()
        nodes[i].loop.shutdown()
        let machine = RecordingMachine()
        let (loop, server) = try makeServer(id: id, transport: nodes[i].transport, machine: machine)
        nodes[i].loop = loop
        nodes[i].server = server
        nodes[i].machine = machine
        try await server.start(bootstrap: members)
    }

    func leader(among ids: [ConsenterID]? = nil) async -> Node? {
        for n in nodes where ids?.contains(n.id) ?? true {
            if await n.server.status().role == .leader { return n }
        }
        return nil
    }

    func waitForLeader(among ids: [ConsenterID]? = nil, seconds: Double = 10) async -> Node? {
        var found: Node?
        _ = await eventually(seconds) {
            found = await leader(among: ids)
            return found != nil
        }
        return found
    }

    func stop(_ id: ConsenterID) async {
        let n = nodes[Int(id) - 1]
        await n.server.stop()
        n.loop.shutdown()
    }

    func shutdown() async {
        for n in nodes {
            await n.server.stop()
            n.loop.shutdown()
            await n.transport.shutdown()
        }
    }
}

@Suite(.serialized) struct TLSClusterTests {
    @Test func replicatesOverPinnedTLSAndSurvivesLosingTheLeader() async throws {
        let cluster = try await TLSCluster()
        let leader = try #require(await cluster.waitForLeader())
        for i in 0..<10 { try await leader.server.propose(entry(i)) }
        #expect(await eventually(5) { cluster.nodes.allSatisfy { $0.machine.entries.count == 10 } })
        for n in cluster.nodes { #expect(n.machine.entries == (0..<10).map(entry)) }

        // A follower refuses and names the leader, for forwarding.
        let follower = try #require(cluster.nodes.first { $0.id != leader.id })
        await #expect(throws: ConsensusError.notLeader(leader: leader.id)) {
            try await follower.server.propose(entry(99))
        }

        // The leader dies: the other two elect a new one and go on.
        let started = Date()
        await cluster.stop(leader.id)
        let rest = cluster.nodes.map(\.id).filter { $0 != leader.id }
        let next = try #require(await cluster.waitForLeader(among: rest))
        // Loose here (this runs beside the whole suite on two cores); RaftNetworkTests holds the 3 s bound
        // on its own, and `bench failover` measures it.
        #expect(Date().timeIntervalSince(started) < 30)
        try await next.server.propose(entry(10))
        #expect(
            await eventually(5) { rest.allSatisfy { id in cluster.nodes[Int(id) - 1].machine.entries.count == 11 } })
        let status = await next.server.status()
        #expect(status.members.count == 3)
        #expect(status.term >= 2)
        await cluster.shutdown()
    }

    @Test func restartedClusterResumesFromItsLog() async throws {
        let cluster = try await TLSCluster()
        let leader = try #require(await cluster.waitForLeader())
        for i in 0..<5 { try await leader.server.propose(entry(i)) }
        #expect(await eventually(5) { cluster.nodes.allSatisfy { $0.machine.entries.count == 5 } })
        for n in cluster.nodes { try await cluster.restart(n.id) }
        let again = try #require(await cluster.waitForLeader())
        try await again.server.propose(entry(5))
        // Every consenter replays its committed log into its (fresh) state machine, then the new entry.
        #expect(await eventually(10) { cluster.nodes.allSatisfy { $0.machine.entries == (0...5).map(entry) } })
        await cluster.shutdown()
    }

    @Test func aCertificateOutsideTheConsenterSetIsRefused() async throws {
        let cluster = try await TLSCluster()
        _ = try #require(await cluster.waitForLeader())
        let target = cluster.nodes[0]
        let before = target.transport.refusedConnections
        // An intruder with its own certificate dials consenter 1, claiming to be consenter 2.
        let intruderTLS = try TestTLSIdentity(name: "intruder")
        let intruder = TLSRaftTransport(listenHost: "127.0.0.1", listenPort: 0, identity: intruderTLS.identity)
        let pinned = cluster.peers[0]
        _ = try? await intruder.dial(pinned, channel: cluster.channel).get()
        #expect(await eventually(3) { target.transport.refusedConnections > before })
        // And a consenter that dials someone presenting an unpinned key gets no connection.
        let impostor = RaftPeer(id: 1, address: pinned.address, publicKey: intruderTLS.publicKey)
        await #expect(throws: (any Error).self) {
            try await cluster.nodes[1].transport.dial(impostor, channel: cluster.channel).get()
        }
        // Nothing the intruder did reached a state machine.
        #expect(cluster.nodes.allSatisfy { $0.machine.entries.isEmpty })
        await intruder.shutdown()
        await cluster.shutdown()
    }

    @Test func aConsenterWhoseApplyFailsStopsAndTheOthersContinue() async throws {
        let cluster = try await TLSCluster(failAt: [3: 2])
        var leader = try #require(await cluster.waitForLeader())
        if leader.id == 3 {
            // The failing disk must be a follower's here; leadership transfer is tested with it.
            let to = try await leader.server.transferLeadership(to: 1)
            #expect(to == 1)
            leader = try #require(await cluster.waitForLeader(among: [1]))
        }
        for i in 0..<6 { try await leader.server.propose(entry(i)) }
        #expect(await eventually(5) { await cluster.nodes[2].server.status().stoppedReason != nil })
        let reason = await cluster.nodes[2].server.status().stoppedReason ?? ""
        #expect(reason.contains("applying raft entry"))
        #expect(
            await eventually(5) {
                cluster.nodes[0].machine.entries.count == 6 && cluster.nodes[1].machine.entries.count == 6
            })
        #expect(cluster.nodes[2].machine.entries.count == 2)
        await cluster.shutdown()
    }
}
