import LedgerCore

/// Where everything lives in the node's RocksDB. One database per node; one column family per concern;
/// a channel is a key prefix inside each column family.
///
/// Every column family any part of medledger uses is listed here, so every tool opens the database with
/// the full list (RocksDB requires it) and a directory with a column family outside this list is refused.
public enum StorageLayout {
    /// Bumped when an existing key or value encoding changes. A newer directory is refused, not misread;
    /// an older one is read as it is and marked with this version when opened for writing.
    /// 1: history entries `deleted:u8 ‖ value`. 2: a write's history entry is `0x00` alone and its
    /// value is read from the block (entries written by 1 keep their copy and are read as before).
    public static let formatVersion: UInt32 = 2

    public enum Family {
        public static let meta = "meta"
        public static let blocks = "blocks"
        public static let blockHashes = "block_hashes"
        public static let txIndex = "tx_index"
        public static let state = "state"
        public static let history = "history"
    }

    public static let columnFamilies = [
        Family.meta, Family.blocks, Family.blockHashes, Family.txIndex, Family.state, Family.history,
    ]

    /// The RocksDB directory inside a node's data directory.
    public static func databasePath(dataDir: String) -> String { dataDir + "/rocksdb" }
}

/// Key encodings. All integers big-endian so keys sort numerically; variable parts length-prefixed so
/// no key of one channel or namespace can be a prefix-collision with another's.
///
///     global meta       0x00 name                                    (0x00 never starts a channel prefix)
///     channel prefix    len(channel):u8 channel
///     blocks            chan number:u64                           → serialized Block
///     block_hashes      chan headerHash(32)                       → number:u64
///     tx_index          chan txID                                 → height(16) code:u8
///     state             chan len(ns):u8 ns key                    → height(16) value
///     history           chan len(ns):u8 ns len(key):u32 key height(16) → deleted:u8 (format 1: ‖ value)
///     meta              chan "savepoint"                          → number:u64
struct LedgerKeys: Sendable {
    let channelPrefix: Bytes

    init(channel: String) {
        precondition(ChannelName.isValid(channel), "channel name checked by the caller")
        channelPrefix = [UInt8(channel.utf8.count)] + Array(channel.utf8)
    }

    static let formatVersionKey: Bytes = [0x00] + Array("format_version".utf8)
    static let channelRegistryPrefix: Bytes = [0x00] + Array("channel/".utf8)

    static func channelRegistryKey(_ channel: String) -> Bytes { channelRegistryPrefix + Array(channel.utf8) }

    var allBlocks: KeyRange { .prefix(channelPrefix) }
    var allState: KeyRange { .prefix(channelPrefix) }

    func block(_ number: UInt64) -> Bytes {
        var k = channelPrefix
        BigEndian.append(number, to: &k)
        return k
    }

    func blockNumber(fromKey key: Bytes) -> UInt64? {
        guard key.count == channelPrefix.count + 8 else { return nil }
        return BigEndian.uint64(key, at: channelPrefix.count)
    }

    func blockHash(_ hash: Bytes) -> Bytes { channelPrefix + hash }

    func tx(_ txID: String) -> Bytes { channelPrefix + Array(txID.utf8) }

    func namespacePrefix(_ ns: String, reserving extra: Int = 0) -> Bytes {
        var k = Bytes()
        k.reserveCapacity(channelPrefix.count + 1 + ns.utf8.count + extra)
        k.append(contentsOf: channelPrefix)
        k.append(UInt8(ns.utf8.count))
        k.append(contentsOf: ns.utf8)
        return k
    }

    func state(_ ns: String, _ key: String) -> Bytes {
        var k = namespacePrefix(ns, reserving: key.utf8.count)
        k.append(contentsOf: key.utf8)
        return k
    }

    func stateKeyParts(_ stored: Bytes) -> (namespace: String, key: String)? {
        let p = channelPrefix.count
        guard stored.count > p else { return nil }
        let nsLen = Int(stored[p])
        guard stored.count >= p + 1 + nsLen else { return nil }
        let ns = String(decoding: stored[(p + 1)..<(p + 1 + nsLen)], as: UTF8.self)
        let key = String(decoding: stored[(p + 1 + nsLen)...], as: UTF8.self)
        return (ns, key)
    }

    func historyPrefix(_ ns: String, _ key: String) -> Bytes {
        var k = namespacePrefix(ns)
        BigEndian.append(UInt32(key.utf8.count), to: &k)
        k.append(contentsOf: key.utf8)
        return k
    }

    func history(_ ns: String, _ key: String, _ height: Height) -> Bytes { historyPrefix(ns, key) + height.encoded }

    /// Namespace, key and version of a stored history key; nil if it is not one of this channel's.
    func historyKeyParts(_ stored: Bytes) -> (namespace: String, key: String, height: Height)? {
        let p = channelPrefix.count
        guard stored.count > p, stored.starts(with: channelPrefix) else { return nil }
        let nsEnd = p + 1 + Int(stored[p])
        guard stored.count >= nsEnd + 4, let keyLength = BigEndian.uint32(stored, at: nsEnd) else {
            return nil
        }
        let keyEnd = nsEnd + 4 + Int(keyLength)
        guard stored.count == keyEnd + 16, let h = Height(encoded: Array(stored[keyEnd...])) else { return nil }
        let ns = String(decoding: stored[(p + 1)..<nsEnd], as: UTF8.self)
        return (ns, String(decoding: stored[(nsEnd + 4)..<keyEnd], as: UTF8.self), h)
    }

    var savepoint: Bytes { channelPrefix + Array("savepoint".utf8) }
}

/// The column families the ledger uses, resolved once per store.
struct LedgerFamilies: Sendable {
    let meta, blocks, blockHashes, txIndex, state, history: ColumnFamily

    init(_ kv: any KVStore) throws {
        meta = try kv.columnFamily(StorageLayout.Family.meta)
        blocks = try kv.columnFamily(StorageLayout.Family.blocks)
        blockHashes = try kv.columnFamily(StorageLayout.Family.blockHashes)
        txIndex = try kv.columnFamily(StorageLayout.Family.txIndex)
        state = try kv.columnFamily(StorageLayout.Family.state)
        history = try kv.columnFamily(StorageLayout.Family.history)
    }
}
