import Crypto
import Foundation
@_spi(Testing) import LedgerAudit
import LedgerCrypto
import Synchronization
import Testing

@Suite struct AuditLogTests {
    func makeLog(_ dir: Scratch, lines: Int) throws -> String {
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path)
        for i in 0..<lines {
            try log.record(
                AuditEvent(
                    actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
                    target: "T\(i)", outcome: i % 3 == 0 ? .denied : .success, detail: "quote \" and newline \n ok"))
        }
        try log.close()
        return path
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ path: String, _ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func anchorsCatchACutTailAndARewriteThatTheChainAloneCannot() throws {
        let dir = Scratch("audit-anchors")
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path)
        var anchors: [UInt64: String] = [:]
        for i in 0..<6 {
            try log.record(
                AuditEvent(
                    actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
                    target: "T\(i)", outcome: .success))
            if i == 1 || i == 4 { anchors[log.position.seq] = log.position.head }
        }
        try log.close()
        #expect(anchors.keys.sorted() == [2, 5])
        #expect(try AuditVerifier.verify(path: path, anchors: anchors).isValid)
        let original = try lines(path)

        // The last two lines cut: the chain that is left is intact, but line 5 was anchored.
        try write(path, Array(original.prefix(4)))
        #expect(try AuditVerifier.verify(path: path).isValid, "the chain alone cannot see a cut tail")
        let cut = try AuditVerifier.verify(path: path, anchors: anchors)
        #expect(
            cut.problems == ["anchored line 5 is missing: the log ends at line 4 (its tail was cut)"], "\(cut.problems)"
        )

        // A whole new log of the same length, every hash recomputed: intact, but not what was anchored.
        try FileManager.default.removeItem(atPath: path)
        let forged = try AuditLog(path: path)
        for i in 0..<6 {
            try forged.record(
                AuditEvent(
                    actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
                    target: "T\(i)-hidden", outcome: .success))
        }
        try forged.close()
        #expect(try AuditVerifier.verify(path: path).isValid)
        let rewritten = try AuditVerifier.verify(path: path, anchors: anchors)
        #expect(
            rewritten.problems.count == 2
                && rewritten.problems.allSatisfy { $0.contains("differs from the one anchored on chain") },
            "\(rewritten.problems)")
    }

    @Test func anIntactLogVerifiesAndContinuesAcrossReopen() throws {
        let dir = Scratch("audit")
        let path = try makeLog(dir, lines: 5)
        let again = try AuditLog(path: path)
        try again.record(AuditEvent(actor: .system, action: "x", target: "y", outcome: .success))
        let head = again.head
        try again.close()
        let r = try AuditVerifier.verify(path: path, expectedHead: head)
        #expect(r.problems == [])
        #expect(r.lines == 6)
        // Each line is JSON with the required fields.
        let first = try JSONSerialization.jsonObject(with: Data(try lines(path)[0].utf8)) as! [String: Any]
        for k in ["ts", "actor", "action", "target", "outcome", "prev", "hash", "seq"] {
            #expect(first[k] != nil, "\(k)")
        }
        #expect((first["ts"] as! String).hasSuffix("Z"))
    }

    @Test func editsDeletionsAndReorderingAreDetected() throws {
        let dir = Scratch("audit-tamper")
        let path = try makeLog(dir, lines: 6)
        let original = try lines(path)

        try write(
            path,
            original.enumerated().map {
                $0.offset == 2
                    ? $0.element.replacingOccurrences(of: "\"outcome\":\"success\"", with: "\"outcome\":\"denied\"")
                    : $0.element
            })
        #expect(
            try AuditVerifier.verify(path: path).problems.contains { $0.contains("line 3") && $0.contains("edited") })

        try write(path, original.enumerated().filter { $0.offset != 3 }.map(\.element))
        #expect(try AuditVerifier.verify(path: path).problems.contains { $0.contains("line 4") })

        var swapped = original
        swapped.swapAt(1, 2)
        try write(path, swapped)
        #expect(!(try AuditVerifier.verify(path: path).isValid))

        try write(path, Array(original.dropLast()))
        let head = try AuditVerifier.verify(path: path).head
        #expect(try AuditVerifier.verify(path: path).isValid, "truncation alone is invisible without a head")
        try write(path, original)
        let fullHead = try AuditVerifier.verify(path: path).head
        try write(path, Array(original.dropLast()))
        #expect(!(try AuditVerifier.verify(path: path, expectedHead: fullHead).isValid))
        #expect(head != fullHead)
    }
}

/// Crash and disk failures: what the writer does when its file is torn or its disk refuses, and what
/// the verifier makes of it afterwards.
@Suite struct AuditLogFailureTests {
    func event(_ i: Int) -> AuditEvent {
        AuditEvent(
            actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
            target: "T\(i)", outcome: .success)
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func writeLog(_ path: String, lines: Int) throws {
        let log = try AuditLog(path: path)
        for i in 0..<lines { try log.record(event(i)) }
        try log.close()
    }

    /// A crash in the middle of writing line 5: the file ends in half a line.
    @Test func aTornTailIsKeptMarkedAndTheChainGoesOn() throws {
        let dir = Scratch("audit-torn")
        let path = dir.path + "/audit.log"
        try writeLog(path, lines: 5)
        let whole = try bytes(path)
        let line5Start = whole.dropLast().lastIndex(of: UInt8(ascii: "\n"))! + 1
        let cut = line5Start + (whole.count - line5Start) / 2
        try Data(whole[..<cut]).write(to: URL(fileURLWithPath: path))
        #expect(!(try AuditVerifier.verify(path: path).isValid), "an unmarked torn line is not passed as intact")

        let log = try AuditLog(path: path)
        let recovery = try #require(log.recovery)
        #expect(recovery.tornBytes == line5Start..<cut)
        #expect(recovery.sha256 == Hex.encode(Array(SHA256.hash(data: whole[line5Start..<cut]))))
        #expect(recovery.recordSeq == 5, "the recovery line takes the torn line's place in the sequence")
        try log.record(event(100))
        try log.record(event(101))
        let head = log.head
        try log.close()

        let after = try bytes(path)
        #expect(Array(after[..<cut]) == Array(whole[..<cut]), "the torn bytes are evidence: kept as found")
        let r = try AuditVerifier.verify(path: path, expectedHead: head)
        #expect(r.problems == [])
        #expect(r.lines == 8)  // 4 whole, the torn one, the recovery line, 2 new
        #expect(r.recoveries.count == 1)
        #expect(
            r.recoveries.first?.contains("line 5") == true
                && r.recoveries.first?.contains("\(line5Start)..<\(cut)") == true, "\(r.recoveries)")
        // Reopening a log that ends cleanly recovers nothing.
        let again = try AuditLog(path: path)
        #expect(again.recovery == nil)
        try again.close()
    }

    /// A crash while the recovery line itself was being written leaves a whole unreadable line and a
    /// new torn one; the next open marks both.
    @Test func aCrashDuringRecoveryIsRecoveredNextTime() throws {
        let dir = Scratch("audit-torn-twice")
        let path = dir.path + "/audit.log"
        try writeLog(path, lines: 3)
        let whole = try bytes(path)
        let torn = Array(#"{"action":"record.re"#.utf8) + [0x0A] + Array(#"{"action":"audit.rec"#.utf8)
        try Data(whole + torn).write(to: URL(fileURLWithPath: path))
        let log = try AuditLog(path: path)
        #expect(log.recovery?.tornBytes == whole.count..<(whole.count + torn.count))
        try log.close()
        let r = try AuditVerifier.verify(path: path)
        #expect(r.problems == [])
        #expect(r.recoveries.first?.contains("lines 4–5") == true, "\(r.recoveries)")
    }

    @Test func tamperingStaysVisibleAroundARecovery() throws {
        let dir = Scratch("audit-torn-tamper")
        let path = dir.path + "/audit.log"
        try writeLog(path, lines: 6)
        let whole = try bytes(path)
        try Data(whole.dropLast(20)).write(to: URL(fileURLWithPath: path))
        let log = try AuditLog(path: path)
        try log.record(event(7))
        try log.close()
        let recovered = try bytes(path)
        #expect(try AuditVerifier.verify(path: path).isValid)

        // An edited line in the middle: still an edit.
        var edited = String(decoding: recovered, as: UTF8.self)
        edited = edited.replacingOccurrences(of: "\"target\":\"T2\"", with: "\"target\":\"T9\"")
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        let r1 = try AuditVerifier.verify(path: path)
        #expect(r1.problems.contains { $0.contains("line 3") && $0.contains("edited") }, "\(r1.problems)")

        // The torn bytes changed after the recovery named them: not passed as a crash.
        var changedTorn = recovered
        let tornStart = whole.dropLast().lastIndex(of: UInt8(ascii: "\n"))! + 1
        changedTorn[tornStart + 3] ^= 0x01
        try Data(changedTorn).write(to: URL(fileURLWithPath: path))
        let r2 = try AuditVerifier.verify(path: path)
        #expect(r2.problems.contains { $0.contains("does not match the bytes it names") }, "\(r2.problems)")
        #expect(r2.problems.contains { $0.contains("line 6") && $0.contains("does not parse") }, "\(r2.problems)")

        // A junk line inserted in the middle with no recovery line for it.
        var lines = String(decoding: recovered, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        lines.insert("{\"action\":\"x\"", at: 2)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(
            try AuditVerifier.verify(path: path).problems.contains {
                $0.contains("line 3") && $0.contains("does not parse")
            })
    }

    @Test func aFileThatIsNotAnAuditLogIsRefusedNotTakenOver() throws {
        let dir = Scratch("audit-foreign")
        let path = dir.write("notes.txt", (1...10).map { "note \($0)" }.joined(separator: "\n") + "\n")
        #expect(throws: AuditLog.Failure.self) { try AuditLog(path: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasSuffix("note 10\n"), "nothing appended")
        #expect(throws: AuditLog.Failure.self) { try AuditLog(path: dir.path) }  // a directory
    }

    @Test func aSecondWriterIsRefused() throws {
        let dir = Scratch("audit-two")
        let log = try AuditLog(path: dir.path + "/audit.log")
        #expect(throws: AuditLog.Failure.inUse(path: dir.path + "/audit.log")) {
            try AuditLog(path: dir.path + "/audit.log")
        }
        try log.close()
        try AuditLog(path: dir.path + "/audit.log").close()
    }

    /// The disk refuses (ENOSPC, with /dev/full put under the log's descriptor): `record` throws a
    /// clear error instead of trapping, nothing half-written stays, and once the disk takes writes
    /// again the chain goes on intact.
    @Test func aWriteErrorIsThrownAndTheLogGoesOnAfterwards() throws {
        let dir = Scratch("audit-full")
        let path = dir.path + "/audit.log"
        let failures = Mutex<[AuditLog.Failure]>([])
        let log = try AuditLog(path: path, policy: .everyLine) { f in failures.withLock { $0.append(f) } }
        try log.record(event(1))
        let fd = log.descriptorForTesting
        let saved = dup(fd)
        let full = open("/dev/full", O_WRONLY)
        #expect(saved >= 0 && full >= 0)
        #expect(dup2(full, fd) == fd)
        do {
            try log.record(event(2), durable: true)
            Issue.record("a write to a full disk succeeded")
        } catch let f as AuditLog.Failure {
            guard case .writeFailed = f else {
                Issue.record("wrong failure \(f)")
                return
            }
            #expect(f.description.contains("No space left on device") && f.description.contains(path), "\(f)")
        }
        #expect(failures.withLock { $0.count } == 1, "the failure handler heard of it")
        #expect(dup2(saved, fd) == fd)
        close(saved)
        close(full)
        try log.record(event(3))
        try log.close()
        let r = try AuditVerifier.verify(path: path)
        #expect(r.problems == [])
        #expect(r.lines == 2, "the refused line is not in the log")
    }

    /// fsync refused (EINVAL on /dev/null): the log stops taking lines, since after a failed fsync the
    /// kernel may have dropped the unwritten pages and a later success would prove nothing.
    @Test func aFailedSyncStopsTheLog() throws {
        let dir = Scratch("audit-nosync")
        let log = try AuditLog(path: dir.path + "/audit.log")
        let fd = log.descriptorForTesting
        let saved = dup(fd)
        let null = open("/dev/null", O_WRONLY)
        #expect(dup2(null, fd) == fd)
        let failure = #expect(throws: AuditLog.Failure.self) { try log.record(event(1), durable: true) }
        if case .syncFailed? = failure {
        } else {
            Issue.record("expected syncFailed, got \(String(describing: failure))")
        }
        #expect(throws: AuditLog.Failure.self) { try log.record(event(2)) }
        #expect(dup2(saved, fd) == fd)
        close(saved)
        close(null)
        #expect(throws: AuditLog.Failure.self) { try log.record(event(3)) }
        try? log.close()
        #expect(throws: AuditLog.Failure.closed(path: dir.path + "/audit.log")) { try log.record(event(4)) }
    }

    @Test func linesAreSyncedInGroupsOnRequestAndOnATimer() async throws {
        let dir = Scratch("audit-group")
        let grouped = try AuditLog(path: dir.path + "/a.log", policy: AuditLog.SyncPolicy(linesMax: 4, interval: .zero))
        for i in 0..<3 { try grouped.record(event(i)) }
        #expect(grouped.pendingLines == 3)
        try grouped.record(event(3))
        #expect(grouped.pendingLines == 0, "the fourth line flushes the group")
        try grouped.record(event(4))
        try grouped.record(event(5), durable: true)
        #expect(grouped.pendingLines == 0, "a durable line flushes everything before it")
        try grouped.record(event(6))
        try grouped.close()
        #expect(try AuditVerifier.verify(path: dir.path + "/a.log").lines == 7)

        let timed = try AuditLog(
            path: dir.path + "/b.log", policy: AuditLog.SyncPolicy(linesMax: 1000, interval: .milliseconds(20)))
        try timed.record(event(0))
        var waited = 0
        while timed.pendingLines > 0, waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(timed.pendingLines == 0, "the background flush ran")
        try timed.close()
    }
}

/// Regression (found by fuzzing the audit-log reader): a last line whose seq is -1, a huge number or
/// a fraction must be refused or recovered as damage, never make the next seq overflow and trap.
@Suite struct AuditLineSeqTests {
    @Test func aSeqThatCannotContinueIsNotALine() throws {
        for seq in ["-1", "1e300", "18446744073709551615", "2.5"] {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("audit-seq-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("audit.log").path
            let line =
                #"{"action":"x","prev":"\#(String(repeating: "0", count: 64))","seq":\#(seq),"hash":"\#(String(repeating: "a", count: 64))"}"#
                + "\n"
            try Data(line.utf8).write(to: URL(fileURLWithPath: path))
            _ = try? AuditVerifier.verify(path: path)
            if let log = try? AuditLog(path: path) {
                try? log.record(AuditEvent(actor: .system, action: "after", target: "-", outcome: .success))
                try? log.close()
            }
        }
    }
}

@Suite struct CryptoTests {
    @Test func hybridEncryptionRoundTripsAndRejectsTheWrongKey() throws {
        let k256 = P256.KeyAgreement.PrivateKey()
        let sealed = try HybridEncryption.seal(
            Array("RID 123".utf8), toX963: Array(k256.publicKey.x963Representation), aad: [1])
        #expect(try HybridEncryption.open(sealed, with: k256, aad: [1]) == Array("RID 123".utf8))
        #expect(throws: HybridEncryption.Failure.wrongKey) {
            try HybridEncryption.open(sealed, with: P256.KeyAgreement.PrivateKey(), aad: [1])
        }
        #expect(throws: HybridEncryption.Failure.wrongKey) { try HybridEncryption.open(sealed, with: k256, aad: [2]) }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(throws: HybridEncryption.Failure.wrongKey) { try HybridEncryption.open(tampered, with: k256, aad: [1]) }
        // Randomised: the same plaintext never gives the same ciphertext (so PIDs are unlinkable to RIDs).
        #expect(
            try HybridEncryption.seal(Array("RID 123".utf8), toX963: Array(k256.publicKey.x963Representation)) != sealed
        )
        let k384 = P384.KeyAgreement.PrivateKey()
        let s384 = try HybridEncryption.seal([9, 9], toX963: Array(k384.publicKey.x963Representation))
        #expect(try HybridEncryption.open(s384, with: k384) == [9, 9])
    }

    @Test func secretBoxBindsContext() throws {
        let box = try SecretBox(encoded: SecretBox.generateEncodedKey())
        let sealed = try box.seal(Array("secret".utf8), context: "rid:A")
        #expect(try box.open(sealed, context: "rid:A") == Array("secret".utf8))
        #expect(throws: SecretBox.Failure.cannotOpen(context: "rid:B")) { try box.open(sealed, context: "rid:B") }
        #expect(throws: SecretBox.Failure.self) { try SecretBox(encoded: "too short") }
        #expect(throws: SecretBox.Failure.noKey) { try SecretBox.load(keyFile: nil, environment: [:]) }
    }
}

@Suite struct AuditRotationTests {
    func event(_ i: Int) -> AuditEvent {
        AuditEvent(
            actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
            target: "T\(i)", outcome: .success)
    }

    @Test func theChainRunsOnAcrossRotatedFilesAndAReopen() throws {
        let dir = Scratch("audit-rotate")
        let path = dir.path + "/audit.log"
        let rotation = AuditLog.Rotation(maxBytes: 1_000, keepFiles: 100)
        var log = try AuditLog(path: path, rotation: rotation)
        for i in 0..<20 { try log.record(event(i)) }
        try log.close()
        let rotated = AuditFiles.rotated(path)
        #expect(rotated.count >= 3, "\(rotated)")
        #expect(rotated.first == path + ".000000000001")
        // Each file ends with whole lines, and each later file begins where its name says.
        let report = try AuditVerifier.verify(path: path)
        #expect(report.isValid, "\(report.problems)")
        #expect(report.lines == 20 && report.files == rotated.count + 1)

        // A crash right after a rotation leaves an empty active file: the chain goes on from the
        // newest rotated file.
        try Data().write(to: URL(fileURLWithPath: path))
        log = try AuditLog(path: path, rotation: rotation)
        try log.record(event(99))
        #expect(log.position.seq == 21)
        try log.close()
        #expect(try AuditVerifier.verify(path: path).isValid)
    }

    @Test func retentionDeletesTheOldestAndTheRestStillVerifies() throws {
        let dir = Scratch("audit-retain")
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path, rotation: AuditLog.Rotation(maxBytes: 600, keepFiles: 2))
        var anchors: [UInt64: String] = [:]
        for i in 0..<30 {
            try log.record(event(i))
            if i % 5 == 4 { anchors[log.position.seq] = log.position.head }
        }
        try log.close()
        #expect(AuditFiles.rotated(path).count == 2)
        let report = try AuditVerifier.verify(path: path, anchors: anchors)
        #expect(report.isValid, "\(report.problems)")
        #expect(report.firstSeq > 1 && report.lines == 30 - Int(report.firstSeq) + 1)
        #expect(report.anchorsBeforeKept == anchors.keys.filter { $0 < report.firstSeq }.count)
    }

    @Test func cuttingOrRewritingARotatedFileShows() throws {
        let dir = Scratch("audit-rotate-tamper")
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path, rotation: AuditLog.Rotation(maxBytes: 800, keepFiles: 100))
        var anchors: [UInt64: String] = [:]
        for i in 0..<24 {
            try log.record(event(i))
            anchors[log.position.seq] = log.position.head
        }
        try log.close()
        let files = AuditFiles.rotated(path)
        #expect(files.count >= 3)

        // The first line of the oldest file cut: its name no longer matches, so retention cannot be claimed.
        let oldest = try String(contentsOfFile: files[0], encoding: .utf8)
        try String(oldest.drop { $0 != "\n" }.dropFirst()).write(toFile: files[0], atomically: true, encoding: .utf8)
        let cut = try AuditVerifier.verify(path: path)
        #expect(
            cut.problems.contains { $0.contains("its name says it begins at line 1, but its first line is 2") },
            "\(cut.problems)")
        try oldest.write(toFile: files[0], atomically: true, encoding: .utf8)

        // A middle file removed: the next file does not follow.
        let middle = try Data(contentsOf: URL(fileURLWithPath: files[1]))
        try FileManager.default.removeItem(atPath: files[1])
        let gap = try AuditVerifier.verify(path: path)
        #expect(gap.problems.contains { $0.contains("does not follow the line before it") }, "\(gap.problems)")
        try middle.write(to: URL(fileURLWithPath: files[1]))
        #expect(try AuditVerifier.verify(path: path, anchors: anchors).isValid)

        // The newest rotated file deleted and the active one emptied (a cut tail across files): the
        // chain that is left is intact; only the anchors show it.
        try FileManager.default.removeItem(atPath: files[files.count - 1])
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(try AuditVerifier.verify(path: path).isValid)
        #expect(try !AuditVerifier.verify(path: path, anchors: anchors).isValid)
    }
}

@Suite struct AuditSearchTests {
    @Test func aPatientsLinesComeNewestFirstAcrossRotatedFilesAndNoOneElses() throws {
        let dir = Scratch("audit-search")
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path, rotation: AuditLog.Rotation(maxBytes: 1_500, keepFiles: 100))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for i in 0..<30 {
            // Patient P1 on every third line; P10 (a PID that P1 is a prefix of) on the others' half.
            let target = i % 3 == 0 ? "P1" : i % 2 == 0 ? "P10" : "-"
            let detail =
                i == 4 ? "mentions \"target\":\"P1\", in text" : "listIndexRecords on channel records, status 200"
            try log.record(
                AuditEvent(
                    actor: AuditActor(pid: "DOC\(i)", org: "hospital-a", role: "doctor"), action: "record.read",
                    target: target, outcome: .success, detail: detail), at: start.addingTimeInterval(Double(i)))
        }
        try log.close()
        #expect(AuditFiles.rotated(path).count >= 2)
        let all = try AuditSearch.entries(about: "P1", in: path, limit: 1_000)
        #expect(all.entries.map(\.actor.pid) == stride(from: 27, through: 0, by: -3).map { "DOC\($0)" })
        #expect(!all.truncated && all.entries.allSatisfy { $0.target == "P1" && $0.action == "record.read" })
        let two = try AuditSearch.entries(about: "P1", in: path, limit: 2)
        #expect(two.entries.map(\.actor.pid) == ["DOC27", "DOC24"] && two.truncated)
        let since = ISO8601DateFormatter.string(
            from: start.addingTimeInterval(20), timeZone: TimeZone(identifier: "UTC")!,
            formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        let recent = try AuditSearch.entries(about: "P1", in: path, since: since, limit: 100)
        #expect(recent.entries.map(\.actor.pid) == ["DOC27", "DOC24", "DOC21"])
        #expect(try AuditSearch.entries(about: "nobody", in: path, limit: 10).entries.isEmpty)
        let others = try AuditSearch.entries(about: "P1", in: path, limit: 100, excludingActor: "DOC27")
        #expect(others.entries.first?.actor.pid == "DOC24" && others.entries.count == all.entries.count - 1)
    }
}
