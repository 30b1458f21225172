import Foundation
import LedgerAudit
import LedgerIdentity
import LedgerOperations
import LedgerOrdering
import LedgerOrderingCore

/// What the operations endpoint reports about this node: the gauges sampled at each scrape, and the
/// health checks. State is read when asked, so between scrapes it costs nothing.
struct NodeOperations: Sendable {
    static let version = "0.3.0"

    let metrics: NodeMetrics
    let peer: PeerRuntime?
    let orderer: OrderingServices?
    let trust: TrustStore
    /// The node's audit log, if it keeps one ("audit" check).
    var audit: AuditLog? = nil
    /// Directories the node writes to (ledger, audit log, object store, orderer): "disk" check.
    var directories: [String] = []

    func sample() async {
        for ch in peer?.all ?? [] {
            metrics.gauge(
                "ledger_height", help: "Blocks in the peer's copy of a channel.", labels: [("channel", ch.channelName)]
            ).set(to: Double(ch.ledger.height))
        }
        guard let orderer else { return sampleCRLs() }
        for (channel, cuts) in orderer.takeCuts() {
            metrics.recordCuts(channel: channel, cuts.map { ($0.reason.rawValue, $0.transactions) })
        }
        for ch in orderer.channels() {
            metrics.gauge(
                "orderer_queue_depth", help: "Envelopes the orderer accepted that are not yet in a written block.",
                labels: [("channel", ch.name)]
            )
            .set(to: Double(ch.queueDepth))
            metrics.gauge(
                "orderer_height", help: "Blocks the ordering service holds for a channel.",
                labels: [("channel", ch.name)]
            ).set(to: Double(ch.height))
            metrics.gauge(
                "orderer_channel_stopped",
                help: "1 when this node stopped ordering a channel (a failed disk, removed from the consenters).",
                labels: [("channel", ch.name)]
            )
            .set(to: ch.stoppedReason == nil ? 0 : 1)
            if let s = await orderer.consensusStatus(of: ch.name) {
                metrics.gauge(
                    "consensus_raft_is_leader", help: "1 when this node's raft consenter leads the channel.",
                    labels: [("channel", ch.name)]
                ).set(to: s.role == .leader ? 1 : 0)
                metrics.gauge(
                    "consensus_raft_term", help: "The raft term this consenter is in.", labels: [("channel", ch.name)]
                ).set(to: Double(s.term))
                metrics.gauge(
                    "consensus_raft_cluster_size", help: "Raft members (voters and standbys) this consenter knows.",
                    labels: [("channel", ch.name)]
                ).set(to: Double(s.members.count))
            }
        }
        sampleCRLs()
    }

    private func sampleCRLs(now: Date = Date()) {
        let installed = trust.installed
        let newest = installed.map(\.thisUpdate).max()
        metrics.gauge(
            "crl_age_seconds", help: "Age of the newest revocation list installed (since its thisUpdate); -1 with none."
        ).set(to: newest.map { now.timeIntervalSince($0) } ?? -1)
        metrics.gauge(
            "crl_stale", help: "Installed revocation lists past their nextUpdate (still in force; refresh them)."
        ).set(to: Double(installed.filter { $0.isStale(at: now) }.count))
    }

    /// Less free space than this (and than 5 % of its file system) in a directory the node writes to
    /// is reported before writes fail.
    static let freeBytesMin: UInt64 = 64 << 20
    /// A peer that has reached no orderer for this long is unhealthy (shorter gaps are restarts).
    static let deliveryGapMax: TimeInterval = 10

    var checks: [HealthCheck] {
        let orderer = self.orderer
        let trust = self.trust
        let audit = self.audit
        let directories = self.directories
        let peer = self.peer
        return [
            HealthCheck(name: "audit") {
                guard let failing = audit?.failing else { return nil }
                return "the audit log fails since \(failing.since): \(failing.failure); writes are refused"
            },
            HealthCheck(name: "disk") {
                let problems = directories.compactMap(Self.probe)
                return problems.isEmpty ? nil : problems.joined(separator: "; ")
            },
            HealthCheck(name: "delivery") {
                let gaps = peer?.unreachableOrderers(for: Self.deliveryGapMax) ?? []
                return gaps.isEmpty
                    ? nil
                    : gaps.map { "channel \($0.channel): no orderer reachable since \($0.since) (\($0.error))" }.joined(
                        separator: "; ")
            },
            HealthCheck(name: "orderer") {
                let stopped =
                    orderer?.channels().compactMap { c in c.stoppedReason.map { "channel \(c.name) stopped: \($0)" } }
                    ?? []
                return stopped.isEmpty ? nil : stopped.joined(separator: "; ")
            },
            HealthCheck(name: "crl") {
                let stale = trust.installed.filter { $0.isStale(at: Date()) }
                return stale.isEmpty
                    ? nil
                    : stale.map { "CRL \($0.number) from \($0.source) is past its nextUpdate" }.joined(separator: "; ")
            },
        ]
    }

    /// Whether `directory` takes a write that reaches the disk, and has room for more; nil if so.
    static func probe(_ directory: String) -> String? {
        let path = directory + "/.healthz-probe"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return "cannot write in \(directory): \(String(cString: strerror(errno)))" }
        defer {
            close(fd)
            unlink(path)
        }
        var byte: UInt8 = 0
        guard write(fd, &byte, 1) == 1, fsync(fd) == 0 else {
            return "cannot write in \(directory): \(String(cString: strerror(errno)))"
        }
        var fs = statvfs()
        if statvfs(directory, &fs) == 0 {
            let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
            let size = UInt64(fs.f_blocks) * UInt64(fs.f_frsize)
            // Low means under 64 MiB and under 5 % of the file system (a small disk of its own is fine).
            if free < min(freeBytesMin, size / 20) { return "\(directory) has only \(free >> 10) KiB free" }
        }
        return nil
    }
}
