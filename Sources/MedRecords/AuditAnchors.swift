import Foundation

/// A node's audit log head, anchored on chain: line `seq` of the node's audit log hashes to `head`.
/// Cutting the log's tail, or rewriting any line up to `seq` (even with the hashes recomputed),
/// then shows against the ledger (`medledger audit verify --anchors`). No audit content is on chain:
/// only a line number and a hash.
public struct AuditAnchor: Codable, Sendable, Equatable {
    public var nodePID: String
    public var org: String
    public var seq: UInt64
    public var head: String
    public var anchoredAt: String

    enum CodingKeys: String, CodingKey {
        case nodePID = "node_pid"
        case org, seq, head
        case anchoredAt = "anchored_at"
    }
}

public struct AnchorAuditRequest: MedRecordsRequest, Equatable {
    public var seq: UInt64
    public var head: String

    public init(seq: UInt64, head: String) {
        self.seq = seq
        self.head = head
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case seq, head }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

public struct ListAuditAnchorsRequest: MedRecordsRequest, Equatable {
    public var nodePID: String
    public var pageSize: Int?
    public var bookmark: String?

    public init(nodePID: String, pageSize: Int? = nil, bookmark: String? = nil) {
        self.nodePID = nodePID
        self.pageSize = pageSize
        self.bookmark = bookmark
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case nodePID = "node_pid"
        case pageSize = "page_size"
        case bookmark
    }
    public static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))
}

extension Call {
    /// A node anchors its own audit log; each anchor must come after the node's last one, so an
    /// anchor can never be replaced by an earlier, shorter log's.
    func anchorAudit(_ r: AnchorAuditRequest) throws -> [UInt8] {
        guard me.role == .node else { throw Refusal.forbidden("only nodes anchor their audit logs") }
        guard r.seq > 0 else { throw Refusal.badRequest("seq: audit lines are numbered from 1") }
        let head = r.head.lowercased()
        guard head.count == 64, head.allSatisfy({ $0.isHexDigit }) else {
            throw Refusal.badRequest("head: 64 hex digits (SHA-256)")
        }
        if let last = try load(AuditAnchor.self, Keys.auditAnchorLatest, me.pid), r.seq <= last.seq {
            throw Refusal.conflict("line \(r.seq) is not after this node's last anchor (line \(last.seq))")
        }
        let anchor = AuditAnchor(nodePID: me.pid, org: me.org, seq: r.seq, head: head, anchoredAt: nowText)
        let id = Self.anchorID(me.pid, r.seq)
        let stored = try save(anchor, Keys.auditAnchor, id)
        try stub.putState(try key(Keys.auditAnchorLatest, me.pid), stored)
        try index(Keys.auditAnchorsByNode, [me.pid, id])
        return stored
    }

    /// A node's anchors in line order: for administrators and nodes of its organisation (anyone else
    /// learns nothing, not even whether the node anchors).
    func listAuditAnchors(_ r: ListAuditAnchorsRequest) throws -> [UInt8] {
        let node = try Field.pid(r.nodePID, "node_pid")
        let size = try Field.pageSize(r.pageSize)
        guard let last = try load(AuditAnchor.self, Keys.auditAnchorLatest, node), last.org == me.org,
            me.role == .admin || me.role == .node
        else {
            throw Refusal.notFound("no audit anchors of \(node) that you may read")
        }
        return try Wire.encode(
            try list(
                AuditAnchor.self, index: Keys.auditAnchorsByNode, owner: node, primary: Keys.auditAnchor,
                pageSize: size, bookmark: r.bookmark
            ) { _ in true })
    }

    /// Zero-padded, so the index lists anchors in line order.
    static func anchorID(_ pid: String, _ seq: UInt64) -> String {
        let digits = String(seq)
        return pid + "." + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }
}
