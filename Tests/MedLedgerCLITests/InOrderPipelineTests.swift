import GRPCCore
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import LedgerNode

/// The node's side of a client's long-lived streams (endorsements, broadcasts): at the node's graceful
/// shutdown the stream takes no more requests, answers what it took, in order, and ends, although
/// the client keeps its side open.
@Suite struct InOrderPipelineTests {
    final class Written: RPCWriterProtocol, Sendable {
        let answers = Mutex([Int]())
        func write(_ element: Int) async throws { answers.withLock { $0.append(element) } }
        func write(contentsOf elements: some Sequence<Int> & Sendable) async throws {
            for e in elements { try await write(e) }
        }
    }

    /// Requests as the server transport hands them over: a reader that is cancelled gets
    /// `CancellationError` (NIO's sequence throws it), not an end of stream.
    struct ClientRequests: AsyncSequence, Sendable {
        let stream: AsyncThrowingStream<Int, any Error>

        struct AsyncIterator: AsyncIteratorProtocol {
            var inner: AsyncThrowingStream<Int, any Error>.AsyncIterator
            mutating func next() async throws -> Int? {
                let next = try await inner.next()
                if next == nil, Task.isCancelled { throw CancellationError() }
                return next
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inner: stream.makeAsyncIterator()) }
    }

    @Test(.timeLimit(.minutes(1))) func gracefulShutdownAnswersWhatWasTakenAndEndsTheStream() async throws {
        let (requests, client) = AsyncThrowingStream.makeStream(of: Int.self, throwing: (any Error).self)
        defer { client.finish() }  // the client never closes its side before the node ends the call
        let written = Written()
        let (takenThree, tookThree) = AsyncStream.makeStream(of: Void.self)
        final class Taken: Sendable { let count = Atomic(0) }
        let taken = Taken()  // signals the third request's arrival
        try await testGracefulShutdown { shutdown in
            let (ended, end) = AsyncStream.makeStream(of: Void.self)
            let call = Task {
                defer { end.finish() }
                try await InOrderPipeline.run(
                    RPCAsyncSequence(wrapping: ClientRequests(stream: requests)), RPCWriter(wrapping: written),
                    overflow: { -$0 }
                ) { request in
                    if taken.count.add(1, ordering: .relaxed).newValue == 3 { tookThree.yield() }
                    try? await Task.sleep(for: .milliseconds(50 * (3 - request)))  // the first finishes last
                    return request * 10
                }
            }
            for i in 0..<3 { client.yield(i) }
            for await _ in takenThree { break }
            shutdown.triggerGracefulShutdown()
            // Ends without the client ending its stream (bounded, so that a regression fails, not hangs).
            let endedInTime = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await _ in ended {}
                    return true
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(10))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            #expect(endedInTime, "the stream was still open 10 s after the shutdown began")
            call.cancel()
            try await call.value  // ended normally: the shutdown is not an error of the call
        }
        #expect(written.answers.withLock { $0 } == [0, 10, 20])
    }

    /// An error of the request stream during the shutdown is not taken for the shutdown: the call
    /// still fails with it.
    @Test(.timeLimit(.minutes(1))) func aStreamErrorDuringShutdownStillFailsTheCall() async throws {
        struct Broken: Error {}
        /// A stream that fails at once, cancelled or not.
        struct Failing: AsyncSequence, Sendable {
            struct AsyncIterator: AsyncIteratorProtocol {
                mutating func next() async throws -> Int? { throw Broken() }
            }
            func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
        }
        try await testGracefulShutdown { shutdown in
            shutdown.triggerGracefulShutdown()
            await #expect(throws: Broken.self) {
                try await InOrderPipeline.takeUntilShutdown(RPCAsyncSequence(wrapping: Failing())) { _ in }
            }
        }
        #expect(InOrderPipeline.isCancellation(CancellationError()))
        #expect(InOrderPipeline.isCancellation(RPCError(code: .cancelled, message: "cancelled")))
        #expect(!InOrderPipeline.isCancellation(RPCError(code: .unavailable, message: "gone")))
    }

    /// Without a shutdown the stream ends when the client ends it, every request answered.
    @Test(.timeLimit(.minutes(1))) func theClientEndingItsStreamEndsTheCall() async throws {
        let (requests, client) = AsyncThrowingStream.makeStream(of: Int.self, throwing: (any Error).self)
        let written = Written()
        for i in 0..<5 { client.yield(i) }
        client.finish()
        try await InOrderPipeline.run(
            RPCAsyncSequence(wrapping: requests), RPCWriter(wrapping: written), overflow: { -$0 }
        ) { $0 + 1 }
        #expect(written.answers.withLock { $0 } == [1, 2, 3, 4, 5])
    }
}
