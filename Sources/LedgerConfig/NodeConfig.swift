import Foundation
import LedgerIncidents
import Yams

/// `medledgerd --config FILE`: the node's configuration (YAML). Relative paths are relative to the
/// configuration file's directory.
///
///     node: { name: peer0, org: hospital-a }
///     data_dir: data                     # ledger (RocksDB) lives here
///     listen: 127.0.0.1:7051             # mutual-TLS API (port 0: any free port, printed at start)
///     tls: { cert: tls-cert.pem, key: tls-key.pem }
///     trusted_roots: [ca-cert.pem]
///     crl_files: [crl.pem]               # re-read whenever they change, no restart
///     crl_poll_seconds: 2
///     crl_source: 127.0.0.1:7054        # the CA's enrollment listener: a CRL due or stale is fetched
///                                        # there (and written to the first crl_files entry)
///     audit_log: audit.log
///     audit_rotate: { max_bytes: 67108864, keep_files: 64 }
///                                        # the audit log moves to audit.log.<first line> at that size;
///                                        # the oldest rotated files beyond keep_files are deleted
///     log_spec: info                     # levels of the JSON-lines log on stdout, Fabric's syntax:
///                                        # "info:node=debug" (changed at run time: PUT /logspec)
///     audit_anchor: { channel: records, every_seconds: 300, every_lines: 10000 }
///                                        # peers: the audit log's head written on chain (medrecords
///                                        # anchorAudit) that often (absent: not anchored)
///     signing: { cert: signing-cert.pem, key: signing-key.pem }  # default: beside the TLS pair
///     peer: true                         # endorse and commit (default true)
///     orderer: { data_dir: orderer-data }  # also run the ordering service (absent: no)
///     #   raft_listen: 127.0.0.1:7052    # and be a raft consenter here (mutual TLS with the node's
///     #                                  # TLS pair; its key is what channel configurations pin)
///     #   raft_dir: orderer-data/raft    # raft logs (default: beside the orderer's ledger)
///     object_store:                      # peers only; all fields optional
///       data_dir: objects                # default: DATA_DIR/objects
///       max_bytes: 67108864              # largest object accepted (default 64 MiB)
///       public_address: peer0.a:7051     # host:port put into URL_C (default: listen)
///     operations: { listen: 127.0.0.1:9443 }  # HTTPS: /healthz and /version open, /metrics for
///                                        # this organisation's administrators and nodes (absent: off)
///     #   connections_max: 64            # open at once (1...16384; default 64)
///     #   connections_per_source_max: 16 # of them from one IPv4 address or IPv6 /64 (default: a
///     #                                  # quarter of connections_max)
///     fhir:                              # peers only: FHIR R4 + SMART on FHIR over HTTPS (absent: off)
///       listen: 127.0.0.1:8443
///       channel: records                 # whose medrecords it serves
///       public_url: https://fhir.a:8443  # what apps reach (default https://LISTEN); the FHIR base is PUBLIC_URL/fhir
///       token_lifetime_seconds: 300      # access tokens: 1...300 (default 300)
///       connections_max: 1024            # open at once (1...16384; default 1024)
///       connections_per_source_max: 256  # of them from one IPv4 address or IPv6 /64 (default: a quarter;
///                                        # raise it for an EHR that connects through one proxy)
///     anomaly:                           # per-identity rules (absent: AnomalyRule.defaults; rules: []
///       rules:                           # turns detection off); action alert or suspend
///         - { name: patient-sweep, kind: distinct-patients, threshold: 100, window_seconds: 600, action: suspend }
///         - { name: night, kind: outside-hours, hours: "07:00-19:00", utc_offset_minutes: 480,
///             threshold: 1, window_seconds: 3600, action: alert, roles: [doctor] }
///       webhook: https://pager.example/medledger   # each alert POSTed as JSON (5 s time-out)
///     appointments:                      # management node H_Mj (peers only; absent: books none)
///       doctors: [PID, PID]              # the hospital's doctors, assigned in turn
///     ca:                                # only on the system administrator's node
///       data_dir: ca
///       master_key_file: master.key      # or MEDLEDGER_CA_MASTER_KEY
///       enroll_listen: 127.0.0.1:7054    # server-TLS-only listener for enrollment
///       crl_publisher: { cert: wallets/admin/signing-cert.pem, key: wallets/admin/signing-key.pem }
///                                        # an SA administrator: signs the CRL updates this node puts
///                                        # into the channels it orders (default: wallets/admin, if there)
public struct NodeConfig: Codable, Sendable, Equatable {
    public struct NodeSection: Codable, Sendable, Equatable {
        public var name: String
        public var org: String
    }

    public struct TLSSection: Codable, Sendable, Equatable {
        public var cert: String
        public var key: String
    }

    public struct OrdererSection: Codable, Sendable, Equatable {
        public var dataDir: String
        /// host:port of the raft listener (mutual TLS, pinned keys); absent: this node orders solo only.
        public var raftListen: String?
        /// Raft logs and snapshots, one directory per channel (default: DATA_DIR of the orderer + /raft).
        public var raftDir: String?

        enum CodingKeys: String, CodingKey {
            case dataDir = "data_dir"
            case raftListen = "raft_listen"
            case raftDir = "raft_dir"
        }
    }

    public struct ObjectStoreSection: Codable, Sendable, Equatable {
        public var dataDir: String?
        public var maxBytes: UInt64?
        public var publicAddress: String?

        enum CodingKeys: String, CodingKey {
            case dataDir = "data_dir"
            case maxBytes = "max_bytes"
            case publicAddress = "public_address"
        }
    }

    public struct AppointmentsSection: Codable, Sendable, Equatable {
        public var doctors: [String]
    }

    public struct OperationsSection: Codable, Sendable, Equatable {
        public var listen: String
        /// Connections open at once, and from one source (absent: the endpoint's defaults).
        public var connectionsMax: Int?
        public var connectionsPerSourceMax: Int?

        enum CodingKeys: String, CodingKey {
            case listen
            case connectionsMax = "connections_max"
            case connectionsPerSourceMax = "connections_per_source_max"
        }
    }

    public struct FHIRSection: Codable, Sendable, Equatable {
        public var listen: String
        public var channel: String
        public var publicURL: String?
        public var tokenLifetimeSeconds: Int?
        /// Connections open at once, and from one source (absent: the endpoint's defaults).
        public var connectionsMax: Int?
        public var connectionsPerSourceMax: Int?

        enum CodingKeys: String, CodingKey {
            case listen, channel
            case publicURL = "public_url"
            case tokenLifetimeSeconds = "token_lifetime_seconds"
            case connectionsMax = "connections_max"
            case connectionsPerSourceMax = "connections_per_source_max"
        }

        /// The origin apps reach the endpoint at (no trailing slash).
        public var origin: String {
            let given = publicURL ?? "https://" + listen
            return given.hasSuffix("/") ? String(given.dropLast()) : given
        }
    }

    public struct AuditAnchorSection: Codable, Sendable, Equatable {
        public var channel: String
        public var everySeconds: Int?
        public var everyLines: UInt64?

        enum CodingKeys: String, CodingKey {
            case channel
            case everySeconds = "every_seconds"
            case everyLines = "every_lines"
        }
    }

    public struct AuditRotateSection: Codable, Sendable, Equatable {
        public var maxBytes: Int?
        public var keepFiles: Int?

        public init(maxBytes: Int? = nil, keepFiles: Int? = nil) {
            self.maxBytes = maxBytes
            self.keepFiles = keepFiles
        }

        enum CodingKeys: String, CodingKey {
            case maxBytes = "max_bytes"
            case keepFiles = "keep_files"
        }
    }

    public struct AnomalySection: Codable, Sendable, Equatable {
        public var rules: [AnomalyRule]?
        public var webhook: String?
    }

    public struct CASection: Codable, Sendable, Equatable {
        public var dataDir: String
        public var masterKeyFile: String?
        public var enrollListen: String?
        public var crlPublisher: TLSSection?

        enum CodingKeys: String, CodingKey {
            case dataDir = "data_dir"
            case masterKeyFile = "master_key_file"
            case enrollListen = "enroll_listen"
            case crlPublisher = "crl_publisher"
        }
    }

    public var node: NodeSection
    public var dataDir: String
    public var listen: String
    public var tls: TLSSection
    public var trustedRoots: [String]
    public var crlFiles: [String]?
    public var crlPollSeconds: Double?
    public var crlSource: String?
    public var auditLog: String?
    public var ca: CASection?
    public var signing: TLSSection?
    public var peer: Bool?
    public var orderer: OrdererSection?
    public var objectStore: ObjectStoreSection?
    public var appointments: AppointmentsSection?
    public var operations: OperationsSection?
    public var fhir: FHIRSection?
    public var anomaly: AnomalySection?
    public var auditAnchor: AuditAnchorSection?
    public var auditRotate: AuditRotateSection?
    public var logSpec: String?

    /// The anomaly rules in force: the configured ones, else the defaults.
    public var anomalyRules: [AnomalyRule] { anomaly?.rules ?? AnomalyRule.defaults }

    public var runsPeer: Bool { peer ?? true }

    /// Where a peer keeps its objects, how large one may be, and the address URL_C names.
    public var objectStoreDirectory: String {
        objectStore?.dataDir ?? URL(fileURLWithPath: dataDir).appendingPathComponent("objects").path
    }
    public var objectStoreMaxBytes: UInt64 { objectStore?.maxBytes ?? 64 << 20 }

    /// The node's signing identity (endorsements, blocks): `signing`, else the wallet files beside
    /// the TLS certificate.
    public var signingFiles: TLSSection {
        if let signing { return signing }
        let dir = URL(fileURLWithPath: tls.cert).deletingLastPathComponent()
        return TLSSection(
            cert: dir.appendingPathComponent("signing-cert.pem").path,
            key: dir.appendingPathComponent("signing-key.pem").path)
    }

    enum CodingKeys: String, CodingKey {
        case node, listen, tls, ca, signing, peer, orderer, appointments, operations, anomaly, fhir
        case objectStore = "object_store"
        case dataDir = "data_dir"
        case trustedRoots = "trusted_roots"
        case crlFiles = "crl_files"
        case crlPollSeconds = "crl_poll_seconds"
        case auditLog = "audit_log"
        case crlSource = "crl_source"
        case auditAnchor = "audit_anchor"
        case logSpec = "log_spec"
        case auditRotate = "audit_rotate"
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads and checks a configuration file, resolving relative paths against its directory.
    public static func load(path: String) throws -> NodeConfig {
        let checked: String?
        do { checked = try YAMLShape.readChecked(path: path) } catch {
            throw Failure(description: "configuration \(error)")
        }
        guard let text = checked else {
            throw Failure(description: "cannot read configuration \(path) (missing, unreadable or not UTF-8)")
        }
        var config: NodeConfig
        do { config = try YAMLDecoder().decode(NodeConfig.self, from: text) } catch {
            throw Failure(description: "configuration \(path) is not valid: \(error)")
        }
        if let refusal = UnknownKeys.refusal(in: text, decoded: config, file: "configuration \(path)") {
            throw Failure(description: refusal)
        }
        try config.resolvePaths(against: URL(fileURLWithPath: path).deletingLastPathComponent())
        try config.checkLimits(path: path)
        try config.checkServices(path: path)
        return config
    }

    /// Makes every relative path absolute, against the configuration file's directory (and checks
    /// the object store's bounds on the way).
    mutating func resolvePaths(against base: URL) throws {
        var config = self
        defer { self = config }
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p).path }
        config.dataDir = resolve(config.dataDir)
        config.tls.cert = resolve(config.tls.cert)
        config.tls.key = resolve(config.tls.key)
        config.trustedRoots = config.trustedRoots.map(resolve)
        config.crlFiles = config.crlFiles?.map(resolve)
        config.auditLog = config.auditLog.map(resolve)
        if var signing = config.signing {
            signing.cert = resolve(signing.cert)
            signing.key = resolve(signing.key)
            config.signing = signing
        }
        if var orderer = config.orderer {
            orderer.dataDir = resolve(orderer.dataDir)
            orderer.raftDir = resolve(
                orderer.raftDir ?? URL(fileURLWithPath: orderer.dataDir).appendingPathComponent("raft").path)
            config.orderer = orderer
        }
        if var objects = config.objectStore {
            objects.dataDir = objects.dataDir.map(resolve)
            if let m = objects.maxBytes, m == 0 || m > 1 << 40 {
                throw Failure(description: "object_store.max_bytes must be between 1 and 2^40")
            }
            if let a = objects.publicAddress, !a.contains(":") || a.contains("/") {
                throw Failure(description: "object_store.public_address must be host:port")
            }
            config.objectStore = objects
        }
        if var ca = config.ca {
            ca.dataDir = resolve(ca.dataDir)
            ca.masterKeyFile = ca.masterKeyFile.map(resolve)
            if var p = ca.crlPublisher {
                p.cert = resolve(p.cert)
                p.key = resolve(p.key)
                ca.crlPublisher = p
            } else if FileManager.default.fileExists(atPath: resolve("wallets/admin/signing-cert.pem")) {
                ca.crlPublisher = TLSSection(
                    cert: resolve("wallets/admin/signing-cert.pem"), key: resolve("wallets/admin/signing-key.pem"))
            }
            config.ca = ca
        }
    }

    /// The trust roots and the bounded settings: CRL polling, audit anchoring and rotation, anomaly rules.
    func checkLimits(path: String) throws {
        let config = self
        guard !config.trustedRoots.isEmpty else {
            throw Failure(description: "configuration \(path): trusted_roots must name at least one CA certificate")
        }
        if let poll = config.crlPollSeconds, !(0.1...3600).contains(poll) {
            throw Failure(description: "crl_poll_seconds must be between 0.1 and 3600")
        }
        if let a = config.auditAnchor {
            guard config.auditLog != nil, config.runsPeer else {
                throw Failure(description: "configuration \(path): audit_anchor needs audit_log and a peer")
            }
            guard (1...86_400).contains(a.everySeconds ?? 300), (1...10_000_000).contains(a.everyLines ?? 10_000) else {
                throw Failure(
                    description:
                        "configuration \(path): audit_anchor.every_seconds must be 1...86400 and every_lines 1...10000000"
                )
            }
        }
        if let r = config.auditRotate {
            guard (4096...(1 << 32)).contains(r.maxBytes ?? 64 << 20), (1...10_000).contains(r.keepFiles ?? 64) else {
                throw Failure(
                    description:
                        "configuration \(path): audit_rotate.max_bytes must be 4096...4294967296 and keep_files 1...10000"
                )
            }
        }
        do { try AnomalyRule.validate(config.anomalyRules) } catch {
            throw Failure(description: "configuration \(path): \(error)")
        }
    }

    /// The listeners and outside addresses: operations, FHIR, the anomaly webhook.
    func checkServices(path: String) throws {
        let config = self
        if let o = config.operations, !Self.isHostPort(o.listen) {
            throw Failure(description: "operations.listen \(o.listen) is not host:port")
        }
        if let f = config.fhir {
            guard Self.isHostPort(f.listen) else {
                throw Failure(description: "fhir.listen \(f.listen) is not host:port")
            }
            guard f.publicURL != nil || !f.listen.hasSuffix(":0") else {
                throw Failure(
                    description:
                        "fhir.listen needs a fixed port, or a public_url: tokens and redirects name the address")
            }
            guard config.runsPeer else {
                throw Failure(description: "configuration \(path): fhir needs a peer (it reads the peer's ledger)")
            }
            guard (1...300).contains(f.tokenLifetimeSeconds ?? 300) else {
                throw Failure(
                    description:
                        "fhir.token_lifetime_seconds must be 1...300 (SMART backend services: at most 5 minutes)")
            }
            if let u = f.publicURL {
                guard let c = URLComponents(string: u), c.scheme == "https", c.host?.isEmpty == false, c.query == nil,
                    c.path.isEmpty || c.path == "/"
                else {
                    throw Failure(description: "fhir.public_url \(u) must be https://HOST[:PORT] with no path")
                }
            }
        }
        if let hook = config.anomaly?.webhook {
            // Alerts name PIDs: never in clear text to another machine.
            guard let url = URL(string: hook),
                url.scheme == "https"
                    || (url.scheme == "http" && ["127.0.0.1", "localhost", "::1"].contains(url.host ?? "")),
                url.host != nil
            else {
                throw Failure(
                    description:
                        "configuration \(path): anomaly.webhook \(hook.debugDescription) is not an https URL (http only to this machine)"
                )
            }
        }
    }

    static func isHostPort(_ s: String) -> Bool {
        guard let colon = s.lastIndex(of: ":"), colon != s.startIndex, let port = Int(s[s.index(after: colon)...])
        else { return false }
        return (0...65535).contains(port)
    }
}
