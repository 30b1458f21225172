import Foundation
import Testing

@testable import LedgerPRE

/// Interop with the reference implementation, umbral-pre 0.11 (nucypher/rust-umbral's Python
/// bindings), through scripts/umbral_interop.py. Both directions, at the level of serialized bytes.
/// Serialized: each test spawns several python3 processes; this keeps the 2-core machines calm.
@Suite(.serialized) struct UmbralInteropTests {
    typealias Py = UmbralPython

    static func hex(_ b: [UInt8]) -> String { TestHex.encode(b) }

    @Test func referenceIsInstalledAndParametersMatch() throws {
        let reply = try Py.run("check")
        #expect(reply["version"] as? String == "0.11.0")
        #expect(try Py.bytes(reply, "u") == Parameters.uCompressed, "parameter point U differs from umbral-pre's")
    }

    @Test func deterministicKeyBytesMatch() throws {
        for _ in 0..<3 {
            let sk = SecretKey.random()
            let reply = try Py.run("public-key", ["sk": Self.hex(sk.toSecretBytes())])
            #expect(try Py.bytes(reply, "pk") == sk.publicKey.compressedBytes)
        }
        let pySK = try Py.run("keygen")
        let sk = try SecretKey(bigEndianBytes: Py.bytes(pySK, "sk"))
        #expect(try sk.publicKey.compressedBytes == Py.bytes(pySK, "pk"))
        let rt = try Py.run("roundtrip", ["type": "secret_key", "bytes": Self.hex(sk.toSecretBytes())])
        #expect(try Py.bytes(rt, "bytes") == sk.toSecretBytes())
    }

    @Test func signaturesVerifyAcrossSides() throws {
        let sk = SecretKey.random()
        let msg = Array("index record P_DE".utf8)
        // Python signs, Swift verifies (both encodings parse to the same signature).
        let py = try Py.run("sign", ["sk": Self.hex(sk.toSecretBytes()), "message": Self.hex(msg)])
        let sig = try Signature(bigEndianBytes: Py.bytes(py, "signature_be"))
        #expect(sig.verify(sk.publicKey, message: msg))
        #expect(!sig.verify(sk.publicKey, message: msg + [1]))
        #expect(try Signature(derBytes: Py.bytes(py, "signature_der")) == sig)
        #expect(try sig.toDERBytes() == Py.bytes(py, "signature_der"))
        // Swift signs, Python verifies; a tampered message is refused.
        let mine = Signer(sk).sign(msg)
        let ok = try Py.run(
            "verify-signature",
            [
                "pk": Self.hex(sk.publicKey.compressedBytes), "message": Self.hex(msg),
                "signature_be": Self.hex(mine.toBigEndianBytes()),
            ])
        #expect(ok["ok"] as? Bool == true)
        let bad = try Py.run(
            "verify-signature",
            [
                "pk": Self.hex(sk.publicKey.compressedBytes), "message": Self.hex(msg + [1]),
                "signature_be": Self.hex(mine.toBigEndianBytes()),
            ])
        #expect(bad["ok"] as? Bool == false)
        let rt = try Py.run("roundtrip", ["type": "signature", "bytes": Self.hex(mine.toBigEndianBytes())])
        #expect(try Py.bytes(rt, "der") == mine.toDERBytes())
    }

    /// (c) decrypt_original across sides, and capsule bytes survive a parse/serialize on the other side.
    @Test func decryptOriginalAcrossSides() throws {
        let alice = SecretKey.random()
        let plaintext = Array("discharge summary, ward 7".utf8)

        // Swift encrypts, Python decrypts.
        let (capsule, ct) = Umbral.encrypt(delegatingPK: alice.publicKey, plaintext: plaintext)
        let opened = try Py.run(
            "decrypt-original",
            ["sk": Self.hex(alice.toSecretBytes()), "capsule": Self.hex(capsule.toBytes()), "ciphertext": Self.hex(ct)])
        #expect(try Py.bytes(opened, "plaintext") == plaintext)
        let rt = try Py.run("roundtrip", ["type": "capsule", "bytes": Self.hex(capsule.toBytes())])
        #expect(try Py.bytes(rt, "bytes") == capsule.toBytes())
        #expect(try Py.bytes(rt, "simple") == capsule.toBytesSimple())

        // Python encrypts, Swift decrypts; Swift re-serializes Python's capsule identically.
        let enc = try Py.run(
            "encrypt", ["pk": Self.hex(alice.publicKey.compressedBytes), "plaintext": Self.hex(plaintext)])
        let pyCapsuleBytes = try Py.bytes(enc, "capsule")
        let pyCapsule = try Capsule(bytes: pyCapsuleBytes)
        #expect(pyCapsule.toBytes() == pyCapsuleBytes)
        #expect(
            try Umbral.decryptOriginal(delegatingSK: alice, capsule: pyCapsule, ciphertext: Py.bytes(enc, "ciphertext"))
                == plaintext)

        // A tampered capsule is refused by Python too.
        let tampered = flipped(capsule.toBytes(), at: 104)
        let refused = try Py.run(
            "decrypt-original",
            ["sk": Self.hex(alice.toSecretBytes()), "capsule": Self.hex(tampered), "ciphertext": Self.hex(ct)],
            allowError: true)
        #expect((refused["error"] as? String)?.contains("Capsule self-verification failed") == true)
        // Wrong key on the Python side.
        let wrong = try Py.run(
            "decrypt-original",
            [
                "sk": Self.hex(SecretKey.random().toSecretBytes()), "capsule": Self.hex(capsule.toBytes()),
                "ciphertext": Self.hex(ct),
            ], allowError: true)
        #expect(wrong["error"] != nil)
    }

    /// (a) Python: keys, encryption, kfrags. Swift: verifies the kfrags and re-encrypts.
    /// Python: verifies Swift's cfrags and decrypts. Swift also decrypts with its own cfrags.
    @Test func pythonDelegatesSwiftProxies() throws {
        let alice = try SecretKey(bigEndianBytes: Py.bytes(Py.run("keygen"), "sk"))
        let bob = try SecretKey(bigEndianBytes: Py.bytes(Py.run("keygen"), "sk"))
        let signerSK = SecretKey.random()
        let plaintext = Array("MRI report for patient 0042".utf8)

        let enc = try Py.run(
            "encrypt", ["pk": Self.hex(alice.publicKey.compressedBytes), "plaintext": Self.hex(plaintext)])
        let capsule = try Capsule(bytes: Py.bytes(enc, "capsule"))
        let ct = try Py.bytes(enc, "ciphertext")
        let kf = try Py.run(
            "generate-kfrags",
            [
                "delegating_sk": Self.hex(alice.toSecretBytes()),
                "receiving_pk": Self.hex(bob.publicKey.compressedBytes),
                "signer_sk": Self.hex(signerSK.toSecretBytes()), "threshold": 2, "shares": 3,
                "sign_delegating_key": true, "sign_receiving_key": true,
            ])
        let pyKFragBytes = try Py.list(kf, "kfrags")
        #expect(pyKFragBytes.count == 3)

        var cfrags: [VerifiedCapsuleFrag] = []
        for raw in pyKFragBytes {
            let kfrag = try KeyFrag(bytes: raw)
            #expect(kfrag.toBytes() == raw, "Swift re-serializes umbral-pre's kfrag byte for byte")
            let verified = try kfrag.verify(
                verifyingPK: signerSK.publicKey, delegatingPK: alice.publicKey, receivingPK: bob.publicKey)
            #expect(throws: PREError.receivingKeyNotProvided) {
                try kfrag.verify(verifyingPK: signerSK.publicKey, delegatingPK: alice.publicKey)
            }
            #expect(throws: PREError.kfragSignatureInvalid) {
                try kfrag.verify(
                    verifyingPK: alice.publicKey, delegatingPK: alice.publicKey, receivingPK: bob.publicKey)
            }
            cfrags.append(Umbral.reencrypt(capsule: capsule, kfrag: verified))
        }
        let request: [String: Any] = [
            "capsule": Self.hex(capsule.toBytes()), "cfrags": cfrags.map { Self.hex($0.toBytes()) },
            "verifying_pk": Self.hex(signerSK.publicKey.compressedBytes),
            "delegating_pk": Self.hex(alice.publicKey.compressedBytes),
            "receiving_pk": Self.hex(bob.publicKey.compressedBytes),
        ]
        let checks = try Py.results(Py.run("verify-cfrags", request))
        #expect(checks.count == 3 && checks.allSatisfy(\.ok), "umbral-pre refused Swift cfrags: \(checks.map(\.error))")

        for pair in [[0, 1], [1, 2]] {
            var req = request
            req["cfrags"] = pair.map { Self.hex(cfrags[$0].toBytes()) }
            req["receiving_sk"] = Self.hex(bob.toSecretBytes())
            req["ciphertext"] = Self.hex(ct)
            let out = try Py.run("decrypt-reencrypted", req)
            #expect(try Py.bytes(out, "plaintext") == plaintext)
        }
        // Python with a single Swift cfrag fails, as Swift does.
        var one = request
        one["cfrags"] = [Self.hex(cfrags[0].toBytes())]
        one["receiving_sk"] = Self.hex(bob.toSecretBytes())
        one["ciphertext"] = Self.hex(ct)
        #expect(try Py.run("decrypt-reencrypted", one, allowError: true)["error"] != nil)

        #expect(
            try Umbral.decryptReencrypted(
                receivingSK: bob, delegatingPK: alice.publicKey, capsule: capsule,
                cfrags: Array(cfrags.prefix(2)), ciphertext: ct) == plaintext)
        // Python re-serializes the Swift cfrag identically, and agrees on to_bytes_simple.
        let rt = try Py.run("roundtrip", ["type": "cfrag", "bytes": Self.hex(cfrags[0].toBytes())])
        #expect(try Py.bytes(rt, "bytes") == cfrags[0].toBytes())
        #expect(try Py.bytes(rt, "simple") == cfrags[0].cfrag.toBytesSimple())
    }

    /// (b) Swift: encryption and kfrags. Python: verifies them and re-encrypts.
    /// Swift: verifies Python's cfrags and decrypts.
    @Test func swiftDelegatesPythonProxies() throws {
        for (signD, signR) in [(true, true), (false, true), (true, false), (false, false)] {
            let alice = SecretKey.random()
            let bob = SecretKey.random()
            let signer = Signer(SecretKey.random())
            let plaintext = Array("prescription \(signD) \(signR)".utf8)
            let (capsule, ct) = Umbral.encrypt(delegatingPK: alice.publicKey, plaintext: plaintext)
            let kfrags = try Umbral.generateKFrags(
                delegatingSK: alice, receivingPK: bob.publicKey, signer: signer, threshold: 2, shares: 3,
                signDelegatingKey: signD, signReceivingKey: signR)
            let request: [String: Any] = [
                "capsule": Self.hex(capsule.toBytes()), "kfrags": kfrags.map { Self.hex($0.toBytes()) },
                "verifying_pk": Self.hex(signer.verifyingKey.compressedBytes),
                "delegating_pk": Self.hex(alice.publicKey.compressedBytes),
                "receiving_pk": Self.hex(bob.publicKey.compressedBytes),
            ]
            let verdicts = try Py.results(Py.run("verify-kfrags", request))
            #expect(
                verdicts.count == 3 && verdicts.allSatisfy(\.ok),
                "umbral-pre refused Swift kfrags: \(verdicts.map(\.error))")
            // Without the keys the flags demand, Python refuses too.
            var keyless = request
            keyless["delegating_pk"] = nil
            keyless["receiving_pk"] = nil
            let keylessVerdicts = try Py.results(Py.run("verify-kfrags", keyless))
            #expect(keylessVerdicts.allSatisfy { $0.ok == (!signD && !signR) })
            for raw in kfrags.map({ $0.toBytes() }) {
                let rt = try Py.run("roundtrip", ["type": "kfrag", "bytes": Self.hex(raw)])
                #expect(try Py.bytes(rt, "bytes") == raw)
            }

            let pyCfrags = try Py.list(Py.run("reencrypt", request), "cfrags")
            #expect(pyCfrags.count == 3)
            var verified: [VerifiedCapsuleFrag] = []
            for raw in pyCfrags {
                let cfrag = try CapsuleFrag(bytes: raw)
                #expect(cfrag.toBytes() == raw, "Swift re-serializes umbral-pre's cfrag byte for byte")
                verified.append(
                    try cfrag.verify(
                        capsule: capsule, verifyingPK: signer.verifyingKey, delegatingPK: alice.publicKey,
                        receivingPK: bob.publicKey))
            }
            #expect(
                try Umbral.decryptReencrypted(
                    receivingSK: bob, delegatingPK: alice.publicKey, capsule: capsule,
                    cfrags: [verified[2], verified[0]], ciphertext: ct) == plaintext)
            #expect(throws: PREError.notEnoughOrInvalidCapsuleFrags) {
                try Umbral.decryptReencrypted(
                    receivingSK: bob, delegatingPK: alice.publicKey, capsule: capsule, cfrags: [verified[1]],
                    ciphertext: ct)
            }
        }
    }

    /// (d) A tampered cfrag (or kfrag) made on either side is refused by the other.
    @Test func tamperedFragmentsAreRefusedAcrossSides() throws {
        let alice = SecretKey.random()
        let bob = SecretKey.random()
        let signer = Signer(SecretKey.random())
        let (capsule, ct) = Umbral.encrypt(delegatingPK: alice.publicKey, plaintext: Array("lab results".utf8))
        let kfrags = try Umbral.generateKFrags(
            delegatingSK: alice, receivingPK: bob.publicKey, signer: signer, threshold: 2, shares: 2,
            signDelegatingKey: true, signReceivingKey: true)
        let keys: [String: Any] = [
            "capsule": Self.hex(capsule.toBytes()), "verifying_pk": Self.hex(signer.verifyingKey.compressedBytes),
            "delegating_pk": Self.hex(alice.publicKey.compressedBytes),
            "receiving_pk": Self.hex(bob.publicKey.compressedBytes),
        ]

        // Swift cfrags tampered in E1, the kfrag id, z3 and the kfrag signature: Python refuses each.
        let swiftCfrag = Umbral.reencrypt(capsule: capsule, kfrag: kfrags[0]).toBytes()
        let spots = [2 + 20, 72 + 10, 381 - 66 - 20, 381 - 5]
        var req = keys
        req["cfrags"] = [Self.hex(swiftCfrag)] + spots.map { Self.hex(flipped(swiftCfrag, at: $0)) }
        let verdicts = try Py.results(Py.run("verify-cfrags", req))
        #expect(verdicts.count == 5)
        #expect(verdicts.first?.ok == true)
        #expect(verdicts.dropFirst().allSatisfy { !$0.ok }, "umbral-pre accepted a tampered Swift cfrag: \(verdicts)")

        // Python cfrags tampered the same way: Swift refuses each.
        req = keys
        req["kfrags"] = kfrags.map { Self.hex($0.toBytes()) }
        let pyCfrag = try Py.list(Py.run("reencrypt", req), "cfrags")[0]
        let good = try CapsuleFrag(bytes: pyCfrag)
        _ = try good.verify(
            capsule: capsule, verifyingPK: signer.verifyingKey, delegatingPK: alice.publicKey,
            receivingPK: bob.publicKey)
        for spot in spots {
            #expect(throws: PREError.self, "Swift accepted umbral-pre cfrag tampered at \(spot)") {
                try CapsuleFrag(bytes: flipped(pyCfrag, at: spot))
                    .verify(
                        capsule: capsule, verifyingPK: signer.verifyingKey, delegatingPK: alice.publicKey,
                        receivingPK: bob.publicKey)
            }
        }
        // Python decrypt with a tampered Swift cfrag among good ones is refused (cfrag verification first).
        var dec = keys
        dec["cfrags"] = [
            Self.hex(flipped(swiftCfrag, at: 381 - 66 - 20)),
            Self.hex(Umbral.reencrypt(capsule: capsule, kfrag: kfrags[1]).toBytes()),
        ]
        dec["receiving_sk"] = Self.hex(bob.toSecretBytes())
        dec["ciphertext"] = Self.hex(ct)
        #expect(try Py.run("decrypt-reencrypted", dec, allowError: true)["error"] != nil)

        // Tampered kfrags: a Swift kfrag with its key share changed is refused by Python, and
        // a Python kfrag with its id changed is refused by Swift.
        var kreq = keys
        kreq["kfrags"] = [Self.hex(flipped(kfrags[0].toBytes(), at: 78))]
        #expect(try Py.results(Py.run("verify-kfrags", kreq)).first?.ok == false)
        let pyKfrag = try Py.list(
            Py.run(
                "generate-kfrags",
                [
                    "delegating_sk": Self.hex(alice.toSecretBytes()),
                    "receiving_pk": Self.hex(bob.publicKey.compressedBytes),
                    "signer_sk": Self.hex(signer.secretKey.toSecretBytes()), "threshold": 1, "shares": 1,
                    "sign_delegating_key": false, "sign_receiving_key": false,
                ]), "kfrags")[0]
        _ = try KeyFrag(bytes: pyKfrag).verify(verifyingPK: signer.verifyingKey)
        #expect(throws: PREError.kfragSignatureInvalid) {
            try KeyFrag(bytes: flipped(pyKfrag, at: 44)).verify(verifyingPK: signer.verifyingKey)
        }
    }
}
