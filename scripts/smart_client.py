#!/usr/bin/env python3
"""An independent SMART on FHIR client of a MedLedger node, built on authlib (OAuth 2.0, PKCE,
private_key_jwt) and checked with fhir.resources (R4B models, which match R4 for these resources)
and fhirpathpy (invariants). The tests and the demo run it against real nodes over HTTPS.

  login      authorization code + PKCE as an app; the user signs in with their wallet's TLS
             certificate and approves; prints the token response as JSON
  patient    login as a patient app, then read the patient's DocumentReferences, Provenance,
             Consents and AuditEvents, validating every resource
  backend    client_credentials with a private_key_jwt assertion (ES384 or RS384), then read a
             patient's DocumentReferences
  matrix     the token refusals: missing, forged, tampered, wrong audience, revoked, scope missing,
             replayed or bad client assertions
  call       GET a URL with a bearer token; prints the status (for checks made between steps)
  record     write a P_DE as a DocumentReference: sign (tid, URL_C, digest) with the patient's and
             the doctor's signing keys (Python `cryptography`), POST it as the doctor's app (or a
             backend service with --kid), read it back; a replay and a forged signature are refused
  observations  as the treatment's doctor's app: search a treatment's device readings (vital-signs
             Observations with the values masked, the sealed reading attached), paging through them;
             with --doctor-wallet, open each sealed reading with umbral-pre and the doctor's key and
             validate the device's own Observation inside
  consent    as the patient's app: POST a Consent the patient signed, replay it (refused), then
             revoke it with a signed PUT (status inactive)

Exit status 0 when every check held; each failed check is printed as "FAIL: …".
"""
import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.provenance import Provenance
from fhirpathpy import evaluate
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

# requests lets these variables override a session's own `verify`; every call here trusts only --ca.
for _variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_variable, None)

MODELS = {
    "AuditEvent": AuditEvent, "Bundle": Bundle, "CapabilityStatement": CapabilityStatement, "Consent": Consent,
    "DocumentReference": DocumentReference, "OperationOutcome": OperationOutcome, "Provenance": Provenance, "Observation": Observation,
}
# R4 invariants the models do not check, as FHIRPath.
INVARIANTS = {
    "Consent": {
        "ppc-1": "policy.exists() or policyRule.exists()",
        "ppc-2": "patient.exists() or scope.coding.where(system='http://terminology.hl7.org/CodeSystem/consentscope' and code='patient-privacy').exists().not()",
        "ppc-3": "patient.exists() or scope.coding.where(system='http://terminology.hl7.org/CodeSystem/consentscope' and code='research').exists().not()",
    },
    "AuditEvent": {"sev-1": "entity.all(name.empty() or query.empty())"},
    "Observation": {
        "obs-6": "dataAbsentReason.empty() or value.empty()",
        "obs-7": "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
        # The vital-signs profile: a value, a reason it is absent, or parts.
        "vs-2": "(component.empty() and hasMember.empty()) implies (dataAbsentReason.exists() or value.exists())",
    },
    "Bundle": {
        "bdl-1": "total.empty() or (type = 'searchset') or (type = 'history')",
        "bdl-2": "entry.search.empty() or (type = 'searchset')",
        "bdl-7": "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        "bdl-8": "entry.all(fullUrl.contains('/_history/').not())",
    },
}

FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print("FAIL: " + what)
    return ok


def validate(resource):
    """Validates one resource (and a Bundle's entries) with fhir.resources and the invariants."""
    kind = resource.get("resourceType")
    model = MODELS.get(kind)
    if not check(model is not None, f"unexpected resourceType {kind}"):
        return
    try:
        model.model_validate(resource)
    except Exception as e:  # pydantic's ValidationError
        check(False, f"{kind} does not validate as FHIR R4: {e}")
    for name, expr in INVARIANTS.get(kind, {}).items():
        check(evaluate(resource, expr, {"resource": resource}) == [True], f"{kind} breaks invariant {name}")
    for entry in resource.get("entry", []) if kind == "Bundle" else []:
        validate(entry["resource"])


def session_http(args):
    s = requests.Session()
    s.verify = args.ca
    return s


def discover(args):
    http = session_http(args)
    conf = http.get(args.fhir + "/.well-known/smart-configuration", timeout=15).json()
    for field in ["authorization_endpoint", "token_endpoint", "capabilities", "code_challenge_methods_supported"]:
        check(field in conf, f"smart-configuration lacks {field}")
    check(conf.get("code_challenge_methods_supported") == ["S256"], "PKCE must be S256 only")
    check("ES384" in conf.get("token_endpoint_auth_signing_alg_values_supported", []), "ES384 client assertions must be supported")
    meta = http.get(args.fhir + "/metadata", timeout=15)
    check(meta.headers.get("content-type", "").startswith("application/fhir+json"), "metadata is not application/fhir+json")
    validate(meta.json())
    return conf


def login(args, conf):
    """Authorization code + PKCE through authlib; the user agent signs in with the wallet's TLS pair."""
    client = OAuth2Session(args.client_id, redirect_uri=args.redirect_uri, scope=args.scope, code_challenge_method="S256")
    client.verify = args.ca
    verifier = generate_token(48)
    url, state = client.create_authorization_url(conf["authorization_endpoint"], code_verifier=verifier, aud=args.fhir)
    browser = session_http(args)
    browser.cert = (args.cert, args.key)
    page = browser.get(url, timeout=15, allow_redirects=False)
    check(page.status_code == 200, f"/authorize answered {page.status_code}: {page.text[:200]}")
    check("frame-ancestors 'none'" in page.headers.get("content-security-policy", ""), "the approval page may be framed")
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text)
    if not check(ticket is not None, "the approval page has no ticket"):
        return None
    form_action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    answer = browser.post(form_action, data={"ticket": ticket.group(1), "decision": "approve"}, timeout=15, allow_redirects=False)
    check(answer.status_code == 303, f"approval answered {answer.status_code}")
    location = answer.headers["location"]
    check(f"state={state}" in location, "the redirect does not carry the state")
    token = client.fetch_token(conf["token_endpoint"], authorization_response=location, code_verifier=verifier)
    check(token.get("token_type") == "Bearer" and 0 < token.get("expires_in", 0) <= 300, f"token response {token}")
    # The code is single-use: redeeming it again fails.
    again = requests.post(conf["token_endpoint"], verify=args.ca, timeout=15, data={
        "grant_type": "authorization_code", "code": re.search(r"code=([^&]+)", location).group(1), "code_verifier": verifier,
        "client_id": args.client_id, "redirect_uri": args.redirect_uri})
    check(again.status_code == 400 and again.json().get("error") == "invalid_grant", f"a used code was accepted again: {again.status_code}")
    return client, token


def get(client, url, expect=200):
    r = client.get(url, timeout=15)
    check(r.status_code == expect, f"GET {url} answered {r.status_code}, expected {expect}: {r.text[:300]}")
    check(r.headers.get("content-type", "").startswith("application/fhir+json"), f"GET {url} is not application/fhir+json")
    body = r.json()
    validate(body)
    return body


def patient(args):
    conf = discover(args)
    client, token = login(args, conf)
    pid = token.get("patient")
    check(pid is not None, "a patient's token response names the patient")
    docs = get(client, f"{args.fhir}/DocumentReference?patient={pid}&_count=1")
    entries = docs.get("entry", [])
    check(len(entries) >= 1, "the patient sees no DocumentReference")
    # Paging: with _count=1 and more records, a next link leads on.
    seen = [e["resource"]["id"] for e in entries]
    nxt = [l["url"] for l in docs["link"] if l["relation"] == "next"]
    while nxt:
        page = get(client, nxt[0])
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
    check(len(seen) == args.expect_records, f"paged through {len(seen)} DocumentReferences, expected {args.expect_records}")
    for rid in seen:
        doc = get(client, f"{args.fhir}/DocumentReference/{rid}")
        check(doc["subject"] == {"type": "Patient", "identifier": {"system": "urn:medledger:pid", "value": pid}}, "a DocumentReference names another subject")
        check(any(i["system"] == "urn:medledger:digest:sha384" and len(i["value"]) == 96 for i in doc["identifier"]), "no SHA-384 identifier")
        # The ciphertext itself (Binary, by its SHA-384): the bytes hash to the digest the P_DE names.
        digest = next(i["value"] for i in doc["identifier"] if i["system"] == "urn:medledger:digest:sha384")
        blob = client.get(f"{args.fhir}/Binary/{digest}", timeout=30)
        check(blob.status_code == 200 and blob.headers.get("content-type") == "application/octet-stream", f"Binary answered {blob.status_code}")
        check(hashlib.sha384(blob.content).hexdigest() == digest, "the Binary's bytes do not hash to the P_DE's digest")
        prov = get(client, f"{args.fhir}/Provenance?target=DocumentReference/{rid}")
        sigs = prov["entry"][0]["resource"]["signature"]
        check(sorted(s["type"][0]["code"] for s in sigs) == ["1.2.840.10065.1.12.1.1", "1.2.840.10065.1.12.1.14"], "Provenance lacks the two signatures")
    future = get(client, f"{args.fhir}/DocumentReference?patient={pid}&date=gt2999-01-01")
    check(not future.get("entry"), "a date filter in the future matched records")
    get(client, f"{args.fhir}/Consent?patient={pid}")
    audit = get(client, f"{args.fhir}/AuditEvent?patient={pid}")
    readers = {"{}/{}".format(w["type"], w["identifier"]["value"]) for w in (e["resource"]["agent"][0]["who"] for e in audit.get("entry", []))}
    for r in args.expect_reader or []:
        check(f"Practitioner/{r}" in readers, f"the AuditEvents do not show {r}'s reads (saw {sorted(readers)})")
    check(f"Patient/{pid}" not in readers, "the patient's own reads are listed as accesses")
    # A patient token reads only its own patient.
    get(client, f"{args.fhir}/DocumentReference?patient=someone-else", expect=403)
    get(client, f"{args.fhir}/DocumentReference/no-such-record", expect=404)
    if args.show:
        print(f"signed in as patient {pid[:12]}… with scopes: {token.get('scope')}")
        for rid in seen:
            print(f"  DocumentReference {rid}  (sealed bundle at its URL_C; SHA-384 and both signatures in Provenance)")
        for e in audit.get("entry", []):
            r = e["resource"]
            who = r["agent"][0]["who"]
            print(f"  AuditEvent {r['recorded']}  {r['type']['display']:<15} by {who['type']} {who['identifier']['value'][:12]}…  outcome {r['outcome']}")
        print(f"every resource validated as FHIR R4 (fhir.resources R4B, fhirpathpy invariants): {'yes' if not FAILURES else 'NO'}")
    print(json.dumps({"patient": pid, "documents": len(seen), "audit_events": len(audit.get("entry", []))}))


def backend_session(args, conf, alg, key_file, kid, scope):
    with open(key_file, "rb") as f:
        key = (ECKey if alg.startswith("ES") else RSAKey).import_key(f.read())
    # authlib's assertions live an hour by default; SMART allows at most five minutes.
    auth = PrivateKeyJWT(conf["token_endpoint"], alg=alg, headers={"kid": kid}, claims={"exp": int(time.time()) + 240})
    client = OAuth2Session(args.client_id, key, token_endpoint_auth_method=auth, scope=scope)
    client.verify = args.ca
    token = client.fetch_token(conf["token_endpoint"], grant_type="client_credentials")
    check(token.get("expires_in", 0) <= 300 and "refresh_token" not in token, f"backend token response {token}")
    return client, token


def backend(args):
    conf = discover(args)
    client, token = backend_session(args, conf, args.alg, args.key, args.kid, args.scope)
    docs = get(client, f"{args.fhir}/DocumentReference?patient={args.patient}")
    check(len(docs.get("entry", [])) == args.expect_records, f"the backend service sees {len(docs.get('entry', []))} records, expected {args.expect_records}")
    # A backend service reads as the hospital's node: index records yes, the ciphertexts no (scope, then role).
    if docs.get("entry"):
        digest = next(i["value"] for i in docs["entry"][0]["resource"]["identifier"] if i["system"] == "urn:medledger:digest:sha384")
        check(client.get(f"{args.fhir}/Binary/{digest}", timeout=15).status_code == 403, "a backend service downloaded a record's ciphertext")
    print(json.dumps({"records": len(docs.get("entry", [])), "scope": token.get("scope")}))


def assertion(args, conf, key, kid, alg, **over):
    now = int(time.time())
    claims = {"iss": args.client_id, "sub": args.client_id, "aud": conf["token_endpoint"], "exp": now + 120, "iat": now, "jti": str(uuid.uuid4())}
    claims.update(over)
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def token_with(conf, args, signed, scope="system/DocumentReference.rs"):
    return requests.post(conf["token_endpoint"], verify=args.ca, timeout=15, data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": signed})


def expect_401(args, url, token, why):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    r = requests.get(url, headers=headers, verify=args.ca, timeout=15)
    check(r.status_code == 401, f"{why}: answered {r.status_code}, expected 401")
    check(r.headers.get("www-authenticate", "").startswith("Bearer"), f"{why}: no WWW-Authenticate: Bearer")
    if r.headers.get("content-type", "").startswith("application/fhir+json"):
        validate(r.json())
    else:
        check(False, f"{why}: the 401 body is not an OperationOutcome")


def matrix(args):
    conf = discover(args)
    url = f"{args.fhir}/DocumentReference?patient={args.patient}"
    with open(args.key, "rb") as f:
        key = ECKey.import_key(f.read())
    good = json.loads(token_with(conf, args, assertion(args, conf, key, args.kid, "ES384")).text)
    check("access_token" in good, f"a good assertion got no token: {good}")
    t = good.get("access_token", "")
    check(requests.get(url, headers={"Authorization": f"Bearer {t}"}, verify=args.ca, timeout=15).status_code == 200, "a good token was refused")
    expect_401(args, url, None, "no token")
    head, body, sig = t.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    expect_401(args, url, f"{head}.{body}.{flipped}", "a tampered signature")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["scope"] = claims["scope"] + " system/AuditEvent.rs"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    expect_401(args, url, f"{head}.{forged_body}.{sig}", "a widened scope under the old signature")
    attacker = ECKey.generate_key("P-384")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    forged = jwt.encode({"alg": "ES384", "kid": header["kid"], "typ": "at+jwt"}, claims, attacker, algorithms=["ES384"])
    expect_401(args, url, forged, "a token signed by another key under the node's kid")
    if args.other_token:
        expect_401(args, url, args.other_token, "a token another node issued (wrong audience)")
    # Scope: this token may read DocumentReference, not AuditEvent.
    r = requests.get(f"{args.fhir}/AuditEvent?patient={args.patient}", headers={"Authorization": f"Bearer {t}"}, verify=args.ca, timeout=15)
    check(r.status_code == 403 and "insufficient_scope" in r.headers.get("www-authenticate", ""), f"scope missing answered {r.status_code}")
    validate(r.json())
    # Client assertions: replayed jti, too long a life, expired, wrong audience, wrong algorithm.
    once = assertion(args, conf, key, args.kid, "ES384")
    check(token_with(conf, args, once).status_code == 200, "a fresh assertion was refused")
    for what, signed in [
        ("a replayed jti", once),
        ("an assertion living over 5 minutes", assertion(args, conf, key, args.kid, "ES384", exp=int(time.time()) + 600)),
        ("an expired assertion", assertion(args, conf, key, args.kid, "ES384", exp=int(time.time()) - 10)),
        ("an assertion for another audience", assertion(args, conf, key, args.kid, "ES384", aud="https://elsewhere.example/token")),
        ("an assertion signed by an unregistered key", assertion(args, conf, ECKey.generate_key("P-384"), args.kid, "ES384")),
        ("an assertion with sub other than iss", assertion(args, conf, key, args.kid, "ES384", sub="someone-else")),
    ]:
        r = token_with(conf, args, signed)
        check(r.status_code == 401 and r.json().get("error") == "invalid_client", f"{what}: answered {r.status_code} {r.text[:200]}")
    if args.rsa_key:
        with open(args.rsa_key, "rb") as f:
            rsa = RSAKey.import_key(f.read())
        r = token_with(conf, args, assertion(args, conf, rsa, args.rsa_kid, "RS384"))
        check(r.status_code == 200, f"an RS384 assertion was refused: {r.text[:200]}")
        r = token_with(conf, args, assertion(args, conf, rsa, args.rsa_kid, "RS256"))
        check(r.status_code == 401, f"an RS256 assertion was accepted: {r.status_code}")
    # Revocation (RFC 7009), then introspection says inactive.
    check(requests.post(conf["revocation_endpoint"], data={"token": t}, verify=args.ca, timeout=15).status_code == 200, "revocation failed")
    expect_401(args, url, t, "a revoked token")
    print(json.dumps({"matrix": "done", "failures": len(FAILURES)}))


ASTM = "urn:iso-astm:E1762-95:2013"
SIG_FORMAT = "application/x-medledger-pde-signature"
CERT_EXTENSION = "urn:medledger:fhir:signer-certificate"


def wallet_sign(wallet, message):
    """The wallet's signing key signs `message` (ECDSA P-256, SHA-256, DER, base64); with its certificate (DER, base64)."""
    with open(os.path.join(wallet, "signing-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(wallet, "signing-cert.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    signature = key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode(), base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def signature_element(code, display, who, signed, when):
    data, cert = signed
    return {"type": [{"system": ASTM, "code": code, "display": display}], "when": when, "who": who,
            "sigFormat": SIG_FORMAT, "data": data, "extension": [{"url": CERT_EXTENSION, "valueBase64Binary": cert}]}


def pid_ref(kind, pid):
    return {"type": kind, "identifier": {"system": "urn:medledger:pid", "value": pid}}


def post(client, url, resource, expect):
    r = client.post(url, data=json.dumps(resource), headers={"Content-Type": "application/fhir+json"}, timeout=60)
    check(r.status_code == expect, f"POST {url} answered {r.status_code}, expected {expect}: {r.text[:400]}")
    if r.headers.get("content-type", "").startswith("application/fhir+json"):
        validate(r.json())
    return r


def write_record(args):
    """A P_DE through FHIR: the two signatures made here, over what the ledger's P_DE signs."""
    conf = discover(args)
    if args.kid:
        client, _ = backend_session(args, conf, args.alg, args.key, args.kid, "system/DocumentReference.crs")
    else:
        client, _ = login(args, conf)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    message = f"medledger/pde/v1\n{args.t_id}\n{args.url}\n{args.digest.lower()}"

    def resource(patient_signed, doctor_signed):
        doc = {
            "resourceType": "DocumentReference", "status": "current",
            "identifier": [{"system": "urn:medledger:digest:sha384", "value": args.digest}],
            "subject": pid_ref("Patient", args.patient),
            "content": [{"attachment": {"contentType": "application/octet-stream", "url": args.url}}],
            "context": {"encounter": [{"type": "Encounter", "identifier": {"system": "urn:medledger:treatment", "value": args.t_id}}]},
            "contained": [{
                "resourceType": "Provenance", "id": "signatures", "target": [{"reference": "#"}], "recorded": now,
                "agent": [{"who": pid_ref("Practitioner", args.doctor_pid)}],
                "signature": [
                    signature_element("1.2.840.10065.1.12.1.1", "Author's Signature", pid_ref("Practitioner", args.doctor_pid), doctor_signed, now),
                    signature_element("1.2.840.10065.1.12.1.14", "Source Signature", pid_ref("Patient", args.patient), patient_signed, now),
                ],
            }],
        }
        DocumentReference.model_validate(doc)  # what we send is FHIR R4 too
        return doc

    patient_signed = wallet_sign(args.patient_wallet, message)
    doctor_signed = wallet_sign(args.doctor_wallet, message)
    # A signature over another location is refused and creates nothing.
    moved = wallet_sign(args.patient_wallet, message.replace(args.url, args.url + "x"))
    post(client, f"{args.fhir}/DocumentReference", resource(moved, doctor_signed), 400)
    created = post(client, f"{args.fhir}/DocumentReference", resource(patient_signed, doctor_signed), 201)
    record = created.json()
    location = created.headers.get("location", "")
    check(location == f"{args.fhir}/DocumentReference/{record.get('id')}", f"Location {location!r} does not name the new record")
    back = get(client, location)
    check(back.get("identifier") == record.get("identifier") and back["context"]["encounter"][0]["identifier"]["value"] == args.t_id, "the record read back differs")
    # The same ciphertext again for the same treatment: one P_DE per digest.
    post(client, f"{args.fhir}/DocumentReference", resource(patient_signed, doctor_signed), 409)
    print(json.dumps({"record": record.get("id")}))


def observations(args):
    """The doctor's app reads a treatment's device readings; each carries the device's signed, sealed reading."""
    conf = discover(args)
    client, _ = login(args, conf)
    bundle = get(client, f"{args.fhir}/Observation?encounter={args.t_id}&_count=1")
    seen = [e["resource"] for e in bundle.get("entry", [])]
    nxt = [l["url"] for l in bundle["link"] if l["relation"] == "next"]
    while nxt:
        page = get(client, nxt[0])
        seen += [e["resource"] for e in page.get("entry", [])]
        nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
    check(len(seen) == args.expect_records, f"{len(seen)} Observations, expected {args.expect_records}")
    for o in seen:
        check(o["category"][0]["coding"][0]["code"] == "vital-signs" and o["code"]["coding"][0]["code"] == "85353-1", "not a vital-signs Observation")
        check(o["dataAbsentReason"]["coding"][0]["code"] == "masked" and "valueQuantity" not in o, "an Observation shows values the node cannot read")
        sealed = base64.b64decode(o["extension"][0]["valueAttachment"]["data"])
        check(len(sealed) > 64, "the sealed reading is missing")
        if args.doctor_wallet:
            inner = open_reading(sealed, args.doctor_wallet)
            validate(inner)
            codes = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in inner.get("component", [])}
            check("8867-4" in codes and 20 <= codes["8867-4"] <= 300, f"the opened reading has no heart rate: {inner}")
            check(inner["effectiveDateTime"] == o["effectiveDateTime"], "the masked Observation's time is not the reading's")
            if args.show:
                device = o["device"]["identifier"]["value"]
                print(f"  Observation {o['id'][:15]}…  {o['effectiveDateTime']}  device {device[:12]}…  values masked;"
                      f" opened with the doctor's key: heart rate {codes.get('8867-4')}/min, {codes.get('8480-6')}/{codes.get('8462-4')} mmHg")
    print(json.dumps({"observations": len(seen)}))


def protobuf_fields(data):
    """The length-delimited and varint fields of one protobuf message, by number (wire types 0 and 2)."""
    fields, i = {}, 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number] = varint()
        elif wire == 2:
            n = varint()
            fields[number] = data[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return fields


def open_reading(sealed, wallet):
    """A SignedReading (capsule = field 6, ciphertext = 7) opened with the doctor's Umbral key (umbral-pre)."""
    import umbral_pre as umbral
    with open(os.path.join(wallet, "pre-keys.json")) as f:
        secret = umbral.SecretKey.from_be_bytes(bytes.fromhex(json.load(f)["encryption_secret"]))
    fields = protobuf_fields(sealed)
    capsule = umbral.Capsule.from_bytes(bytes(fields[6]))
    return json.loads(bytes(umbral.decrypt_original(secret, capsule, bytes(fields[7]))))


def consent(args):
    """A consent the patient signs in the app, granted and revoked through FHIR."""
    conf = discover(args)
    client, token = login(args, conf)
    pid = token.get("patient")
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    nonce = uuid.uuid4().hex
    purpose = "research"
    signed = wallet_sign(args.patient_wallet, "\n".join(["medledger/consent-grant/v1", args.grantee, args.t_id, purpose, expires, nonce]))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {
        "resourceType": "Consent", "status": "active",
        "identifier": [{"system": "urn:medledger:consent-nonce", "value": nonce}],
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": pid_ref("Patient", pid), "dateTime": now,
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit", "period": {"start": now, "end": expires},
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                       "reference": pid_ref("Practitioner", args.grantee)}],
            "purpose": [{"system": "urn:medledger:purpose", "code": purpose}],
            "data": [{"meaning": "related", "reference": {"type": "Encounter", "identifier": {"system": "urn:medledger:treatment", "value": args.t_id}}}],
        },
        "contained": [{
            "resourceType": "Provenance", "id": "signature", "target": [{"reference": "#"}], "recorded": now, "agent": [{"who": pid_ref("Patient", pid)}],
            "signature": [signature_element("1.2.840.10065.1.12.1.7", "Consent Signature", pid_ref("Patient", pid), signed, now)],
        }],
    }
    Consent.model_validate(body)
    created = post(client, f"{args.fhir}/Consent", body, 201).json()
    cid = created.get("id")
    check(created.get("status") == "active", f"the new Consent is {created.get('status')}")
    check(get(client, f"{args.fhir}/Consent/{cid}").get("status") == "active", "the Consent read back is not active")
    # The same signed grant again (a node replaying it) makes no second consent.
    post(client, f"{args.fhir}/Consent", body, 409)
    # Revocation: the patient signs it; an unsigned one is refused.
    revoke = {"resourceType": "Consent", "id": cid, "status": "inactive"}
    r = client.put(f"{args.fhir}/Consent/{cid}", data=json.dumps(revoke), headers={"Content-Type": "application/fhir+json"}, timeout=60)
    check(r.status_code == 400, f"an unsigned revocation answered {r.status_code}")
    revoke["contained"] = [{
        "resourceType": "Provenance", "id": "signature", "target": [{"reference": "#"}], "recorded": now, "agent": [{"who": pid_ref("Patient", pid)}],
        "signature": [signature_element("1.2.840.10065.1.12.1.7", "Consent Signature", pid_ref("Patient", pid),
                                        wallet_sign(args.patient_wallet, f"medledger/consent-revoke/v1\n{cid}"), now)],
    }]
    r = client.put(f"{args.fhir}/Consent/{cid}", data=json.dumps(revoke), headers={"Content-Type": "application/fhir+json"}, timeout=60)
    check(r.status_code == 200 and r.json().get("status") == "inactive", f"the signed revocation answered {r.status_code}: {r.text[:300]}")
    check(get(client, f"{args.fhir}/Consent/{cid}").get("status") == "inactive", "the revoked Consent still reads active")
    print(json.dumps({"consent": cid}))


def login_only(args):
    conf = discover(args)
    result = login(args, conf)
    if result:
        print(json.dumps(result[1]))


def call(args):
    r = requests.get(args.url, headers={"Authorization": f"Bearer {args.token}"}, verify=args.ca, timeout=15)
    print(json.dumps({"status": r.status_code, "www_authenticate": r.headers.get("www-authenticate", "")}))
    if r.headers.get("content-type", "").startswith("application/fhir+json"):
        validate(r.json())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["login", "patient", "backend", "matrix", "call", "record", "consent", "observations"])
    p.add_argument("--fhir", help="the FHIR base URL, https://HOST:PORT/fhir")
    p.add_argument("--ca", required=True, help="the CA certificate that signed the node's TLS certificate")
    p.add_argument("--client-id")
    p.add_argument("--redirect-uri", default="http://127.0.0.1:9/callback")
    p.add_argument("--scope", default="patient/DocumentReference.rs patient/Provenance.rs patient/Consent.rs patient/AuditEvent.rs patient/Binary.r launch/patient")
    p.add_argument("--cert", help="the user's wallet TLS certificate (sign-in)")
    p.add_argument("--key", help="the user's wallet TLS key, or a backend service's private key")
    p.add_argument("--kid")
    p.add_argument("--alg", default="ES384")
    p.add_argument("--rsa-key")
    p.add_argument("--rsa-kid")
    p.add_argument("--patient")
    p.add_argument("--expect-records", type=int, default=1)
    p.add_argument("--expect-reader", action="append")
    p.add_argument("--other-token")
    p.add_argument("--show", action="store_true", help="print what the app read")
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--patient-wallet", help="record, consent: the patient's wallet directory (its signing key signs)")
    p.add_argument("--doctor-wallet", help="record: the doctor's wallet directory")
    p.add_argument("--doctor-pid")
    p.add_argument("--t-id")
    p.add_argument("--digest", help="record: the sealed object's SHA-384 (hex)")
    p.add_argument("--grantee", help="consent: the grantee's PID")
    args = p.parse_args()
    modes = {"login": login_only, "patient": patient, "backend": backend, "matrix": matrix, "call": call, "record": write_record, "consent": consent, "observations": observations}
    modes[args.mode](args)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
