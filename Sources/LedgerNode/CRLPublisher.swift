import Foundation
import LedgerCA
import LedgerChannel
import LedgerIdentity
import LedgerOrdering
import LedgerProtos

/// Puts the CA's current CRL into the configuration of every channel this node orders whose members the
/// CA serves, as a CRL-only configuration update signed by an administrator of the CA's organisation
/// (the channel's `crl_publisher_org`, which may publish a newer CRL alone; see
/// `ConfigTransaction.crlOnlyChanges`). Runs after every revocation (the revoke call waits for it, so
/// when it answers, the ledger refuses the revoked identity from the next block on), at start-up, and
/// periodically, so a crash between revoking and publishing is repaired.
final class CRLPublisher: Sendable {
    let ca: CertificateAuthority
    let orderer: OrderingServices
    let publisher: SigningIdentity
    let log: @Sendable (String) -> Void

    init(ca: CertificateAuthority, orderer: OrderingServices, publisher: SigningIdentity, log: @escaping @Sendable (String) -> Void) {
        self.ca = ca
        self.orderer = orderer
        self.publisher = publisher
        self.log = log
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
        for status in orderer.channels() {
            guard let ctx = orderer.context(of: status.name), Self.revokesMore(crl, than: ctx),
                  let config = ConfigTransaction.crlUpdate(of: ctx, with: crl, der: der) else { continue }
            guard ctx.config.crlPublisherOrg == publisher.org else {
                outcome.failures.append("\(status.name): the channel's CRL publisher is \(ctx.config.crlPublisherOrg.isEmpty ? "not set" : ctx.config.crlPublisherOrg), not \(publisher.org); a majority of administrators must submit the CRL")
                continue
            }
            do {
                let envelope = try ConfigTransaction.envelope(config: config, admins: [publisher], submitter: publisher)
                try await orderer.broadcast(try envelope.serializedBytes())
                outcome.published.append(status.name)
                log("medledgerd: CRL \(crl.crlNumber) published to channel \(status.name) (configuration sequence \(config.sequence))")
            } catch {
                outcome.failures.append("\(status.name): \(error)")
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
