import NIOCore
import NIOSSL
import NIOTLS

/// Closes a connection whose TLS handshake has not finished in time.
///
/// Clients: a node that stopped without closing its sockets (a frozen process, a hung host) still has
/// the kernel complete TCP handshakes on its listening socket, and then answers nothing: the TLS
/// handshake never ends. gRPC's keepalive starts only once HTTP/2 is up, and a call without a deadline
/// waits for the connection, so without this a call to such a node waits for as long as the node stays
/// frozen. Closed in time, the connection fails like a refused one: calls waiting on it fail as
/// unavailable and the client reconnects with its usual backoff.
///
/// Servers: anyone who can reach the port could otherwise open connections that never handshake and
/// hold a descriptor each for ever, with no certificate needed.
///
/// Sits right after the TLS handler, where the handshake's completion is announced, and takes itself
/// out of the pipeline then.
public final class HandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    /// How long a connection may take to finish its TLS handshake, on either side. A node under load
    /// handshakes in milliseconds.
    public static let timeoutDefault: Duration = .seconds(10)

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Told when the handshake completes (a client that retries only connections that never did).
    private let onCompleted: (@Sendable () -> Void)?

    init(timeout: TimeAmount, onCompleted: (@Sendable () -> Void)? = nil) {
        self.timeout = timeout
        self.onCompleted = onCompleted
    }

    /// Armed when added, before a client's TCP connect: the deadline covers the connect and this side's
    /// part of the handshake. (NIO's own connect timeout is also 10 s. Under TLS 1.3 a client finishes
    /// before the server has checked its certificate; what follows is bounded by the server's own
    /// deadline and by keepalive.)
    public func handlerAdded(context: ChannelHandlerContext) {
        let timeout = timeout
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            context.fireErrorCaught(HandshakeTimedOut(timeout: timeout))
            context.close(promise: nil)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            timer?.cancel()
            timer = nil
            onCompleted?()
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    /// A channel callback (gRPC's `onCreateTCPConnection`, or `onAcceptTCPConnection` with `server`)
    /// that sets up every gRPC connection's pipeline beyond what gRPC puts there: the handshake
    /// deadline, and `WholeFrameReads` between TLS and HTTP/2.
    static func installer(
        _ timeout: Duration, server: Bool, onHandshake: (@Sendable () -> Void)? = nil
    ) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        let deadline = TimeAmount(timeout)
        return { install(on: $0, timeout: deadline, server: server, onHandshake: onHandshake) }
    }

    /// Adds both right after the channel's TLS handler (a channel without one is left alone: there
    /// is no handshake to wait for). Run on the channel's event loop, in its initializer.
    static func install(
        on channel: any Channel, timeout: TimeAmount, server: Bool, onHandshake: (@Sendable () -> Void)?
    ) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            guard let tls = try? pipeline.handler(type: NIOSSLHandler.self) else { return }
            try pipeline.addHandler(WholeFrameReads(server: server), position: .after(tls))
            try pipeline.addHandler(
                HandshakeDeadline(timeout: timeout, onCompleted: onHandshake), position: .after(tls))
        }
    }
}

/// Why a connection was closed before it could carry a call.
public struct HandshakeTimedOut: Error, CustomStringConvertible {
    public let timeout: TimeAmount

    public var description: String {
        let seconds = Double(timeout.nanoseconds) / 1e9
        return "the other side did not complete the connection and its TLS handshake within \(seconds) s"
    }
}
