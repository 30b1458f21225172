import Foundation

/// The cores this process may use, read once at first use. `ProcessInfo.activeProcessorCount` reads
/// the scheduler's affinity and the cgroup's CPU quota on every call: asked once per batch, it was
/// 2.6 % of a peer's CPU under reads at 64 in flight.
public enum Cores {
    public static let available = max(1, ProcessInfo.processInfo.activeProcessorCount)
}
