import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProtos

/// A readable JSON view of a block: hashes in hex, each transaction decoded down to its read-write set.
/// Values are shown base64 (they are index records and may be binary), never interpreted.
enum BlockJSON {
    struct View: Encodable {
        var number: UInt64
        var headerHash: String
        var previousHash: String
        var dataHash: String
        var commitHash: String
        var ordererSigner: String?
        var transactions: [Tx]
    }

    struct Tx: Encodable {
        var index: Int
        var validationCode: String
        var txID: String?
        var type: String?
        var channel: String?
        var timestamp: String?
        var creatorMSP: String?
        var envelopeBytes: Int
        var error: String?
        var rwset: [Namespace]?
    }

    struct Namespace: Encodable {
        var namespace: String
        var reads: [Read]
        var writes: [Write]
    }

    struct Read: Encodable {
        var key: String
        var version: String?
    }

    struct Write: Encodable {
        var key: String
        var isDelete: Bool
        var valueBase64: String?
    }

    static func render(_ block: Medledger_Block) throws -> String {
        let codes = block.metadata.validationCodes
        var txs = [Tx]()
        for (i, env) in block.envelopeBytes.enumerated() {
            let code = i < codes.count ? "\(codes[i])" : "missing"
            var tx = Tx(index: i, validationCode: code, envelopeBytes: env.count)
            do {
                let p = try ParsedTransaction(envelope: env)
                tx.txID = p.txID
                tx.type = "\(p.type)"
                tx.channel = p.channelID
                tx.timestamp = ISO8601DateFormatter().string(from: p.timestamp.date)
                tx.creatorMSP = (try? Medledger_SerializedIdentity(serializedBytes: p.creator))?.mspID
                tx.rwset = p.rwset?.nsRwset.map { ns in
                    Namespace(
                        namespace: ns.namespace,
                        reads: ns.rwset.reads.map {
                            Read(
                                key: $0.key, version: $0.hasVersion ? "\($0.version.blockNum):\($0.version.txNum)" : nil
                            )
                        },
                        writes: ns.rwset.writes.map {
                            Write(
                                key: $0.key, isDelete: $0.isDelete,
                                valueBase64: $0.isDelete ? nil : $0.value.base64EncodedString())
                        })
                }
            } catch {
                tx.error = "\(error)"
            }
            txs.append(tx)
        }
        let signer =
            block.metadata.hasOrdererSignature
            ? (try? Medledger_SerializedIdentity(serializedBytes: block.metadata.ordererSignature.signer))?.mspID : nil
        let view = View(
            number: block.header.number, headerHash: Hex.encode(block.header.headerHash),
            previousHash: Hex.encode(block.header.previousHash), dataHash: Hex.encode(block.header.dataHash),
            commitHash: Hex.encode(block.metadata.commitHash), ordererSigner: signer, transactions: txs)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(view), as: UTF8.self)
    }
}
