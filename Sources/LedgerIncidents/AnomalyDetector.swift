import DequeModule
import Foundation
import Synchronization

/// Who did something, as the node's authentication saw it: a pseudo identity, never a real name.
public struct Subject: Sendable, Hashable, Codable {
    public var pid: String
    public var org: String
    public var role: String

    public init(pid: String, org: String, role: String) {
        self.pid = pid
        self.org = org
        self.role = role
    }
}

/// One thing an identity did that a rule may count.
public enum Observation: Sendable, Equatable {
    /// An authenticated call, from this network address (without the port).
    case call(address: String?)
    /// A call or proposal refused with this status (only 401, 403 and 404 count).
    case refused(status: Int)
    /// Records of these patients (PIDs) were asked for.
    case patientsRead([String])
    /// Bytes sent from the object store.
    case downloaded(bytes: UInt64)
}

/// A rule that fired.
public struct Alert: Sendable, Codable, Equatable {
    public var rule: String
    public var kind: AnomalyRule.Kind
    public var action: AnomalyRule.Action
    public var subject: Subject
    public var at: Date
    /// What was counted (numbers and the window; no patient PIDs, no addresses).
    public var detail: String
}

/// Per-identity sliding windows over the node's traffic, checked against the rules. Pure: time is
/// passed in, nothing is written; the caller turns alerts into audit lines, metrics and suspensions.
///
/// Memory is bounded: each count rule keeps at most `threshold` entries per identity (a download
/// rule at most `bytesEntriesMax`), and at most `identitiesMax` identities are tracked (the least
/// recently seen are forgotten first).
public final class AnomalyDetector: Sendable {
    public static let identitiesMax = 10_000
    static let bytesEntriesMax = 1_024

    public let rules: [AnomalyRule]
    private let state = Mutex(State())

    public init(rules: [AnomalyRule]) throws {
        try AnomalyRule.validate(rules)
        self.rules = rules
    }

    struct RuleState {
        var times = Deque<Date>()
        var distinct: [String: Date] = [:]
        var bytes = Deque<(at: Date, bytes: UInt64)>()
        var bytesSum: UInt64 = 0
        /// After firing the rule is quiet until then.
        var quietUntil = Date.distantPast
    }

    struct IdentityState {
        var lastSeen: Date
        var rules: [Int: RuleState] = [:]
    }

    struct State {
        var identities: [Subject: IdentityState] = [:]
    }

    /// The rules that `observation` makes fire for `subject` at `now`.
    public func observe(_ observation: Observation, by subject: Subject, at now: Date) -> [Alert] {
        let relevant = rules.indices.filter {
            rules[$0].applies(to: subject.role) && Self.counts(rules[$0].kind, observation)
        }
        guard !relevant.isEmpty else { return [] }
        return state.withLock { s in
            if s.identities[subject] == nil, s.identities.count >= Self.identitiesMax { Self.forgetOldest(&s) }
            var identity = s.identities[subject] ?? IdentityState(lastSeen: now)
            identity.lastSeen = now
            var alerts: [Alert] = []
            for i in relevant {
                var rs = identity.rules[i] ?? RuleState()
                if let detail = Self.step(rules[i], &rs, observation, now) {
                    alerts.append(
                        Alert(
                            rule: rules[i].name, kind: rules[i].kind, action: rules[i].action, subject: subject,
                            at: now, detail: detail))
                    rs = RuleState(quietUntil: now.addingTimeInterval(TimeInterval(rules[i].windowSeconds)))
                }
                identity.rules[i] = rs
            }
            s.identities[subject] = identity
            return alerts
        }
    }

    /// Identities tracked now (for tests and the bound).
    public var trackedIdentities: Int { state.withLock { $0.identities.count } }

    static func counts(_ kind: AnomalyRule.Kind, _ o: Observation) -> Bool {
        switch (kind, o) {
        case (.denied, .refused(let status)): return [401, 403, 404].contains(status)
        case (.distinctPatients, .patientsRead(let p)): return !p.isEmpty
        case (.downloadBytes, .downloaded(let b)): return b > 0
        case (.addresses, .call(let a)): return a != nil
        case (.outsideHours, .call): return true
        default: return false
        }
    }

    /// Adds one observation to a rule's window; the alert's detail when the rule fires.
    static func step(_ rule: AnomalyRule, _ rs: inout RuleState, _ o: Observation, _ now: Date) -> String? {
        guard now >= rs.quietUntil else { return nil }
        let window = TimeInterval(rule.windowSeconds)
        let since = now.addingTimeInterval(-window)
        switch o {
        case .refused(let status):
            while let first = rs.times.first, first < since { rs.times.removeFirst() }
            rs.times.append(now)
            if rs.times.count > Int(rule.threshold) { rs.times.removeFirst() }
            return rs.times.count >= Int(rule.threshold)
                ? "\(rs.times.count) refusals (last \(status)) within \(rule.windowSeconds) s" : nil
        case .patientsRead(let patients):
            for p in patients {
                // Only a new patient can raise the count: prune (a copy) only then.
                if rs.distinct.updateValue(now, forKey: p) != nil { continue }
                rs.distinct = rs.distinct.filter { $0.value >= since }
                if rs.distinct.count >= Int(rule.threshold) {
                    return "records of \(rs.distinct.count) distinct patients asked for within \(rule.windowSeconds) s"
                }
            }
            return nil
        case .downloaded(let bytes):
            while let first = rs.bytes.first, first.at < since {
                rs.bytesSum -= first.bytes
                rs.bytes.removeFirst()
            }
            if rs.bytes.count >= bytesEntriesMax, let oldest = rs.bytes.popFirst() {
                // Folds the oldest entry into the next: the sum stays exact, the window a little long.
                rs.bytes[0].bytes += oldest.bytes
            }
            rs.bytes.append((now, bytes))
            rs.bytesSum += bytes
            return rs.bytesSum >= rule.threshold
                ? "\(rs.bytesSum) bytes downloaded within \(rule.windowSeconds) s" : nil
        case .call(let address):
            if rule.kind == .outsideHours {
                guard let hours = rule.hours.flatMap(HourRange.init) else { return nil }
                let local = now.addingTimeInterval(TimeInterval((rule.utcOffsetMinutes ?? 0) * 60))
                let minute = Int(local.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) / 60)
                return hours.contains(minuteOfDay: (minute + 1440) % 1440)
                    ? nil
                    : "a call at \(String(format: "%02d:%02d", minute / 60, minute % 60)) (UTC\(Self.offset(rule.utcOffsetMinutes ?? 0))), outside \(rule.hours!)"
            }
            guard let address else { return nil }
            // Every call passes here: a known address only refreshes its time, and only a new one,
            // which alone can raise the count, prunes the window (a copy of it).
            if rs.distinct.updateValue(now, forKey: address) != nil { return nil }
            rs.distinct = rs.distinct.filter { $0.value >= since }
            return rs.distinct.count >= Int(rule.threshold)
                ? "one certificate used from \(rs.distinct.count) addresses within \(rule.windowSeconds) s" : nil
        }
    }

    static func offset(_ minutes: Int) -> String {
        String(format: "%@%02d:%02d", minutes < 0 ? "-" : "+", abs(minutes) / 60, abs(minutes) % 60)
    }

    /// Forgets the least recently seen tenth of the identities (amortises the scan).
    static func forgetOldest(_ s: inout State) {
        let drop = s.identities.sorted { $0.value.lastSeen < $1.value.lastSeen }.prefix(max(1, identitiesMax / 10))
        for (k, _) in drop { s.identities[k] = nil }
    }
}
