import CLibCrypto
import Foundation

/// Incremental SHA-384 on OpenSSL's libcrypto. swift-crypto's bundled BoringSSL picks its generic C
/// SHA-512 on AMD processors (about 600 MB/s on this project's machines), OpenSSL its AVX2 code
/// (about 840 MB/s): the object store hashes every byte it stores or serves, and clients hash what
/// they upload and download. Same digest, checked against swift-crypto in the tests.
///
/// One stream is fed by one task at a time (a transfer's loop); it is not for concurrent use.
public final class SHA384Stream: @unchecked Sendable {
    private let context: OpaquePointer
    private var finished = false

    public init() {
        guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha384(), nil) == 1 else {
            preconditionFailure("LedgerCrypto: OpenSSL cannot start a SHA-384 digest")
        }
        context = c
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: some DataProtocol) {
        precondition(!finished, "LedgerCrypto: SHA384Stream used after finalize()")
        for region in bytes.regions {
            region.withUnsafeBytes { raw in
                if let base = raw.baseAddress, raw.count > 0 { _ = EVP_DigestUpdate(context, base, raw.count) }
            }
        }
    }

    /// The 48-byte digest; the stream is then spent.
    public func finalize() -> [UInt8] {
        precondition(!finished, "LedgerCrypto: SHA384Stream finalized twice")
        finished = true
        var out = [UInt8](repeating: 0, count: 48)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &out, &length) == 1, length == 48 else {
            preconditionFailure("LedgerCrypto: OpenSSL cannot finish a SHA-384 digest")
        }
        return out
    }
}
