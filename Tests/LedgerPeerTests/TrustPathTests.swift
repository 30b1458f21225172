import Crypto
import Foundation
import LedgerChaincode
import LedgerChannel
import LedgerCore
import LedgerIdentity
import LedgerOrdering
import LedgerOrderingCore
import LedgerProtos
import LedgerStorage
import Synchronization
import Testing
import X509

@testable import LedgerPeer

/// A chaincode that accepts a signer certificate carried in its argument, as `medrecords` does for a
/// P_DE's patient and doctor.
struct SignedNoteChaincode: Chaincode {
    let name = "notes"
    func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
        let pem = String(decoding: stub.args.first ?? [], as: UTF8.self)
        let signer: ValidatedSigner
        do { signer = try stub.validateMember(certificatePEM: pem) } catch { return .forbidden("signer: \(error)") }
        try stub.putState("note/\(stub.txID)", Array(signer.pid.utf8))
        return .ok()
    }
}

extension ChannelFixture {
    /// A CRL of the fixture's root revoking `revoked`, numbered `number`.
    func crl(_ number: UInt64, revoking revoked: [SigningIdentity]) throws -> (list: RevocationList, der: [UInt8]) {
        let entries = try revoked.map { id in
            RevocationList.Entry(
                serial: try Certificate(pemEncoded: id.certificatePEM).serialNumber, revocationDate: now, reason: 1)
        }
        let list = RevocationList(
            issuer: root.subject, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(7 * 86_400), crlNumber: number, authorityKeyID: nil, entries: entries)
        let der = try list.signedDER(key: rootKey)
        return (try RevocationList.parse(der), der)
    }

    /// The CRL-only update of the current configuration, signed by `admins` (submitted by the first).
    func crlUpdate(_ crl: (list: RevocationList, der: [UInt8]), admins: [SigningIdentity]) throws -> [UInt8] {
        let config = try #require(ConfigTransaction.crlUpdate(of: channel.context, with: crl.list, der: crl.der))
        return try ConfigTransaction.envelope(config: config, admins: admins, submitter: admins[0], at: now)
            .serializedBytes()
    }

    func notesContext() throws -> ChannelContext {
        var c = channel.context.config
        var d = Medledger_ChaincodeDefinition()
        d.name = "notes"
        d.endorsementPolicy = "ANY"
        c.chaincodes.append(d)
        return try ChannelContext(config: c, configBlock: channel.context.configBlock)
    }
}

@Suite struct RevocationOnTheLedgerTests {
    @Test func theCRLPublisherAloneMayPublishANewerCRL() throws {
        let f = try ChannelFixture()
        let crl1 = try f.crl(1, revoking: [f.aDoctor])
        // An administrator of another organisation alone cannot; the SA's (the publisher) can.
        #expect(try f.commit([try f.crlUpdate(crl1, admins: [f.aAdmin])]) == [.invalidConfigTransaction])
        #expect(try f.commit([try f.crlUpdate(crl1, admins: [f.saAdmin])]) == [.valid])
        #expect(f.channel.context.members.crl(of: "hospital-a")?.crlNumber == 1)
        // The revoked doctor's next proposal is refused by endorsers; its envelopes are invalid.
        #expect(throws: ProposalRejection.self) { _ = try f.endorse("put", ["k", "v"], creator: f.aDoctor) }
        // Rolling back (an older number) or un-revoking needs a majority; a CRL-only update that tries is refused.
        let older = try f.crl(1, revoking: [])
        var config = f.channel.context.config
        for i in config.organizations.indices { config.organizations[i].crl = Data(older.der) }
        config.sequence += 1
        let rollback =
            try ConfigTransaction.envelope(config: config, admins: [f.saAdmin], submitter: f.saAdmin, at: f.now)
            .serializedBytes() as [UInt8]
        #expect(try f.commit([rollback]) == [.invalidConfigTransaction])
        let dropped = try f.crl(2, revoking: [])
        for i in config.organizations.indices { config.organizations[i].crl = Data(dropped.der) }
        let unrevoke =
            try ConfigTransaction.envelope(config: config, admins: [f.saAdmin], submitter: f.saAdmin, at: f.now)
            .serializedBytes() as [UInt8]
        #expect(try f.commit([unrevoke]) == [.invalidConfigTransaction])
        #expect(throws: ChannelConfigError.self) {
            _ = try ConfigTransaction.checkUpdate(
                envelope: unrevoke, current: f.channel.context, blockNumber: 9, at: f.now)
        }
        // A CRL together with any other change is an ordinary update: the publisher alone is not enough.
        var mixed = try #require(
            ConfigTransaction.crlUpdate(
                of: f.channel.context, with: try f.crl(3, revoking: [f.aDoctor]).list,
                der: try f.crl(3, revoking: [f.aDoctor]).der))
        mixed.batch.maxMessageCount = 7
        let mixedEnv =
            try ConfigTransaction.envelope(config: mixed, admins: [f.saAdmin], submitter: f.saAdmin, at: f.now)
            .serializedBytes() as [UInt8]
        #expect(try f.commit([mixedEnv]) == [.invalidConfigTransaction])
        // A newer CRL that keeps every revocation is fine.
        #expect(
            try f.commit([try f.crlUpdate(try f.crl(4, revoking: [f.aDoctor, f.bAdmin]), admins: [f.saAdmin])]) == [
                .valid
            ])
    }

    @Test func withoutAPublisherACRLNeedsAMajority() throws {
        let f = try ChannelFixture(crlPublisher: "")
        let crl = try f.crl(1, revoking: [f.aDoctor])
        #expect(try f.commit([try f.crlUpdate(crl, admins: [f.saAdmin])]) == [.invalidConfigTransaction])
        #expect(try f.commit([try f.crlUpdate(crl, admins: [f.saAdmin, f.aAdmin])]) == [.valid])
    }

    /// The heart of it: whatever was endorsed before a revocation, the block after it judges creator and
    /// signers under the new CRL; what committed before stays valid.
    @Test func validationJudgesCreatorsAndSignersUnderTheBlocksCRL() throws {
        let f = try ChannelFixture()
        let notesA = Endorser(identity: f.aNode, chaincodes: [SignedNoteChaincode()])
        let ctx = try f.notesContext()
        func noteByPatient(signedBy signer: SigningIdentity) throws -> [UInt8] {
            try f.envelope(
                "note", [signer.certificatePEM], chaincode: "notes", creator: f.aAdmin, endorsers: [notesA],
                context: ctx)
        }
        // The chaincode must be defined on the channel for validation: a majority update adds it.
        let define = try ConfigTransaction.envelope(
            config: {
                var c = ctx.config
                c.sequence += 1
                return c
            }(), admins: [f.saAdmin, f.aAdmin], submitter: f.saAdmin, at: f.now)
        #expect(try f.commit([try define.serializedBytes()]) == [.valid])

        let before = try noteByPatient(signedBy: f.aDoctor)
        #expect(try f.commit([before]) == [.valid])
        // Endorsed before the revocation, committed after it.
        let late = try noteByPatient(signedBy: f.aDoctor)
        let lateByDoctor = try f.envelope("put", ["by-doctor", "x"], creator: f.aDoctor)
        #expect(try f.commit([try f.crlUpdate(try f.crl(1, revoking: [f.aDoctor]), admins: [f.saAdmin])]) == [.valid])
        #expect(try f.commit([late, lateByDoctor]) == [.signerNotMember, .badCreatorSignature])
        #expect(try f.value("by-doctor") == nil)
        // The note committed before the revocation is still there, valid.
        let first = try #require(try f.channel.ledger.block(number: 2))
        #expect(first.metadata.validationCodes == [.valid])
        // And a signer who is not revoked still works.
        let ok = try f.envelope(
            "note", [f.bAdmin.certificatePEM], chaincode: "notes", creator: f.aAdmin, endorsers: [notesA])
        #expect(try f.commit([ok]) == [.valid])
    }

    /// A CRL past its nextUpdate still lists real revocations: it is installed, enforced and reported
    /// stale (so the node refreshes it), never refused — a refusal would stop a node from restarting.
    @Test func aStaleCRLIsEnforcedAndReportedNotRefused() throws {
        let f = try ChannelFixture()
        let doctor = try Certificate(pemEncoded: f.aDoctor.certificatePEM)
        let stale = RevocationList(
            issuer: f.root.subject, thisUpdate: f.now.addingTimeInterval(-10 * 86_400),
            nextUpdate: f.now.addingTimeInterval(-3 * 86_400), crlNumber: 5,
            authorityKeyID: nil,
            entries: [
                .init(serial: doctor.serialNumber, revocationDate: f.now.addingTimeInterval(-11 * 86_400), reason: 1)
            ])
        let trust = TrustStore(roots: [f.root])
        #expect(try trust.install(try RevocationList.parse(try stale.signedDER(key: f.rootKey)), source: "crl.pem"))
        #expect(trust.isRevoked(doctor))
        let installed = try #require(trust.installed.first)
        #expect(installed.isStale(at: f.now) && installed.isDue(at: f.now) && installed.source == "crl.pem")
        // A forged one (not signed by the root) is still refused.
        let forged = try stale.signedDER(key: P384.Signing.PrivateKey())
        #expect(throws: (any Error).self) { try trust.install(try RevocationList.parse(forged)) }
    }

    /// The node's own, fresher CRL refuses at once, before the channel's configuration catches up.
    @Test func theNodesCRLIsAGateAtTheEndorser() throws {
        let f = try ChannelFixture()
        let trust = TrustStore(roots: [f.root])
        try trust.install(try f.crl(1, revoking: [f.aDoctor]).list)
        var gated = Endorser(identity: f.aNode, chaincodes: [KVChaincode(), SignedNoteChaincode()])
        gated.revocationGate = trust
        do {
            _ = try f.endorse("put", ["k", "v"], creator: f.aDoctor, endorsers: [gated])
            Issue.record("a revoked creator was endorsed")
        } catch let e as ProposalRejection {
            #expect(e.status == 401)
            #expect(e.message.contains("revoked"))
        }
        // A revoked signer carried in the arguments: the chaincode refuses, nothing is endorsed.
        let r = try f.endorse(
            "note", [f.aDoctor.certificatePEM], chaincode: "notes", creator: f.aAdmin, endorsers: [gated],
            context: try f.notesContext())
        #expect(r.responses[0].response.status == 403)
        #expect(!r.responses[0].hasEndorsement)
    }
}

@Suite struct BlockTimeTests {
    /// No certificate time bomb: a peer that joins two years after the chain was written, when every
    /// certificate in it has long expired, verifies and validates it exactly as the first peer did.
    @Test func aNewPeerSyncsAnOldChainWithExpiredCertificates() throws {
        let twoYearsAgo = Date().addingTimeInterval(-2 * 365 * 86_400)
        let f = try ChannelFixture(now: twoYearsAgo)
        #expect(try f.commit([try f.envelope("put", ["a", "1"])]) == [.valid])
        let byDoctor = try f.envelope("put", ["c", "3"], creator: f.aDoctor)
        #expect(try f.commit([try f.crlUpdate(try f.crl(1, revoking: [f.aDoctor]), admins: [f.saAdmin])]) == [.valid])
        #expect(
            try f.commit([try f.envelope("put", ["b", "2"], creator: f.aAdmin), byDoctor]) == [
                .valid, .badCreatorSignature,
            ])

        let late = try PeerChannel.join(
            genesis: f.genesis, store: try LedgerStore(kv: MemoryStore(columnFamilies: StorageLayout.columnFamilies)))
        for n in 1..<f.channel.ledger.height {
            var b = try #require(try f.channel.ledger.block(number: n))
            b.metadata.validationCodes = Array(repeating: .notValidated, count: b.data.envelopes.count)
            b.metadata.commitHash = Data()
            try late.receive(b)
            #expect(try late.ledger.block(number: n)?.metadata == f.channel.ledger.block(number: n)?.metadata)
        }
        #expect(late.ledger.info.commitHash == f.channel.ledger.info.commitHash)
    }

    @Test func blockTimeMayNotGoBackwards() throws {
        let f = try ChannelFixture()
        var b = Medledger_Block.make(
            number: 1, previousHash: f.channel.ledger.info.tipHash, envelopes: [try f.envelope("put", ["k", "v"])])
        b.metadata.orderingSignature(
            signer: f.saNode, headerHash: b.header.headerHash, at: f.now.addingTimeInterval(-3600))
        #expect(throws: PeerChannelError.self) { try f.channel.receive(b) }
        // A signature over another time than the one the block carries does not verify.
        var forged = Medledger_Block.make(
            number: 1, previousHash: f.channel.ledger.info.tipHash, envelopes: [try f.envelope("put", ["k", "v"])])
        forged.metadata.orderingSignature(signer: f.saNode, headerHash: forged.header.headerHash, at: f.now)
        forged.metadata.ordererSignature.signedAt.seconds += 60
        #expect(throws: (any Error).self) { try f.channel.receive(forged) }
    }
}

/// A key-value store whose writes can be made to fail, for the orderer's disk-failure path.
final class FailingStore: KVStore, @unchecked Sendable {
    let inner: MemoryStore
    let failing = Mutex(false)
    init() { inner = MemoryStore(columnFamilies: StorageLayout.columnFamilies) }
    var columnFamilyNames: [String] { inner.columnFamilyNames }
    func columnFamily(_ name: String) throws -> ColumnFamily { try inner.columnFamily(name) }
    func write(_ batch: WriteBatch, sync: Bool) throws {
        if failing.withLock({ $0 }) { throw StorageError.closed }
        try inner.write(batch, sync: sync)
    }
    func snapshot() throws -> any KVSnapshot { try inner.snapshot() }
    func close() { inner.close() }
    func get(_ cf: ColumnFamily, _ key: Bytes) throws -> Bytes? { try inner.get(cf, key) }
    func withValue<T>(_ cf: ColumnFamily, _ key: Bytes, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try inner.withValue(cf, key, body)
    }
    func cursor(_ cf: ColumnFamily, _ range: KeyRange, reverse: Bool) throws -> any KVCursor {
        try inner.cursor(cf, range, reverse: reverse)
    }
}

@Suite struct SoloOrdererAcknowledgementTests {
    func orderer(_ f: ChannelFixture, _ kv: any KVStore) throws -> SoloOrderer {
        let o = try SoloOrderer(store: try LedgerStore(kv: kv), signer: f.saNode, clock: { f.now })
        try o.join(genesis: f.genesis)
        return o
    }

    /// Classic batching (batch_timeout_ms > 0): envelopes that arrive while the batch timer runs
    /// share one block, cut when the timer fires (the cutting thread waits on its condition for more).
    @Test func aBatchTimerGathersEnvelopesIntoOneBlock() async throws {
        let f = try ChannelFixture(batchTimeoutMs: 400)
        let o = try orderer(f, MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        defer { o.shutdown() }
        let envelopes = try (0..<5).map { try f.envelope("put", ["batched-\($0)", "v"]) }
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for e in envelopes { group.addTask { try await o.broadcast(e) } }
            try await group.waitForAll()
        }
        #expect(ContinuousClock.now - started >= .milliseconds(350))
        #expect(o.channels().first?.height == 2)  // genesis and one block of all five
    }

    @Test func anAcknowledgedEnvelopeIsInADurableBlock() async throws {
        let f = try ChannelFixture()
        let o = try orderer(f, MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        defer { o.shutdown() }
        try await o.broadcast(try f.envelope("put", ["k", "v"]))
        #expect(o.channels().first?.height == 2)  // acknowledged means written
        // Too large for the ledger: refused at once with 413, and nothing else is affected.
        var big = try Medledger_Envelope(
            serializedBytes: try f.envelope("put", ["big", String(repeating: "x", count: 100)]))
        big.signature = Data(repeating: 1, count: 1 << 20)
        let bigBytes: [UInt8] = try big.serializedBytes()
        await #expect(
            throws: OrderingRejection(
                413, "envelope is \(bigBytes.count) bytes, over the \(1 << 20)-byte limit of channel records")
        ) {
            try await o.broadcast(bigBytes)
        }
        // The same envelope twice: the second is a duplicate.
        let e = try f.envelope("put", ["k2", "v"])
        try await o.broadcast(e)
        await #expect(throws: OrderingRejection.self) { try await o.broadcast(e) }
    }

    @Test func aFailedBlockWriteStopsTheChannelLoudlyAndDropsNothingSilently() async throws {
        let f = try ChannelFixture()
        let kv = FailingStore()
        let o = try orderer(f, kv)
        defer { o.shutdown() }
        try await o.broadcast(try f.envelope("put", ["k", "v"]))
        kv.failing.withLock { $0 = true }
        do {
            try await o.broadcast(try f.envelope("put", ["k2", "v"]))
            Issue.record("acknowledged an envelope whose block could not be written")
        } catch let e as OrderingRejection {
            #expect(e.status == 503)
        }
        #expect(o.channels().first?.stoppedReason?.contains("could not be written") == true)
        kv.failing.withLock { $0 = false }
        await #expect(throws: OrderingRejection.self) { try await o.broadcast(try f.envelope("put", ["k3", "v"])) }
        #expect(o.channels().first?.height == 2)
    }

    @Test func gracefulShutdownWritesEverythingAccepted() async throws {
        let f = try ChannelFixture()
        let o = try orderer(f, MemoryStore(columnFamilies: StorageLayout.columnFamilies))
        final class Tally: Sendable { let n = Mutex(0) }
        let acked = Tally()
        let envelopes = try (0..<300).map { try f.envelope("put", ["k\($0)", "v"]) }
        await withTaskGroup(of: Void.self) { group in
            for e in envelopes {
                group.addTask { if (try? await o.broadcast(e)) != nil { acked.n.withLock { $0 += 1 } } }
            }
            group.addTask { o.shutdown() }
        }
        let ledger = try #require(o.chain("records"))
        var written = 0
        for n in 1..<ledger.notifier.height {
            written += try #require(try ledger.block(number: n)).data.envelopes.count
        }
        #expect(written == acked.n.withLock { $0 })
        await #expect(throws: OrderingRejection.self) { try await o.broadcast(try f.envelope("put", ["after", "v"])) }
    }
}
