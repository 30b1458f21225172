import Crypto
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProtos
import LedgerStorage

/// Builds signed endorser-transaction envelopes with a given read-write set. Used to make sample
/// chains for the demo, the crash test and the benchmarks; the real client SDK builds the same shape.
public struct SampleTransactionFactory: Sendable {
    public let channel: String
    public let creator: Bytes
    private let key: P256.Signing.PrivateKey

    public init(channel: String, mspID: String = "SampleOrg") {
        self.channel = channel
        key = P256.Signing.PrivateKey()
        var identity = Medledger_SerializedIdentity()
        identity.mspID = mspID
        identity.idBytes = Data(key.publicKey.pemRepresentation.utf8)
        creator = (try? identity.serializedBytes()) ?? []
    }

    public struct Write: Sendable {
        public var key: String
        public var value: Bytes?  // nil deletes

        public init(key: String, value: Bytes?) {
            self.key = key
            self.value = value
        }
    }

    /// A serialized, signed `Envelope` carrying one namespace's writes.
    public func envelope(txID: String, namespace: String, writes: [Write], timestamp: Date = Date()) throws -> Bytes {
        let payload = try Medledger_Payload.endorserTransaction(
            channel: channel, txID: txID, chaincode: namespace,
            results: .writes(namespace: namespace, writes.map { ($0.key, $0.value) }), creator: creator,
            timestamp: timestamp)
        let payloadBytes: Data = try payload.serializedBytes()

        var envelope = Medledger_Envelope()
        envelope.payload = payloadBytes
        envelope.signature = Data(ECDSADER.encode(try key.signature(for: payloadBytes)))
        return try envelope.serializedBytes()
    }
}

/// Generates a chain of sample blocks: each block's content depends only on the seed and its number.
/// Keys come from a small key space so later blocks overwrite and delete earlier keys, and about one
/// transaction in ten is marked invalid (its writes must not reach the state).
public struct SampleChain: Sendable {
    public let namespace = "sample"
    public var seed: UInt64
    public var transactionsPerBlock: ClosedRange<Int>
    public var keySpace: Int
    let factory: SampleTransactionFactory

    public init(channel: String, seed: UInt64, transactionsPerBlock: ClosedRange<Int> = 1...20, keySpace: Int = 200) {
        self.seed = seed
        self.transactionsPerBlock = transactionsPerBlock
        self.keySpace = keySpace
        factory = SampleTransactionFactory(channel: channel)
    }

    public func block(number: UInt64, previousHash: Bytes) throws -> Medledger_Block {
        var rng = SplitMix64(seed: seed ^ (number &* 0x2545_F491_4F6C_DD1D))
        let count = Int.random(in: transactionsPerBlock, using: &rng)
        var envelopes = [Bytes]()
        var codes = [Medledger_TxValidationCode]()
        for i in 0..<count {
            let writeCount = Int.random(in: 1...3, using: &rng)
            var writes = [SampleTransactionFactory.Write]()
            for w in 0..<writeCount {
                let key = String(format: "key-%04d", Int.random(in: 0..<keySpace, using: &rng))
                let delete = Int.random(in: 0..<10, using: &rng) == 0
                writes.append(
                    .init(key: key, value: delete ? nil : Array("value \(number).\(i).\(w) \(rng.next())".utf8)))
            }
            let txID = Hex.encode(LedgerHash.sha256(Array("sample/\(seed)/\(number)/\(i)".utf8)))
            envelopes.append(try factory.envelope(txID: txID, namespace: namespace, writes: writes))
            codes.append(Int.random(in: 0..<10, using: &rng) == 0 ? .mvccReadConflict : .valid)
        }
        return .make(number: number, previousHash: previousHash, envelopes: envelopes, validationCodes: codes)
    }

    /// Appends `count` blocks (0: until the process is stopped) to `ledger`, calling `durable` after each
    /// block's commit has returned, i.e. once it is on stable storage.
    public func extend(_ ledger: ChannelLedger, count: Int, durable: (CommitReceipt) -> Void = { _ in }) throws {
        var written = 0
        while count == 0 || written < count {
            let info = ledger.info
            let receipt = try ledger.commit(block(number: info.height, previousHash: info.tipHash))
            durable(receipt)
            written += 1
        }
    }
}
