import Foundation
import LedgerProtos
import Synchronization

/// Waits for transactions to commit by following one filtered-block stream from the gateway's peer,
/// instead of one commit-status call per transaction. A waiter is registered before its envelope is
/// broadcast and the stream starts at the peer's height from before that, so no commit is missed.
final class CommitWatcher: Sendable {
    struct Commit: Sendable {
        var code: Medledger_TxValidationCode
        var blockNumber: UInt64
    }

    enum WaitError: Error {
        /// The stream broke before the transaction showed up; ask the peer directly.
        case streamLost
        case timedOut
    }

    /// Where one caller's answer lands.
    final class Slot: Sendable {
        private enum Phase {
            case waiting(CheckedContinuation<Commit, any Error>?)
            case done(Result<Commit, any Error>)
        }
        private let phase = Mutex(Phase.waiting(nil))
        let deadline: ContinuousClock.Instant

        init(deadline: ContinuousClock.Instant) { self.deadline = deadline }

        func finish(_ result: Result<Commit, any Error>) {
            let waiter = phase.withLock { p -> CheckedContinuation<Commit, any Error>? in
                guard case .waiting(let c) = p else { return nil }
                p = .done(result)
                return c
            }
            waiter?.resume(with: result)
        }

        func value() async throws -> Commit {
            try await withCheckedThrowingContinuation { c in
                let ready = phase.withLock { p -> Result<Commit, any Error>? in
                    switch p {
                    case .done(let r): return r
                    case .waiting:
                        p = .waiting(c)
                        return nil
                    }
                }
                if let ready { c.resume(with: ready) }
            }
        }
    }

    /// Opens the filtered-block stream from a height and calls `onBlock` for each block until it ends.
    typealias Follow =
        @Sendable (_ start: UInt64, _ onBlock: @escaping @Sendable (Medledger_FilteredBlock) -> Void) async throws ->
        Void

    private struct State {
        var running: Task<Void, any Error>?
        var slots: [String: Slot] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let height: @Sendable () async throws -> UInt64
    private let follow: Follow

    init(height: @escaping @Sendable () async throws -> UInt64, follow: @escaping Follow) {
        self.height = height
        self.follow = follow
    }

    /// Transactions one watcher waits for at most; past it a submit fails with 503 at once.
    static let slotsMax = 100_000

    /// Registers `txID` (before its envelope is broadcast) and returns where its commit will land.
    func register(_ txID: String, timeoutMs: UInt32) async throws -> Slot {
        try await ensureFollowing()
        let slot = Slot(deadline: .now + .milliseconds(Int(timeoutMs)))
        let admitted = state.withLock { s in
            guard s.slots.count < Self.slotsMax else { return false }
            s.slots[txID] = slot
            return true
        }
        guard admitted else {
            throw CallFailure(
                status: 503,
                message: "this client already waits for \(Self.slotsMax) commits; retry when some have arrived")
        }
        return slot
    }

    /// Forgets a waiter whose transaction will not be waited for, and ends its wait: a task still
    /// suspended on the slot (its continuation knows no cancellation) would otherwise never resume.
    func unregister(_ txID: String) {
        state.withLock { $0.slots.removeValue(forKey: txID) }?.finish(.failure(WaitError.timedOut))
    }

    func close() {
        let (task, slots) = state.withLock { s in
            s.closed = true
            defer {
                s.slots = [:]
                s.running = nil
            }
            return (s.running, Array(s.slots.values))
        }
        task?.cancel()
        for slot in slots { slot.finish(.failure(WaitError.streamLost)) }
    }

    /// Starts the stream once; concurrent first callers wait for the same start.
    private func ensureFollowing() async throws {
        let task = state.withLock { s -> Task<Void, any Error> in
            if let t = s.running { return t }
            let t = Task { try await self.startFollowing() }
            s.running = t
            return t
        }
        do { try await task.value } catch {
            state.withLock { s in if s.running == task { s.running = nil } }
            throw error
        }
    }

    /// Learns the height, then follows in the background. Returns once following has begun.
    private func startFollowing() async throws {
        let start = try await height()
        Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await self.follow(start) { block in self.committed(block) }
                    } catch {}
                }
                group.addTask { await self.expireLoop() }
                await group.next()
                group.cancelAll()
            }
            self.lost()
        }
    }

    private func committed(_ block: Medledger_FilteredBlock) {
        let done = state.withLock { s in
            block.transactions.compactMap { tx in s.slots.removeValue(forKey: tx.txID).map { ($0, tx.code) } }
        }
        for (slot, code) in done { slot.finish(.success(Commit(code: code, blockNumber: block.number))) }
    }

    /// Fails waiters whose time is up; ends when the stream does.
    private func expireLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = ContinuousClock.now
            let late = state.withLock { s -> [Slot] in
                let ids = s.slots.filter { $0.value.deadline <= now }.map(\.key)
                return ids.compactMap { s.slots.removeValue(forKey: $0) }
            }
            for slot in late { slot.finish(.failure(WaitError.timedOut)) }
        }
    }

    /// The stream ended: waiters fall back to asking the peer, and the next commit restarts it.
    private func lost() {
        let slots = state.withLock { s -> [Slot] in
            s.running = nil
            defer { s.slots = [:] }
            return Array(s.slots.values)
        }
        for slot in slots { slot.finish(.failure(WaitError.streamLost)) }
    }
}
