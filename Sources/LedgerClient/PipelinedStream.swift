import DequeModule
import LedgerTransport
import Synchronization

/// One long-lived bidirectional stream that many callers share: each call queues a request and waits
/// for its answer. Requests travel in batches: whatever queued up while the previous batch was being
/// written goes out as one message (at most `batchMax`), so under load a transaction costs a share of
/// a message rather than a call of its own (headers, a server task, a peer-certificate parse), and
/// alone it goes out at once. The server answers every item in order, so answers are matched to
/// callers by position. At most `batchesInFlightMax` batches are out unanswered at once: the node
/// refuses a stream's batches past its own limit (`StreamLimits`) with 503, and a busy client held
/// to this one sends fewer, fuller batches instead.
///
/// While `holdAtUnanswered` requests or more are unanswered, queued requests wait until they are as
/// many as those (or `batchMax`), or until the last answer of a batch brings the count below. For
/// proposals the node then has that many of this stream's requests to work through, answered in
/// order, so a request sent at once would not be answered much sooner, and each message costs both
/// sides far more than a request in it (a round trip's CPU here is that of tens of reads). Without
/// the hold, the first caller back from an answered batch went out alone: with 64 reads in flight,
/// 38 % of the messages carried one request. Envelopes are not held: the orderer answers a batch
/// when its block is cut, and a held envelope could miss the block still open.
///
/// When the stream ends (node restarted, connection lost) every caller still waiting gets the error
/// and the next call opens a new stream. With `stallAfter`, a stream on which calls wait but nothing
/// has been answered for that long is ended too: a frozen or cut-off node keeps its connection open
/// and answers nothing, and no error would ever come (one watchdog per stream, not a timer per call).
final class PipelinedStream<Request: Sendable, Answer: Sendable>: Sendable {
    /// Runs one stream: writes each batch `batches` yields and hands every answer to `answer`, in
    /// order; returns or throws when the stream ends.
    typealias Open = @Sendable (_ batches: Batches, _ answer: @escaping @Sendable (Answer) -> Void) async throws -> Void

    struct Ended: Error, CustomStringConvertible {
        var cause: String
        /// The error the stream ended with, if it ended with one (the node's refusal, say).
        var underlying: (any Error)? = nil
        var description: String { "stream to the node ended: \(cause)" }
    }

    /// The batches to write, as an async sequence: each element is everything queued (up to the cap).
    struct Batches: AsyncSequence, Sendable {
        let wakeups: AsyncStream<Void>
        let drain: @Sendable () -> [Request]

        struct AsyncIterator: AsyncIteratorProtocol {
            var wakeups: AsyncStream<Void>.Iterator
            let drain: @Sendable () -> [Request]
            mutating func next() async -> [Request]? {
                while await wakeups.next() != nil {
                    let batch = drain()
                    if !batch.isEmpty { return batch }
                }
                return nil
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(wakeups: wakeups.makeAsyncIterator(), drain: drain) }
    }

    private struct Generation {
        let id: Int
        let wake: AsyncStream<Void>.Continuation
        var outbox: [Request] = []
        var waiting: [CheckedContinuation<Answer, any Error>] = []
        var head = 0  // waiting[..<head] were answered; compacted now and then
        /// Requests answered so far, and after how many written requests each unanswered batch ends.
        var answered = 0
        var batchEnds = Deque<Int>()
        var sent: Int { batchEnds.last ?? answered }
        /// The last answer, or the call that found nobody waiting: what `stallAfter` is measured from.
        var lastProgress = ContinuousClock.now
    }

    private struct State {
        var current: Generation?
        var nextID = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let open: Open
    let batchMax: Int
    let batchesInFlightMax: Int
    let holdAtUnanswered: Int
    let stallAfter: Duration?

    /// `batchesInFlightMax`: half the node's limit per stream, because the node counts a batch until
    /// its answer is written, and a new batch can arrive a moment before the node has counted the
    /// answered one out.
    /// `holdAtUnanswered`: 32 gained 6–10 % reads a second at 64 in flight and 10–15 % at 128, and
    /// changed nothing at 48 or fewer; holding at any count cost up to a quarter at 3 to 8 in flight,
    /// where the node has cores to spare for a request sent at once.
    init(
        batchMax: Int = 128, batchesInFlightMax: Int = StreamLimits.batchesInFlightMax / 2,
        holdAtUnanswered: Int = 32, stallAfter: Duration? = nil, open: @escaping Open
    ) {
        precondition(batchMax >= 1 && batchesInFlightMax >= 1, "a stream that may send nothing would never answer")
        precondition(holdAtUnanswered >= 1, "a hold with nothing unanswered would never end")
        self.batchMax = batchMax
        self.batchesInFlightMax = batchesInFlightMax
        self.holdAtUnanswered = holdAtUnanswered
        self.stallAfter = stallAfter
        self.open = open
    }

    /// Calls waiting for their answer on one stream at most; past it a call fails with 503 at once.
    static var waitingMax: Int { 50_000 }

    func call(_ request: Request) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            let refused: (any Error)? = state.withLock { s in
                if s.closed { return Ended(cause: "the client was closed") }
                if s.current == nil { s.current = start(&s) }
                if s.current!.waiting.count - s.current!.head >= Self.waitingMax {
                    return CallFailure(
                        status: 503,
                        message:
                            "\(Self.waitingMax) calls already wait on this stream; retry when some have been answered")
                }
                if s.current!.head == s.current!.waiting.count { s.current!.lastProgress = .now }
                s.current!.waiting.append(continuation)
                s.current!.outbox.append(request)
                // Coalesces: the wake-up stream keeps at most one pending element. Not while the
                // writer could send nothing (held, or at `batchesInFlightMax`): the answer that ends a
                // batch wakes it then.
                if canSend(s.current!) { s.current!.wake.yield(()) }
                return nil
            }
            if let refused { continuation.resume(throwing: refused) }
        }
    }

    /// Ends the stream; calls still waiting fail.
    func close() {
        let orphans = state.withLock { s -> [CheckedContinuation<Answer, any Error>] in
            s.closed = true
            guard let g = s.current else { return [] }
            s.current = nil
            g.wake.finish()
            return Array(g.waiting[g.head...])
        }
        for c in orphans { c.resume(throwing: Ended(cause: "the client was closed")) }
    }

    private func start(_ s: inout State) -> Generation {
        let id = s.nextID
        s.nextID += 1
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let batches = Batches(wakeups: wakeups) { [weak self] in self?.drain(generation: id) ?? [] }
        Task {
            do {
                try await open(batches) { answer in self.deliver(answer, generation: id) }
                self.end(generation: id, cause: "closed by the node")
            } catch {
                self.end(generation: id, cause: "\(error)", underlying: error)
            }
        }
        if let stallAfter { Task { [weak self] in await self?.watch(generation: id, stallAfter: stallAfter) } }
        return Generation(id: id, wake: wake)
    }

    /// Ends generation `generation` once calls have waited `stallAfter` with no answer; returns when
    /// the generation ends another way.
    private func watch(generation: Int, stallAfter: Duration) async {
        while true {
            try? await Task.sleep(for: stallAfter / 4)
            let stalled: Bool? = state.withLock { s in
                guard let g = s.current, g.id == generation else { return nil }
                return g.head < g.waiting.count && ContinuousClock.now - g.lastProgress > stallAfter
            }
            guard let stalled else { return }
            if stalled { return end(generation: generation, cause: "no answer within \(stallAfter)") }
        }
    }

    /// The next batch to write; empty if nothing is queued, if `batchesInFlightMax` batches are
    /// unanswered, or if the queued requests are held (`holdAtUnanswered`). The answer that
    /// completes a batch wakes the writer again, and so does a request that makes a batch sendable.
    private func drain(generation: Int) -> [Request] {
        state.withLock { s in
            guard s.current?.id == generation, canSend(s.current!) else { return [] }
            let n = min(batchMax, s.current!.outbox.count)
            let batch = Array(s.current!.outbox.prefix(n))
            s.current!.outbox.removeFirst(n)
            s.current!.batchEnds.append(s.current!.sent + n)
            if canSend(s.current!) { s.current!.wake.yield(()) }  // more than one batch queued
            return batch
        }
    }

    /// Whether the writer may send a batch now: something is queued, fewer than `batchesInFlightMax`
    /// batches are unanswered, and the queued requests are not held.
    private func canSend(_ g: Generation) -> Bool {
        let queued = min(batchMax, g.outbox.count)
        return queued > 0 && g.batchEnds.count < batchesInFlightMax
            && !holds(queued, unanswered: g.sent - g.answered)
    }

    /// Whether `queued` requests wait for more company (see the type's comment).
    func holds(_ queued: Int, unanswered: Int) -> Bool {
        unanswered >= holdAtUnanswered && queued < min(unanswered, batchMax)
    }

    private func deliver(_ answer: Answer, generation: Int) {
        let outcome = state.withLock { s -> (waiter: CheckedContinuation<Answer, any Error>?, excess: Bool) in
            guard s.current?.id == generation, s.current!.head < s.current!.waiting.count else { return (nil, false) }
            // An answer for a request not yet written would go to the wrong caller: the node is broken.
            guard s.current!.answered < s.current!.sent else { return (nil, true) }
            let w = s.current!.waiting[s.current!.head]
            s.current!.head += 1
            s.current!.lastProgress = .now
            s.current!.answered += 1
            if s.current!.batchEnds.first == s.current!.answered {
                // A whole batch is answered: the writer may send what queued meanwhile.
                s.current!.batchEnds.removeFirst()
                if canSend(s.current!) { s.current!.wake.yield(()) }
            }
            if s.current!.head >= 1024, s.current!.head * 2 >= s.current!.waiting.count {
                s.current!.waiting.removeFirst(s.current!.head)
                s.current!.head = 0
            }
            return (w, false)
        }
        if outcome.excess {
            return end(generation: generation, cause: "the node answered more requests than were sent")
        }
        outcome.waiter?.resume(returning: answer)
    }

    private func end(generation: Int, cause: String, underlying: (any Error)? = nil) {
        let orphans = state.withLock { s -> [CheckedContinuation<Answer, any Error>] in
            guard let g = s.current, g.id == generation else { return [] }
            s.current = nil
            g.wake.finish()
            return Array(g.waiting[g.head...])
        }
        for c in orphans { c.resume(throwing: Ended(cause: cause, underlying: underlying)) }
    }
}
