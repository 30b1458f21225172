import GRPCCore
import LedgerTransport
import ServiceLifecycle
import Synchronization

/// Runs `work` on each request of a stream in its own task, so a request need not wait for the one
/// before it, and writes the answers in request order. At most `inFlightMax` requests of one stream
/// are worked on at once; past that a request is answered at once with `overflow` (a 503 with a
/// retry hint), so one client cannot make the node hold unbounded work.
enum InOrderPipeline {
    static let inFlightMax = StreamLimits.batchesInFlightMax
    static let overflowMessage =
        "too many requests in flight on this stream (\(inFlightMax)); retry after the earlier answers arrive"

    final class InFlight: Sendable { let count = Mutex(0) }

    enum Pending<Answer: Sendable>: Sendable {
        case working(Task<Answer, Never>)
        case ready(Answer)
    }

    static func run<Request: Sendable, Answer: Sendable>(
        _ requests: RPCAsyncSequence<Request, any Error>, _ writer: RPCWriter<Answer>,
        overflow: @escaping @Sendable (Request) -> Answer, work: @escaping @Sendable (Request) async -> Answer
    ) async throws {
        let (pending, sink) = AsyncStream.makeStream(of: Pending<Answer>.self)
        let inFlight = InFlight()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await p in pending {
                    switch p {
                    case .working(let task):
                        try await writer.write(await task.value)
                        // Counted until written: a client that stops reading stops the node reading.
                        inFlight.count.withLock { $0 -= 1 }
                    case .ready(let answer): try await writer.write(answer)
                    }
                }
            }
            group.addTask {
                defer { sink.finish() }
                try await takeUntilShutdown(requests) { request in
                    let admitted = inFlight.count.withLock { n in
                        guard n < inFlightMax else { return false }
                        n += 1
                        return true
                    }
                    guard admitted else {
                        sink.yield(.ready(overflow(request)))
                        return
                    }
                    sink.yield(.working(Task { await work(request) }))
                }
            }
            // Whichever side fails ends the stream: a writer that cannot write (the client went, or
            // the caller was suspended) must not leave the reader waiting for requests forever.
            do {
                while try await group.next() != nil {}
            } catch {
                group.cancelAll()
                sink.finish()
                throw error
            }
        }
    }

    /// Hands each request to `take` until the client ends the stream or the node begins its graceful
    /// shutdown. At shutdown the stream takes no more: what it took is still answered and the call
    /// then ends, instead of holding the node's shutdown until the server's drain time cuts it (a
    /// client keeps these streams open as long as its gateway). A request the node never read was
    /// never acknowledged: the client fails it with 503 and may send it elsewhere.
    static func takeUntilShutdown<Request: Sendable>(
        _ requests: RPCAsyncSequence<Request, any Error>, _ take: @escaping @Sendable (Request) -> Void
    ) async throws {
        do {
            try await cancelWhenGracefulShutdown {
                for try await request in requests { take(request) }
            }
        } catch  where Task.isShuttingDownGracefully && isCancellation(error) {
            return  // reading was cut short by the shutdown; any other error still fails the call
        }
    }

    /// How a request stream reports that its reader was cancelled: NIO's sequence throws
    /// `CancellationError`, gRPC may wrap it.
    static func isCancellation(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        guard let rpc = error as? RPCError else { return false }
        return rpc.code == .cancelled || rpc.cause is CancellationError
    }
}
