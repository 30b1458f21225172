#!/usr/bin/env python3
"""Independent check of a MedLedger sealed record (format version 1, docs/SEALED_RECORDS.md).

    sealed_record_check.py SEALED_FILE DATA_KEY_HEX [--plaintext FILE]

Parses the header, checks the key commitment, decrypts every chunk with `cryptography`'s AESGCM
(nonce = prefix(7) || u32be(index) || final flag, AAD = the 233-byte header), insists on exactly one
final chunk at the end and nothing after it, and prints one JSON object:

    {"ok": true, "version": 1, "chunk_size": C, "chunks": n, "plaintext_len": N,
     "plaintext_sha384": hex, "sealed_sha384": hex, "plaintext_matches": true|false|null}

On a format or authentication failure: {"ok": false, "error": "..."} and exit status 1 (with
--plaintext, a mismatch is also exit 1). Exit status 3 if `cryptography` cannot be imported, so the
Swift test fails with an install hint rather than skipping. Written from the format description,
not from the Swift code, so the two implementations check each other.
"""
import hashlib
import hmac
import json
import struct
import sys

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.exceptions import InvalidTag
except ImportError as e:  # pragma: no cover - exercised only on a machine without the package
    print(f"python cryptography is not importable ({e}); pip install cryptography", file=sys.stderr)
    sys.exit(3)

MAGIC = b"MLSEALED"
HEADER_LEN = 233
CAPSULE_LEN = 105
WRAPPED_LEN = 72
TAG_LEN = 16
MAX_CHUNK = 16 * 1024 * 1024
COMMITMENT_LABEL = b"medledger/sealed-record/v1/key-commitment"


class CheckError(Exception):
    pass


def check(sealed: bytes, key: bytes):
    if len(key) != 32:
        raise CheckError(f"data key must be 32 bytes, got {len(key)}")
    if sealed[:8] != MAGIC:
        raise CheckError("not a sealed record (bad magic)")
    if len(sealed) < HEADER_LEN:
        raise CheckError("truncated header")
    header = sealed[:HEADER_LEN]
    if header[8] != 1:
        raise CheckError(f"unsupported version {header[8]}")
    pos = 9
    (capsule_len,) = struct.unpack_from(">H", header, pos); pos += 2
    if capsule_len != CAPSULE_LEN:
        raise CheckError(f"capsule length {capsule_len}")
    pos += CAPSULE_LEN
    (wrapped_len,) = struct.unpack_from(">H", header, pos); pos += 2
    if wrapped_len != WRAPPED_LEN:
        raise CheckError(f"wrapped key length {wrapped_len}")
    pos += WRAPPED_LEN
    commitment = header[pos:pos + 32]; pos += 32
    prefix = header[pos:pos + 7]; pos += 7
    (chunk_size,) = struct.unpack_from(">I", header, pos); pos += 4
    assert pos == HEADER_LEN
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise CheckError(f"chunk size {chunk_size} out of range")
    expected = hmac.new(key, COMMITMENT_LABEL, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, commitment):
        raise CheckError("key commitment does not match the data key")

    aes = AESGCM(key)
    plaintext = bytearray()
    pos = HEADER_LEN
    index = 0
    while True:
        if pos >= len(sealed):
            raise CheckError("truncated: no final chunk")
        marker = sealed[pos]; pos += 1
        if marker == 0:
            final, length = False, chunk_size
        elif marker == 1:
            if pos + 4 > len(sealed):
                raise CheckError("truncated final length")
            (length,) = struct.unpack_from(">I", sealed, pos); pos += 4
            final = True
            if length > chunk_size:
                raise CheckError(f"chunk {index}: final length {length} > chunk size")
        else:
            raise CheckError(f"chunk {index}: bad marker {marker}")
        end = pos + length + TAG_LEN
        if end > len(sealed):
            raise CheckError(f"truncated in chunk {index}")
        nonce = prefix + struct.pack(">I", index) + (b"\x01" if final else b"\x00")
        try:
            plaintext += aes.decrypt(nonce, sealed[pos:end], header)
        except InvalidTag:
            raise CheckError(f"chunk {index} failed authentication")
        pos = end
        index += 1
        if final:
            break
    if pos != len(sealed):
        raise CheckError(f"{len(sealed) - pos} trailing bytes after the final chunk")
    return {
        "ok": True,
        "version": 1,
        "chunk_size": chunk_size,
        "chunks": index,
        "plaintext_len": len(plaintext),
        "plaintext_sha384": hashlib.sha384(plaintext).hexdigest(),
        "sealed_sha384": hashlib.sha384(sealed).hexdigest(),
    }, bytes(plaintext)


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--plaintext"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        sealed = f.read()
    try:
        result, plaintext = check(sealed, bytes.fromhex(argv[1]))
    except CheckError as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1
    result["plaintext_matches"] = None
    if len(argv) == 4:
        with open(argv[3], "rb") as f:
            result["plaintext_matches"] = f.read() == plaintext
    print(json.dumps(result))
    return 0 if result["plaintext_matches"] in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
