import Crypto
import Foundation
import LedgerPRE
import Testing

@testable import LedgerRecords

@Suite struct SealedRecordTests {
    // MARK: Round trips

    /// (plaintext size, chunk size): empty, 1 byte, exactly one chunk, several full chunks, many
    /// chunks + a partial one, ~5 MB with the default 64 KiB chunks.
    static let cases: [(Int, Int)] = [
        (0, SealedRecord.defaultChunkSize), (1, SealedRecord.defaultChunkSize), (1024, 1024),
        (4 * 1024, 1024), (37 * 1024 + 211, 1024), (5_000_000 + 123, SealedRecord.defaultChunkSize),
    ]

    @Test(arguments: cases)
    func roundTrip(size: Int, chunkSize: Int) throws {
        let patient = SecretKey.random()
        let plaintext = testBytes(size, seed: UInt64(size) + 1)
        let (sealed, sealResult) = try sealBytes(plaintext, to: patient.publicKey, chunkSize: chunkSize)

        // Layout: header, then ⌈size/C⌉ chunks (at least one); all but the last are full.
        let chunks = max(1, (size + chunkSize - 1) / chunkSize)
        let lastLength = size - (chunks - 1) * chunkSize
        let expectedSize = SealedRecord.headerCount + (chunks - 1) * (1 + chunkSize + 16) + (1 + 4 + lastLength + 16)
        #expect(sealed.count == expectedSize)
        #expect(sealResult.sealedSize == UInt64(sealed.count))
        #expect(sealResult.plaintextSize == UInt64(size))
        // The digest is SHA-384 of exactly the bytes written, header included.
        #expect(sealResult.digestHex == sha384Hex(sealed))
        #expect(sealResult.digestHex.count == 96)

        // The patient opens with her secret key; reads capped at 1000 bytes exercise short reads.
        let (opened, openResult) = try openBytes(sealed, .patientSecretKey(patient), maxRead: 1000)
        #expect(opened == plaintext)
        #expect(openResult.digestHex == sealResult.digestHex)
        #expect(openResult.sealedSize == UInt64(sealed.count))
        #expect(openResult.plaintextSize == UInt64(size))

        // The same with the data key directly (the re-encryption path's second half).
        let key = try sealResult.header.openDataKey(patientSK: patient)
        #expect(try openBytes(sealed, .dataKey(key)).plaintext == plaintext)
    }

    @Test func shortReadsWhileSealingGiveFullChunks() throws {
        let patient = SecretKey.random()
        let plaintext = testBytes(3000)
        let (sealed, _) = try sealBytes(plaintext, to: patient.publicKey, chunkSize: 1024, maxRead: 7)
        #expect(sealed.count == SealedRecord.headerCount + 2 * (1 + 1024 + 16) + (1 + 4 + 952 + 16))
        #expect(try openBytes(sealed, .patientSecretKey(patient)).plaintext == plaintext)
    }

    @Test func sealsAreRandomized() throws {
        let patient = SecretKey.random()
        let a = try sealBytes([1, 2, 3], to: patient.publicKey).sealed
        let b = try sealBytes([1, 2, 3], to: patient.publicKey).sealed
        #expect(a != b)
        #expect(Array(a[222..<229]) != Array(b[222..<229]), "nonce prefix must be fresh")
    }

    // MARK: Header layout

    @Test func headerLayoutIsAsDocumented() throws {
        let patient = SecretKey.random()
        let (sealed, result) = try sealBytes(testBytes(10), to: patient.publicKey, chunkSize: 4096)
        let h = Array(sealed[0..<SealedRecord.headerCount])
        #expect(Array(h[0..<8]) == Array("MLSEALED".utf8))
        #expect(h[8] == 1)
        #expect(Array(h[9..<11]) == [0, 105])
        #expect(try Capsule(bytes: Array(h[11..<116])) == result.header.capsule)
        #expect(Array(h[116..<118]) == [0, 72])
        #expect(Array(h[118..<190]) == result.header.wrappedDataKey)
        let key = try result.header.openDataKey(patientSK: patient)
        let commitment = HMAC<SHA256>.authenticationCode(
            for: Array("medledger/sealed-record/v1/key-commitment".utf8),
            using: SymmetricKey(data: key.bytes))
        #expect(Array(h[190..<222]) == Array(commitment))
        #expect(Array(h[222..<229]) == result.header.noncePrefix)
        #expect(Array(h[229..<233]) == [0, 0, 0x10, 0])
        #expect(h == result.header.bytes)
        // The final chunk: marker 1, length 10, 10 ciphertext bytes, tag; opened by hand with
        // AES-GCM(nonce = prefix ‖ 0 ‖ 1, AAD = header).
        #expect(sealed[233] == 1)
        #expect(Array(sealed[234..<238]) == [0, 0, 0, 10])
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: result.header.noncePrefix + [0, 0, 0, 0, 1]),
            ciphertext: sealed[238..<248], tag: sealed[248...])
        #expect(Array(try AES.GCM.open(box, using: SymmetricKey(data: key.bytes), authenticating: h)) == testBytes(10))
    }

    @Test func readHeaderReadsOnlyTheHeader() throws {
        let patient = SecretKey.random()
        let (sealed, result) = try sealBytes(testBytes(5000), to: patient.publicKey, chunkSize: 1024)
        var consumed = 0
        let header = try SealedRecord.readHeader(read: { n in
            let end = min(consumed + n, sealed.count)
            defer { consumed = end }
            return Array(sealed[consumed..<end])
        })
        #expect(consumed == SealedRecord.headerCount)
        #expect(header.bytes == result.header.bytes)
        #expect(header.capsule == result.header.capsule)
        #expect(header.chunkSize == 1024)
    }

    /// The third-party path: from the header alone, 2-of-3 proxies re-encrypt the capsule for a
    /// doctor, who unwraps the data key and opens the body with it. One cfrag is not enough.
    @Test func proxyReencryptionPathOpensTheRecord() throws {
        let patient = SecretKey.random()
        let doctor = SecretKey.random()
        let plaintext = testBytes(70_000)
        let (sealed, _) = try sealBytes(plaintext, to: patient.publicKey)
        let header = try SealedRecordHeader(bytes: Array(sealed[0..<SealedRecord.headerCount]))
        let kfrags = try Umbral.generateKFrags(
            delegatingSK: patient, receivingPK: doctor.publicKey, signer: Signer(patient),
            threshold: 2, shares: 3, signDelegatingKey: true, signReceivingKey: true)
        let cfrags = kfrags.map { Umbral.reencrypt(capsule: header.capsule, kfrag: $0) }
        let key = try header.openDataKey(
            receivingSK: doctor, delegatingPK: patient.publicKey, cfrags: [cfrags[2], cfrags[0]])
        #expect(try openBytes(sealed, .dataKey(key)).plaintext == plaintext)
        #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
            try header.openDataKey(receivingSK: doctor, delegatingPK: patient.publicKey, cfrags: [cfrags[1]])
        }
    }

    // MARK: Wrong keys

    @Test func wrongKeysAreRefused() throws {
        let patient = SecretKey.random()
        let (sealed, _) = try sealBytes(testBytes(3000), to: patient.publicKey, chunkSize: 1024)
        #expect(throws: SealedRecordError.dataKeyDoesNotOpen) {
            _ = try openBytes(sealed, .patientSecretKey(SecretKey.random()))
        }
        #expect(throws: SealedRecordError.dataKeyDoesNotOpen) { _ = try openBytes(sealed, .dataKey(DataKey.random())) }
        #expect(throws: SealedRecordError.invalidDataKeyLength(31)) {
            _ = try DataKey(bytes: [UInt8](repeating: 0, count: 31))
        }
        #expect(throws: SealedRecordError.invalidChunkSize(0)) {
            _ = try sealBytes([], to: patient.publicKey, chunkSize: 0)
        }
        #expect(throws: SealedRecordError.invalidChunkSize(SealedRecord.maxChunkSize + 1)) {
            _ = try sealBytes([], to: patient.publicKey, chunkSize: SealedRecord.maxChunkSize + 1)
        }
    }

    // MARK: Tampering

    /// 5 full 1 KiB chunks + a 100-byte final chunk; chunk i starts at 233 + i·1041.
    struct Fixture {
        let patient = SecretKey.random()
        let plaintext = testBytes(5 * 1024 + 100)
        let sealed: [UInt8]
        let key: DataKey
        static let full = 1 + 1024 + 16
        static func start(_ i: Int) -> Int { SealedRecord.headerCount + i * full }

        init() throws {
            let (s, r) = try sealBytes(plaintext, to: patient.publicKey, chunkSize: 1024)
            sealed = s
            key = try r.header.openDataKey(patientSK: patient)
            precondition(s.count == Self.start(5) + 1 + 4 + 100 + 16)
        }

        /// Both openers refuse `bytes` with `error` (`dataKeyError` for the data-key opener if different).
        func expectRefused(
            _ bytes: [UInt8], _ error: SealedRecordError, dataKeyError: SealedRecordError? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(throws: error, sourceLocation: sourceLocation) {
                _ = try openBytes(bytes, .patientSecretKey(patient))
            }
            #expect(throws: dataKeyError ?? error, sourceLocation: sourceLocation) {
                _ = try openBytes(bytes, .dataKey(key))
            }
        }
    }

    static func flipped(_ b: [UInt8], at i: Int) -> [UInt8] {
        var c = b
        c[i] ^= 0x01
        return c
    }

    @Test func untamperedFixtureOpens() throws {
        let f = try Fixture()
        #expect(try openBytes(f.sealed, .patientSecretKey(f.patient)).plaintext == f.plaintext)
    }

    @Test func flippedBodyByteIsRefusedAtItsChunk() throws {
        let f = try Fixture()
        f.expectRefused(Self.flipped(f.sealed, at: Fixture.start(2) + 1 + 500), .chunkAuthenticationFailed(chunk: 2))
        f.expectRefused(Self.flipped(f.sealed, at: Fixture.start(0) + 1), .chunkAuthenticationFailed(chunk: 0))
        // final tag
        f.expectRefused(Self.flipped(f.sealed, at: f.sealed.count - 1), .chunkAuthenticationFailed(chunk: 5))
        // The final length: lowered, the chunk fails; raised past the end, the record reads as cut off.
        var shorter = f.sealed
        shorter[Fixture.start(5) + 4] = 96
        f.expectRefused(shorter, .chunkAuthenticationFailed(chunk: 5))
        var longer = f.sealed
        longer[Fixture.start(5) + 4] = 101
        f.expectRefused(longer, .truncated)
        var marker = f.sealed
        marker[Fixture.start(3)] = 0x07
        f.expectRefused(marker, .chunkAuthenticationFailed(chunk: 3))
    }

    @Test func flippedHeaderBytesAreRefused() throws {
        let f = try Fixture()
        f.expectRefused(Self.flipped(f.sealed, at: 0), .notASealedRecord)
        f.expectRefused(Self.flipped(f.sealed, at: 8), .unsupportedVersion(0))
        var v2 = f.sealed
        v2[8] = 2
        f.expectRefused(v2, .unsupportedVersion(2))
        f.expectRefused(
            Self.flipped(f.sealed, at: 10), .headerMalformed("capsule length is 104, version 1 requires 105"))
        // Any flipped capsule byte fails parsing or its self-check.
        for i in 11..<116 {
            do {
                _ = try openBytes(Self.flipped(f.sealed, at: i), .dataKey(f.key))
                Issue.record("capsule byte \(i) flipped was accepted")
            } catch let SealedRecordError.headerMalformed(reason) {
                #expect(reason.hasPrefix("capsule"), "byte \(i): \(reason)")
            } catch { Issue.record("byte \(i): \(error)") }
        }
        // Wrapped key: the patient cannot unwrap it; a data-key holder is stopped by the AAD.
        f.expectRefused(
            Self.flipped(f.sealed, at: 150), .dataKeyDoesNotOpen, dataKeyError: .chunkAuthenticationFailed(chunk: 0))
        // Key commitment: inconsistent with the (authentic) wrapped key; the given key no longer matches it.
        f.expectRefused(
            Self.flipped(f.sealed, at: 200), .headerMalformed("key commitment does not match the wrapped data key"),
            dataKeyError: .dataKeyDoesNotOpen)
        // Nonce prefix and chunk size are bound through the nonce and the AAD.
        f.expectRefused(Self.flipped(f.sealed, at: 225), .chunkAuthenticationFailed(chunk: 0))
        f.expectRefused(Self.flipped(f.sealed, at: 232), .chunkAuthenticationFailed(chunk: 0))  // 1024 → 1025
        var zeroChunk = f.sealed
        zeroChunk[229..<233] = [0, 0, 0, 0]
        f.expectRefused(zeroChunk, .headerMalformed("chunk size 0 outside 1...16777216"))
    }

    @Test func droppedChunksAreRefused() throws {
        let f = try Fixture()
        // Last chunk dropped: the stream ends after a non-final chunk.
        f.expectRefused(Array(f.sealed[..<Fixture.start(5)]), .truncated)
        // Only the header left.
        f.expectRefused(Array(f.sealed[..<SealedRecord.headerCount]), .truncated)
        // A middle chunk dropped: chunk 3 sits at index 2.
        f.expectRefused(
            Array(f.sealed[..<Fixture.start(2)] + f.sealed[Fixture.start(3)...]), .chunkAuthenticationFailed(chunk: 2))
        // Cut inside a chunk, inside the final chunk, inside the header.
        f.expectRefused(Array(f.sealed[..<(Fixture.start(3) + 100)]), .truncated)
        f.expectRefused(Array(f.sealed.dropLast()), .truncated)
        f.expectRefused(Array(f.sealed[..<100]), .truncated)
        f.expectRefused(Array(f.sealed[..<3]), .truncated)
        f.expectRefused([], .notASealedRecord)
        f.expectRefused(Array("not a record at all, just text".utf8), .notASealedRecord)
    }

    @Test func swappedChunksAreRefused() throws {
        let f = try Fixture()
        var s = f.sealed
        let one = Array(s[Fixture.start(1)..<Fixture.start(2)])
        let three = Array(s[Fixture.start(3)..<Fixture.start(4)])
        s.replaceSubrange(Fixture.start(1)..<Fixture.start(2), with: three)
        s.replaceSubrange(Fixture.start(3)..<Fixture.start(4), with: one)
        f.expectRefused(s, .chunkAuthenticationFailed(chunk: 1))
        // A chunk from another record (another key and header) in place of chunk 0.
        let other = try Fixture()
        var spliced = f.sealed
        spliced.replaceSubrange(
            Fixture.start(0)..<Fixture.start(1), with: other.sealed[Fixture.start(0)..<Fixture.start(1)])
        f.expectRefused(spliced, .chunkAuthenticationFailed(chunk: 0))
    }

    @Test func appendedDataIsRefused() throws {
        let f = try Fixture()
        f.expectRefused(f.sealed + [0], .trailingData)
        f.expectRefused(f.sealed + testBytes(5000), .trailingData)
        f.expectRefused(f.sealed + f.sealed[Fixture.start(5)...], .trailingData)  // the final chunk again
        f.expectRefused(f.sealed + f.sealed[Fixture.start(1)..<Fixture.start(2)], .trailingData)  // a full chunk
        // A plaintext that is a multiple of the chunk size ends in a full final chunk; same result.
        let exact = try sealBytes(testBytes(2048), to: f.patient.publicKey, chunkSize: 1024).sealed
        #expect(throws: SealedRecordError.trailingData) {
            _ = try openBytes(exact + [1, 2, 3], .patientSecretKey(f.patient))
        }
    }

    // MARK: Files

    @Test func fileHandlesAndAtomicOpenFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sealed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let patient = SecretKey.random()
        let plain = dir.appendingPathComponent("bundle.bin")
        let sealedURL = dir.appendingPathComponent("bundle.sealed")
        let plaintext = testBytes(300_000)
        try Data(plaintext).write(to: plain)
        #expect(FileManager.default.createFile(atPath: sealedURL.path, contents: nil))
        let input = try FileHandle(forReadingFrom: plain)
        let output = try FileHandle(forWritingTo: sealedURL)
        let result = try SealedRecord.seal(patientPK: patient.publicKey, from: input, to: output)
        try input.close()
        try output.close()
        let sealed = try [UInt8](Data(contentsOf: sealedURL))
        #expect(result.digestHex == sha384Hex(sealed))

        let headerHandle = try FileHandle(forReadingFrom: sealedURL)
        #expect(try SealedRecord.readHeader(from: headerHandle).bytes == result.header.bytes)
        try headerHandle.close()

        let opened = dir.appendingPathComponent("bundle.out")
        let openResult = try SealedRecord.openFile(.patientSecretKey(patient), at: sealedURL, to: opened)
        #expect(try [UInt8](Data(contentsOf: opened)) == plaintext)
        #expect(openResult.digestHex == result.digestHex)

        // A record tampered in its last chunk: nothing is left at the output, no partial files.
        let tampered = dir.appendingPathComponent("tampered.sealed")
        try Data(Self.flipped(sealed, at: sealed.count - 1)).write(to: tampered)
        let refused = dir.appendingPathComponent("refused.out")
        #expect(throws: SealedRecordError.chunkAuthenticationFailed(chunk: 4)) {
            try SealedRecord.openFile(.patientSecretKey(patient), at: tampered, to: refused)
        }
        #expect(!FileManager.default.fileExists(atPath: refused.path))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".partial") }.isEmpty)
    }
}

/// Cross-check with an independent implementation: Python `cryptography`'s AESGCM, through
/// scripts/sealed_record_check.py. Serialized: each case spawns python3 (2-core machines).
@Suite(.serialized) struct SealedRecordPythonTests {
    @Test(arguments: [(0, 1024), (1, 65536), (1024, 1024), (10 * 1024 + 5, 1024), (1_000_003, 65536)])
    func pythonDecryptsWhatSwiftSealed(size: Int, chunkSize: Int) throws {
        let patient = SecretKey.random()
        let plaintext = testBytes(size, seed: 77)
        let (sealed, result) = try sealBytes(plaintext, to: patient.publicKey, chunkSize: chunkSize)
        let key = try result.header.openDataKey(patientSK: patient)
        let (status, reply) = try PythonCheck.run(sealed: sealed, dataKey: key.bytes, plaintext: plaintext)
        #expect(status == 0, "python: \(reply)")
        #expect(reply["ok"] as? Bool == true)
        #expect(reply["plaintext_matches"] as? Bool == true)
        #expect(reply["sealed_sha384"] as? String == result.digestHex)
        #expect(reply["plaintext_sha384"] as? String == sha384Hex(plaintext))
        #expect(reply["plaintext_len"] as? Int == size)
        #expect(reply["chunk_size"] as? Int == chunkSize)
        #expect(reply["chunks"] as? Int == max(1, (size + chunkSize - 1) / chunkSize))
    }

    /// The checker is not a rubber stamp: it refuses what Swift refuses.
    @Test func pythonRefusesTamperedRecords() throws {
        let patient = SecretKey.random()
        let plaintext = testBytes(3000)
        let (sealed, result) = try sealBytes(plaintext, to: patient.publicKey, chunkSize: 1024)
        let key = try result.header.openDataKey(patientSK: patient).bytes
        var body = sealed
        body[500] ^= 1
        var header = sealed
        header[225] ^= 1
        let cases: [(String, [UInt8], [UInt8], String)] = [
            ("body byte", body, key, "chunk 0 failed authentication"),
            ("nonce prefix", header, key, "chunk 0 failed authentication"),
            ("dropped last chunk", Array(sealed[..<(233 + 2 * 1041)]), key, "truncated"),
            ("appended byte", sealed + [0], key, "trailing"),
            ("wrong key", sealed, DataKey.random().bytes, "key commitment"),
        ]
        for (name, bytes, k, expected) in cases {
            let (status, reply) = try PythonCheck.run(sealed: bytes, dataKey: k, plaintext: nil)
            #expect(status == 1, "\(name): \(reply)")
            #expect((reply["error"] as? String)?.contains(expected) == true, "\(name): \(reply)")
        }
        // And a correct key with a different plaintext is reported as a mismatch.
        let (status, reply) = try PythonCheck.run(sealed: sealed, dataKey: key, plaintext: plaintext + [0])
        #expect(status == 1)
        #expect(reply["plaintext_matches"] as? Bool == false)
    }
}
