import Foundation
import LedgerAudit
import MedRecords
import Synchronization

/// Anchors the node's audit log on chain: every `everySeconds`, or once `everyLines` lines were
/// written since the last anchor, the line reached so far is flushed to disk and its number and hash
/// are written with `medrecords.anchorAudit` in the node's name. A cut tail or a rewritten file then
/// shows against the ledger (`medledger audit verify --anchors`). A failed anchor is retried at the
/// next turn and logged once per distinct error; it never stops the node.
struct AuditAnchoring: Sendable {
    let audit: AuditLog
    let submitter: NodeSubmitter
    let channel: String
    let everySeconds: Int
    let everyLines: UInt64
    let log: @Sendable (String) -> Void

    func run() async {
        var anchored: UInt64 = 0
        var lastAt = ContinuousClock.now
        var lastError = ""
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let (seq, head) = audit.position
            guard seq > anchored, ContinuousClock.now - lastAt >= .seconds(everySeconds) || seq - anchored >= everyLines else { continue }
            do {
                try audit.sync()  // the anchored line is on disk before the ledger vouches for it
                _ = try await submitter.submit("anchorAudit", AnchorAuditRequest(seq: seq, head: head), channel: channel, AuditAnchor.self)
                anchored = seq
                lastAt = ContinuousClock.now
                lastError = ""
            } catch {
                let text = "\(error)"
                if text != lastError { log("medledgerd: WARNING: audit anchor (line \(seq)) on channel \(channel) failed: \(text); retrying") }
                lastError = text
                lastAt = ContinuousClock.now  // retry after a full interval, not every second
            }
        }
    }
}
