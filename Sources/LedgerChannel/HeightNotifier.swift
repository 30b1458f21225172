import Synchronization

/// Wakes tasks waiting for a chain to grow: delivery streams, commit-status waits. `advance` is called
/// after each durable commit.
public final class HeightNotifier: Sendable {
    private struct State {
        var height: UInt64
        var nextID = 0
        var waiters: [Int: (above: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
        var closed = false
    }

    private let state: Mutex<State>

    public init(height: UInt64) { state = Mutex(State(height: height)) }

    public var height: UInt64 { state.withLock { $0.height } }
    public var isClosed: Bool { state.withLock { $0.closed } }

    public func advance(to height: UInt64) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.height = max(s.height, height)
            let due = s.waiters.filter { $0.value.above < s.height }
            for id in due.keys { s.waiters[id] = nil }
            return due.map(\.value.continuation)
        }
        for c in ready { c.resume() }
    }

    /// Wakes every waiter for good (shutdown).
    public func close() {
        let all = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters.removeAll() }
            return s.waiters.values.map(\.continuation)
        }
        for c in all { c.resume() }
    }

    /// Returns once the height is above `height`, the notifier is closed, or the task is cancelled.
    public func wait(untilAbove height: UInt64) async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.height > height || s.closed || Task.isCancelled { return true }
                    s.waiters[id] = (height, c)
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id)?.continuation }
            c?.resume()
        }
    }

    /// Like `wait(untilAbove:)` but gives up after `milliseconds`.
    public func wait(untilAbove height: UInt64, timeoutMilliseconds: Int) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait(untilAbove: height) }
            group.addTask { try? await Task.sleep(for: .milliseconds(timeoutMilliseconds)) }
            await group.next()
            group.cancelAll()
        }
    }
}
