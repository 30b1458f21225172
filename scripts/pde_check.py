#!/usr/bin/env python3
"""Checks an index record (P_DE) against its ciphertext without any MedLedger code: recomputes the
SHA-384 of the stored ciphertext, verifies the patient's and the doctor's signatures (D_SP, D_SD)
against the PEM certificates the record carries, and that both certificates were issued by the CA.

    python3 scripts/pde_check.py --record pde.json --ciphertext object.bin --ca ca-cert.pem

pde.json is the JSON `medrecords.getIndexRecord` returns. Prints one line per check; exits 1 if any
fails. Uses only the `cryptography` package (PyPI)."""
import argparse, base64, hashlib, json, sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

DOMAIN = "medledger/pde/v1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", required=True)
    ap.add_argument("--ciphertext", required=True)
    ap.add_argument("--ca", required=True)
    a = ap.parse_args()
    record = json.load(open(a.record))
    ca = x509.load_pem_x509_certificate(open(a.ca, "rb").read())
    failures = []

    h = hashlib.sha384()
    with open(a.ciphertext, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if digest == record["digest"]:
        print("sha384 ok: " + digest)
    else:
        failures.append("sha384: the ciphertext hashes to %s, the P_DE says %s" % (digest, record["digest"]))

    message = "\n".join([DOMAIN, record["t_id"], record["url"], record["digest"].lower()]).encode()
    for who in ("patient", "doctor"):
        cert = x509.load_pem_x509_certificate(record[who + "_cert"].encode())
        try:
            cert.verify_directly_issued_by(ca)
            print("%s certificate ok: issued by %s" % (who, ca.subject.rfc4514_string()))
        except Exception as e:  # signature, issuer name or algorithm mismatch
            failures.append("%s certificate not issued by the CA: %s" % (who, e))
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[-1].value
        if cn != record[who + "_pid"]:
            failures.append("%s certificate is %s's, the P_DE names %s" % (who, cn, record[who + "_pid"]))
        try:
            cert.public_key().verify(base64.b64decode(record[who + "_signature"]), message, ec.ECDSA(hashes.SHA256()))
            print("%s signature ok" % who)
        except InvalidSignature:
            failures.append("%s signature does not verify" % who)

    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
