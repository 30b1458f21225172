import AsyncHTTPClient
import DequeModule
import Foundation
import LedgerAudit
import LedgerCA
import LedgerIdentity
import LedgerIncidents
import LedgerOperations
import NIOCore
import Synchronization

/// The node's incident response: feeds what it sees to the anomaly rules, and turns each alert into
/// an audit line, a metric, a warning on the node's log and (if configured) a webhook POST; an alert
/// of a `suspend` rule also suspends the identity on this node (`IncidentInterceptor` refuses it).
/// Administrators list, suspend and resume through the operations endpoint (`medledger incident`).
final class IncidentDesk: Sendable {
    static let recentMax = 1_000

    let detector: AnomalyDetector
    let suspensions: SuspensionList
    let audit: AuditLog?
    let metrics: NodeMetrics?
    let webhook: Webhook?
    let log: @Sendable (String) -> Void
    let now: @Sendable () -> Date
    private let recent = Mutex(Deque<Alert>())

    init(
        detector: AnomalyDetector, suspensions: SuspensionList, audit: AuditLog?, metrics: NodeMetrics?,
        webhook: Webhook?,
        log: @escaping @Sendable (String) -> Void, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.detector = detector
        self.suspensions = suspensions
        self.audit = audit
        self.metrics = metrics
        self.webhook = webhook
        self.log = log
        self.now = now
        sampleSuspended()
    }

    func observe(_ o: Observation, by caller: AuthenticatedIdentity) { observe(o, by: caller.subject) }

    /// For callers known by a token rather than a certificate (the FHIR face).
    func observe(_ o: Observation, by subject: Subject) {
        for alert in detector.observe(o, by: subject, at: now()) { raise(alert) }
    }

    func suspension(of caller: AuthenticatedIdentity) -> Suspension? { suspensions.suspension(of: caller.pid) }

    var recentAlerts: [Alert] { recent.withLock { Array($0) } }

    private func raise(_ alert: Alert) {
        recent.withLock { r in
            if r.count >= Self.recentMax { r.removeFirst() }
            r.append(alert)
        }
        let actor = AuditActor(pid: alert.subject.pid, org: alert.subject.org, role: alert.subject.role)
        audit?.note(
            AuditEvent(
                actor: actor, action: "anomaly.alert", target: alert.rule, outcome: .success, detail: alert.detail))
        metrics?.counter(
            "anomaly_alerts_total", help: "Anomaly rules that fired, by rule.", labels: [("rule", alert.rule)]
        ).increment()
        var line =
            "medledgerd: WARNING: anomaly rule \(alert.rule) fired for \(alert.subject.pid) (\(alert.subject.role) of \(alert.subject.org)): \(alert.detail)"
        if alert.action == .suspend {
            do {
                if try suspend(alert.subject, by: alert.rule, reason: alert.detail) {
                    line += "; suspended on this node until `medledger incident resume`"
                }
            } catch {
                line += "; NOT suspended: \(error)"
            }
        }
        log(line)
        webhook?.post(alert)
    }

    /// Suspends `subject` on this node; false if it already was. `actor`: the administrator who
    /// did, or nil for a rule.
    func suspend(_ subject: Subject, by: String, reason: String, actor: AuditActor? = nil) throws -> Bool {
        let done = try suspensions.suspend(Suspension(subject: subject, since: now(), by: by, reason: reason))
        if done {
            audit?.note(
                AuditEvent(
                    actor: actor ?? .system, action: "incident.suspend", target: subject.pid, outcome: .success,
                    detail: "by \(by): \(reason)"))
            metrics?.counter(
                "incident_suspensions_total", help: "Identities suspended on this node (by a rule or an administrator)."
            ).increment()
            sampleSuspended()
        }
        return done
    }

    /// Lifts a suspension; `by` is the administrator who did.
    func resume(_ pid: String, by: AuditActor) throws -> Suspension? {
        guard let lifted = try suspensions.resume(pid) else { return nil }
        audit?.note(
            AuditEvent(
                actor: by, action: "incident.resume", target: pid, outcome: .success,
                detail: "suspended since \(lifted.since) by \(lifted.by)"))
        sampleSuspended()
        return lifted
    }

    /// The operations endpoint's view (`medledger incident`).
    var endpoint: IncidentsEndpoint {
        var e = IncidentsEndpoint(
            list: { (self.recentAlerts, self.suspensions.all) },
            suspend: { pid, reason, admin in
                try self.suspend(
                    Subject(pid: pid, org: "-", role: "-"), by: "administrator \(admin.pid)", reason: reason,
                    actor: admin.auditActor)
            },
            resume: { pid, admin in try self.resume(pid, by: admin.auditActor) })
        e.refusal = { caller in
            self.suspensions.suspension(of: caller.pid).map {
                "suspended: \(caller.pid) is suspended on this node (\($0.by))"
            }
        }
        return e
    }

    private func sampleSuspended() {
        metrics?.gauge("incident_suspended_identities", help: "Identities suspended on this node now.").set(
            to: Double(suspensions.all.count))
    }
}

extension AuthenticatedIdentity {
    var subject: Subject { Subject(pid: pid, org: org, role: attributes.role) }
}

/// POSTs each alert as JSON to an operator's URL (a pager, a SIEM). Bounded: a slow or hanging
/// receiver costs at most `inFlightMax` requests of `timeout` each; alerts beyond are dropped with a
/// line on the node's log (the audit line and the metric are kept either way).
final class Webhook: Sendable {
    static let inFlightMax = 4
    let url: String
    let timeout: TimeAmount
    let log: @Sendable (String) -> Void
    private let inFlight = Atomic<Int>(0)

    init(url: String, timeout: TimeAmount = .seconds(5), log: @escaping @Sendable (String) -> Void) {
        self.url = url
        self.timeout = timeout
        self.log = log
    }

    func post(_ alert: Alert) {
        guard inFlight.add(1, ordering: .relaxed).newValue <= Self.inFlightMax else {
            inFlight.subtract(1, ordering: .relaxed)
            return log(
                "medledgerd: WARNING: anomaly webhook busy (\(Self.inFlightMax) posts waiting); alert \(alert.rule) for \(alert.subject.pid) not posted"
            )
        }
        Task {
            defer { inFlight.subtract(1, ordering: .relaxed) }
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try IncidentJSON.encoder.encode(alert)))
                let response = try await HTTPClient.shared.execute(request, timeout: timeout)
                if !(200..<300).contains(response.status.code) {
                    log("medledgerd: WARNING: anomaly webhook answered \(response.status.code)")
                }
            } catch {
                log("medledgerd: WARNING: anomaly webhook failed: \(error)")
            }
        }
    }
}

enum IncidentJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()
}
