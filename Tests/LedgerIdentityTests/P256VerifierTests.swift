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
            import os
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
        guard let cases = try Self.pythonCases(script) else { return }
        #expect(cases.count == 4 * 30 * 5)
        let verifier = Self.tabled()
        // Python accepts the signature and its high-s twin, nothing altered.
        #expect(Self.agree(cases, verifier) == 4 * 30 * 2)
        #expect(verifier.tableCount == 4)
    }

    /// Signatures no signer would make, built from the curve equations in Python: one whose R has
    /// x ≥ n (valid: r is x mod n, the reduction both libraries make), the same r and s for another
    /// message (invalid: the table path's second comparison, with r + n, must fail), and one whose R
    /// is the point at infinity (invalid). Python's `cryptography` gives the verdicts; swift-crypto and the table path
    /// must give the same.
    @Test func constructedEdgeSignaturesAgreeWithPythonAndSwiftCrypto() throws {
        let script = """
            import hashlib, secrets
            p = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
            n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            a = p - 3
            b = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
            G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
                 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
            def add(P, Q):
                if P is None: return Q
                if Q is None: return P
                if P[0] == Q[0] and (P[1] + Q[1]) % p == 0: return None
                if P == Q: l = (3 * P[0] * P[0] + a) * pow(2 * P[1], -1, p) % p
                else: l = (Q[1] - P[1]) * pow(Q[0] - P[0], -1, p) % p
                x = (l * l - P[0] - Q[0]) % p
                return (x, (l * (P[0] - x) - P[1]) % p)
            def mul(k, P):
                R = None
                while k:
                    if k & 1: R = add(R, P)
                    P = add(P, P)
                    k >>= 1
                return R
            def digest(m): return int.from_bytes(hashlib.sha256(m).digest(), "big")
            def case(Q, m, r, s):
                point = b"\\x04" + Q[0].to_bytes(32, "big") + Q[1].to_bytes(32, "big")
                pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
                try:
                    pub.verify(encode_dss_signature(r, s), m, ec.ECDSA(hashes.SHA256()))
                    ok = True
                except InvalidSignature:
                    ok = False
                return {"point": point.hex(), "message": m.hex(), "raw": r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex(), "valid": ok}
            out = []
            # x(R) >= n: R on the curve with x in [n + 1, p), any s; Q solved from R = u1 G + u2 Q.
            x = n + 1
            while True:
                y2 = (x ** 3 + a * x + b) % p
                y = pow(y2, (p + 1) // 4, p)
                if y * y % p == y2: break
                x += 1
            R = (x, y)
            m = b"x(R) is at least n"
            s = secrets.randbelow(n - 1) + 1
            r = x - n
            w = pow(s, -1, n)
            u1, u2 = digest(m) * w % n, r * w % n
            minus_u1G = mul(u1, G)
            minus_u1G = (minus_u1G[0], p - minus_u1G[1])
            Q = mul(pow(u2, -1, n), add(R, minus_u1G))
            out.append(case(Q, m, r, s))
            # The same r and s for another message: r + n < p, and neither r nor r + n is x(R).
            out.append(case(Q, b"x(R) is at least n, altered", r, s))
            # R at infinity: r = -e / d, so that e + r d = 0 mod n.
            d = secrets.randbelow(n - 1) + 1
            m = b"R is the point at infinity"
            r = (-digest(m)) * pow(d, -1, n) % n
            out.append(case(mul(d, G), m, r, secrets.randbelow(n - 1) + 1))
            print(json.dumps(out))
            """
        guard let cases = try Self.pythonCases(script) else { return }
        #expect(cases.map(\.valid) == [true, false, false])
        let verifier = Self.tabled()
        #expect(Self.agree(cases, verifier) == 1)
        #expect(verifier.tableCount == 2)
    }

    struct PythonCase: Decodable {
        var point: String
        var message: String
        var raw: String
        var valid: Bool
    }

    /// Runs `script` after the imports every script here needs; its JSON output, or nil (and a
    /// recorded failure) when Python's `cryptography` is missing.
    static func pythonCases(_ script: String) throws -> [PythonCase]? {
        let imports = """
            import json, sys
            try:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import ec
                from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
                from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
                from cryptography.exceptions import InvalidSignature
            except ImportError:
                sys.exit(3)

            """
        let run = try runTool(["python3", "-c", imports + script])
        if run.status == 3 {
            Issue.record("Python `cryptography` is not importable — this test needs it (pip install cryptography)")
            return nil
        }
        #expect(run.status == 0, "\(run.err)")
        return try JSONDecoder().decode([PythonCase].self, from: Data(run.out.utf8))
    }

    /// Checks that swift-crypto and `verifier`'s tables both reach each case's verdict; how many
    /// were valid.
    static func agree(_ cases: [PythonCase], _ verifier: P256Verifier) -> Int {
        var valid = 0
        for c in cases {
            guard let key = try? P256.Signing.PublicKey(x963Representation: hexBytes(c.point)),
                let signature = try? P256.Signing.ECDSASignature(rawRepresentation: hexBytes(c.raw))
            else {
                Issue.record("Python printed a point or signature that does not parse: \(c.point) \(c.raw)")
                continue
            }
            let message = hexBytes(c.message)
            #expect(key.isValidSignature(signature, for: message) == c.valid, "swift-crypto, r‖s \(c.raw)")
            #expect(
                verifier.isValidSignature(signature, for: message, publicKey: key) == c.valid,
                "table, point \(c.point) message \(c.message) r‖s \(c.raw)")
            #expect(verifier.hasTable(key))
            if c.valid { valid += 1 }
        }
        return valid
    }

    @Test func aKeyGetsItsTableAfterEnoughUsesAndOnlyATableThatServedItsBuildGivesWay() throws {
        let verifier = P256Verifier(tableAfter: 3, tablesMax: 2)
        let keys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let use = Self.user(verifier, message: Array("uses".utf8))
        try use(keys[0], 2)
        #expect(!verifier.hasTable(keys[0].publicKey))
        try use(keys[0], 1)
        #expect(verifier.hasTable(keys[0].publicKey))
        try use(keys[1], 3)
        try use(keys[0], 1)
        // Neither table has served its build back, nor sat idle: the third key waits.
        try use(keys[2], 3)
        #expect(!verifier.hasTable(keys[2].publicKey))
        #expect(verifier.tableCount == 2)
        // Both serve their builds back; keys[0] is the more recently used.
        try use(keys[1], 3)
        try use(keys[0], 3)
        try use(keys[2], 3)
        #expect(verifier.tableCount == 2)
        #expect(verifier.hasTable(keys[0].publicKey))
        #expect(!verifier.hasTable(keys[1].publicKey))
        #expect(verifier.hasTable(keys[2].publicKey))
    }

    @Test func aTableUnusedForLongGivesWayEvenIfItNeverServedItsBuild() throws {
        // Idle means unused for tablesMax × tableAfter = 4 verifications.
        let verifier = P256Verifier(tableAfter: 2, tablesMax: 2)
        let keys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let use = Self.user(verifier, message: Array("idle".utf8))
        try use(keys[0], 2)
        try use(keys[1], 2)
        #expect(verifier.tableCount == 2)
        try use(keys[1], 4)  // keys[1] serves its build back and more; keys[0]'s table sits idle
        try use(keys[2], 2)
        #expect(!verifier.hasTable(keys[0].publicKey))
        #expect(verifier.hasTable(keys[1].publicKey))
        #expect(verifier.hasTable(keys[2].publicKey))
    }

    @Test func useCountsAreBoundedAndAKeyInSteadyUseKeepsSomeOfItsCount() throws {
        let verifier = P256Verifier(tableAfter: 4, tablesMax: 4, countedMax: 2)
        let keys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let use = Self.user(verifier, message: Array("counts".utf8))
        try use(keys[0], 3)
        try use(keys[1], 1)
        // A third key: the counts are halved (3 → 1, 1 → gone) to make room.
        try use(keys[2], 1)
        try use(keys[0], 2)
        #expect(!verifier.hasTable(keys[0].publicKey))
        try use(keys[0], 1)  // 1 kept + 3 more: its table now, not after 4
        #expect(verifier.hasTable(keys[0].publicKey))
        try use(keys[1], 3)
        #expect(!verifier.hasTable(keys[1].publicKey))
    }

    /// Verifies `times` fresh signatures of `message` by a key, each expected valid.
    static func user(
        _ verifier: P256Verifier, message: [UInt8]
    ) -> (P256.Signing.PrivateKey, Int) throws -> Void {
        { key, times in
            for _ in 0..<times {
                let signature = try key.signature(for: message)
                #expect(verifier.isValidSignature(signature, for: message, publicKey: key.publicKey))
            }
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
