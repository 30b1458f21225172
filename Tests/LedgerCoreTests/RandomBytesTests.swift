import LedgerCore
import LedgerCrypto
import Testing

@Suite struct RandomBytesTests {
    /// Exact lengths, across getentropy's 256-byte limit, and draws that differ: a constant or
    /// partly filled buffer would repeat (the chance that two honest 24-byte draws are equal is 2^-192).
    @Test func drawsHaveTheLengthAskedForAndDoNotRepeat() {
        for count in [0, 1, 24, 32, 255, 256, 257, 1_000] {
            #expect(RandomBytes.make(count: count).count == count)
        }
        let nonces = (0..<1_000).map { _ in TransactionID.newNonce() }
        #expect(nonces.allSatisfy { $0.count == 24 })
        #expect(Set(nonces).count == nonces.count)
        // Past 256 bytes the buffer is filled in chunks: the last chunk must be random too.
        let long = (0..<8).map { _ in Array(RandomBytes.make(count: 600).suffix(32)) }
        #expect(Set(long).count == long.count)
        #expect(long.allSatisfy { $0.contains { $0 != 0 } })
    }
}
