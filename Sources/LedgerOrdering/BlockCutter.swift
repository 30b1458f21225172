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

    /// What `ordered` decided: zero, one or two batches to turn into blocks, and whether a batch is now
    /// pending (so the caller starts or keeps the timer).
    public struct Decision: Sendable, Equatable {
        public var batches: [[[UInt8]]]
        public var pending: Bool

        public init(batches: [[[UInt8]]], pending: Bool) {
            self.batches = batches
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
        if isConfig || size > config.preferredMaxBytes {
            if let cut = cut() { batches.append(cut) }
            batches.append([envelope])
            return Decision(batches: batches, pending: false)
        }
        if pendingBytes + size > config.preferredMaxBytes, let cut = cut() { batches.append(cut) }
        pendingEnvelopes.append(envelope)
        pendingBytes += size
        if pendingEnvelopes.count >= config.maxMessageCount, let cut = cut() { batches.append(cut) }
        return Decision(batches: batches, pending: isPending)
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
