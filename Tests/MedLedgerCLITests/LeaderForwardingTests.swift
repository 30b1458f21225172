import Foundation
import Glibc
import LedgerProtos
import Testing

@testable import LedgerNode

/// A raft follower forwarding an envelope to a leader that stopped without closing its connections.
@Suite struct LeaderForwardingTests {
    /// A frozen process: the kernel completes the TCP handshake for its listening socket, but nobody
    /// accepts or answers, so the TLS handshake never ends. The forward must give up by its deadline
    /// (503: the client retries elsewhere), not wait for the leader to wake.
    @Test(.timeLimit(.minutes(1))) func aForwardToALeaderThatAnswersNothingEndsAtItsDeadline() async throws {
        let dir = NSTemporaryDirectory() + "leader-forwarding-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (files, root) = try IdentityNetworkTests.identityFromOwnCA(
            dir, "follower", ca: "Forwarding test CA", role: "node")
        let (socket, port) = try Self.listenerThatNeverAccepts()
        defer { close(socket) }

        let forwarder = GRPCLeaderForwarder(
            trustedRootsPEM: Array(root.pem.utf8), tls: files.tls, timeout: .seconds(1))
        defer { forwarder.close() }
        let started = ContinuousClock.now
        let refusal = await forwarder.forward(
            try Medledger_Envelope().serializedBytes(), channel: "records", to: "127.0.0.1:\(port)")
        let took = ContinuousClock.now - started
        // 503 because of the deadline, not for some other reason that fails faster.
        #expect(refusal?.status == 503, "\(String(describing: refusal))")
        #expect(refusal?.message.contains("did not answer within") == true, "\(String(describing: refusal))")
        #expect(took >= .milliseconds(900) && took < .seconds(10), "the forward took \(took)")
    }

    /// A TCP socket listening on 127.0.0.1 that never accepts; its port.
    static func listenerThatNeverAccepts() throws -> (Int32, Int) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                Glibc.bind(fd, p, length) == 0 && Glibc.listen(fd, 8) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
