import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerTransport
import Synchronization

/// How a failed call reads to a person: the EMR-IG status (401/403/404/…) and a sentence.
public struct CallFailure: Error, CustomStringConvertible, Equatable {
    public var status: Int
    public var message: String

    public var description: String { "[\(status)] \(message)" }

    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    /// Classifies any error from a call. A handshake the node refused is an authentication failure:
    /// the node does not complete TLS with a missing, foreign, expired or revoked certificate.
    public static func classify(_ error: any Error) -> CallFailure {
        guard let rpc = error as? RPCError else { return CallFailure(status: 500, message: "\(error)") }
        switch rpc.code {
        case .unauthenticated: return CallFailure(status: 401, message: rpc.message)
        case .permissionDenied: return CallFailure(status: 403, message: rpc.message)
        case .notFound: return CallFailure(status: 404, message: rpc.message)
        case .invalidArgument: return CallFailure(status: 400, message: rpc.message)
        case .alreadyExists: return CallFailure(status: 409, message: rpc.message)
        case .failedPrecondition: return CallFailure(status: 412, message: rpc.message)
        case .resourceExhausted: return CallFailure(status: 413, message: rpc.message)
        case .dataLoss: return CallFailure(status: 500, message: "data loss on the node: \(rpc.message)")
        case .unavailable:
            let cause = "\(rpc.cause.map { "\($0)" } ?? "") \(rpc.message)"
            if Self.looksLikeTLSRefusal(cause) {
                return CallFailure(
                    status: 401,
                    message:
                        "authentication failed: the node refused the TLS handshake (client certificate missing, expired, revoked or not from a trusted CA)"
                )
            }
            return CallFailure(status: 503, message: "node unreachable: \(rpc.message)\(Self.because(rpc.cause))")
        default:
            return CallFailure(status: 500, message: "\(rpc.code): \(rpc.message)")
        }
    }

    /// Why a connection could not be made, from the innermost error gRPC wraps (a refused connect, a
    /// handshake past its deadline, a name that does not resolve), so that a person can tell a node
    /// that is down from one too slow to answer; empty when there is none.
    static func because(_ cause: (any Error)?) -> String {
        var innermost = cause
        while let rpc = innermost as? RPCError, let deeper = rpc.cause { innermost = deeper }
        guard let innermost, !(innermost is RPCError) else { return "" }
        let text = "\(innermost)".trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "" : " (\(text.prefix(Self.causeCharactersMax)))"
    }

    /// A cause is one line of a CLI's error, not a dump.
    static let causeCharactersMax = 300

    /// True only for what a node that refuses our client certificate sends: a TLS alert naming the
    /// certificate. A connection refused, reset or closed early (a node restarting, a port not yet
    /// open) is "unavailable", never an authentication failure.
    static func looksLikeTLSRefusal(_ text: String) -> Bool {
        let t = text.lowercased()
        let alerts = [
            "alert_bad_certificate", "alert_certificate_revoked", "alert_certificate_expired", "alert_unknown_ca",
            "alert_certificate_unknown", "alert_certificate_required", "alert_unsupported_certificate",
            "alert_access_denied",
            "alert_handshake_failure",
        ]
        return alerts.contains { t.contains($0) }
    }
}

/// Opens a gRPC client to a node for the duration of `body`.
///
/// A node that has just started, or is too busy to finish a TLS handshake in time, fails a first
/// connection that a moment later would succeed. So when `body` fails as unavailable and no connection
/// ever completed its handshake — nothing reached the node, so running `body` again repeats nothing —
/// it runs again after `retryDelays`; then the failure is thrown, with its cause. A node that refused
/// our certificate is not tried again.
public enum NodeConnection {
    /// The waits before the second and third tries: a few seconds in all, so a node that is down is
    /// still reported soon.
    public static let retryDelays: [Duration] = [.milliseconds(500), .seconds(2)]

    public static func with<T: Sendable>(
        _ endpoint: NodeAddress, trustedRootsPEM: [UInt8], identity: TLSIdentityFiles?, serverName: String? = nil,
        retryDelays: [Duration] = NodeConnection.retryDelays,
        _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        var waits = retryDelays[...]
        while true {
            let handshook = Atomic<Bool>(false)
            let transport = try ClientSecurity.transport(
                to: endpoint, trustedRootsPEM: trustedRootsPEM, identity: identity, serverName: serverName,
                onHandshake: { handshook.store(true, ordering: .relaxed) })
            let failure: CallFailure
            do {
                return try await withGRPCClient(transport: transport) { client in try await body(client) }
            } catch let e as CallFailure {
                failure = e
            } catch {
                failure = CallFailure.classify(error)
            }
            guard failure.status == 503, !handshook.load(ordering: .relaxed), let wait = waits.popFirst() else {
                throw failure
            }
            try await Task.sleep(for: wait)
        }
    }
}

/// Mutually authenticated connections kept open for reuse, one per node: an app that uploads or
/// downloads several objects in a row pays the TLS handshake once. `close()` when done; a call that
/// finds its node unreachable drops the connection, so the next call dials again.
public final class NodeConnectionPool: Sendable {
    let clients: NodeClients
    /// Nodes kept at most; past it, one is closed to make room.
    static let nodesMax = 16

    public init(trustedRootsPEM: [UInt8], identity: TLSIdentityFiles) {
        clients = NodeClients(trustedRootsPEM: trustedRootsPEM, identity: identity, limit: Self.nodesMax)
    }

    public func with<T: Sendable>(
        _ node: NodeAddress, _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        let client = try clients.client(node)
        do { return try await body(client) } catch let e as CallFailure {
            if e.status == 503 { clients.drop(node, failed: client) }
            throw e
        } catch {
            let failure = CallFailure.classify(error)
            if failure.status == 503 { clients.drop(node, failed: client) }
            throw failure
        }
    }

    public func close() { clients.close() }
}
