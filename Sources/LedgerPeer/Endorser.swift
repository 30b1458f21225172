import Crypto
import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import SwiftProtobuf

/// A proposal refused before simulation, with the EMR-IG status the node answers.
public struct ProposalRejection: Error, Equatable, CustomStringConvertible {
    public var status: Int32  // 400, 401, 403, 404, 409
    public var message: String
    public var description: String { "[\(status)] \(message)" }
    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// A signed proposal, parsed (not yet checked against a channel).
public struct ParsedProposal: Sendable {
    public var signed: Medledger_SignedProposal
    public var proposal: Medledger_Proposal
    public var payload: Medledger_ChaincodeProposalPayload
    public var channel: String { proposal.channelHeader.channelID }
    public var txID: String { proposal.channelHeader.txID }
    /// The signature of the batch this proposal came in, when its client signed the batch instead
    /// of each proposal (`ProposalBatchSigning`); nil for a proposal signed alone.
    public var batchSignature: ProposalBatchSignature?

    public init(
        _ signed: Medledger_SignedProposal, batchSignature: ProposalBatchSignature? = nil
    )
        throws(ProposalRejection)
    {
        self.signed = signed
        self.batchSignature = batchSignature
        do { proposal = try Medledger_Proposal(serializedBytes: signed.proposalBytes) } catch {
            throw ProposalRejection(400, "proposal does not parse: \(error)")
        }
        do { payload = try Medledger_ChaincodeProposalPayload(serializedBytes: proposal.payload) } catch {
            throw ProposalRejection(400, "proposal payload does not parse: \(error)")
        }
    }
}

/// The endorser: checks a signed proposal, runs the chaincode in a simulation against a state
/// snapshot, and signs what it produced. Nothing is written; the client assembles the transaction.
public struct Endorser: Sendable {
    public let identity: SigningIdentity
    public let chaincodes: [String: any Chaincode]
    /// How far a proposal's timestamp may be from this node's clock.
    public var clockSkewMax: TimeInterval = 15 * 60
    public var limits = SimulationLimits()
    /// Remembers the endorsements made here, so this peer's validator can skip re-verifying them.
    public let signatures = SignatureMemory()
    /// The node's freshest revocations: creators and the signers a chaincode checks are refused here
    /// as soon as the node knows, before the channel's CRL catches up.
    public var revocationGate: (any RevocationGate)?
    /// This node's own refusal of a creator (a suspension), nil to admit: an admission rule of this
    /// node, never a validation rule, and for the creator only (not for the signers a chaincode checks).
    public var creatorGate: (@Sendable (CreatorIdentity) -> String?)?
    /// Why this node takes no writes now (its audit log is failing), nil to take them: a proposal
    /// whose simulation writes is refused with 503; reads are still answered.
    public var writeGate: (@Sendable () -> String?)?

    public init(identity: SigningIdentity, chaincodes: [any Chaincode]) {
        self.identity = identity
        self.chaincodes = Dictionary(chaincodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Checks and simulates. Refusals before simulation throw; a chaincode's own refusal (403, 404, …)
    /// comes back as a response without an endorsement.
    public func process(
        _ p: ParsedProposal, context: ChannelContext, state: WorldStateReader, now: Date,
        isCommitted: (String) throws -> Bool
    ) throws(ProposalRejection) -> Medledger_ProposalResponse {
        let time = try checkHeaders(p, now: now)
        let creator = try admitCreator(p, context: context, at: time)
        let chaincode = try definedChaincode(p, context: context)
        // A query is never ordered, so whether its tx id was committed does not matter.
        if !p.signed.evaluateOnly {
            let txID = p.proposal.channelHeader.txID
            let duplicate: Bool
            do { duplicate = try isCommitted(txID) } catch { throw ProposalRejection(500, "ledger: \(error)") }
            guard !duplicate else { throw ProposalRejection(409, "transaction \(txID) is already committed") }
        }

        let invocation = Invocation(
            channel: context.channel, txID: p.proposal.channelHeader.txID, timestamp: time,
            creator: creator.identity, function: p.payload.input.function,
            args: p.payload.input.args.map { [UInt8]($0) }, transient: p.payload.transient.mapValues { [UInt8]($0) },
            members: revocationGate.map { GatedMembers(context.members, gate: $0) } ?? context.members)
        let result = Simulator.simulate(chaincode, invocation: invocation, state: state, limits: limits)

        var response = Medledger_ProposalResponse()
        response.response.status = result.response.status
        response.response.message = result.response.message
        response.response.payload = Data(result.response.payload)
        response.timestamp = Google_Protobuf_Timestamp(date: now)
        // A query's answer goes back unsigned: nothing can be assembled from it (and an ECDSA signature
        // per read was a quarter of the peer's work under a read load).
        guard result.response.isOK, !p.signed.evaluateOnly else { return response }
        if let writeGate, result.results.nsRwset.contains(where: { !$0.rwset.writes.isEmpty }), let why = writeGate() {
            throw ProposalRejection(503, why)
        }
        try endorse(&response, of: p, result: result)
        return response
    }

    /// The header type, the timestamp within `clockSkewMax` of this node's clock, and the tx id derived
    /// from the nonce and the creator. Returns the proposal's time.
    func checkHeaders(_ p: ParsedProposal, now: Date) throws(ProposalRejection) -> Date {
        let ch = p.proposal.channelHeader
        let sh = p.proposal.signatureHeader
        guard ch.type == .endorserTransaction else {
            throw ProposalRejection(400, "proposal header type must be ENDORSER_TRANSACTION")
        }
        guard ch.hasTimestamp else { throw ProposalRejection(400, "proposal has no timestamp") }
        let time = ch.timestamp.date
        guard abs(time.timeIntervalSince(now)) <= clockSkewMax else {
            throw ProposalRejection(
                400, "proposal timestamp \(time) is more than \(Int(clockSkewMax)) s from this node's clock")
        }
        guard !sh.nonce.isEmpty,
            ch.txID == TransactionID.compute(nonce: sh.nonce, creator: sh.creator)
        else {
            throw ProposalRejection(400, "tx id is not SHA-256(nonce || creator)")
        }
        return time
    }

    /// The creator: a member of the channel at the proposal's time, not revoked or suspended here, whose
    /// signature over the proposal verifies.
    func admitCreator(
        _ p: ParsedProposal, context: ChannelContext, at time: Date
    ) throws(ProposalRejection) -> VerifiedMember {
        let creator: VerifiedMember
        do {
            creator = try context.members.verify(serializedIdentity: p.proposal.signatureHeader.creator, at: time)
        } catch {
            throw ProposalRejection(403, "creator is not a member of channel \(context.channel): \(error)")
        }
        if let why = revocationGate?.refusal(of: creator) { throw ProposalRejection(401, "creator: \(why)") }
        if let why = creatorGate?(creator.identity) { throw ProposalRejection(401, "creator: \(why)") }
        if let batch = p.batchSignature {
            // One signature for the batch: a proposal in it must not bring one of its own as well
            // (which of the two would count would be a matter of code, not of the format).
            guard p.signed.signature.isEmpty else {
                throw ProposalRejection(400, "a proposal of a signed batch carries a signature of its own")
            }
            guard batch.isSigned(by: creator, creatorBytes: p.proposal.signatureHeader.creator) else {
                throw ProposalRejection(401, "proposal batch signature does not verify for this proposal's creator")
            }
        } else {
            guard creator.isValidSignature(p.signed.signature, for: p.signed.proposalBytes) else {
                throw ProposalRejection(401, "proposal signature does not verify")
            }
        }
        return creator
    }

    /// The chaincode the proposal names, defined on the channel and installed here.
    func definedChaincode(
        _ p: ParsedProposal, context: ChannelContext
    ) throws(ProposalRejection) -> any Chaincode {
        let name = p.payload.chaincodeName
        guard p.proposal.channelHeader.chaincodeName == name else {
            throw ProposalRejection(
                400,
                "channel header names chaincode \(p.proposal.channelHeader.chaincodeName.debugDescription), payload \(name.debugDescription)"
            )
        }
        guard context.policy(for: name) != nil, let chaincode = chaincodes[name] else {
            throw ProposalRejection(
                404, "chaincode \(name.debugDescription) is not defined on channel \(context.channel)")
        }
        return chaincode
    }

    /// Signs what the simulation produced (the proposal response payload) and remembers the signature,
    /// so this peer's validator need not verify it again.
    func endorse(
        _ response: inout Medledger_ProposalResponse, of p: ParsedProposal, result: SimulationResult
    ) throws(ProposalRejection) {
        do {
            var action = Medledger_ChaincodeAction()
            action.results = result.results
            if let e = result.event { action.event = e }
            action.response = response.response
            action.chaincodeName = p.payload.chaincodeName
            var prp = Medledger_ProposalResponsePayload()
            prp.proposalHash = Data(
                try ProposalHash.compute(
                    channelHeader: p.proposal.channelHeader, signatureHeader: p.proposal.signatureHeader,
                    strippedPayload: try p.payload.strippedBytes()))
            prp.extension = try action.serializedBytes()
            let prpBytes: [UInt8] = try prp.serializedBytes()
            response.payload = Data(prpBytes)
            var e = Medledger_Endorsement()
            e.endorser = Data(identity.serialized)
            let signed = SignedMessages.endorsement(proposalResponsePayload: prpBytes, endorser: identity.serialized)
            // Hashed once, for the signature and for the memory of it (a P_DE's is several KB).
            let digest = SHA256.hash(data: signed)
            e.signature = Data(try identity.sign(digest: digest))
            signatures.remember(signature: e.signature, overDigest: digest)
            response.endorsement = e
        } catch {
            throw ProposalRejection(500, "cannot sign the endorsement: \(error)")
        }
    }
}
