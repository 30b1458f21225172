import LedgerAudit

extension AuditLog {
    /// The node's audit lines for its own services (refusals, and accesses already done): the request's
    /// answer does not depend on the line, because refusing or undoing after the fact protects nothing.
    /// A line that cannot be written is not lost silently: the log's failure handler (set up by
    /// `NodeServer`) reports it on the node's log. The CA, which must not act unaudited, records
    /// durably and refuses instead (`CertificateAuthority`).
    func note(_ event: AuditEvent) {
        _ = try? record(event)
    }
}
