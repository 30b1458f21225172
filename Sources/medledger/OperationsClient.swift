import AsyncHTTPClient
import Foundation
import LedgerClient
import NIOCore
import NIOHTTP1
import NIOSSL

/// HTTPS to a node's operations endpoint with a wallet's TLS certificate (mutual TLS), one kept-alive
/// connection for all requests (as Prometheus keeps one). `medledger incident` and `bench operations`.
final class OperationsClient: Sendable {
    let address: String
    private let client: HTTPClient

    init(address: String, wallet: Wallet, caCert: String? = nil) throws {
        self.address = address
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        do {
            tls.trustRoots = .file(caCert ?? wallet.caCertPath)
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(wallet.tlsCertPath).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: wallet.tlsKeyPath, format: .pem))
        } catch { throw CLIError("wallet \(wallet.directory): \(error)") }
        client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
    }

    /// One request: the status and the body (at most 16 MiB).
    func send(
        _ method: HTTPMethod, _ path: String, json body: [String: String]? = nil
    ) async throws -> (status: UInt, body: Data) {
        try await send(
            method, path, data: try body.map { try JSONSerialization.data(withJSONObject: $0) },
            contentType: "application/json")
    }

    /// One request with a body of any type.
    func send(
        _ method: HTTPMethod, _ path: String, data body: Data?, contentType: String, headers: [(String, String)] = []
    ) async throws -> (status: UInt, body: Data) {
        do {
            var request = HTTPClientRequest(url: "https://\(address)\(path)")
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body {
                request.headers.add(name: "Content-Type", value: contentType)
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response = try await client.execute(request, timeout: .seconds(15))
            let bytes = try await response.body.collect(upTo: 16 << 20)
            return (response.status.code, Data(buffer: bytes))
        } catch {
            throw CLIError("operations endpoint \(address): \(error)")
        }
    }

    func shutdown() async { try? await client.shutdown() }
}
