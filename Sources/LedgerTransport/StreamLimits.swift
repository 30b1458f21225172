/// Limits of the pipelined request streams (`Peer.ProcessProposals`, `Orderer.BroadcastStream`) that
/// node and gateway must agree on.
public enum StreamLimits {
    /// Batches of one stream the node works on at once; past it a batch is refused with 503.
    public static let batchesInFlightMax = 64
}
