import Foundation
import LedgerCrypto
import Testing

@Suite struct FileReaderTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("reader-\(UUID().uuidString)").path
    }

    @Test func readsWholePiecesThenTheRestThenNothing() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(3 * 65_536 + 123)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let reader = try #require(FileReader(path: path))
        var pieces = [[UInt8]]()
        while case let piece = try reader.read(upTo: 65_536), !piece.isEmpty { pieces.append(piece) }
        #expect(pieces.map(\.count) == [65_536, 65_536, 65_536, 123])
        #expect(pieces.flatMap { $0 } == bytes)
        #expect(try reader.read(upTo: 10).isEmpty)

        try reader.seek(to: 65_530)
        #expect(try reader.read(upTo: 10) == Array(bytes[65_530..<65_540]))
        try reader.seek(to: UInt64(bytes.count))
        #expect(try reader.read(upTo: 10).isEmpty)
    }

    /// A pipe hands over what its writer has written so far: the reader keeps reading until it has
    /// the whole piece (or the writer closes), as a file read across page-cache misses may come short.
    @Test func fillsAPieceFromShortReads() throws {
        let path = Self.temporaryPath()
        guard mkfifo(path, 0o600) == 0 else {
            Issue.record("mkfifo failed: \(errno)")
            return
        }
        defer { unlink(path) }
        let writer = Thread {
            let fd = open(path, O_WRONLY)
            for i in 0..<10 {
                var chunk = [UInt8](repeating: UInt8(i), count: 1_000)
                _ = write(fd, &chunk, chunk.count)
                usleep(2_000)
            }
            close(fd)
        }
        writer.start()
        let reader = try #require(FileReader(path: path))
        let piece = try reader.read(upTo: 6_000)
        #expect(piece.count == 6_000)
        #expect(piece[5_999] == 5)
        let rest = try reader.read(upTo: 6_000)
        #expect(rest.count == 4_000)
        #expect(try reader.read(upTo: 1).isEmpty)
    }

    @Test func refusesWhatCannotBeRead() throws {
        #expect(FileReader(path: "/nonexistent/\(UUID().uuidString)") == nil)
        let directory = try #require(FileReader(path: FileManager.default.temporaryDirectory.path))
        #expect(throws: FileReader.Failure.self) { try directory.read(upTo: 1) }
    }
}
