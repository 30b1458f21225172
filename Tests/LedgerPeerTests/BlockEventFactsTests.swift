import Foundation
import LedgerProtos
import SwiftProtobuf
import Testing

@testable import LedgerPeer

/// Filtered blocks from facts parsed once (and without the read-write set) show exactly what a
/// parse of the whole block shows.
@Suite struct BlockEventFactsTests {
    static func action(event: Bool, name: String = "medrecords") throws -> Medledger_ChaincodeAction {
        var a = Medledger_ChaincodeAction()
        var w = Medledger_KVWrite()
        w.key = "k"
        w.value = Data(repeating: 7, count: 2_000)
        var ns = Medledger_NsReadWriteSet()
        ns.namespace = name
        ns.rwset.writes = [w]
        a.results.nsRwset = [ns]
        a.results.checkedSigners = [Data("-----BEGIN CERTIFICATE-----".utf8)]
        a.response.status = 200
        a.chaincodeName = name
        if event {
            a.event.eventName = "indexRecordAdded"
            a.event.payload = Data(#"{"record_id":"R-1"}"#.utf8)
        }
        return a
    }

    /// Field `number`, length-delimited, holding `bytes`.
    static func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count < 128)
        return [number << 3 | 2, UInt8(bytes.count)] + bytes
    }

    @Test func theScanReadsWhatTheWholeParseReads() throws {
        for (event, name) in [(true, "medrecords"), (false, "medrecords"), (true, ""), (false, "")] {
            let bytes = try Data(Self.action(event: event, name: name).serializedBytes() as [UInt8])
            let whole = try Medledger_ChaincodeAction(serializedBytes: bytes)
            let scanned = try #require(ChaincodeActionScan.eventAndName(bytes))
            #expect(scanned.event == (whole.hasEvent ? whole.event : nil))
            #expect(scanned.chaincodeName == whole.chaincodeName)
        }
        let base: [UInt8] = try Self.action(event: true).serializedBytes()
        var event = Medledger_ChaincodeEvent()
        event.eventName = "second"
        // What protobuf merges (a repeated message field), keeps as unknown (another wire type) or
        // refuses (truncated): the scan declines, and the caller parses the whole action.
        let declined: [[UInt8]] = [
            base + Self.field(2, try event.serializedBytes()), base + Self.field(4, Array("other".utf8)),
            base + [9 << 3, 1], Array(base.dropLast()), base + Self.field(4, [0xFF]),
        ]
        for bytes in declined { #expect(ChaincodeActionScan.eventAndName(Data(bytes)) == nil) }
        // An unknown length-delimited field is skipped, as protobuf would.
        let extra = try #require(ChaincodeActionScan.eventAndName(Data(base + Self.field(9, [1, 2]))))
        #expect(extra.event?.eventName == "indexRecordAdded" && extra.chaincodeName == "medrecords")
    }

    static func envelope(_ txID: String, creator: String, action: Medledger_ChaincodeAction) throws -> [UInt8] {
        try envelope(txID, creator: creator, actionBytes: try action.serializedBytes())
    }

    /// An endorser transaction's envelope around a serialized action (unsigned: nothing here checks).
    static func envelope(_ txID: String, creator: String, actionBytes: [UInt8]) throws -> [UInt8] {
        var prp = Medledger_ProposalResponsePayload()
        prp.extension = Data(actionBytes)
        var tx = Medledger_EndorsedTransaction()
        tx.proposalResponsePayload = try prp.serializedBytes()
        var p = Medledger_Payload()
        p.channelHeader.type = .endorserTransaction
        p.channelHeader.txID = txID
        p.signatureHeader.creator = Data(creator.utf8)
        p.data = try tx.serializedBytes()
        var e = Medledger_Envelope()
        e.payload = try p.serializedBytes()
        return try e.serializedBytes()
    }

    /// The filtered block as it was made before facts: every envelope parsed whole, for each subscriber.
    static func reference(
        _ block: Medledger_Block
    ) -> [(String, Medledger_TxValidationCode, [Medledger_ChaincodeEvent])] {
        block.data.envelopes.enumerated().map { i, bytes in
            let code = block.metadata.validationCodes[i]
            guard let env = try? Medledger_Envelope(serializedBytes: bytes),
                let p = try? Medledger_Payload(serializedBytes: env.payload)
            else { return ("", code, []) }
            guard let tx = try? Medledger_EndorsedTransaction(serializedBytes: p.data),
                let prp = try? Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload),
                let a = try? Medledger_ChaincodeAction(serializedBytes: prp.extension), a.hasEvent
            else { return (p.channelHeader.txID, code, []) }
            var e = a.event
            e.txID = p.channelHeader.txID
            e.chaincodeName = a.chaincodeName
            return (p.channelHeader.txID, code, [e])
        }
    }

    @Test func factsGiveTheFilteredBlockAWholeParseGives() throws {
        var block = Medledger_Block()
        block.header.number = 5
        // An action whose read-write set does not decode but whose event would: protobuf refuses the
        // whole action, so an invalid transaction carrying it shows no event.
        var event = Medledger_ChaincodeEvent()
        event.eventName = "e"
        let broken = Self.field(1, [0xFF, 0xFF]) + Self.field(2, try event.serializedBytes()) + Self.field(4, [0x61])
        #expect((try? Medledger_ChaincodeAction(serializedBytes: broken)) == nil)
        block.data.envelopes = [
            Data(try Self.envelope("t1", creator: "c1", action: try Self.action(event: true))),
            Data(try Self.envelope("t2", creator: "c2", action: try Self.action(event: false))),
            Data(try Self.envelope("t3", creator: "c3", action: try Self.action(event: true))),
            Data([1, 2, 3]), Data(try Self.envelope("t5", creator: "c5", actionBytes: broken)),
        ]
        block.metadata.validationCodes = [.valid, .valid, .mvccReadConflict, .badPayload, .endorsementPolicyFailure]
        let filtered = BlockEvents.filtered(block, channel: "ch")
        #expect(filtered.number == 5 && filtered.channel == "ch")
        let got = filtered.transactions.map { ($0.txID, $0.code, $0.events) }
        let want = Self.reference(block)
        #expect(got.count == want.count)
        for (g, w) in zip(got, want) { #expect(g.0 == w.0 && g.1 == w.1 && g.2 == w.2) }
        #expect(got[0].2.first?.txID == "t1" && got[2].2.count == 1 && got[1].2.isEmpty && got[4].2.isEmpty)
        // A subscriber that is not the creator sees ids and codes only.
        let stranger = BlockEvents.filtered(block, channel: "ch", audience: .creator(org: "o", pid: "p"))
        #expect(stranger.transactions.allSatisfy { $0.events.isEmpty })
        #expect(stranger.transactions.map(\.txID) == ["t1", "t2", "t3", "", "t5"])
    }

    @Test func theCacheParsesABlockOnceAndKeepsOnlyTheNewest() throws {
        let cache = BlockEventCache(capacity: 4)
        var blocks = [Medledger_Block]()
        for n in 0..<10 {
            var b = Medledger_Block()
            b.header.number = UInt64(n)
            b.data.envelopes = [Data(try Self.envelope("t\(n)", creator: "c", action: try Self.action(event: true)))]
            b.metadata.validationCodes = [.valid]
            blocks.append(b)
            #expect(cache.facts(for: b) == BlockEvents.facts(b))
            #expect(cache.count <= 4)
        }
        // A cached block's facts come back without the block being parsed again: a block that says
        // otherwise under the same number is not read.
        var impostor = blocks[9]
        impostor.data.envelopes = []
        #expect(cache.facts(for: impostor).map(\.txID) == ["t9"])
        #expect(cache.facts(for: blocks[0]).map(\.txID) == ["t0"])
        #expect(cache.count == 4)
    }
}
