import LedgerProtos

/// A chain that can be read from and waited on: a peer's ledger or an orderer's. Delivery streams
/// are written once against this.
public protocol BlockSource: Sendable {
    var channelName: String { get }
    var notifier: HeightNotifier { get }
    func block(number: UInt64) throws -> Medledger_Block?
}
