import Foundation

/// A consenter's Raft id. It is never taken from what a peer claims: the TLS transport derives it
/// from the peer's certificate key, pinned in the consenter set.
public typealias ConsenterID = UInt64

/// What the ordering service needs from a consensus engine, so that ordering does not know the
/// engine is libraft (`RaftServer`). Entries are opaque bytes; the engine replicates them and hands
/// each committed entry, in log order, to the `ReplicatedStateMachine` it was built with.
public protocol ConsensusEngine: AnyObject, Sendable {
    /// Appends `entry` to the replicated log. Returns once the entry is committed and applied on this
    /// node; throws `.notLeader` on a follower (the caller forwards to `status().leader`).
    func propose(_ entry: [UInt8]) async throws(ConsensusError)
    func status() async -> ConsensusStatus
    /// Hands leadership to `target` (nil: the most up-to-date voter). Returns the new leader.
    func transferLeadership(to target: ConsenterID?) async throws(ConsensusError) -> ConsenterID?
    /// Membership, one change at a time, on the leader. A new consenter joins as a standby (it
    /// receives the log but does not vote), and is promoted once it has caught up.
    func addStandby(_ consenter: ConsenterID, address: String) async throws(ConsensusError)
    func promote(_ consenter: ConsenterID) async throws(ConsensusError)
    func remove(_ consenter: ConsenterID) async throws(ConsensusError)
    /// Stops the engine; every pending proposal fails with `.shuttingDown`. Idempotent.
    func stop() async

    /// Role, leader and term as of a few milliseconds ago, without waiting.
    var observed: ObservedRaftState { get }
    /// Blocking forms, for threads that may block (never the engine's own thread).
    func startBlocking(bootstrap: [ConsensusMember]?) throws(ConsensusError)
    func proposeBlocking(_ entry: [UInt8]) throws(ConsensusError)
    /// Returns once every entry appended before the call is applied on this node.
    func barrierBlocking() throws(ConsensusError)
    /// `stop`, waiting without the cooperative pool (safe from synchronous shutdown paths).
    func stopBlocking()
}

/// The deterministic state machine the log drives: for the orderer, the block store.
/// All three calls happen on the engine's loop thread, never concurrently.
public protocol ReplicatedStateMachine: AnyObject, Sendable {
    /// Applies the committed entry at `index`. Throwing stops this consenter (a disk that fails
    /// must not let the node go on voting with a ledger behind its log).
    func apply(_ entry: [UInt8], index: UInt64) throws
    /// A small summary of the state (for the orderer: last block number and hash plus consenters).
    /// libraft sends it as one message, so it must stay small (bounded by `maxSnapshotBytes`).
    func snapshot() throws -> [UInt8]
    /// Replaces the state with a snapshot taken elsewhere (the orderer pulls the missing blocks).
    func restore(_ snapshot: [UInt8]) throws
}

public enum ConsensusRole: String, Sendable, Equatable {
    case unavailable, follower, candidate, leader
}

public struct ConsensusMember: Sendable, Equatable {
    public enum Role: String, Sendable, Equatable { case voter, standby, spare }
    public var id: ConsenterID
    public var address: String
    public var role: Role
    public init(id: ConsenterID, address: String, role: Role) {
        self.id = id
        self.address = address
        self.role = role
    }
}

public struct ConsensusStatus: Sendable, Equatable {
    public var id: ConsenterID
    public var role: ConsensusRole
    public var leader: ConsenterID?
    public var term: UInt64
    public var lastIndex: UInt64
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var members: [ConsensusMember]
    /// Set when the engine stopped on its own (a failed apply, a failed disk): why.
    public var stoppedReason: String?
}

public enum ConsensusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This consenter is not the leader; `leader` is the one it knows of, if any.
    case notLeader(leader: ConsenterID?)
    /// Leadership was lost before the entry committed: it may or may not be in the log.
    case leadershipLost
    /// The cluster has no quorum (or this node cannot reach it) within the deadline.
    case noQuorum(String)
    case shuttingDown
    case tooLarge(Int, limit: Int)
    case busy(String)
    case badRequest(String)
    case failed(String)

    public var description: String {
        switch self {
        case .notLeader(let l):
            return l.map { "not the raft leader (the leader is consenter \($0))" }
                ?? "not the raft leader, and no leader is known"
        case .leadershipLost: return "raft leadership was lost before the entry committed"
        case .noQuorum(let why): return "no raft quorum: \(why)"
        case .shuttingDown: return "the raft consenter is stopping"
        case .tooLarge(let n, let limit): return "raft entry of \(n) bytes exceeds the limit of \(limit)"
        case .busy(let why): return "raft busy: \(why)"
        case .badRequest(let why): return "raft request refused: \(why)"
        case .failed(let why): return "raft failure: \(why)"
        }
    }
}
