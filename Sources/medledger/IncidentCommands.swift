import ArgumentParser
import Foundation
import LedgerClient
import LedgerProtos
import LedgerTransport
import NIOHTTP1

/// `medledger incident`: the anomaly alerts and suspensions of one node, over its operations
/// endpoint (HTTPS, with an administrator's client certificate).
struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident",
        abstract:
            "Anomaly alerts and suspensions on a node (its operations endpoint, as one of its organisation's administrators).",
        discussion: """
            A node watches each identity against its anomaly rules (node.yaml `anomaly`). An alert is an audit \
            line, a metric (anomaly_alerts_total), a warning on the node's log and an optional webhook POST; a \
            rule with `action: suspend` also suspends the identity: it gets 401 "suspended" on that node until \
            an administrator resumes it. `revoke` goes further: the CA revokes the identity's certificates, and \
            every node refuses them once the new CRL reaches it.
            """,
        subcommands: [List.self, Suspend.self, Resume.self, Revoke.self])

    struct Endpoint: ParsableArguments {
        @Option(help: "The node's operations endpoint, host:port (node.yaml operations.listen).") var operations: String
        @Option(help: "Wallet of an administrator of the node's organisation.") var wallet: String
        @Option(help: "Trusted root certificate (PEM). Default: the wallet's ca-cert.pem.") var caCert: String?

        /// Sends one request; the answer's status and JSON body.
        func send(_ method: HTTPMethod, _ path: String, body: [String: String]? = nil) async throws -> (UInt, Any) {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard NodeAddress(operations) != nil else {
                throw ValidationError("--operations \(operations) is not host:port")
            }
            let client = try OperationsClient(address: operations, wallet: w, caCert: caCert)
            let answer: (status: UInt, body: Data)
            do { answer = try await client.send(method, path, json: body) } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
            return (answer.status, (try? JSONSerialization.jsonObject(with: answer.body)) ?? [:])
        }

        /// The body, or the node's refusal as an error.
        func expect(_ statuses: Set<UInt>, _ answer: (UInt, Any)) throws -> [String: Any] {
            let object = answer.1 as? [String: Any] ?? [:]
            guard statuses.contains(answer.0) else {
                throw CLIError("[\(answer.0)] \(object["error"] as? String ?? "unexpected answer")")
            }
            return object
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recent alerts (up to 1,000) and the identities suspended on the node.")
        @OptionGroup var endpoint: Endpoint
        @Flag(help: "Print the node's JSON answer as it is.") var json = false

        func run() async throws {
            let body = try endpoint.expect([200], try await endpoint.send(.GET, "/incidents"))
            if json {
                print(
                    String(
                        decoding: try JSONSerialization.data(
                            withJSONObject: body, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
                return
            }
            let suspended = body["suspended"] as? [[String: Any]] ?? []
            print("suspended: \(suspended.count)")
            for s in suspended {
                let subject = s["subject"] as? [String: Any] ?? [:]
                print(
                    "  \(subject["pid"] ?? "?") (\(subject["role"] ?? "?") of \(subject["org"] ?? "?")) since \(s["since"] ?? "?") by \(s["by"] ?? "?"): \(s["reason"] ?? "")"
                )
            }
            let alerts = body["alerts"] as? [[String: Any]] ?? []
            print("alerts: \(alerts.count)")
            for a in alerts {
                let subject = a["subject"] as? [String: Any] ?? [:]
                print(
                    "  \(a["at"] ?? "?") \(a["rule"] ?? "?") [\(a["action"] ?? "?")] \(subject["pid"] ?? "?") (\(subject["role"] ?? "?") of \(subject["org"] ?? "?")): \(a["detail"] ?? "")"
                )
            }
        }
    }

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Suspend an identity on the node: every call it makes there gets 401 \"suspended\" (audited).")
        @OptionGroup var endpoint: Endpoint
        @Option(parsing: .unconditional, help: "The identity's PID.") var pid: String
        @Option(help: "Why (recorded in the node's audit log; no patient data).") var reason =
            "suspended by an administrator"

        func run() async throws {
            let body = try endpoint.expect(
                [200, 201], try await endpoint.send(.PUT, "/incidents/suspended/\(pid)", body: ["reason": reason]))
            print(
                body["already"] as? Bool == true
                    ? "\(pid) was already suspended on this node" : "\(pid) suspended on this node")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a suspension on the node (audited).")
        @OptionGroup var endpoint: Endpoint
        @Option(parsing: .unconditional, help: "The identity's PID.") var pid: String

        func run() async throws {
            let body = try endpoint.expect([200], try await endpoint.send(.DELETE, "/incidents/suspended/\(pid)"))
            let lifted = body["resumed"] as? [String: Any] ?? [:]
            print("\(pid) resumed (suspended since \(lifted["since"] ?? "?") by \(lifted["by"] ?? "?"))")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Revoke every certificate of a PID at the CA (as an SA administrator) and publish the CRL: every node refuses it.",
            discussion:
                "The same revocation as `medledger ca revoke --pid`; the CRL reaches the channels' configuration and the nodes' crl_source at once."
        )
        @OptionGroup var remote: RemoteOptions
        @OptionGroup var wallet: WalletOption
        @Option(parsing: .unconditional, help: "The identity's PID.") var pid: String
        @Option(help: "Reason: key-compromise (default), affiliation-changed, cessation, hold, unspecified.")
        var reason = "key-compromise"

        func run() async throws {
            var revoke = try CACommand.Revoke.parse(
                ["--pid", pid, "--reason", reason, "--wallet", wallet.wallet] + remote.arguments)
            try await revoke.run()
        }
    }
}

extension RemoteOptions {
    /// The options as they were given, to hand to another command.
    var arguments: [String] {
        [ca.map { ["--ca", $0] }, caCert.map { ["--ca-cert", $0] }, serverName.map { ["--server-name", $0] }].compactMap
        { $0 }.flatMap { $0 }
    }
}
