import Crypto

/// The Merkle tree over a block's envelopes, in the shape of RFC 9162 (Certificate Transparency v2):
///
///     leaf  = SHA-256(0x00 || envelope bytes)
///     inner = SHA-256(0x01 || left || right)
///     empty = SHA-256("")
///
/// The 0x00/0x01 prefixes separate leaves from inner nodes, so no inner node can be passed off as a
/// leaf (the second-preimage attack on plain Merkle trees). An odd node at the end of a level is
/// carried up unchanged, never duplicated: that is exactly RFC 9162's split at the largest power of two,
/// so a tree of n leaves has one root and duplicating the last transaction changes it (the Bitcoin
/// CVE-2012-2459 ambiguity cannot arise).
public struct MerkleTree: Sendable {
    /// levels[0] holds the leaf hashes; the last level holds the root alone.
    private let levels: [[[UInt8]]]

    public init(leaves: [[UInt8]]) {
        var levels: [[[UInt8]]] = [leaves.map(MerkleTree.leafHash)]
        while let last = levels.last, last.count > 1 {
            var next = [[UInt8]]()
            next.reserveCapacity((last.count + 1) / 2)
            var i = 0
            while i + 1 < last.count {
                next.append(MerkleTree.nodeHash(last[i], last[i + 1]))
                i += 2
            }
            if i < last.count { next.append(last[i]) }  // odd node moves up unchanged
            levels.append(next)
        }
        self.levels = levels
    }

    public var leafCount: Int { levels[0].count }

    public var root: [UInt8] {
        if levels[0].isEmpty { return Array(SHA256.hash(data: [UInt8]())) }
        return levels[levels.count - 1][0]
    }

    /// The audit path for leaf `index` (RFC 9162 §2.1.3.1), or nil when out of range.
    public func proof(forLeaf index: Int) -> MerkleProof? {
        guard index >= 0, index < leafCount else { return nil }
        var path = [[UInt8]]()
        var i = index
        for level in levels.dropLast() {
            let sibling = i ^ 1
            if sibling < level.count { path.append(level[sibling]) }
            i >>= 1
        }
        return MerkleProof(leafIndex: UInt64(index), treeSize: UInt64(leafCount), path: path)
    }

    public static func leafHash(_ data: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: [0x00])
        h.update(data: data)
        return Array(h.finalize())
    }

    public static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: [0x01])
        h.update(data: left)
        h.update(data: right)
        return Array(h.finalize())
    }
}

/// An inclusion proof: enough to check that one transaction is in a block given only the block header.
public struct MerkleProof: Sendable, Equatable, Codable {
    public var leafIndex: UInt64
    public var treeSize: UInt64
    public var path: [[UInt8]]

    public init(leafIndex: UInt64, treeSize: UInt64, path: [[UInt8]]) {
        self.leafIndex = leafIndex
        self.treeSize = treeSize
        self.path = path
    }

    /// RFC 9162 §2.1.3.2: recompute the root from the leaf and the path; true when it equals `root`.
    public func verify(leaf: [UInt8], root: [UInt8]) -> Bool {
        guard leafIndex < treeSize else { return false }
        var fn = leafIndex
        var sn = treeSize - 1
        var r = MerkleTree.leafHash(leaf)
        for p in path {
            guard p.count == LedgerHash.byteCount, sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = MerkleTree.nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = MerkleTree.nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }
}
