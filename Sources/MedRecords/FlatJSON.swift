/// A record whose JSON is one object of string fields (absent when nil), written by `FlatJSON`
/// instead of `JSONEncoder`.
protocol FlatJSONEncodable: Encodable {
    /// Every coded field, under its `CodingKeys` name, in any order.
    var flatJSONFields: [(key: String, value: String?)] { get }
}

/// Writes a flat object of strings byte for byte as `JSONEncoder` does with `Wire.encode`'s options
/// (keys sorted by their UTF-8 bytes, `/` unescaped, nil fields left out, the escapes of
/// swift-foundation's `JSONWriter`), at a fraction of its cost: encoding the P_DE record was 3 % of a
/// peer's CPU under P_DE load. Every endorser must write the same bytes for the same record, so
/// `FlatJSONTests` hold each record type's output to `JSONEncoder`'s, strange strings included.
enum FlatJSON {
    static func object(_ fields: [(key: String, value: String?)]) -> [UInt8] {
        let present = fields.compactMap { f in f.value.map { (key: f.key, value: $0) } }
            .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        var out = [UInt8]()
        // Each field's key, value, quotes, colon and comma, and a sixteenth more for escapes (a PEM's
        // newlines).
        let estimate = present.reduce(2) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 }
        out.reserveCapacity(estimate + estimate / 16)
        out.append(UInt8(ascii: "{"))
        for (i, field) in present.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(field.key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(field.value, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A JSON string literal: `"` and `\` escaped, the control characters as JSONWriter writes them
    /// (`\b`, `\f`, `\n`, `\r`, `\t`, otherwise `\u00xx` in lower-case hex), every other byte as it is.
    /// Runs of bytes that need no escape are copied whole: byte by byte, the appends' uniqueness
    /// checks cost more than JSONEncoder.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        var s = s
        out.append(UInt8(ascii: "\""))
        s.withUTF8 { bytes in
            var mark = 0
            for (i, byte) in bytes.enumerated()
            where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[mark..<i]))
                appendEscape(byte, to: &out)
                mark = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[mark...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0C: out.append(UInt8(ascii: "f"))
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0x0F))
        }
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10 }
}

extension IndexRecord: FlatJSONEncodable {
    var flatJSONFields: [(key: String, value: String?)] {
        typealias K = CodingKeys
        return [
            (K.recordID.rawValue, recordID), (K.tID.rawValue, tID), (K.patientPID.rawValue, patientPID),
            (K.doctorPID.rawValue, doctorPID), (K.hospital.rawValue, hospital), (K.url.rawValue, url),
            (K.digest.rawValue, digest), (K.patientSignature.rawValue, patientSignature),
            (K.doctorSignature.rawValue, doctorSignature), (K.patientCert.rawValue, patientCert),
            (K.doctorCert.rawValue, doctorCert), (K.time.rawValue, time), (K.submittedBy.rawValue, submittedBy),
            (K.capsule.rawValue, capsule),
        ]
    }
}

extension IndexRecordReceipt: FlatJSONEncodable {
    var flatJSONFields: [(key: String, value: String?)] {
        typealias K = CodingKeys
        return [
            (K.recordID.rawValue, recordID), (K.tID.rawValue, tID), (K.patientPID.rawValue, patientPID),
            (K.doctorPID.rawValue, doctorPID), (K.hospital.rawValue, hospital), (K.digest.rawValue, digest),
            (K.time.rawValue, time), (K.submittedBy.rawValue, submittedBy),
        ]
    }
}

extension IndexRecordAddedEvent: FlatJSONEncodable {
    var flatJSONFields: [(key: String, value: String?)] {
        [(CodingKeys.recordID.rawValue, recordID), (CodingKeys.tID.rawValue, tID)]
    }
}

/// A request read from a flat JSON object of strings without `JSONDecoder`: Foundation's decoder took
/// about 20 µs of a peer's CPU for each P_DE's argument, a tenth of its endorsement besides the
/// signatures.
protocol FlatJSONDecodable: MedRecordsRequest {
    /// The request from its fields, or nil when a required one is missing.
    init?(flatJSONFields fields: [String: String])
}

extension FlatJSON {
    /// The fields of a JSON object whose values are all strings; nil for anything else: another kind of
    /// value, a key given twice, a `\u` escape, bytes that are not UTF-8, anything after the object.
    /// Whatever this refuses goes to `JSONDecoder`, which then decides, and words the error; what it
    /// accepts, `JSONDecoder` reads as the same strings (`FlatJSONTests` compares the two).
    static func stringFields(_ bytes: [UInt8]) -> [String: String]? {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(bytes: buffer)
            return reader.object()
        }
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        mutating func object() -> [String: String]? {
            var fields: [String: String] = [:]
            skipSpace()
            guard take(UInt8(ascii: "{")) else { return nil }
            skipSpace()
            if !take(UInt8(ascii: "}")) {
                repeat {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard take(UInt8(ascii: ":")) else { return nil }
                    skipSpace()
                    guard let value = string(), fields.updateValue(value, forKey: key) == nil else { return nil }
                    skipSpace()
                } while take(UInt8(ascii: ","))
                guard take(UInt8(ascii: "}")) else { return nil }
            }
            skipSpace()
            return at == bytes.count ? fields : nil
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard at < bytes.count, bytes[at] == byte else { return false }
            at += 1
            return true
        }

        mutating func skipSpace() {
            while at < bytes.count {
                switch bytes[at] {
                case 0x20, 0x09, 0x0A, 0x0D: at += 1
                default: return
                }
            }
        }

        /// A string literal; runs without escapes are copied whole.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var unescaped = [UInt8]()
            var mark = at
            while at < bytes.count {
                let byte = bytes[at]
                switch byte {
                case UInt8(ascii: "\""):
                    unescaped.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[mark..<at]))
                    at += 1
                    return String(validating: unescaped, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    unescaped.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[mark..<at]))
                    guard at + 1 < bytes.count, let escaped = Self.unescape(bytes[at + 1]) else { return nil }
                    unescaped.append(escaped)
                    at += 2
                    mark = at
                case ..<0x20: return nil  // raw control characters are not JSON
                default: at += 1
                }
            }
            return nil
        }

        /// The byte a two-character escape stands for (`\u` is left to `JSONDecoder`).
        static func unescape(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): byte
            case UInt8(ascii: "b"): 0x08
            case UInt8(ascii: "f"): 0x0C
            case UInt8(ascii: "n"): 0x0A
            case UInt8(ascii: "r"): 0x0D
            case UInt8(ascii: "t"): 0x09
            default: nil
            }
        }
    }
}

extension PutIndexRecordArgument: FlatJSONDecodable {
    init?(flatJSONFields f: [String: String]) {
        typealias K = CodingKeys
        guard let tID = f[K.tID.rawValue], let url = f[K.url.rawValue], let digest = f[K.digest.rawValue],
            let patientSignature = f[K.patientSignature.rawValue],
            let doctorSignature = f[K.doctorSignature.rawValue]
        else { return nil }
        (self.tID, self.url, self.digest) = (tID, url, digest)
        (self.patientSignature, self.doctorSignature) = (patientSignature, doctorSignature)
        (patientCert, doctorCert, capsule) = (
            f[K.patientCert.rawValue], f[K.doctorCert.rawValue], f[K.capsule.rawValue]
        )
    }
}

extension PutIndexRecordArgument: FlatJSONEncodable {
    var flatJSONFields: [(key: String, value: String?)] {
        typealias K = CodingKeys
        return [
            (K.tID.rawValue, tID), (K.url.rawValue, url), (K.digest.rawValue, digest),
            (K.patientSignature.rawValue, patientSignature), (K.doctorSignature.rawValue, doctorSignature),
            (K.patientCert.rawValue, patientCert), (K.doctorCert.rawValue, doctorCert), (K.capsule.rawValue, capsule),
        ]
    }
}
