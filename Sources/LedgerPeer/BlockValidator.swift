import Dispatch
import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerProtos
import LedgerStorage
import SwiftProtobuf
import Synchronization

/// The committing peer's validation: one code per transaction of an ordered block.
///
/// 1. Per transaction, independently and on all cores: structure, creator signature and membership,
///    tx id derivation, the endorsed transaction's consistency, endorsement signatures and policy.
/// 2. In block order: configuration updates (alone in their block), duplicate tx ids (against the
///    ledger and earlier in the block), then MVCC and phantom checks against the state.
///
/// Memberships and certificate validity are judged at each transaction's own timestamp, which the
/// endorsers accepted within their clock-skew bound; every peer therefore reaches the same codes.
public struct BlockValidator: Sendable {
    public struct Outcome: Sendable {
        public var codes: [Medledger_TxValidationCode]
        /// Set when the block holds a valid configuration update: the context from the next block on.
        public var newContext: ChannelContext?
        /// Each transaction the checks parsed whole (those they found valid), so that the ledger's
        /// commit does not parse it again; nil where they stopped early.
        public var parsed: [ParsedTransaction?] = []
    }

    /// Blocks with at least this many transactions are checked on all cores.
    static let parallelThreshold = 4

    /// This peer's own recent endorsement signatures (see `SignatureMemory`); nil verifies all.
    let ownSignatures: SignatureMemory?

    public init(ownSignatures: SignatureMemory? = nil) { self.ownSignatures = ownSignatures }

    /// `blockTime`: when the orderer signed the block; configuration signatures are judged at it.
    public func validate(
        _ block: Medledger_Block, context: ChannelContext, ledger: ChannelLedger, blockTime: Date
    ) throws -> Outcome {
        let envelopes = block.envelopeBytes
        var codes = [Medledger_TxValidationCode](repeating: .notValidated, count: envelopes.count)
        var rwsets = [Medledger_TxReadWriteSet?](repeating: nil, count: envelopes.count)
        var txIDs = [String?](repeating: nil, count: envelopes.count)
        var types = [Medledger_HeaderType](repeating: .unspecified, count: envelopes.count)
        var parsed = [ParsedTransaction?](repeating: nil, count: envelopes.count)

        let results = Self.checkAll(envelopes, context: context, own: ownSignatures)
        for (i, r) in results.enumerated() {
            codes[i] = r.code
            rwsets[i] = r.rwset
            txIDs[i] = r.txID
            types[i] = r.type
            parsed[i] = r.parsed
        }

        // Configuration: only valid alone in its block.
        var newContext: ChannelContext?
        for i in envelopes.indices where types[i] == .config && codes[i] == .valid {
            if envelopes.count != 1 {
                codes[i] = .invalidConfigTransaction
                continue
            }
            do {
                newContext = try ConfigTransaction.checkUpdate(
                    envelope: envelopes[i], current: context, blockNumber: block.header.number, at: blockTime)
            } catch {
                codes[i] = .invalidConfigTransaction
            }
        }

        // Duplicates: an id already committed, or seen earlier in this block.
        var seen = Set<String>()
        for i in envelopes.indices {
            guard let id = txIDs[i] else { continue }
            let first = seen.insert(id).inserted
            guard codes[i] == .valid else { continue }
            if !first {
                codes[i] = .duplicateTxid
            } else if try ledger.transaction(id: id) != nil {
                codes[i] = .duplicateTxid
            }
        }

        try MVCCValidator(state: ledger.state).validate(rwsets, codes: &codes)
        // A configuration applies only if its transaction is still valid after every check (a
        // replayed update is a duplicate, and must not change the channel).
        if envelopes.count == 1, codes[0] != .valid { newContext = nil }
        return Outcome(codes: codes, newContext: newContext, parsed: parsed)
    }

    struct TxResult: Sendable {
        var code: Medledger_TxValidationCode
        var txID: String?
        var type: Medledger_HeaderType = .unspecified
        var time: Date?
        var rwset: Medledger_TxReadWriteSet?
        /// The whole parse, when the checks got through it (a valid transaction).
        var parsed: ParsedTransaction?
    }

    static func checkAll(_ envelopes: [[UInt8]], context: ChannelContext, own: SignatureMemory? = nil) -> [TxResult] {
        guard envelopes.count >= parallelThreshold else {
            return envelopes.map { check($0, context: context, own: own) }
        }
        let out = Mutex([TxResult?](repeating: nil, count: envelopes.count))
        let workers = min(Cores.available, envelopes.count)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var local = [(Int, TxResult)]()
            var i = w
            while i < envelopes.count {
                local.append((i, check(envelopes[i], context: context, own: own)))
                i += workers
            }
            out.withLock { o in for (i, r) in local { o[i] = r } }
        }
        return out.withLock { $0.map { $0! } }
    }

    /// Everything that depends on the transaction alone.
    static func check(_ bytes: [UInt8], context: ChannelContext, own: SignatureMemory? = nil) -> TxResult {
        guard !bytes.isEmpty, let env = try? Medledger_Envelope(serializedBytes: bytes), !env.payload.isEmpty else {
            return TxResult(code: .nilEnvelope)
        }
        guard let payload = try? Medledger_Payload(serializedBytes: env.payload) else {
            return TxResult(code: .badPayload)
        }
        let ch = payload.channelHeader
        let sh = payload.signatureHeader
        guard payload.hasChannelHeader, payload.hasSignatureHeader, !ch.txID.isEmpty, ch.hasTimestamp,
            !sh.creator.isEmpty, !sh.nonce.isEmpty
        else {
            return TxResult(code: .badCommonHeader, txID: ch.txID.isEmpty ? nil : ch.txID)
        }
        var r = TxResult(code: .valid, txID: ch.txID, type: ch.type)
        switch ch.type {
        case .endorserTransaction, .config: break
        case .configUpdate:
            r.code = .unsupportedTxPayload
            return r
        case .unspecified:
            r.code = .badCommonHeader
            return r
        case .UNRECOGNIZED:
            r.code = .unknownTxType
            return r
        }
        guard ch.channelID == context.channel else {
            r.code = .targetChainNotFound
            return r
        }
        let time = ch.timestamp.date
        r.time = time
        guard let creator = try? context.members.verify(serializedIdentity: sh.creator, at: time),
            creator.isValidSignature(env.signature, for: env.payload)
        else {
            r.code = .badCreatorSignature
            return r
        }
        guard ch.txID == TransactionID.compute(nonce: sh.nonce, creator: sh.creator) else {
            r.code = .badProposalTxid
            return r
        }
        // A configuration is checked in block order against the current configuration.
        if ch.type == .endorserTransaction {
            r.code = checkEndorsed(payload, context: context, rwset: &r.rwset, own: own)
        }
        if r.code != .valid {
            r.rwset = nil
            return r
        }
        r.parsed = ParsedTransaction(
            txID: ch.txID, channelID: ch.channelID, type: ch.type, timestamp: ch.timestamp,
            creator: [UInt8](sh.creator), chaincodeName: ch.chaincodeName, rwset: r.rwset)
        return r
    }

    static func checkEndorsed(
        _ payload: Medledger_Payload, context: ChannelContext, rwset: inout Medledger_TxReadWriteSet?,
        own: SignatureMemory? = nil
    ) -> Medledger_TxValidationCode {
        let ch = payload.channelHeader
        guard let tx = try? Medledger_EndorsedTransaction(serializedBytes: payload.data),
            let prp = try? Medledger_ProposalResponsePayload(serializedBytes: tx.proposalResponsePayload)
        else { return .invalidEndorserTransaction }
        guard let ccp = try? Medledger_ChaincodeProposalPayload(serializedBytes: tx.proposalPayload),
            ccp.transient.isEmpty
        else { return .unsupportedTxPayload }
        guard
            let expected = try? ProposalHash.compute(
                channelHeader: ch, signatureHeader: payload.signatureHeader,
                strippedPayload: [UInt8](tx.proposalPayload)),
            expected == [UInt8](prp.proposalHash)
        else { return .invalidEndorserTransaction }
        let action: Medledger_ChaincodeAction
        do { action = try Medledger_ChaincodeAction(serializedBytes: prp.extension) } catch { return .badRwset }
        guard action.chaincodeName == ch.chaincodeName, ccp.chaincodeName == ch.chaincodeName,
            action.response.status == 200
        else { return .invalidEndorserTransaction }
        guard let policy = context.policy(for: ch.chaincodeName) else { return .invalidChaincode }
        for ns in action.results.nsRwset where ns.namespace != ch.chaincodeName { return .illegalWriteset }
        var keys = Set<String>()
        for ns in action.results.nsRwset {
            for w in ns.rwset.writes {
                guard !w.key.isEmpty, w.key.utf8.count <= SimulationLimits().keyBytesMax, keys.insert(w.key).inserted
                else { return .badRwset }
            }
        }
        // Endorsements: each must be a member's valid signature; distinct endorsers; policy met.
        guard !tx.endorsements.isEmpty else { return .endorsementPolicyFailure }
        let time = ch.timestamp.date
        var endorsers = [EndorsementPolicy.Endorser]()
        var seen = Set<Data>()
        for e in tx.endorsements {
            guard seen.insert(e.endorser).inserted else { continue }
            let message = SignedMessages.endorsement(
                proposalResponsePayload: [UInt8](tx.proposalResponsePayload), endorser: [UInt8](e.endorser))
            guard let m = try? context.members.verify(serializedIdentity: e.endorser, at: time),
                own?.made(e.signature, over: message) == true || m.isValidSignature(e.signature, for: message)
            else { return .endorsementPolicyFailure }
            endorsers.append(m.principal)
        }
        guard policy.isSatisfied(by: endorsers, channelOrgs: context.organizationIDs) else {
            return .endorsementPolicyFailure
        }
        // Signers the chaincode accepted (a P_DE's patient and doctor) must still be live members under
        // this block's configuration: a CRL committed since the endorsement revokes them here.
        for pem in action.results.checkedSigners {
            guard (try? context.members.verify(certificatePEM: pem, at: time)) != nil else { return .signerNotMember }
        }
        rwset = action.results
        return .valid
    }
}
