import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerIdentity
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// A TLS identity on disk: certificate (chain) and private key, both PEM.
public struct TLSIdentityFiles: Sendable, Equatable {
    public var certificatePath: String
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// Server-side transport security. The node's main listener requires a client certificate and
/// validates it with the `TrustStore` (chain to a trusted root, dates, revocation, TLS usage) *in the
/// handshake*: BoringSSL's own verification is replaced by ours, so a revoked or foreign certificate never
/// completes a handshake.
public enum ServerSecurity {
    /// `onRejected` hears every refused handshake (for the audit log).
    public static func mutualTLS(
        identity: TLSIdentityFiles, trust: TrustStore,
        onRejected: @escaping @Sendable (_ subject: String, _ reason: String) -> Void = { _, _ in }
    ) -> HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: [.file(path: identity.certificatePath, format: .pem)],
            privateKey: .file(path: identity.keyPath, format: .pem)
        ) { tls in
            tls.trustRoots = .certificates(trust.roots.map { .bytes(Array($0.pem.utf8), format: .pem) })
            tls.clientCertificateVerification = .noHostnameVerification
            tls.customVerificationCallback = { presented, promise in
                promise.completeWithTask {
                    await HandshakeVerifier(trust: trust, onRejected: onRejected).verify(presented)
                }
            }
        }
    }

    /// For `HTTP2ServerTransport`'s `channelDebuggingCallbacks.onAcceptTCPConnection`: every accepted
    /// connection gets a `HandshakeDeadline`, so connections that never handshake do not pile up, and
    /// `WholeFrameReads`.
    public static func handshakeDeadline(
        _ timeout: Duration = HandshakeDeadline.timeoutDefault
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        HandshakeDeadline.installer(timeout, server: true)
    }

    /// Server TLS only (no client certificate asked): the CA's enrollment listener.
    public static func serverTLS(identity: TLSIdentityFiles) -> HTTP2ServerTransport.Posix.TransportSecurity {
        .tls(
            certificateChain: [.file(path: identity.certificatePath, format: .pem)],
            privateKey: .file(path: identity.keyPath, format: .pem))
    }
}

/// The handshake-time check: our trust store decides, and the validated chain is handed back to NIOSSL
/// so handlers can read the peer's certificate.
struct HandshakeVerifier: Sendable {
    let trust: TrustStore
    let onRejected: @Sendable (_ subject: String, _ reason: String) -> Void

    func verify(_ presented: [NIOSSLCertificate]) async -> NIOSSLVerificationResultWithMetadata {
        guard let first = presented.first, let leaf = try? Certificate(derEncoded: first.toDERBytes()) else {
            onRejected("-", "no parsable client certificate")
            return .failed
        }
        let intermediates = presented.dropFirst().compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
        do {
            let identity = try await trust.validate(leaf: leaf, intermediates: intermediates, purpose: .tls)
            let chain = [identity.certificate] + trust.roots.filter { $0.subject == identity.certificate.issuer }
            let nio = try chain.map { try NIOSSLCertificate(bytes: $0.derBytes, format: .der) }
            return .certificateVerified(VerificationMetadata(NIOSSL.ValidatedCertificateChain(nio)))
        } catch {
            // The certificate was not accepted, so the PID in it is only a claim: never attribute it.
            onRejected(
                "-",
                "presented certificate claiming PID \(leaf.attributes?.pid ?? "?") (unverified), serial \(leaf.serialHex): \(error)"
            )
            return .failed
        }
    }
}

/// Where and how a client connects.
public struct NodeAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses "host:port" (IPv6 as "[::1]:port").
    public init?(_ text: String) {
        var t = text
        if t.hasPrefix("["), let close = t.firstIndex(of: "]") {
            let host = String(t[t.index(after: t.startIndex)..<close])
            t = String(t[t.index(after: close)...])
            guard t.hasPrefix(":"), let p = Int(t.dropFirst()), (0...65535).contains(p) else { return nil }
            self.init(host: host, port: p)
            return
        }
        guard let colon = t.lastIndex(of: ":"), let p = Int(t[t.index(after: colon)...]), (0...65535).contains(p) else {
            return nil
        }
        let host = String(t[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: p)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    var isIPAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    public var serverAddress: GRPCNIOTransportCore.SocketAddress {
        host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    }
}

public enum ClientSecurity {
    /// A client transport over mutual TLS (`identity` given) or server TLS only (nil). `onHandshake`
    /// is told each time one of its connections completes the TLS handshake.
    public static func transport(
        to endpoint: NodeAddress, trustedRootsPEM: [UInt8], identity: TLSIdentityFiles?, serverName: String? = nil,
        handshakeTimeout: Duration = HandshakeDeadline.timeoutDefault, onHandshake: (@Sendable () -> Void)? = nil
    ) throws -> HTTP2ClientTransport.Posix {
        let roots: TLSConfig.TrustRootsSource = .certificates([.bytes(trustedRootsPEM, format: .pem)])
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if let identity {
            security = .mTLS(
                certificateChain: [.file(path: identity.certificatePath, format: .pem)],
                privateKey: .file(path: identity.keyPath, format: .pem)
            ) {
                $0.trustRoots = roots
            }
        } else {
            security = .tls { $0.trustRoots = roots }
        }
        let target: any ResolvableTarget =
            endpoint.isIPAddress
            ? (endpoint.host.contains(":")
                ? .ipv6(host: endpoint.host, port: endpoint.port) : .ipv4(host: endpoint.host, port: endpoint.port))
            : .dns(host: endpoint.host, port: endpoint.port)
        return try HTTP2ClientTransport.Posix(
            target: target, transportSecurity: security,
            config: .defaults { config in
                if let serverName { config.http2.authority = serverName }
                config.connection.maxIdleTime = .seconds(30)
                config.connection.keepalive = ConnectionKeepalive.client
                config.channelDebuggingCallbacks.onCreateTCPConnection = HandshakeDeadline.installer(
                    handshakeTimeout, server: false, onHandshake: onHandshake)
            })
    }
}

/// Keepalive on every connection between nodes and clients. During a call, a client pings after
/// 10 s without reading anything and drops a connection whose server has not answered within 5 s;
/// servers accept such pings during calls (gRPC's default, one every 5 minutes, would count them as
/// abuse and close the connection). A node that is frozen or cut off (SIGSTOP, a hung machine, a
/// partition) keeps its TCP connections open but answers nothing: without pings, a peer following
/// its block stream or a gateway waiting on its broadcast would wait forever instead of moving on.
public enum ConnectionKeepalive {
    public static let client = HTTP2ClientTransport.Config.Keepalive(
        time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: false)

    public static let server = HTTP2ServerTransport.Config.Keepalive(
        time: .seconds(2 * 60 * 60), timeout: .seconds(20),
        clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(5), allowWithoutCalls: false))
}
