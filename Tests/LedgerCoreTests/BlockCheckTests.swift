import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProtos
import Testing

/// Minimal envelopes for core tests (the storage tests use the signed sample factory).
enum Fixture {
    static func envelope(
        txID: String, channel: String = "ch", writes: [(String, String?)] = [("k", "v")], namespace: String = "kv"
    ) -> [UInt8] {
        let results = Medledger_TxReadWriteSet.writes(
            namespace: namespace, writes.map { ($0.0, $0.1.map { Array($0.utf8) }) })
        let payload = try! Medledger_Payload.endorserTransaction(
            channel: channel, txID: txID, chaincode: namespace, results: results, creator: [], timestamp: Date())
        var env = Medledger_Envelope()
        env.payload = try! payload.serializedBytes()
        env.signature = Data([1, 2, 3])
        return try! env.serializedBytes()
    }

    static func block(
        _ n: UInt64, prev: [UInt8], txIDs: [String], codes: [Medledger_TxValidationCode]? = nil
    ) -> Medledger_Block {
        .make(
            number: n, previousHash: prev, envelopes: txIDs.map { envelope(txID: $0) },
            validationCodes: codes ?? txIDs.map { _ in .valid })
    }
}

@Suite struct BlockCheckTests {
    let limits = LedgerLimits()

    func check(
        _ b: Medledger_Block, expected: UInt64 = 0, prev: [UInt8] = LedgerHash.zero, limits: LedgerLimits? = nil
    ) throws(BlockRejection) -> CheckedBlock {
        try BlockCheck.check(
            b, channel: "ch", expectedNumber: expected, previousHash: prev, limits: limits ?? self.limits)
    }

    @Test func acceptsAChainOfBlocks() throws {
        let b0 = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "b"])
        let c0 = try check(b0)
        #expect(c0.validTransactions.map(\.transaction.txID) == ["a", "b"])
        let b1 = Fixture.block(1, prev: c0.headerHash, txIDs: ["c"])
        #expect(try check(b1, expected: 1, prev: c0.headerHash).number == 1)
    }

    @Test func headerHashCoversEveryHeaderField() {
        let b = Fixture.block(5, prev: LedgerHash.zero, txIDs: ["a"]).header
        var n = b
        n.number = 6
        var p = b
        p.previousHash = Data(repeating: 1, count: 32)
        var d = b
        d.dataHash = Data(repeating: 2, count: 32)
        #expect(Set([b.headerHash, n.headerHash, p.headerHash, d.headerHash]).count == 4)
        #expect(b.headerHash == b.headerHash)
    }

    @Test func rejectsWrongNumber() {
        #expect(throws: BlockRejection.unexpectedNumber(expected: 0, got: 1)) {
            try check(Fixture.block(1, prev: LedgerHash.zero, txIDs: ["a"]))
        }
    }

    @Test func rejectsBrokenPreviousHash() {
        var prev = LedgerHash.zero
        prev[0] = 9
        #expect(throws: BlockRejection.self) { try check(Fixture.block(0, prev: prev, txIDs: ["a"])) }
    }

    @Test func rejectsDataHashMismatch() throws {
        var b = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "b"])
        b.data.envelopes[1] = Data(Fixture.envelope(txID: "evil"))
        do {
            _ = try check(b)
            Issue.record("tampered envelope accepted")
        } catch {
            guard case .dataHashMismatch(let n, _, _) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(n == 0)
        }
    }

    @Test func rejectsShortHashes() {
        var b = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a"])
        b.header.previousHash = Data([1, 2])
        #expect(throws: BlockRejection.badHashLength(field: "previous_hash", length: 2)) { try check(b) }
        var h = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a"])
        h.clearHeader()
        #expect(throws: BlockRejection.missingHeader) { try check(h) }
    }

    @Test func enforcesLimits() {
        let b = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "b", "c"])
        #expect(throws: BlockRejection.tooManyTransactions(number: 0, count: 3, limit: 2)) {
            try check(
                b, limits: LedgerLimits(blockBytesMax: 1 << 20, envelopeBytesMax: 1 << 20, transactionsPerBlockMax: 2))
        }
        let size = Fixture.envelope(txID: "a").count
        #expect(throws: BlockRejection.envelopeTooLarge(number: 0, txNum: 0, size: size, limit: 10)) {
            try check(
                b, limits: LedgerLimits(blockBytesMax: 1 << 20, envelopeBytesMax: 10, transactionsPerBlockMax: 10))
        }
    }

    @Test func requiresOneValidationCodePerTransaction() {
        var b = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "b"])
        b.metadata.validationCodes.removeLast()
        #expect(throws: BlockRejection.validationCodeCount(number: 0, envelopes: 2, codes: 1)) { try check(b) }
    }

    @Test func garbageIsAllowedOnlyWhenMarkedInvalid() throws {
        let garbage: [UInt8] = [0xff, 0xff, 0xff]
        let marked = Medledger_Block.make(
            number: 0, previousHash: LedgerHash.zero, envelopes: [garbage], validationCodes: [.badPayload])
        let c = try check(marked)
        #expect(c.transactions[0] == nil)
        #expect(c.validTransactions.isEmpty)
        let claimed = Medledger_Block.make(
            number: 0, previousHash: LedgerHash.zero, envelopes: [garbage], validationCodes: [.valid])
        #expect(throws: BlockRejection.self) { try check(claimed) }
    }

    @Test func rejectsOtherChannelsAndDuplicateIDsInsideABlock() {
        let other = Medledger_Block.make(
            number: 0, previousHash: LedgerHash.zero, envelopes: [Fixture.envelope(txID: "a", channel: "other")],
            validationCodes: [.valid])
        #expect(throws: BlockRejection.wrongChannel(number: 0, txNum: 0, expected: "ch", got: "other")) {
            try check(other)
        }
        let dup = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "a"])
        #expect(throws: BlockRejection.self) { try check(dup) }
        // The same id twice is fine when the second is already marked invalid (DUPLICATE_TXID)...
        let marked = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a", "a"], codes: [.valid, .duplicateTxid])
        #expect(throws: Never.self) { try check(marked) }
        // ...but not when a valid copy follows an invalid one: the index would name the wrong envelope.
        let validSecond = Fixture.block(
            0, prev: LedgerHash.zero, txIDs: ["a", "a"], codes: [.mvccReadConflict, .valid])
        #expect(throws: BlockRejection.self) { try check(validSecond) }
    }

    @Test func undefinedValidationCodesAreRefused() {
        var b = Fixture.block(0, prev: LedgerHash.zero, txIDs: ["a"])
        b.metadata.validationCodes = [.UNRECOGNIZED(256)]
        #expect(throws: BlockRejection.undefinedValidationCode(number: 0, txNum: 0, code: 256)) { try check(b) }
    }

    @Test func parsesLargeBlocksInParallelToTheSameResult() throws {
        let ids = (0..<300).map { "tx\($0)" }
        let c = try check(Fixture.block(0, prev: LedgerHash.zero, txIDs: ids))
        #expect(c.validTransactions.map(\.transaction.txID) == ids)
    }
}
