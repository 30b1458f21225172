import LedgerTransport
import Testing

/// The pool of clients a node keeps for the other nodes it calls.
@Suite struct NodeClientsTests {
    /// A caller whose call failed drops the client it used, and only that one: a late drop from a
    /// caller that failed on the old connection leaves the fresh client another caller opened alone.
    @Test func aDropClosesOnlyTheClientThatFailed() throws {
        let pki = try HandshakeDeadlineTests.TestPKI()
        defer { pki.remove() }
        let pool = NodeClients(trustedRootsPEM: pki.rootPEM, identity: pki.client)
        defer { pool.close() }
        let node = NodeAddress(host: "127.0.0.1", port: 1)
        let first = try pool.client(node)
        #expect(try pool.client(node) === first, "a kept client is reused")

        pool.drop(node, failed: first)
        let fresh = try pool.client(node)
        #expect(fresh !== first, "a dropped client is replaced")

        pool.drop(node, failed: first)
        #expect(try pool.client(node) === fresh, "a stale drop closed the fresh client")
    }
}
