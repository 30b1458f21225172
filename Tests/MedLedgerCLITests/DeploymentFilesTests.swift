import Foundation
import Testing

/// The container description of the network: no Docker engine runs here, so Debian's docker-compose
/// validates the file (schema, anchors, references) and the test checks the services it resolves to.
@Suite struct DeploymentFilesTests {
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    @Test func composeFileValidatesAndDescribesTheNetwork() throws {
        let compose = "/usr/bin/docker-compose"
        try #require(
            FileManager.default.isExecutableFile(atPath: compose),
            "docker-compose is not installed: scripts/test.sh installs it (Debian package docker-compose)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: compose)
        p.arguments = ["-f", Self.repoRoot.appendingPathComponent("docker-compose.yml").path, "config"]
        p.currentDirectoryURL = Self.repoRoot
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitForExit()
        #expect(p.terminationStatus == 0, "docker-compose config failed: \(errors)")
        for service in ["sa:", "hospital-a:", "hospital-b:"] { #expect(text.contains(service)) }
        #expect(text.contains("medledger:latest"))
        #expect(text.contains("7050"))
        // The raft profile: three hospitals, each with its raft port.
        let raft = try Self.run(
            compose,
            ["-f", Self.repoRoot.appendingPathComponent("docker-compose.yml").path, "--profile", "raft", "config"])
        for service in ["raft-hospital-a:", "raft-hospital-b:", "raft-hospital-c:"] {
            #expect(raft.contains(service), "\(raft)")
        }
        for port in ["7052", "8052", "9052"] { #expect(raft.contains(port)) }
        #expect(FileManager.default.fileExists(atPath: Self.repoRoot.appendingPathComponent("Dockerfile").path))
    }

    @Test func networkChannelConfigurationIsAValidChannel() throws {
        // The template with its placeholders filled in must pass every channel rule.
        let dir = ScratchDir("netconfig")
        var text = try String(
            contentsOf: Self.repoRoot.appendingPathComponent("network-config/channel.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "${ORDERER}", with: "127.0.0.1:7050")
            .replacingOccurrences(of: "${HOSPITAL_A_PEER}", with: "127.0.0.1:7051")
            .replacingOccurrences(of: "${HOSPITAL_B_PEER}", with: "127.0.0.1:8051")
        try MedLedgerBinary.ok(["ca", "init", "--data", dir.path + "/sa", "--master-key-file", dir.path + "/k"])
        try text.write(toFile: dir.path + "/channel.yaml", atomically: true, encoding: .utf8)
        let out = try MedLedgerBinary.ok([
            "channel", "create", "--config", dir.path + "/channel.yaml", "--wallet", dir.path + "/sa/wallets/admin",
            "--out", dir.path + "/records.block",
        ])
        #expect(out.contains("4 organisations"))
    }

    /// The image must build: every Debian package Package.swift's system libraries name, and the one
    /// behind each library it links by name, is installed in the build stage, each one's runtime
    /// library in the final stage, and the Swift image is at least
    /// as new as the newest tools version among the checked-out packages.
    @Test func dockerfileInstallsEverySystemLibraryAndANewEnoughSwift() throws {
        let root = Self.repoRoot
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let dockerfile = try String(contentsOf: root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        // Before the first FROM: comments; then the build stage and the runtime stage.
        let stages = dockerfile.components(separatedBy: "\nFROM ").dropFirst()
        try #require(stages.count == 2, "the Dockerfile has a build stage and a runtime stage")
        let (build, runtime) = (Self.aptInstalled(stages.first!), Self.aptInstalled(stages.last!))
        var devPackages: [String] = []
        for match in manifest.matches(of: /\.apt\(\[([^\]]*)\]\)/) {
            devPackages += match.1.split(separator: ",").map {
                $0.trimmingCharacters(in: CharacterSet(charactersIn: " \""))
            }
        }
        #expect(devPackages.count >= 4, "Package.swift names its system libraries' Debian packages")
        // Libraries linked by name (`.linkedLibrary`): the Debian package that installed the name the
        // linker looks for (libNAME.so) here.
        for match in manifest.matches(of: /\.linkedLibrary\("([^"]+)"\)/) {
            let listing = try Self.run("/usr/bin/dpkg", ["-S", "*/lib\(match.1).so"])
            // "libgmp-dev:amd64: /usr/lib/x86_64-linux-gnu/libgmp.so"; diversions are not owners.
            let owners = Set(
                listing.split(separator: "\n").filter { !$0.hasPrefix("diversion") }.compactMap {
                    $0.split(separator: ":").first.map(String.init)
                }.filter { $0.hasSuffix("-dev") })
            try #require(owners.count == 1, "Debian packages holding lib\(match.1).so: \(owners.sorted())")
            if !devPackages.contains(owners.first!) { devPackages.append(owners.first!) }
        }
        #expect(devPackages.contains("libjemalloc-dev") && devPackages.contains("libgmp-dev"))
        for dev in devPackages {
            #expect(build.contains(dev), "the build stage does not install \(dev)")
            // The runtime library a -dev package pulls in, from Debian's own package metadata.
            let depends = try Self.run("/usr/bin/apt-cache", ["depends", dev])
            let runtimeLibrary = depends.split(separator: "\n").compactMap { line -> String? in
                let t = line.trimmingCharacters(in: .whitespaces)
                guard t.hasPrefix("Depends: lib") else { return nil }
                let name = String(t.dropFirst("Depends: ".count))
                return name.hasSuffix("-dev") ? nil : name
            }.first
            let lib = try #require(runtimeLibrary, "apt-cache names no runtime library for \(dev)")
            #expect(runtime.contains(lib), "the runtime stage does not install \(lib) (for \(dev))")
        }
        let image = try #require(
            dockerfile.firstMatch(of: /FROM swift:(\d+)\.(\d+)/), "the build stage is an official swift image")
        let imageVersion = (Int(image.1)!, Int(image.2)!)
        let checkouts = root.appendingPathComponent(".build/checkouts")
        let packages = (try? FileManager.default.contentsOfDirectory(atPath: checkouts.path)) ?? []
        try #require(!packages.isEmpty, "no checked-out packages under .build/checkouts: build first")
        for package in packages {
            guard
                let text = try? String(
                    contentsOf: checkouts.appendingPathComponent("\(package)/Package.swift"), encoding: .utf8),
                let tools = text.firstMatch(of: /swift-tools-version: *(\d+)\.(\d+)/)
            else { continue }
            let needed = (Int(tools.1)!, Int(tools.2)!)
            #expect(
                needed <= imageVersion,
                "\(package) needs Swift tools \(needed.0).\(needed.1); the Dockerfile builds with \(imageVersion.0).\(imageVersion.1)"
            )
        }
    }

    /// Both programs allocate through jemalloc (Package.swift links it): asked to, jemalloc reports at
    /// exit what it allocated, which is nothing unless the program's own allocations went through it.
    @Test func bothProgramsAllocateThroughJemalloc() throws {
        let dir = MedLedgerBinary.url.deletingLastPathComponent()
        for program in ["medledger", "medledgerd"] {
            let p = Process()
            p.executableURL = dir.appendingPathComponent(program)
            p.arguments = ["--help"]
            p.environment = ProcessInfo.processInfo.environment.merging(["MALLOC_CONF": "stats_print:true"]) { $1 }
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitForExit()
            let allocated = text.firstMatch(of: /\nAllocated: (\d+),/).flatMap { Int($0.1) }
            #expect((allocated ?? 0) > 64 * 1024, "\(program) --help, jemalloc's statistics: \(text.prefix(300))")
        }
    }

    static func aptInstalled(_ stage: String) -> Set<String> {
        var names = Set<String>()
        for match in stage.matches(of: /apt-get install([^&]*)/) {
            for word in match.1.split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\n" })
            where !word.hasPrefix("-") {
                names.insert(String(word))
            }
        }
        return names
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitForExit()
        return text
    }
}
