import Crypto
import Foundation
import LedgerCrypto
import Synchronization

/// What the store knows of an object besides its bytes: who may read it is decided on chain from
/// the treatment it belongs to.
public struct ObjectInfo: Codable, Sendable, Equatable {
    /// SHA-384 of the stored bytes, lowercase hex: the object's name.
    public var digest: String
    public var size: UInt64
    public var channel: String
    public var tID: String
    public var uploaderPID: String
    /// RFC 3339, UTC.
    public var storedAt: String

    public init(digest: String, size: UInt64, channel: String, tID: String, uploaderPID: String, storedAt: String) {
        self.digest = digest
        self.size = size
        self.channel = channel
        self.tID = tID
        self.uploaderPID = uploaderPID
        self.storedAt = storedAt
    }

    enum CodingKeys: String, CodingKey {
        case digest, size, channel
        case tID = "t_id"
        case uploaderPID = "uploader_pid"
        case storedAt = "stored_at"
    }
}

public enum ObjectStoreError: Error, Equatable, CustomStringConvertible {
    case badDigest(String)
    case tooLarge(limit: UInt64)
    case sizeMismatch(declared: UInt64, received: UInt64)
    case digestMismatch(declared: String, computed: String)
    case belongsToAnotherTreatment(digest: String)
    case notFound(digest: String)
    case offsetBeyondEnd(offset: UInt64, size: UInt64)
    case corrupt(digest: String, computed: String)
    /// A read found the file corrupt earlier and set it aside; no upload has restored it yet.
    case setAside(digest: String)
    case io(String)

    public var description: String {
        switch self {
        case .badDigest(let d): return "not a SHA-384 digest (96 lowercase hex digits): \(d.debugDescription)"
        case .tooLarge(let limit): return "object is larger than this store's limit of \(limit) bytes"
        case .sizeMismatch(let d, let r): return "declared size \(d) bytes but received \(r)"
        case .digestMismatch(let d, let c):
            return
                "the bytes received do not match the declared SHA-384 (declared \(d), computed \(c)); nothing was stored"
        case .belongsToAnotherTreatment(let d): return "object \(d) is already stored for another treatment"
        case .notFound(let d): return "no object \(d)"
        case .offsetBeyondEnd(let o, let s): return "offset \(o) is beyond the object's \(s) bytes"
        case .corrupt(let d, let c):
            return
                "stored object \(d) is corrupt (its bytes hash to \(c)); it is not served intact, and the treatment's patient or doctor can restore it by uploading the same bytes again"
        case .setAside(let d):
            return
                "stored object \(d) was found corrupt and set aside; the treatment's patient or doctor can restore it by uploading the same bytes again"
        case .io(let m): return m
        }
    }

    /// The object is described but has no intact copy: corrupt now, or set aside as corrupt before.
    public var meansCorrupt: Bool {
        switch self {
        case .corrupt, .setAside: return true
        default: return false
        }
    }
}

/// The hospital's object store ("cloud storage" in the paper): ciphertexts only, named by the SHA-384
/// of their bytes, as files beside the node's RocksDB: `<dir>/<first two hex digits>/<digest>.obj` and
/// its `.json` description. An upload streams into a temporary file while it is hashed; only a
/// complete upload whose digest and size match what the client declared is fsynced, with its
/// description, and both are renamed into place. An object without its description, or a description
/// without its complete file (a crash between the renames), counts as absent and is replaced by the
/// next upload. Every read re-hashes the file as it serves it (`verify` checks before), so a corrupted
/// object is never passed off as good; a file found corrupt is set aside (`setAside`), so that the
/// object counts as absent and an upload of the same bytes restores it.
public final class ObjectStore: Sendable {
    public let directory: URL
    public let maxBytes: UInt64
    public static let defaultMaxBytes: UInt64 = 64 << 20
    /// Held while an object's file is replaced: an upload's rename into place, or a corrupt file
    /// set aside. A reader that found corruption then never moves the good copy an upload stored
    /// meanwhile.
    let placement = Mutex(())
    /// Told the digest each time a stored copy is found corrupt (by a read, `verify`, or an upload of
    /// the same bytes), just before it is set aside: the disk under the store deserves a look.
    let corruptionFound: (@Sendable (_ digest: String) -> Void)?

    public init(
        directory: URL, maxBytes: UInt64 = ObjectStore.defaultMaxBytes,
        corruptionFound: (@Sendable (_ digest: String) -> Void)? = nil
    ) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        self.corruptionFound = corruptionFound
        do {
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        } catch { throw ObjectStoreError.io("cannot create object store at \(directory.path): \(error)") }
        // Leftovers of uploads interrupted by a crash.
        let tmp = directory.appendingPathComponent("tmp")
        for f in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] {
            try? FileManager.default.removeItem(at: tmp.appendingPathComponent(f))
        }
    }

    public static func isDigest(_ s: String) -> Bool {
        s.utf8.count == 96 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    // Directory flags given, so that building a path does not ask the file system (Foundation stats
    // a component whose kind it is not told).
    func objectURL(_ digest: String) -> URL {
        directory.appendingPathComponent(String(digest.prefix(2)), isDirectory: true)
            .appendingPathComponent(digest + ".obj", isDirectory: false)
    }

    func infoURL(_ digest: String) -> URL {
        directory.appendingPathComponent(String(digest.prefix(2)), isDirectory: true)
            .appendingPathComponent(digest + ".json", isDirectory: false)
    }

    /// The object's description, nil if there is none. A description alone does not make an object
    /// stored (a crash can keep it without its file): ask `isStored` for that.
    public func info(_ digest: String) throws -> ObjectInfo? {
        guard Self.isDigest(digest) else { throw ObjectStoreError.badDigest(digest) }
        guard let data = FileManager.default.contents(atPath: infoURL(digest).path) else { return nil }
        do { return try JSONDecoder().decode(ObjectInfo.self, from: data) } catch {
            throw ObjectStoreError.io("description of \(digest) is unreadable: \(error)")
        }
    }

    /// Checks that the stored object hashes to its name: throws `notFound` (no complete copy) or
    /// `corrupt`. For a caller that must refuse before it answers at all (an HTTP status).
    public func verify(_ digest: String) throws {
        guard let info = try info(digest) else { throw ObjectStoreError.notFound(digest: digest) }
        try verify(info)
    }

    /// `verify` for an object whose description the caller already read.
    public func verify(_ info: ObjectInfo) throws {
        guard let file = FileReader(path: objectURL(info.digest).path) else { throw missingFileError(info.digest) }
        let computed = try Self.digest(of: file).digest
        guard computed == info.digest else {
            setAside(info.digest, readFrom: file)
            throw ObjectStoreError.corrupt(digest: info.digest, computed: computed)
        }
    }

    /// Why a described object has no file: a read set it aside as corrupt, or (a crash between the
    /// renames) it never arrived.
    public func missingFileError(_ digest: String) -> ObjectStoreError {
        FileManager.default.fileExists(atPath: objectURL(digest).path + ".corrupt")
            ? .setAside(digest: digest) : .notFound(digest: digest)
    }

    /// Moves a file that failed its hash out of the object's place, to `<digest>.obj.corrupt` beside
    /// it for the operator to inspect (replacing an older one, so at most one per object): the object
    /// then counts as absent and the next upload of the same bytes stores it again. Only if the path
    /// still names the file that was read: an upload may have put a good copy there meanwhile.
    /// Best effort: if the move fails, the file stays where it is and every read still refuses it.
    @discardableResult
    func setAside(_ digest: String, readFrom file: FileReader) -> Bool {
        corruptionFound?(digest)
        guard let read = file.fileID else { return false }
        let object = objectURL(digest)
        return placement.withLock { _ in
            guard FileID(path: object.path) == read, rename(object.path, object.path + ".corrupt") == 0 else {
                return false
            }
            try? SecureFile.syncDirectory(object.deletingLastPathComponent().path)
            return true
        }
    }

    /// Whether the object is completely stored: its description, and its file of the described size.
    public func isStored(_ digest: String) throws -> Bool {
        guard let info = try info(digest) else { return false }
        let attributes = try? FileManager.default.attributesOfItem(atPath: objectURL(digest).path)
        return (attributes?[.size] as? NSNumber)?.uint64Value == info.size
    }

    /// Starts an upload of `declaredSize` bytes that must hash to `digest`.
    public func beginUpload(
        digest: String, declaredSize: UInt64, channel: String, tID: String, uploaderPID: String
    ) throws -> Upload {
        guard Self.isDigest(digest) else { throw ObjectStoreError.badDigest(digest) }
        guard declaredSize <= maxBytes else { throw ObjectStoreError.tooLarge(limit: maxBytes) }
        if let existing = try info(digest), existing.channel != channel || existing.tID != tID {
            throw ObjectStoreError.belongsToAnotherTreatment(digest: digest)
        }
        let temp = directory.appendingPathComponent("tmp").appendingPathComponent(UUID().uuidString)
        guard FileManager.default.createFile(atPath: temp.path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: temp.path)
        else {
            throw ObjectStoreError.io("cannot create a temporary file in \(directory.path)")
        }
        let info = ObjectInfo(
            digest: digest, size: declaredSize, channel: channel, tID: tID, uploaderPID: uploaderPID,
            storedAt: Self.now())
        return Upload(store: self, temp: temp, handle: handle, info: info)
    }

    /// One upload in progress. Not shared between tasks.
    public final class Upload {
        let store: ObjectStore
        let temp: URL
        let handle: FileHandle
        let info: ObjectInfo
        let hasher = SHA384Stream()
        var received: UInt64 = 0
        var closed = false
        /// Set by `finish` when the stored copy it found had rotted and these bytes replaced it.
        public private(set) var replacedCorruptCopy = false

        init(store: ObjectStore, temp: URL, handle: FileHandle, info: ObjectInfo) {
            self.store = store
            self.temp = temp
            self.handle = handle
            self.info = info
        }

        deinit { abort() }

        public func append(_ bytes: some DataProtocol) throws {
            received += UInt64(bytes.count)
            guard received <= info.size else {
                abort()
                throw received > store.maxBytes
                    ? ObjectStoreError.tooLarge(limit: store.maxBytes)
                    : ObjectStoreError.sizeMismatch(declared: info.size, received: received)
            }
            hasher.update(bytes)
            do { try handle.write(contentsOf: bytes) } catch {
                abort()
                throw ObjectStoreError.io("cannot write the upload: \(error)")
            }
            // The disk gets the piece while the next one arrives: `finish`'s fsync then waits for
            // the last piece only (a 1 MiB object's fsync was most of its upload's wait).
            SecureFile.startWriteback(handle.fileDescriptor, offset: received - UInt64(bytes.count), count: bytes.count)
        }

        /// Checks size and digest; stores durably. Returns true if the object was already stored
        /// (and its stored copy still hashes right).
        @discardableResult
        public func finish() throws -> Bool {
            defer { abort() }
            guard received == info.size else {
                throw ObjectStoreError.sizeMismatch(declared: info.size, received: received)
            }
            let computed = Hex.encode(hasher.finalize())
            guard computed == info.digest else {
                throw ObjectStoreError.digestMismatch(declared: info.digest, computed: computed)
            }
            // Already there, unless the stored copy has rotted: then the check sets it aside and these
            // bytes (which hash right) take its place, so uploading again always repairs an object.
            if try store.isStored(info.digest) {
                if (try? store.verify(info.digest)) != nil { return true }
                replacedCorruptCopy = true
            }
            let infoTemp = temp.appendingPathExtension("json")
            defer { try? FileManager.default.removeItem(at: infoTemp) }
            do {
                // The object's bytes and its description reach the disk side by side (two fsyncs at
                // once instead of one after the other), then both are renamed into place and the
                // directory synced. A crash may keep either rename without the other: a description
                // without its object counts as absent (`isStored`), as an object without one does.
                let description = Array(try JSONEncoder().encode(info))
                let failures = Mutex<[String]>([])
                let (object, infoPath) = (handle, infoTemp.path)
                DispatchQueue.concurrentPerform(iterations: 2) { i in
                    do {
                        if i == 0 {
                            try object.synchronize()
                        } else {
                            try SecureFile.write(description, to: infoPath)
                        }
                    } catch { failures.withLock { $0.append("\(error)") } }
                }
                if let failure = failures.withLock({ $0.first }) { throw ObjectStoreError.io(failure) }
                try handle.close()
                closed = true
                let dir = store.objectURL(info.digest).deletingLastPathComponent()
                if !FileManager.default.fileExists(atPath: dir.path) {
                    // A new prefix directory is itself an entry of the store's directory.
                    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                    try SecureFile.syncDirectory(store.directory.path)
                }
                try store.placement.withLock { _ in
                    try Self.replace(store.objectURL(info.digest), with: temp)
                    try Self.replace(store.infoURL(info.digest), with: infoTemp)
                }
                // The upload is acknowledged after this: a failed directory sync fails it.
                try SecureFile.syncDirectory(dir.path)
            } catch { throw ObjectStoreError.io("cannot store object \(info.digest): \(error)") }
            return false
        }

        /// `rename(2)`: replaces what is at `destination` in one step.
        static func replace(_ destination: URL, with source: URL) throws {
            guard rename(source.path, destination.path) == 0 else {
                throw ObjectStoreError.io(
                    "cannot move \(source.path) to \(destination.path): \(String(cString: strerror(errno)))")
            }
        }

        /// Drops the upload (idempotent).
        public func abort() {
            if !closed {
                try? handle.close()
                closed = true
            }
            try? FileManager.default.removeItem(at: temp)
        }
    }

    /// Streams the object from `offset` in pieces of at most `chunkSize`, hashing the whole file as
    /// it goes (its part before `offset` first): a mismatch throws `corrupt` after the last piece.
    /// That suits a receiver whom a final status voids (a gRPC stream, whose client also checks the
    /// digest itself): one pass over the file, and the first byte leaves at once. A caller that must
    /// refuse before it answers at all (an HTTP status line) calls `verify` first.
    public func read(
        _ digest: String, from offset: UInt64 = 0, chunkSize: Int = 1 << 18, _ body: ([UInt8]) async throws -> Void
    ) async throws {
        guard let info = try info(digest) else { throw ObjectStoreError.notFound(digest: digest) }
        try await open(info, from: offset).stream(chunkSize: chunkSize, body)
    }

    /// Opens the file of an object whose description the caller already read, to be streamed from
    /// `offset` (`Reading.stream`). Throws before any byte is served if there is no file (set aside as
    /// corrupt, or never arrived: `missingFileError`), or if the file is not of the described size
    /// (`corrupt`, and it is set aside: bytes of another length cannot hash to the digest).
    public func open(_ info: ObjectInfo, from offset: UInt64 = 0) throws -> Reading {
        guard offset <= info.size else { throw ObjectStoreError.offsetBeyondEnd(offset: offset, size: info.size) }
        guard let file = FileReader(path: objectURL(info.digest).path) else { throw missingFileError(info.digest) }
        guard file.size == info.size else {
            let computed = try Self.digest(of: file).digest
            setAside(info.digest, readFrom: file)
            throw ObjectStoreError.corrupt(digest: info.digest, computed: computed)
        }
        return Reading(store: self, digest: info.digest, file: file, offset: offset)
    }

    /// An object's open file, not yet checked against its digest. Not shared between tasks.
    public final class Reading {
        let store: ObjectStore
        let digest: String
        let file: FileReader
        let offset: UInt64

        init(store: ObjectStore, digest: String, file: FileReader, offset: UInt64) {
            self.store = store
            self.digest = digest
            self.file = file
            self.offset = offset
        }

        /// Hands `body` the bytes from `offset` on, as `ObjectStore.read` describes. Once only.
        public func stream(chunkSize: Int = 1 << 18, _ body: ([UInt8]) async throws -> Void) async throws {
            let hasher = SHA384Stream()
            do {
                var skipped: UInt64 = 0
                while skipped < offset {
                    let piece = try file.read(upTo: Int(min(UInt64(chunkSize), offset - skipped)))
                    guard !piece.isEmpty else { break }
                    hasher.update(piece)
                    skipped += UInt64(piece.count)
                }
            } catch { throw ObjectStoreError.io("\(error)") }
            while true {
                let piece: [UInt8]
                do { piece = try file.read(upTo: chunkSize) } catch { throw ObjectStoreError.io("\(error)") }
                guard !piece.isEmpty else { break }
                // Handed on first: the verdict waits for the last piece anyway, and the piece is sent
                // (encrypted, written) while it is hashed.
                try await body(piece)
                hasher.update(piece)
            }
            let computed = Hex.encode(hasher.finalize())
            guard computed == digest else {
                store.setAside(digest, readFrom: file)
                throw ObjectStoreError.corrupt(digest: digest, computed: computed)
            }
        }
    }

    /// SHA-384 (lowercase hex) and size of a file, read in chunks.
    public static func digest(ofFile path: String) throws -> (digest: String, size: UInt64) {
        guard let file = FileReader(path: path) else { throw ObjectStoreError.io("cannot open \(path)") }
        return try digest(of: file)
    }

    /// SHA-384 (lowercase hex) and size of what is left of `file`.
    static func digest(of file: FileReader) throws -> (digest: String, size: UInt64) {
        let hasher = SHA384Stream()
        var size: UInt64 = 0
        do {
            while case let piece = try file.read(upTo: 1 << 20), !piece.isEmpty {
                hasher.update(piece)
                size += UInt64(piece.count)
            }
        } catch { throw ObjectStoreError.io("\(error)") }
        return (Hex.encode(hasher.finalize()), size)
    }

    /// Now, as 2026-12-03T22:00:00Z. (An `ISO8601DateFormatter` made per upload cost 1.5 % of a
    /// node's CPU while it stored 1 MiB objects.)
    static func now() -> String { Date().formatted(Date.ISO8601FormatStyle()) }
}

/// `medledger://HOST:PORT/objects/<sha384 hex>`: which node stores an object, and its name.
public struct ObjectURL: Sendable, Equatable, CustomStringConvertible {
    public var node: String
    public var digest: String

    public init(node: String, digest: String) {
        self.node = node
        self.digest = digest
    }

    public init?(_ text: String) {
        let prefix = "medledger://"
        guard text.hasPrefix(prefix) else { return nil }
        let parts = text.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1] == "objects", ObjectStore.isDigest(String(parts[2])) else {
            return nil
        }
        node = String(parts[0])
        digest = String(parts[2])
    }

    public var description: String { "medledger://\(node)/objects/\(digest)" }
}
