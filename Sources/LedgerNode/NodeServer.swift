import Dispatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerAudit
import LedgerCA
import LedgerChannel
import LedgerClient
import LedgerConfig
import LedgerCrypto
import LedgerFHIRServer
import LedgerIdentity
import LedgerIncidents
import LedgerObjects
import LedgerOperations
import LedgerOrdering
import LedgerOrderingCore
import LedgerPeer
import LedgerRPC
import LedgerRocksDB
import LedgerStorage
import LedgerTransport
import ServiceLifecycle
import Synchronization
import X509

/// A running node: the mutual-TLS API, and on the system administrator's node the CA with its
/// enrollment listener. `run` returns after SIGINT/SIGTERM (or `stop()`), having drained calls.
public final class NodeServer: Sendable {
    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// HTTP/2 flow-control window this node opens per stream (and connection) for what it receives:
    /// how much a client may send ahead of the node's reading it.
    static let receiveWindowBytes = 4 << 20

    let config: NodeConfig
    let log: @Sendable (String) -> Void
    /// The levels `PUT /logspec` changes (nil: the log closure has no levels, as in tests).
    let logLevels: LogLevels?
    /// The log closure of one component (peer, orderer, raft, audit, …); nil: `log` for all.
    let componentLog: (@Sendable (String) -> @Sendable (String) -> Void)?

    /// Debug builds only: the orderer's store fails its writes while the file this variable names
    /// exists (`RaftNetworkTests` fails one consenter's disk with it). Release builds ignore it.
    static var injectedOrdererDiskFault: String? {
        #if DEBUG
        ProcessInfo.processInfo.environment["MEDLEDGER_TEST_ORDERER_DISK_FAILS_WHILE"]
        #else
        nil
        #endif
    }

    public init(
        config: NodeConfig, log: @escaping @Sendable (String) -> Void, logLevels: LogLevels? = nil,
        logAs: (@Sendable (String) -> @Sendable (String) -> Void)? = nil
    ) {
        self.config = config
        self.log = log
        self.logLevels = logLevels
        self.componentLog = logAs
    }

    /// The log closure of `component`.
    func log(as component: String) -> @Sendable (String) -> Void { componentLog?(component) ?? log }

    public func run() async throws {
        let roots = try config.trustedRoots.flatMap { path -> [Certificate] in
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw StartupError(description: "cannot read trusted root \(path)")
            }
            do { return try Certificate.parseBundle(pem: pem) } catch {
                throw StartupError(description: "trusted root \(path) is not a PEM certificate: \(error)")
            }
        }
        guard !roots.isEmpty else { throw StartupError(description: "no trusted root certificates") }
        let trust = TrustStore(roots: roots)
        let log = self.log
        let rotate = config.auditRotate
        let rotation = AuditLog.Rotation(maxBytes: rotate?.maxBytes ?? 64 << 20, keepFiles: rotate?.keepFiles ?? 64)
        let auditLogLine = self.log(as: "audit")
        let audit = try config.auditLog.map {
            try AuditLog(path: $0, rotation: rotation) { failure in auditLogLine("medledgerd: \(failure)") }
        }
        let auditGuard = AuditWriteGuard(audit: audit, log: auditLogLine)
        if let r = audit?.recovery {
            log(
                "medledgerd: audit log ended in a torn line (bytes \(r.tornBytes)); kept and marked by line \(r.recordSeq)"
            )
        }
        defer { try? audit?.close() }  // a failed final flush is reported through onFailure

        let rootsPEM = try config.trustedRoots.flatMap { path -> [UInt8] in
            Array(try Data(contentsOf: URL(fileURLWithPath: path))) + [10]
        }
        var crlSource: NodeAddress?
        if let s = config.crlSource {
            guard let a = NodeAddress(s) else { throw StartupError(description: "crl_source \(s) is not host:port") }
            crlSource = a
        }
        let watcher = CRLWatcher(
            files: config.crlFiles ?? [], source: crlSource, rootsPEM: rootsPEM, trust: trust, log: self.log(as: "crl"))
        try watcher.loadAll(strict: true)

        let ledgers = try LedgerStore.open(dataDir: config.dataDir)
        defer { ledgers.close() }

        let suspensions = try SuspensionList(
            path: URL(fileURLWithPath: config.dataDir).appendingPathComponent("suspended.json").path)
        // With an operations endpoint, the node keeps metrics (and pays for them only then).
        let nodeMetrics = config.operations.map { _ in NodeMetrics(version: NodeOperations.version) }
        var committedObserver: (@Sendable (String, CommitReceipt, Duration) -> Void)?
        if let nodeMetrics {
            committedObserver = { channel, receipt, took in
                nodeMetrics.recordCommit(
                    channel: channel, codes: receipt.validationCodes.map { "\($0)" }, duration: took)
            }
        }
        var peer: PeerRuntime?
        var orderer: OrderingServices?
        var raftOrdering: RaftOrdering?
        var ordererStore: LedgerStore?
        var nodeSigner: SigningIdentity?
        if config.runsPeer || config.orderer != nil {
            let files = config.signingFiles
            let signer: SigningIdentity
            do { signer = try SigningIdentity.load(certificatePath: files.cert, keyPath: files.key) } catch {
                throw StartupError(description: "signing identity: \(error)")
            }
            nodeSigner = signer
            if config.runsPeer {
                var endorser = Endorser(identity: signer, chaincodes: BuiltInChaincodes.all)
                endorser.revocationGate = trust
                // A proposal signed by a suspended identity is refused whoever's connection carries it.
                endorser.creatorGate = { creator in
                    suspensions.suspension(of: creator.pid).map {
                        "suspended: \(creator.pid) is suspended on this node (\($0.by))"
                    }
                }
                endorser.writeGate = { auditGuard.refusal() }
                peer = try PeerRuntime(
                    store: ledgers, endorser: endorser,
                    tls: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key),
                    trustedRootsPEM: rootsPEM,
                    trust: trust,
                    ownTLSPublicKey: FileManager.default.contents(atPath: config.tls.cert).flatMap {
                        try? OrderingConfig.publicKey(ofPEM: $0, what: "the node's TLS certificate")
                    },
                    committed: committedObserver,
                    log: self.log(as: "peer"))
            }
            if let o = config.orderer {
                let store = try LedgerStore.open(
                    dataDir: o.dataDir, failWritesWhileExists: Self.injectedOrdererDiskFault)
                ordererStore = store
                if let raftListen = o.raftListen {
                    raftOrdering = try await RaftOrdering.start(
                        listen: raftListen, directory: o.raftDir ?? o.dataDir + "/raft", store: store, signer: signer,
                        tls: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key),
                        trustedRootsPEM: rootsPEM, gate: trust, log: self.log(as: "raft"))
                }
                orderer = OrderingServices(
                    solo: try SoloOrderer(store: store, signer: signer, gate: trust, log: self.log(as: "orderer")),
                    raft: raftOrdering?.orderer)
            }
        }
        // On the way out: peers stop pulling, the orderer writes what it accepted, then stores close.
        defer {
            peer?.stop()
            orderer?.shutdown()
            ordererStore?.close()
        }

        var ca: CertificateAuthority?
        if let caConfig = config.ca {
            let box = try SecretBox.load(keyFile: caConfig.masterKeyFile)
            let authority = try CertificateAuthority.open(dataDir: caConfig.dataDir, box: box, audit: audit)
            try trust.install(try RevocationList.parse(try authority.currentCRL().der), source: "this node's CA")
            ca = authority
        }
        defer { ca?.close() }
        var crlPublisher: CRLPublisher?
        // The CRL publisher reaches the orderers of channels this node only holds as a peer (raft).
        let publisherClient = GRPCLeaderForwarder(
            trustedRootsPEM: rootsPEM, tls: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key))
        defer { publisherClient.close() }
        if let ca, let orderer, let files = config.ca?.crlPublisher {
            do {
                let admin = try SigningIdentity.load(certificatePath: files.cert, keyPath: files.key)
                var peerChannels: (@Sendable () -> [ChannelContext])?
                if let runtime = peer { peerChannels = { runtime.all.map(\.context) } }
                crlPublisher = CRLPublisher(
                    ca: ca, orderer: orderer, peerChannels: peerChannels, remote: publisherClient, publisher: admin,
                    log: self.log(as: "crl"))
            } catch {
                log(
                    "medledgerd: WARNING: CRL publisher identity \(files.cert): \(error); revocations will not reach the channels' configuration"
                )
            }
        }

        guard let listen = NodeAddress(config.listen) else {
            throw StartupError(description: "listen address \(config.listen) is not host:port")
        }
        let incidents = IncidentDesk(
            detector: try AnomalyDetector(rules: config.anomalyRules),
            suspensions: suspensions,
            audit: audit, metrics: nodeMetrics,
            webhook: config.anomaly?.webhook.map { Webhook(url: $0, log: self.log(as: "incidents")) },
            log: self.log(as: "incidents"))
        let identity = TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key)
        let security = ServerSecurity.mutualTLS(identity: identity, trust: trust) { subject, reason in
            audit?.note(
                AuditEvent(
                    actor: AuditActor(pid: subject, org: "-", role: "-"), action: "tls.handshake",
                    target: self.config.listen, outcome: .denied, detail: reason))
        }
        // The address this node really listens on (known once it does; port 0 picks one).
        let boundAddress = BoundAddress(config.listen)
        var nodeSubmitter: NodeSubmitter?
        var fhirBackend: NodeFHIRBackend?
        var services: [any RegistrableRPCService] = [
            NodeService(
                nodeOrg: config.node.org, ledgers: ledgers, trust: trust, crlWatcher: watcher,
                channelContext: { [peer] in peer?.channel($0)?.context }, audit: audit)
        ]
        if let peer {
            services.append(PeerService(runtime: peer, nodeOrg: config.node.org, audit: audit, incidents: incidents))
            let objects = try ObjectStore(
                directory: URL(fileURLWithPath: config.objectStoreDirectory), maxBytes: config.objectStoreMaxBytes)
            let fixed = config.objectStore?.publicAddress
            services.append(
                ObjectStoreService(
                    store: objects, runtime: peer, publicAddress: { fixed ?? boundAddress.value }, audit: audit,
                    incidents: incidents, metrics: nodeMetrics))
            // The services that act in the node's own name (treatments, usage records) submit
            // through a gateway to this very node.
            if let nodeSigner {
                let submitter = try NodeSubmitter(
                    signer: nodeSigner, trustedRootsPEM: rootsPEM, tls: identity, ownAddress: { boundAddress.value })
                nodeSubmitter = submitter
                let query = ChainQuery(runtime: peer)
                let dataDir = URL(fileURLWithPath: config.dataDir)
                let inbox = try ReadingInbox(directory: dataDir.appendingPathComponent("collector"))
                if let f = config.fhir {
                    fhirBackend = NodeFHIRBackend(
                        query: query, channel: f.channel, trust: trust, suspensions: suspensions, audit: audit,
                        node: submitter.creator, incidents: incidents, objects: objects,
                        submitter: submitter, inbox: inbox)
                }
                services.append(
                    AppointmentService(
                        doctors: config.appointments?.doctors ?? [], trust: trust, query: query, submitter: submitter,
                        audit: audit))
                services.append(
                    ProxyService(
                        store: try KeyFragStore(directory: dataDir.appendingPathComponent("proxy")), query: query,
                        submitter: submitter,
                        proxyName: "\(config.node.org)/\(config.node.name)", audit: audit, metrics: nodeMetrics))
                services.append(
                    CollectorService(
                        inbox: inbox, trust: trust, query: query, node: submitter, audit: audit))
            }
        }
        if let orderer { services.append(OrdererService(orderer: orderer, nodeOrg: config.node.org, audit: audit)) }
        var enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?
        if let ca {
            let enrollment = CAEnrollmentService(ca: ca)
            services.append(enrollment)
            let publisher = crlPublisher
            services.append(
                CAAdministrationService(ca: ca) {
                    if let der = try? ca.currentCRL().der, let crl = try? RevocationList.parse(der) {
                        _ = try? trust.install(crl, source: "this node's CA")
                    }
                    return await publisher?.publish()
                })
            if let enrollListen = config.ca?.enrollListen {
                guard let e = NodeAddress(enrollListen) else {
                    throw StartupError(description: "enroll_listen address \(enrollListen) is not host:port")
                }
                enrollServer = GRPCServer(
                    transport: HTTP2ServerTransport.Posix(
                        address: e.serverAddress, transportSecurity: ServerSecurity.serverTLS(identity: identity),
                        config: .defaults { $0.connection.keepalive = ConnectionKeepalive.server }),
                    services: [enrollment])
            }
        }
        let auth = AuthInterceptor(trust: trust) { method, reason in
            audit?.note(AuditEvent(actor: .anonymous, action: "auth", target: method, outcome: .denied, detail: reason))
        }
        // With an operations endpoint, every call is counted and timed (first, so 401s count too).
        let written = [
            config.dataDir, config.auditLog.map { ($0 as NSString).deletingLastPathComponent },
            config.runsPeer ? config.objectStoreDirectory : nil, config.orderer?.dataDir,
        ]
        let operations = nodeMetrics.map {
            NodeOperations(
                metrics: $0, peer: peer, orderer: orderer, trust: trust, audit: audit,
                directories: Array(Set(written.compactMap { $0 })).sorted())
        }
        // After authentication: suspended identities are refused, and the anomaly rules see the rest.
        let interceptors: [any ServerInterceptor] =
            (operations.map { [MetricsInterceptor(metrics: $0.metrics)] } ?? []) + [
                auth, AuditGateInterceptor(guardian: auditGuard), IncidentInterceptor(desk: incidents),
            ]
        let main = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: listen.serverAddress, transportSecurity: security,
                config: .defaults { config in
                    config.connection.keepalive = ConnectionKeepalive.server
                    // HTTP/2's default 64 KiB window makes a 1 MiB upload wait for a window update every
                    // 64 KiB; clients already open 8 MiB windows for what they receive.
                    config.http2.targetWindowSize = Self.receiveWindowBytes
                }),
            services: services, interceptors: interceptors)

        // One service group runs every long-lived part; on SIGTERM/SIGINT it shuts them down in
        // the reverse of this order, each finishing before the next is told: the operations endpoint
        // and the CRL tasks stop; the node's own gateway and the block pullers end their long-lived
        // streams (or the servers would wait for them forever); the orderer writes every envelope it
        // acknowledged; raft closes; and only then do the servers drain.
        let ownClient = nodeSubmitter
        let peerRuntime = peer
        var group: [any Service] = [GRPCServerService(server: main, log: self.log(as: "server"))]
        if let enrollServer { group.append(GRPCServerService(server: enrollServer, log: self.log(as: "server"))) }
        if let raftOrdering { group.append(ShutdownStep(name: "raft") { await raftOrdering.close() }) }
        if let orderer {
            group.append(ShutdownStep(name: "orderer") { await Task.detached { orderer.shutdown() }.value })
        }
        group.append(
            ShutdownStep(name: "streams") {
                log("medledgerd: shutting down")
                ownClient?.close()
                peerRuntime?.stop()
            })
        if let crlPublisher {
            group.append(BackgroundService(name: "crl-publisher") { await crlPublisher.run(every: 30) })
        }
        if let a = config.auditAnchor, let audit, let nodeSubmitter {
            let anchoring = AuditAnchoring(
                audit: audit, submitter: nodeSubmitter, channel: a.channel, everySeconds: a.everySeconds ?? 300,
                everyLines: a.everyLines ?? 10_000, log: auditLogLine)
            group.append(BackgroundService(name: "audit-anchoring") { await anchoring.run() })
        }
        let pollSeconds = config.crlPollSeconds ?? 2
        group.append(BackgroundService(name: "crl-watcher") { await watcher.poll(every: pollSeconds) })
        // "ready" waits for the operations endpoint too, so that whoever starts the node can scrape it.
        let (operationsListening, operationsListened) = AsyncStream<Void>.makeStream()
        let operationsServer = try makeOperationsServer(
            operations, incidents: incidents.endpoint, listening: operationsListened)
        if let operationsServer { group.append(operationsServer) } else { operationsListened.finish() }
        let (fhirListening, fhirListened) = AsyncStream<Void>.makeStream()
        if let fhir = try await makeFHIRServer(fhirBackend, roots: roots, metrics: nodeMetrics, listening: fhirListened)
        {
            group.append(fhir)
        } else {
            fhirListened.finish()
        }
        let serviceGroup = ServiceGroup(
            configuration: .init(services: group, gracefulShutdownSignals: [.sigterm, .sigint], logger: .silent))
        defer { ownClient?.close() }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            // Announce once the main server listens (the group's failure ends this wait too).
            let address = try await main.listeningAddress
            let port = address?.ipv4?.port ?? address?.ipv6?.port ?? listen.port
            boundAddress.value = "\(listen.host):\(port)"
            log(
                "medledgerd: node \(config.node.name) of \(config.node.org) listening on \(listen.host):\(port) (mutual TLS)"
            )
            if let enrollServer {
                let ep = try await enrollServer.listeningAddress?.ipv4?.port ?? 0
                log(
                    "medledgerd: CA enrollment listening on \(NodeAddress(config.ca!.enrollListen!)!.host):\(ep) (server TLS)"
                )
            }
            peer?.startPulling()
            if let peer {
                log(
                    "medledgerd: peer with \(peer.all.count) channel(s)\(peer.all.isEmpty ? "" : ": " + peer.all.map { "\($0.channelName) (height \($0.ledger.height))" }.joined(separator: ", "))"
                )
            }
            if let orderer {
                log(
                    "medledgerd: orderer with \(orderer.channels().count) channel(s)\(raftOrdering.map { " (raft consenter on \($0.transport.listenHost):\($0.transport.listenPort))" } ?? "")"
                )
            }
            var operationsUp = false
            for await _ in operationsListening { operationsUp = true }
            for await _ in fhirListening {}
            // Without it (a port in use), the group's error ends the node instead.
            if operationsUp || operationsServer == nil { log("medledgerd: ready") }
            try await tasks.waitForAll()
        }
    }
}

extension NodeServer {
    /// The HTTPS operations endpoint, when node.yaml asks for one, as a service of the node.
    func makeOperationsServer(
        _ operations: NodeOperations?, incidents: IncidentsEndpoint, listening: AsyncStream<Void>.Continuation
    ) throws -> BackgroundService? {
        guard let operations, let listen = config.operations?.listen else { return nil }
        guard let address = NodeAddress(listen) else {
            throw StartupError(description: "operations.listen \(listen) is not host:port")
        }
        let server = OperationsServer(
            host: address.host, port: address.port, certificatePath: config.tls.cert, keyPath: config.tls.key,
            trust: operations.trust,
            organization: config.node.org, version: NodeOperations.version, metrics: operations.metrics,
            sample: operations.sample, checks: operations.checks,
            incidents: incidents, logLevels: logLevels)
        let log = self.log(as: "operations")
        return Self.listeningService(name: "operations endpoint", listen: listen, listening: listening) { announce in
            try await server.run { port in
                log(
                    "medledgerd: operations endpoint on https://\(address.host):\(port) (/healthz, /version; /metrics for \(server.organization)'s administrators and nodes)"
                )
                announce()
            }
        }
    }
}

extension NodeServer {
    /// The FHIR endpoint with its SMART authorization server, when node.yaml asks for one. Its
    /// registered clients live in DATA_DIR/fhir; its token key is new at every start.
    func makeFHIRServer(
        _ backend: NodeFHIRBackend?, roots: [Certificate], metrics: NodeMetrics?,
        listening: AsyncStream<Void>.Continuation
    ) async throws -> BackgroundService? {
        guard let f = config.fhir else { return nil }
        guard let backend else { throw StartupError(description: "fhir needs a peer with a signing identity") }
        guard let address = NodeAddress(f.listen) else {
            throw StartupError(description: "fhir.listen \(f.listen) is not host:port")
        }
        let dir = URL(fileURLWithPath: config.dataDir).appendingPathComponent("fhir")
        let base = f.origin + "/fhir"
        let tokens = await TokenAuthority.withNewKey(
            issuer: f.origin + "/oauth", audience: base, lifetime: f.tokenLifetimeSeconds ?? 300)
        let clients = try ClientRegistry(path: dir.appendingPathComponent("clients.json").path)
        let authorization = AuthorizationServer(
            tokens: tokens, clients: clients, endpoints: .init(fhirBase: base, tokenURL: f.origin + "/oauth/token"),
            backend: backend)
        let server = FHIRServer(
            listen: .init(
                host: address.host, port: address.port, certificatePath: config.tls.cert, keyPath: config.tls.key,
                trustedRoots: roots),
            organization: config.node.org, version: NodeOperations.version, authorization: authorization,
            backend: backend,
            observe: { route, status, seconds in
                metrics?.recordFHIR(route: route, status: status, duration: .seconds(seconds))
            })
        let log = self.log(as: "fhir")
        return Self.listeningService(name: "FHIR endpoint", listen: f.listen, listening: listening) { announce in
            try await server.run { port in
                log(
                    "medledgerd: FHIR endpoint on https://\(address.host):\(port)/fhir (SMART authorization server under /oauth; \(clients.all().count) client(s) registered)"
                )
                announce()
            }
        }
    }

    /// An HTTPS endpoint as a service of the node: `listening` hears once it listens (or has failed,
    /// which then ends the node with a startup error naming the address).
    static func listeningService(
        name: String, listen: String, listening: AsyncStream<Void>.Continuation,
        run: @escaping @Sendable (@escaping @Sendable () -> Void) async throws -> Void
    ) -> BackgroundService {
        BackgroundService(name: name) {
            do {
                try await run {
                    listening.yield()
                    listening.finish()
                }
            } catch is CancellationError {
                listening.finish()
            } catch {
                listening.finish()
                throw StartupError(description: "\(name) on \(listen): \(error)")
            }
        }
    }
}

/// Keeps the node's revocation lists fresh: re-reads its CRL files when they change, and when a list
/// is missing, past half its validity or stale, fetches the CA's current one from `crl_source` (and
/// writes it to the first CRL file, so a restart starts from it). A stale list stays in force and is
/// reported (`node status`, the log); it never stops the node.
final class CRLWatcher: Sendable {
    let files: [String]
    let source: NodeAddress?
    let rootsPEM: [UInt8]
    let trust: TrustStore
    let log: @Sendable (String) -> Void
    private let lastError = Mutex<String>("")
    private let reportedStale = Mutex<Set<UInt64>>([])

    init(
        files: [String], source: NodeAddress?, rootsPEM: [UInt8], trust: TrustStore,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.files = files
        self.source = source
        self.rootsPEM = rootsPEM
        self.trust = trust
        self.log = log
    }

    /// Why the last refresh from `crl_source` failed, empty if it did not.
    var lastRefreshError: String { lastError.withLock { $0 } }

    /// At start a CRL file that does not parse or verify stops the node (`strict`): it is a
    /// configuration error. Later it is reported and the last good CRL stays in force.
    func loadAll(strict: Bool) throws {
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                if strict { log("medledgerd: CRL file \(path) does not exist yet; it will be read when it appears") }
                continue
            }
            do {
                if try trust.install(try RevocationList.parse([UInt8](data)), source: path) {
                    log("medledgerd: installed CRL from \(path)")
                }
            } catch {
                if strict { throw NodeServer.StartupError(description: "CRL file \(path): \(error)") }
                log("medledgerd: ignoring CRL file \(path): \(error)")
            }
        }
        reportStale()
    }

    private func reportStale(now: Date = Date()) {
        for crl in trust.installed where crl.isStale(at: now) {
            guard reportedStale.withLock({ $0.insert(crl.number).inserted }) else { continue }
            let how = source.map { "refreshing from \($0.host):\($0.port)" } ?? "set crl_source or replace the CRL file"
            log(
                "medledgerd: WARNING: CRL \(crl.number) of \(crl.issuer) is stale since \(crl.nextUpdate.map { "\($0)" } ?? "?"); still enforced; \(how)"
            )
        }
    }

    /// Fetches the CA's CRL when none is installed or one is due; installs and saves it.
    func refreshIfDue(now: Date = Date()) async {
        guard let source else { return }
        let installed = trust.installed
        guard installed.isEmpty || installed.contains(where: { $0.isDue(at: now) }) else { return }
        do {
            let response = try await CAClient(endpoint: source, trustedRootsPEM: rootsPEM, wallet: nil).crl()
            let der = [UInt8](response.crlDer)
            let crl = try RevocationList.parse(der)
            if try trust.install(crl, source: "\(source.host):\(source.port)") {
                log("medledgerd: installed CRL \(crl.crlNumber) from the CA at \(source.host):\(source.port)")
                if let file = files.first {
                    try SecureFile.write(Data(RevocationList.pem(der: der).utf8), to: file, mode: 0o644)
                }
            }
            lastError.withLock { $0 = "" }
        } catch {
            let text = "CRL refresh from \(source.host):\(source.port) failed: \(error)"
            if lastError.withLock({
                let changed = $0 != text
                $0 = text
                return changed
            }) {
                log("medledgerd: \(text)")
            }
        }
        reportStale(now: now)
    }

    func poll(every seconds: Double) async {
        var lastSeen = [String: Date]()
        while !Task.isCancelled {
            var changed = false
            for path in files {
                let m = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? nil
                if m != lastSeen[path] {
                    lastSeen[path] = m
                    changed = true
                }
            }
            if changed { try? loadAll(strict: false) }
            await refreshIfDue()
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
    }
}

/// The node's listening host:port, set once the server is up.
final class BoundAddress: Sendable {
    private let stored: Mutex<String>
    init(_ initial: String) { stored = Mutex(initial) }
    var value: String {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
