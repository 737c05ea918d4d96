#!/usr/bin/env python3
"""End-to-end: parameter checking of the query role (docs/query.md, "Common parameters and
rules" and each endpoint's parameters).

The query role runs with EVENTOPS_QUERY_MAX_BUCKETS=100 (periods keep the default maximum,
90). A few events are stored so that raw events have a real cursor.

  1. every rule, on every endpoint it applies to, answers 400 with
     {"error": {"code": "invalid_parameter", "message": "...", "field": "<parameter>"}},
     Content-Type application/json and Cache-Control no-store:
     unknown interval; tz not in pg_timezone_names (decided by asking PostgreSQL, so zone links
     and oddities like "posixrules" that are in the view must be accepted); from >= to (equal,
     reversed, one microsecond; `from` alone later than now); unparsable from/to; more buckets
     than EVENTOPS_QUERY_MAX_BUCKETS (101 vs exactly 100, default ranges, minute, Kathmandu
     hours; retention cohorts, naming `period`); bad cursor (garbage, empty, truncated, base64
     of junk); bad property (empty, 5 levels, empty names, bad characters, 65 characters,
     non-ASCII); steps (1, 11, empty, empty item, an over-long type); within (0s, 91d, 13w,
     2161h, 7776001s, abc, 1y, 1.5h, -1d, ...); periods (0, 91, abc, ...); period; limit
     (0, 1001, abc, ...); an unknown parameter (also a case variant of a known one, and a
     parameter of another endpoint); a repeated parameter (same and different values); an
     over-long (201 bytes) or empty eventType / startEvent / returnEvent; a missing required
     parameter (property, steps, startEvent, returnEvent).
  2. the valid edges are accepted (200): offsets in from/to (+05:45, -03:30), 1 to 6 fraction
     digits, a one-microsecond range, interval and period aliases, limit 1 and 1000, within 1s
     and 90d (also 12w, 2160h, 7776000s, 129600m; answered in the largest whole unit), periods
     1 and 90, 2 and 10 steps, a 4-level property and a 64-character name, an eventType of 200
     bytes, non-ASCII and with a space, exactly 100 buckets (and 100 retention cohorts), zone
     names of pg_timezone_names, lower-case t/z (RFC 3339 section 5.6).
  3. hostile strings never produce a 5xx (nor a hang): percent-encoded NULs in every parameter,
     invalid UTF-8, broken percent escapes, SQL and JSON metacharacters, unicode controls,
     huge numbers, extreme years, empty names, thousands of parameters, query strings of 8 KB
     to 1 MB; odd paths. The role keeps running and answers a valid query afterwards; no
     sanitizer report (sb.check_clean_end).

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN;
python3-cryptography. Exit 0 = pass.
"""

import base64
import http.client
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from querytest import QueryClient, check_query_error, query_token  # noqa: E402

MAX_BUCKETS = 100
HOSTILE_TIMEOUT = 10.0
R = [("from", "2026-06-01T00:00:00Z"), ("to", "2026-06-03T00:00:00Z")]
BASE = {
    "/events/count": R,
    "/events/trend": R + [("interval", "hour")],
    "/events/unique-users": R + [("interval", "hour")],
    "/events/breakdown": R + [("property", "plan")],
    "/events/funnel": R + [("steps", "signup,page_view")],
    "/events/retention": R + [("startEvent", "signup"), ("returnEvent", "page_view")],
    "/events/types": [],
    "/events": R,
}
# Parameters each endpoint accepts (docs/query.md, "Endpoints").
ACCEPTS = {
    "/events/count": ["eventType", "from", "to"],
    "/events/trend": ["eventType", "interval", "from", "to", "tz"],
    "/events/unique-users": ["eventType", "from", "to", "interval", "tz"],
    "/events/breakdown": ["eventType", "property", "from", "to", "limit"],
    "/events/funnel": ["steps", "within", "from", "to"],
    "/events/retention": ["startEvent", "returnEvent", "period", "periods", "from", "to", "tz"],
    "/events/types": [],
    "/events": ["eventType", "userId", "from", "to", "limit", "cursor"],
}
SAMPLE = {"eventType": "signup", "from": "2026-06-01T00:00:00Z", "to": "2026-06-03T00:00:00Z",
          "interval": "hour", "tz": "Europe/Berlin", "property": "plan", "limit": "5",
          "steps": "signup,page_view", "within": "1h", "startEvent": "signup",
          "returnEvent": "page_view", "period": "day", "periods": "3", "userId": "u1"}
WITH_RANGE = [ep for ep in BASE if ep != "/events/types"]


def setp(params, name, value):
    """params with name set to value (replaced where present, else appended)."""
    out = [(k, v) for k, v in params if k != name]
    return out + [(name, value)]


def delp(params, name):
    return [(k, v) for k, v in params if k != name]


class Run:
    def __init__(self, sb, client):
        self.sb = sb
        self.f = sb.failures
        self.c = client
        self.n400 = 0
        self.n200 = 0
        self.nhostile = 0
        self.statuses = {}

    def bad(self, name, ep, params, field):
        try:
            st, h, body, url = self.c.get(ep, params)
        except eotest.HttpError as e:
            self.f.fail("%s (%s): no answer: %s" % (name, ep, e))
            return
        self.n400 += 1
        label = "%s: GET %s" % (name, url[len(self.c.base_url):][:300])
        if check_query_error(self.f, label, (st, h, body), field):
            cc = h.get("cache-control", "").replace(" ", "").lower()
            self.f.check(cc == "no-store", "%s: Cache-Control %r on the 400, expected no-store"
                         % (label, h.get("cache-control")))

    def good(self, name, ep, params):
        try:
            st, h, body, url = self.c.get(ep, params)
        except eotest.HttpError as e:
            self.f.fail("%s (%s): no answer: %s" % (name, ep, e))
            return None
        self.n200 += 1
        self.f.check(st == 200, "%s: GET %s: status %s, expected 200 (%.300r)" %
                     (name, url[len(self.c.base_url):][:300], st, body))
        return body

    def hostile(self, name, path_and_query, timeout=HOSTILE_TIMEOUT, big=False):
        """Raw request line; any answer but 5xx is fine, and for requests over the header limit
        (big) also a closed connection. No answer within timeout (the connection held open) is
        a failure."""
        self.nhostile += 1
        big = big or len(path_and_query) > 16 * 1024
        u = self.c.base_url.split("//", 1)[1]
        host, port = u.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        t0 = time.monotonic()
        try:
            conn.putrequest("GET", path_and_query, skip_accept_encoding=True)
            conn.putheader("Authorization", "Bearer " + self.c.token)
            conn.endheaders()
            resp = conn.getresponse()
            st = resp.status
            body = resp.read()
        except TimeoutError:
            self.statuses["timeout"] = self.statuses.get("timeout", 0) + 1
            self.f.fail("hostile %s (%d bytes): no answer within %.0f s, connection held open"
                        % (name, len(path_and_query), timeout))
            return None
        except (OSError, http.client.HTTPException) as e:
            if big:
                self.statuses["closed"] = self.statuses.get("closed", 0) + 1
                return None
            self.f.fail("hostile %s: no answer: %s: %s" % (name, type(e).__name__, e))
            return None
        finally:
            conn.close()
        dt = time.monotonic() - t0
        self.statuses[st] = self.statuses.get(st, 0) + 1
        self.f.check(st < 500, "hostile %s: status %d (%.300r)" % (name, st, body))
        self.f.check(dt < timeout, "hostile %s: took %.1f s" % (name, dt))
        return st


def main():
    env = {"EVENTOPS_QUERY_MAX_BUCKETS": str(MAX_BUCKETS)}
    with eotest.Sandbox("query-params", extra_env=env) as sb:
        f = sb.failures
        key = sb.create_signing_key()
        t = sb.create_tenant("qp-" + eotest.rand_hex(6))
        client = sb.create_client(t["tenantId"], ["events:read"])
        coll, proc, query = sb.collector(), sb.processor(), sb.query()
        for r in (coll, proc, query):
            r.start()
        try:
            for r in (coll, proc, query):
                r.wait_ready(timeout=90)
        except (RuntimeError, TimeoutError) as e:
            f.fail("roles did not start: %s (query log: %s)" % (e, query.tail(5)))
            return sb.report("query params: roles did not start")
        evs = [{"messageId": "qp-%d" % i, "eventType": "signup", "userId": "u%d" % i,
                "timestamp": "2026-06-01T1%d:00:00Z" % i, "properties": {"plan": "pro"}}
               for i in range(5)]
        st, _, body = eotest.post_json(sb.url("/events/batch"), evs, key=t["writeKey"])
        f.check(st == 202, "seed events: %s %.200r" % (st, body))
        sb.wait_stored([e["messageId"] for e in evs])
        run = Run(sb, QueryClient(sb.query_url(""), query_token(sb, client, key["kid"])))
        t0 = time.monotonic()
        part_rules(sb, run)
        log("1. rules: %d requests answered 400 as expected or recorded (%.1f s)" %
            (run.n400, time.monotonic() - t0))
        t0 = time.monotonic()
        part_valid(sb, run)
        log("2. valid edges: %d requests (%.1f s)" % (run.n200, time.monotonic() - t0))
        t0 = time.monotonic()
        part_hostile(sb, run)
        log("3. hostile: %d requests, statuses %s (%.1f s)" %
            (run.nhostile, run.statuses, time.monotonic() - t0))
        t0 = time.monotonic()
        part_funnel_cap(sb, query, client, key)
        log("4. the funnel's event cap (%.1f s)" % (time.monotonic() - t0))
        # still there and still right
        f.check(query.running(), "the query role exited during the hostile requests")
        f.check(query.is_ready(), "the query role's /readyz does not answer 200 at the end")
        body = run.good("after the hostile requests", "/events/count", R)
        f.check(isinstance(body, dict) and body.get("count") == 5,
                "count after the hostile requests: %.200r, expected 5" % (body,))
        sb.check_clean_end(running=(coll, proc, query))
        return sb.report("query params: %d refusals, %d valid edges, %d hostile requests" %
                         (run.n400, run.n200, run.nhostile))


def part_funnel_cap(sb, query, client, key):
    """A query role with EVENTOPS_QUERY_MAX_FUNNEL_EVENTS=4 (in place of the test's, which comes
    back after): a funnel whose step types have 4 events in the hours it reads from the
    timelines is answered; one with 5 is 400 naming `from` and the setting (the seed: signups
    at 10:00 .. 14:00 UTC on 2026-06-01)."""
    f = sb.failures
    query.stop()
    capped = sb.query({"EVENTOPS_QUERY_MAX_FUNNEL_EVENTS": "4"}, name="query-funnel-cap")
    capped.start()
    try:
        capped.wait_ready(timeout=90)
    except (RuntimeError, TimeoutError) as e:
        f.fail("the query role with the funnel cap did not start: %s" % e)
        capped.stop()
        query.start()
        query.wait_ready(timeout=90)
        return
    c = QueryClient(sb.query_url(""), query_token(sb, client, key["kid"]))
    four = [("steps", "signup,signup"), ("from", "2026-06-01T10:00:00Z"),
            ("to", "2026-06-01T13:00:00Z"), ("within", "1s")]
    st, h, body, _ = c.get("/events/funnel", four)
    f.check(st == 200 and h.get("x-query-source") == "timelines" and isinstance(body, dict) and
            [s.get("users") for s in body.get("steps", [])] == [3, 0],
            "funnel over 4 events with a cap of 4: %s %s %.300r, expected 200 from the "
            "timelines with 3 then 0 users" % (st, h.get("x-query-source"), body))
    five = [("steps", "signup,signup"), ("from", "2026-06-01T10:00:00Z"),
            ("to", "2026-06-01T14:00:00Z"), ("within", "1s")]
    st, h, body, url = c.get("/events/funnel", five)
    if check_query_error(f, "funnel over 5 events with a cap of 4", (st, h, body), "from"):
        msg = body["error"].get("message", "")
        f.check("EVENTOPS_QUERY_MAX_FUNNEL_EVENTS" in msg and "4 events" in msg,
                "the 400 of the funnel cap does not name the setting and the cap: %r" % msg)
    capped.stop()
    query.start()
    query.wait_ready(timeout=90)


# ---------------------------------------------------------------------------------------------

BAD_TIMES = ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-06-01T24:00:00Z",
             "2026-06-01T00:60:00Z", "2026-06-01T00:00:00", "2026-06-01", "1780000000",
             "2026-06-01T00:00:00.Z", "2026-06-01T00:00:00+25:00", "2026-06-01T00:00Z", "",
             " 2026-06-01T00:00:00Z", "2026-06-01T00:00:00Zjunk", "2026-6-1T00:00:00Z",
             "2026-06-01T00:00:00+0200", "2026-06-01T00:00:00 +02:00", "now",
             "10000-01-01T00:00:00Z", "2026-06-01T00:00:00.123+02", "2026-06-01T00:00:00-00:60"]


def part_rules(sb, run):
    # interval
    for ep in ("/events/trend", "/events/unique-users"):
        for v in ("second", "", "days", "fortnight", "hour ", "1h", "quarter", "year"):
            run.bad("interval %r" % v, ep, setp(BASE[ep], "interval", v), "interval")
    # tz
    for ep in ("/events/trend", "/events/unique-users", "/events/retention"):
        for v in ("Mars/Olympus", "", "UTC+5", "+05:30", "Europe/Berlin'--", "../../etc/passwd",
                  "Europe/", "Europe/Berlin ", "Europe/Berlin/", "Etc/GMT+15"):
            run.bad("tz %r" % v, ep, setp(BASE[ep], "tz", v), "tz")
    # from >= to
    for ep in WITH_RANGE:
        b = BASE[ep]
        run.bad("from == to", ep, setp(setp(b, "from", "2026-06-02T00:00:00Z"), "to",
                                       "2026-06-02T00:00:00Z"), ("from", "to"))
        run.bad("from > to", ep, setp(setp(b, "from", "2026-06-03T00:00:00Z"), "to",
                                      "2026-06-01T00:00:00Z"), ("from", "to"))
        run.bad("from one microsecond after to", ep,
                setp(setp(b, "from", "2026-06-02T00:00:00.000001Z"), "to",
                     "2026-06-02T00:00:00Z"), ("from", "to"))
        run.bad("from == to written with different offsets", ep,
                setp(setp(b, "from", "2026-06-02T05:30:00+05:30"), "to",
                     "2026-06-02T00:00:00Z"), ("from", "to"))
        run.bad("only from, later than now", ep, setp(delp(b, "to"), "from",
                                                      "2099-01-01T00:00:00Z"), ("from", "to"))
    # unparsable from/to
    for ep in WITH_RANGE:
        values = BAD_TIMES if ep == "/events/count" else BAD_TIMES[:3] + ["2026-06-01"]
        for which in ("from", "to"):
            for v in values:
                run.bad("%s %r" % (which, v), ep, setp(BASE[ep], which, v), which)
    # buckets
    for ep in ("/events/trend", "/events/unique-users"):
        b = delp(delp(BASE[ep], "from"), "to")
        run.bad("101 hour buckets", ep, b + [("from", "2026-06-01T00:30:00Z"),
                                             ("to", "2026-06-05T04:00:00.000001Z")], "interval")
        run.bad("101 hour buckets (from on a boundary)", ep,
                b + [("from", "2026-06-01T00:00:00Z"), ("to", "2026-06-05T04:00:00.5Z")],
                "interval")
        run.bad("120 minute buckets", ep, setp(b, "interval", "minute") +
                [("from", "2026-06-01T00:00:00Z"), ("to", "2026-06-01T02:00:00Z")], "interval")
        run.bad("101 day buckets", ep, setp(b, "interval", "day") +
                [("from", "2026-01-01T00:00:00Z"), ("to", "2026-04-11T00:00:00.000001Z")],
                "interval")
        run.bad("default range (7 days) in hours: 168 buckets", ep, setp(b, "interval", "hour"),
                "interval")
        run.bad("default range in minutes", ep, setp(b, "interval", "minute"), "interval")
        run.bad("101 Kathmandu hours", ep, setp(setp(b, "interval", "hour"), "tz",
                                                "Asia/Kathmandu") +
                [("from", "2026-06-01T00:15:00Z"), ("to", "2026-06-05T04:15:00.000001Z")],
                "interval")
        run.bad("101 daily (alias) buckets", ep, setp(b, "interval", "daily") +
                [("from", "2026-01-01T00:00:00Z"), ("to", "2026-04-11T00:00:00.000001Z")],
                "interval")
    # retention: the cohorts count against the bucket limit, naming `period`
    ep = "/events/retention"
    b = delp(delp(BASE[ep], "from"), "to")
    run.bad("retention: 101 day cohorts", ep, b + [("from", "2026-01-01T00:00:00Z"),
                                                   ("to", "2026-04-11T00:00:00.000001Z"),
                                                   ("period", "day")], "period")
    run.bad("retention: 101 week cohorts", ep, b + [("from", "2024-01-01T00:00:00Z"),
                                                    ("to", "2025-12-02T00:00:00Z"),
                                                    ("period", "week")], "period")
    run.bad("retention: default period (day) over 101 days", ep,
            b + [("from", "2026-01-01T00:00:00Z"), ("to", "2026-04-11T00:00:00.000001Z")],
            "period")
    # cursor
    st, _, body, _ = run.c.get("/events", R + [("limit", "1")])
    real = body.get("nextCursor") if isinstance(body, dict) else None
    if run.f.check(st == 200 and isinstance(real, str) and real,
                   "raw events limit=1: %s %.200r, expected a nextCursor" % (st, body)):
        bad_cursors = [("garbage", "!!garbage!!"), ("empty", ""), ("half", real[:len(real) // 2]),
                       ("truncated by one", real[:-1]), ("real + junk", real + "x@"),
                       ("base64 of junk", base64.b64encode(b"hello, junk \x00\xff").decode()),
                       ("base64url of JSON", eotest.b64url_encode('{"t":1,"m":"x"}')),
                       ("base64 of 600 random bytes",
                        base64.urlsafe_b64encode(os.urandom(600)).decode()),
                       ("spaces", "    ")]
        for what, v in bad_cursors:
            if v == real:
                continue
            run.bad("cursor: %s" % what, "/events", R + [("limit", "1"), ("cursor", v)],
                    "cursor")
        run.good("cursor: the real one", "/events", R + [("limit", "1"), ("cursor", real)])
    # property
    ep = "/events/breakdown"
    for v in ("", "a.b.c.d.e", "a..b", ".a", "a.", "pl an", "plan!", "a" * 65, "b.%s" % ("a" * 65),
              "pl\u00e4n", "a/b", "a.b.c.d.", "plan'--", "a,b", "plan[0]", "a:b", "*"):
        run.bad("property %r" % v[:70], ep, setp(BASE[ep], "property", v), "property")
    # steps
    ep = "/events/funnel"
    for v in ("signup", "", "a,,b", ",a,b", "a,b,", ",", ",".join("s%d" % i for i in range(11)),
              "a," + "x" * 201):
        run.bad("steps %r" % v[:60], ep, setp(BASE[ep], "steps", v), "steps")
    # within
    for v in ("0s", "91d", "13w", "2161h", "7776001s", "129601m", "abc", "1y", "", "1.5h", "-1d",
              "1 d", "d", "1", "0d", "1ms", "1dd", "d1", "1m30s"):
        run.bad("within %r" % v, ep, setp(BASE[ep], "within", v), "within")
    # periods, period
    ep = "/events/retention"
    for v in ("0", "91", "abc", "-1", "1.5", "", "1e1", " 7", "7 ", "0x10"):
        run.bad("periods %r" % v, ep, setp(BASE[ep], "periods", v), "periods")
    for v in ("month", "hour", "", "days", "minute", "monthly", "2d"):
        run.bad("period %r" % v, ep, setp(BASE[ep], "period", v), "period")
    # limit
    for ep in ("/events/breakdown", "/events"):
        for v in ("0", "1001", "abc", "-1", "", "1.0", "10abc", " 5", "1e2"):
            run.bad("limit %r" % v, ep, setp(BASE[ep], "limit", v), "limit")
    # unknown parameters
    for ep in BASE:
        run.bad("unknown parameter foo", ep, BASE[ep] + [("foo", "1")], "foo")
        run.bad("unknown parameter eventtype (case)", ep, BASE[ep] + [("eventtype", "signup")],
                "eventtype")
        run.bad("unknown parameter From (case)", ep, BASE[ep] + [("From", "2026-06-01T00:00:00Z")],
                "From")
        run.bad("unknown parameter with an empty value", ep, BASE[ep] + [("bogus", "")], "bogus")
    for ep, name in (("/events/count", "interval"), ("/events/count", "cursor"),
                     ("/events/trend", "steps"), ("/events/breakdown", "interval"),
                     ("/events/funnel", "eventType"), ("/events/retention", "limit"),
                     ("/events/types", "limit"), ("/events", "tz"), ("/events", "interval"),
                     ("/events/funnel", "tz")):
        run.bad("parameter %s of another endpoint" % name, ep,
                BASE[ep] + [(name, SAMPLE[name] if name in SAMPLE else "x")], name)
    # repeated parameters
    for ep, names in ACCEPTS.items():
        for name in names:
            if name == "cursor":
                continue
            params = setp(BASE[ep], name, SAMPLE[name])
            run.bad("%s repeated (same value)" % name, ep, params + [(name, SAMPLE[name])], name)
            other = {"from": "2026-06-01T01:00:00Z", "to": "2026-06-02T00:00:00Z",
                     "limit": "7", "periods": "4", "interval": "day", "tz": "UTC",
                     "within": "2h", "period": "week"}.get(name, SAMPLE[name] + "x")
            run.bad("%s repeated (different values)" % name, ep, params + [(name, other)], name)
    # over-long / empty event types
    long201 = "e" * 201
    for ep in ("/events/count", "/events/trend", "/events/unique-users", "/events/breakdown",
               "/events"):
        run.bad("eventType of 201 bytes", ep, setp(BASE[ep], "eventType", long201), "eventType")
        run.bad("eventType of 5000 bytes", ep, setp(BASE[ep], "eventType", "e" * 5000),
                "eventType")
        run.bad("empty eventType", ep, setp(BASE[ep], "eventType", ""), "eventType")
    for name in ("startEvent", "returnEvent"):
        ep = "/events/retention"
        run.bad("%s of 201 bytes" % name, ep, setp(BASE[ep], name, long201), name)
        run.bad("empty %s" % name, ep, setp(BASE[ep], name, ""), name)
    # missing required parameters
    run.bad("breakdown without property", "/events/breakdown", R, "property")
    run.bad("funnel without steps", "/events/funnel", R, "steps")
    run.bad("retention without startEvent", "/events/retention",
            R + [("returnEvent", "page_view")], "startEvent")
    run.bad("retention without returnEvent", "/events/retention",
            R + [("startEvent", "signup")], "returnEvent")


def part_valid(sb, run):
    g = run.good
    for ep in WITH_RANGE:
        g("from/to with +05:45 and -03:30 offsets", ep,
          setp(setp(BASE[ep], "from", "2026-06-01T05:45:00+05:45"), "to",
               "2026-06-02T20:30:00-03:30"))
    g("lower-case t and z (RFC 3339 section 5.6)", "/events/count",
      [("from", "2026-06-01t00:00:00z"), ("to", "2026-06-03t00:00:00z")])
    for d in range(1, 7):
        frac = "123456"[:d]
        g("from with %d fraction digits" % d, "/events/count",
          setp(R, "from", "2026-06-01T00:00:00.%sZ" % frac))
    body = g("one-microsecond range", "/events/count",
             [("from", "2026-06-01T10:00:00Z"), ("to", "2026-06-01T10:00:00.000001Z")])
    run.f.check(isinstance(body, dict) and body.get("count") == 1,
                "one-microsecond range holding one event: %.200r, expected count 1" % (body,))
    for alias, canon in (("hourly", "hour"), ("daily", "day"), ("weekly", "week"),
                         ("monthly", "month"), ("minute", "minute")):
        rng_ = [("from", "2026-06-01T00:00:00Z"), ("to", "2026-06-01T01:00:00Z")] \
            if canon == "minute" else R
        for ep in ("/events/trend", "/events/unique-users"):
            body = g("interval %s" % alias, ep, setp(setp(setp(BASE[ep], "from", rng_[0][1]),
                                                          "to", rng_[1][1]), "interval", alias))
            run.f.check(isinstance(body, dict) and body.get("interval") == canon,
                        "%s interval=%s: answer names %r, expected the canonical %r" %
                        (ep, alias, body.get("interval") if isinstance(body, dict) else None,
                         canon))
    for alias, canon in (("daily", "day"), ("weekly", "week"), ("day", "day"), ("week", "week")):
        body = g("period %s" % alias, "/events/retention",
                 setp(BASE["/events/retention"], "period", alias))
        run.f.check(isinstance(body, dict) and body.get("period") == canon,
                    "retention period=%s: answer names %r, expected %r" %
                    (alias, body.get("period") if isinstance(body, dict) else None, canon))
    for ep in ("/events/breakdown", "/events"):
        for v in ("1", "1000"):
            g("limit %s" % v, ep, setp(BASE[ep], "limit", v))
    for v, secs, canon in (("1s", 1, "1s"), ("90d", 7776000, "90d"), ("12w", 7257600, "12w"),
                           ("2160h", 7776000, "90d"), ("7776000s", 7776000, "90d"),
                           ("129600m", 7776000, "90d"), ("1w", 604800, "1w"),
                           ("24h", 86400, "1d"), ("7d", 604800, "1w"), ("60s", 60, "1m"),
                           ("90m", 5400, "90m"), ("36h", 129600, "36h")):
        body = g("within %s" % v, "/events/funnel", setp(BASE["/events/funnel"], "within", v))
        got = (body.get("withinSeconds"), body.get("within")) if isinstance(body, dict) else None
        run.f.check(got == (secs, canon), "within=%s: withinSeconds/within %r, expected %r" %
                    (v, got, (secs, canon)))
    for v in ("1", "90"):
        body = g("periods %s" % v, "/events/retention",
                 setp(BASE["/events/retention"], "periods", v))
        run.f.check(isinstance(body, dict) and body.get("periods") == int(v),
                    "periods=%s: answer %r" % (v, body.get("periods")
                                                if isinstance(body, dict) else None))
    g("2 steps", "/events/funnel", setp(BASE["/events/funnel"], "steps", "signup,signup"))
    g("10 steps", "/events/funnel", setp(BASE["/events/funnel"], "steps",
                                         ",".join("s%d" % i for i in range(10))))
    g("steps with an encoded comma", "/events/funnel",
      "from=2026-06-01T00:00:00Z&to=2026-06-03T00:00:00Z&steps=signup%2Cpage_view")
    g("steps with a 200-byte type", "/events/funnel",
      setp(BASE["/events/funnel"], "steps", "signup," + "x" * 200))
    for v in ("a.b.c.d", "a" * 64, "$x-y_Z9", "A.b-c.$d", "%s.%s" % ("a" * 64, "b" * 64),
              "address.city", "0"):
        g("property %r" % v[:40], "/events/breakdown",
          setp(BASE["/events/breakdown"], "property", v))
    for ep in ("/events/count", "/events/trend", "/events/unique-users", "/events/breakdown",
               "/events"):
        for v in ("e" * 200, "\u6ce8\u6587", "Video Played", "a+b", "a&b=c"):
            body = g("eventType %r" % v[:20], ep, setp(BASE[ep], "eventType", v))
            if ep != "/events" and isinstance(body, dict):
                run.f.check(body.get("eventType") == v, "%s eventType=%r echoed as %r" %
                            (ep, v[:40], body.get("eventType")))
    g("retention: same start and return event", "/events/retention",
      setp(BASE["/events/retention"], "returnEvent", "signup"))
    g("raw events with userId", "/events", R + [("userId", "u1")])
    for ep in ("/events/trend", "/events/unique-users"):
        b = delp(delp(BASE[ep], "from"), "to")
        g("exactly 100 hour buckets", ep, b + [("from", "2026-06-01T00:30:00Z"),
                                               ("to", "2026-06-05T04:00:00Z")])
        g("exactly 100 hour buckets (from on a boundary)", ep,
          b + [("from", "2026-06-01T00:00:00Z"), ("to", "2026-06-05T04:00:00Z")])
        g("exactly 100 day buckets", ep, setp(b, "interval", "day") +
          [("from", "2026-01-01T00:00:00Z"), ("to", "2026-04-11T00:00:00Z")])
        g("default interval (day) over the default range", ep, delp(b, "interval"))
    ep = "/events/retention"
    g("retention: exactly 100 day cohorts", ep, delp(delp(BASE[ep], "from"), "to") +
      [("from", "2026-01-01T00:00:00Z"), ("to", "2026-04-11T00:00:00Z"), ("period", "day")])
    # zone names: exactly those of pg_timezone_names
    names = ["EST5EDT", "Etc/GMT+5", "Asia/Calcutta", "US/Eastern", "posixrules", "Factory",
             "localtime", "posix/Europe/Berlin", "right/UTC", "Zulu", "GMT-0", "UTC+5",
             "europe/berlin", "America/Argentina/ComodRivadavia", "Asia/Kathmandu",
             "Australia/Lord_Howe", "Etc/GMT-14", "America/Havana"]
    lits = ",".join("'%s'" % n.replace("'", "''") for n in names)
    known = {r[0] for r in sb.sql("SELECT name FROM pg_timezone_names WHERE name IN (%s)" % lits)}
    for n in names:
        for ep in ("/events/trend", "/events/retention"):
            if n in known:
                body = g("tz %s (in pg_timezone_names)" % n, ep, setp(BASE[ep], "tz", n))
                if isinstance(body, dict):
                    run.f.check(body.get("tz") == n, "%s tz=%s echoed as %r" %
                                (ep, n, body.get("tz")))
            else:
                run.bad("tz %s (not in pg_timezone_names)" % n, ep, setp(BASE[ep], "tz", n),
                        "tz")


def part_hostile(sb, run):
    h = run.hostile
    n = 0
    for ep, base in BASE.items():
        q = "&".join("%s=%s" % (k, v) for k, v in base)
        params = ACCEPTS[ep]
        for name in params:
            for val in ("%00", "sig%00nup", "%00%00%00", "2026-06-01T00:00:00Z%00", "%FF%FE",
                        "%C3%28", "%C0%AF", "%", "%zz", "%2", "%%", "%E2%80%AE", "%F0%9F%98%80",
                        "'%20OR%201=1--", "%22%7D%5D", "%5C", "99999999999999999999",
                        "18446744073709551617", "-9223372036854775809"):
                others = "&".join("%s=%s" % (k, v) for k, v in base if k != name)
                h("%s %s=%s" % (ep, name, val), ep + "?" + (others + "&" if others else "") +
                  name + "=" + val)
                n += 1
        for raw in ("=x", "&&&", "a", "=", "&=&", q + "&", "&" + q, q + "&&", "%00=1",
                    "%FF=1", "a%00b=1", q.replace("=", "%3D", 1)):
            h("%s raw %r" % (ep, raw[:40]), ep + "?" + raw)
    # extreme values
    extreme = [
        "/events/count?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999999Z",
        "/events/trend?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&interval=month",
        "/events/trend?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&interval=minute",
        "/events/unique-users?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        "/events/unique-users?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&interval=week",
        "/events/retention?startEvent=a&returnEvent=b&from=0001-01-01T00:00:00Z"
        "&to=9999-12-31T23:59:59Z&periods=90&period=week",
        "/events/funnel?steps=a,b&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&within=90d",
        "/events?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&limit=1000",
        "/events/breakdown?property=plan&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        "/events/count?from=1969-12-31T23:59:59.999999Z&to=1970-01-01T00:00:00.000001Z",
        "/events/count?from=2026-06-01T00:00:00-23:59&to=2026-06-01T00:00:00%2B23:59",
        "/events/trend?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&tz=" + "A/" * 2000,
        "/events/breakdown?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&property=" +
        ".".join(["a"] * 3000),
        "/events/funnel?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&steps=" +
        ",".join(["a"] * 5000),
        "/events/funnel?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&steps=" +
        "," * 5000,
        "/events?cursor=" + "A" * 8000,
        "/events?cursor=" + "%00" * 2000,
        "/events?userId=" + "%F0%9F%98%80" * 500,
        "/events/count?" + "&".join("eventType=a" for _ in range(1000)),
        "/events/count?eventType=" + "x" * 8000,
        "/events/count/", "/events//count", "/events/count?", "/EVENTS/count", "/events/count%00",
        "/events/../events/count", "/events/count;x=1", "/events/types?%00", "/events/%2e%2e/",
        "/events/count#frag", "/events/funnel?steps=a%2C%00%2Cb",
    ]
    for p in extreme:
        h("extreme %.80s" % p, p)
    # big query strings (over the header limit: an answer or a closed connection; never a 5xx)
    for size in (8 * 1024, 16 * 1024, 64 * 1024, 1024 * 1024):
        h("query string of %d bytes" % size, "/events/count?eventType=" + "y" * size)
    # many parameters: 2000 (7 KB, under the header limit) must be answered (400, unknown
    # parameter); 16384 (64 KB, over it) answered or closed, both promptly
    st = h("2000 parameters", "/events/count?" + "&".join("p%d=1" % i for i in range(2000)))
    run.f.check(st in (None, 400), "2000 unknown parameters (7 KB): status %s, expected 400" % st)
    h("16384 parameters", "/events/count?" + "a=b&" * 16384)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
