import GRPCCore
import LedgerCA
import LedgerStorage

/// Denials as the EMR-IG wants them (docs/ACCESS.md): 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED,
/// 404 → NOT_FOUND. Everything a handler throws goes through here so no internal error text leaks
/// as an unexpected status.
enum StatusMapping {
    static func rpcError(_ error: any Error) -> RPCError {
        switch error {
        case let e as RPCError: return e
        case let e as CAError:
            let code: RPCError.Code
            switch e.kind {
            case .unauthenticated: code = .unauthenticated
            case .permissionDenied: code = .permissionDenied
            case .notFound: code = .notFound
            case .invalidArgument: code = .invalidArgument
            case .alreadyExists: code = .alreadyExists
            case .failedPrecondition: code = .failedPrecondition
            case .unavailable: code = .unavailable
            }
            return RPCError(code: code, message: e.message)
        case let e as LedgerStoreError:
            if case .channelNotFound = e { return RPCError(code: .notFound, message: e.description) }
            return RPCError(code: .invalidArgument, message: e.description)
        default:
            return RPCError(code: .internalError, message: "internal error")
        }
    }

    /// An EMR-IG status (400, 401, 403, 404, 409, 503; anything else is internal) as a gRPC error.
    static func rpcError(status: Int32, message: String) -> RPCError {
        let code: RPCError.Code
        switch status {
        case 400: code = .invalidArgument
        case 401: code = .unauthenticated
        case 403: code = .permissionDenied
        case 404: code = .notFound
        case 409: code = .alreadyExists
        case 412: code = .failedPrecondition
        case 413: code = .resourceExhausted
        case 503, 504: code = .unavailable
        default: code = .internalError
        }
        return RPCError(code: code, message: message)
    }

    /// The EMR-IG status of a gRPC error from another node (the inverse of `rpcError(status:message:)`).
    static func status(of code: RPCError.Code) -> Int {
        switch code {
        case .invalidArgument: return 400
        case .unauthenticated: return 401
        case .permissionDenied: return 403
        case .notFound: return 404
        case .alreadyExists: return 409
        case .failedPrecondition: return 412
        case .resourceExhausted: return 413
        case .unavailable, .deadlineExceeded, .cancelled: return 503
        default: return 500
        }
    }

    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw rpcError(error) }
    }
}
