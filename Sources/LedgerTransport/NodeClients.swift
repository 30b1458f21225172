import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// gRPC clients over mutual TLS kept open for reuse, one per node, made on first use: the TLS
/// handshake is paid once per node, not once per call. At most `limit` nodes are kept (past it, one is
/// closed to make room); `drop` a client found broken so the next call dials again.
public final class NodeClients: Sendable {
    public typealias Client = GRPCClient<HTTP2ClientTransport.Posix>
    typealias Open = (client: Client, runner: Task<Void, Never>)
    public let trustedRootsPEM: [UInt8]
    public let identity: TLSIdentityFiles
    public let limit: Int
    private let open = Mutex<[String: Open]>([:])

    public init(trustedRootsPEM: [UInt8], identity: TLSIdentityFiles, limit: Int = 16) {
        self.trustedRootsPEM = trustedRootsPEM
        self.identity = identity
        self.limit = max(1, limit)
    }

    public func client(_ node: NodeAddress) throws -> Client {
        if let c = open.withLock({ $0[node.description] }) { return c.client }
        let transport = try ClientSecurity.transport(to: node, trustedRootsPEM: trustedRootsPEM, identity: identity)
        let c = GRPCClient(transport: transport)
        let fresh: Open = (c, Task { try? await c.runConnections() })
        let (kept, unused) = open.withLock { map -> (Open, [Open]) in
            if let existing = map[node.description] { return (existing, [fresh]) }
            var unused: [Open] = []
            if map.count >= limit, let some = map.keys.first { unused.append(map.removeValue(forKey: some)!) }
            map[node.description] = fresh
            return (fresh, unused)
        }
        unused.forEach(Self.shut)
        return kept.client
    }

    /// The remote node decided (refused what was sent): its connection is sound and is kept. Any other
    /// failure (unreachable, cancelled, or unauthenticated because the kept connection still presents
    /// a certificate this node has since renewed) calls for `drop` and a fresh connection.
    public static func isDecision(_ error: RPCError) -> Bool {
        [.permissionDenied, .invalidArgument, .failedPrecondition, .alreadyExists].contains(error.code)
    }

    /// Closes the client kept for `node` if it is still `failed`, the one the caller's call failed on.
    /// Calls failing together on one dead connection would otherwise each drop whatever is kept by
    /// then, closing a fresh client another caller has just opened and is using.
    public func drop(_ node: NodeAddress, failed: Client) {
        let stale = open.withLock { map -> Open? in
            guard let kept = map[node.description], kept.client === failed else { return nil }
            return map.removeValue(forKey: node.description)
        }
        if let stale { Self.shut(stale) }
    }

    public func close() {
        for c in open.withLock({ map in
            defer { map = [:] }
            return Array(map.values)
        }) { Self.shut(c) }
    }

    static func shut(_ c: Open) {
        c.client.beginGracefulShutdown()
    }
}
