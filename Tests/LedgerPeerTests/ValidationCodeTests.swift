import Crypto
import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import SwiftProtobuf
import Testing
import X509

@testable import LedgerPeer

/// A channel of three organisations (the SA orders; two hospitals endorse) on an in-memory ledger,
/// with real certificates from a test root: builds transactions the way clients and endorsers do,
/// and lets tests break them one way at a time.
final class ChannelFixture: @unchecked Sendable {
    let rootKey: P384.Signing.PrivateKey
    let root: Certificate
    let saAdmin, saNode, aAdmin, aNode, bAdmin, bNode, aDoctor: SigningIdentity
    let config: Medledger_ChannelConfig
    let channel: PeerChannel
    let endorserA, endorserB: Endorser
    /// The fixture's present: certificates, proposals and blocks are made at this time.
    let now: Date
    let genesis: Medledger_Block

    struct Echo: Chaincode {
        let name = "echo"
        func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
            try stub.putState("echo", stub.args.first ?? [])
            return .ok()
        }
    }

    init(
        kvPolicy: String = "AND('hospital-a.node', 'hospital-b.node')", now: Date = Date(), crlPublisher: String = "sa",
        batchTimeoutMs: UInt32 = 0
    ) throws {
        self.now = now
        let rootKey = P384.Signing.PrivateKey()
        let root = try CertificateFactory.selfSignedRoot(
            key: rootKey, name: try DistinguishedName { CommonName("Test Root") }, validity: 86_400 * 10,
            now: now.addingTimeInterval(-3600))
        self.rootKey = rootKey
        self.root = root
        func make(_ org: String, _ role: String) throws -> SigningIdentity {
            let key = P256.Signing.PrivateKey()
            let pid = Base64URL.encode(Digests.sha384(Array("\(org)/\(role)/\(UUID())".utf8)))
            let cert = try CertificateFactory.issue(
                publicKey: .init(key.publicKey), identity: IdentityAttributes(pid: pid, org: org, role: role),
                purpose: .signing,
                issuer: root, issuerKey: rootKey, validity: 86_400, now: now.addingTimeInterval(-3600))
            return try SigningIdentity(org: org, certificatePEM: cert.pem, key: key)
        }
        saAdmin = try make("sa", "admin")
        saNode = try make("sa", "node")
        aAdmin = try make("hospital-a", "admin")
        aNode = try make("hospital-a", "node")
        bAdmin = try make("hospital-b", "admin")
        bNode = try make("hospital-b", "node")
        aDoctor = try make("hospital-a", "doctor")
        var c = Medledger_ChannelConfig()
        c.channelID = "records"
        for org in ["sa", "hospital-a", "hospital-b"] {
            var o = Medledger_OrganizationConfig()
            o.id = org
            o.rootCertificates = [Data(root.pem.utf8)]
            c.organizations.append(o)
        }
        c.orderer.org = "sa"
        c.orderer.endpoints = ["127.0.0.1:7050"]
        c.crlPublisherOrg = crlPublisher
        c.batch.maxMessageCount = 100
        c.batch.absoluteMaxBytes = 1 << 20
        c.batch.preferredMaxBytes = 1 << 19
        c.batch.batchTimeoutMs = batchTimeoutMs
        var kv = Medledger_ChaincodeDefinition()
        kv.name = "kv"
        kv.endorsementPolicy = kvPolicy
        c.chaincodes = [kv]
        config = c
        let store = try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        genesis = try ConfigTransaction.genesisBlock(config: c, creator: saAdmin, at: now)
        channel = try PeerChannel.join(genesis: genesis, store: store)
        endorserA = Endorser(identity: aNode, chaincodes: [KVChaincode(), Echo()])
        endorserB = Endorser(identity: bNode, chaincodes: [KVChaincode(), Echo()])
    }

    /// A context that also defines `echo`, for endorsing what the channel itself does not define.
    func contextWithEcho() throws -> ChannelContext {
        var c = config
        var e = Medledger_ChaincodeDefinition()
        e.name = "echo"
        e.endorsementPolicy = "ANY"
        c.chaincodes.append(e)
        return try ChannelContext(config: c, configBlock: 0)
    }

    func endorse(
        _ function: String, _ args: [String], chaincode: String = "kv", creator: SigningIdentity? = nil,
        endorsers: [Endorser]? = nil, context: ChannelContext? = nil
    ) throws -> (proposal: TransactionBuilder.Proposal, responses: [Medledger_ProposalResponse]) {
        let creator = creator ?? aDoctor
        let p = try TransactionBuilder.proposal(
            channel: "records", chaincode: chaincode, function: function, args: args.map { Array($0.utf8) },
            signer: creator, at: now)
        let parsed = try ParsedProposal(p.signed)
        let ctx = try context ?? channel.context
        let responses = try (endorsers ?? [endorserA, endorserB]).map { e in
            try e.process(parsed, context: ctx, state: channel.ledger.state, now: now) {
                try self.channel.ledger.transaction(id: $0) != nil
            }
        }
        return (p, responses)
    }

    func envelope(
        _ function: String, _ args: [String], chaincode: String = "kv", creator: SigningIdentity? = nil,
        endorsers: [Endorser]? = nil, context: ChannelContext? = nil
    ) throws -> [UInt8] {
        let (p, r) = try endorse(
            function, args, chaincode: chaincode, creator: creator, endorsers: endorsers, context: context)
        return try TransactionBuilder.envelope(p, responses: r, signer: creator ?? aDoctor).serializedBytes()
    }

    /// An envelope whose chaincode action is given directly, endorsed (signed) by `endorsers`.
    func handMade(
        action: Medledger_ChaincodeAction, endorsers: [SigningIdentity], creator: SigningIdentity? = nil
    ) throws -> [UInt8] {
        let creator = creator ?? aDoctor
        let p = try TransactionBuilder.proposal(
            channel: "records", chaincode: action.chaincodeName, function: "x", args: [], signer: creator, at: now)
        var prp = Medledger_ProposalResponsePayload()
        prp.proposalHash = Data(
            try ProposalHash.compute(
                channelHeader: p.proposal.channelHeader, signatureHeader: p.proposal.signatureHeader,
                strippedPayload: try p.payload.strippedBytes()))
        prp.extension = try action.serializedBytes()
        let prpBytes: [UInt8] = try prp.serializedBytes()
        let responses = try endorsers.map { e -> Medledger_ProposalResponse in
            var r = Medledger_ProposalResponse()
            r.response.status = 200
            r.payload = Data(prpBytes)
            r.endorsement.endorser = Data(e.serialized)
            r.endorsement.signature = Data(
                try e.sign(SignedMessages.endorsement(proposalResponsePayload: prpBytes, endorser: e.serialized)))
            return r
        }
        return try TransactionBuilder.envelope(p, responses: responses, signer: creator).serializedBytes()
    }

    /// Re-signs a payload edited by `edit` as `signer`.
    func resigned(
        _ envelope: [UInt8], signer: SigningIdentity? = nil, _ edit: (inout Medledger_Payload) -> Void
    ) throws -> [UInt8] {
        let env = try Medledger_Envelope(serializedBytes: envelope)
        var payload = try Medledger_Payload(serializedBytes: env.payload)
        edit(&payload)
        return try TransactionBuilder.sign(payload, signer: signer ?? aDoctor).serializedBytes()
    }

    func orderedBlock(_ envelopes: [[UInt8]], signer: SigningIdentity? = nil) -> Medledger_Block {
        var b = Medledger_Block.make(
            number: channel.ledger.height, previousHash: channel.ledger.info.tipHash, envelopes: envelopes)
        b.metadata.orderingSignature(signer: signer ?? saNode, headerHash: b.header.headerHash, at: now)
        return b
    }

    /// Orders, validates and commits `envelopes` as one block; returns the codes the peer set.
    @discardableResult
    func commit(_ envelopes: [[UInt8]]) throws -> [Medledger_TxValidationCode] {
        let receipt = try #require(try channel.receive(orderedBlock(envelopes)))
        return try #require(try channel.ledger.block(number: receipt.blockNumber)).metadata.validationCodes
    }

    func value(_ key: String) throws -> String? {
        try channel.ledger.state.get(namespace: "kv", key: key).map { String(decoding: $0.value, as: UTF8.self) }
    }
}

@Suite struct ValidationCodeTests {
    @Test func validTransactionChangesState() throws {
        let f = try ChannelFixture()
        #expect(try f.commit([try f.envelope("put", ["k", "v"])]) == [.valid])
        #expect(try f.value("k") == "v")
        // No committed block keeps NOT_VALIDATED: the peer sets a real code for every transaction.
        let codes = try f.commit([try f.envelope("put", ["k2", "v"]), [], try f.envelope("put", ["k3", "v"])])
        #expect(!codes.contains(.notValidated))
    }

    /// The validator hands the ledger each valid transaction as it parsed it, so that the commit does not
    /// parse it again: it must be exactly what the ledger's own parse makes of the envelope.
    @Test func theValidatorsParseIsTheLedgersParse() throws {
        let f = try ChannelFixture()
        let forged = try f.resigned(try f.envelope("put", ["k3", "v"]), signer: f.bNode) { _ in }
        let envelopes = [try f.envelope("put", ["k1", "v"]), [], try f.envelope("put", ["k2", "w"]), forged]
        let outcome = try BlockValidator().validate(
            f.orderedBlock(envelopes), context: f.channel.context, ledger: f.channel.ledger, blockTime: f.now)
        #expect(outcome.codes == [.valid, .nilEnvelope, .valid, .badCreatorSignature])
        for (i, e) in envelopes.enumerated() where outcome.codes[i] == .valid {
            let parsed = try #require(outcome.parsed[i])
            #expect(parsed == (try ParsedTransaction(envelope: e)))
            #expect(!parsed.writes.isEmpty)
        }
        #expect(outcome.parsed[1] == nil && outcome.parsed[3] == nil, "what failed a check is parsed by the ledger")
        #expect(try f.commit(envelopes) == outcome.codes)
        #expect(try f.value("k1") == "v" && f.value("k2") == "w" && f.value("k3") == nil)
    }

    /// The endorsement is signed over the hash computed once for it and for the peer's memory: an ECDSA
    /// verification with the endorser's public key accepts it over the whole message, and the memory
    /// recognises exactly that signature over exactly that message.
    @Test func anEndorsementVerifiesOverItsMessageAndIsRemembered() throws {
        let f = try ChannelFixture()
        let (_, responses) = try f.endorse("put", ["k", "v"], endorsers: [f.endorserA])
        let e = try #require(responses.first).endorsement
        let signed = SignedMessages.endorsement(
            proposalResponsePayload: [UInt8](try #require(responses.first).payload), endorser: [UInt8](e.endorser))
        let signature = try P256.Signing.ECDSASignature(derRepresentation: e.signature)
        #expect(f.aNode.key.publicKey.isValidSignature(signature, for: signed))
        #expect(f.endorserA.signatures.made(e.signature, over: signed))
        #expect(!f.endorserA.signatures.made(e.signature, over: signed + [0]))
        #expect(!f.endorserB.signatures.made(e.signature, over: signed))
    }

    /// A query (evaluate-only) gets the chaincode's answer and nothing signed: no endorsement, no
    /// payload to assemble; the committed-tx-id check that guards ordering does not apply to it.
    @Test func evaluateOnlyAnswersWithoutAnEndorsement() throws {
        let f = try ChannelFixture()
        #expect(try f.commit([try f.envelope("put", ["k", "v"])]) == [.valid])
        var p = try TransactionBuilder.proposal(
            channel: "records", chaincode: "kv", function: "get", args: [Array("k".utf8)], signer: f.aDoctor, at: f.now)
        p.signed.evaluateOnly = true
        let answer = try f.endorserA.process(
            try ParsedProposal(p.signed), context: f.channel.context, state: f.channel.ledger.state, now: f.now
        ) { _ in true }
        #expect(answer.response.status == 200 && String(decoding: answer.response.payload, as: UTF8.self) == "v")
        #expect(!answer.hasEndorsement && answer.payload.isEmpty)
        #expect(throws: (any Error).self) { try TransactionBuilder.envelope(p, responses: [answer], signer: f.aDoctor) }
        // The same proposal asking for an endorsement is signed, and refused once its tx id is committed.
        p.signed.evaluateOnly = false
        let endorsed = try f.endorserA.process(
            try ParsedProposal(p.signed), context: f.channel.context, state: f.channel.ledger.state, now: f.now
        ) { _ in false }
        #expect(endorsed.hasEndorsement && !endorsed.payload.isEmpty)
        #expect(throws: ProposalRejection.self) {
            try f.endorserA.process(
                try ParsedProposal(p.signed), context: f.channel.context, state: f.channel.ledger.state, now: f.now
            ) { _ in true }
        }
    }

    @Test func structuralCodes() throws {
        let f = try ChannelFixture()
        let good = try f.envelope("put", ["k", "v"])
        var garbagePayload = Medledger_Envelope()
        garbagePayload.payload = Data([0xff, 0xff, 0xff])
        garbagePayload.signature = Data([1])
        let noTxID = try f.resigned(good) { $0.channelHeader.txID = "" }
        let codes = try f.commit([[], try garbagePayload.serializedBytes(), noTxID])
        #expect(codes == [.nilEnvelope, .badPayload, .badCommonHeader])
        #expect(try f.value("k") == nil)
    }

    @Test func headerCodes() throws {
        let f = try ChannelFixture()
        let configUpdate = try f.resigned(try f.envelope("put", ["a", "1"])) { $0.channelHeader.type = .configUpdate }
        let unknownType = try f.resigned(try f.envelope("put", ["b", "1"])) {
            $0.channelHeader.type = .UNRECOGNIZED(42)
        }
        let otherChannel = try f.resigned(try f.envelope("put", ["c", "1"])) {
            $0.channelHeader.channelID = "elsewhere"
        }
        let badTxID = try f.resigned(try f.envelope("put", ["d", "1"])) {
            $0.channelHeader.txID = String(repeating: "0", count: 64)
        }
        #expect(
            try f.commit([configUpdate, unknownType, otherChannel, badTxID]) == [
                .unsupportedTxPayload, .unknownTxType, .targetChainNotFound, .badProposalTxid,
            ])
    }

    @Test func creatorSignatureCodes() throws {
        let f = try ChannelFixture()
        var env = try Medledger_Envelope(serializedBytes: try f.envelope("put", ["k", "v"]))
        env.signature[env.signature.count - 3] ^= 0x55
        // Re-signed by someone else than the creator the header names.
        let otherSigner = try f.resigned(try f.envelope("put", ["k", "w"]), signer: f.bNode) { _ in }
        // A creator from a CA the channel does not know.
        let rogueKey = P384.Signing.PrivateKey()
        let rogueRoot = try CertificateFactory.selfSignedRoot(
            key: rogueKey, name: try DistinguishedName { CommonName("Rogue") }, validity: 86_400)
        let key = P256.Signing.PrivateKey()
        let cert = try CertificateFactory.issue(
            publicKey: .init(key.publicKey),
            identity: IdentityAttributes(pid: "rogue-pid", org: "hospital-a", role: "doctor"), purpose: .signing,
            issuer: rogueRoot, issuerKey: rogueKey, validity: 86_400)
        let rogue = try SigningIdentity(org: "hospital-a", certificatePEM: cert.pem, key: key)
        let p = try TransactionBuilder.proposal(
            channel: "records", chaincode: "kv", function: "put", args: [Array("k".utf8), Array("x".utf8)],
            signer: rogue, at: f.now)
        var payload = Medledger_Payload()
        payload.channelHeader = p.proposal.channelHeader
        payload.signatureHeader = p.proposal.signatureHeader
        let rogueEnv = try TransactionBuilder.sign(payload, signer: rogue).serializedBytes() as [UInt8]
        #expect(
            try f.commit([try env.serializedBytes(), otherSigner, rogueEnv]) == [
                .badCreatorSignature, .badCreatorSignature, .badCreatorSignature,
            ])
        #expect(try f.value("k") == nil)
    }

    @Test func endorsedTransactionCodes() throws {
        let f = try ChannelFixture()
        let garbage = try f.resigned(try f.envelope("put", ["a", "1"])) { $0.data = Data([0xde, 0xad]) }
        // The endorsement was for another transaction: the proposal hash does not match.
        let (p1, r1) = try f.endorse("put", ["b", "1"])
        let (p2, _) = try f.endorse("put", ["b", "2"])
        var swapped = try Medledger_Payload(
            serializedBytes: try TransactionBuilder.envelope(p1, responses: r1, signer: f.aDoctor).payload)
        swapped.channelHeader = p2.proposal.channelHeader
        swapped.signatureHeader = p2.proposal.signatureHeader
        let reused = try TransactionBuilder.sign(swapped, signer: f.aDoctor).serializedBytes() as [UInt8]
        #expect(try f.commit([garbage, reused]) == [.invalidEndorserTransaction, .invalidEndorserTransaction])
    }

    @Test func chaincodeAndWriteSetCodes() throws {
        let f = try ChannelFixture()
        // Endorsed where `echo` was defined, but this channel does not define it.
        let undefined = try f.envelope(
            "say", ["hi"], chaincode: "echo", endorsers: [f.endorserA], context: try f.contextWithEcho())
        var action = Medledger_ChaincodeAction()
        action.chaincodeName = "kv"
        action.response.status = 200
        action.results = .writes(namespace: "other", [("k", Array("v".utf8))])
        let illegal = try f.handMade(action: action, endorsers: [f.aNode, f.bNode])
        action.results = .writes(namespace: "kv", [("", Array("v".utf8))])
        let emptyKey = try f.handMade(action: action, endorsers: [f.aNode, f.bNode])
        #expect(try f.commit([undefined, illegal, emptyKey]) == [.invalidChaincode, .illegalWriteset, .badRwset])
    }

    @Test func endorsementPolicyFailures() throws {
        let f = try ChannelFixture()
        let onlyA = try f.envelope("put", ["k", "1"], endorsers: [f.endorserA])
        var action = Medledger_ChaincodeAction()
        action.chaincodeName = "kv"
        action.response.status = 200
        action.results = .writes(namespace: "kv", [("k", Array("2".utf8))])
        // a doctor is not hospital-a.node
        let doctorsEndorse = try f.handMade(action: action, endorsers: [f.aDoctor, f.bNode])
        // A forged endorsement: right identities, signature over something else.
        let env = try Medledger_Envelope(serializedBytes: try f.envelope("put", ["k", "3"]))
        var payload = try Medledger_Payload(serializedBytes: env.payload)
        var tx = try Medledger_EndorsedTransaction(serializedBytes: payload.data)
        tx.endorsements[1].signature = tx.endorsements[0].signature
        payload.data = try tx.serializedBytes()
        let forged = try TransactionBuilder.sign(payload, signer: f.aDoctor).serializedBytes() as [UInt8]
        #expect(
            try f.commit([onlyA, doctorsEndorse, forged]) == [
                .endorsementPolicyFailure, .endorsementPolicyFailure, .endorsementPolicyFailure,
            ])
        #expect(try f.value("k") == nil)
    }

    /// The validator skips re-verifying this peer's own endorsements only on an exact match of
    /// message and signature; anything else is verified as usual.
    @Test func ownEndorsementsAreRecognisedExactly() throws {
        let f = try ChannelFixture()
        let memory = f.endorserA.signatures
        let good = try f.envelope("put", ["k", "1"])
        #expect(BlockValidator.check(good, context: f.channel.context, own: memory).code == .valid)

        let env = try Medledger_Envelope(serializedBytes: good)
        var payload = try Medledger_Payload(serializedBytes: env.payload)
        var tx = try Medledger_EndorsedTransaction(serializedBytes: payload.data)
        let message = SignedMessages.endorsement(
            proposalResponsePayload: [UInt8](tx.proposalResponsePayload), endorser: [UInt8](tx.endorsements[0].endorser)
        )
        #expect(memory.made(tx.endorsements[0].signature, over: message))
        #expect(!memory.made(tx.endorsements[1].signature, over: message))
        #expect(!memory.made(tx.endorsements[0].signature, over: message + [0]))
        #expect(!f.endorserB.signatures.made(tx.endorsements[0].signature, over: message))

        // A's endorsement carrying B's signature: not remembered, so verified, and it fails.
        tx.endorsements[0].signature = tx.endorsements[1].signature
        payload.data = try tx.serializedBytes()
        let forged = try TransactionBuilder.sign(payload, signer: f.aDoctor).serializedBytes() as [UInt8]
        #expect(BlockValidator.check(forged, context: f.channel.context, own: memory).code == .endorsementPolicyFailure)
    }

    @Test func duplicatesAndReplays() throws {
        let f = try ChannelFixture()
        let tx = try f.envelope("put", ["k", "1"])
        #expect(try f.commit([tx, tx]) == [.valid, .duplicateTxid])
        #expect(try f.commit([tx]) == [.duplicateTxid])
        #expect(try f.value("k") == "1")
    }

    @Test func mvccAndPhantomConflicts() throws {
        let f = try ChannelFixture()
        try f.commit([try f.envelope("put", ["a", "1"]), try f.envelope("put", ["c", "1"])])
        // Simulated against the same state; the first write invalidates what the others read.
        let write = try f.envelope("put", ["a", "2"])
        let read = try f.envelope("get", ["a"])
        let writeB = try f.envelope("put", ["b", "1"])
        let scan = try f.envelope("range", ["a", "z", "10"])
        #expect(
            try f.commit([write, read, writeB, scan]) == [.valid, .mvccReadConflict, .valid, .phantomReadConflict])
        #expect(try f.value("a") == "2")
    }

    @Test func configurationUpdatesNeedAMajorityAndAreAlone() throws {
        let f = try ChannelFixture()
        var next = f.config
        next.sequence = 1
        next.batch.maxMessageCount = 10
        let oneAdmin =
            try ConfigTransaction.envelope(config: next, admins: [f.aAdmin], submitter: f.aAdmin, at: f.now)
            .serializedBytes() as [UInt8]
        let doctorSigned =
            try ConfigTransaction.envelope(config: next, admins: [f.aAdmin, f.aDoctor], submitter: f.aAdmin, at: f.now)
            .serializedBytes() as [UInt8]
        #expect(try f.commit([oneAdmin]) == [.invalidConfigTransaction])
        #expect(try f.commit([doctorSigned]) == [.invalidConfigTransaction])
        var two = try ConfigTransaction.envelope(config: next, admins: [f.aAdmin], submitter: f.aAdmin, at: f.now)
        two = try ConfigTransaction.addSignature(to: two, admin: f.bAdmin, at: f.now)
        let majority = try two.serializedBytes() as [UInt8]
        #expect(try f.commit([majority, try f.envelope("put", ["k", "v"])]) == [.invalidConfigTransaction, .valid])
        #expect(f.channel.context.sequence == 0)
        // The same envelope again is a replay; a fresh one with the same signatures goes through.
        #expect(try f.commit([majority]) == [.duplicateTxid])
        #expect(f.channel.context.sequence == 0)
        var fresh = try ConfigTransaction.envelope(config: next, admins: [f.aAdmin], submitter: f.aAdmin, at: f.now)
        fresh = try ConfigTransaction.addSignature(to: fresh, admin: f.bAdmin, at: f.now)
        #expect(try f.commit([try fresh.serializedBytes()]) == [.valid])
        #expect(f.channel.context.sequence == 1)
        #expect(f.channel.context.config.batch.maxMessageCount == 10)
        // Replaying the same update: wrong sequence now (and a duplicate id).
        var again = try ConfigTransaction.envelope(
            config: next, admins: [f.aAdmin, f.bAdmin], submitter: f.bAdmin, at: f.now)
        again = try ConfigTransaction.addSignature(to: again, admin: f.saAdmin, at: f.now)
        #expect(try f.commit([try again.serializedBytes()]) == [.invalidConfigTransaction])
        // The configuration survives a reopen: it is read back from the last configuration block.
        #expect(try f.channel.ledger.block(number: f.channel.ledger.height - 1)?.metadata.lastConfigBlock == 5)
    }

    @Test func blocksNotSignedByTheOrdererAreRefused() throws {
        let f = try ChannelFixture()
        let height = f.channel.ledger.height
        #expect(throws: (any Error).self) {
            try f.channel.receive(f.orderedBlock([try f.envelope("put", ["k", "v"])], signer: f.aNode))
        }
        var tampered = f.orderedBlock([try f.envelope("put", ["k", "v"])])
        tampered.header.number += 1
        #expect(throws: (any Error).self) { try f.channel.receive(tampered) }
        #expect(f.channel.ledger.height == height)
    }

    @Test func endorserRefusals() throws {
        let f = try ChannelFixture()
        let ctx = f.channel.context
        func status(_ p: TransactionBuilder.Proposal) -> Int32 {
            do {
                let r = try f.endorserA.process(
                    try ParsedProposal(p.signed), context: ctx, state: f.channel.ledger.state, now: f.now
                ) { try f.channel.ledger.transaction(id: $0) != nil }
                return r.response.status
            } catch let e as ProposalRejection { return e.status } catch { return -1 }
        }
        let ok = try TransactionBuilder.proposal(
            channel: "records", chaincode: "kv", function: "put", args: [Array("k".utf8), Array("v".utf8)],
            signer: f.aDoctor, at: f.now)
        #expect(status(ok) == 200)
        var badSig = ok
        badSig.signed.signature[badSig.signed.signature.count - 2] ^= 1
        #expect(status(badSig) == 401)
        #expect(
            status(
                try TransactionBuilder.proposal(
                    channel: "records", chaincode: "nope", function: "x", args: [], signer: f.aDoctor, at: f.now))
                == 404)
        #expect(
            status(
                try TransactionBuilder.proposal(
                    channel: "records", chaincode: "kv", function: "put", args: [], signer: f.aDoctor,
                    at: Date().addingTimeInterval(-3600))) == 400)
        #expect(
            status(
                try TransactionBuilder.proposal(
                    channel: "records", chaincode: "kv", function: "nosuch", args: [], signer: f.aDoctor, at: f.now))
                == 400)
        try f.commit([
            try TransactionBuilder.envelope(
                ok,
                responses: [
                    try f.endorserA.process(
                        try ParsedProposal(ok.signed), context: ctx, state: f.channel.ledger.state, now: f.now
                    ) { _ in false },
                    try f.endorserB.process(
                        try ParsedProposal(ok.signed), context: ctx, state: f.channel.ledger.state, now: f.now
                    ) { _ in false },
                ], signer: f.aDoctor
            ).serializedBytes()
        ])
        #expect(status(ok) == 409)
        var garbled = Medledger_SignedProposal()
        garbled.proposalBytes = Data([0xff, 0x01])
        #expect(throws: ProposalRejection.self) { try ParsedProposal(garbled) }
    }
}
