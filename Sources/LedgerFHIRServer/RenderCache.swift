import Foundation
import LedgerFHIR
import MedRecords
import Synchronization

/// JSON of resources rendered from P_DE, which never change once committed: a search answers the
/// same records again and again, and encoding them is most of a search's cost. Only the rendering
/// is reused; who may read a record is decided by the chaincode on every request. Bounded.
final class RenderCache: Sendable {
    static let max = 10_000
    private let documents = Mutex<[String: Data]>([:])

    func documentReference(_ r: IndexRecord) -> Data {
        // The digest and time are in the key, so a record that did differ could not be served stale.
        let key = r.recordID + "|" + r.digest + "|" + r.time
        if let hit = documents.withLock({ $0[key] }) { return hit }
        let json = (try? FHIR.encode(DocumentReference(r))) ?? Data("{}".utf8)
        documents.withLock { cache in
            if cache.count >= Self.max { cache.removeAll(keepingCapacity: true) }
            cache[key] = json
        }
        return json
    }
}
