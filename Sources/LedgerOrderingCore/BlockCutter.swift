/// Batch parameters, as Fabric's orderer has them.
public struct BatchConfig: Sendable, Equatable {
    /// Most transactions in a block.
    public var maxMessageCount = 500
    /// No envelope larger than this is accepted at all.
    public var absoluteMaxBytes = 10 * 1024 * 1024
    /// A block is cut before it would pass this size.
    public var preferredMaxBytes = 2 * 1024 * 1024
    /// How long a pending batch may wait for more transactions.
    public var batchTimeoutSeconds = 0.05

    public init() {}
}

/// The block cutter: a pure state machine deciding when pending envelopes become a block. It never
/// looks at a clock itself: the orderer calls `timeout()` when the batch timer (started when the first
/// envelope of a batch arrives) fires.
///
/// - a configuration transaction is always alone in its block (what was pending is cut first);
/// - an envelope that would make the batch pass `preferredMaxBytes` cuts the batch first;
/// - an envelope larger than `preferredMaxBytes` goes alone;
/// - reaching `maxMessageCount` cuts.
public struct BlockCutter: Sendable {
    public enum Rejection: Error, Equatable, CustomStringConvertible {
        case tooLarge(size: Int, limit: Int)

        public var description: String {
            switch self {
            case .tooLarge(let s, let l): return "envelope is \(s) bytes, over the orderer's absolute limit of \(l)"
            }
        }
    }

    /// Why a batch became a block (the operations endpoint counts them: a channel whose blocks are
    /// all cut by `count` wants a larger `maxMessageCount`).
    public enum CutReason: String, Sendable, CaseIterable {
        /// A configuration transaction, alone in its block (or what was pending before it).
        case config
        /// An envelope larger than `preferredMaxBytes`, alone (or what was pending before it).
        case oversized
        /// The next envelope would have passed `preferredMaxBytes`.
        case size
        /// `maxMessageCount` reached.
        case count
        /// The batch timer fired, or the writer was idle (adaptive batching), or the orderer stopped.
        case timeout
    }

    /// What `ordered` decided: zero, one or two batches to turn into blocks (each with why it was
    /// cut), and whether a batch is now pending (so the caller starts or keeps the timer).
    public struct Decision: Sendable, Equatable {
        public var batches: [[[UInt8]]]
        public var reasons: [CutReason]
        public var pending: Bool

        public init(batches: [[[UInt8]]], reasons: [CutReason], pending: Bool) {
            self.batches = batches
            self.reasons = reasons
            self.pending = pending
        }
    }

    public let config: BatchConfig
    private var pendingEnvelopes: [[UInt8]] = []
    private var pendingBytes = 0

    public init(config: BatchConfig) { self.config = config }

    public var isPending: Bool { !pendingEnvelopes.isEmpty }

    public mutating func ordered(_ envelope: [UInt8], isConfig: Bool = false) throws(Rejection) -> Decision {
        let size = envelope.count
        guard size <= config.absoluteMaxBytes else { throw .tooLarge(size: size, limit: config.absoluteMaxBytes) }
        var batches = [[[UInt8]]]()
        var reasons = [CutReason]()
        if isConfig || size > config.preferredMaxBytes {
            let reason: CutReason = isConfig ? .config : .oversized
            if let cut = cut() { (batches, reasons) = ([cut], [reason]) }
            batches.append([envelope])
            reasons.append(reason)
            return Decision(batches: batches, reasons: reasons, pending: false)
        }
        if pendingBytes + size > config.preferredMaxBytes, let cut = cut() { (batches, reasons) = ([cut], [.size]) }
        pendingEnvelopes.append(envelope)
        pendingBytes += size
        if pendingEnvelopes.count >= config.maxMessageCount, let cut = cut() {
            batches.append(cut)
            reasons.append(.count)
        }
        return Decision(batches: batches, reasons: reasons, pending: isPending)
    }

    /// The batch timer fired: whatever is pending becomes a block.
    public mutating func timeout() -> [[UInt8]]? { cut() }

    private mutating func cut() -> [[UInt8]]? {
        guard !pendingEnvelopes.isEmpty else { return nil }
        defer {
            pendingEnvelopes = []
            pendingBytes = 0
        }
        return pendingEnvelopes
    }
}
