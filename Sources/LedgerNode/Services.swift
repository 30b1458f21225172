import Foundation
import GRPCCore
import LedgerAudit
import LedgerCA
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerRPC
import LedgerStorage
import LedgerTransport
import Synchronization

/// The node API (node.proto).
struct NodeService: Medledger_Node.SimpleServiceProtocol {
    let nodeOrg: String
    let ledgers: LedgerStore
    let trust: TrustStore
    let crlWatcher: CRLWatcher
    /// The configuration of a channel this node's peer serves (membership decides who may see it).
    let channelContext: @Sendable (String) -> ChannelContext?
    let audit: AuditLog?
    var trailGate = AuditTrailGate()

    /// Who may read a channel's chain information.
    static let channelInfoRoles: Set<Medledger_Role> = [.admin, .doctor, .node]

    func whoAmI(request: Medledger_WhoAmIRequest, context: ServerContext) async throws -> Medledger_WhoAmIResponse {
        let caller = try context.requireCaller()
        var r = Medledger_WhoAmIResponse()
        r.pid = caller.pid
        r.orgID = caller.org
        r.role = caller.role
        r.serialHex = caller.serialHex
        r.nodeOrgID = nodeOrg
        let now = Date()
        r.crls = trust.installed.map { c in
            var st = Medledger_CRLStatus()
            st.issuer = c.issuer.description
            st.number = c.number
            st.thisUpdate = .init(date: c.thisUpdate)
            if let n = c.nextUpdate { st.nextUpdate = .init(date: n) }
            st.stale = c.isStale(at: now)
            st.source = c.source
            st.lastRefreshError = crlWatcher.lastRefreshError
            return st
        }
        return r
    }

    func channelInfo(
        request: Medledger_ChannelInfoRequest, context: ServerContext
    ) async throws -> Medledger_ChannelInfoResponse {
        let caller = try context.requireCaller()
        // A non-member may not learn that the channel exists. A ledger without a channel configuration
        // (made offline, `ledger sample`) belongs to the node's own organisation.
        let members = channelContext(request.channel)?.organizationIDs ?? [nodeOrg]
        guard members.contains(caller.org) else {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "channel.info", target: request.channel, outcome: .denied,
                    detail: "not a member"))
            throw RPCError(code: .notFound, message: "no channel \(request.channel.debugDescription) on this node")
        }
        guard Self.channelInfoRoles.contains(caller.role) else {
            audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "channel.info", target: request.channel, outcome: .denied,
                    detail: "role \(caller.attributes.role) may not read channel information"))
            throw RPCError(
                code: .permissionDenied, message: "role \(caller.attributes.role) may not read channel information")
        }
        return try await StatusMapping.mapping {
            do {
                let info = try ledgers.channel(request.channel).info
                audit?.note(
                    AuditEvent(
                        actor: caller.auditActor, action: "channel.info", target: request.channel, outcome: .success))
                var r = Medledger_ChannelInfoResponse()
                r.channel = request.channel
                r.height = info.height
                r.tipHash = Data(info.tipHash)
                r.commitHash = Data(info.commitHash)
                return r
            } catch let e as LedgerStoreError {
                audit?.note(
                    AuditEvent(
                        actor: caller.auditActor, action: "channel.info", target: request.channel, outcome: .failed,
                        detail: "not found"))
                switch e {
                case .channelNotFound, .invalidChannelName:
                    throw RPCError(
                        code: .notFound, message: "no channel \(request.channel.debugDescription) on this node")
                default: throw e
                }
            }
        }
    }
}

/// The CA's enrollment service (identity.proto): no client certificate needed.
struct CAEnrollmentService: Medledger_CAEnrollment.SimpleServiceProtocol {
    let ca: CertificateAuthority

    func enroll(request: Medledger_EnrollRequest, context: ServerContext) async throws -> Medledger_EnrolledIdentity {
        try await StatusMapping.mapping { try ca.enroll(request) }
    }

    func getCAInfo(request: Medledger_GetCAInfoRequest, context: ServerContext) async throws -> Medledger_CAInfo {
        var r = Medledger_CAInfo()
        r.caCertPem = Data(ca.rootCertificate.pem.utf8)
        r.caName = ca.config.caName
        return r
    }

    func getCRL(request: Medledger_GetCRLRequest, context: ServerContext) async throws -> Medledger_CRLResponse {
        try await StatusMapping.mapping {
            let crl = try ca.currentCRL()
            var r = Medledger_CRLResponse()
            r.crlDer = Data(crl.der)
            r.crlNumber = crl.number
            r.thisUpdate = .init(date: crl.thisUpdate)
            return r
        }
    }
}

/// The CA's administration service: mutual TLS, the caller's identity decides.
struct CAAdministrationService: Medledger_CAAdministration.SimpleServiceProtocol {
    let ca: CertificateAuthority
    /// Called after a revocation: this node's own trust store applies it at once, and the CRL is put
    /// into the configuration of the channels this node orders (nil where it orders none).
    let onRevoked: @Sendable () async -> CRLPublisher.Outcome?

    func reenroll(request: Medledger_ReenrollRequest, context: ServerContext) async throws -> Medledger_EnrolledIdentity
    {
        let caller = try context.requireCaller()
        return try await StatusMapping.mapping { try ca.reenroll(by: caller, request) }
    }

    func admitOrganization(
        request: Medledger_AdmitOrganizationRequest, context: ServerContext
    ) async throws -> Medledger_AdmitOrganizationResponse {
        let caller = try context.requireCaller()
        return try await StatusMapping.mapping { try ca.admitOrganization(by: caller, request) }
    }

    func register(request: Medledger_RegisterRequest, context: ServerContext) async throws -> Medledger_RegisterResponse
    {
        let caller = try context.requireCaller()
        return try await StatusMapping.mapping { try ca.register(by: caller, request) }
    }

    func revoke(request: Medledger_RevokeRequest, context: ServerContext) async throws -> Medledger_RevokeResponse {
        let caller = try context.requireCaller()
        var r = try await StatusMapping.mapping { try ca.revoke(by: caller, request) }
        if let outcome = await onRevoked() {
            r.crlPublishedChannels = outcome.published
            r.crlPublishFailures = outcome.failures
        }
        return r
    }

    func resolvePID(
        request: Medledger_ResolvePIDRequest, context: ServerContext
    ) async throws -> Medledger_ResolvePIDResponse {
        let caller = try context.requireCaller()
        return try await StatusMapping.mapping { try ca.resolvePID(by: caller, request) }
    }

    func lookupCertificates(
        request: Medledger_LookupCertificatesRequest, context: ServerContext
    ) async throws -> Medledger_LookupCertificatesResponse {
        _ = try context.requireCaller()
        return try await StatusMapping.mapping { try ca.lookupCertificates(request) }
    }
}

extension NodeService {
    /// A patient's view of this node's audit log: the lines about their records (`record.read` and
    /// the like, written with their PID as the target) by anyone but themselves, newest first. One query at a time per node:
    /// each reads the kept audit files from the newest back.
    func auditTrail(
        request: Medledger_AuditTrailRequest, context: ServerContext
    ) async throws -> Medledger_AuditTrailResponse {
        let caller = try context.requireCaller()
        guard caller.role == .patient else {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "the audit trail is for patients (about their own records); role \(caller.attributes.role) may not read it"
            )
        }
        guard let audit else {
            throw RPCError(code: .failedPrecondition, message: "this node keeps no audit log (node.yaml audit_log)")
        }
        let since = try request.since.isEmpty ? nil : Self.auditTime(request.since)
        let limit = request.limit == 0 ? 100 : Int(request.limit)
        guard (1...AuditSearch.limitMax).contains(limit) else {
            throw RPCError(code: .invalidArgument, message: "limit must be 1...\(AuditSearch.limitMax) (0: 100)")
        }
        guard trailGate.enter() else {
            throw RPCError(
                code: .unavailable, message: "another audit trail query is running on this node; retry in a moment")
        }
        defer { trailGate.leave() }
        let found: AuditSearch.Result
        do {
            found = try AuditSearch.entries(
                about: caller.pid, in: audit.path, since: since, limit: limit, excludingActor: caller.pid)
        } catch {
            throw RPCError(code: .unavailable, message: "cannot read this node's audit log: \(error)")
        }
        var r = Medledger_AuditTrailResponse()
        r.nodeOrgID = nodeOrg
        r.truncated = found.truncated
        r.entries = found.entries.map { e in
            var m = Medledger_AuditTrailEntry()
            (m.time, m.actorPid, m.actorOrg, m.actorRole) = (e.time, e.actor.pid, e.actor.org, e.actor.role)
            (m.action, m.outcome, m.detail, m.seq) = (e.action, e.outcome, e.detail, e.seq)
            return m
        }
        return r
    }

    static func auditTime(_ text: String) throws -> String {
        guard let time = AuditSearch.lineTime(text) else {
            throw RPCError(
                code: .invalidArgument,
                message: "since \(text.debugDescription) is not an RFC 3339 time such as 2026-12-02T10:00:00Z")
        }
        return time
    }
}

/// At most one audit trail query at a time on a node (each may read every kept audit file).
final class AuditTrailGate: Sendable {
    private let busy = Atomic(false)

    func enter() -> Bool { busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged }
    func leave() { busy.store(false, ordering: .releasing) }
}
