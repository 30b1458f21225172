/// The sliver of MessagePack that umbral-pre's serde/rmp-serde encoding uses: a struct is a
/// fixed-length array of its fields, bytes are `bin`, booleans are `true`/`false`.
/// The writer emits the shortest forms (fixarray, bin8), exactly as rmp-serde does, so encodings
/// are byte-identical; the reader also takes the longer array/bin forms.
struct MsgPackWriter {
    private(set) var bytes: [UInt8] = []

    mutating func array(_ count: Int) {
        if count < 16 {
            bytes.append(0x90 | UInt8(count))
        } else {
            bytes.append(0xdc)
            bytes += [UInt8(count >> 8), UInt8(count & 0xff)]
        }
    }

    mutating func bin(_ b: [UInt8]) {
        let n = b.count
        if n < 256 {
            bytes += [0xc4, UInt8(n)]
        } else if n < 65536 {
            bytes += [0xc5, UInt8(n >> 8), UInt8(n & 0xff)]
        } else {
            bytes += [0xc6, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
        }
        bytes += b
    }

    mutating func bool(_ v: Bool) { bytes.append(v ? 0xc3 : 0xc2) }
}

struct MsgPackReader {
    let what: String
    private let bytes: [UInt8]
    private var pos = 0

    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    private func fail(_ reason: String) -> PREError { .malformed(what: what, reason: reason) }

    private mutating func byte() throws -> UInt8 {
        guard pos < bytes.count else { throw fail("truncated") }
        defer { pos += 1 }
        return bytes[pos]
    }

    private mutating func bigEndian(_ n: Int) throws -> Int {
        var v = 0
        for _ in 0..<n { v = v << 8 | Int(try byte()) }
        return v
    }

    /// Reads an array header and checks it has exactly `count` elements.
    mutating func array(count: Int) throws {
        let t = try byte()
        let n: Int
        switch t {
        case 0x90...0x9f: n = Int(t & 0x0f)
        case 0xdc: n = try bigEndian(2)
        case 0xdd: n = try bigEndian(4)
        default: throw fail("expected an array at byte \(pos - 1)")
        }
        guard n == count else { throw fail("expected an array of \(count) fields, got \(n)") }
    }

    /// Reads a `bin` of exactly `count` bytes.
    mutating func bin(count: Int, field: String) throws -> [UInt8] {
        let t = try byte()
        let n: Int
        switch t {
        case 0xc4: n = try bigEndian(1)
        case 0xc5: n = try bigEndian(2)
        case 0xc6: n = try bigEndian(4)
        default: throw fail("expected bytes for \(field) at byte \(pos - 1)")
        }
        guard n == count else { throw PREError.invalidLength(what: "\(what) \(field)", expected: count, got: n) }
        guard bytes.count - pos >= n else { throw fail("truncated in \(field)") }
        defer { pos += n }
        return Array(bytes[pos..<pos + n])
    }

    mutating func bool(field: String) throws -> Bool {
        switch try byte() {
        case 0xc2: return false
        case 0xc3: return true
        default: throw fail("expected a boolean for \(field)")
        }
    }

    mutating func point(field: String) throws -> Point {
        let b = try bin(count: Point.compressedCount, field: field)
        guard let p = Point(compressed: b) else { throw PREError.pointNotOnCurve(what: "\(what) \(field)") }
        return p
    }

    mutating func scalar(field: String) throws -> Scalar {
        let b = try bin(count: Scalar.byteCount, field: field)
        guard let s = Scalar(bigEndian: b) else { throw fail("\(field) is not below the group order") }
        return s
    }

    /// Refuses trailing bytes (stricter than rmp-serde, which ignores them).
    func finish() throws {
        guard pos == bytes.count else { throw fail("\(bytes.count - pos) trailing bytes") }
    }
}
