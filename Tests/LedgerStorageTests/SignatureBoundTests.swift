import LedgerBench
import Testing

@Suite struct SignatureBoundTests {
    @Test func eachWorkloadCountsTheSignaturesItsRulesRequire() throws {
        let kv = try #require(SignatureBound.cost(of: "kv"))
        // Proposals travel in batches with one signature for the batch: shared, like a block's.
        #expect(kv.signatures == 2 && kv.verifications == 2)
        let pde = try #require(SignatureBound.cost(of: "pde"))
        #expect(pde.signatures == 4 && pde.verifications == 4)
        // A read's only signature is its batch's: no bound of its own.
        #expect(SignatureBound.cost(of: "read") == nil)
        #expect(SignatureBound.cost(of: "fhir") == nil)
    }

    @Test func theBoundSpreadsTheSignatureWorkOverEveryCore() throws {
        let bound = SignatureBound(signMicros: 30, verifyMicros: 90, cores: 2)
        // 2 × 30 + 2 × 90 = 240 µs of one core per transaction; two cores.
        #expect(abs(bound.operationsPerSecond(try #require(SignatureBound.cost(of: "kv"))) - 2e6 / 240) < 1e-6)
        #expect(abs(bound.operationsPerSecond(try #require(SignatureBound.cost(of: "pde"))) - 2e6 / 480) < 1e-6)
    }

    @Test func measuringTimesRealSignaturesThatVerify() throws {
        let bound = try SignatureBound.measure(rounds: 3, batch: 10, cores: 2)
        #expect(bound.signMicros > 0 && bound.signMicros.isFinite)
        #expect(bound.verifyMicros > 0 && bound.verifyMicros.isFinite)
        #expect(bound.cores == 2)
    }

    @Test func theTableShowsEachLevelsShareOfTheBoundOnlyWhenMeasured() {
        let level = BenchRow(
            operation: "kv, 500 in flight", count: 10, seconds: 1, rate: 2_000, rateUnit: "tx/s",
            percentOfBound: 41.4)
        let bound = BenchRow(operation: "signature bound, kv", count: 0, seconds: 0, rate: 4_830, rateUnit: "tx/s")
        let table = BenchReport(title: "t", environment: [:], rows: [level, bound]).table()
        #expect(table.contains("of bound"))
        #expect(table.contains("41 %"))
        let plain = BenchReport(title: "t", environment: [:], rows: [bound]).table()
        #expect(!plain.contains("of bound"))
    }
}
