import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// The long-lived parts of a node as swift-service-lifecycle services, run by one `ServiceGroup`:
/// SIGTERM or SIGINT shuts them down gracefully in the reverse of their order in the group, each
/// finishing before the next is told (see `NodeServer.run`).

/// A gRPC server: serves until graceful shutdown, then stops accepting and drains its calls.
struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
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
