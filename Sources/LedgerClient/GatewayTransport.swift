import Foundation
import LedgerChannel
import LedgerProtos
import LedgerTransport

/// The gateway's submissions over the network: endorsements on the pipelined proposal streams of the
/// gateway's peer and the other organisations' peers, envelopes on the broadcast streams of the
/// channel's ordering endpoints, commits from the gateway peer's filtered-block stream.
struct GatewayTransport: SubmitTransport {
    let gateway: Gateway
    /// The gateway's orderer first (`SubmitFlow` sends attempt n to endpoint n mod count).
    let endpoints: [NodeAddress]

    func endorse(
        _ proposal: Medledger_SignedProposal, on peer: String
    ) async -> Result<Medledger_ProposalResponse, SubmitFailure> {
        do {
            let connection: Connection
            if peer == gateway.primaryName {
                connection = gateway.primary
            } else {
                guard let address = NodeAddress(peer) else {
                    return .failure(SubmitFailure(500, "peer endpoint \(peer) is not host:port"))
                }
                connection = try gateway.connection(address)
            }
            return .success(try await gateway.endorse(proposal, on: connection))
        } catch {
            return .failure(Self.failure(error))
        }
    }

    func broadcast(_ envelope: Medledger_Envelope, endpoint: Int) async -> SubmitFailure? {
        do {
            let r = try await gateway.broadcastResponse(envelope, to: endpoints[endpoint])
            return r.status == 200 ? nil : SubmitFailure(Int(r.status), r.message)
        } catch {
            return Self.failure(error)
        }
    }

    func watch(
        txID: String, timeoutMs: Int64
    ) async throws(SubmitFailure) -> @Sendable () async -> SubmitWatchOutcome {
        let started = ContinuousClock.now
        let slot: CommitWatcher.Slot
        do { slot = try await gateway.commits.register(txID, timeoutMs: UInt32(clamping: timeoutMs)) } catch {
            throw Self.failure(error)
        }
        return { [gateway] in
            do {
                let c = try await slot.value()
                return .committed(SubmitCommit(code: c.code, blockNumber: c.blockNumber))
            } catch CommitWatcher.WaitError.streamLost {
                // The block stream broke: ask the peer about this transaction for the time left.
                let left = max(0, timeoutMs - (ContinuousClock.now - started).components.seconds * 1000)
                do {
                    let status = try await gateway.commitStatus(txID: txID, waitMs: UInt32(clamping: left))
                    guard status.committed else { return .notSeen }
                    return .committed(SubmitCommit(code: status.code, blockNumber: status.blockNumber))
                } catch {
                    return .unknown("the peer's block stream broke and its commit status could not be asked: \(error)")
                }
            } catch {
                return .notSeen
            }
        }
    }

    func stopWatching(txID: String) { gateway.commits.unregister(txID) }

    func nowMs() -> Int64 { MonotonicTime.nowMs() }
    func sleep(untilMs: Int64) async { await MonotonicTime.sleep(untilMs: untilMs) }

    static func failure(_ error: any Error) -> SubmitFailure {
        switch error {
        case let f as Gateway.Failure: return SubmitFailure(f.status, f.message)
        case let f as CallFailure: return SubmitFailure(f.status, f.message)
        default:
            let f = CallFailure.classify(error)
            return SubmitFailure(f.status, f.message)
        }
    }
}
