#if canImport(Glibc)
import Glibc
#endif

/// Bytes from the operating system's secure random source, in one system call where it can: each
/// `SystemRandomNumberGenerator.next()` is its own `getrandom` call for 8 bytes, and a client draws a
/// nonce for every transaction.
public enum RandomBytes {
    public static func make(count: Int) -> [UInt8] {
        #if canImport(Glibc)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            // getentropy: one getrandom call, at most 256 bytes each; it blocks only until the
            // kernel's pool is first seeded and retries interrupted calls itself.
            var filled = 0
            while filled < count {
                let n = min(256, count - filled)
                guard getentropy(buffer.baseAddress! + filled, n) == 0 else {
                    // Cannot fail on a kernel with getrandom and a valid buffer: rather stop than go on
                    // with bytes that are not random.
                    fatalError("getentropy failed: errno \(errno)")
                }
                filled += n
            }
            initialized = count
        }
        #else
        var g = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &g) }
        #endif
    }
}
