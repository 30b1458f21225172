import CRaft
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A consenter as the transport knows it: where it listens and the public key its TLS certificate
/// must carry. Keys, not certificates, are pinned: a renewed certificate over the same key needs no
/// configuration change.
public struct RaftPeer: Sendable, Equatable {
    public var id: ConsenterID
    public var address: String
    /// DER SubjectPublicKeyInfo of the consenter's TLS certificate.
    public var publicKey: [UInt8]
    public init(id: ConsenterID, address: String, publicKey: [UInt8]) {
        self.id = id
        self.address = address
        self.publicKey = publicKey
    }
}

/// The node's TLS identity for Raft traffic (its TLS certificate and key; the same as its gRPC ones).
public struct RaftTLSIdentity: Sendable {
    public var certificateChain: [NIOSSLCertificate]
    public var privateKey: NIOSSLPrivateKey
    public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
    public init(certificatePath: String, keyPath: String) throws {
        certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        privateKey = try NIOSSLPrivateKey(file: keyPath, format: .pem)
    }
}

/// libraft's transport over mutual TLS. libraft has no TLS and wants a connected `uv_stream_t`, so
/// every Raft connection is a socketpair: libraft reads and writes one end as a libuv pipe, and SwiftNIO
/// relays the other end through a TLS connection to the peer. No Raft byte crosses a plaintext port.
///
/// One listener serves every raft channel of the node. After the TLS handshake the dialling side
/// names the channel (a 2-byte length and the UTF-8 name); the listener then requires the peer's
/// certificate key to be pinned in that channel's consenter set and hands libraft the Raft id found
/// there: the id is derived from the certificate, never from what the peer says. Outgoing connections
/// require the server's key to be the one pinned for the consenter dialled.
public final class TLSRaftTransport: RaftTransportProvider, @unchecked Sendable {
    public let listenHost: String
    public private(set) var listenPort: Int
    let identity: RaftTLSIdentity
    let group: MultiThreadedEventLoopGroup
    let log: @Sendable (String) -> Void
    private let state = Mutex<State>(State())
    private var server: Channel?

    struct State {
        var peers: [String: [RaftPeer]] = [:]
        /// Channel name → its libraft transport (registered once libraft listens).
        var routes: [String: ChannelRaftTransport] = [:]
        var refused = 0
    }

    public init(
        listenHost: String, listenPort: Int, identity: RaftTLSIdentity,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.identity = identity
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.log = log
    }

    /// Replaces the consenter set of `channel` (from its channel configuration). Connections already
    /// open stay; new ones are judged against the new set.
    public func setPeers(_ peers: [RaftPeer], channel: String) {
        state.withLock { $0.peers[channel] = peers }
    }

    public func peers(channel: String) -> [RaftPeer] { state.withLock { $0.peers[channel] ?? [] } }

    /// Connections refused so far (a key not pinned, an unknown channel, a bad preamble, no handshake and
    /// preamble within `handshakeTimeout`).
    public var refusedConnections: Int { state.withLock { $0.refused } }

    /// Binds the listener. With port 0 the OS picks one (`listenPort` then holds it).
    public func start() async throws {
        let tls = try NIOSSLContext(configuration: serverConfiguration())
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = NIOSSLServerHandler(context: tls) { [self] certificates, promise in
                        // Accept any pinned key here; the channel named next narrows it to its own set.
                        promise.succeed(self.isPinnedAnywhere(certificates.first) ? .certificateVerified : .failed)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(IncomingRaftConnection(transport: self))
                }
            }
        let server = try await bootstrap.bind(host: listenHost, port: listenPort).get()
        self.server = server
        if let port = server.localAddress?.port { listenPort = port }
        log("raft: listening for consenters over mutual TLS on \(listenHost):\(listenPort)")
    }

    public func shutdown() async {
        try? await server?.close()
        try? await group.shutdownGracefully()
    }

    private func serverConfiguration() -> TLSConfiguration {
        var c = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.certificateChain.map { .certificate($0) },
            privateKey: .privateKey(identity.privateKey))
        c.certificateVerification = .noHostnameVerification
        c.minimumTLSVersion = .tlsv13
        return c
    }

    private func clientConfiguration() -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        c.certificateChain = identity.certificateChain.map { .certificate($0) }
        c.privateKey = .privateKey(identity.privateKey)
        c.certificateVerification = .noHostnameVerification
        c.minimumTLSVersion = .tlsv13
        return c
    }

    static func publicKey(of certificate: NIOSSLCertificate?) -> [UInt8]? {
        try? certificate?.extractPublicKey().toSPKIBytes()
    }

    private func isPinnedAnywhere(_ certificate: NIOSSLCertificate?) -> Bool {
        guard let key = Self.publicKey(of: certificate) else { return false }
        let pinned = state.withLock { s in s.peers.values.contains { $0.contains { $0.publicKey == key } } }
        if !pinned { refuse("a TLS certificate whose key is no consenter's") }
        return pinned
    }

    func refuse(_ why: String) {
        state.withLock { $0.refused += 1 }
        log("raft: refused a connection: \(why)")
    }

    // MARK: RaftTransportProvider

    public func makeTransport(
        on loop: RaftLoop, channel: String
    ) throws(ConsensusError) -> UnsafeMutablePointer<raft_uv_transport> {
        guard channel.utf8.count <= IncomingRaftConnection.maxChannelName else {
            throw .badRequest("channel name too long for raft")
        }
        let instance = ChannelRaftTransport(provider: self, loop: loop, channel: channel)
        return instance.transport
    }

    public func release(_ transport: UnsafeMutablePointer<raft_uv_transport>) {
        guard let impl = transport.pointee.impl else { return }
        Unmanaged<ChannelRaftTransport>.fromOpaque(impl).release()
    }

    func route(_ channel: ChannelRaftTransport, listening: Bool) {
        state.withLock { s in
            if listening {
                s.routes[channel.channel] = channel
            } else if s.routes[channel.channel] === channel {
                s.routes[channel.channel] = nil
            }
        }
    }

    /// An authenticated incoming connection for `channel` from the certificate key `key`: the route and
    /// the Raft id it is allowed to speak as, or why it is refused.
    func admit(channel: String, key: [UInt8]) -> Result<(ChannelRaftTransport, RaftPeer), RaftRefusal> {
        state.withLock { s in
            guard let route = s.routes[channel] else {
                return .failure(.init("no raft consenter of channel \(channel) runs here"))
            }
            guard let peer = s.peers[channel]?.first(where: { $0.publicKey == key }) else {
                return .failure(.init("the certificate key is not a consenter of channel \(channel)"))
            }
            return .success((route, peer))
        }
    }

    /// How long a raft connection may take from the TCP connect to the channel preamble, on either side.
    static let handshakeTimeout: TimeAmount = .seconds(5)

    /// Dials `peer` for `channel`: TLS with the peer's key pinned, the channel preamble, then a
    /// socketpair whose other end is returned for libraft.
    func dial(_ peer: RaftPeer, channel: String) -> EventLoopFuture<Int32> {
        let loop = group.next()
        guard let (host, port) = Self.split(peer.address) else {
            return loop.makeFailedFuture(RaftRefusal("consenter \(peer.id) has a bad address \(peer.address)"))
        }
        let tls: NIOSSLContext
        do { tls = try NIOSSLContext(configuration: clientConfiguration()) } catch {
            return loop.makeFailedFuture(error)
        }
        let pinned = peer.publicKey
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: tls, serverHostname: nil) { certificates, promise in
                        promise.succeed(
                            Self.publicKey(of: certificates.first) == pinned ? .certificateVerified : .failed)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let handshakeTimeout = Self.handshakeTimeout
        return bootstrap.connect(host: host, port: port).flatMap { tlsChannel in
            // The handshake completes before the first write is flushed through; write the preamble.
            // A frozen consenter's kernel accepts the TCP connection but nobody answers the handshake:
            // the deadline closes the connection, the write fails and libraft tries again later.
            let deadline = tlsChannel.eventLoop.scheduleTask(in: handshakeTimeout) { tlsChannel.close(promise: nil) }
            var preamble = tlsChannel.allocator.buffer(capacity: 2 + channel.utf8.count)
            preamble.writeInteger(UInt16(channel.utf8.count))
            preamble.writeString(channel)
            return tlsChannel.writeAndFlush(preamble).always { _ in deadline.cancel() }.flatMap {
                self.bridge(tlsChannel) { _ in }
            }.flatMapError { error in
                tlsChannel.close(promise: nil)
                return tlsChannel.eventLoop.makeFailedFuture(error)
            }
        }
    }

    /// Makes a socketpair, relays one end through `tlsChannel`, and returns the other end's descriptor.
    /// `handOver` runs on the event loop once the relay is in place (before any further read reaches
    /// it): the listener forwards what arrived after the preamble and steps aside.
    func bridge(_ tlsChannel: Channel, handOver: @escaping @Sendable (Channel) -> Void) -> EventLoopFuture<Int32> {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            return tlsChannel.eventLoop.makeFailedFuture(RaftRefusal("socketpair: \(String(cString: strerror(errno)))"))
        }
        let (libraftEnd, relayEnd) = (fds[0], fds[1])
        return ClientBootstrap(group: tlsChannel.eventLoop)
            .withConnectedSocket(relayEnd)
            .flatMapThrowing { local in
                let (a, b) = GlueHandler.pair()
                try local.pipeline.syncOperations.addHandler(a)
                try tlsChannel.pipeline.syncOperations.addHandler(b)
                handOver(local)
                return libraftEnd
            }
            .flatMapError { error in
                close(libraftEnd)
                return tlsChannel.eventLoop.makeFailedFuture(error)
            }
    }

    static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}

struct RaftRefusal: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The listener's side of one connection: waits for the TLS handshake and the channel preamble,
/// admits the peer by its pinned key, then bridges the connection to a socketpair for libraft.
/// Bytes that arrive while the bridge is being built are held and forwarded first.
final class IncomingRaftConnection: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to its channel's event loop
    typealias InboundIn = ByteBuffer
    static let maxChannelName = 255
    /// Bytes held before the relay exists: libraft's first messages, never more than a few blocks.
    static let maxHeldBytes = 64 << 20
    let transport: TLSRaftTransport
    private var buffer: ByteBuffer?
    private var phase = Phase.preamble
    /// Closes a connection that has not finished its handshake and named its channel in time, so a
    /// caller that connects and goes quiet does not hold a connection for ever.
    private var deadline: Scheduled<Void>?

    enum Phase { case preamble, bridging, refused }

    init(transport: TLSRaftTransport) { self.transport = transport }

    func handlerAdded(context: ChannelHandlerContext) {
        let timeout = TLSRaftTransport.handshakeTimeout
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard self.phase == .preamble else { return }
            self.refuse(
                context, "no TLS handshake and channel preamble within \(timeout.nanoseconds / 1_000_000_000) s")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        switch phase {
        case .refused: buffer = nil
        case .bridging:
            if (buffer?.readableBytes ?? 0) > Self.maxHeldBytes {
                refuse(context, "too much data before the relay was ready")
            }
        case .preamble: readPreamble(context)
        }
    }

    private func readPreamble(_ context: ChannelHandlerContext) {
        guard var b = buffer, let length = b.getInteger(at: b.readerIndex, as: UInt16.self) else { return }
        guard Int(length) <= Self.maxChannelName, length > 0 else { return refuse(context, "a bad channel preamble") }
        guard b.readableBytes >= 2 + Int(length) else { return }
        b.moveReaderIndex(forwardBy: 2)
        let channel = b.readString(length: Int(length)) ?? ""
        buffer = b
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
        guard let key = TLSRaftTransport.publicKey(of: certificate) else {
            return refuse(context, "no client certificate")
        }
        switch transport.admit(channel: channel, key: key) {
        case .failure(let why):
            refuse(context, why.description)
        case .success(let (route, peer)):
            phase = .bridging
            deadline?.cancel()
            deadline = nil
            let tlsChannel = context.channel
            transport.bridge(tlsChannel) { local in
                if let held = self.buffer, held.readableBytes > 0 { local.writeAndFlush(held, promise: nil) }
                self.buffer = nil
                tlsChannel.pipeline.syncOperations.removeHandler(self, promise: nil)
            }.whenComplete { result in
                switch result {
                case .success(let fd): route.accepted(from: peer, descriptor: fd)
                case .failure(let error):
                    self.transport.log("raft: could not bridge a connection from consenter \(peer.id): \(error)")
                    tlsChannel.close(promise: nil)
                }
            }
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ why: String) {
        phase = .refused
        buffer = nil
        transport.refuse(why)
        context.close(promise: nil)
    }
}

/// Relays bytes between two channels (the TLS connection and the local end of the socketpair) with
/// back-pressure: a side reads only while its partner can take writes. Closing one closes the other.
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler()
        let b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }
    private func partnerClose() { context?.close(promise: nil) }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerClose() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, case .inputClosed = e { partner?.partnerClose() }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if partner?.partnerWritable ?? false { context.read() } else { pendingRead = true }
    }
}
