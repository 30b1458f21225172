#!/usr/bin/env python3
"""The reference side of LedgerPRE's interop tests: umbral-pre 0.11 (nucypher/rust-umbral) from PyPI.

Usage:  umbral_interop.py COMMAND < request.json > reply.json
        umbral_interop.py COMMAND --in FILE [--out FILE]

Every request and reply is one JSON object; byte strings are lowercase hex. A command that fails
replies {"error": "..."} and exits 1; an unusable environment (no umbral_pre) exits 3 with a message
on stderr, so the Swift tests can fail loudly rather than skip.

Commands (request fields -> reply fields):
  check                     {} -> {"version", "u"}                       (U: the parameter point, compressed)
  public-key                {"sk"} -> {"pk"}
  keygen                    {} -> {"sk", "pk"}
  encrypt                   {"pk", "plaintext"} -> {"capsule", "ciphertext"}
  decrypt-original          {"sk", "capsule", "ciphertext"} -> {"plaintext"}
  generate-kfrags           {"delegating_sk", "receiving_pk", "signer_sk", "threshold", "shares",
                             "sign_delegating_key", "sign_receiving_key"} -> {"kfrags": [...]}
  verify-kfrags             {"kfrags", "verifying_pk", "delegating_pk"?, "receiving_pk"?}
                             -> {"results": [{"ok": bool, "error"?: str}, ...]}
  reencrypt                 {"capsule", "kfrags", "verifying_pk", "delegating_pk"?, "receiving_pk"?}
                             (each kfrag is verified first) -> {"cfrags": [...]}
  verify-cfrags             {"capsule", "cfrags", "verifying_pk", "delegating_pk", "receiving_pk"}
                             -> {"results": [{"ok": bool, "error"?: str}, ...]}
  decrypt-reencrypted       {"receiving_sk", "delegating_pk", "verifying_pk", "capsule", "cfrags", "ciphertext"}
                             (each cfrag is verified first) -> {"plaintext"}
  sign                      {"sk", "message"} -> {"signature_be", "signature_der"}
  verify-signature          {"pk", "message", "signature_be"} -> {"ok": bool}
  roundtrip                 {"type": capsule|kfrag|cfrag|signature|public_key|secret_key, "bytes"}
                             -> {"bytes": re-serialized, "simple"?: to_bytes_simple()}
"""

import json
import sys

try:
    import umbral_pre as umbral
except ImportError as exc:  # the Swift test reports this message and fails
    sys.stderr.write(
        "umbral_interop.py: cannot import umbral_pre (%s); install it with: pip install umbral-pre==0.11.0\n" % exc
    )
    sys.exit(3)


def unhex(value):
    return bytes.fromhex(value)


def pk(value):
    return umbral.PublicKey.from_compressed_bytes(unhex(value))


def sk(value):
    return umbral.SecretKey.from_be_bytes(unhex(value))


def maybe_pk(req, name):
    return pk(req[name]) if req.get(name) else None


def cmd_check(req):
    from importlib.metadata import version

    return {"version": version("umbral-pre"), "u": compressed_u()}


def compressed_u():
    x, y = umbral.Parameters().u.coordinates
    return (bytes([2 + (y[-1] & 1)]) + bytes(x)).hex()


def cmd_public_key(req):
    return {"pk": sk(req["sk"]).public_key().to_compressed_bytes().hex()}


def cmd_keygen(req):
    key = umbral.SecretKey.random()
    return {"sk": key.to_be_bytes().hex(), "pk": key.public_key().to_compressed_bytes().hex()}


def cmd_encrypt(req):
    capsule, ciphertext = umbral.encrypt(pk(req["pk"]), unhex(req["plaintext"]))
    return {"capsule": bytes(capsule).hex(), "ciphertext": bytes(ciphertext).hex()}


def cmd_decrypt_original(req):
    capsule = umbral.Capsule.from_bytes(unhex(req["capsule"]))
    return {"plaintext": bytes(umbral.decrypt_original(sk(req["sk"]), capsule, unhex(req["ciphertext"]))).hex()}


def cmd_generate_kfrags(req):
    kfrags = umbral.generate_kfrags(
        delegating_sk=sk(req["delegating_sk"]),
        receiving_pk=pk(req["receiving_pk"]),
        signer=umbral.Signer(sk(req["signer_sk"])),
        threshold=int(req["threshold"]),
        shares=int(req["shares"]),
        sign_delegating_key=bool(req["sign_delegating_key"]),
        sign_receiving_key=bool(req["sign_receiving_key"]),
    )
    return {"kfrags": [bytes(k).hex() for k in kfrags]}


def verify_kfrag(req, raw):
    kfrag = umbral.KeyFrag.from_bytes(unhex(raw))
    return kfrag.verify(pk(req["verifying_pk"]), maybe_pk(req, "delegating_pk"), maybe_pk(req, "receiving_pk"))


def cmd_verify_kfrags(req):
    results = []
    for raw in req["kfrags"]:
        try:
            verify_kfrag(req, raw)
            results.append({"ok": True})
        except Exception as exc:  # parse errors and VerificationError alike
            results.append({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})
    return {"results": results}


def cmd_reencrypt(req):
    capsule = umbral.Capsule.from_bytes(unhex(req["capsule"]))
    return {"cfrags": [bytes(umbral.reencrypt(capsule, verify_kfrag(req, raw))).hex() for raw in req["kfrags"]]}


def verify_cfrag(req, capsule, raw):
    cfrag = umbral.CapsuleFrag.from_bytes(unhex(raw))
    return cfrag.verify(capsule, pk(req["verifying_pk"]), pk(req["delegating_pk"]), pk(req["receiving_pk"]))


def cmd_verify_cfrags(req):
    capsule = umbral.Capsule.from_bytes(unhex(req["capsule"]))
    results = []
    for raw in req["cfrags"]:
        try:
            verify_cfrag(req, capsule, raw)
            results.append({"ok": True})
        except Exception as exc:
            results.append({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})
    return {"results": results}


def cmd_decrypt_reencrypted(req):
    capsule = umbral.Capsule.from_bytes(unhex(req["capsule"]))
    req = dict(req, receiving_pk=sk(req["receiving_sk"]).public_key().to_compressed_bytes().hex())
    vcfrags = [verify_cfrag(req, capsule, raw) for raw in req["cfrags"]]
    plaintext = umbral.decrypt_reencrypted(
        receiving_sk=sk(req["receiving_sk"]),
        delegating_pk=pk(req["delegating_pk"]),
        capsule=capsule,
        verified_cfrags=vcfrags,
        ciphertext=unhex(req["ciphertext"]),
    )
    return {"plaintext": bytes(plaintext).hex()}


def cmd_sign(req):
    signature = umbral.Signer(sk(req["sk"])).sign(unhex(req["message"]))
    return {"signature_be": bytes(signature.to_be_bytes()).hex(), "signature_der": bytes(signature.to_der_bytes()).hex()}


def cmd_verify_signature(req):
    signature = umbral.Signature.from_be_bytes(unhex(req["signature_be"]))
    return {"ok": bool(signature.verify(pk(req["pk"]), unhex(req["message"])))}


def cmd_roundtrip(req):
    data = unhex(req["bytes"])
    kind = req["type"]
    if kind == "capsule":
        obj = umbral.Capsule.from_bytes(data)
        return {"bytes": bytes(obj).hex(), "simple": bytes(obj.to_bytes_simple()).hex()}
    if kind == "kfrag":
        return {"bytes": bytes(umbral.KeyFrag.from_bytes(data)).hex()}
    if kind == "cfrag":
        obj = umbral.CapsuleFrag.from_bytes(data)
        return {"bytes": bytes(obj).hex(), "simple": bytes(obj.to_bytes_simple()).hex()}
    if kind == "signature":
        obj = umbral.Signature.from_be_bytes(data)
        return {"bytes": bytes(obj.to_be_bytes()).hex(), "der": bytes(obj.to_der_bytes()).hex()}
    if kind == "public_key":
        return {"bytes": umbral.PublicKey.from_compressed_bytes(data).to_compressed_bytes().hex()}
    if kind == "secret_key":
        return {"bytes": umbral.SecretKey.from_be_bytes(data).to_be_bytes().hex()}
    raise ValueError("unknown type %r" % kind)


COMMANDS = {
    "check": cmd_check,
    "public-key": cmd_public_key,
    "keygen": cmd_keygen,
    "encrypt": cmd_encrypt,
    "decrypt-original": cmd_decrypt_original,
    "generate-kfrags": cmd_generate_kfrags,
    "verify-kfrags": cmd_verify_kfrags,
    "reencrypt": cmd_reencrypt,
    "verify-cfrags": cmd_verify_cfrags,
    "decrypt-reencrypted": cmd_decrypt_reencrypted,
    "sign": cmd_sign,
    "verify-signature": cmd_verify_signature,
    "roundtrip": cmd_roundtrip,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    args = argv[2:]
    source = args[args.index("--in") + 1] if "--in" in args else None
    target = args[args.index("--out") + 1] if "--out" in args else None
    text = open(source).read() if source else sys.stdin.read()
    request = json.loads(text) if text.strip() else {}
    try:
        reply, status = COMMANDS[argv[1]](request), 0
    except Exception as exc:  # report, don't trace: the caller asserts on the message
        reply, status = {"error": "%s: %s" % (type(exc).__name__, exc)}, 1
    out = json.dumps(reply)
    if target:
        with open(target, "w") as handle:
            handle.write(out)
    else:
        sys.stdout.write(out + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
