import Foundation
import LedgerCA
import LedgerChannel
import LedgerIdentity
import LedgerOrdering
import LedgerOrderingCore
import LedgerProtos
import LedgerTransport

/// Puts the CA's current CRL into the configuration of every channel this node orders, or holds as a
/// peer (a raft channel the SA's node is not a consenter of), whose members the CA serves, as a
/// CRL-only configuration update signed by an administrator of the CA's organisation
/// (the channel's `crl_publisher_org`, which may publish a newer CRL alone; see
/// `ConfigTransaction.crlOnlyChanges`). Runs after every revocation (the revoke call waits for it, so
/// when it answers, the ledger refuses the revoked identity from the next block on), at start-up, and
/// periodically, so a crash between revoking and publishing is repaired.
final class CRLPublisher: Sendable {
    let ca: CertificateAuthority
    let orderer: OrderingServices
    /// The configurations of channels this node's peer holds (nil: it runs no peer).
    let peerChannels: (@Sendable () -> [ChannelContext])?
    /// Broadcasts to a channel's ordering endpoints when this node does not order it.
    let remote: (any LeaderForwarding)?
    let publisher: SigningIdentity
    let log: @Sendable (String) -> Void

    init(
        ca: CertificateAuthority, orderer: OrderingServices, peerChannels: (@Sendable () -> [ChannelContext])? = nil,
        remote: (any LeaderForwarding)? = nil,
        publisher: SigningIdentity, log: @escaping @Sendable (String) -> Void
    ) {
        self.ca = ca
        self.orderer = orderer
        self.peerChannels = peerChannels
        self.remote = remote
        self.publisher = publisher
        self.log = log
    }

    /// Every channel to keep current: those ordered here, then those only held by the peer.
    private func channels() -> [(context: ChannelContext, local: Bool)] {
        let ordered = orderer.channels().compactMap { orderer.context(of: $0.name) }
        let names = Set(ordered.map(\.channel))
        return ordered.map { ($0, true) }
            + (peerChannels?() ?? []).filter { !names.contains($0.channel) }.map { ($0, false) }
    }

    /// Hands the update to this node's orderer, or to the channel's ordering endpoints as a gateway
    /// does (`OrderingFailover`: the next endpoint while unacknowledged, 409 on a retry means it got in).
    private func broadcast(_ bytes: [UInt8], _ ctx: ChannelContext, local: Bool) async throws {
        if local { return try await orderer.broadcast(bytes) }
        guard let remote else { throw OrderingRejection(503, "this node cannot reach the channel's orderers") }
        let endpoints = ctx.config.orderer.endpoints.compactMap(NodeAddress.init)
        guard !endpoints.isEmpty else {
            throw OrderingRejection(503, "channel \(ctx.channel) names no ordering endpoint")
        }
        try await OrderingFailover.send(
            to: endpoints, for: SubmitTiming.failoverSeconds,
            status: { ($0 as? OrderingRejection).map { Int($0.status) } }
        ) { address in
            if let refusal = await remote.forward(bytes, channel: ctx.channel, to: address.description) {
                throw refusal
            }
        }
    }

    struct Outcome: Sendable {
        var published: [String] = []
        var failures: [String] = []
    }

    /// Publishes where a channel's CRL lacks some of the CA's revocations; returns where it did and where
    /// it failed.
    func publish() async -> Outcome {
        var outcome = Outcome()
        let der: [UInt8]
        let crl: RevocationList
        do {
            der = try ca.currentCRL().der
            crl = try RevocationList.parse(der)
        } catch {
            outcome.failures.append("the CA's CRL: \(error)")
            return outcome
        }
        for (ctx, local) in channels() {
            guard Self.revokesMore(crl, than: ctx),
                let config = ConfigTransaction.crlUpdate(of: ctx, with: crl, der: der)
            else { continue }
            guard ctx.config.crlPublisherOrg == publisher.org else {
                outcome.failures.append(
                    "\(ctx.channel): the channel's CRL publisher is \(ctx.config.crlPublisherOrg.isEmpty ? "not set" : ctx.config.crlPublisherOrg), not \(publisher.org); a majority of administrators must submit the CRL"
                )
                continue
            }
            do {
                let envelope = try ConfigTransaction.envelope(
                    config: config, admins: [publisher], submitter: publisher, at: Date())
                try await broadcast(try envelope.serializedBytes(), ctx, local: local)
                outcome.published.append(ctx.channel)
                log(
                    "medledgerd: CRL \(crl.crlNumber) published to channel \(ctx.channel) (configuration sequence \(config.sequence))"
                )
            } catch {
                outcome.failures.append("\(ctx.channel): \(error)")
            }
        }
        for f in outcome.failures { log("medledgerd: CRL \(crl.crlNumber) not published: \(f)") }
        return outcome
    }

    /// True if `crl` revokes a certificate the channel's CRL of some organisation it serves does not:
    /// only then is a configuration block worth writing (a re-issued CRL with nothing new is not).
    static func revokesMore(_ crl: RevocationList, than ctx: ChannelContext) -> Bool {
        ctx.members.organizations(servedBy: crl).contains { org in
            !crl.revokedSerials.isSubset(of: ctx.members.crl(of: org)?.revokedSerials ?? [])
        }
    }

    /// Re-publishes every `seconds` until cancelled (repairs a publish lost to a crash or a race with
    /// another configuration update).
    func run(every seconds: Double) async {
        while !Task.isCancelled {
            _ = await publish()
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
    }
}
