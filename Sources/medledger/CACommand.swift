import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCA
import LedgerClient
import LedgerConfig
import LedgerCrypto
import LedgerIdentity
import LedgerNode
import LedgerProtos
import LedgerTransport

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "The system administrator's certificate authority.",
        subcommands: [Init.self, Serve.self, Revoke.self, CRL.self, ResolvePID.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create the SA root CA, its encrypted store, the SA administrator's wallet and the SA node's identity.",
            discussion: """
                Writes into --data: ca/ (the CA's private store), ca-cert.pem, wallets/admin/ (the SA administrator),
                wallets/sa-node/ (the SA node's TLS and signing identity) and sa-node.yaml (the node configuration `ca serve`
                uses: the CA, the solo ordering service in orderer-data/, and a peer for raft channels the hospitals order).
                The master key that encrypts the CA key and RID records comes from --master-key-file (created if missing)
                or MEDLEDGER_CA_MASTER_KEY; keep it apart from the data directory's backups.
                """)

        @Option(help: "The SA's data directory.") var data: String
        @Option(help: "Master key file (32 bytes, hex or base64); created if it does not exist.") var masterKeyFile:
            String?
        @Option(help: "Name of the root CA.") var name = "MedLedger SA Root CA"
        @Option(help: "DNS names for the SA node's TLS certificate.") var dns: [String] = ["localhost"]
        @Option(help: "IP addresses for the SA node's TLS certificate.") var ip: [String] = ["127.0.0.1"]
        @Option(help: "Main (mutual-TLS) listen address written to sa-node.yaml.") var listen = "127.0.0.1:7050"
        @Option(help: "Enrollment (server-TLS) listen address written to sa-node.yaml.") var enrollListen =
            "127.0.0.1:7054"

        func run() async throws {
            if FileManager.default.fileExists(atPath: data + "/ca") { throw CLIError("a CA already exists in \(data)") }
            try FileManager.default.createDirectory(
                atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let box: SecretBox
            if let file = masterKeyFile, !FileManager.default.fileExists(atPath: file) {
                do { try SecureFile.write(Data((SecretBox.generateEncodedKey() + "\n").utf8), to: file) } catch {
                    throw CLIError("cannot write master key file \(file): \(error)")
                }
                print("created master key \(file) (0600): keep it safe and apart from backups of \(data)")
                box = try SecretBox.load(keyFile: file)
            } else {
                do { box = try SecretBox.load(keyFile: masterKeyFile) } catch { throw CLIError("\(error)") }
            }
            let audit = try AuditLog(path: data + "/audit.log", policy: .everyLine) { failure in
                FileHandle.standardError.write(Data("medledger: \(failure)\n".utf8))
            }
            defer { try? audit.close() }  // a failed final flush is reported through onFailure
            let ca = try CertificateAuthority.initialize(
                dataDir: data + "/ca", box: box,
                config: {
                    var c = CAConfig()
                    c.caName = name
                    return c
                }(), audit: audit)
            defer { ca.close() }
            try Data(ca.rootCertificate.pem.utf8).write(to: URL(fileURLWithPath: data + "/ca-cert.pem"))
            let adminKeys = KeyPairs()
            let (a1, a2) = try adminKeys.csrs(name: "admin")
            let admin = try ca.bootstrapIdentity(name: "admin", role: "admin", csrPEM: Array(a1), tlsCSRPEM: Array(a2))
            try Wallet.store(admin, keys: adminKeys, in: data + "/wallets/admin")
            let nodeKeys = KeyPairs()
            let (n1, n2) = try nodeKeys.csrs(name: "sa-node")
            let node = try ca.bootstrapIdentity(
                name: "sa-node", role: "node", csrPEM: Array(n1), tlsCSRPEM: Array(n2), dnsNames: dns, ipAddresses: ip)
            try Wallet.store(node, keys: nodeKeys, in: data + "/wallets/sa-node")
            let keyLine =
                masterKeyFile.map { "  master_key_file: \(URL(fileURLWithPath: $0).standardizedFileURL.path)\n" } ?? ""
            let yaml = """
                # medledgerd configuration of the system administrator's node (written by `medledger ca init`).
                node: { name: sa-node, org: sa }
                data_dir: node-data
                listen: \(listen)
                tls: { cert: wallets/sa-node/tls-cert.pem, key: wallets/sa-node/tls-key.pem }
                trusted_roots: [ca-cert.pem]
                audit_log: audit.log
                # The SA's node orders solo channels. Its peer joins the raft channels the hospitals order
                # (their configuration lists it under the sa organisation), so that it knows them and its
                # CRL publisher can put each revocation into them.
                peer: true
                orderer: { data_dir: orderer-data }
                ca:
                  data_dir: ca
                  enroll_listen: \(enrollListen)
                  # Signs the CRL updates this node puts into the channels it orders after a revocation.
                  crl_publisher: { cert: wallets/admin/signing-cert.pem, key: wallets/admin/signing-key.pem }

                """ + keyLine
            try Data(yaml.utf8).write(to: URL(fileURLWithPath: data + "/sa-node.yaml"))
            print("root CA: \(name), serial \(ca.rootCertificate.serialHex)")
            print("SA administrator wallet: \(data)/wallets/admin (PID \(admin.pid))")
            print(
                "SA node configuration: \(data)/sa-node.yaml — start it with `medledger ca serve --data \(data)` or `medledgerd --config \(data)/sa-node.yaml`"
            )
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the SA node (CA service and solo orderer) in the foreground, from <data>/sa-node.yaml.")

        @Option(help: "The SA's data directory.") var data: String
        @Option(help: "Override the mutual-TLS listen address.") var listen: String?
        @Option(help: "Override the enrollment listen address.") var enrollListen: String?
        @Option(help: "Master key file (else MEDLEDGER_CA_MASTER_KEY or the one in sa-node.yaml).") var masterKeyFile:
            String?

        func run() async throws {
            var config: NodeConfig
            do { config = try NodeConfig.load(path: data + "/sa-node.yaml") } catch { throw CLIError("\(error)") }
            if let listen { config.listen = listen }
            if let enrollListen { config.ca?.enrollListen = enrollListen }
            if let masterKeyFile { config.ca?.masterKeyFile = masterKeyFile }
            do {
                let logging = try NodeLogging.start(spec: config.logSpec)
                try await NodeServer(
                    config: config, log: logging.line, logLevels: logging.levels, logAs: logging.component
                ).run()
            } catch let e as CustomStringConvertible {
                throw CLIError(e.description)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a certificate (by serial) or every certificate of a PID, and issue a new CRL.")

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(help: "Serial number (hex) of the certificate to revoke.") var serial: String?
        @Option(parsing: .unconditional, help: "Revoke every certificate of this PID.") var pid: String?
        @Option(help: "Reason: unspecified, key-compromise, affiliation-changed, superseded, cessation, hold.")
        var reason = "unspecified"

        func run() async throws {
            guard (serial == nil) != (pid == nil) else {
                throw ValidationError("give exactly one of --serial and --pid")
            }
            let reasons: [String: Medledger_RevocationReason] = [
                "unspecified": .unspecifiedReason, "key-compromise": .keyCompromise,
                "affiliation-changed": .affiliationChanged,
                "superseded": .superseded, "cessation": .cessationOfOperation, "hold": .certificateHold,
            ]
            guard let r = reasons[reason] else { throw ValidationError("unknown --reason \(reason)") }
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let result = try await calling { try await client.revoke(serialHex: serial, pid: pid, reason: r) }
            print(
                "revoked \(result.revokedSerials.count) certificate(s): \(result.revokedSerials.joined(separator: ", "))"
            )
            print("CRL number \(result.crlNumber)")
            for ch in result.crlPublishedChannels {
                print("CRL \(result.crlNumber) is in the configuration of channel \(ch)")
            }
            for f in result.crlPublishFailures { print("warning: CRL not published: \(f)") }
        }
    }

    struct CRL: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch the CA's current signed CRL (works on the enrollment listener without a certificate).")

        @OptionGroup var remote: RemoteOptions
        @Option(help: "Wallet (optional: only needed on the mutual-TLS listener).") var wallet: String?
        @Option(help: "Where to write the CRL.") var out: String
        @Flag(help: "Write DER instead of PEM.") var der = false

        func run() async throws {
            let w = try wallet.map { try Wallet.open($0) }
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let crl = try await calling { try await client.crl() }
            let bytes = der ? crl.crlDer : Data(RevocationList.pem(der: [UInt8](crl.crlDer)).utf8)
            // Write then rename, so a node watching the file never reads half of it.
            let tmp = out + ".tmp"
            try bytes.write(to: URL(fileURLWithPath: tmp))
            _ = try? FileManager.default.removeItem(atPath: out)
            try FileManager.default.moveItem(atPath: tmp, toPath: out)
            print("CRL number \(crl.crlNumber) written to \(out)")
        }
    }

    struct ResolvePID: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resolve-pid",
            abstract: "Reveal the real identity behind a PID (SA administrators only; audited).")

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(parsing: .unconditional, help: "The pseudo identity.") var pid: String
        @Option(parsing: .unconditional, help: "Why (recorded in the audit log).") var justification: String

        func run() async throws {
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let r = try await calling { try await client.resolvePID(pid, justification: justification) }
            print("PID \(pid)")
            print("  real identity: \(r.realIdentity)")
            print("  enrollment id: \(r.enrollmentID), organisation \(r.orgID), role \(RoleName.name(r.role) ?? "?")")
        }
    }
}
