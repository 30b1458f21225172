import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import SwiftProtobuf
import X509

public struct ChannelConfigError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One channel configuration, checked and ready to use: membership, endorsement policies, limits.
/// Immutable; a configuration update makes a new one.
public struct ChannelContext: Sendable {
    public let config: Medledger_ChannelConfig
    public let members: ChannelMembers
    public let policies: [String: EndorsementPolicy]
    /// The block holding the transaction that set this configuration.
    public let configBlock: UInt64
    /// Solo or raft, with the consenters and the organisations whose nodes sign blocks.
    public let ordering: OrderingConfig

    public var channel: String { config.channelID }
    public var sequence: UInt64 { config.sequence }
    public var organizationIDs: Set<String> { members.organizationIDs }

    /// Limits a configuration may set, derived from what the ledger accepts (`LedgerLimits`), so a
    /// block the orderer cuts can always be stored: at most the ledger's transactions per block, and
    /// `absolute_max_bytes` 1 MiB below the ledger's block size, which leaves room for framing and
    /// metadata. (One envelope is further bounded by the ledger's envelope limit at broadcast.)
    public static let batchMessageCountMax = UInt32(LedgerLimits().transactionsPerBlockMax)
    public static let batchBytesMax = UInt32(LedgerLimits().blockBytesMax - (1 << 20))
    public static let batchTimeoutMsMax: UInt32 = 60_000

    /// Checks every rule a configuration must meet; throws the first broken one.
    public init(config: Medledger_ChannelConfig, configBlock: UInt64) throws(ChannelConfigError) {
        guard ChannelName.isValid(config.channelID) else {
            throw ChannelConfigError(
                "channel name \(config.channelID.debugDescription) is not valid (lower-case letters, digits, '.' and '-', starting with a letter)"
            )
        }
        guard !config.organizations.isEmpty else {
            throw ChannelConfigError("a channel needs at least one organisation")
        }
        var seen = Set<String>()
        for o in config.organizations {
            guard OrgID.isValid(o.id) else {
                throw ChannelConfigError("organisation id \(o.id.debugDescription) is not valid")
            }
            guard seen.insert(o.id).inserted else { throw ChannelConfigError("organisation \(o.id) is listed twice") }
            guard !o.rootCertificates.isEmpty else {
                throw ChannelConfigError("organisation \(o.id) has no CA root certificate")
            }
            for e in o.peerEndpoints where !Self.isEndpoint(e) {
                throw ChannelConfigError("organisation \(o.id): peer endpoint \(e.debugDescription) is not host:port")
            }
        }
        let b = config.batch
        guard b.maxMessageCount >= 1, b.maxMessageCount <= Self.batchMessageCountMax else {
            throw ChannelConfigError("batch max_message_count must be 1…\(Self.batchMessageCountMax)")
        }
        guard b.absoluteMaxBytes >= 1024, b.absoluteMaxBytes <= Self.batchBytesMax else {
            throw ChannelConfigError(
                "batch absolute_max_bytes must be 1 KiB…\(Self.batchBytesMax) bytes (what the ledger stores in one block)"
            )
        }
        guard b.preferredMaxBytes >= 1, b.preferredMaxBytes <= b.absoluteMaxBytes else {
            throw ChannelConfigError("batch preferred_max_bytes must be 1…absolute_max_bytes")
        }
        guard b.batchTimeoutMs <= Self.batchTimeoutMsMax else {
            throw ChannelConfigError("batch batch_timeout_ms must be at most \(Self.batchTimeoutMsMax)")
        }
        self.ordering = try OrderingConfig(config.orderer, organizations: seen)
        guard !config.orderer.endpoints.isEmpty else {
            throw ChannelConfigError("the orderer needs at least one endpoint")
        }
        for e in config.orderer.endpoints where !Self.isEndpoint(e) {
            throw ChannelConfigError("orderer endpoint \(e.debugDescription) is not host:port")
        }
        guard config.crlPublisherOrg.isEmpty || seen.contains(config.crlPublisherOrg) else {
            throw ChannelConfigError(
                "CRL publisher \(config.crlPublisherOrg.debugDescription) is not a channel organisation")
        }

        var policies = [String: EndorsementPolicy]()
        for cc in config.chaincodes {
            guard NamespaceName.isValid(cc.name) else {
                throw ChannelConfigError("chaincode name \(cc.name.debugDescription) is not valid")
            }
            guard policies[cc.name] == nil else { throw ChannelConfigError("chaincode \(cc.name) is defined twice") }
            let p: EndorsementPolicy
            do { p = try EndorsementPolicy.parse(cc.endorsementPolicy) } catch {
                throw ChannelConfigError("chaincode \(cc.name): endorsement policy: \(error)")
            }
            for org in p.organizations where !seen.contains(org) {
                throw ChannelConfigError(
                    "chaincode \(cc.name): policy names \(org), which is not a channel organisation")
            }
            policies[cc.name] = p
        }
        self.members = try ChannelMembers(config: config)
        for o in config.organizations where members.organizations[o.id]?.roots.contains(where: Self.isCA) != true {
            throw ChannelConfigError("organisation \(o.id): root certificate is not a CA certificate")
        }
        self.config = config
        self.policies = policies
        self.configBlock = configBlock
    }

    /// The organisations that hold the channel's whole ledger: those with peers, and those that order.
    public func holdsLedger(_ org: String) -> Bool {
        ordering.signingOrganizations.contains(org) || organization(org).map { !$0.peerEndpoints.isEmpty } == true
    }

    static func isCA(_ c: Certificate) -> Bool {
        if case .isCertificateAuthority = try? c.extensions.basicConstraints { return true }
        return false
    }

    static func isEndpoint(_ s: String) -> Bool {
        guard let colon = s.lastIndex(of: ":"), colon != s.startIndex, let port = Int(s[s.index(after: colon)...])
        else { return false }
        return (1...65535).contains(port)
    }

    /// The configuration in force at the tip of `ledger`: each block's metadata names the last
    /// configuration block, whose single transaction carries it.
    public static func current(in ledger: ChannelLedger) throws -> ChannelContext {
        guard ledger.height > 0, let tip = try ledger.block(number: ledger.height - 1) else {
            throw ChannelConfigError("channel \(ledger.channel) has no genesis block")
        }
        let n = tip.metadata.lastConfigBlock
        guard let cb = try ledger.block(number: n), let env = cb.data.envelopes.first else {
            throw ChannelConfigError("channel \(ledger.channel): configuration block \(n) is missing")
        }
        do { return try ChannelContext(config: try ConfigTransaction.config(in: [UInt8](env)), configBlock: n) } catch {
            throw ChannelConfigError("channel \(ledger.channel) has no valid configuration in block \(n): \(error)")
        }
    }

    /// The endorsement policy of `chaincode`, nil if the channel does not define it.
    public func policy(for chaincode: String) -> EndorsementPolicy? { policies[chaincode] }

    public func organization(_ id: String) -> Medledger_OrganizationConfig? {
        config.organizations.first { $0.id == id }
    }
}

extension EndorsementPolicy {
    /// Every organisation a signature policy names (implicit policies name none).
    public var organizations: Set<String> {
        switch self {
        case .principal(let org, _): return [org]
        case .outOf(_, let ps): return ps.reduce(into: Set<String>()) { $0.formUnion($1.organizations) }
        default: return []
        }
    }
}
