import Foundation

/// Hands one signed envelope to a channel's ordering endpoints in turn until one acknowledges it (in
/// a raft cluster any consenter forwards to the leader). An attempt that was not acknowledged (the
/// orderer unreachable, or 503 while an election runs) goes to the next endpoint, passes repeating
/// with a short backoff for up to `seconds`; a retry answered 409 means an earlier attempt got in. Any
/// other refusal is the answer. The gateway's configuration updates and the SA's CRL publisher send
/// this way (transactions follow `SubmitFlow`, which decides the same way).
public enum OrderingFailover {
    public static func send(
        to endpoints: [NodeAddress], for seconds: Int64, status: (any Error) -> Int?,
        _ attempt: (NodeAddress) async throws -> Void
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var attempts = 0
        var round = 0
        while true {
            for address in endpoints {
                do {
                    try await attempt(address)
                    return
                } catch {
                    let code = status(error)
                    if code == 409 && attempts > 0 { return }
                    guard code == 503, ContinuousClock.now < deadline else { throw error }
                }
                attempts += 1
            }
            // An election takes about a second: retry often, backing off per pass over the endpoints.
            round += 1
            try await Task.sleep(for: .milliseconds(min(400, 25 << min(round, 4))))
        }
    }
}
