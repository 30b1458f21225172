import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerPRE
import LedgerPeer
import LedgerProtos
import LedgerRecords
import LedgerStorage
import MedRecords

/// Checks that the committed seeds still take the harnesses past the checks a random input never
/// passes (signatures, chain links, proofs), so that fuzzing starts deep. Seeds go stale when the
/// fixture is regenerated without `make-seeds`, or when a format changes.
public enum SeedCheck {
    public static func problems(corpus: String) throws -> [String] {
        let fx = Fixture.shared
        var problems = [String]()
        func files(_ target: String) throws -> [(String, [UInt8])] {
            let dir = corpus + "/" + target
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter {
                !$0.hasPrefix(".") && !$0.hasPrefix("crash-")
            }.sorted()
                .map { ($0, Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0)))) }
        }
        func validates(_ envelope: [UInt8]) throws -> Medledger_TxValidationCode {
            let info = fx.ledger.info
            let block = Medledger_Block.make(number: info.height, previousHash: info.tipHash, envelopes: [envelope])
            return try fx.validator.validate(block, context: fx.context, ledger: fx.ledger, blockTime: block.judgedTime)
                .codes[0]
        }

        for (name, bytes) in try files("envelope") {
            let code = try validates(bytes)
            if code != .valid { problems.append("envelope/\(name): \(code), not VALID") }
        }
        for (name, bytes) in try files("payload") {
            var env = Medledger_Envelope()
            env.payload = Data(bytes)
            env.signature = fx.sign(bytes, as: try Medledger_Payload(serializedBytes: bytes).signatureHeader.creator)
            let code = try validates(try env.serializedBytes())
            if code != .valid { problems.append("payload/\(name): \(code), not VALID") }
        }
        for (name, bytes) in try files("proposal") {
            var signed = Medledger_SignedProposal()
            signed.proposalBytes = Data(bytes)
            signed.signature = fx.sign(
                bytes, as: try Medledger_Proposal(serializedBytes: bytes).signatureHeader.creator)
            let ledger = fx.ledger
            do {
                let r = try fx.endorser.process(
                    try ParsedProposal(signed), context: fx.context, state: ledger.state, now: Fixture.callTime
                ) { try ledger.transaction(id: $0) != nil }
                if r.response.status != 200 {
                    problems.append("proposal/\(name): [\(r.response.status)] \(r.response.message)")
                }
            } catch { problems.append("proposal/\(name): refused: \(error)") }
        }
        for (name, bytes) in try files("proposal-batch") {
            // The harness signs as the first proposal's creator: that creator's proposals pass.
            var batch = try Medledger_SignedProposalBatch(serializedBytes: bytes)
            let creators = try batch.proposals.map {
                try Medledger_Proposal(serializedBytes: $0.proposalBytes).signatureHeader.creator
            }
            batch.batchSignature = fx.sign(ProposalBatchSigning.message(batch.proposals), as: creators[0])
            let shared = ProposalBatchSignature(batch)
            let ledger = fx.ledger
            for (p, creator) in zip(batch.proposals, creators) where creator == creators[0] {
                do {
                    let r = try fx.endorser.process(
                        try ParsedProposal(p, batchSignature: shared), context: fx.context, state: ledger.state,
                        now: Fixture.callTime
                    ) { try ledger.transaction(id: $0) != nil }
                    if r.response.status != 200 {
                        problems.append("proposal-batch/\(name): [\(r.response.status)] \(r.response.message)")
                    }
                } catch { problems.append("proposal-batch/\(name): refused: \(error)") }
            }
        }
        for (name, bytes) in try files("proposal-response") where name.contains("endorsed") {
            let env = try TransactionBuilder.envelope(
                Seeds.responseProposal, responses: [try Medledger_ProposalResponse(serializedBytes: bytes)],
                signer: fx.member("a-patient").identity)
            let code = try validates(try env.serializedBytes())
            if code != .valid { problems.append("proposal-response/\(name): \(code), not VALID") }
        }
        for (name, bytes) in try files("block") where name != "genesis.pb" {
            let store = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies))
            let peer = try PeerChannel.join(genesis: fx.genesis, store: store)
            do {
                let receipt = try peer.receive(try Medledger_Block(serializedBytes: bytes))
                if receipt?.validTransactions != (try Medledger_Block(serializedBytes: bytes)).data.envelopes.count {
                    problems.append("block/\(name): not every transaction valid")
                }
            } catch { problems.append("block/\(name): refused: \(error)") }
        }
        for (name, bytes) in try files("config-update") {
            do {
                _ = try ConfigTransaction.checkUpdate(
                    envelope: bytes, current: fx.context, blockNumber: 1, at: Fixture.now)
            } catch {
                problems.append("config-update/\(name): \(error)")
            }
        }
        for (name, bytes) in try files("medrecords") {
            let (function, caller, argument, transient) = MedRecordsInput.split(bytes)
            guard let m = fx.members[caller] else {
                problems.append("medrecords/\(name): unknown caller \(caller)")
                continue
            }
            let invocation = Invocation(
                channel: Fixture.channel, txID: "fuzz-tx", timestamp: Fixture.callTime,
                creator: CreatorIdentity(pid: m.pid, org: m.org, role: m.role, certificatePEM: m.certificatePEM),
                function: function, args: [argument], transient: transient, members: fx.context.members)
            let r = Simulator.simulate(MedRecordsChaincode(), invocation: invocation, state: fx.ledger.state)
            if r.response.status != 200 {
                problems.append("medrecords/\(name): [\(r.response.status)] \(r.response.message)")
            }
        }
        for (name, bytes) in try files("kfrag") {
            do {
                _ = try KeyFrag(bytes: bytes).verify(
                    verifyingPK: fx.patientSigner.verifyingKey, delegatingPK: fx.patientSK.publicKey,
                    receivingPK: fx.researchSK.publicKey)
            } catch {
                problems.append("kfrag/\(name): \(error)")
            }
        }
        for (name, bytes) in try files("cfrag") {
            do {
                _ = try CapsuleFrag(bytes: bytes).verify(
                    capsule: fx.capsule, verifyingPK: fx.patientSigner.verifyingKey,
                    delegatingPK: fx.patientSK.publicKey, receivingPK: fx.researchSK.publicKey)
            } catch {
                problems.append("cfrag/\(name): \(error)")
            }
        }
        for (name, bytes) in try files("sealed-record") {
            var at = 0
            do {
                _ = try SealedRecord.open(
                    .patientSecretKey(fx.patientSK),
                    read: { n in
                        let end = min(bytes.count, at + n)
                        defer { at = end }
                        return Array(bytes[at..<end])
                    }, write: { _ in })
            } catch { problems.append("sealed-record/\(name): \(error)") }
        }
        for (name, bytes) in try files("crl") {
            do { _ = try TrustStore(roots: [fx.root]).install(try RevocationList.parse(bytes)) } catch {
                problems.append("crl/\(name): \(error)")
            }
        }
        for (name, bytes) in try files("csr") {
            do { _ = try CertificateFactory.checkedCSR(pem: Harness.pem(bytes, type: "CERTIFICATE REQUEST")) } catch {
                problems.append("csr/\(name): \(error)")
            }
        }
        return problems
    }
}
