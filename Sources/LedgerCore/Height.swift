/// A committed version of a key: the block and the transaction inside it that wrote it.
/// Ordered by block then transaction, which is commit order.
public struct Height: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var blockNum: UInt64
    public var txNum: UInt64

    @inlinable
    public init(blockNum: UInt64, txNum: UInt64) {
        self.blockNum = blockNum
        self.txNum = txNum
    }

    public static func < (a: Height, b: Height) -> Bool {
        (a.blockNum, a.txNum) < (b.blockNum, b.txNum)
    }

    public var description: String { "\(blockNum):\(txNum)" }

    /// 16 bytes, big-endian block then tx: sorts like `Height` itself.
    public var encoded: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        BigEndian.append(blockNum, to: &out)
        BigEndian.append(txNum, to: &out)
        return out
    }

    @inlinable
    public init?<C: RandomAccessCollection>(encoded bytes: C) where C.Element == UInt8, C.Index == Int {
        guard let b = BigEndian.uint64(bytes, at: 0), let t = BigEndian.uint64(bytes, at: 8) else { return nil }
        self.init(blockNum: b, txNum: t)
    }
}
