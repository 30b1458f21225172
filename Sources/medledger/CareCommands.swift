import ArgumentParser
import Foundation
import HospitalFlows
import LedgerClient
import LedgerCrypto
import LedgerProtos
import LedgerTransport
import MedRecords
import SwiftProtobuf

/// Runs `body` with the paper-flow client of `options`' wallet, node and channel.
func withCare<T>(_ options: PeerOptions, _ body: (CareClient) async throws -> T) async throws -> T {
    let w = try options.open()
    let node = try options.address()
    return try await withGateway(options) { g in
        try await calling { try await body(CareClient(wallet: w, gateway: g, node: node)) }
    }
}

/// Runs `body` with a fresh directory only this user can read, removed afterwards whatever happens.
/// Downloaded ciphertext goes there rather than beside the output, so a user's own file of any name is
/// never replaced or removed.
func withScratchDirectory<T>(_ purpose: String, _ body: (URL) async throws -> T) async throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("medledger-\(purpose)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(
        at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}

func nodeAddresses(_ list: [String], _ flag: String) throws -> [NodeAddress] {
    try list.flatMap { $0.split(separator: ",").map(String.init) }.map { s in
        guard let a = NodeAddress(s) else { throw ValidationError("\(flag) \(s) is not host:port") }
        return a
    }
}

/// RFC 3339 (UTC, seconds) of now plus `days`.
func rfc3339(daysFromNow days: Double) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date().addingTimeInterval(days * 86_400))
}

// MARK: - keys

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Your proxy re-encryption (Umbral) keys: made in your wallet, public halves published on chain.",
        subcommands: [Publish.self, Show.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Publish your encryption and verifying keys (made now if the wallet has none) in the key directory.")
        @OptionGroup var peer: PeerOptions

        func run() async throws {
            let e = try await withCare(peer) { try await $0.publishKeys() }
            print(
                "published for \(e.pid) (\(e.role) of \(e.org)): encryption key \(e.encryptionKey), verifying key \(e.verifyingKey)"
            )
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the keys a PID published.")
        @OptionGroup var peer: PeerOptions
        @Option(help: "PID to look up.") var pid: String

        func run() async throws {
            try printJSON(try await withCare(peer) { try await $0.publishedKeys(of: pid).entry })
        }
    }
}

// MARK: - appointment

struct AppointmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "appointment",
        abstract: "Ask a hospital's management node for an appointment (patient); open its session key (doctor).",
        subcommands: [Request.self, Open.self])

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As a patient: the node assigns a doctor, creates T_ID on chain and returns T_SK sealed to that doctor. Writes the appointment to --out for the doctor."
        )
        @OptionGroup var peer: PeerOptions
        @Option(help: "Disease information DI (sealed for the doctor; the node never stores it).") var di: String
        @Option(help: "PID of a preferred doctor of the hospital.") var doctor: String?
        @Option(help: "Where to write the appointment (JSON) to hand to the doctor.") var out: String

        func run() async throws {
            let a = try await withCare(peer) {
                try await $0.requestAppointment(diseaseInfo: di, preferredDoctor: doctor)
            }
            var o = JSONEncodingOptions()
            o.preserveProtoFieldNames = true
            try SecureFile.write(Data(try a.jsonString(options: o).utf8), to: out, mode: 0o600)
            print(
                "appointment: treatment \(a.tID) with doctor \(a.doctorPid) at \(a.hospital) (tx \(a.txID), block \(a.block))"
            )
            print(
                "T_SK sealed to the doctor's key: \(a.sessionKeyCapsule.count + a.sessionKeyCiphertext.count) bytes, written with the appointment to \(out)"
            )
        }
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "As the assigned doctor: open T_SK and check it against the chain and the CA.")
        @OptionGroup var peer: PeerOptions
        @Argument(help: "The appointment file from `appointment request`.") var file: String

        func run() async throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw CLIError("cannot read \(file)")
            }
            let a: Medledger_Appointment
            do { a = try Medledger_Appointment(jsonString: text) } catch {
                throw CLIError("\(file) is not an appointment: \(error)")
            }
            let tsk = try await withCare(peer) { try await $0.openAppointment(a) }
            print("T_SK opened and checked (treatment on chain, patient certificate from the CA):")
            print("  patient PID      \(tsk.patientPID)")
            print("  treatment T_ID   \(tsk.tID) at \(tsk.hospital), channel \(tsk.channel)")
            print("  disease info DI  \(tsk.diseaseInfo)")
            print("  patient cert     \(tsk.patientCert.count) bytes of PEM (verifies the patient's record signatures)")
        }
    }
}

// MARK: - share

struct ShareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Share records with a third party through proxy re-encryption (m of n hospitals' proxies).",
        subcommands: [Grant.self, Revoke.self, Open.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As the patient: grant consent on chain and give one key fragment to each proxy; any --threshold of them can re-encrypt."
        )
        @OptionGroup var peer: PeerOptions
        @Option(help: "PID of the grantee (third party).") var grantee: String
        @Option(
            name: .customLong("t-id"), parsing: .unconditionalSingleValue, help: "Treatment to share (repeat for more)."
        ) var tIDs: [String]
        @Option(help: "Purpose of use (the proxy records it in D_UE).") var purpose: String
        @Option(help: "Days the consent lasts.") var days: Double = 30
        @Option(
            name: .customLong("proxy"), parsing: .unconditionalSingleValue,
            help: "A hospital node acting as proxy, host:port (repeat, or comma-separated).") var proxies: [String]
        @Option(help: "How many proxies must re-encrypt (m of n).") var threshold: Int = 1

        func run() async throws {
            let px = try nodeAddresses(proxies, "--proxy")
            let g = try await withCare(peer) {
                try await $0.grant(
                    grantee: grantee, tIDs: tIDs, purpose: purpose, expiresAt: rfc3339(daysFromNow: days), proxies: px,
                    threshold: threshold)
            }
            print(
                "consent \(g.consent.consentID): \(g.consent.granteePID) may use \(g.consent.tIDs.joined(separator: ", ")) for \(g.consent.purpose) until \(g.consent.expiresAt)"
            )
            print(
                "key fragments: \(g.threshold) of \(g.proxies.count) needed, kept by \(g.proxies.joined(separator: ", "))"
            )
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As the patient: revoke a consent on chain (proxies refuse from the next block) and withdraw the key fragments."
        )
        @OptionGroup var peer: PeerOptions
        @Option(help: "Consent id.") var consent: String
        @Option(
            name: .customLong("proxy"), parsing: .unconditionalSingleValue,
            help: "Proxies that hold fragments (repeat, or comma-separated).") var proxies: [String] = []

        func run() async throws {
            let px = try nodeAddresses(proxies, "--proxy")
            let (c, withdrawn) = try await withCare(peer) { try await $0.revoke(consentID: consent, proxies: px) }
            print(
                "consent \(c.consentID) revoked at \(c.revokedAt ?? "?"); key fragments withdrawn from \(withdrawn) of \(px.count) proxies"
            )
        }
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As the grantee: verify a shared record, get capsule fragments from --threshold proxies (each records D_UE), and decrypt it."
        )
        @OptionGroup var peer: PeerOptions
        @Option(help: "Consent id.") var consent: String
        @Option(name: .customLong("record-id"), help: "Index record (P_DE) id.") var recordID: String
        @Option(
            name: .customLong("proxy"), parsing: .unconditionalSingleValue,
            help: "Proxies to ask, in order (repeat, or comma-separated).") var proxies: [String]
        @Option(help: "Capsule fragments needed (the threshold the patient chose).") var threshold: Int = 1
        @Option(help: "Where to write the decrypted record.") var out: String

        func run() async throws {
            let px = try nodeAddresses(proxies, "--proxy")
            let r = try await withScratchDirectory("share") { dir in
                try await withCare(peer) {
                    try await $0.openShared(
                        consentID: consent, recordID: recordID, proxies: px, threshold: threshold,
                        sealedPath: dir.appendingPathComponent("record.sealed").path, to: out)
                }
            }
            for c in r.verification.checks { print("  ✓ \(c.name): \(c.detail)") }
            for u in r.usage { print("  proxy \(u.proxy) re-encrypted; usage \(u.usageID) recorded on chain") }
            print("decrypted \(r.opened.plaintextSize) bytes to \(out)")
        }
    }
}

// MARK: - usage

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Usage records D_UE: who used which treatment's records, through which proxy, why.",
        subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List usage records of a patient (--patient) or a treatment (--t-id).")
        @OptionGroup var peer: PeerOptions
        @Option(help: "Patient PID.") var patient: String?
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard (patient == nil) != (tID == nil) else {
                throw ValidationError("give exactly one of --patient and --t-id")
            }
            let list = try await withCare(peer) { try await $0.listUsage(patientPID: patient, tID: tID) }
            if json { return try printJSON(list) }
            if list.isEmpty { print("no usage recorded") }
            for u in list {
                print(
                    "\(u.time)  \(u.usageID)  \(u.tID)  by \(u.thirdPartyPID)  via \(u.proxyNode)  for \(u.purpose)  (consent \(u.consentID))"
                )
            }
        }
    }
}

// MARK: - device

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract:
            "IoT devices: send signed vital-sign readings to the doctor's collector; the doctor fetches and checks them.",
        subcommands: [Simulate.self, Readings.self])

    struct Simulate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Simulate N devices (one enrolled device wallet each) sending FHIR Observation readings every S seconds."
        )
        @Option(help: "Hospital node (collector), host:port.") var node: String
        @Option(help: "Channel name.") var channel: String = "records"
        @Option(
            name: .customLong("wallet"), parsing: .unconditionalSingleValue,
            help: "A device's wallet (repeat: one per device).") var wallets: [String]
        @Option(help: "Devices to run (default: one per --wallet).") var devices: Int?
        @Option(help: "Seconds between a device's readings.") var interval: Double = 1
        @Option(help: "Readings per device.") var count: Int = 3
        @Option(name: .customLong("t-id"), help: "Treatment the readings belong to.") var tID: String
        @Option(help: "The treatment's patient PID (the Observation's subject).") var patient: String
        @Option(help: "The treatment's doctor PID (readings are encrypted to their published key).") var doctor: String

        func run() async throws {
            let n = devices ?? wallets.count
            guard n >= 1, n <= wallets.count else {
                throw ValidationError(
                    "--devices \(n) needs as many --wallet (one enrolled device each); \(wallets.count) given")
            }
            guard interval >= 0, count >= 1 else { throw ValidationError("--interval must be ≥ 0 and --count ≥ 1") }
            var failures = 0
            for round in 0..<count {
                for (i, path) in wallets.prefix(n).enumerated() {
                    let options = try PeerOptions.parse(["--node", node, "--wallet", path, "--channel", channel])
                    let vitals = VitalSigns(
                        heartRate: 70 + i + round, systolic: 110 + i, diastolic: 70 + i,
                        note: round == 0 ? "normal" : "stable")
                    let label = "device \(i + 1) (\(URL(fileURLWithPath: path).lastPathComponent)) reading \(round + 1)"
                    do {
                        let receipt = try await withCare(options) { care in
                            let doctorKey = try await care.publishedKeys(of: doctor).encryption
                            let seq = UInt64(Date().timeIntervalSince1970 * 1000) * 100 + UInt64(round % 100)
                            return try await care.submitReading(
                                vitals, tID: tID, patientPID: patient, doctorKey: doctorKey, sequence: seq,
                                observedAt: rfc3339(daysFromNow: 0))
                        }
                        print(
                            "\(label): heart rate \(vitals.heartRate), \(vitals.systolic)/\(vitals.diastolic) mmHg, \"\(vitals.note)\" → accepted at \(receipt.receivedAt)"
                        )
                    } catch {
                        failures += 1
                        print("\(label): rejected: \(error)")
                    }
                }
                if round + 1 < count, interval > 0 { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
            }
            if failures > 0 { throw CLIError("\(failures) of \(n * count) readings were rejected") }
        }
    }

    struct Readings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "As the treatment's doctor: fetch its readings, verify and decrypt each, and write the SHR (a FHIR Bundle of Observations)."
        )
        @OptionGroup var peer: PeerOptions
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "Where to write the SHR (JSON).") var out: String

        func run() async throws {
            let (accepted, rejected) = try await withCare(peer) { try await $0.fetchReadings(tID: tID) }
            for r in accepted {
                print(
                    "  ✓ \(r.devicePID.prefix(12))… #\(r.sequence): heart rate \(r.vitals.heartRate), \(r.vitals.systolic)/\(r.vitals.diastolic) mmHg, \"\(r.vitals.note)\" at \(r.observedAt)"
                )
            }
            for r in rejected { print("  ✗ \(r)") }
            let entries = try accepted.map { try JSONSerialization.jsonObject(with: Data($0.observation)) }
            let bundle: [String: Any] = [
                "resourceType": "Bundle", "type": "collection", "entry": entries.map { ["resource": $0] },
            ]
            try SecureFile.write(
                try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .withoutEscapingSlashes]),
                to: out, mode: 0o600)
            print(
                "SHR: \(accepted.count) verified reading(s) written to \(out)\(rejected.isEmpty ? "" : "; \(rejected.count) rejected")"
            )
        }
    }
}
