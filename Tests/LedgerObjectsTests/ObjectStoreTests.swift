import Crypto
import Foundation
import LedgerCrypto
import Synchronization
import Testing

@testable import LedgerObjects

@Suite struct ObjectStoreTests {
    final class Dir {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("objects-\(UUID().uuidString)")
        deinit { try? FileManager.default.removeItem(at: url) }
    }

    static func digest(_ b: [UInt8]) -> String { Hex.encode(Array(SHA384.hash(data: b))) }

    static func put(
        _ store: ObjectStore, _ bytes: [UInt8], digest: String? = nil, size: UInt64? = nil, tID: String = "T-1",
        pieces: Int = 3
    ) throws -> Bool {
        let up = try store.beginUpload(
            digest: digest ?? Self.digest(bytes), declaredSize: size ?? UInt64(bytes.count), channel: "records",
            tID: tID, uploaderPID: "p")
        let step = max(1, bytes.count / pieces)
        var i = 0
        while i < bytes.count {
            try up.append(Array(bytes[i..<min(i + step, bytes.count)]))
            i += step
        }
        return try up.finish()
    }

    static func readAll(_ store: ObjectStore, _ digest: String, from offset: UInt64 = 0) async throws -> [UInt8] {
        var out = [UInt8]()
        try await store.read(digest, from: offset, chunkSize: 1000) { out += $0 }
        return out
    }

    @Test func storesReadsAndResumes() async throws {
        let d = Dir()
        let store = try ObjectStore(directory: d.url)
        let bytes = (0..<10_000).map { _ in UInt8.random(in: 0...255) }
        #expect(try Self.put(store, bytes) == false)
        #expect(try Self.put(store, bytes) == true)  // content-addressed: already there
        let info = try #require(try store.info(Self.digest(bytes)))
        #expect(info.size == 10_000 && info.tID == "T-1" && info.channel == "records")
        #expect(try await Self.readAll(store, info.digest) == bytes)
        #expect(try await Self.readAll(store, info.digest, from: 7_777) == Array(bytes[7_777...]))
        #expect(try await Self.readAll(store, info.digest, from: 10_000) == [])
        await #expect(throws: ObjectStoreError.offsetBeyondEnd(offset: 10_001, size: 10_000)) {
            try await Self.readAll(store, info.digest, from: 10_001)
        }
    }

    @Test func badUploadsStoreNothing() throws {
        let d = Dir()
        let store = try ObjectStore(directory: d.url, maxBytes: 5_000)
        let bytes = (0..<4_000).map { _ in UInt8.random(in: 0...255) }
        let other = Self.digest(bytes + [1])
        #expect(throws: ObjectStoreError.digestMismatch(declared: other, computed: Self.digest(bytes))) {
            try Self.put(store, bytes, digest: other)
        }
        #expect(throws: ObjectStoreError.sizeMismatch(declared: 4_001, received: 4_000)) {
            try Self.put(store, bytes, size: 4_001)
        }
        #expect(throws: ObjectStoreError.sizeMismatch(declared: 3_999, received: 4_000)) {
            try Self.put(store, bytes, size: 3_999, pieces: 1)
        }
        #expect(throws: ObjectStoreError.tooLarge(limit: 5_000)) { try Self.put(store, bytes, size: 6_000) }
        #expect(throws: ObjectStoreError.badDigest("abc")) { try Self.put(store, bytes, digest: "abc") }
        #expect(try store.info(Self.digest(bytes)) == nil)
        #expect(try store.info(other) == nil)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.url.appendingPathComponent("tmp").path).isEmpty)
        // The same bytes cannot be claimed for another treatment.
        _ = try Self.put(store, bytes)
        #expect(throws: ObjectStoreError.belongsToAnotherTreatment(digest: Self.digest(bytes))) {
            try Self.put(store, bytes, tID: "T-2")
        }
    }

    @Test func corruptObjectsAreNotServed() async throws {
        let d = Dir()
        let store = try ObjectStore(directory: d.url)
        let bytes = Array("ciphertext standing in for a sealed record".utf8)
        _ = try Self.put(store, bytes)
        let digest = Self.digest(bytes)
        var rotten = bytes
        rotten[3] ^= 1
        let corrupt = ObjectStoreError.corrupt(digest: digest, computed: Self.digest(rotten))
        // Checked before serving (as FHIR does before its status line): refused, nothing read out.
        try Data(rotten).write(to: store.objectURL(digest))
        #expect(throws: corrupt) { try store.verify(digest) }
        var served = [UInt8]()

        // Checked while serving: the bytes go out, and the read then fails, from any offset (the
        // part before it is hashed too) and wherever the damage lies.
        for offset: UInt64 in [0, 2, 20, UInt64(bytes.count)] {
            try Data(rotten).write(to: store.objectURL(digest))  // each detection sets the file aside
            served = []
            await #expect(throws: corrupt) {
                try await store.read(digest, from: offset, chunkSize: 10) { served += $0 }
            }
            #expect(served == Array(rotten[Int(offset)...]))
        }
        // A file of another size than described is refused before any byte is served.
        try Data(bytes.dropLast()).write(to: store.objectURL(digest))
        served = []
        await #expect(throws: ObjectStoreError.corrupt(digest: digest, computed: Self.digest(Array(bytes.dropLast()))))
        {
            try await store.read(digest) { served += $0 }
        }
        #expect(served.isEmpty)
        try Data(bytes).write(to: store.objectURL(digest))
        served = []
        try await store.read(digest, from: 5, chunkSize: 7) { served += $0 }
        #expect(served == Array(bytes[5...]))
        try store.verify(digest)
    }

    /// A file found corrupt (by a read or by `verify`) is set aside: the object is then absent, not
    /// "already stored", and uploading the same bytes restores it. A rotten copy not yet found by a
    /// read is found by the upload itself. At most one set-aside copy per object is kept.
    @Test func uploadingAgainRepairsACorruptObject() async throws {
        let d = Dir()
        let found = Mutex<[String]>([])
        let store = try ObjectStore(directory: d.url, corruptionFound: { d in found.withLock { $0.append(d) } })
        let bytes = (0..<5_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let digest = Self.digest(bytes)
        let asideURL = URL(fileURLWithPath: store.objectURL(digest).path + ".corrupt")
        var rotten = bytes
        rotten[4_321] ^= 0x80
        _ = try Self.put(store, bytes)
        for detection in ["read", "verify", "upload"] {
            try Data(rotten).write(to: store.objectURL(digest))
            #expect(try store.isStored(digest), "right size: stored, until a check finds the damage")
            switch detection {
            case "read": await #expect(throws: ObjectStoreError.self) { try await Self.readAll(store, digest) }
            case "verify": #expect(throws: ObjectStoreError.self) { try store.verify(digest) }
            default: break
            }
            if detection != "upload" {
                #expect(try !store.isStored(digest), "set aside after the \(detection)")
                #expect(try Data(contentsOf: asideURL) == Data(rotten), "kept for inspection")
                await #expect(throws: ObjectStoreError.setAside(digest: digest)) {
                    try await Self.readAll(store, digest)
                }
                #expect(throws: ObjectStoreError.setAside(digest: digest)) { try store.verify(digest) }
            }
            #expect(try !Self.put(store, bytes), "stored anew after the \(detection), not taken as already there")
            #expect(try await Self.readAll(store, digest) == bytes)
            try store.verify(digest)
            #expect(found.withLock { $0 } == [digest], "the \(detection) reported the damage once; refusals did not")
            found.withLock { $0 = [] }
        }
        let names = try FileManager.default.contentsOfDirectory(
            atPath: store.objectURL(digest).deletingLastPathComponent().path)
        #expect(names.sorted() == [digest + ".json", digest + ".obj", digest + ".obj.corrupt"])
    }

    /// A reader that found corruption moves the file only if it is still the one it read: a good
    /// copy an upload renamed into place meanwhile stays.
    @Test func settingAsideNeverMovesAGoodCopyStoredMeanwhile() async throws {
        let d = Dir()
        let store = try ObjectStore(directory: d.url)
        let bytes = Array("a record stored again while a reader found its old copy rotten".utf8)
        let digest = Self.digest(bytes)
        _ = try Self.put(store, bytes)
        var rotten = bytes
        rotten[0] ^= 1
        try Data(rotten).write(to: store.objectURL(digest))
        let reader = try #require(FileReader(path: store.objectURL(digest).path))
        // The good copy arrives (by rename, as an upload stores it) before the reader acts.
        let good = d.url.appendingPathComponent("good")
        try Data(bytes).write(to: good)
        #expect(rename(good.path, store.objectURL(digest).path) == 0)
        #expect(!store.setAside(digest, readFrom: reader))
        #expect(try await Self.readAll(store, digest) == bytes)
        #expect(!FileManager.default.fileExists(atPath: store.objectURL(digest).path + ".corrupt"))
    }

    @Test func aCrashLeavesNoHalfObjects() throws {
        let d = Dir()
        let bytes = Array("x".utf8)
        do {
            let store = try ObjectStore(directory: d.url)
            let up = try store.beginUpload(
                digest: Self.digest(bytes), declaredSize: 1, channel: "records", tID: "T-1", uploaderPID: "p")
            try up.append(bytes)
            // The process dies here: the temporary file stays on disk.
            let leftover = d.url.appendingPathComponent("tmp").appendingPathComponent("crashed")
            try Data([1, 2, 3]).write(to: leftover)
            up.abort()
        }
        let reopened = try ObjectStore(directory: d.url)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.url.appendingPathComponent("tmp").path).isEmpty)
        #expect(try reopened.info(Self.digest(bytes)) == nil)
    }

    /// A crash can keep the description's rename without the object's (they are synced together):
    /// such an object counts as absent, is not served, and the next upload stores it whole.
    @Test func aDescriptionWithoutItsObjectCountsAsAbsent() async throws {
        let d = Dir()
        let store = try ObjectStore(directory: d.url)
        let bytes = Array("ciphertext whose file the crash lost".utf8)
        let digest = Self.digest(bytes)
        #expect(try !Self.put(store, bytes))
        #expect(try store.isStored(digest))
        for damage in ["missing", "short"] {
            if damage == "missing" {
                try FileManager.default.removeItem(at: store.objectURL(digest))
            } else {
                try Data(bytes.prefix(5)).write(to: store.objectURL(digest))
            }
            #expect(try !store.isStored(digest))
            if damage == "missing" {
                await #expect(throws: ObjectStoreError.notFound(digest: digest)) {
                    try await Self.readAll(store, digest)
                }
                #expect(throws: ObjectStoreError.notFound(digest: digest)) { try store.verify(digest) }
            }
            #expect(try !Self.put(store, bytes), "stored anew, not taken as already there")
            #expect(try await Self.readAll(store, digest) == bytes)
        }
        #expect(try Self.put(store, bytes), "a complete object is already stored")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: d.url.appendingPathComponent("tmp").path)
        #expect(leftovers.isEmpty, "no temporary file stays: \(leftovers)")
    }

    @Test func objectURLs() {
        let digest = String(repeating: "ab", count: 48)
        let u = ObjectURL("medledger://127.0.0.1:7051/objects/\(digest)")
        #expect(u == ObjectURL(node: "127.0.0.1:7051", digest: digest))
        #expect(u?.description == "medledger://127.0.0.1:7051/objects/\(digest)")
        #expect(ObjectURL("medledger://h:1/objects/\(digest.uppercased())") == nil)
        #expect(ObjectURL("http://h:1/objects/\(digest)") == nil)
        #expect(ObjectURL("medledger://h:1/other/\(digest)") == nil)
        #expect(ObjectURL("medledger://h:1/objects/\(digest)/x") == nil)
    }
}

/// The object store's SHA-384 runs on OpenSSL; it must be swift-crypto's SHA-384, byte for byte,
/// however the input is cut.
@Suite struct SHA384StreamTests {
    @Test func matchesSwiftCryptoForAnySplit() {
        for size in [0, 1, 111, 112, 127, 128, 129, 1 << 16, (1 << 20) + 7] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255) }
            let expected = Array(SHA384.hash(data: bytes))
            let whole = SHA384Stream()
            whole.update(bytes)
            #expect(whole.finalize() == expected, "\(size) bytes in one piece")
            let pieces = SHA384Stream()
            var i = 0
            while i < bytes.count {
                let n = min(bytes.count - i, Int.random(in: 1...70_000))
                pieces.update(Data(bytes[i..<(i + n)]))
                i += n
            }
            #expect(pieces.finalize() == expected, "\(size) bytes in pieces")
            #expect(Digests.sha384(bytes) == expected)
        }
    }
}
