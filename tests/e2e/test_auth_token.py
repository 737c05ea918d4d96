#!/usr/bin/env python3
"""End-to-end: the auth role's token endpoint (OAuth 2.0 client credentials) and its JWKS.

Issue 3 requirements checked (the interface is the one in docs/security.md / the issue's spec):
  "POST /oauth/token with grant_type=client_credentials (form body), client id and secret by
   HTTP Basic or in the form, optional scope. Answer {access_token, token_type: Bearer,
   expires_in, scope}. Errors exactly as RFC 6749 section 5.2 (invalid_client with 401 and
   WWW-Authenticate, invalid_request, unsupported_grant_type, invalid_scope)."
  "Access tokens are JWTs signed with an asymmetric algorithm, with a kid, and claims iss, aud,
   sub (client id), tenant, scope, iat, nbf, exp (short lifetime, configurable). Public keys at
   GET /.well-known/jwks.json. Private keys live in files created by
   `eventops admin create-signing-key`."
  "create-client prints client id and secret once; revoke-client, list-clients. Secrets stored
   as argon2id (at least OWASP's minimum parameters)."
  "The token endpoint is limited too (per client id and per source address)."
  Tests: "Token endpoint: every RFC 6749 error case; revoked client; wrong secret; rate limited."

What it does, on one sandbox (database, topics, ports, key folder of its own):
  1. Two signing keys (files `<kid>.pem`, mode 0600, Ed25519 PKCS#8; the newer is current),
     tenants and clients (read+write, write-only, read-only, revoked); admin output checks;
     the database holds no plaintext secret and the hash is argon2id with OWASP parameters.
  2. auth + collector + processor. A table of token requests: every 5.2 error (status, error
     code, JSON shape, Cache-Control: no-store, WWW-Authenticate: Basic realm="eventops" on
     401) and the accepted variants (form credentials, charset, subset scope, empty scope).
     GET /oauth/token is 405.
  3. The success answer (token_type, expires_in == EVENTOPS_AUTH_TOKEN_TTL_S, scope,
     Cache-Control/Pragma) and the JWT (header alg/typ/kid = current key; iss, aud, sub,
     tenant, scope, iat, nbf, exp, jti). The JWKS lists exactly the key files, with their
     public halves and no private part; the token's signature verifies with the JWKS key.
  4. Tokens at the collector: 202, events stored under the client's tenant; a token without
     events:write gets 403.
  5. Rate limiting, on two extra auth roles with small limits: per client id (burst passes,
     then 429 with Retry-After / RateLimit-*; wrong secrets count; another client unaffected)
     and per source address (checked first; X-Forwarded-For is not trusted; another source
     address has its own budget).
  6. Every role is still running, exits 0 on SIGTERM, and no log has a sanitizer report.

Readings chosen where the spec leaves room (the stricter one, as asked): a form body must have
Content-Type application/x-www-form-urlencoded (a missing Content-Type is refused; a charset
parameter is accepted); an empty parameter counts as omitted (RFC 6749 section 3.1: empty
grant_type -> invalid_request, empty scope -> all scopes); grant_type values are case-sensitive;
405 carries Allow (RFC 9110 section 15.5.6); X-Forwarded-For does not change the source address.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import json
import os
import random
import re
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

TTL = 600
ISSUER = "https://auth.e2e.example/" + eotest.rand_hex(4)
AUDIENCE = "eventops-e2e-" + eotest.rand_hex(4)
FORM = "application/x-www-form-urlencoded"
GT = ("grant_type", "client_credentials")
ALL_SCOPES = {"events:write", "events:read"}

ENV = {
    "EVENTOPS_AUTH_TOKEN_TTL_S": str(TTL),
    "EVENTOPS_AUTH_ISSUER": ISSUER,
    "EVENTOPS_AUTH_AUDIENCE": AUDIENCE,
    "EVENTOPS_AUTH_LEEWAY_S": "30",
    # The main auth role must not limit the error table below; the limits get their own roles.
    "EVENTOPS_AUTH_CLIENT_RATE": "1000",
    "EVENTOPS_AUTH_CLIENT_BURST": "1000",
    "EVENTOPS_AUTH_IP_RATE": "1000",
    "EVENTOPS_AUTH_IP_BURST": "1000",
    "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
    "EVENTOPS_AUTH_KEYS_REFRESH_MS": "500",
}

# OWASP password storage cheat sheet, argon2id minimums: (memory KiB, iterations), p = 1.
OWASP_ARGON2ID = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]


def oauth(sb, body, auth=None, content_type=FORM, headers=None, method="POST", url=None,
          source=None):
    """One request to the token endpoint with every byte chosen by the caller.
    body: list of (name, value) pairs (form-encoded) or raw bytes."""
    if isinstance(body, list):
        body = eotest.form_encode(body)
    h = {}
    if content_type is not None:
        h["Content-Type"] = content_type
    if auth is not None:
        h["Authorization"] = auth
    h.update(headers or {})
    return eotest.http_request(method, url or sb.auth_url("/oauth/token"), body, h,
                               timeout=30, source=source)


def check_oauth_error(f, name, resp, status, codes):
    """RFC 6749 section 5.2 error answer: status, {"error": code, "error_description": str},
    Cache-Control: no-store, and for 401 WWW-Authenticate: Basic realm="eventops"."""
    st, h, body = resp
    if isinstance(codes, str):
        codes = (codes,)
    statuses = status if isinstance(status, tuple) else (status,)
    if not f.check(st in statuses, "%s: status %s, expected %s (body %.300r)" %
                   (name, st, "/".join(map(str, statuses)), body)):
        return
    if not isinstance(body, dict):
        f.fail("%s: body is not a JSON object: %r" % (name, body))
        return
    f.check(body.get("error") in codes, "%s: error %r, expected %s" %
            (name, body.get("error"), "/".join(codes)))
    f.check(isinstance(body.get("error_description"), str) and
            bool(body["error_description"]),
            "%s: error_description missing or not a non-empty string: %r" % (name, body))
    f.check(set(body) <= {"error", "error_description", "error_uri"},
            "%s: unexpected members in the error body: %r" % (name, sorted(body)))
    f.check("access_token" not in body, "%s: an error answer holds a token" % name)
    f.check("no-store" in h.get("cache-control", ""),
            "%s: Cache-Control %r, expected no-store" % (name, h.get("cache-control")))
    f.check(h.get("content-type", "").startswith("application/json"),
            "%s: Content-Type %r" % (name, h.get("content-type")))
    if st == 401:
        www = h.get("www-authenticate", "")
        f.check(re.match(r'^Basic realm="eventops"(\s*,.*)?$', www) is not None,
                '%s: WWW-Authenticate %r, expected Basic realm="eventops"' % (name, www))


def check_token_ok(f, name, resp, scopes):
    """200 with the token answer; returns the access token (or None)."""
    st, h, body = resp
    if not f.check(st == 200 and isinstance(body, dict),
                   "%s: status %s body %r, expected 200 with a token" % (name, st, body)):
        return None
    f.check(set(body) == {"access_token", "token_type", "expires_in", "scope"},
            "%s: members %s, expected access_token, token_type, expires_in, scope" %
            (name, sorted(body)))
    f.check(body.get("token_type") == "Bearer", "%s: token_type %r" %
            (name, body.get("token_type")))
    f.check(body.get("expires_in") == TTL and type(body.get("expires_in")) is int,
            "%s: expires_in %r, expected %d (EVENTOPS_AUTH_TOKEN_TTL_S)" %
            (name, body.get("expires_in"), TTL))
    got = body.get("scope")
    f.check(isinstance(got, str) and sorted(got.split(" ")) == sorted(scopes),
            "%s: scope %r, expected %r" % (name, got, " ".join(sorted(scopes))))
    f.check("no-store" in h.get("cache-control", ""),
            "%s: Cache-Control %r, expected no-store" % (name, h.get("cache-control")))
    f.check("no-cache" in h.get("pragma", ""),
            "%s: Pragma %r, expected no-cache" % (name, h.get("pragma")))
    f.check(h.get("content-type", "").startswith("application/json"),
            "%s: Content-Type %r" % (name, h.get("content-type")))
    tok = body.get("access_token")
    if not f.check(isinstance(tok, str) and tok.count(".") == 2,
                   "%s: access_token is not a compact JWS: %r" % (name, tok)):
        return None
    try:
        _, claims = eotest.decode_jwt(tok)
        f.check(sorted(str(claims.get("scope", "")).split(" ")) == sorted(scopes),
                "%s: the token's scope claim %r, expected %r" % (name, claims.get("scope"),
                                                                 " ".join(sorted(scopes))))
    except ValueError as e:
        f.fail("%s: the token does not decode: %s" % (name, e))
    return tok


def event(mid, **extra):
    e = {"eventType": "auth_token_e2e", "userId": "u-" + mid[-6:], "messageId": mid}
    e.update(extra)
    return e


# ---------------------------------------------------------------------------------------------


def part_keys_and_admin(sb, f, st):
    """Signing keys, clients, admin output, secret storage."""
    k1 = sb.create_signing_key()
    time.sleep(1.1)  # kids sort by creation time; make sure the second one is later
    k2 = sb.create_signing_key()
    for k in (k1, k2):
        f.check(set(k) >= {"kid", "path", "algorithm"} and k.get("algorithm") == "EdDSA",
                "create-signing-key --json printed %r" % k)
        f.check(re.fullmatch(r"[A-Za-z0-9_-]+", k.get("kid", "")) is not None,
                "kid %r is not a plain file-name token" % k.get("kid"))
        want = sb.key_path(k["kid"])
        f.check(os.path.realpath(k.get("path", "")) == os.path.realpath(want),
                "create-signing-key path %r, expected %r" % (k.get("path"), want))
        if f.check(os.path.exists(want), "key file %s missing" % want):
            mode = stat.S_IMODE(os.stat(want).st_mode)
            f.check(mode == 0o600, "key file %s has mode %o, expected 600" % (want, mode))
            with open(want, "rb") as fh:
                pem = fh.read()
            f.check(pem.startswith(b"-----BEGIN PRIVATE KEY-----"),
                    "key file %s is not PKCS#8 PEM: %r" % (want, pem[:40]))
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            f.check(isinstance(eotest.load_private_key(want), Ed25519PrivateKey),
                    "key file %s does not hold an Ed25519 key" % want)
    f.check(k1["kid"] < k2["kid"], "kids do not sort by creation time: %r then %r" %
            (k1["kid"], k2["kid"]))
    listed = sb.list_signing_keys()
    cur = sorted(x.get("kid") for x in listed if x.get("current") is True)
    f.check(sorted(x.get("kid") for x in listed) == sorted([k1["kid"], k2["kid"]]) and
            cur == [k2["kid"]],
            "list-signing-keys %r: expected both kids, the newer one current" % listed)
    st["kids"] = [k1["kid"], k2["kid"]]

    ta = sb.create_tenant("tok-a-" + eotest.rand_hex(6))
    tb = sb.create_tenant("tok-b-" + eotest.rand_hex(6))
    st["ta"], st["tb"] = ta, tb
    # by tenant name and by id
    rw = sb.create_client(ta["name"], ["events:write", "events:read"], name="rw")
    wo = sb.create_client(ta["tenantId"], ["events:write"], name="write-only")
    ro = sb.create_client(ta["tenantId"], "events:read", name="read-only")
    rv = sb.create_client(ta["tenantId"], ["events:write"], name="revoked")
    for c, scopes in ((rw, ALL_SCOPES), (wo, {"events:write"}), (ro, {"events:read"})):
        f.check(str(c.get("clientId", "")).startswith("cl_") and c.get("clientSecret") and
                c.get("tenantId") == ta["tenantId"] and set(c.get("scopes") or []) == scopes,
                "create-client --json printed %r" % {k: v for k, v in c.items()
                                                     if k != "clientSecret"})
    f.check(len({rw["clientSecret"], wo["clientSecret"], ro["clientSecret"]}) == 3,
            "two clients got the same secret")
    f.check(len(rw["clientSecret"]) >= 22, "client secret is short (%d characters)" %
            len(rw["clientSecret"]))
    res = sb.revoke_client(rv["clientId"])
    f.check(res.get("clientId") == rv["clientId"] and res.get("revoked") is True,
            "revoke-client --json printed %r" % res)
    st.update(rw=rw, wo=wo, ro=ro, rv=rv)

    p = sb.run_bin("admin", "create-client", "--tenant", ta["tenantId"], "--scopes",
                   "events:write,admin", "--json", check=False)
    f.check(p.returncode == 2 and (p.stderr.strip() or p.stdout.strip()),
            "create-client with an unknown scope: exit %d (expected 2 with a message)" %
            p.returncode)
    p = sb.run_bin("admin", "create-client", "--tenant", "no-such-tenant-" + eotest.rand_hex(),
                   "--scopes", "events:write", "--json", check=False)
    f.check(p.returncode != 0, "create-client for an unknown tenant succeeded: %s" % p.stdout)

    clients = {c.get("clientId"): c for c in sb.list_clients()}
    for c in (rw, wo, ro, rv):
        got = clients.get(c["clientId"])
        if not f.check(got is not None, "list-clients lacks %s" % c["clientId"]):
            continue
        f.check(set(got) >= {"clientId", "tenantId", "name", "scopes", "rateLimit", "burst",
                             "createdAt", "revokedAt"},
                "list-clients entry has members %s" % sorted(got))
        f.check("clientSecret" not in got and c["clientSecret"] not in json.dumps(got),
                "list-clients shows the secret of %s" % c["clientId"])
        f.check(got.get("rateLimit") is None and got.get("burst") is None,
                "list-clients: rateLimit/burst of %s are %r/%r, expected null (defaults)" %
                (c["clientId"], got.get("rateLimit"), got.get("burst")))
        f.check((got.get("revokedAt") is not None) == (c is rv),
                "list-clients: revokedAt of %s is %r" % (c["clientId"], got.get("revokedAt")))
    only_a = sb.list_clients(tenant=tb["tenantId"])
    f.check(only_a == [], "list-clients --tenant B shows A's clients: %r" % only_a)

    # The secret is not stored as such anywhere in the database; the hash is argon2id with at
    # least OWASP's minimum parameters.
    tables = [r[0] for r in sb.sql(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM "
        "information_schema.tables WHERE table_schema NOT IN ('pg_catalog', "
        "'information_schema') AND table_type = 'BASE TABLE'")]
    secret = rw["clientSecret"].replace("'", "''")
    for t in tables:
        n = int(sb.scalar("SELECT count(*) FROM %s x WHERE x::text LIKE '%%%s%%'" % (t, secret)))
        f.check(n == 0, "the client secret is stored in plaintext in table %s" % t)
    hashes = []
    for t in tables:
        hashes += [r[0] for r in sb.sql(
            "SELECT substring(x::text from "
            "'\\$argon2id\\$v=\\d+\\$m=\\d+,t=\\d+,p=\\d+') FROM %s x "
            "WHERE x::text LIKE '%%$argon2id$%%'" % t)]
    if f.check(hashes, "no argon2id hash ($argon2id$...) found in the database"):
        for hsh in hashes:
            m = re.search(r"m=(\d+),t=(\d+),p=(\d+)", hsh or "")
            if not f.check(m, "argon2id hash without parameters: %r" % hsh):
                continue
            mem, it = int(m.group(1)), int(m.group(2))
            f.check(any(mem >= m0 and it >= t0 for m0, t0 in OWASP_ARGON2ID),
                    "argon2id parameters m=%d,t=%d are below OWASP's minimums %r" %
                    (mem, it, OWASP_ARGON2ID))


def part_error_table(sb, f, st):
    rw, wo, rv = st["rw"], st["wo"], st["rv"]
    cid, sec = rw["clientId"], rw["clientSecret"]
    B = eotest.basic_auth(cid, sec)
    b64 = __import__("base64").b64encode
    cases = []

    def add(name, body, auth=None, ct=FORM, status=400, code=None):
        cases.append((name, body, auth, ct, status, code))

    # invalid_request
    add("grant_type missing", [("scope", "events:write")], B, code="invalid_request")
    add("empty body", b"", B, code="invalid_request")
    add("grant_type empty (omitted, RFC 6749 3.1)", [("grant_type", "")], B,
        code="invalid_request")
    add("grant_type repeated", [GT, GT], B, code="invalid_request")
    add("grant_type repeated, two values", [GT, ("grant_type", "password")], B,
        code="invalid_request")
    add("scope repeated", [GT, ("scope", "events:write"), ("scope", "events:read")], B,
        code="invalid_request")
    add("malformed percent escape", b"grant_type=client_credentials&scope=%ZZ", B,
        code="invalid_request")
    add("truncated percent escape", b"grant_type=client_credentials%2", B,
        code="invalid_request")
    add("JSON body", b'{"grant_type":"client_credentials"}', B, ct="application/json",
        code="invalid_request")
    add("form body, Content-Type application/json", [GT], B, ct="application/json",
        code="invalid_request")
    add("form body, Content-Type text/plain", [GT], B, ct="text/plain", code="invalid_request")
    add("form body, Content-Type multipart/form-data", [GT], B,
        ct="multipart/form-data; boundary=x", code="invalid_request")
    add("form body, no Content-Type", [GT], B, ct=None, code="invalid_request")
    add("Basic and form credentials at once", [GT, ("client_id", cid), ("client_secret", sec)],
        B, code="invalid_request")
    add("Basic and another client's id in the form", [GT, ("client_id", wo["clientId"])], B,
        code="invalid_request")
    add("Basic and the same client_id in the form (client_id without secret in the form)",
        [GT, ("client_id", cid)], B, code="invalid_request")
    add("client_id without client_secret in the form", [GT, ("client_id", cid)], None,
        code="invalid_request")
    add("client_id repeated in the form",
        [GT, ("client_id", cid), ("client_id", cid), ("client_secret", sec)], None,
        code="invalid_request")
    add("client_secret repeated in the form",
        [GT, ("client_id", cid), ("client_secret", sec), ("client_secret", sec)], None,
        code="invalid_request")
    # unsupported_grant_type (the client authenticates correctly)
    for gt in ("password", "authorization_code", "refresh_token", "implicit",
               "urn:ietf:params:oauth:grant-type:jwt-bearer", "CLIENT_CREDENTIALS",
               "client_credentials "):
        add("grant_type %r" % gt, [("grant_type", gt)] +
            ([("username", "u"), ("password", "p")] if gt == "password" else []),
            B, code="unsupported_grant_type")
    # invalid_scope
    Bwo = eotest.basic_auth(wo["clientId"], wo["clientSecret"])
    add("write-only client asks for events:read", [GT, ("scope", "events:read")], Bwo,
        code="invalid_scope")
    add("write-only client asks for both scopes", [GT, ("scope", "events:write events:read")],
        Bwo, code="invalid_scope")
    add("unknown scope", [GT, ("scope", "admin")], B, code="invalid_scope")
    add("a known and an unknown scope", [GT, ("scope", "events:write admin")], B,
        code="invalid_scope")
    add("wildcard scope", [GT, ("scope", "events:*")], B, code="invalid_scope")
    add("scope in upper case", [GT, ("scope", "EVENTS:WRITE")], B, code="invalid_scope")
    add("scope with a comma", [GT, ("scope", "events:write,events:read")], B,
        code="invalid_scope")
    # invalid_client: 401 + WWW-Authenticate
    add("no client authentication", [GT], None, status=401, code="invalid_client")
    add("unknown client (Basic)", [GT],
        eotest.basic_auth("cl_" + eotest.rand_hex(20), sec), status=401, code="invalid_client")
    add("wrong secret (Basic)", [GT], eotest.basic_auth(cid, sec + "x"), status=401,
        code="invalid_client")
    add("secret prefix (Basic)", [GT], eotest.basic_auth(cid, sec[:-1]), status=401,
        code="invalid_client")
    add("empty secret (Basic)", [GT], eotest.basic_auth(cid, ""), status=401,
        code="invalid_client")
    add("another client's secret", [GT], eotest.basic_auth(cid, wo["clientSecret"]),
        status=401, code="invalid_client")
    add("revoked client (Basic)", [GT], eotest.basic_auth(rv["clientId"], rv["clientSecret"]),
        status=401, code="invalid_client")
    add("revoked client (form)",
        [GT, ("client_id", rv["clientId"]), ("client_secret", rv["clientSecret"])], None,
        status=401, code="invalid_client")
    add("wrong secret (form)", [GT, ("client_id", cid), ("client_secret", sec + "x")], None,
        status=401, code="invalid_client")
    add("unknown client (form)",
        [GT, ("client_id", "cl_" + eotest.rand_hex(20)), ("client_secret", sec)], None,
        status=401, code="invalid_client")
    add("malformed Basic: not base64", [GT], "Basic !!!not-base64!!!", status=401,
        code="invalid_client")
    add("malformed Basic: no colon", [GT], "Basic " + b64(cid.encode()).decode(), status=401,
        code="invalid_client")
    add("malformed Basic: empty", [GT], "Basic ", status=401, code="invalid_client")
    add("malformed Basic: bad percent escape", [GT],
        "Basic " + b64(("%s:%%zz" % cid).encode()).decode(), status=401,
        code="invalid_client")
    add("Bearer instead of Basic", [GT], "Bearer " + sec, status=401, code="invalid_client")
    # client_secret alone in the form: no client id, either reading is an error
    add("client_secret without client_id in the form", [GT, ("client_secret", sec)], None,
        status=(400, 401), code=("invalid_request", "invalid_client"))

    for name, body, auth, ct, status, code in cases:
        try:
            resp = oauth(sb, body, auth=auth, content_type=ct)
        except eotest.HttpError as e:
            f.fail("%s: no answer: %s" % (name, e))
            continue
        check_oauth_error(f, "token endpoint, " + name, resp, status, code)
    log("token endpoint: %d error cases sent" % len(cases))

    # GET (and other methods) -> 405 with Allow
    for method in ("GET", "PUT", "DELETE"):
        st_, h, body = eotest.http_request(method, sb.auth_url("/oauth/token"),
                                           None if method != "PUT" else eotest.form_encode([GT]),
                                           {"Authorization": B}, timeout=10)
        f.check(st_ == 405, "%s /oauth/token: %s, expected 405" % (method, st_))
        f.check("POST" in h.get("allow", ""), "%s /oauth/token: Allow %r, expected POST" %
                (method, h.get("allow")))

    # Accepted variants
    ok = []
    ok.append(("Basic", oauth(sb, [GT], auth=B), ALL_SCOPES))
    # RFC 6749 2.3.1: the Basic user and password are form-urlencoded; every byte escaped
    enc = "".join("%%%02X" % b for b in sec.encode())
    ok.append(("Basic, secret fully percent-encoded (RFC 6749 2.3.1)",
               oauth(sb, [GT], auth="Basic " + b64(("%s:%s" % (cid, enc)).encode()).decode()),
               ALL_SCOPES))
    ok.append(("form credentials",
               oauth(sb, [GT, ("client_id", cid), ("client_secret", sec)]), ALL_SCOPES))
    ok.append(("form credentials, Content-Type with charset",
               oauth(sb, [GT, ("client_id", cid), ("client_secret", sec)],
                     content_type=FORM + "; charset=UTF-8"), ALL_SCOPES))
    ok.append(("subset scope events:write", oauth(sb, [GT, ("scope", "events:write")], auth=B),
               {"events:write"}))
    ok.append(("subset scope events:read", oauth(sb, [GT, ("scope", "events:read")], auth=B),
               {"events:read"}))
    ok.append(("both scopes in another order",
               oauth(sb, [GT, ("scope", "events:read events:write")], auth=B), ALL_SCOPES))
    ok.append(("empty scope (omitted, RFC 6749 3.1)", oauth(sb, [GT, ("scope", "")], auth=B),
               ALL_SCOPES))
    ok.append(("parameters in another order", oauth(sb, [("scope", "events:write"), GT],
                                                    auth=B), {"events:write"}))
    ok.append(("read-only client",
               oauth(sb, [GT], auth=eotest.basic_auth(st["ro"]["clientId"],
                                                      st["ro"]["clientSecret"])),
               {"events:read"}))
    ok.append(("write-only client", oauth(sb, [GT], auth=Bwo), {"events:write"}))
    for name, resp, scopes in ok:
        tok = check_token_ok(f, "token endpoint, " + name, resp, scopes)
        st.setdefault("tokens", {})[name] = tok


def part_jwt_and_jwks(sb, f, st):
    kids = st["kids"]
    rw, ta = st["rw"], st["ta"]
    t0 = time.time()
    resp = oauth(sb, [GT], auth=eotest.basic_auth(rw["clientId"], rw["clientSecret"]))
    t1 = time.time()
    tok = check_token_ok(f, "token for the JWT checks", resp, ALL_SCOPES)
    tok2 = st["tokens"].get("Basic")
    if not tok:
        return
    header, claims = eotest.decode_jwt(tok)
    f.check(header == {"alg": "EdDSA", "typ": "at+jwt", "kid": kids[1]},
            "JWT header %r, expected alg EdDSA, typ at+jwt, kid %s (the current key)" %
            (header, kids[1]))
    f.check(claims.get("iss") == ISSUER, "iss %r, expected %r" % (claims.get("iss"), ISSUER))
    aud = claims.get("aud")
    f.check(aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud),
            "aud %r, expected %r" % (aud, AUDIENCE))
    f.check(claims.get("sub") == rw["clientId"], "sub %r, expected the client id %r" %
            (claims.get("sub"), rw["clientId"]))
    f.check(claims.get("tenant") == ta["tenantId"], "tenant %r, expected %r" %
            (claims.get("tenant"), ta["tenantId"]))
    f.check(isinstance(claims.get("scope"), str) and
            sorted(claims["scope"].split(" ")) == sorted(ALL_SCOPES),
            "scope claim %r" % claims.get("scope"))
    for k in ("iat", "nbf", "exp"):
        f.check(type(claims.get(k)) in (int, float), "%s is not a number: %r" %
                (k, claims.get(k)))
    try:
        iat, nbf, exp = claims["iat"], claims["nbf"], claims["exp"]
        f.check(int(t0) - 2 <= iat <= t1 + 2, "iat %s is not the time of issue (%d..%d)" %
                (iat, t0, t1))
        f.check(iat - 60 <= nbf <= iat, "nbf %s is not at (or shortly before) iat %s" %
                (nbf, iat))
        f.check(exp - iat == TTL, "exp - iat = %s, expected the TTL %d" % (exp - iat, TTL))
    except (KeyError, TypeError):
        pass
    f.check(isinstance(claims.get("jti"), str) and len(claims["jti"]) >= 16,
            "jti %r is missing or short" % claims.get("jti"))
    if tok2:
        f.check(eotest.decode_jwt(tok2)[1].get("jti") != claims.get("jti"),
                "two tokens have the same jti")
    # The secret is nowhere in the token
    f.check(rw["clientSecret"] not in json.dumps(claims), "the token holds the client secret")

    # JWKS
    stj, h, jwks = eotest.http_get(sb.auth_url("/.well-known/jwks.json"))
    if not f.check(stj == 200 and isinstance(jwks, dict) and isinstance(jwks.get("keys"), list),
                   "GET /.well-known/jwks.json: %s %r" % (stj, jwks)):
        return
    f.check(re.search(r"(^|,)\s*max-age=60\s*(,|$)", h.get("cache-control", "")) is not None,
            "JWKS Cache-Control %r, expected max-age=60" % h.get("cache-control"))
    f.check(h.get("content-type", "").startswith(("application/json",
                                                  "application/jwk-set+json")),
            "JWKS Content-Type %r" % h.get("content-type"))
    by_kid = {}
    for k in jwks["keys"]:
        f.check(isinstance(k, dict) and set(k) == {"kty", "crv", "x", "kid", "alg", "use"},
                "JWKS key has members %s, expected exactly kty crv x kid alg use (no private "
                "part)" % (sorted(k) if isinstance(k, dict) else k))
        if not isinstance(k, dict):
            continue
        f.check("d" not in k, "the JWKS publishes a private key (member d)")
        f.check(k.get("kty") == "OKP" and k.get("crv") == "Ed25519" and
                k.get("alg") == "EdDSA" and k.get("use") == "sig",
                "JWKS key %r: expected kty OKP, crv Ed25519, alg EdDSA, use sig" % k)
        by_kid[k.get("kid")] = k
    files = sorted(n[:-4] for n in os.listdir(sb.key_dir) if n.endswith(".pem"))
    f.check(sorted(by_kid) == files == sorted(kids),
            "JWKS kids %s, key files %s, created %s: expected all equal" %
            (sorted(by_kid), files, sorted(kids)))
    for kid in kids:
        k = by_kid.get(kid)
        if not k:
            continue
        want = eotest.ed25519_public_raw(sb.key_path(kid))
        try:
            got = eotest.b64url_decode(k["x"])
        except ValueError:
            got = None
        f.check(got == want, "JWKS x of %s does not match the key file's public key" % kid)
        f.check(isinstance(k["x"], str) and "=" not in k["x"],
                "JWKS x of %s is not unpadded base64url: %r" % (kid, k["x"]))
    cur = by_kid.get(header.get("kid"))
    if f.check(cur is not None, "the token's kid is not in the JWKS"):
        f.check(eotest.verify_eddsa(tok, eotest.b64url_decode(cur["x"])),
                "the token's signature does not verify with the JWKS key %s" % cur["kid"])
        other = by_kid.get(kids[0])
        if other:
            f.check(not eotest.verify_eddsa(tok, eotest.b64url_decode(other["x"])),
                    "the token also verifies with the older key (keys are not distinct)")
    for m in ("POST", "DELETE"):
        st_, _, _ = eotest.http_request(m, sb.auth_url("/.well-known/jwks.json"), b"", {},
                                        timeout=10)
        f.check(st_ in (404, 405), "%s /.well-known/jwks.json: %s, expected 405" % (m, st_))
    st["token"] = tok


def part_collector(sb, f, st):
    ta, tb = st["ta"], st["tb"]
    toks = st.get("tokens", {})
    accepted = []

    def send(name, tok, path, body, want):
        if not tok:
            f.fail("%s: no token to send" % name)
            return None
        stc, h, rb = eotest.post_json(sb.url(path), body, key=tok)
        f.check(stc == want, "collector, %s: %s %r, expected %d" % (name, stc, rb, want))
        return stc, h, rb

    mid = "tok-" + eotest.rand_hex(12)
    if send("token (both scopes), POST /events", st.get("token"), "/events", event(mid), 202):
        accepted.append(mid)
    mids = ["tok-" + eotest.rand_hex(12) for _ in range(3)]
    r = send("token (both scopes), POST /events/batch", st.get("token"), "/events/batch",
             [event(m) for m in mids], 202)
    if r and r[0] == 202:
        accepted += mids
    mid = "tok-" + eotest.rand_hex(12)
    r = send("subset-scope token events:write", toks.get("subset scope events:write"),
             "/events", event(mid), 202)
    if r and r[0] == 202:
        accepted.append(mid)
    mid = "tok-" + eotest.rand_hex(12)
    r = send("form-credentials token", toks.get("form credentials"), "/events", event(mid), 202)
    if r and r[0] == 202:
        accepted.append(mid)
    refused = []
    for name in ("subset scope events:read", "read-only client"):
        mid = "tok-" + eotest.rand_hex(12)
        refused.append(mid)
        r = send("%s token (no events:write)" % name, toks.get(name), "/events", event(mid), 403)
        if r and r[0] == 403:
            body, www = r[2], r[1].get("www-authenticate", "")
            f.check(isinstance(body, dict) and isinstance(body.get("error"), dict) and
                    body["error"].get("code") == "insufficient_scope",
                    "collector 403 body %r, expected error.code insufficient_scope" % body)
            f.check(www.startswith('Bearer realm="eventops"') and
                    'error="insufficient_scope"' in www and 'scope="events:write"' in www,
                    "collector 403 WWW-Authenticate %r" % www)
    stored = sb.wait_stored(accepted, timeout=60)
    for m in accepted:
        f.check(stored.get(m) == [ta["tenantId"]],
                "event %s sent with A's token is stored under %r, expected [%s]" %
                (m, stored.get(m), ta["tenantId"]))
    time.sleep(1)
    leaked = sb.stored_tenants(refused)
    f.check(not leaked, "events refused with 403 were stored: %r" % leaked)
    f.check(sb.tenant_count(tb["tenantId"]) == 0, "tenant B has events")
    log("collector: %d events accepted with tokens, stored under the client's tenant" %
        len(accepted))


def check_429(f, name, resp, burst):
    stc, h, body = resp
    check_oauth_error(f, name, resp, 429, "rate_limited")

    def intval(k):
        try:
            return int(h.get(k, ""))
        except ValueError:
            return None
    ra = intval("retry-after")
    f.check(ra is not None and ra >= 1, "%s: Retry-After %r, expected whole seconds >= 1" %
            (name, h.get("retry-after")))
    f.check(intval("ratelimit-limit") == burst, "%s: RateLimit-Limit %r, expected %d" %
            (name, h.get("ratelimit-limit"), burst))
    f.check(intval("ratelimit-remaining") == 0, "%s: RateLimit-Remaining %r, expected 0" %
            (name, h.get("ratelimit-remaining")))
    rs = intval("ratelimit-reset")
    f.check(rs is not None and rs >= 0, "%s: RateLimit-Reset %r, expected seconds" %
            (name, h.get("ratelimit-reset")))


def part_rate_limits(sb, f, st):
    ta = st["ta"]
    port_c, port_i = eotest.free_port(), eotest.free_port()
    C_RATE, C_BURST, I_RATE, I_BURST = 1, 3, 1, 5
    rl_c = sb.auth(extra_env={"EVENTOPS_AUTH_PORT": port_c, "EVENTOPS_AUTH_CLIENT_RATE": C_RATE,
                              "EVENTOPS_AUTH_CLIENT_BURST": C_BURST},
                   name="auth-client-limit")
    rl_i = sb.auth(extra_env={"EVENTOPS_AUTH_PORT": port_i, "EVENTOPS_AUTH_IP_RATE": I_RATE,
                              "EVENTOPS_AUTH_IP_BURST": I_BURST},
                   name="auth-ip-limit")
    rl_c.start()
    rl_i.start()
    rl_c.wait_ready()
    rl_i.wait_ready()
    url_c, url_i = rl_c.url("/oauth/token"), rl_i.url("/oauth/token")
    # The limiter state lives in the shared Redis, keyed by client id and source address, so
    # each role with its own limits gets clients and source addresses nobody else uses (in a
    # real deployment every instance has the same limits).
    clients = [sb.create_client(ta["tenantId"], ["events:write"]) for _ in range(9)]
    src = "127.0.%d.%d" % (random.randint(1, 254), random.randint(2, 254))
    src2 = "127.0.%d.%d" % (random.randint(1, 254), random.randint(2, 254))

    # -- per client id: burst from idle, then 429; the bound burst + rate*T (+1 for rounding)
    c = clients[0]
    results = []
    t0 = time.monotonic()
    for _ in range(8):
        results.append(sb.get_token(c["clientId"], c["clientSecret"], url=url_c))
    el = time.monotonic() - t0
    sts = [r[0] for r in results]
    f.check(sts[:C_BURST] == [200] * C_BURST,
            "per-client limit: the first %d requests (the burst) got %s" % (C_BURST, sts[:C_BURST]))
    f.check(429 in sts, "per-client limit: no 429 in %d fast requests: %s" % (len(sts), sts))
    f.check(set(sts) <= {200, 429}, "per-client limit: statuses %s" % sts)
    admitted = sts.count(200)
    bound = C_BURST + C_RATE * el + 1
    f.check(admitted <= bound, "per-client limit: %d admitted in %.2f s, bound burst + rate*T "
            "+ 1 = %.1f" % (admitted, el, bound))
    for r in results:
        if r[0] == 429:
            check_429(f, "per-client 429", r, C_BURST)
            break
    # another client on the same role is not affected
    c2 = clients[1]
    r = sb.get_token(c2["clientId"], c2["clientSecret"], url=url_c)
    f.check(r[0] == 200, "per-client limit: another client got %s %r right after the first "
            "was limited" % (r[0], r[2]))
    log("per-client limit: %s in %.2f s" % (sts, el))

    # -- wrong secrets count (the limit is checked before the secret): two attempts in case a
    # token happened to refill between the last 429 and the right secret (1 s period).
    proven = False
    for c3 in clients[2:4]:
        wrong = []
        for _ in range(10):
            r = sb.get_token(c3["clientId"], c3["clientSecret"] + "x", url=url_c)
            wrong.append(r[0])
            if r[0] == 429:
                break
            if r[0] != 401:
                break
        if not f.check(set(wrong) <= {401, 429} and 429 in wrong and
                       wrong.count(401) <= C_BURST + 2,
                       "wrong secrets: statuses %s, expected 401 x %d then 429" %
                       (wrong, C_BURST)):
            break
        r = sb.get_token(c3["clientId"], c3["clientSecret"], url=url_c)
        log("wrong secrets: %s, then the right secret: %s" % (wrong, r[0]))
        if r[0] == 429:
            check_429(f, "429 for the right secret after wrong ones", r, C_BURST)
            proven = True
            break
    f.check(proven, "after wrong secrets exhausted the client's budget, the right secret was "
            "still accepted (wrong secrets do not count)")

    # -- per source address (checked first): several clients from 127.0.0.1
    sts = []
    first429 = None
    t0 = time.monotonic()
    for i in range(10):
        c = clients[5 + i % 2]
        r = sb.get_token(c["clientId"], c["clientSecret"], url=url_i, source=src)
        sts.append(r[0])
        if r[0] == 429 and first429 is None:
            first429 = r
    el = time.monotonic() - t0
    f.check(sts[:I_BURST] == [200] * I_BURST,
            "per-address limit: the first %d requests got %s" % (I_BURST, sts[:I_BURST]))
    f.check(429 in sts and set(sts) <= {200, 429}, "per-address limit: statuses %s" % sts)
    f.check(sts.count(200) <= I_BURST + I_RATE * el + 1,
            "per-address limit: %d admitted in %.2f s" % (sts.count(200), el))
    if first429:
        check_429(f, "per-address 429", first429, I_BURST)
    log("per-address limit: %s in %.2f s" % (sts, el))
    # a fresh client from the same address is limited too (the address is checked first)
    c = clients[7]
    r = sb.get_token(c["clientId"], c["clientSecret"], url=url_i, source=src)
    f.check(r[0] == 429, "per-address limit: a fresh client from the limited address got %s" %
            r[0])
    r = oauth(sb, [GT], auth=None, url=url_i, source=src)
    f.check(r[0] == 429, "per-address limit: a request without credentials from the limited "
            "address got %s, expected 429" % r[0])
    r = sb.get_token(c["clientId"], c["clientSecret"], url=url_i, source=src,
                     headers={"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3",
                              "Forwarded": "for=10.1.2.3"})
    f.check(r[0] == 429, "per-address limit: X-Forwarded-For/Forwarded changed the source "
            "address (got %s)" % r[0])
    # another source address has its own budget
    r = sb.get_token(c["clientId"], c["clientSecret"], url=url_i, source=src2)
    f.check(r[0] == 200, "per-address limit: a request from another address (%s) got %s %r, "
            "expected 200 (its own budget)" % (src2, r[0], r[2]))
    st["rl_roles"] = [rl_c, rl_i]


def main():
    with eotest.Sandbox("auth-token", extra_env=ENV) as sb:
        f = sb.failures
        st = {}
        part_keys_and_admin(sb, f, st)
        auth, coll, proc = sb.auth(), sb.collector(), sb.processor()
        for r in (auth, coll, proc):
            r.start()
        for r in (auth, coll, proc):
            r.wait_ready()
        log("auth :%d, collector :%d, processor running" % (sb.auth_port, sb.collector_port))
        stz, _, _ = eotest.http_get(sb.auth_url("/healthz"))
        f.check(stz == 200, "auth GET /healthz: %s" % stz)

        part_error_table(sb, f, st)
        part_jwt_and_jwks(sb, f, st)
        part_collector(sb, f, st)
        part_rate_limits(sb, f, st)

        for r in sb.roles:
            f.check(r.running(), "%s is not running at the end (exit %s)" %
                    (r.name, r.proc.returncode if r.proc else None))
        for r in [auth, coll] + st.get("rl_roles", []):
            if r.running():
                rc = r.stop(timeout=30)
                f.check(rc == 0, "%s exited %s on SIGTERM, expected 0" % (r.name, rc))
        proc.stop(timeout=60)
        sb.check_clean_end()
        return sb.report("token endpoint, JWT, JWKS and token rate limits")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
