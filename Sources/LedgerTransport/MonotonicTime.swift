/// Milliseconds on the monotonic clock since the process's first use of it, and sleeping until such a
/// time: the clock that drivers of the pure state machines (`SubmitFlow`) hand them.
public enum MonotonicTime {
    private static let origin = ContinuousClock.now

    public static func nowMs() -> Int64 {
        let elapsed = origin.duration(to: .now).components
        return elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000
    }

    public static func sleep(untilMs: Int64) async {
        let ms = untilMs - nowMs()
        if ms > 0 { try? await Task.sleep(for: .milliseconds(ms)) }
    }
}
