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

// The node's HTTPS endpoints (operations, FHIR) as services of the node.

extension NodeServer {
    /// The HTTPS operations endpoint, when node.yaml asks for one, as a service of the node.
    func makeOperationsServer(
        _ operations: NodeOperations?, incidents: IncidentsEndpoint, listening: AsyncStream<Void>.Continuation
    ) throws -> BackgroundService? {
        guard let operations, let listen = config.operations?.listen else { return nil }
        guard let address = NodeAddress(listen) else {
            throw StartupError(description: "operations.listen \(listen) is not host:port")
        }
        var server = OperationsServer(
            host: address.host, port: address.port, certificatePath: config.tls.cert, keyPath: config.tls.key,
            trust: operations.trust,
            organization: config.node.org, version: NodeOperations.version, metrics: operations.metrics,
            sample: operations.sample, checks: operations.checks,
            incidents: incidents, logLevels: logLevels)
        server.connectionLimits = try connectionLimits().operations ?? .operations
        server.connectionEvents = connectionEvents(
            listener: "operations", limits: server.connectionLimits, metrics: operations.metrics)
        let log = self.log(as: "operations")
        return Self.listeningService(name: "operations endpoint", listen: listen, listening: listening) {
            [server] announce in
            try await server.run { port in
                log(
                    "medledgerd: operations endpoint on https://\(address.host):\(port) (/healthz, /version; /metrics for \(server.organization)'s administrators and nodes; at most \(server.connectionLimits))"
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
        var server = FHIRServer(
            listen: .init(
                host: address.host, port: address.port, certificatePath: config.tls.cert, keyPath: config.tls.key,
                trustedRoots: roots),
            organization: config.node.org, version: NodeOperations.version, authorization: authorization,
            backend: backend,
            observe: { route, status, seconds in
                metrics?.recordFHIR(route: route, status: status, duration: .seconds(seconds))
            })
        server.connectionLimits = try connectionLimits().fhir ?? .fhir
        server.connectionEvents = connectionEvents(listener: "fhir", limits: server.connectionLimits, metrics: metrics)
        let log = self.log(as: "fhir")
        return Self.listeningService(name: "FHIR endpoint", listen: f.listen, listening: listening) {
            [server] announce in
            try await server.run { port in
                log(
                    "medledgerd: FHIR endpoint on https://\(address.host):\(port)/fhir (SMART authorization server under /oauth; \(clients.all().count) client(s) registered; at most \(server.connectionLimits))"
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
