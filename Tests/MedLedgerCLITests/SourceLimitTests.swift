import Foundation
import Glibc
import LedgerIdentity
import LedgerOperations
import NIOCore
import Synchronization
import Testing
import X509

@testable import LedgerHTTPConnections
@testable import LedgerNode

/// The node's HTTPS endpoints admit at most so many connections from one address at once, so that
/// one caller reopening connections cannot hold every slot.
@Suite struct SourceLimitTests {
    @Test(.timeLimit(.minutes(1))) func theOperationsEndpointClosesAConnectionPastTheSourcesMaximum() async throws {
        let pki = try HandshakeDeadlineTests.TestPKI()
        defer { pki.remove() }
        let (operations, port, serving) = try await Self.serve(
            pki, version: "source-limit-test",
            limits: try .configured(total: nil, perSource: 2, over: .operations, section: "ops"))
        defer { serving.cancel() }

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
        // Both refusals (the third socket, curl's) are in the node's metrics, and the two held open.
        let counted = String(decoding: operations.metrics.render(), as: UTF8.self)
        #expect(
            counted.contains(#"http_connections_refused_total{listener="operations",reason="source_full"} 2"# + "\n"),
            "\(counted)")
        #expect(counted.contains(#"http_connections_refused_total{listener="operations",reason="no_address"} 0"#))
        #expect(counted.contains(#"http_connections_open{listener="operations"} 2.0"#), "\(counted)")

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
        let heard = Mutex([SourceConnections.Refusal]())
        let open = Mutex([Int]())
        let connections = SourceConnections(
            perSourceMax: 2,
            events: .init(
                refused: { r in heard.withLock { $0.append(r) } }, openChanged: { n in open.withLock { $0.append(n) } })
        )
        #expect(connections.admit("a") && connections.admit("a"))
        #expect(!connections.admit("a"), "a third from one source")
        #expect(!connections.admit(nil), "no address, no admission")
        #expect(heard.withLock { $0 } == [.sourceFull, .noAddress])
        #expect(open.withLock { $0 } == [1, 2] && connections.openTotal == 2, "refusals open nothing")
        #expect(connections.admit("b"), "another source is not held back")
        #expect(connections.openCount(from: "a") == 2 && connections.sourceCount == 2)
        connections.release("a")
        #expect(connections.admit("a"), "a released slot is taken again")
        for _ in 0..<2 { connections.release("a") }
        connections.release("b")
        #expect(connections.sourceCount == 0 && connections.openCount(from: "a") == 0 && connections.openTotal == 0)
        #expect(open.withLock { $0 } == [1, 2, 3, 2, 3, 2, 1, 0])
    }

    /// Refusals reach the log at most once a minute, counted, without the source; what was counted
    /// during the quiet minute is logged when it ends, even if no refusal follows.
    @Test func refusalsAreLoggedAtMostOnceAMinute() {
        let clock = Mutex(ContinuousClock.now)
        let lines = Mutex([String]())
        let scheduled = Mutex([(delay: Duration, body: @Sendable () -> Void)]())
        let log = RefusalLog(
            listener: "fhir", limits: .fhir, log: { l in lines.withLock { $0.append(l) } },
            now: { clock.withLock { $0 } }, schedule: { d, b in scheduled.withLock { $0.append((d, b)) } })
        log.note(.sourceFull)
        clock.withLock { $0 += .seconds(10) }
        for _ in 0..<5 { log.note(.sourceFull) }
        log.note(.noAddress)
        #expect(lines.withLock { $0.count } == 1, "one line for the first, then quiet for a minute")
        let due = scheduled.withLock { $0 }
        #expect(due.count == 1 && due.first?.delay == .seconds(50), "one line due at the minute's end")
        // A refusal after the minute comes first: it logs the count, and the due line finds nothing.
        clock.withLock { $0 += .seconds(51) }
        log.note(.sourceFull)
        due.first?.body()
        var all = lines.withLock { $0 }
        #expect(all.count == 2)
        #expect(all.first?.contains("(1 source_full since") == true, "\(all)")
        #expect(all.last?.contains("(6 source_full, 1 no_address since") == true, "\(all)")
        // Refusals in the next quiet minute, then none: logged when it ends.
        clock.withLock { $0 += .seconds(5) }
        log.note(.noAddress)
        log.note(.noAddress)
        let next = scheduled.withLock { $0 }
        #expect(next.count == 2 && next.last?.delay == .seconds(55))
        clock.withLock { $0 += .seconds(55) }
        next.last?.body()
        all = lines.withLock { $0 }
        #expect(all.count == 3 && all.last?.contains("(2 no_address since") == true, "\(all)")
        #expect(all.allSatisfy { $0.contains("WARNING") && $0.contains("fhir.connections_per_source_max") })
    }

    /// The warning when the open-file limit cannot hold the endpoints' connections.
    @Test func aLowOpenFileLimitIsWarnedAbout() {
        let warn = { (soft: Int, hard: Int) in
            FileDescriptorLimit.warning((soft, hard), operations: .operations, fhir: .fhir)
        }
        #expect(warn(1_024 + 1_024 + 64, 1_048_576) == nil)
        #expect(warn(1_048_576, 1_048_576) == nil)
        #expect(warn(2_000, 2_000)?.contains("is 2000 (its hard limit), below the 1088 connections") == true)
        #expect(warn(1_024, 4_096)?.contains("could not be raised to the hard 4096") == true)
        #expect(FileDescriptorLimit.warning(nil, operations: .operations, fhir: .fhir) == nil)
        #expect(FileDescriptorLimit.warning((1_100, 1_100), operations: nil, fhir: nil) == nil)
        let limit = FileDescriptorLimit.raise()
        #expect(limit != nil && limit!.soft == limit!.hard, "the soft limit is raised to the hard one")
    }

    /// Past `connections_max` the endpoint accepts no more until one closes (its per-source share is
    /// the whole here, so only the total holds it back).
    @Test(.timeLimit(.minutes(1))) func theOperationsEndpointServesNoMoreThanItsTotal() async throws {
        let pki = try HandshakeDeadlineTests.TestPKI()
        defer { pki.remove() }
        let (operations, port, serving) = try await Self.serve(
            pki, version: "total-limit-test",
            limits: try .configured(total: 3, perSource: 3, over: .operations, section: "ops"))
        defer { serving.cancel() }
        var held = [Int32]()
        defer { held.forEach { close($0) } }
        for _ in 0..<3 { held.append(try HandshakeDeadlineTests.connectedSocket(port: port, readTimeoutSeconds: 1)) }
        for fd in held { #expect(Self.read(fd) == -1, "a connection within the total was closed") }
        let rendered = { String(decoding: operations.metrics.render(), as: UTF8.self) }
        #expect(rendered().contains(#"http_connections_open{listener="operations"} 3.0"#), "\(rendered())")
        let waiting = try Self.version(port: port, seconds: 2)
        #expect(!waiting.stdout.contains("total-limit-test"), "a fourth connection was served: \(waiting)")
        #expect(rendered().contains(#"reason="source_full"} 0"#), "not refused, only not accepted yet")
        close(held.removeFirst())
        var answer = ""
        for _ in 0..<20 where !answer.contains("total-limit-test") {
            answer = try Self.version(port: port).stdout
            if !answer.contains("total-limit-test") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(answer.contains("total-limit-test"), "GET /version once one closed: \(answer)")
    }

    /// node.yaml's two numbers over an endpoint's defaults; a pair that cannot hold is refused, named.
    @Test func connectionLimitsComeFromNodeYAMLWithinBounds() throws {
        func limits(_ total: Int?, _ perSource: Int?) throws -> ConnectionLimits {
            try .configured(total: total, perSource: perSource, over: .fhir, section: "fhir")
        }
        #expect(try limits(nil, nil) == .fhir)
        #expect(ConnectionLimits.fhir.total == 1024 && ConnectionLimits.fhir.perSource == 256)
        #expect(ConnectionLimits.operations.total == 64 && ConnectionLimits.operations.perSource == 16)
        let proxied = try limits(nil, 1024)
        #expect(proxied.total == 1024 && proxied.perSource == 1024, "one proxy may take every connection")
        let small = try limits(8, nil)
        #expect(small.total == 8 && small.perSource == 2, "a quarter of a given total")
        #expect(try limits(1, nil).perSource == 1)
        func refusal(_ total: Int?, _ perSource: Int?) -> String {
            do { return "accepted \(try limits(total, perSource))" } catch { return "\(error)" }
        }
        #expect(refusal(0, nil) == "fhir.connections_max must be 1...16384, not 0")
        #expect(refusal(20_000, nil) == "fhir.connections_max must be 1...16384, not 20000")
        #expect(refusal(nil, 0) == "fhir.connections_per_source_max must be 1...fhir.connections_max (1024), not 0")
        #expect(refusal(64, 65) == "fhir.connections_per_source_max must be 1...fhir.connections_max (64), not 65")
    }

    /// An operations endpoint on a free port with `limits`, whose held connections stay open for the
    /// whole test; the task serving it (cancel it at the end).
    static func serve(
        _ pki: HandshakeDeadlineTests.TestPKI, version: String, limits: ConnectionLimits
    ) async throws -> (OperationsServer, port: Int, serving: Task<Void, any Error>) {
        var operations = OperationsServer(
            host: "127.0.0.1", port: 0, certificatePath: pki.server.certificatePath, keyPath: pki.server.keyPath,
            trust: TrustStore(roots: [try Certificate(pemEncoded: String(decoding: pki.rootPEM, as: UTF8.self))]),
            organization: "hospital-a", version: version, metrics: NodeMetrics(version: "test"), sample: {},
            checks: [])
        operations.connectionLimits = limits
        // The held connections stay open for the whole test, however long the parallel suite makes
        // its awaits (a task can wait a minute for a pool thread).
        operations.idleTimeout = .seconds(600)
        let (ports, bound) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { [operations] in try await operations.run { bound.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            serving.cancel()
            throw POSIXError(.EADDRNOTAVAIL)
        }
        return (operations, port, serving)
    }

    /// `GET /version` through curl (TLS, any certificate accepted): its exit status and body.
    static func version(port: Int, seconds: Int = 5) throws -> MedLedgerBinary.Result {
        try MedLedgerBinary.runTool(
            "/usr/bin/curl", ["-sk", "--max-time", "\(seconds)", "https://127.0.0.1:\(port)/version"])
    }

    /// Opens `count` silent connections to 127.0.0.1:`port` and returns them with the positions of
    /// those the server closed within `seconds` (it sends nothing on a connection it keeps, so a
    /// readable one has been closed). Which of several connections from one source is the one past its
    /// share depends on the order the server's event loops set them up, which a loaded machine can
    /// change; how many are closed does not. On a thread of its own, all blocking: under the parallel
    /// suite a task can wait a minute for one of Swift's pool threads, and the endpoint closes every
    /// silent connection after 60 s.
    static func openAndSeeWhichClose(
        port: Int, count: Int, seconds: Double
    ) async throws -> (fds: [Int32], closed: Set<Int>) {
        try await withCheckedThrowingContinuation { done in
            Thread {
                done.resume(
                    with: Result {
                        var fds = [Int32]()
                        for _ in 0..<count {
                            fds.append(try HandshakeDeadlineTests.connectedSocket(port: port, readTimeoutSeconds: 1))
                        }
                        var closed = Set<Int>()
                        let deadline = ContinuousClock.now + .seconds(seconds)
                        while closed.isEmpty, ContinuousClock.now < deadline {
                            closed = Self.closed(fds, waitingMilliseconds: 100)
                        }
                        if !closed.isEmpty {
                            usleep(500_000)  // any more to come show within half a second
                            closed.formUnion(Self.closed(fds, waitingMilliseconds: 0))
                        }
                        return (fds, closed)
                    })
            }.start()
        }
    }

    /// The positions of the connections the other side has closed (readable: it sends nothing else).
    static func closed(_ fds: [Int32], waitingMilliseconds: Int32) -> Set<Int> {
        var polled = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        _ = poll(&polled, nfds_t(polled.count), waitingMilliseconds)
        return Set(polled.indices.filter { polled[$0].revents != 0 })
    }

    /// What one `recv` of a byte gives on `fd`: -1 when nothing came before its timeout (still open).
    static func read(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0)
    }
}
