import LedgerBench
import Testing

@Suite struct SignatureBoundTests {
    @Test func eachWorkloadCountsTheSignaturesItsRulesRequire() throws {
        let kv = try #require(SignatureBound.cost(of: "kv"))
        #expect(kv.signatures == 3 && kv.verifications == 3)
        let pde = try #require(SignatureBound.cost(of: "pde"))
        #expect(pde.signatures == 5 && pde.verifications == 5)
        let read = try #require(SignatureBound.cost(of: "read"))
        #expect(read.signatures == 1 && read.verifications == 1)
        #expect(SignatureBound.cost(of: "fhir") == nil)
    }

    @Test func theBoundSpreadsTheSignatureWorkOverEveryCore() throws {
        let bound = SignatureBound(signMicros: 30, verifyMicros: 90, cores: 2)
        // 3 × 30 + 3 × 90 = 360 µs of one core per transaction; two cores.
        #expect(abs(bound.operationsPerSecond(try #require(SignatureBound.cost(of: "kv"))) - 2e6 / 360) < 1e-6)
        #expect(abs(bound.operationsPerSecond(try #require(SignatureBound.cost(of: "read"))) - 2e6 / 120) < 1e-6)
    }

    @Test func measuringTimesRealSignaturesThatVerify() throws {
        let bound = try SignatureBound.measure(rounds: 3, batch: 10, cores: 2)
        #expect(bound.signMicros > 0 && bound.signMicros.isFinite)
        #expect(bound.verifyMicros > 0 && bound.verifyMicros.isFinite)
        #expect(bound.cores == 2)
    }
}
