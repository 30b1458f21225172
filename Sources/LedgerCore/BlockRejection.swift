import LedgerCrypto

/// Why the ledger refused a block. Each case names what is wrong so an operator can act on it; a
/// refused block changes nothing.
public enum BlockRejection: Error, Equatable, CustomStringConvertible, Sendable {
    case malformed(reason: String)
    case missingHeader
    case badHashLength(field: String, length: Int)
    case unexpectedNumber(expected: UInt64, got: UInt64)
    case previousHashMismatch(number: UInt64, expected: String, got: String)
    case dataHashMismatch(number: UInt64, header: String, computed: String)
    case blockTooLarge(number: UInt64, size: Int, limit: Int)
    case envelopeTooLarge(number: UInt64, txNum: Int, size: Int, limit: Int)
    case tooManyTransactions(number: UInt64, count: Int, limit: Int)
    case validationCodeCount(number: UInt64, envelopes: Int, codes: Int)
    case malformedTransaction(number: UInt64, txNum: Int, reason: String)
    case wrongChannel(number: UInt64, txNum: Int, expected: String, got: String)
    case duplicateTxID(number: UInt64, txNum: Int, txID: String, existing: String)
    case commitHashMismatch(number: UInt64, block: String, computed: String)
    case undefinedValidationCode(number: UInt64, txNum: Int, code: Int)

    public var description: String {
        switch self {
        case .malformed(let r): return "block does not parse (corrupt or truncated): \(r)"
        case .missingHeader: return "block has no header"
        case .badHashLength(let f, let n): return "block header \(f) is \(n) bytes, expected 32"
        case .unexpectedNumber(let e, let g): return "block number \(g) does not follow the chain: expected block \(e)"
        case .previousHashMismatch(let n, let e, let g):
            return "block \(n): previous hash \(g) does not match the hash of block \(n == 0 ? 0 : n - 1) (\(e))"
        case .dataHashMismatch(let n, let h, let c):
            return "block \(n): data hash in header \(h) does not match the Merkle root of its transactions \(c)"
        case .blockTooLarge(let n, let s, let l): return "block \(n) is \(s) bytes, over the limit of \(l)"
        case .envelopeTooLarge(let n, let t, let s, let l):
            return "block \(n) tx \(t): envelope is \(s) bytes, over the limit of \(l)"
        case .tooManyTransactions(let n, let c, let l):
            return "block \(n) has \(c) transactions, over the limit of \(l)"
        case .validationCodeCount(let n, let e, let c):
            return "block \(n) has \(e) transactions but \(c) validation codes"
        case .malformedTransaction(let n, let t, let r): return "block \(n) tx \(t) is marked valid but \(r)"
        case .wrongChannel(let n, let t, let e, let g): return "block \(n) tx \(t) is for channel '\(g)', not '\(e)'"
        case .duplicateTxID(let n, let t, let id, let ex):
            return "block \(n) tx \(t) is marked valid but its tx id \(id) is already in the ledger at \(ex)"
        case .undefinedValidationCode(let n, let t, let c):
            return "block \(n) tx \(t) has validation code \(c), which is not a defined code"
        case .commitHashMismatch(let n, let b, let c):
            return "block \(n): commit hash in metadata \(b) differs from the state changes computed here \(c)"
        }
    }
}
