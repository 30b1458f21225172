import Foundation

/// One rule of the node's anomaly detection (node.yaml `anomaly.rules`). A rule watches one kind of
/// behaviour per identity over a sliding window and fires once its threshold is reached; firing
/// raises an alert, and with `action: suspend` also suspends the identity on this node.
public struct AnomalyRule: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Calls refused with 401, 403 or 404 (guessing, probing, a stolen certificate).
        case denied
        /// Distinct patients whose records the identity asked for (a sweep of the ward, a scrape).
        case distinctPatients = "distinct-patients"
        /// Bytes downloaded from the object store.
        case downloadBytes = "download-bytes"
        /// Distinct network addresses one certificate is used from.
        case addresses
        /// Any call outside `hours` (local time at `utc_offset_minutes`).
        case outsideHours = "outside-hours"
    }

    public enum Action: String, Codable, Sendable {
        case alert, suspend
    }

    public var name: String
    public var kind: Kind
    /// Fires when the count (calls, patients, bytes, addresses) reaches this within the window.
    /// Unused by `outside-hours`, which fires on the first call outside the hours.
    public var threshold: UInt64
    /// The sliding window; after a rule fires for an identity it is quiet for one window.
    public var windowSeconds: Int
    public var action: Action
    /// Roles the rule applies to (doctor, patient, third-party, device, admin); absent: all but nodes.
    /// Nodes are never watched: other hospitals' nodes call at machine rates, and a misbehaving
    /// node is revoked by the SA, not suspended by one hospital.
    public var roles: [String]?
    /// `outside-hours` only: the permitted hours, "HH:MM-HH:MM" (may wrap midnight: "22:00-06:00").
    public var hours: String?
    /// `outside-hours` only: the hospital's offset from UTC in minutes (Taiwan: 480).
    public var utcOffsetMinutes: Int?

    enum CodingKeys: String, CodingKey {
        case name, kind, threshold, action, roles, hours
        case windowSeconds = "window_seconds"
        case utcOffsetMinutes = "utc_offset_minutes"
    }

    public init(
        name: String, kind: Kind, threshold: UInt64, windowSeconds: Int, action: Action, roles: [String]? = nil,
        hours: String? = nil, utcOffsetMinutes: Int? = nil
    ) {
        self.name = name
        self.kind = kind
        self.threshold = threshold
        self.windowSeconds = windowSeconds
        self.action = action
        self.roles = roles
        self.hours = hours
        self.utcOffsetMinutes = utcOffsetMinutes
    }

    /// The role names certificates carry (`RoleName`), nodes excepted.
    public static let watchableRoles: Set<String> = ["admin", "doctor", "patient", "third-party", "device"]
    /// Bounds that keep a rule's state small: the per-identity state of a count rule holds at most
    /// `threshold` entries.
    public static let thresholdMax: UInt64 = 100_000
    public static let windowSecondsMax = 7 * 24 * 3600

    /// A hospital's defaults: what no clinician does in a working day, but a script does in minutes.
    /// - 30 refusals in a minute: alert (a confused app also does this; an operator looks);
    /// - 100 distinct patients' records in 10 minutes: suspend (a ward round is a few dozen an hour);
    /// - 2 GiB of downloads in an hour: alert;
    /// - one certificate from 3 addresses in 10 minutes: alert (a phone may change networks once).
    /// Hours are not watched by default: hospitals run day and night.
    public static let defaults: [AnomalyRule] = [
        AnomalyRule(name: "refusal-burst", kind: .denied, threshold: 30, windowSeconds: 60, action: .alert),
        AnomalyRule(
            name: "patient-sweep", kind: .distinctPatients, threshold: 100, windowSeconds: 600, action: .suspend),
        AnomalyRule(
            name: "bulk-download", kind: .downloadBytes, threshold: 2 << 30, windowSeconds: 3600, action: .alert),
        AnomalyRule(name: "certificate-roaming", kind: .addresses, threshold: 3, windowSeconds: 600, action: .alert),
    ]

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Checks a set of rules: names unique, numbers in range, hours well formed.
    public static func validate(_ rules: [AnomalyRule]) throws {
        var names = Set<String>()
        for r in rules {
            func fail(_ why: String) -> Invalid {
                Invalid(description: "anomaly rule \(r.name.debugDescription): \(why)")
            }
            guard !r.name.isEmpty, r.name.count <= 64,
                r.name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            else {
                throw fail("a name is 1-64 letters, digits, '-' or '_'")
            }
            guard names.insert(r.name).inserted else { throw fail("the name is used twice") }
            guard (1...windowSecondsMax).contains(r.windowSeconds) else {
                throw fail("window_seconds must be 1...\(windowSecondsMax)")
            }
            if r.kind == .outsideHours {
                guard let h = r.hours, HourRange(h) != nil else {
                    throw fail("outside-hours needs hours: \"HH:MM-HH:MM\"")
                }
                guard (-14 * 60...14 * 60).contains(r.utcOffsetMinutes ?? 0) else {
                    throw fail("utc_offset_minutes must be within ±840")
                }
            } else {
                guard (1...(r.kind == .downloadBytes ? UInt64.max : thresholdMax)).contains(r.threshold) else {
                    throw fail("threshold must be 1...\(thresholdMax)")
                }
                guard r.hours == nil, r.utcOffsetMinutes == nil else {
                    throw fail("hours and utc_offset_minutes are for outside-hours rules only")
                }
            }
            if let unknown = r.roles?.first(where: { !watchableRoles.contains($0) }) {
                throw fail(
                    "unknown role \(unknown.debugDescription) (roles: \(watchableRoles.sorted().joined(separator: ", ")); nodes are never watched)"
                )
            }
        }
    }

    func applies(to role: String) -> Bool {
        guard Self.watchableRoles.contains(role) else { return false }
        return roles?.contains(role) ?? true
    }
}

/// "HH:MM-HH:MM" as minutes of the day; the end is exclusive and may be before the start (overnight).
struct HourRange: Equatable {
    let start: Int
    let end: Int

    init?(_ text: String) {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let s = Self.minutes(parts[0]), let e = Self.minutes(parts[1]), s != e else {
            return nil
        }
        start = s
        end = e
    }

    static func minutes(_ hhmm: Substring) -> Int? {
        let p = hhmm.trimmingCharacters(in: .whitespaces).split(separator: ":")
        guard p.count == 2, p[0].count == 2, p[1].count == 2, let h = Int(p[0]), let m = Int(p[1]),
            (0...24).contains(h), (0..<60).contains(m), h * 60 + m <= 1440
        else { return nil }
        return h * 60 + m
    }

    func contains(minuteOfDay m: Int) -> Bool {
        start < end ? (start..<end).contains(m) : (m >= start || m < end)
    }
}
