/// Small byte helpers shared by every layer. Bytes are `[UInt8]` throughout the ledger: it is what
/// RocksDB hands back and what the hash functions take, so no layer converts back and forth.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes lower- or upper-case hex; nil for odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Fixed-width big-endian integers: used in storage keys so that byte order equals numeric order.
public enum BigEndian {
    @inlinable
    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    @inlinable
    public static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    @inlinable
    public static func bytes(_ value: UInt64) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(8)
        append(value, to: &out)
        return out
    }

    /// Reads a UInt64 at `offset`; nil if fewer than 8 bytes remain.
    @inlinable
    public static func uint64<C: RandomAccessCollection>(_ bytes: C, at offset: Int = 0) -> UInt64?
    where C.Element == UInt8, C.Index == Int {
        let start = bytes.startIndex + offset
        guard offset >= 0, start + 8 <= bytes.endIndex else { return nil }
        var v: UInt64 = 0
        for i in start..<(start + 8) { v = v << 8 | UInt64(bytes[i]) }
        return v
    }

    @inlinable
    public static func uint32<C: RandomAccessCollection>(_ bytes: C, at offset: Int = 0) -> UInt32?
    where C.Element == UInt8, C.Index == Int {
        let start = bytes.startIndex + offset
        guard offset >= 0, start + 4 <= bytes.endIndex else { return nil }
        var v: UInt32 = 0
        for i in start..<(start + 4) { v = v << 8 | UInt32(bytes[i]) }
        return v
    }
}
