import LedgerChaincode

/// The simulator's read-modify-write workload: `add(key)` reads a counter and writes it plus one.
/// Concurrent adds of one key conflict (MVCC), so at the end each counter must equal the number of
/// its adds that committed valid: an update lost or applied twice shows.
struct SimCounter: Chaincode {
    let name = "counter"

    func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
        guard stub.function == "add", stub.args.count == 1 else { return .badRequest("counter: add KEY") }
        let key = String(decoding: stub.args[0], as: UTF8.self)
        let current = try stub.getState(key).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
        try stub.putState(key, Array(String(current + 1).utf8))
        return .ok(Array(String(current + 1).utf8))
    }
}
