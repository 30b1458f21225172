import Foundation
import LedgerCore
import LedgerProtos
import Synchronization

public enum LedgerStoreError: Error, Equatable, CustomStringConvertible {
    case invalidChannelName(String)
    case channelNotFound(String)
    case channelExists(String)
    case inUse(path: String)

    public var description: String {
        switch self {
        case .invalidChannelName(let n):
            return
                "invalid channel name \(n.debugDescription): lower-case letters, digits, '.' and '-', starting with a letter, at most \(ChannelName.lengthMax) characters"
        case .channelNotFound(let n): return "no channel '\(n)' in this ledger"
        case .channelExists(let n): return "channel '\(n)' already exists"
        case .inUse(let p):
            return
                "data directory \(p) is in use by another process (is a node or another medledger command running on it?)"
        }
    }
}

/// A node's ledgers: one key-value store, one `ChannelLedger` per channel.
public final class LedgerStore: Sendable {
    public let kv: any KVStore
    public let limits: LedgerLimits
    /// Opened by `openReadOnly`: nothing is written, not even recovery (see `ChannelLedger`).
    public let isReadOnly: Bool
    let path: String
    let families: LedgerFamilies
    private let open = Mutex<[String: ChannelLedger]>([:])

    /// Wraps an open store (for example a `MemoryStore`), checking or writing its format version
    /// (read-only: checking only).
    public init(
        kv: any KVStore, limits: LedgerLimits = LedgerLimits(), path: String = "(memory)", readOnly: Bool = false
    ) throws {
        self.kv = kv
        self.limits = limits
        self.isReadOnly = readOnly
        self.path = path
        self.families = try LedgerFamilies(kv)
        if let v = try kv.get(families.meta, LedgerKeys.formatVersionKey) {
            guard v.count == 4, let found = BigEndian.uint32(v) else {
                throw StorageError.corrupt(
                    what: "format version in \(path)", reason: "expected 4 bytes, found \(v.count)")
            }
            if found > StorageLayout.formatVersion {
                throw StorageError.formatTooNew(path: path, found: found, supported: StorageLayout.formatVersion)
            }
            // This build reads every older format as it is, but what it writes from now on an older
            // build would misread (format 2's history entries without values), so the directory is
            // marked before anything is written.
            if found < StorageLayout.formatVersion && !readOnly { try Self.writeFormatVersion(kv, families) }
        } else if !readOnly {
            try Self.writeFormatVersion(kv, families)
        }
    }

    private static func writeFormatVersion(_ kv: any KVStore, _ families: LedgerFamilies) throws {
        var batch = WriteBatch()
        var v = Bytes()
        BigEndian.append(StorageLayout.formatVersion, to: &v)
        batch.put(families.meta, LedgerKeys.formatVersionKey, v)
        try kv.write(batch, sync: true)
    }

    /// The format version the directory is marked with (nil: none yet, a new read-only store).
    func formatVersion() throws -> UInt32? {
        guard let v = try kv.get(families.meta, LedgerKeys.formatVersionKey) else { return nil }
        return BigEndian.uint32(v)
    }

    public func close() {
        open.withLock { $0.removeAll() }
        kv.close()
    }

    public func channelNames() throws -> [String] {
        let prefix = LedgerKeys.channelRegistryPrefix
        return try kv.scan(families.meta, .prefix(prefix)).map {
            String(decoding: $0.key.dropFirst(prefix.count), as: UTF8.self)
        }
    }

    /// Registers a new, empty channel ledger.
    @discardableResult
    public func createChannel(_ name: String) throws -> ChannelLedger {
        guard ChannelName.isValid(name) else { throw LedgerStoreError.invalidChannelName(name) }
        guard !isReadOnly else { throw StorageError.readOnly(path: path) }
        guard try kv.get(families.meta, LedgerKeys.channelRegistryKey(name)) == nil else {
            throw LedgerStoreError.channelExists(name)
        }
        var batch = WriteBatch()
        batch.put(families.meta, LedgerKeys.channelRegistryKey(name), [])
        try kv.write(batch, sync: true)
        return try channel(name)
    }

    /// Registers a channel and commits its genesis block. Two writes, each synced: a crash between
    /// them leaves a registered channel without blocks, which `removeUnjoinedChannels` (run when a
    /// node starts) takes away again, so the join can simply be repeated.
    @discardableResult
    public func createChannel(_ name: String, genesis: Medledger_Block) throws -> ChannelLedger {
        let ledger = try createChannel(name)
        FaultInjection.crashIfRequested(at: "join-registered")
        do { try ledger.commit(genesis) } catch {
            try? unregister(name)
            throw error
        }
        return ledger
    }

    /// Channels registered without a genesis block (a join interrupted by a crash) are unregistered;
    /// returns their names.
    @discardableResult
    public func removeUnjoinedChannels() throws -> [String] {
        var removed = [String]()
        for name in try channelNames() where try channel(name).height == 0 {
            try unregister(name)
            removed.append(name)
        }
        return removed
    }

    private func unregister(_ name: String) throws {
        _ = open.withLock { $0.removeValue(forKey: name) }
        var batch = WriteBatch()
        batch.delete(families.meta, LedgerKeys.channelRegistryKey(name))
        try kv.write(batch, sync: true)
    }

    /// The ledger of an existing channel (opened once, then shared).
    public func channel(_ name: String) throws -> ChannelLedger {
        guard ChannelName.isValid(name) else { throw LedgerStoreError.invalidChannelName(name) }
        if let l = open.withLock({ $0[name] }) { return l }
        guard try kv.get(families.meta, LedgerKeys.channelRegistryKey(name)) != nil else {
            throw LedgerStoreError.channelNotFound(name)
        }
        let ledger = try ChannelLedger(kv: kv, families: families, channel: name, limits: limits, readOnly: isReadOnly)
        return open.withLock { o in
            if let existing = o[name] { return existing }
            o[name] = ledger
            return ledger
        }
    }

    /// Drops a channel's state, history and savepoint and reopens it, which replays the whole chain. Works
    /// also when the channel cannot open because its state is ahead of its blocks.
    @discardableResult
    public func rebuildState(channel name: String) throws -> ChannelLedger {
        guard ChannelName.isValid(name) else { throw LedgerStoreError.invalidChannelName(name) }
        guard !isReadOnly else { throw StorageError.readOnly(path: path) }
        if let l = open.withLock({ $0[name] }) {
            try l.rebuildState()
            return l
        }
        guard try kv.get(families.meta, LedgerKeys.channelRegistryKey(name)) != nil else {
            throw LedgerStoreError.channelNotFound(name)
        }
        // Cleared before the ledger is constructed: constructing it runs the recovery that refuses.
        try ChannelLedger.clearState(kv: kv, families: families, keys: LedgerKeys(channel: name))
        return try channel(name)
    }

    /// The channel's ledger, created if it does not exist yet.
    public func channelCreatingIfNeeded(_ name: String) throws -> ChannelLedger {
        do { return try channel(name) } catch LedgerStoreError.channelNotFound { return try createChannel(name) }
    }
}
