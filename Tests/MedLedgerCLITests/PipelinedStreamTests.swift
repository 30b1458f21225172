import Foundation
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
}
