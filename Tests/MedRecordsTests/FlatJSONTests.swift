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

/// `putIndexRecord`'s argument is read without `JSONDecoder` when it is a flat object of strings; what
/// that reader accepts must be exactly what `JSONDecoder` reads, and everything else must reach
/// `JSONDecoder` (the same value, or the same error).
@Suite struct FlatJSONRequestTests {
    /// The same request read by `JSONDecoder` only (not `FlatJSONDecodable`).
    struct DecoderOnly: MedRecordsRequest, Equatable {
        let argument: PutIndexRecordArgument
        static let fieldNames = PutIndexRecordArgument.fieldNames
        init(from decoder: any Decoder) throws { argument = try PutIndexRecordArgument(from: decoder) }
        func encode(to encoder: any Encoder) throws { try argument.encode(to: encoder) }
    }

    static func outcome(_ document: [UInt8]) -> (fast: String, decoderOnly: String) {
        let fast = Result { () throws(Refusal) in
            try Wire.request(PutIndexRecordArgument.self, args: [document], function: "putIndexRecord")
        }
        let slow = Result { () throws(Refusal) in
            try Wire.request(DecoderOnly.self, args: [document], function: "putIndexRecord").argument
        }
        return ("\(fast)", "\(slow)")
    }

    static func argument(_ s: String, _ other: String, certificates: Bool) -> PutIndexRecordArgument {
        var a = PutIndexRecordArgument(
            withoutCertificatesOf: PutIndexRecordRequest(
                tID: s, url: other, digest: s + other, patientSignature: "ab/+=", doctorSignature: other,
                patientCert: "", doctorCert: "", capsule: s.isEmpty ? nil : other))
        if certificates { (a.patientCert, a.doctorCert) = (other, s) }
        return a
    }

    @Test func whatTheFastReaderAcceptsJSONDecoderReadsTheSame() throws {
        var rng = SystemRandomNumberGenerator()
        var strings = FlatJSONTests.awkward
        strings += (0..<300).map { _ in FlatJSONTests.randomString(&rng) }
        var fastReads = 0
        for (n, s) in strings.enumerated() {
            let other = strings[(n * 7 + 3) % strings.count]
            let a = Self.argument(s, other, certificates: n % 3 == 0)
            // Control characters other than \b \f \n \r \t are written as `\u` escapes, which only
            // JSONDecoder reads; everything else the fast reader must take.
            let named: Set<Unicode.Scalar> = ["\u{8}", "\u{C}", "\n", "\r", "\t"]
            let fastExpected = (s + other).unicodeScalars.allSatisfy { $0.value >= 0x20 || named.contains($0) }
            // JSONEncoder's own shape (slashes escaped, any key order) and FlatJSON's.
            for document in [Array(try JSONEncoder().encode(a)), try Wire.encode(a)] {
                let read = FlatJSON.stringFields(document) != nil
                if read { fastReads += 1 }
                #expect(read == fastExpected, "\(String(decoding: document, as: UTF8.self).debugDescription)")
                let (fast, slow) = Self.outcome(document)
                #expect(fast == slow, "\(String(decoding: document, as: UTF8.self).debugDescription)")
                #expect(fast.hasPrefix("success"), "\(fast)")
            }
        }
        #expect(fastReads >= 2 * FlatJSONTests.awkward.count - 4, "the comparison above is not vacuous")
    }

    /// Documents the fast reader must leave to `JSONDecoder`, or read as it does.
    static let edges: [String] = [
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #" { "t_id" : "t" , "url":"u","digest":"d","patient_signature":"p","doctor_signature":"q" } "#,
        #"{"t_id":"t","t_id":"x","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":"\u0074","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":"t\/x","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":1,"url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":null,"url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q","patient_cert":null}"#,
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q","x":"y"}"#,
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p"}"#,
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"} x"#,
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q",}"#,
        #"{"t_id":"t","url":{"a":"b"},"digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        #"{"t_id":"t\q","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#,
        "{\"t_id\":\"t\u{1}\",\"url\":\"u\",\"digest\":\"d\",\"patient_signature\":\"p\",\"doctor_signature\":\"q\"}",
        #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q""#,
        #"{"t_id":"t"#, "", "[]", "\"s\"", "{}", "{,}", #"{"t_id"}"#,
    ]

    @Test(arguments: edges) func anEdgeIsReadAsJSONDecoderReadsIt(_ document: String) {
        let (fast, slow) = Self.outcome(Array(document.utf8))
        #expect(fast == slow)
    }

    /// A stray byte, an overlong `/`, a UTF-16 surrogate written in UTF-8, a cut sequence.
    @Test(arguments: [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE6, 0xBC]] as [[UInt8]])
    func bytesThatAreNotUTF8AreLeftToJSONDecoder(_ bad: [UInt8]) {
        var document = Array(Self.plain.utf8)
        document.insert(contentsOf: bad, at: 10)
        #expect(FlatJSON.stringFields(document) == nil)
        let (fast, slow) = Self.outcome(document)
        #expect(fast == slow && fast.hasPrefix("failure"), "\(fast)")
    }

    static let plain = #"{"t_id":"t","url":"u","digest":"d","patient_signature":"p","doctor_signature":"q"}"#

    @Test func aByteOrderMarkOrAnEmptyKeyIsLeftToJSONDecoder() {
        let marked = [0xEF, 0xBB, 0xBF] + Array(Self.plain.utf8)
        #expect(FlatJSON.stringFields(marked) == nil)
        let (fast, slow) = Self.outcome(marked)
        #expect(fast == slow, "\(fast)")
        let emptyKey = Array(Self.plain.replacingOccurrences(of: #"{"t_id""#, with: #"{"":"x","t_id""#).utf8)
        #expect(FlatJSON.stringFields(emptyKey)?[""] == "x", "read, then refused as an unknown field")
        let (fastEmpty, slowEmpty) = Self.outcome(emptyKey)
        #expect(fastEmpty == slowEmpty && fastEmpty.contains("unknown field"), "\(fastEmpty)")
    }
}
