import Dispatch
import LedgerCrypto
import LedgerProtos

/// A block that passed the structural checks, with each transaction parsed once.
public struct CheckedBlock: Sendable {
    public var block: Medledger_Block
    public var headerHash: [UInt8]
    /// One entry per envelope; nil where the envelope is marked invalid and could not be parsed.
    public var transactions: [ParsedTransaction?]

    public var number: UInt64 { block.header.number }

    /// Valid transactions with their position in the block, in block order.
    public var validTransactions: [(txNum: Int, transaction: ParsedTransaction)] {
        var out = [(txNum: Int, transaction: ParsedTransaction)]()
        for (i, code) in block.metadata.validationCodes.enumerated() where code.isValid {
            if let tx = transactions[i] { out.append((i, tx)) }
        }
        return out
    }
}

/// The checks every block passes before it is stored, independent of storage: chain position, data
/// hash, limits, one validation code per transaction, and that every transaction marked valid parses
/// and belongs to this channel. Pure: the caller supplies the chain tip.
public enum BlockCheck {
    /// Blocks with at least this many envelopes are parsed on all cores.
    static let parallelParseThreshold = 64

    /// `parsed`: envelopes the caller has parsed already, by position (nil: parse it here), as the
    /// peer's validator has each transaction it found valid; each must be what
    /// `ParsedTransaction(envelope:)` makes of that envelope. Every check below still applies to them.
    public static func check(
        _ block: Medledger_Block,
        channel: String,
        expectedNumber: UInt64,
        previousHash: [UInt8],
        limits: LedgerLimits,
        parsed known: [ParsedTransaction?]? = nil
    ) throws(BlockRejection) -> CheckedBlock {
        guard block.hasHeader else { throw .missingHeader }
        let header = block.header
        let n = header.number
        guard header.previousHash.count == LedgerHash.byteCount else {
            throw .badHashLength(field: "previous_hash", length: header.previousHash.count)
        }
        guard header.dataHash.count == LedgerHash.byteCount else {
            throw .badHashLength(field: "data_hash", length: header.dataHash.count)
        }
        guard n == expectedNumber else { throw .unexpectedNumber(expected: expectedNumber, got: n) }
        guard [UInt8](header.previousHash) == previousHash else {
            throw .previousHashMismatch(
                number: n, expected: Hex.encode(previousHash), got: Hex.encode(header.previousHash))
        }
        let envelopes = block.envelopeBytes
        guard envelopes.count <= limits.transactionsPerBlockMax else {
            throw .tooManyTransactions(number: n, count: envelopes.count, limit: limits.transactionsPerBlockMax)
        }
        for (i, e) in envelopes.enumerated() where e.count > limits.envelopeBytesMax {
            throw .envelopeTooLarge(number: n, txNum: i, size: e.count, limit: limits.envelopeBytesMax)
        }
        let root = MerkleTree(leaves: envelopes).root
        guard root == [UInt8](header.dataHash) else {
            throw .dataHashMismatch(number: n, header: Hex.encode(header.dataHash), computed: Hex.encode(root))
        }
        let codes = block.metadata.validationCodes
        guard codes.count == envelopes.count else {
            throw .validationCodeCount(number: n, envelopes: envelopes.count, codes: codes.count)
        }

        for (i, code) in codes.enumerated() {
            if case .UNRECOGNIZED(let raw) = code { throw .undefinedValidationCode(number: n, txNum: i, code: raw) }
        }
        let parsed = parseAll(envelopes, known: known?.count == envelopes.count ? known : nil)
        var transactions = [ParsedTransaction?](repeating: nil, count: envelopes.count)
        // A transaction marked valid must be the first of its id in the block, valid or not: otherwise the
        // tx index and inclusion proofs would point at a different envelope than the one applied.
        var seen = Set<String>()
        for i in 0..<envelopes.count {
            switch parsed[i] {
            case .success(let tx):
                if codes[i].isValid {
                    guard tx.channelID == channel else {
                        throw .wrongChannel(number: n, txNum: i, expected: channel, got: tx.channelID)
                    }
                    guard !seen.contains(tx.txID) else {
                        throw .duplicateTxID(
                            number: n, txNum: i, txID: tx.txID, existing: "an earlier transaction of the same block")
                    }
                }
                seen.insert(tx.txID)
                transactions[i] = tx
            case .failure(let failure):
                if codes[i].isValid { throw .malformedTransaction(number: n, txNum: i, reason: failure.description) }
            }
        }
        return CheckedBlock(block: block, headerHash: header.headerHash, transactions: transactions)
    }

    @Sendable
    private static func parse(_ e: [UInt8]) -> Result<ParsedTransaction, ParsedTransaction.Failure> {
        do throws(ParsedTransaction.Failure) { return .success(try ParsedTransaction(envelope: e)) } catch {
            return .failure(error)
        }
    }

    private static func parseAll(
        _ envelopes: [[UInt8]], known: [ParsedTransaction?]?
    ) -> [Result<ParsedTransaction, ParsedTransaction.Failure>] {
        @Sendable func result(_ i: Int) -> Result<ParsedTransaction, ParsedTransaction.Failure> {
            if let tx = known?[i] { return .success(tx) }
            return parse(envelopes[i])
        }
        let unknown = known.map { $0.count { $0 == nil } } ?? envelopes.count
        guard unknown >= parallelParseThreshold else { return envelopes.indices.map(result) }
        let results = ResultSlots<Result<ParsedTransaction, ParsedTransaction.Failure>>(count: envelopes.count)
        DispatchQueue.concurrentPerform(iterations: envelopes.count) { i in results.set(i, result(i)) }
        return results.values
    }
}

/// Fixed slots written once each from `concurrentPerform`. The buffer is allocated once and written
/// through its pointer — never through a Swift array, whose uniqueness check is not safe from several
/// threads at once. Every index is written by exactly one iteration, so writes never overlap, and
/// `values` is read only after `concurrentPerform` has returned.
final class ResultSlots<T>: @unchecked Sendable {
    private let storage: UnsafeMutableBufferPointer<T?>

    init(count: Int) {
        storage = .allocate(capacity: count)
        storage.initialize(repeating: nil)
    }

    deinit {
        storage.deinitialize()
        storage.deallocate()
    }

    func set(_ i: Int, _ v: T) { storage[i] = v }
    var values: [T] { storage.map { $0! } }
}
