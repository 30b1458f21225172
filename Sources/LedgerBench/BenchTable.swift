import Foundation

/// One row of a benchmark table. `rate` is per second in `rateUnit`; `target`, when set, is the minimum
/// rate the issue asks for and `meetsTarget` says whether this run met it.
public struct BenchRow: Encodable, Sendable {
    public var operation: String
    public var count: Int
    public var seconds: Double
    public var rate: Double
    public var rateUnit: String
    public var p50Micros: Double?
    public var p99Micros: Double?
    public var target: Double?
    /// CPU time (all processes involved) per operation, where measured.
    public var cpuMicrosPerOp: Double?
    /// An upper bound on p50 the issue asks for, where it asks for one.
    public var p50TargetMicros: Double?
    /// An upper bound on `rate` (for costs such as bytes per transaction), where one is asked for.
    public var rateAtMost: Double?
    /// Each run's rate when the row is the median of several (`--repeat`).
    public var runRates: [Double]?
    /// `rate` as a percentage of what the operation's signatures alone allow on this machine, timed
    /// next to the run (`SignatureBound`): comparable across runs when the machine's speed drifts.
    public var percentOfBound: Double?
    /// Context switches of every process involved per operation, where measured: how many times the
    /// operation's work moved between threads (each a wake-up), which dominates at one in flight.
    public var switchesPerOp: Double?
    public var meetsTarget: Bool? {
        var verdicts = [Bool]()
        if let t = target { verdicts.append(rate >= t) }
        if let l = p50TargetMicros { verdicts.append((p50Micros ?? .infinity) <= l) }
        if let m = rateAtMost { verdicts.append(rate <= m) }
        return verdicts.isEmpty ? nil : !verdicts.contains(false)
    }

    public init(
        operation: String, count: Int, seconds: Double, rate: Double, rateUnit: String, p50Micros: Double? = nil,
        p99Micros: Double? = nil, target: Double? = nil,
        cpuMicrosPerOp: Double? = nil, p50TargetMicros: Double? = nil, rateAtMost: Double? = nil,
        runRates: [Double]? = nil, percentOfBound: Double? = nil, switchesPerOp: Double? = nil
    ) {
        self.switchesPerOp = switchesPerOp
        self.percentOfBound = percentOfBound
        self.rateAtMost = rateAtMost
        self.runRates = runRates
        self.operation = operation
        self.count = count
        self.seconds = seconds
        self.rate = rate
        self.rateUnit = rateUnit
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.target = target
        self.cpuMicrosPerOp = cpuMicrosPerOp
        self.p50TargetMicros = p50TargetMicros
    }

    enum CodingKeys: String, CodingKey {
        case operation, count, seconds, rate, rateUnit, p50Micros, p99Micros, target, meetsTarget, cpuMicrosPerOp,
            p50TargetMicros, rateAtMost, runRates, percentOfBound, switchesPerOp
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(operation, forKey: .operation)
        try c.encode(count, forKey: .count)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(rate, forKey: .rate)
        try c.encode(rateUnit, forKey: .rateUnit)
        try c.encodeIfPresent(p50Micros, forKey: .p50Micros)
        try c.encodeIfPresent(p99Micros, forKey: .p99Micros)
        try c.encodeIfPresent(target, forKey: .target)
        try c.encodeIfPresent(meetsTarget, forKey: .meetsTarget)
        try c.encodeIfPresent(cpuMicrosPerOp, forKey: .cpuMicrosPerOp)
        try c.encodeIfPresent(p50TargetMicros, forKey: .p50TargetMicros)
        try c.encodeIfPresent(rateAtMost, forKey: .rateAtMost)
        try c.encodeIfPresent(runRates, forKey: .runRates)
        try c.encodeIfPresent(percentOfBound, forKey: .percentOfBound)
        try c.encodeIfPresent(switchesPerOp, forKey: .switchesPerOp)
    }
}

public struct BenchReport: Encodable, Sendable {
    public var title: String
    public var environment: [String: String]
    public var rows: [BenchRow]

    public init(title: String, environment: [String: String], rows: [BenchRow]) {
        self.title = title
        self.environment = environment
        self.rows = rows
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// A fixed-width text table.
    public func table() -> String {
        let withCPU = rows.contains { $0.cpuMicrosPerOp != nil }
        let withBound = rows.contains { $0.percentOfBound != nil }
        let withSwitches = rows.contains { $0.switchesPerOp != nil }
        let header =
            ["operation", "count", "seconds", "rate", "p50", "p99"] + (withCPU ? ["cpu/op"] : [])
            + (withSwitches ? ["switches/op"] : []) + (withBound ? ["of bound"] : []) + ["target", "ok"]
        var lines = [[String]]()
        for r in rows {
            var target = [
                r.target.map { ">= \(Self.grouped($0))" }, r.rateAtMost.map { "<= \(Self.grouped($0))" },
                r.p50TargetMicros.map { "p50 <= \(Self.duration($0))" },
            ].compactMap { $0 }.joined(separator: ", ")
            if target.isEmpty { target = "-" }
            // A median of several runs shows their spread too.
            let spread =
                r.runRates.flatMap { rates in
                    rates.count > 1 ? " (\(Self.grouped(rates.min()!))–\(Self.grouped(rates.max()!)))" : nil
                } ?? ""
            var cells = [
                r.operation, "\(r.count)", String(format: "%.3f", r.seconds),
                "\(Self.grouped(r.rate)) \(r.rateUnit)\(spread)",
                r.p50Micros.map(Self.duration) ?? "-", r.p99Micros.map(Self.duration) ?? "-",
            ]
            if withCPU { cells.append(r.cpuMicrosPerOp.map(Self.duration) ?? "-") }
            if withSwitches { cells.append(r.switchesPerOp.map { String(format: "%.1f", $0) } ?? "-") }
            if withBound { cells.append(r.percentOfBound.map { String(format: "%.0f %%", $0) } ?? "-") }
            cells += [target, r.meetsTarget.map { $0 ? "yes" : "NO" } ?? "-"]
            lines.append(cells)
        }
        var widths = header.map(\.count)
        for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
        func row(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(
                separator: "  ")
        }
        var out = [title]
        for (k, v) in environment.sorted(by: { $0.key < $1.key }) { out.append("  \(k): \(v)") }
        out.append(row(header))
        out.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        out += lines.map(row)
        return out.joined(separator: "\n")
    }

    static func grouped(_ v: Double) -> String {
        let f = NumberFormatter()
        f.numberStyle = .decimal
        f.maximumFractionDigits = v < 100 ? 1 : 0
        return f.string(from: NSNumber(value: v)) ?? "\(v)"
    }

    static func duration(_ micros: Double) -> String {
        micros >= 1000 ? String(format: "%.2f ms", micros / 1000) : String(format: "%.1f µs", micros)
    }
}

/// Monotonic time in nanoseconds.
@inline(__always)
func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// The median of some values (the upper middle one for an even count), nil when empty.
public func median(_ values: [Double]) -> Double? { percentile(values.sorted(), 0.5) }

/// The `p` quantile of an ascending array (nearest rank), nil when empty.
public func percentile(_ sorted: [Double], _ p: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let i = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[i]
}
