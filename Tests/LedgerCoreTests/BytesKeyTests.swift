import Crypto
import Foundation
import LedgerCore
import Testing

@Suite struct BytesKeyTests {
    /// Serialized identities of one organisation can share their first 80 bytes, all Foundation's
    /// `Data` hashes: the key must tell them apart by what comes after.
    @Test func keysDifferingOnlyLateHashApart() {
        let a = Data(repeating: 0x41, count: 900)
        var b = a
        b[850] = 0x42
        #expect(WholeBytesKey(a) != WholeBytesKey(b))
        #expect(WholeBytesKey(a).hashValue != WholeBytesKey(b).hashValue)
        #expect(WholeBytesKey(a) == WholeBytesKey(Data(a)))
        #expect(WholeBytesKey(a).hashValue == WholeBytesKey(Data(a)).hashValue)
        // A slice (its indices start past 0) keys as its own bytes.
        let slice = (Data([9]) + a).dropFirst()
        #expect(WholeBytesKey(slice) == WholeBytesKey(a))
        #expect(WholeBytesKey(slice).hashValue == WholeBytesKey(a).hashValue)
    }

    /// The tx id over a header's fields as they are equals the one over copied bytes, and SHA-256 by
    /// swift-crypto over the concatenation.
    @Test func txIDOverHeaderFieldsMatchesTheCopiedForm() {
        let nonce = (0..<24).map { UInt8($0) }
        let creator = (0..<900).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let expected = SHA256.hash(data: nonce + creator).map { String(format: "%02x", $0) }.joined()
        #expect(TransactionID.compute(nonce: Data(nonce), creator: Data(creator)) == expected)
        #expect(TransactionID.compute(nonce: nonce, creator: creator) == expected)
    }
}
