import Foundation
import GRPCCore
import LedgerChaincode
import LedgerIdentity
import LedgerProtos
import MedRecords

/// Runs a `medrecords` read against this peer's current state in someone's name (the caller's, or
/// the node's own), without endorsing or ordering anything: the node's services decide access with
/// the chaincode's own rules rather than a second copy of them. Refusals come back as gRPC errors
/// with the chaincode's message.
struct ChainQuery: Sendable {
    let runtime: PeerRuntime

    func run<Response: Decodable>(
        _ function: String, _ request: some Encodable, as who: CreatorIdentity, channel: String,
        _ type: Response.Type = Response.self
    ) throws -> Response {
        guard let ch = runtime.channel(channel, visibleTo: who.org) else {
            throw RPCError(code: .notFound, message: "no channel \(channel.debugDescription) on this node")
        }
        let invocation = Invocation(
            channel: channel, txID: "node-query-" + UUID().uuidString, timestamp: Date(),
            creator: who, function: function, args: [Array(try JSONEncoder().encode(request))])
        let result = Simulator.simulate(
            MedRecordsChaincode(), invocation: invocation, state: try ch.ledger.stateSnapshot())
        guard result.response.status == 200 else {
            throw StatusMapping.rpcError(status: result.response.status, message: result.response.message)
        }
        do { return try JSONDecoder().decode(Response.self, from: Data(result.response.payload)) } catch {
            throw RPCError(
                code: .internalError,
                message: "medrecords \(function) answered what does not decode as \(Response.self)")
        }
    }
}

extension ChainQuery {
    /// The same read, typed and in-process (`MedRecordsReads`): no JSON between the rules and the
    /// caller. Refusals come back as gRPC errors with the chaincode's status and message.
    func read<Response>(
        _ function: String, as who: CreatorIdentity, channel: String, _ body: (ChaincodeStub) throws -> Response
    ) throws -> Response {
        guard let ch = runtime.channel(channel, visibleTo: who.org) else {
            throw RPCError(code: .notFound, message: "no channel \(channel.debugDescription) on this node")
        }
        let invocation = Invocation(
            channel: channel, txID: "node-query-" + UUID().uuidString, timestamp: Date(), creator: who,
            function: function, args: [])
        let state = try ch.ledger.stateSnapshot()
        do { return try Simulator.read("medrecords", invocation: invocation, state: state, body) } catch let refusal
            as ChaincodeRefusal
        {
            throw StatusMapping.rpcError(status: refusal.status, message: refusal.message)
        }
    }
}

extension AuthenticatedIdentity {
    /// The caller as the chaincode sees a creator (the certificate itself is not needed for reads).
    var creator: CreatorIdentity { CreatorIdentity(pid: pid, org: org, role: role, certificatePEM: "") }
}
