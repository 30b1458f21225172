import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import SwiftProtobuf

/// Configuration transactions: the genesis block that creates a channel, and updates signed by a
/// majority of the channel's organisation administrators. Pure: builds and checks bytes.
public enum ConfigTransaction {
    /// A CONFIG envelope carrying `config`, signed by each of `admins` (config signatures) and by
    /// `submitter` (the envelope).
    public static func envelope(config: Medledger_ChannelConfig, admins: [SigningIdentity], submitter: SigningIdentity, at time: Date = Date()) throws -> Medledger_Envelope {
        let configBytes: [UInt8] = try config.serializedBytes()
        var ce = Medledger_ConfigEnvelope()
        ce.config = Data(configBytes)
        ce.signatures = try admins.map { admin in
            var s = Medledger_ConfigSignature()
            s.signer = Data(admin.serialized)
            s.signature = Data(try admin.sign(SignedMessages.config(configBytes)))
            return s
        }
        return try wrap(ce, channel: config.channelID, submitter: submitter, at: time)
    }

    /// Adds `admin`'s signature to a CONFIG envelope's configuration (collecting a majority), and
    /// re-signs the envelope as `admin` (the last signer submits).
    public static func addSignature(to envelope: Medledger_Envelope, admin: SigningIdentity, at time: Date = Date()) throws -> Medledger_Envelope {
        let payload = try Medledger_Payload(serializedBytes: envelope.payload)
        var ce = try Medledger_ConfigEnvelope(serializedBytes: payload.data)
        var s = Medledger_ConfigSignature()
        s.signer = Data(admin.serialized)
        s.signature = Data(try admin.sign(SignedMessages.config([UInt8](ce.config))))
        ce.signatures.removeAll { $0.signer == s.signer }
        ce.signatures.append(s)
        return try wrap(ce, channel: payload.channelHeader.channelID, submitter: admin, at: time)
    }

    static func wrap(_ ce: Medledger_ConfigEnvelope, channel: String, submitter: SigningIdentity, at time: Date) throws -> Medledger_Envelope {
        let nonce = TransactionID.newNonce()
        var payload = Medledger_Payload()
        payload.channelHeader.type = .config
        payload.channelHeader.channelID = channel
        payload.channelHeader.txID = TransactionID.compute(nonce: nonce, creator: submitter.serialized)
        payload.channelHeader.timestamp = Google_Protobuf_Timestamp(date: time)
        payload.signatureHeader.creator = Data(submitter.serialized)
        payload.signatureHeader.nonce = Data(nonce)
        payload.data = try ce.serializedBytes()
        var env = Medledger_Envelope()
        env.payload = try payload.serializedBytes()
        env.signature = Data(try submitter.sign([UInt8](env.payload)))
        return env
    }

    // MARK: - Genesis

    /// Block 0 of a new channel: one CONFIG transaction, signed by `creator` (an administrator of a
    /// channel organisation), who also signs the block.
    public static func genesisBlock(config: Medledger_ChannelConfig, creator: SigningIdentity, at time: Date = Date()) throws -> Medledger_Block {
        var config = config
        config.sequence = 0
        let context: ChannelContext
        do { context = try ChannelContext(config: config, configBlock: 0) } catch { throw error }
        let env = try envelope(config: config, admins: [creator], submitter: creator, at: time)
        let bytes: [UInt8] = try env.serializedBytes()
        var block = Medledger_Block.make(number: 0, previousHash: LedgerHash.zero, envelopes: [bytes], validationCodes: [.valid])
        block.metadata.orderingSignature(signer: creator, headerHash: block.header.headerHash)
        block.metadata.lastConfigBlock = 0
        // Checks it the way a joining node will.
        _ = try verifyGenesis(block, at: time)
        _ = context
        return block
    }

    /// Checks a genesis block and returns the channel's first context. The creator and the block
    /// signer must be administrators of channel organisations (under the block's own configuration,
    /// which the joining node trusts because it chose this block).
    public static func verifyGenesis(_ block: Medledger_Block, at time: Date = Date()) throws(ChannelConfigError) -> ChannelContext {
        guard block.header.number == 0 else { throw ChannelConfigError("not a genesis block: number \(block.header.number)") }
        guard [UInt8](block.header.previousHash) == LedgerHash.zero else { throw ChannelConfigError("genesis block has a previous hash") }
        guard block.data.envelopes.count == 1 else { throw ChannelConfigError("genesis block must hold exactly one transaction") }
        let envBytes = [UInt8](block.data.envelopes[0])
        guard [UInt8](block.header.dataHash) == MerkleTree(leaves: [envBytes]).root else { throw ChannelConfigError("genesis block data hash does not match its transaction") }
        let parsed = try parse(envelope: envBytes)
        guard parsed.config.sequence == 0 else { throw ChannelConfigError("genesis configuration must have sequence 0") }
        let context = try ChannelContext(config: parsed.config, configBlock: 0)
        let creator: VerifiedMember
        do { creator = try context.members.verify(serializedIdentity: parsed.payload.signatureHeader.creator, at: time) } catch {
            throw ChannelConfigError("genesis creator is not a member: \(error)")
        }
        guard creator.role == .admin else { throw ChannelConfigError("genesis creator must be an organisation administrator") }
        guard creator.isValidSignature(parsed.envelope.signature, for: parsed.envelope.payload) else { throw ChannelConfigError("genesis transaction signature does not verify") }
        try checkBlockSignature(block, context: context, at: time, allowAdmins: true)
        return context
    }

    // MARK: - Updates

    /// Checks a configuration update against the current context: next sequence, same channel, valid
    /// rules, and signatures of administrators of a strict majority of the current organisations.
    /// Returns the new context (to take effect in block `blockNumber`).
    public static func checkUpdate(envelope bytes: [UInt8], current: ChannelContext, blockNumber: UInt64, at time: Date) throws(ChannelConfigError) -> ChannelContext {
        let parsed = try parse(envelope: bytes)
        let submitter: VerifiedMember
        do { submitter = try current.members.verify(serializedIdentity: parsed.payload.signatureHeader.creator, at: time) } catch {
            throw ChannelConfigError("submitter is not a member: \(error)")
        }
        guard submitter.isValidSignature(parsed.envelope.signature, for: parsed.envelope.payload) else { throw ChannelConfigError("envelope signature does not verify") }
        guard parsed.config.channelID == current.channel, parsed.payload.channelHeader.channelID == current.channel else {
            throw ChannelConfigError("configuration is for channel \(parsed.config.channelID.debugDescription), not \(current.channel)")
        }
        guard parsed.config.sequence == current.sequence + 1 else {
            throw ChannelConfigError("configuration sequence is \(parsed.config.sequence); the next is \(current.sequence + 1)")
        }
        let next = try ChannelContext(config: parsed.config, configBlock: blockNumber)
        let message = SignedMessages.config([UInt8](parsed.configEnvelope.config))
        var signedOrgs = Set<String>()
        for s in parsed.configEnvelope.signatures {
            guard let admin = try? current.members.verify(serializedIdentity: s.signer, at: time), admin.role == .admin,
                  admin.isValidSignature(s.signature, for: message) else { continue }
            signedOrgs.insert(admin.org)
        }
        let needed = current.organizationIDs.count / 2 + 1
        guard signedOrgs.count >= needed else {
            throw ChannelConfigError("configuration update is signed by administrators of \(signedOrgs.count) organisation(s) (\(signedOrgs.sorted().joined(separator: ", "))); a majority needs \(needed) of \(current.organizationIDs.count)")
        }
        return next
    }

    struct Parsed {
        var envelope: Medledger_Envelope
        var payload: Medledger_Payload
        var configEnvelope: Medledger_ConfigEnvelope
        var config: Medledger_ChannelConfig
    }

    static func parse(envelope bytes: [UInt8]) throws(ChannelConfigError) -> Parsed {
        do {
            let env = try Medledger_Envelope(serializedBytes: bytes)
            let payload = try Medledger_Payload(serializedBytes: env.payload)
            guard payload.channelHeader.type == .config else { throw ChannelConfigError("not a configuration transaction") }
            let ce = try Medledger_ConfigEnvelope(serializedBytes: payload.data)
            let config = try Medledger_ChannelConfig(serializedBytes: ce.config)
            return Parsed(envelope: env, payload: payload, configEnvelope: ce, config: config)
        } catch let e as ChannelConfigError {
            throw e
        } catch {
            throw ChannelConfigError("configuration transaction does not parse: \(error)")
        }
    }

    /// The configuration a CONFIG envelope carries, unchecked.
    public static func config(in envelope: [UInt8]) throws(ChannelConfigError) -> Medledger_ChannelConfig { try parse(envelope: envelope).config }

    /// The block's orderer signature must come from a node of the orderer organisation (or, for the
    /// genesis block, an administrator of any channel organisation).
    public static func checkBlockSignature(_ block: Medledger_Block, context: ChannelContext, at time: Date, allowAdmins: Bool = false) throws(ChannelConfigError) {
        let sig = block.metadata.ordererSignature
        let signer: VerifiedMember
        do { signer = try context.members.verify(serializedIdentity: sig.signer, at: time) } catch { throw ChannelConfigError("block \(block.header.number) signer: \(error)") }
        let allowed = (signer.role == .node && signer.org == context.config.orderer.org) || (allowAdmins && signer.role == .admin)
        guard allowed else { throw ChannelConfigError("block \(block.header.number) is signed by \(signer.org)/\(RoleName.name(signer.role) ?? "?"), not by an orderer node of \(context.config.orderer.org)") }
        guard signer.isValidSignature(sig.signature, for: SignedMessages.block(headerHash: block.header.headerHash)) else {
            throw ChannelConfigError("block \(block.header.number) signature does not verify")
        }
    }
}

extension Medledger_BlockMetadata {
    public mutating func orderingSignature(signer: SigningIdentity, headerHash: [UInt8]) {
        var s = Medledger_MetadataSignature()
        s.signer = Data(signer.serialized)
        s.signature = Data((try? signer.sign(SignedMessages.block(headerHash: headerHash))) ?? [])
        ordererSignature = s
    }
}
