import CRaft
import Foundation
import Synchronization

/// Produces the `raft_uv_transport` a raft server talks through. The production one is
/// `TLSRaftTransport` (mutual TLS, pinned keys); libraft's own TCP transport is plaintext and
/// never used outside tests.
public protocol RaftTransportProvider: AnyObject, Sendable {
    /// Called on the loop thread. The transport stays valid until libraft has closed it (it does so
    /// while the raft server closes) and `release` is called.
    func makeTransport(
        on loop: RaftLoop, channel: String
    ) throws(ConsensusError) -> UnsafeMutablePointer<raft_uv_transport>
    func release(_ transport: UnsafeMutablePointer<raft_uv_transport>)
}

/// Timing and size settings of one raft server (milliseconds, entries).
public struct RaftTuning: Sendable, Equatable {
    public var electionTimeoutMs: UInt32 = 1000
    public var heartbeatTimeoutMs: UInt32 = 100
    /// Entries between snapshots: the snapshot is tiny, so this only bounds the log on disk.
    public var snapshotThreshold: UInt32 = 1024
    public var snapshotTrailing: UInt32 = 128
    /// The largest entry (one whole block) a proposal may carry.
    public var maxEntryBytes: Int = 16 << 20
    public init() {}
}

/// One libraft server: a consenter of one channel. Every libraft call happens on `loop`'s thread;
/// the async methods queue work there and wait for libraft's callbacks.
///
/// Lifetime: the object keeps itself alive (an unmanaged retain) from `start` until libraft's close
/// callback, because libraft holds raw pointers to it until then.
public final class RaftServer: ConsensusEngine, @unchecked Sendable {
    public let id: ConsenterID
    public let address: String
    public let channel: String
    let loop: RaftLoop
    let bridge: StateMachineBridge
    let tuning: RaftTuning
    let dataDirectory: String
    let transportProvider: any RaftTransportProvider
    let log: @Sendable (String) -> Void

    // Loop-thread state.
    private let r: UnsafeMutablePointer<raft>
    private let io: UnsafeMutablePointer<raft_io>
    private var transport: UnsafeMutablePointer<raft_uv_transport>?
    private var phase: Phase = .created
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var closeWaitersBlocking: [@Sendable (Result<Void, ConsensusError>) -> Void] = []
    private var stoppedReason: String?
    private var observer: UnsafeMutablePointer<uv_timer_t>?
    private let observedState = Mutex(ObservedRaftState())

    enum Phase { case created, running, closing, closed }

    /// Role, leader and term as of a few milliseconds ago, readable from any thread without waiting
    /// for the loop (a timer on the loop refreshes it every 10 ms and on every change this server makes).
    public var observed: ObservedRaftState { observedState.withLock { $0 } }

    public init(
        id: ConsenterID, address: String, channel: String, dataDirectory: String, loop: RaftLoop,
        machine: any ReplicatedStateMachine,
        transport: any RaftTransportProvider, tuning: RaftTuning = RaftTuning(), maxSnapshotBytes: Int = 64 << 10,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.id = id
        self.address = address
        self.channel = channel
        self.dataDirectory = dataDirectory
        self.loop = loop
        self.bridge = StateMachineBridge(machine: machine, maxSnapshotBytes: maxSnapshotBytes)
        self.transportProvider = transport
        self.tuning = tuning
        self.log = log
        r = .allocate(capacity: 1)
        r.initialize(to: raft())
        io = .allocate(capacity: 1)
        io.initialize(to: raft_io())
    }

    deinit {
        r.deallocate()
        io.deallocate()
    }

    /// Opens the log in `dataDirectory` and starts the server. `bootstrap`: the initial voters, written
    /// only when the directory holds no raft state yet (a restart resumes from the log instead).
    public func start(bootstrap: [ConsensusMember]?) async throws(ConsensusError) {
        let result: Result<Void, ConsensusError> = try await loop.call { [self] in
            Result { () throws(ConsensusError) in try startOnLoop(bootstrap: bootstrap) }
        }
        try result.get()
    }

    /// `start`, for callers on a thread that may block (never on the loop thread itself).
    public func startBlocking(bootstrap: [ConsensusMember]?) throws(ConsensusError) {
        try blocking { done in
            self.loop.run { [self] in
                done(Result { () throws(ConsensusError) in try startOnLoop(bootstrap: bootstrap) })
            }
        }.get()
    }

    /// Runs `body`, which must call its completion exactly once (on any thread), and waits for it. If
    /// the loop no longer takes work, the result is `.shuttingDown`.
    private func blocking<T>(
        _ body: (@escaping @Sendable (Result<T, ConsensusError>) -> Void) -> Bool
    ) -> Result<T, ConsensusError> {
        precondition(!loop.isLoopThread, "a blocking raft call on the raft loop thread would wait forever")
        let box = ResultBox<T>()
        let queued = body { box.set($0) }
        guard queued else { return .failure(.shuttingDown) }
        return box.wait()
    }

    private func startOnLoop(bootstrap: [ConsensusMember]?) throws(ConsensusError) {
        guard phase == .created else { throw .badRequest("raft server \(id) was already started") }
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw .failed("cannot create the raft directory \(dataDirectory): \(error)")
        }
        let t = try transportProvider.makeTransport(on: loop, channel: channel)
        transport = t
        var rv = raft_uv_init(io, loop.loop, dataDirectory, t)
        guard rv == 0 else { throw .failed("raft_uv_init(\(dataDirectory)): \(String(cString: raft_strerror(rv)))") }
        rv = raft_init(r, io, bridge.fsm, id, address)
        guard rv == 0 else { throw .failed("raft_init: \(String(cString: raft_errmsg(r)))") }
        r.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        bridge.raft = r
        bridge.onFailure = { [unowned self] why in self.failedOnLoop(why) }
        raft_set_pre_vote(r, true)
        raft_set_election_timeout(r, tuning.electionTimeoutMs)
        raft_set_heartbeat_timeout(r, tuning.heartbeatTimeoutMs)
        raft_set_snapshot_threshold(r, tuning.snapshotThreshold)
        raft_set_snapshot_trailing(r, tuning.snapshotTrailing)
        if let bootstrap {
            var conf = raft_configuration()
            raft_configuration_init(&conf)
            defer { raft_configuration_close(&conf) }
            for m in bootstrap {
                rv = raft_configuration_add(&conf, m.id, m.address, m.role.rawRole)
                guard rv == 0 else {
                    throw .badRequest("consenter \(m.id) at \(m.address): \(String(cString: raft_strerror(rv)))")
                }
            }
            rv = raft_bootstrap(r, &conf)
            guard rv == 0 || rv == RAFT_CANTBOOTSTRAP else {
                throw .failed("raft_bootstrap: \(String(cString: raft_errmsg(r)))")
            }
        }
        rv = raft_start(r)
        guard rv == 0 else { throw .failed("raft_start: \(String(cString: raft_errmsg(r)))") }
        // From here libraft holds pointers to self until the close callback releases this retain.
        _ = Unmanaged.passRetained(self)
        phase = .running
        startObserving()
        log("raft: consenter \(id) of channel \(channel) started at \(address)")
    }

    /// A failed apply: the node stops being a consenter (later, on a fresh loop turn: libraft 0.15
    /// can misbehave when closed from inside its own callback).
    private func failedOnLoop(_ why: String) {
        stoppedReason = why
        observe()
        log("raft: consenter \(id) of channel \(channel) stops: \(why)")
        loop.run { [self] in closeOnLoop() }
    }

    private func startObserving() {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop.loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(
            timer,
            { t in
                guard let t, let data = t.pointee.data else { return }
                Unmanaged<RaftServer>.fromOpaque(data).takeUnretainedValue().observe()
            }, 10, 10)
        observer = timer
        observe()
    }

    private func stopObserving() {
        guard let timer = observer else { return }
        observer = nil
        uv_timer_stop(timer)
        uv_close(UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self)) { handle in
            UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_timer_t.self).deallocate()
        }
    }

    private func observe() {
        let now: ObservedRaftState
        if phase == .running {
            now = ObservedRaftState(
                role: Int(raft_state(r)) == RAFT_LEADER
                    ? .leader : Int(raft_state(r)) == RAFT_CANDIDATE ? .candidate : .follower,
                leader: leaderOnLoop(), term: r.pointee.current_term, stoppedReason: stoppedReason,
                failure: stoppedReason)
        } else {
            now = ObservedRaftState(
                role: .unavailable, leader: nil, term: 0,
                stoppedReason: stoppedReason ?? (phase == .created ? "not started" : "stopped"), failure: stoppedReason)
        }
        observedState.withLock { $0 = now }
    }

    // MARK: Proposals

    public func propose(_ entry: [UInt8]) async throws(ConsensusError) {
        guard entry.count <= tuning.maxEntryBytes else { throw .tooLarge(entry.count, limit: tuning.maxEntryBytes) }
        let outcome: Result<Void, ConsensusError> = await withCheckedContinuation { c in
            let queued = loop.run { [self] in applyOnLoop(entry) { c.resume(returning: $0) } }
            if !queued { c.resume(returning: .failure(.shuttingDown)) }
        }
        try outcome.get()
    }

    /// `propose`, for a thread that may block (the orderer's cutting thread).
    public func proposeBlocking(_ entry: [UInt8]) throws(ConsensusError) {
        guard entry.count <= tuning.maxEntryBytes else { throw .tooLarge(entry.count, limit: tuning.maxEntryBytes) }
        try blocking { done in loop.run { [self] in applyOnLoop(entry, done) } }.get()
    }

    /// Waits until every entry before now is applied here (a new leader calls it before cutting).
    public func barrierBlocking() throws(ConsensusError) {
        try blocking { done in loop.run { [self] in barrierOnLoop(done) } }.get()
    }

    private final class Pending<T> {
        let done: @Sendable (Result<T, ConsensusError>) -> Void
        init(_ d: @escaping @Sendable (Result<T, ConsensusError>) -> Void) { done = d }
    }

    private func applyOnLoop(_ payload: [UInt8], _ done: @escaping @Sendable (Result<Void, ConsensusError>) -> Void) {
        let entry = RaftEntryFraming.encode(payload)
        guard phase == .running else { return done(.failure(stoppedReason.map { .failed($0) } ?? .shuttingDown)) }
        guard raft_state(r) == RAFT_LEADER else { return done(.failure(.notLeader(leader: leaderOnLoop()))) }
        guard let base = raft_malloc(max(entry.count, 1)) else { return done(.failure(.failed("out of memory"))) }
        entry.withUnsafeBytes { if let src = $0.baseAddress { base.copyMemory(from: src, byteCount: entry.count) } }
        var buf = raft_buffer(base: base, len: entry.count)
        let req = UnsafeMutablePointer<raft_apply>.allocate(capacity: 1)
        req.initialize(to: raft_apply())
        req.pointee.data = Unmanaged.passRetained(Pending<Void>(done)).toOpaque()
        let rv = raft_apply(r, req, &buf, 1) { req, status, _ in
            guard let req else { return }
            let pending = Unmanaged<Pending<Void>>.fromOpaque(req.pointee.data).takeRetainedValue()
            req.deallocate()
            pending.done(status == 0 ? .success(()) : .failure(RaftServer.error(status, context: "applying the entry")))
        }
        if rv != 0 {
            // Not accepted: libraft took neither the buffer nor the request.
            raft_free(base)
            Unmanaged<Pending<Void>>.fromOpaque(req.pointee.data).release()
            req.deallocate()
            done(.failure(RaftServer.error(rv, context: String(cString: raft_errmsg(r)), leader: leaderOnLoop())))
        }
    }

    private func barrierOnLoop(_ done: @escaping @Sendable (Result<Void, ConsensusError>) -> Void) {
        guard phase == .running else { return done(.failure(.shuttingDown)) }
        let req = UnsafeMutablePointer<raft_barrier>.allocate(capacity: 1)
        req.initialize(to: raft_barrier())
        req.pointee.data = Unmanaged.passRetained(Pending<Void>(done)).toOpaque()
        let rv = raft_barrier(r, req) { req, status in
            guard let req else { return }
            let pending = Unmanaged<Pending<Void>>.fromOpaque(req.pointee.data).takeRetainedValue()
            req.deallocate()
            pending.done(status == 0 ? .success(()) : .failure(RaftServer.error(status, context: "raft barrier")))
        }
        if rv != 0 {
            Unmanaged<Pending<Void>>.fromOpaque(req.pointee.data).release()
            req.deallocate()
            done(.failure(RaftServer.error(rv, context: String(cString: raft_errmsg(r)), leader: leaderOnLoop())))
        }
    }

    static func error(_ code: Int32, context: String, leader: ConsenterID? = nil) -> ConsensusError {
        switch code {
        case RAFT_NOTLEADER: return .notLeader(leader: leader)
        case RAFT_LEADERSHIPLOST: return .leadershipLost
        case RAFT_SHUTDOWN, RAFT_CANCELED: return .shuttingDown
        case RAFT_NOCONNECTION: return .noQuorum(context)
        case RAFT_TOOBIG: return .tooLarge(0, limit: 0)
        case RAFT_BUSY, RAFT_CANTCHANGE: return .busy("\(context): \(String(cString: raft_strerror(code)))")
        case RAFT_BADID, RAFT_DUPLICATEID, RAFT_DUPLICATEADDRESS, RAFT_BADROLE, RAFT_NOTFOUND, RAFT_INVALID:
            return .badRequest("\(context): \(String(cString: raft_strerror(code)))")
        default: return .failed("\(context): \(String(cString: raft_strerror(code)))")
        }
    }

    // MARK: Status

    private func leaderOnLoop() -> ConsenterID? {
        guard phase == .running else { return nil }
        var leader: raft_id = 0
        var address: UnsafePointer<CChar>?
        raft_leader(r, &leader, &address)
        return leader == 0 ? nil : leader
    }

    public func status() async -> ConsensusStatus {
        let fallback = ConsensusStatus(
            id: id, role: .unavailable, leader: nil, term: 0, lastIndex: 0, commitIndex: 0, appliedIndex: 0,
            members: [], stoppedReason: "the raft loop has stopped")
        return (try? await loop.call { [self] in statusOnLoop() }) ?? fallback
    }

    func statusOnLoop() -> ConsensusStatus {
        guard phase == .running else {
            return ConsensusStatus(
                id: id, role: .unavailable, leader: nil, term: 0, lastIndex: 0, commitIndex: 0, appliedIndex: 0,
                members: [], stoppedReason: stoppedReason ?? (phase == .created ? "not started" : "stopped"))
        }
        let role: ConsensusRole
        switch Int(raft_state(r)) {
        case RAFT_LEADER: role = .leader
        case RAFT_CANDIDATE: role = .candidate
        case RAFT_FOLLOWER: role = .follower
        default: role = .unavailable
        }
        var members: [ConsensusMember] = []
        let conf = r.pointee.configuration
        for i in 0..<Int(conf.n) {
            let s = conf.servers[i]
            members.append(
                ConsensusMember(
                    id: s.id, address: s.address.map { String(cString: $0) } ?? "", role: .init(rawRole: s.role)))
        }
        return ConsensusStatus(
            id: id, role: role, leader: leaderOnLoop(), term: r.pointee.current_term, lastIndex: raft_last_index(r),
            commitIndex: r.pointee.commit_index, appliedIndex: raft_last_applied(r), members: members,
            stoppedReason: stoppedReason)
    }

    // MARK: Leadership and membership

    public func transferLeadership(to target: ConsenterID?) async throws(ConsensusError) -> ConsenterID? {
        let outcome: Result<ConsenterID?, ConsensusError> = await withCheckedContinuation { c in
            let queued = loop.run { [self] in
                guard phase == .running else { return c.resume(returning: .failure(.shuttingDown)) }
                guard raft_state(r) == RAFT_LEADER else {
                    return c.resume(returning: .failure(.notLeader(leader: leaderOnLoop())))
                }
                let req = UnsafeMutablePointer<raft_transfer>.allocate(capacity: 1)
                req.initialize(to: raft_transfer())
                req.pointee.data = Unmanaged.passRetained(TransferContext(self, c)).toOpaque()
                let rv = raft_transfer(r, req, target ?? 0) { req in
                    guard let req else { return }
                    let ctx = Unmanaged<TransferContext>.fromOpaque(req.pointee.data).takeRetainedValue()
                    req.deallocate()
                    ctx.continuation.resume(returning: .success(ctx.server.leaderOnLoop()))
                }
                if rv != 0 {
                    Unmanaged<TransferContext>.fromOpaque(req.pointee.data).release()
                    req.deallocate()
                    c.resume(
                        returning: .failure(
                            RaftServer.error(
                                rv, context: "transferring leadership: \(String(cString: raft_errmsg(r)))",
                                leader: leaderOnLoop())))
                }
            }
            if !queued { c.resume(returning: .failure(.shuttingDown)) }
        }
        return try outcome.get()
    }

    private final class TransferContext {
        let server: RaftServer
        let continuation: CheckedContinuation<Result<ConsenterID?, ConsensusError>, Never>
        init(_ s: RaftServer, _ c: CheckedContinuation<Result<ConsenterID?, ConsensusError>, Never>) {
            server = s
            continuation = c
        }
    }

    public func addStandby(_ consenter: ConsenterID, address: String) async throws(ConsensusError) {
        try await change("adding consenter \(consenter)") { r, req, cb in
            // libraft adds a server as a spare; it becomes a standby (receives the log) by assignment.
            raft_add(r, req, consenter, address, cb)
        }
        try await change("making consenter \(consenter) a standby") { r, req, cb in
            raft_assign(r, req, consenter, RAFT_STANDBY, cb)
        }
    }

    public func promote(_ consenter: ConsenterID) async throws(ConsensusError) {
        try await change("promoting consenter \(consenter) to voter") { r, req, cb in
            raft_assign(r, req, consenter, RAFT_VOTER, cb)
        }
    }

    public func remove(_ consenter: ConsenterID) async throws(ConsensusError) {
        try await change("removing consenter \(consenter)") { r, req, cb in raft_remove(r, req, consenter, cb) }
    }

    private typealias ChangeCall =
        @Sendable (UnsafeMutablePointer<raft>, UnsafeMutablePointer<raft_change>, raft_change_cb) -> Int32

    private func change(_ what: String, _ call: @escaping ChangeCall) async throws(ConsensusError) {
        let outcome: Result<Void, ConsensusError> = await withCheckedContinuation { c in
            let queued = loop.run { [self] in
                guard phase == .running else { return c.resume(returning: .failure(.shuttingDown)) }
                guard raft_state(r) == RAFT_LEADER else {
                    return c.resume(returning: .failure(.notLeader(leader: leaderOnLoop())))
                }
                let req = UnsafeMutablePointer<raft_change>.allocate(capacity: 1)
                req.initialize(to: raft_change())
                req.pointee.data = Unmanaged.passRetained(ChangeContext(what, c)).toOpaque()
                let rv = call(r, req) { req, status in
                    guard let req else { return }
                    let ctx = Unmanaged<ChangeContext>.fromOpaque(req.pointee.data).takeRetainedValue()
                    req.deallocate()
                    ctx.continuation.resume(
                        returning: status == 0 ? .success(()) : .failure(RaftServer.error(status, context: ctx.what)))
                }
                if rv != 0 {
                    Unmanaged<ChangeContext>.fromOpaque(req.pointee.data).release()
                    req.deallocate()
                    c.resume(
                        returning: .failure(
                            RaftServer.error(
                                rv, context: "\(what): \(String(cString: raft_errmsg(r)))", leader: leaderOnLoop())))
                }
            }
            if !queued { c.resume(returning: .failure(.shuttingDown)) }
        }
        try outcome.get()
    }

    private final class ChangeContext {
        let what: String
        let continuation: CheckedContinuation<Result<Void, ConsensusError>, Never>
        init(_ w: String, _ c: CheckedContinuation<Result<Void, ConsensusError>, Never>) {
            what = w
            continuation = c
        }
    }

    // MARK: Stopping

    /// Closes the server: pending proposals fail, the log is left consistent on disk. libraft's close
    /// is asynchronous; this returns after its callback, when the memory may be released.
    public func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let queued = loop.run { [self] in
                switch phase {
                case .closed, .created:
                    phase = .closed
                    c.resume()
                case .closing:
                    closeWaiters.append(c)
                case .running:
                    closeWaiters.append(c)
                    closeOnLoop()
                }
            }
            if !queued { c.resume() }
        }
    }

    /// `stop`, for a thread that may block: it waits on the loop thread only, never on a task, so it
    /// is safe from the cooperative pool even when every other pool thread is busy.
    public func stopBlocking() {
        guard !loop.isLoopThread else { return closeOnLoop() }
        _ = blocking { (done: @escaping @Sendable (Result<Void, ConsensusError>) -> Void) in
            loop.run { [self] in
                switch phase {
                case .closed, .created:
                    phase = .closed
                    done(.success(()))
                case .closing:
                    closeWaitersBlocking.append(done)
                case .running:
                    closeWaitersBlocking.append(done)
                    closeOnLoop()
                }
            }
        }
    }

    private func closeOnLoop() {
        guard phase == .running else { return }
        phase = .closing
        stopObserving()
        observe()
        raft_close(r) { r in
            guard let r, let data = r.pointee.data else { return }
            let server = Unmanaged<RaftServer>.fromOpaque(data).takeRetainedValue()
            server.closedOnLoop()
        }
    }

    private func closedOnLoop() {
        raft_uv_close(io)
        if let transport { transportProvider.release(transport) }
        transport = nil
        phase = .closed
        observe()
        log("raft: consenter \(id) of channel \(channel) stopped")
        let waiters = closeWaiters
        closeWaiters = []
        for w in waiters { w.resume() }
        let blocked = closeWaitersBlocking
        closeWaitersBlocking = []
        for w in blocked { w(.success(())) }
    }
}

extension ConsensusMember.Role {
    var rawRole: Int32 {
        switch self {
        case .voter: return RAFT_VOTER
        case .standby: return RAFT_STANDBY
        case .spare: return RAFT_SPARE
        }
    }

    init(rawRole: Int32) {
        switch rawRole {
        case RAFT_VOTER: self = .voter
        case RAFT_STANDBY: self = .standby
        default: self = .spare
        }
    }
}

public struct ObservedRaftState: Sendable, Equatable {
    public var role: ConsensusRole = .unavailable
    public var leader: ConsenterID?
    public var term: UInt64 = 0
    /// Why the engine is not running, whatever the cause (not started, shut down, failed).
    public var stoppedReason: String? = "not started"
    /// Set only when the engine stopped on its own (a failed apply, a failed disk): why.
    public var failure: String?
}

/// One result handed from another thread to a waiting one.
final class ResultBox<T>: @unchecked Sendable {  // `value` is guarded by `condition`
    private let condition = NSCondition()
    private var value: Result<T, ConsensusError>?

    func set(_ v: Result<T, ConsensusError>) {
        condition.lock()
        value = v
        condition.signal()
        condition.unlock()
    }

    func wait() -> Result<T, ConsensusError> {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
