import Crypto
import LedgerCore
import LedgerCrypto
import Testing

@Suite struct MerkleTreeTests {
    /// The eight leaves of the Certificate Transparency (RFC 6962) reference test suite.
    static let ctLeaves: [[UInt8]] = [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
        Array(0x50...0x57), Array(0x60...0x6f),
    ]
    /// Roots of the first n of those leaves, n = 1...8, as published with the CT reference code.
    static let ctRoots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test func rootsMatchCertificateTransparencyVectors() {
        for n in 1...8 {
            #expect(
                Hex.encode(MerkleTree(leaves: Array(Self.ctLeaves.prefix(n))).root) == Self.ctRoots[n - 1], "n = \(n)")
        }
    }

    @Test func emptyTreeRootIsHashOfNothing() {
        #expect(MerkleTree(leaves: []).root == Array(SHA256.hash(data: [UInt8]())))
        #expect(MerkleTree(leaves: []).proof(forLeaf: 0) == nil)
    }

    /// RFC 9162's recursive definition, written independently of the bottom-up implementation.
    static func referenceRoot(_ d: ArraySlice<[UInt8]>) -> [UInt8] {
        if d.count == 1 { return MerkleTree.leafHash(d.first!) }
        var k = 1
        while k * 2 < d.count { k *= 2 }
        let mid = d.startIndex + k
        return MerkleTree.nodeHash(referenceRoot(d[d.startIndex..<mid]), referenceRoot(d[mid...]))
    }

    static func leaves(_ n: Int) -> [[UInt8]] { (0..<n).map { Array("tx-\($0)".utf8) } }

    @Test func bottomUpEqualsRecursiveDefinitionForOddAndEvenSizes() {
        for n in 1...70 {
            let l = Self.leaves(n)
            #expect(MerkleTree(leaves: l).root == Self.referenceRoot(l[...]), "n = \(n)")
        }
    }

    @Test func everyProofVerifiesAndOnlyForItsOwnLeaf() {
        for n in 1...40 {
            let l = Self.leaves(n)
            let tree = MerkleTree(leaves: l)
            for i in 0..<n {
                let proof = tree.proof(forLeaf: i)!
                #expect(proof.verify(leaf: l[i], root: tree.root), "n=\(n) i=\(i)")
                if n > 1 {
                    #expect(!proof.verify(leaf: l[(i + 1) % n], root: tree.root), "wrong leaf accepted n=\(n) i=\(i)")
                }
            }
        }
    }

    @Test func tamperedProofsFail() {
        let l = Self.leaves(13)
        let tree = MerkleTree(leaves: l)
        let good = tree.proof(forLeaf: 6)!
        #expect(good.verify(leaf: l[6], root: tree.root))

        var wrongIndex = good
        wrongIndex.leafIndex = 7
        #expect(!wrongIndex.verify(leaf: l[6], root: tree.root))

        // The tree size is bound through the root: it changes the proof's shape only where the leaf's
        // path depends on it, as for the last leaf (promoted up the odd levels).
        var wrongSize = tree.proof(forLeaf: 12)!
        #expect(wrongSize.verify(leaf: l[12], root: tree.root))
        wrongSize.treeSize = 14
        #expect(!wrongSize.verify(leaf: l[12], root: tree.root))

        var flipped = good
        flipped.path[0][0] ^= 1
        #expect(!flipped.verify(leaf: l[6], root: tree.root))

        var truncated = good
        truncated.path.removeLast()
        #expect(!truncated.verify(leaf: l[6], root: tree.root))

        var extended = good
        extended.path.append(LedgerHash.zero)
        #expect(!extended.verify(leaf: l[6], root: tree.root))

        var outOfRange = good
        outOfRange.leafIndex = 13
        #expect(!outOfRange.verify(leaf: l[6], root: tree.root))

        #expect(!good.verify(leaf: l[6], root: MerkleTree(leaves: Self.leaves(12)).root))
    }

    @Test func innerNodeCannotPoseAsLeaf() {
        // Without domain separation, a "leaf" equal to the two children's hashes would give the same root.
        let a: [UInt8] = [1]
        let b: [UInt8] = [2]
        let two = MerkleTree(leaves: [a, b]).root
        let forged = MerkleTree(leaves: [MerkleTree.leafHash(a) + MerkleTree.leafHash(b)]).root
        #expect(two != forged)
    }

    @Test func duplicatingTheLastLeafChangesTheRoot() {
        let l = Self.leaves(3)
        #expect(MerkleTree(leaves: l).root != MerkleTree(leaves: l + [l[2]]).root)
    }
}
