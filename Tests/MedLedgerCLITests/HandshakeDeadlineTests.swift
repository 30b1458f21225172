import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
import LedgerClient
import LedgerIdentity
import LedgerOperations
import LedgerProtos
import LedgerRPC
import LedgerTransport
import Synchronization
import Testing
import X509

/// Every client connection (CLI, gateway, a node's pulls and forwards) has until a deadline to finish
/// its TCP connect and TLS handshake.
@Suite struct HandshakeDeadlineTests {
    /// A frozen node: the kernel completes the TCP handshake for its listening socket, nobody answers
    /// the TLS one. A call with no deadline of its own must fail as unavailable once the connection's
    /// deadline passes, instead of waiting for the node to wake.
    @Test(.timeLimit(.minutes(1))) func aCallToANodeThatNeverHandshakesFailsAtTheConnectionDeadline() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let (socket, port) = try LeaderForwardingTests.listenerThatNeverAccepts()
        defer { close(socket) }
        let transport = try ClientSecurity.transport(
            to: NodeAddress(host: "127.0.0.1", port: port), trustedRootsPEM: pki.rootPEM, identity: pki.client,
            handshakeTimeout: .seconds(1))

        let started = ContinuousClock.now
        let error = try await withGRPCClient(transport: transport) { client in
            await Self.callError(client)
        }
        let took = ContinuousClock.now - started
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        // What the CLI prints says why: the handshake's deadline, not only "could not connect".
        let shown = CallFailure.classify(try #require(error)).message
        #expect(shown.contains("node unreachable") && shown.contains("TLS handshake within 1.0 s"), "\(shown)")
        // The upper bound is loose: without the deadline the call would never end, and on a loaded
        // machine the test's own task may wait a while for a thread once the call has failed.
        #expect(took >= .milliseconds(900) && took < .seconds(30), "the call took \(took)")
    }

    /// Once the handshake is done the deadline is gone: a connection that handshook stays up past it
    /// and carries the next call (one TCP connection for two calls on either side of the deadline).
    @Test(.timeLimit(.minutes(1))) func aConnectionThatHandshookOutlivesTheDeadline() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let accepted = Atomic<Int>(0)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: 0),
                transportSecurity: ServerSecurity.serverTLS(identity: pki.server),
                config: .defaults {
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                        accepted.add(1, ordering: .relaxed)
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                }),
            services: [])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            guard let port = try await server.listeningAddress?.ipv4?.port else {
                Issue.record("the server is not listening")
                server.beginGracefulShutdown()
                return
            }
            let transport = try ClientSecurity.transport(
                to: NodeAddress(host: "127.0.0.1", port: port), trustedRootsPEM: pki.rootPEM, identity: pki.client,
                handshakeTimeout: .seconds(2))
            try await withGRPCClient(transport: transport) { client in
                // The server has no services: "unimplemented" is its answer, so the call got through.
                #expect(await Self.callError(client)?.code == .unimplemented)
                try await Task.sleep(for: .milliseconds(2_800))
                #expect(await Self.callError(client)?.code == .unimplemented)
            }
            #expect(
                accepted.load(ordering: .relaxed) == 1,
                "the client connected \(accepted.load(ordering: .relaxed)) times")
            server.beginGracefulShutdown()
        }
    }

    /// A caller that connects to a node's gRPC port and never starts the TLS handshake is disconnected
    /// at the deadline, so such connections cannot pile up (no certificate is needed to open them).
    @Test(.timeLimit(.minutes(1))) func aServerClosesAConnectionThatNeverHandshakes() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: 0),
                transportSecurity: ServerSecurity.serverTLS(identity: pki.server),
                config: .defaults {
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = ServerSecurity.handshakeDeadline(.seconds(1))
                }),
            services: [])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            let (read, took) = try await Self.connectAndWaitForClose(port: port, waitingAtMost: 8)
            #expect(read == 0, "the server kept the connection open for 8 s (recv gave \(read))")
            #expect(took >= .milliseconds(900), "the server closed it after \(took)")
        }
    }

    /// The operations endpoint (HTTPS, at most 64 connections) closes a connection that sends nothing,
    /// so silent connections cannot take every slot and lock the monitors out.
    @Test(.timeLimit(.minutes(1))) func theOperationsEndpointClosesASilentConnection() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        var operations = OperationsServer(
            host: "127.0.0.1", port: 0, certificatePath: pki.server.certificatePath, keyPath: pki.server.keyPath,
            trust: TrustStore(roots: [try Certificate(pemEncoded: String(decoding: pki.rootPEM, as: UTF8.self))]),
            organization: "hospital-a", version: "test", metrics: NodeMetrics(version: "test"), sample: {}, checks: [])
        operations.idleTimeout = .seconds(1)
        let (ports, bound) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { [operations] in try await operations.run { bound.yield($0) } }
        defer { serving.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let (read, took) = try await Self.connectAndWaitForClose(port: port, waitingAtMost: 8)
        #expect(read == 0, "the endpoint kept the connection open for 8 s (recv gave \(read))")
        #expect(took >= .milliseconds(900), "the endpoint closed it after \(took)")
    }

    /// Connects to 127.0.0.1:`port`, sends nothing, and reads: 0 once the other side closes, -1 if it
    /// has not within `seconds`; and how long that took, timed on the reading thread (the test's task
    /// may wait for a thread afterwards on a loaded machine). On a thread of its own: the blocking read
    /// must not hold one of the few threads the concurrent tests share.
    static func connectAndWaitForClose(
        port: Int, waitingAtMost seconds: Int
    ) async throws -> (read: Int, took: Duration) {
        try await withCheckedThrowingContinuation { done in
            Thread {
                let started = ContinuousClock.now
                let read = Result { try blockingConnectAndWaitForClose(port: port, seconds: seconds) }
                done.resume(with: read.map { ($0, ContinuousClock.now - started) })
            }.start()
        }
    }

    static func blockingConnectAndWaitForClose(port: Int, seconds: Int) throws -> Int {
        let fd = try connectedSocket(port: port, readTimeoutSeconds: seconds)
        defer { close(fd) }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0)
    }

    /// A TCP connection to 127.0.0.1:`port` (blocking), whose reads give up after `readTimeoutSeconds`.
    static func connectedSocket(port: Int, readTimeoutSeconds seconds: Int) throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    /// The error of one broadcast with no deadline of its own, nil if it succeeded.
    static func callError(_ client: GRPCClient<HTTP2ClientTransport.Posix>) async -> RPCError? {
        do {
            _ = try await Medledger_Orderer.Client(wrapping: client).broadcast(Medledger_Envelope())
            return nil
        } catch let e as RPCError {
            return e
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }

    /// A CA of the test's own, a server certificate for 127.0.0.1 and a client certificate, in files.
    struct TestPKI {
        let dir: String
        let rootPEM: [UInt8]
        let server: TLSIdentityFiles
        let client: TLSIdentityFiles

        init() throws {
            let dir = NSTemporaryDirectory() + "handshake-deadline-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let caKey = P384.Signing.PrivateKey()
            let ca = try CertificateFactory.selfSignedRoot(
                key: caKey, name: try DistinguishedName { CommonName("Handshake test CA") }, validity: 86_400)
            self.dir = dir
            rootPEM = Array(ca.pem.utf8)
            server = try Self.issue(dir, "server", forServer: true, ca: ca, caKey: caKey)
            client = try Self.issue(dir, "client", forServer: false, ca: ca, caKey: caKey)
        }

        static func issue(
            _ dir: String, _ name: String, forServer: Bool, ca: Certificate, caKey: P384.Signing.PrivateKey
        ) throws -> TLSIdentityFiles {
            let key = P256.Signing.PrivateKey()
            let cert = try CertificateFactory.issue(
                publicKey: .init(key.publicKey),
                identity: IdentityAttributes(pid: String(repeating: "R", count: 64), org: "hospital-a", role: "node"),
                purpose: .tls, ipAddresses: forServer ? ["127.0.0.1"] : [], serverAuth: forServer, issuer: ca,
                issuerKey: caKey, validity: 86_400)
            return try IdentityNetworkTests.writeIdentity(dir, name, cert: cert, key: key).tls
        }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }
}
