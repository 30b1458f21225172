import ArgumentParser
import Crypto
import Foundation
import LedgerAudit
import LedgerClient
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerTransport
import MedRecords
import X509

struct OrgCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org", abstract: "Organisations.", subcommands: [Admit.self])

    struct Admit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Admit a hospital or third-party organisation (run by the SA administrator).",
            discussion: """
                Keys are generated here and written under --out: admin/ (the organisation's administrator, H_Mj for a
                hospital) and nodes/NAME/ for each --node, with a node.yaml ready for `medledgerd --config`.
                """)

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(help: "Organisation id (lower-case letters, digits, '-').") var org: String
        @Option(help: "hospital or third-party.") var type = "hospital"
        @Option(help: "Display name.") var displayName: String?
        @Option(help: "Node names (hospitals).") var node: [String] = []
        @Option(help: "DNS names for the nodes' TLS certificates.") var dns: [String] = ["localhost"]
        @Option(help: "IP addresses for the nodes' TLS certificates.") var ip: [String] = ["127.0.0.1"]
        @Option(help: "Listen address written into each node.yaml.") var listen = "127.0.0.1:7051"
        @Option(
            help:
                "The CA's enrollment address (host:port) written into each node.yaml as crl_source: the node fetches the CA's CRL there when its own is due or stale."
        )
        var crlSource: String?
        @Option(
            help:
                "Also order: the raft listener (host:port) written into each node.yaml; the node becomes a raft consenter once a channel names its TLS certificate."
        )
        var raftListen: String?
        @Option(help: "Output directory for the new identities.") var out: String

        func run() async throws {
            let types: [String: Medledger_OrgType] = ["hospital": .hospital, "third-party": .thirdPartyOrg]
            guard let t = types[type] else { throw ValidationError("--type must be hospital or third-party") }
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let specs = node.map { CAClient.NodeSpec(name: $0, dnsNames: dns, ipAddresses: ip) }
            let (admin, nodes) = try await calling {
                try await client.admitOrganization(
                    id: org, type: t, displayName: displayName ?? org, nodes: specs, outputDirectory: out)
            }
            print("admitted \(org) (\(type)); administrator wallet \(admin.directory) (PID \(admin.info.pid))")
            for n in nodes {
                let yaml = """
                    # medledgerd configuration of \(n.info.name) of \(org) (written by `medledger org admit`).
                    node: { name: \(n.info.name.split(separator: "@").first.map(String.init) ?? n.info.name), org: \(org) }
                    data_dir: data
                    listen: \(listen)
                    tls: { cert: tls-cert.pem, key: tls-key.pem }
                    trusted_roots: [ca-cert.pem]
                    crl_files: [crl.pem]
                    \(crlSource.map { "crl_source: \($0)\n" } ?? "")\(raftListen.map { "orderer: { data_dir: orderer-data, raft_listen: \($0) }\n" } ?? "")audit_log: audit.log

                    """
                try Data(yaml.utf8).write(to: URL(fileURLWithPath: n.directory + "/node.yaml"))
                print("node \(n.info.name): wallet and node.yaml in \(n.directory)")
            }
        }
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Users: register, enroll, re-enroll.",
        subcommands: [Register.self, Enroll.self, Reenroll.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a user (organisation administrator); prints the one-time enrollment secret.")

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(help: "Enrollment id.") var id: String
        @Option(help: "patient, doctor, device or third-party.") var role: String
        @Option(parsing: .unconditional, help: "Real identity (RID), kept encrypted by the SA and never put on chain.")
        var rid: String
        @Option(help: "Organisation (default: the registrar's own).") var org: String?

        func run() async throws {
            guard let r = RoleName.role(role), [.patient, .doctor, .device, .thirdParty].contains(r) else {
                throw ValidationError("--role must be patient, doctor, device or third-party")
            }
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let secret = try await calling {
                try await client.register(enrollmentID: id, role: r, realIdentity: rid, org: org ?? "")
            }
            print("registered \(id) as \(role)")
            print("enrollment secret (one use): \(secret)")
        }
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll with a one-time secret: keys are made here, only CSRs are sent.")

        @OptionGroup var remote: RemoteOptions
        @Option(help: "Enrollment id.") var id: String
        @Option(parsing: .unconditional, help: "The one-time enrollment secret.") var secret: String
        @Option(help: "Wallet directory to create.") var wallet: String

        func run() async throws {
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: nil), wallet: nil,
                serverName: remote.serverName)
            let w = try await calling {
                try await client.enroll(enrollmentID: id, secret: secret, walletDirectory: wallet)
            }
            print("enrolled \(id): PID \(w.info.pid), organisation \(w.info.org), role \(w.info.role)")
            print("wallet: \(w.directory)")
        }
    }

    struct Reenroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Get new certificates (new keys) for the same PID, e.g. before expiry.")

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption

        func run() async throws {
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let renewed = try await calling { try await client.reenroll() }
            print(
                "re-enrolled PID \(renewed.info.pid); new certificate serial \(try renewed.tlsCertificate().serialHex)")
        }
    }
}

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Certificates.", subcommands: [Show.self, Lookup.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a certificate's identity: PID, organisation, role, serial, validity, usage.")

        @Argument(help: "A PEM certificate file, or a wallet directory (shows both of its certificates).") var path:
            String

        func run() async throws {
            var files = [path]
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                files = [path + "/signing-cert.pem", path + "/tls-cert.pem"]
            }
            for f in files {
                guard let pem = try? String(contentsOfFile: f, encoding: .utf8) else {
                    throw CLIError("cannot read \(f)")
                }
                let c: Certificate
                do { c = try Certificate(pemEncoded: pem) } catch {
                    throw CLIError("\(f) is not a PEM certificate: \(error)")
                }
                let a = c.attributes
                let eku =
                    (try? c.extensions.extendedKeyUsage).map { e in e.map { "\($0)" }.joined(separator: ", ") }
                    ?? "none"
                print(f)
                print("  PID:          \(a?.pid ?? "-")")
                print("  organisation: \(a?.org ?? "-")")
                print("  role:         \(a?.role ?? "-")")
                print("  serial:       \(c.serialHex)")
                print("  valid:        \(c.notValidBefore) to \(c.notValidAfter)")
                print("  issuer:       \(c.issuer)")
                print("  usage:        \(eku == "none" ? "signing" : "TLS (\(eku))")")
            }
        }
    }

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Certificate directory: the certificates of a PID and their status.")

        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(parsing: .unconditional, help: "The PID to look up.") var pid: String

        func run() async throws {
            let w = try wallet.open()
            let client = CAClient(
                endpoint: try remote.address(), trustedRootsPEM: try remote.rootsPEM(wallet: w), wallet: w,
                serverName: remote.serverName)
            let r = try await calling { try await client.lookup(pid: pid) }
            print("PID \(r.pid): organisation \(r.orgID), role \(RoleName.name(r.role) ?? "?")")
            for c in r.certificates {
                print("  \(c.purpose)\tserial \(c.serialHex)\t\(c.status)\tuntil \(c.notAfter.date)")
            }
        }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Call a node's API over mutual TLS.",
        subcommands: [WhoAmI.self, Status.self, ChannelInfo.self])

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whoami", abstract: "Show the identity the node sees for this wallet.")

        @Option(help: "Node address host:port.") var node: String
        @OptionGroup var wallet: WalletOption
        @Option(help: "TLS server name to expect.") var serverName: String?

        func run() async throws {
            let w = try wallet.open()
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            let r = try await calling {
                try await NodeClient(
                    endpoint: a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, serverName: serverName
                ).whoAmI()
            }
            print(
                "PID \(r.pid), organisation \(r.orgID), role \(RoleName.name(r.role) ?? "?"), certificate \(r.serialHex) (node of \(r.nodeOrgID))"
            )
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "What the node enforces: its revocation lists (number, dates, stale or not, where from). Exit 1 if one is stale."
        )

        @Option(help: "Node address host:port.") var node: String
        @OptionGroup var wallet: WalletOption
        @Option(help: "TLS server name to expect.") var serverName: String?

        func run() async throws {
            let w = try wallet.open()
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            let r = try await calling {
                try await NodeClient(
                    endpoint: a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, serverName: serverName
                ).whoAmI()
            }
            print("node of \(r.nodeOrgID)")
            if r.crls.isEmpty { print("CRL: none installed (no revocations enforced beyond the channels' own)") }
            for c in r.crls {
                let next = c.hasNextUpdate ? ISO8601DateFormatter().string(from: c.nextUpdate.date) : "-"
                print(
                    "CRL \(c.number) of \(c.issuer): this update \(ISO8601DateFormatter().string(from: c.thisUpdate.date)), next update \(next)\(c.stale ? ", STALE (still enforced; being refreshed)" : ""), from \(c.source)"
                )
                if !c.lastRefreshError.isEmpty { print("  last refresh failed: \(c.lastRefreshError)") }
            }
            if r.crls.contains(where: \.stale) { throw ExitCode(1) }
        }
    }

    struct ChannelInfo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "channel-info", abstract: "Height and hashes of a channel (administrators, doctors and nodes)."
        )

        @Option(help: "Node address host:port.") var node: String
        @OptionGroup var wallet: WalletOption
        @Option(help: "Channel name.") var channel: String
        @Option(help: "TLS server name to expect.") var serverName: String?

        func run() async throws {
            let w = try wallet.open()
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            let r = try await calling {
                try await NodeClient(
                    endpoint: a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, serverName: serverName
                ).channelInfo(channel)
            }
            print("channel \(r.channel): height \(r.height)")
            print("tip hash \(Hex.encode(r.tipHash))")
            print("commit hash \(Hex.encode(r.commitHash))")
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Audit logs.", subcommands: [Verify.self, Mine.self])

    struct Mine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Patients: who read your records on a node, and when (that node's audit log; PIDs only).",
            discussion: """
                Each node keeps its own audit log: ask every hospital's node that holds your records. Lists the \
                newest first; --since and --limit narrow it. A denied entry is someone who tried and was refused. \
                The usage records on chain (medrecords listUsage) are the other half: accesses by decryption.
                """)

        @Option(help: "Node address host:port.") var node: String
        @OptionGroup var wallet: WalletOption
        @Option(help: "TLS server name to expect.") var serverName: String?
        @Option(help: "Only entries at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).") var since: String?
        @Option(help: "Most entries to show, 1...1000.") var limit: UInt32 = 100
        @Flag(help: "One JSON object per line instead of a table.") var json = false

        func run() async throws {
            let w = try wallet.open()
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1...1000") }
            let client = NodeClient(
                endpoint: a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity, serverName: serverName)
            let r = try await calling { try await client.auditTrail(since: since ?? "", limit: limit) }
            if json {
                for e in r.entries {
                    let object: [String: Any] = [
                        "time": e.time, "actor_pid": e.actorPid, "actor_org": e.actorOrg, "actor_role": e.actorRole,
                        "action": e.action, "outcome": e.outcome, "detail": e.detail, "seq": e.seq,
                    ]
                    print(
                        String(
                            decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                            as: UTF8.self))
                }
                return
            }
            print(
                "\(r.entries.count) access(es) to your records on the node of \(r.nodeOrgID)\(r.truncated ? " (more before these: use --since or --limit)" : "")"
            )
            for e in r.entries {
                print(
                    "\(e.time)  \(e.outcome.padding(toLength: 8, withPad: " ", startingAt: 0)) \(e.actorRole) \(e.actorPid) of \(e.actorOrg): \(e.action) (\(e.detail))"
                )
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an audit log's hash chain: any edited, removed, inserted or reordered line is reported.",
            discussion: """
                Exit status 0 when intact, 1 otherwise. With --head, lines cut from the end are detected too. With \
                --anchors, every anchor the node wrote on chain (node.yaml audit_anchor) is checked against the file: \
                a cut tail, or a file rewritten even with its hashes recomputed, is reported. A torn line left by a \
                crash and marked when the log was reopened is listed as recovered, not as tampering.
                """)

        @Argument(help: "The audit log file (the files rotated out of it, FILE.<first line>, are checked with it).")
        var file: String
        @Option(help: "The hash the log should end with (kept elsewhere).") var head: String?
        @Flag(
            help:
                "Check the file against the anchors its node wrote on chain (needs --node, --wallet and --node-cert or --node-pid)."
        ) var anchors = false
        @Option(
            help:
                "With --anchors: a node (host:port) of the log's channel to read the anchors from; use another organisation's peer (the audited node could lie about its own anchors)."
        ) var node: String?
        @Option(help: "With --anchors: wallet of an administrator of the log node's organisation.") var wallet: String?
        @Option(help: "With --anchors: the channel the node anchors on.") var channel = "records"
        @Option(help: "With --anchors: the node's signing certificate (its PID names the anchors).") var nodeCert:
            String?
        @Option(parsing: .unconditional, help: "With --anchors: the node's PID, instead of --node-cert.") var nodePid:
            String?

        func run() async throws {
            let anchored = anchors ? try await fetchAnchors() : [:]
            let r: AuditVerifier.Report
            do { r = try AuditVerifier.verify(path: file, expectedHead: head, anchors: anchored) } catch {
                throw CLIError("cannot read \(file): \(error)")
            }
            let checked =
                !anchors
                ? ""
                : anchored.isEmpty
                    ? ", no anchors on chain yet"
                    : ", \(anchored.count) anchor(s) on chain match, the last at line \(anchored.keys.max()!)"
            let files = r.files == 1 ? "" : " in \(r.files) files (with those rotated out of it)"
            let kept =
                r.firstSeq == 1
                ? ""
                : "; begins at line \(r.firstSeq), older files deleted by retention"
                    + (r.anchorsBeforeKept == 0
                        ? "" : " (\(r.anchorsBeforeKept) anchor(s) of theirs not checkable here)")
            if r.isValid {
                print("\(file): \(r.lines) lines\(files), chain intact\(checked), head \(r.head)\(kept)")
                // Crash damage the writer found and marked on reopening: reported, not a failure.
                for recovery in r.recoveries { print("  recovered: \(recovery)") }
            } else {
                print("\(file): \(r.lines) lines\(files), TAMPERED\(kept):")
                for p in r.problems { print("  - \(p)") }
                for recovery in r.recoveries { print("  recovered: \(recovery)") }
                throw ExitCode(1)
            }
        }

        /// Line number → anchored hash, every page of `medrecords.listAuditAnchors`.
        func fetchAnchors() async throws -> [UInt64: String] {
            guard let node, let address = NodeAddress(node) else {
                throw ValidationError("--anchors needs --node host:port")
            }
            guard let wallet else { throw ValidationError("--anchors needs --wallet") }
            let pid: String
            if let nodePid {
                pid = nodePid
            } else if let nodeCert {
                guard let pem = try? String(contentsOfFile: nodeCert, encoding: .utf8),
                    let cert = try? Certificate(pemEncoded: pem),
                    let attributes = IdentityAttributes(subject: cert.subject)
                else { throw CLIError("--node-cert \(nodeCert) is not a MedLedger certificate") }
                pid = attributes.pid
            } else {
                throw ValidationError("--anchors needs --node-cert or --node-pid")
            }
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            let gateway = try await calling { try await Gateway.connect(wallet: w, peer: address, channel: channel) }
            defer { gateway.close() }
            var found: [UInt64: String] = [:]
            var bookmark: String?
            repeat {
                let request = ListAuditAnchorsRequest(nodePID: pid, pageSize: 500, bookmark: bookmark)
                let r = try await calling {
                    try await gateway.evaluate(
                        chaincode: "medrecords", function: "listAuditAnchors",
                        args: [String(decoding: try JSONEncoder().encode(request), as: UTF8.self)])
                }
                guard r.status == 200 else { throw CLIError("[\(r.status)] \(r.message)") }
                let page = try JSONDecoder().decode(RecordPage<AuditAnchor>.self, from: Data(r.payload))
                for a in page.records { found[a.seq] = a.head }
                bookmark = page.bookmark.isEmpty ? nil : page.bookmark
            } while bookmark != nil && found.count < 10_000_000
            return found
        }
    }
}
