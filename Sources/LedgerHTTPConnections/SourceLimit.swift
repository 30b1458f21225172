import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import Synchronization

/// How many connections one HTTPS listener holds open at once, in all and from one source.
public struct ConnectionLimits: Sendable, Equatable, CustomStringConvertible {
    public let total: Int
    public let perSource: Int

    /// The most either may be set to: each open connection holds a file descriptor.
    public static let ceiling = 16_384
    /// The operations endpoint: monitors need few connections.
    public static let operations = ConnectionLimits(checkedTotal: 64, perSource: 16)
    /// The FHIR endpoint: an EHR or a patients' app backend may hold many at once.
    public static let fhir = ConnectionLimits(checkedTotal: 1024, perSource: 256)

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// `perSource` of `total`, both 1…`ceiling`, `perSource` at most `total`; `names` are what
    /// node.yaml calls them, for the error.
    public init(total: Int, perSource: Int, names: (total: String, perSource: String)) throws(Invalid) {
        guard (1...Self.ceiling).contains(total) else {
            throw Invalid(description: "\(names.total) must be 1...\(Self.ceiling), not \(total)")
        }
        guard (1...total).contains(perSource) else {
            throw Invalid(
                description: "\(names.perSource) must be 1...\(names.total) (\(total)), not \(perSource)")
        }
        self.init(checkedTotal: total, perSource: perSource)
    }

    /// node.yaml's `SECTION.connections_max` (absent: `defaults`) and
    /// `SECTION.connections_per_source_max` (absent: a quarter of the total, as in both defaults).
    public static func configured(
        total: Int?, perSource: Int?, over defaults: ConnectionLimits, section: String
    ) throws(Invalid) -> ConnectionLimits {
        let total = total ?? defaults.total
        return try ConnectionLimits(
            total: total, perSource: perSource ?? max(1, total / 4),
            names: (section + ".connections_max", section + ".connections_per_source_max"))
    }

    private init(checkedTotal: Int, perSource: Int) {
        (self.total, self.perSource) = (checkedTotal, perSource)
    }

    public var description: String { "\(total) connections, \(perSource) from one source" }
}

/// How many connections each source address has open on one listener, with a maximum per source:
/// a listener's total bound (`MaximumAvailableConnections`) alone lets one caller who reopens
/// connections as fast as they are closed hold every slot, and lock everyone else out.
public final class SourceConnections: Sendable {
    /// Why a connection was closed unserved (the `reason` of the refused-connections metric).
    public enum Refusal: String, Sendable, CaseIterable {
        /// Its source had its maximum open already.
        case sourceFull = "source_full"
        /// It had no peer address (it was gone before it was set up).
        case noAddress = "no_address"
    }

    /// What the listener tells its observers (the node's metrics and log).
    public struct Events: Sendable {
        /// A connection closed unserved, and why.
        public var refused: @Sendable (Refusal) -> Void
        /// The connections open now, after one was admitted or closed.
        public var openChanged: @Sendable (Int) -> Void

        public init(
            refused: @escaping @Sendable (Refusal) -> Void = { _ in },
            openChanged: @escaping @Sendable (Int) -> Void = { _ in }
        ) {
            (self.refused, self.openChanged) = (refused, openChanged)
        }

        /// Both observers hear every event.
        public func and(_ other: Events) -> Events {
            Events(
                refused: {
                    self.refused($0)
                    other.refused($0)
                },
                openChanged: {
                    self.openChanged($0)
                    other.openChanged($0)
                })
        }
    }

    private struct Counts {
        var bySource: [String: Int] = [:]
        var total = 0
    }

    public let perSourceMax: Int
    private let open = Mutex(Counts())
    private let events: Events

    public init(perSourceMax: Int, events: Events = Events()) {
        precondition(perSourceMax >= 1, "a listener that admits no one from anywhere")
        self.perSourceMax = perSourceMax
        self.events = events
    }

    /// Counts a connection from `source` in; false, counting nothing, when there is no source or it
    /// has its maximum (and `events.refused` hears why).
    func admit(_ source: String?) -> Bool {
        guard let source else {
            events.refused(.noAddress)
            return false
        }
        let total = open.withLock { open -> Int? in
            let n = open.bySource[source, default: 0]
            guard n < perSourceMax else { return nil }
            open.bySource[source] = n + 1
            open.total += 1
            return open.total
        }
        guard let total else {
            events.refused(.sourceFull)
            return false
        }
        events.openChanged(total)
        return true
    }

    func release(_ source: String) {
        let total = open.withLock { open in
            let n = open.bySource[source, default: 0]
            open.bySource[source] = n > 1 ? n - 1 : nil  // a source with nothing open takes no room
            if n > 0 { open.total -= 1 }
            return open.total
        }
        events.openChanged(total)
    }

    /// Connections from `source` open now.
    public func openCount(from source: String) -> Int { open.withLock { $0.bySource[source, default: 0] } }

    /// Sources with a connection open now.
    public var sourceCount: Int { open.withLock { $0.bySource.count } }

    /// Connections open now, from every source.
    public var openTotal: Int { open.withLock { $0.total } }

    /// Who a connection came from: its IPv4 address (also when it arrives IPv4-mapped on an IPv6
    /// socket), or its IPv6 /64, the block one site is normally given, from which it may use any
    /// address it likes. Nil when the socket has no peer address (it is already gone).
    static func source(of address: SocketAddress?) -> String? {
        switch address {
        case .v4: return address?.ipAddress
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return bytes[12...].map(String.init).joined(separator: ".")
            }
            let words = stride(from: 0, to: 8, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            return words.joined(separator: ":") + "::/64"
        default: return nil
        }
    }
}

/// Sets up `Base` on each accepted connection, and closes a connection whose source already has
/// `connections.perSourceMax` open (or that has no peer address) before it reaches TLS.
public struct SourceLimitedChannel<Base: ServerChildChannel>: ServerChildChannel {
    public typealias Value = Base.Value
    let base: Base
    let connections: SourceConnections

    public init(_ base: Base, connections: SourceConnections) {
        self.base = base
        self.connections = connections
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let source = SourceConnections.source(of: channel.remoteAddress)
        let admitted = connections.admit(source)
        if admitted, let source {
            channel.closeFuture.whenComplete { [connections] _ in connections.release(source) }
        }
        // The refused connection is still set up, then closed: failing the setup instead left the
        // connection open (tried in SourceLimitTests: still open after 8 s). A setup that fails on
        // its own is closed too, which releases its count.
        return base.setup(channel: channel, logger: logger).map { value in
            if !admitted { channel.close(promise: nil) }
            return value
        }.flatMapErrorThrowing { error in
            channel.close(promise: nil)
            throw error
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS, at most `connections.perSourceMax` connections open from one address.
    public static func tls(
        http1: HTTP1Channel.Configuration, tls: TLSChannelConfiguration,
        limitingEachSource connections: SourceConnections
    ) throws -> HTTPServerBuilder {
        .init { responder in
            SourceLimitedChannel(
                try TLSChannel(HTTP1Channel(responder: responder, configuration: http1), configuration: tls),
                connections: connections)
        }
    }
}
