import Crypto
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProtos

/// A chaincode: the handler of one namespace of the world state. `invoke` runs in a simulation: it
/// reads committed state through the stub and its writes are only recorded (the read-write set);
/// nothing reaches the ledger until the transaction is ordered, validated and committed.
public protocol Chaincode: Sendable {
    var name: String { get }
    func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse
}

/// What a chaincode answers. Statuses follow the node API: 200, and 400/403/404/500 for refusals.
public struct ChaincodeResponse: Sendable, Equatable {
    public var status: Int32
    public var message: String
    public var payload: [UInt8]

    public init(status: Int32, message: String = "", payload: [UInt8] = []) {
        self.status = status
        self.message = message
        self.payload = payload
    }

    public static func ok(_ payload: [UInt8] = []) -> ChaincodeResponse {
        ChaincodeResponse(status: 200, payload: payload)
    }
    public static func badRequest(_ m: String) -> ChaincodeResponse { ChaincodeResponse(status: 400, message: m) }
    public static func forbidden(_ m: String) -> ChaincodeResponse { ChaincodeResponse(status: 403, message: m) }
    public static func notFound(_ m: String) -> ChaincodeResponse { ChaincodeResponse(status: 404, message: m) }

    public var isOK: Bool { status == 200 }
}

/// The identity that created the proposal, from its verified signing certificate.
public struct CreatorIdentity: Sendable, Equatable {
    public var pid: String
    public var org: String
    public var role: Medledger_Role
    public var certificatePEM: String

    public init(pid: String, org: String, role: Medledger_Role, certificatePEM: String) {
        self.pid = pid
        self.org = org
        self.role = role
        self.certificatePEM = certificatePEM
    }
}

/// Everything a proposal gives a chaincode besides state.
public struct Invocation: Sendable {
    public var channel: String
    public var txID: String
    public var timestamp: Date
    public var creator: CreatorIdentity
    public var function: String
    public var args: [[UInt8]]
    /// Inputs that reach the chaincode but are never recorded in the transaction.
    public var transient: [String: [UInt8]]
    /// The channel's membership, for chaincodes that check certificates carried in their arguments or
    /// transient inputs (the P_DE's signer certificates). nil where the caller gave none: `validateMember` then refuses.
    public var members: (any MemberValidator)?

    public init(
        channel: String, txID: String, timestamp: Date, creator: CreatorIdentity, function: String, args: [[UInt8]],
        transient: [String: [UInt8]] = [:], members: (any MemberValidator)? = nil
    ) {
        self.channel = channel
        self.txID = txID
        self.timestamp = timestamp
        self.creator = creator
        self.function = function
        self.args = args
        self.transient = transient
        self.members = members
    }
}

/// Decides whether a certificate is a live signing identity of a channel member: it chains to the CA
/// root of the organisation it names, is inside its validity dates at `time` and is not on that
/// organisation's revocation list. Deterministic for a given channel configuration and time, so that
/// every endorser reaches the same answer.
public protocol MemberValidator: Sendable {
    func validateSigner(certificatePEM: String, at time: Date) throws -> ValidatedSigner
}

/// A certificate the channel accepted as a live member's signing identity: who it names, and the
/// P-256 key it certifies. The key comes out of the very check that accepted the certificate, so a
/// chaincode verifies the signer's signatures against that key and never parses the certificate again.
public struct ValidatedSigner: Sendable {
    public let identity: CreatorIdentity
    public var publicKey: P256.Signing.PublicKey { verifyingKey.publicKey }
    public let verifyingKey: P256VerifyingKey

    public init(identity: CreatorIdentity, publicKey: P256.Signing.PublicKey) {
        self.init(identity: identity, verifyingKey: P256VerifyingKey(publicKey))
    }

    public init(identity: CreatorIdentity, verifyingKey: P256VerifyingKey) {
        self.identity = identity
        self.verifyingKey = verifyingKey
    }

    public var pid: String { identity.pid }
    public var org: String { identity.org }
    public var role: Medledger_Role { identity.role }
}

/// Limits a simulation enforces; a chaincode that exceeds one gets an error, not a partial write set.
public struct SimulationLimits: Sendable {
    public var keyBytesMax = 1024
    public var valueBytesMax = 1 << 20
    public var writesMax = 10_000
    public var readsMax = 100_000
    public var eventPayloadBytesMax = 64 * 1024

    public init() {}
}
