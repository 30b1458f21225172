import LedgerOrderingCore
import LedgerPeer
import LedgerProtos
import LedgerStorage

/// A participant of the simulated network.
public enum SimNode: Hashable, Comparable, Sendable, CustomStringConvertible {
    case orderer
    case peer(Int)
    case client(Int)

    public var description: String {
        switch self {
        case .orderer: return "orderer"
        case .peer(let i): return "peer\(i)"
        case .client(let i): return "client\(i)"
        }
    }
}

/// What travels between participants. Each mirrors an RPC of the real node (peer.proto): clients
/// endorse on peers, broadcast to the orderer and ask peers for commit status; peers pull blocks
/// from the orderer as Deliver does.
enum SimMessage {
    case endorse(op: Int, proposal: Medledger_SignedProposal)
    case endorsed(op: Int, peer: Int, answer: Result<Medledger_ProposalResponse, ProposalRejection>)
    case broadcast(op: Int, attempt: Int, envelope: [UInt8])
    case broadcastAnswer(op: Int, attempt: Int, refusal: OrderingRejection?)
    case pull(from: UInt64)
    case blocks([Medledger_Block])
    case status(op: Int, txID: String)
    case statusAnswer(op: Int, location: TxLocation?)

    /// A line for the trace: no signature, key or tx id (those differ between runs of one seed).
    var summary: String {
        switch self {
        case .endorse(let op, _): return "endorse op\(op)"
        case .endorsed(let op, let peer, let a):
            switch a {
            case .success(let r): return "endorsed op\(op) by peer\(peer) status \(r.response.status)"
            case .failure(let e): return "endorsed op\(op) by peer\(peer) refused \(e.status)"
            }
        case .broadcast(let op, let attempt, _): return "broadcast op\(op) attempt \(attempt)"
        case .broadcastAnswer(let op, let attempt, let r):
            return "broadcast answer op\(op) attempt \(attempt) \(r.map { "\($0.status)" } ?? "ok")"
        case .pull(let from): return "pull from \(from)"
        case .blocks(let b): return "blocks \(b.first?.header.number ?? 0)+\(b.count)"
        case .status(let op, _): return "status op\(op)"
        case .statusAnswer(let op, let l):
            return "status answer op\(op) \(l.map { "block \($0.blockNum) code \($0.code.rawValue)" } ?? "none")"
        }
    }
}

/// Something that happens at a simulated millisecond. Ties are broken by the order events were
/// scheduled in, so the queue's order never depends on anything but the seed.
struct SimEvent: Comparable {
    enum Kind {
        case deliver(from: SimNode, to: SimNode, SimMessage)
        /// A participant's own timer: the orderer cuts, peers pull, clients act.
        case tick(SimNode)
        case restart(SimNode)
        case heal(SimNode)
    }

    var time: Int64
    var sequence: Int
    var kind: Kind

    static func < (a: SimEvent, b: SimEvent) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
    static func == (a: SimEvent, b: SimEvent) -> Bool { (a.time, a.sequence) == (b.time, b.sequence) }
}
