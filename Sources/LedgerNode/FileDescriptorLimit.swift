import Glibc
import LedgerConfig
import LedgerHTTPConnections

/// The node's open-file limit. Debian's and systemd's default soft limit is 1,024 descriptors, fewer
/// than the FHIR endpoint alone may hold open by default, while the hard limit is far higher; the node
/// raises its soft limit to the hard one at start, as Go's runtime does for every program.
enum FileDescriptorLimit {
    /// Descriptors kept for everything but the HTTPS endpoints' connections: the ledger's RocksDB
    /// files, the object store, gRPC connections to and from other nodes, logs.
    static let reserved = 1_024

    /// Raises the soft limit to the hard one; the soft limit in force afterwards.
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)  // unlimited (all bits set) clamps to Int.max
    }

    /// A warning when `available` descriptors cannot hold the endpoints' connections and the reserve.
    static func warning(available: Int, operations: ConnectionLimits?, fhir: ConnectionLimits?) -> String? {
        let endpoints = (operations?.total ?? 0) + (fhir?.total ?? 0)
        guard available < endpoints + reserved else { return nil }
        return
            "medledgerd: WARNING: the open-file limit is \(available) (its hard limit), below the \(endpoints) connections the HTTPS endpoints may hold plus \(reserved) for the ledger and other nodes; raise it (systemd LimitNOFILE=, docker --ulimit nofile=) or lower connections_max in node.yaml"
    }
}

extension NodeServer {
    /// node.yaml's connection limits for the endpoints it runs (nil: not run); a bad pair stops the
    /// node at start, named.
    func connectionLimits() throws -> (operations: ConnectionLimits?, fhir: ConnectionLimits?) {
        let operations = try config.operations.map {
            try Self.connectionLimits(
                $0.connectionsMax, $0.connectionsPerSourceMax, over: .operations, section: "operations")
        }
        let fhir = try config.fhir.map {
            try Self.connectionLimits($0.connectionsMax, $0.connectionsPerSourceMax, over: .fhir, section: "fhir")
        }
        return (operations, fhir)
    }

    /// An endpoint's connection limits from node.yaml.
    static func connectionLimits(
        _ total: Int?, _ perSource: Int?, over defaults: ConnectionLimits, section: String
    ) throws -> ConnectionLimits {
        do {
            return try .configured(total: total, perSource: perSource, over: defaults, section: section)
        } catch { throw StartupError(description: "\(error)") }
    }
}
