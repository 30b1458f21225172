import Crypto
import Foundation
import Synchronization

/// The endorsement signatures this peer made recently. When a block brings back one of them, the
/// validator compares bytes instead of verifying ECDSA again: this peer signed exactly that message
/// (it includes the endorser's identity) with its own key, so an exact match of message digest and
/// signature is as good as a verification, at a fraction of the cost. Anything not remembered (other
/// peers' endorsements, or our own after a restart or once forgotten) is verified as usual.
public final class SignatureMemory: Sendable {
    /// Two generations: when the newer fills up, the older is dropped. Bounds memory (about
    /// 2 × 50,000 × 100 bytes) and keeps the last 50,000 to 100,000 signatures.
    private struct Generations {
        var newer: [SHA256Digest: Data] = [:]
        var older: [SHA256Digest: Data] = [:]
    }

    static let generationMax = 50_000
    private let generations = Mutex(Generations())

    public init() {}

    public func remember(signature: Data, over message: [UInt8]) {
        remember(signature: signature, overDigest: SHA256.hash(data: message))
    }

    /// `remember` for a message whose SHA-256 the caller has already computed.
    public func remember(signature: Data, overDigest digest: SHA256Digest) {
        generations.withLock { g in
            if g.newer.count >= Self.generationMax {
                g.older = g.newer
                g.newer = [:]
                g.newer.reserveCapacity(Self.generationMax)
            }
            g.newer[digest] = signature
        }
    }

    /// True only if this peer made exactly `signature` over exactly `message`.
    public func made(_ signature: Data, over message: [UInt8]) -> Bool {
        let digest = SHA256.hash(data: message)
        return generations.withLock { g in (g.newer[digest] ?? g.older[digest]) == signature }
    }
}
