import Foundation
import LedgerProtos

extension Medledger_BlockHeader {
    /// SHA-256 over number (8 bytes big-endian) || previous hash || data hash.
    ///
    /// A fixed encoding instead of the protobuf bytes: protobuf serialization is not canonical across
    /// implementations, and a header hash must be the same wherever it is computed.
    public var headerHash: [UInt8] {
        LedgerHash.sha256(parts: BigEndian.bytes(number), [UInt8](previousHash), [UInt8](dataHash))
    }
}

extension Medledger_Block {
    /// Assembles a block over `envelopes` (serialized `Envelope`s), chained to `previousHash`.
    /// Every transaction starts as `NOT_VALIDATED` unless codes are given; the committer's validator
    /// sets the real codes.
    public static func make(
        number: UInt64,
        previousHash: [UInt8],
        envelopes: [[UInt8]],
        validationCodes: [Medledger_TxValidationCode]? = nil
    ) -> Medledger_Block {
        var block = Medledger_Block()
        block.header.number = number
        block.header.previousHash = Data(previousHash)
        block.header.dataHash = Data(MerkleTree(leaves: envelopes).root)
        block.data.envelopes = envelopes.map { Data($0) }
        block.metadata.validationCodes = validationCodes ?? Array(repeating: .notValidated, count: envelopes.count)
        return block
    }

    public var envelopeBytes: [[UInt8]] { data.envelopes.map { [UInt8]($0) } }
}

extension Medledger_TxValidationCode {
    public var isValid: Bool { self == .valid }
}
