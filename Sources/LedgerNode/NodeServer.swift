import Dispatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerAudit
import LedgerCA
import LedgerChannel
import LedgerConfig
import LedgerCrypto
import LedgerFHIRServer
import LedgerHTTPConnections
import LedgerIdentity
import LedgerIncidents
import LedgerObjects
import LedgerOperations
import LedgerOrdering
import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
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
        let limits = try connectionLimits()
        if let warning = FileDescriptorLimit.warning(
            FileDescriptorLimit.raise(), operations: limits.operations, fhir: limits.fhir)
        {
            log(warning)
        }
        let roots = try loadTrustedRoots()
        let trust = TrustStore(roots: roots)
        let auditLogLine = self.log(as: "audit")
        let audit = try openAuditLog(failures: auditLogLine)
        let auditGuard = AuditWriteGuard(audit: audit, log: auditLogLine)
        defer { try? audit?.close() }  // a failed final flush is reported through onFailure

        let rootsPEM = try config.trustedRoots.flatMap { path -> [UInt8] in
            Array(try Data(contentsOf: URL(fileURLWithPath: path))) + [10]
        }
        let watcher = try makeCRLWatcher(trust: trust, rootsPEM: rootsPEM)

        let ledgers = try LedgerStore.open(dataDir: config.dataDir)
        defer { ledgers.close() }

        let suspensions = try SuspensionList(
            path: URL(fileURLWithPath: config.dataDir).appendingPathComponent("suspended.json").path)
        // With an operations endpoint, the node keeps metrics (and pays for them only then).
        let nodeMetrics = config.operations.map { _ in NodeMetrics(version: NodeOperations.version) }
        let roles = try await startRoles(
            ledgers: ledgers, trust: trust, rootsPEM: rootsPEM, suspensions: suspensions, auditGuard: auditGuard,
            metrics: nodeMetrics)
        let (peer, orderer) = (roles.peer, roles.orderer)
        // On the way out: peers stop pulling, the orderer writes what it accepted, then stores close.
        defer {
            peer?.stop()
            orderer?.shutdown()
            roles.ordererStore?.close()
        }

        let ca = try openCA(trust: trust, audit: audit)
        defer { ca?.close() }
        // The node's connections to other nodes: the CRL publisher reaches the orderers of channels this
        // node only holds as a peer (raft); the node's own submissions other peers and orderers.
        let nodeClients = NodeClients(
            trustedRootsPEM: rootsPEM,
            identity: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key),
            limit: 64)
        defer { nodeClients.close() }
        let publisherClient = GRPCLeaderForwarder(pool: nodeClients)
        let crlPublisher = makeCRLPublisher(ca: ca, orderer: orderer, peer: peer, remote: publisherClient)

        guard let listen = NodeAddress(config.listen) else {
            throw StartupError(description: "listen address \(config.listen) is not host:port")
        }
        let incidents = try makeIncidentDesk(suspensions: suspensions, audit: audit, metrics: nodeMetrics)
        let identity = TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key)
        // The address this node really listens on (known once it does; port 0 picks one).
        let boundAddress = BoundAddress(config.listen)
        let api = try makeAPIServices(
            roles: roles, ca: ca, crlPublisher: crlPublisher, ledgers: ledgers, watcher: watcher, trust: trust,
            rootsPEM: rootsPEM, identity: identity, suspensions: suspensions, audit: audit, incidents: incidents,
            metrics: nodeMetrics, boundAddress: boundAddress, nodeClients: nodeClients)
        let operations = makeOperations(metrics: nodeMetrics, peer: peer, orderer: orderer, trust: trust, audit: audit)
        let main = makeMainServer(
            listen: listen, identity: identity, trust: trust, audit: audit, auditGuard: auditGuard,
            incidents: incidents, operations: operations, services: api.services)

        let ownClient = api.nodeSubmitter
        var group = lifecycleServices(
            main: main, enrollServer: api.enrollServer, raftOrdering: roles.raftOrdering, orderer: orderer,
            ownClient: ownClient, peer: peer, crlPublisher: crlPublisher, audit: audit, auditLogLine: auditLogLine,
            watcher: watcher)
        let endpoints = try await addEndpoints(
            to: &group, operations: operations, incidents: incidents, fhirBackend: api.fhirBackend, roots: roots,
            metrics: nodeMetrics)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: group, gracefulShutdownSignals: [.sigterm, .sigint], logger: .silent))
        defer { ownClient?.close() }
        try await serve(
            serviceGroup, main: main, enrollServer: api.enrollServer, listen: listen, boundAddress: boundAddress,
            roles: roles, endpoints: endpoints)
    }

    /// The certificates of the trusted roots node.yaml names; a node needs at least one.
    private func loadTrustedRoots() throws -> [Certificate] {
        let roots = try config.trustedRoots.flatMap { path -> [Certificate] in
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw StartupError(description: "cannot read trusted root \(path)")
            }
            do { return try Certificate.parseBundle(pem: pem) } catch {
                throw StartupError(description: "trusted root \(path) is not a PEM certificate: \(error)")
            }
        }
        guard !roots.isEmpty else { throw StartupError(description: "no trusted root certificates") }
        return roots
    }

    /// The audit log node.yaml asks for, opened (and a torn last line reported); `failures` hears its failures.
    private func openAuditLog(failures auditLogLine: @escaping @Sendable (String) -> Void) throws -> AuditLog? {
        let log = self.log
        let rotate = config.auditRotate
        let rotation = AuditLog.Rotation(maxBytes: rotate?.maxBytes ?? 64 << 20, keepFiles: rotate?.keepFiles ?? 64)
        let audit = try config.auditLog.map {
            try AuditLog(path: $0, rotation: rotation) { failure in auditLogLine("medledgerd: \(failure)") }
        }
        if let r = audit?.recovery {
            log(
                "medledgerd: audit log ended in a torn line (bytes \(r.tornBytes)); kept and marked by line \(r.recordSeq)"
            )
        }
        return audit
    }

    /// The watcher of the node's CRLs, with the CRL files read now (one that is bad stops the node).
    private func makeCRLWatcher(trust: TrustStore, rootsPEM: [UInt8]) throws -> CRLWatcher {
        var crlSource: NodeAddress?
        if let s = config.crlSource {
            guard let a = NodeAddress(s) else { throw StartupError(description: "crl_source \(s) is not host:port") }
            crlSource = a
        }
        let watcher = CRLWatcher(
            files: config.crlFiles ?? [], source: crlSource, rootsPEM: rootsPEM, trust: trust, log: self.log(as: "crl"))
        try watcher.loadAll(strict: true)
        return watcher
    }

    /// What `startRoles` started; nothing of it is stopped yet (the caller's `defer` does that).
    private struct Roles {
        var peer: PeerRuntime?
        var orderer: OrderingServices?
        var raftOrdering: RaftOrdering?
        var ordererStore: LedgerStore?
        var signer: SigningIdentity?
    }

    /// Starts the peer and the orderer (solo, and raft when configured) that node.yaml asks this node to run.
    private func startRoles(
        ledgers: LedgerStore, trust: TrustStore, rootsPEM: [UInt8], suspensions: SuspensionList,
        auditGuard: AuditWriteGuard, metrics nodeMetrics: NodeMetrics?
    ) async throws -> Roles {
        var roles = Roles()
        guard config.runsPeer || config.orderer != nil else { return roles }
        let files = config.signingFiles
        let signer: SigningIdentity
        do { signer = try SigningIdentity.load(certificatePath: files.cert, keyPath: files.key) } catch {
            throw StartupError(description: "signing identity: \(error)")
        }
        roles.signer = signer
        if config.runsPeer {
            roles.peer = try startPeer(
                signer: signer, ledgers: ledgers, trust: trust, rootsPEM: rootsPEM, suspensions: suspensions,
                auditGuard: auditGuard, metrics: nodeMetrics)
        }
        if let o = config.orderer {
            let store = try LedgerStore.open(
                dataDir: o.dataDir, failWritesWhileExists: Self.injectedOrdererDiskFault)
            roles.ordererStore = store
            if let raftListen = o.raftListen {
                roles.raftOrdering = try await RaftOrdering.start(
                    listen: raftListen, directory: o.raftDir ?? o.dataDir + "/raft", store: store, signer: signer,
                    tls: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key),
                    trustedRootsPEM: rootsPEM, gate: trust, log: self.log(as: "raft"))
            }
            roles.orderer = OrderingServices(
                solo: try SoloOrderer(store: store, signer: signer, gate: trust, log: self.log(as: "orderer")),
                raft: roles.raftOrdering?.orderer)
        }
        return roles
    }

    /// The peer runtime, its endorser refusing revoked and suspended creators and unaudited writes.
    private func startPeer(
        signer: SigningIdentity, ledgers: LedgerStore, trust: TrustStore, rootsPEM: [UInt8],
        suspensions: SuspensionList, auditGuard: AuditWriteGuard, metrics nodeMetrics: NodeMetrics?
    ) throws -> PeerRuntime {
        var committedObserver: (@Sendable (String, CommitReceipt, Duration) -> Void)?
        if let nodeMetrics {
            committedObserver = { channel, receipt, took in
                nodeMetrics.recordCommit(
                    channel: channel, codes: receipt.validationCodes.map { "\($0)" }, duration: took)
            }
        }
        var endorser = Endorser(identity: signer, chaincodes: BuiltInChaincodes.all)
        endorser.revocationGate = trust
        // A proposal signed by a suspended identity is refused whoever's connection carries it.
        endorser.creatorGate = { creator in
            suspensions.suspension(of: creator.pid).map {
                "suspended: \(creator.pid) is suspended on this node (\($0.by))"
            }
        }
        endorser.writeGate = { auditGuard.refusal() }
        return try PeerRuntime(
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

    /// The CA of the system administrator's node, opened, with its current CRL installed in `trust`.
    private func openCA(trust: TrustStore, audit: AuditLog?) throws -> CertificateAuthority? {
        guard let caConfig = config.ca else { return nil }
        let box = try SecretBox.load(keyFile: caConfig.masterKeyFile)
        let authority = try CertificateAuthority.open(dataDir: caConfig.dataDir, box: box, audit: audit)
        try trust.install(try RevocationList.parse(try authority.currentCRL().der), source: "this node's CA")
        return authority
    }

    /// The publisher of the CA's CRL to the channels, when configured; without its identity, a warning and nil.
    private func makeCRLPublisher(
        ca: CertificateAuthority?, orderer: OrderingServices?, peer: PeerRuntime?, remote: GRPCLeaderForwarder
    ) -> CRLPublisher? {
        guard let ca, let orderer, let files = config.ca?.crlPublisher else { return nil }
        let log = self.log
        do {
            let admin = try SigningIdentity.load(certificatePath: files.cert, keyPath: files.key)
            var peerChannels: (@Sendable () -> [ChannelContext])?
            if let runtime = peer { peerChannels = { runtime.all.map(\.context) } }
            return CRLPublisher(
                ca: ca, orderer: orderer, peerChannels: peerChannels, remote: remote, publisher: admin,
                log: self.log(as: "crl"))
        } catch {
            log(
                "medledgerd: WARNING: CRL publisher identity \(files.cert): \(error); revocations will not reach the channels' configuration"
            )
            return nil
        }
    }

    /// The desk that applies the anomaly rules to calls and suspends identities.
    private func makeIncidentDesk(
        suspensions: SuspensionList, audit: AuditLog?, metrics nodeMetrics: NodeMetrics?
    ) throws -> IncidentDesk {
        IncidentDesk(
            detector: try AnomalyDetector(rules: config.anomalyRules),
            suspensions: suspensions,
            audit: audit, metrics: nodeMetrics,
            webhook: config.anomaly?.webhook.map { Webhook(url: $0, log: self.log(as: "incidents")) },
            log: self.log(as: "incidents"))
    }

    /// The gRPC services of the node's API, and the parts of them that later stages run or close.
    private struct APIServices {
        var services: [any RegistrableRPCService]
        var nodeSubmitter: NodeSubmitter?
        var fhirBackend: NodeFHIRBackend?
        var enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?
    }

    /// The gRPC services of the node's API: the node's own, and those of each role it runs.
    private func makeAPIServices(
        roles: Roles, ca: CertificateAuthority?, crlPublisher: CRLPublisher?, ledgers: LedgerStore, watcher: CRLWatcher,
        trust: TrustStore, rootsPEM: [UInt8], identity: TLSIdentityFiles, suspensions: SuspensionList,
        audit: AuditLog?, incidents: IncidentDesk, metrics nodeMetrics: NodeMetrics?, boundAddress: BoundAddress,
        nodeClients: NodeClients
    ) throws -> APIServices {
        let peer = roles.peer
        var api = APIServices(services: [
            NodeService(
                nodeOrg: config.node.org, ledgers: ledgers, trust: trust, crlWatcher: watcher,
                channelContext: { [peer] in peer?.channel($0)?.context }, audit: audit)
        ])
        if let peer {
            try addPeerServices(
                peer, signer: roles.signer, orderer: roles.orderer, to: &api, trust: trust, suspensions: suspensions,
                audit: audit, incidents: incidents, metrics: nodeMetrics, boundAddress: boundAddress,
                nodeClients: nodeClients)
        }
        if let orderer = roles.orderer {
            api.services.append(OrdererService(orderer: orderer, nodeOrg: config.node.org, audit: audit))
        }
        if let ca { try addCAServices(ca, to: &api, trust: trust, publisher: crlPublisher, identity: identity) }
        return api
    }

    /// Adds the peer's API and object store and, with a signing identity, the services acting in the node's name.
    private func addPeerServices(
        _ peer: PeerRuntime, signer nodeSigner: SigningIdentity?, orderer: OrderingServices?,
        to api: inout APIServices, trust: TrustStore, suspensions: SuspensionList, audit: AuditLog?,
        incidents: IncidentDesk, metrics nodeMetrics: NodeMetrics?, boundAddress: BoundAddress, nodeClients: NodeClients
    ) throws {
        let peerService = PeerService(runtime: peer, nodeOrg: config.node.org, audit: audit, incidents: incidents)
        api.services.append(peerService)
        let corruptCopies = nodeMetrics?.counter(
            "object_store_corrupt_total", help: "Stored objects whose bytes no longer matched their digest.")
        let objects = try ObjectStore(
            directory: URL(fileURLWithPath: config.objectStoreDirectory), maxBytes: config.objectStoreMaxBytes,
            corruptionFound: { _ in corruptCopies?.increment() })
        let fixed = config.objectStore?.publicAddress
        api.services.append(
            ObjectStoreService(
                store: objects, runtime: peer, publicAddress: { fixed ?? boundAddress.value }, audit: audit,
                incidents: incidents, metrics: nodeMetrics))
        // The services that act in the node's own name (treatments, usage records) submit through
        // this node's own peer, in-process (`NodeSubmitter`).
        if let nodeSigner {
            let submitter = try NodeSubmitter(
                signer: nodeSigner, trust: trust, peer: peerService, orderer: orderer, pool: nodeClients)
            api.nodeSubmitter = submitter
            let query = ChainQuery(runtime: peer)
            let dataDir = URL(fileURLWithPath: config.dataDir)
            let inbox = try ReadingInbox(directory: dataDir.appendingPathComponent("collector"))
            if let f = config.fhir {
                api.fhirBackend = NodeFHIRBackend(
                    query: query, channel: f.channel, trust: trust, suspensions: suspensions, audit: audit,
                    node: submitter.creator, incidents: incidents, objects: objects,
                    submitter: submitter, inbox: inbox)
            }
            api.services.append(
                AppointmentService(
                    doctors: config.appointments?.doctors ?? [], trust: trust, query: query, submitter: submitter,
                    audit: audit))
            api.services.append(
                ProxyService(
                    store: try KeyFragStore(directory: dataDir.appendingPathComponent("proxy")), query: query,
                    submitter: submitter,
                    proxyName: "\(config.node.org)/\(config.node.name)", audit: audit, metrics: nodeMetrics))
            api.services.append(
                CollectorService(
                    inbox: inbox, trust: trust, query: query, node: submitter, audit: audit))
        }
    }

    /// Adds the CA's enrollment and administration services, and its enrollment listener when configured.
    private func addCAServices(
        _ ca: CertificateAuthority, to api: inout APIServices, trust: TrustStore, publisher: CRLPublisher?,
        identity: TLSIdentityFiles
    ) throws {
        let enrollment = CAEnrollmentService(ca: ca)
        api.services.append(enrollment)
        api.services.append(
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
            api.enrollServer = GRPCServer(
                transport: HTTP2ServerTransport.Posix(
                    address: e.serverAddress, transportSecurity: ServerSecurity.serverTLS(identity: identity),
                    config: .defaults {
                        $0.connection.keepalive = ConnectionKeepalive.server
                        $0.channelDebuggingCallbacks.onAcceptTCPConnection = ServerSecurity.handshakeDeadline()
                    }),
                services: [enrollment])
        }
    }

    /// What the operations endpoint reports of this node, when it keeps metrics.
    private func makeOperations(
        metrics nodeMetrics: NodeMetrics?, peer: PeerRuntime?, orderer: OrderingServices?, trust: TrustStore,
        audit: AuditLog?
    ) -> NodeOperations? {
        let written = [
            config.dataDir, config.auditLog.map { ($0 as NSString).deletingLastPathComponent },
            config.runsPeer ? config.objectStoreDirectory : nil, config.orderer?.dataDir,
        ]
        return nodeMetrics.map {
            NodeOperations(
                metrics: $0, peer: peer, orderer: orderer, trust: trust, audit: audit,
                directories: Array(Set(written.compactMap { $0 })).sorted())
        }
    }

    /// The mutual-TLS server of the node's API, its interceptors authenticating, auditing and counting calls.
    private func makeMainServer(
        listen: NodeAddress, identity: TLSIdentityFiles, trust: TrustStore, audit: AuditLog?,
        auditGuard: AuditWriteGuard, incidents: IncidentDesk, operations: NodeOperations?,
        services: [any RegistrableRPCService]
    ) -> GRPCServer<HTTP2ServerTransport.Posix> {
        let security = ServerSecurity.mutualTLS(identity: identity, trust: trust) { subject, reason in
            audit?.note(
                AuditEvent(
                    actor: AuditActor(pid: subject, org: "-", role: "-"), action: "tls.handshake",
                    target: self.config.listen, outcome: .denied, detail: reason))
        }
        let auth = AuthInterceptor(trust: trust) { method, reason in
            audit?.note(AuditEvent(actor: .anonymous, action: "auth", target: method, outcome: .denied, detail: reason))
        }
        // With an operations endpoint, every call is counted and timed (first, so 401s count too).
        // After authentication: suspended identities are refused, and the anomaly rules see the rest.
        let interceptors: [any ServerInterceptor] =
            (operations.map { [MetricsInterceptor(metrics: $0.metrics)] } ?? []) + [
                auth, AuditGateInterceptor(guardian: auditGuard), IncidentInterceptor(desk: incidents),
            ]
        return GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: listen.serverAddress, transportSecurity: security,
                config: .defaults { config in
                    config.connection.keepalive = ConnectionKeepalive.server
                    config.channelDebuggingCallbacks.onAcceptTCPConnection = ServerSecurity.handshakeDeadline()
                    // HTTP/2's default 64 KiB window makes a 1 MiB upload wait for a window update every
                    // 64 KiB; clients already open 8 MiB windows for what they receive.
                    config.http2.targetWindowSize = Self.receiveWindowBytes
                }),
            services: services, interceptors: interceptors)
    }

    /// The node's long-lived parts, in the order the service group starts them (it stops them in reverse).
    private func lifecycleServices(
        main: GRPCServer<HTTP2ServerTransport.Posix>, enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?,
        raftOrdering: RaftOrdering?, orderer: OrderingServices?, ownClient: NodeSubmitter?,
        peer peerRuntime: PeerRuntime?, crlPublisher: CRLPublisher?, audit: AuditLog?,
        auditLogLine: @escaping @Sendable (String) -> Void, watcher: CRLWatcher
    ) -> [any Service] {
        // One service group runs every long-lived part; on SIGTERM/SIGINT it shuts them down in
        // the reverse of this order, each finishing before the next is told: the operations endpoint
        // and the CRL tasks stop; the node's own gateway and the block pullers end their long-lived
        // streams (or the servers would wait for them forever); the orderer writes every envelope it
        // acknowledged; raft closes; and only then do the servers drain.
        let log = self.log
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
        if let a = config.auditAnchor, let audit, let nodeSubmitter = ownClient {
            let anchoring = AuditAnchoring(
                audit: audit, submitter: nodeSubmitter, channel: a.channel, everySeconds: a.everySeconds ?? 300,
                everyLines: a.everyLines ?? 10_000, log: auditLogLine)
            group.append(BackgroundService(name: "audit-anchoring") { await anchoring.run() })
        }
        let pollSeconds = config.crlPollSeconds ?? 2
        group.append(BackgroundService(name: "crl-watcher") { await watcher.poll(every: pollSeconds) })
        return group
    }

    /// Whether the node's HTTPS endpoints listen: each stream ends once its endpoint listens, fails or is not run.
    private struct Endpoints {
        let operationsListening: AsyncStream<Void>
        let fhirListening: AsyncStream<Void>
        let hasOperations: Bool
    }

    /// Adds the operations and FHIR endpoints node.yaml asks for to `group`, with streams that hear them listen.
    private func addEndpoints(
        to group: inout [any Service], operations: NodeOperations?, incidents: IncidentDesk,
        fhirBackend: NodeFHIRBackend?, roots: [Certificate], metrics nodeMetrics: NodeMetrics?
    ) async throws -> Endpoints {
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
        return Endpoints(
            operationsListening: operationsListening, fhirListening: fhirListening,
            hasOperations: operationsServer != nil)
    }

    /// Runs the service group to its end; once the servers listen, announces the node and starts the peer pulling.
    private func serve(
        _ serviceGroup: ServiceGroup, main: GRPCServer<HTTP2ServerTransport.Posix>,
        enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?, listen: NodeAddress, boundAddress: BoundAddress,
        roles: Roles, endpoints: Endpoints
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await serviceGroup.run() }
            // Announce once the main server listens (the group's failure ends this wait too).
            try await announceListening(
                main: main, enrollServer: enrollServer, listen: listen, boundAddress: boundAddress)
            roles.peer?.startPulling()
            announceRoles(peer: roles.peer, orderer: roles.orderer, raftOrdering: roles.raftOrdering)
            await announceReady(endpoints)
            try await tasks.waitForAll()
        }
    }

    /// Records the address the main server listens on, once it does, and logs it and the enrollment listener's.
    private func announceListening(
        main: GRPCServer<HTTP2ServerTransport.Posix>, enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?,
        listen: NodeAddress, boundAddress: BoundAddress
    ) async throws {
        let log = self.log
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
    }

    /// Logs "ready" once the HTTPS endpoints listen; not when the operations endpoint could not.
    private func announceReady(_ endpoints: Endpoints) async {
        let log = self.log
        var operationsUp = false
        for await _ in endpoints.operationsListening { operationsUp = true }
        for await _ in endpoints.fhirListening {}
        // Without it (a port in use), the group's error ends the node instead.
        if operationsUp || !endpoints.hasOperations { log("medledgerd: ready") }
    }

    /// Logs the channels of the peer and of the orderer this node runs.
    private func announceRoles(peer: PeerRuntime?, orderer: OrderingServices?, raftOrdering: RaftOrdering?) {
        let log = self.log
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
