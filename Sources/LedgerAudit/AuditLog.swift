import Crypto
import Foundation
import LedgerCrypto
import Synchronization

/// Who did something: taken from the caller's verified certificate (or "anonymous").
public struct AuditActor: Sendable, Codable, Equatable {
    public var pid: String
    public var org: String
    public var role: String

    public init(pid: String, org: String, role: String) {
        self.pid = pid
        self.org = org
        self.role = role
    }

    public static let anonymous = AuditActor(pid: "-", org: "-", role: "-")
    public static let system = AuditActor(pid: "-", org: "-", role: "system")
}

public enum AuditOutcome: String, Sendable, Codable {
    case success, denied, failed
}

/// One security-relevant event. Never put a real identity (RID) or medical content in `target` or
/// `detail`: audit lines are read by operators and shipped to log systems.
public struct AuditEvent: Sendable {
    public var actor: AuditActor
    public var action: String
    public var target: String
    public var outcome: AuditOutcome
    public var detail: String

    public init(actor: AuditActor, action: String, target: String, outcome: AuditOutcome, detail: String = "") {
        self.actor = actor
        self.action = action
        self.target = target
        self.outcome = outcome
        self.detail = detail
    }
}

/// An append-only, hash-chained JSON-lines audit log.
///
/// Each line is `{"action":…,"actor":{…},"detail":…,"outcome":…,"prev":"<hex>","seq":n,"target":…,"ts":…,"hash":"<hex>"}`
/// where `hash` = SHA-256(previous line's hash ‖ the line's bytes up to, not including, `,"hash":`).
/// The first line's previous hash is 32 zero bytes. Editing a line breaks its hash; deleting or
/// reordering lines breaks the `prev`/`seq` links (`AuditVerifier`). Truncating the tail can only be
/// seen against a head hash kept elsewhere (`AuditLog.head`).
///
/// **Durability.** Every line is one `write(2)`, so a crashed process leaves whole lines; lines reach
/// the disk (`fsync`) in groups — once `SyncPolicy.linesMax` are pending, at the latest
/// `SyncPolicy.interval` after they were written, on `sync()`, on `close()`, and at once for a caller
/// that asks (`record(_:durable:)`). A failed write throws and leaves no partial line behind; a failed
/// `fsync` throws and stops the log (after one, Linux may have dropped the unwritten pages, so a later
/// "successful" fsync would prove nothing).
///
/// **Torn tails.** If the machine stopped during a write, the file may end in part of a line. Opening
/// keeps those bytes where they are, appends a recovery line naming their offsets and SHA-256, and
/// continues the chain from the last whole line; `AuditVerifier` reports the recovery, and still
/// reports any byte of the torn range that was changed.
public final class AuditLog: Sendable {
    /// When pending lines are flushed to disk.
    public struct SyncPolicy: Sendable, Equatable {
        /// fsync once this many lines are written but not synced (1: every line).
        public var linesMax: Int
        /// and at the latest this long after a line was written (a background flush; 0: none).
        public var interval: Duration

        public init(linesMax: Int, interval: Duration) {
            self.linesMax = max(linesMax, 1)
            self.interval = interval
        }

        /// Up to 64 lines or 200 ms at risk if the machine (not just the process) stops.
        public static let grouped = SyncPolicy(linesMax: 64, interval: .milliseconds(200))
        public static let everyLine = SyncPolicy(linesMax: 1, interval: .zero)
    }

    /// When the active file is rotated out, and how many rotated files are kept. The chain runs on
    /// across files (`AuditFiles`), so the set of kept files verifies as one log; the oldest files
    /// beyond `keepFiles` are deleted (archive them first if they must be kept longer: the anchors on
    /// chain still vouch for every line they held).
    public struct Rotation: Sendable, Equatable {
        /// Rotate once the active file has reached this many bytes (checked after each line).
        public var maxBytes: Int
        /// Rotated files kept beside the active one, at least 1.
        public var keepFiles: Int

        public init(maxBytes: Int, keepFiles: Int) {
            self.maxBytes = max(maxBytes, 1)
            self.keepFiles = max(keepFiles, 1)
        }

        /// 64 MiB files, 64 kept: at most about 4 GiB of audit lines on disk.
        public static let `default` = Rotation(maxBytes: 64 << 20, keepFiles: 64)
    }

    public enum Failure: Error, CustomStringConvertible, Equatable, Sendable {
        case cannotOpen(path: String, reason: String)
        case inUse(path: String)
        case brokenTail(path: String, reason: String)
        case writeFailed(path: String, reason: String)
        case syncFailed(path: String, reason: String)
        case unusable(path: String, reason: String)
        case closed(path: String)
        case rotateFailed(path: String, reason: String)

        public var description: String {
            switch self {
            case .cannotOpen(let p, let why): return "cannot open audit log \(p): \(why)"
            case .inUse(let p):
                return "audit log \(p) is already open (by another process, or twice in this one); one writer per log"
            case .brokenTail(let p, let why):
                return "audit log \(p) cannot be continued: \(why); run `medledger audit verify` and rotate the file"
            case .writeFailed(let p, let why):
                return "cannot write to audit log \(p): \(why); the line was not recorded"
            case .syncFailed(let p, let why):
                return
                    "cannot flush audit log \(p) to disk: \(why); recent lines may be lost if the machine stops, and the log takes no more lines until it is reopened"
            case .unusable(let p, let why):
                return "audit log \(p) takes no more lines: \(why); reopen it (a restart marks any torn tail)"
            case .closed(let p): return "audit log \(p) is closed"
            case .rotateFailed(let p, let why):
                return "cannot rotate audit log \(p): \(why); lines go on into the same file"
            }
        }
    }

    public let path: String
    public let policy: SyncPolicy
    /// The torn tail found and marked when the log was opened; nil when it ended with a whole line.
    public let recovery: AuditRecovery?
    private let file: AuditFile
    private let flusher: Task<Void, Never>?

    /// Opens or creates (0600) the log, recovers a torn tail, and continues the chain from its last
    /// whole line. `onFailure` hears of every line that could not be written or synced — also those of
    /// the background flush, which has no caller to throw to — so a daemon can tell its operator.
    public init(
        path: String, policy: SyncPolicy = .grouped, rotation: Rotation = .default,
        onFailure: (@Sendable (Failure) -> Void)? = nil
    ) throws {
        self.path = path
        self.policy = policy
        let fd = try AuditFile.open(path)
        let file: AuditFile
        do {
            let data = try AuditFile.readAll(fd, path: path)
            // An empty active file after a rotation (or a crash right after one): the chain goes on
            // from the newest rotated file's last line.
            let tail =
                try data.isEmpty
                ? AuditTail(continuingFrom: AuditFiles.rotated(path).last) : AuditTail(scanning: data, path: path)
            file = AuditFile(fd: fd, path: path, tail: tail, size: data.count, rotation: rotation, onFailure: onFailure)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.file = file
        recovery = try file.markTornTail()
        let interval = policy.interval
        flusher = interval > .zero ? Task.detached { await file.flushPending(every: interval) } : nil
    }

    deinit { flusher?.cancel() }

    /// The hash of the last line written: keep it elsewhere to detect truncation later.
    public var head: String { Hex.encode(file.previousHash) }

    /// The last line written: its number and hash, read together (what an anchor records).
    public var position: (seq: UInt64, head: String) {
        let (seq, hash) = file.position
        return (seq, Hex.encode(hash))
    }

    /// Lines written but not yet flushed to disk.
    public var pendingLines: Int { file.pendingLines }

    /// Why the last line could not be written or synced, and since when lines have been failing; nil
    /// once a line is written again. A daemon reports it as unhealthy and refuses what it cannot audit.
    public var failing: (failure: Failure, since: Date)? { file.failing }

    /// Appends one line. With `durable`, returns only once it (and every line before it) is on disk:
    /// for events that must survive the machine stopping (the CA's decisions). Throws `Failure` with
    /// the reason when the line could not be written or synced.
    public func record(_ event: AuditEvent, at date: Date = Date(), durable: Bool = false) throws {
        try file.append(event, at: date, syncNow: durable, linesMax: policy.linesMax)
    }

    /// Flushes pending lines to disk.
    public func sync() throws { try file.sync() }

    /// Flushes and closes; later `record` calls throw `Failure.closed`.
    public func close() throws {
        flusher?.cancel()
        try file.close()
    }

    /// The open descriptor, for tests that swap in one that fails (/dev/full) to exercise I/O errors.
    @_spi(Testing) public var descriptorForTesting: Int32 { file.descriptor }
}

/// The file under an `AuditLog`: one descriptor, the chain's end, the sync bookkeeping. One lock: a
/// line is written, hashed into the chain and counted as one step.
final class AuditFile: Sendable {
    private struct State {
        var fd: Int32
        var previousHash: [UInt8]
        var seq: UInt64
        /// File size up to the end of the last whole line (where a failed write is cut back to).
        var size: Int
        var pending = 0
        var torn: Range<Int>?
        var endsMidLine: Bool
        /// Set once the file's state is unknown (a failed fsync, an unremovable partial line).
        var broken: AuditLog.Failure?
        /// Sequence number the active file's first line has (or will have): the name it is rotated to.
        var firstSeq: UInt64
        var failing: (failure: AuditLog.Failure, since: Date)?
    }

    let path: String
    private let state: Mutex<State>
    private let rotation: AuditLog.Rotation
    private let onFailure: (@Sendable (AuditLog.Failure) -> Void)?

    init(
        fd: Int32, path: String, tail: AuditTail, size: Int, rotation: AuditLog.Rotation,
        onFailure: (@Sendable (AuditLog.Failure) -> Void)?
    ) {
        self.path = path
        self.rotation = rotation
        self.onFailure = onFailure
        state = Mutex(
            State(
                fd: fd, previousHash: tail.previousHash, seq: tail.seq, size: size, torn: tail.torn,
                endsMidLine: tail.endsMidLine,
                firstSeq: tail.firstSeq ?? tail.seq + 1))
    }

    deinit {
        state.withLock { s in
            if s.fd >= 0 {
                _ = fsync(s.fd)
                Glibc.close(s.fd)
            }
        }
    }

    var previousHash: [UInt8] { state.withLock { $0.previousHash } }
    var position: (UInt64, [UInt8]) { state.withLock { ($0.seq, $0.previousHash) } }
    var pendingLines: Int { state.withLock { $0.pending } }
    var descriptor: Int32 { state.withLock { $0.fd } }
    var failing: (failure: AuditLog.Failure, since: Date)? { state.withLock { $0.failing } }

    /// Opens for appending, creating it 0600 in one step (no window with wider permissions), never
    /// through a symbolic link, and takes an exclusive lock: two writers would fork the chain.
    static func open(_ path: String) throws -> Int32 {
        try? FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditLog.Failure.cannotOpen(path: path, reason: errnoText()) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(fd)
            throw AuditLog.Failure.cannotOpen(path: path, reason: "not a regular file")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let why = errnoText()
            Glibc.close(fd)
            throw busy
                ? AuditLog.Failure.inUse(path: path)
                : AuditLog.Failure.cannotOpen(path: path, reason: "cannot lock: \(why)")
        }
        return fd
    }

    static func readAll(_ fd: Int32, path: String) throws -> [UInt8] {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(out.count)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuditLog.Failure.cannotOpen(path: path, reason: "cannot read: \(errnoText())")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[..<n])
        }
    }

    /// Appends the recovery line for a torn tail found on open (synced: it is the only record of the
    /// crash). The torn bytes stay; the line starts on a new line if they ended mid-line.
    func markTornTail() throws -> AuditRecovery? {
        try state.withLock { s in
            guard let torn = s.torn else { return nil }
            let bytes = try Self.readAll(s.fd, path: path)
            guard bytes.count >= torn.upperBound else {
                throw AuditLog.Failure.brokenTail(path: path, reason: "the file shrank while it was being opened")
            }
            let digest = AuditRecoveryLine.sha256(bytes[torn])
            let event = AuditRecoveryLine.event(torn: torn, sha256: digest)
            try appendLocked(&s, event, at: Date(), prefix: s.endsMidLine ? [UInt8(ascii: "\n")] : [])
            try syncLocked(&s)
            s.torn = nil
            return AuditRecovery(tornBytes: torn, sha256: Hex.encode(digest), recordSeq: s.seq)
        }
    }

    func append(_ event: AuditEvent, at date: Date, syncNow: Bool, linesMax: Int) throws {
        var rotationFailure: AuditLog.Failure?
        try reporting {
            try state.withLock { s in
                try appendLocked(&s, event, at: date, prefix: [])
                if syncNow || s.pending >= linesMax { try syncLocked(&s) }
                s.failing = nil
                if s.size >= rotation.maxBytes { rotationFailure = rotateLocked(&s) }
            }
        }
        // The line is recorded either way: a failed rotation is told, not thrown.
        if let rotationFailure { onFailure?(rotationFailure) }
    }

    /// Moves the active file aside under its first line's number and starts an empty one; the next
    /// line continues the chain. The old file is synced first, so rotated files end with whole lines.
    /// On failure the active file stays as it was and takes the next lines.
    private func rotateLocked(_ s: inout State) -> AuditLog.Failure? {
        do { try syncLocked(&s) } catch { return nil }  // the log is now broken; the next line reports it
        let target = AuditFiles.rotatedPath(path, firstSeq: s.firstSeq)
        guard !FileManager.default.fileExists(atPath: target) else {
            return .rotateFailed(path: path, reason: "\(target) already exists")
        }
        guard rename(path, target) == 0 else {
            return .rotateFailed(path: path, reason: "cannot rename it to \(target): \(Self.errnoText())")
        }
        let fd: Int32
        do { fd = try Self.open(path) } catch {
            _ = rename(target, path)
            return .rotateFailed(path: path, reason: "cannot start a new file: \(error)")
        }
        Self.syncDirectory(of: path)  // both names survive a machine stop
        Glibc.close(s.fd)
        s.fd = fd
        s.size = 0
        s.firstSeq = s.seq + 1
        for old in AuditFiles.rotated(path).dropLast(rotation.keepFiles) { unlink(old) }
        return nil
    }

    private static func syncDirectory(of path: String) {
        try? SecureFile.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    func sync() throws {
        try reporting {
            try state.withLock { s in
                try usable(s)
                try syncLocked(&s)
            }
        }
    }

    /// Tells `onFailure` (outside the lock, so a handler may do anything) and rethrows.
    private func reporting(_ body: () throws -> Void) throws {
        do { try body() } catch let f as AuditLog.Failure {
            state.withLock { s in s.failing = (f, s.failing?.since ?? Date()) }
            onFailure?(f)
            throw f
        }
    }

    func close() throws {
        try reporting {
            try state.withLock { s in
                guard s.fd >= 0 else { return }
                defer {
                    Glibc.close(s.fd)
                    s.fd = -1
                }
                if s.broken == nil { try syncLocked(&s) }
            }
        }
    }

    /// The background half of group commit: every `interval`, flushes whatever is pending. A failure
    /// marks the log broken, so the next `record` reports it.
    func flushPending(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            try? reporting {
                try state.withLock { s in
                    guard s.fd >= 0, s.broken == nil, s.pending > 0 else { return }
                    try syncLocked(&s)
                }
            }
        }
    }

    private func usable(_ s: State) throws {
        guard s.fd >= 0 else { throw AuditLog.Failure.closed(path: path) }
        if let broken = s.broken { throw broken }
    }

    /// Writes one line; on failure removes whatever part of it reached the file, so the next line does
    /// not continue a fragment. If even that fails the log stops taking lines (a reopen marks the tail).
    private func appendLocked(_ s: inout State, _ event: AuditEvent, at date: Date, prefix: [UInt8]) throws {
        try usable(s)
        let seq = s.seq + 1
        let (line, hash) = AuditLine.encode(event: event, seq: seq, date: date, previous: s.previousHash)
        let bytes = prefix + line
        let (written, error) = Self.writeAll(s.fd, bytes)
        guard let error else {
            s.size += bytes.count
            s.previousHash = hash
            s.seq = seq
            s.pending += 1
            return
        }
        if written > 0, ftruncate(s.fd, off_t(s.size)) != 0 {
            s.broken = .unusable(
                path: path, reason: "a failed write left part of a line that could not be removed (\(Self.errnoText()))"
            )
        }
        throw AuditLog.Failure.writeFailed(path: path, reason: error)
    }

    private func syncLocked(_ s: inout State) throws {
        guard s.pending > 0 else { return }
        guard fsync(s.fd) == 0 else {
            let failure = AuditLog.Failure.syncFailed(path: path, reason: Self.errnoText())
            s.broken = failure
            throw failure
        }
        s.pending = 0
    }

    /// Writes every byte (retrying short writes and interrupts); returns how many reached the file
    /// and, on failure, why.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> (written: Int, error: String?) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                return (done, errnoText())
            }
            done += n
        }
        return (done, nil)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
