import Foundation

/// Crash points for tests over real processes: with `MEDLEDGER_CRASH_AT=<point>` in its environment a
/// process kills itself (SIGKILL: no clean-up, nothing flushed) on reaching that point. Unset, it costs
/// one comparison against a value read once.
public enum FaultInjection {
    static let requested = ProcessInfo.processInfo.environment["MEDLEDGER_CRASH_AT"]

    public static func crashIfRequested(at point: String) {
        guard let requested, requested == point else { return }
        kill(getpid(), SIGKILL)
    }
}
