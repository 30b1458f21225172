import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LedgerConsensus

/// Raft connections that never get past the TLS handshake are closed by a deadline on both sides.
@Suite struct RaftHandshakeDeadlineTests {
    /// Dialling a consenter that is frozen (its kernel accepts the TCP connection, nobody answers the
    /// handshake) fails at the deadline, so libraft tries again later instead of waiting on it.
    @Test(.timeLimit(.minutes(1))) func aDialToAConsenterThatNeverHandshakesFails() async throws {
        let tls = try TestTLSIdentity(name: "orderer1")
        let transport = TLSRaftTransport(listenHost: "127.0.0.1", listenPort: 0, identity: tls.identity)
        try await transport.start()
        // Accepts connections and never reads from them.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(silent.localAddress?.port)
        let started = ContinuousClock.now
        // The outcome and when it came, noted on the event loop (the test's task may wait for a thread).
        let dialled = Mutex<(Result<Int32, any Error>, ContinuousClock.Instant)?>(nil)
        transport.dial(RaftPeer(id: 2, address: "127.0.0.1:\(port)", publicKey: tls.publicKey), channel: "records")
            .whenComplete { result in dialled.withLock { $0 = (result, .now) } }
        // Waits boundedly (a future's wait cannot be cancelled): a regression fails, not hangs.
        let timeout = Duration.nanoseconds(TLSRaftTransport.handshakeTimeout.nanoseconds)
        let ended = await eventually(15) { dialled.withLock { $0 != nil } }
        #expect(ended, "the dial had not ended after \(ContinuousClock.now - started)")
        guard let (result, endedAt) = dialled.withLock({ $0 }) else { return }
        let took = endedAt - started
        if case .success = result { Issue.record("a dial to a silent listener succeeded") }
        #expect(took >= timeout - .milliseconds(100) && took < timeout + .seconds(10), "the dial took \(took)")
        try await silent.close()
        await transport.shutdown()
    }

    /// A caller that connects to the raft listener and sends nothing is refused and disconnected.
    @Test(.timeLimit(.minutes(1))) func aConnectionThatNeverHandshakesIsClosedByTheListener() async throws {
        let tls = try TestTLSIdentity(name: "orderer1")
        let transport = TLSRaftTransport(listenHost: "127.0.0.1", listenPort: 0, identity: tls.identity)
        try await transport.start()
        let before = transport.refusedConnections
        let quiet = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: transport.listenPort).get()
        #expect(await eventually(15) { !quiet.isActive }, "the listener kept a silent connection open")
        #expect(await eventually(3) { transport.refusedConnections == before + 1 })
        try? await quiet.close()
        await transport.shutdown()
    }
}
