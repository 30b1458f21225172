import Foundation
import LedgerConfig
import Testing

/// Fuzzing found that a node.yaml of ~1,700 nested flow mappings overflowed the stack inside Yams'
/// recursive composer, killing the process. Files nested that deep are refused with a clear error.
@Suite struct ConfigShapeTests {
    static func write(_ text: String, _ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-shape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static let hostile: [(String, String)] = [
        ("nested flow mappings", " {  [{  [de: " + String(repeating: "{", count: 5_000)),
        ("nested flow sequences", "peers: " + String(repeating: "[", count: 5_000)),
        ("brackets hidden behind a quote", "node: x '\n" + String(repeating: "{", count: 5_000)),
        ("nested block sequences", String(repeating: "- ", count: 5_000) + "x"),
        ("deep indentation", (0..<400).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")),
    ]

    @Test(arguments: hostile.map(\.0))
    func aDeeplyNestedNodeConfigIsRefusedWithAClearError(_ name: String) throws {
        let text = try #require(Self.hostile.first { $0.0 == name }?.1)
        let path = try Self.write(text, "node.yaml")
        do {
            _ = try NodeConfig.load(path: path)
            Issue.record("\(name): loaded")
        } catch {
            #expect("\(error)".contains("nesting this deep is refused"), "\(error)")
        }
    }

    @Test(arguments: hostile.map(\.0))
    func aDeeplyNestedChannelConfigIsRefusedWithAClearError(_ name: String) throws {
        let text = try #require(Self.hostile.first { $0.0 == name }?.1)
        let path = try Self.write(text, "channel.yaml")
        #expect(throws: (any Error).self) { try ChannelConfigFile.load(path: path) }
        do { _ = try ChannelConfigFile.load(path: path) } catch {
            #expect("\(error)".contains("nesting this deep is refused"), "\(error)")
        }
    }

    @Test func anOversizedFileIsRefusedWithoutReadingItAll() throws {
        let path = try Self.write("# " + String(repeating: "x", count: YAMLShape.maxBytes) + "\n", "node.yaml")
        #expect {
            try NodeConfig.load(path: path)
        } throws: { "\($0)".contains("at most \(YAMLShape.maxBytes)") }
    }

    /// The shipped configurations are far inside the bounds.
    @Test func theNetworkConfigurationsPass() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("network-config")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(!files.isEmpty)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            #expect(throws: Never.self) { try YAMLShape.check(text, file: f) }
        }
    }
}

/// node.yaml's `anomaly` section: a bad rule stops the node at start with the rule's name and why.
@Suite struct AnomalyConfigTests {
    static let base = """
        node: { name: peer0, org: hospital-a }
        data_dir: data
        listen: 127.0.0.1:0
        tls: { cert: tls-cert.pem, key: tls-key.pem }
        trusted_roots: [ca-cert.pem]

        """

    static func load(_ anomaly: String) -> String {
        do {
            _ = try NodeConfig.load(path: try ConfigShapeTests.write(base + anomaly, "node.yaml"))
            return ""
        } catch { return "\(error)" }
    }

    @Test func rulesAreCheckedAtLoad() throws {
        #expect(Self.load("").isEmpty)
        let defaults = try NodeConfig.load(path: try ConfigShapeTests.write(Self.base, "node.yaml"))
        #expect(
            defaults.anomalyRules.map(\.name) == [
                "refusal-burst", "patient-sweep", "bulk-download", "certificate-roaming",
            ])
        let off = try NodeConfig.load(
            path: try ConfigShapeTests.write(Self.base + "anomaly: { rules: [] }", "node.yaml"))
        #expect(off.anomalyRules.isEmpty)
        #expect(
            Self.load(
                "anomaly: { rules: [ { name: x, kind: scrape, threshold: 1, window_seconds: 60, action: alert } ] }"
            ).contains("scrape"))
        #expect(
            Self.load(
                "anomaly: { rules: [ { name: x, kind: denied, threshold: 1, window_seconds: 60, action: shout } ] }"
            ).contains("shout"))
        #expect(
            Self.load(
                "anomaly: { rules: [ { name: x, kind: denied, threshold: 0, window_seconds: 60, action: alert } ] }"
            ).contains("anomaly rule \"x\": threshold"))
        #expect(
            Self.load(
                "anomaly: { rules: [ { name: n, kind: outside-hours, hours: \"7-19\", threshold: 1, window_seconds: 60, action: alert } ] }"
            ).contains("HH:MM"))
        #expect(Self.load("anomaly: { webhook: \"ftp://x\" }").contains("not an https URL"))
        #expect(Self.load("anomaly: { webhook: \"http://pager.example/x\" }").contains("not an https URL"))
        #expect(Self.load("anomaly: { webhook: \"http://127.0.0.1:9/x\" }").isEmpty)
    }

    @Test func auditRotationIsBoundedAndChecked() throws {
        let set = try NodeConfig.load(
            path: try ConfigShapeTests.write(
                Self.base + "audit_rotate: { max_bytes: 1048576, keep_files: 3 }", "node.yaml"))
        #expect(set.auditRotate == NodeConfig.AuditRotateSection(maxBytes: 1_048_576, keepFiles: 3))
        #expect(Self.load("audit_rotate: { max_bytes: 100 }").contains("audit_rotate.max_bytes must be 4096"))
        #expect(Self.load("audit_rotate: { keep_files: 0 }").contains("keep_files 1...10000"))
    }
}

/// A key no section reads (a misspelling, or a setting put at the wrong level) used to be skipped,
/// leaving its setting at the default without a word. Both loaders now refuse the file and name it.
@Suite struct UnknownKeyTests {
    static func nodeError(_ extra: String) -> String {
        do {
            _ = try NodeConfig.load(path: try ConfigShapeTests.write(AnomalyConfigTests.base + extra, "node.yaml"))
            return ""
        } catch { return "\(error)" }
    }

    @Test func aMisspeltNodeSettingIsRefusedByName() {
        let error = Self.nodeError("operations: { listen: 127.0.0.1:0, conections_max: 512 }")
        #expect(error.contains("unknown key 'operations.conections_max'"), "\(error)")
        #expect(error.contains("node.yaml"), "\(error)")
        // Spelt right, the same section loads.
        #expect(Self.nodeError("operations: { listen: 127.0.0.1:0, connections_max: 512 }").isEmpty)
    }

    @Test func keysAreFoundAtEveryLevelAndInSequences() {
        #expect(Self.nodeError("log_specs: debug").contains("'log_specs'"))
        #expect(Self.nodeError("tls_cert: x.pem").contains("'tls_cert'"))
        let inRule = Self.nodeError(
            "anomaly: { rules: [ { name: x, kind: denied, threshold: 3, window_seconds: 60, action: alert, role: [doctor] } ] }"
        )
        #expect(inRule.contains("'anomaly.rules[0].role'"), "\(inRule)")
        let several = Self.nodeError("a1: 1\na2: 2\na3: 3\na4: 4\na5: 5\na6: 6\na7: 7")
        #expect(several.contains("unknown keys 'a1', 'a2', 'a3', 'a4', 'a5' and 2 more"), "\(several)")
    }

    /// What the checker must not refuse: an optional left empty, known keys in flow and block
    /// style, a list of scalars.
    @Test func knownKeysAndEmptyOptionalsPass() {
        #expect(Self.nodeError("audit_log:\ncrl_files: ~\nfhir:\n").isEmpty)
        #expect(
            Self.nodeError(
                "anomaly:\n  rules:\n    - name: x\n      kind: denied\n      threshold: 3\n      window_seconds: 60\n      action: alert\n      roles: [doctor, patient]\n"
            ).isEmpty)
    }

    /// `<<: *anchor` brings the anchor's keys, as the decoder reads them; a key given twice in one
    /// mapping (a section written twice) is refused, where only the last used to count.
    @Test func mergeKeysPassAndRepeatedKeysAreRefused() {
        let anchored = AnomalyConfigTests.base.replacingOccurrences(of: "tls: {", with: "tls: &pair {")
        func error(_ extra: String) -> String {
            do {
                _ = try NodeConfig.load(path: try ConfigShapeTests.write(anchored + extra, "node.yaml"))
                return ""
            } catch { return "\(error)" }
        }
        #expect(anchored != AnomalyConfigTests.base)
        #expect(error("signing: { <<: *pair }").isEmpty)
        #expect(error("signing: { <<: *pair, cert: other.pem }").isEmpty, "a key given over a merged one")
        #expect(error("signing: { <<: *pair, kye: x }").contains("unknown key 'signing.kye'"))
        let twice = error(
            "operations: { listen: 127.0.0.1:0, connections_max: 8 }\noperations: { listen: 127.0.0.1:1 }")
        #expect(twice.contains("'operations' given more than once"), "\(twice)")
        #expect(!twice.contains("unknown"), "\(twice)")
    }

    @Test func theShippedChannelFilesHaveNoUnknownKeysAndAMisspeltOneIsRefused() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("network-config")
        for name in ["channel.yaml", "channel-raft.yaml"] {
            let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            // The keys are checked before the certificates the file names are read (absent here).
            do { _ = try ChannelConfigFile.load(path: dir.appendingPathComponent(name).path) } catch {
                #expect(!"\(error)".contains("unknown"), "\(name): \(error)")
                #expect("\(error)".contains("cannot read"), "\(name): \(error)")
            }
            /// The shipped file with `original` replaced must fail to load, saying `reason`.
            func refused(replacing original: String, with replacement: String, saying reason: String) throws {
                let changed = text.replacingOccurrences(of: original, with: replacement)
                #expect(changed != text)
                let path = try ConfigShapeTests.write(changed, name)
                #expect {
                    try ChannelConfigFile.load(path: path)
                } throws: { "\($0)".contains(reason) }
            }
            // An empty publisher read as null would silently mean the orderer organisation.
            for empty in ["\"\"", "''", "~", "null", ""] {
                try refused(
                    replacing: "crl_publisher: sa", with: "crl_publisher: \(empty)", saying: "crl_publisher is empty")
            }
            try refused(
                replacing: "max_message_count", with: "max_messages_count",
                saying: "unknown key 'batch.max_messages_count'")
        }
    }
}
