#!/usr/bin/env python3
"""End-to-end: rule backtests, POST /analytics/rules/{id}/backtest (docs/analytics.md,
"Backtest").

Setup: one sandbox with small backtest limits (EVENTOPS_ANALYTICS_BACKTEST_MAX_EVENTS=5000,
_MAX_RESULTS=500, _MAX_RANGE_S=2 days, _MAX_CONCURRENT=3, _PER_TENANT=2, _TIMEOUT_MS=8000);
the auth, collector, processor and analytics roles. Tenants A (history), B and C (isolation,
concurrency), T (limits), L (the live engine); clients with events:read + analytics:write,
and one with analytics:write only.

Stored events are written directly with SQL into the events table (as the processor stores
them: one row per event, properties and context as jsonb) for A and T, which makes the history
exact and fast to build; L's go through the collector and the processor, so that the live
engine sees them too.

  a. history (A, about 3000 events over 2 h 30 min in bursts, three types, users and
     anonymous ids, numbers, strings and absent amounts): five rules backtested over a range
     that starts and ends inside windows, each compared exactly with a recomputation over the
     same events: tumbling 5 min count of signups by plan with ">= 28" (windows recomputed in
     SQL with date_bin, summaries from the threshold: firing and resolved, also in the
     lead-in's aftermath), hopping 10 min / 5 min mean of properties.amount (only numbers
     count in the mean, every order in count), unique users of every type per 15 min, login
     sessions per user with a 3 min gap, and sliding "signups within 2 min >= 9" (summaries
     at every crossing; no window results in final mode). Only windows lying within
     [from, to) are answered; the answer's members and rule version; ?version=1 of a rule
     changed since (another threshold) and a disabled rule still run.
  b. limits: more than MAX_EVENTS events: truncated, events = 5000, reached = the time of the
     first event not read, the windows complete up to it; more than MAX_RESULTS windows
     (1 s windows): 500 answered, those before the first left out; 400 naming from, to,
     version (not RFC 3339, from not before to, a range over MAX_RANGE_S, unknown and repeated
     parameters, a bad id); 401 without a token, 403 without events:read; with the events
     table locked (a PostgreSQL session holds an exclusive lock): two backtests of A run, a
     third is 429 too_many_backtests (per tenant) with Retry-After, one of B runs, one of C is
     429 (in total); unlocked, the three answer 200; locked again, a backtest answers 503
     query_timeout after EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS.
  c. isolation: B's backtest of A's rule is 404, like an unknown, a deleted or a missing
     version; B's own rule over the same range sees none of A's events.
  d. the live engine: L's rules (tumbling 1 min count by plan, hopping 2 min / 1 min sum, with
     a 7 day horizon so that events of two hours ago are not late) get events through the
     collector; once the engine's window results are stored, the backtest over the same range
     answers the same windows with the same values and counts as the latest revisions the
     engine emitted (GET .../windows), and both equal the recomputation. Summaries are not
     compared here: the engine steps a rule's condition with a window's first final result,
     and a late part of the same batch only makes a new revision.
  e. metrics: eventops_analytics_backtests_total{outcome} counts completed, truncated, busy and
     failed backtests.
  f. shutdown: SIGTERM while a backtest waits for the locked events table: after the drain
     (EVENTOPS_SHUTDOWN_TIMEOUT_MS=2000 for the analytics role) its statement is cancelled and
     it answers 503 shutting_down; the role exits 0 well before the backtest timeout would have
     ended it. The roles stop with exit 0 on SIGTERM, and no sanitizer report is in a log.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import concurrent.futures
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

TIME_BUDGET_S = 900
MAX_EVENTS = 5000
MAX_RESULTS = 500
MAX_RANGE_S = 2 * 86400
TIMEOUT_MS = 8000
US = 1000000
MIN = 60 * US
JSON = {"Content-Type": "application/json"}


# ---- time ----

def rfc(us):
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc(s):
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z$", s)
    if not m:
        raise ValueError("not an RFC 3339 UTC time: %r" % s)
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = int((m.group(7) or "0").ljust(6, "0"))
    t = dt.datetime(y, mo, d, h, mi, se, tzinfo=dt.timezone.utc)
    return int((t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds()) * US + \
        frac


def wstart(item):
    return parse_rfc(item["window"]["start"])


def wend(item):
    return parse_rfc(item["window"]["end"])


# ---- the API ----

class Api:
    def __init__(self, sb, token):
        self.sb = sb
        self.h = {"Authorization": "Bearer " + token} if token else {}

    def req(self, method, path, body=None, headers=None, timeout=60):
        h = dict(self.h)
        if body is not None:
            body = json.dumps(body).encode()
            h.update(JSON)
        h.update(headers or {})
        return eotest.http_request(method, self.sb.analytics_url(path), body, h,
                                   timeout=timeout)

    def create(self, rule):
        st, _, body = self.req("POST", "/analytics/rules", rule)
        if st != 201:
            raise RuntimeError("POST /analytics/rules: %s %r" % (st, body))
        return body["id"]

    def backtest(self, rid, frm=None, to=None, extra="", **kw):
        q = []
        if frm is not None:
            q.append("from=" + rfc(frm))
        if to is not None:
            q.append("to=" + rfc(to))
        if extra:
            q.append(extra)
        path = "/analytics/rules/%s/backtest" % rid + ("?" + "&".join(q) if q else "")
        return self.req("POST", path, **kw)


def err_of(body):
    e = body.get("error") if isinstance(body, dict) else None
    return (e.get("code"), e.get("field")) if isinstance(e, dict) else (None, None)


def expect(f, what, resp, status, code=None, field=None):
    st, _, body = resp
    ok = f.check(st == status, "%s: %s %.400r, expected %s" % (what, st, body, status))
    if ok and code is not None:
        c, fl = err_of(body)
        f.check(c == code and (field is None or fl == field),
                "%s: error %r / field %r, expected %r / %r" % (what, c, fl, code, field))
    return body if ok else None


# ---- events ----

class Ev:
    __slots__ = ("t", "type", "user", "anon", "plan", "amount", "mid")

    def __init__(self, t, etype, user, anon, plan, amount, mid):
        self.t, self.type, self.user, self.anon = t, etype, user, anon
        self.plan, self.amount, self.mid = plan, amount, mid

    def props(self):
        p = {"plan": self.plan}
        if self.amount is not None:
            p["amount"] = self.amount
        return p

    def who(self):
        return ("u", self.user) if self.user is not None else ("a", self.anon)


def history(rnd, base, minutes, n, prefix):
    """n events over `minutes` from base, denser in bursts, sorted by time (ties broken by
    message id as the backtest reads them)."""
    evs = []
    for i in range(n):
        if rnd.random() < 0.35:  # bursts: minutes 20-35, 70-80, 110-115
            lo, hi = rnd.choice([(20, 35), (70, 80), (110, 115)])
            t = base + int(rnd.uniform(lo, hi) * MIN)
        else:
            t = base + int(rnd.uniform(0, minutes) * MIN)
        etype = rnd.choices(["signup", "order", "login"], [4, 3, 3])[0]
        user = "u%d" % rnd.randrange(40)
        anon = None
        if etype != "login" and rnd.random() < 0.15:
            user, anon = None, "anon-%d" % rnd.randrange(10)
        amount = None
        r = rnd.random()
        if r < 0.6:
            amount = round(rnd.uniform(1, 200), 2)
        elif r < 0.8:
            amount = rnd.randrange(1, 50)
        elif r < 0.9:
            amount = "7"  # a string: not a number
        evs.append(Ev(t, etype, user, anon, rnd.choice(["pro", "pro", "free"]), amount,
                      "%s-%05d" % (prefix, i)))
    evs.sort(key=lambda e: (e.t, e.mid))
    return evs


def sql_str(s):
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"


def insert_events(sb, tenant, evs):
    """Writes the events into the events table as the processor stores them."""
    lo = min(e.t for e in evs) // (86400 * US)
    hi = max(e.t for e in evs) // (86400 * US)
    sb.sql("SELECT eventops_ensure_partitions(date '1970-01-01' + %d, date '1970-01-01' + %d)" %
           (lo, hi))
    for i in range(0, len(evs), 2000):
        rows = []
        for e in evs[i:i + 2000]:
            rows.append("('%s', %s, %s, %s, %s, '%s', '%s', %s::jsonb)" % (
                tenant, sql_str(e.mid), sql_str(e.type), sql_str(e.user), sql_str(e.anon),
                rfc(e.t), rfc(e.t), sql_str(json.dumps(e.props()))))
        sb.sql("INSERT INTO events (tenant_id, message_id, event_type, user_id, anonymous_id, "
               "occurred_at, received_at, properties) VALUES " + ",\n".join(rows))


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---- recomputations ----

def tumbling_windows(evs, etype, size, frm, to, key, value):
    """{(group, start): (value, count)} of the windows [k*size, +size) within [frm, to) that
    hold events; key(e) is the group, value(list) the window's value."""
    groups = {}
    for e in evs:
        if (etype == "*" or e.type == etype) and frm <= e.t < to:
            s = e.t - e.t % size
            if s >= frm and s + size <= to:
                groups.setdefault((key(e), s), []).append(e)
    return {k: (value(v), len(v)) for k, v in groups.items()}


def alert_steps(points, threshold):
    """Transitions of ">= threshold" without for, keepFiringFor, clearBelow or cooldown:
    [(status, index)] over the values in order."""
    out, firing = [], False
    for i, v in enumerate(points):
        holds = v >= threshold
        if holds != firing:
            firing = holds
            out.append(("firing" if holds else "resolved", i))
    return out


def close(a, b):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def gkey(group):
    """A window's group (the object the engine answers) as comparable text."""
    return json.dumps(group, sort_keys=True)


def compare_windows(f, what, got, want):
    """got: the answer's windows; want: {(gkey(group), start): (value, count)}."""
    have = {}
    for w in got:
        k = (gkey(w["group"]), wstart(w))
        if k in have:
            f.fail("%s: window %s answered twice" % (what, k))
        have[k] = (w["value"], w["count"])
    missing = sorted(set(want) - set(have))[:5]
    extra = sorted(set(have) - set(want))[:5]
    f.check(not missing and not extra, "%s: windows missing %s, unexpected %s (of %d / %d)" %
            (what, [(g, rfc(s)) for g, s in missing], [(g, rfc(s)) for g, s in extra],
             len(want), len(have)))
    bad = [(k, have[k], want[k]) for k in sorted(set(want) & set(have))
           if not close(have[k][0], want[k][0]) or have[k][1] != want[k][1]]
    f.check(not bad, "%s: %d windows differ (answered, expected), e.g. %s" %
            (what, len(bad), [(g, rfc(s), h, w) for (g, s), h, w in bad[:3]]))
    ordered = [(wend(w), wstart(w)) for w in got]
    f.check(ordered == sorted(ordered), "%s: windows not in window-end order" % what)
    return len(want)


def check_answer_shape(f, what, body, rid, version, frm, to):
    if not f.check(isinstance(body, dict), "%s: %r" % (what, body)):
        return False
    want = {"rule", "from", "to", "events", "windows", "summaries", "late", "truncated",
            "reached"}
    f.check(set(body) == want, "%s: members %s, expected %s" % (what, sorted(body),
                                                                sorted(want)))
    r = body.get("rule") or {}
    f.check(r.get("id") == rid and r.get("version") == version and "rule" in r and
            "createdAt" in r, "%s: rule %r, expected %s version %s" % (what, r, rid, version))
    f.check(body.get("from") == rfc(frm) and body.get("to") == rfc(to),
            "%s: from/to %r %r" % (what, body.get("from"), body.get("to")))
    f.check(body.get("late") == 0, "%s: late %r" % (what, body.get("late")))
    for w in body.get("windows", []) + body.get("summaries", []):
        if wstart(w) < frm or wend(w) > parse_rfc(body["reached"]):
            f.fail("%s: %s lies outside [from, reached)" % (what, w["window"]))
            break
    return True


# ---- a. history ----

def part_a(f, sb, a, ta, evs, base):
    frm, to = base + 17 * MIN + 30 * US, base + 142 * MIN + 10 * US
    tenant = ta["tenantId"]
    rules = {
        "tumbling": {"name": "bt tumbling", "eventType": "signup",
                     "window": {"type": "tumbling", "size": "5m"},
                     "groupBy": ["properties.plan"], "aggregate": {"fn": "count"},
                     "condition": {"op": ">=", "value": 28}},
        "hopping": {"name": "bt hopping", "eventType": "order",
                    "window": {"type": "hopping", "size": "10m", "slide": "5m"},
                    "aggregate": {"fn": "mean", "property": "properties.amount"}},
        "unique": {"name": "bt unique", "eventType": "*",
                   "window": {"type": "tumbling", "size": "15m"},
                   "aggregate": {"fn": "unique_users"}},
        "session": {"name": "bt session", "eventType": "login",
                    "window": {"type": "session", "gap": "3m"}, "groupBy": ["userId"],
                    "aggregate": {"fn": "count"}},
        "sliding": {"name": "bt sliding", "eventType": "signup",
                    "window": {"type": "sliding", "size": "2m"}, "aggregate": {"fn": "count"},
                    "condition": {"op": ">=", "value": 9}},
    }
    ids = {k: a.create(r) for k, r in rules.items()}

    # tumbling count by plan: windows in SQL, summaries from the threshold
    body = expect(f, "A: backtest tumbling", a.backtest(ids["tumbling"], frm, to), 200)
    if body and check_answer_shape(f, "A: tumbling", body, ids["tumbling"], 1, frm, to):
        rows = sb.sql(
            "SELECT properties->>'plan', (extract(epoch FROM date_bin('5 minutes', occurred_at, "
            "timestamptz 'epoch')) * 1000000)::bigint AS s, count(*) FROM events "
            "WHERE tenant_id = '%s' AND event_type = 'signup' AND occurred_at >= '%s' "
            "AND occurred_at < '%s' GROUP BY 1, 2 HAVING (extract(epoch FROM date_bin("
            "'5 minutes', occurred_at, timestamptz 'epoch')) * 1000000)::bigint >= %d "
            "AND (extract(epoch FROM date_bin('5 minutes', occurred_at, timestamptz 'epoch')) "
            "* 1000000)::bigint + %d <= %d" % (tenant, rfc(frm), rfc(to), frm, 5 * MIN, to))
        want = {(gkey({"properties.plan": p}), int(s)): (int(c), int(c)) for p, s, c in rows}
        compare_windows(f, "A: tumbling count (SQL)", body["windows"], want)
        py = tumbling_windows(evs, "signup", 5 * MIN, frm, to,
                              lambda e: gkey({"properties.plan": e.plan}), len)
        f.check(py == want and len(want) > 20,
                "A: the SQL and Python recomputations differ (%d / %d windows)" %
                (len(want), len(py)))
        # summaries: every window from the lead-in's (from - 5 min) on, per plan
        read_from = frm - 5 * MIN
        want_s = []
        for plan in ("free", "pro"):
            starts = list(range(read_from - read_from % (5 * MIN), to, 5 * MIN))
            counts = [sum(1 for e in evs if e.type == "signup" and e.plan == plan and
                          max(s, read_from) <= e.t < min(s + 5 * MIN, to)) for s in starts]
            first = next((i for i, c in enumerate(counts) if c), None)
            if first is None:
                continue
            for status, i in alert_steps(counts[first:], 28):
                s = starts[first + i]
                if s >= frm and s + 5 * MIN <= to:
                    want_s.append((s + 5 * MIN, s, plan, status, counts[first + i]))
        got_s = [(wend(x), wstart(x), x["group"].get("properties.plan"), x["status"],
                  x["value"]) for x in body["summaries"]]
        f.check(sorted(got_s) == sorted(want_s) and len(want_s) >= 4,
                "A: tumbling summaries %s, expected %s" % (got_s[:8], want_s[:8]))
        f.check(all(x["type"] == "analytics.summary" and x["threshold"] == 28 and
                    x["rule"]["id"] == ids["tumbling"] for x in body["summaries"]),
                "A: tumbling summaries' members")
        lead = sum(1 for e in evs if e.type == "signup" and read_from <= e.t < to)
        f.check(body["events"] == lead, "A: tumbling read %r events, expected %d (with the "
                "5 min lead-in)" % (body["events"], lead))
        f.check(body["truncated"] is False and body["reached"] == rfc(to),
                "A: tumbling truncated %r reached %r" % (body["truncated"], body["reached"]))

    # hopping mean
    body = expect(f, "A: backtest hopping", a.backtest(ids["hopping"], frm, to), 200)
    if body and check_answer_shape(f, "A: hopping", body, ids["hopping"], 1, frm, to):
        want = {}
        s = frm - frm % (5 * MIN) + (5 * MIN if frm % (5 * MIN) else 0)
        while s + 10 * MIN <= to:
            inw = [e for e in evs if e.type == "order" and s <= e.t < s + 10 * MIN]
            nums = [e.amount for e in inw if is_num(e.amount)]
            if inw:
                want[("{}", s)] = (sum(nums) / len(nums) if nums else None, len(inw))
            s += 5 * MIN
        compare_windows(f, "A: hopping mean", body["windows"], want)
        f.check(body["summaries"] == [], "A: hopping summaries %r" % body["summaries"][:2])

    # unique users of every type
    body = expect(f, "A: backtest unique", a.backtest(ids["unique"], frm, to), 200)
    if body and check_answer_shape(f, "A: unique", body, ids["unique"], 1, frm, to):
        want = tumbling_windows(evs, "*", 15 * MIN, frm, to, lambda e: "{}",
                                lambda v: len({e.who() for e in v}))
        compare_windows(f, "A: unique users", body["windows"], want)

    # sessions per user
    body = expect(f, "A: backtest session", a.backtest(ids["session"], frm, to), 200)
    if body and check_answer_shape(f, "A: session", body, ids["session"], 1, frm, to):
        want, gap = {}, 3 * MIN
        for user in sorted({e.user for e in evs if e.type == "login"}):
            ts = [e.t for e in evs if e.type == "login" and e.user == user and
                  frm - gap <= e.t < to]
            i = 0
            while i < len(ts):
                j = i
                while j + 1 < len(ts) and ts[j + 1] < ts[j] + gap:
                    j += 1
                if ts[i] >= frm and ts[j] + gap <= to:
                    want[(gkey({"userId": user}), ts[i])] = (j - i + 1, j - i + 1)
                i = j + 1
        n = compare_windows(f, "A: sessions", body["windows"], want)
        f.check(n > 20, "A: only %d sessions to compare" % n)
        f.check(all(wend(w) == max(e.t for e in evs if e.type == "login" and
                                   e.user == w["group"]["userId"] and
                                   wstart(w) <= e.t < wend(w)) + gap
                    for w in body["windows"]), "A: a session's end is its last event + gap")

    # sliding "N within 2 min": summaries at every crossing
    body = expect(f, "A: backtest sliding", a.backtest(ids["sliding"], frm, to), 200)
    if body and check_answer_shape(f, "A: sliding", body, ids["sliding"], 1, frm, to):
        T = 2 * MIN
        ts = [e.t for e in evs if e.type == "signup" and frm - T <= e.t < to]
        pts = sorted(set(ts) | {t + T for t in ts})
        counts = [sum(1 for t in ts if x - T < t <= x) for x in pts]
        want_s = [(pts[i], status, counts[i]) for status, i in alert_steps(counts, 9)
                  if pts[i] - T >= frm and pts[i] <= to]
        got_s = [(wend(x), x["status"], x["value"]) for x in body["summaries"]]
        f.check(got_s == want_s and len(want_s) >= 4,
                "A: sliding summaries %s, expected %s" % (got_s[:6], want_s[:6]))
        f.check(all(wend(x) - wstart(x) == T for x in body["summaries"]),
                "A: sliding windows are 2 min long")
        f.check(body["windows"] == [], "A: a sliding rule in final mode answered windows")

    # versions: ?version=1 after a change, and a disabled rule runs
    v2 = dict(rules["tumbling"], condition={"op": ">=", "value": 1000}, enabled=False)
    expect(f, "A: PUT version 2", a.req("PUT", "/analytics/rules/" + ids["tumbling"], v2), 200)
    body = expect(f, "A: backtest version 2 (disabled, threshold 1000)",
                  a.backtest(ids["tumbling"], frm, to), 200)
    if body and check_answer_shape(f, "A: v2", body, ids["tumbling"], 2, frm, to):
        f.check(body["summaries"] == [] and len(body["windows"]) > 10,
                "A: v2 summaries %r windows %d" % (body["summaries"][:2], len(body["windows"])))
        f.check(body["rule"]["rule"]["enabled"] is False, "A: v2 is the disabled version")
    body = expect(f, "A: backtest ?version=1", a.backtest(ids["tumbling"], frm, to,
                                                          "version=1"), 200)
    if body and check_answer_shape(f, "A: ?version=1", body, ids["tumbling"], 1, frm, to):
        f.check(len(body["summaries"]) >= 4, "A: version 1 has its summaries again")
    expect(f, "A: backtest ?version=3", a.backtest(ids["tumbling"], frm, to, "version=3"), 404,
           "not_found")
    log("a. history: %d events of A; tumbling (SQL), hopping, unique users, sessions, sliding, "
        "versions" % len(evs))
    return ids


# ---- b. limits ----

class TableLock:
    """A PostgreSQL session holding an exclusive lock on the events table until release()."""

    def __init__(self, dsn):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", dsn],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; "
                           "SELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError("could not lock the events table: %r %s" %
                               (line, self.p.stderr.read()))

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n")
            self.p.stdin.close()
            self.p.wait(timeout=30)


def part_b(f, sb, a, b, c, wo, tt, t_api):
    # T: 6000 signups, one every 0.5 s from tbase
    tbase = (int(time.time()) // 3600 - 5) * 3600 * US
    evs = [Ev(tbase + i * US // 2, "signup", "t%d" % (i % 13), None, "pro", None,
              "t-%05d" % i) for i in range(6000)]
    insert_events(sb, tt["tenantId"], evs)
    r1 = t_api.create({"name": "t minute", "eventType": "signup",
                       "window": {"type": "tumbling", "size": "1m"},
                       "aggregate": {"fn": "count"}})
    body = expect(f, "T: backtest past MAX_EVENTS", t_api.backtest(r1, tbase, tbase + 60 * MIN),
                  200)
    if body and check_answer_shape(f, "T: events limit", body, r1, 1, tbase, tbase + 60 * MIN):
        cut = evs[MAX_EVENTS].t  # the first not read (the lead-in holds none)
        f.check(body["truncated"] is True and body["events"] == MAX_EVENTS and
                body["reached"] == rfc(cut),
                "T: truncated %r events %r reached %r, expected true, %d, %s" %
                (body["truncated"], body["events"], body["reached"], MAX_EVENTS, rfc(cut)))
        want = {("{}", tbase + k * MIN): (120, 120) for k in range(60)
                if tbase + (k + 1) * MIN <= cut}
        compare_windows(f, "T: windows up to reached", body["windows"], want)
    r2 = t_api.create({"name": "t second", "eventType": "signup",
                       "window": {"type": "tumbling", "size": "1s"},
                       "aggregate": {"fn": "count"}})
    body = expect(f, "T: backtest past MAX_RESULTS", t_api.backtest(r2, tbase, tbase + 10 * MIN),
                  200)
    if body and check_answer_shape(f, "T: results limit", body, r2, 1, tbase, tbase + 10 * MIN):
        f.check(body["truncated"] is True and len(body["windows"]) == MAX_RESULTS and
                body["reached"] == rfc(tbase + (MAX_RESULTS + 1) * US),
                "T: truncated %r, %d windows, reached %r" %
                (body["truncated"], len(body["windows"]), body["reached"]))
        f.check(all(w["count"] == 2 for w in body["windows"]) and
                wstart(body["windows"][-1]) == tbase + (MAX_RESULTS - 1) * US,
                "T: the 1 s windows answered")
    # bad input
    now = int(time.time()) * US
    for q, field in (("from=yesterday", "from"), ("to=2026-13-01T00:00:00Z", "to"),
                     ("from=%s&to=%s" % (rfc(now), rfc(now - MIN)), "from"),
                     ("from=%s&to=%s" % (rfc(now), rfc(now)), "from"),
                     ("from=%s&to=%s" % (rfc(now - 3 * 86400 * US), rfc(now)), "from"),
                     ("version=0", "version"), ("version=x", "version"),
                     ("limit=5", "limit"), ("from=%s&from=%s" % (rfc(now), rfc(now)), "from"),
                     ("ruleId=" + r1, "ruleId")):
        expect(f, "T: backtest ?" + q[:50], t_api.req(
            "POST", "/analytics/rules/%s/backtest?%s" % (r1, q)), 400, "invalid_parameter",
            field)
    expect(f, "T: backtest of a malformed id", t_api.req(
        "POST", "/analytics/rules/nope/backtest"), 400, "invalid_parameter", "id")
    expect(f, "T: the longest range", t_api.backtest(r1, now - MAX_RANGE_S * US, now), 200)
    expect(f, "T: a body is ignored", t_api.req(
        "POST", "/analytics/rules/%s/backtest" % r1, {"tenantId": "x"}), 200)
    expect(f, "GET of a backtest", t_api.req("GET", "/analytics/rules/%s/backtest" % r1), 405)
    expect(f, "no token", Api(sb, None).backtest(r1), 401, "missing_credentials")
    resp = wo.backtest(r1)
    expect(f, "analytics:write only", resp, 403, "insufficient_scope")
    f.check('scope="events:read"' in resp[1].get("www-authenticate", ""),
            "403: challenge %r" % resp[1].get("www-authenticate"))

    # concurrency: with the events table locked, backtests wait for it
    ra = a.create({"name": "a busy", "eventType": "signup",
                   "window": {"type": "tumbling", "size": "1m"}, "aggregate": {"fn": "count"}})
    rb = b.create({"name": "b busy", "eventType": "signup",
                   "window": {"type": "tumbling", "size": "1m"}, "aggregate": {"fn": "count"}})
    rc = c.create({"name": "c busy", "eventType": "signup",
                   "window": {"type": "tumbling", "size": "1m"}, "aggregate": {"fn": "count"}})
    lock = TableLock(sb.dsn)
    pool = concurrent.futures.ThreadPoolExecutor(4)
    try:
        held = [pool.submit(a.backtest, ra), pool.submit(a.backtest, ra)]
        time.sleep(1.5)
        f.check(not any(h.done() for h in held), "A's backtests answered while the table was "
                "locked: %r" % [h.result()[0] for h in held if h.done()])
        resp = expect(f, "A: a third backtest", a.backtest(ra), 429, "too_many_backtests")
        if resp is not None:
            f.check(a.backtest(ra)[1].get("retry-after") is not None, "429 without Retry-After")
        held.append(pool.submit(b.backtest, rb))
        time.sleep(1.5)
        expect(f, "C: a backtest past the total", c.backtest(rc), 429, "too_many_backtests")
    finally:
        lock.release()
    for i, h in enumerate(held):
        expect(f, "held backtest %d after the unlock" % i, h.result(timeout=60), 200)
    expect(f, "C: after the others answered", c.backtest(rc), 200)
    lock = TableLock(sb.dsn)
    try:
        t0 = time.monotonic()
        resp = a.backtest(ra, timeout=60)
        took = time.monotonic() - t0
        expect(f, "A: a backtest past the timeout", resp, 503, "query_timeout")
        f.check(TIMEOUT_MS / 1000 - 1 <= took <= TIMEOUT_MS / 1000 + 10,
                "503 query_timeout after %.1f s, expected about %d s" % (took, TIMEOUT_MS / 1000))
        f.check(resp[1].get("retry-after") is not None, "503 without Retry-After")
    finally:
        lock.release()
    pool.shutdown()
    log("b. limits: truncated by events and by results, 400s, 401, 403, 429 per tenant and in "
        "total, 503 query_timeout")
    return ra


# ---- c. isolation ----

def part_c(f, sb, a, b, ids, base):
    frm, to = base + 17 * MIN, base + 142 * MIN
    for what, rid in (("A's rule", ids["tumbling"]), ("A's sliding rule", ids["sliding"])):
        expect(f, "B: backtest of " + what, b.backtest(rid, frm, to), 404, "not_found")
        expect(f, "B: backtest of %s ?version=1" % what, b.backtest(rid, frm, to, "version=1"),
               404, "not_found")
    expect(f, "A: backtest of an unknown rule",
           a.backtest(ids["tumbling"][:-4] + "ffff", frm, to), 404, "not_found")
    gone = a.create({"name": "gone", "eventType": "signup",
                     "window": {"type": "tumbling", "size": "5m"}, "aggregate": {"fn": "count"}})
    expect(f, "A: delete", a.req("DELETE", "/analytics/rules/" + gone), 204)
    expect(f, "A: backtest of a deleted rule", a.backtest(gone, frm, to), 404, "not_found")
    rb = b.create({"name": "b same", "eventType": "*",
                   "window": {"type": "tumbling", "size": "5m"}, "aggregate": {"fn": "count"}})
    body = expect(f, "B: its own rule over A's range", b.backtest(rb, frm, to), 200)
    if body:
        f.check(body["events"] == 0 and body["windows"] == [] and body["summaries"] == [],
                "B sees A's events: %r" % {k: body[k] for k in ("events", "truncated")})
    log("c. isolation: 404 for another tenant's, unknown and deleted rules; no other tenant's "
        "events")


# ---- d. the live engine ----

def wait_rules_loaded(an, n, timeout=30):
    pat = re.compile(r'"msg":"analytics rules loaded".*"rules":"(\d+)"')

    def loaded():
        with open(an.log_path, errors="replace") as fh:
            counts = [int(m.group(1)) for m in pat.finditer(fh.read())]
        return counts and counts[-1] >= n
    eotest.wait_until(loaded, timeout, what="the engine loads %d rules" % n)


def diff(got, want):
    """The first differences of two {(group, start): (value, count)}: (key, got, want)."""
    out = []
    for x in sorted(set(got) | set(want)):
        a, b = got.get(x), want.get(x)
        if a is None or b is None or not close(a[0], b[0]) or a[1] != b[1]:
            out.append((x[0], rfc(x[1]), a, b))
    return out[:5]


def part_d(f, sb, an, tl, l_api, live_rules):
    rnd = random.Random(20260412)
    lbase = (int(time.time()) // 60 - 125) * MIN
    rules = {
        "count": {"name": "live count", "eventType": "order",
                  "window": {"type": "tumbling", "size": "1m"}, "groupBy": ["properties.plan"],
                  "aggregate": {"fn": "count"}, "horizon": "7d"},
        "sum": {"name": "live sum", "eventType": "order",
                "window": {"type": "hopping", "size": "2m", "slide": "1m"},
                "aggregate": {"fn": "sum", "property": "properties.amount"}, "horizon": "7d"},
    }
    ids = {k: l_api.create(r) for k, r in rules.items()}
    wait_rules_loaded(an, live_rules + len(ids))
    evs = []
    for i in range(400):
        t = lbase + int(rnd.uniform(0, 20) * MIN)
        evs.append(Ev(t, rnd.choice(["order", "order", "login"]), "l%d" % rnd.randrange(9), None,
                      rnd.choice(["pro", "free"]), rnd.choice([rnd.randrange(1, 100), 2.5, None]),
                      "live-%04d" % i))
    for i in range(0, len(evs), 100):
        batch = [{"eventType": e.type, "userId": e.user, "messageId": e.mid,
                  "timestamp": rfc(e.t), "properties": e.props()} for e in evs[i:i + 100]]
        st, _, body = eotest.http_request(
            "POST", sb.url("/events/batch"), json.dumps(batch).encode(),
            {"Authorization": "Bearer " + tl["writeKey"], "Content-Type": "application/json"})
        if not f.check(st in (200, 202), "L: POST /events/batch: %s %.200r" % (st, body)):
            return
    sb.wait_stored([e.mid for e in evs], timeout=90)
    frm, to = lbase, lbase + 21 * MIN
    want = {
        "count": tumbling_windows(evs, "order", MIN, frm, to,
                                  lambda e: gkey({"properties.plan": e.plan}), len),
        "sum": {},
    }
    s = frm
    while s + 2 * MIN <= to:
        inw = [e for e in evs if e.type == "order" and s <= e.t < s + 2 * MIN]
        if inw:
            want["sum"][("{}", s)] = (sum(e.amount for e in inw if is_num(e.amount)), len(inw))
        s += MIN

    def live_windows(k):
        st, _, body = l_api.req("GET", "/analytics/rules/%s/windows?from=%s&to=%s&limit=1000" %
                                (ids[k], rfc(frm), rfc(to)))
        return body.get("windows", []) if st == 200 and isinstance(body, dict) else []

    for k in ids:
        def final_windows():
            return {(gkey(w["group"]), wstart(w)): (w["value"], w["count"])
                    for w in live_windows(k) if w.get("final")}

        def complete():
            have = final_windows()
            return set(have) >= set(want[k]) and all(
                close(have[x][0], v[0]) and have[x][1] == v[1] for x, v in want[k].items())
        try:
            eotest.wait_until(complete, 90, interval=0.5,
                              what="the engine's %s windows for L" % k)
        except Exception:  # noqa: BLE001
            have = final_windows()
            f.fail("L: the engine's %s windows never matched the recomputation: %s" %
                   (k, diff(have, want[k])))
        live = final_windows()
        body = expect(f, "L: backtest " + k, l_api.backtest(ids[k], frm, to), 200)
        if not body:
            continue
        check_answer_shape(f, "L: " + k, body, ids[k], 1, frm, to)
        compare_windows(f, "L: backtest %s vs recomputation" % k, body["windows"], want[k])
        bt = {(gkey(w["group"]), wstart(w)): (w["value"], w["count"]) for w in body["windows"]}
        lv = {x: v for x, v in live.items() if x[1] >= frm and x[1] + (MIN if k == "count" else
                                                                    2 * MIN) <= to}
        f.check(bt.keys() == lv.keys() and all(close(bt[x][0], lv[x][0]) and
                                               bt[x][1] == lv[x][1] for x in bt),
                "L: backtest %s differs from the live engine: %s" % (k, diff(bt, lv)))
    log("d. the live engine: %d events through the collector; backtest windows == engine "
        "windows == recomputation" % len(evs))


# ---- e. metrics ----

def metric(text, name, labels):
    total, seen = 0.0, False
    for line in text.splitlines():
        m = re.match(r'^([a-z_]+)\{(.*)\} (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2)))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def part_e(f, sb):
    st, _, raw = eotest.http_request("GET", sb.analytics_url("/metrics"))
    text = raw.decode() if isinstance(raw, bytes) else ""
    for outcome, least in (("completed", 10), ("truncated", 2), ("busy", 2), ("failed", 1)):
        v = metric(text, "eventops_analytics_backtests_total",
                   {"role": "analytics", "outcome": outcome})
        f.check(v is not None and v >= least,
                "eventops_analytics_backtests_total{outcome=%s} = %r, expected >= %d" %
                (outcome, v, least))
    log("e. metrics")


def part_f(f, sb, an, a, rid):
    lock = TableLock(sb.dsn)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        held = pool.submit(a.backtest, rid)
        time.sleep(1.0)
        t0 = time.monotonic()
        code = an.stop(timeout=60)
        took = time.monotonic() - t0
        f.check(code == 0, "analytics exited with %s after SIGTERM during a backtest" % code)
        f.check(took < TIMEOUT_MS / 1000, "analytics took %.1f s to stop during a backtest" %
                took)
        expect(f, "a backtest in flight at shutdown", held.result(timeout=30), 503,
               "shutting_down")
    finally:
        lock.release()
        pool.shutdown()
    log("f. shutdown during a backtest: 503 shutting_down, exit 0 in %.1f s" % took)


def main():
    extra = {"EVENTOPS_ANALYTICS_BACKTEST_MAX_EVENTS": str(MAX_EVENTS),
             "EVENTOPS_ANALYTICS_BACKTEST_MAX_RESULTS": str(MAX_RESULTS),
             "EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S": str(MAX_RANGE_S),
             "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT": "3",
             "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT": "2",
             "EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS": str(TIMEOUT_MS),
             "EVENTOPS_ANALYTICS_MAX_HORIZON_S": str(7 * 86400),
             "EVENTOPS_RATE_LIMIT_RATE": "100000", "EVENTOPS_RATE_LIMIT_BURST": "100000"}
    with eotest.Sandbox("analytics-backtest", extra_env=extra) as sb:
        f = sb.failures
        sb.create_signing_key()
        tenants = {x: sb.create_tenant("backtest-%s-%s" % (x, eotest.rand_hex(4)))
                   for x in "abctl"}
        both = ["events:read", "analytics:write"]
        clients = {x: sb.create_client(tenants[x]["tenantId"], both) for x in "abctl"}
        wo_client = sb.create_client(tenants["a"]["tenantId"], ["analytics:write"], name="wo")
        auth, coll, proc = sb.auth(), sb.collector(), sb.processor()
        an = sb.analytics(extra_env={"EVENTOPS_SHUTDOWN_TIMEOUT_MS": "2000"})
        roles = (auth, coll, proc, an)
        for r in roles:
            r.start()
        for r in roles:
            r.wait_ready(60)
        apis = {x: Api(sb, sb.token(clients[x]["clientId"], clients[x]["clientSecret"]))
                for x in "abctl"}
        wo = Api(sb, sb.token(wo_client["clientId"], wo_client["clientSecret"]))

        rnd = random.Random(20260411)
        base = (int(time.time()) // 3600 - 4) * 3600 * US  # about 4 h ago, on the hour
        evs = history(rnd, base, 150, 3000, "h")
        insert_events(sb, tenants["a"]["tenantId"], evs)

        ids = part_a(f, sb, apis["a"], tenants["a"], evs, base)
        busy = part_b(f, sb, apis["a"], apis["b"], apis["c"], wo, tenants["t"], apis["t"])
        part_c(f, sb, apis["a"], apis["b"], ids, base)
        live_rules = int(sb.scalar("SELECT count(*) FROM analytics_rules_current "
                                   "WHERE NOT deleted"))
        part_d(f, sb, an, tenants["l"], apis["l"], live_rules)
        part_e(f, sb)
        part_f(f, sb, an, apis["a"], busy)

        for r in (proc, coll):
            code = r.stop(timeout=60)
            f.check(code == 0, "%s exited with %s after SIGTERM" % (r.name, code))
        sb.check_clean_end(running=[auth])
        return sb.report("analytics backtest: history against recomputations, limits, 429, "
                         "503, isolation, the live engine")


def on_alarm(*_):
    raise TimeoutError("test_analytics_backtest.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
