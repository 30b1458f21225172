import Foundation
import LedgerOperations
import Logging
import Synchronization
import Testing

struct JSONLoggingTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ bytes: [UInt8]) { lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func linesAreJSONAtTheLevelsOfTheSpecChangedAtRunTime() throws {
        let out = Lines()
        let levels = LogLevels(try LogSpec(parsing: "info:raft=warning"))
        let node = Logger(label: "medledger.node") { JSONLogHandler(label: $0, levels: levels, write: out.append) }
        let raft = Logger(label: "medledger.raft") { JSONLogHandler(label: $0, levels: levels, write: out.append) }
        node.info("node ready \"quoted\"\nsecond line", metadata: ["tx": "abc"])
        raft.info("not written")
        raft.warning("written")
        levels.spec = try LogSpec(parsing: "warning")
        node.info("not written either")
        #expect(out.all.count == 2, "\(out.all)")
        let first = try #require(try JSONSerialization.jsonObject(with: Data(out.all[0].utf8)) as? [String: String])
        #expect(
            first["level"] == "info" && first["component"] == "node"
                && first["msg"] == "node ready \"quoted\"\nsecond line" && first["tx"] == "abc")
        #expect(
            first["ts"]?.hasSuffix("Z") == true && first["ts"]?.count == 24,
            "UTC with milliseconds: \(first["ts"] ?? "")")
        #expect(out.all.allSatisfy { $0.hasSuffix("}\n") && $0.filter { $0 == "\n" }.count == 1 }, "one line each")
    }

    @Test func specsParseAsFabricsAndBadOnesSayWhy() throws {
        #expect(
            try LogSpec(parsing: "debug:raft,orderer=warn:operations=error").description
                == "debug:operations=error:orderer=warning:raft=warning")
        #expect(try LogSpec(parsing: "raft=debug").description == "info:raft=debug")
        for (bad, why) in [
            ("", "1-1024"), ("loud", "unknown level \"loud\""), ("info:debug", "more than one default"),
            ("info:a=b=c", "neither"), ("info:=debug", "not a component"),
        ] {
            #expect(throws: LogSpec.Invalid.self) { try LogSpec(parsing: bad) }
            do { _ = try LogSpec(parsing: bad) } catch { #expect("\(error)".contains(why), "\(bad): \(error)") }
        }
    }
}
