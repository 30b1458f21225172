import Foundation
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
        var fb = Medledger_FilteredBlock()
        fb.channel = channel
        fb.number = block.header.number
        let codes = block.metadata.validationCodes
        for (i, bytes) in block.data.envelopes.enumerated() {
            var ft = Medledger_FilteredTransaction()
            ft.code = i < codes.count ? codes[i] : .notValidated
            if let env = try? Medledger_Envelope(serializedBytes: bytes),
                let p = try? Medledger_Payload(serializedBytes: env.payload)
            {
                ft.txID = p.channelHeader.txID
                if p.channelHeader.type == .endorserTransaction,
                    let tx = try? Medledger_EndorsedTransaction(serializedBytes: p.data),
                    let prp = try? Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload),
                    let action = try? Medledger_ChaincodeAction(serializedBytes: prp.extension), action.hasEvent,
                    isEntitled(audience, creator: p.signatureHeader.creator)
                {
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
    private static let owners = Mutex<[Data: Owner?]>([:])
    private static let ownersMax = 1_024

    static func owner(of creator: Data) -> Owner? {
        if let known = owners.withLock({ $0[creator] }) { return known }
        var owner: Owner?
        if let id = try? Medledger_SerializedIdentity(serializedBytes: creator),
            let cert = try? Certificate(pemEncoded: String(decoding: id.idBytes, as: UTF8.self)),
            let attrs = cert.attributes
        {
            owner = Owner(mspID: id.mspID, org: attrs.org, pid: attrs.pid)
        }
        owners.withLock { cache in
            if cache.count >= ownersMax { cache.removeAll(keepingCapacity: true) }
            cache[creator] = owner
        }
        return owner
    }
}
