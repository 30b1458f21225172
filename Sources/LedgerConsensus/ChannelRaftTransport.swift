import CRaft
import Foundation
import NIOCore

/// The `raft_uv_transport` libraft drives for one channel, backed by `TLSRaftTransport`. Its C entry
/// points run on the raft loop thread; dialling and accepting happen in SwiftNIO, whose results come
/// back to the loop through `RaftLoop.run`. Every connect request's callback fires exactly once (with
/// the stream, RAFT_NOCONNECTION, or RAFT_CANCELED after close), and always on a later loop turn than
/// the call that started it, never from inside it.
final class ChannelRaftTransport: @unchecked Sendable {
    let provider: TLSRaftTransport
    let loop: RaftLoop
    let channel: String
    let transport: UnsafeMutablePointer<raft_uv_transport>

    // Loop-thread state.
    private var acceptCallback: raft_uv_accept_cb?
    private var closing = false
    private var pending: [Int: raft_uv_connect_cb] = [:]

    init(provider: TLSRaftTransport, loop: RaftLoop, channel: String) {
        self.provider = provider
        self.loop = loop
        self.channel = channel
        transport = .allocate(capacity: 1)
        transport.initialize(to: raft_uv_transport())
        // Balanced by `TLSRaftTransport.release` once libraft has closed the transport.
        transport.pointee.impl = Unmanaged.passRetained(self).toOpaque()
        transport.pointee.`init` = { _, _, _ in 0 }
        transport.pointee.listen = { t, cb in
            guard let t else { return RAFT_INVALID }
            return ChannelRaftTransport.from(t).listen(cb)
        }
        transport.pointee.connect = { t, req, id, address, cb in
            guard let t, let req, let cb else { return RAFT_INVALID }
            return ChannelRaftTransport.from(t).connect(req, id: id, cb: cb)
        }
        transport.pointee.close = { t, cb in
            guard let t else { return }
            ChannelRaftTransport.from(t).close(cb)
        }
    }

    deinit { transport.deallocate() }

    static func from(_ t: UnsafeMutablePointer<raft_uv_transport>) -> ChannelRaftTransport {
        Unmanaged<ChannelRaftTransport>.fromOpaque(t.pointee.impl).takeUnretainedValue()
    }

    private func listen(_ cb: raft_uv_accept_cb?) -> Int32 {
        acceptCallback = cb
        provider.route(self, listening: true)
        return 0
    }

    private func connect(_ req: UnsafeMutablePointer<raft_uv_connect>, id: raft_id, cb: raft_uv_connect_cb) -> Int32 {
        guard !closing else { return RAFT_CANCELED }
        let key = Int(bitPattern: req)
        pending[key] = cb
        guard let peer = provider.peers(channel: channel).first(where: { $0.id == id }) else {
            provider.log("raft: channel \(channel) has no consenter \(id) to connect to")
            loop.run { [self] in finishConnect(key, .failure(RaftRefusal("unknown consenter \(id)"))) }
            return 0
        }
        provider.dial(peer, channel: channel).whenComplete { [self] result in
            let mapped = result.mapError { $0 as any Error }
            if !loop.run({ [self] in finishConnect(key, mapped) }), case .success(let fd) = result { Glibc.close(fd) }
        }
        return 0
    }

    private func finishConnect(_ key: Int, _ result: Result<Int32, any Error>) {
        guard let cb = pending.removeValue(forKey: key),
            let req = UnsafeMutablePointer<raft_uv_connect>(bitPattern: key)
        else {
            if case .success(let fd) = result { Glibc.close(fd) }
            return
        }
        switch result {
        case .success(let fd) where !closing:
            guard let stream = makeStream(fd) else { return cb(req, nil, RAFT_NOCONNECTION) }
            cb(req, stream, 0)
        case .success(let fd):
            Glibc.close(fd)
            cb(req, nil, RAFT_CANCELED)
        case .failure:
            cb(req, nil, closing ? RAFT_CANCELED : RAFT_NOCONNECTION)
        }
    }

    /// An authenticated, bridged incoming connection from `peer`.
    func accepted(from peer: RaftPeer, descriptor fd: Int32) {
        let queued = loop.run { [self] in
            guard !closing, let acceptCallback, let stream = makeStream(fd) else {
                Glibc.close(fd)
                return
            }
            acceptCallback(transport, peer.id, peer.address, stream)
        }
        if !queued { Glibc.close(fd) }
    }

    /// A libuv pipe over `fd`, allocated with `raft_malloc` because libraft frees the stream it is given.
    private func makeStream(_ fd: Int32) -> UnsafeMutablePointer<uv_stream_t>? {
        guard let raw = raft_malloc(MemoryLayout<uv_pipe_t>.size) else {
            Glibc.close(fd)
            return nil
        }
        let pipe = raw.bindMemory(to: uv_pipe_t.self, capacity: 1)
        guard uv_pipe_init(loop.loop, pipe, 0) == 0 else {
            raft_free(raw)
            Glibc.close(fd)
            return nil
        }
        guard uv_pipe_open(pipe, fd) == 0 else {
            Glibc.close(fd)
            uv_close(raw.assumingMemoryBound(to: uv_handle_t.self)) { handle in
                raft_free(UnsafeMutableRawPointer(handle))
            }
            return nil
        }
        return raw.assumingMemoryBound(to: uv_stream_t.self)
    }

    private func close(_ cb: raft_uv_transport_close_cb?) {
        closing = true
        acceptCallback = nil
        provider.route(self, listening: false)
        // Cancel what is still dialling, then report the transport closed, on a later loop turn.
        loop.run { [self] in
            for (key, connectCallback) in pending {
                if let req = UnsafeMutablePointer<raft_uv_connect>(bitPattern: key) {
                    connectCallback(req, nil, RAFT_CANCELED)
                }
            }
            pending.removeAll()
            cb?(transport)
        }
    }
}
