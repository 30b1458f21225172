import Foundation
import MedLedgerFuzzHarness
import Testing

/// The committed fuzz corpus (Tests/Fuzz/<target>/: seeds, and every input that once crashed) replayed
/// through the harnesses in a normal build: a decoder that traps again fails here without a sanitizer
/// build. The seeds must also still reach past the signature checks, or fuzzing them is shallow.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz").path

    static func files(_ target: String) throws -> [String] {
        let dir = corpus + "/" + target
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") }.sorted().map {
            dir + "/" + $0
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func replaysTheCorpus(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let files = try Self.files(name)
        #expect(!files.isEmpty, "no corpus for \(name)")
        for path in files { target.run(Array(try Data(contentsOf: URL(fileURLWithPath: path)))) }
    }

    @Test func everyCorpusDirectoryIsATarget() throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: Self.corpus).filter {
            !$0.hasPrefix(".") && !$0.hasSuffix(".md")
        }
        #expect(Set(dirs) == Set(FuzzTargets.all.map(\.name)))
    }
}

extension CorpusReplayTests {
    /// Every seed still gets past signatures, chain links and proofs (see SeedCheck).
    @Test func seedsReachPastTheChecksRandomInputNeverPasses() throws {
        let problems = try SeedCheck.problems(corpus: Self.corpus)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }
}
