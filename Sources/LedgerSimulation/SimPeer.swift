import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerIdentity
import LedgerPeer
import LedgerProtos
import LedgerStorage
import MedRecords

/// A hospital's peer as a state machine: the real endorser and the real commit path (PeerChannel:
/// orderer signature, validation, MVCC, commit) on a `SimDisk`. It pulls blocks from the orderer as
/// Deliver does and answers endorsement and commit-status requests.
final class SimPeer {
    let index: Int
    let identity: SigningIdentity
    let disk: SimDisk
    private(set) var channel: PeerChannel
    private var endorser: Endorser
    /// When the stream last showed life (a pull sent, blocks received): after `pullPatienceMs` of
    /// silence the stream is opened again, from the height, as Deliver clients reconnect.
    private var lastHeard: Int64 = -1_000_000
    static let pullPatienceMs: Int64 = 40

    static let chaincodes: [any Chaincode] = [KVChaincode(), SimCounter(), MedRecordsChaincode()]

    init(index: Int, identity: SigningIdentity, genesis: Medledger_Block, disk: SimDisk) throws {
        self.index = index
        self.identity = identity
        self.disk = disk
        endorser = Endorser(identity: identity, chaincodes: Self.chaincodes)
        channel = try PeerChannel.join(
            genesis: genesis, store: try LedgerStore(kv: disk), ownSignatures: endorser.signatures)
    }

    /// After a crash: a new process on what the disk kept.
    func restart() throws {
        endorser = Endorser(identity: identity, chaincodes: Self.chaincodes)
        channel = try PeerChannel.open(
            SimCast.channel, store: try LedgerStore(kv: disk), ownSignatures: endorser.signatures)
        lastHeard = -1_000_000
    }

    var height: UInt64 { channel.ledger.height }

    func endorse(_ signed: Medledger_SignedProposal, now: Date) -> Result<Medledger_ProposalResponse, ProposalRejection>
    {
        do {
            let ledger = channel.ledger
            let parsed = try ParsedProposal(signed)
            return .success(
                try endorser.process(parsed, context: channel.context, state: try ledger.stateSnapshot(), now: now) {
                    try ledger.transaction(id: $0) != nil
                })
        } catch let e as ProposalRejection {
            return .failure(e)
        } catch {
            return .failure(ProposalRejection(500, "internal error"))
        }
    }

    /// The timer: reopen the block stream if it has been silent too long.
    func tick(now ms: Int64) -> [Outgoing] {
        guard ms - lastHeard >= Self.pullPatienceMs else { return [] }
        lastHeard = ms
        return [(.orderer, .pull(from: height))]
    }

    /// Commits delivered blocks in order. Blocks below the height are re-deliveries; a block above it
    /// (a later message overtook an earlier one, or one was lost) is skipped: the stream goes quiet
    /// for this peer and the timer reopens it from the height. A refusal of the next block
    /// is the orderer's fault or a fork: the caller reports it. A failed disk write throws `SimCrash`.
    func receive(
        _ blocks: [Medledger_Block], now ms: Int64
    ) throws -> [(block: Medledger_Block, receipt: CommitReceipt)] {
        // A message that starts past the height (a gap) is no sign of a live stream: the timer re-pulls.
        if let first = blocks.first?.header.number, first <= height { lastHeard = ms }
        var committed: [(Medledger_Block, CommitReceipt)] = []
        for block in blocks where block.header.number == height {
            do {
                guard let receipt = try channel.receive(block) else { continue }
                committed.append((block, receipt))
            } catch let e as SimDiskFailure {
                throw SimCrash(reason: "peer\(index) disk: \(e)")
            }
        }
        return committed
    }

    func status(of txID: String) -> TxLocation? { try? channel.ledger.transaction(id: txID) }

    /// A counter's value in this peer's world state (0 if never written).
    func counter(_ key: String) -> Int {
        let v = try? channel.ledger.state.get(namespace: "counter", key: key)
        return v.flatMap { Int(String(decoding: $0.value, as: UTF8.self)) } ?? 0
    }
}
