import Foundation

/// Reads a file in pieces of the caller's size with plain `read(2)` into one buffer per piece.
///
/// Why not `FileHandle.read(upToCount:)`: on Linux it reads 8 KiB per system call and appends each
/// to a `Data`, so a 1 MiB piece costs 128 calls and as many copies. Profiled on the object store,
/// that was 130 `read` calls per MiB served (twice: once to re-hash the object, once to send it).
public final class FileReader {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let fd: Int32
    public let path: String

    /// Opens `path` for reading; nil if it cannot be opened (missing, unreadable, a directory
    /// still opens and fails on the first read).
    public init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// The open file's device and inode: whether a path still names this file (`FileID(path:)`),
    /// whatever was renamed over it since it was opened.
    public var fileID: FileID? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return FileID(st)
    }

    /// The open file's size now; nil if `fstat` fails.
    public var size: UInt64? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return UInt64(st.st_size)
    }

    /// Moves to `offset` bytes from the start.
    public func seek(to offset: UInt64) throws {
        guard let o = off_t(exactly: offset), lseek(fd, o, SEEK_SET) == o else {
            throw Failure(description: "cannot seek to \(offset) in \(path): \(errorText(errno))")
        }
    }

    /// The next `count` bytes; fewer only at the end of the file, empty there.
    public func read(upTo count: Int) throws -> [UInt8] {
        precondition(count > 0, "FileReader: a read of \(count) bytes")
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, filled in
            filled = 0
            while filled < count {
                let n = Foundation.read(fd, buffer.baseAddress! + filled, count - filled)
                if n > 0 {
                    filled += n
                } else if n == 0 {
                    return
                } else if errno != EINTR {
                    failure = errno
                    return
                }
            }
        }
        guard failure == 0 else {
            throw Failure(description: "cannot read \(path): \(errorText(failure))")
        }
        return bytes
    }
}

/// A file's identity on its file system (device and inode), which a rename keeps and a new file
/// at the same path does not share.
public struct FileID: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
}

extension FileID {
    /// The file `path` names now (following symbolic links); nil if it names none.
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        self.init(st)
    }

    /// The file a `stat` or `fstat` described.
    init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}
