import CP256Tables
import Crypto
import Foundation
import Synchronization

/// ECDSA P-256 / SHA-256 verification that gets faster for the keys it checks again and again.
///
/// A verification computes u1·G + u2·Q. OpenSSL and BoringSSL keep a table of multiples of the
/// generator G, so u1·G is cheap, but they compute the multiples of the signer's key Q afresh for
/// every signature: about 28 µs of a verification's 40 here. Most signatures a node checks come from
/// a few keys (the gateways of its clients, endorsers, orderers), so a key verified `tableAfter`
/// times gets a table of its own (OpenSSL's fixed-base table, about 150 KB and 15 ms to build, on
/// the verifying thread), and each later verification under it takes about 16 µs instead of 40:
/// u2·Q costs what u1·G does, and s⁻¹ mod n comes from GMP (1 µs against OpenSSL's 8–11).
///
/// The answer is the same on either path: the table path takes the steps of SEC 1 §4.1.4 as OpenSSL
/// and BoringSSL do (r and s in [1, n-1], R = u1·G + u2·Q not infinity, x(R) mod n = r), and the
/// tests compare the two on valid, altered and edge-case signatures, and against Python's
/// `cryptography`.
///
/// Bounded: at most `tablesMax` tables, and use counts for at most `countedMax` keys (when full,
/// every count is halved). A table gives way to another key's, least recently used first, only once
/// it has served `tableAfter` verifications, about what its build cost (or has gone unused for
/// `tablesMax` × `tableAfter` verifications): with more keys in steady use than tables, the others
/// wait on the standard path rather than evict tables that have not paid for themselves.
public final class P256Verifier: Sendable {
    /// The process's verifier: tables pay off across every caller that checks the same keys.
    public static let shared = P256Verifier()

    public let tableAfter: Int
    public let tablesMax: Int
    public let countedMax: Int
    private let state = Mutex(State())

    /// `tableAfter`: verifications under a key before it gets a table. A table costs about as much
    /// as 800 verifications save, so only keys in steady use should get one.
    public init(tableAfter: Int = 1_000, tablesMax: Int = 64, countedMax: Int = 10_000) {
        self.tableAfter = max(1, tableAfter)
        self.tablesMax = max(1, tablesMax)
        self.countedMax = max(1, countedMax)
    }

    /// Whether `signature` is `publicKey`'s signature of SHA-256(`message`). Where the same key is
    /// checked often, keep a `P256VerifyingKey` instead: naming the key costs a field inversion.
    public func isValidSignature(
        _ signature: P256.Signing.ECDSASignature, for message: some DataProtocol, publicKey: P256.Signing.PublicKey
    ) -> Bool {
        isValidSignature(signature, for: message, key: P256VerifyingKey(publicKey))
    }

    /// Whether `signature` is `key`'s signature of SHA-256(`message`).
    public func isValidSignature(
        _ signature: P256.Signing.ECDSASignature, for message: some DataProtocol, key verifying: P256VerifyingKey
    ) -> Bool {
        let key = verifying.x963
        let publicKey = verifying.publicKey
        let table: KeyTable
        switch state.withLock({ $0.use(key, self) }) {
        case .table(let t):
            table = t
        case .standard:
            return publicKey.isValidSignature(signature, for: message)
        case .build:
            let built = KeyTable(x963: key)
            state.withLock { $0.built(key, built, self) }
            guard let built else { return publicKey.isValidSignature(signature, for: message) }
            table = built
        }
        return table.verify(digest: SHA256.hash(data: message), signature: signature)
    }

    /// How many keys have a table now (for tests and the bench).
    public var tableCount: Int { state.withLock { $0.tables.count } }

    /// Whether `publicKey` has a table now.
    public func hasTable(_ publicKey: P256.Signing.PublicKey) -> Bool {
        state.withLock { $0.tables[publicKey.x963Representation] != nil }
    }

    private enum Path {
        case table(KeyTable)
        case standard
        case build
    }

    private struct State {
        struct Entry {
            var table: KeyTable
            var lastUse: UInt64
            /// Verifications since the table was built: it may give way to another key's only once
            /// it has served `tableAfter` of them, about what its build cost.
            var served: Int
        }

        var clock: UInt64 = 0
        var tables: [Data: Entry] = [:]
        var uses: [Data: Int] = [:]
        var building: Set<Data> = []

        mutating func use(_ key: Data, _ limits: P256Verifier) -> Path {
            clock &+= 1
            // One hash of the key per verification on the hot path: update the entry in place.
            if let i = tables.index(forKey: key) {
                tables.values[i].lastUse = clock
                tables.values[i].served += 1
                return .table(tables.values[i].table)
            }
            if building.contains(key) { return .standard }
            if uses[key] == nil { makeRoomToCount(limits) }
            let n = uses[key, default: 0] + 1
            guard n >= limits.tableAfter else {
                uses[key] = n
                return .standard
            }
            // Every table still paying for itself: this key waits, its count starts again.
            guard hasRoom(limits) else {
                uses[key] = 0
                return .standard
            }
            uses[key] = nil
            building.insert(key)
            return .build
        }

        mutating func built(_ key: Data, _ table: KeyTable?, _ limits: P256Verifier) {
            building.remove(key)
            guard let table else { return }
            if tables.count >= limits.tablesMax {
                guard let victim = leastRecentlyUsedRepaid(limits) else { return }
                tables[victim] = nil
            }
            tables[key] = Entry(table: table, lastUse: clock, served: 0)
        }

        /// Room for one more table: a free slot, or a table that has served its build back.
        private func hasRoom(_ limits: P256Verifier) -> Bool {
            tables.count + building.count < limits.tablesMax || leastRecentlyUsedRepaid(limits) != nil
        }

        /// The least recently used table that has served its build back, or has gone unused for as
        /// many verifications as all the tables could serve their builds back in (a key that went
        /// quiet must not hold its slot for ever).
        private func leastRecentlyUsedRepaid(_ limits: P256Verifier) -> Data? {
            let (product, overflow) = UInt64(limits.tablesMax).multipliedReportingOverflow(
                by: UInt64(limits.tableAfter))
            let idle = overflow ? UInt64.max : product
            return tables.filter { $0.value.served >= limits.tableAfter || clock &- $0.value.lastUse >= idle }
                .min { $0.value.lastUse < $1.value.lastUse }?.key
        }

        /// Halves every count (dropping those that reach zero) until a new key fits: keys in steady
        /// use keep most of their progress while a stream of one-off keys is forgotten.
        private mutating func makeRoomToCount(_ limits: P256Verifier) {
            while uses.count >= limits.countedMax {
                uses = uses.compactMapValues { $0 / 2 > 0 ? $0 / 2 : nil }
            }
        }
    }
}

/// A P-256 public key with the bytes that name it in `P256Verifier`'s tables, computed once:
/// swift-crypto keeps the point in projective form, so each export costs a field inversion.
public struct P256VerifyingKey: Sendable {
    public let publicKey: P256.Signing.PublicKey
    /// The uncompressed X9.63 point (65 bytes).
    public let x963: Data

    public init(_ publicKey: P256.Signing.PublicKey) {
        self.publicKey = publicKey
        x963 = publicKey.x963Representation
    }
}

/// One key's table, freed with the last reference (a verification in progress keeps it alive
/// past its eviction). OpenSSL only reads it while verifying, so threads may share it.
private final class KeyTable: @unchecked Sendable {
    private let table: OpaquePointer

    /// nil when the bytes are not a point of the curve, or OpenSSL is out of memory.
    init?(x963: Data) {
        guard x963.count == 65,
            let t = x963.withUnsafeBytes({ medledger_p256_table_new($0.bindMemory(to: UInt8.self).baseAddress) })
        else { return nil }
        table = t
    }

    deinit { medledger_p256_table_free(table) }

    func verify(digest: SHA256.Digest, signature: P256.Signing.ECDSASignature) -> Bool {
        let raw = signature.rawRepresentation
        guard raw.count == 64 else { return false }
        return digest.withUnsafeBytes { d in
            raw.withUnsafeBytes { rs in
                let p = rs.bindMemory(to: UInt8.self).baseAddress!
                return medledger_p256_table_verify(table, d.bindMemory(to: UInt8.self).baseAddress, p, p + 32) == 1
            }
        }
    }
}
