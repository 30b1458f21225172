import NIOCore

/// Sits between TLS and HTTP/2 on every gRPC connection and hands HTTP/2 what was read in pieces
/// of whole frames, at most `pieceBytesMax` a piece (one frame when a frame alone is longer).
///
/// Why: HTTP/2's frame parser (swift-nio-http2) appends every read to one buffer it keeps for the
/// connection's life, and never compacts it while a frame is incomplete. In a burst, a read nearly
/// always ends inside a frame, so the buffer grows to the burst's size (256 KiB to 1 MiB seen after a
/// few thousand transactions) and keeps that capacity. gRPC's deframer keeps a slice of the last
/// DATA frame it was given, so when the next read is appended the buffer is shared, and ByteBuffer's
/// copy-on-write copies the buffer's whole slice, consumed bytes included: 1 MiB copied for a read of
/// 1 KB. At one read in flight those copies were 7 % of all CPU (peer and client); under load 1–2 %.
///
/// Given whole frames, the parser has consumed everything after each piece and starts the next
/// piece at the front of its buffer, so the buffer stays as small as a piece and each copy is small.
/// The parser accepts bytes split anywhere, so this changes only where they are split: every byte
/// passes, in order, once. The start of an incomplete frame (at most `frameBytesMax` bytes) waits
/// here for the rest. A frame longer than HTTP/2's default maximum is an error the parser reports
/// itself: from then on bytes pass on as they come, and no frame length read here bounds what is held.
final class WholeFrameReads: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// A piece's bytes at most, unless one frame alone is longer.
    static let pieceBytesMax = 16 * 1024
    /// A frame header and HTTP/2's default SETTINGS_MAX_FRAME_SIZE (2^14), which gRPC keeps.
    static let frameBytesMax = HTTP2Frames.headerBytes + 16_384

    /// The start of an incomplete frame, in a buffer of its own.
    private var held: ByteBuffer?
    /// On a server, the client's 24-byte connection preface, which comes before the first frame.
    private var prefaceBytesLeft: Int
    /// False once a frame longer than `frameBytesMax` was announced: bytes then pass as they come.
    private var aligning = true

    init(server: Bool) {
        prefaceBytesLeft = server ? HTTP2Frames.clientPrefaceBytes : 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard aligning else { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        if var held {
            self.held = nil
            held.writeImmutableBuffer(bytes)
            bytes = held
        }
        while bytes.readableBytes > 0 {
            switch HTTP2Frames.nextPiece(
                of: bytes, prefaceBytesLeft: prefaceBytesLeft, pieceBytesMax: Self.pieceBytesMax,
                frameBytesMax: Self.frameBytesMax)
            {
            case .whole(let length):
                prefaceBytesLeft = max(0, prefaceBytesLeft - length)
                context.fireChannelRead(wrapInboundOut(bytes.readSlice(length: length)!))
            case .incomplete:
                var kept = context.channel.allocator.buffer(capacity: bytes.readableBytes)
                kept.writeImmutableBuffer(bytes)
                held = kept
                return
            case .frameTooLong:
                aligning = false
                context.fireChannelRead(wrapInboundOut(bytes))
                return
            }
        }
    }

    /// What was held is passed on before the end is, so HTTP/2 sees every byte that came.
    func channelInactive(context: ChannelHandlerContext) {
        if let held {
            self.held = nil
            context.fireChannelRead(wrapInboundOut(held))
        }
        context.fireChannelInactive()
    }
}

/// The little of HTTP/2's framing (RFC 9113 §3.4, §4.1) that `WholeFrameReads` needs.
enum HTTP2Frames {
    /// Length (24 bits), type, flags, stream identifier.
    static let headerBytes = 9
    /// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", which a client sends first.
    static let clientPrefaceBytes = 24

    enum Piece: Equatable {
        /// The first `length` readable bytes are whole frames (and the preface, if it was due).
        case whole(length: Int)
        /// The bytes start with an incomplete frame (or preface): wait for more.
        case incomplete
        /// The first frame announces more than `frameBytesMax` bytes.
        case frameTooLong
    }

    /// The longest run of whole frames at the start of `bytes` that fits in `pieceBytesMax` (or the
    /// first frame alone, when it is longer), after `prefaceBytesLeft` bytes of the preface.
    static func nextPiece(
        of bytes: ByteBuffer, prefaceBytesLeft: Int, pieceBytesMax: Int, frameBytesMax: Int
    ) -> Piece {
        let available = bytes.readableBytes
        guard available >= prefaceBytesLeft else { return .incomplete }
        var length = prefaceBytesLeft
        while available - length >= headerBytes {
            let frame = headerBytes + payloadLength(bytes, at: bytes.readerIndex + length)
            if frame > frameBytesMax { return length > 0 ? .whole(length: length) : .frameTooLong }
            if available - length < frame || (length > 0 && length + frame > pieceBytesMax) { break }
            length += frame
        }
        return length > 0 ? .whole(length: length) : .incomplete
    }

    private static func payloadLength(_ bytes: ByteBuffer, at index: Int) -> Int {
        let high = Int(bytes.getInteger(at: index, as: UInt8.self)!)
        let low = Int(bytes.getInteger(at: index + 1, as: UInt16.self)!)
        return high << 16 | low
    }
}
