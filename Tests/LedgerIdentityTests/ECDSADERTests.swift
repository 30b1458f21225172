import Crypto
import Foundation
import LedgerCrypto
import Testing

/// The ledger's own DER codec for P-256 signatures, against swift-crypto's ASN.1 one and openssl.
@Suite struct ECDSADERTests {
    /// r‖s values at the edges: leading zero bytes (shorter integers), top bits set (a zero byte
    /// prepended), zero itself, all ones.
    static let edgeRaws: [[UInt8]] = {
        let high = [UInt8](repeating: 0xFF, count: 32)
        let small = [UInt8](repeating: 0, count: 31) + [1]
        let zero = [UInt8](repeating: 0, count: 32)
        let midZero = [0x00, 0x7F] + [UInt8](repeating: 0xAB, count: 30)
        let topBit = [0x80] + [UInt8](repeating: 0, count: 31)
        return [high + small, small + high, zero + topBit, midZero + zero, topBit + midZero, high + high]
    }()

    @Test func encodingMatchesSwiftCryptoAndReadsBack() throws {
        let key = P256.Signing.PrivateKey()
        var signatures = try (0..<300).map { i in try key.signature(for: Array("message \(i)".utf8)) }
        signatures += try Self.edgeRaws.map { try P256.Signing.ECDSASignature(rawRepresentation: $0) }
        for signature in signatures {
            let ours = ECDSADER.encode(signature)
            #expect(ours == Array(signature.derRepresentation))
            #expect(ECDSADER.rawP256(ours) == Array(signature.rawRepresentation))
            #expect(ECDSADER.p256Signature(ours)?.rawRepresentation == signature.rawRepresentation)
        }
    }

    @Test func acceptsExactlyWhatSwiftCryptoAcceptsUnderMutation() throws {
        let key = P256.Signing.PrivateKey()
        var rng = SystemRandomNumberGenerator()
        var compared = 0
        var accepted = 0
        for i in 0..<200 {
            let der = Array(try key.signature(for: Array("m\(i)".utf8)).derRepresentation)
            for mutant in Self.mutants(of: der, using: &rng) {
                let theirs = try? P256.Signing.ECDSASignature(derRepresentation: mutant)
                let ours = ECDSADER.rawP256(mutant)
                #expect((ours != nil) == (theirs != nil), "\(Data(mutant).base64EncodedString())")
                if let ours, let theirs { #expect(ours == Array(theirs.rawRepresentation)) }
                compared += 1
                if ours != nil { accepted += 1 }
            }
        }
        #expect(compared > 2_000 && accepted > 0 && accepted < compared)
    }

    @Test func refusesWhatIsNotStrictDER() {
        let r = [UInt8](repeating: 0x11, count: 32)
        let s = [UInt8](repeating: 0x22, count: 32)
        func seq(_ body: [UInt8]) -> [UInt8] { [0x30, UInt8(body.count)] + body }
        let good = seq([0x02, 32] + r + [0x02, 32] + s)
        #expect(ECDSADER.rawP256(good) == r + s)
        let refused: [(String, [UInt8])] = [
            ("a redundant leading zero", seq([0x02, 33, 0x00] + r + [0x02, 32] + s)),
            ("a negative integer", seq([0x02, 1, 0x80, 0x02, 32] + s)),
            ("a long-form length", [0x30, 0x81, 68, 0x02, 32] + r + [0x02, 32] + s),
            ("a byte after the sequence", good + [0]),
            ("a sequence length that is off", [0x30, 67] + Array(good.dropFirst(2))),
            ("33 bytes of magnitude", seq([0x02, 33, 0x01] + r + [0x02, 32] + s)),
            ("an empty integer", seq([0x02, 0, 0x02, 32] + s)),
            ("one integer", seq([0x02, 32] + r)),
            ("a wrong tag", [0x31] + Array(good.dropFirst())),
            ("nothing", []),
        ]
        for (what, der) in refused {
            #expect(ECDSADER.rawP256(der) == nil, "\(what)")
            #expect((try? P256.Signing.ECDSASignature(derRepresentation: der)) == nil, "swift-crypto: \(what)")
        }
    }

    @Test func opensslVerifiesWhatWeEncode() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ecdsa-der-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = P256.Signing.PrivateKey()
        let message = Array("an index record's signed bytes".utf8)
        let der = ECDSADER.encode(try key.signature(for: message))
        try Data(message).write(to: dir.appendingPathComponent("msg"))
        try Data(der).write(to: dir.appendingPathComponent("sig"))
        try key.publicKey.pemRepresentation.write(
            to: dir.appendingPathComponent("pub.pem"), atomically: true, encoding: .utf8)
        let verify = [
            "openssl", "dgst", "-sha256", "-verify", dir.appendingPathComponent("pub.pem").path, "-signature",
            dir.appendingPathComponent("sig").path, dir.appendingPathComponent("msg").path,
        ]
        let ok = try runTool(verify)
        #expect(ok.status == 0 && ok.out.contains("Verified OK"), "\(ok.out) \(ok.err)")
        // And openssl's own signature reads back through our parser to one that verifies.
        let keyFile = dir.appendingPathComponent("key.pem")
        try key.pemRepresentation.write(to: keyFile, atomically: true, encoding: .utf8)
        let signed = try runTool([
            "openssl", "dgst", "-sha256", "-sign", keyFile.path, "-out", dir.appendingPathComponent("osig").path,
            dir.appendingPathComponent("msg").path,
        ])
        #expect(signed.status == 0, "\(signed.err)")
        let theirs = try Data(contentsOf: dir.appendingPathComponent("osig"))
        let parsed = try #require(ECDSADER.p256Signature(theirs))
        #expect(key.publicKey.isValidSignature(parsed, for: message))
    }

    /// Single-byte changes at every position, truncations, extensions and length edits of `der`.
    static func mutants(of der: [UInt8], using rng: inout SystemRandomNumberGenerator) -> [[UInt8]] {
        var out = [[UInt8]]()
        for i in der.indices {
            var flipped = der
            flipped[i] ^= UInt8.random(in: 1...255, using: &rng)
            out.append(flipped)
        }
        for cut in [1, 2, 5, der.count / 2] where cut < der.count { out.append(Array(der.dropLast(cut))) }
        out.append(der + [UInt8.random(in: 0...255, using: &rng)])
        for at in [1, 3] {
            for delta in [-1, 1] {
                var edited = der
                edited[at] = UInt8(truncatingIfNeeded: Int(edited[at]) + delta)
                out.append(edited)
            }
        }
        out.append(der)
        return out
    }
}
