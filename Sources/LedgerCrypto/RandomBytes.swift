#if canImport(Glibc)
import Glibc
#endif

/// Bytes from the operating system's secure random source, in one system call where it can: each
/// `SystemRandomNumberGenerator.next()` is its own `getrandom` call for 8 bytes, and a client draws a
/// nonce for every transaction.
public enum RandomBytes {
    public static func make(count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var filled = 0
            #if canImport(Glibc)
            // getentropy: one getrandom call for at most 256 bytes; it blocks only until the
            // kernel's pool is first seeded and retries interrupted calls itself. Where it fails
            // (a sandbox that forbids getrandom), the standard library's generator finishes.
            while filled < count {
                let n = min(256, count - filled)
                guard getentropy(buffer.baseAddress! + filled, n) == 0 else { break }
                filled += n
            }
            #endif
            var generator = SystemRandomNumberGenerator()
            while filled < count {
                var word = generator.next()
                let n = min(8, count - filled)
                withUnsafeBytes(of: &word) {
                    buffer.baseAddress!.advanced(by: filled).initialize(
                        from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
                }
                filled += n
            }
            initialized = count
        }
    }
}
