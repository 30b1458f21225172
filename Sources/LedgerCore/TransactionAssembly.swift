import Foundation
import LedgerProtos
import SwiftProtobuf

/// Assembles the unsigned parts of an endorser transaction. The caller signs the serialized payload
/// (exactly those bytes) and wraps payload + signature in an `Envelope`.
extension Medledger_TxReadWriteSet {
    /// A read-write set with only writes, in one namespace. A nil value deletes the key.
    public static func writes(namespace: String, _ writes: [(key: String, value: [UInt8]?)]) -> Medledger_TxReadWriteSet
    {
        var rw = Medledger_KVRWSet()
        rw.writes = writes.map { key, value in
            var w = Medledger_KVWrite()
            w.key = key
            if let value { w.value = Data(value) } else { w.isDelete = true }
            return w
        }
        var ns = Medledger_NsReadWriteSet()
        ns.namespace = namespace
        ns.rwset = rw
        var set = Medledger_TxReadWriteSet()
        set.nsRwset = [ns]
        return set
    }
}

extension Medledger_Payload {
    public static func endorserTransaction(
        channel: String, txID: String, chaincode: String, results: Medledger_TxReadWriteSet,
        creator: [UInt8], timestamp: Date
    ) throws -> Medledger_Payload {
        var action = Medledger_ChaincodeAction()
        action.results = results
        action.response.status = 200
        action.chaincodeName = chaincode
        var prp = Medledger_ProposalResponsePayload()
        prp.extension = try action.serializedBytes()
        var tx = Medledger_EndorsedTransaction()
        tx.proposalResponsePayload = try prp.serializedBytes()

        var payload = Medledger_Payload()
        payload.channelHeader.type = .endorserTransaction
        payload.channelHeader.channelID = channel
        payload.channelHeader.txID = txID
        payload.channelHeader.chaincodeName = chaincode
        payload.channelHeader.timestamp = Google_Protobuf_Timestamp(date: timestamp)
        payload.signatureHeader.creator = Data(creator)
        payload.data = try tx.serializedBytes()
        return payload
    }
}
