#!/usr/bin/env python3
"""End-to-end: the query role's Redis read-through cache and its authentication
(docs/query.md, "Cache" and "Authentication").

Setup: a private redis-server on a free loopback port (no persistence) used by every role of
the sandbox (EVENTOPS_REDIS_URL, EVENTOPS_REDIS_TIMEOUT_MS=50, EVENTOPS_REDIS_RETRY_MS=200), so
stopping it never disturbs the shared stack and its keys can be listed exactly. Roles: auth,
collector, processor, the query role (cache on), a second query role with
EVENTOPS_QUERY_CACHE=off (the uncached truth) and a third with
EVENTOPS_QUERY_CACHE_CLOSED_TTL_S=2. Tenants A and B with different events in a closed past
range (June 2026); tokens from the auth role (client_credentials). Parts run in the order
c, e, d, f, g, a, b.

  d. authentication on every query endpoint: no credential is 401 missing_credentials, a write
     key (Bearer) 401 invalid_token, a token without events:read is 403 insufficient_scope, an
     expired token and a token edited to name the other tenant are 401; a token with
     events:read (alone or with events:write) is 200.
  c. cross-tenant: the same parameters for A and B on every endpoint, cold (A first for one
     set, B first for another) and warm: each tenant always gets its own answer (equal to the
     uncached role's answer for that tenant, and the counts match the events sent); warm
     answers are X-Cache hits; the uncached role says X-Cache bypass. Every Redis key is
     eo:q:{<tenant>}:<endpoint>:<sha256 hex>, of A or B, as many for A as for B.
  e. normalisation and lifetimes: interval=daily after interval=day, no tz after tz=UTC, `from`
     written with an offset after the same instant in Z, no `within` and within=24h after
     within=1d, no `limit` after limit=10, no period/periods after their defaults, parameters
     in another order, .25 vs .250000 fractions are hits (shared entries); a closed range's key
     lives ~3600 s (EVENTOPS_QUERY_CACHE_CLOSED_TTL_S), an open range's at most 1000 ms (also a
     range ending 59 min ago; one ending 62 min ago is closed); a 400 answer and raw events
     pages add no key; raw events say X-Cache bypass.
  f. rate limit per client: a client created with --rate 1 --burst 3 gets 429 rate_limited
     (Retry-After, RateLimit-*) after its burst, its key is eo:rl:{<tenant>}:client:<id>;
     other clients keep getting 200.
  g. a third query role with EVENTOPS_QUERY_CACHE_CLOSED_TTL_S=2: its closed-range entry has a
     PTTL <= 2 s and an event arriving late into that closed range shows within ~2 s.
  a. freshness: with the cache warm (a hit observed first), one event sent through the
     collector shows in count and trend, for the default range and for an explicit range,
     within 2 s of the collector's 202.
  b. Redis outage: answers recorded for every endpoint with the cache warm; Redis killed: the
     same answers, never 5xx, X-Cache bypass, quickly; /metrics counts exactly one
     eventops_cache_requests_total{result="error"} per cacheable request; Redis started again
     on the same port: hits come back. Then Redis frozen (SIGSTOP, slower than any timeout):
     the same answers within ~1 s each, X-Cache bypass, one error each; SIGCONT: hits come
     back.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN; redis-server and
redis-cli on PATH; python3-cryptography. Exit 0 = pass.
"""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from querytest import (US, QUERY_ENDPOINTS, QueryClient, Redis, fetch_metrics,  # noqa: E402
                       fmt_local, fmt_utc, metric_sum, now_us, parse_rfc3339, us_utc)
from zoneinfo import ZoneInfo  # noqa: E402

FRESH_LIMIT_S = 2.0
KEY_RE = re.compile(r"eo:q:\{([0-9a-fA-F-]{36})\}:([A-Za-z0-9_-]+):([0-9a-f]{64})")
RANGE = [("from", "2026-06-10T00:00:00Z"), ("to", "2026-06-13T00:00:00Z")]


def seed_events(tag, spec):
    """spec: [(event type, user, iso time, plan)] -> wire events."""
    out = []
    for i, (etype, user, ts, plan) in enumerate(spec):
        e = {"messageId": "%s-%03d" % (tag, i), "eventType": etype, "userId": user,
             "timestamp": ts, "properties": {"plan": plan} if plan else {}}
        out.append(e)
    return out


def tenant_spec(which):
    """Different data for A and B in June 2026 (closed: far older than the open window)."""
    spec = []
    if which == "A":
        for u in range(8):
            spec.append(("signup", "a-u%d" % u, "2026-06-10T%02d:15:00Z" % (8 + u), "pro"))
            spec.append(("page_view", "a-u%d" % u, "2026-06-10T%02d:20:00.5Z" % (8 + u), "pro"))
            if u % 2 == 0:
                spec.append(("order_placed", "a-u%d" % u, "2026-06-10T%02d:40:00Z" % (8 + u),
                             "pro"))
            spec.append(("page_view", "a-u%d" % u, "2026-06-11T%02d:00:00Z" % (6 + u), "free"))
    else:
        for u in range(5):
            spec.append(("signup", "b-u%d" % u, "2026-06-10T%02d:05:00Z" % (10 + u), "team"))
            spec.append(("page_view", "b-u%d" % u, "2026-06-12T%02d:30:00Z" % (1 + u), None))
            spec.append(("page_view", "b-u%d" % u, "2026-06-12T%02d:31:00Z" % (1 + u), "team"))
        spec.append(("order_placed", "b-u0", "2026-06-10T23:59:59.999999Z", "team"))
    return spec


def queries(variant=0):
    """(endpoint, params) on every endpoint over RANGE; variant changes the parameters."""
    tz = ["Europe/Berlin", "America/New_York"][variant % 2]
    return [
        ("/events/count", RANGE + ([("eventType", "page_view")] if variant else [])),
        ("/events/trend", RANGE + [("interval", "hour" if variant else "day"), ("tz", tz)]),
        ("/events/unique-users", RANGE + [("interval", "day"), ("tz", tz)]),
        ("/events/unique-users", RANGE + [("eventType", "page_view" if variant else "signup")]),
        ("/events/breakdown", RANGE + [("property", "plan"), ("limit", str(3 + variant))]),
        ("/events/funnel", RANGE + [("steps", "signup,page_view,order_placed"),
                                    ("within", "1d" if variant else "2h")]),
        ("/events/retention", RANGE + [("startEvent", "signup"), ("returnEvent", "page_view"),
                                       ("period", "day"), ("periods", str(3 + variant)),
                                       ("tz", tz)]),
        ("/events/types", []),
        ("/events", RANGE + [("limit", str(5 + variant))]),
    ]


def qname(ep, params):
    return "GET %s?%s" % (ep, "&".join("%s=%s" % kv for kv in params))


def expected_count(spec, frm, to, etype=None):
    n = 0
    for e, _, ts, _ in spec:
        t = parse_rfc3339(ts)[0]
        if frm <= t < to and (etype is None or e == etype):
            n += 1
    return n


def main():
    return eotest.run_with_redis("query-cache", run)


def run(sb, redis):
    t_start = time.monotonic()
    f = sb.failures
    redis.start()
    log("private redis-server on :%d" % redis.port)
    sb.env.update({"EVENTOPS_REDIS_URL": redis.url, "EVENTOPS_REDIS_TIMEOUT_MS": "50",
                   "EVENTOPS_REDIS_RETRY_MS": "200", "EVENTOPS_QUERY_CACHE": "on"})
    key = sb.create_signing_key()
    T = {}
    for x in ("A", "B"):
        t = sb.create_tenant("qc-%s-%s" % (x.lower(), eotest.rand_hex(6)))
        T[x] = {"tenant": t, "id": t["tenantId"], "wk": t["writeKey"],
                "read": sb.create_client(t["tenantId"], ["events:read"]),
                "write": sb.create_client(t["tenantId"], ["events:write"]),
                "both": sb.create_client(t["tenantId"], ["events:read", "events:write"]),
                "limited": sb.create_client(t["tenantId"], ["events:read"], rate=1, burst=3),
                "spec": tenant_spec(x)}
    auth, coll, proc = sb.auth(), sb.collector(), sb.processor()
    query = sb.query()
    nc_port = eotest.free_port()
    query_nc = sb.query(extra_env={"EVENTOPS_QUERY_PORT": nc_port,
                                   "EVENTOPS_QUERY_CACHE": "off"}, name="query-nocache")
    st_port = eotest.free_port()
    query_st = sb.query(extra_env={"EVENTOPS_QUERY_PORT": st_port,
                                   "EVENTOPS_QUERY_CACHE_CLOSED_TTL_S": "2"},
                        name="query-short-ttl")
    roles = (auth, coll, proc, query, query_nc, query_st)
    for r in roles:
        r.start()
    try:
        for r in roles:
            r.wait_ready(timeout=90)
    except (RuntimeError, TimeoutError) as e:
        f.fail("roles did not start: %s (query log: %s)" % (e, query.tail(5)))
        return sb.report("query cache: roles did not start")
    for x in ("A", "B"):
        T[x]["token"] = sb.token(T[x]["read"]["clientId"], T[x]["read"]["clientSecret"])
        T[x]["wtoken"] = sb.token(T[x]["write"]["clientId"], T[x]["write"]["clientSecret"])
        T[x]["btoken"] = sb.token(T[x]["both"]["clientId"], T[x]["both"]["clientSecret"])
        T[x]["ltoken"] = sb.token(T[x]["limited"]["clientId"], T[x]["limited"]["clientSecret"])
        T[x]["q"] = QueryClient(sb.query_url(""), T[x]["token"])
        T[x]["nc"] = QueryClient("http://127.0.0.1:%d" % nc_port, T[x]["token"])
        T[x]["st"] = QueryClient("http://127.0.0.1:%d" % st_port, T[x]["token"])
        evs = seed_events("qc-%s" % x, T[x]["spec"])
        st, _, body = eotest.post_json(sb.url("/events/batch"), evs, key=T[x]["wk"])
        f.check(st == 202, "seed batch of %s: %s %.300r" % (x, st, body))
        T[x]["mids"] = [e["messageId"] for e in evs]
    sb.wait_stored(T["A"]["mids"] + T["B"]["mids"], timeout=60)
    log("roles up, seed events stored (A %d, B %d)" % (len(T["A"]["mids"]), len(T["B"]["mids"])))

    part_c(sb, T, redis)
    part_e(sb, T, redis)
    part_d(sb, T, key)
    part_f(sb, T, redis)
    part_g(sb, T, redis)
    part_a(sb, T)
    part_b(sb, T, redis, query)

    sb.check_clean_end(running=roles)
    return sb.report("query cache: auth matrix, cross-tenant, normalisation, freshness, Redis "
                     "outage (%.0f s)" % (time.monotonic() - t_start))


# ---------------------------------------------------------------------------------------------

def part_d(sb, T, key):
    f = sb.failures
    a = T["A"]
    expired = sb.sign(sb.claims(a["read"], scope="events:read", iat=int(time.time()) - 4000,
                                nbf=int(time.time()) - 4000, exp=int(time.time()) - 3000),
                      key["kid"])
    h, p, s = eotest.jwt_parts(a["token"])
    claims = json.loads(eotest.b64url_decode(p))
    claims["tenant"] = T["B"]["id"]
    edited = h + "." + eotest.b64url_encode(json.dumps(claims, separators=(",", ":"))) + "." + s
    n = 0
    for ep, params in queries(0):
        name = qname(ep, params)
        cases = [
            ("no credential", None, 401, "missing_credentials"),
            ("write key", a["wk"], 401, "invalid_token"),
            ("token without events:read", a["wtoken"], 403, "insufficient_scope"),
            ("expired events:read token", expired, 401, "invalid_token"),
            ("events:read token edited to tenant B", edited, 401, "invalid_token"),
        ]
        for what, tok, status, code in cases:
            st, hd, body, _ = a["q"].get(ep, params, token=tok or "")
            n += 1
            if not f.check(st == status, "%s with %s: status %s, expected %d (%.200r)" %
                           (name, what, st, status, body)):
                continue
            err = body.get("error") if isinstance(body, dict) else None
            ok = isinstance(err, dict) and isinstance(err.get("message"), str)
            if ok and code:
                ok = err.get("code") == code
            f.check(ok, "%s with %s: body %.300r, expected {\"error\": {\"code\": %s, ...}}" %
                    (name, what, body, code or "..."))
            f.check(hd.get("x-cache") != "hit", "%s with %s: X-Cache hit" % (name, what))
            f.check(hd.get("cache-control", "").replace(" ", "").lower() == "no-store",
                    "%s with %s: Cache-Control %r, expected no-store" %
                    (name, what, hd.get("cache-control")))
        for what, tok in (("events:read token", a["token"]),
                          ("events:read+events:write token", a["btoken"])):
            st, _, body, _ = a["q"].get(ep, params, token=tok)
            n += 1
            f.check(st == 200, "%s with %s: status %s %.200r" % (name, what, st, body))
    log("d. auth: %d requests on %d endpoints" % (n, len(QUERY_ENDPOINTS)))


def part_c(sb, T, redis):
    f = sb.failures
    truth = {}
    for x in ("A", "B"):
        for v in (0, 1):
            for ep, params in queries(v):
                st, h, body, _ = T[x]["nc"].get(ep, params)
                f.check(st == 200, "uncached %s for %s: %s %.200r" % (qname(ep, params), x, st,
                                                                       body))
                f.check(h.get("x-cache") == "bypass", "uncached role (EVENTOPS_QUERY_CACHE=off) "
                        "%s: X-Cache %r, expected bypass" % (qname(ep, params), h.get("x-cache")))
                truth[(x, v, ep, tuple(params))] = body
    # the two tenants' truths differ on every endpoint, and counts are the events sent
    for v in (0, 1):
        for ep, params in queries(v):
            ta, tb = truth[("A", v, ep, tuple(params))], truth[("B", v, ep, tuple(params))]
            f.check(ta != tb, "test data: %s gives A and B the same answer %.200r" %
                    (qname(ep, params), ta))
            if ep == "/events/count":
                frm, to = (parse_rfc3339(dict(params)[k])[0] for k in ("from", "to"))
                for x in ("A", "B"):
                    exp = expected_count(T[x]["spec"], frm, to, dict(params).get("eventType"))
                    got = truth[(x, v, ep, tuple(params))]
                    f.check(isinstance(got, dict) and got.get("count") == exp,
                            "%s for %s: %.200r, expected count %d" % (qname(ep, params), x, got,
                                                                      exp))
    n = 0
    asked = {"A": set(), "B": set()}
    for v, order in ((0, ("A", "B")), (1, ("B", "A"))):
        for ep, params in queries(v):
            # first tenant cold, then warm; then the other tenant cold (its own miss, never the
            # first tenant's entry), then warm
            for x in order:
                for phase in ("cold", "warm"):
                    st, h, body, _ = T[x]["q"].get(ep, params)
                    n += 1
                    name = "%s %s for %s" % (phase, qname(ep, params), x)
                    want = truth[(x, v, ep, tuple(params))]
                    repeat = (ep, tuple(params)) in asked[x]
                    if ep == "/events":
                        f.check(h.get("x-cache") == "bypass",
                                "%s: X-Cache %r, expected bypass" % (name, h.get("x-cache")))
                    elif phase == "cold" and not repeat:
                        f.check(h.get("x-cache") == "miss",
                                "%s: X-Cache %r, expected miss" % (name, h.get("x-cache")))
                    elif phase == "warm":
                        f.check(h.get("x-cache") == "hit",
                                "%s: X-Cache %r, expected hit" % (name, h.get("x-cache")))
                    asked[x].add((ep, tuple(params)))
                    other = "B" if x == "A" else "A"
                    if body == truth[(other, v, ep, tuple(params))]:
                        f.fail("%s: got %s's answer %.300r" % (name, other, body))
                    else:
                        f.check(st == 200 and body == want, "%s: %s %.300r, expected %.300r" %
                                (name, st, body, want))
    keys = redis.keys("eo:q:*")
    per = {"A": [], "B": []}
    ids = {T["A"]["id"]: "A", T["B"]["id"]: "B"}
    bad = []
    for k in keys:
        m = KEY_RE.fullmatch(k)
        if not m or m.group(1) not in ids:
            bad.append(k)
            continue
        per[ids[m.group(1)]].append(m.group(2))
    f.check(not bad, "Redis keys not of the form eo:q:{<tenant A or B>}:<endpoint>:<sha256>: %s"
            % bad[:5])
    nq = len({(ep, tuple(p)) for v in (0, 1) for ep, p in queries(v) if ep != "/events"})
    for x in ("A", "B"):
        f.check(len(per[x]) == nq, "tenant %s has %d cache keys (%s), expected %d (one per "
                "distinct cached query)" % (x, len(per[x]), sorted(per[x]), nq))
    f.check(sorted(per["A"]) == sorted(per["B"]), "A's and B's cache keys name different "
            "endpoints: %s vs %s" % (sorted(per["A"]), sorted(per["B"])))
    log("c. cross-tenant: %d requests; %d Redis keys (A %d, B %d)" %
        (n, len(keys), len(per["A"]), len(per["B"])))


def new_keys(redis, before, want=1, timeout=1.0):
    """Keys eo:q:* not in before, waiting up to timeout for want of them (an entry may be
    written just after the answer)."""
    got = [set()]

    def probe():
        got[0] = set(redis.keys("eo:q:*")) - before
        return len(got[0]) >= want
    eotest.wait_until(probe, timeout, interval=0.1)
    return got[0]


def part_e(sb, T, redis):
    f = sb.failures
    q = T["A"]["q"]
    berlin = ZoneInfo("Europe/Berlin")
    frm, to = us_utc(2026, 6, 10, 3, 0, 0, 250000), us_utc(2026, 6, 12, 7)
    base = [("from", fmt_utc(frm)), ("to", fmt_utc(to))]
    pairs = [
        ("interval=daily after interval=day", "/events/trend",
         base + [("interval", "day"), ("tz", "Asia/Kolkata")],
         base + [("interval", "daily"), ("tz", "Asia/Kolkata")]),
        ("interval=weekly after interval=week", "/events/unique-users",
         base + [("interval", "week")], base + [("interval", "weekly")]),
        ("no tz after tz=UTC", "/events/trend", base + [("interval", "hour"), ("tz", "UTC")],
         base + [("interval", "hour")]),
        ("no interval after interval=day", "/events/trend",
         base + [("interval", "day"), ("tz", "America/New_York")],
         base + [("tz", "America/New_York")]),
        ("from/to with offsets after Z", "/events/count", base + [("eventType", "signup")],
         [("eventType", "signup"), ("from", fmt_local(frm, berlin)),
          ("to", fmt_local(to, ZoneInfo("Asia/Kathmandu")))]),
        ("parameters in another order", "/events/breakdown",
         base + [("property", "plan"), ("limit", "2")],
         [("limit", "2"), ("property", "plan")] + base[::-1]),
        ("no limit after limit=10", "/events/breakdown", base + [("property", "plan"),
                                                                ("limit", "10")],
         base + [("property", "plan")]),
        ("within=24h after within=1d", "/events/funnel",
         base + [("steps", "signup,order_placed"), ("within", "1d")],
         base + [("steps", "signup,order_placed"), ("within", "24h")]),
        ("no within after within=1d", "/events/funnel",
         base + [("steps", "signup,page_view"), ("within", "1d")],
         base + [("steps", "signup,page_view")]),
        ("period=daily after no period, periods=7 after none", "/events/retention",
         base + [("startEvent", "signup"), ("returnEvent", "page_view")],
         base + [("startEvent", "signup"), ("returnEvent", "page_view"), ("period", "daily"),
                 ("periods", "7")]),
        ("fraction digits .250 after .25", "/events/count",
         [("from", "2026-06-10T03:00:00.25Z"), ("to", "2026-06-11T00:00:00Z")],
         [("from", "2026-06-10T03:00:00.250000Z"), ("to", "2026-06-11T00:00:00.000Z")]),
    ]
    for what, ep, p1, p2 in pairs:
        st1, h1, b1, _ = q.get(ep, p1)
        time.sleep(0.05)
        st2, h2, b2, _ = q.get(ep, p2)
        ok = st1 == 200 and st2 == 200
        f.check(ok, "e. %s: statuses %s, %s (%.200r / %.200r)" % (what, st1, st2, b1, b2))
        if ok:
            f.check(h2.get("x-cache") == "hit", "e. %s (%s): second X-Cache %r, expected hit "
                    "(the normalised parameters are the same)" % (what, ep, h2.get("x-cache")))
            f.check(b1 == b2, "e. %s: answers differ %.300r vs %.300r" % (what, b1, b2))
    # lifetimes: a closed range ~ CLOSED_TTL_S (3600 s), an open range <= OPEN_TTL_MS (1000)
    before = set(redis.keys("eo:q:*"))
    st, _, _, _ = q.get("/events/count", [("from", "2026-06-10T05:00:00Z"),
                                          ("to", "2026-06-10T06:00:00Z")])
    new = new_keys(redis, before)
    if f.check(st == 200 and len(new) == 1, "e. closed-range count: %s, new keys %s" %
               (st, sorted(new))):
        ttl = redis.pttl(new.pop())
        f.check(3_500_000 <= ttl <= 3_600_000, "e. closed-range entry PTTL %d ms, expected "
                "~3600 s (EVENTOPS_QUERY_CACHE_CLOSED_TTL_S)" % ttl)
    before = set(redis.keys("eo:q:*"))
    st, _, _, _ = q.get("/events/trend", [("interval", "hour"), ("tz", "Asia/Kathmandu")])
    new = new_keys(redis, before, timeout=0.3)
    if f.check(st == 200 and len(new) <= 1, "e. open-range trend: %s, new keys %s" %
               (st, sorted(new))):
        ttl = redis.pttl(new.pop()) if new else -2
        f.check(ttl == -2 or 0 < ttl <= 1000, "e. open-range (default range) entry PTTL %d ms, "
                "expected <= 1000 (EVENTOPS_QUERY_CACHE_OPEN_TTL_MS)" % ttl)
    # a range whose `to` is just inside the open window (now - 3600 s + 60 s): open
    to_open = (now_us() // US - 3600 + 60) * US
    before = set(redis.keys("eo:q:*"))
    st, _, _, _ = q.get("/events/count", [("from", fmt_utc(to_open - 3600 * US)),
                                          ("to", fmt_utc(to_open))])
    new = new_keys(redis, before, timeout=0.3)
    if f.check(st == 200 and len(new) <= 1, "e. range ending 59 min ago: %s, keys %s" %
               (st, sorted(new))):
        ttl = redis.pttl(new.pop()) if new else -2
        f.check(ttl == -2 or 0 < ttl <= 1000, "e. range ending 59 min ago (open): PTTL %d ms, "
                "expected <= 1000" % ttl)
    # ... and one just outside (now - 3600 s - 120 s): closed
    to_closed = (now_us() // US - 3600 - 120) * US
    before = set(redis.keys("eo:q:*"))
    st, _, _, _ = q.get("/events/count", [("from", fmt_utc(to_closed - 3600 * US)),
                                          ("to", fmt_utc(to_closed))])
    new = new_keys(redis, before)
    if f.check(st == 200 and len(new) == 1, "e. range ending 62 min ago: %s, keys %s" %
               (st, sorted(new))):
        ttl = redis.pttl(new.pop())
        f.check(3_500_000 <= ttl <= 3_600_000, "e. range ending 62 min ago (closed): PTTL %d ms,"
                " expected ~3600 s" % ttl)
    # nothing cached for 400 answers and raw events pages
    before = set(redis.keys("eo:q:*"))
    st1, _, _, _ = q.get("/events/trend", base + [("interval", "fortnight")])
    st2, _, _, _ = q.get("/events/count", [("from", "2026-06-12T00:00:00Z"),
                                           ("to", "2026-06-10T00:00:00Z")])
    st3, h3, _, _ = q.get("/events", base + [("limit", "3")])
    st4, h4, b4, _ = q.get("/events", base + [("limit", "3")])
    time.sleep(0.5)
    after = set(redis.keys("eo:q:*"))
    f.check((st1, st2, st3, st4) == (400, 400, 200, 200), "e. 400s and raw pages: statuses %s" %
            [st1, st2, st3, st4])
    f.check(after <= before, "e. 400 answers or raw events pages added cache keys: %s" %
            sorted(after - before))
    f.check(h3.get("x-cache") == "bypass" and h4.get("x-cache") == "bypass",
            "e. raw events X-Cache %r, %r, expected bypass" % (h3.get("x-cache"),
                                                                h4.get("x-cache")))
    log("e. normalisation (%d pairs), lifetimes, nothing cached for 400s and raw pages" %
        len(pairs))


def part_f(sb, T, redis):
    """Rate limit per client (create-client --rate 1 --burst 3), in Redis under
    eo:rl:{tenant}:client:<id>; other clients unaffected."""
    f = sb.failures
    a = T["A"]
    sts, last = [], None
    for _ in range(8):
        last = a["q"].get("/events/count", RANGE, token=a["ltoken"])
        sts.append(last[0])
        if last[0] != 200:
            break
    if f.check(sts[-1] == 429 and set(sts[:-1]) <= {200} and len(sts) - 1 <= 3 + 1,
               "f. client limited to rate 1 burst 3: statuses %s, expected ~3 x 200 then 429" %
               sts):
        st, h, body, _ = last
        err = body.get("error") if isinstance(body, dict) else None
        f.check(isinstance(err, dict) and err.get("code") == "rate_limited",
                "f. 429 body %.200r, expected error.code rate_limited" % (body,))
        f.check(h.get("retry-after", "").isdigit() and int(h["retry-after"]) >= 1,
                "f. 429 Retry-After %r" % h.get("retry-after"))
        for k in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            f.check(k in h, "f. 429 without %s" % k)
    for x in ("A", "B"):
        st, _, _, _ = T[x]["q"].get("/events/count", RANGE)
        f.check(st == 200, "f. %s's unlimited client got %s right after A's limited one hit its "
                "limit" % (x, st))
    keys = redis.keys("eo:rl:*")
    want = "eo:rl:{%s}:client:%s" % (a["id"], a["limited"]["clientId"])
    f.check(want in keys, "f. no Redis key %s (rate-limit keys: %s)" % (want, keys[:10]))
    log("f. rate limit: %s" % sts)


def part_g(sb, T, redis):
    """A late event in a closed range shows once the closed entry expires
    (EVENTOPS_QUERY_CACHE_CLOSED_TTL_S=2 on a third query role)."""
    f = sb.failures
    b = T["B"]
    params = RANGE + [("eventType", "late_e2e")]
    before = set(redis.keys("eo:q:*"))
    st, h, body, _ = b["st"].get("/events/count", params)
    f.check(st == 200 and body.get("count") == 0, "g. count of late_e2e: %s %.200r" % (st, body))
    new = new_keys(redis, before)
    if f.check(len(new) == 1, "g. new cache keys %s, expected 1" % sorted(new)):
        ttl = redis.pttl(new.pop())
        f.check(0 < ttl <= 2000, "g. closed-range entry with EVENTOPS_QUERY_CACHE_CLOSED_TTL_S=2:"
                " PTTL %d ms, expected <= 2000" % ttl)
    st, h, body, _ = b["st"].get("/events/count", params)
    f.check(h.get("x-cache") == "hit", "g. second ask: X-Cache %r" % h.get("x-cache"))
    ev = {"messageId": "late-" + eotest.rand_hex(10), "eventType": "late_e2e", "userId": "late",
          "timestamp": "2026-06-11T12:00:00Z"}
    st, _, _ = eotest.post_json(sb.url("/events"), ev, key=b["wk"])
    t202 = time.monotonic()
    f.check(st == 202, "g. late event: %s" % st)
    got = eotest.wait_until(
        lambda: b["st"].get("/events/count", params)[2].get("count") == 1, 6, interval=0.1)
    dt = time.monotonic() - t202
    f.check(got and dt <= 2 + 1.5, "g. the late event (closed range) showed after %.2f s (%s), "
            "expected within the 2 s closed TTL plus the pipeline" % (dt, bool(got)))
    log("g. closed TTL 2 s: late event showed after %.2f s" % dt)


def part_a(sb, T):
    f = sb.failures
    x = T["A"]
    q = x["q"]
    now = now_us()
    efrom = (now // US - 600) * US
    eto = efrom + 3600 * US
    probes = [
        ("count, default range", "/events/count", [("eventType", "fresh_e2e")],
         lambda b: b.get("count")),
        ("count, explicit range", "/events/count", [("from", fmt_utc(efrom)), ("to", fmt_utc(eto))],
         lambda b: b.get("count")),
        ("trend, default range", "/events/trend", [("interval", "hour"),
                                                   ("tz", "Australia/Lord_Howe")],
         lambda b: b.get("total")),
        ("trend, explicit range", "/events/trend", [("from", fmt_utc(efrom)), ("to", fmt_utc(eto)),
                                                    ("interval", "minute"),
                                                    ("eventType", "fresh_e2e")],
         lambda b: b.get("total")),
    ]
    base = {}
    hits = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(hits) < len(probes):
        for name, ep, params, val in probes:
            st, h, body, _ = q.get(ep, params)
            if st != 200:
                f.fail("a. %s: %s %.200r" % (name, st, body))
                return
            base.setdefault(name, val(body))
            if val(body) != base[name]:
                f.fail("a. %s changed before the event was sent: %r -> %r" %
                       (name, base[name], val(body)))
                return
            if h.get("x-cache") == "hit":
                hits[name] = True
    f.check(len(hits) == len(probes), "a. no X-Cache hit seen before the event for %s (is the "
            "cache in the path?)" % [p[0] for p in probes if p[0] not in hits])
    ev = {"messageId": "fresh-" + eotest.rand_hex(12), "eventType": "fresh_e2e",
          "userId": "fresh-user"}
    st, _, body = eotest.post_json(sb.url("/events"), ev, key=x["wk"])
    t202 = time.monotonic()
    if not f.check(st == 202, "a. event: %s %.200r" % (st, body)):
        return
    seen = {}
    last = {}
    while time.monotonic() - t202 < FRESH_LIMIT_S + 3 and len(seen) < len(probes):
        for name, ep, params, val in probes:
            if name in seen:
                continue
            st, h, body, _ = q.get(ep, params)
            if st == 200:
                last[name] = (val(body), h.get("x-cache"))
                if val(body) == base[name] + 1:
                    seen[name] = time.monotonic() - t202
                elif val(body) != base[name]:
                    f.fail("a. %s: %r, expected %r or %r" % (name, val(body), base[name],
                                                             base[name] + 1))
                    seen[name] = -1
        time.sleep(0.02)
    for name, _, _, _ in probes:
        s = seen.get(name)
        if s is None:
            f.fail("a. %s: the event did not show within %.1f s of the 202 (last %r)" %
                   (name, FRESH_LIMIT_S + 3, last.get(name)))
        elif s >= 0:
            f.check(s <= FRESH_LIMIT_S, "a. %s: the event showed %.2f s after the 202, expected "
                    "<= %.1f s" % (name, s, FRESH_LIMIT_S))
    log("a. freshness: %s" % ", ".join("%s %.2f s" % (k, v) for k, v in sorted(seen.items())))


def part_b(sb, T, redis, query):
    f = sb.failures
    q = T["A"]["q"]
    qs = queries(0) + queries(1)
    recorded = []
    for ep, params in qs:
        st, h, body, _ = q.get(ep, params)
        f.check(st == 200, "b. warm %s: %s %.200r" % (qname(ep, params), st, body))
        recorded.append((ep, params, body))
        st, h, b2, _ = q.get(ep, params)
        want = "bypass" if ep == "/events" else "hit"
        f.check(h.get("x-cache") == want and b2 == body,
                "b. warm %s again: X-Cache %r (expected %s), same answer %s" %
                (qname(ep, params), h.get("x-cache"), want, b2 == body))
    st, samples = fetch_metrics(query.port)
    err0 = metric_sum(samples, "eventops_cache_requests_total", result="error") or 0
    f.check(st == 200 and metric_sum(samples, "eventops_cache_requests_total") is not None,
            "b. query /metrics has no eventops_cache_requests_total (status %s)" % st)

    def outage_round(what, max_s):
        """Every recorded query twice; returns the number of cacheable requests made."""
        n5, slow, ncache = 0, [], 0
        for rnd in range(2):
            for ep, params, body in recorded:
                t0 = time.monotonic()
                try:
                    st, h, b2, _ = q.get(ep, params)
                except eotest.HttpError as e:
                    f.fail("b. %s: %s: no answer: %s" % (what, qname(ep, params), e))
                    continue
                dt = time.monotonic() - t0
                if st >= 500:
                    n5 += 1
                if ep != "/events":
                    ncache += 1
                if dt > max_s:
                    slow.append("%s %.2f s" % (ep, dt))
                f.check(st == 200 and b2 == body, "b. %s: %s: %s %.300r, expected the answer "
                        "recorded with Redis up %.300r" % (what, qname(ep, params), st, b2, body))
                f.check(h.get("x-cache") == "bypass", "b. %s: %s: X-Cache %r, expected bypass "
                        "(Redis unavailable)" % (what, qname(ep, params), h.get("x-cache")))
            time.sleep(0.3)  # past EVENTOPS_REDIS_RETRY_MS: the role tries Redis again
        f.check(n5 == 0, "b. %s: %d answers were 5xx" % (what, n5))
        f.check(not slow, "b. %s: answers slower than %.1f s: %s" % (what, max_s, slow[:5]))
        return ncache

    def hits_back(what):
        ep, params, body = recorded[1]

        def probe():
            st, h, b2, _ = q.get(ep, params)
            return st == 200 and h.get("x-cache") == "hit" and b2 == body
        ok = eotest.wait_until(probe, 10, interval=0.2)
        f.check(ok, "b. %s: no X-Cache hit within 10 s" % what)
        return ok

    redis.stop()
    log("b. redis stopped")
    n1 = outage_round("Redis stopped", 2.0)
    st, samples = fetch_metrics(query.port)
    err1 = metric_sum(samples, "eventops_cache_requests_total", result="error") or 0
    f.check(err1 - err0 == n1, "b. eventops_cache_requests_total{result=\"error\"} went from %s "
            "to %s over %d cacheable requests with Redis stopped: expected one error each" %
            (err0, err1, n1))
    redis.start()
    log("b. redis started again on :%d" % redis.port)
    hits_back("Redis back")
    redis.pause()
    log("b. redis frozen (SIGSTOP)")
    st, samples = fetch_metrics(query.port)
    err1 = metric_sum(samples, "eventops_cache_requests_total", result="error") or 0
    try:
        n2 = outage_round("Redis frozen", 1.0)
    finally:
        redis.resume()
    st, samples = fetch_metrics(query.port)
    err2 = metric_sum(samples, "eventops_cache_requests_total", result="error") or 0
    f.check(err2 - err1 == n2, "b. eventops_cache_requests_total{result=\"error\"} went from %s "
            "to %s over %d cacheable requests with Redis frozen: expected one error each" %
            (err1, err2, n2))
    log("b. redis resumed (SIGCONT); errors counted %s -> %s -> %s" % (err0, err1, err2))
    hits_back("Redis resumed")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
