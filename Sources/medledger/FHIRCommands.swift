import ArgumentParser
import AsyncHTTPClient
import Foundation
import JWTKit
import LedgerClient
import LedgerTransport
import NIOCore
import NIOHTTP1
import NIOSSL

/// The node's FHIR face from the command line: an administrator registers SMART apps and backend
/// services; a backend service's keys and tokens for scripts and curl.
struct FHIRCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fhir",
        abstract: "SMART on FHIR clients of a node's FHIR endpoint (node.yaml `fhir`), and backend-service tokens.",
        discussion: """
            Apps (patients' and practitioners' apps) use the authorization code flow with PKCE and sign their \
            user in with the user's wallet TLS certificate; backend services (hospital systems) use \
            client_credentials with a private_key_jwt assertion signed by a key registered here (ES384 or RS384). \
            See docs/FHIR.md.
            """,
        subcommands: [Client.self, Keygen.self, Token.self])

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register, list and remove the node's SMART clients (administrators of the node's organisation).",
            subcommands: [Register.self, List.self, Remove.self])
    }

    struct Endpoint: ParsableArguments {
        @Option(help: "The node's FHIR endpoint, host:port (node.yaml fhir.listen).") var fhir: String
        @Option(help: "Wallet of an administrator of the node's organisation.") var wallet: String
        @Option(help: "Trusted root certificate (PEM). Default: the wallet's ca-cert.pem.") var caCert: String?

        func send(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> (UInt, [String: Any]) {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard NodeAddress(fhir) != nil else { throw ValidationError("--fhir \(fhir) is not host:port") }
            let client = try OperationsClient(address: fhir, wallet: w, caCert: caCert)
            let answer: (status: UInt, body: Data)
            // The node refuses changes without these (a guard against cross-site requests from a
            // browser holding an administrator's certificate).
            do {
                answer = try await client.send(
                    method, path, data: body, contentType: "application/json",
                    headers: [("X-Requested-With", "medledger")])
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
            return (answer.status, (try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any]) ?? [:])
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Register an app (--redirect-uri) or a backend service (--jwks) with the node's authorization server.")
        @OptionGroup var endpoint: Endpoint
        @Option(help: "The client id (letters, digits, '-', '.', '_').") var clientID: String
        @Option(help: "A name the approval page shows (default: the client id).") var name: String?
        @Option(help: "An app's redirect URI (https, or http to 127.0.0.1); repeat for several.") var redirectURI:
            [String] = []
        @Option(help: "A backend service's public keys: a JWKS file (ES384 P-384 or RS384 RSA keys, each with a kid).")
        var jwks: String?
        @Option(
            help:
                "The most the client may be granted: SMART v2 scopes, e.g. \"patient/DocumentReference.rs patient/AuditEvent.rs launch/patient\" or \"system/DocumentReference.rs\"."
        ) var scope: String

        func validate() throws {
            guard redirectURI.isEmpty != (jwks == nil) else {
                throw ValidationError("give --redirect-uri (an app) or --jwks (a backend service), not both")
            }
        }

        func run() async throws {
            var body: [String: Any] = ["client_id": clientID, "name": name ?? clientID, "scope": scope]
            if let jwks {
                guard let text = try? String(contentsOfFile: jwks, encoding: .utf8) else {
                    throw CLIError("cannot read \(jwks)")
                }
                (body["kind"], body["jwks"]) = ("backend", text)
            } else {
                (body["kind"], body["redirect_uris"]) = ("app", redirectURI)
            }
            let (status, answer) = try await endpoint.send(
                .POST, "/oauth/clients", body: try JSONSerialization.data(withJSONObject: body))
            guard status == 200 || status == 201 else {
                throw CLIError("[\(status)] \(answer["error"] ?? "registration refused")")
            }
            print(
                "\(answer["replaced"] as? Bool == true ? "replaced" : "registered") \(clientID) (\(body["kind"]!)) with scope \(answer["scope"] ?? "")"
            )
            print("token endpoint: \(answer["token_endpoint"] ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The organisation's clients registered on the node.")
        @OptionGroup var endpoint: Endpoint

        func run() async throws {
            let (status, answer) = try await endpoint.send(.GET, "/oauth/clients")
            guard status == 200, let clients = answer["clients"] as? [[String: Any]] else {
                throw CLIError("[\(status)] \(answer["error"] ?? "refused")")
            }
            if clients.isEmpty { print("no clients") }
            for c in clients {
                print(
                    "\(c["client_id"] ?? "")  \(c["kind"] ?? "")  scope: \(c["scope"] ?? "")  by \(c["registered_by"] ?? "") at \(c["registered_at"] ?? "")"
                )
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a client; its tokens stop working at once.")
        @OptionGroup var endpoint: Endpoint
        @Option(help: "The client id.") var clientID: String

        func run() async throws {
            guard clientID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
                throw ValidationError("--client-id holds letters, digits, '-', '.', '_' only")
            }
            let (status, answer) = try await endpoint.send(.DELETE, "/oauth/clients/" + clientID)
            guard status == 200 else { throw CLIError("[\(status)] \(answer["error"] ?? "refused")") }
            print("removed \(clientID)")
        }
    }

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A backend service's ES384 key pair: OUT/client-key.pem (private, 0600) and OUT/jwks.json (public, to register)."
        )
        @Option(help: "Directory to write into.") var out: String
        @Option(help: "The key id (kid) clients put in their assertions' header.") var kid: String

        func run() async throws {
            let key = ES384PrivateKey()
            guard let p = key.parameters else { throw CLIError("cannot read the new key's coordinates") }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let keyPath = out + "/client-key.pem"
            guard
                FileManager.default.createFile(
                    atPath: keyPath, contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600])
            else {
                throw CLIError("cannot write \(keyPath)")
            }
            let jwks = [
                "keys": [["kty": "EC", "crv": "P-384", "x": p.x, "y": p.y, "kid": kid, "alg": "ES384", "use": "sig"]]
            ]
            try JSONSerialization.data(withJSONObject: jwks, options: [.prettyPrinted, .sortedKeys]).write(
                to: URL(fileURLWithPath: out + "/jwks.json"))
            print("wrote \(keyPath) and \(out)/jwks.json (kid \(kid))")
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A backend service's access token: signs a client assertion (ES384) and exchanges it at the token endpoint.",
            discussion: "Prints the token endpoint's JSON answer; use its access_token as `Authorization: Bearer …`.")
        @Option(help: "The node's FHIR endpoint, host:port.") var fhir: String
        @Option(help: "Trusted root certificate (PEM) of the node's TLS certificate.") var caCert: String
        @Option(help: "The registered client id.") var clientID: String
        @Option(help: "The client's private key (PEM, from `fhir keygen`).") var key: String
        @Option(help: "The key id registered in its JWKS.") var kid: String
        @Option(help: "The scopes asked for, e.g. \"system/DocumentReference.rs\".") var scope: String
        @Option(help: "The token endpoint's URL (default https://FHIR/oauth/token).") var tokenURL: String?

        struct Assertion: JWTPayload {
            var iss: String
            var sub: String
            var aud: String
            var exp: Int
            var iat: Int
            var jti: String
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }

        func run() async throws {
            let url = tokenURL ?? "https://\(fhir)/oauth/token"
            let pem: String
            do { pem = try String(contentsOfFile: key, encoding: .utf8) } catch { throw CLIError("cannot read \(key)") }
            let keys = JWTKeyCollection()
            do { await keys.add(ecdsa: try ES384PrivateKey(pem: pem), kid: JWKIdentifier(string: kid)) } catch {
                throw CLIError("\(key) is not an ES384 private key: \(error)")
            }
            let now = Int(Date().timeIntervalSince1970)
            let assertion = try await keys.sign(
                Assertion(iss: clientID, sub: clientID, aud: url, exp: now + 240, iat: now, jti: UUID().uuidString),
                kid: JWKIdentifier(string: kid), header: ["typ": "JWT"])
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.trustRoots = .file(caCert)
            let http = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            let form = [
                ("grant_type", "client_credentials"), ("scope", scope),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
            ]
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            request.body = .bytes(
                ByteBuffer(
                    string: form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
                        .joined(separator: "&")))
            let status: HTTPResponseStatus
            let body: String
            do {
                let response = try await http.execute(request, timeout: .seconds(15))
                (status, body) = (response.status, String(buffer: try await response.body.collect(upTo: 1 << 20)))
                try? await http.shutdown()
            } catch {
                try? await http.shutdown()
                throw CLIError("token endpoint \(url): \(error)")
            }
            guard status == .ok else { throw CLIError("[\(status.code)] \(body)") }
            print(body)
        }
    }
}
