import Foundation
import GRPCCore
import LedgerChaincode
import LedgerClient
import LedgerIdentity
import LedgerProtos
import LedgerTransport
import MedRecords
import Synchronization
import X509

/// The node acting in its own name: the management node creating treatments, the proxy recording
/// usage. It submits through a gateway to its own peer, signed with the node's signing identity, like
/// any client would, so its transactions are endorsed, ordered and validated like everyone else's.
final class NodeSubmitter: Sendable {
    let signer: SigningIdentity
    /// The node as the chaincode sees it, for local reads in its own name.
    let creator: CreatorIdentity
    let trustedRootsPEM: [UInt8]
    let tls: TLSIdentityFiles
    let ownAddress: @Sendable () -> String
    private let gateways = Mutex<[String: Gateway]>([:])
    private let closed = Mutex(false)

    init(
        signer: SigningIdentity, trustedRootsPEM: [UInt8], tls: TLSIdentityFiles,
        ownAddress: @escaping @Sendable () -> String
    ) throws {
        self.signer = signer
        let cert = try Certificate(pemEncoded: signer.certificatePEM)
        guard let attributes = IdentityAttributes(subject: cert.subject) else {
            throw NodeServer.StartupError(
                description: "the node's signing certificate names no PID, organisation and role")
        }
        creator = CreatorIdentity(
            pid: attributes.pid, org: attributes.org, role: attributes.roleValue ?? .unspecified,
            certificatePEM: signer.certificatePEM)
        self.trustedRootsPEM = trustedRootsPEM
        self.tls = tls
        self.ownAddress = ownAddress
    }

    /// Submits a `medrecords` call and waits for its commit; a chaincode refusal or an invalid
    /// transaction is an RPCError carrying the reason.
    func submit<Response: Decodable>(
        _ function: String, _ request: some Encodable, channel: String, _ type: Response.Type = Response.self
    ) async throws -> (Response, SubmitResult) {
        let g = try await gateway(channel)
        let r: SubmitResult
        do {
            r = try await g.submit(
                chaincode: "medrecords", function: function, byteArgs: [Array(try JSONEncoder().encode(request))])
        } catch let f as Gateway.Failure {
            throw StatusMapping.rpcError(status: Int32(f.status), message: f.message)
        } catch let f as CallFailure {
            throw StatusMapping.rpcError(status: Int32(f.status), message: f.message)
        }
        guard r.isValid else {
            // MVCC_READ_CONFLICT here means a state it read (a consent, say) changed before it committed.
            throw RPCError(
                code: .failedPrecondition,
                message:
                    "the node's \(function) transaction \(r.txID) was invalidated (\(r.code)): what it relied on changed before it committed"
            )
        }
        do { return (try JSONDecoder().decode(Response.self, from: Data(r.result.payload)), r) } catch {
            throw RPCError(code: .internalError, message: "medrecords \(function) answered what does not decode")
        }
    }

    private func gateway(_ channel: String) async throws -> Gateway {
        if closed.withLock({ $0 }) { throw RPCError(code: .unavailable, message: "the node is shutting down") }
        if let g = gateways.withLock({ $0[channel] }) { return g }
        var address = ownAddress()
        if address.hasPrefix("0.0.0.0:") { address = "127.0.0.1:" + address.dropFirst("0.0.0.0:".count) }
        guard let peer = NodeAddress(address) else {
            throw RPCError(code: .internalError, message: "own address \(address) is not host:port")
        }
        let g: Gateway
        do {
            g = try await Gateway.connect(
                signer: signer, trustedRootsPEM: trustedRootsPEM, tls: tls, peer: peer, channel: channel)
        } catch {
            throw RPCError(code: .unavailable, message: "the node cannot reach its own peer to submit: \(error)")
        }
        let kept = gateways.withLock { map -> Gateway in
            if let existing = map[channel] { return existing }
            map[channel] = g
            return g
        }
        if kept !== g { g.close() }
        return kept
    }

    /// Closes every gateway; later submissions fail with UNAVAILABLE.
    func close() {
        closed.withLock { $0 = true }
        for g in gateways.withLock({ map in
            defer { map = [:] }
            return Array(map.values)
        }) { g.close() }
    }
}
