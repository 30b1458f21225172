import Crypto
import LedgerProtos

/// The commit hash chains, block by block, a digest of exactly the state changes a peer applied:
///
///     commit(n) = SHA-256("medledger/commit/v1" || commit(n-1) || n || SHA-256(valid writes of block n))
///
/// with commit(-1) = 32 zero bytes. Writes are encoded length-prefixed (tx number, namespace, key,
/// delete flag, value), in block order. Two peers whose commit hashes agree at block n hold the same
/// world state, so comparing one value replaces comparing two databases.
public enum CommitHash {
    static let domain = Array("medledger/commit/v1".utf8)

    public static func next(
        previous: [UInt8],
        blockNumber: UInt64,
        validTransactions: [(txNum: Int, transaction: ParsedTransaction)]
    ) -> [UInt8] {
        var writes = SHA256()
        var scratch = [UInt8]()
        scratch.reserveCapacity(256)
        for (txNum, tx) in validTransactions {
            scratch.removeAll(keepingCapacity: true)
            BigEndian.append(UInt64(txNum), to: &scratch)
            writes.update(data: scratch)
            for (ns, w) in tx.writes {
                scratch.removeAll(keepingCapacity: true)
                appendField(Array(ns.utf8), to: &scratch)
                appendField(Array(w.key.utf8), to: &scratch)
                scratch.append(w.isDelete ? 1 : 0)
                appendField(w.isDelete ? [] : [UInt8](w.value), to: &scratch)
                writes.update(data: scratch)
            }
        }
        let writesDigest = Array(writes.finalize())
        return LedgerHash.sha256(parts: domain, previous, BigEndian.bytes(blockNumber), writesDigest)
    }

    private static func appendField(_ bytes: [UInt8], to out: inout [UInt8]) {
        BigEndian.append(UInt32(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }
}
