import LedgerChannel
import LedgerOrdering
import LedgerOrderingCore
import LedgerPeer
import Testing

@Suite struct EndorsementPolicyTests {
    typealias E = EndorsementPolicy.Endorser
    let orgs: Set<String> = ["a", "b", "c"]

    @Test func signaturePolicies() throws {
        let p = try EndorsementPolicy.parse("AND('a.node', OR('b.node', 'c.admin'))")
        #expect(p.isSatisfied(by: [E(org: "a", role: "node"), E(org: "b", role: "node")], channelOrgs: orgs))
        #expect(p.isSatisfied(by: [E(org: "a", role: "node"), E(org: "c", role: "admin")], channelOrgs: orgs))
        #expect(!p.isSatisfied(by: [E(org: "a", role: "node")], channelOrgs: orgs))
        #expect(!p.isSatisfied(by: [E(org: "a", role: "admin"), E(org: "b", role: "node")], channelOrgs: orgs))
        let two = try EndorsementPolicy.parse("OutOf(2, 'a.member', 'b.member', 'c.member')")
        #expect(two.isSatisfied(by: [E(org: "c", role: "node"), E(org: "a", role: "node")], channelOrgs: orgs))
        #expect(!two.isSatisfied(by: [E(org: "c", role: "node")], channelOrgs: orgs))
        // `member` means the organisation's endorsing identities: nodes, not doctors or admins.
        #expect(!two.isSatisfied(by: [E(org: "c", role: "doctor"), E(org: "a", role: "node")], channelOrgs: orgs))
        #expect(!two.isSatisfied(by: [E(org: "c", role: "admin"), E(org: "a", role: "node")], channelOrgs: orgs))
    }

    @Test func oneEndorserCountsOnce() throws {
        let p = try EndorsementPolicy.parse("AND('a.member', 'a.member')")
        #expect(!p.isSatisfied(by: [E(org: "a", role: "node")], channelOrgs: orgs))
        #expect(p.isSatisfied(by: [E(org: "a", role: "node"), E(org: "a", role: "node")], channelOrgs: orgs))
        #expect(!p.isSatisfied(by: [E(org: "a", role: "node"), E(org: "a", role: "admin")], channelOrgs: orgs))
        // Backtracking: the first endorser must go to the principal only it can satisfy.
        let q = try EndorsementPolicy.parse("AND('a.member', 'a.admin')")
        #expect(q.isSatisfied(by: [E(org: "a", role: "admin"), E(org: "a", role: "node")], channelOrgs: orgs))
    }

    @Test func implicitPolicies() throws {
        let one = [E(org: "a", role: "node")]
        let two = one + [E(org: "b", role: "node")]
        let three = two + [E(org: "c", role: "node")]
        #expect(try EndorsementPolicy.parse("ANY").isSatisfied(by: one, channelOrgs: orgs))
        #expect(!(try EndorsementPolicy.parse("MAJORITY").isSatisfied(by: one, channelOrgs: orgs)))
        #expect(try EndorsementPolicy.parse("MAJORITY").isSatisfied(by: two, channelOrgs: orgs))
        #expect(!(try EndorsementPolicy.parse("ALL").isSatisfied(by: two, channelOrgs: orgs)))
        #expect(try EndorsementPolicy.parse("ALL").isSatisfied(by: three, channelOrgs: orgs))
        // Endorsers from outside the channel do not count.
        #expect(!(try EndorsementPolicy.parse("ANY").isSatisfied(by: [E(org: "x", role: "node")], channelOrgs: orgs)))
        // Only node identities endorse under an implicit policy: a doctor's or an admin's signature
        // over a proposal response counts for nothing.
        #expect(!(try EndorsementPolicy.parse("ANY").isSatisfied(by: [E(org: "a", role: "doctor")], channelOrgs: orgs)))
        let staff = [E(org: "a", role: "admin"), E(org: "b", role: "doctor")]
        #expect(!(try EndorsementPolicy.parse("MAJORITY").isSatisfied(by: staff, channelOrgs: orgs)))
        #expect(
            !(try EndorsementPolicy.parse("ALL").isSatisfied(by: staff + [E(org: "c", role: "node")], channelOrgs: orgs))
        )
    }

    @Test func parseErrorsAreClear() throws {
        for bad in [
            "", "SOME", "AND(", "'a'", "'a.wizard'", "OutOf(4, 'a.node', 'b.node')", "OutOf(0, 'a.node')", "ANY extra",
        ] {
            #expect(throws: EndorsementPolicy.ParseError.self, "\(bad)") { try EndorsementPolicy.parse(bad) }
        }
        #expect(try EndorsementPolicy.parse(" OR( 'a.node' ,'b.admin' ) ").description == "OR('a.node', 'b.admin')")
    }
}

@Suite struct BlockCutterTests {
    func env(_ n: Int) -> [UInt8] { Array(repeating: 1, count: n) }

    @Test func cutsOnCountAndOnTimeout() throws {
        var c = BatchConfig()
        c.maxMessageCount = 3
        var cutter = BlockCutter(config: c)
        #expect(try cutter.ordered(env(10)) == .init(batches: [], reasons: [], pending: true))
        #expect(try cutter.ordered(env(10)).batches.isEmpty)
        let third = try cutter.ordered(env(10))
        #expect(third.batches.map(\.count) == [3])
        #expect(third.reasons == [.count])
        #expect(!third.pending)
        _ = try cutter.ordered(env(10))
        #expect(cutter.timeout()?.count == 1)
        #expect(cutter.timeout() == nil)
    }

    @Test func respectsPreferredAndAbsoluteSizes() throws {
        var c = BatchConfig()
        c.preferredMaxBytes = 100
        c.absoluteMaxBytes = 1000
        var cutter = BlockCutter(config: c)
        _ = try cutter.ordered(env(60))
        let overflow = try cutter.ordered(env(60))  // 120 > 100: cut the first, keep the second pending
        #expect(overflow.batches.map(\.count) == [1])
        #expect(overflow.reasons == [.size])
        #expect(overflow.pending)
        let big = try cutter.ordered(env(500))  // over preferred: pending cut, then alone
        #expect(big.batches.map(\.count) == [1, 1])
        #expect(big.reasons == [.oversized, .oversized])
        #expect(big.batches[1][0].count == 500)
        do {
            _ = try cutter.ordered(env(1001))
            Issue.record("an envelope over absoluteMaxBytes was accepted")
        } catch {
            #expect(error == .tooLarge(size: 1001, limit: 1000))
        }
    }

    @Test func configTransactionsAreAlone() throws {
        var cutter = BlockCutter(config: BatchConfig())
        _ = try cutter.ordered(env(5))
        let d = try cutter.ordered(env(7), isConfig: true)
        #expect(d.batches.map { $0.map(\.count) } == [[5], [7]])
        #expect(d.reasons == [.config, .config])
        #expect(!d.pending)
    }
}
