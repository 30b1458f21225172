import Crypto

/// DER `ECDSA-Sig-Value` (SEQUENCE { r INTEGER, s INTEGER }) for P-256, to and from the 64-byte
/// r‖s form. swift-crypto does the same through its generic ASN.1 layer, which cost as much as 40 %
/// of a verification (a peer's profile under load: 2.5 % of its CPU in
/// `ECDSASignature(derRepresentation:)` against 2.4 % in the verification itself). Every signature the
/// ledger checks passes through here, so this parser is as strict as DER: one encoding per (r, s).
public enum ECDSADER {
    /// The signature of strict DER `der`, nil for anything else: short-form lengths only (a P-256
    /// signature is at most 72 bytes), both integers non-negative (a zero fails verification later,
    /// as with swift-crypto), minimally encoded and at most 32 bytes of magnitude, no byte after the
    /// sequence.
    public static func p256Signature(_ der: some Collection<UInt8>) -> P256.Signing.ECDSASignature? {
        guard let raw = rawP256(der) else { return nil }
        return try? P256.Signing.ECDSASignature(rawRepresentation: raw)
    }

    /// r‖s, each left-padded to 32 bytes, of strict DER `der`; nil if it is not one.
    public static func rawP256(_ der: some Collection<UInt8>) -> [UInt8]? {
        let bytes = Array(der)
        guard bytes.count >= 8, bytes.count <= 72, bytes[0] == 0x30, Int(bytes[1]) == bytes.count - 2 else {
            return nil
        }
        var raw = [UInt8](repeating: 0, count: 64)
        guard let afterR = integer(bytes, at: 2, into: &raw, slot: 0),
            let afterS = integer(bytes, at: afterR, into: &raw, slot: 32), afterS == bytes.count
        else { return nil }
        return raw
    }

    /// DER of `signature` (the encoding `rawP256` reads back).
    public static func encode(_ signature: P256.Signing.ECDSASignature) -> [UInt8] {
        let raw = Array(signature.rawRepresentation)
        let r = integerTLV(raw[0..<32])
        let s = integerTLV(raw[32..<64])
        return [0x30, UInt8(r.count + s.count)] + r + s
    }

    /// Reads the INTEGER at `offset` into `raw[slot..<slot+32]`; the offset after it, nil if not strict.
    private static func integer(_ bytes: [UInt8], at offset: Int, into raw: inout [UInt8], slot: Int) -> Int? {
        guard offset + 2 <= bytes.count, bytes[offset] == 0x02 else { return nil }
        let length = Int(bytes[offset + 1])
        let start = offset + 2
        guard length >= 1, length <= 33, start + length <= bytes.count else { return nil }
        let first = bytes[start]
        guard first & 0x80 == 0 else { return nil }  // negative
        if length > 1, first == 0, bytes[start + 1] & 0x80 == 0 { return nil }  // a redundant leading zero
        let magnitude =
            first == 0 && length > 1 ? bytes[(start + 1)..<(start + length)] : bytes[start..<(start + length)]
        guard magnitude.count <= 32 else { return nil }
        let to = slot + 32 - magnitude.count
        raw.replaceSubrange(to..<(slot + 32), with: magnitude)
        return start + length
    }

    /// INTEGER of the unsigned big-endian `magnitude`: leading zeros dropped, one put back where the
    /// top bit would read as a sign.
    private static func integerTLV(_ magnitude: ArraySlice<UInt8>) -> [UInt8] {
        var digits = magnitude.drop { $0 == 0 }
        if digits.isEmpty { digits = [0] }
        let body = digits.first! & 0x80 != 0 ? [0] + digits : Array(digits)
        return [0x02, UInt8(body.count)] + body
    }
}
