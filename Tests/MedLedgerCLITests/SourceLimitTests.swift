import Foundation
import Glibc
import LedgerIdentity
import LedgerOperations
import NIOCore
import Testing
import X509

@testable import LedgerHTTPConnections

/// The node's HTTPS endpoints admit at most so many connections from one address at once, so that
/// one caller reopening connections cannot hold every slot.
@Suite struct SourceLimitTests {
    @Test(.timeLimit(.minutes(1))) func theOperationsEndpointClosesAConnectionPastTheSourcesMaximum() async throws {
        let pki = try HandshakeDeadlineTests.TestPKI()
        defer { pki.remove() }
        var operations = OperationsServer(
            host: "127.0.0.1", port: 0, certificatePath: pki.server.certificatePath, keyPath: pki.server.keyPath,
            trust: TrustStore(roots: [try Certificate(pemEncoded: String(decoding: pki.rootPEM, as: UTF8.self))]),
            organization: "hospital-a", version: "source-limit-test", metrics: NodeMetrics(version: "test"),
            sample: {}, checks: [])
        operations.perSourceMax = 2
        operations.idleTimeout = .seconds(30)  // the held connections stay open for the whole test
        let (ports, bound) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { [operations] in try await operations.run { bound.yield($0) } }
        defer { serving.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())

        // Two silent connections are held; a third from the same address is closed at once, and a
        // request on it gets no answer.
        var held = [Int32]()
        defer { held.forEach { close($0) } }
        for _ in 0..<2 { held.append(try HandshakeDeadlineTests.connectedSocket(port: port, readTimeoutSeconds: 1)) }
        for fd in held { #expect(Self.read(fd) == -1, "a connection within the maximum was closed") }
        let (read, took) = try await HandshakeDeadlineTests.connectAndWaitForClose(port: port, waitingAtMost: 8)
        #expect(read == 0, "the third connection was kept open for 8 s (recv gave \(read))")
        #expect(took < .seconds(5), "the third connection was closed only after \(took)")
        let refused = try Self.version(port: port)
        #expect(refused.status != 0 && !refused.stdout.contains("source-limit-test"), "\(refused)")

        // Refusing did not stop the listener: once one held connection closes, a request is served.
        close(held.removeFirst())
        var answer = ""
        for _ in 0..<20 where !answer.contains("source-limit-test") {
            answer = try Self.version(port: port).stdout
            if !answer.contains("source-limit-test") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answer.contains("source-limit-test"), "GET /version after the refusal: \(answer)")
    }

    /// Who counts as one source: an IPv4 address (also IPv4-mapped), an IPv6 /64; no address, no one.
    @Test func sourcesAreIPv4AddressesAndIPv6Slash64s() throws {
        func source(_ ip: String) throws -> String? {
            SourceConnections.source(of: try SocketAddress(ipAddress: ip, port: 443))
        }
        #expect(try source("10.1.2.3") == "10.1.2.3")
        #expect(try source("::ffff:10.1.2.3") == "10.1.2.3")
        #expect(try source("2001:db8:0:1::7") == "2001:db8:0:1::/64")
        #expect(try source("2001:db8:0:1:ffff:1:2:3") == "2001:db8:0:1::/64")
        #expect(try source("2001:db8:0:2::7") == "2001:db8:0:2::/64")
        #expect(SourceConnections.source(of: nil) == nil)
        #expect(SourceConnections.source(of: try SocketAddress(unixDomainSocketPath: "/tmp/x")) == nil)
    }

    @Test func eachSourceIsCountedUpToItsMaximumAndForgottenWhenItHasNoneOpen() {
        let connections = SourceConnections(perSourceMax: 2)
        #expect(connections.admit("a") && connections.admit("a"))
        #expect(!connections.admit("a"), "a third from one source")
        #expect(connections.admit("b"), "another source is not held back")
        #expect(connections.openCount(from: "a") == 2 && connections.sourceCount == 2)
        connections.release("a")
        #expect(connections.admit("a"), "a released slot is taken again")
        for _ in 0..<2 { connections.release("a") }
        connections.release("b")
        #expect(connections.sourceCount == 0 && connections.openCount(from: "a") == 0)
    }

    /// `GET /version` through curl (TLS, any certificate accepted): its exit status and body.
    static func version(port: Int) throws -> MedLedgerBinary.Result {
        try MedLedgerBinary.runTool("/usr/bin/curl", ["-sk", "--max-time", "5", "https://127.0.0.1:\(port)/version"])
    }

    /// What one `recv` of a byte gives on `fd`: -1 when nothing came before its timeout (still open).
    static func read(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0)
    }
}
