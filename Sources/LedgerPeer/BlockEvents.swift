import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import Synchronization
import X509

/// Who may see chaincode event payloads in filtered blocks (docs/ACCESS.md): events can name T_IDs and
/// grantees, so only the identities that hold the ledger anyway see every one; anybody else sees the
/// events of transactions they created themselves, and tx ids and codes of the rest.
public enum EventAudience: Sendable, Equatable {
    /// Nodes and administrators of organisations that run a peer or orderer of the channel.
    case ledgerHolder
    /// Only the events of transactions this identity created.
    case creator(org: String, pid: String)
}

/// What event listeners see of a committed block: tx ids, validation codes, chaincode events — not
/// the transactions' arguments or read-write sets.
public enum BlockEvents {
    public static func filtered(
        _ block: Medledger_Block, channel: String, audience: EventAudience = .ledgerHolder
    ) -> Medledger_FilteredBlock {
        filtered(facts(block), number: block.header.number, channel: channel, audience: audience)
    }

    /// The filtered block `audience` sees, from the block's facts (`facts`, `BlockEventCache`).
    public static func filtered(
        _ facts: [TransactionEventFacts], number: UInt64, channel: String, audience: EventAudience = .ledgerHolder
    ) -> Medledger_FilteredBlock {
        var fb = Medledger_FilteredBlock()
        fb.channel = channel
        fb.number = number
        fb.transactions = facts.map { f in
            var ft = Medledger_FilteredTransaction()
            ft.code = f.code
            ft.txID = f.txID
            if let e = f.event, isEntitled(audience, creator: f.creator) { ft.events = [e] }
            return ft
        }
        return fb
    }

    /// What filtered blocks need of each transaction: its id, code, creator and chaincode event.
    public static func facts(_ block: Medledger_Block) -> [TransactionEventFacts] {
        let codes = block.metadata.validationCodes
        return block.data.envelopes.enumerated().map { i, bytes in
            let code = i < codes.count ? codes[i] : .notValidated
            var f = TransactionEventFacts(txID: "", code: code, creator: Data(), event: nil)
            guard let env = try? Medledger_Envelope(serializedBytes: bytes),
                let p = try? Medledger_Payload(serializedBytes: env.payload)
            else { return f }
            f.txID = p.channelHeader.txID
            f.creator = p.signatureHeader.creator
            guard p.channelHeader.type == .endorserTransaction,
                let tx = try? Medledger_EndorsedTransaction(serializedBytes: p.data),
                let prp = try? Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload),
                let (event, chaincodeName) = chaincodeEvent(prp.extension, wholeActionParsed: code.isValid)
            else { return f }
            if var e = event {
                e.txID = f.txID
                e.chaincodeName = chaincodeName
                f.event = e
            }
            return f
        }
    }

    /// The event and chaincode name of a serialized `ChaincodeAction`; nil if it does not parse. A
    /// valid transaction's action parsed whole at validation, so its event is read without decoding
    /// the read-write set again (most of the action's bytes: decoding it for every block and every
    /// subscriber was 1.7 % of a peer's CPU under P_DE load with one subscriber).
    static func chaincodeEvent(
        _ action: Data, wholeActionParsed: Bool
    ) -> (event: Medledger_ChaincodeEvent?, chaincodeName: String)? {
        if wholeActionParsed, let scanned = ChaincodeActionScan.eventAndName(action) { return scanned }
        guard let a = try? Medledger_ChaincodeAction(serializedBytes: action) else { return nil }
        return (a.hasEvent ? a.event : nil, a.chaincodeName)
    }

    /// True if `audience` may see what the transaction created by `creator` (a SerializedIdentity)
    /// carries beyond its id and code.
    public static func isEntitled(_ audience: EventAudience, creator: Data) -> Bool {
        switch audience {
        case .ledgerHolder: return true
        case .creator(let org, let pid):
            guard let owner = owner(of: creator) else { return false }
            return owner.mspID == org && owner.org == org && owner.pid == pid
        }
    }

    struct Owner: Sendable {
        var mspID: String
        var org: String
        var pid: String
    }

    /// Creator bytes → the certificate's owner, parsed once: every block's transactions are matched
    /// against every subscriber, and parsing the certificate each time was 4 % of a peer's CPU. A pure
    /// function of the bytes; bounded, emptied when full.
    private static let owners = Mutex<[WholeBytesKey: Owner?]>([:])
    private static let ownersMax = 1_024

    static func owner(of creator: Data) -> Owner? {
        let key = WholeBytesKey(creator)
        if let known = owners.withLock({ $0[key] }) { return known }
        var owner: Owner?
        if let id = try? Medledger_SerializedIdentity(serializedBytes: creator),
            let cert = try? Certificate(pemEncoded: String(decoding: id.idBytes, as: UTF8.self)),
            let attrs = cert.attributes
        {
            owner = Owner(mspID: id.mspID, org: attrs.org, pid: attrs.pid)
        }
        owners.withLock { cache in
            if cache.count >= ownersMax { cache.removeAll(keepingCapacity: true) }
            cache[key] = owner
        }
        return owner
    }
}

/// What a filtered block shows of one transaction, before the audience is applied.
public struct TransactionEventFacts: Sendable, Equatable {
    public var txID: String
    public var code: Medledger_TxValidationCode
    /// The creator's SerializedIdentity: who may see the event (`BlockEvents.isEntitled`).
    public var creator: Data
    public var event: Medledger_ChaincodeEvent?
}

/// Reads fields 2 (event) and 4 (chaincode name) of a serialized `ChaincodeAction` without decoding
/// field 1, the read-write set.
enum ChaincodeActionScan {
    /// nil when the bytes are anything but well-formed length-delimited fields, or repeat field 2 or 4
    /// (which protobuf would merge or override), or the event or name does not decode: the caller then
    /// decodes the whole message and gets protobuf's own answer.
    static func eventAndName(_ bytes: Data) -> (event: Medledger_ChaincodeEvent?, chaincodeName: String)? {
        // Ranges into the action's own bytes: the read-write set it skips is most of them, and is
        // never copied.
        bytes.withUnsafeBytes { b -> (event: Medledger_ChaincodeEvent?, chaincodeName: String)? in
            var i = 0
            var event: Range<Int>?
            var name: Range<Int>?
            while i < b.count {
                guard let key = varint(b, &i), key >> 3 > 0, key & 7 == 2, let length = varint(b, &i),
                    length <= UInt64(b.count - i)
                else { return nil }
                let field = i..<(i + Int(length))
                i += Int(length)
                switch key >> 3 {
                case 2:
                    guard event == nil else { return nil }
                    event = field
                case 4:
                    guard name == nil else { return nil }
                    name = field
                default: continue
                }
            }
            var decoded: Medledger_ChaincodeEvent?
            if let event {
                guard let e = try? Medledger_ChaincodeEvent(serializedBytes: Array(b[event])) else { return nil }
                decoded = e
            }
            guard let text = String(validating: b[name ?? 0..<0], as: UTF8.self) else { return nil }
            return (decoded, text)
        }
    }

    /// A base-128 varint of at most 10 bytes, or nil.
    private static func varint(_ b: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 70, by: 7) {
            guard i < b.count else { return nil }
            let byte = b[i]
            i += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
}

/// The facts of the channel's recent blocks, computed once and shared by every subscriber: each one
/// reading a block for itself multiplied the parsing by the number of subscribers. Committed blocks
/// never change, so a block's number is its key. Holds at most `capacity` blocks.
public final class BlockEventCache: Sendable {
    public let capacity: Int
    private let blocks = Mutex<[UInt64: [TransactionEventFacts]]>([:])

    public init(capacity: Int = 16) { self.capacity = max(1, capacity) }

    public func facts(for block: Medledger_Block) -> [TransactionEventFacts] {
        let n = block.header.number
        if let known = blocks.withLock({ $0[n] }) { return known }
        let computed = BlockEvents.facts(block)
        blocks.withLock { cache in
            if cache.count >= capacity, let oldest = cache.keys.min() { cache[oldest] = nil }
            cache[n] = computed
        }
        return computed
    }

    var count: Int { blocks.withLock { $0.count } }
}
