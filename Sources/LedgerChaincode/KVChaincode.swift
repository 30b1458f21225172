import Foundation

/// `kv`: plain put/get/del/range/history, for benchmarks and tests. Any member identity may call it.
///
///     put KEY VALUE    get KEY    del KEY    range START END PAGESIZE [BOOKMARK]    history KEY [BOOKMARK]
///
/// `range` answers `{"keys":[…],"bookmark":…}` and `history` `{"entries":[…],"bookmark":…}`; an empty
/// bookmark means there is nothing more.
public struct KVChaincode: Chaincode {
    public let name = "kv"

    public init() {}

    public func invoke(_ stub: ChaincodeStub) throws -> ChaincodeResponse {
        let a = stub.args
        func arg(_ i: Int) -> String { String(decoding: a[i], as: UTF8.self) }
        switch (stub.function, a.count) {
        case ("put", 2):
            try stub.putState(arg(0), a[1])
            return .ok()
        case ("get", 1):
            guard let v = try stub.getState(arg(0)) else { return .notFound("no key \(arg(0).debugDescription)") }
            return .ok(v)
        case ("del", 1):
            try stub.delState(arg(0))
            return .ok()
        case ("range", 3), ("range", 4):
            guard let size = Int(arg(2)), size > 0 else { return .badRequest("page size must be a positive number") }
            let page = try stub.getStateByRange(
                startKey: arg(0), endKey: arg(1), pageSize: size, bookmark: a.count == 4 ? arg(3) : nil)
            let body: [String: Any] = ["keys": page.entries.map(\.key), "bookmark": page.bookmark ?? ""]
            return .ok(Array(try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        case ("history", 1), ("history", 2):
            // A page of up to 10,000 writes; `bookmark` (the last version shown) asks for the next page.
            let page = try stub.getHistoryForKey(arg(0), bookmark: a.count == 2 ? arg(1) : nil)
            let entries = page.entries.map {
                ["version": "\($0.version)", "deleted": $0.isDelete, "value": Data($0.value).base64EncodedString()]
                    as [String: Any]
            }
            let body: [String: Any] = ["entries": entries, "bookmark": page.bookmark ?? ""]
            return .ok(Array(try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        default:
            return .badRequest(
                "kv: unknown function \(stub.function) with \(a.count) arguments (put KEY VALUE, get KEY, del KEY, range START END SIZE [BOOKMARK], history KEY [BOOKMARK])"
            )
        }
    }
}
