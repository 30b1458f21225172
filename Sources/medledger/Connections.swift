import ArgumentParser
import Foundation
import LedgerClient
import LedgerTransport

/// Where the CA or node is and how to trust it.
struct RemoteOptions: ParsableArguments {
    @Option(name: .long, help: "Address of the CA or node, host:port.")
    var ca: String?

    @Option(name: .long, help: "Trusted root certificate (PEM). Default: the wallet's ca-cert.pem.")
    var caCert: String?

    @Option(name: .long, help: "TLS server name to expect (default: the host of the address).")
    var serverName: String?

    func address(_ label: String = "--ca") throws -> NodeAddress {
        guard let ca else { throw ValidationError("\(label) host:port is required") }
        guard let a = NodeAddress(ca) else { throw ValidationError("\(label) \(ca) is not host:port") }
        return a
    }

    func rootsPEM(wallet: Wallet?) throws -> [UInt8] {
        if let caCert {
            guard let d = FileManager.default.contents(atPath: caCert) else {
                throw CLIError("cannot read --ca-cert \(caCert)")
            }
            return [UInt8](d)
        }
        if let wallet { return wallet.caCertPEM }
        throw ValidationError("--ca-cert is required without a wallet")
    }
}

struct WalletOption: ParsableArguments {
    @Option(name: .long, help: "Wallet directory of the identity making the call.")
    var wallet: String

    func open() throws -> Wallet {
        do { return try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
    }
}

/// Runs a remote call, turning failures into "Error: [401] …" lines.
func calling<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let f as CallFailure {
        throw CLIError(f.description)
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}
