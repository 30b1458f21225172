import LedgerProtos

/// What a `SubmitFlow` needs from the world to run: the calls to peers and orderers, a commit watch,
/// and a clock. The client SDK's gateway implements it over gRPC; the node submitting in its own name
/// over its own peer (in-process) and the channel's orderers; tests over in-memory doubles.
public protocol SubmitTransport: Sendable {
    func endorse(
        _ proposal: Medledger_SignedProposal, on peer: SubmitFlow.Peer
    ) async -> Result<Medledger_ProposalResponse, SubmitFailure>
    /// nil when the orderer at `endpoint` acknowledged the envelope.
    func broadcast(_ envelope: Medledger_Envelope, endpoint: Int) async -> SubmitFailure?
    /// Starts watching for `txID`'s commit and returns the wait: a commit after this call returns is
    /// seen.
    func watch(txID: String, timeoutMs: Int64) async throws(SubmitFailure) -> @Sendable () async -> SubmitWatchOutcome
    /// The submission ended without its commit: drop the watch.
    func stopWatching(txID: String)
    func nowMs() -> Int64
    func sleep(untilMs: Int64) async
}

/// How a commit watch ended.
public enum SubmitWatchOutcome: Sendable, Equatable {
    case committed(SubmitCommit)
    /// The watch's time ran out without the commit.
    case notSeen
    /// The watch ended without being able to tell (the peer could not be asked): the transaction may
    /// yet commit.
    case unknown(String)
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
    typealias Call = @Sendable () async -> Event

    /// Runs the flow to its end over `transport`. Calls that the flow asks for together run
    /// concurrently as tasks; when there is one thing to wait for (the first endorsement, a broadcast,
    /// then the commit) it is awaited in place, so the common path makes no task and no stream.
    public static func run<T: SubmitTransport>(
        _ flow: SubmitFlow, over transport: T
    ) async -> Result<Committed, Failure> {
        var flow = flow
        var background = Background()
        /// The commit watch, registered and not yet being awaited.
        var watch: Call?
        var watching = false
        defer { background.cancel() }
        var pending = flow.start(nowMs: transport.nowMs())
        while true {
            var calls: [(call: Call, isTimer: Bool)] = []
            for action in pending {
                switch action {
                case .committed(let c): return .success(c)
                case .failed(let f):
                    if watching { transport.stopWatching(txID: flow.txID) }
                    return .failure(f)
                case .endorse(let signed, let peers):
                    for peer in peers {
                        calls.append(({ .endorsement(from: peer, await transport.endorse(signed, on: peer)) }, false))
                    }
                case .broadcast(let envelope, let endpoint, let attempt):
                    calls.append(
                        (
                            {
                                .ordering(
                                    attempt: attempt, refusal: await transport.broadcast(envelope, endpoint: endpoint))
                            }, false
                        ))
                case .wake(let at):
                    calls.append(
                        (
                            {
                                await transport.sleep(untilMs: at)
                                return .tick
                            }, true
                        ))
                case .watchCommit(let txID, let timeoutMs):
                    let wait: @Sendable () async -> SubmitWatchOutcome
                    do { wait = try await transport.watch(txID: txID, timeoutMs: timeoutMs) } catch {
                        return .failure(error)
                    }
                    watching = true
                    watch = {
                        switch await wait() {
                        case .committed(let c): return .commit(code: c.code, blockNumber: c.blockNumber)
                        case .notSeen: return .commitNotSeen(unknown: nil)
                        case .unknown(let why): return .commitNotSeen(unknown: why)
                        }
                    }
                }
            }
            let event: Event?
            if background.outstanding == 0, calls.count == 1, watch == nil || !calls[0].isTimer {
                // A commit that lands meanwhile waits in its watch until this call returns.
                event = await calls[0].call()
            } else if background.outstanding == 0, calls.isEmpty, let w = watch {
                watch = nil
                event = await w()
            } else {
                for (call, _) in calls { background.start(call) }
                if let w = watch {
                    watch = nil
                    background.start(w)
                }
                event = await background.next()
            }
            guard let event else { return .failure(Failure(503, "the submission of \(flow.txID) was cancelled")) }
            pending = flow.handle(event, nowMs: transport.nowMs())
        }
    }

    /// Calls running as tasks, each answering one event on a stream made at the first.
    struct Background {
        var stream: (events: AsyncStream<Event>.Iterator, sink: AsyncStream<Event>.Continuation)?
        var tasks: [Task<Void, Never>] = []
        var outstanding = 0

        mutating func start(_ call: @escaping Call) {
            if stream == nil {
                let (events, sink) = AsyncStream.makeStream(of: Event.self)
                stream = (events.makeAsyncIterator(), sink)
            }
            let sink = stream!.sink
            tasks.append(Task { sink.yield(await call()) })
            outstanding += 1
        }

        /// The next answer; nil when the caller was cancelled.
        mutating func next() async -> Event? {
            guard outstanding > 0, var s = stream else { return nil }
            let event = await s.events.next()
            stream = s
            if event != nil { outstanding -= 1 }
            return event
        }

        func cancel() {
            for task in tasks { task.cancel() }
            stream?.sink.finish()
        }
    }
}
