import Foundation
import Synchronization

/// One identity refused on this node until an administrator resumes it.
public struct Suspension: Sendable, Codable, Equatable {
    public var subject: Subject
    public var since: Date
    /// The rule that fired, or "administrator"; and why (no patient data).
    public var by: String
    public var reason: String

    public init(subject: Subject, since: Date, by: String, reason: String) {
        self.subject = subject
        self.since = since
        self.by = by
        self.reason = reason
    }
}

/// The identities suspended on this node, kept in a file (0600) so that a restart does not lift a
/// suspension. Every change is written (to a temporary file, fsynced, renamed) before it is
/// reported done; a change that cannot be written is refused and changes nothing.
public final class SuspensionList: Sendable {
    /// A node suspends few identities; the bound keeps a flood of alerts from growing the file.
    public static let entriesMax = 10_000

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let path: String
    private let entries: Mutex<[String: Suspension]>
    /// Read without the lock on every call: most of the time nobody is suspended.
    private let count = Atomic<Int>(0)

    public init(path: String) throws {
        self.path = path
        var loaded: [String: Suspension] = [:]
        if let data = FileManager.default.contents(atPath: path) {
            do {
                for s in try Self.decoder.decode([Suspension].self, from: data) { loaded[s.subject.pid] = s }
            } catch {
                throw Failure(
                    description:
                        "suspension list \(path) is unreadable (\(error)); fix or remove it (removing lifts every suspension)"
                )
            }
        }
        entries = Mutex(loaded)
        count.store(loaded.count, ordering: .relaxed)
    }

    /// The suspension of `pid`, if any.
    public func suspension(of pid: String) -> Suspension? {
        guard count.load(ordering: .relaxed) > 0 else { return nil }
        return entries.withLock { $0[pid] }
    }

    public var all: [Suspension] { entries.withLock { Array($0.values) }.sorted { $0.since < $1.since } }

    /// Suspends; false if already suspended (the first reason stays).
    @discardableResult
    public func suspend(_ s: Suspension) throws -> Bool {
        try entries.withLock { e in
            guard e[s.subject.pid] == nil else { return false }
            guard e.count < Self.entriesMax else {
                throw Failure(description: "\(Self.entriesMax) identities are already suspended; resume or revoke some")
            }
            var next = e
            next[s.subject.pid] = s
            try write(next)
            e = next
            count.store(e.count, ordering: .relaxed)
            return true
        }
    }

    /// Lifts a suspension; the one lifted, nil if there was none.
    public func resume(_ pid: String) throws -> Suspension? {
        try entries.withLock { e in
            guard let s = e[pid] else { return nil }
            var next = e
            next[pid] = nil
            try write(next)
            e = next
            count.store(e.count, ordering: .relaxed)
            return s
        }
    }

    private func write(_ e: [String: Suspension]) throws {
        let data = try Self.encoder.encode(e.values.sorted { $0.since < $1.since })
        let tmp = path + ".tmp"
        do {
            guard FileManager.default.createFile(atPath: tmp, contents: nil, attributes: [.posixPermissions: 0o600])
            else { throw Failure(description: "cannot create \(tmp)") }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
            defer { try? handle.close() }
            try handle.write(contentsOf: data)
            try handle.synchronize()
            guard rename(tmp, path) == 0 else {
                throw Failure(description: "cannot rename \(tmp): \(String(cString: strerror(errno)))")
            }
            // The rename itself reaches the disk only with the directory.
            let dir = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY)
            if dir >= 0 {
                defer { close(dir) }
                guard fsync(dir) == 0 else {
                    throw Failure(
                        description: "cannot sync the directory of \(path): \(String(cString: strerror(errno)))")
                }
            }
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure(description: "cannot write the suspension list \(path): \(error)")
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()
}
