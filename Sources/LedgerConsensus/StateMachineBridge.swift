import CRaft
import Foundation

/// libraft's `raft_fsm`, forwarding to a Swift `ReplicatedStateMachine`. Used by the real server
/// (`RaftServer`) and by the unit tests' in-memory cluster (libraft's fixture), so both drive the same
/// glue. Every call arrives on the thread that drives libraft.
///
/// Memory follows libraft 0.15's rules: snapshot buffers are `raft_malloc`ed here and freed in
/// `snapshot_finalize` (fsm version 2: libraft then takes no ownership); a restored buffer belongs to
/// the FSM once `restore` succeeds, so it is `raft_free`d here (on failure libraft still owns it).
public final class StateMachineBridge: @unchecked Sendable {
    public let machine: any ReplicatedStateMachine
    /// The largest snapshot the machine may produce: libraft sends a snapshot as one message.
    public let maxSnapshotBytes: Int
    let fsm: UnsafeMutablePointer<raft_fsm>
    /// The raft instance this FSM belongs to, to read the index of the entry being applied.
    var raft: UnsafeMutablePointer<raft>?
    /// The first apply/restore failure; once set, every later apply fails too (libraft retries).
    private(set) var failure: String?
    /// Called (on the raft thread) with the first failure.
    var onFailure: ((String) -> Void)?
    public private(set) var appliedIndex: UInt64 = 0

    public init(machine: any ReplicatedStateMachine, maxSnapshotBytes: Int = 64 << 10) {
        self.machine = machine
        self.maxSnapshotBytes = maxSnapshotBytes
        fsm = .allocate(capacity: 1)
        fsm.initialize(to: raft_fsm())
        fsm.pointee.version = 2
        fsm.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        fsm.pointee.apply = { fsm, buf, result in
            result?.pointee = nil
            guard let fsm, let buf else { return RAFT_INVALID }
            return StateMachineBridge.from(fsm).apply(buf.pointee)
        }
        fsm.pointee.snapshot = { fsm, bufs, n in
            guard let fsm, let bufs, let n else { return RAFT_INVALID }
            return StateMachineBridge.from(fsm).snapshot(bufs, n)
        }
        fsm.pointee.snapshot_finalize = { _, bufs, n in
            guard let bufs, let n else { return 0 }
            if let array = bufs.pointee {
                for i in 0..<Int(n.pointee) { raft_free(array[i].base) }
                raft_free(array)
            }
            bufs.pointee = nil
            n.pointee = 0
            return 0
        }
        fsm.pointee.restore = { fsm, buf in
            guard let fsm, let buf else { return RAFT_INVALID }
            return StateMachineBridge.from(fsm).restore(buf.pointee)
        }
    }

    deinit { fsm.deallocate() }

    static func from(_ fsm: UnsafeMutablePointer<raft_fsm>) -> StateMachineBridge {
        Unmanaged<StateMachineBridge>.fromOpaque(fsm.pointee.data).takeUnretainedValue()
    }

    private func fail(_ why: String) -> Int32 {
        if failure == nil {
            failure = why
            onFailure?(why)
        }
        return RAFT_IOERR
    }

    private func apply(_ buf: raft_buffer) -> Int32 {
        if let failure { return fail(failure) }
        // libraft advances last_applied after a successful apply (and for barrier and configuration
        // entries, which never reach the FSM), so the entry being applied is the next index.
        let index = (raft.map { $0.pointee.last_applied } ?? appliedIndex) + 1
        guard let entry = RaftEntryFraming.decode(UnsafeRawBufferPointer(start: buf.base, count: buf.len)) else {
            return fail("raft entry \(index) is not a framed entry (\(buf.len) bytes)")
        }
        do {
            try machine.apply(entry, index: index)
            appliedIndex = index
            return 0
        } catch {
            return fail("applying raft entry \(index) failed: \(error)")
        }
    }

    private func snapshot(
        _ bufs: UnsafeMutablePointer<UnsafeMutablePointer<raft_buffer>?>, _ n: UnsafeMutablePointer<UInt32>
    ) -> Int32 {
        let bytes: [UInt8]
        do { bytes = try machine.snapshot() } catch { return fail("taking a raft snapshot failed: \(error)") }
        guard bytes.count <= maxSnapshotBytes else {
            return fail("the state machine's snapshot is \(bytes.count) bytes, over the \(maxSnapshotBytes)-byte limit")
        }
        guard let array = raft_malloc(MemoryLayout<raft_buffer>.stride)?.assumingMemoryBound(to: raft_buffer.self),
            let base = raft_malloc(max(bytes.count, 1))
        else { return RAFT_NOMEM }
        bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        array.initialize(to: raft_buffer(base: base, len: bytes.count))
        bufs.pointee = array
        n.pointee = 1
        return 0
    }

    private func restore(_ buf: raft_buffer) -> Int32 {
        let bytes = buf.base.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: buf.len)) } ?? []
        do {
            try machine.restore(bytes)
        } catch {
            return fail("restoring a raft snapshot failed: \(error)")
        }
        raft_free(buf.base)
        if let raft { appliedIndex = raft.pointee.last_applied }
        return 0
    }
}

/// How an entry's bytes sit in a libraft log entry: an 8-byte little-endian length, the bytes, and
/// zeros up to a multiple of 8. libraft 0.15 writes entry data padded to 8 bytes but reads a closed
/// segment back assuming unpadded lengths, so a log holding an entry whose size is not a multiple of 8
/// cannot be loaded after a restart ("entries batch 2 ...: short read"). Padding every entry ourselves
/// keeps both sides agreeing; the length prefix gives the exact size back.
public enum RaftEntryFraming {
    public static func encode(_ entry: [UInt8]) -> [UInt8] {
        let padded = (entry.count + 7) / 8 * 8
        var out = [UInt8]()
        out.reserveCapacity(8 + padded)
        withUnsafeBytes(of: UInt64(entry.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: entry)
        out.append(contentsOf: repeatElement(0, count: padded - entry.count))
        return out
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        guard raw.count >= 8, raw.count % 8 == 0 else { return nil }
        let length = raw.loadUnaligned(as: UInt64.self).littleEndian
        guard length <= UInt64(raw.count - 8), (Int(length) + 7) / 8 * 8 == raw.count - 8 else { return nil }
        return Array(raw[8..<8 + Int(length)])
    }
}
