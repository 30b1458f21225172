import Crypto
import Dispatch
import Foundation
import LedgerCrypto
import Synchronization
import Testing

/// The verifier's table path against swift-crypto's verification (BoringSSL) and Python's
/// `cryptography` (OpenSSL): it must accept exactly what they accept.
@Suite struct P256VerifierTests {
    /// n, the order of P-256, big-endian.
    static let order: [UInt8] = hexBytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")

    /// A verifier that gives every key a table at once, so each call below takes the table path.
    static func tabled() -> P256Verifier { P256Verifier(tableAfter: 1, tablesMax: 8) }

    @Test func agreesWithSwiftCryptoOnValidAlteredAndEdgeSignatures() throws {
        let verifier = Self.tabled()
        var rng = SystemRandomNumberGenerator()
        var compared = 0
        var accepted = 0
        for k in 0..<6 {
            let key = P256.Signing.PrivateKey()
            let other = P256.Signing.PrivateKey()
            for i in 0..<40 {
                let message =
                    Array("record \(k)/\(i)".utf8)
                    + (0..<Int.random(in: 0..<300, using: &rng)).map { _ in
                        UInt8.random(in: 0...255, using: &rng)
                    }
                let raw = Array(try key.signature(for: message).rawRepresentation)
                var cases: [(raw: [UInt8], message: [UInt8], key: P256.Signing.PublicKey)] = [
                    (raw, message, key.publicKey),
                    (raw, message + [0], key.publicKey),
                    (raw, message, other.publicKey),
                    (Self.highS(raw), message, key.publicKey),
                ]
                var flipped = raw
                flipped[Int.random(in: 0..<64, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                cases.append((flipped, message, key.publicKey))
                for c in cases {
                    let signature = try P256.Signing.ECDSASignature(rawRepresentation: c.raw)
                    let theirs = c.key.isValidSignature(signature, for: c.message)
                    let ours = verifier.isValidSignature(signature, for: c.message, publicKey: c.key)
                    #expect(ours == theirs, "case \(k)/\(i): r‖s \(Hex.encode(c.raw))")
                    compared += 1
                    if ours { accepted += 1 }
                }
            }
            #expect(verifier.hasTable(key.publicKey))
        }
        // Each round: the signature and its high-s twin verify; the altered message, the wrong key
        // and the flipped bit do not.
        #expect(compared == 6 * 40 * 5)
        #expect(accepted == 6 * 40 * 2)
    }

    @Test func refusesOutOfRangeScalarsAsSwiftCryptoDoes() throws {
        let verifier = Self.tabled()
        let key = P256.Signing.PrivateKey()
        let message = Array("edge".utf8)
        let good = Array(try key.signature(for: message).rawRepresentation)
        let r = Array(good[0..<32])
        let s = Array(good[32..<64])
        let zero = [UInt8](repeating: 0, count: 32)
        let ones = [UInt8](repeating: 0xFF, count: 32)
        // 1 + n: equal to 1 modulo n, but out of range all the same.
        let onePlusN = try #require(Self.add([UInt8](repeating: 0, count: 31) + [1], Self.order))
        let edges = [zero + s, r + zero, Self.order + s, r + Self.order, ones + s, r + ones, zero + zero, onePlusN + s]
        for raw in edges {
            let signature = try P256.Signing.ECDSASignature(rawRepresentation: raw)
            #expect(!key.publicKey.isValidSignature(signature, for: message))
            #expect(!verifier.isValidSignature(signature, for: message, publicKey: key.publicKey))
        }
        #expect(verifier.hasTable(key.publicKey))
        #expect(
            verifier.isValidSignature(
                try P256.Signing.ECDSASignature(rawRepresentation: good), for: message, publicKey: key.publicKey))
    }

    @Test func acceptsExactlyWhatPythonCryptographyAccepts() throws {
        // Python signs (and alters) with its own keys; we verify with tables and must agree with the
        // verdict Python's OpenSSL reached.
        let script = """
            import json, os, sys
            try:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import ec
                from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
                from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
                from cryptography.exceptions import InvalidSignature
            except ImportError:
                sys.exit(3)
            n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            out = []
            for k in range(4):
                key = ec.generate_private_key(ec.SECP256R1())
                pub = key.public_key()
                point = pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint).hex()
                for i in range(30):
                    msg = os.urandom(i * 7)
                    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
                    for rr, ss, m in [(r, s, msg), (r, n - s, msg), (r, s ^ 1, msg), (r ^ 4, s, msg), (r, s, msg + b"x")]:
                        try:
                            pub.verify(encode_dss_signature(rr, ss), m, ec.ECDSA(hashes.SHA256()))
                            ok = True
                        except InvalidSignature:
                            ok = False
                        out.append({"point": point, "message": m.hex(), "raw": rr.to_bytes(32, "big").hex() + ss.to_bytes(32, "big").hex(), "valid": ok})
            print(json.dumps(out))
            """
        let run = try runTool(["python3", "-c", script])
        if run.status == 3 {
            Issue.record("Python `cryptography` is not importable — this test needs it (pip install cryptography)")
            return
        }
        #expect(run.status == 0, "\(run.err)")
        let cases = try JSONDecoder().decode([PythonCase].self, from: Data(run.out.utf8))
        #expect(cases.count == 4 * 30 * 5)
        let verifier = Self.tabled()
        var valid = 0
        for c in cases {
            let key = try P256.Signing.PublicKey(x963Representation: hexBytes(c.point))
            let signature = try P256.Signing.ECDSASignature(rawRepresentation: hexBytes(c.raw))
            let ours = verifier.isValidSignature(signature, for: hexBytes(c.message), publicKey: key)
            #expect(ours == c.valid, "point \(c.point) message \(c.message) r‖s \(c.raw)")
            if c.valid { valid += 1 }
        }
        // Python accepts the signature and its high-s twin, nothing altered.
        #expect(valid == 4 * 30 * 2)
        #expect(verifier.tableCount == 4)
    }

    struct PythonCase: Decodable {
        var point: String
        var message: String
        var raw: String
        var valid: Bool
    }

    @Test func aKeyGetsItsTableAfterEnoughUsesAndTheLeastRecentlyUsedGoesFirst() throws {
        let verifier = P256Verifier(tableAfter: 3, tablesMax: 2)
        let keys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let message = Array("uses".utf8)
        func use(_ key: P256.Signing.PrivateKey, _ times: Int) throws {
            for _ in 0..<times {
                #expect(
                    verifier.isValidSignature(try key.signature(for: message), for: message, publicKey: key.publicKey))
            }
        }
        try use(keys[0], 2)
        #expect(!verifier.hasTable(keys[0].publicKey))
        try use(keys[0], 1)
        #expect(verifier.hasTable(keys[0].publicKey))
        try use(keys[1], 3)
        try use(keys[0], 1)  // keys[0] is now the more recently used
        try use(keys[2], 3)
        #expect(verifier.tableCount == 2)
        #expect(verifier.hasTable(keys[0].publicKey))
        #expect(!verifier.hasTable(keys[1].publicKey))
        #expect(verifier.hasTable(keys[2].publicKey))
    }

    @Test func useCountsAreBounded() throws {
        let verifier = P256Verifier(tableAfter: 2, tablesMax: 4, countedMax: 2)
        let keys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let message = Array("counts".utf8)
        for key in keys {
            #expect(verifier.isValidSignature(try key.signature(for: message), for: message, publicKey: key.publicKey))
        }
        // The third key's count cleared the first two: its second use gives it a table, while one
        // more use of each of the others is not yet enough for them.
        #expect(
            verifier.isValidSignature(try keys[2].signature(for: message), for: message, publicKey: keys[2].publicKey))
        #expect(verifier.hasTable(keys[2].publicKey))
        for key in keys.prefix(2) {
            #expect(verifier.isValidSignature(try key.signature(for: message), for: message, publicKey: key.publicKey))
            #expect(!verifier.hasTable(key.publicKey))
        }
    }

    @Test func concurrentVerificationsWhileTheTableIsBuiltAllAgree() throws {
        let verifier = P256Verifier(tableAfter: 5, tablesMax: 2)
        let key = P256.Signing.PrivateKey()
        let messages = (0..<64).map { Array("parallel \($0)".utf8) }
        let signatures = try messages.map { try key.signature(for: $0) }
        let wrong = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 256) { i in
            let j = i % messages.count
            // Odd iterations check the signature against the next message: it must fail.
            let message = i % 2 == 0 ? messages[j] : messages[(j + 1) % messages.count]
            let ok = verifier.isValidSignature(signatures[j], for: message, publicKey: key.publicKey)
            if ok != (i % 2 == 0) { wrong.add(1, ordering: .relaxed) }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(verifier.hasTable(key.publicKey))
    }

    /// r‖(n − s): the other valid signature of the same message (ECDSA is malleable; BoringSSL,
    /// OpenSSL and the ledger accept both).
    static func highS(_ raw: [UInt8]) -> [UInt8] {
        Array(raw[0..<32]) + subtract(order, Array(raw[32..<64]))
    }

    /// a − b for 32-byte big-endian a ≥ b.
    static func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var borrow = 0
        for i in (0..<32).reversed() {
            var d = Int(a[i]) - Int(b[i]) - borrow
            borrow = d < 0 ? 1 : 0
            if d < 0 { d += 256 }
            out[i] = UInt8(d)
        }
        return out
    }

    /// a + b for 32-byte big-endian numbers, nil if the sum does not fit 32 bytes.
    static func add(_ a: [UInt8], _ b: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        var carry = 0
        for i in (0..<32).reversed() {
            let s = Int(a[i]) + Int(b[i]) + carry
            out[i] = UInt8(s & 0xFF)
            carry = s >> 8
        }
        return carry == 0 ? out : nil
    }
}

/// Bytes of hex the test itself wrote (or Python printed): a failure to decode is a test bug.
private func hexBytes(_ s: String) -> [UInt8] { Hex.decode(s)! }
