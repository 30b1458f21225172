import Foundation
import LedgerCore
import LedgerIdentity
import LedgerProtos
import Synchronization
import X509

/// The organisation and role of endorser identities (an X.509 parse each), remembered per identity.
/// A gateway keeps one for its life; past `limit` identities it starts afresh.
public final class EndorserPrincipals: Sendable {
    private let known = Mutex<[WholeBytesKey: EndorsementPolicy.Endorser]>([:])
    let limit: Int

    public init(limit: Int = 1_024) { self.limit = limit }

    public func principal(of endorser: Data) -> EndorsementPolicy.Endorser? {
        let key = WholeBytesKey(endorser)
        if let p = known.withLock({ $0[key] }) { return p }
        guard let id = try? Medledger_SerializedIdentity(serializedBytes: endorser) else { return nil }
        let role =
            (try? Certificate(pemEncoded: String(decoding: id.idBytes, as: UTF8.self)))?.attributes?.role ?? "unknown"
        let p = EndorsementPolicy.Endorser(org: id.mspID, role: role)
        known.withLock { map in
            if map.count >= limit { map.removeAll() }
            map[key] = p
        }
        return p
    }
}

extension SubmitGoal {
    /// The goal for a chaincode of a channel: its endorsement policy, or the first endorsement when the
    /// configuration names none (or one that does not parse: the validators then decide).
    public static func forChaincode(
        _ name: String, in config: Medledger_ChannelConfig, principals: EndorserPrincipals
    ) -> SubmitGoal {
        guard let text = config.chaincodes.first(where: { $0.name == name })?.endorsementPolicy,
            let policy = try? EndorsementPolicy.parse(text)
        else { return .anyOne }
        return .policy(text, policy, channelOrgs: Set(config.organizations.map(\.id)), principal: principals.principal)
    }
}

extension Medledger_ChannelConfig {
    /// One peer endpoint of each member organisation except `org`, in the configuration's order:
    /// whom a gateway asks when its own peer's endorsement is not enough.
    public func onePeerOfEachOrganisation(except org: String?) -> [String] {
        organizations.filter { $0.id != org }.compactMap(\.peerEndpoints.first)
    }
}
