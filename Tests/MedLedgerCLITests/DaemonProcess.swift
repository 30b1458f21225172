import Foundation
import Synchronization

/// A long-running child process (medledgerd, `medledger ca serve`) whose output the test watches.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    final class Buffer: Sendable {
        let text = Mutex("")
    }
    private let output = Buffer()
    private let pipe = Pipe()

    init(executable: URL, arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [output] h in
            let d = h.availableData
            if !d.isEmpty { output.text.withLock { $0 += String(decoding: d, as: UTF8.self) } }
        }
        try process.run()
    }

    var text: String { output.text.withLock { $0 } }

    /// Waits until the output contains `needle`; fails with the output so far.
    func waitFor(_ needle: String, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if text.contains(needle) { return }
            if !process.isRunning {
                throw Failure(
                    message:
                        "process exited (\(process.terminationStatus)) before printing \(needle.debugDescription):\n\(text)"
                )
            }
            usleep(50_000)
        }
        throw Failure(message: "timed out waiting for \(needle.debugDescription):\n\(text)")
    }

    /// The port printed in "<label> … listening on HOST:PORT".
    func port(after label: String) throws -> Int {
        for line in text.split(separator: "\n") where line.contains(label) && line.contains("listening on") {
            if let hp = line.split(separator: " ").first(where: { $0.contains(":") && $0.first?.isNumber == true }),
                let p = Int(hp.split(separator: ":").last ?? "")
            {
                return p
            }
        }
        throw Failure(message: "no port for \(label) in:\n\(text)")
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitForExit()
        }
        pipe.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    deinit { if process.isRunning { process.terminate() } }
}

extension MedLedgerBinary {
    static var daemonURL: URL { url.deletingLastPathComponent().appendingPathComponent("medledgerd") }

    /// Runs `medledger args…`, failing the test with its output when it fails.
    @discardableResult
    static func ok(_ args: [String]) throws -> String {
        let r = try run(args)
        guard r.status == 0 else {
            throw DaemonProcess.Failure(
                message: "medledger \(args.joined(separator: " ")) failed (\(r.status)):\n\(r.stdout)\(r.stderr)")
        }
        return r.stdout
    }
}
