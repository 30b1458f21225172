import Foundation
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerProtos
import LedgerStorage

// The ordering service's decisions, free of threads, clocks and sockets: what is admitted, how a
// block is made and signed. The solo and raft orderers (LedgerOrdering) and the simulator
// (LedgerSimulation) run the same code.

/// Why the ordering service refused an envelope, with the EMR-IG status.
public struct OrderingRejection: Error, Equatable, CustomStringConvertible {
    /// 400 malformed, 401 revoked creator, 403 not a member / not allowed, 404 unknown channel,
    /// 409 already ordered, 413 too large, 503 overloaded, shutting down or channel stopped.
    public var status: Int32
    public var message: String
    public var description: String { "[\(status)] \(message)" }
    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The checks an ordering service makes on an envelope before it accepts it: everything a later stage
/// could refuse is refused here, so nothing accepted is later dropped. Shared by solo and raft.
public enum EnvelopeAdmission {
    public struct Admitted: Sendable {
        public var isConfig: Bool
        public var txID: String
    }

    /// Size against the channel's and the ledger's limits, header, not already ordered, creator a live
    /// member (channel CRL and this node's `gate`), signature; for a configuration update the full
    /// update rules at the orderer's time `now`.
    public static func check(
        _ bytes: [UInt8], env: Medledger_Envelope, payload: Medledger_Payload, context ctx: ChannelContext,
        ledger: ChannelLedger,
        gate: (any RevocationGate)?, now: Date
    ) throws(OrderingRejection) -> Admitted {
        let ch = payload.channelHeader
        let sizeMax = min(Int(ctx.config.batch.absoluteMaxBytes), ledger.limits.envelopeBytesMax)
        guard bytes.count <= sizeMax else {
            throw OrderingRejection(
                413, "envelope is \(bytes.count) bytes, over the \(sizeMax)-byte limit of channel \(ctx.channel)")
        }
        guard !ch.txID.isEmpty, ch.hasTimestamp else {
            throw OrderingRejection(400, "envelope header lacks tx id or timestamp")
        }
        if (try? ledger.transaction(id: ch.txID)) != nil {
            throw OrderingRejection(409, "transaction \(ch.txID) was already ordered")
        }
        let creator: VerifiedMember
        do { creator = try ctx.members.verify(serializedIdentity: payload.signatureHeader.creator, at: now) } catch {
            throw OrderingRejection(403, "creator is not a member of channel \(ctx.channel): \(error)")
        }
        if let why = gate?.refusal(of: creator) { throw OrderingRejection(401, "creator: \(why)") }
        guard creator.isValidSignature(env.signature, for: env.payload) else {
            throw OrderingRejection(403, "envelope signature does not verify")
        }
        switch ch.type {
        case .endorserTransaction: return Admitted(isConfig: false, txID: ch.txID)
        case .config:
            do {
                _ = try ConfigTransaction.checkUpdate(
                    envelope: bytes, current: ctx, blockNumber: ledger.height, at: now)
            } catch {
                throw OrderingRejection(403, "configuration update refused: \(error)")
            }
            return Admitted(isConfig: true, txID: ch.txID)
        default: throw OrderingRejection(400, "transaction type \(ch.type) is not accepted for ordering")
        }
    }

    /// The envelope and its payload, or 400.
    public static func parse(_ envelope: [UInt8]) throws(OrderingRejection) -> (Medledger_Envelope, Medledger_Payload) {
        do {
            let env = try Medledger_Envelope(serializedBytes: envelope)
            return (env, try Medledger_Payload(serializedBytes: env.payload))
        } catch { throw OrderingRejection(400, "envelope does not parse: \(error)") }
    }
}

/// Cutting a block: the one place a block is built and signed by an orderer (solo and raft).
public enum OrderedBlock {
    /// The signed block of `envelopes` at `number`, and the configuration it brings into force if it is
    /// a configuration block. An update is re-checked at cut time: an earlier update may have raised
    /// the sequence meanwhile. A stale update is still ordered (peers mark it invalid), as
    /// acknowledged envelopes always are.
    public static func make(
        _ envelopes: [[UInt8]], number n: UInt64, previousHash: [UInt8], context ctx: ChannelContext,
        signer: SigningIdentity, at time: Date,
        log: @Sendable (String) -> Void
    ) -> (Medledger_Block, ChannelContext?) {
        var newContext: ChannelContext?
        if envelopes.count == 1, let p = try? Medledger_Envelope(serializedBytes: envelopes[0]),
            let payload = try? Medledger_Payload(serializedBytes: p.payload),
            payload.channelHeader.type == .config
        {
            do {
                newContext = try ConfigTransaction.checkUpdate(
                    envelope: envelopes[0], current: ctx, blockNumber: n, at: time)
            } catch {
                log(
                    "orderer: configuration update on \(ctx.channel) no longer applies; peers will mark it invalid: \(error)"
                )
            }
        }
        var block = Medledger_Block.make(number: n, previousHash: previousHash, envelopes: envelopes)
        block.metadata.orderingSignature(signer: signer, headerHash: block.header.headerHash, at: time)
        block.metadata.lastConfigBlock = newContext != nil ? n : ctx.configBlock
        return (block, newContext)
    }
}

extension ChannelLedger {
    /// What peers receive is the ordered block: validation codes and commit hash are theirs to set.
    public func orderedBlock(number: UInt64) throws -> Medledger_Block? {
        guard var b = try block(number: number) else { return nil }
        if number > 0 {
            b.metadata.validationCodes = Array(repeating: .notValidated, count: b.data.envelopes.count)
            b.metadata.commitHash = Data()
        }
        return b
    }
}

extension BatchConfig {
    public init(_ p: Medledger_BatchParameters) {
        self.init()
        maxMessageCount = Int(p.maxMessageCount)
        absoluteMaxBytes = Int(p.absoluteMaxBytes)
        preferredMaxBytes = Int(p.preferredMaxBytes)
        batchTimeoutSeconds = Double(p.batchTimeoutMs) / 1000
    }
}
