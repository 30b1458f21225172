/// Upper bounds the ledger enforces on what it accepts. Everything that comes from outside has a limit;
/// these are the defaults a node starts with, and a node's configuration can change them.
public struct LedgerLimits: Sendable, Equatable, Codable {
    /// Largest serialized block the store accepts. Blocks hold index records, not medical data
    /// (that lives in the object store), so 16 MiB is far more than a full block of P_DE records.
    public var blockBytesMax: Int = 16 << 20
    /// Largest single envelope. A P_DE with two certificates and two signatures is a few kB.
    public var envelopeBytesMax: Int = 1 << 20
    /// Most transactions in one block.
    public var transactionsPerBlockMax: Int = 10_000

    public init() {}

    public init(blockBytesMax: Int, envelopeBytesMax: Int, transactionsPerBlockMax: Int) {
        self.blockBytesMax = blockBytesMax
        self.envelopeBytesMax = envelopeBytesMax
        self.transactionsPerBlockMax = transactionsPerBlockMax
    }
}

/// Channel names as Fabric allows them: lower-case letters, digits, '.' and '-', starting with a letter,
/// at most 249 characters (they are length-prefixed by one byte in storage keys).
public enum ChannelName {
    public static let lengthMax = 249

    public static func isValid(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard let first = b.first, b.count <= lengthMax, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else {
            return false
        }
        return b.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
    }
}

/// Namespaces (chaincode names) in the world state: 1 to 255 bytes, no U+0000.
public enum NamespaceName {
    public static let lengthMax = 255

    public static func isValid(_ name: String) -> Bool {
        let n = name.utf8.count
        return n > 0 && n <= lengthMax && !name.utf8.contains(0)
    }
}
