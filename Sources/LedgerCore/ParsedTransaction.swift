import Foundation
import LedgerProtos
import SwiftProtobuf

/// What the ledger needs from one envelope: its identity, its type, and its read-write set. The raw
/// envelope stays in the block; this is derived from it and never stored.
public struct ParsedTransaction: Sendable, Equatable {
    public var txID: String
    public var channelID: String
    public var type: Medledger_HeaderType
    public var timestamp: Google_Protobuf_Timestamp
    public var creator: [UInt8]
    public var chaincodeName: String
    /// nil for transactions that carry no read-write set (configuration).
    public var rwset: Medledger_TxReadWriteSet?

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case envelope(String)
        case payload(String)
        case missingTxID
        case transaction(String)

        public var description: String {
            switch self {
            case .envelope(let r): return "envelope does not parse: \(r)"
            case .payload(let r): return "payload does not parse: \(r)"
            case .missingTxID: return "channel header has no tx id"
            case .transaction(let r): return "endorsed transaction does not parse: \(r)"
            }
        }
    }

    /// A transaction from parts its caller decoded from the envelope already (the peer's validator):
    /// what `init(envelope:)` would make of the same bytes.
    public init(
        txID: String, channelID: String, type: Medledger_HeaderType, timestamp: Google_Protobuf_Timestamp,
        creator: [UInt8], chaincodeName: String, rwset: Medledger_TxReadWriteSet?
    ) {
        (self.txID, self.channelID, self.type, self.timestamp) = (txID, channelID, type, timestamp)
        (self.creator, self.chaincodeName, self.rwset) = (creator, chaincodeName, rwset)
    }

    /// Parses an `Envelope` down to its read-write set. Does not check signatures: that is the
    /// validator's job, before the block reaches the ledger.
    public init(envelope bytes: [UInt8]) throws(Failure) {
        let envelope: Medledger_Envelope
        do { envelope = try Medledger_Envelope(serializedBytes: bytes) } catch { throw .envelope("\(error)") }
        let payload: Medledger_Payload
        do { payload = try Medledger_Payload(serializedBytes: envelope.payload) } catch { throw .payload("\(error)") }
        let ch = payload.channelHeader
        guard !ch.txID.isEmpty else { throw .missingTxID }
        txID = ch.txID
        channelID = ch.channelID
        type = ch.type
        timestamp = ch.timestamp
        creator = [UInt8](payload.signatureHeader.creator)
        chaincodeName = ch.chaincodeName
        rwset = nil
        if ch.type == .endorserTransaction {
            do {
                let tx = try Medledger_EndorsedTransaction(serializedBytes: payload.data)
                let prp = try Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload)
                let action = try Medledger_ChaincodeAction(serializedBytes: prp.extension)
                rwset = action.results
            } catch {
                throw .transaction("\(error)")
            }
        }
    }

    /// The writes in commit order: namespace by namespace as the read-write set lists them.
    public var writes: [(namespace: String, write: Medledger_KVWrite)] {
        guard let rwset else { return [] }
        var out = [(namespace: String, write: Medledger_KVWrite)]()
        for ns in rwset.nsRwset {
            for w in ns.rwset.writes { out.append((ns.namespace, w)) }
        }
        return out
    }
}
