import GRPCCore

/// Counts and times every gRPC call of the node's listener, by method and result. Put it first in
/// the interceptor chain, so calls refused by authentication count as 401. A streaming answer is
/// timed to its end and classed by how it ended.
public struct MetricsInterceptor: ServerInterceptor {
    let metrics: NodeMetrics

    public init(metrics: NodeMetrics) {
        self.metrics = metrics
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let start = ContinuousClock.now
        let metrics = self.metrics
        let done: @Sendable ((any Error)?) -> Void = { error in
            metrics.recordCall(method: method, result: Self.result(of: error), duration: ContinuousClock.now - start)
        }
        let response: StreamingServerResponse<Output>
        do { response = try await next(request, context) } catch {
            done(error)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            done(error)
            return response
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await producer(writer)
                    done(nil)
                    return trailers
                } catch {
                    done(error)
                    throw error
                }
            }
            return StreamingServerResponse(accepted: .success(contents))
        }
    }

    /// The EMR exchange guide's classes: 401, 403, 404, other client errors, server errors.
    static func result(of error: (any Error)?) -> NodeMetrics.Result {
        guard let error else { return .ok }
        guard let rpc = error as? RPCError else { return .serverError }
        switch rpc.code {
        case .unauthenticated: return .unauthenticated
        case .permissionDenied: return .forbidden
        case .notFound: return .notFound
        case .invalidArgument, .failedPrecondition, .alreadyExists, .outOfRange, .resourceExhausted, .aborted,
            .cancelled:
            return .clientError
        default: return .serverError
        }
    }
}
