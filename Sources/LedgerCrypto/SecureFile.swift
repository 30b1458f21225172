import CWriteback
import Foundation

/// Writes files that must never be readable by others, not even for a moment: keys, the master key,
/// audit logs. Foundation's `createFile(attributes:)` on Linux creates with the default mode and
/// chmods afterwards; this opens with the final mode (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600) and
/// renames into place, so the path either holds the old file or the complete new one.
public enum SecureFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func write(_ bytes: some DataProtocol, to path: String, mode: mode_t = 0o600) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw Failure(description: "cannot create \(tmp): \(errorText(errno))") }
        let data = Data(bytes)
        let ok = data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n <= 0 { return false }
                off += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw Failure(description: "cannot write \(path)")
        }
    }

    /// Makes the entries of `directory` durable: a file created, renamed or removed in it reaches the
    /// disk only with its directory.
    public static func syncDirectory(_ directory: String) throws {
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open the directory \(directory): \(errorText(errno))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw Failure(description: "cannot sync the directory \(directory): \(errorText(errno))")
        }
    }

    /// Starts writing `count` bytes of `fd` from `offset` back to the disk without waiting for them
    /// (Linux `sync_file_range` with `SYNC_FILE_RANGE_WRITE`), so that a file written in pieces is
    /// mostly on its way by the time it is fsynced, and the fsync waits only for the tail. Not a
    /// durability step: the fsync is still what makes the file durable. Best effort; elsewhere, or
    /// if the call fails, nothing happens.
    public static func startWriteback(_ fd: Int32, offset: UInt64, count: Int) {
        guard let start = Int64(exactly: offset), count > 0 else { return }
        _ = medledger_start_writeback(fd, start, Int64(count))
    }

    /// Creates an empty file with `mode` if it does not exist (never follows a symlink).
    public static func createIfMissing(_ path: String, mode: mode_t = 0o600) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path)") }
        close(fd)
    }
}

/// `strerror(e)` as a Swift string: the one place LedgerCrypto turns an errno into words.
func errorText(_ e: Int32) -> String {
    guard let p = strerror(e) else { return "error \(e)" }
    var bytes = [UInt8]()
    var i = 0
    while p[i] != 0 {
        bytes.append(UInt8(bitPattern: p[i]))
        i += 1
    }
    return String(decoding: bytes, as: UTF8.self)
}
