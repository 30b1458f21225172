import Foundation
import LedgerIdentity
import LedgerProtos
import Testing

@testable import LedgerPeer

/// Who sees a transaction's event payload: ledger holders always; anyone else only for transactions
/// whose creator certificate is theirs (same organisation and PID), asked again and again as blocks
/// arrive (the answer is kept per creator, so it must stay the same).
@Suite struct EventAudienceTests {
    @Test func onlyTheCreatorOrALedgerHolderIsEntitled() throws {
        let f = try ChannelFixture()
        let creator = Data(f.aDoctor.serialized)
        let doctor = try #require(BlockEvents.owner(of: creator))
        #expect(doctor.org == "hospital-a" && doctor.mspID == "hospital-a")
        for _ in 0..<3 {
            #expect(BlockEvents.isEntitled(.creator(org: "hospital-a", pid: doctor.pid), creator: creator))
            #expect(BlockEvents.isEntitled(.ledgerHolder, creator: creator))
            #expect(!BlockEvents.isEntitled(.creator(org: "hospital-b", pid: doctor.pid), creator: creator))
            #expect(!BlockEvents.isEntitled(.creator(org: "hospital-a", pid: doctor.pid + "x"), creator: creator))
            #expect(
                !BlockEvents.isEntitled(
                    .creator(org: "hospital-a", pid: doctor.pid), creator: Data(f.aAdmin.serialized)))
            #expect(!BlockEvents.isEntitled(.creator(org: "hospital-a", pid: doctor.pid), creator: Data([1, 2, 3])))
        }
    }

    @Test func anIdentityClaimingAnotherOrganisationIsNotItsCertificatesOwner() throws {
        let f = try ChannelFixture()
        var forged = try Medledger_SerializedIdentity(serializedBytes: f.aDoctor.serialized)
        forged.mspID = "hospital-b"
        let creator = try Data(forged.serializedBytes() as [UInt8])
        let pid = try #require(BlockEvents.owner(of: Data(f.aDoctor.serialized))).pid
        #expect(!BlockEvents.isEntitled(.creator(org: "hospital-b", pid: pid), creator: creator))
        #expect(!BlockEvents.isEntitled(.creator(org: "hospital-a", pid: pid), creator: creator))
    }
}
