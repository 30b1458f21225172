import Foundation
import LedgerChannel
import LedgerConsensus
import LedgerOrderingCore
import LedgerProtos

/// The node's ordering service: solo channels and raft channels side by side. Each channel is ordered
/// by the kind its configuration names; a genesis block goes to the matching one.
public final class OrderingServices: OrderingService {
    public let solo: SoloOrderer
    public let raft: RaftOrderer?

    public init(solo: SoloOrderer, raft: RaftOrderer?) {
        self.solo = solo
        self.raft = raft
    }

    private func owner(of channel: String) -> (any OrderingService)? {
        if solo.chain(channel) != nil { return solo }
        if let raft, raft.chain(channel) != nil { return raft }
        return nil
    }

    public func submit(_ envelope: [UInt8], done: @escaping @Sendable (OrderingRejection?) -> Void) {
        let env: Medledger_Envelope
        let payload: Medledger_Payload
        do throws(OrderingRejection) { (env, payload) = try EnvelopeAdmission.parse(envelope) } catch {
            return done(error)
        }
        let channel = payload.channelHeader.channelID
        if solo.chain(channel) != nil { return solo.submit(envelope, env: env, payload: payload, done: done) }
        if let raft, raft.chain(channel) != nil { return raft.submit(envelope, env: env, payload: payload, done: done) }
        done(OrderingRejection(404, "this orderer does not order channel \(channel.debugDescription)"))
    }

    public func chain(_ channel: String) -> (any BlockSource)? { owner(of: channel)?.chain(channel) }

    public func context(of channel: String) -> ChannelContext? {
        solo.context(of: channel) ?? raft?.context(of: channel)
    }

    /// Joins from a genesis block, or (raft only) from the configuration block that added this node
    /// as a consenter; blocking.
    public func join(genesis: Medledger_Block) throws {
        if genesis.header.number > 0 {
            guard let raft else {
                throw OrderingRejection(
                    400,
                    "only a raft consenter joins from a configuration block, and this node has no raft listener (orderer.raft_listen in node.yaml)"
                )
            }
            return try raft.join(genesis: genesis)
        }
        let ctx = try ConfigTransaction.verifyGenesis(genesis)
        switch ctx.ordering.kind {
        case .solo: try solo.join(genesis: genesis)
        case .raft:
            guard let raft else {
                throw OrderingRejection(
                    400,
                    "channel \(ctx.channel) is ordered by raft, and this node has no raft listener (orderer.raft_listen in node.yaml)"
                )
            }
            try raft.join(genesis: genesis)
        }
    }

    /// Blocks cut on each channel since the last call (solo and raft channels alike).
    public func takeCuts() -> [String: [CutRecord]] { solo.takeCuts().merging(raft?.takeCuts() ?? [:]) { a, _ in a } }

    public func channels() -> [OrderedChannelStatus] {
        (solo.channels() + (raft?.channels() ?? [])).sorted { $0.name < $1.name }
    }

    public func consensusStatus(of channel: String) async -> ConsensusStatus? {
        await raft?.consensusStatus(of: channel)
    }

    public func shutdown() {
        solo.shutdown()
        raft?.shutdown()
    }
}
