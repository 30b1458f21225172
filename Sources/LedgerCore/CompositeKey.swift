/// Composite keys as Fabric writes them: U+0000, object type, U+0000, then each attribute followed by
/// U+0000. A partial key (type plus leading attributes) is a byte prefix of every full key under it, so
/// a prefix scan answers "all index records of patient P" without a secondary index structure.
public enum CompositeKey {
    static let separator: Character = "\u{0}"

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case emptyObjectType
        case reservedCharacter(field: String)
        case notComposite(String)

        public var description: String {
            switch self {
            case .emptyObjectType: return "composite key: object type must not be empty"
            case .reservedCharacter(let f): return "composite key: \(f) contains U+0000 or U+10FFFF, which are reserved"
            case .notComposite(let k): return "not a composite key: \(k.debugDescription)"
            }
        }
    }

    public static func make(objectType: String, attributes: [String]) throws(Failure) -> String {
        guard !objectType.isEmpty else { throw .emptyObjectType }
        guard !hasReservedScalar(objectType) else { throw .reservedCharacter(field: "object type") }
        var key = "\u{0}" + objectType + "\u{0}"
        for (i, a) in attributes.enumerated() {
            guard !hasReservedScalar(a) else { throw .reservedCharacter(field: "attribute \(i)") }
            key += a + "\u{0}"
        }
        return key
    }

    /// The prefix shared by every composite key of `objectType` whose first attributes are `attributes`.
    public static func partial(objectType: String, attributes: [String] = []) throws(Failure) -> String {
        try make(objectType: objectType, attributes: attributes)
    }

    public static func split(_ key: String) throws(Failure) -> (objectType: String, attributes: [String]) {
        guard key.unicodeScalars.first == "\u{0}", key.unicodeScalars.last == "\u{0}" else { throw .notComposite(key) }
        // Split on the UTF-8 bytes: U+0000 is the byte 0 and occurs in no other scalar's encoding,
        // and building each part from a byte slice is far cheaper than scalar by scalar.
        var parts = key.utf8.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        // Leading and trailing separators give an empty first and last part.
        parts.removeFirst()
        parts.removeLast()
        guard let type = parts.first, !type.isEmpty else { throw .notComposite(key) }
        return (type, Array(parts.dropFirst()))
    }

    public static func isComposite(_ key: String) -> Bool { key.unicodeScalars.first == "\u{0}" }

    /// No attribute may contain U+0000 (it would shift the fields) or U+10FFFF (Fabric reserves it as the
    /// upper bound of partial-key ranges). Looks at the UTF-8 bytes: U+0000 is the byte 0, and
    /// U+10FFFF is the only scalar encoded F4 8F BF BF. Testing each scalar against a set hashed every
    /// one of them: 2 % of a peer's CPU while it endorsed P_DE records, whose keys carry PIDs and times.
    static func hasReservedScalar(_ s: String) -> Bool {
        var utf8 = s.utf8.makeIterator()
        while let byte = utf8.next() {
            if byte == 0 { return true }
            if byte == 0xF4, utf8.next() == 0x8F, utf8.next() == 0xBF, utf8.next() == 0xBF { return true }
        }
        return false
    }
}
