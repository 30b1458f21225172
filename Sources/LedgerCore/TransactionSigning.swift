import Crypto
import Foundation
import LedgerCrypto
import LedgerProtos
import SwiftProtobuf

/// What exactly is signed where, and how transaction ids are derived. One place, so that client,
/// endorser, orderer and committer cannot drift apart.
public enum SignedMessages {
    /// Block signatures (orderer): domain tag || header hash || signing time in milliseconds since 1970
    /// (u64 big-endian). Blocks signed without a time (v1) cover the header hash alone.
    public static func block(headerHash: [UInt8], signedAt: Google_Protobuf_Timestamp?) -> [UInt8] {
        guard let signedAt else { return Array("medledger/block-signature/v1".utf8) + headerHash }
        let ms = UInt64(max(0, signedAt.seconds)) * 1000 + UInt64(max(0, signedAt.nanos)) / 1_000_000
        return Array("medledger/block-signature/v2".utf8) + headerHash + withUnsafeBytes(of: ms.bigEndian) { Array($0) }
    }

    /// Configuration signatures (organisation administrators): domain tag || serialized ChannelConfig.
    public static func config(_ configBytes: [UInt8]) -> [UInt8] { Array("medledger/config/v1".utf8) + configBytes }

    /// Endorsements: the proposal response payload bytes || the endorser's serialized identity.
    public static func endorsement(proposalResponsePayload: [UInt8], endorser: [UInt8]) -> [UInt8] {
        proposalResponsePayload + endorser
    }
}

public enum TransactionID {
    /// hex(SHA-256(nonce || creator)), as in Fabric: a creator cannot choose another creator's ids,
    /// and a replayed envelope carries an id the ledger already has.
    public static func compute(nonce: [UInt8], creator: [UInt8]) -> String {
        Hex.encode(LedgerHash.sha256(parts: nonce, creator))
    }

    /// The same over a header's fields as they are, without copying the creator (a certificate).
    public static func compute(nonce: Data, creator: Data) -> String {
        var hasher = SHA256()
        hasher.update(data: nonce)
        hasher.update(data: creator)
        return Hex.encode(hasher.finalize())
    }

    /// 24 random bytes.
    public static func newNonce() -> [UInt8] { RandomBytes.make(count: 24) }
}

extension Medledger_ChaincodeProposalPayload {
    /// The payload as it goes into the transaction: transient inputs removed. Deterministic because
    /// the only map field (transient) is emptied.
    public func strippedBytes() throws -> [UInt8] {
        var copy = self
        copy.transient = [:]
        return try copy.serializedBytes()
    }
}

public enum ProposalHash {
    /// SHA-256 over the proposal's channel header, signature header and transient-free payload: binds
    /// an endorsement to one transaction id and creator, so it cannot be reused under another.
    public static func compute(
        channelHeader: Medledger_ChannelHeader, signatureHeader: Medledger_SignatureHeader, strippedPayload: [UInt8]
    ) throws -> [UInt8] {
        let ch: [UInt8] = try channelHeader.serializedBytes()
        let sh: [UInt8] = try signatureHeader.serializedBytes()
        return LedgerHash.sha256(
            parts: BigEndian.bytes(UInt64(ch.count)), ch, BigEndian.bytes(UInt64(sh.count)), sh, strippedPayload)
    }
}
