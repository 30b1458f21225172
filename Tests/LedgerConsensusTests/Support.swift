import Crypto
import Foundation
import LedgerConsensus
import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// A state machine that records every entry it applies, for comparing consenters. Its snapshot is
/// the whole list (tests keep it small); `failAt` makes one apply throw, like a disk that fails.
final class RecordingMachine: ReplicatedStateMachine, @unchecked Sendable {
    private let state = Mutex<(entries: [[UInt8]], indices: [UInt64], restores: Int)>(([], [], 0))
    let failAt: Int?

    init(failAt: Int? = nil) { self.failAt = failAt }

    var entries: [[UInt8]] { state.withLock { $0.entries } }
    var indices: [UInt64] { state.withLock { $0.indices } }
    var restores: Int { state.withLock { $0.restores } }

    struct DiskFailed: Error {}

    func apply(_ entry: [UInt8], index: UInt64) throws {
        try state.withLock { s in
            if let failAt, s.entries.count == failAt { throw DiskFailed() }
            s.entries.append(entry)
            s.indices.append(index)
        }
    }

    func snapshot() throws -> [UInt8] {
        state.withLock { s in
            var out: [UInt8] = []
            for e in s.entries {
                out += withUnsafeBytes(of: UInt32(e.count).bigEndian, Array.init)
                out += e
            }
            return out
        }
    }

    func restore(_ snapshot: [UInt8]) throws {
        var entries: [[UInt8]] = []
        var i = 0
        while i + 4 <= snapshot.count {
            let n = Int(snapshot[i..<i + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            entries.append(Array(snapshot[i + 4..<i + 4 + n]))
            i += 4 + n
        }
        state.withLock { s in
            s.entries = entries
            s.indices = []
            s.restores += 1
        }
    }
}

func entry(_ i: Int) -> [UInt8] { Array("entry-\(i)".utf8) }

/// A throw-away TLS identity (self-signed P-256) and its pinned key, for consenters in tests.
struct TestTLSIdentity {
    let identity: RaftTLSIdentity
    let publicKey: [UInt8]

    init(name: String) throws {
        let key = P256.Signing.PrivateKey()
        let certKey = Certificate.PrivateKey(key)
        let dn = try DistinguishedName { CommonName(name) }
        let cert = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: certKey.publicKey,
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: dn, subject: dn, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.notCertificateAuthority) },
            issuerPrivateKey: certKey)
        var serializer = DER.Serializer()
        try serializer.serialize(cert)
        let nioCert = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
        identity = RaftTLSIdentity(
            certificateChain: [nioCert],
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der))
        publicKey = Array(key.publicKey.derRepresentation)
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(_ seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

final class ScratchDirectory {
    let path: String
    init(_ name: String) {
        path = NSTemporaryDirectory() + "medledger-\(name)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit {
        if ProcessInfo.processInfo.environment["KEEP_SCRATCH"] == nil {
            try? FileManager.default.removeItem(atPath: path)
        } else {
            print("scratch kept: \(path)")
        }
    }
}
