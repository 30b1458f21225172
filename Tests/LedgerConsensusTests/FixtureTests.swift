import CRaft
import Foundation
import Testing

@testable import LedgerConsensus

/// libraft's deterministic in-memory cluster (raft/fixture.h) driving our state-machine glue through
/// elections, partitions, crashes and snapshot installs. Time is the fixture's: no sleeping, no
/// sockets, the same schedule on every run.
final class FixtureCluster {
    let f: UnsafeMutablePointer<raft_fixture>
    let machines: [RecordingMachine]
    let bridges: [StateMachineBridge]

    init(_ machines: [RecordingMachine], snapshotThreshold: UInt32? = nil) throws {
        self.machines = machines
        bridges = machines.map { StateMachineBridge(machine: $0) }
        f = .allocate(capacity: 1)
        f.initialize(to: raft_fixture())
        try #require(raft_fixture_initialize(f) == 0)
        for b in bridges { try #require(raft_fixture_grow(f, b.fsm) == 0) }
        var conf = raft_configuration()
        try #require(raft_fixture_configuration(f, UInt32(machines.count), &conf) == 0)
        try #require(raft_fixture_bootstrap(f, &conf) == 0)
        raft_configuration_close(&conf)
        for i in 0..<machines.count {
            let r = raft_fixture_get(f, UInt32(i))!
            bridges[i].raft = r
            raft_set_pre_vote(r, true)
            if let snapshotThreshold {
                raft_set_snapshot_threshold(r, snapshotThreshold)
                raft_set_snapshot_trailing(r, 1)
            }
        }
        try #require(raft_fixture_start(f) == 0)
    }

    deinit {
        raft_fixture_close(f)
        f.deallocate()
    }

    var leaderIndex: Int? {
        let i = Int(raft_fixture_leader_index(f))
        return i < machines.count ? i : nil
    }

    /// Proposes `entry` on server `i`. The returned box gets the apply callback's status.
    @discardableResult
    func propose(_ payload: [UInt8], on i: Int) -> Int32 {
        let entry = RaftEntryFraming.encode(payload)
        let r = raft_fixture_get(f, UInt32(i))!
        let base = raft_malloc(entry.count)!
        entry.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: entry.count) }
        var buf = raft_buffer(base: base, len: entry.count)
        let req = UnsafeMutablePointer<raft_apply>.allocate(capacity: 1)
        req.initialize(to: raft_apply())
        let rv = raft_apply(r, req, &buf, 1) { req, _, _ in req?.deallocate() }
        if rv != 0 {
            raft_free(base)
            req.deallocate()
        }
        return rv
    }

    func stepUntilApplied(_ index: UInt64, on i: Int? = nil, ms: UInt32 = 10_000) -> Bool {
        raft_fixture_step_until_applied(f, UInt32(i ?? machines.count), index, ms)
    }

    func lastIndex(_ i: Int) -> UInt64 { raft_last_index(raft_fixture_get(f, UInt32(i))) }
}

@Suite struct FixtureTests {
    @Test func electedLeaderReplicatesEntriesInTheSameOrderEverywhere() throws {
        let cluster = try FixtureCluster([RecordingMachine(), RecordingMachine(), RecordingMachine()])
        raft_fixture_elect(cluster.f, 0)
        #expect(cluster.leaderIndex == 0)
        for i in 0..<20 { #expect(cluster.propose(entry(i), on: 0) == 0) }
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0)))
        let expected = (0..<20).map(entry)
        for m in cluster.machines {
            #expect(m.entries == expected)
            // Indices are the log's: strictly increasing, identical on every consenter.
            #expect(m.indices == cluster.machines[0].indices)
            #expect(zip(m.indices, m.indices.dropFirst()).allSatisfy { $0 < $1 })
        }
        // A follower refuses proposals: only the leader appends.
        #expect(cluster.propose(entry(99), on: 1) == RAFT_NOTLEADER)
    }

    @Test func partitionedLeaderIsReplacedAndItsUncommittedEntryIsDropped() throws {
        let cluster = try FixtureCluster([RecordingMachine(), RecordingMachine(), RecordingMachine()])
        raft_fixture_elect(cluster.f, 0)
        cluster.propose(entry(0), on: 0)
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0)))
        // Cut the leader off from both followers; what it accepts now can never commit.
        raft_fixture_disconnect(cluster.f, 0, 1)
        raft_fixture_disconnect(cluster.f, 0, 2)
        raft_fixture_disconnect(cluster.f, 1, 0)
        raft_fixture_disconnect(cluster.f, 2, 0)
        cluster.propose(Array("lost".utf8), on: 0)
        let elected = raft_fixture_step_until(
            cluster.f,
            { f, _ in
                let s1 = raft_state(raft_fixture_get(f, 1))
                let s2 = raft_state(raft_fixture_get(f, 2))
                return s1 == RAFT_LEADER || s2 == RAFT_LEADER
            }, nil, 10_000)
        #expect(elected)
        let newLeader = raft_state(raft_fixture_get(cluster.f, 1)) == RAFT_LEADER ? 1 : 2
        cluster.propose(entry(1), on: newLeader)
        #expect(cluster.stepUntilApplied(cluster.lastIndex(newLeader), on: newLeader))
        // Heal: the old leader steps down, drops its uncommitted entry and catches up.
        for (a, b) in [(0, 1), (0, 2), (1, 0), (2, 0)] { raft_fixture_reconnect(cluster.f, UInt32(a), UInt32(b)) }
        cluster.propose(entry(2), on: newLeader)
        #expect(cluster.stepUntilApplied(cluster.lastIndex(newLeader)))
        for m in cluster.machines { #expect(m.entries == [entry(0), entry(1), entry(2)]) }
    }

    @Test func crashedFollowerCatchesUpThroughASnapshot() throws {
        let cluster = try FixtureCluster(
            [RecordingMachine(), RecordingMachine(), RecordingMachine()], snapshotThreshold: 8)
        raft_fixture_elect(cluster.f, 0)
        raft_fixture_kill(cluster.f, 2)
        for i in 0..<40 { cluster.propose(entry(i), on: 0) }
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0), on: 0))
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0), on: 1))
        raft_fixture_revive(cluster.f, 2)
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0), on: 2, ms: 20_000))
        // The log it missed was compacted away: it got the leader's snapshot, then the tail.
        #expect(cluster.machines[2].restores >= 1)
        #expect(cluster.machines[2].entries == (0..<40).map(entry))
    }

    @Test func aFailingApplyStopsThatConsenterAndNotTheOthers() throws {
        let failing = RecordingMachine(failAt: 3)
        let cluster = try FixtureCluster([RecordingMachine(), RecordingMachine(), failing])
        var reported: String?
        cluster.bridges[2].onFailure = { reported = $0 }
        raft_fixture_elect(cluster.f, 0)
        for i in 0..<6 { cluster.propose(entry(i), on: 0) }
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0), on: 0))
        #expect(cluster.stepUntilApplied(cluster.lastIndex(0), on: 1))
        raft_fixture_step_until_elapsed(cluster.f, 2_000)
        #expect(cluster.machines[0].entries == (0..<6).map(entry))
        #expect(failing.entries == (0..<3).map(entry))
        #expect(reported?.contains("applying raft entry") == true)
        #expect(cluster.bridges[2].failure != nil)
    }
}

@Suite struct RaftEntryFramingTests {
    @Test func framesRoundTripAndArePaddedToEightBytes() {
        for n in [0, 1, 7, 8, 9, 1000] {
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
            let framed = RaftEntryFraming.encode(payload)
            #expect(framed.count % 8 == 0)
            #expect(framed.withUnsafeBytes { RaftEntryFraming.decode($0) } == payload)
        }
    }

    @Test func malformedFramesAreRefused() {
        var framed = RaftEntryFraming.encode(Array("entry-1".utf8))
        framed[0] = 200  // claims more bytes than it holds
        #expect(framed.withUnsafeBytes { RaftEntryFraming.decode($0) } == nil)
        #expect([UInt8](repeating: 0, count: 7).withUnsafeBytes { RaftEntryFraming.decode($0) } == nil)
        var wrongPadding = RaftEntryFraming.encode(Array("entry-1".utf8))
        wrongPadding += [0, 0, 0, 0, 0, 0, 0, 0]
        #expect(wrongPadding.withUnsafeBytes { RaftEntryFraming.decode($0) } == nil)
    }
}
