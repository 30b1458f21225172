import Foundation
import LedgerCrypto
import LedgerProtos
import Testing

@testable import LedgerCore

@Suite struct CommitHashTests {
    func checked(
        _ ids: [String], writes: [[(String, String?)]], codes: [Medledger_TxValidationCode]
    ) throws -> CheckedBlock {
        let envs = zip(ids, writes).map { Fixture.envelope(txID: $0, writes: $1) }
        let b = Medledger_Block.make(number: 0, previousHash: LedgerHash.zero, envelopes: envs, validationCodes: codes)
        return try BlockCheck.check(
            b, channel: "ch", expectedNumber: 0, previousHash: LedgerHash.zero, limits: LedgerLimits())
    }

    func hash(_ c: CheckedBlock, prev: [UInt8] = LedgerHash.zero) -> [UInt8] {
        CommitHash.next(previous: prev, blockNumber: 0, validTransactions: c.validTransactions)
    }

    @Test func dependsOnlyOnValidWrites() throws {
        let a = try checked(["1", "2"], writes: [[("k", "v")], [("j", "w")]], codes: [.valid, .mvccReadConflict])
        let b = try checked(["x", "y"], writes: [[("k", "v")], [("j", "other")]], codes: [.valid, .mvccReadConflict])
        #expect(hash(a) == hash(b), "invalid tx and tx ids must not matter")
        let c = try checked(["1", "2"], writes: [[("k", "v")], [("j", "w")]], codes: [.valid, .valid])
        #expect(hash(a) != hash(c))
    }

    @Test func changesWithValueDeleteOrderAndPrevious() throws {
        let base = try checked(["1"], writes: [[("k", "v"), ("j", "w")]], codes: [.valid])
        let value = try checked(["1"], writes: [[("k", "V"), ("j", "w")]], codes: [.valid])
        let delete = try checked(["1"], writes: [[("k", nil), ("j", "w")]], codes: [.valid])
        let order = try checked(["1"], writes: [[("j", "w"), ("k", "v")]], codes: [.valid])
        let hashes = [
            hash(base), hash(value), hash(delete), hash(order), hash(base, prev: [UInt8](repeating: 7, count: 32)),
        ]
        #expect(Set(hashes).count == hashes.count)
    }

    @Test func fieldBoundariesAreUnambiguous() throws {
        let a = try checked(["1"], writes: [[("ab", "c")]], codes: [.valid])
        let b = try checked(["1"], writes: [[("a", "bc")]], codes: [.valid])
        #expect(hash(a) != hash(b))
    }
}

@Suite struct CompositeKeyTests {
    @Test func roundTrips() throws {
        let k = try CompositeKey.make(objectType: "pde~patient", attributes: ["PID123", "T42"])
        #expect(CompositeKey.isComposite(k))
        let (t, attrs) = try CompositeKey.split(k)
        #expect(t == "pde~patient")
        #expect(attrs == ["PID123", "T42"])
        let none = try CompositeKey.make(objectType: "t", attributes: [])
        #expect(try CompositeKey.split(none).attributes == [])
    }

    @Test func partialKeyIsAPrefixOnlyOfItsOwnKeys() throws {
        let p = try CompositeKey.partial(objectType: "pde", attributes: ["P1"])
        #expect(try CompositeKey.make(objectType: "pde", attributes: ["P1", "T9"]).hasPrefix(p))
        #expect(!(try CompositeKey.make(objectType: "pde", attributes: ["P10", "T9"]).hasPrefix(p)))
    }

    @Test func refusesReservedCharacters() {
        #expect(throws: CompositeKey.Failure.reservedCharacter(field: "attribute 0")) {
            try CompositeKey.make(objectType: "t", attributes: ["a\u{0}b"])
        }
        #expect(throws: CompositeKey.Failure.reservedCharacter(field: "attribute 1")) {
            try CompositeKey.make(objectType: "t", attributes: ["x", "\u{10FFFF}"])
        }
        #expect(throws: CompositeKey.Failure.emptyObjectType) { try CompositeKey.make(objectType: "", attributes: []) }
        #expect(throws: CompositeKey.Failure.notComposite("plain")) { try CompositeKey.split("plain") }
    }

    /// The byte-level test agrees with the definition (a reserved scalar anywhere) on strings made of
    /// the scalars around the reserved ones, in every position.
    @Test func theReservedScalarTestAgreesWithItsDefinition() throws {
        let scalars: [Unicode.Scalar] = [
            "a", "\u{0}", "\u{1}", "\u{7F}", "\u{FFFF}", "\u{F4}", "\u{100000}", "\u{10FFFE}", "\u{10FFFF}",
            "\u{10FFBF}", "\u{10F000}", "é",
        ]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...5, using: &rng) { s.append(scalars.randomElement(using: &rng)!) }
            let text = String(s)
            let reserved = text.unicodeScalars.contains { $0 == "\u{0}" || $0 == "\u{10FFFF}" }
            #expect(CompositeKey.hasReservedScalar(text) == reserved, "\(Array(text.unicodeScalars))")
            #expect((try? CompositeKey.make(objectType: "t", attributes: [text])) == nil ? reserved : !reserved)
        }
    }
}

@Suite struct EncodingTests {
    @Test func hexRoundTripsAndRejectsJunk() {
        let b: [UInt8] = [0, 1, 0xab, 0xff]
        #expect(Hex.encode(b) == "0001abff")
        // Every input shape takes the same encoding: contiguous (array, Data, slice), a sequence without
        // contiguous storage, nothing, a SHA-256 test vector.
        #expect(Hex.encode(Data(b)) == "0001abff")
        #expect(Hex.encode(b[1...]) == "01abff")
        #expect(Hex.encode(b.lazy.map { $0 }) == "0001abff")
        #expect(Hex.encode([UInt8]()) == "")
        let digest = LedgerHash.sha256(parts: Array("abc".utf8))
        #expect(Hex.encode(digest) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.decode("0001ABff") == b)
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test func heightEncodingSortsLikeHeights() {
        let hs = [
            Height(blockNum: 0, txNum: 5), Height(blockNum: 1, txNum: 0), Height(blockNum: 1, txNum: 256),
            Height(blockNum: 300, txNum: 1),
        ]
        for (a, b) in zip(hs, hs.dropFirst()) {
            #expect(a < b)
            #expect(a.encoded.lexicographicallyPrecedes(b.encoded))
        }
        #expect(Height(encoded: hs[2].encoded) == hs[2])
        #expect(Height(encoded: [1, 2, 3]) == nil)
    }

    @Test func channelAndNamespaceNames() {
        #expect(ChannelName.isValid("medchannel"))
        #expect(ChannelName.isValid("hospital-a.records2"))
        for bad in ["", "Upper", "1abc", "a b", "a_b", String(repeating: "a", count: 250)] {
            #expect(!ChannelName.isValid(bad), "\(bad)")
        }
        #expect(NamespaceName.isValid("medrecords"))
        #expect(!NamespaceName.isValid(""))
        #expect(!NamespaceName.isValid("a\u{0}"))
    }
}
