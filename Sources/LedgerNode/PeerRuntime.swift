import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerChaincode
import LedgerChannel
import LedgerIdentity
import LedgerPeer
import LedgerProtos
import LedgerRPC
import LedgerStorage
import LedgerTransport
import Synchronization

/// The peer side of a node: its joined channels, the endorser, and one block puller per channel that
/// follows the ordering service (catching up from the ledger's height after any restart).
final class PeerRuntime: Sendable {
    let store: LedgerStore
    let endorser: Endorser
    let tls: TLSIdentityFiles
    let trustedRootsPEM: [UInt8]
    /// The node's revocation lists: channels' CRLs are installed into it as they commit, so every
    /// node's gate learns a revocation within one block, without waiting for its CRL file.
    let trust: TrustStore?
    /// This node's TLS public key (DER SPKI): where it is a raft consenter of a channel, its peer
    /// follows its own ordering service first.
    let ownTLSPublicKey: [UInt8]?
    /// Hears every block this peer commits, with how long validation and commit took (metrics).
    let committed: (@Sendable (_ channel: String, _ receipt: CommitReceipt, _ took: Duration) -> Void)?
    let log: @Sendable (String) -> Void
    private let channels = Mutex<[String: PeerChannel]>([:])
    private let pullers = Mutex<[String: Task<Void, Never>]>([:])
    /// Channels whose block delivery fails on every orderer endpoint: the last error, and since when
    /// (cleared as soon as an orderer accepts the delivery stream).
    private let deliveryTrouble = Mutex<[String: (error: String, since: Date)]>([:])

    /// Channels that have had no reachable orderer for at least `for`, with the last error.
    func unreachableOrderers(
        for duration: TimeInterval, now: Date = Date()
    ) -> [(channel: String, error: String, since: Date)] {
        deliveryTrouble.withLock {
            $0.filter { now.timeIntervalSince($0.value.since) >= duration }.map {
                ($0.key, $0.value.error, $0.value.since)
            }
        }
        .sorted { $0.channel < $1.channel }
    }

    init(
        store: LedgerStore, endorser: Endorser, tls: TLSIdentityFiles, trustedRootsPEM: [UInt8],
        trust: TrustStore? = nil, ownTLSPublicKey: [UInt8]? = nil,
        committed: (@Sendable (String, CommitReceipt, Duration) -> Void)? = nil,
        log: @escaping @Sendable (String) -> Void
    ) throws {
        self.store = store
        self.committed = committed
        self.ownTLSPublicKey = ownTLSPublicKey
        self.endorser = endorser
        self.tls = tls
        self.trustedRootsPEM = trustedRootsPEM
        self.trust = trust
        self.log = log
        for name in try store.removeUnjoinedChannels() {
            log(
                "medledgerd: channel \(name) was registered but its genesis block never written (interrupted join); removed, join it again"
            )
        }
        for name in try store.channelNames() {
            do {
                let ch = try PeerChannel.open(name, store: store, ownSignatures: endorser.signatures)
                channels.withLock { $0[name] = ch }
                installCRLs(of: ch)
            } catch let e as PeerChannelError {
                // A ledger without a channel configuration (`ledger sample`, an offline copy) is kept
                // but not served: there is nobody to order or endorse for it.
                log("medledgerd: channel \(name) is not served by the peer: \(e)")
            }
        }
    }

    func channel(_ name: String) -> PeerChannel? { channels.withLock { $0[name] } }

    /// Installs the CRLs of a channel's configuration into the node's trust store (newer ones only).
    func installCRLs(of ch: PeerChannel) {
        guard let trust else { return }
        for org in ch.context.config.organizations where !org.crl.isEmpty {
            guard let crl = try? RevocationList.parse([UInt8](org.crl)) else { continue }
            if (try? trust.install(crl, source: "channel \(ch.channelName)")) == true {
                log("medledgerd: installed CRL \(crl.crlNumber) from the configuration of channel \(ch.channelName)")
            }
        }
    }

    /// The channel if `org` is one of its members; nil otherwise (a non-member may not learn which
    /// channels exist).
    func channel(_ name: String, visibleTo org: String) -> PeerChannel? {
        guard let ch = channel(name), ch.context.organizationIDs.contains(org) else { return nil }
        return ch
    }
    var all: [PeerChannel] { channels.withLock { Array($0.values) }.sorted { $0.channelName < $1.channelName } }

    func startPulling() {
        for ch in all { startPuller(ch) }
    }

    func stop() {
        for t in pullers.withLock({ Array($0.values) }) { t.cancel() }
        for ch in all { ch.notifier.close() }
    }

    func join(genesis: Medledger_Block) throws -> PeerChannel {
        let ch = try PeerChannel.join(genesis: genesis, store: store, ownSignatures: endorser.signatures)
        channels.withLock { $0[ch.channelName] = ch }
        log("medledgerd: joined channel \(ch.channelName)")
        startPuller(ch)
        return ch
    }

    private func startPuller(_ ch: PeerChannel) {
        let task = Task { await self.pull(ch) }
        pullers.withLock { $0[ch.channelName] = task }
    }

    /// The channel's ordering endpoints, this node's own consenter first: it is as alive as this peer,
    /// and never a network hop away.
    static func deliveryOrder(_ ctx: ChannelContext, ownTLSPublicKey: [UInt8]?) -> [String] {
        let endpoints = ctx.config.orderer.endpoints
        guard let key = ownTLSPublicKey,
            let own = ctx.ordering.consenters.first(where: { $0.publicKey == key })?.endpoint, endpoints.contains(own)
        else { return endpoints }
        return [own] + endpoints.filter { $0 != own }
    }

    /// Follows the orderer's Deliver stream from this ledger's height; reconnects with backoff.
    private func pull(_ ch: PeerChannel) async {
        var lastError = ""
        var backoff = 0.2
        while !Task.isCancelled {
            for endpoint in Self.deliveryOrder(ch.context, ownTLSPublicKey: ownTLSPublicKey) {
                guard !Task.isCancelled else { return }
                guard let address = NodeAddress(endpoint) else { continue }
                let progress = Mutex(false)
                defer {
                    if progress.withLock({ $0 }) {
                        backoff = 0.2
                        lastError = ""
                    }
                }
                do {
                    let transport = try ClientSecurity.transport(
                        to: address, trustedRootsPEM: trustedRootsPEM, identity: tls)
                    try await withGRPCClient(transport: transport) { client in
                        let orderer = Medledger_Orderer.Client(wrapping: client)
                        var req = Medledger_DeliverRequest()
                        req.channel = ch.channelName
                        req.start = ch.ledger.height
                        req.follow = true
                        try await orderer.deliver(req) { response in
                            self.deliveryTrouble.withLock { _ = $0.removeValue(forKey: ch.channelName) }
                            for try await message in response.messages {
                                guard case .block(let block)? = message.type else { continue }
                                let started = ContinuousClock.now
                                if let receipt = try ch.receive(block) {
                                    self.committed?(ch.channelName, receipt, ContinuousClock.now - started)
                                    progress.withLock { $0 = true }
                                    if ch.context.configBlock == block.header.number { self.installCRLs(of: ch) }
                                }
                            }
                        }
                    }
                } catch {
                    let text = "\(error)"
                    if !Task.isCancelled {
                        deliveryTrouble.withLock { t in t[ch.channelName] = (text, t[ch.channelName]?.since ?? Date()) }
                    }
                    if text != lastError, !Task.isCancelled {
                        log("medledgerd: \(ch.channelName): block delivery from \(endpoint) failed: \(text); retrying")
                        lastError = text
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
            backoff = min(backoff * 2, 5)
        }
    }
}
