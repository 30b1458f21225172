import Foundation
import Glibc
import LedgerIdentity
import LedgerOperations
import Testing
import X509

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

        // Two silent connections are held; the third from the same address is closed at once.
        var held = [try HandshakeDeadlineTests.connectedSocket(port: port, readTimeoutSeconds: 1)]
        held.append(try HandshakeDeadlineTests.connectedSocket(port: port, readTimeoutSeconds: 1))
        defer { held.forEach { close($0) } }
        for fd in held { #expect(Self.read(fd) == -1, "a connection within the maximum was closed") }
        let (read, took) = try await HandshakeDeadlineTests.connectAndWaitForClose(port: port, waitingAtMost: 8)
        #expect(read == 0, "the third connection was kept open for 8 s (recv gave \(read))")
        #expect(took < .seconds(5), "the third connection was closed only after \(took)")

        // Refusing did not stop the listener: once one held connection closes, a request is served.
        close(held.removeFirst())
        var answer = ""
        for _ in 0..<20 where !answer.contains("source-limit-test") {
            answer = try MedLedgerBinary.runTool(
                "/usr/bin/curl", ["-sk", "--max-time", "5", "https://127.0.0.1:\(port)/version"]
            ).stdout
            if !answer.contains("source-limit-test") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answer.contains("source-limit-test"), "GET /version after the refusal: \(answer)")
    }

    /// What one `recv` of a byte gives on `fd`: -1 when nothing came before its timeout (still open).
    static func read(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0)
    }
}
