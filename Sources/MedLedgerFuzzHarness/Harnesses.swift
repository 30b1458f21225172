import Crypto
import Dispatch
import Foundation
import LedgerAudit
import LedgerChaincode
import LedgerChannel
import LedgerConfig
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerPRE
import LedgerPeer
import LedgerProtos
import LedgerRecords
import LedgerStorage
import MedRecords
import SwiftASN1
import Synchronization
import X509

/// One fuzz target: a name (the corpus directory `Tests/Fuzz/<name>`), what it drives, and the
/// harness. A harness feeds the bytes to the production entry point that reads such bytes from the
/// network or from disk, and follows through to what the node does next with the result. Errors are
/// the expected answer to bad input; only a crash, a trap or a sanitizer report is a finding.
public struct FuzzTarget: Sendable {
    public let name: String
    public let drives: String
    public let run: @Sendable ([UInt8]) -> Void
}

public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        FuzzTarget(
            name: "envelope",
            drives:
                "ParsedTransaction(envelope:) (LedgerCore) and BlockValidator.validate (LedgerPeer) on a block of it",
            run: Harness.envelope),
        FuzzTarget(
            name: "payload",
            drives:
                "the envelope path with the payload signed by its creator and endorsements re-signed by their endorsers (a member submitting anything)",
            run: Harness.payload),
        FuzzTarget(
            name: "proposal",
            drives:
                "ParsedProposal and Endorser.process (LedgerPeer) with kv and medrecords, the proposal signed by its creator",
            run: Harness.proposal),
        FuzzTarget(
            name: "proposal-batch",
            drives:
                "ProposalBatchSignature and Endorser.process on each proposal of a SignedProposalBatch, the batch signed by its first proposal's creator; a proposal admitted under a signature its creator did not make is a finding",
            run: Harness.proposalBatch),
        FuzzTarget(
            name: "proposal-response",
            drives:
                "a ProposalResponse re-signed by its endorser, TransactionBuilder.envelope (client), BlockValidator.validate",
            run: Harness.proposalResponse),
        FuzzTarget(
            name: "block",
            drives:
                "ConfigTransaction.verifyGenesis, PeerChannel.receive (orderer signature, validation, ChannelLedger.commit with BlockCheck), BlockCheck.check",
            run: Harness.block),
        FuzzTarget(
            name: "config-update",
            drives:
                "ConfigTransaction.checkUpdate (raw, and re-signed by the administrators) and ChannelContext(config:)",
            run: Harness.configUpdate),
        FuzzTarget(
            name: "crl", drives: "RevocationList.parse, verify(issuedBy:), TrustStore.install (LedgerIdentity)",
            run: Harness.crl),
        FuzzTarget(
            name: "csr", drives: "CertificateFactory.checkedCSR, pseudoIdentity and issue (the CA's enrollment path)",
            run: Harness.csr),
        FuzzTarget(
            name: "certificate",
            drives:
                "ChannelMembers.verify(certificatePEM:) and TrustStore.validate (the TLS handshake check) on a DER or PEM certificate",
            run: Harness.certificate),
        FuzzTarget(
            name: "capsule", drives: "Capsule(bytes:) (LedgerPRE), Umbral.decryptOriginal and Umbral.reencrypt",
            run: Harness.capsule),
        FuzzTarget(
            name: "kfrag",
            drives:
                "KeyFrag(bytes:) and verify as a proxy does (ProxyService), then Umbral.reencrypt and decryptReencrypted",
            run: Harness.kfrag),
        FuzzTarget(
            name: "cfrag",
            drives: "CapsuleFrag(bytes:) and verify as the receiver does (CareClient), then Umbral.decryptReencrypted",
            run: Harness.cfrag),
        FuzzTarget(
            name: "sealed-record",
            drives: "SealedRecord.readHeader / SealedRecordHeader(bytes:) and SealedRecord.open (LedgerRecords)",
            run: Harness.sealedRecord),
        FuzzTarget(
            name: "medrecords",
            drives:
                "MedRecordsChaincode.invoke through Simulator.simulate against the fixture's state (input: function, caller, JSON argument)",
            run: Harness.medrecords),
        FuzzTarget(
            name: "channel-yaml",
            drives: "ChannelConfigFile.load(path:) (LedgerConfig), which ends in ChannelContext(config:)",
            run: Harness.channelYAML),
        FuzzTarget(name: "node-yaml", drives: "NodeConfig.load(path:) (LedgerConfig)", run: Harness.nodeYAML),
        FuzzTarget(
            name: "audit-log", drives: "AuditVerifier.verify(path:) and AuditLog(path:) then record (LedgerAudit)",
            run: Harness.auditLog),
        FuzzTarget(
            name: "ecdsa-der",
            drives:
                "ECDSADER.rawP256 and encode (LedgerCrypto), against swift-crypto's ECDSASignature(derRepresentation:)",
            run: Harness.ecdsaDER),
        FuzzTarget(
            name: "p256-verify",
            drives:
                "P256Verifier with the key's table (LedgerCrypto, CP256Tables), against swift-crypto's verification",
            run: Harness.p256Verify),
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// Builds the fixture (and the ledger it populates) before the first input, so that its cost and
    /// its coverage are not attributed to an input.
    public static func prepare() {
        _ = Fixture.shared
        _ = Seeds.responseProposal
        _ = Harness.directory
    }

    /// Removes the harnesses' scratch directory.
    public static func cleanUp() { Harness.cleanUp() }
}

enum Harness {
    static var fx: Fixture { Fixture.shared }

    // MARK: - Transactions

    /// The committer's view of one envelope: parse it as the ledger does, then validate it in a block
    /// of its own against the fixture ledger (nothing is committed).
    static func envelope(_ bytes: [UInt8]) {
        _ = try? ParsedTransaction(envelope: bytes)
        validate(bytes)
    }

    static func validate(_ envelope: [UInt8]) {
        let info = fx.ledger.info
        let block = Medledger_Block.make(number: info.height, previousHash: info.tipHash, envelopes: [envelope])
        _ = try? fx.validator.validate(block, context: fx.context, ledger: fx.ledger, blockTime: block.judgedTime)
    }

    /// A member signs whatever payload the fuzzer made (and the endorsers named in it sign whatever
    /// response payload it carries), so validation gets past the signatures to the contents.
    static func payload(_ bytes: [UInt8]) {
        var payloadBytes = bytes
        var creator = Data()
        if var payload = try? Medledger_Payload(serializedBytes: bytes) {
            creator = payload.signatureHeader.creator
            if payload.channelHeader.type == .endorserTransaction,
                var tx = try? Medledger_EndorsedTransaction(serializedBytes: payload.data)
            {
                resign(&tx.endorsements, over: [UInt8](tx.proposalResponsePayload))
                if let data: Data = try? tx.serializedBytes() {
                    payload.data = data
                    if let b: [UInt8] = try? payload.serializedBytes() { payloadBytes = b }
                }
            }
        }
        var env = Medledger_Envelope()
        env.payload = Data(payloadBytes)
        env.signature = fx.sign(payloadBytes, as: creator)
        guard let e: [UInt8] = try? env.serializedBytes() else { return }
        envelope(e)
    }

    static func resign(_ endorsements: inout [Medledger_Endorsement], over prp: [UInt8]) {
        for i in endorsements.indices where fx.member(serialized: endorsements[i].endorser) != nil {
            let e = endorsements[i].endorser
            endorsements[i].signature = fx.sign(
                SignedMessages.endorsement(proposalResponsePayload: prp, endorser: [UInt8](e)), as: e)
        }
    }

    /// The endorser: the fuzzer's proposal, signed by the member it names as creator.
    static func proposal(_ bytes: [UInt8]) {
        var signed = Medledger_SignedProposal()
        signed.proposalBytes = Data(bytes)
        let creator = (try? Medledger_Proposal(serializedBytes: bytes))?.signatureHeader.creator ?? Data()
        signed.signature = fx.sign(bytes, as: creator)
        guard let parsed = try? ParsedProposal(signed) else { return }
        let ledger = fx.ledger
        _ = try? fx.endorser.process(parsed, context: fx.context, state: ledger.state, now: Fixture.callTime) {
            try ledger.transaction(id: $0) != nil
        }
    }

    /// The endorser stream: the fuzzer's batch, signed for the batch by the creator its first proposal
    /// names (so inputs get past the signature), each proposal endorsed under it as the stream does.
    static func proposalBatch(_ bytes: [UInt8]) {
        guard var batch = try? Medledger_SignedProposalBatch(serializedBytes: bytes),
            (1...16).contains(batch.proposals.count)
        else { return }
        let signer =
            batch.proposals.lazy.compactMap { try? Medledger_Proposal(serializedBytes: $0.proposalBytes) }.first?
            .signatureHeader.creator ?? Data()
        let message = ProposalBatchSigning.message(batch.proposals)
        batch.batchSignature = fx.sign(message, as: signer)
        let shared = ProposalBatchSignature(batch)
        let ledger = fx.ledger
        for p in batch.proposals {
            guard let parsed = try? ParsedProposal(p, batchSignature: shared),
                (try? fx.endorser.process(parsed, context: fx.context, state: ledger.state, now: Fixture.callTime) {
                    try ledger.transaction(id: $0) != nil
                }) != nil
            else { continue }
            // Admitted: the batch signature must verify under this proposal's creator's own key,
            // checked here by swift-crypto, apart from the node's verifier.
            let creator = parsed.proposal.signatureHeader.creator
            guard let member = try? fx.context.members.verify(serializedIdentity: creator, at: Fixture.callTime),
                let signature = try? P256.Signing.ECDSASignature(derRepresentation: batch.batchSignature),
                member.publicKey.isValidSignature(signature, for: message)
            else { fatalError("a proposal was admitted under a batch signature its creator did not make") }
        }
    }

    /// The client receives a proposal response (re-signed by its endorser, if a member), assembles
    /// the transaction as the gateway does, and the committer validates it.
    static func proposalResponse(_ bytes: [UInt8]) {
        guard var response = try? Medledger_ProposalResponse(serializedBytes: bytes) else { return }
        var endorsements = [response.endorsement]
        resign(&endorsements, over: [UInt8](response.payload))
        response.endorsement = endorsements[0]
        guard
            let env = try? TransactionBuilder.envelope(
                Seeds.responseProposal, responses: [response], signer: fx.member("a-patient").identity),
            let e: [UInt8] = try? env.serializedBytes()
        else { return }
        envelope(e)
    }

    // MARK: - Blocks and configuration

    /// A fresh peer that has joined the channel (height 1); rebuilt after a fuzzed block commits, so
    /// every input meets the same ledger.
    final class BlockPeer: @unchecked Sendable {  // used from the fuzzing thread only
        var peer: PeerChannel?

        func get() -> PeerChannel {
            if let p = peer, p.ledger.height == 1 { return p }
            let store = try! LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies))
            let p = try! PeerChannel.join(genesis: Fixture.shared.genesis, store: store)
            peer = p
            return p
        }
    }

    static let blockPeer = Mutex(BlockPeer())

    static func block(_ bytes: [UInt8]) {
        guard let block = try? Medledger_Block(serializedBytes: bytes) else { return }
        // Joining a channel from a block file (peer and orderer).
        _ = try? ConfigTransaction.verifyGenesis(block)
        // As delivered by the orderer, and as a malicious orderer would make it: right data hash, signed.
        var fixed = block
        fixed.header.dataHash = Data(MerkleTree(leaves: block.envelopeBytes).root)
        fixed.metadata.orderingSignature(
            signer: fx.member("sa-orderer").identity, headerHash: fixed.header.headerHash, at: Fixture.now)
        blockPeer.withLock { b in
            _ = try? b.get().receive(block)
            _ = try? b.get().receive(fixed)
        }
        // The structural checks alone, with the validation codes as given (a block read back from disk
        // on recovery, or one committed by a tool).
        _ = try? BlockCheck.check(
            fixed, channel: Fixture.channel, expectedNumber: fixed.header.number,
            previousHash: [UInt8](fixed.header.previousHash), limits: LedgerLimits())
    }

    /// A configuration update as submitted, and as signed by the administrators it names (a majority
    /// of administrators agreeing on anything), then the configuration's rules on their own.
    static func configUpdate(_ bytes: [UInt8]) {
        _ = try? ConfigTransaction.checkUpdate(envelope: bytes, current: fx.context, blockNumber: 1, at: Fixture.now)
        guard let env = try? Medledger_Envelope(serializedBytes: bytes),
            var payload = try? Medledger_Payload(serializedBytes: env.payload),
            var ce = try? Medledger_ConfigEnvelope(serializedBytes: payload.data)
        else { return }
        let message = SignedMessages.config([UInt8](ce.config))
        for i in ce.signatures.indices where fx.member(serialized: ce.signatures[i].signer) != nil {
            ce.signatures[i].signature = fx.sign(message, as: ce.signatures[i].signer)
        }
        if let config = try? Medledger_ChannelConfig(serializedBytes: ce.config) {
            _ = try? ChannelContext(config: config, configBlock: 1)
        }
        guard let data: Data = try? ce.serializedBytes() else { return }
        payload.data = data
        guard let payloadBytes: [UInt8] = try? payload.serializedBytes() else { return }
        var signed = Medledger_Envelope()
        signed.payload = Data(payloadBytes)
        signed.signature = fx.sign(payloadBytes, as: payload.signatureHeader.creator)
        guard let e: [UInt8] = try? signed.serializedBytes() else { return }
        _ = try? ConfigTransaction.checkUpdate(envelope: e, current: fx.context, blockNumber: 1, at: Fixture.now)
    }

    // MARK: - Identity

    static func crl(_ bytes: [UInt8]) {
        guard let crl = try? RevocationList.parse(bytes) else { return }
        _ = crl.revokedSerials
        try? crl.verify(issuedBy: fx.root, at: Fixture.now)
        _ = try? TrustStore(roots: [fx.root]).install(crl)
    }

    /// PEM as given, or DER wrapped in PEM (so the fuzzer mutates the structure, not base64).
    static func pem(_ bytes: [UInt8], type: String) -> [UInt8] {
        if bytes.starts(with: Array("-----BEGIN".utf8)) { return bytes }
        return Array(PEMDocument(type: type, derBytes: bytes).pemString.utf8)
    }

    static func csr(_ bytes: [UInt8]) {
        guard let csr = try? CertificateFactory.checkedCSR(pem: pem(bytes, type: "CERTIFICATE REQUEST")) else { return }
        _ = try? CertificateFactory.pseudoIdentity(realIdentity: "fuzz", publicKey: csr.publicKey)
        let identity = IdentityAttributes(pid: FixtureKeys.pid("fuzz"), org: "hospital-a", role: "patient")
        for purpose in [CertificatePurpose.signing, .tls] {
            _ = try? CertificateFactory.issue(
                publicKey: csr.publicKey, identity: identity, purpose: purpose, dnsNames: ["localhost"],
                issuer: fx.root, issuerKey: fx.rootKey, validity: 86_400, now: Fixture.now)
        }
    }

    /// Differential: every signature the ledger checks is parsed by `ECDSADER`, so it must accept
    /// exactly what swift-crypto's ASN.1 parser accepts, read the same (r, s), and give back the very
    /// bytes (strict DER has one encoding per signature).
    static func ecdsaDER(_ bytes: [UInt8]) {
        let ours = ECDSADER.rawP256(bytes)
        let theirs = (try? P256.Signing.ECDSASignature(derRepresentation: bytes)).map { Array($0.rawRepresentation) }
        guard ours == theirs else {
            fatalError(
                "ECDSADER reads \(ours.map(Hex.encode) ?? "nothing"), swift-crypto \(theirs.map(Hex.encode) ?? "nothing")"
            )
        }
        if let signature = ECDSADER.p256Signature(bytes), ECDSADER.encode(signature) != bytes {
            fatalError("ECDSADER does not re-encode \(Hex.encode(bytes)) to the same bytes")
        }
    }

    /// Verifications with a key's table; the key is the fixture patient's.
    static let tableVerifier = P256Verifier(tableAfter: 1, tablesMax: 1)
    static let verifyingKey = P256VerifyingKey(fx.member("a-patient").key.publicKey)

    /// Differential: a verification with the key's table must give swift-crypto's answer. The input
    /// is r‖s (64 bytes) and then the message.
    static func p256Verify(_ bytes: [UInt8]) {
        guard bytes.count >= 64, let signature = try? P256.Signing.ECDSASignature(rawRepresentation: bytes[0..<64])
        else { return }
        let message = Array(bytes[64...])
        let theirs = verifyingKey.publicKey.isValidSignature(signature, for: message)
        let ours = tableVerifier.isValidSignature(signature, for: message, key: verifyingKey)
        guard ours == theirs else {
            fatalError("table verification says \(ours), swift-crypto \(theirs), for \(Hex.encode(bytes))")
        }
    }

    static func certificate(_ bytes: [UInt8]) {
        let pemBytes = pem(bytes, type: "CERTIFICATE")
        // A creator, endorser or signer certificate in a transaction (and the P_DE's certificates).
        _ = try? fx.context.members.verify(certificatePEM: Data(pemBytes), at: Fixture.now)
        _ = try? IndexRecordSigning.publicKey(certificatePEM: String(decoding: pemBytes, as: UTF8.self))
        // A certificate presented in the TLS handshake (DER) and checked by the trust store.
        let der =
            bytes.starts(with: Array("-----BEGIN".utf8))
            ? ((try? PEMDocument(pemString: String(decoding: bytes, as: UTF8.self)))?.derBytes ?? []) : bytes
        guard let leaf = try? Certificate(derEncoded: der) else { return }
        _ = leaf.attributes
        let trust = fx.trust
        blocking {
            _ = try? await trust.validate(leaf: leaf, intermediates: [], purpose: .tls, at: Fixture.now)
            _ = try? await trust.validate(leaf: leaf, intermediates: [leaf], purpose: .signing, at: Fixture.now)
        }
    }

    /// Runs async work to completion from the (synchronous) fuzzing thread.
    static func blocking(_ body: @escaping @Sendable () async -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await body()
            done.signal()
        }
        done.wait()
    }

    // MARK: - Umbral and sealed records

    static func capsule(_ bytes: [UInt8]) {
        guard let c = try? Capsule(bytes: bytes) else { return }
        _ = try? Umbral.decryptOriginal(delegatingSK: fx.patientSK, capsule: c, ciphertext: fx.wrappedKey)
        _ = Umbral.reencrypt(capsule: c, kfrag: fx.kfrags[0]).toBytes()
    }

    static func kfrag(_ bytes: [UInt8]) {
        guard let k = try? KeyFrag(bytes: bytes) else { return }
        _ = k.toBytes()
        guard
            let vk = try? k.verify(
                verifyingPK: fx.patientSigner.verifyingKey, delegatingPK: fx.patientSK.publicKey,
                receivingPK: fx.researchSK.publicKey)
        else { return }
        let cfrag = Umbral.reencrypt(capsule: fx.capsule, kfrag: vk)
        _ = try? Umbral.decryptReencrypted(
            receivingSK: fx.researchSK, delegatingPK: fx.patientSK.publicKey, capsule: fx.capsule,
            cfrags: [cfrag, fx.cfrags[1]], ciphertext: fx.wrappedKey)
    }

    static func cfrag(_ bytes: [UInt8]) {
        guard let c = try? CapsuleFrag(bytes: bytes) else { return }
        _ = c.toBytesSimple()
        guard
            let v = try? c.verify(
                capsule: fx.capsule, verifyingPK: fx.patientSigner.verifyingKey,
                delegatingPK: fx.patientSK.publicKey, receivingPK: fx.researchSK.publicKey)
        else { return }
        _ = try? Umbral.decryptReencrypted(
            receivingSK: fx.researchSK, delegatingPK: fx.patientSK.publicKey, capsule: fx.capsule,
            cfrags: [v, fx.cfrags[2]], ciphertext: fx.wrappedKey)
    }

    static func sealedRecord(_ bytes: [UInt8]) {
        func reader() -> SealedRecord.Reader {
            var at = 0
            return { n in
                let end = min(bytes.count, at + n)
                defer { at = end }
                return Array(bytes[at..<end])
            }
        }
        guard (try? SealedRecord.readHeader(read: reader())) != nil else { return }
        _ = try? SealedRecord.open(.patientSecretKey(fx.patientSK), read: reader(), write: { _ in })
    }

    // MARK: - medrecords

    static let callers = Fixture.memberSpecs.map(\.label)

    /// Input: `function` LF `caller label` LF `JSON argument` (the argument may hold anything), then
    /// optionally transient entries (`MedRecordsInput`).
    static func medrecords(_ bytes: [UInt8]) {
        let (function, caller, argument, transient) = MedRecordsInput.split(bytes)
        // An unknown caller label still picks a member (stably), so mutated labels stay useful.
        guard
            let member = fx.members[caller]
                ?? fx.members[callers[caller.utf8.reduce(0) { $0 + Int($1) } % callers.count]]
        else { return }
        let creator = CreatorIdentity(
            pid: member.pid, org: member.org, role: member.role, certificatePEM: member.certificatePEM)
        let invocation = Invocation(
            channel: Fixture.channel, txID: "fuzz-tx", timestamp: Fixture.callTime, creator: creator,
            function: function,
            args: [argument], transient: transient, members: fx.context.members)
        _ = Simulator.simulate(MedRecordsChaincode(), invocation: invocation, state: fx.ledger.state)
    }

    // MARK: - Files

    /// A private directory for the file-reading harnesses, with the files a channel YAML may name:
    /// `MEDLEDGER_FUZZ_TMP` (scripts/fuzz.sh), else under /dev/shm or the temporary directory.
    static let directory: String = {
        let env = ProcessInfo.processInfo.environment["MEDLEDGER_FUZZ_TMP"]
        let base = env ?? (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        let dir = base + "/medledger-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? Data(Fixture.shared.root.pem.utf8).write(to: URL(fileURLWithPath: dir + "/ca-cert.pem"))
        try? Data(RevocationList.pem(der: Fixture.shared.crlDER).utf8).write(to: URL(fileURLWithPath: dir + "/crl.pem"))
        return dir
    }()

    static func file(_ name: String, _ bytes: [UInt8]) -> String {
        let path = directory + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// Removes the directory (replay mode; a fuzzing run's directory goes with the script's).
    static func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    static func channelYAML(_ bytes: [UInt8]) {
        _ = try? ChannelConfigFile.load(path: file("channel.yaml", bytes))
    }

    static func nodeYAML(_ bytes: [UInt8]) {
        _ = try? NodeConfig.load(path: file("node.yaml", bytes))
    }

    /// `medledger audit verify`, and a node or CA opening its log (which continues from the last
    /// line) and writing the next line.
    static func auditLog(_ bytes: [UInt8]) {
        let path = file("audit.log", bytes)
        _ = try? AuditVerifier.verify(path: path)
        _ = try? AuditVerifier.verify(path: path, expectedHead: String(repeating: "0", count: 64))
        guard let log = try? AuditLog(path: path) else { return }
        try? log.record(AuditEvent(actor: .system, action: "fuzz", target: "-", outcome: .success), at: Fixture.now)
        try? log.close()
    }
}

/// The medrecords harness's input format, shared with the seed generator.
enum MedRecordsInput {
    /// Between the argument and the transient entries, and between entries.
    static let entrySeparator = UInt8(0x1E)
    /// Between an entry's name and its value.
    static let nameSeparator = UInt8(0x1F)

    /// `function` LF `caller` LF `argument`, then optionally transient entries: RS `name` US `value`
    /// each (ASCII record and unit separators).
    static func split(
        _ bytes: [UInt8]
    ) -> (function: String, caller: String, argument: [UInt8], transient: [String: [UInt8]]) {
        let lf = UInt8(ascii: "\n")
        guard let first = bytes.firstIndex(of: lf) else {
            return (String(decoding: bytes, as: UTF8.self), "", [], [:])
        }
        let rest = bytes[(first + 1)...]
        guard let second = rest.firstIndex(of: lf) else {
            return (String(decoding: bytes[..<first], as: UTF8.self), String(decoding: rest, as: UTF8.self), [], [:])
        }
        let parts = rest[(second + 1)...].split(separator: entrySeparator, omittingEmptySubsequences: false)
        var transient = [String: [UInt8]]()
        for entry in parts.dropFirst() {
            let name = entry.prefix { $0 != nameSeparator }
            transient[String(decoding: name, as: UTF8.self)] = Array(entry.dropFirst(name.count + 1))
        }
        return (
            String(decoding: bytes[..<first], as: UTF8.self), String(decoding: rest[..<second], as: UTF8.self),
            Array(parts[0]), transient
        )
    }

    static func join(
        function: String, caller: String, argument: [UInt8], transient: [String: [UInt8]] = [:]
    ) -> [UInt8] {
        var out = Array(function.utf8) + [UInt8(ascii: "\n")] + Array(caller.utf8) + [UInt8(ascii: "\n")] + argument
        for (name, value) in transient.sorted(by: { $0.key < $1.key }) {
            out += [entrySeparator] + Array(name.utf8) + [nameSeparator] + value
        }
        return out
    }
}
