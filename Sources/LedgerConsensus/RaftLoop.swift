import CRaft
import Foundation
import Synchronization

/// One libuv loop on one dedicated thread, where every libraft call of the raft servers it hosts is
/// made. libuv is not thread-safe: the only call other threads make is `uv_async_send`, which wakes
/// the loop to run the jobs they queued under a lock (`run`).
public final class RaftLoop: @unchecked Sendable {
    /// Owned by the loop thread once `start` returns; other threads only touch `wakeup` and `jobs`.
    let loop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let jobs = Mutex<JobQueue>(JobQueue())
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    struct JobQueue {
        var pending: [() -> Void] = []
        var closed = false
    }

    public init(name: String = "raft-loop") throws(ConsensusError) {
        loop = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        let rv = uv_loop_init(loop)
        guard rv == 0 else {
            loop.deallocate()
            wakeup.deallocate()
            throw .failed("uv_loop_init: \(String(cString: uv_strerror(rv)))")
        }
        uv_async_init(loop, wakeup) { handle in
            guard let handle, let data = handle.pointee.data else { return }
            Unmanaged<RaftLoop>.fromOpaque(data).takeUnretainedValue().drain()
        }
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let thread = Thread { [self] in
            uv_run(loop, UV_RUN_DEFAULT)
            finished.signal()
        }
        thread.name = name
        thread.stackSize = 4 << 20
        self.thread = thread
        thread.start()
    }

    deinit {
        // `shutdown` ran (it is the only way `finished` is signalled and the loop closed).
        loop.deallocate()
        wakeup.deallocate()
    }

    /// Queues `job` to run on the loop thread. False (and the job dropped) once the loop is shutting down.
    @discardableResult
    public func run(_ job: @escaping @Sendable () -> Void) -> Bool {
        let queued = jobs.withLock { q -> Bool in
            guard !q.closed else { return false }
            q.pending.append(job)
            return true
        }
        if queued { uv_async_send(wakeup) }
        return queued
    }

    /// Runs `body` on the loop thread and returns its result.
    public func call<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(ConsensusError) -> T {
        let result: T? = await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
            if !run({ c.resume(returning: body()) }) { c.resume(returning: nil) }
        }
        guard let result else { throw .shuttingDown }
        return result
    }

    /// True on the loop thread.
    public var isLoopThread: Bool { Thread.current === thread }

    private func drain() {
        let batch = jobs.withLock { q -> [() -> Void] in
            defer { q.pending.removeAll(keepingCapacity: true) }
            return q.pending
        }
        for job in batch { job() }
    }

    /// Stops the loop once every handle on it is closed. The raft servers on the loop must have been
    /// closed first (`RaftServer.stop`); this closes the wake-up handle, lets `uv_run` return, and
    /// waits for the thread. Idempotent.
    public func shutdown() {
        let first = jobs.withLock { q -> Bool in
            defer { q.closed = true }
            return !q.closed
        }
        guard first else { return }
        // Not through `run`: the queue is closed. The async callback drains what was queued before,
        // then this closes the handle on the loop thread via a final queued closure.
        jobs.withLock { q in
            q.pending.append { [wakeup] in
                uv_close(UnsafeMutableRawPointer(wakeup).assumingMemoryBound(to: uv_handle_t.self), nil)
            }
        }
        uv_async_send(wakeup)
        finished.wait()
        uv_loop_close(loop)
    }
}
