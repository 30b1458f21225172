import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerChannel
import Logging
import ServiceLifecycle

/// The long-lived parts of a node as swift-service-lifecycle services, run by one `ServiceGroup`:
/// SIGTERM or SIGINT shuts them down gracefully in the reverse of their order in the group, each
/// finishing before the next is told (see `NodeServer.run`).

/// A gRPC server: serves until graceful shutdown, then stops accepting and drains its calls for at
/// most `drainMax`. Calls still open then (a client's stream that it keeps open) are cut, so that
/// SIGTERM always ends the node. The clients' endorsement and broadcast streams end by themselves at
/// the shutdown (`InOrderPipeline`), so a node whose clients answer stops at once.
///
/// `serve()` runs in a task of its own so that the node can stop without it: once a call's handler
/// has returned, grpc-swift-nio-transport (2.9.2) waits for the client to close its half of the
/// stream, and that wait does not end on cancellation. A client that never does (gone quiet, or
/// its threads busy) would otherwise keep a SIGTERMed node running for ever; after the cut the
/// server gets `abandonAfter` more, then the node stops without it (the orderer has written what it
/// acknowledged and the block pullers have stopped; a call still running gets "closed" from the
/// stores, which close as the node exits).
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    var drainMax: Duration = .seconds(5)
    var abandonAfter: Duration = .seconds(2)
    var log: @Sendable (String) -> Void = { _ in }

    func run() async throws {
        // Closed once `serve()` has returned: a wait on it can time out, and ends on cancellation.
        let ended = HeightNotifier(height: 0)
        let serving = Task {
            defer { ended.close() }
            try await server.serve()
        }
        try await withTaskCancellationHandler {
            if await Self.shutdownBegins(before: ended) {
                server.beginGracefulShutdown()
                if await Self.closes(ended, within: drainMax) { return try await serving.value }
                if !Task.isCancelled {
                    log("medledgerd: calls still open \(drainMax) after shutdown began are cut (clients' open streams)")
                }
            } else if ended.isClosed {
                return try await serving.value  // the server stopped by itself: its error stops the node
            }
            serving.cancel()
            // Cancelled from outside (another service failed, the group is stopping): no wait.
            if Task.isCancelled { return }
            if await Self.closes(ended, within: abandonAfter) { return }
            log("medledgerd: the gRPC server still held calls \(abandonAfter) after they were cut; stopping without it")
        } onCancel: {
            serving.cancel()
        }
    }

    /// True when the graceful shutdown begins; false when serving ends first or the task is cancelled.
    private static func shutdownBegins(before ended: HeightNotifier) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await ended.wait(untilAbove: .max)
                return false
            }
            group.addTask { (try? await gracefulShutdown()) != nil }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Whether `ended` closes within `limit`.
    private static func closes(_ ended: HeightNotifier, within limit: Duration) async -> Bool {
        await ended.wait(untilAbove: .max, timeoutMilliseconds: Int(limit / .milliseconds(1)))
        return ended.isClosed
    }
}

/// Work that runs until the node shuts down (a poller, the operations endpoint): cancelled then.
/// An error it throws (the operations endpoint cannot bind) stops the node with that error.
struct BackgroundService: Service {
    let name: String
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// One ordered step of the node's shutdown (end the block pullers, drain the orderer, close raft):
/// waits for graceful shutdown, then does `stop` before the services before it are told.
struct ShutdownStep: Service {
    let name: String
    let stop: @Sendable () async -> Void

    func run() async throws {
        try? await gracefulShutdown()
        await stop()
    }
}

extension Logger {
    /// The service group's own logger: the node reports through its log lines, not swift-log's default
    /// backend (which would write to stderr).
    static let silent = Logger(label: "medledger.services", factory: { _ in SwiftLogNoOpLogHandler() })
}
