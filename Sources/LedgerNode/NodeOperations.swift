import Foundation
import LedgerIdentity
import LedgerOperations
import LedgerOrdering

/// What the operations endpoint reports about this node: the gauges sampled at each scrape, and the
/// health checks. State is read when asked, so between scrapes it costs nothing.
struct NodeOperations: Sendable {
    static let version = "0.3.0"

    let metrics: NodeMetrics
    let peer: PeerRuntime?
    let orderer: OrderingServices?
    let trust: TrustStore

    func sample() async {
        for ch in peer?.all ?? [] {
            metrics.gauge("ledger_height", help: "Blocks in the peer's copy of a channel.", labels: [("channel", ch.channelName)]).set(to: Double(ch.ledger.height))
        }
        guard let orderer else { return sampleCRLs() }
        for ch in orderer.channels() {
            metrics.gauge("orderer_height", help: "Blocks the ordering service holds for a channel.", labels: [("channel", ch.name)]).set(to: Double(ch.height))
            metrics.gauge("orderer_channel_stopped", help: "1 when this node stopped ordering a channel (a failed disk, removed from the consenters).", labels: [("channel", ch.name)])
                .set(to: ch.stoppedReason == nil ? 0 : 1)
            if let s = await orderer.consensusStatus(of: ch.name) {
                metrics.gauge("consensus_raft_is_leader", help: "1 when this node's raft consenter leads the channel.", labels: [("channel", ch.name)]).set(to: s.role == .leader ? 1 : 0)
                metrics.gauge("consensus_raft_term", help: "The raft term this consenter is in.", labels: [("channel", ch.name)]).set(to: Double(s.term))
                metrics.gauge("consensus_raft_cluster_size", help: "Raft members (voters and standbys) this consenter knows.", labels: [("channel", ch.name)]).set(to: Double(s.members.count))
            }
        }
        sampleCRLs()
    }

    private func sampleCRLs(now: Date = Date()) {
        let installed = trust.installed
        let newest = installed.map(\.thisUpdate).max()
        metrics.gauge("crl_age_seconds", help: "Age of the newest revocation list installed (since its thisUpdate); -1 with none.").set(to: newest.map { now.timeIntervalSince($0) } ?? -1)
        metrics.gauge("crl_stale", help: "Installed revocation lists past their nextUpdate (still in force; refresh them).").set(to: Double(installed.filter { $0.isStale(at: now) }.count))
    }

    var checks: [HealthCheck] {
        let orderer = self.orderer, trust = self.trust
        return [
            HealthCheck(name: "orderer") {
                let stopped = orderer?.channels().compactMap { c in c.stoppedReason.map { "channel \(c.name) stopped: \($0)" } } ?? []
                return stopped.isEmpty ? nil : stopped.joined(separator: "; ")
            },
            HealthCheck(name: "crl") {
                let stale = trust.installed.filter { $0.isStale(at: Date()) }
                return stale.isEmpty ? nil : stale.map { "CRL \($0.number) from \($0.source) is past its nextUpdate" }.joined(separator: "; ")
            },
        ]
    }
}
