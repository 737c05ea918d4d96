#!/usr/bin/env python3
"""End-to-end: signing-key rotation and token expiry (issue 3).

Issue 3 requirements checked:
  "Rotation: several keys may be published; new tokens use the current one; tokens signed by an
   older published key stay valid until they expire."
  "keys from the JWKS (refetched on an unknown kid, at most once per interval) or from key
   files."
  Tests: "Key rotation: tokens from the old key accepted until expiry, rejected once the key is
   withdrawn."

One sandbox (EVENTOPS_AUTH_KEYS_REFRESH_MS=500, EVENTOPS_AUTH_KEYS_MIN_REFETCH_MS=200,
EVENTOPS_AUTH_LEEWAY_S=0) with an auth role (TTL 600 s), a second auth role with
EVENTOPS_AUTH_TOKEN_TTL_S=3, and three collectors that differ only in where their keys come
from: the JWKS of the auth role (EVENTOPS_AUTH_JWKS_URL), the key folder, and the JWKS through
a counting proxy run by this test. Each step is checked on every collector:

  1. key1: token1 (kid1) is accepted.
  2. key2 created: within a few refresh intervals new tokens carry kid2 and the JWKS lists both;
     token2 is accepted (the unknown kid makes the collector refetch/rescan); token1 still is.
  3. key1 deleted (delete-signing-key): its file is gone, the JWKS drops it, token1 is refused
     (401, invalid_token) within 5 s (10 refresh intervals) and stays refused; token2 and new
     tokens (kid2) are accepted.
  4. Expiry: a token of the short-TTL auth role (kid2, still published; expires_in 3) is
     accepted, then refused from its exp on (leeway 0; 1 s of slack for whole-second clocks).
  5. Unknown kids: 40 tokens with random kids (signed with key2) over ~1.5 s: all 401, and
     the proxy saw at most one JWKS fetch per min-refetch interval (+ the periodic refreshes
     and one for rounding); a valid token still passes afterwards.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import json
import math
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

REFRESH_MS, MIN_REFETCH_MS = 500, 200
SHORT_TTL = 3
ENV = {
    "EVENTOPS_AUTH_KEYS_REFRESH_MS": str(REFRESH_MS),
    "EVENTOPS_AUTH_KEYS_MIN_REFETCH_MS": str(MIN_REFETCH_MS),
    "EVENTOPS_AUTH_LEEWAY_S": "0",
    "EVENTOPS_AUTH_TOKEN_TTL_S": "600",
    "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
}


def jwks_proxy(upstream):
    """Serves GET /jwks.json by fetching the auth role's JWKS; its `hits` count the fetches."""

    def answer(path):
        try:
            st, _, body = eotest.http_request("GET", upstream, None, None, timeout=5)
            return st, json.dumps(body).encode() if not isinstance(body, bytes) else body
        except eotest.HttpError:
            return 502, b"{}"
    return eotest.LocalHttpServer(answer)


def send(coll, token, tag="rot"):
    mid = "%s-%s" % (tag, eotest.rand_hex(10))
    return eotest.post_json(coll.url("/events"),
                            {"eventType": "rotation_e2e", "userId": "u1", "messageId": mid},
                            key=token)


def main():
    with eotest.Sandbox("key-rotation", extra_env=ENV) as sb:
        proxy = jwks_proxy(sb.auth_url("/.well-known/jwks.json"))
        try:
            return run(sb, proxy)
        finally:
            proxy.close()


def run(sb, proxy):
    f = sb.failures
    k1 = sb.create_signing_key()["kid"]
    t = sb.create_tenant("rot-" + eotest.rand_hex(6))
    c = sb.create_client(t["tenantId"], ["events:write"])
    auth = sb.auth()
    auth_short = sb.auth(extra_env={"EVENTOPS_AUTH_PORT": eotest.free_port(),
                                    "EVENTOPS_AUTH_TOKEN_TTL_S": SHORT_TTL}, name="auth-short")
    c_jwks = sb.collector(extra_env={"EVENTOPS_AUTH_JWKS_URL":
                                     sb.auth_url("/.well-known/jwks.json")},
                          name="collector-jwks")
    c_dir = sb.collector(extra_env={"EVENTOPS_COLLECTOR_PORT": eotest.free_port()},
                         name="collector-keydir")
    c_proxy = sb.collector(extra_env={
        "EVENTOPS_COLLECTOR_PORT": eotest.free_port(),
        "EVENTOPS_AUTH_JWKS_URL": "http://127.0.0.1:%d/jwks.json" % proxy.port},
        name="collector-proxy")
    colls = [c_jwks, c_dir, c_proxy]
    # The auth roles first: a collector started at the same moment may fetch the JWKS before
    # the auth role listens, and then answers 503 until its next reload (a start-up race of
    # this test, not the rotation it checks).
    for group in ([auth, auth_short], colls):
        for r in group:
            r.start()
        for r in group:
            r.wait_ready()
    log("auth :%d, short-TTL auth :%d, collectors %s" %
        (auth.port, auth_short.port, ", ".join("%s :%d" % (x.name, x.port) for x in colls)))

    def tok():
        return sb.token(c["clientId"], c["clientSecret"])

    def kid_of(token):
        return eotest.decode_jwt(token)[0].get("kid")

    def jwks_kids():
        st, _, body = eotest.http_get(sb.auth_url("/.well-known/jwks.json"))
        return sorted(k.get("kid") for k in body.get("keys", [])) if st == 200 else None

    def expect_all(token, want, what):
        for co in colls:
            r = send(co, token)
            if f.check(r[0] == want, "%s on %s: %s %r, expected %d" %
                       (what, co.name, r[0], r[2], want)) and want == 401:
                eotest.check_bearer_error(f, "%s on %s" % (what, co.name), r)

    def wait_all(token, want, timeout, what):
        """Polls every collector until it answers want; returns seconds taken (or None)."""
        t0 = time.monotonic()
        ok = True
        for co in colls:
            got = eotest.wait_until(lambda: send(co, token)[0] == want, timeout, interval=0.1)
            ok &= f.check(bool(got), "%s on %s: not %d within %.0f s (last: %s)" %
                          (what, co.name, want, timeout, send(co, token)[:3:2]))
        return time.monotonic() - t0 if ok else None

    # 1. key1
    token1 = tok()
    f.check(kid_of(token1) == k1, "token1 has kid %r, expected %r" % (kid_of(token1), k1))
    expect_all(token1, 202, "token1 (key1)")

    # 2. key2 is created: new tokens carry it (after the auth role rescans), token1 still works
    time.sleep(1.1)  # kids sort by creation time
    k2 = sb.create_signing_key()["kid"]
    f.check(k2 > k1, "kid2 %r does not sort after kid1 %r" % (k2, k1))
    t0 = time.monotonic()
    got = eotest.wait_until(lambda: kid_of(tok()) == k2, 5, interval=0.2)
    f.check(bool(got), "new tokens do not carry kid2 within 5 s (10 refresh intervals)")
    log("new tokens carry kid2 after %.1f s" % (time.monotonic() - t0))
    f.check(eotest.wait_until(lambda: jwks_kids() == sorted([k1, k2]), 5, interval=0.2),
            "the JWKS does not list both keys within 5 s: %s" % jwks_kids())
    token2 = tok()
    f.check(kid_of(token2) == k2, "token2 has kid %r, expected %r" % (kid_of(token2), k2))
    took = wait_all(token2, 202, 3, "token2 (key2)")
    if took is not None:
        log("token2 accepted by every collector after %.2f s" % took)
    expect_all(token1, 202, "token1 after key2 was added (key1 still published)")
    listed = sb.list_signing_keys()
    f.check(sorted((x.get("kid"), x.get("current")) for x in listed) ==
            sorted([(k1, False), (k2, True)]),
            "list-signing-keys %r: expected key1 not current, key2 current" % listed)

    # 3. key1 withdrawn
    sb.delete_signing_key(k1)
    f.check(not os.path.exists(sb.key_path(k1)), "delete-signing-key left %s" %
            sb.key_path(k1))
    f.check(eotest.wait_until(lambda: jwks_kids() == [k2], 5, interval=0.2),
            "the JWKS still lists key1 5 s after delete-signing-key: %s" % jwks_kids())
    took = wait_all(token1, 401, 5, "token1 after key1 was deleted")
    if took is not None:
        log("token1 refused by every collector %.2f s after delete-signing-key" % took)
    for _ in range(3):
        time.sleep(0.3)
        expect_all(token1, 401, "token1 again (key1 withdrawn)")
    expect_all(token2, 202, "token2 after key1 was deleted")
    token3 = tok()
    f.check(kid_of(token3) == k2, "a token issued after the deletion has kid %r" %
            kid_of(token3))
    expect_all(token3, 202, "a new token after key1 was deleted")

    # 4. expiry of a token whose key is still published (leeway 0)
    st, _, body = sb.get_token(c["clientId"], c["clientSecret"],
                               url=auth_short.url("/oauth/token"))
    if f.check(st == 200, "short-TTL token: %s %r" % (st, body)):
        short = body["access_token"]
        f.check(body.get("expires_in") == SHORT_TTL, "short-TTL expires_in %r, expected %d" %
                (body.get("expires_in"), SHORT_TTL))
        claims = eotest.decode_jwt(short)[1]
        exp = claims.get("exp")
        f.check(kid_of(short) == k2 and exp - claims.get("iat", 0) == SHORT_TTL,
                "short token: kid %r, exp - iat %r" % (kid_of(short), exp - claims.get("iat", 0)))
        if time.time() < exp - 1:
            expect_all(short, 202, "short-TTL token before exp")
        # wait until the token has expired (bounded), then every collector must refuse it
        time.sleep(max(0.0, exp - time.time()))
        deadline = exp + 1.0  # 1 s slack: whole-second clocks
        for co in colls:
            while True:
                r = send(co, short, "exp")
                if r[0] == 401 or time.time() > deadline:
                    break
                time.sleep(0.1)
            if f.check(r[0] == 401, "expired short-TTL token on %s: %s at exp%+.1f s, expected "
                       "401 (leeway 0)" % (co.name, r[0], time.time() - exp)):
                eotest.check_bearer_error(f, "expired token on %s" % co.name, r)
        time.sleep(0.5)
        expect_all(short, 401, "expired short-TTL token again")

    # 5. unknown kids: refetches limited to one per min-refetch interval
    time.sleep(0.5)
    n0 = len(proxy.hits)
    t0 = time.monotonic()
    claims = sb.claims(c)
    statuses = []
    for _ in range(40):
        forged = eotest.sign_eddsa({"alg": "EdDSA", "typ": "at+jwt",
                                    "kid": "unknown-" + eotest.rand_hex(8)},
                                   claims, sb.key_path(k2))
        statuses.append(send(c_proxy, forged, "unk")[0])
        time.sleep(0.03)  # spread over ~1.5 s, several min-refetch intervals
    el = time.monotonic() - t0
    time.sleep(0.1)
    fetches = len(proxy.hits) - n0
    allowed = math.ceil(el * 1000 / MIN_REFETCH_MS) + math.ceil(el * 1000 / REFRESH_MS) + 2
    f.check(set(statuses) == {401}, "tokens with unknown kids: statuses %s" % sorted(set(statuses)))
    f.check(fetches <= allowed, "40 unknown kids in %.2f s caused %d JWKS fetches; at most %d "
            "expected (one per %d ms + periodic refreshes every %d ms + 2)" %
            (el, fetches, allowed, MIN_REFETCH_MS, REFRESH_MS))
    log("40 unknown kids in %.2f s: %d JWKS fetches through the proxy (limit %d)" %
        (el, fetches, allowed))
    f.check(send(c_proxy, tok())[0] == 202, "a valid token after the unknown-kid storm was "
            "refused by %s" % c_proxy.name)

    sb.check_clean_end(running=sb.roles)
    return sb.report("key rotation (JWKS URL, key folder, JWKS via proxy) and token expiry")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
