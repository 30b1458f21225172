import ArgumentParser
import Foundation
import LedgerClient
import LedgerTransport

/// `medledger object put|get`: the hospital node's object store (ciphertexts only).
struct ObjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "object", abstract: "Store an encrypted record on a hospital node, or fetch one by its URL_C.",
        subcommands: [Put.self, Get.self])

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a ciphertext for a treatment (its patient or doctor); prints URL_C and the SHA-384.")
        @Option(help: "Hospital node address, host:port.") var node: String
        @OptionGroup var wallet: WalletOption  // the treatment's patient or doctor
        @Option(help: "Channel whose treatment governs access.") var channel: String = "records"
        @Option(name: .customLong("t-id"), help: "Treatment id.") var tID: String
        @Option(help: "The ciphertext file.") var file: String

        func run() async throws {
            guard let address = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            let client = ObjectClient(wallet: try wallet.open())
            let stored = try await calling {
                try await client.upload(file: file, node: address, channel: channel, tID: tID)
            }
            print("url: \(stored.url)")
            print("sha384: \(stored.digest)")
            print("size: \(stored.size) bytes\(stored.alreadyStored ? " (already stored)" : "")")
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an object by URL_C (resumes a partial download; checks the SHA-384 before keeping it).")
        @Option(help: "URL_C: medledger://HOST:PORT/objects/SHA384.") var url: String
        @OptionGroup var wallet: WalletOption  // the patient, the doctor, or a consented grantee
        @Option(help: "Where to write the object.") var out: String
        @Option(help: "Node to ask instead of the one the URL names (host:port).") var node: String?

        func run() async throws {
            let override = try node.map { n -> NodeAddress in
                guard let a = NodeAddress(n) else { throw ValidationError("--node \(n) is not host:port") }
                return a
            }
            let client = ObjectClient(wallet: try wallet.open())
            let d = try await calling { try await client.download(url: url, to: out, node: override) }
            print(
                "saved \(out): \(d.size) bytes, sha384 \(d.digest) verified\(d.resumedFrom > 0 ? " (resumed at byte \(d.resumedFrom))" : "")"
            )
            print("treatment: \(d.tID) on channel \(d.channel)")
        }
    }
}
