import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerOrderingCore
import LedgerProtos
import Testing

/// The raft apply decision without a cluster: what every consenter does with a committed log entry.
@Suite struct RaftEntryRulesTests {
    let f: ChannelFixture
    let context: ChannelContext

    init() throws {
        f = try ChannelFixture()
        context = try ConfigTransaction.verifyGenesis(f.genesis)
    }

    func block(_ n: UInt64, previous: [UInt8], signer: SigningIdentity) throws -> [UInt8] {
        var b = Medledger_Block.make(number: n, previousHash: previous, envelopes: [try f.envelope("put", ["k", "v"])])
        b.metadata.orderingSignature(signer: signer, headerHash: b.header.headerHash, at: f.now)
        return try b.serializedBytes()
    }

    func decide(_ entry: [UInt8]) throws -> RaftEntryRules.Decision {
        try RaftEntryRules.decide(
            entry, channel: "records", height: 1, context: context,
            headerHash: { $0 == 0 ? f.genesis.header.headerHash : nil })
    }

    @Test func theNextBlockSignedByAnOrdererNodeIsCommitted() throws {
        guard case .commit(let b, let newContext) = try decide(try block(1, previous: tip, signer: f.saNode)) else {
            Issue.record("the next block, signed by the orderer's node, was not committed")
            return
        }
        #expect(b.header.number == 1 && newContext == nil)
    }

    @Test func aBlockSignedByAnyoneElseIsSkippedWithAReason() throws {
        guard case .skip(let why?) = try decide(try block(1, previous: tip, signer: f.aDoctor)) else {
            Issue.record("a block signed by a doctor was not refused")
            return
        }
        #expect(why.contains("refused raft block 1"), "\(why)")
    }

    @Test func aBlockAheadOfTheLedgerIsCaughtUpToFirst() throws {
        guard case .catchUp(let n) = try decide(try block(5, previous: tip, signer: f.saNode)) else {
            Issue.record("a block ahead of the ledger did not ask for a catch-up")
            return
        }
        #expect(n == 5)
    }

    @Test func aBlockAlreadyHeldIsSkippedQuietlyAndADeposedLeadersIsSkippedWithAReason() throws {
        guard case .skip(nil) = try decide(try f.genesis.serializedBytes()) else {
            Issue.record("the block already held was not skipped quietly")
            return
        }
        guard case .skip(let why?) = try decide(try block(0, previous: [], signer: f.saNode)) else {
            Issue.record("another block at a held height was not skipped")
            return
        }
        #expect(why.contains("does not extend the chain"), "\(why)")
        guard case .skip(let garbage?) = try decide([0xff, 0x01, 0x02]) else {
            Issue.record("an entry that is no block was not skipped")
            return
        }
        #expect(garbage.contains("not a block"), "\(garbage)")
    }

    var tip: [UInt8] { f.genesis.header.headerHash }
}
