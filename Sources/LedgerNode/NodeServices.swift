import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// The long-lived parts of a node as swift-service-lifecycle services, run by one `ServiceGroup`:
/// SIGTERM or SIGINT shuts them down gracefully in the reverse of their order in the group, each
/// finishing before the next is told (see `NodeServer.run`).

/// A gRPC server: serves until graceful shutdown, then stops accepting and drains its calls for at
/// most `drainMax`. Calls still open then — a client's long-lived streams (endorsements, blocks,
/// events) that it does not close — are cut, so that SIGTERM always ends the node.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    var drainMax: Duration = .seconds(5)
    var log: @Sendable (String) -> Void = { _ in }

    func run() async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await server.serve()
                return true
            }
            group.addTask {
                // Waits for the shutdown signal (or the cancellation that ends the group).
                guard (try? await gracefulShutdown()) != nil else { return false }
                server.beginGracefulShutdown()
                try? await Task.sleep(for: drainMax)
                return false
            }
            // Whichever ends first: the server drained (done), or the drain time ran out (cut the rest).
            while let servedToEnd = try await group.next() {
                if servedToEnd { break }
                if !Task.isCancelled {
                    log("medledgerd: calls still open \(drainMax) after shutdown began are cut (clients' open streams)")
                }
                break
            }
            group.cancelAll()
        }
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
