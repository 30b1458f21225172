import ArgumentParser
import Foundation
import LedgerClient
import LedgerIdentity
import MedRecords

/// Helpers for the paper's index records: digest a ciphertext, sign a P_DE as patient or doctor,
/// and submit one. (Treatments, consents and usage records are plain `chaincode invoke` calls.)
struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record", abstract: "P_DE index records: digest a ciphertext, sign as patient or doctor, submit.",
        subcommands: [Digest.self, Sign.self, Put.self])

    struct Digest: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SHA-384 (hex) of a ciphertext file: the digest a P_DE records.")
        @Argument(help: "Ciphertext file.") var file: String

        func run() throws {
            guard let d = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            print(IndexRecordSigning.digestHex(ofCiphertext: d))
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a P_DE (treatment, location, digest) with your signing key; prints the signature (base64 DER).")
        @Option(help: "Wallet of the patient or the doctor.") var wallet: String
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "Where the ciphertext is stored (URL_C).") var url: String
        @Option(help: "SHA-384 of the ciphertext, hex.") var digest: String

        func run() throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            print(try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest.lowercased(), key: try w.signingKey()))
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Submit a P_DE carrying both signatures and both signers' certificates.")
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "URL_C of the ciphertext.") var url: String
        @Option(help: "SHA-384 of the ciphertext, hex.") var digest: String
        @Option(parsing: .unconditional, help: "The patient's signature (from `record sign`).") var patientSignature: String
        @Option(parsing: .unconditional, help: "The doctor's signature.") var doctorSignature: String
        @Option(help: "The patient's signing certificate (PEM file, e.g. WALLET/signing-cert.pem).") var patientCert: String
        @Option(help: "The doctor's signing certificate (PEM file).") var doctorCert: String

        func run() async throws {
            guard let pc = try? String(contentsOfFile: patientCert, encoding: .utf8) else { throw CLIError("cannot read \(patientCert)") }
            guard let dc = try? String(contentsOfFile: doctorCert, encoding: .utf8) else { throw CLIError("cannot read \(doctorCert)") }
            let req = PutIndexRecordRequest(tID: tID, url: url, digest: digest.lowercased(), patientSignature: patientSignature, doctorSignature: doctorSignature, patientCert: pc, doctorCert: dc)
            let r = try await withGateway(peer) { g in
                try await g.submit(chaincode: "medrecords", function: "putIndexRecord", byteArgs: [Array(try JSONEncoder().encode(req))])
            }
            print(r.result.text)
            print("tx \(r.txID) committed in block \(r.blockNumber): \(r.code)")
            if !r.isValid { throw CLIError("transaction \(r.txID) is \(r.code)") }
        }
    }
}
