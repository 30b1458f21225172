import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import SwiftProtobuf

/// The client's half of a transaction, without I/O: a signed proposal, and from the endorsers'
/// responses the signed envelope for the orderer.
public enum TransactionBuilder {
    public struct Proposal: Sendable {
        public var signed: Medledger_SignedProposal
        public var proposal: Medledger_Proposal
        public var payload: Medledger_ChaincodeProposalPayload
        public var txID: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// With `signAlone: false` the proposal's own signature is left empty, for a client that signs
    /// the proposals it sends together with one signature (`ProposalBatchSigning`).
    public static func proposal(
        channel: String, chaincode: String, function: String, args: [[UInt8]], transient: [String: [UInt8]] = [:],
        signer: SigningIdentity, at time: Date, nonce: [UInt8] = TransactionID.newNonce(), signAlone: Bool = true
    ) throws -> Proposal {
        let txID = TransactionID.compute(nonce: nonce, creator: signer.serialized)
        var p = Medledger_Proposal()
        p.channelHeader.type = .endorserTransaction
        p.channelHeader.channelID = channel
        p.channelHeader.txID = txID
        p.channelHeader.timestamp = Google_Protobuf_Timestamp(date: time)
        p.channelHeader.chaincodeName = chaincode
        p.signatureHeader.creator = Data(signer.serialized)
        p.signatureHeader.nonce = Data(nonce)
        var payload = Medledger_ChaincodeProposalPayload()
        payload.chaincodeName = chaincode
        payload.input.function = function
        payload.input.args = args.map { Data($0) }
        payload.transient = transient.mapValues { Data($0) }
        p.payload = try payload.serializedBytes()
        var sp = Medledger_SignedProposal()
        sp.proposalBytes = try p.serializedBytes()
        if signAlone { sp.signature = Data(try signer.sign([UInt8](sp.proposalBytes))) }
        return Proposal(signed: sp, proposal: p, payload: payload, txID: txID)
    }

    /// The transaction envelope: every endorser must have produced the same response payload.
    public static func envelope(
        _ p: Proposal, responses: [Medledger_ProposalResponse], signer: SigningIdentity
    ) throws -> Medledger_Envelope {
        guard let prp = responses.first?.payload else { throw Failure(description: "no endorsements") }
        guard responses.allSatisfy(\.hasEndorsement) else {
            throw Failure(description: "a response carries no endorsement (a query's answer): it cannot be ordered")
        }
        for r in responses.dropFirst() where r.payload != prp {
            throw Failure(description: "endorsers disagree on the result (their states differ); retry")
        }
        var tx = Medledger_EndorsedTransaction()
        tx.proposalPayload = Data(try p.payload.strippedBytes())
        tx.proposalResponsePayload = prp
        tx.endorsements = responses.map(\.endorsement)
        var payload = Medledger_Payload()
        payload.channelHeader = p.proposal.channelHeader
        payload.signatureHeader = p.proposal.signatureHeader
        payload.data = try tx.serializedBytes()
        return try sign(payload, signer: signer)
    }

    public static func sign(_ payload: Medledger_Payload, signer: SigningIdentity) throws -> Medledger_Envelope {
        var env = Medledger_Envelope()
        env.payload = try payload.serializedBytes()
        env.signature = Data(try signer.sign([UInt8](env.payload)))
        return env
    }
}
