import Foundation
import Synchronization
import Testing

@testable import LedgerClient

/// The broadcast stream's stall watchdog: calls on a stream that answers nothing fail (so a gateway
/// moves to another orderer); a stream that answers, however slowly between calls, is left alone.
/// Margins are wide, and scripts/test.sh runs these apart from the parallel suite, which can hold a
/// task off a core for many seconds.
@Suite struct PipelinedStreamTests {
    @Test(.timeLimit(.minutes(1))) func aStreamThatAnswersNothingEndsAfterStallAfter() async throws {
        let stream = PipelinedStream<Int, Int>(stallAfter: .seconds(1)) { batches, _ in
            for await _ in batches {}  // takes requests, never answers
        }
        defer { stream.close() }
        let start = ContinuousClock.now
        await #expect(throws: PipelinedStream<Int, Int>.Ended.self) { _ = try await stream.call(1) }
        let took = ContinuousClock.now - start
        #expect(took >= .seconds(1) && took < .seconds(10), "\(took)")
    }

    @Test func aStreamThatAnswersIsNotEnded() async throws {
        let stream = PipelinedStream<Int, Int>(stallAfter: .seconds(3)) { batches, answer in
            for await batch in batches {
                try await Task.sleep(for: .milliseconds(20))
                batch.forEach { answer($0 * 2) }
            }
        }
        defer { stream.close() }
        // Calls spread over well beyond stallAfter (idle gaps do not count: nobody waits), each
        // answered within it.
        for i in 0..<5 {
            #expect(try await stream.call(i) == i * 2)
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Many callers at once on a slow node: never more than `batchesInFlightMax` batches unanswered
    /// (the node refuses a stream's batches past its own limit), the callers' requests coalesce into
    /// fuller batches instead, and every caller gets its own answer.
    @Test(.timeLimit(.minutes(1))) func unansweredBatchesStayWithinTheLimit() async throws {
        final class Counts: Sendable { let m = Mutex((now: 0, most: 0, batches: 0)) }
        let counts = Counts()
        let stream = PipelinedStream<Int, Int>(batchMax: 8, batchesInFlightMax: 4) { batches, answer in
            let (toAnswer, queue) = AsyncStream.makeStream(of: [Int].self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await batch in toAnswer {  // a slow node answering in order
                        try await Task.sleep(for: .milliseconds(2))
                        counts.m.withLock { $0.now -= 1 }
                        batch.forEach { answer($0 * 2) }
                    }
                }
                for await batch in batches {
                    counts.m.withLock {
                        $0.now += 1
                        $0.most = max($0.most, $0.now)
                        $0.batches += 1
                    }
                    queue.yield(batch)
                }
                queue.finish()
                try await group.waitForAll()
            }
        }
        defer { stream.close() }
        let answers = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<400 { group.addTask { (i, try await stream.call(i)) } }
            return try await group.reduce(into: [(Int, Int)]()) { $0.append($1) }
        }
        #expect(answers.count == 400)
        #expect(answers.allSatisfy { $0.1 == $0.0 * 2 })
        let seen = counts.m.withLock { $0 }
        #expect(seen.most <= 4, "\(seen.most) batches were unanswered at once")
        #expect(seen.batches < 400 / 2, "\(seen.batches) batches for 400 calls: they did not coalesce")
    }

    /// Below `holdAtUnanswered` unanswered requests a request goes out at once, alone; at or above
    /// it, queued requests wait until they are as many as the unanswered ones, or until the last
    /// answer of a batch brings the unanswered count below the mark. Every caller gets its own answer.
    @Test(.timeLimit(.minutes(1))) func requestsWaitForCompanyWhileManyAreUnanswered() async throws {
        let node = ManualNode()
        let stream = PipelinedStream<Int, Int>(holdAtUnanswered: 4, open: node.open)
        defer { stream.close() }
        var calls = [Task<Int, any Error>]()
        func call(_ i: Int) { calls.append(Task { try await stream.call(i) }) }

        for i in 0..<4 {  // one at a time, with 0 to 3 unanswered: each goes out alone
            call(i)
            try await node.waitUntilSent(i + 1)
        }
        #expect(node.batches.withLock { $0 } == [[0], [1], [2], [3]])

        call(4)  // 4 unanswered: held
        try await node.expectNothingSent(beyond: 4)
        node.answerSent(upTo: 1)  // 3 unanswered: it goes, alone
        try await node.waitUntilSent(5)
        #expect(node.batches.withLock { $0 }.last == [4])

        call(5)  // 4 unanswered again: held until 4 are queued, then they go together
        try await node.expectNothingSent(beyond: 5)
        for i in 6..<9 { call(i) }
        try await node.waitUntilSent(9)
        #expect(Set(node.batches.withLock { $0 }.last!) == [5, 6, 7, 8])

        call(9)
        node.answerSent(upTo: 5)  // the single batches answered: 4 still unanswered, still held
        try await node.expectNothingSent(beyond: 9)
        node.answerSent(upTo: 9)  // none unanswered: it goes
        try await node.waitUntilSent(10)
        node.answerSent(upTo: 10)
        for (i, c) in calls.enumerated() { #expect(try await c.value == i * 2) }
    }

    /// Held requests go as soon as they fill `batchMax`, however many are unanswered; a stream that
    /// never holds (the broadcast stream) sends each request as it comes.
    @Test(.timeLimit(.minutes(1))) func aFullBatchIsNeverHeld() async throws {
        let node = ManualNode()
        let stream = PipelinedStream<Int, Int>(batchMax: 2, holdAtUnanswered: 2, open: node.open)
        defer { stream.close() }
        let first = [Task { try await stream.call(0) }]
        try await node.waitUntilSent(1)
        let second = [Task { try await stream.call(1) }]
        try await node.waitUntilSent(2)
        let held = Task { try await stream.call(2) }
        try await node.expectNothingSent(beyond: 2)
        let filling = Task { try await stream.call(3) }
        try await node.waitUntilSent(4)
        #expect(node.batches.withLock { $0 } == [[0], [1], [2, 3]])
        node.answerSent(upTo: 4)
        for (i, c) in (first + second + [held, filling]).enumerated() { #expect(try await c.value == i * 2) }

        let neverHolding = ManualNode()
        let broadcast = PipelinedStream<Int, Int>(holdAtUnanswered: .max, open: neverHolding.open)
        defer { broadcast.close() }
        var calls = [Task<Int, any Error>]()
        for i in 0..<6 {
            calls.append(Task { try await broadcast.call(i) })
            try await neverHolding.waitUntilSent(i + 1)
        }
        #expect(neverHolding.batches.withLock { $0 } == (0..<6).map { [$0] })
        neverHolding.answerSent(upTo: 6)
        for (i, c) in calls.enumerated() { #expect(try await c.value == i * 2) }
    }

    /// A node driven by the test: it records the batches written and answers when told, in order.
    final class ManualNode: Sendable {
        let batches = Mutex([[Int]]())
        let answer = Mutex<(@Sendable (Int) -> Void)?>(nil)
        let answered = Mutex(0)

        var sent: Int { batches.withLock { $0.joined().count } }

        /// The stream's `open`: records every batch written, answers nothing by itself.
        var open: PipelinedStream<Int, Int>.Open {
            { batches, answer in
                self.answer.withLock { $0 = answer }
                for await batch in batches { self.batches.withLock { $0.append(batch) } }
            }
        }

        func waitUntilSent(_ n: Int) async throws {
            while sent < n { try await Task.sleep(for: .milliseconds(2)) }
        }

        /// A held request would go out within microseconds; 300 ms leaves a wide margin.
        func expectNothingSent(beyond n: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            try await Task.sleep(for: .milliseconds(300))
            #expect(sent == n, "a held request went out", sourceLocation: sourceLocation)
        }

        func answerSent(upTo n: Int) {
            let requests = Array(batches.withLock { $0.joined() })
            let reply = answer.withLock { $0 }!
            answered.withLock { done in
                for r in requests[done..<n] { reply(r * 2) }
                done = n
            }
        }
    }

    /// A node that answers more than it was sent (here one extra answer per batch) must not hand a
    /// caller whose request is still queued an answer meant for nobody: the stream ends instead, and
    /// such a caller fails (and may retry) rather than get a wrong answer.
    @Test(.timeLimit(.minutes(1))) func anAnswerForAnUnsentRequestEndsTheStream() async throws {
        let stream = PipelinedStream<Int, Int>(batchMax: 1, batchesInFlightMax: 1) { batches, answer in
            for await batch in batches {
                try await Task.sleep(for: .milliseconds(5))
                batch.forEach { answer($0 * 2) }
                answer(-1)
            }
        }
        defer { stream.close() }
        let outcomes = await withTaskGroup(of: (Int, Int?).self) { group in
            for i in 1...8 { group.addTask { (i, try? await stream.call(i)) } }
            return await group.reduce(into: [(Int, Int?)]()) { $0.append($1) }
        }
        #expect(outcomes.count == 8)
        for (request, answer) in outcomes {
            #expect(
                answer == nil || answer == request * 2, "request \(request) was answered \(String(describing: answer))")
        }
        #expect(outcomes.contains { $0.1 != nil })
    }
}
