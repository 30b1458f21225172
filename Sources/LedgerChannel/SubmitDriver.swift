import LedgerProtos

/// What a `SubmitFlow` needs from the world to run: the calls to peers and orderers, a commit watch,
/// and a clock. The client SDK's gateway implements it over gRPC; the node submitting in its own name
/// over its own peer (in-process) and the channel's orderers; tests over in-memory doubles.
public protocol SubmitTransport: Sendable {
    associatedtype Peer: Hashable & Sendable
    func endorse(
        _ proposal: Medledger_SignedProposal, on peer: Peer
    ) async -> Result<Medledger_ProposalResponse, SubmitFailure>
    /// nil when the orderer at `endpoint` acknowledged the envelope.
    func broadcast(_ envelope: Medledger_Envelope, endpoint: Int) async -> SubmitFailure?
    /// Starts watching for `txID`'s commit and returns the wait: a commit after this call returns is
    /// seen. The wait answers nil when the commit was not seen within `timeoutMs`.
    func watch(txID: String, timeoutMs: Int64) async throws(SubmitFailure) -> @Sendable () async -> SubmitCommit?
    /// The submission ended without its commit: drop the watch.
    func stopWatching(txID: String)
    func nowMs() -> Int64
    func sleep(untilMs: Int64) async
}

/// Where a transaction committed.
public struct SubmitCommit: Sendable, Equatable {
    public var code: Medledger_TxValidationCode
    public var blockNumber: UInt64
    public init(code: Medledger_TxValidationCode, blockNumber: UInt64) {
        self.code = code
        self.blockNumber = blockNumber
    }
}

extension SubmitFlow {
    /// Runs the flow to its end over `transport`. Calls that the flow asks for together run
    /// concurrently; a lone call (the first endorsement, one broadcast) is awaited in place, which
    /// keeps the common path free of task hops.
    public static func run<T: SubmitTransport>(
        _ flow: SubmitFlow, over transport: T
    ) async -> Result<Committed, Failure> where T.Peer == Peer {
        var flow = flow
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        var iterator = events.makeAsyncIterator()
        var tasks: [Task<Void, Never>] = []
        var watching = false
        defer {
            for task in tasks { task.cancel() }
            sink.finish()
        }
        var pending = flow.start(nowMs: transport.nowMs())
        while true {
            var calls: [@Sendable () async -> Event] = []
            for action in pending {
                switch action {
                case .committed(let c): return .success(c)
                case .failed(let f):
                    if watching { transport.stopWatching(txID: flow.txID) }
                    return .failure(f)
                case .endorse(let signed, let peers):
                    for peer in peers {
                        calls.append { .endorsement(from: peer, await transport.endorse(signed, on: peer)) }
                    }
                case .broadcast(let envelope, let endpoint, let attempt):
                    calls.append {
                        .ordering(attempt: attempt, refusal: await transport.broadcast(envelope, endpoint: endpoint))
                    }
                case .wake(let at):
                    calls.append {
                        await transport.sleep(untilMs: at)
                        return .tick
                    }
                case .watchCommit(let txID, let timeoutMs):
                    let wait: @Sendable () async -> SubmitCommit?
                    do { wait = try await transport.watch(txID: txID, timeoutMs: timeoutMs) } catch {
                        return .failure(error)
                    }
                    watching = true
                    tasks.append(
                        Task {
                            let c = await wait()
                            sink.yield(c.map { .commit(code: $0.code, blockNumber: $0.blockNumber) } ?? .commitNotSeen)
                        })
                }
            }
            let event: Event?
            if calls.count == 1 {
                event = await calls[0]()
            } else {
                for call in calls { tasks.append(Task { sink.yield(await call()) }) }
                event = await iterator.next()
            }
            guard let event else { return .failure(Failure(503, "the submission of \(flow.txID) was cancelled")) }
            pending = flow.handle(event, nowMs: transport.nowMs())
        }
    }
}
