import Foundation
import LedgerProtos
import SwiftASN1
import X509

/// How a channel is ordered, checked: solo (one organisation's node) or a raft cluster of consenters.
public struct OrderingConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case solo, raft }

    public struct Consenter: Sendable, Equatable {
        public var id: UInt64
        public var org: String
        public var raftAddress: String
        public var endpoint: String
        /// DER SubjectPublicKeyInfo of its TLS certificate: the key pinned for raft traffic.
        public var publicKey: [UInt8]
    }

    public var kind: Kind
    /// The organisations whose nodes may sign blocks: solo, the orderer organisation; raft, every
    /// consenter's (the leader of the moment signs the blocks it cuts).
    public var signingOrganizations: Set<String>
    public var consenters: [Consenter]

    /// At most this many consenters: a raft cluster of hospitals, not a crowd (libraft's fixture caps
    /// at 8 too, and every consenter is a vote to wait for).
    public static let consentersMax = 9

    public init(_ o: Medledger_OrdererConfig, organizations: Set<String>) throws(ChannelConfigError) {
        switch o.type {
        case "", "solo":
            kind = .solo
            guard organizations.contains(o.org) else {
                throw ChannelConfigError("orderer organisation \(o.org.debugDescription) is not a channel organisation")
            }
            guard o.consenters.isEmpty else {
                throw ChannelConfigError("a solo orderer has no consenters (set orderer type: raft)")
            }
            signingOrganizations = [o.org]
            consenters = []
        case "raft":
            kind = .raft
            guard o.org.isEmpty || organizations.contains(o.org) else {
                throw ChannelConfigError("orderer organisation \(o.org.debugDescription) is not a channel organisation")
            }
            guard !o.consenters.isEmpty else { throw ChannelConfigError("a raft orderer needs at least one consenter") }
            guard o.consenters.count <= Self.consentersMax else {
                throw ChannelConfigError("a raft orderer has at most \(Self.consentersMax) consenters")
            }
            var ids = Set<UInt64>()
            var addresses = Set<String>()
            var keys = Set<[UInt8]>()
            var list: [Consenter] = []
            for c in o.consenters {
                let what = "raft consenter \(c.id)"
                guard c.id > 0 else { throw ChannelConfigError("raft consenter ids start at 1") }
                guard ids.insert(c.id).inserted else { throw ChannelConfigError("\(what) is listed twice") }
                guard organizations.contains(c.org) else {
                    throw ChannelConfigError(
                        "\(what): organisation \(c.org.debugDescription) is not a channel organisation")
                }
                guard ChannelContext.isEndpoint(c.raftAddress) else {
                    throw ChannelConfigError("\(what): raft_address \(c.raftAddress.debugDescription) is not host:port")
                }
                guard ChannelContext.isEndpoint(c.endpoint) else {
                    throw ChannelConfigError("\(what): endpoint \(c.endpoint.debugDescription) is not host:port")
                }
                guard addresses.insert(c.raftAddress).inserted else {
                    throw ChannelConfigError("\(what): raft_address \(c.raftAddress) is another consenter's")
                }
                let key = try Self.publicKey(ofPEM: c.tlsCertificate, what: what)
                guard keys.insert(key).inserted else {
                    throw ChannelConfigError("\(what): its TLS key is another consenter's")
                }
                list.append(
                    Consenter(id: c.id, org: c.org, raftAddress: c.raftAddress, endpoint: c.endpoint, publicKey: key))
            }
            for e in o.endpoints where !list.contains(where: { $0.endpoint == e }) {
                throw ChannelConfigError("orderer endpoint \(e) is no consenter's endpoint")
            }
            consenters = list
            signingOrganizations = Set(list.map(\.org))
        default:
            throw ChannelConfigError("orderer type \(o.type.debugDescription) is not solo or raft")
        }
    }

    /// One line for people: "solo: sa" or "raft: 1 hospital-a 127.0.0.1:7052, 2 …".
    public var summary: String {
        switch kind {
        case .solo: return "solo: \(signingOrganizations.sorted().joined())"
        case .raft: return "raft: " + consenters.map { "\($0.id) \($0.org) \($0.raftAddress)" }.joined(separator: ", ")
        }
    }

    /// The DER SubjectPublicKeyInfo of a PEM certificate: what a consenter entry pins.
    public static func publicKey(ofPEM pem: Data, what: String) throws(ChannelConfigError) -> [UInt8] {
        do {
            let certificate = try Certificate(pemEncoded: String(decoding: pem, as: UTF8.self))
            var serializer = DER.Serializer()
            try serializer.serialize(certificate.publicKey)
            return serializer.serializedBytes
        } catch {
            throw ChannelConfigError("\(what): tls_certificate is not a PEM certificate: \(error)")
        }
    }

    /// The rule for changing the cluster by a configuration update: the kind never changes, and at most
    /// one consenter is added, removed or changed (address or certificate) per update, so a quorum of
    /// the old set is always a quorum of the new one's majority-overlap and no update can remove a
    /// majority at once. Replacing every certificate is one update per consenter.
    public static func checkChange(from old: OrderingConfig, to new: OrderingConfig) throws(ChannelConfigError) {
        guard old.kind == new.kind else {
            throw ChannelConfigError(
                "the orderer type cannot change from \(old.kind.rawValue) to \(new.kind.rawValue) by a configuration update"
            )
        }
        guard old.kind == .raft else { return }
        let before = Dictionary(uniqueKeysWithValues: old.consenters.map { ($0.id, $0) })
        let after = Dictionary(uniqueKeysWithValues: new.consenters.map { ($0.id, $0) })
        let added = after.keys.filter { before[$0] == nil }.sorted()
        let removed = before.keys.filter { after[$0] == nil }.sorted()
        let changed = after.keys.filter { before[$0] != nil && before[$0] != after[$0] }.sorted()
        let total = added.count + removed.count + changed.count
        guard total <= 1 else {
            throw ChannelConfigError(
                "a configuration update may change one raft consenter at a time; this one adds \(added), removes \(removed) and changes \(changed)"
            )
        }
        if let c = changed.first, before[c]?.org != after[c]?.org {
            throw ChannelConfigError(
                "raft consenter \(c) cannot move to another organisation; remove it and add a new one")
        }
    }
}
