import NIOCore
import NIOEmbedded
import Testing

@testable import LedgerTransport

/// `WholeFrameReads` may change where HTTP/2's bytes are split, nothing else: every byte passes, in
/// order, once; while it aligns, every piece is whole frames and at most a piece's size (or one
/// frame); a frame announced longer than HTTP/2 allows turns it into a pass-through.
@Suite struct WholeFrameReadsTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// A frame header announcing `payload` bytes, then the payload.
    static func frame(_ payload: Int, fill: UInt8) -> [UInt8] {
        [UInt8(payload >> 16 & 0xff), UInt8(payload >> 8 & 0xff), UInt8(payload & 0xff), 0, 0, 0, 0, 0, 1]
            + [UInt8](repeating: fill, count: payload)
    }

    /// The lengths of the frames `bytes` holds, after `preface` bytes; nil unless they are whole frames.
    static func wholeFrames(_ bytes: [UInt8], preface: Int) -> [Int]? {
        var at = preface
        var frames: [Int] = []
        while at < bytes.count {
            guard bytes.count - at >= 9 else { return nil }
            let length = 9 + (Int(bytes[at]) << 16 | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]))
            guard bytes.count - at >= length else { return nil }
            frames.append(length)
            at += length
        }
        return frames
    }

    /// Feeds `stream` to a handler in reads of the given sizes; returns the pieces it passed on,
    /// with what it held passed on at the end.
    static func pieces(_ stream: [UInt8], reads: [Int], server: Bool) throws -> [[UInt8]] {
        let channel = EmbeddedChannel(handler: WholeFrameReads(server: server))
        var at = 0
        for size in reads where at < stream.count {
            let end = min(stream.count, at + size)
            try channel.writeInbound(ByteBuffer(bytes: stream[at..<end]))
            at = end
        }
        if at < stream.count { try channel.writeInbound(ByteBuffer(bytes: stream[at...])) }
        channel.pipeline.fireChannelInactive()
        var out: [[UInt8]] = []
        while let piece = try channel.readInbound(as: ByteBuffer.self) { out.append(Array(piece.readableBytesView)) }
        return out
    }

    /// SplitMix64: the same rounds from the same seed, which a failure prints.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func everyByteGoesOnInOrderAndEveryPieceIsWholeFrames() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var generator = SeededGenerator(state: seed)
        for round in 0..<200 {
            let server = round % 2 == 0
            var stream = server ? Self.preface : []
            for index in 0..<Int.random(in: 1...40, using: &generator) {
                // Mostly small frames, some near the 16 KiB maximum, some empty (SETTINGS acks).
                let payload = [0, 5, 60, 300, 1_200, 9_000, 16_384].randomElement(using: &generator)!
                stream += Self.frame(payload, fill: UInt8(index & 0xff))
            }
            var reads: [Int] = []
            var total = 0
            while total < stream.count {
                let size = [1, 7, 9, 24, 100, 4_096, 20_000, 70_000].randomElement(using: &generator)!
                reads.append(size)
                total += size
            }
            let pieces = try Self.pieces(stream, reads: reads, server: server)
            #expect(Array(pieces.joined()) == stream, "seed \(seed) round \(round): bytes changed")
            for (number, piece) in pieces.enumerated() {
                let preface = server && number == 0 ? Self.preface.count : 0
                let frames = Self.wholeFrames(piece, preface: preface)
                #expect(frames != nil, "seed \(seed) round \(round) piece \(number): not whole frames")
                #expect(
                    piece.count <= WholeFrameReads.pieceBytesMax || frames?.count == 1
                        || (preface > 0 && frames?.isEmpty == true),
                    "seed \(seed) round \(round) piece \(number): \(piece.count) bytes in \(frames?.count ?? -1) frames"
                )
            }
        }
    }

    @Test func theClientPrefaceComesFirstAndMayArriveInParts() throws {
        let stream = Self.preface + Self.frame(4, fill: 7)
        let pieces = try Self.pieces(stream, reads: [10, 10, 10, 3], server: true)
        #expect(Array(pieces.joined()) == stream)
        #expect(pieces.first?.count ?? 0 >= Self.preface.count, "\(pieces.map(\.count))")
        // A client never receives the preface: the same bytes read as a frame header announce far
        // more than a frame may hold, and pass on as they came.
        let asClient = try Self.pieces(stream, reads: [10, 10, 10, 7], server: false)
        #expect(asClient.map(\.count) == [10, 10, 10, 7])
    }

    /// A header announcing more than HTTP/2 allows is not waited for: it goes on at once (the parser
    /// refuses it), and so does everything after it, so nothing it announces is ever held here.
    @Test func aFrameLongerThanAllowedStopsTheAligning() throws {
        let tooLong = [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 3, count: 100)
        let stream = Self.frame(10, fill: 1) + tooLong + Self.frame(10, fill: 2)
        let pieces = try Self.pieces(stream, reads: [25, 50, 1, 1000], server: false)
        #expect(Array(pieces.joined()) == stream)
        #expect(pieces.first == Self.frame(10, fill: 1))
        #expect(pieces.count == 4, "\(pieces.map(\.count))")  // the frame, then each read as it came
    }

    /// Nothing HTTP/2 could act on waits: whole frames (a SETTINGS, a PING) go on with the read
    /// that completes them, before any other byte comes.
    @Test func wholeFramesGoOnAtOnce() throws {
        for server in [false, true] {
            let channel = EmbeddedChannel(handler: WholeFrameReads(server: server))
            let ping = Self.frame(8, fill: 6)
            let first = (server ? Self.preface : []) + Self.frame(0, fill: 0) + ping
            try channel.writeInbound(ByteBuffer(bytes: first.prefix(first.count - 1)))
            try channel.writeInbound(ByteBuffer(bytes: first.suffix(1)))
            var out: [UInt8] = []
            while let piece = try channel.readInbound(as: ByteBuffer.self) { out += piece.readableBytesView }
            #expect(out == first, "server \(server): \(out.count) of \(first.count) bytes passed on")
            try channel.writeInbound(ByteBuffer(bytes: ping))
            #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == ping)
        }
    }

    @Test func anIncompleteFrameWaitsAndIsPassedOnWhenTheConnectionEnds() throws {
        let channel = EmbeddedChannel(handler: WholeFrameReads(server: false))
        try channel.writeInbound(ByteBuffer(bytes: Self.frame(100, fill: 9).prefix(50)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        channel.pipeline.fireChannelInactive()
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 50)
    }

    @Test func piecesAreCutAtFrameBoundariesNearTheLimit() {
        let frames = (0..<10).flatMap { Self.frame(3_000, fill: UInt8($0)) }
        let piece = HTTP2Frames.nextPiece(
            of: ByteBuffer(bytes: frames), prefaceBytesLeft: 0, pieceBytesMax: 16_384, frameBytesMax: 16_393)
        #expect(piece == .whole(length: 5 * 3_009))
        #expect(
            HTTP2Frames.nextPiece(
                of: ByteBuffer(bytes: frames.prefix(3_008)), prefaceBytesLeft: 0, pieceBytesMax: 16_384,
                frameBytesMax: 16_393) == .incomplete)
        #expect(
            HTTP2Frames.nextPiece(
                of: ByteBuffer(bytes: Self.preface.prefix(20)), prefaceBytesLeft: 24, pieceBytesMax: 16_384,
                frameBytesMax: 16_393) == .incomplete)
    }
}
