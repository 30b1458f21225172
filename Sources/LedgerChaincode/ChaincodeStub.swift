import Foundation
import LedgerCore
import LedgerProtos
import LedgerStorage

public enum StubError: Error, Equatable, CustomStringConvertible {
    case invalidKey(String)
    case valueTooLarge(key: String, size: Int, limit: Int)
    case tooManyWrites(limit: Int)
    case tooManyReads(limit: Int)
    case eventTooLarge(size: Int, limit: Int)
    case compositeKey(String)
    case noMembership

    /// A size or count limit was exceeded (413), rather than something malformed (400).
    public var isLimit: Bool {
        switch self {
        case .valueTooLarge, .tooManyWrites, .tooManyReads, .eventTooLarge: return true
        case .invalidKey, .compositeKey, .noMembership: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidKey(let why): return "invalid key: \(why)"
        case .valueTooLarge(let k, let s, let l):
            return "value of \(k.debugDescription) is \(s) bytes, over the limit of \(l)"
        case .tooManyWrites(let l): return "transaction writes more than \(l) keys"
        case .tooManyReads(let l): return "transaction reads more than \(l) keys"
        case .eventTooLarge(let s, let l): return "event payload is \(s) bytes, over the limit of \(l)"
        case .compositeKey(let m): return m
        case .noMembership: return "this simulation has no channel membership to check certificates against"
        }
    }
}

/// One page of a range or partial-composite-key query, as a chaincode sees it.
public struct QueryPage: Sendable, Equatable {
    public var entries: [(key: String, value: [UInt8])]
    public var bookmark: String?

    public static func == (a: QueryPage, b: QueryPage) -> Bool {
        a.bookmark == b.bookmark && a.entries.map(\.key) == b.entries.map(\.key)
            && a.entries.map(\.value) == b.entries.map(\.value)
    }
}

/// The chaincode's view of the ledger during a simulation. Reads see the committed state of the
/// snapshot the simulation started from (a chaincode does not read its own pending writes, as in
/// Fabric); every read is recorded with its version, every range read with the keys it returned, so
/// that validation can detect a conflicting commit (MVCC) or a phantom.
public final class ChaincodeStub {
    public let invocation: Invocation
    public let namespace: String
    let state: WorldStateReader
    let limits: SimulationLimits

    private var reads: [String: Medledger_KVRead] = [:]
    private var rangeQueries: [Medledger_RangeQueryInfo] = []
    private var writes: [String: Medledger_KVWrite] = [:]
    private var readCount = 0
    private(set) var event: Medledger_ChaincodeEvent?
    /// Certificates `validateMember` accepted, in first-use order: validation re-checks them against
    /// the channel's membership as of the block the transaction lands in. The creator's own
    /// certificate is left out: validation checks the creator under that membership already, and a
    /// second copy was 0.8 KB of every P_DE a doctor submits.
    private var checkedSigners: [String] = []

    init(invocation: Invocation, namespace: String, state: WorldStateReader, limits: SimulationLimits) {
        self.invocation = invocation
        self.namespace = namespace
        self.state = state
        self.limits = limits
    }

    // MARK: Proposal facts

    public var function: String { invocation.function }
    public var args: [[UInt8]] { invocation.args }
    public var stringArgs: [String] { invocation.args.map { String(decoding: $0, as: UTF8.self) } }
    public var txID: String { invocation.txID }
    public var channel: String { invocation.channel }
    public var timestamp: Date { invocation.timestamp }
    public var creator: CreatorIdentity { invocation.creator }
    public var transient: [String: [UInt8]] { invocation.transient }

    /// The member identity in `certificatePEM`, with its signing key, if it is a live signing
    /// certificate of a channel member at the proposal's timestamp; throws otherwise.
    public func validateMember(certificatePEM: String) throws -> ValidatedSigner {
        guard let members = invocation.members else { throw StubError.noMembership }
        let signer = try members.validateSigner(certificatePEM: certificatePEM, at: invocation.timestamp)
        // Bytes, not String equality (which holds for canonically equivalent Unicode): the offline check
        // (LEDGER_FORMATS §8) compares the record's certificate with the creator's byte for byte.
        let isCreators = certificatePEM.utf8.elementsEqual(invocation.creator.certificatePEM.utf8)
        if !isCreators, !checkedSigners.contains(where: { $0.utf8.elementsEqual(certificatePEM.utf8) }) {
            checkedSigners.append(certificatePEM)
        }
        return signer
    }

    // MARK: State

    public func getState(_ key: String) throws -> [UInt8]? {
        try checkKey(key, allowComposite: true)
        let v = try state.get(namespace: namespace, key: key)
        try recordRead(key, v?.version)
        return v?.value
    }

    public func putState(_ key: String, _ value: [UInt8]) throws {
        try checkKey(key, allowComposite: true)
        guard value.count <= limits.valueBytesMax else {
            throw StubError.valueTooLarge(key: key, size: value.count, limit: limits.valueBytesMax)
        }
        var w = Medledger_KVWrite()
        w.key = key
        w.value = Data(value)
        try record(w)
    }

    public func delState(_ key: String) throws {
        try checkKey(key, allowComposite: true)
        var w = Medledger_KVWrite()
        w.key = key
        w.isDelete = true
        try record(w)
    }

    /// Keys in [startKey, endKey) (empty end: to the end), one page at a time.
    public func getStateByRange(
        startKey: String, endKey: String, pageSize: Int, bookmark: String? = nil
    ) throws -> QueryPage {
        if !startKey.isEmpty { try checkKey(startKey, allowComposite: false) }
        if !endKey.isEmpty { try checkKey(endKey, allowComposite: false) }
        let page = try state.range(
            namespace: namespace, startKey: startKey, endKey: endKey, limit: pageSize, bookmark: bookmark)
        // After a bookmark the page starts just past it (or at startKey if that is later), in byte order.
        var effectiveStart = startKey
        if let bookmark, Self.utf8Less(startKey, bookmark + "\u{0}") { effectiveStart = bookmark + "\u{0}" }
        try recordRange(start: effectiveStart, end: endKey, page: page)
        return QueryPage(entries: page.entries.map { ($0.key, $0.value.value) }, bookmark: page.bookmark)
    }

    /// Composite keys of `objectType` whose leading attributes are `attributes`, one page at a time.
    public func getStateByPartialCompositeKey(
        objectType: String, attributes: [String], pageSize: Int, bookmark: String? = nil
    ) throws -> QueryPage {
        let prefix: String
        do { prefix = try CompositeKey.partial(objectType: objectType, attributes: attributes) } catch {
            throw StubError.compositeKey(error.description)
        }
        let page = try state.prefix(namespace: namespace, keyPrefix: prefix, limit: pageSize, bookmark: bookmark)
        // As a range: [prefix, prefix + U+10FFFF) — what validation re-reads.
        let start = bookmark.map { $0 + "\u{0}" } ?? prefix
        try recordRange(start: start, end: prefix + "\u{10FFFF}", page: page)
        return QueryPage(entries: page.entries.map { ($0.key, $0.value.value) }, bookmark: page.bookmark)
    }

    public func createCompositeKey(objectType: String, attributes: [String]) throws -> String {
        do { return try CompositeKey.make(objectType: objectType, attributes: attributes) } catch {
            throw StubError.compositeKey(error.description)
        }
    }

    public func splitCompositeKey(_ key: String) throws -> (objectType: String, attributes: [String]) {
        do { return try CompositeKey.split(key) } catch { throw StubError.compositeKey(error.description) }
    }

    /// The first `limit` committed writes of `key`, oldest first (the first page of the paged form
    /// below). Not recorded in the read set (as in Fabric: history is informational and not protected
    /// by MVCC).
    public func getHistoryForKey(
        _ key: String, limit: Int = WorldStateReader.historyEntriesMax
    ) throws -> [HistoryEntry] {
        try checkKey(key, allowComposite: true)
        return try state.history(namespace: namespace, key: key, limit: limit)
    }

    /// Every committed write of `key`, oldest first, one page at a time, as range queries page: start
    /// with no bookmark, pass back each page's bookmark until it is nil. Not recorded in the read set.
    public func getHistoryForKey(
        _ key: String, pageSize: Int = WorldStateReader.historyEntriesMax, bookmark: String?
    ) throws -> HistoryPage {
        try checkKey(key, allowComposite: true)
        return try state.history(namespace: namespace, key: key, limit: pageSize, bookmark: bookmark)
    }

    /// One event per transaction; a second call replaces the first.
    public func setEvent(name: String, payload: [UInt8]) throws {
        guard payload.count <= limits.eventPayloadBytesMax else {
            throw StubError.eventTooLarge(size: payload.count, limit: limits.eventPayloadBytesMax)
        }
        var e = Medledger_ChaincodeEvent()
        e.chaincodeName = namespace
        e.txID = txID
        e.eventName = name
        e.payload = Data(payload)
        event = e
    }

    // MARK: Recording

    /// The read-write set, writes sorted by key so that every endorser produces identical bytes.
    func readWriteSet() -> Medledger_TxReadWriteSet {
        var rw = Medledger_KVRWSet()
        rw.reads = reads.values.sorted { Self.utf8Less($0.key, $1.key) }
        rw.rangeQueriesInfo = rangeQueries
        rw.writes = writes.values.sorted { Self.utf8Less($0.key, $1.key) }
        var ns = Medledger_NsReadWriteSet()
        ns.namespace = namespace
        ns.rwset = rw
        var set = Medledger_TxReadWriteSet()
        set.nsRwset = [ns]
        set.checkedSigners = checkedSigners.map { Data($0.utf8) }
        return set
    }

    /// Byte order of UTF-8, which is the order of keys in storage (Swift's `<` on String is not).
    static func utf8Less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    private func recordRead(_ key: String, _ version: Height?) throws {
        readCount += 1
        guard readCount <= limits.readsMax else { throw StubError.tooManyReads(limit: limits.readsMax) }
        guard reads[key] == nil else { return }
        var r = Medledger_KVRead()
        r.key = key
        if let version {
            r.version.blockNum = version.blockNum
            r.version.txNum = version.txNum
        }
        reads[key] = r
    }

    private func recordRange(start: String, end: String, page: StatePage) throws {
        readCount += page.count
        guard readCount <= limits.readsMax else { throw StubError.tooManyReads(limit: limits.readsMax) }
        var info = Medledger_RangeQueryInfo()
        info.startKey = start
        info.endKey = end
        info.itrExhausted = page.bookmark == nil
        info.rawReads = (0..<page.count).map { i in
            var r = Medledger_KVRead()
            r.key = page.key(at: i)
            let v = page.version(at: i)
            r.version.blockNum = v.blockNum
            r.version.txNum = v.txNum
            return r
        }
        rangeQueries.append(info)
    }

    private func record(_ w: Medledger_KVWrite) throws {
        if writes[w.key] == nil, writes.count >= limits.writesMax {
            throw StubError.tooManyWrites(limit: limits.writesMax)
        }
        writes[w.key] = w
    }

    private func checkKey(_ key: String, allowComposite: Bool) throws {
        guard !key.isEmpty else { throw StubError.invalidKey("empty") }
        guard key.utf8.count <= limits.keyBytesMax else {
            throw StubError.invalidKey("longer than \(limits.keyBytesMax) bytes")
        }
        if key.unicodeScalars.first == "\u{0}" && !allowComposite {
            throw StubError.invalidKey("a simple key may not start with U+0000 (reserved for composite keys)")
        }
        if key.unicodeScalars.first == "\u{0}", (try? CompositeKey.split(key)) == nil {
            throw StubError.invalidKey("starts with U+0000 but is not a composite key")
        }
    }
}
