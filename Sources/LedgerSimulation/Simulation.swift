import Crypto
import Foundation
import HeapModule
import LedgerChannel
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerStorage
import X509

/// The whole network in one thread from one seed: a solo orderer, hospital peers and clients as
/// state machines (the real ordering rules, endorser and commit path on simulated disks), the
/// network and the clocks simulated, faults drawn from the seed. After `steps` events the faults
/// stop, partitions heal, crashed nodes restart, and the run must converge; the referee checks the
/// invariants after every event and at the end.
public final class Simulation {
    let options: SimulationOptions
    private var random: SimRandom
    private var queue = Heap<SimEvent>()
    private var sequence = 0
    private var timeMs: Int64 = 0
    private var step = 0
    /// Simulated time zero (a fixed instant: certificates and blocks are judged against it).
    static let epoch = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
    private let cast: SimCast
    private let orderer: SimOrderer
    private let peers: [SimPeer]
    private let clients: [SimClient]
    private var down = Set<SimNode>()
    private var partitioned = Set<SimNode>()
    private var clockOffsetMs: [SimNode: Int64] = [:]
    private var operations: [SimOperation] = []
    private var referee = Referee()
    private var workload: SimWorkload
    /// Operations the orderer acknowledged (its own record), in the order it did.
    private var ackedByOrderer = Set<Int>()
    private var ackedInOrder: [Int] = []
    private var trace = SHA256()
    private var stats = SimStats()
    private var healing = false
    /// A cut tick is on the queue for the orderer.
    private var cutScheduled = false
    /// The SA's revocation of one doctor, once started.
    private var revocation: Revocation?

    public static func run(_ options: SimulationOptions) throws -> SimulationResult {
        try Simulation(options).run()
    }

    init(_ options: SimulationOptions) throws {
        guard (1...SimCast.hospitals.count).contains(options.peers) else {
            throw SimOptionError(description: "--peers must be 1 to \(SimCast.hospitals.count)")
        }
        guard options.clients >= 1, options.keys >= 1, options.steps >= 0 else {
            throw SimOptionError(description: "--clients and --keys must be at least 1")
        }
        self.options = options
        random = SimRandom(seed: options.seed)
        let cast = try SimCast(
            peers: options.peers, clients: options.clients, blockMaxTx: options.blockMaxTx, at: Self.epoch)
        self.cast = cast
        orderer = try SimOrderer(identity: cast.orderer, genesis: cast.genesis, disk: SimDisk())
        // Planted after the join: the genesis block is durable, every block after it is not.
        orderer.disk.ignoresSync = options.bugs.contains(.ordererSkipsFsync)
        peers = try cast.peers.enumerated().map { i, identity in
            let peer = try SimPeer(index: i, identity: identity, genesis: cast.genesis, disk: SimDisk())
            peer.disk.ignoresSync = options.bugs.contains(.peerSkipsFsync)
            return peer
        }
        // Doctors first, then each hospital's management node (homed on its own hospital's peer).
        clients = (cast.clients + cast.managers).enumerated().map { i, identity in
            SimClient(
                index: i, identity: identity, home: i < cast.clients.count ? i % options.peers : i - cast.clients.count)
        }
        workload = SimWorkload(
            cast: cast, keys: options.keys, leaksPlaintext: options.bugs.contains(.doctorLeaksPlaintext))
        for node in peers.indices.map(SimNode.peer) + clients.indices.map(SimNode.client) {
            schedule(.tick(node), after: Int64(random.int(0..<5)))
        }
    }

    func run() throws -> SimulationResult {
        // An error no fault explains (a node that cannot reopen its ledger, a commit refused for a
        // reason other than the injected disk failure) is a finding like any broken invariant.
        do {
            while step < options.steps, referee.violation == nil, let event = queue.popMin() {
                try handle(event)
                try adminStep()
                injectFaults()
            }
            if referee.violation == nil { try heal() }
        } catch {
            referee.fail(step, "unexpected error: \(error)")
        }
        if referee.violation == nil { finalChecks() }
        let violation = referee.violation
        let shortest = violation.map { min($0.step, options.steps) } ?? options.steps
        return SimulationResult(
            options: options, events: step, traceHash: Hex.encode(trace.finalize()),
            verdictHash: referee.verdictDigest(),
            violation: violation, stats: stats, reproduce: options.command(steps: shortest))
    }

    // MARK: time, messages, trace

    private func schedule(_ kind: SimEvent.Kind, after ms: Int64) {
        sequence += 1
        queue.insert(SimEvent(time: timeMs + ms, sequence: sequence, kind: kind))
    }

    /// The node's clock: simulated time plus its own offset (clock faults).
    private func now(_ node: SimNode) -> Date {
        Self.epoch.addingTimeInterval(Double(timeMs + clockOffsetMs[node, default: 0]) / 1000)
    }

    private func note(_ line: String) {
        trace.update(data: Array("\(step) \(timeMs) \(line)\n".utf8))
    }

    /// Sends through the simulated network: latency of 1–4 ms, and (while faults are on) loss,
    /// duplication and long delays. A partitioned sender or receiver loses the message.
    private func send(from: SimNode, _ outgoing: [Outgoing]) {
        for (to, message) in outgoing {
            if partitioned.contains(from) || partitioned.contains(to) { continue }
            let faulty = !healing
            if faulty, options.faults.contains(.drop), random.chance(0.02) {
                stats.dropped += 1
                note("drop \(from)->\(to) \(message.summary)")
                continue
            }
            var copies = 1
            if faulty, options.faults.contains(.duplicate), random.chance(0.02) {
                copies = 2
                stats.duplicated += 1
            }
            for _ in 0..<copies {
                var latency = Int64(1 + random.int(0..<4))
                if faulty, options.faults.contains(.delay), random.chance(0.03) {
                    latency += Int64(random.int(20..<300))
                    stats.delayed += 1
                }
                schedule(.deliver(from: from, to: to, message), after: latency)
            }
        }
    }

    // MARK: events

    private func handle(_ event: SimEvent) throws {
        timeMs = event.time
        step += 1
        switch event.kind {
        case .deliver(let from, let to, let message):
            guard !down.contains(to), !partitioned.contains(to), !partitioned.contains(from) else {
                note("lost \(from)->\(to) \(message.summary)")
                return
            }
            note("\(from)->\(to) \(message.summary)")
            try deliver(message, from: from, to: to)
        case .tick(let node):
            guard !down.contains(node) else { return }
            try tick(node)
        case .restart(let node):
            try restart(node)
        case .heal(let node):
            partitioned.remove(node)
            note("heal \(node)")
        }
    }

    private func deliver(_ message: SimMessage, from: SimNode, to: SimNode) throws {
        switch (to, message) {
        case (.orderer, .broadcast(let op, let attempt, let envelope)):
            guard case .client(let c) = from else { return }
            ordererStep { try orderer.broadcast(envelope, op: op, attempt: attempt, from: c, now: now(.orderer)) }
        case (.orderer, .pull(let height)):
            guard case .peer(let p) = from else { return }
            send(from: .orderer, orderer.subscribe(peer: p, from: height))
        case (.peer(let i), .endorse(let op, let proposal)):
            send(from: to, [(from, .endorsed(op: op, peer: i, answer: peers[i].endorse(proposal, now: now(to))))])
        case (.peer(let i), .blocks(let blocks)):
            receive(blocks, at: i)
        case (.peer(let i), .status(let op, let txID)):
            send(from: to, [(from, .statusAnswer(op: op, location: peers[i].status(of: txID)))])
        case (.client(let c), _):
            clientReceives(message, client: c)
        default:
            referee.fail(step, "\(to) got a message it does not handle: \(message.summary)")
        }
    }

    /// Runs an orderer action; a disk failure crashes the orderer. Blocks it wrote are checked
    /// against what everyone else has at those heights; its acknowledgements are recorded.
    private func ordererStep(_ action: () throws -> [Outgoing]) {
        let before = orderer.height
        let out: [Outgoing]
        do { out = try action() } catch let e as SimCrash {
            crash(.orderer, why: e.reason)
            return
        } catch {
            referee.fail(step, "the orderer failed: \(error)")
            return
        }
        for n in before..<orderer.height {
            if let b = try? orderer.ledger.block(number: n) {
                referee.sawBlock(n, header: b.header.headerHash, by: .orderer, step: step)
            }
            stats.blocks = max(stats.blocks, n)
            note("orderer wrote block \(n)")
        }
        for op in orderer.takeAcknowledged() where ackedByOrderer.insert(op).inserted { ackedInOrder.append(op) }
        send(from: .orderer, out)
        if orderer.height > before { send(from: .orderer, orderer.push()) }
        // Adaptive batching: what waits in the cutter is cut at the next tick, 1 ms on.
        if orderer.isPending, !cutScheduled {
            cutScheduled = true
            schedule(.tick(.orderer), after: 1)
        }
    }

    private func receive(_ blocks: [Medledger_Block], at i: Int) {
        do {
            for (block, receipt) in try peers[i].receive(blocks, now: timeMs) {
                referee.sawBlock(block.header.number, header: block.header.headerHash, by: .peer(i), step: step)
                referee.sawCommit(receipt, codes: receipt.validationCodes, by: i, step: step)
                note(
                    "peer\(i) committed block \(receipt.blockNumber) codes \(receipt.validationCodes.map(\.rawValue))"
                )
            }
        } catch let e as SimCrash {
            crash(.peer(i), why: e.reason)
        } catch {
            referee.fail(step, "peer\(i) refused a block the orderer delivered: \(error)")
        }
    }

    private func clientReceives(_ message: SimMessage, client c: Int) {
        if c == adminClient { return adminReceives(message) }
        let client = clients[c]
        let outcome: ([SimClient.Event], [Outgoing])
        switch message {
        case .endorsed(let op, let peer, let answer):
            outcome = client.endorsed(op: op, peer: peer, answer: answer, ms: timeMs)
        case .broadcastAnswer(let op, let attempt, let refusal):
            outcome = client.broadcastAnswer(op: op, attempt: attempt, refusal: refusal, ms: timeMs)
        case .statusAnswer(let op, let location):
            outcome = client.statusAnswer(op: op, location: location, ms: timeMs)
        default:
            referee.fail(step, "client\(c) got a message it does not handle: \(message.summary)")
            return
        }
        outcome.0.forEach(record)
        send(from: .client(c), outcome.1)
    }

    private func record(_ event: SimClient.Event) {
        switch event {
        case .abandoned(let op, let why):
            operations[op].abandoned = why
            stats.abandoned += 1
            if let r = revocation, r.done, operations[op].client == r.doctor { stats.refusedAfterRevocation += 1 }
            let kind: String
            if why.contains("timed out") {
                stats.endorsementTimeouts += 1
                kind = "endorsement timed out"
            } else if why.contains("disagree") {
                stats.endorserDisagreements += 1
                kind = "endorsers disagree"
            } else {
                stats.refusals += 1
                kind = "refused"
            }
            // The status, not the message: messages name serials and tx ids, which differ between runs.
            note("op\(op) abandoned: \(kind) \(why.prefix(while: { $0 != " " }))")
        case .assembled(let op, let answer):
            operations[op].answer = answer
        case .acknowledged(let op):
            operations[op].ordererAcknowledged = true
            stats.acknowledged += 1
            note("op\(op) acknowledged")
        case .committed(let op, let location):
            operations[op].committed = location
            if location.code == .valid { stats.committedValid += 1 } else { stats.committedInvalid += 1 }
            if location.code == .valid { committedValid(op: op, operations[op].intent) }
            note("op\(op) committed block \(location.blockNum) code \(location.code.rawValue)")
        }
    }

    /// The world learns what a valid medrecords operation made: a treatment or a consent to build on,
    /// a consent withdrawn.
    private func committedValid(op: Int, _ intent: SimIntent) {
        switch intent.kind {
        case .treatment:
            guard let patient = intent.patient, let doctor = intent.doctor else { return }
            workload.treatmentCommitted(answer: operations[op].answer, patient: patient, doctor: doctor)
            stats.treatments += 1
        case .record: stats.indexRecords += 1
        case .grant:
            guard let patient = intent.patient else { return }
            workload.consentCommitted(answer: operations[op].answer, patient: patient, op: op)
            stats.consents += 1
        case .usage: stats.usages += 1
        case .withdraw:
            guard let consent = intent.consent else { return }
            workload.consentWithdrawn(consent)
            stats.withdrawals += 1
        case .put, .add, .revoke: return
        }
    }

    private func tick(_ node: SimNode) throws {
        switch node {
        case .orderer:
            cutScheduled = false
            ordererStep { try orderer.tick(now: now(.orderer)) }
        case .peer(let i):
            send(from: node, peers[i].tick(now: timeMs))
            schedule(.tick(node), after: Int64(10 + random.int(0..<10)))
        case .client(let c):
            let client = clients[c]
            if client.isIdle, !healing, workload.startsNow(client: c, random: &random) {
                let op = operations.count
                let intent = try workload.intent(client: c, op: op, random: &random)
                let (operation, out) = try client.start(
                    op: op, intent: intent, peers: peers.count, needed: cast.endorsementsNeeded, now: now(node),
                    ms: timeMs, random: &random)
                operations.append(operation)
                stats.operations += 1
                note("op\(op) started by client\(c): \(intent.kind.rawValue)")
                send(from: node, out)
            } else {
                let (events, out) = client.tick(ms: timeMs)
                events.forEach(record)
                send(from: node, out)
            }
            schedule(.tick(node), after: Int64(3 + random.int(0..<10)))
        }
    }

    // MARK: faults

    private var servers: [SimNode] { [.orderer] + peers.indices.map(SimNode.peer) }

    private func crash(_ node: SimNode, why: String) {
        guard !down.contains(node) else { return }
        down.insert(node)
        switch node {
        case .orderer: orderer.disk.crash()
        case .peer(let i): peers[i].disk.crash()
        case .client: return
        }
        stats.crashes += 1
        note("crash \(node): \(why)")
        schedule(.restart(node), after: healing ? 1 : Int64(20 + random.int(0..<400)))
    }

    private func restart(_ node: SimNode) throws {
        guard down.remove(node) != nil else { return }
        switch node {
        case .orderer:
            try orderer.restart()
            cutScheduled = false
            // Everything it acknowledged must have survived, whatever the crash cut.
            let lost = ackedInOrder.filter { (try? orderer.ledger.transaction(id: operations[$0].txID)) == nil }
            referee.ordererRestarted(lostAcknowledged: lost, step: step)
        case .peer(let i): try peers[i].restart()
        case .client: break
        }
        note("restart \(node) at height \(node == .orderer ? orderer.height : peers[node.peerIndex!].height)")
        schedule(.tick(node), after: 1)
    }

    private func injectFaults() {
        guard !healing else { return }
        let f = options.faults
        if f.contains(.crash), random.chance(0.002) {
            crash(servers[random.int(0..<servers.count)], why: "power loss")
        }
        if f.contains(.disk), random.chance(0.001) {
            let node = servers[random.int(0..<servers.count)]
            disk(of: node).failNextWrite = true
            stats.diskFailures += 1
            note("disk of \(node) will fail its next write")
        }
        if f.contains(.partition), random.chance(0.002) {
            let all = servers + clients.indices.map(SimNode.client)
            let node = all[random.int(0..<all.count)]
            if partitioned.insert(node).inserted {
                stats.partitions += 1
                note("partition \(node)")
                schedule(.heal(node), after: Int64(50 + random.int(0..<750)))
            }
        }
        if f.contains(.clock), random.chance(0.001) {
            let node = servers[random.int(0..<servers.count)]
            let jump = Int64(random.int(1_000..<120_000)) * (random.chance(0.5) ? 1 : -1)
            clockOffsetMs[node] = max(-120_000, min(120_000, clockOffsetMs[node, default: 0] + jump))
            stats.clockJumps += 1
            note("clock of \(node) jumps \(jump) ms")
        }
    }

    private func disk(of node: SimNode) -> SimDisk {
        switch node {
        case .orderer: return orderer.disk
        case .peer(let i): return peers[i].disk
        case .client: preconditionFailure("clients have no disk here")
        }
    }

    // MARK: healing and the end

    /// Faults off, partitions healed, crashed nodes restarted, no new operations: every operation in
    /// flight must finish and every peer reach the orderer's height.
    private func heal() throws {
        healing = true
        note("heal all")
        partitioned.removeAll()
        for node in servers where down.contains(node) { try restart(node) }
        for f in [orderer.disk] + peers.map(\.disk) { f.failNextWrite = false }
        let limit = step + options.healSteps
        while referee.violation == nil, !converged {
            guard step < limit, let event = queue.popMin() else {
                let heights = peers.map(\.height)
                referee.fail(
                    step,
                    "no convergence \(options.healSteps) events after healing: orderer height \(orderer.height), peers \(heights), clients busy \(clients.filter { !$0.isIdle }.count)"
                )
                return
            }
            try handle(event)
            try adminStep()
        }
    }

    private var converged: Bool {
        down.isEmpty && clients.allSatisfy(\.isIdle) && peers.allSatisfy { $0.height == orderer.height }
            && revocation?.done != false
    }

    /// Every operation the orderer acknowledged, or a client saw committed, is on every peer with
    /// one verdict (the one the client saw, if it saw one).
    private func finalChecks() {
        for (op, o) in operations.enumerated()
        where ackedByOrderer.contains(op) || o.ordererAcknowledged || o.committed != nil {
            let locations = peers.map { $0.status(of: o.txID) }
            guard let first = locations[0], locations.allSatisfy({ $0 == first }) else {
                referee.fail(
                    step,
                    "op\(op) (acknowledged: \(o.ordererAcknowledged)) is not on every peer alike after healing: \(locations.map { $0.map(\.description) ?? "missing" })"
                )
                return
            }
            if let seen = o.committed, seen != first {
                referee.fail(step, "op\(op) was reported committed as \(seen) but peers hold \(first)")
                return
            }
        }
        // No update lost or applied twice: each counter is the number of its adds that are valid.
        for k in 0..<options.keys {
            let key = "k\(k)"
            let valid = operations.filter { op in
                op.intent.counterKey == key && peers[0].status(of: op.txID)?.code == .valid
            }.count
            for p in peers where p.counter(key) != valid {
                referee.fail(
                    step,
                    "counter \(key) is \(p.counter(key)) on peer\(p.index) but \(valid) adds of it committed valid")
                return
            }
        }
        // No record's plaintext, and no patient's name, on any disk (they exist only off chain).
        let disks = [(SimNode.orderer, orderer.disk)] + peers.map { (SimNode.peer($0.index), $0.disk) }
        for secret in workload.plaintexts + cast.patientNames.map({ Array($0.utf8) }) {
            for (node, disk) in disks where disk.everHeld(secret) {
                referee.fail(
                    step,
                    "plaintext or a real name reached the disk of \(node): \(String(decoding: secret.prefix(40), as: UTF8.self))…"
                )
                return
            }
        }
        checkRevocation()
        checkConsents()
        note("end: height \(orderer.height), operations \(operations.count)")
    }

    // MARK: the SA revokes a doctor

    struct Revocation {
        var doctor: Int
        var op: Int
        var envelope: [UInt8]
        var sentAt: Int64
        var attempt = 0
        /// Acknowledged by the orderer, or seen committed on a peer (after a 409: an earlier copy).
        var done = false
    }

    static let revokeAt = 1_000

    /// The SA's administrator: a client with no tick of its own, after the doctors and managers.
    private var adminClient: Int { clients.count }

    /// At event `revokeAt` (not a fraction of `--steps`, so a reproducer cut short at a later step
    /// replays it) the SA revokes one doctor: the CA's new CRL in a CRL-only configuration update, sent
    /// to the orderer again every 200 ms until it is acknowledged or seen committed.
    private func adminStep() throws {
        guard cast.clients.count >= 2 else { return }
        if revocation == nil {
            guard step >= Self.revokeAt, !healing, !down.contains(.orderer) else { return }
            try startRevocation()
        }
        guard var r = revocation, !r.done else { return }
        if peers.indices.contains(where: {
            !down.contains(.peer($0)) && peers[$0].status(of: operations[r.op].txID) != nil
        }) {
            r.done = true
            revocation = r
            return
        }
        guard timeMs - r.sentAt >= 200 else { return }
        r.attempt += 1
        r.sentAt = timeMs
        revocation = r
        send(from: .client(adminClient), [(.orderer, .broadcast(op: r.op, attempt: r.attempt, envelope: r.envelope))])
    }

    private func startRevocation() throws {
        let doctor = random.int(0..<cast.clients.count)
        let der = try cast.crlRevoking(doctor: doctor, number: 1, at: now(.orderer))
        guard
            let config = ConfigTransaction.crlUpdate(
                of: orderer.currentContext, with: try RevocationList.parse(der), der: der)
        else {
            referee.fail(step, "the CA's CRL changes nothing in the channel's configuration")
            return
        }
        let envelope = try ConfigTransaction.envelope(
            config: config, admins: [cast.admin], submitter: cast.admin, at: now(.orderer))
        let txID = try Medledger_Payload(serializedBytes: envelope.payload).channelHeader.txID
        let op = operations.count
        operations.append(
            SimOperation(
                client: adminClient, txID: txID, intent: SimIntent(kind: .revoke, chaincode: "", function: "", args: [])
            ))
        stats.operations += 1
        let r = Revocation(doctor: doctor, op: op, envelope: try envelope.serializedBytes(), sentAt: timeMs)
        revocation = r
        note("op\(op) started by the SA: revoke client\(doctor)")
        send(from: .client(adminClient), [(.orderer, .broadcast(op: op, attempt: 0, envelope: r.envelope))])
    }

    private func adminReceives(_ message: SimMessage) {
        guard case .broadcastAnswer(let op, _, let refusal) = message, var r = revocation, op == r.op else { return }
        switch refusal?.status {
        case nil:
            guard !r.done else { return }
            r.done = true
            revocation = r
            operations[op].ordererAcknowledged = true
            note("op\(op) acknowledged: client\(r.doctor) revoked")
        case 409, 503: return  // in already (its commit is awaited), or no leader: the timer sends again
        default: referee.fail(step, "the orderer refused the SA's revocation: \(refusal!)")
        }
    }

    /// After the configuration block that revokes the doctor, no transaction of theirs is valid, on
    /// any peer: the endorsers, the orderer and the validators all refuse a revoked creator.
    private func checkRevocation() {
        guard let r = revocation else { return }
        let doctor = cast.clients[r.doctor]
        let creator = Data(doctor.serialized)
        for p in peers {
            let ledger = p.channel.ledger
            guard let context = try? ChannelContext.current(in: ledger),
                let serial = try? Certificate(pemEncoded: doctor.certificatePEM).serialNumber,
                context.members.crl(of: doctor.org)?.revokedSerials.contains(serial) == true
            else {
                referee.fail(step, "peer\(p.index) holds no configuration revoking client\(r.doctor)")
                return
            }
            for n in (context.configBlock + 1)..<ledger.height {
                guard let block = try? ledger.block(number: n) else { continue }
                for (i, bytes) in block.data.envelopes.enumerated() where block.metadata.validationCodes[i] == .valid {
                    guard let env = try? Medledger_Envelope(serializedBytes: bytes),
                        let payload = try? Medledger_Payload(serializedBytes: env.payload),
                        payload.signatureHeader.creator == creator
                    else { continue }
                    referee.fail(
                        step,
                        "client\(r.doctor) was revoked in block \(context.configBlock), yet its transaction in block \(n) is valid on peer\(p.index)"
                    )
                    return
                }
            }
        }
        stats.revocations += 1
    }
}

extension Simulation {
    /// Every valid D_UE usage record comes after its consent's grant and before any valid withdrawal of
    /// it, in chain order on every peer: a usage endorsed while the consent stood but ordered after
    /// its withdrawal must be invalid (it read the consent, so MVCC refuses it).
    func checkConsents() {
        func position(_ op: Int, on p: SimPeer) -> (UInt64, UInt64)? {
            guard let l = p.status(of: operations[op].txID), l.code == .valid else { return nil }
            return (l.blockNum, l.txNum)
        }
        for p in peers {
            var withdrawnAt: [Int: (UInt64, UInt64)] = [:]
            for op in operations.indices where operations[op].intent.kind == .withdraw {
                guard let c = operations[op].intent.consent, let at = position(op, on: p) else { continue }
                withdrawnAt[c] = withdrawnAt[c].map { $0 < at ? $0 : at } ?? at
            }
            for op in operations.indices where operations[op].intent.kind == .usage {
                guard let c = operations[op].intent.consent else { continue }
                guard let used = position(op, on: p) else {
                    // Endorsed while the consent stood, ordered after its withdrawal: refused by MVCC.
                    if p.index == 0, let l = p.status(of: operations[op].txID), let w = withdrawnAt[c],
                        w < (l.blockNum, l.txNum)
                    {
                        stats.usagesRacingWithdrawal += 1
                    }
                    continue
                }
                let consent = workload.consents[c]
                guard let granted = position(consent.op, on: p), granted < used else {
                    referee.fail(step, "op\(op): a usage record is valid on peer\(p.index) before its consent's grant")
                    return
                }
                if let withdrawn = withdrawnAt[c], withdrawn < used {
                    referee.fail(
                        step,
                        "op\(op): a usage record is valid on peer\(p.index) at block \(used.0) tx \(used.1), after its consent was withdrawn at block \(withdrawn.0) tx \(withdrawn.1)"
                    )
                    return
                }
            }
        }
    }
}

extension SimNode {
    var peerIndex: Int? { if case .peer(let i) = self { return i } else { return nil } }
}
