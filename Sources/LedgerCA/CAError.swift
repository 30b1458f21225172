/// Why the CA refused a request. The kind maps one-to-one onto the node API's status codes
/// (docs/ACCESS.md): authentication failures, missing rights, unknown resources, bad input.
public struct CAError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case unauthenticated  // 401
        case permissionDenied  // 403
        case notFound  // 404
        case invalidArgument  // 400
        case alreadyExists  // 409
        case failedPrecondition  // 412
        case unavailable  // 503: the CA cannot audit, so it acts on nothing
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func denied(_ m: String) -> CAError { CAError(.permissionDenied, m) }
    static func invalid(_ m: String) -> CAError { CAError(.invalidArgument, m) }
}
