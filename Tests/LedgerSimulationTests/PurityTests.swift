import Foundation
import Testing

/// The pure modules — the ledger's rules, the ordering decisions, the chaincodes, the FHIR mapping
/// and the simulator — take time, randomness and the file system from their callers. This test
/// fails when one reads the wall clock, makes a UUID or a random number of its own, or touches the
/// file system, so the simulator can keep replaying them from a seed. Shell modules (the node,
/// clients, storage backends, CA, transports) are where those belong.
@Suite struct PurityTests {
    static let pureModules = [
        "LedgerCore", "LedgerStorage", "LedgerChannel", "LedgerChaincode", "LedgerPeer", "LedgerOrderingCore",
        "MedRecords",
        "LedgerFHIR",
        "HospitalFlows", "LedgerSimulation",
    ]

    /// What a pure module may not say. `.random(` is allowed only with `using:` (a generator the
    /// caller passed in).
    static let forbidden: [(name: String, pattern: String)] = [
        ("the wall clock", #"\bDate\(\)"#),
        ("a UUID", #"\bUUID\(\)"#),
        ("the file system", #"\bFileManager\b"#),
        ("the system's random generator", #"\bSystemRandomNumberGenerator\b"#),
        ("the system's random generator", #"\bRandomBytes\.make\("#),
        ("an unseeded random value", #"\.random(Element)?\((?![^)]*using:)"#),
        ("the wall clock", #"\bDate\.now\b"#),
        ("the process environment", #"\bProcessInfo\.processInfo\.environment\b"#),
        ("the process environment", #"\bgetenv\("#),
        ("the wall clock", #"\bDate\(timeIntervalSinceNow:"#),
        ("the wall clock", #"\b(Continuous|Suspending)Clock\(\)\.now|\b(Continuous|Suspending)Clock\.now\b"#),
        ("the file system", #"\bData\(contentsOf:|\bString\(contentsOfFile:|\bFileHandle\b"#),
        ("an unseeded shuffle", #"\.shuffled?\(\)"#),
    ]

    /// Reviewed exceptions: file, the pattern's name, and why it stays.
    static let allowed: [(file: String, what: String, why: String)] = [
        (
            "LedgerCore/TransactionSigning.swift", "the system's random generator",
            "TransactionID.newNonce: a transaction nonce must be unpredictable; callers that replay (the simulator) pass their own"
        ),
        (
            "LedgerStorage/FaultInjection.swift", "the process environment",
            "crash points for the crash test over real processes (MEDLEDGER_CRASH_AT); nothing unless a test sets it"
        ),
    ]

    static var sources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Sources")
    }

    @Test func pureModulesTakeTimeRandomnessAndFilesFromTheirCallers() throws {
        var findings: [String] = []
        for module in Self.pureModules {
            let dir = Self.sources.appendingPathComponent(module)
            let files = try FileManager.default.subpathsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }
                .sorted()
            #expect(!files.isEmpty, "pure module \(module) has no sources at \(dir.path)")
            for file in files {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = line.trimmingCharacters(in: .whitespaces)
                    if code.hasPrefix("//") { continue }
                    for rule in Self.forbidden where code.range(of: rule.pattern, options: .regularExpression) != nil {
                        if Self.allowed.contains(where: { $0.file == "\(module)/\(file)" && $0.what == rule.name }) {
                            continue
                        }
                        findings.append("\(module)/\(file):\(number + 1): \(rule.name): \(code)")
                    }
                }
            }
        }
        #expect(findings.isEmpty, "pure modules reach for I/O:\n\(findings.joined(separator: "\n"))")
    }

    /// The rule itself catches what it should (a test of the test).
    @Test func theRulesCatchWhatTheyName() {
        let samples = [
            "let t = Date()", "let id = UUID()", "FileManager.default.fileExists(atPath: p)",
            "var g = SystemRandomNumberGenerator()", "let nonce = RandomBytes.make(count: 24)",
            "let x = Int.random(in: 0..<3)", "let k = keys.randomElement()", "let n = Date.now",
            "let v = ProcessInfo.processInfo.environment[\"X\"]", "let h = getenv(\"HOME\")",
            "let d = Date(timeIntervalSinceNow: 5)", "let t = ContinuousClock.now", "let b = try Data(contentsOf: url)",
            "let s = try String(contentsOfFile: p)", "let f = FileHandle(forReadingAtPath: p)", "xs.shuffle()",
        ]
        for s in samples {
            #expect(
                Self.forbidden.contains { s.range(of: $0.pattern, options: .regularExpression) != nil },
                "\(s) slipped through")
        }
        #expect(
            !Self.forbidden.contains {
                "Int.random(in: r, using: &g)".range(of: $0.pattern, options: .regularExpression) != nil
            })
        #expect(
            !Self.forbidden.contains {
                "Date(timeIntervalSince1970: 0)".range(of: $0.pattern, options: .regularExpression) != nil
            })
    }
}
