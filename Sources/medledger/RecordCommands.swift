import ArgumentParser
import Foundation
import HospitalFlows
import LedgerClient
import LedgerCrypto
import LedgerIdentity
import LedgerRecords
import MedRecords

/// The paper's records: bundle EMR and SHR, seal, upload and index them (P_DE with both signatures),
/// list, verify and decrypt them; and the low-level pieces (digest, sign, submit) for a patient and a
/// doctor who sign on different machines.
struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract:
            "Medical records: bundle, seal, put (upload + P_DE), list, verify, get; digest/sign/submit for split signing.",
        subcommands: [
            Bundle.self, Seal.self, Put.self, List.self, Verify.self, Get.self, Digest.self, Sign.self, Submit.self,
        ])

    struct Bundle: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make the record's plaintext: a FHIR Bundle of the doctor's EMR and the devices' SHR (stays on your machine)."
        )
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "Patient PID.") var patient: String
        @Option(help: "The EMR: a FHIR resource or any JSON object (file).") var emr: String?
        @Option(help: "The SHR from `device readings` (a Bundle of Observations).") var shr: String?
        @Option(help: "Where to write the bundle.") var out: String

        func run() throws {
            let emrBytes = try emr.map { p -> [UInt8] in
                guard let d = FileManager.default.contents(atPath: p) else { throw CLIError("cannot read --emr \(p)") }
                return [UInt8](d)
            }
            var observations = [[UInt8]]()
            if let shr {
                guard let d = FileManager.default.contents(atPath: shr),
                    let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
                else {
                    throw CLIError("--shr \(shr) is not a JSON object")
                }
                for entry in o["entry"] as? [[String: Any]] ?? [] {
                    if let r = entry["resource"] {
                        observations.append(
                            [UInt8](try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys])))
                    }
                }
            }
            let f = ISO8601DateFormatter()
            let bundle: [UInt8]
            do {
                bundle = try RecordBundle.make(
                    tID: tID, patientPID: patient, emr: emrBytes, observations: observations,
                    createdAt: f.string(from: Date()))
            } catch {
                throw CLIError("\(error)")
            }
            try SecureFile.write(bundle, to: out, mode: 0o600)
            print(
                "bundle: \(emrBytes == nil ? 0 : 1) EMR + \(observations.count) observation(s), \(bundle.count) bytes → \(out)"
            )
        }
    }

    struct Seal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Encrypt a record with a fresh AES-256-GCM data key wrapped to your own (patient's) key; prints its SHA-384."
        )
        @OptionGroup var wallet: WalletOption
        @Option(name: .customLong("in"), help: "Plaintext record.") var input: String
        @Option(help: "Where to write the sealed record.") var out: String

        func run() throws {
            let w = try wallet.open()
            let r: SealedRecord.SealResult
            do { r = try CareClient.seal(wallet: w, plaintext: input, to: out) } catch let f as CallFailure {
                throw CLIError(f.description)
            }
            print("sealed \(r.plaintextSize) bytes → \(out) (\(r.sealedSize) bytes), sha384 \(r.digestHex)")
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As the patient: seal (unless --sealed), upload to the node's object store, sign with the doctor, and submit the P_DE."
        )
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "Plaintext record to seal first (e.g. from `record bundle`).") var bundle: String?
        @Option(help: "An already sealed record (from `record seal`).") var sealed: String?
        @Option(help: "The doctor's wallet, when the doctor signs here.") var doctorWallet: String?
        @Option(
            parsing: .unconditional, help: "The doctor's signature from `record sign`, when the doctor signs elsewhere."
        ) var doctorSignature: String?
        @Option(help: "With --doctor-signature: the doctor's signing certificate (PEM).") var doctorCert: String?

        func run() async throws {
            guard (bundle == nil) != (sealed == nil) else {
                throw ValidationError("give exactly one of --bundle and --sealed")
            }
            let doctor: CareClient.DoctorSignature
            if let doctorWallet {
                do { doctor = .wallet(try Wallet.open(doctorWallet)) } catch { throw CLIError("\(error)") }
            } else if let doctorSignature, let doctorCert {
                guard let pem = try? String(contentsOfFile: doctorCert, encoding: .utf8) else {
                    throw CLIError("cannot read --doctor-cert \(doctorCert)")
                }
                doctor = .given(signature: doctorSignature, certificatePEM: pem)
            } else {
                throw ValidationError(
                    "the doctor must sign too: give --doctor-wallet, or --doctor-signature and --doctor-cert (the doctor runs `record sign` with the URL and digest `object put` printed)"
                )
            }
            let r = try await withCare(peer) { care in
                guard let bundle else { return try await care.putRecord(sealedFile: sealed!, tID: tID, doctor: doctor) }
                return try await withScratchDirectory("seal") { dir in
                    let sealedPath = dir.appendingPathComponent("record.sealed").path
                    let s = try care.seal(plaintext: bundle, to: sealedPath)
                    print(
                        "sealed \(s.plaintextSize) bytes with a fresh AES-256-GCM key; the key is wrapped to your encryption key"
                    )
                    return try await care.putRecord(sealedFile: sealedPath, tID: tID, doctor: doctor)
                }
            }
            print(
                "stored at \(r.stored.url) (\(r.stored.size) bytes\(r.stored.alreadyStored ? ", already there" : ""))")
            print("sha384 \(r.record.digest); signed by patient (D_SP) and doctor (D_SD)")
            print("P_DE \(r.record.recordID) committed in block \(r.submit.blockNumber) (tx \(r.submit.txID))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List index records (P_DE) of a patient (--patient) or a treatment (--t-id).")
        @OptionGroup var peer: PeerOptions
        @Option(help: "Patient PID.") var patient: String?
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard (patient == nil) != (tID == nil) else {
                throw ValidationError("give exactly one of --patient and --t-id")
            }
            let list = try await withCare(peer) { try await $0.listRecords(patientPID: patient, tID: tID) }
            if json { return try printJSON(list) }
            if list.isEmpty { print("no index records") }
            for r in list {
                print(
                    "\(r.time)  \(r.recordID)  \(r.tID)  \(r.url)  sha384 \(r.digest.prefix(16))…\(r.capsule == nil ? "" : "  shareable")"
                )
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Download a record by its URL_C and check digest, both signatures and certificates, and capsule; tampering is reported by name (exit 1)."
        )
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("record-id"), help: "Index record (P_DE) id.") var recordID: String
        @Option(help: "Keep the verified ciphertext here, a path that does not exist yet (default: discarded).")
        var keep: String?

        func run() async throws {
            // The download replaces what is at the path, and tampering removes it: never a file of the user's.
            if let keep, FileManager.default.fileExists(atPath: keep) {
                throw CLIError("--keep \(keep): a file is already there; give a path that does not exist yet")
            }
            let v = try await withScratchDirectory("verify") { dir in
                let path = keep ?? dir.appendingPathComponent("record.sealed").path
                return try await withCare(peer) { try await $0.verifyRecord(recordID: recordID, sealedPath: path) }
            }
            for c in v.checks { print("  ✓ \(c.name): \(c.detail)") }
            print("record \(recordID) verified: \(v.sealedSize) bytes at \(v.record.url)")
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "As the patient: verify a record (as `record verify`) and decrypt it with your key.")
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("record-id"), help: "Index record (P_DE) id.") var recordID: String
        @Option(help: "Where to write the decrypted record.") var out: String

        func run() async throws {
            let (v, opened) = try await withScratchDirectory("get") { dir in
                let sealedPath = dir.appendingPathComponent("record.sealed").path
                return try await withCare(peer) { care in
                    let v = try await care.verifyRecord(recordID: recordID, sealedPath: sealedPath)
                    return (v, try care.openAsPatient(sealedPath: sealedPath, to: out))
                }
            }
            for c in v.checks { print("  ✓ \(c.name): \(c.detail)") }
            print("decrypted \(opened.plaintextSize) bytes to \(out)")
        }
    }

    struct Digest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "SHA-384 (hex) of a ciphertext file: the digest a P_DE records.")
        @Argument(help: "Ciphertext file.") var file: String

        func run() throws {
            guard let d = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            print(IndexRecordSigning.digestHex(ofCiphertext: d))
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Sign a P_DE (treatment, location, digest) with your signing key; prints the signature (base64 DER).")
        @Option(help: "Wallet of the patient or the doctor.") var wallet: String
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "Where the ciphertext is stored (URL_C).") var url: String
        @Option(help: "SHA-384 of the ciphertext, hex.") var digest: String

        func run() throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            print(
                try IndexRecordSigning.sign(tid: tID, url: url, digestHex: digest.lowercased(), key: try w.signingKey())
            )
        }
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a P_DE from its parts: URL_C, digest, both signatures and both signers' certificates.")
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "URL_C of the ciphertext.") var url: String
        @Option(help: "SHA-384 of the ciphertext, hex.") var digest: String
        @Option(parsing: .unconditional, help: "The patient's signature (from `record sign`).") var patientSignature:
            String
        @Option(parsing: .unconditional, help: "The doctor's signature.") var doctorSignature: String
        @Option(help: "The patient's signing certificate (PEM file, e.g. WALLET/signing-cert.pem).") var patientCert:
            String
        @Option(help: "The doctor's signing certificate (PEM file).") var doctorCert: String
        @Option(help: "Hex of the sealed record's capsule, so proxies can re-encrypt it (optional).") var capsule:
            String?

        func run() async throws {
            guard let pc = try? String(contentsOfFile: patientCert, encoding: .utf8) else {
                throw CLIError("cannot read \(patientCert)")
            }
            guard let dc = try? String(contentsOfFile: doctorCert, encoding: .utf8) else {
                throw CLIError("cannot read \(doctorCert)")
            }
            let req = PutIndexRecordRequest(
                tID: tID, url: url, digest: digest.lowercased(), patientSignature: patientSignature,
                doctorSignature: doctorSignature, patientCert: pc, doctorCert: dc, capsule: capsule)
            let inputs = try req.proposalInputs()
            let r = try await withGateway(peer) { g in
                try await g.submit(chaincode: "medrecords", function: "putIndexRecord", inputs)
            }
            print(r.result.text)
            print("tx \(r.txID) committed in block \(r.blockNumber): \(r.code)")
            if !r.isValid { throw CLIError("transaction \(r.txID) is \(r.code)") }
        }
    }
}
