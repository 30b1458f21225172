import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerChannel
import LedgerConsensus
import LedgerIdentity
import LedgerOrdering
import LedgerOrderingCore
import LedgerProtos
import LedgerRPC
import LedgerStorage
import LedgerTransport
import NIOSSL
import Synchronization

/// A raft follower's way to the leader: the leader's ordering service over mutual TLS, as any client.
/// The CRL publisher and the node's own submissions use it too, to reach the orderers of channels
/// their node does not order.
final class GRPCLeaderForwarder: LeaderForwarding {
    let pool: NodeClients
    /// How long a forward may take. A leader that stopped without closing its connections (a frozen
    /// process, a hung host) accepts the TCP connection and then answers nothing, not even the TLS
    /// handshake, so keepalive never starts: without a deadline the forward would wait for as long as
    /// the leader stays frozen. The leader answers once the envelope is in a durable block, which may
    /// take a channel's whole batch timeout, so the default allows the longest one and 10 s more.
    let timeout: Duration

    static let defaultTimeout: Duration = .milliseconds(Int(ChannelContext.batchTimeoutMsMax)) + .seconds(10)

    init(pool: NodeClients, timeout: Duration = defaultTimeout) {
        self.pool = pool
        self.timeout = timeout
    }

    convenience init(trustedRootsPEM: [UInt8], tls: TLSIdentityFiles, timeout: Duration = defaultTimeout) {
        self.init(pool: NodeClients(trustedRootsPEM: trustedRootsPEM, identity: tls), timeout: timeout)
    }

    func forward(_ envelope: [UInt8], channel: String, to endpoint: String) async -> OrderingRejection? {
        guard let address = NodeAddress(endpoint) else {
            return OrderingRejection(500, "ordering endpoint \(endpoint) is not host:port")
        }
        let request: Medledger_Envelope
        let pooled: NodeClients.Client
        do {
            request = try Medledger_Envelope(serializedBytes: envelope)
            pooled = try pool.client(address)
        } catch {
            return OrderingRejection(503, "the orderer at \(endpoint) did not take the envelope (\(error)); retry")
        }
        do {
            var options = CallOptions.defaults
            options.timeout = timeout
            let r = try await Medledger_Orderer.Client(wrapping: pooled).broadcast(request, options: options)
            return r.status == 200 ? nil : OrderingRejection(r.status, r.message)
        } catch let e as RPCError where NodeClients.isDecision(e) {
            // The orderer refused this envelope: its answer, not a retry.
            return OrderingRejection(
                Int32(StatusMapping.status(of: e.code)), "the orderer at \(endpoint) refused: \(e.message)")
        } catch let e as RPCError where e.code == .deadlineExceeded {
            pool.drop(address, failed: pooled)
            return OrderingRejection(
                503,
                "the orderer at \(endpoint) did not answer within \(timeout) (the envelope may still be ordered); retry"
            )
        } catch {
            pool.drop(address, failed: pooled)
            return OrderingRejection(503, "the orderer at \(endpoint) did not take the envelope (\(error)); retry")
        }
    }

    func close() { pool.close() }
}

/// Pulls blocks from the other consenters' ordering services (Deliver), trying each in turn. Called on
/// the raft thread, which waits: the pull runs as a task and the thread blocks on its result.
final class GRPCBlockPuller: BlockPulling {
    let trustedRootsPEM: [UInt8]
    let tls: TLSIdentityFiles

    init(trustedRootsPEM: [UInt8], tls: TLSIdentityFiles) {
        self.trustedRootsPEM = trustedRootsPEM
        self.tls = tls
    }

    func pull(
        channel: String, from first: UInt64, through last: UInt64, endpoints: [String]
    ) throws -> [Medledger_Block] {
        final class Box: @unchecked Sendable {
            var result: Result<[Medledger_Block], any Error> = .failure(
                OrderingRejection(503, "no consenter to pull from"))
        }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let (roots, tls) = (trustedRootsPEM, self.tls)
        Task.detached {
            var failures: [String] = []
            for endpoint in endpoints {
                do {
                    box.result = .success(
                        try await Self.pull(
                            channel: channel, from: first, through: last, endpoint: endpoint, roots: roots, tls: tls))
                    break
                } catch {
                    failures.append("\(endpoint): \(error)")
                    box.result = .failure(
                        OrderingRejection(
                            503,
                            "pulling blocks \(first)…\(last) of \(channel) failed: \(failures.joined(separator: "; "))")
                    )
                }
            }
            done.signal()
        }
        done.wait()
        return try box.result.get()
    }

    static func pull(
        channel: String, from first: UInt64, through last: UInt64, endpoint: String, roots: [UInt8],
        tls: TLSIdentityFiles
    ) async throws -> [Medledger_Block] {
        guard let address = NodeAddress(endpoint) else {
            throw OrderingRejection(500, "endpoint \(endpoint) is not host:port")
        }
        let blocks = try await withGRPCClient(
            transport: try ClientSecurity.transport(to: address, trustedRootsPEM: roots, identity: tls)
        ) { client in
            var req = Medledger_DeliverRequest()
            req.channel = channel
            req.start = first
            req.follow = true
            return try await Medledger_Orderer.Client(wrapping: client).deliver(req) { response in
                var blocks: [Medledger_Block] = []
                for try await message in response.messages {
                    guard case .block(let block)? = message.type else { continue }
                    guard block.header.number == first + UInt64(blocks.count) else {
                        throw OrderingRejection(502, "\(endpoint) sent block \(block.header.number) out of order")
                    }
                    blocks.append(block)
                    if block.header.number >= last { break }
                }
                return blocks
            }
        }
        guard blocks.count == Int(last - first + 1) else {
            throw OrderingRejection(502, "\(endpoint) ended the stream at block \(first + UInt64(blocks.count))")
        }
        return blocks
    }
}

/// The node's raft ordering: one loop thread and one mutual-TLS raft listener for all its raft channels.
struct RaftOrdering {
    let orderer: RaftOrderer
    let loop: RaftLoop
    let transport: TLSRaftTransport
    let forwarder: GRPCLeaderForwarder

    static func start(
        listen: String, directory: String, store: LedgerStore, signer: SigningIdentity, tls: TLSIdentityFiles,
        trustedRootsPEM: [UInt8],
        gate: (any RevocationGate)?, log: @escaping @Sendable (String) -> Void
    ) async throws -> RaftOrdering {
        guard let address = NodeAddress(listen) else {
            throw NodeServer.StartupError(description: "orderer raft_listen \(listen) is not host:port")
        }
        let identity = try RaftTLSIdentity(certificatePath: tls.certificatePath, keyPath: tls.keyPath)
        guard let tlsKey = try identity.certificateChain.first?.extractPublicKey().toSPKIBytes() else {
            throw NodeServer.StartupError(description: "the node's TLS certificate \(tls.certificatePath) is empty")
        }
        let transport = TLSRaftTransport(
            listenHost: address.host, listenPort: address.port, identity: identity, log: log)
        try await transport.start()
        let loop = try RaftLoop(name: "raft")
        let forwarder = GRPCLeaderForwarder(trustedRootsPEM: trustedRootsPEM, tls: tls)
        let orderer = try RaftOrderer(
            store: store, signer: signer, tlsPublicKey: tlsKey,
            engines: { channel, me, machine, options in
                var tuning = RaftTuning()
                if options.electionTimeoutMs > 0 { tuning.electionTimeoutMs = options.electionTimeoutMs }
                if options.heartbeatMs > 0 { tuning.heartbeatTimeoutMs = options.heartbeatMs }
                if options.snapshotInterval > 0 { tuning.snapshotThreshold = options.snapshotInterval }
                return RaftServer(
                    id: me.id, address: me.raftAddress, channel: channel,
                    dataDirectory: URL(fileURLWithPath: directory).appendingPathComponent(channel).path,
                    loop: loop, machine: machine, transport: transport, tuning: tuning, log: log)
            },
            peersChanged: { channel, consenters in
                transport.setPeers(
                    consenters.map { RaftPeer(id: $0.id, address: $0.raftAddress, publicKey: $0.publicKey) },
                    channel: channel)
            },
            forwarder: forwarder, puller: GRPCBlockPuller(trustedRootsPEM: trustedRootsPEM, tls: tls), gate: gate,
            log: log)
        return RaftOrdering(orderer: orderer, loop: loop, transport: transport, forwarder: forwarder)
    }

    /// After the raft channels stopped (`OrderingServices.shutdown`).
    func close() async {
        forwarder.close()
        loop.shutdown()
        await transport.shutdown()
    }
}
