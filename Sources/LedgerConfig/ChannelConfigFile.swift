import Foundation
import LedgerChannel
import LedgerIdentity
import LedgerProtos
import Yams

/// A channel's configuration as people write it (YAML, see network-config/), turned into the
/// `ChannelConfig` that goes into the genesis block or a configuration update. Relative paths are
/// relative to the file.
///
///     channel: records
///     organizations:
///       - { id: sa, ca_root: ../sa/ca-cert.pem }
///       - { id: hospital-a, ca_root: ../sa/ca-cert.pem, crl: crl.pem, peers: [127.0.0.1:7051] }
///     orderer: { org: sa, endpoints: [127.0.0.1:7050] }      # solo: the SA's node orders
///     # or a raft cluster (endpoints default to the consenters'; crl_publisher must then be given):
///     # orderer:
///     #   type: raft
///     #   consenters:
///     #     - { id: 1, org: hospital-a, raft_address: 127.0.0.1:7052, endpoint: 127.0.0.1:7050, tls_certificate: ../a/tls-cert.pem }
///     #   raft: { election_timeout_ms: 1000, heartbeat_ms: 100, snapshot_interval: 1024 }
///     crl_publisher: sa                  # may publish newer CRLs alone (default: the orderer org)
///     batch: { max_message_count: 500, absolute_max_bytes: 10485760, preferred_max_bytes: 2097152, batch_timeout_ms: 0 }
///     chaincodes:
///       - { name: medrecords, endorsement_policy: "OR('hospital-a.node', 'hospital-b.node')" }
public struct ChannelConfigFile: Codable, Sendable {
    public struct Organization: Codable, Sendable {
        public var id: String
        public var caRoot: String
        public var crl: String?
        public var peers: [String]?
        enum CodingKeys: String, CodingKey {
            case id
            case caRoot = "ca_root"
            case crl, peers
        }
    }

    public struct Orderer: Codable, Sendable {
        public var type: String?
        public var org: String?
        public var endpoints: [String]?
        public var consenters: [Consenter]?
        public var raft: RaftOptions?
    }

    public struct Consenter: Codable, Sendable {
        public var id: UInt64
        public var org: String
        public var raftAddress: String
        public var endpoint: String
        public var tlsCertificate: String
        enum CodingKeys: String, CodingKey {
            case id, org
            case raftAddress = "raft_address"
            case endpoint
            case tlsCertificate = "tls_certificate"
        }
    }

    public struct RaftOptions: Codable, Sendable {
        public var electionTimeoutMs: UInt32?
        public var heartbeatMs: UInt32?
        public var snapshotInterval: UInt32?
        enum CodingKeys: String, CodingKey {
            case electionTimeoutMs = "election_timeout_ms"
            case heartbeatMs = "heartbeat_ms"
            case snapshotInterval = "snapshot_interval"
        }
    }

    public struct Batch: Codable, Sendable {
        public var maxMessageCount: UInt32?
        public var absoluteMaxBytes: UInt32?
        public var preferredMaxBytes: UInt32?
        public var batchTimeoutMs: UInt32?
        enum CodingKeys: String, CodingKey {
            case maxMessageCount = "max_message_count"
            case absoluteMaxBytes = "absolute_max_bytes"
            case preferredMaxBytes = "preferred_max_bytes"
            case batchTimeoutMs = "batch_timeout_ms"
        }
    }

    public struct Chaincode: Codable, Sendable {
        public var name: String
        public var endorsementPolicy: String
        enum CodingKeys: String, CodingKey {
            case name
            case endorsementPolicy = "endorsement_policy"
        }
    }

    public var channel: String
    public var organizations: [Organization]
    public var orderer: Orderer
    /// The organisation running the members' CA, whose administrators may publish a newer CRL
    /// without a majority. Absent: the orderer organisation (the SA runs both). Given empty, it is
    /// refused: YAML reads `""`, `~` and `null` as no value, which would silently mean the default.
    public var crlPublisher: String?
    public var batch: Batch?
    public var chaincodes: [Chaincode]

    enum CodingKeys: String, CodingKey {
        case channel, organizations, orderer
        case crlPublisher = "crl_publisher"
        case batch, chaincodes
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the file, inlines the certificates and CRLs it names, and checks every channel rule.
    public static func load(path: String) throws -> Medledger_ChannelConfig {
        let checked: String?
        do { checked = try YAMLShape.readChecked(path: path) } catch {
            throw Failure(description: "channel configuration \(error)")
        }
        guard let text = checked else {
            throw Failure(description: "cannot read channel configuration \(path) (missing, unreadable or not UTF-8)")
        }
        let file: ChannelConfigFile
        do { file = try YAMLDecoder().decode(ChannelConfigFile.self, from: text) } catch {
            throw Failure(description: "channel configuration \(path) is not valid: \(error)")
        }
        if let refusal = UnknownKeys.refusal(in: text, decoded: file, file: "channel configuration \(path)") {
            throw Failure(description: refusal)
        }
        if file.crlPublisher == nil, (try? Yams.compose(yaml: text))??.mapping?["crl_publisher"] != nil {
            throw Failure(
                description:
                    "channel configuration \(path): crl_publisher is empty, which YAML reads as no value (the orderer organisation); name the organisation, or leave the key out"
            )
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func read(_ p: String, _ what: String) throws -> Data {
            let full = p.hasPrefix("/") ? p : base.appendingPathComponent(p).path
            guard let d = FileManager.default.contents(atPath: full) else {
                throw Failure(description: "\(path): cannot read \(what) \(full)")
            }
            return d
        }
        var c = Medledger_ChannelConfig()
        c.channelID = file.channel
        for o in file.organizations {
            var org = Medledger_OrganizationConfig()
            org.id = o.id
            org.rootCertificates = [try read(o.caRoot, "CA root of \(o.id)")]
            if let crl = o.crl {
                let d = try read(crl, "CRL of \(o.id)")
                do { org.crl = Data(try RevocationList.derBytes([UInt8](d))) } catch {
                    throw Failure(description: "\(path): CRL of \(o.id): \(error)")
                }
            }
            org.peerEndpoints = o.peers ?? []
            c.organizations.append(org)
        }
        c.orderer.type = file.orderer.type ?? ""
        c.orderer.org = file.orderer.org ?? ""
        for k in file.orderer.consenters ?? [] {
            var consenter = Medledger_Consenter()
            consenter.id = k.id
            consenter.org = k.org
            consenter.raftAddress = k.raftAddress
            consenter.endpoint = k.endpoint
            consenter.tlsCertificate = try read(k.tlsCertificate, "TLS certificate of raft consenter \(k.id)")
            c.orderer.consenters.append(consenter)
        }
        c.orderer.endpoints = file.orderer.endpoints ?? c.orderer.consenters.map(\.endpoint)
        if let r = file.orderer.raft {
            c.orderer.raft.electionTimeoutMs = r.electionTimeoutMs ?? 0
            c.orderer.raft.heartbeatMs = r.heartbeatMs ?? 0
            c.orderer.raft.snapshotInterval = r.snapshotInterval ?? 0
        }
        c.crlPublisherOrg = file.crlPublisher ?? c.orderer.org
        let b = file.batch
        c.batch.maxMessageCount = b?.maxMessageCount ?? 500
        c.batch.absoluteMaxBytes = b?.absoluteMaxBytes ?? 10 * 1024 * 1024
        c.batch.preferredMaxBytes = b?.preferredMaxBytes ?? 2 * 1024 * 1024
        c.batch.batchTimeoutMs = b?.batchTimeoutMs ?? 0
        c.chaincodes = file.chaincodes.map { cc in
            var d = Medledger_ChaincodeDefinition()
            d.name = cc.name
            d.endorsementPolicy = cc.endorsementPolicy
            return d
        }
        do { _ = try ChannelContext(config: c, configBlock: 0) } catch {
            throw Failure(description: "\(path): \(error)")
        }
        return c
    }
}
