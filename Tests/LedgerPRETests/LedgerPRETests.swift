import Crypto
import Foundation
import Testing

@testable import LedgerPRE

/// Unit tests of LedgerPRE on its own (no Python). Interop with umbral-pre is in UmbralInteropTests.
@Suite struct KeyAndSignatureTests {
    @Test func publicKeyOfFixedSecretKeysMatchesKnownValues() throws {
        // sk = 1 gives the generator; sk = 0x01…01 as computed by umbral-pre 0.11.
        let one = try SecretKey(bigEndianBytes: [UInt8](repeating: 0, count: 31) + [1])
        #expect(
            TestHex.encode(one.publicKey.compressedBytes)
                == "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
        let ones = try SecretKey(bigEndianBytes: [UInt8](repeating: 1, count: 32))
        #expect(
            TestHex.encode(ones.publicKey.compressedBytes)
                == "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f")
        #expect(ones.publicKey.description == "PublicKey:031b84c5567b1264")
    }

    @Test func secretKeyBytesRoundTripAndBadKeysAreRefused() throws {
        let sk = SecretKey.random()
        let back = try SecretKey(bigEndianBytes: sk.toSecretBytes())
        #expect(back.publicKey == sk.publicKey)
        let n = TestHex.decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
        #expect(throws: PREError.invalidSecretKey) { try SecretKey(bigEndianBytes: n) }
        #expect(throws: PREError.invalidSecretKey) { try SecretKey(bigEndianBytes: [UInt8](repeating: 0, count: 32)) }
        #expect(throws: PREError.invalidLength(what: "secret key", expected: 32, got: 31)) {
            try SecretKey(bigEndianBytes: [UInt8](repeating: 1, count: 31))
        }
    }

    @Test func publicKeyParsingRefusesPointsOffTheCurve() throws {
        let pk = SecretKey.random().publicKey
        #expect(try PublicKey(compressedBytes: pk.compressedBytes) == pk)
        // x = 5 is not the abscissa of a secp256k1 point (x³ + 7 = 132 is a non-residue mod p).
        let off = [0x02] + [UInt8](repeating: 0, count: 31) + [5]
        #expect(throws: PREError.pointNotOnCurve(what: "public key")) { try PublicKey(compressedBytes: off) }
        #expect(throws: PREError.pointNotOnCurve(what: "public key")) {
            try PublicKey(compressedBytes: [0x04] + pk.compressedBytes.dropFirst())
        }
        #expect(throws: PREError.invalidLength(what: "public key", expected: 33, got: 32)) {
            try PublicKey(compressedBytes: Array(pk.compressedBytes.dropLast()))
        }
    }

    @Test func signaturesVerifyAreLowSAndRoundTrip() throws {
        let sk = SecretKey.random()
        let signer = Signer(sk)
        let msg = Array("patient consent".utf8)
        for _ in 0..<8 {
            let sig = signer.sign(msg)
            #expect(!sig.s.isHigh)
            #expect(sig.verify(signer.verifyingKey, message: msg))
            #expect(!sig.verify(signer.verifyingKey, message: msg + [0]))
            #expect(!sig.verify(SecretKey.random().publicKey, message: msg))
            #expect(try Signature(bigEndianBytes: sig.toBigEndianBytes()) == sig)
            #expect(try Signature(derBytes: sig.toDERBytes()) == sig)
            // The high-S twin verifies too (umbral-pre 0.11 accepts it as well).
            #expect(Signature(r: sig.r, s: sig.s.negated).verify(signer.verifyingKey, message: msg))
        }
        #expect(throws: PREError.self) { try Signature(bigEndianBytes: [UInt8](repeating: 0, count: 64)) }
    }

    /// umbral-pre's hash-to-scalar, pinned by a value umbral-pre computed:
    /// SecretKeyFactory.from_secure_randomness(bytes(range(32))).make_key(b"foo") — HKDF-SHA-256 of the seed
    /// (no salt, info "KEY_DERIVATION/foo", 64 bytes) hashed with that info as the DST. A mod-n
    /// reduction instead of (mod n−1)+1 would be off by one.
    @Test func hashToScalarMatchesUmbralPre() throws {
        let seed = SymmetricKey(data: (0..<32).map { UInt8($0) })
        let info = Array("KEY_DERIVATION/foo".utf8)
        let okm = HKDF<SHA256>.deriveKey(inputKeyMaterial: seed, salt: [UInt8](), info: info, outputByteCount: 64)
        let scalar = UmbralHash.scalar(dst: "KEY_DERIVATION/foo", [okm.withUnsafeBytes { Array($0) }])
        #expect(
            TestHex.encode(scalar.bigEndianBytes) == "00a702f986353cc7889c869ef8dd9dc5d7c21e993516c46b3bb263a42a820209")
    }

    @Test func parameterUIsOnTheCurveAndNotG() throws {
        let g = Point.generatorTimes(.one)
        #expect(!(Parameters.u == g))
        #expect(Parameters.u.compressed == Parameters.uCompressed)
        #expect(TestHex.encode(Parameters.uCompressed) == Parameters.pinnedUmbralPreU)
    }

    /// RFC 9380 Appendix J.8.1 (secp256k1_XMD:SHA-256_SSWU_RO_), msg "" and "abc" (P.y of "" is odd, of "abc" even).
    @Test func hashToCurveTestVectors() {
        let dst = Array("QUUX-V01-CS02-with-secp256k1_XMD:SHA-256_SSWU_RO_".utf8)
        let empty = HashToCurve.hash(message: [], dst: dst)
        #expect(
            TestHex.encode(empty.compressed) == "03c1cae290e291aee617ebaef1be6d73861479c48b841eaba9b7b5852ddfeb1346")
        let abc = HashToCurve.hash(message: Array("abc".utf8), dst: dst)
        #expect(TestHex.encode(abc.compressed) == "023377e01eab42db296b512293120c6cee72b6ecf9f9205760bd9ff11fb3cb2c4b")
    }
}

@Suite struct DEMTests {
    /// draft-irtf-cfrg-xchacha-03 §2.2.1 test vector for HChaCha20.
    @Test func hchacha20TestVector() {
        let key = (0..<32).map { UInt8($0) }
        let nonce = TestHex.decode("000000090000004a0000000031415927")
        #expect(
            TestHex.encode(HChaCha20.block(key: key, nonce: nonce))
                == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
    }

    @Test func xchachaSealOpenAndTamper() throws {
        let key = SymmetricKey(size: .bits256)
        let nonce = (0..<24).map { UInt8($0) }
        let ct = DEM.seal(key: key, nonce: nonce, plaintext: Array("hello".utf8), aad: [1, 2])
        #expect(ct.count == 24 + 5 + 16)
        #expect(try DEM.open(key: key, ciphertext: ct, aad: [1, 2]) == Array("hello".utf8))
        #expect(throws: PREError.decryptionFailed) { try DEM.open(key: key, ciphertext: ct, aad: [1, 3]) }
        #expect(throws: PREError.decryptionFailed) {
            try DEM.open(key: key, ciphertext: flipped(ct, at: 3), aad: [1, 2])
        }
        #expect(throws: PREError.ciphertextTooShort) {
            try DEM.open(key: key, ciphertext: Array(ct.prefix(39)), aad: [1, 2])
        }
    }
}

/// Alice (delegator), Bob (receiver), a signer, a capsule and 2-of-3 kfrags.
struct Scenario {
    let alice = SecretKey.random()
    let bob = SecretKey.random()
    let signer = Signer(SecretKey.random())
    let plaintext = Array("blood type: AB-; allergies: penicillin".utf8)
    let capsule: Capsule
    let ciphertext: [UInt8]
    let kfrags: [VerifiedKeyFrag]

    init(threshold: Int = 2, shares: Int = 3, signDelegating: Bool = true, signReceiving: Bool = true) throws {
        (capsule, ciphertext) = Umbral.encrypt(delegatingPK: alice.publicKey, plaintext: plaintext)
        kfrags = try Umbral.generateKFrags(
            delegatingSK: alice, receivingPK: bob.publicKey, signer: signer,
            threshold: threshold, shares: shares,
            signDelegatingKey: signDelegating, signReceivingKey: signReceiving)
    }

    func cfrags() -> [VerifiedCapsuleFrag] { kfrags.map { Umbral.reencrypt(capsule: capsule, kfrag: $0) } }

    func verify(_ cfrag: CapsuleFrag) throws -> VerifiedCapsuleFrag {
        try cfrag.verify(
            capsule: capsule, verifyingPK: signer.verifyingKey, delegatingPK: alice.publicKey,
            receivingPK: bob.publicKey)
    }
}

@Suite struct PRETests {
    @Test func encryptAndDecryptOriginal() throws {
        let s = try Scenario()
        #expect(
            try Umbral.decryptOriginal(delegatingSK: s.alice, capsule: s.capsule, ciphertext: s.ciphertext)
                == s.plaintext)
        #expect(s.ciphertext.count == 24 + s.plaintext.count + 16)
        #expect(throws: PREError.decryptionFailed) {
            try Umbral.decryptOriginal(delegatingSK: s.bob, capsule: s.capsule, ciphertext: s.ciphertext)
        }
        #expect(throws: PREError.decryptionFailed) {
            try Umbral.decryptOriginal(
                delegatingSK: s.alice, capsule: s.capsule,
                ciphertext: flipped(s.ciphertext, at: s.ciphertext.count - 20))
        }
        // The ciphertext is bound to its capsule.
        let other = Umbral.encrypt(delegatingPK: s.alice.publicKey, plaintext: s.plaintext)
        #expect(throws: PREError.decryptionFailed) {
            try Umbral.decryptOriginal(delegatingSK: s.alice, capsule: other.capsule, ciphertext: s.ciphertext)
        }
        let empty = Umbral.encrypt(delegatingPK: s.alice.publicKey, plaintext: [])
        #expect(
            try Umbral.decryptOriginal(delegatingSK: s.alice, capsule: empty.capsule, ciphertext: empty.ciphertext)
                == [])
    }

    @Test func twoOfThreeOpensWithAnyTwoOrAllThreeButNotOne() throws {
        let s = try Scenario()
        let cf = s.cfrags()
        for pair in [[0, 1], [0, 2], [1, 2], [2, 0], [0, 1, 2]] {
            let chosen = pair.map { cf[$0] }
            #expect(
                try Umbral.decryptReencrypted(
                    receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule,
                    cfrags: chosen, ciphertext: s.ciphertext) == s.plaintext)
        }
        for i in 0..<3 {
            #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
                try Umbral.decryptReencrypted(
                    receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule,
                    cfrags: [cf[i]], ciphertext: s.ciphertext)
            }
        }
        #expect(throws: PREError.noCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule, cfrags: [],
                ciphertext: s.ciphertext)
        }
        #expect(throws: PREError.repeatingCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule, cfrags: [cf[0], cf[0]],
                ciphertext: s.ciphertext)
        }
    }

    @Test func thresholdOneAndThreeOfFive() throws {
        let one = try Scenario(threshold: 1, shares: 1)
        #expect(
            try Umbral.decryptReencrypted(
                receivingSK: one.bob, delegatingPK: one.alice.publicKey, capsule: one.capsule,
                cfrags: one.cfrags(), ciphertext: one.ciphertext) == one.plaintext)
        let s = try Scenario(threshold: 3, shares: 5)
        let cf = s.cfrags()
        #expect(
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule,
                cfrags: [cf[4], cf[1], cf[3]], ciphertext: s.ciphertext) == s.plaintext)
        #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule, cfrags: [cf[0], cf[2]],
                ciphertext: s.ciphertext)
        }
        #expect(throws: PREError.invalidThreshold(threshold: 4, shares: 3)) {
            try Umbral.generateKFrags(
                delegatingSK: s.alice, receivingPK: s.bob.publicKey, signer: s.signer, threshold: 4, shares: 3,
                signDelegatingKey: true, signReceivingKey: true)
        }
        #expect(throws: PREError.invalidThreshold(threshold: 0, shares: 3)) {
            try Umbral.generateKFrags(
                delegatingSK: s.alice, receivingPK: s.bob.publicKey, signer: s.signer, threshold: 0, shares: 3,
                signDelegatingKey: true, signReceivingKey: true)
        }
    }

    @Test func wrongReceivingKeyCannotOpen() throws {
        let s = try Scenario()
        let eve = SecretKey.random()
        let cf = s.cfrags()
        #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: eve, delegatingPK: s.alice.publicKey, capsule: s.capsule, cfrags: cf,
                ciphertext: s.ciphertext)
        }
        // ... and Bob's cfrags do not verify as Eve's.
        #expect(throws: PREError.cfragSignatureInvalid) {
            try cf[0].cfrag.verify(
                capsule: s.capsule, verifyingPK: s.signer.verifyingKey, delegatingPK: s.alice.publicKey,
                receivingPK: eve.publicKey)
        }
        // Wrong delegating key: the combined key fails the capsule check.
        #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: eve.publicKey, capsule: s.capsule, cfrags: cf,
                ciphertext: s.ciphertext)
        }
    }

    @Test func mismatchedCfragsAndForeignCapsule() throws {
        let s = try Scenario()
        let again = try Umbral.generateKFrags(
            delegatingSK: s.alice, receivingPK: s.bob.publicKey, signer: s.signer, threshold: 2, shares: 3,
            signDelegatingKey: true, signReceivingKey: true)
        let mixed = [
            Umbral.reencrypt(capsule: s.capsule, kfrag: s.kfrags[0]),
            Umbral.reencrypt(capsule: s.capsule, kfrag: again[1]),
        ]
        #expect(throws: PREError.mismatchedCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule, cfrags: mixed,
                ciphertext: s.ciphertext)
        }
        let other = Umbral.encrypt(delegatingPK: s.alice.publicKey, plaintext: [1, 2, 3])
        let cf = s.cfrags()
        #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
            try Umbral.decryptReencrypted(
                receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: other.capsule, cfrags: cf,
                ciphertext: other.ciphertext)
        }
        // A cfrag of one capsule does not verify against another.
        #expect(throws: PREError.cfragProofInvalid) {
            try cf[0].cfrag.verify(
                capsule: other.capsule, verifyingPK: s.signer.verifyingKey, delegatingPK: s.alice.publicKey,
                receivingPK: s.bob.publicKey)
        }
    }
}

@Suite struct VerificationTests {
    @Test func kfragVerificationFollowsTheSigningFlags() throws {
        for signD in [false, true] {
            for signR in [false, true] {
                let s = try Scenario(signDelegating: signD, signReceiving: signR)
                let kfrag = try KeyFrag(bytes: s.kfrags[0].toBytes())
                let vk = s.signer.verifyingKey
                for giveD in [false, true] {
                    for giveR in [false, true] {
                        let d = giveD ? s.alice.publicKey : nil
                        let r = giveR ? s.bob.publicKey : nil
                        if signD && !giveD {
                            #expect(throws: PREError.delegatingKeyNotProvided) {
                                try kfrag.verify(verifyingPK: vk, delegatingPK: d, receivingPK: r)
                            }
                        } else if signR && !giveR {
                            #expect(throws: PREError.receivingKeyNotProvided) {
                                try kfrag.verify(verifyingPK: vk, delegatingPK: d, receivingPK: r)
                            }
                        } else {
                            #expect(try kfrag.verify(verifyingPK: vk, delegatingPK: d, receivingPK: r).kfrag == kfrag)
                        }
                    }
                }
                // Wrong signer, or (when signed) the wrong key.
                #expect(throws: PREError.kfragSignatureInvalid) {
                    try kfrag.verify(
                        verifyingPK: SecretKey.random().publicKey, delegatingPK: s.alice.publicKey,
                        receivingPK: s.bob.publicKey)
                }
                if signR {
                    #expect(throws: PREError.kfragSignatureInvalid) {
                        try kfrag.verify(
                            verifyingPK: vk, delegatingPK: s.alice.publicKey, receivingPK: SecretKey.random().publicKey)
                    }
                }
            }
        }
    }

    /// Flipping any byte of a serialized kfrag makes it fail to parse or fail verification.
    @Test func tamperedKFragIsRejected() throws {
        let s = try Scenario()
        let bytes = s.kfrags[0].toBytes()
        #expect(bytes.count == 310)
        // Bytes 244..<308 are the signature for the receiver: the proxy cannot check it (it covers
        // both public keys), the receiver does, inside CapsuleFrag.verify (tested below).
        let forReceiver = 244..<308
        let positions = stride(from: 0, to: bytes.count, by: 3).filter { !forReceiver.contains($0) }
        var refused = 0
        for i in positions {
            let bad = flipped(bytes, at: i)
            do {
                let k = try KeyFrag(bytes: bad)
                _ = try k.verify(
                    verifyingPK: s.signer.verifyingKey, delegatingPK: s.alice.publicKey, receivingPK: s.bob.publicKey)
                Issue.record("kfrag with byte \(i) flipped was accepted")
            } catch is PREError { refused += 1 }
        }
        #expect(refused == positions.count)
        // Specific failures: the key share (commitment check) and the id (signature check).
        let keyAt = 1 + 36 + 2 + 32 + 2 + 5  // inside the 32-byte key
        #expect(throws: PREError.kfragCommitmentInvalid) {
            try KeyFrag(bytes: flipped(bytes, at: keyAt)).verify(
                verifyingPK: s.signer.verifyingKey, delegatingPK: s.alice.publicKey, receivingPK: s.bob.publicKey)
        }
        #expect(throws: PREError.kfragSignatureInvalid) {
            try KeyFrag(bytes: flipped(bytes, at: 1 + 36 + 2 + 5)).verify(
                verifyingPK: s.signer.verifyingKey, delegatingPK: s.alice.publicKey, receivingPK: s.bob.publicKey)
        }
    }

    @Test func tamperedCFragIsRejected() throws {
        let s = try Scenario()
        let cfrag = s.cfrags()[0]
        let bytes = cfrag.toBytes()
        #expect(bytes.count == 381)
        #expect(try s.verify(CapsuleFrag(bytes: bytes)).cfrag == cfrag.cfrag)
        for i in stride(from: 0, to: bytes.count, by: 3) {
            do {
                _ = try s.verify(CapsuleFrag(bytes: flipped(bytes, at: i)))
                Issue.record("cfrag with byte \(i) flipped was accepted")
            } catch is PREError {}
        }
        // z3 (the proof's response) is covered only by the proof equations.
        let z3At = bytes.count - 66 - 34 + 2 + 7
        #expect(throws: PREError.cfragProofInvalid) { try s.verify(CapsuleFrag(bytes: flipped(bytes, at: z3At))) }
        // The kfrag signature carried for the receiver.
        #expect(throws: PREError.cfragSignatureInvalid) {
            try s.verify(CapsuleFrag(bytes: flipped(bytes, at: bytes.count - 10)))
        }
        #expect(throws: PREError.cfragSignatureInvalid) {
            try cfrag.cfrag.verify(
                capsule: s.capsule, verifyingPK: SecretKey.random().publicKey, delegatingPK: s.alice.publicKey,
                receivingPK: s.bob.publicKey)
        }
    }

    @Test func tamperedCapsuleIsRejected() throws {
        let s = try Scenario()
        let bytes = s.capsule.toBytes()
        #expect(bytes.count == 105)
        #expect(try Capsule(bytes: bytes) == s.capsule)
        for i in 0..<bytes.count {
            #expect(throws: PREError.self) { try Capsule(bytes: flipped(bytes, at: i)) }
        }
        #expect(throws: PREError.capsuleVerificationFailed) { try Capsule(bytes: flipped(bytes, at: bytes.count - 1)) }
        #expect(throws: PREError.malformed(what: "capsule", reason: "1 trailing bytes")) {
            try Capsule(bytes: bytes + [0])
        }
        #expect(throws: PREError.malformed(what: "capsule", reason: "truncated in signature")) {
            try Capsule(bytes: Array(bytes.dropLast(10)))
        }
    }
}

@Suite struct SerializationTests {
    @Test func roundTripsAndLayouts() throws {
        let s = try Scenario()
        let capsule = s.capsule.toBytes()
        #expect(capsule.count == 105 && capsule[0] == 0x93 && capsule[1] == 0xc4 && capsule[2] == 33)
        #expect(try Capsule(bytes: capsule).toBytes() == capsule)
        #expect(s.capsule.toBytesSimple() == Array(capsule[3..<36] + capsule[38..<71] + capsule[73..<105]))

        let kfrag = s.kfrags[1].toBytes()
        #expect(kfrag.count == 310 && kfrag[0] == 0x95 && kfrag[1] == 0x91)
        #expect(Array(kfrag[4..<37]) == Parameters.uCompressed)
        #expect(try KeyFrag(bytes: kfrag).toBytes() == kfrag)
        #expect(kfrag.suffix(2) == [0xc3, 0xc3])

        let cfrag = s.cfrags()[2].toBytes()
        #expect(cfrag.count == 381 && cfrag[0] == 0x95)
        let parsed = try CapsuleFrag(bytes: cfrag)
        #expect(parsed.toBytes() == cfrag)
        #expect(parsed.toBytesSimple().count == 359)

        let sig = Signer(s.alice).sign([1, 2, 3])
        #expect(try Signature(bigEndianBytes: sig.toBigEndianBytes()).toBigEndianBytes() == sig.toBigEndianBytes())
        #expect(try PublicKey(compressedBytes: s.bob.publicKey.compressedBytes) == s.bob.publicKey)
        #expect(try SecretKey(bigEndianBytes: s.bob.toSecretBytes()).toSecretBytes() == s.bob.toSecretBytes())

        let unsigned = try Scenario(signDelegating: false, signReceiving: true).kfrags[0].toBytes()
        #expect(unsigned.suffix(2) == [0xc2, 0xc3])
    }

    @Test func kfragWithForeignParameterIsRefused() throws {
        let s = try Scenario()
        var bytes = s.kfrags[0].toBytes()
        bytes.replaceSubrange(4..<37, with: SecretKey.random().publicKey.compressedBytes)
        #expect(throws: PREError.malformed(what: "kfrag", reason: "parameter U is not the standard one")) {
            try KeyFrag(bytes: bytes)
        }
    }

    @Test func concurrentUseIsSafe() async throws {
        let s = try Scenario()
        let cf = s.cfrags()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let v = try cf.map { try s.verify(CapsuleFrag(bytes: $0.toBytes())) }
                    let pt = try Umbral.decryptReencrypted(
                        receivingSK: s.bob, delegatingPK: s.alice.publicKey, capsule: s.capsule,
                        cfrags: Array(v.prefix(2)), ciphertext: s.ciphertext)
                    #expect(pt == s.plaintext)
                }
            }
            try await group.waitForAll()
        }
    }
}
