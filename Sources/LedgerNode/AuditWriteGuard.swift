import Foundation
import GRPCCore
import LedgerAudit
import Synchronization

/// Whether this node can audit what it is asked to do. While its audit log fails (a full disk, an I/O
/// error) the node reports unhealthy (`/healthz` check "audit"), keeps answering reads, and refuses
/// every write it could not audit with 503: endorsing a transaction that writes, uploads, deposits,
/// re-encryptions, readings, appointments, channel joins. Each refusal first retries the log (at most
/// once a second) with an `audit.resume` line, so the node takes writes again as soon as the disk
/// does; a log stopped by a failed fsync stays refused until the node restarts and reopens it.
final class AuditWriteGuard: Sendable {
    let audit: AuditLog?
    private let log: @Sendable (String) -> Void
    private let lastRetry = Mutex<ContinuousClock.Instant?>(nil)

    init(audit: AuditLog?, log: @escaping @Sendable (String) -> Void) {
        self.audit = audit
        self.log = log
    }

    /// The methods of the mutual-TLS API that change something on this node (besides proposals,
    /// which the endorser refuses only when their simulation writes).
    static let writeMethods: Set<String> = [
        "medledger.ObjectStore/Upload", "medledger.Appointments/RequestAppointment", "medledger.Proxy/DepositKeyFrag",
        "medledger.Proxy/Reencrypt", "medledger.Proxy/WithdrawKeyFrags", "medledger.Collector/SubmitReading",
        "medledger.Peer/JoinChannel", "medledger.Orderer/JoinChannel",
    ]

    /// Why writes are refused now; nil when the audit log takes lines.
    func refusal() -> String? {
        guard let audit, let failing = audit.failing else { return nil }
        let now = ContinuousClock.now
        let retry = lastRetry.withLock { last in
            guard last.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
            last = now
            return true
        }
        if retry {
            let line = AuditEvent(
                actor: .system, action: "audit.resume", target: "-", outcome: .success,
                detail: "the audit log takes lines again; it failed from \(failing.since)")
            if (try? audit.record(line, durable: true)) != nil {
                log(
                    "medledgerd: the audit log takes lines again (it failed from \(failing.since)); writes are accepted"
                )
                return nil
            }
        }
        return
            "this node cannot write its audit log (failing since \(failing.since): \(audit.failing?.failure ?? failing.failure)); it answers reads but takes no writes it cannot audit until that is fixed"
    }
}

/// Refuses the node's write methods (503) while its audit log is failing; see `AuditWriteGuard`.
struct AuditGateInterceptor: ServerInterceptor {
    let guardian: AuditWriteGuard

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if AuditWriteGuard.writeMethods.contains(context.descriptor.fullyQualifiedMethod), let why = guardian.refusal()
        {
            throw RPCError(code: .unavailable, message: why)
        }
        return try await next(request, context)
    }
}
