import Foundation
import Testing

/// The container description of the network: no Docker engine runs here, so Debian's docker-compose
/// validates the file (schema, anchors, references) and the test checks the services it resolves to.
@Suite struct DeploymentFilesTests {
    static var repoRoot: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    @Test func composeFileValidatesAndDescribesTheNetwork() throws {
        let compose = "/usr/bin/docker-compose"
        try #require(FileManager.default.isExecutableFile(atPath: compose), "docker-compose is not installed: scripts/test.sh installs it (Debian package docker-compose)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: compose)
        p.arguments = ["-f", Self.repoRoot.appendingPathComponent("docker-compose.yml").path, "config"]
        p.currentDirectoryURL = Self.repoRoot
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "docker-compose config failed: \(errors)")
        for service in ["sa:", "hospital-a:", "hospital-b:"] { #expect(text.contains(service)) }
        #expect(text.contains("medledger:latest"))
        #expect(text.contains("7050"))
        #expect(FileManager.default.fileExists(atPath: Self.repoRoot.appendingPathComponent("Dockerfile").path))
    }

    @Test func networkChannelConfigurationIsAValidChannel() throws {
        // The template with its placeholders filled in must pass every channel rule.
        let dir = ScratchDir("netconfig")
        var text = try String(contentsOf: Self.repoRoot.appendingPathComponent("network-config/channel.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "${ORDERER}", with: "127.0.0.1:7050")
            .replacingOccurrences(of: "${HOSPITAL_A_PEER}", with: "127.0.0.1:7051")
            .replacingOccurrences(of: "${HOSPITAL_B_PEER}", with: "127.0.0.1:8051")
        try MedLedgerBinary.ok(["ca", "init", "--data", dir.path + "/sa", "--master-key-file", dir.path + "/k"])
        try text.write(toFile: dir.path + "/channel.yaml", atomically: true, encoding: .utf8)
        let out = try MedLedgerBinary.ok(["channel", "create", "--config", dir.path + "/channel.yaml", "--wallet", dir.path + "/sa/wallets/admin", "--out", dir.path + "/records.block"])
        #expect(out.contains("4 organisations"))
    }
}
