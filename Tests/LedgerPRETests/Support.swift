import Foundation

@testable import LedgerPRE

enum TestHex {
    static func encode(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
    static func decode(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }
}

/// Flips one bit of byte `i`.
func flipped(_ b: [UInt8], at i: Int) -> [UInt8] {
    var c = b
    c[i] ^= 0x01
    return c
}

/// Drives scripts/umbral_interop.py (umbral-pre 0.11, the reference implementation) in a child
/// `python3`. A missing `umbral_pre` is a test failure with an install hint, never a skip.
enum UmbralPython {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let script: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/umbral_interop.py")

    /// Runs a command; returns the reply object. A reply with "error" throws unless `allowError`.
    @discardableResult
    static func run(_ command: String, _ request: [String: Any] = [:], allowError: Bool = false) throws -> [String: Any]
    {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("umbral-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.json")
        let output = dir.appendingPathComponent("out.json")
        try JSONSerialization.data(withJSONObject: request).write(to: input)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script.path, command, "--in", input.path, "--out", output.path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { throw Failure(description: "cannot start python3: \(error)") }
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus == 3 {
            throw Failure(
                description:
                    "umbral-pre is not importable — the interop tests need it (pip install umbral-pre==0.11.0): \(errText)"
            )
        }
        guard let data = try? Data(contentsOf: output),
            let reply = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw Failure(
                description: "umbral_interop.py \(command) exited \(p.terminationStatus) without a reply: \(errText)")
        }
        if let e = reply["error"] as? String, !allowError {
            throw Failure(description: "umbral_interop.py \(command) failed: \(e)")
        }
        return reply
    }

    static func bytes(_ reply: [String: Any], _ key: String) throws -> [UInt8] {
        guard let s = reply[key] as? String else { throw Failure(description: "reply has no \(key): \(reply)") }
        return TestHex.decode(s)
    }

    static func list(_ reply: [String: Any], _ key: String) throws -> [[UInt8]] {
        guard let a = reply[key] as? [String] else { throw Failure(description: "reply has no list \(key): \(reply)") }
        return a.map(TestHex.decode)
    }

    /// [(ok, error)] from a verify-* reply.
    static func results(_ reply: [String: Any]) throws -> [(ok: Bool, error: String)] {
        guard let a = reply["results"] as? [[String: Any]] else {
            throw Failure(description: "reply has no results: \(reply)")
        }
        return a.map { ($0["ok"] as? Bool ?? false, $0["error"] as? String ?? "") }
    }
}
