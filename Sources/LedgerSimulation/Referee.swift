import LedgerCore
import LedgerCrypto
import LedgerProtos
import LedgerStorage

/// An invariant the run broke, at the step it was first seen.
public struct SimViolation: Error, Sendable, CustomStringConvertible {
    public var step: Int
    public var message: String
    public var description: String { "step \(step): \(message)" }
}

/// Checks the invariants as the run goes: every block number has one header (no fork, orderer and
/// peers alike); every peer that commits block n reaches the same validation codes and commit hash;
/// what the orderer acknowledged survives its crashes; and, once healed, every acknowledged or
/// committed-as-seen transaction is on every peer with the same verdict.
struct Referee {
    private var headers: [UInt64: [UInt8]] = [:]
    private var verdicts: [UInt64: (codes: [Medledger_TxValidationCode], commitHash: [UInt8])] = [:]
    private(set) var violation: SimViolation?

    mutating func fail(_ step: Int, _ message: String) {
        if violation == nil { violation = SimViolation(step: step, message: message) }
    }

    /// A block the orderer wrote or a peer committed: one header per height.
    mutating func sawBlock(_ number: UInt64, header: [UInt8], by node: SimNode, step: Int) {
        if let known = headers[number] {
            if known != header {
                fail(
                    step,
                    "fork: \(node) has a block \(number) whose header differs from another node's"
                )
            }
        } else {
            headers[number] = header
        }
    }

    mutating func sawCommit(_ receipt: CommitReceipt, codes: [Medledger_TxValidationCode], by peer: Int, step: Int) {
        if let known = verdicts[receipt.blockNumber] {
            if known.codes != codes {
                fail(
                    step,
                    "peer\(peer) validated block \(receipt.blockNumber) as \(codes.map(\.rawValue)), another peer as \(known.codes.map(\.rawValue))"
                )
            }
            if known.commitHash != receipt.commitHash {
                fail(step, "peer\(peer)'s commit hash at block \(receipt.blockNumber) differs from another peer's")
            }
        } else {
            verdicts[receipt.blockNumber] = (codes, receipt.commitHash)
        }
    }

    /// After an orderer restart: its chain must still hold every transaction it acknowledged.
    mutating func ordererRestarted(lostAcknowledged lost: [Int], step: Int) {
        guard let first = lost.first else { return }
        fail(
            step,
            "orderer restarted without op\(first) (and \(lost.count - 1) more) it had acknowledged: acknowledged data lost"
        )
    }

    /// A digest of every verdict so far (block number and validation codes), for the run's summary.
    /// Commit hashes are compared across peers but left out: medrecords keys derive from tx ids, which
    /// derive from certificates whose signatures differ between runs of one seed.
    func verdictDigest() -> String {
        var parts: [[UInt8]] = []
        for n in verdicts.keys.sorted() {
            parts.append(BigEndian.bytes(n) + verdicts[n]!.codes.map { UInt8(truncatingIfNeeded: $0.rawValue) })
        }
        return Hex.encode(Digests.sha256(parts.flatMap { $0 }))
    }
}
