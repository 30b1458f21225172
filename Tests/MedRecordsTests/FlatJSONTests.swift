import Foundation
import Testing

@testable import MedRecords

/// `FlatJSON` must write exactly what `JSONEncoder` writes with `Wire`'s options: endorsers that
/// disagreed on one byte of a record would produce different write sets.
@Suite struct FlatJSONTests {
    static func foundation(_ value: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    /// Every byte that JSON escapes, the ones it does not (DEL, `/`), and multi-byte characters.
    static let awkward: [String] = [
        "", "plain", "a/b\\c\"d", "line\nfeed\r\ttab\u{8}bs\u{C}ff", "\u{0}\u{1}\u{1F}\u{7F}",
        String((0..<0x20).map { Character(Unicode.Scalar($0)) }), "é漢字🩺", "\u{2028}\u{2029}\u{FEFF}",
        "-----BEGIN CERTIFICATE-----\nMIIB/+=\n-----END CERTIFICATE-----\n",
    ]

    static func randomString(_ rng: inout SystemRandomNumberGenerator) -> String {
        let pool = Array("ab/\\\"\n\r\t\u{0}\u{1}\u{1F}\u{7F}é漢🩺 ")
        return String((0..<Int.random(in: 0..<12, using: &rng)).map { _ in pool.randomElement(using: &rng)! })
    }

    @Test func indexRecordsAreWrittenAsJSONEncoderWritesThem() throws {
        var rng = SystemRandomNumberGenerator()
        var strings = Self.awkward
        strings += (0..<300).map { _ in Self.randomString(&rng) }
        for (n, s) in strings.enumerated() {
            let other = strings[(n * 7 + 3) % strings.count]
            let record = IndexRecord(
                recordID: s, tID: other, patientPID: "P\(n)", doctorPID: s + other, hospital: other, url: s,
                digest: other, patientSignature: s, doctorSignature: other, patientCert: s, doctorCert: other,
                time: s, submittedBy: other, capsule: n % 2 == 0 ? nil : s)
            #expect(try Wire.encode(record) == Self.foundation(record), "\(s.debugDescription)")
            let receipt = IndexRecordReceipt(record)
            #expect(try Wire.encode(receipt) == Self.foundation(receipt), "\(s.debugDescription)")
            let event = IndexRecordAddedEvent(recordID: s, tID: other)
            #expect(try Wire.encode(event) == Self.foundation(event), "\(s.debugDescription)")
        }
    }

    @Test func everyCodedFieldIsWritten() throws {
        // A field added to a record's CodingKeys but not to its flat fields would silently vanish.
        let record = IndexRecord(
            recordID: "r", tID: "t", patientPID: "p", doctorPID: "d", hospital: "h", url: "u", digest: "g",
            patientSignature: "ps", doctorSignature: "ds", patientCert: "pc", doctorCert: "dc", time: "ti",
            submittedBy: "s", capsule: "c")
        let keys = { (bytes: [UInt8]) throws -> Set<String> in
            Set(try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]).keys)
        }
        #expect(try keys(Wire.encode(record)) == keys(Self.foundation(record)))
        #expect(try keys(Wire.encode(record)).count == 14)
    }
}
