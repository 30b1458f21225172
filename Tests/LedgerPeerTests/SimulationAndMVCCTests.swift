import Foundation
import LedgerChaincode
import LedgerCore
import LedgerPeer
import LedgerProtos
import LedgerStorage
import Testing

/// A channel ledger in memory plus helpers to simulate, then commit what was simulated.
final class Harness {
    let ledger: ChannelLedger
    var txCounter = 0

    init() throws {
        ledger = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies)).createChannel("ch")
    }

    static let creator = CreatorIdentity(pid: "PID-A", org: "hospital-a", role: .doctor, certificatePEM: "")

    func simulate(_ function: String, _ args: [String]) -> SimulationResult {
        simulate(KVChaincode(), function, args)
    }

    func simulate(
        _ cc: any Chaincode, _ function: String, _ args: [String], transient: [String: [UInt8]] = [:],
        state: WorldStateReader? = nil
    ) -> SimulationResult {
        txCounter += 1
        let inv = Invocation(
            channel: "ch", txID: "tx-\(txCounter)", timestamp: Date(), creator: Self.creator, function: function,
            args: args.map { Array($0.utf8) }, transient: transient)
        return Simulator.simulate(cc, invocation: inv, state: state ?? ledger.state)
    }

    /// Orders the simulated transactions into one block, runs MVCC validation against the current state
    /// and commits; returns the codes.
    @discardableResult
    func commit(_ results: [SimulationResult]) throws -> [Medledger_TxValidationCode] {
        var envelopes = [[UInt8]]()
        for (i, r) in results.enumerated() {
            txCounter += 1
            let payload = try Medledger_Payload.endorserTransaction(
                channel: "ch", txID: "commit-\(txCounter)-\(i)", chaincode: "kv", results: r.results, creator: [],
                timestamp: Date())
            var env = Medledger_Envelope()
            env.payload = try payload.serializedBytes()
            envelopes.append(try env.serializedBytes())
        }
        var codes = results.map { _ in Medledger_TxValidationCode.valid }
        try MVCCValidator(state: ledger.state).validate(results.map(\.results), codes: &codes)
        let info = ledger.info
        try ledger.commit(
            .make(number: info.height, previousHash: info.tipHash, envelopes: envelopes, validationCodes: codes))
        return codes
    }

    func value(_ key: String) throws -> String? {
        try ledger.state.get(namespace: "kv", key: key).map { String(decoding: $0.value, as: UTF8.self) }
    }
}

@Suite struct SimulationTests {
    @Test func readsCarryVersionsAndWritesAreSortedAndBuffered() throws {
        let h = try Harness()
        try h.commit([h.simulate("put", ["b", "1"]), h.simulate("put", ["a", "0"])])
        struct Script: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                _ = try stub.getState("a")
                _ = try stub.getState("missing")
                try stub.putState("z", Array("last".utf8))
                try stub.putState("c", Array("first".utf8))
                try stub.delState("b")
                // No read-your-writes: the committed value is what a simulation sees.
                guard try stub.getState("c") == nil else { return .badRequest("saw its own write") }
                try stub.setEvent(name: "done", payload: Array(stub.transient["secret"] ?? []))
                return .ok()
            }
        }
        let r = h.simulate(Script(), "x", [], transient: ["secret": [7, 7]])
        #expect(r.response.isOK)
        let rw = try #require(r.results.nsRwset.first?.rwset)
        #expect(rw.reads.map(\.key) == ["a", "c", "missing"])
        #expect(rw.reads.first { $0.key == "a" }?.hasVersion == true)
        #expect(rw.reads.first { $0.key == "missing" }?.hasVersion == false)
        #expect(rw.writes.map(\.key) == ["b", "c", "z"])
        #expect(rw.writes.first { $0.key == "b" }?.isDelete == true)
        #expect(r.event?.eventName == "done")
        // Transient data reaches the chaincode but not the read-write set.
        #expect(rw.writes.allSatisfy { [UInt8]($0.value) != [7, 7] })
        try h.commit([r])
        #expect(try h.value("c") == "first")
        #expect(try h.value("b") == nil)
    }

    @Test func refusalsEndorseNothing() throws {
        let h = try Harness()
        let missing = h.simulate("get", ["nothing"])
        #expect(missing.response.status == 404)
        #expect(missing.results.nsRwset.isEmpty)
        #expect(h.simulate("put", ["", "v"]).response.status == 400)
        #expect(h.simulate("put", ["\u{0}raw", "v"]).response.status == 400)
        #expect(h.simulate("frobnicate", []).response.status == 400)
        let big = String(repeating: "x", count: (1 << 20) + 1)
        #expect(h.simulate("put", ["k", big]).response.status == 413)
    }

    @Test func rangeQueriesPageAndRecordWhatTheyRead() throws {
        let h = try Harness()
        try h.commit((0..<7).map { h.simulate("put", ["k\($0)", "v"]) })
        let first = h.simulate("range", ["k", "l", "3"])
        let body = try JSONSerialization.jsonObject(with: Data(first.response.payload)) as! [String: Any]
        #expect(body["keys"] as? [String] == ["k0", "k1", "k2"])
        let bookmark = try #require(body["bookmark"] as? String)
        let info = try #require(first.results.nsRwset.first?.rwset.rangeQueriesInfo.first)
        #expect(info.itrExhausted == false)
        #expect(info.rawReads.map(\.key) == ["k0", "k1", "k2"])
        let second = h.simulate("range", ["k", "l", "10", bookmark])
        let body2 = try JSONSerialization.jsonObject(with: Data(second.response.payload)) as! [String: Any]
        #expect(body2["keys"] as? [String] == ["k3", "k4", "k5", "k6"])
        #expect(second.results.nsRwset.first?.rwset.rangeQueriesInfo.first?.itrExhausted == true)
        #expect(second.results.nsRwset.first?.rwset.rangeQueriesInfo.first?.startKey == bookmark + "\u{0}")
    }

    @Test func partialCompositeKeyQueries() throws {
        let h = try Harness()
        struct Index: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                if stub.function == "add" {
                    let a = stub.stringArgs
                    try stub.putState(
                        try stub.createCompositeKey(objectType: "pde~patient", attributes: [a[0], a[1]]), [1])
                    return .ok()
                }
                let page = try stub.getStateByPartialCompositeKey(
                    objectType: "pde~patient", attributes: [stub.stringArgs[0]], pageSize: 10)
                let ids = try page.entries.map { try stub.splitCompositeKey($0.key).attributes[1] }
                return .ok(Array(ids.joined(separator: ",").utf8))
            }
        }
        try h.commit([
            h.simulate(Index(), "add", ["P1", "T1"]), h.simulate(Index(), "add", ["P1", "T2"]),
            h.simulate(Index(), "add", ["P10", "T3"]),
        ])
        let r = h.simulate(Index(), "list", ["P1"])
        #expect(String(decoding: r.response.payload, as: UTF8.self) == "T1,T2")
    }
}

@Suite struct MVCCTests {
    @Test func aStaleReadIsAConflictAndChangesNothing() throws {
        let h = try Harness()
        try h.commit([h.simulate("put", ["k", "1"])])
        struct ReadThenWrite: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                _ = try stub.getState("k")
                try stub.putState("k", Array("from-stale".utf8))
                return .ok()
            }
        }
        let stale = h.simulate(ReadThenWrite(), "x", [])  // reads k at its first version
        try h.commit([h.simulate("put", ["k", "2"])])
        #expect(try h.commit([stale]) == [.mvccReadConflict])
        #expect(try h.value("k") == "2")
    }

    @Test func laterTransactionsInABlockConflictWithEarlierWrites() throws {
        let h = try Harness()
        try h.commit([h.simulate("put", ["k", "0"])])
        struct Incr: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                let v = Int(String(decoding: try stub.getState("k") ?? [], as: UTF8.self)) ?? 0
                try stub.putState("k", Array("\(v + 1)".utf8))
                return .ok()
            }
        }
        let a = h.simulate(Incr(), "x", [])
        let b = h.simulate(Incr(), "x", [])
        #expect(try h.commit([a, b]) == [.valid, .mvccReadConflict])
        #expect(try h.value("k") == "1", "no lost update")
    }

    @Test func readingAnAbsentKeyThatAppearsIsAConflict() throws {
        let h = try Harness()
        let probe = h.simulate("get", ["new"])  // 404: endorses nothing; build the read by hand
        #expect(probe.response.status == 404)
        struct CreateIfAbsent: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                guard try stub.getState("new") == nil else { return .badRequest("exists") }
                try stub.putState("new", Array(stub.txID.utf8))
                return .ok()
            }
        }
        let first = h.simulate(CreateIfAbsent(), "x", [])
        let second = h.simulate(CreateIfAbsent(), "x", [])
        #expect(try h.commit([first]) == [.valid])
        #expect(try h.commit([second]) == [.mvccReadConflict])
    }

    @Test func insertionsAndDeletionsInAReadRangeArePhantoms() throws {
        let h = try Harness()
        try h.commit([h.simulate("put", ["a", "1"]), h.simulate("put", ["c", "1"])])
        struct CountRange: Chaincode {
            let name = "kv"
            func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
                let n = try stub.getStateByRange(startKey: "a", endKey: "d", pageSize: 100).entries.count
                try stub.putState("count", Array("\(n)".utf8))
                return .ok()
            }
        }
        let clean = h.simulate(CountRange(), "x", [])
        #expect(try h.commit([clean]) == [.valid])

        let insertedUnder = h.simulate(CountRange(), "x", [])
        try h.commit([h.simulate("put", ["b", "new"])])
        #expect(try h.commit([insertedUnder]) == [.phantomReadConflict])

        let deletedUnder = h.simulate(CountRange(), "x", [])
        try h.commit([h.simulate("del", ["a"])])
        #expect(try h.commit([deletedUnder]) == [.phantomReadConflict])

        // Written earlier in the same block.
        let c1 = h.simulate(CountRange(), "x", [])
        #expect(try h.commit([h.simulate("put", ["bb", "x"]), c1]) == [.valid, .phantomReadConflict])

        // A write outside the range does not matter.
        let unaffected = h.simulate(CountRange(), "x", [])
        try h.commit([h.simulate("put", ["zz", "x"])])
        #expect(try h.commit([unaffected]) == [.valid])
    }

    @Test func aPartialPageOnlyProtectsWhatItRead() throws {
        let h = try Harness()
        try h.commit(["a", "b", "c", "d"].map { h.simulate("put", [$0, "1"]) })
        let firstTwo = h.simulate("range", ["a", "z", "2"])  // reads a, b; not exhausted
        #expect(firstTwo.results.nsRwset.first?.rwset.rangeQueriesInfo.first?.itrExhausted == false)
        try h.commit([h.simulate("put", ["cc", "x"])])  // after the last key read
        // A read-only range query endorses no writes; MVCC still decides validity.
        var codes: [Medledger_TxValidationCode] = [.valid]
        try MVCCValidator(state: h.ledger.state).validate([firstTwo.results], codes: &codes)
        #expect(codes == [.valid])
        try h.commit([h.simulate("put", ["ab", "x"])])  // inside what was read
        codes = [.valid]
        try MVCCValidator(state: h.ledger.state).validate([firstTwo.results], codes: &codes)
        #expect(codes == [.phantomReadConflict])
    }

    func historyPage(_ r: SimulationResult) throws -> (entries: [[String: Any]], bookmark: String) {
        #expect(r.response.status == 200, "\(r.response.message)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(r.response.payload)) as? [String: Any])
        return (try #require(body["entries"] as? [[String: Any]]), try #require(body["bookmark"] as? String))
    }

    @Test func historyShowsEveryCommittedWrite() throws {
        let h = try Harness()
        try h.commit([h.simulate("put", ["k", "1"])])
        try h.commit([h.simulate("put", ["k", "2"])])
        try h.commit([h.simulate("del", ["k"])])
        let page = try historyPage(h.simulate("history", ["k"]))
        #expect(page.entries.map { $0["deleted"] as? Bool } == [false, false, true])
        #expect(page.bookmark == "", "everything fits one page")
    }

    /// `history K [BOOKMARK]` pages like `range`: past 10,000 writes of one key the first answer carries
    /// a bookmark, and following it returns the rest — every write once, in order.
    @Test func kvHistoryPagesPastTenThousandWrites() throws {
        let h = try Harness()
        let total = WorldStateReader.historyEntriesMax + 321
        for start in stride(from: 0, to: total, by: 2_500) {
            let codes = try h.commit((start..<min(start + 2_500, total)).map { h.simulate("put", ["k", "v\($0)"]) })
            #expect(codes.allSatisfy { $0 == .valid }, "blind writes of one key do not conflict")
        }
        let first = h.simulate("history", ["k"])
        let page1 = try historyPage(first)
        #expect(page1.entries.count == WorldStateReader.historyEntriesMax)
        #expect(page1.bookmark == page1.entries.last?["version"] as? String)
        #expect(
            first.results.nsRwset.allSatisfy { $0.rwset.reads.isEmpty && $0.rwset.rangeQueriesInfo.isEmpty },
            "history is not in the read set")
        let page2 = try historyPage(h.simulate("history", ["k", page1.bookmark]))
        #expect(page2.bookmark == "")
        let values = (page1.entries + page2.entries).compactMap {
            ($0["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(values == (0..<total).map { "v\($0)" })
        let bad = h.simulate("history", ["k", "not-a-version"])
        #expect(bad.response.status == 400 && bad.response.message.contains("bookmark"), "\(bad.response.message)")
    }
}
