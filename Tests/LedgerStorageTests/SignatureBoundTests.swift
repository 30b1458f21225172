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
