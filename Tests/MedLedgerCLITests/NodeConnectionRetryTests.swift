import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LedgerClient
import LedgerProtos
import LedgerRPC
import LedgerTransport
import Synchronization
import Testing

/// `NodeConnection.with` (the CLI's one-shot commands, the SDK's CA and care clients, an object client
/// without a pool) tries again when no connection to the node ever completed its handshake, and only
/// then: a node that starts a moment late is reached, a node that is down is reported with the cause,
/// and a call the node itself refused is never sent twice.
@Suite struct NodeConnectionRetryTests {
    typealias TestPKI = HandshakeDeadlineTests.TestPKI

    @Test(.timeLimit(.minutes(1))) func aNodeThatListensAMomentLateIsReachedOnALaterTry() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let port = try #require(NodeAddress.freeLoopbackPort())
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: port),
                transportSecurity: ServerSecurity.serverTLS(identity: pki.server)),
            services: [])
        let serving = Task {
            try await Task.sleep(for: .milliseconds(300))
            try await server.serve()
        }
        defer {
            server.beginGracefulShutdown()
            serving.cancel()
        }
        // The last wait is long so that a loaded machine's slow start still falls inside it.
        let failure = await Self.broadcastFailure(port: port, pki: pki, retryDelays: [.milliseconds(500), .seconds(5)])
        // The server has no services: "unimplemented" is its answer, so the call got through.
        #expect(
            failure?.status == 500 && failure?.message.contains("unimplemented") == true,
            "\(String(describing: failure))")
    }

    @Test(.timeLimit(.minutes(1))) func aNodeThatIsDownIsReportedWithTheCauseAfterTheRetries() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let port = try #require(NodeAddress.freeLoopbackPort())
        let started = ContinuousClock.now
        let failure = try #require(
            await Self.broadcastFailure(port: port, pki: pki, retryDelays: [.milliseconds(200), .milliseconds(400)]))
        let took = ContinuousClock.now - started
        #expect(failure.status == 503, "\(failure)")
        #expect(failure.message.lowercased().contains("connection refused"), "\(failure.message)")
        #expect(took >= .milliseconds(600), "gave up after \(took), before both waits")
    }

    @Test(.timeLimit(.minutes(1))) func aCallTheNodeRefusedAfterTheHandshakeIsNotSentAgain() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let calls = Counter()
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: 0),
                transportSecurity: ServerSecurity.serverTLS(identity: pki.server)),
            services: [Unavailable(calls: calls)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            let failure = await Self.broadcastFailure(port: port, pki: pki, retryDelays: [.milliseconds(100)])
            #expect(
                failure?.status == 503 && failure?.message.contains("busy") == true, "\(String(describing: failure))")
            #expect(
                calls.value.load(ordering: .relaxed) == 1,
                "the node was called \(calls.value.load(ordering: .relaxed)) times")
        }
    }

    /// A broadcast through `NodeConnection.with`; nil if it succeeded.
    static func broadcastFailure(port: Int, pki: TestPKI, retryDelays: [Duration]) async -> CallFailure? {
        do {
            _ = try await NodeConnection.with(
                NodeAddress(host: "127.0.0.1", port: port), trustedRootsPEM: pki.rootPEM, identity: pki.client,
                retryDelays: retryDelays
            ) { client in try await Medledger_Orderer.Client(wrapping: client).broadcast(Medledger_Envelope()) }
            return nil
        } catch let f as CallFailure {
            return f
        } catch {
            return CallFailure(status: 0, message: "not a CallFailure: \(error)")
        }
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// A node that answers every broadcast "unavailable" itself, counting them.
    struct Unavailable: RegistrableRPCService {
        let calls: Counter

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            let calls = self.calls
            router.registerHandler(
                forMethod: Medledger_Orderer.Method.Broadcast.descriptor,
                deserializer: ProtobufDeserializer<Medledger_Envelope>(),
                serializer: ProtobufSerializer<Medledger_BroadcastResponse>()
            ) {
                (
                    _: StreamingServerRequest<Medledger_Envelope>, _
                ) -> StreamingServerResponse<Medledger_BroadcastResponse> in
                calls.value.add(1, ordering: .relaxed)
                throw RPCError(code: .unavailable, message: "busy")
            }
        }
    }
}
