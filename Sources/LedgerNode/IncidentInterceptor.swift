import GRPCCore
import LedgerAudit
import LedgerIdentity
import LedgerIncidents
import LedgerTransport

/// Runs after `AuthInterceptor` on every call of the mutual-TLS listener: refuses a suspended
/// identity (401, "suspended"), and tells the anomaly rules who called from where and which calls
/// were refused. Proposals refused inside the endorsement stream are reported by the endorser.
struct IncidentInterceptor: ServerInterceptor {
    let desk: IncidentDesk

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        // Nodes are never suspended (nor watched): a bad node is revoked by the SA.
        guard let caller = context.caller, caller.role != .node else { return try await next(request, context) }
        if let s = desk.suspension(of: caller) {
            desk.audit?.note(
                AuditEvent(
                    actor: caller.auditActor, action: "auth", target: context.descriptor.fullyQualifiedMethod,
                    outcome: .denied, detail: "suspended by \(s.by)"))
            throw Self.refusal(s, caller)
        }
        let desk = self.desk
        desk.observe(.call(address: Self.host(of: context.remotePeer)), by: caller)
        let refused: @Sendable ((any Error)?) -> Void = { error in
            guard let rpc = error as? RPCError else { return }
            let status: Int? = [.unauthenticated: 401, .permissionDenied: 403, .notFound: 404][rpc.code]
            if let status { desk.observe(.refused(status: status), by: caller) }
        }
        // Each message read from a stream opened before a suspension is refused too (an upload, the
        // batches of a broadcast stream), not only what is written back.
        var checked = request
        checked.messages = RPCAsyncSequence(
            wrapping: request.messages.map { message in
                if let s = desk.suspension(of: caller) { throw Self.refusal(s, caller) }
                return message
            })
        let response: StreamingServerResponse<Output>
        do { response = try await next(checked, context) } catch {
            refused(error)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            refused(error)
            return response
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                // A long-lived stream (endorsements, blocks, events) opened before a suspension ends
                // at its next message: the suspension holds on every API, not only on new calls.
                let guarded = RPCWriter(wrapping: SuspensionCheckedWriter(base: writer, desk: desk, caller: caller))
                do { return try await producer(guarded) } catch {
                    refused(error)
                    throw error
                }
            }
            return StreamingServerResponse(accepted: .success(contents))
        }
    }

    static func refusal(_ s: Suspension, _ caller: AuthenticatedIdentity) -> RPCError {
        RPCError(
            code: .unauthenticated,
            message:
                "suspended: \(caller.pid) is suspended on this node since \(s.since) (\(s.by)); its administrators can resume it"
        )
    }

    /// "ipv4:10.0.0.7:52114" → "10.0.0.7"; "ipv6:[::1]:52114" → "[::1]"; nil if unknown.
    static func host(of remotePeer: String) -> String? {
        guard let kind = remotePeer.firstIndex(of: ":"), let port = remotePeer.lastIndex(of: ":"), kind < port else {
            return nil
        }
        return String(remotePeer[remotePeer.index(after: kind)..<port])
    }
}

/// Refuses each message of a stream once its caller is suspended (one atomic load while nobody is).
struct SuspensionCheckedWriter<Element: Sendable>: RPCWriterProtocol {
    let base: RPCWriter<Element>
    let desk: IncidentDesk
    let caller: AuthenticatedIdentity

    func write(_ element: Element) async throws {
        if let s = desk.suspension(of: caller) { throw IncidentInterceptor.refusal(s, caller) }
        try await base.write(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        if let s = desk.suspension(of: caller) { throw IncidentInterceptor.refusal(s, caller) }
        try await base.write(contentsOf: elements)
    }
}
