import Foundation
import GRPCCore
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
        var anchored: UInt64 = 0  // after a restart: the first attempt finds the chain's last anchor (409)
        var lastAt = ContinuousClock.now
        var retryAt: ContinuousClock.Instant?
        var lastError = ""
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let (seq, head) = audit.position
            let now = ContinuousClock.now
            if let retryAt, now < retryAt { continue }
            guard seq > anchored, now - lastAt >= .seconds(everySeconds) || seq - anchored >= everyLines else {
                continue
            }
            do {
                try audit.sync()  // the anchored line is on disk before the ledger vouches for it
                _ = try await submitter.submit(
                    "anchorAudit", AnchorAuditRequest(seq: seq, head: head), channel: channel, AuditAnchor.self)
                (anchored, lastAt, retryAt, lastError) = (seq, ContinuousClock.now, nil, "")
            } catch let e as RPCError where e.code == .alreadyExists && e.message.contains("not after") {
                // Already anchored at or beyond this line (a restart, or an answer lost): nothing to do.
                (anchored, lastAt, retryAt) = (seq, ContinuousClock.now, nil)
            } catch {
                let text = "\(error)"
                if text != lastError {
                    log(
                        "medledgerd: WARNING: audit anchor (line \(seq)) on channel \(channel) failed: \(text); retrying"
                    )
                }
                lastError = text
                retryAt = ContinuousClock.now + .seconds(min(everySeconds, 60))
            }
        }
    }
}
