import Crypto
import Foundation
import LedgerAudit
import LedgerCrypto
import Testing

@Suite struct AuditLogTests {
    func makeLog(_ dir: Scratch, lines: Int) throws -> String {
        let path = dir.path + "/audit.log"
        let log = try AuditLog(path: path)
        for i in 0..<lines {
            log.record(AuditEvent(actor: AuditActor(pid: "PID\(i)", org: "hospital-a", role: "doctor"), action: "record.read", target: "T\(i)", outcome: i % 3 == 0 ? .denied : .success, detail: "quote \" and newline \n ok"))
        }
        log.close()
        return path
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ path: String, _ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func anIntactLogVerifiesAndContinuesAcrossReopen() throws {
        let dir = Scratch("audit")
        let path = try makeLog(dir, lines: 5)
        let again = try AuditLog(path: path)
        again.record(AuditEvent(actor: .system, action: "x", target: "y", outcome: .success))
        let head = again.head
        again.close()
        let r = try AuditVerifier.verify(path: path, expectedHead: head)
        #expect(r.problems == [])
        #expect(r.lines == 6)
        // Each line is JSON with the required fields.
        let first = try JSONSerialization.jsonObject(with: Data(try lines(path)[0].utf8)) as! [String: Any]
        for k in ["ts", "actor", "action", "target", "outcome", "prev", "hash", "seq"] { #expect(first[k] != nil, "\(k)") }
        #expect((first["ts"] as! String).hasSuffix("Z"))
    }

    @Test func editsDeletionsAndReorderingAreDetected() throws {
        let dir = Scratch("audit-tamper")
        let path = try makeLog(dir, lines: 6)
        let original = try lines(path)

        try write(path, original.enumerated().map { $0.offset == 2 ? $0.element.replacingOccurrences(of: "\"outcome\":\"success\"", with: "\"outcome\":\"denied\"") : $0.element })
        #expect(try AuditVerifier.verify(path: path).problems.contains { $0.contains("line 3") && $0.contains("edited") })

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

@Suite struct CryptoTests {
    @Test func hybridEncryptionRoundTripsAndRejectsTheWrongKey() throws {
        let k256 = P256.KeyAgreement.PrivateKey()
        let sealed = try HybridEncryption.seal(Array("RID 123".utf8), toX963: Array(k256.publicKey.x963Representation), aad: [1])
        #expect(try HybridEncryption.open(sealed, with: k256, aad: [1]) == Array("RID 123".utf8))
        #expect(throws: HybridEncryption.Failure.wrongKey) { try HybridEncryption.open(sealed, with: P256.KeyAgreement.PrivateKey(), aad: [1]) }
        #expect(throws: HybridEncryption.Failure.wrongKey) { try HybridEncryption.open(sealed, with: k256, aad: [2]) }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(throws: HybridEncryption.Failure.wrongKey) { try HybridEncryption.open(tampered, with: k256, aad: [1]) }
        // Randomised: the same plaintext never gives the same ciphertext (so PIDs are unlinkable to RIDs).
        #expect(try HybridEncryption.seal(Array("RID 123".utf8), toX963: Array(k256.publicKey.x963Representation)) != sealed)
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
