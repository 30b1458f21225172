import Dispatch
import Foundation
import Synchronization
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerAudit
import LedgerCA
import LedgerConfig
import LedgerCrypto
import LedgerIdentity
import LedgerObjects
import LedgerOrdering
import LedgerPeer
import LedgerRPC
import LedgerStorage
import LedgerTransport
import X509

/// A running node: the mutual-TLS API, and on the system administrator's node the CA with its
/// enrollment listener. `run` returns after SIGINT/SIGTERM (or `stop()`), having drained calls.
public final class NodeServer: Sendable {
    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    let config: NodeConfig
    let log: @Sendable (String) -> Void

    public init(config: NodeConfig, log: @escaping @Sendable (String) -> Void) {
        self.config = config
        self.log = log
    }

    public func run() async throws {
        let roots = try config.trustedRoots.flatMap { path -> [Certificate] in
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else { throw StartupError(description: "cannot read trusted root \(path)") }
            do { return try Certificate.parseBundle(pem: pem) } catch { throw StartupError(description: "trusted root \(path) is not a PEM certificate: \(error)") }
        }
        guard !roots.isEmpty else { throw StartupError(description: "no trusted root certificates") }
        let trust = TrustStore(roots: roots)
        let audit = try config.auditLog.map { try AuditLog(path: $0) }
        defer { audit?.close() }

        let watcher = CRLWatcher(files: config.crlFiles ?? [], trust: trust, log: log)
        try watcher.loadAll(strict: true)

        let ledgers = try LedgerStore.open(dataDir: config.dataDir)
        defer { ledgers.close() }
        let rootsPEM = try config.trustedRoots.flatMap { path -> [UInt8] in Array(try Data(contentsOf: URL(fileURLWithPath: path))) + [10] }

        var peer: PeerRuntime?
        var orderer: SoloOrderer?
        var ordererStore: LedgerStore?
        var nodeSigner: SigningIdentity?
        if config.runsPeer || config.orderer != nil {
            let files = config.signingFiles
            let signer: SigningIdentity
            do { signer = try SigningIdentity.load(certificatePath: files.cert, keyPath: files.key) } catch { throw StartupError(description: "signing identity: \(error)") }
            nodeSigner = signer
            if config.runsPeer {
                let endorser = Endorser(identity: signer, chaincodes: BuiltInChaincodes.all)
                peer = try PeerRuntime(store: ledgers, endorser: endorser, tls: TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key), trustedRootsPEM: rootsPEM, log: log)
            }
            if let o = config.orderer {
                let store = try LedgerStore.open(dataDir: o.dataDir)
                ordererStore = store
                orderer = try SoloOrderer(store: store, signer: signer, log: log)
            }
        }
        defer {
            peer?.stop()
            orderer?.shutdown()
            ordererStore?.close()
        }

        var ca: CertificateAuthority?
        if let caConfig = config.ca {
            let box = try SecretBox.load(keyFile: caConfig.masterKeyFile)
            let authority = try CertificateAuthority.open(dataDir: caConfig.dataDir, box: box, audit: audit)
            try trust.install(try RevocationList.parse(try authority.currentCRL().der))
            ca = authority
        }
        defer { ca?.close() }

        guard let listen = NodeAddress(config.listen) else { throw StartupError(description: "listen address \(config.listen) is not host:port") }
        let identity = TLSIdentityFiles(certificatePath: config.tls.cert, keyPath: config.tls.key)
        let security = ServerSecurity.mutualTLS(identity: identity, trust: trust) { subject, reason in
            audit?.record(AuditEvent(actor: AuditActor(pid: subject, org: "-", role: "-"), action: "tls.handshake", target: self.config.listen, outcome: .denied, detail: reason))
        }
        // The address this node really listens on (known once it does; port 0 picks one).
        let boundAddress = BoundAddress(config.listen)
        var nodeSubmitter: NodeSubmitter?
        var services: [any RegistrableRPCService] = [NodeService(nodeOrg: config.node.org, ledgers: ledgers, audit: audit)]
        if let peer {
            services.append(PeerService(runtime: peer, nodeOrg: config.node.org, audit: audit))
            let objects = try ObjectStore(directory: URL(fileURLWithPath: config.objectStoreDirectory), maxBytes: config.objectStoreMaxBytes)
            let fixed = config.objectStore?.publicAddress
            services.append(ObjectStoreService(store: objects, runtime: peer, publicAddress: { fixed ?? boundAddress.value }, audit: audit))
            // The services that act in the node's own name (treatments, usage records) submit
            // through a gateway to this very node.
            if let nodeSigner {
                let submitter = try NodeSubmitter(signer: nodeSigner, trustedRootsPEM: rootsPEM, tls: identity, ownAddress: { boundAddress.value })
                nodeSubmitter = submitter
                let query = ChainQuery(runtime: peer)
                let dataDir = URL(fileURLWithPath: config.dataDir)
                services.append(AppointmentService(doctors: config.appointments?.doctors ?? [], trust: trust, query: query, submitter: submitter, audit: audit))
                services.append(ProxyService(
                    store: try KeyFragStore(directory: dataDir.appendingPathComponent("proxy")), query: query, submitter: submitter,
                    proxyName: "\(config.node.org)/\(config.node.name)", audit: audit))
                services.append(CollectorService(
                    inbox: try ReadingInbox(directory: dataDir.appendingPathComponent("collector")), trust: trust, query: query, node: submitter, audit: audit))
            }
        }
        if let orderer { services.append(OrdererService(orderer: orderer, nodeOrg: config.node.org, audit: audit)) }
        var enrollServer: GRPCServer<HTTP2ServerTransport.Posix>?
        if let ca {
            let enrollment = CAEnrollmentService(ca: ca)
            services.append(enrollment)
            services.append(CAAdministrationService(ca: ca) {
                if let der = try? ca.currentCRL().der, let crl = try? RevocationList.parse(der) { _ = try? trust.install(crl) }
            })
            if let enrollListen = config.ca?.enrollListen {
                guard let e = NodeAddress(enrollListen) else { throw StartupError(description: "enroll_listen address \(enrollListen) is not host:port") }
                enrollServer = GRPCServer(
                    transport: HTTP2ServerTransport.Posix(address: e.serverAddress, transportSecurity: ServerSecurity.serverTLS(identity: identity)),
                    services: [enrollment])
            }
        }
        let auth = AuthInterceptor(trust: trust) { method, reason in
            audit?.record(AuditEvent(actor: .anonymous, action: "auth", target: method, outcome: .denied, detail: reason))
        }
        let main = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: listen.serverAddress, transportSecurity: security),
            services: services, interceptors: [auth])

        // The node's own gateway holds streams open to this very server: it must close before the
        // server drains, or a graceful shutdown would wait for it forever.
        let ownClient = nodeSubmitter
        defer { ownClient?.close() }
        let stopper = ShutdownSignal()
        // The CRL watcher runs beside the servers and is cancelled once they have drained.
        let crlPolling = Task { await watcher.poll(every: self.config.crlPollSeconds ?? 2) }
        defer { crlPolling.cancel() }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await main.serve() }
            if let enrollServer { group.addTask { try await enrollServer.serve() } }
            let address = try await main.listeningAddress
            let port = address?.ipv4?.port ?? address?.ipv6?.port ?? listen.port
            boundAddress.value = "\(listen.host):\(port)"
            log("medledgerd: node \(config.node.name) of \(config.node.org) listening on \(listen.host):\(port) (mutual TLS)")
            if let enrollServer {
                let ep = try await enrollServer.listeningAddress?.ipv4?.port ?? 0
                log("medledgerd: CA enrollment listening on \(NodeAddress(config.ca!.enrollListen!)!.host):\(ep) (server TLS)")
            }
            peer?.startPulling()
            if let peer { log("medledgerd: peer with \(peer.all.count) channel(s)\(peer.all.isEmpty ? "" : ": " + peer.all.map { "\($0.channelName) (height \($0.ledger.height))" }.joined(separator: ", "))") }
            if let orderer { log("medledgerd: solo orderer with \(orderer.channels().count) channel(s)") }
            log("medledgerd: ready")
            await stopper.wait()
            log("medledgerd: shutting down")
            // Long-lived streams (block delivery, commit-status waits) end first, or a graceful
            // shutdown would wait for them forever.
            ownClient?.close()
            peer?.stop()
            orderer?.shutdown()
            main.beginGracefulShutdown()
            enrollServer?.beginGracefulShutdown()
        }
    }
}

/// Fires once on SIGINT or SIGTERM.
final class ShutdownSignal: @unchecked Sendable {  // the signal sources are only kept alive, never touched again
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let sources: [any DispatchSourceSignal]

    init() {
        let (s, c) = AsyncStream<Void>.makeStream()
        stream = s
        continuation = c
        var sources = [any DispatchSourceSignal]()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { c.yield() }
            src.resume()
            sources.append(src)
        }
        self.sources = sources
    }

    func wait() async {
        for await _ in stream { return }
    }
}

/// Re-reads CRL files when they change, so a revocation reaches the node without a restart.
final class CRLWatcher: Sendable {
    let files: [String]
    let trust: TrustStore
    let log: @Sendable (String) -> Void

    init(files: [String], trust: TrustStore, log: @escaping @Sendable (String) -> Void) {
        self.files = files
        self.trust = trust
        self.log = log
    }

    /// At start a broken CRL file stops the node (`strict`); later, it is reported and the last good
    /// CRL stays in force.
    func loadAll(strict: Bool) throws {
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                if strict { log("medledgerd: CRL file \(path) does not exist yet; it will be read when it appears") }
                continue
            }
            do {
                if try trust.install(try RevocationList.parse([UInt8](data))) { log("medledgerd: installed CRL from \(path)") }
            } catch {
                if strict { throw NodeServer.StartupError(description: "CRL file \(path): \(error)") }
                log("medledgerd: ignoring CRL file \(path): \(error)")
            }
        }
    }

    func poll(every seconds: Double) async {
        guard !files.isEmpty else { return }
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
