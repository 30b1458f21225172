import Crypto
import Foundation
import LedgerPRE

@testable import LedgerRecords

/// Deterministic pseudo-random bytes (xorshift64*), fast enough in debug builds for megabytes.
func testBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var x = seed | 1
    var i = 0
    while i < count {
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        var v = x &* 0x2545_F491_4F6C_DD1D
        for _ in 0..<8 where i < count {
            out[i] = UInt8(truncatingIfNeeded: v)
            v >>= 8
            i += 1
        }
    }
    return out
}

func sha384Hex(_ bytes: [UInt8]) -> String { hexString(SHA384.hash(data: bytes)) }

/// Seals `plaintext` in memory. `maxRead` caps each read, to exercise short reads.
func sealBytes(
    _ plaintext: [UInt8], to pk: PublicKey, chunkSize: Int = SealedRecord.defaultChunkSize,
    maxRead: Int = .max
) throws -> (sealed: [UInt8], result: SealedRecord.SealResult) {
    var pos = 0
    var out: [UInt8] = []
    let result = try SealedRecord.seal(
        patientPK: pk, chunkSize: chunkSize,
        read: { n in
            let end = min(pos + min(n, maxRead), plaintext.count)
            defer { pos = end }
            return Array(plaintext[pos..<end])
        }, write: { out += $0 })
    return (out, result)
}

/// Opens `sealed` in memory; returns the plaintext and the result.
func openBytes(
    _ sealed: [UInt8], _ opener: SealedRecord.Opener, maxRead: Int = .max
) throws -> (plaintext: [UInt8], result: SealedRecord.OpenResult) {
    var pos = 0
    var out: [UInt8] = []
    let result = try SealedRecord.open(
        opener,
        read: { n in
            let end = min(pos + min(n, maxRead), sealed.count)
            defer { pos = end }
            return Array(sealed[pos..<end])
        }, write: { out += $0 })
    return (out, result)
}

/// Runs scripts/sealed_record_check.py (Python `cryptography`) on a sealed file. A missing
/// `cryptography` is a failure with an install hint, never a skip.
enum PythonCheck {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static let script: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/sealed_record_check.py")

    /// (exit status, parsed JSON reply).
    static func run(
        sealed: [UInt8], dataKey: [UInt8], plaintext: [UInt8]?
    ) throws -> (status: Int32, reply: [String: Any]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sealed-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sealedURL = dir.appendingPathComponent("record.sealed")
        try Data(sealed).write(to: sealedURL)
        var args = [script.path, sealedURL.path, hexString(dataKey)]
        if let plaintext {
            let plainURL = dir.appendingPathComponent("record.plain")
            try Data(plaintext).write(to: plainURL)
            args += ["--plaintext", plainURL.path]
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw Failure(description: "cannot start python3: \(error)") }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus == 3 {
            throw Failure(
                description:
                    "Python `cryptography` is not importable — this test needs it (pip install cryptography): \(errText)"
            )
        }
        guard let reply = try? JSONSerialization.jsonObject(with: outData) as? [String: Any] else {
            throw Failure(description: "sealed_record_check.py exited \(p.terminationStatus) without JSON: \(errText)")
        }
        return (p.terminationStatus, reply)
    }
}
