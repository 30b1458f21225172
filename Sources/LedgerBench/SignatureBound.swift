import Crypto
import Foundation
import LedgerCrypto

/// The rate the signatures alone allow on this machine: each operation's P-256 signatures and
/// verifications — the ones the rules require of it, in every process — timed here with the library
/// the node uses (verifications with the key's table, as a node checks the keys it sees most), on
/// every core with nothing else to do. No run can beat it; `bench load` prints it
/// beside the measured rows so a figure can be read against what this machine can do at all.
public struct SignatureBound: Sendable, Equatable {
    /// One ECDSA P-256 signature / verification over a short message, µs of one core.
    public var signMicros: Double
    public var verifyMicros: Double
    public var cores: Int

    public init(signMicros: Double, verifyMicros: Double, cores: Int) {
        self.signMicros = signMicros
        self.verifyMicros = verifyMicros
        self.cores = cores
    }

    /// What one operation of a workload costs in signatures, summed over client, orderer and peer.
    public struct Cost: Sendable, Equatable {
        public var signatures: Int
        public var verifications: Int
        /// Who signs and who verifies, for the table.
        public var breakdown: String
    }

    /// The signature cost of one operation of `workload` (`kv`, `pde`), nil for another. Per
    /// transaction, not per shared message: a block's signature and its check are shared by all its
    /// transactions, and a proposal batch's (`ProposalBatchSigning`) by all the proposals a client
    /// sent together (at one in flight each adds one of each). A read has no signature of its own
    /// (its query travels in a signed batch), so it has no bound.
    public static func cost(of workload: String) -> Cost? {
        switch workload {
        case "kv":
            // Client: the envelope. Endorser: signs the endorsement. Orderer and validator: check the
            // envelope (the validator remembers its own endorsement instead of checking it again).
            return Cost(
                signatures: 2, verifications: 2,
                breakdown: "client signs the envelope, endorser signs; orderer and validator verify the envelope")
        case "pde":
            // kv's, plus the patient's and the doctor's signatures over the record, checked by the
            // chaincode while endorsing.
            return Cost(
                signatures: 4, verifications: 4,
                breakdown: "kv's 2 + 2, plus patient and doctor sign the record and the chaincode checks both")
        default:
            return nil
        }
    }

    /// Operations per second with every core doing nothing but `cost`'s signature work.
    public func operationsPerSecond(_ cost: Cost) -> Double {
        let micros = Double(cost.signatures) * signMicros + Double(cost.verifications) * verifyMicros
        return micros > 0 ? Double(cores) * 1e6 / micros : 0
    }

    /// Times `rounds` batches of `batch` signatures and as many verifications on one core and keeps
    /// the median batch of each (the machine may be busy in between).
    public static func measure(
        rounds: Int = 7, batch: Int = 200, cores: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> SignatureBound {
        let key = P256.Signing.PrivateKey()
        let message = Array(repeating: UInt8(0x5A), count: 256)
        // Every key a bench verifies is in steady use, so the node checks it with the key's table:
        // the bound is timed the same way (built here before the first round).
        let verifier = P256Verifier(tableAfter: 1, tablesMax: 1)
        let verifying = P256VerifyingKey(key.publicKey)
        _ = verifier.isValidSignature(try key.signature(for: message), for: message, key: verifying)
        var signs = [Double]()
        var verifies = [Double]()
        for _ in 0..<max(1, rounds) {
            var signatures = [P256.Signing.ECDSASignature]()
            signatures.reserveCapacity(batch)
            var failure: (any Error)?
            signs.append(
                microsPerCall(batch) {
                    for _ in 0..<batch {
                        do { signatures.append(try key.signature(for: message)) } catch { failure = error }
                    }
                })
            if let failure { throw failure }
            var valid = 0
            verifies.append(
                microsPerCall(batch) {
                    for s in signatures where verifier.isValidSignature(s, for: message, key: verifying) {
                        valid += 1
                    }
                })
            guard valid == batch else {
                throw SignatureBoundError("\(batch - valid) of \(batch) signatures did not verify")
            }
        }
        return SignatureBound(signMicros: median(signs), verifyMicros: median(verifies), cores: cores)
    }

    /// µs per call when `body` does `calls` calls.
    private static func microsPerCall(_ calls: Int, _ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(max(calls, 1))
    }

    private static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
}

public struct SignatureBoundError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = "measuring P-256 on this machine: \(description)" }
}
