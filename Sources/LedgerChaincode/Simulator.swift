import Foundation
import LedgerProtos
import LedgerStorage

/// What a simulation produced: the chaincode's answer, and — only when it answered 200 — the
/// read-write set and event to endorse.
public struct SimulationResult: Sendable {
    public var response: ChaincodeResponse
    public var results: Medledger_TxReadWriteSet
    public var event: Medledger_ChaincodeEvent?
}

public enum Simulator {
    /// Runs `chaincode` against `state` (a snapshot). Errors from the stub become a 400 response (bad
    /// keys) or 413 (a limit exceeded); any other thrown error a 500; a non-200 answer endorses nothing.
    /// A read in-process, typed: `body` runs a chaincode's read rules against a stub over `state`
    /// and returns the value itself, with no JSON between (the node's own services and its FHIR
    /// face). Refusals and stub errors come back as `ChaincodeRefusal` with the status `simulate`
    /// would have answered. Nothing is written: a read's write set is dropped.
    public static func read<T>(
        _ chaincodeName: String, invocation: Invocation, state: WorldStateReader,
        limits: SimulationLimits = SimulationLimits(), _ body: (ChaincodeStub) throws -> T
    ) throws(ChaincodeRefusal) -> T {
        let stub = ChaincodeStub(invocation: invocation, namespace: chaincodeName, state: state, limits: limits)
        do { return try body(stub) } catch let r as ChaincodeRefusal {
            throw r
        } catch let e as StubError {
            throw ChaincodeRefusal(status: e.isLimit ? 413 : 400, message: e.description)
        } catch let e as StateQueryError {
            throw ChaincodeRefusal(status: 400, message: e.description)
        } catch {
            throw ChaincodeRefusal(status: 500, message: "chaincode \(chaincodeName) failed: \(error)")
        }
    }

    public static func simulate(
        _ chaincode: any Chaincode, invocation: Invocation, state: WorldStateReader,
        limits: SimulationLimits = SimulationLimits()
    ) -> SimulationResult {
        let stub = ChaincodeStub(invocation: invocation, namespace: chaincode.name, state: state, limits: limits)
        let response: ChaincodeResponse
        do {
            response = try chaincode.invoke(stub)
        } catch let e as StubError {
            // Over a size or count limit is "too large" (413), anything else malformed (400).
            response = ChaincodeResponse(status: e.isLimit ? 413 : 400, message: e.description)
        } catch let e as StateQueryError {
            response = .badRequest(e.description)
        } catch {
            response = ChaincodeResponse(status: 500, message: "chaincode \(chaincode.name) failed: \(error)")
        }
        guard response.isOK else {
            return SimulationResult(response: response, results: Medledger_TxReadWriteSet(), event: nil)
        }
        return SimulationResult(response: response, results: stub.readWriteSet(), event: stub.event)
    }
}

/// A chaincode's refusal of a typed read: the status and text its byte answer would carry.
public struct ChaincodeRefusal: Error, Equatable, Sendable {
    public var status: Int32
    public var message: String

    public init(status: Int32, message: String) { (self.status, self.message) = (status, message) }
}
