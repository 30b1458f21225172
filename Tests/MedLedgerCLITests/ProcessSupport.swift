import Foundation
import Testing

/// Finds and runs the real `medledger` binary that `swift build` put beside the test bundle.
enum MedLedgerBinary {
    static let url: URL = {
        if let override = ProcessInfo.processInfo.environment["MEDLEDGER_BIN"] { return URL(fileURLWithPath: override) }
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        // Repo root from this file: Tests/MedLedgerCLITests/ProcessSupport.swift
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        for dir in candidates {
            let u = dir.appendingPathComponent("medledger")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return candidates.last!.appendingPathComponent("medledger")
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `medledger args…` to completion.
    static func run(_ args: [String]) throws -> Result {
        try runTool(url.path, args)
    }

    /// Runs any program to completion.
    static func runTool(_ path: String, _ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read before waiting so a large output cannot fill the pipe and stall the child.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitForExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }
}

extension Process {
    /// Waits for the process to exit without holding a core: Foundation's `waitUntilExit` spins its
    /// run loop on Linux off the main thread, taking a core from the nodes a test waits for.
    func waitForExit() {
        while isRunning { usleep(5_000) }
    }
}

final class ScratchDir: @unchecked Sendable {
    let path: String

    init(_ label: String) {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("medledger-\(label)-\(UUID().uuidString)")
            .path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
