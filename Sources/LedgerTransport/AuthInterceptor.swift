import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerIdentity
import Synchronization
import X509

/// The caller's verified identity, attached to every call by `AuthInterceptor`. Handlers read it with
/// `context.caller`.
public struct CallerIdentity: ServerContext.TransportSpecific {
    public let identity: AuthenticatedIdentity
}

extension ServerContext {
    /// The authenticated caller; nil only where no `AuthInterceptor` ran (the enrollment listener).
    public var caller: AuthenticatedIdentity? { (transportSpecific as? CallerIdentity)?.identity }

    /// The caller, or UNAUTHENTICATED.
    public func requireCaller() throws -> AuthenticatedIdentity {
        guard let c = caller else {
            throw RPCError(code: .unauthenticated, message: "authentication required: present a client certificate")
        }
        return c
    }
}

/// Runs on every call of the mutual-TLS listener: takes the client certificate the handshake verified
/// and checks it again — revocation (a CRL may have arrived since the connection opened) and expiry —
/// then attaches the identity for the handlers. Failures are UNAUTHENTICATED and reported to `onDenied`.
public struct AuthInterceptor: ServerInterceptor {
    let trust: TrustStore
    let onDenied: @Sendable (_ method: String, _ reason: String) -> Void
    private let cache = IdentityCache()

    public init(
        trust: TrustStore, onDenied: @escaping @Sendable (_ method: String, _ reason: String) -> Void = { _, _ in }
    ) {
        self.trust = trust
        self.onDenied = onDenied
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        guard let leaf = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate else {
            onDenied(method, "no client certificate")
            throw RPCError(code: .unauthenticated, message: "authentication required: present a client certificate")
        }
        let identity: AuthenticatedIdentity
        do {
            if let cached = cache.get(leaf), !trust.isRevoked(leaf), leaf.notValidAfter > Date() {
                identity = cached
            } else {
                identity = try await trust.validate(leaf: leaf, purpose: .tls)
                cache.put(leaf, identity)
            }
        } catch {
            onDenied(method, error.description)
            throw RPCError(code: .unauthenticated, message: "authentication failed: \(error)")
        }
        var ctx = context
        ctx.transportSpecific = CallerIdentity(identity: identity)
        return try await next(request, ctx)
    }
}

/// Chain validation is the expensive part of a check; revocation and expiry are re-checked on every use.
final class IdentityCache: Sendable {
    static let entriesMax = 10_000
    private let entries = Mutex<[Certificate: AuthenticatedIdentity]>([:])

    func get(_ c: Certificate) -> AuthenticatedIdentity? { entries.withLock { $0[c] } }

    func put(_ c: Certificate, _ id: AuthenticatedIdentity) {
        entries.withLock { e in
            if e.count >= Self.entriesMax { e.removeAll() }
            e[c] = id
        }
    }
}
