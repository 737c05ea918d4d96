#!/usr/bin/env python3
"""End-to-end: the hostile-token matrix against the collector's POST /events (issue 3).

Issue 3 requirements checked:
  "Verification ...: signature with the pinned algorithm(s) only; exp, iat, iss, aud and tenant
   required and checked with a small leeway; scope per endpoint (events:write to ingest; wrong
   scope is 403); keys ... from key files."
  Tests: "Hostile-token matrix, each case refused with 401 (403 for a valid token without the
   scope): alg none / None, HS256 signed with the public key, another asymmetric algorithm than
   the pinned one, unknown kid, kid with path traversal or SQL, tampered header/payload/
   signature, missing exp, expired, nbf in the future, wrong iss, wrong aud, no tenant,
   oversized token, bad base64, wrong number of dots, duplicate JSON keys."
  "Tenant isolation: every write path takes the tenant from the credential."

Setup: one sandbox; one signing key; tenants A and B; clients of A (events:write; events:read
only; one revoked during the test) and of B. auth + collector (keys from the key folder,
EVENTOPS_AUTH_MAX_TOKEN_BYTES=2048, leeway 30 s) + processor.

Every case sends one event with a unique messageId and checks the status; a 401 must carry
{"error": {"code": "invalid_token", "message", "field": "Authorization"}} and
`WWW-Authenticate: Bearer realm="eventops", error="invalid_token", error_description="..."`
(parsed with the RFC 9110 grammar); a 403 {"error": {"code": "insufficient_scope"}} and
`WWW-Authenticate: Bearer realm="eventops", error="insufficient_scope", scope="events:write"`.
Controls (202) prove the forging helper is right: a token forged with the real key and valid
claims is accepted, as are the variants the spec allows (no typ, typ JWT, aud array, no nbf, no
jti, times within the leeway, a token of exactly the maximum size). At the end: every accepted
event is stored under its credential's tenant (B's real token with A named in the body and in
X-Tenant-Id stores under B), no refused event is stored anywhere, an attacker's `jku`/`x5u` URL
was never fetched, the collector is still running, exits 0 on SIGTERM, and no log has a
sanitizer report.

Readings chosen where the spec leaves room (the stricter one): a missing kid is 401 (the spec:
"kid must be a known key"); alg values are case-sensitive ("EDDSA", "Ed25519" -> 401); a
signature whose last base64url character has non-zero unused bits is refused (strict base64url,
RFC 4648 section 3.5: otherwise two different strings are the same token); a duplicate written
with an escape ("ten\\u0061nt") is a duplicate key; a token with 0/1/3/4 dots is not a JWT, so
its 401 may carry the write-key code (invalid_write_key) instead of invalid_token; a token whose
scope claim is missing or does not contain the exact word events:write gets 403.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import b64url_encode, forge, log  # noqa: E402

from cryptography.hazmat.primitives import hashes, hmac, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

MAX_TOKEN = 2048
LEEWAY = 30
ENV = {
    "EVENTOPS_AUTH_MAX_TOKEN_BYTES": str(MAX_TOKEN),
    "EVENTOPS_HTTP_MAX_HEADER_BYTES": "16384",
    "EVENTOPS_AUTH_LEEWAY_S": str(LEEWAY),
    "EVENTOPS_AUTH_KEYS_REFRESH_MS": "500",
    "EVENTOPS_AUTH_KEYS_MIN_REFETCH_MS": "200",
    "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
}


def hmac_signer(key, alg=hashes.SHA256):
    def sign(data):
        h = hmac.HMAC(key, alg())
        h.update(data)
        return h.finalize()
    return sign


def es256_signer(key):
    def sign(data):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign


def rs256_signer(key, pss=False):
    def sign(data):
        pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss
               else padding.PKCS1v15())
        return key.sign(data, pad, hashes.SHA256())
    return sign


def jku_server(body):
    """A local HTTP server an attacker would point `jku`/`x5u` at; its `hits` count requests."""
    data = json.dumps(body).encode()
    return eotest.LocalHttpServer(lambda path: (200, data))


def event(mid, **extra):
    e = {"eventType": "hostile_e2e", "userId": "u-" + mid[-6:], "messageId": mid}
    e.update(extra)
    return e


def flip_bit(b64, byte_index, bit=0):
    raw = bytearray(eotest.b64url_decode(b64))
    raw[byte_index] ^= 1 << bit
    return b64url_encode(bytes(raw))


def build_cases(sb, ctx):
    """(name, token (str or bytes), expected status, accepted error codes or None, path)."""
    kid = ctx["kid"]
    ca, cb = ctx["ca"], ctx["cb"]
    ta, tb = ctx["ta"], ctx["tb"]
    pem = sb.key_path(kid)
    real = eotest.eddsa_signer(pem)
    pub_raw = eotest.ed25519_public_raw(pem)
    pub_key = ed25519.Ed25519PublicKey.from_public_bytes(pub_raw)
    pub_pem = pub_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_der = pub_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    atk_ed = ed25519.Ed25519PrivateKey.generate()
    atk_ec = ec.generate_private_key(ec.SECP256R1())
    atk_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    atk_x = b64url_encode(atk_ed.public_key().public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw))
    atk_jwk = {"kty": "OKP", "crv": "Ed25519", "x": atk_x, "kid": "attacker", "alg": "EdDSA",
               "use": "sig"}
    ctx["jku"] = jku = jku_server({"keys": [atk_jwk]})
    now = int(time.time())

    H = {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}

    def hd(**kw):
        h = dict(H)
        for k, v in kw.items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        return h

    def cl(client=ca, **kw):
        return sb.claims(client, **kw)

    def good(client=ca, **kw):
        return forge(H, cl(client, **kw), real)

    cases = []

    def add(name, token, status=401, codes=None, path="/events"):
        cases.append((name, token, status, codes, path))

    def raw_json(s):
        return s.encode() if isinstance(s, str) else s

    # -- controls: the forging helper is right and the allowed variants pass
    add("control: forged with the real key, valid claims", good(), 202)
    add("control: forged, POST /events/batch", good(), 202, path="/events/batch")
    add("control: real token from the auth role", ctx["tok_a"], 202)
    add("control: no typ", forge(hd(typ=None), cl(), real), 202)
    add("control: typ JWT", forge(hd(typ="JWT"), cl(), real), 202)
    add("control: aud an array containing ours", forge(H, cl(aud=["other", sb.claims(ca)["aud"]]),
                                                       real), 202)
    add("control: no nbf", good(nbf=None), 202)
    add("control: no jti", good(jti=None), 202)
    add("control: both scopes", good(scope="events:read events:write"), 202)
    add("control: expired %d s ago, within the leeway" % (LEEWAY // 3),
        good(iat=now - 300, nbf=now - 300, exp=now - LEEWAY // 3), 202)
    add("control: nbf %d s ahead, within the leeway" % (LEEWAY // 3),
        good(nbf=now + LEEWAY // 3), 202)
    add("control: iat %d s ahead, within the leeway" % (LEEWAY // 3),
        good(iat=now + LEEWAY // 3, nbf=now), 202)

    # -- scope: 403
    add("scope events:read only (forged)", good(scope="events:read"), 403)
    add("scope events:read only (real token of a read-only client)", ctx["tok_ro"], 403)
    add("read-only client, POST /events/batch", ctx["tok_ro"], 403, path="/events/batch")
    add("no scope claim", good(scope=None), 403)
    add("empty scope", good(scope=""), 403)
    add("scope events:writes", good(scope="events:writes"), 403)
    add("scope xevents:write", good(scope="xevents:write"), 403)
    add("scope events:write-admin", good(scope="events:write-admin"), 403)
    add("scope EVENTS:WRITE", good(scope="EVENTS:WRITE"), 403)

    # -- alg
    for alg in ("none", "None", "NONE", "nOnE"):
        add("alg %s, empty signature" % alg, forge(hd(alg=alg), cl(), None))
    add("alg none, no kid", forge({"alg": "none", "typ": "at+jwt"}, cl(), None))
    add("alg none, signature kept", forge(hd(alg="none"), cl(), real))
    add("alg missing", forge(hd(alg=None), cl(), real))
    add("alg empty", forge(hd(alg=""), cl(), real))
    add("alg null", forge({"alg": None, "typ": "at+jwt", "kid": kid}, cl(), real))
    add("alg array", forge(hd(alg=["EdDSA"]), cl(), real))
    for alg in ("EDDSA", "eddsa", "Ed25519", "ED25519", "EdDSA "):
        add("alg %r, real key" % alg, forge(hd(alg=alg), cl(), real))
    # HS256 with the public key as the HMAC secret (the classic confusion)
    for label, key in (("raw public key", pub_raw), ("public key PEM", pub_pem),
                       ("public key DER", pub_der), ("JWKS x", b64url_encode(pub_raw).encode())):
        add("HS256 keyed with the %s" % label, forge(hd(alg="HS256"), cl(), hmac_signer(key)))
    add("HS384 keyed with the raw public key",
        forge(hd(alg="HS384"), cl(), hmac_signer(pub_raw, hashes.SHA384)))
    add("HS512 keyed with the public key PEM",
        forge(hd(alg="HS512"), cl(), hmac_signer(pub_pem, hashes.SHA512)))
    add("HS256 keyed with the empty string", forge(hd(alg="HS256"), cl(), hmac_signer(b"")))
    # other asymmetric algorithms, fresh keys
    add("ES256, fresh key, kid of the real key", forge(hd(alg="ES256"), cl(),
                                                       es256_signer(atk_ec)))
    add("ES256, fresh key, unknown kid", forge(hd(alg="ES256", kid="es-" + eotest.rand_hex()),
                                              cl(), es256_signer(atk_ec)))
    add("RS256, fresh key, kid of the real key", forge(hd(alg="RS256"), cl(),
                                                       rs256_signer(atk_rsa)))
    add("RS256, fresh key, unknown kid", forge(hd(alg="RS256", kid="rs-" + eotest.rand_hex()),
                                              cl(), rs256_signer(atk_rsa)))
    add("PS256, fresh key, kid of the real key", forge(hd(alg="PS256"), cl(),
                                                       rs256_signer(atk_rsa, pss=True)))
    add("EdDSA, fresh key, kid of the real key", forge(H, cl(), atk_ed.sign))
    add("EdDSA, fresh key, its jwk embedded, kid of the real key",
        forge(hd(jwk=atk_jwk), cl(), atk_ed.sign))
    add("EdDSA, fresh key, its jwk embedded, kid attacker",
        forge(hd(jwk=atk_jwk, kid="attacker"), cl(), atk_ed.sign))
    add("EdDSA, fresh key, jku to the attacker's JWKS",
        forge(hd(jku=jku.url("/jwks.json"), kid="attacker"), cl(), atk_ed.sign))
    add("EdDSA, fresh key, x5u to the attacker",
        forge(hd(x5u=jku.url("/x5u.pem"), kid="attacker"), cl(), atk_ed.sign))

    # -- kid (all signed with the real key: only the kid is wrong)
    kid_dir = os.path.basename(sb.key_dir)
    for label, k in (("unknown", "nope-" + eotest.rand_hex()),
                     ("path traversal ../../etc/passwd", "../../etc/passwd"),
                     ("path traversal to the real key file", "../%s/%s" % (kid_dir, kid)),
                     ("./kid", "./" + kid),
                     ("kid.pem", kid + ".pem"),
                     ("absolute path of the key file", os.path.join(sb.key_dir, kid)),
                     ("absolute path of the key file with .pem", sb.key_path(kid)),
                     ("kid with a NUL and more", kid + "\u0000x"),
                     ("kid with a trailing space", kid + " "),
                     ("kid with a trailing newline", kid + "\n"),
                     ("kid upper-cased", kid.upper() if kid.upper() != kid else kid + "A"),
                     ("SQL ' OR 1=1 --", "' OR 1=1 --"),
                     ("SQL '; DROP TABLE events; --", "'; DROP TABLE events; --"),
                     ("empty", ""),
                     ("1000 characters", "k" * 1000)):
        add("kid %s" % label, forge(hd(kid=k), cl(), real))
    add("kid missing", forge(hd(kid=None), cl(), real))
    for label, k in (("a number", 1), ("null", None), ("an array", [kid]),
                     ("an object", {"kid": kid}), ("true", True)):
        add("kid %s" % label,
            forge(b'{"alg":"EdDSA","typ":"at+jwt","kid":' + json.dumps(k).encode() + b"}",
                  cl(), real))

    # -- typ / crit
    add("typ foo", forge(hd(typ="foo"), cl(), real))
    add("typ a number", forge(hd(typ=1), cl(), real))
    add("crit [exp]", forge(hd(crit=["exp"]), cl(), real))
    add("crit empty array", forge(hd(crit=[]), cl(), real))
    add("crit with an unknown extension", forge(hd(crit=["x-ext"], **{"x-ext": 1}), cl(), real))

    # -- tampering (signature of the original kept)
    base = good()
    bh, bp, bs = eotest.jwt_parts(base)
    add("tampered header (member added)", b64url_encode(json.dumps(hd(x=1))) + "." + bp + "." + bs)
    add("tampered header (typ removed)", b64url_encode(json.dumps(hd(typ=None))) + "." + bp + "."
        + bs)
    orig_claims = json.loads(eotest.b64url_decode(bp))
    for label, change in (("tenant changed to B", {"tenant": tb["tenantId"]}),
                          ("scope widened", {"scope": "events:write events:read"}),
                          ("sub changed to B's client", {"sub": cb["clientId"]}),
                          ("exp extended", {"exp": orig_claims["exp"] + 86400})):
        c2 = dict(orig_claims, **change)
        add("tampered payload (%s)" % label,
            bh + "." + b64url_encode(json.dumps(c2, separators=(",", ":"))) + "." + bs)
    add("tampered payload (same JSON, other whitespace)",
        bh + "." + b64url_encode(json.dumps(orig_claims, indent=1)) + "." + bs)
    add("payload of B's real token with A's signature",
        bh + "." + eotest.jwt_parts(ctx["tok_b"])[1] + "." + bs)
    add("signature of another valid token", bh + "." + bp + "." +
        eotest.jwt_parts(good())[2])
    for label, sig in (("first bit flipped", flip_bit(bs, 0)),
                       ("last byte flipped", flip_bit(bs, 63, 7)),
                       ("middle bit flipped", flip_bit(bs, 31, 3)),
                       ("truncated by one byte", b64url_encode(eotest.b64url_decode(bs)[:63])),
                       ("truncated by 4 characters", bs[:-4]),
                       ("empty", ""),
                       ("64 zero bytes", b64url_encode(bytes(64))),
                       ("one byte appended", b64url_encode(eotest.b64url_decode(bs) + b"\0")),
                       ("doubled", b64url_encode(eotest.b64url_decode(bs) * 2))):
        add("tampered signature (%s)" % label, bh + "." + bp + "." + sig)
    # non-canonical last character: the 4 unused low bits set, same bytes when decoded leniently
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(bs[-1])
    add("signature with non-zero unused bits in its last character (strict base64url)",
        bh + "." + bp + "." + bs[:-1] + alphabet[last | 0x0F])

    # -- claims (all signed with the real key)
    add("exp missing", good(exp=None))
    add("exp a string", good(exp=str(now + 300)))
    add("exp null", forge(H, json.dumps(cl(exp=None))[:-1] + ',"exp":null}', real))
    add("exp true", good(exp=True))
    add("expired beyond the leeway", good(iat=now - 600, nbf=now - 600, exp=now - 2 * LEEWAY))
    add("expired long ago", good(iat=1000000000, nbf=1000000000, exp=1000000900))
    add("nbf in the future beyond the leeway", good(nbf=now + 4 * LEEWAY))
    add("nbf a string", good(nbf=str(now)))
    add("iat in the future beyond the leeway", good(iat=now + 4 * LEEWAY, nbf=now))
    add("iat missing", good(iat=None))
    add("iat a string", good(iat=str(now)))
    add("iss wrong", good(iss="https://evil.example"))
    add("iss missing", good(iss=None))
    add("iss with a trailing space", good(iss=sb.claims(ca)["iss"] + " "))
    add("iss as an array", good(iss=[sb.claims(ca)["iss"]]))
    add("aud wrong", good(aud="someone-else"))
    add("aud missing", good(aud=None))
    add("aud an array without ours", good(aud=["a", "b"]))
    add("aud an empty array", good(aud=[]))
    add("aud a number", good(aud=1))
    add("tenant missing", good(tenant=None))
    add("tenant not a uuid", good(tenant="not-a-uuid"))
    add("tenant empty", good(tenant=""))
    add("tenant a number", good(tenant=12345))
    add("tenant null", forge(H, json.dumps(cl(tenant=None))[:-1] + ',"tenant":null}', real))
    add("tenant uuid with SQL appended", good(tenant=ta["tenantId"] + "' OR '1'='1"))
    add("sub missing", good(sub=None))
    add("sub empty", good(sub=""))
    add("sub a number", good(sub=7))
    add("sub an unknown client", good(sub="cl_" + eotest.rand_hex(20)))

    # -- size: a token just over the maximum is refused, one at most the maximum passes
    def padded(n):
        return good(pad="p" * n)
    n = 0
    while len(padded(n + 1)) <= MAX_TOKEN:
        n += max(1, (MAX_TOKEN - len(padded(n + 1))) // 2)
    at_max = padded(n)
    while len(at_max) > MAX_TOKEN:
        n -= 1
        at_max = padded(n)
    over = padded(n + 3)
    assert len(at_max) <= MAX_TOKEN < len(over) <= MAX_TOKEN + 8, (len(at_max), len(over))
    add("control: token of %d bytes (max %d)" % (len(at_max), MAX_TOKEN), at_max, 202)
    add("oversized: %d bytes (max %d)" % (len(over), MAX_TOKEN), over)
    big = padded(MAX_TOKEN * 3)
    add("oversized: %d bytes (max %d, header limit 16384)" % (len(big), MAX_TOKEN), big)

    # -- bad base64url
    def with_char(part_index, chars):
        """A valid token whose given segment contains one of chars (re-signed until it does)."""
        for _ in range(2000):
            t = good(jti=eotest.rand_hex(16), x="~~~???>>>")  # these bytes encode to - and _
            parts = eotest.jwt_parts(t)
            if any(c in parts[part_index] for c in chars):
                return parts
        raise RuntimeError("no segment with %r" % chars)
    p = with_char(2, "-_")
    add("'+' and '/' in the signature (base64 instead of base64url)",
        ".".join(p[:2] + (p[2].replace("-", "+").replace("_", "/"),)))
    p = with_char(1, "-_")
    add("'+' and '/' in the payload",
        ".".join((p[0], p[1].replace("-", "+").replace("_", "/"), p[2])))
    add("padding on the header", bh + "=" * (-len(bh) % 4 or 4) + "." + bp + "." + bs)
    add("padding on the payload", bh + "." + bp + "=" * (-len(bp) % 4 or 4) + "." + bs)
    add("padding on the signature (standard '==')", bh + "." + bp + "." + bs + "==")
    add("'*' in the payload", bh + "." + bp[:10] + "*" + bp[11:] + "." + bs)
    add("'!' in the signature", bh + "." + bp + "." + "!" + bs[1:])
    add("a space inside the payload", bh + "." + bp[:10] + " " + bp[10:] + "." + bs)
    add("'%' escape in the header", bh[:5] + "%41" + bh[5:] + "." + bp + "." + bs)
    add("non-ASCII byte in the payload",
        (bh + "." + bp[:10]).encode() + b"\xc3\xa9" + (bp[10:] + "." + bs).encode())
    add("header of impossible length (1 mod 4)", bh + "A" * ((1 - len(bh)) % 4 or 4) + "." + bp +
        "." + bs)
    add("empty header segment", "." + bp + "." + bs)
    add("empty payload segment", bh + ".." + bs)
    add("empty token parts (..)", "..")

    # -- dots (0, 1, 3, 4): not a JWT; a write-key error code is acceptable
    dots = ("invalid_token", "invalid_write_key")
    add("0 dots", bh + bp + bs, codes=dots)
    add("1 dot", bh + "." + bp + bs, codes=dots)
    add("3 dots (trailing)", base + ".", codes=dots)
    add("3 dots (leading)", "." + base, codes=dots)
    add("3 dots (extra segment)", base + "." + bs, codes=dots)
    add("4 dots (JWE shape)", ".".join([bh, bp, bs, bp, bs]), codes=dots)

    # -- a client id presented as a write key: clients and write keys share the collector's
    # credential table (clients under SHA-256 of "client:<id>"), so this must never match
    add("'client:<id>' as a bearer write key", "client:" + ctx["ca"]["clientId"],
        codes=("invalid_write_key",))
    add("'client:<id>' of a read-only client", "client:" + ctx["cro"]["clientId"],
        codes=("invalid_write_key",))
    add("bare client id as a bearer write key", ctx["ca"]["clientId"],
        codes=("invalid_write_key",))

    # -- JSON of header and payload
    ca_json = json.dumps(cl(), separators=(",", ":"))
    hj = json.dumps(H, separators=(",", ":"))
    add("duplicate alg in the header (EdDSA, then none)",
        forge(hj[:-1] + ',"alg":"none"}', cl(), real))
    add("duplicate alg in the header (none, then EdDSA)",
        forge('{"alg":"none",' + hj[1:], cl(), real))
    add("duplicate kid in the header", forge(hj[:-1] + ',"kid":"%s"}' % kid, cl(), real))
    add("duplicate key in the header via an escape (\\u0061lg)",
        forge(hj[:-1] + ',"\\u0061lg":"none"}', cl(), real))
    add("duplicate tenant in the payload (A, then B)",
        forge(H, ca_json[:-1] + ',"tenant":"%s"}' % tb["tenantId"], real))
    add("duplicate tenant in the payload (B, then A)",
        forge(H, '{"tenant":"%s",' % tb["tenantId"] + ca_json[1:], real))
    add("duplicate tenant in the payload (A twice)",
        forge(H, ca_json[:-1] + ',"tenant":"%s"}' % ta["tenantId"], real))
    add("duplicate exp in the payload (valid, then expired)",
        forge(H, ca_json[:-1] + ',"exp":%d}' % (now - 3600), real))
    add("duplicate exp in the payload (expired, then valid)",
        forge(H, '{"exp":%d,' % (now - 3600) + ca_json[1:], real))
    add("duplicate key in the payload via an escape (ten\\u0061nt)",
        forge(H, ca_json[:-1] + ',"ten\\u0061nt":"%s"}' % tb["tenantId"], real))
    add("duplicate scope in the payload", forge(H, ca_json[:-1] + ',"scope":"events:write"}',
                                                real))
    for label, doc in (("an array", "[]"), ("a string", '"x"'), ("a number", "1"),
                       ("null", "null"), ("true", "true"), ("invalid JSON", "{"),
                       ("trailing garbage", hj + "x"), ("two objects", hj + "{}"),
                       ("empty", ""), ("a BOM first", "\ufeff" + hj),
                       ("single quotes", hj.replace('"', "'"))):
        add("header is %s" % label, forge(raw_json(doc), cl(), real))
    for label, doc in (("an array", "[" + ca_json + "]"), ("a string", json.dumps(ca_json)),
                       ("a number", "1"), ("null", "null"), ("invalid JSON", ca_json[:-1]),
                       ("trailing garbage", ca_json + "x"), ("two objects", ca_json + "{}"),
                       ("empty", ""), ("a BOM first", "\ufeff" + ca_json),
                       ("600 nested arrays", "[" * 600 + "]" * 600),
                       ("invalid UTF-8 in a string",
                        ca_json[:-1].encode() + b',"x":"\xff\xfe"}'),
                       ("a NaN", ca_json[:-1] + ',"x":NaN}')):
        add("payload is %s" % label, forge(H, raw_json(doc), real))

    # -- a few on the batch endpoint
    add("batch: alg none", forge(hd(alg="none"), cl(), None), path="/events/batch")
    add("batch: tampered payload (tenant B)",
        bh + "." + b64url_encode(json.dumps(dict(orig_claims, tenant=tb["tenantId"]))) + "." +
        bs, path="/events/batch")
    add("batch: HS256 with the public key", forge(hd(alg="HS256"), cl(), hmac_signer(pub_raw)),
        path="/events/batch")
    return cases


def send(sb, path, token, mid, extra_headers=None, body_extra=None):
    tok = token.encode("latin-1", "strict") if isinstance(token, str) and \
        all(ord(c) < 256 for c in token) else token
    if isinstance(tok, str):
        tok = tok.encode("utf-8")
    h = {"Content-Type": "application/json", "Authorization": b"Bearer " + tok}
    h.update(extra_headers or {})
    ev = event(mid, **(body_extra or {}))
    body = [ev] if path.endswith("/batch") else ev
    return eotest.http_request("POST", sb.url(path), json.dumps(body).encode(), h, timeout=30)


def main():
    with eotest.Sandbox("auth-hostile", extra_env=ENV) as sb:
        f = sb.failures
        ctx = {}
        ctx["kid"] = sb.create_signing_key()["kid"]
        ta = ctx["ta"] = sb.create_tenant("hostile-a-" + eotest.rand_hex(6))
        tb = ctx["tb"] = sb.create_tenant("hostile-b-" + eotest.rand_hex(6))
        ca = ctx["ca"] = sb.create_client(ta["tenantId"], ["events:write"])
        ctx["cro"] = sb.create_client(ta["tenantId"], ["events:read"])
        cb = ctx["cb"] = sb.create_client(tb["tenantId"], ["events:write"])
        crev = sb.create_client(ta["tenantId"], ["events:write"])
        auth, coll, proc = sb.auth(), sb.collector(), sb.processor()
        for r in (auth, coll, proc):
            r.start()
        for r in (auth, coll, proc):
            r.wait_ready()
        ctx["tok_a"] = sb.token(ca["clientId"], ca["clientSecret"])
        ctx["tok_ro"] = sb.token(ctx["cro"]["clientId"], ctx["cro"]["clientSecret"])
        ctx["tok_b"] = sb.token(cb["clientId"], cb["clientSecret"])
        tok_rev = sb.token(crev["clientId"], crev["clientSecret"])

        cases = build_cases(sb, ctx)
        accepted, refused = [], []
        counts = {202: 0, 401: 0, 403: 0}
        for i, (name, tok, status, codes, path) in enumerate(cases):
            mid = "hostile-%03d-%s" % (i, eotest.rand_hex(8))
            try:
                resp = send(sb, path, tok, mid)
            except eotest.HttpError as e:
                f.fail("%s: no answer: %s" % (name, e))
                if not coll.running():
                    f.fail("the collector died on case %r (exit %s)" %
                           (name, coll.proc.returncode))
                    break
                continue
            counts[resp[0]] = counts.get(resp[0], 0) + 1
            if status == 202:
                if f.check(resp[0] == 202, "%s: %s %r, expected 202" % (name, resp[0], resp[2])):
                    accepted.append(mid)
                    for hname in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
                        f.check(hname in resp[1], "%s: 202 without %s" % (name, hname))
                continue
            refused.append(mid)
            eotest.check_bearer_error(f, name, resp, status=status,
                                      codes=codes or ("invalid_token" if status == 401
                                                      else "insufficient_scope",))
            if not coll.running():
                f.fail("the collector died on case %r (exit %s)" % (name, coll.proc.returncode))
                break
        log("%d cases: %s" % (len(cases), counts))

        # A revoked client's token that has not expired yet: refused once the cache reloads.
        mid = "hostile-rev-ok-" + eotest.rand_hex(8)
        r = send(sb, "/events", tok_rev, mid)
        if f.check(r[0] == 202, "revoked client: its token was refused before the revocation: "
                   "%s %r" % (r[0], r[2])):
            accepted.append(mid)
        sb.revoke_client(crev["clientId"])
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < 10:
            mid = "hostile-rev-%s" % eotest.rand_hex(8)
            last = send(sb, "/events", tok_rev, mid)
            if last[0] == 202:
                accepted.append(mid)
                time.sleep(0.1)
                continue
            refused.append(mid)
            break
        if f.check(last is not None and last[0] == 401,
                   "revoked client: its token still gets %s 10 s after revoke-client "
                   "(EVENTOPS_WRITE_KEY_REFRESH_MS=200)" % (last[0] if last else None)):
            eotest.check_bearer_error(f, "revoked client's token", last)
            log("revoked client's token refused %.1f s after revoke-client" %
                (time.monotonic() - t0))
            for _ in range(3):
                mid = "hostile-rev-%s" % eotest.rand_hex(8)
                refused.append(mid)
                r = send(sb, "/events", tok_rev, mid)
                f.check(r[0] == 401, "revoked client's token accepted again: %s" % r[0])
            mid = "hostile-rev-forged-%s" % eotest.rand_hex(8)
            refused.append(mid)
            r = send(sb, "/events", forge({"alg": "EdDSA", "typ": "at+jwt", "kid": ctx["kid"]},
                                          sb.claims(crev), eotest.eddsa_signer(
                                              sb.key_path(ctx["kid"]))), mid)
            eotest.check_bearer_error(f, "fresh token forged for the revoked client", r)

        # B's real token naming A in the body and in X-Tenant-Id: stored under B only.
        b_mids = []
        for path in ("/events", "/events/batch"):
            mid = "hostile-b-%s" % eotest.rand_hex(8)
            r = send(sb, path, ctx["tok_b"], mid, extra_headers={"X-Tenant-Id": ta["tenantId"]},
                     body_extra={"tenantId": ta["tenantId"],
                                 "context": {"tenantId": ta["tenantId"]}})
            if f.check(r[0] == 202, "B's token on %s: %s %r" % (path, r[0], r[2])):
                b_mids.append(mid)

        stored = sb.wait_stored(accepted + b_mids, timeout=60)
        for m in accepted:
            f.check(stored.get(m) == [ta["tenantId"]], "accepted event %s stored under %r, "
                    "expected [A %s]" % (m, stored.get(m), ta["tenantId"]))
        for m in b_mids:
            f.check(stored.get(m) == [tb["tenantId"]], "B's event %s (naming A) stored under %r,"
                    " expected [B %s]" % (m, stored.get(m), tb["tenantId"]))
        time.sleep(1.0)
        leaked = sb.stored_tenants(refused)
        f.check(not leaked, "%d refused events were stored: %r" % (len(leaked),
                                                                  dict(list(leaked.items())[:5])))
        f.check(not ctx["jku"].hits, "the collector fetched the attacker's jku/x5u URL: %r" %
                ctx["jku"].hits)
        ctx["jku"].close()
        f.check(int(sb.scalar("SELECT count(*) FROM information_schema.tables WHERE "
                              "table_name = 'events'")) == 1, "the events table is gone")

        for r in (auth, coll, proc):
            f.check(r.running(), "%s is not running at the end (exit %s)" %
                    (r.name, r.proc.returncode if r.proc else None))
        if coll.running():
            rc = coll.stop(timeout=30)
            f.check(rc == 0, "the collector exited %s on SIGTERM, expected 0" % rc)
        for r in (auth, proc):
            r.stop(timeout=30)
        sb.check_clean_end()
        return sb.report("hostile-token matrix: %d cases + revocation + cross-tenant" %
                         len(cases))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
