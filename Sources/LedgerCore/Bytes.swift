import Foundation

/// Fixed-width big-endian integers: used in storage keys so that byte order equals numeric order.
public enum BigEndian {
    @inlinable
    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    @inlinable
    public static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
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

/// Bytes as a dictionary key, hashed over all of them. Foundation's `Data` hashes only its first 80
/// bytes, and the serialized identities of one organisation share those when its id is long (the
/// certificate's serial comes after the id and the PEM header): a cache keyed by `Data` would put them
/// all under one hash and search it end to end on every lookup.
public struct WholeBytesKey: Hashable, Sendable {
    public let bytes: Data

    public init(_ bytes: Data) { self.bytes = bytes }

    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
