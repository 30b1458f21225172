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
    public static func envelope(
        config: Medledger_ChannelConfig, admins: [SigningIdentity], submitter: SigningIdentity, at time: Date
    ) throws -> Medledger_Envelope {
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
    public static func addSignature(
        to envelope: Medledger_Envelope, admin: SigningIdentity, at time: Date
    ) throws -> Medledger_Envelope {
        let payload = try Medledger_Payload(serializedBytes: envelope.payload)
        var ce = try Medledger_ConfigEnvelope(serializedBytes: payload.data)
        var s = Medledger_ConfigSignature()
        s.signer = Data(admin.serialized)
        s.signature = Data(try admin.sign(SignedMessages.config([UInt8](ce.config))))
        ce.signatures.removeAll { $0.signer == s.signer }
        ce.signatures.append(s)
        return try wrap(ce, channel: payload.channelHeader.channelID, submitter: admin, at: time)
    }

    static func wrap(
        _ ce: Medledger_ConfigEnvelope, channel: String, submitter: SigningIdentity, at time: Date
    ) throws -> Medledger_Envelope {
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
    public static func genesisBlock(
        config: Medledger_ChannelConfig, creator: SigningIdentity, at time: Date
    ) throws -> Medledger_Block {
        var config = config
        config.sequence = 0
        let context: ChannelContext
        do { context = try ChannelContext(config: config, configBlock: 0) } catch { throw error }
        let env = try envelope(config: config, admins: [creator], submitter: creator, at: time)
        let bytes: [UInt8] = try env.serializedBytes()
        var block = Medledger_Block.make(
            number: 0, previousHash: LedgerHash.zero, envelopes: [bytes], validationCodes: [.valid])
        block.metadata.orderingSignature(signer: creator, headerHash: block.header.headerHash, at: time)
        block.metadata.lastConfigBlock = 0
        // Checks it the way a joining node will.
        _ = try verifyGenesis(block)
        _ = context
        return block
    }

    /// Checks a genesis block and returns the channel's first context. The creator and the block
    /// signer must be administrators of channel organisations (under the block's own configuration,
    /// which the joining node trusts because it chose this block). Judged at the block's own time,
    /// never at the joining node's clock: a node that joins years later verifies the same block.
    public static func verifyGenesis(_ block: Medledger_Block) throws(ChannelConfigError) -> ChannelContext {
        guard block.header.number == 0 else {
            throw ChannelConfigError("not a genesis block: number \(block.header.number)")
        }
        guard [UInt8](block.header.previousHash) == LedgerHash.zero else {
            throw ChannelConfigError("genesis block has a previous hash")
        }
        guard block.data.envelopes.count == 1 else {
            throw ChannelConfigError("genesis block must hold exactly one transaction")
        }
        let envBytes = [UInt8](block.data.envelopes[0])
        guard [UInt8](block.header.dataHash) == MerkleTree(leaves: [envBytes]).root else {
            throw ChannelConfigError("genesis block data hash does not match its transaction")
        }
        let parsed = try parse(envelope: envBytes)
        let time = block.signedTime ?? parsed.payload.channelHeader.timestamp.date
        guard parsed.config.sequence == 0 else {
            throw ChannelConfigError("genesis configuration must have sequence 0")
        }
        let context = try ChannelContext(config: parsed.config, configBlock: 0)
        let creator: VerifiedMember
        do {
            creator = try context.members.verify(serializedIdentity: parsed.payload.signatureHeader.creator, at: time)
        } catch {
            throw ChannelConfigError("genesis creator is not a member: \(error)")
        }
        guard creator.role == .admin else {
            throw ChannelConfigError("genesis creator must be an organisation administrator")
        }
        guard creator.isValidSignature(parsed.envelope.signature, for: parsed.envelope.payload) else {
            throw ChannelConfigError("genesis transaction signature does not verify")
        }
        try checkBlockSignature(block, context: context, at: time, allowAdmins: true)
        return context
    }

    // MARK: - Updates

    /// Checks a configuration update against the current context: next sequence, same channel, valid
    /// rules, and approval — signatures of administrators of a strict majority of the current
    /// organisations, or, for an update that only publishes newer CRLs, of an administrator of the
    /// channel's `crl_publisher_org` (see `crlOnlyChanges`). Signatures and certificates are judged at
    /// `time`: the orderer's clock when it accepts, the block's time (which the orderer set) when
    /// peers validate — never a time the submitter chose. Returns the new context (to take effect in
    /// block `blockNumber`).
    public static func checkUpdate(
        envelope bytes: [UInt8], current: ChannelContext, blockNumber: UInt64, at time: Date
    ) throws(ChannelConfigError) -> ChannelContext {
        let parsed = try parse(envelope: bytes)
        let submitter: VerifiedMember
        do {
            submitter = try current.members.verify(serializedIdentity: parsed.payload.signatureHeader.creator, at: time)
        } catch {
            throw ChannelConfigError("submitter is not a member: \(error)")
        }
        guard submitter.isValidSignature(parsed.envelope.signature, for: parsed.envelope.payload) else {
            throw ChannelConfigError("envelope signature does not verify")
        }
        guard parsed.config.channelID == current.channel, parsed.payload.channelHeader.channelID == current.channel
        else {
            throw ChannelConfigError(
                "configuration is for channel \(parsed.config.channelID.debugDescription), not \(current.channel)")
        }
        guard parsed.config.sequence == current.sequence + 1 else {
            throw ChannelConfigError(
                "configuration sequence is \(parsed.config.sequence); the next is \(current.sequence + 1)")
        }
        let next = try ChannelContext(config: parsed.config, configBlock: blockNumber)
        try OrderingConfig.checkChange(from: current.ordering, to: next.ordering)
        let signedOrgs = adminOrganizations(signing: parsed.configEnvelope, members: current.members, at: time)
        let needed = current.organizationIDs.count / 2 + 1
        if signedOrgs.count >= needed { return next }
        if try crlOnlyChanges(from: current, to: next) {
            let publisher = current.config.crlPublisherOrg
            guard !publisher.isEmpty else {
                throw ChannelConfigError(
                    "this channel names no CRL publisher (crl_publisher_org): a CRL update needs administrators of \(needed) of \(current.organizationIDs.count) organisations like any other"
                )
            }
            guard signedOrgs.contains(publisher) else {
                throw ChannelConfigError(
                    "a CRL update must be signed by an administrator of \(publisher), the channel's CRL publisher (signed by: \(signedOrgs.sorted().joined(separator: ", ")))"
                )
            }
            return next
        }
        throw ChannelConfigError(
            "configuration update is signed by administrators of \(signedOrgs.count) organisation(s) (\(signedOrgs.sorted().joined(separator: ", "))); a majority needs \(needed) of \(current.organizationIDs.count)"
        )
    }

    /// The organisations of which an administrator validly signed the configuration, as of `time`.
    static func adminOrganizations(
        signing ce: Medledger_ConfigEnvelope, members: ChannelMembers, at time: Date
    ) -> Set<String> {
        let message = SignedMessages.config([UInt8](ce.config))
        var orgs = Set<String>()
        for s in ce.signatures {
            guard let admin = try? members.verify(serializedIdentity: s.signer, at: time), admin.role == .admin,
                admin.isValidSignature(s.signature, for: message)
            else { continue }
            orgs.insert(admin.org)
        }
        return orgs
    }

    /// True if `next` differs from `current` only in organisations' CRLs and every changed CRL can only
    /// remove trust: present, signed by that organisation's root (checked when `next` was built), with
    /// a higher CRL number than the one it replaces, and revoking every certificate the old one did.
    /// Throws when the update touches only CRLs but one of them would restore trust or roll back.
    static func crlOnlyChanges(from current: ChannelContext, to next: ChannelContext) throws(ChannelConfigError) -> Bool
    {
        var a = next.config
        var b = current.config
        guard a.organizations.count == b.organizations.count else { return false }
        for i in a.organizations.indices {
            a.organizations[i].crl = Data()
            b.organizations[i].crl = Data()
        }
        a.sequence = b.sequence
        guard a == b else { return false }
        var changed = 0
        for (old, new) in zip(current.config.organizations, next.config.organizations) where old.crl != new.crl {
            changed += 1
            guard let newCRL = next.members.crl(of: new.id) else {
                throw ChannelConfigError("organisation \(new.id): a CRL update may not remove the CRL")
            }
            guard let oldCRL = current.members.crl(of: old.id) else { continue }
            guard newCRL.issuer == oldCRL.issuer else {
                throw ChannelConfigError("organisation \(new.id): the new CRL has another issuer")
            }
            guard newCRL.crlNumber > oldCRL.crlNumber else {
                throw ChannelConfigError(
                    "organisation \(new.id): CRL number \(newCRL.crlNumber) is not newer than the channel's \(oldCRL.crlNumber)"
                )
            }
            let restored = oldCRL.revokedSerials.subtracting(newCRL.revokedSerials)
            guard restored.isEmpty else {
                throw ChannelConfigError(
                    "organisation \(new.id): the new CRL no longer revokes \(restored.count) certificate(s) the channel's CRL revokes"
                )
            }
        }
        return changed > 0
    }

    /// A CRL-only update of `current`: every organisation whose members `crl`'s issuer serves gets
    /// `crl`; nil when none changes (the channel already holds it, or a newer one).
    public static func crlUpdate(
        of current: ChannelContext, with crl: RevocationList, der: [UInt8]
    ) -> Medledger_ChannelConfig? {
        var config = current.config
        var changed = false
        let served = Set(current.members.organizations(servedBy: crl))
        for i in config.organizations.indices where served.contains(config.organizations[i].id) {
            if let held = current.members.crl(of: config.organizations[i].id), held.crlNumber >= crl.crlNumber {
                continue
            }
            config.organizations[i].crl = Data(der)
            changed = true
        }
        guard changed else { return nil }
        config.sequence = current.sequence + 1
        return config
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
            guard payload.channelHeader.type == .config else {
                throw ChannelConfigError("not a configuration transaction")
            }
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
    public static func config(in envelope: [UInt8]) throws(ChannelConfigError) -> Medledger_ChannelConfig {
        try parse(envelope: envelope).config
    }

    /// The block's orderer signature must come from a node of the orderer organisation (or, for the
    /// genesis block, an administrator of any channel organisation), valid at `time` — the block's own
    /// time (`Medledger_Block.judgedTime`), so historical blocks never expire.
    public static func checkBlockSignature(
        _ block: Medledger_Block, context: ChannelContext, at time: Date, allowAdmins: Bool = false
    ) throws(ChannelConfigError) {
        let sig = block.metadata.ordererSignature
        let signer: VerifiedMember
        do { signer = try context.members.verify(serializedIdentity: sig.signer, at: time) } catch {
            throw ChannelConfigError("block \(block.header.number) signer: \(error)")
        }
        let orderers = context.ordering.signingOrganizations
        let allowed = (signer.role == .node && orderers.contains(signer.org)) || (allowAdmins && signer.role == .admin)
        guard allowed else {
            throw ChannelConfigError(
                "block \(block.header.number) is signed by \(signer.org)/\(RoleName.name(signer.role) ?? "?"), not by an orderer node of \(orderers.sorted().joined(separator: " or "))"
            )
        }
        guard
            signer.isValidSignature(
                sig.signature,
                for: SignedMessages.block(
                    headerHash: block.header.headerHash,
                    signedAt: block.metadata.ordererSignature.hasSignedAt
                        ? block.metadata.ordererSignature.signedAt : nil))
        else {
            throw ChannelConfigError("block \(block.header.number) signature does not verify")
        }
    }
}

extension Medledger_BlockMetadata {
    /// Signs the block as its orderer at `time` (millisecond precision, as signed).
    public mutating func orderingSignature(signer: SigningIdentity, headerHash: [UInt8], at time: Date) {
        var s = Medledger_MetadataSignature()
        s.signer = Data(signer.serialized)
        let ms = Int64((time.timeIntervalSince1970 * 1000).rounded(.down))
        s.signedAt = Google_Protobuf_Timestamp(seconds: ms / 1000, nanos: Int32(ms % 1000) * 1_000_000)
        s.signature = Data((try? signer.sign(SignedMessages.block(headerHash: headerHash, signedAt: s.signedAt))) ?? [])
        ordererSignature = s
    }
}

extension Medledger_Block {
    /// When the orderer signed this block, nil for blocks signed before blocks carried a time.
    public var signedTime: Date? {
        metadata.ordererSignature.hasSignedAt ? metadata.ordererSignature.signedAt.date : nil
    }

    /// The time at which this block's signer and configuration signatures are judged: when the
    /// orderer signed it; for older blocks without that, their latest transaction timestamp.
    public var judgedTime: Date {
        if let t = signedTime { return t }
        var latest = Date(timeIntervalSince1970: 0)
        for e in data.envelopes {
            guard let env = try? Medledger_Envelope(serializedBytes: e),
                let p = try? Medledger_Payload(serializedBytes: env.payload)
            else { continue }
            latest = max(latest, p.channelHeader.timestamp.date)
        }
        return latest
    }
}
