import Foundation
import LedgerProtos

/// What event listeners see of a committed block: tx ids, validation codes, chaincode events — not
/// the transactions' arguments or read-write sets.
public enum BlockEvents {
    public static func filtered(_ block: Medledger_Block, channel: String) -> Medledger_FilteredBlock {
        var fb = Medledger_FilteredBlock()
        fb.channel = channel
        fb.number = block.header.number
        let codes = block.metadata.validationCodes
        for (i, bytes) in block.data.envelopes.enumerated() {
            var ft = Medledger_FilteredTransaction()
            ft.code = i < codes.count ? codes[i] : .notValidated
            if let env = try? Medledger_Envelope(serializedBytes: bytes), let p = try? Medledger_Payload(serializedBytes: env.payload) {
                ft.txID = p.channelHeader.txID
                if p.channelHeader.type == .endorserTransaction,
                   let tx = try? Medledger_EndorsedTransaction(serializedBytes: p.data),
                   let prp = try? Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload),
                   let action = try? Medledger_ChaincodeAction(serializedBytes: prp.extension), action.hasEvent {
                    var e = action.event
                    e.txID = ft.txID
                    e.chaincodeName = action.chaincodeName
                    ft.events = [e]
                }
            }
            fb.transactions.append(ft)
        }
        return fb
    }
}
