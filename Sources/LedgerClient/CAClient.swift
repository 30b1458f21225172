import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerIdentity
import LedgerProtos
import LedgerRPC
import LedgerTransport

/// The CA calls a user, an organisation administrator or the SA makes. Keys are generated here,
/// on the caller's machine; only CSRs travel.
public struct CAClient: Sendable {
    public let endpoint: NodeAddress
    public let trustedRootsPEM: [UInt8]
    public let wallet: Wallet?
    public let serverName: String?

    public init(endpoint: NodeAddress, trustedRootsPEM: [UInt8], wallet: Wallet?, serverName: String? = nil) {
        self.endpoint = endpoint
        self.trustedRootsPEM = trustedRootsPEM
        self.wallet = wallet
        self.serverName = serverName
    }

    func withAdmin<T: Sendable>(
        _ body: @Sendable (Medledger_CAAdministration.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        guard let wallet else {
            throw CallFailure(status: 401, message: "this operation needs an identity: pass --wallet")
        }
        return try await NodeConnection.with(
            endpoint, trustedRootsPEM: trustedRootsPEM, identity: wallet.tlsIdentity, serverName: serverName
        ) { c in
            try await body(Medledger_CAAdministration.Client(wrapping: c))
        }
    }

    func withEnrollment<T: Sendable>(
        _ body: @Sendable (Medledger_CAEnrollment.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await NodeConnection.with(
            endpoint, trustedRootsPEM: trustedRootsPEM, identity: wallet?.tlsIdentity, serverName: serverName
        ) { c in
            try await body(Medledger_CAEnrollment.Client(wrapping: c))
        }
    }

    /// Enrolls with a one-time secret and writes the new identity to `walletDirectory`.
    public func enroll(enrollmentID: String, secret: String, walletDirectory: String) async throws -> Wallet {
        let keys = KeyPairs()
        let (csr, tlsCSR) = try keys.csrs(name: enrollmentID)
        var request = Medledger_EnrollRequest()
        request.enrollmentID = enrollmentID
        request.secret = secret
        request.csrPem = csr
        request.tlsCsrPem = tlsCSR
        let frozen = request
        let enrolled = try await withEnrollment { try await $0.enroll(frozen) }
        return try Wallet.store(enrolled, keys: keys, in: walletDirectory)
    }

    public func reenroll() async throws -> Wallet {
        guard let wallet else { throw CallFailure(status: 401, message: "reenroll needs the current wallet") }
        let keys = KeyPairs()
        let (csr, tlsCSR) = try keys.csrs(name: wallet.info.name)
        var request = Medledger_ReenrollRequest()
        request.csrPem = csr
        request.tlsCsrPem = tlsCSR
        let frozen = request
        let enrolled = try await withAdmin { try await $0.reenroll(frozen) }
        return try Wallet.store(enrolled, keys: keys, in: wallet.directory)
    }

    public struct NodeSpec: Sendable {
        public var name: String
        public var dnsNames: [String]
        public var ipAddresses: [String]

        public init(name: String, dnsNames: [String], ipAddresses: [String]) {
            self.name = name
            self.dnsNames = dnsNames
            self.ipAddresses = ipAddresses
        }
    }

    /// Admits an organisation: its administrator's and nodes' keys are made here and written under
    /// `outputDirectory` (admin/, nodes/NAME/).
    public func admitOrganization(
        id: String, type: Medledger_OrgType, displayName: String, nodes: [NodeSpec], outputDirectory: String
    ) async throws -> (admin: Wallet, nodes: [Wallet]) {
        let adminKeys = KeyPairs()
        var request = Medledger_AdmitOrganizationRequest()
        request.orgID = id
        request.type = type
        request.displayName = displayName
        (request.adminCsrPem, request.adminTlsCsrPem) = try adminKeys.csrs(name: "admin@\(id)")
        var nodeKeys = [String: KeyPairs]()
        for n in nodes {
            let k = KeyPairs()
            nodeKeys[n.name] = k
            var nr = Medledger_NodeRequest()
            nr.name = n.name
            (nr.csrPem, nr.tlsCsrPem) = try k.csrs(name: n.name)
            nr.dnsNames = n.dnsNames
            nr.ipAddresses = n.ipAddresses
            request.nodes.append(nr)
        }
        let frozen = request
        let response = try await withAdmin { try await $0.admitOrganization(frozen) }
        let admin = try Wallet.store(response.admin, keys: adminKeys, in: outputDirectory + "/admin")
        let nodeWallets = try response.nodes.map { n in
            try Wallet.store(n, keys: nodeKeys[n.name]!, in: outputDirectory + "/nodes/" + n.name)
        }
        return (admin, nodeWallets)
    }

    public func register(
        enrollmentID: String, role: Medledger_Role, realIdentity: String, org: String = ""
    ) async throws -> String {
        var request = Medledger_RegisterRequest()
        request.enrollmentID = enrollmentID
        request.role = role
        request.realIdentity = realIdentity
        request.orgID = org
        let frozen = request
        return try await withAdmin { try await $0.register(frozen) }.secret
    }

    public func revoke(
        serialHex: String? = nil, pid: String? = nil, reason: Medledger_RevocationReason
    ) async throws -> Medledger_RevokeResponse {
        var request = Medledger_RevokeRequest()
        if let serialHex { request.serialHex = serialHex }
        if let pid { request.pid = pid }
        request.reason = reason
        let frozen = request
        return try await withAdmin { try await $0.revoke(frozen) }
    }

    public func crl() async throws -> Medledger_CRLResponse {
        try await withEnrollment { try await $0.getCRL(Medledger_GetCRLRequest()) }
    }

    public func resolvePID(_ pid: String, justification: String) async throws -> Medledger_ResolvePIDResponse {
        var request = Medledger_ResolvePIDRequest()
        request.pid = pid
        request.justification = justification
        let frozen = request
        return try await withAdmin { try await $0.resolvePID(frozen) }
    }

    public func lookup(pid: String) async throws -> Medledger_LookupCertificatesResponse {
        var request = Medledger_LookupCertificatesRequest()
        request.pid = pid
        let frozen = request
        return try await withAdmin { try await $0.lookupCertificates(frozen) }
    }
}

/// Calls on a node's API.
public struct NodeClient: Sendable {
    public let endpoint: NodeAddress
    public let trustedRootsPEM: [UInt8]
    public let identity: TLSIdentityFiles?
    public let serverName: String?

    public init(endpoint: NodeAddress, trustedRootsPEM: [UInt8], identity: TLSIdentityFiles?, serverName: String? = nil)
    {
        self.endpoint = endpoint
        self.trustedRootsPEM = trustedRootsPEM
        self.identity = identity
        self.serverName = serverName
    }

    public func whoAmI() async throws -> Medledger_WhoAmIResponse {
        try await NodeConnection.with(
            endpoint, trustedRootsPEM: trustedRootsPEM, identity: identity, serverName: serverName
        ) { c in
            try await Medledger_Node.Client(wrapping: c).whoAmI(Medledger_WhoAmIRequest())
        }
    }

    /// The node's audit lines about the caller's own records (patients), newest first.
    public func auditTrail(since: String = "", limit: UInt32 = 0) async throws -> Medledger_AuditTrailResponse {
        var request = Medledger_AuditTrailRequest()
        request.since = since
        request.limit = limit
        let frozen = request
        return try await NodeConnection.with(
            endpoint, trustedRootsPEM: trustedRootsPEM, identity: identity, serverName: serverName
        ) { c in
            try await Medledger_Node.Client(wrapping: c).auditTrail(frozen)
        }
    }

    public func channelInfo(_ channel: String) async throws -> Medledger_ChannelInfoResponse {
        var request = Medledger_ChannelInfoRequest()
        request.channel = channel
        let frozen = request
        return try await NodeConnection.with(
            endpoint, trustedRootsPEM: trustedRootsPEM, identity: identity, serverName: serverName
        ) { c in
            try await Medledger_Node.Client(wrapping: c).channelInfo(frozen)
        }
    }
}
