#!/usr/bin/env python3
"""End-to-end: every query endpoint against a reference computed independently in Python.

docs/query.md is the contract. The test:

  1. generates ~53,000 events (fixed seed) for 3 tenants: 8 event types (one with a space),
     ~3,200 users (userId only, userId + anonymousId, anonymousId only), sessions that walk a
     shop funnel (page_view, search, add_to_cart, checkout_started, order_placed; some out of
     order, some with identical timestamps), a `plan` property (strings, a non-ASCII one, an
     integer, a float, true, JSON null, missing) and a nested `address.city` (also missing,
     null, a number, `address` a string, a flat "address.city" key). Times: half of the
     sessions within days (many within hours) of the 2026 DST changes of America/New_York,
     Europe/Berlin, Australia/Lord_Howe (30-minute shifts) and America/Havana (whose midnight
     is skipped on Mar 8 and repeated on Nov 1), some starting exactly on a transition or a
     local midnight, the rest spread over 2026, plus recent events in the last 7 days (for the
     default range). Precision: whole seconds, milliseconds and microseconds. 50 message ids
     of tenant 1 repeat tenant 0's (different events).
  2. sends them through the collector (POST /events/batch, 500 per batch, each tenant's write
     key, shuffled) and waits until the events table holds them all; cross-checks per-type
     counts and the rollups with SQL.
  3. runs several hundred queries over random ranges (sub-second, second and minute precision;
     aligned on local midnights and UTC hours; starting or ending exactly on a DST transition
     or on an event's own timestamp; `from`/`to` written in UTC or with a local offset; the
     defaults), intervals minute..month (and the aliases), zones UTC, America/New_York,
     Europe/Berlin, Asia/Kolkata, Asia/Kathmandu, Australia/Lord_Howe, America/Havana, event
     types (and none, and an unknown one), and compares EVERY field of every answer of count,
     trend, unique-users (total and series), breakdown, funnel, retention and types with the
     reference; walks raw events pages to the end and compares the whole ordered list (and
     each event's fields). Bucket boundaries of the reference come from zoneinfo only: hour
     starts by walking a 15-minute UTC grid for local hh:00:00, day/week/month starts as the
     first instant (on a 15-minute UTC grid) whose local date is the period's first date.
  4. cross-checks with straight SQL: eventops_buckets() against the reference boundaries,
     some counts and unique users against the events table.
  5. cache: a sample of (closed-range) queries is asked again: X-Cache hit and the same body
     and X-Query-Source. Every answer names what answered it (X-Query-Source): rollups for
     count, trend and types, the user sets (ADR-22) for retention and for unique users except
     per minute, the timelines (ADR-23) for funnels, raw events for the rest. Unique users,
     retention and funnels are asked on deltas only (the processor does not compact at first),
     then again on compacted sets and timelines only.
  6. tracked properties (ADR-24): `plan`, objects (`address`) and a nested path are tracked
     with `eventops admin track-property` (two with caps that overflow); once the processors'
     backfill is complete, every breakdown is asked again (a query role without the cache) plus
     cases made for the tracked paths (whole hours, sub-hour edges, ranges inside one hour):
     tracked paths must answer from `property_rollups` with the reference computed through the
     stored dictionary (values past the cap in "(other)" and in `overflow`), the others from
     raw events; after `untrack-property` the path answers from raw events again.
  7. page stability: while walking raw events pages, new events are stored (newer and older
     than the cursor, and at the cursor's own timestamp with smaller and larger message ids);
     the walk must neither repeat nor skip: pages after the cursor hold exactly the stored
     events older than the cursor position.

Mismatches name endpoint, tenant, parameters, expected vs got and the first differing bucket.
QREF_SCALE (default 1) multiplies the number of random cases. Needs the stack's environment
(eval "$(scripts/stack.sh env)") and EVENTOPS_BIN; python3-cryptography (token signing).
Exit 0 = pass.
"""

import bisect
import concurrent.futures
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from querytest import (US, UTC, QueryClient, ceil_second, dt_of, fmt_local, fmt_utc,  # noqa: E402
                       now_us, parse_rfc3339, query_token, us_of, us_utc)

SEED = 20260308
SCALE = float(os.environ.get("QREF_SCALE", "1"))
TENANT_EVENTS = (24000, 16000, 10000)    # historical events per tenant (sessions are cut there)
TENANT_USERS = (2400, 1600, 1100)
RECENT_EVENTS = (1200, 700, 500)         # within the last 7 days
WORKERS = 4                              # concurrent query requests
BATCH = 500
MAX_DETAIL = 12                          # detailed failure messages per endpoint

MINUTE, HOUR, DAY = 60 * US, 3600 * US, 86400 * US
Q15 = 15 * MINUTE

ZONE_NAMES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu",
              "Australia/Lord_Howe", "America/Havana"]
# The 2026 transitions (UTC instants), each with its zone.
TRANSITIONS = [
    ("America/Havana", us_utc(2026, 3, 8, 5)),          # 00:00 -05 -> 01:00 -04 (no midnight)
    ("America/New_York", us_utc(2026, 3, 8, 7)),        # 02:00 EST -> 03:00 EDT
    ("Europe/Berlin", us_utc(2026, 3, 29, 1)),          # 02:00 CET -> 03:00 CEST
    ("Australia/Lord_Howe", us_utc(2026, 4, 4, 15)),    # 02:00 +11 -> 01:30 +10:30
    ("Australia/Lord_Howe", us_utc(2026, 10, 3, 15, 30)),  # 02:00 +10:30 -> 02:30 +11
    ("Europe/Berlin", us_utc(2026, 10, 25, 1)),         # 03:00 CEST -> 02:00 CET
    ("America/Havana", us_utc(2026, 11, 1, 5)),         # 01:00 -04 -> 00:00 -05 (two midnights)
    ("America/New_York", us_utc(2026, 11, 1, 6)),       # 02:00 EDT -> 01:00 EST
]
SPAN_LO = us_utc(2026, 1, 1)
SPAN_HI_UNIFORM = us_utc(2026, 11, 12)

TYPES = ["page_view", "search", "add_to_cart", "checkout_started", "order_placed", "signup",
         "login", "Video Played"]
MISSING = object()
PLAN_VALUES = [("free", 30), ("pro", 20), ("enterprise", 8), ("Team", 6), ("pro-\u00fc", 4),
               (3, 4), (2.5, 2), (True, 2), (None, 6), (MISSING, 18)]
CITIES = [("Berlin", 20), ("New York", 20), ("Kolkata", 12), ("Lord Howe Island", 5),
          ("Z\u00fcrich", 6), ("S\u00e3o Paulo", 6), ("berlin", 3), ("Kathmandu", 5)]
MID_PREFIXES = ["A", "B", "Z", "a", "m", "z", "0", "9", "M_", "m-"]


def wchoice(rng, pairs):
    tot = sum(w for _, w in pairs)
    x = rng.random() * tot
    for v, w in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][0]


# ---------------------------------------------------------------------------------------------
# zones (reference boundaries from zoneinfo only)

class Zone:
    def __init__(self, name):
        self.name = name
        self.tz = UTC if name == "UTC" else ZoneInfo(name)
        self._dates = {}
        self._first = {}
        self._lock = threading.Lock()

    def local(self, us):
        return dt_of(us, self.tz)

    def offset_s(self, us):
        return int(self.local(us).utcoffset().total_seconds())

    def local_date(self, us):
        d = self._dates.get(us)
        if d is None:
            d = self.local(us).date()
            self._dates[us] = d
        return d

    def first_instant(self, d):
        """The first instant whose local date is d. Every offset and transition of these zones
        lies on a 15-minute UTC grid, so the local date changes only on grid instants."""
        v = self._first.get(d)
        if v is not None:
            return v
        t = us_of(datetime(d.year, d.month, d.day, tzinfo=UTC)) - 16 * HOUR
        while self.local(t).date() < d:
            t += Q15
        assert self.local(t).date() == d, (self.name, d)
        assert self.local(t - 1).date() < d
        self._first[d] = t
        return t

    def period_date(self, us, unit):
        d = self.local_date(us)
        if unit == "day":
            return d
        if unit == "week":
            return d - timedelta(days=d.weekday())
        if unit == "month":
            return d.replace(day=1)
        raise ValueError(unit)


ZONES = {n: Zone(n) for n in ZONE_NAMES}


def add_months(d, n):
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def next_period(d, unit, k=1):
    if unit == "day":
        return d + timedelta(days=k)
    if unit == "week":
        return d + timedelta(days=7 * k)
    return add_months(d, k)


def bucket_starts(frm, to, unit, zone):
    """Starts (us) of the buckets of unit in zone meeting [frm, to): the one holding frm, then
    every later start before to."""
    if unit == "minute":
        s = frm - frm % MINUTE
        return list(range(s, to, MINUTE))
    if unit == "hour":
        g = frm - frm % Q15 - 3 * HOUR
        cand = []
        while g < to:
            d = zone.local(g)
            if d.minute == 0 and d.second == 0:
                cand.append(g)
            g += Q15
        first = max(c for c in cand if c <= frm)
        return [first] + [c for c in cand if frm < c < to]
    d = zone.period_date(frm, unit)
    last = zone.local_date(to - 1)
    out = []
    while d <= last:
        out.append(zone.first_instant(d))
        d = next_period(d, unit)
    assert out[0] <= frm
    return out


def n_buckets_estimate(frm, to, unit):
    per = {"minute": MINUTE, "hour": HOUR, "day": DAY, "week": 7 * DAY, "month": 28 * DAY}[unit]
    return (to - frm) // per + 3


# ---------------------------------------------------------------------------------------------
# events

class Ev:
    __slots__ = ("t", "mid", "type", "uid", "aid", "props", "key")

    def __init__(self, t, mid, etype, uid, aid, props):
        self.t, self.mid, self.type, self.uid, self.aid, self.props = t, mid, etype, uid, aid, props
        self.key = uid if uid is not None else aid

    def wire(self, rng):
        e = {"messageId": self.mid, "eventType": self.type,
             "timestamp": fmt_ts(rng, self.t), "properties": self.props,
             "context": {"library": {"name": "qref"}}}
        if self.uid is not None:
            e["userId"] = self.uid
        if self.aid is not None:
            e["anonymousId"] = self.aid
        return e


def fmt_ts(rng, t):
    r = rng.random()
    if r < 0.75:
        return fmt_utc(t)
    if r < 0.85:
        return fmt_utc(t, 6)
    return fmt_local(t, ZONES[rng.choice(ZONE_NAMES[1:])].tz)


def precision(rng, t):
    r = rng.random()
    if r < 0.5:
        return t - t % US
    if r < 0.7:
        return t - t % 1000
    return t


def boundary_instants():
    """Transitions, local midnights around them in every zone, UTC midnights and hours."""
    out = set()
    for zname, tt in TRANSITIONS:
        out.add(tt)
        for zn in ZONE_NAMES:
            z = ZONES[zn]
            d0 = z.local_date(tt)
            for k in (-1, 0, 1):
                out.add(z.first_instant(d0 + timedelta(days=k)))
        out.add(tt - tt % DAY)
        out.add(tt - tt % HOUR + HOUR)
    return sorted(out)


def session_types(rng, first):
    seq = []
    if first and rng.random() < 0.7:
        seq.append("signup")
    elif rng.random() < 0.5:
        seq.append("login")
    for _ in range(rng.randint(1, 4)):
        seq.append("page_view")
        if rng.random() < 0.4:
            seq.append("search")
        if rng.random() < 0.15:
            seq.append("Video Played")
    if rng.random() < 0.45:
        seq.append("add_to_cart")
        if rng.random() < 0.3:
            seq.append("add_to_cart")
        if rng.random() < 0.6:
            seq.append("checkout_started")
            if rng.random() < 0.75:
                seq.append("order_placed")
    if rng.random() < 0.05:
        rng.shuffle(seq)
    return seq


def gap(rng):
    r = rng.random()
    if r < 0.06:
        return 0
    if r < 0.9:
        return int(rng.expovariate(1 / 120.0) * US)
    if r < 0.97:
        return int(rng.uniform(0.5, 6) * HOUR)
    return int(rng.uniform(6, 72) * HOUR)


def session_start(rng, boundaries):
    r = rng.random()
    if r < 0.45:
        _, tt = rng.choice(TRANSITIONS)
        return tt + int(max(-4.0, min(4.0, rng.gauss(0, 1.5))) * DAY)
    if r < 0.62:
        _, tt = rng.choice(TRANSITIONS)
        return tt + int(rng.uniform(-3, 3) * HOUR)
    if r < 0.67:
        return rng.choice(boundaries)  # exact: not rounded below
    return rng.randrange(SPAN_LO, SPAN_HI_UNIFORM)


def make_props(rng, user, n):
    p = {"n": n}
    plan = user["plan"] if rng.random() < 0.85 else wchoice(rng, PLAN_VALUES)
    if plan is not MISSING:
        p["plan"] = plan
    r = rng.random()
    if r < 0.03:
        p["address"] = "unknown"
    elif r < 0.05:
        p["address"] = {"city": None}
    elif r < 0.06:
        p["address"] = {"city": 7}
    elif r < 0.07:
        p["address.city"] = "Flatland"
    elif user["city"] is not MISSING:
        p["address"] = {"city": user["city"], "zip": user["zip"]}
    if rng.random() < 0.05:
        p["tags"] = ["a", "b"]
    return p


def gen_tenant(rng, ti, now, boundaries, used_mids):
    users = []
    for i in range(TENANT_USERS[ti]):
        anon_only = rng.random() < 0.2
        users.append({
            "uid": None if anon_only else "u-%05d" % i,
            "aid": "anon-%d-%05d" % (ti, i),
            "plan": wchoice(rng, PLAN_VALUES),
            "city": MISSING if rng.random() < 0.15 else wchoice(rng, CITIES),
            "zip": "%05d" % rng.randrange(100000),
            "w": rng.paretovariate(1.8),
            "sessions": 0,
        })
    cum = []
    acc = 0.0
    for u in users:
        acc += u["w"]
        cum.append(acc)
    events = []
    lo_default, hi_default = now - 7 * DAY - HOUR, now - 7 * DAY + HOUR

    def new_mid():
        while True:
            m = "%s%010x" % (rng.choice(MID_PREFIXES), rng.getrandbits(40))
            if m not in used_mids:
                used_mids.add(m)
                return m

    def add_session(start, recent):
        u = users[bisect.bisect_left(cum, rng.random() * acc)]
        t = start
        for etype in session_types(rng, u["sessions"] == 0):
            if u["uid"] is None:
                uid, aid = None, u["aid"]
            else:
                uid, aid = u["uid"], (u["aid"] if rng.random() < 0.15 else None)
            tt = t if t == start and start in bset else precision(rng, t)
            ok = (SPAN_LO <= tt < lo_default) or (recent and hi_default < tt < now - 2 * HOUR)
            if ok:
                events.append(Ev(tt, new_mid(), etype, uid, aid, make_props(rng, u, len(events))))
            t = tt + gap(rng)
        u["sessions"] += 1

    bset = set(boundaries)
    while len(events) < TENANT_EVENTS[ti]:
        add_session(session_start(rng, boundaries), False)
    target = TENANT_EVENTS[ti] + RECENT_EVENTS[ti]
    while len(events) < target:
        add_session(rng.randrange(now - int(6.9 * DAY), now - 3 * HOUR), True)
    return events


def generate(now):
    rng = random.Random(SEED)
    boundaries = boundary_instants()
    tenants = []
    for ti in range(3):
        tenants.append(gen_tenant(rng, ti, now, boundaries, set()))
    # 50 of tenant 0's message ids reused by (other) events of tenant 1
    t1_mids = {e.mid for e in tenants[1]}
    reuse = [e.mid for e in rng.sample(tenants[0], 200) if e.mid not in t1_mids][:50]
    for e, m in zip(rng.sample(tenants[1], len(reuse)), reuse):
        e.mid = m
    return tenants, rng


# ---------------------------------------------------------------------------------------------
# reference

def value_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, (dict, list)):
        return jsonb_text(v)
    raise ValueError("not a JSON value: %r" % (v,))


def jsonb_str(s):
    """A string as PostgreSQL's jsonb output writes it (escape_json)."""
    esc = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"',
           "\\": "\\\\"}
    return '"' + "".join(esc.get(c) or ("\\u%04x" % ord(c) if ord(c) < 0x20 else c)
                         for c in s) + '"'


def jsonb_text(v):
    """jsonb's text of a JSON value: object keys by length then bytes, ", " and ": "."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join("%s: %s" % (jsonb_str(k), jsonb_text(v[k])) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(jsonb_text(x) for x in v) + "]"
    if isinstance(v, str):
        return jsonb_str(v)
    if v is None:
        return "null"
    return value_text(v)


def path_get(props, path):
    cur = props
    for name in path.split("."):
        if not isinstance(cur, dict) or name not in cur:
            return MISSING
        cur = cur[name]
    return cur


class TenantRef:
    def __init__(self, events):
        self.events = sorted(events, key=lambda e: (e.t, e.mid))
        self.times = [e.t for e in self.events]
        self.by_type = defaultdict(list)
        for e in self.events:
            self.by_type[e.type].append(e)
        self.type_times = {k: [e.t for e in v] for k, v in self.by_type.items()}
        # user key -> type -> sorted times (all time)
        self.user_times = defaultdict(lambda: defaultdict(list))
        for e in self.events:
            self.user_times[e.key][e.type].append(e.t)
        self.by_mid = {e.mid: e for e in self.events}

    def slice(self, frm, to, etype=None):
        if etype is None:
            evs, ts = self.events, self.times
        else:
            evs, ts = self.by_type.get(etype, []), self.type_times.get(etype, [])
        return evs[bisect.bisect_left(ts, frm):bisect.bisect_left(ts, to)]

    def count(self, frm, to, etype=None):
        ts = self.times if etype is None else self.type_times.get(etype, [])
        return bisect.bisect_left(ts, to) - bisect.bisect_left(ts, frm)

    def trend(self, frm, to, etype, unit, zone):
        starts = bucket_starts(frm, to, unit, zone)
        out = []
        for i, s in enumerate(starts):
            hi = starts[i + 1] if i + 1 < len(starts) else to
            out.append((s, self.count(max(s, frm), min(hi, to), etype)))
        return out

    def unique(self, frm, to, etype, unit=None, zone=None):
        evs = self.slice(frm, to, etype)
        total = len({e.key for e in evs})
        if unit is None:
            return total, None
        starts = bucket_starts(frm, to, unit, zone)
        sets = [set() for _ in starts]
        for e in evs:
            sets[bisect.bisect_right(starts, e.t) - 1].add(e.key)
        return total, [(s, len(x)) for s, x in zip(starts, sets)]

    def breakdown(self, frm, to, etype, prop, limit):
        c = Counter()
        none = 0
        evs = self.slice(frm, to, etype)
        for e in evs:
            v = path_get(e.props, prop)
            if v is MISSING or v is None:
                none += 1
            else:
                c[value_text(v)] += 1
        items = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
        top = items[:limit]
        other = sum(n for _, n in items[limit:])
        return len(evs), top + [("(other)", other), ("(none)", none)]

    def breakdown_tracked(self, frm, to, etype, prop, limit, named):
        """The answer from property rollups (ADR-24): values outside the dictionary `named`
        are overflow, counted in "(other)" and reported in "overflow"."""
        c = Counter()
        none = overflow = 0
        evs = self.slice(frm, to, etype)
        for e in evs:
            v = path_get(e.props, prop)
            if v is MISSING or v is None:
                none += 1
            elif value_text(v) in named:
                c[value_text(v)] += 1
            else:
                overflow += 1
        items = sorted(c.items(), key=lambda kv: (-kv[1], kv[0].encode()))
        top = items[:limit]
        other = sum(n for _, n in items[limit:]) + overflow
        ov = None
        if overflow:
            ov = {"count": overflow,
                  "topExact": len(top) == limit and overflow < top[-1][1]}
        return len(evs), top + [("(other)", other), ("(none)", none)], ov

    def funnel(self, frm, to, steps, within_us):
        firsts = {}
        for e in self.slice(frm, to, steps[0]):
            if e.key not in firsts:
                firsts[e.key] = e.t
        counts = [0] * len(steps)
        for key, t1 in firsts.items():
            counts[0] += 1
            cur, deadline = t1, t1 + within_us
            ut = self.user_times[key]
            for k in range(1, len(steps)):
                ts = ut.get(steps[k], [])
                if steps[k] == steps[k - 1]:
                    i = bisect.bisect_right(ts, cur)
                else:
                    i = bisect.bisect_left(ts, cur)
                if i < len(ts) and ts[i] < deadline:
                    cur = ts[i]
                    counts[k] += 1
                else:
                    break
        return counts

    def retention(self, frm, to, start_ev, return_ev, unit, periods, zone):
        firsts = {}
        for e in self.slice(frm, to, start_ev):
            if e.key not in firsts:
                firsts[e.key] = e.t
        cohorts = defaultdict(list)
        for key, t in firsts.items():
            cohorts[zone.period_date(t, unit)].append(key)
        out = []
        for c in sorted(cohorts):
            lo = zone.first_instant(c)
            hi = zone.first_instant(next_period(c, unit, periods + 1))
            retained = [0] * (periods + 1)
            for key in cohorts[c]:
                ts = self.user_times[key].get(return_ev, [])
                ks = set()
                for t in ts[bisect.bisect_left(ts, lo):bisect.bisect_left(ts, hi)]:
                    p = zone.period_date(t, unit)
                    k = (p - c).days // (7 if unit == "week" else 1)
                    ks.add(k)
                for k in ks:
                    if 0 <= k <= periods:
                        retained[k] += 1
            out.append((lo, c, len(cohorts[c]), retained))
        return out

    def types(self):
        out = []
        for t, evs in self.by_type.items():
            out.append((t, len(evs), evs[0].t, max(e.t for e in evs)))
        out.sort(key=lambda x: (-x[1], x[0]))
        return out

    def raw(self, frm, to, etype=None, uid=None):
        evs = [e for e in self.slice(frm, to, etype) if uid is None or e.uid == uid]
        evs.sort(key=lambda e: (e.t, e.mid), reverse=True)
        return evs


# ---------------------------------------------------------------------------------------------
# cases

CANON = {"minute": "minute", "hour": "hour", "hourly": "hour", "day": "day", "daily": "day",
         "week": "week", "weekly": "week", "month": "month", "monthly": "month"}
ALIASES = {"hour": "hourly", "day": "daily", "week": "weekly", "month": "monthly"}
LEN_BOUNDS = {"minute": (MINUTE // 2, 8 * HOUR), "hour": (HOUR // 3, 20 * DAY),
              "day": (HOUR, 200 * DAY), "week": (DAY, 320 * DAY),
              "month": (DAY * 3, 330 * DAY), None: (US // 2, 330 * DAY)}


def canonical_within(secs):
    """`within` in its largest whole unit (docs/query.md: within=24h answers "1d")."""
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0:
            return "%d%s" % (secs // n, unit)
    return "%ds" % secs


class Case:
    def __init__(self, endpoint, tenant, params, **kw):
        self.endpoint = endpoint
        self.tenant = tenant
        self.params = params
        self.frm = kw.pop("frm", None)
        self.to = kw.pop("to", None)
        self.default_from = kw.pop("default_from", False)
        self.default_to = kw.pop("default_to", False)
        self.kw = kw
        self.repeat = False

    def describe(self):
        return "GET %s tenant %d %s" % (self.endpoint, self.tenant,
                                        "&".join("%s=%s" % kv for kv in self.params))


class Gen:
    """Random cases over the reference data."""

    def __init__(self, rng, refs, now):
        self.rng = rng
        self.refs = refs
        self.now = now
        self.boundaries = boundary_instants()

    def fmt_instant(self, t):
        r = self.rng.random()
        if r < 0.65:
            return fmt_utc(t)
        if r < 0.75:
            return fmt_utc(t, 6)
        return fmt_local(t, ZONES[self.rng.choice(ZONE_NAMES)].tz)

    def rand_prec(self, t):
        r = self.rng.random()
        if r < 0.25:
            return t
        if r < 0.4:
            return t - t % 1000
        if r < 0.75:
            return t - t % US
        return t - t % MINUTE

    def loglen(self, lo, hi):
        return int(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def range_for(self, tenant, unit, max_buckets=1500):
        """(frm, to) for unit (None: no buckets)."""
        rng = self.rng
        lo_len, hi_len = LEN_BOUNDS[unit]
        ref = self.refs[tenant]
        for _ in range(100):
            kind = wchoice(rng, [("random", 35), ("dst", 25), ("aligned", 15), ("event", 15),
                                 ("wide", 10)])
            length = self.loglen(lo_len, hi_len)
            if kind == "random":
                if rng.random() < 0.5:
                    center = rng.choice(ref.events).t
                else:
                    center = rng.choice(TRANSITIONS)[1] + int(rng.uniform(-2, 2) * DAY)
                frm = self.rand_prec(center - int(rng.random() * length))
                to = self.rand_prec(frm + length)
            elif kind == "dst":
                zname, tt = rng.choice(TRANSITIONS)
                z = ZONES[zname]
                r = rng.random()
                if r < 0.35:
                    frm, to = tt, tt + length
                elif r < 0.7:
                    frm, to = tt - length, tt
                else:
                    d = z.local_date(tt)
                    k = rng.randint(1, 3)
                    frm = z.first_instant(d - timedelta(days=rng.randint(0, 1)))
                    to = z.first_instant(d + timedelta(days=k))
            elif kind == "aligned":
                z = ZONES[rng.choice(ZONE_NAMES)]
                if rng.random() < 0.5:
                    center = rng.choice(self.boundaries)
                else:
                    center = rng.randrange(SPAN_LO, SPAN_HI_UNIFORM)
                if unit in ("minute", "hour") or length < 2 * DAY:
                    frm = center - center % HOUR - HOUR * rng.randint(0, 3)
                    to = frm + max(HOUR, length - length % HOUR)
                else:
                    d = z.local_date(center)
                    frm = z.first_instant(d)
                    to = z.first_instant(d + timedelta(days=max(1, length // DAY)))
            elif kind == "event":
                a = rng.choice(ref.events).t
                frm, to = a, a + length
                j = bisect.bisect_left(ref.times, to)
                if j < len(ref.times) and rng.random() < 0.7:
                    to = ref.times[j]
            else:  # wide: most of the data
                frm = self.rand_prec(SPAN_LO - rng.randrange(0, 20 * DAY))
                to = self.rand_prec(us_utc(2026, 11, 20) + rng.randrange(0, 5 * DAY))
                if unit is not None and n_buckets_estimate(frm, to, unit) > max_buckets:
                    continue
            if to <= frm:
                continue
            if unit is not None and n_buckets_estimate(frm, to, unit) > max_buckets:
                continue
            if to > self.now - 3 * HOUR:
                continue
            return frm, to
        raise RuntimeError("no range for %s" % unit)

    def range_params(self, frm, to):
        return [("from", self.fmt_instant(frm)), ("to", self.fmt_instant(to))]

    def etype(self, none_p=0.35):
        r = self.rng.random()
        if r < none_p:
            return None
        if r < 0.95:
            return self.rng.choice(TYPES)
        return "no_such_type"

    def tz(self):
        return self.rng.choice(ZONE_NAMES)

    def unit_param(self, unit):
        if unit in ALIASES and self.rng.random() < 0.2:
            return ALIASES[unit]
        return unit

    def shuffle(self, params):
        self.rng.shuffle(params)
        return params

    def count(self, tenant):
        frm, to = self.range_for(tenant, None)
        et = self.etype()
        p = self.range_params(frm, to) + ([("eventType", et)] if et else [])
        return Case("/events/count", tenant, self.shuffle(p), frm=frm, to=to, etype=et)

    def trend(self, tenant, unit=None):
        unit = unit or wchoice(self.rng, [("minute", 12), ("hour", 30), ("day", 30),
                                          ("week", 14), ("month", 14)])
        frm, to = self.range_for(tenant, unit)
        et = self.etype()
        tz = self.tz()
        p = self.range_params(frm, to)
        if et:
            p.append(("eventType", et))
        if not (unit == "day" and self.rng.random() < 0.3):
            p.append(("interval", self.unit_param(unit)))
        if not (tz == "UTC" and self.rng.random() < 0.5):
            p.append(("tz", tz))
        return Case("/events/trend", tenant, self.shuffle(p), frm=frm, to=to, etype=et,
                    unit=unit, tz=tz)

    def unique(self, tenant):
        with_int = self.rng.random() < 0.55
        unit = wchoice(self.rng, [("minute", 8), ("hour", 30), ("day", 35), ("week", 15),
                                  ("month", 12)]) if with_int else None
        frm, to = self.range_for(tenant, unit, max_buckets=800)
        et = self.etype(0.3)
        tz = self.tz()
        p = self.range_params(frm, to)
        if et:
            p.append(("eventType", et))
        if unit:
            p.append(("interval", self.unit_param(unit)))
            if not (tz == "UTC" and self.rng.random() < 0.5):
                p.append(("tz", tz))
        return Case("/events/unique-users", tenant, self.shuffle(p), frm=frm, to=to, etype=et,
                    unit=unit, tz=tz)

    def breakdown(self, tenant):
        frm, to = self.range_for(tenant, None)
        et = self.etype(0.4)
        prop = wchoice(self.rng, [("plan", 50), ("address.city", 35), ("no.such.prop", 5),
                                  ("address.zip", 5), ("n", 5)])
        r = self.rng.random()
        limit = None if r < 0.25 else (1000 if r < 0.35 else self.rng.randint(1, 8))
        p = self.range_params(frm, to) + [("property", prop)]
        if et:
            p.append(("eventType", et))
        if limit is not None:
            p.append(("limit", str(limit)))
        return Case("/events/breakdown", tenant, self.shuffle(p), frm=frm, to=to, etype=et,
                    prop=prop, limit=limit if limit is not None else 10)

    FUNNELS = [["page_view", "add_to_cart", "order_placed"],
               ["page_view", "add_to_cart", "checkout_started", "order_placed"],
               ["signup", "page_view", "add_to_cart", "checkout_started", "order_placed"],
               ["signup", "login"], ["login", "signup"],
               ["page_view", "page_view", "add_to_cart"], ["search", "search", "search"],
               ["add_to_cart", "add_to_cart", "checkout_started"],
               ["page_view", "search", "page_view", "search", "Video Played"],
               ["order_placed", "page_view"], ["page_view", "no_such_type", "order_placed"],
               ["Video Played", "order_placed"],
               ["page_view", "search", "add_to_cart", "checkout_started", "order_placed",
                "page_view", "search", "add_to_cart", "checkout_started", "order_placed"]]
    WITHIN = [("1s", 1), ("30s", 30), ("10m", 600), ("1h", 3600), ("2h", 7200), ("1d", 86400),
              ("36h", 129600), ("3d", 259200), ("1w", 604800), ("90d", 7776000),
              ("45m", 2700), ("100s", 100), ("24h", 86400), ("120m", 7200), ("7d", 604800),
              ("3600s", 3600), ("1440m", 86400), ("90m", 5400), ("14d", 1209600),
              ("2160h", 7776000)]

    def funnel(self, tenant):
        frm, to = self.range_for(tenant, None)
        steps = self.rng.choice(self.FUNNELS)
        p = self.range_params(frm, to) + [("steps", ",".join(steps))]
        if self.rng.random() < 0.25:
            within, ws = "1d", 86400
        else:
            within, ws = self.rng.choice(self.WITHIN)
            p.append(("within", within))
        return Case("/events/funnel", tenant, self.shuffle(p), frm=frm, to=to, steps=steps,
                    within=canonical_within(ws), within_s=ws)

    RETENTION = [("signup", "login"), ("signup", "page_view"), ("page_view", "page_view"),
                 ("login", "order_placed"), ("add_to_cart", "order_placed"),
                 ("search", "Video Played"), ("signup", "no_such_type")]

    def retention(self, tenant):
        unit = "day" if self.rng.random() < 0.65 else "week"
        frm, to = self.range_for(tenant, unit, max_buckets=60)
        se, re_ = self.rng.choice(self.RETENTION)
        tz = self.tz()
        p = self.range_params(frm, to) + [("startEvent", se), ("returnEvent", re_)]
        r = self.rng.random()
        if r < 0.2:
            periods = 7
        else:
            periods = self.rng.choice([1, 2, 3, 5, 8, 12, 14, 30])
            p.append(("periods", str(periods)))
        if not (unit == "day" and self.rng.random() < 0.3):
            p.append(("period", {"day": self.rng.choice(["day", "daily"]),
                                 "week": self.rng.choice(["week", "weekly"])}[unit]))
        if not (tz == "UTC" and self.rng.random() < 0.5):
            p.append(("tz", tz))
        return Case("/events/retention", tenant, self.shuffle(p), frm=frm, to=to, start=se,
                    ret=re_, unit=unit, periods=periods, tz=tz)


def default_cases(gen):
    """The defaults: to = now rounded up to a second, from = to - 7 days (recent data)."""
    rng = gen.rng
    out = []
    for ti in range(3):
        out.append(Case("/events/count", ti, [], default_from=True, default_to=True, etype=None))
        out.append(Case("/events/count", ti, [("eventType", "page_view")], default_from=True,
                        default_to=True, etype="page_view"))
        out.append(Case("/events/trend", ti, [("interval", "hour"), ("tz", "Asia/Kolkata")],
                        default_from=True, default_to=True, etype=None, unit="hour",
                        tz="Asia/Kolkata"))
        out.append(Case("/events/trend", ti, [], default_from=True, default_to=True, etype=None,
                        unit="day", tz="UTC"))
        out.append(Case("/events/unique-users", ti, [("interval", "day"),
                                                     ("tz", "America/New_York")],
                        default_from=True, default_to=True, etype=None, unit="day",
                        tz="America/New_York"))
        out.append(Case("/events/breakdown", ti, [("property", "plan")], default_from=True,
                        default_to=True, etype=None, prop="plan", limit=10))
        out.append(Case("/events/funnel", ti, [("steps", "page_view,add_to_cart,order_placed")],
                        default_from=True, default_to=True, steps=["page_view", "add_to_cart",
                                                                   "order_placed"],
                        within="1d", within_s=86400))
        out.append(Case("/events/retention", ti, [("startEvent", "page_view"),
                                                  ("returnEvent", "page_view")],
                        default_from=True, default_to=True, start="page_view", ret="page_view",
                        unit="day", periods=7, tz="UTC"))
        # only `from` (to = now) and only `to` (from = to - 7 days), over historical data
        frm = gen.now - 5 * DAY - 12345678
        out.append(Case("/events/count", ti, [("from", fmt_utc(frm))], frm=frm,
                        default_to=True, etype=None))
        _, tt = rng.choice(TRANSITIONS)
        to = tt + rng.randrange(0, 3 * DAY)
        out.append(Case("/events/trend", ti, [("to", fmt_utc(to)), ("interval", "hour"),
                                              ("tz", "Australia/Lord_Howe")], to=to,
                        default_from=True, etype=None, unit="hour", tz="Australia/Lord_Howe"))
        out.append(Case("/events/trend", ti, [("to", fmt_utc(to)), ("interval", "day"),
                                              ("tz", "America/Havana")], to=to,
                        default_from=True, etype=None, unit="day", tz="America/Havana"))
    return out


def fixed_cases(gen):
    """Ranges made to hit the DST edges on purpose (every tenant)."""
    out = []
    spec = [
        # Havana: Mar 8 has no midnight (day starts 01:00 -04), Nov 1 has two (first at 04:00Z)
        ("day", "America/Havana", us_utc(2026, 3, 6), us_utc(2026, 3, 11)),
        ("day", "America/Havana", us_utc(2026, 10, 30), us_utc(2026, 11, 4)),
        ("month", "America/Havana", us_utc(2026, 9, 15), us_utc(2026, 11, 20)),
        ("hour", "America/Havana", us_utc(2026, 11, 1, 1), us_utc(2026, 11, 1, 9)),
        ("hour", "America/Havana", us_utc(2026, 3, 8, 2), us_utc(2026, 3, 8, 9)),
        ("week", "America/Havana", us_utc(2026, 10, 20), us_utc(2026, 11, 12)),
        # New York, Berlin: 23 h and 25 h days, repeated hour
        ("day", "America/New_York", us_utc(2026, 3, 7, 5), us_utc(2026, 3, 10, 4)),
        ("hour", "America/New_York", us_utc(2026, 11, 1, 3), us_utc(2026, 11, 1, 9)),
        ("hour", "Europe/Berlin", us_utc(2026, 10, 24, 22), us_utc(2026, 10, 25, 4)),
        ("day", "Europe/Berlin", us_utc(2026, 10, 23, 22), us_utc(2026, 10, 27, 23)),
        ("hour", "Europe/Berlin", us_utc(2026, 3, 28, 22, 30), us_utc(2026, 3, 29, 3, 0, 0, 1)),
        # Lord Howe: 30-minute shifts, 23.5 h / 24.5 h days, 1.5 h / 0.5 h hours
        ("hour", "Australia/Lord_Howe", us_utc(2026, 4, 4, 12, 7), us_utc(2026, 4, 4, 18, 59)),
        ("hour", "Australia/Lord_Howe", us_utc(2026, 10, 3, 13), us_utc(2026, 10, 3, 18)),
        ("day", "Australia/Lord_Howe", us_utc(2026, 4, 2), us_utc(2026, 4, 7)),
        ("day", "Australia/Lord_Howe", us_utc(2026, 10, 1), us_utc(2026, 10, 6)),
        ("week", "Australia/Lord_Howe", us_utc(2026, 3, 20), us_utc(2026, 4, 20)),
        # :30 and :45 offsets
        ("hour", "Asia/Kolkata", us_utc(2026, 3, 8, 4, 10), us_utc(2026, 3, 8, 9, 50)),
        ("hour", "Asia/Kathmandu", us_utc(2026, 11, 1, 2, 5), us_utc(2026, 11, 1, 8, 55)),
        ("day", "Asia/Kathmandu", us_utc(2026, 3, 27), us_utc(2026, 4, 2)),
        ("month", "Asia/Kolkata", us_utc(2026, 1, 1), us_utc(2026, 11, 20)),
        ("week", "Europe/Berlin", us_utc(2026, 1, 1), us_utc(2026, 11, 20)),
        ("minute", "Australia/Lord_Howe", us_utc(2026, 4, 4, 14, 50, 30, 500000),
         us_utc(2026, 4, 4, 15, 10, 0, 1)),
        ("minute", "Asia/Kathmandu", us_utc(2026, 3, 29, 0, 58), us_utc(2026, 3, 29, 1, 2)),
    ]
    for ti in range(3):
        for unit, tz, frm, to in spec:
            p = [("from", fmt_utc(frm)), ("to", fmt_utc(to)), ("interval", unit), ("tz", tz)]
            out.append(Case("/events/trend", ti, list(p), frm=frm, to=to, etype=None, unit=unit,
                            tz=tz))
            if ti == 0:
                out.append(Case("/events/unique-users", ti, list(p), frm=frm, to=to, etype=None,
                                unit=unit, tz=tz))
    # retention across the Havana and Berlin fall-back days
    for ti in range(3):
        for tz, frm, to in (("America/Havana", us_utc(2026, 10, 28), us_utc(2026, 11, 3)),
                            ("Europe/Berlin", us_utc(2026, 10, 22), us_utc(2026, 10, 27)),
                            ("Australia/Lord_Howe", us_utc(2026, 4, 1), us_utc(2026, 4, 7))):
            p = [("from", fmt_utc(frm)), ("to", fmt_utc(to)), ("startEvent", "page_view"),
                 ("returnEvent", "page_view"), ("period", "day"), ("periods", "5"), ("tz", tz)]
            out.append(Case("/events/retention", ti, p, frm=frm, to=to, start="page_view",
                            ret="page_view", unit="day", periods=5, tz=tz))
    return out


# ---------------------------------------------------------------------------------------------
# checking answers

class Checker:
    def __init__(self, sb, refs, now):
        self.f = sb.failures
        self.refs = refs
        self.now = now
        self.detail = Counter()
        self.bad = Counter()
        self.done = Counter()
        self.lock = threading.Lock()
        self.cache_off = False  # phase 2: a query role without the cache (X-Cache: bypass)
        # phase 3: (tenant, path) -> the dictionary of a tracked, complete path (ADR-24)
        self.tracked = {}
        self.overflow_answers = 0  # tracked answers that reported an overflow

    def fail(self, case, msg):
        with self.lock:
            self.bad[case.endpoint] += 1
            n = self.detail[case.endpoint]
            self.detail[case.endpoint] += 1
        if n < MAX_DETAIL:
            self.f.fail("%s: %s" % (case.describe(), msg))
        else:
            log("mismatch (details left out): %s: %.200s" % (case.describe(), msg))

    def range_of(self, case, body, t_before, t_after):
        """(frm, to) the answer must be for; checks body's from/to."""
        errs = []
        try:
            bf, bf_off = parse_rfc3339(body.get("from"))
            bt, bt_off = parse_rfc3339(body.get("to"))
        except (ValueError, TypeError) as e:
            return None, None, ["from/to not RFC 3339: %s (%r, %r)" %
                                (e, body.get("from"), body.get("to"))]
        for k in ("from", "to"):
            if not str(body.get(k)).endswith("Z"):
                errs.append("%s %r is not in UTC (Z)" % (k, body.get(k)))
        if case.default_to:
            lo, hi = ceil_second(t_before), ceil_second(t_after)
            if not (lo <= bt <= hi and bt % US == 0):
                errs.append("default to %r is not now rounded up to a whole second (%s..%s)" %
                            (body.get("to"), fmt_utc(lo), fmt_utc(hi)))
            to = bt
        else:
            to = case.to
            if bt != to:
                errs.append("to %r, expected %s" % (body.get("to"), fmt_utc(to)))
        if case.default_from:
            frm = to - 7 * DAY
        else:
            frm = case.frm
        if bf != frm:
            errs.append("from %r, expected %s" % (body.get("from"), fmt_utc(frm)))
        return frm, to, errs

    @staticmethod
    def start_ok(text, us, zone):
        try:
            t, off = parse_rfc3339(text)
        except ValueError:
            return False
        return t == us and off == zone.offset_s(us)

    def series(self, name, exp, got, zone, field):
        """Compares [(start, n)] with [{"start", field}]; returns an error or None."""
        if not isinstance(got, list):
            return "%s is %r, expected a list" % (name, type(got).__name__)
        for i in range(max(len(exp), len(got))):
            e = exp[i] if i < len(exp) else None
            g = got[i] if i < len(got) else None
            ok = (e is not None and isinstance(g, dict) and set(g) == {"start", field} and
                  self.start_ok(g.get("start"), e[0], zone) and g.get(field) == e[1])
            if not ok:
                exp_txt = ("{start: %s, %s: %d}" % (fmt_local(e[0], zone.tz), field, e[1])
                           if e else "nothing")
                return ("%s: %d buckets expected, %d got; first difference at bucket %d: "
                        "expected %s, got %s" % (name, len(exp), len(got), i, exp_txt,
                                                 json.dumps(g)))
        return None

    def check(self, case, st, hdrs, body, t_before, t_after):
        errs = []
        ref = self.refs[case.tenant]
        ep = case.endpoint
        if st != 200:
            self.fail(case, "status %s %.300r" % (st, body))
            return
        if hdrs.get("cache-control", "").replace(" ", "").lower() != "no-store":
            errs.append("Cache-Control %r, expected no-store" % hdrs.get("cache-control"))
        xc = hdrs.get("x-cache")
        if ep == "/events":
            if xc != "bypass":
                errs.append("X-Cache %r on raw events, expected bypass (pages are not cached)"
                            % xc)
        elif self.cache_off and xc != "bypass":
            errs.append("X-Cache %r with the cache off, expected bypass" % xc)
        elif not self.cache_off and xc not in ("hit", "miss"):
            errs.append("X-Cache %r, expected hit or miss" % xc)
        # what answered (X-Query-Source): rollups for counts, the user sets for unique users
        # (except per minute: no sets that fine), the timelines for funnels, raw events for the
        # rest
        if ep in ("/events/count", "/events/trend", "/events/types"):
            want_src = "rollups"
        elif ep == "/events/unique-users" and dict(case.params).get("interval") != "minute":
            want_src = "user_sets"
        elif ep == "/events/retention":
            want_src = "user_sets"
        elif ep == "/events/funnel":
            want_src = "timelines"
        elif ep == "/events/breakdown" and (case.tenant, case.kw["prop"]) in self.tracked:
            want_src = "property_rollups"
        else:
            want_src = "events"
        if hdrs.get("x-query-source") != want_src:
            errs.append("X-Query-Source %r, expected %r" % (hdrs.get("x-query-source"), want_src))
        for k in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            if not hdrs.get(k, "").isdigit():
                errs.append("%s %r, expected an integer (RateLimit-* on 200 answers)" %
                            (k, hdrs.get(k)))
        if not isinstance(body, dict):
            self.fail(case, "body is not a JSON object: %.300r" % (body,))
            return
        kw = case.kw
        if ep != "/events/types":
            frm, to, e2 = self.range_of(case, body, t_before, t_after)
            errs += e2
            if frm is None:
                self.fail(case, "; ".join(errs))
                return
        if ep in ("/events/count", "/events/trend", "/events/unique-users", "/events/breakdown"):
            if body.get("eventType", "<absent>") != kw["etype"]:
                errs.append("eventType %r, expected %r" % (body.get("eventType", "<absent>"),
                                                           kw["etype"]))
        if ep == "/events/count":
            exp = ref.count(frm, to, kw["etype"])
            if body.get("count") != exp:
                errs.append("count %r, expected %d" % (body.get("count"), exp))
            extra = set(body) - {"eventType", "from", "to", "count"}
            if extra:
                errs.append("unexpected fields %s" % sorted(extra))
        elif ep == "/events/trend":
            zone = ZONES[kw["tz"]]
            exp = ref.trend(frm, to, kw["etype"], kw["unit"], zone)
            if body.get("interval") != kw["unit"]:
                errs.append("interval %r, expected %r" % (body.get("interval"), kw["unit"]))
            if body.get("tz") != kw["tz"]:
                errs.append("tz %r, expected %r" % (body.get("tz"), kw["tz"]))
            tot = sum(n for _, n in exp)
            if body.get("total") != tot:
                errs.append("total %r, expected %d" % (body.get("total"), tot))
            e = self.series("series", exp, body.get("series"), zone, "count")
            if e:
                errs.append(e)
        elif ep == "/events/unique-users":
            unit = kw["unit"]
            zone = ZONES[kw["tz"]]
            total, ser = ref.unique(frm, to, kw["etype"], unit, zone)
            if body.get("users") != total:
                errs.append("users %r, expected %d" % (body.get("users"), total))
            if unit is None:
                extra = set(body) - {"eventType", "from", "to", "users"}
                if extra:
                    errs.append("fields %s without interval" % sorted(extra))
            else:
                if body.get("interval") != unit:
                    errs.append("interval %r, expected %r" % (body.get("interval"), unit))
                if body.get("tz") != kw["tz"]:
                    errs.append("tz %r, expected %r" % (body.get("tz"), kw["tz"]))
                e = self.series("series", ser, body.get("series"), zone, "users")
                if e:
                    errs.append(e)
        elif ep == "/events/breakdown":
            named = self.tracked.get((case.tenant, kw["prop"]))
            if named is None:
                total, exp = ref.breakdown(frm, to, kw["etype"], kw["prop"], kw["limit"])
                ov = None
            else:
                total, exp, ov = ref.breakdown_tracked(frm, to, kw["etype"], kw["prop"],
                                                       kw["limit"], named)
            if body.get("overflow") != ov:
                errs.append("overflow %r, expected %r" % (body.get("overflow"), ov))
            elif ov:
                with self.lock:
                    self.overflow_answers += 1
            if body.get("property") != kw["prop"]:
                errs.append("property %r" % body.get("property"))
            if body.get("total") != total:
                errs.append("total %r, expected %d" % (body.get("total"), total))
            got = body.get("values")
            gl = ([(v.get("value"), v.get("count")) for v in got if isinstance(v, dict)]
                  if isinstance(got, list) else None)
            if gl != exp:
                i = next((i for i in range(max(len(exp), len(gl or []))) if gl is None or
                          i >= len(gl) or i >= len(exp) or gl[i] != exp[i]), 0)
                errs.append("values differ at %d: expected %s, got %s (expected %d entries: "
                            "%s; got %s)" % (i, exp[i] if i < len(exp) else None,
                                             gl[i] if gl and i < len(gl) else None, len(exp),
                                             json.dumps(exp, ensure_ascii=False)[:600],
                                             json.dumps(got, ensure_ascii=False)[:600]))
        elif ep == "/events/funnel":
            steps = kw["steps"]
            counts = ref.funnel(frm, to, steps, kw["within_s"] * US)
            if body.get("within") != kw["within"]:
                errs.append("within %r, expected %r" % (body.get("within"), kw["within"]))
            if body.get("withinSeconds") != kw["within_s"]:
                errs.append("withinSeconds %r, expected %d" % (body.get("withinSeconds"),
                                                               kw["within_s"]))
            got = body.get("steps")
            if not isinstance(got, list) or len(got) != len(steps):
                errs.append("steps %.300r, expected %d steps" % (got, len(steps)))
            else:
                for k, (s, g) in enumerate(zip(steps, got)):
                    n = counts[k]
                    cr = n / counts[0] if counts[0] else 0
                    prev = counts[k - 1] if k else counts[0]
                    sr = n / prev if prev else 0
                    if not isinstance(g, dict) or g.get("eventType") != s or \
                            g.get("users") != n or \
                            not isinstance(g.get("conversionRate"), (int, float)) or \
                            not isinstance(g.get("stepConversionRate"), (int, float)) or \
                            abs(g["conversionRate"] - cr) > 1e-6 or \
                            abs(g["stepConversionRate"] - sr) > 1e-6:
                        errs.append("step %d: expected {eventType: %s, users: %d, "
                                    "conversionRate: %.6f, stepConversionRate: %.6f}, got %s "
                                    "(all expected users %s)" %
                                    (k + 1, s, n, cr, sr, json.dumps(g), counts))
                        break
        elif ep == "/events/retention":
            zone = ZONES[kw["tz"]]
            unit, periods = kw["unit"], kw["periods"]
            exp = ref.retention(frm, to, kw["start"], kw["ret"], unit, periods, zone)
            for k, v in (("startEvent", kw["start"]), ("returnEvent", kw["ret"]),
                         ("period", unit), ("periods", periods), ("tz", kw["tz"])):
                if body.get(k) != v:
                    errs.append("%s %r, expected %r" % (k, body.get(k), v))
            got = body.get("cohorts")
            if not isinstance(got, list):
                errs.append("cohorts %r" % (got,))
            else:
                for i in range(max(len(exp), len(got))):
                    e = exp[i] if i < len(exp) else None
                    g = got[i] if i < len(got) else None
                    ok = e is not None and isinstance(g, dict)
                    if ok:
                        lo, _, users, retained = e
                        rates = g.get("rates")
                        ok = (self.start_ok(g.get("start"), lo, zone) and
                              g.get("users") == users and g.get("retained") == retained and
                              isinstance(rates, list) and len(rates) == len(retained) and
                              all(isinstance(r, (int, float)) and abs(r - n / users) < 1e-6
                                  for r, n in zip(rates, retained)))
                    if not ok:
                        et = ("{start: %s, users: %d, retained: %s}" %
                              (fmt_local(e[0], zone.tz), e[2], e[3]) if e else "nothing")
                        errs.append("cohorts: %d expected, %d got; first difference at cohort "
                                    "%d: expected %s, got %s" %
                                    (len(exp), len(got), i, et, json.dumps(g)))
                        break
        elif ep == "/events/types":
            exp = ref.types()
            got = body.get("types")
            gl = None
            try:
                gl = [(g["eventType"], g["count"], parse_rfc3339(g["firstSeen"])[0],
                       parse_rfc3339(g["lastSeen"])[0]) for g in got]
            except (TypeError, KeyError, ValueError) as e:
                errs.append("types do not parse: %s: %.300r" % (e, got))
            if gl is not None and gl != exp:
                i = next(i for i in range(max(len(gl), len(exp)))
                         if i >= len(gl) or i >= len(exp) or gl[i] != exp[i])
                errs.append("types differ at %d: expected %s, got %s" % (
                    i, (exp[i][0], exp[i][1], fmt_utc(exp[i][2]), fmt_utc(exp[i][3]))
                    if i < len(exp) else None, json.dumps(got[i]) if i < len(got) else None))
        if errs:
            self.fail(case, "; ".join(errs))
        with self.lock:
            self.done[ep] += 1


def run_case(client, checker, case):
    t0 = now_us()
    try:
        st, h, body, _ = client[case.tenant].get(case.endpoint, case.params)
    except eotest.HttpError as e:
        checker.fail(case, "no answer: %s" % e)
        return None
    t1 = now_us()
    checker.check(case, st, h, body, t0, t1)
    if case.repeat and st == 200:
        ok = False
        for _ in range(4):
            st2, h2, body2, _ = client[case.tenant].get(case.endpoint, case.params)
            if h2.get("x-cache") == "hit":
                ok = True
                if body2 != body or st2 != 200:
                    checker.fail(case, "cached answer differs: %s %.300r vs first %.300r" %
                                 (st2, body2, body))
                if h2.get("x-query-source") != h.get("x-query-source"):
                    checker.fail(case, "cached answer's X-Query-Source %r, first %r" %
                                 (h2.get("x-query-source"), h.get("x-query-source")))
                break
            time.sleep(0.15)
        if not ok:
            checker.fail(case, "asked again (closed range): X-Cache %r, expected hit" %
                         h2.get("x-cache"))
    return st


# ---------------------------------------------------------------------------------------------
# raw events

def check_event_fields(ev, got, t_lo, t_hi):
    """Differences between the generated event and one raw events entry."""
    errs = []
    keys = {"messageId", "eventType", "userId", "anonymousId", "timestamp", "receivedAt",
            "sentAt", "properties", "context"}
    if set(got) != keys:
        errs.append("fields %s, expected %s" % (sorted(got), sorted(keys)))
    for k, v in (("messageId", ev.mid), ("eventType", ev.type), ("userId", ev.uid),
                 ("anonymousId", ev.aid), ("sentAt", None), ("properties", ev.props),
                 ("context", {"library": {"name": "qref"}})):
        if got.get(k, "<absent>") != v:
            errs.append("%s %r, expected %r" % (k, got.get(k, "<absent>"), v))
    try:
        if parse_rfc3339(got.get("timestamp"))[0] != ev.t:
            errs.append("timestamp %r, expected %s" % (got.get("timestamp"), fmt_utc(ev.t)))
        ra = parse_rfc3339(got.get("receivedAt"))[0]
        if not t_lo <= ra <= t_hi:
            errs.append("receivedAt %r outside the sending window" % got.get("receivedAt"))
    except ValueError as e:
        errs.append(str(e))
    return errs


def walk_pages(client, params, limit, max_pages):
    """All pages; returns (list of events, pages, error or None)."""
    out, cursor, pages = [], None, 0
    while pages < max_pages:
        p = list(params) + ([("limit", str(limit))] if limit else [])
        if cursor is not None:
            p.append(("cursor", cursor))
        st, h, body, _ = client.get("/events", p)
        pages += 1
        if st != 200 or not isinstance(body, dict) or not isinstance(body.get("events"), list):
            return out, pages, "page %d: status %s %.300r" % (pages, st, body)
        if h.get("x-cache") != "bypass":
            return out, pages, "page %d: X-Cache %r, expected bypass" % (pages, h.get("x-cache"))
        evs = body["events"]
        if len(evs) > (limit or 100):
            return out, pages, "page %d has %d events, limit %d" % (pages, len(evs), limit or 100)
        out.extend(evs)
        cursor = body.get("nextCursor", "<absent>")
        if cursor is None:
            return out, pages, None
        if not isinstance(cursor, str) or not cursor:
            return out, pages, "page %d: nextCursor %r" % (pages, cursor)
        if len(evs) < (limit or 100):
            return out, pages, ("page %d has %d < limit events but nextCursor is not null" %
                                (pages, len(evs)))
    return out, pages, "more than %d pages" % max_pages


def raw_cases(gen):
    rng = gen.rng
    out = []
    for ti in range(3):
        ref = gen.refs[ti]
        # typed pages start their scan where the hour rollups say the newest `limit` events of
        # the type are (ADR-25): small and large limits, long ranges, an unknown type
        for limit, kind in ((None, "range"), (1000, "wide"), (37, "range"), (1, "small"),
                            (250, "type"), (1, "type"), (7, "type-wide"),
                            (100, "type-wide"), (1000, "type-wide"), (50, "type-unknown"),
                            (7, "user"), (100, "user")):
            if kind in ("wide", "type-wide", "type-unknown"):
                frm, to = us_utc(2026, 3, 1), us_utc(2026, 4, 15)
            elif kind == "small":
                frm, to = gen.range_for(ti, "minute")
            else:
                frm, to = gen.range_for(ti, "day", max_buckets=20)
            etype = rng.choice(TYPES) if kind.startswith("type") else None
            if kind == "type-unknown":
                etype = "no_such_type"
            uid = None
            if kind == "user":
                cands = [e.uid for e in ref.events if e.uid is not None]
                uid = rng.choice(cands)
                frm, to = SPAN_LO, gen.now - 3 * HOUR
            out.append((ti, frm, to, etype, uid, limit))
    return out


def run_raw(sb, clients, refs, gen, t_lo, t_hi):
    f = sb.failures
    n_pages = 0
    for ti, frm, to, etype, uid, limit in raw_cases(gen):
        params = [("from", gen.fmt_instant(frm)), ("to", gen.fmt_instant(to))]
        if etype:
            params.append(("eventType", etype))
        if uid:
            params.append(("userId", uid))
        name = "GET /events tenant %d %s limit %s" % (
            ti, "&".join("%s=%s" % kv for kv in params), limit)
        exp = refs[ti].raw(frm, to, etype, uid)
        # the pages the reference needs, plus one (a full last page may be followed by an empty
        # one) and one to spare: a cursor that does not advance is caught there
        got, pages, err = walk_pages(clients[ti], params, limit,
                                     max_pages=len(exp) // (limit or 100) + 2)
        n_pages += pages
        if err:
            f.fail("%s: %s" % (name, err))
            continue
        gm = [g.get("messageId") if isinstance(g, dict) else None for g in got]
        em = [e.mid for e in exp]
        if gm != em:
            i = next(i for i in range(max(len(gm), len(em)))
                     if i >= len(gm) or i >= len(em) or gm[i] != em[i])
            f.fail("%s: %d events expected, %d got over %d pages; first difference at %d: "
                   "expected %s, got %s" % (name, len(em), len(gm), pages, i,
                                            "%s@%s" % (em[i], fmt_utc(exp[i].t))
                                            if i < len(em) else None,
                                            json.dumps(got[i]) if i < len(got) else None))
            continue
        bad = []
        for e, g in zip(exp, got):
            errs = check_event_fields(e, g, t_lo, t_hi)
            if errs:
                bad.append("%s: %s" % (e.mid, "; ".join(errs)))
        f.check(not bad, "%s: %d events with wrong fields; first: %s" %
                (name, len(bad), bad[:3]))
        log("raw events: %s: %d events, %d pages" % (name, len(got), pages))
    return n_pages


def page_stability(sb, coll_url, client, ref, wk, tenant_events, t_lo):
    """Stores new events between page fetches; the walk must follow the keyset."""
    f = sb.failures
    frm, to = us_utc(2026, 10, 24), us_utc(2026, 10, 26)
    params = [("from", fmt_utc(frm)), ("to", fmt_utc(to))]
    limit = 40
    exp_all = ref.raw(frm, to)
    st, h, body, _ = client.get("/events", params + [("limit", str(limit))])
    if not f.check(st == 200 and isinstance(body, dict) and body.get("nextCursor"),
                   "page stability: first page %s %.300r" % (st, body)):
        return
    page1 = body["events"]
    f.check([g.get("messageId") for g in page1] == [e.mid for e in exp_all[:limit]],
            "page stability: first page differs from the reference")
    cursor = body["nextCursor"]
    last = exp_all[limit - 1]
    # new events: newer than the cursor, older, and at the cursor's timestamp on both sides
    rng = random.Random(SEED + 1)
    new = []

    def mk(t, mid):
        e = Ev(t, mid, "page_view", "u-stab", None, {"n": -1, "plan": "pro"})
        new.append(e)

    mk(last.t, last.mid + "~")                 # same time, larger id: before the cursor
    mk(last.t, last.mid[:-1])                  # same time, smaller id: after the cursor
    mk(last.t + 1, "stab-newer-1")             # newer: before the cursor
    mk(exp_all[0].t + 1, "stab-newest")        # newer than everything: never in later pages
    mk(last.t - 1, "stab-older-1")             # older: in a later page
    mk(exp_all[-1].t, "0stab-oldest")          # at the oldest event's time, smaller id
    mk(frm, "stab-at-from")                    # exactly at from: included
    mk(to, "stab-at-to")                       # exactly at to: excluded
    for e in new:
        f.check(e.mid not in ref.by_mid, "page stability: generated id %s exists" % e.mid)
    st, _, body = eotest.post_json(coll_url, [e.wire(rng) for e in new], key=wk)
    f.check(st == 202, "page stability: batch of new events: %s %.200r" % (st, body))
    sb.wait_stored([e.mid for e in new], timeout=60)
    # walk on
    rest, cur, pages = [], cursor, 0
    while cur is not None and pages < 100:
        st, h, body, _ = client.get("/events", params + [("limit", str(limit)), ("cursor", cur)])
        pages += 1
        if not f.check(st == 200 and isinstance(body, dict), "page stability: page %d %s %.300r"
                       % (pages + 1, st, body)):
            return
        rest.extend(body.get("events") or [])
        cur = body.get("nextCursor")
        if pages == 2:
            # a second round of new events, between later pages: one right after this page's
            # last event (must appear next), one newer than it (must not)
            lastg = rest[-1]
            lt = parse_rfc3339(lastg["timestamp"])[0]
            more = [Ev(lt, lastg["messageId"][:-1] + "!", "login", "u-stab", None, {"n": -2}),
                    Ev(lt, lastg["messageId"] + "~", "login", "u-stab", None, {"n": -3})]
            new.extend(more)
            st2, _, _ = eotest.post_json(coll_url, [e.wire(rng) for e in more], key=wk)
            f.check(st2 == 202, "page stability: second batch: %s" % st2)
            sb.wait_stored([e.mid for e in more], timeout=60)
            cut2 = (lt, lastg["messageId"])
    tenant_events.extend(new)
    allnow = sorted([e for e in ref.events if frm <= e.t < to] +
                    [e for e in new if frm <= e.t < to], key=lambda e: (e.t, e.mid), reverse=True)
    key_last = (last.t, last.mid)
    expected = [e for e in allnow if (e.t, e.mid) < key_last]
    # events of the second round that sort before the second cut are not in later pages
    if pages > 2:
        expected = [e for e in expected if not (e in new[-2:] and (e.t, e.mid) > cut2)]
    gm = [g.get("messageId") for g in rest]
    em = [e.mid for e in expected]
    if gm != em:
        i = next(i for i in range(max(len(gm), len(em)))
                 if i >= len(gm) or i >= len(em) or gm[i] != em[i])
        f.fail("page stability: after the first page (new events stored in between), %d "
               "events expected, %d got; first difference at %d: expected %s, got %s" %
               (len(em), len(gm), i, em[i] if i < len(em) else None,
                gm[i] if i < len(gm) else None))
    else:
        log("page stability: %d + %d events over %d pages, %d new events stored mid-walk" %
            (len(page1), len(rest), pages + 1, len(new)))
    dup = set(g.get("messageId") for g in page1) & set(gm)
    f.check(not dup, "page stability: events repeated across pages: %s" % sorted(dup)[:5])


# ---------------------------------------------------------------------------------------------
# SQL cross-checks

def sql_checks(sb, tenants, refs, gen):
    f = sb.failures
    # the SQL bucket function against the reference boundaries
    spec = [("day", "America/Havana", us_utc(2026, 3, 6), us_utc(2026, 3, 11)),
            ("day", "America/Havana", us_utc(2026, 10, 30), us_utc(2026, 11, 4)),
            ("month", "America/Havana", us_utc(2026, 9, 15), us_utc(2026, 11, 20)),
            ("hour", "America/Havana", us_utc(2026, 11, 1, 1), us_utc(2026, 11, 1, 9)),
            ("hour", "Australia/Lord_Howe", us_utc(2026, 4, 4, 12, 7), us_utc(2026, 4, 4, 19)),
            ("hour", "Australia/Lord_Howe", us_utc(2026, 10, 3, 13), us_utc(2026, 10, 3, 18)),
            ("day", "Australia/Lord_Howe", us_utc(2026, 4, 2), us_utc(2026, 4, 7)),
            ("hour", "Asia/Kathmandu", us_utc(2026, 11, 1, 2, 5), us_utc(2026, 11, 1, 8, 55)),
            ("hour", "America/New_York", us_utc(2026, 11, 1, 3), us_utc(2026, 11, 1, 9)),
            ("day", "Europe/Berlin", us_utc(2026, 10, 23, 22), us_utc(2026, 10, 27, 23)),
            ("week", "Asia/Kolkata", us_utc(2026, 1, 1, 0, 0, 0, 1), us_utc(2026, 3, 1)),
            ("minute", "Asia/Kathmandu", us_utc(2026, 3, 29, 0, 58, 30, 5),
             us_utc(2026, 3, 29, 1, 2))]
    for unit, tz, frm, to in spec:
        rows = sb.sql("SELECT (extract(epoch FROM bucket_start) * 1000000)::bigint "
                      "FROM eventops_buckets('%s'::timestamptz, '%s'::timestamptz, '%s', '%s')"
                      % (fmt_utc(frm), fmt_utc(to), unit, tz))
        got = [int(r[0]) for r in rows]
        exp = bucket_starts(frm, to, unit, ZONES[tz])
        if got != exp:
            i = next(i for i in range(max(len(got), len(exp)))
                     if i >= len(got) or i >= len(exp) or got[i] != exp[i])
            f.fail("SQL eventops_buckets(%s, %s, %s, %s): %d starts, reference %d; first "
                   "difference at %d: SQL %s, reference %s" % (
                       fmt_utc(frm), fmt_utc(to), unit, tz, len(got), len(exp), i,
                       fmt_local(got[i], ZONES[tz].tz) if i < len(got) else None,
                       fmt_local(exp[i], ZONES[tz].tz) if i < len(exp) else None))
    # counts and unique users straight from the events table
    rng = gen.rng
    n = 0
    for ti, t in enumerate(tenants):
        for _ in range(4):
            frm, to = gen.range_for(ti, None)
            et = rng.choice([None] + TYPES)
            cond = "tenant_id = '%s' AND occurred_at >= '%s' AND occurred_at < '%s'%s" % (
                t["tenantId"], fmt_utc(frm), fmt_utc(to),
                " AND event_type = '%s'" % et if et else "")
            row = sb.sql("SELECT count(*), count(DISTINCT coalesce(user_id, anonymous_id)) "
                         "FROM events WHERE " + cond)[0]
            exp = (refs[ti].count(frm, to, et), refs[ti].unique(frm, to, et)[0])
            f.check((int(row[0]), int(row[1])) == exp,
                    "SQL count/unique users over %s..%s %s of tenant %d: %s, reference %s" %
                    (fmt_utc(frm), fmt_utc(to), et, ti, row, exp))
            n += 1
    log("SQL cross-checks: %d bucket series, %d counts" % (len(spec), n))


# ---------------------------------------------------------------------------------------------

def send_all(sb, coll_url, tenants, wks, rng):
    batches = []
    for ti, evs in enumerate(tenants):
        order = list(evs)
        rng.shuffle(order)
        for i in range(0, len(order), BATCH):
            batches.append((ti, [e.wire(rng) for e in order[i:i + BATCH]]))
    rng.shuffle(batches)
    errors = []
    lock = threading.Lock()
    it = iter(batches)

    def worker():
        while True:
            with lock:
                b = next(it, None)
            if b is None:
                return
            ti, body = b
            for attempt in range(5):
                try:
                    st, _, resp = eotest.post_json(coll_url, body, key=wks[ti], timeout=60)
                except eotest.HttpError as e:
                    st, resp = 0, str(e)
                if st == 202:
                    break
                if st in (429, 503, 0):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                break
            if st != 202:
                with lock:
                    errors.append("batch of tenant %d: %s %.300r" % (ti, st, resp))
    ths = [threading.Thread(target=worker) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return len(batches), errors


# ---------------------------------------------------------------------------------------------
# phase 3: tracked properties (ADR-24)

# (tenant, path, cap): plan with every value named; objects (address) past a small cap; plan
# past a cap of 3 (the integer, the real, true and the non-ASCII string among the values); a
# nested path
TRACKED = [(0, "plan", None), (0, "address", 4), (1, "plan", 3), (2, "address.city", None)]


def breakdown_case(gen, ti, prop, frm, to, etype, limit):
    p = [("from", fmt_utc(frm)), ("to", fmt_utc(to)), ("property", prop), ("limit", str(limit))]
    if etype:
        p.append(("eventType", etype))
    return Case("/events/breakdown", ti, gen.shuffle(p), frm=frm, to=to, etype=etype, prop=prop,
                limit=limit)


def tracked_cases(gen, ti, prop):
    """Random ranges (edges at any precision inside an hour, whole hours, less than an hour)
    and fixed ones for a tracked path."""
    out = []
    for _ in range(max(1, int(30 * SCALE))):
        c = gen.breakdown(ti)
        c.params = [(k, prop if k == "property" else v) for k, v in c.params]
        c.kw["prop"] = prop
        out.append(c)
    rng = gen.rng
    for _ in range(max(1, int(12 * SCALE))):
        h = us_utc(2026, 1, 1) + rng.randrange(0, 7500) * HOUR
        kind = rng.randrange(4)
        if kind == 0:  # whole hours only
            frm, to = h, h + rng.randint(1, 400) * HOUR
        elif kind == 1:  # inside one hour
            frm = h + rng.randrange(0, HOUR - 1)
            to = rng.randrange(frm + 1, h + HOUR + 1)
        elif kind == 2:  # across a single hour boundary, less than an hour long
            frm = h - rng.randrange(1, HOUR // 2)
            to = h + rng.randrange(1, HOUR // 2)
        else:  # edges inside hours on both sides, weeks long
            frm = h + rng.randrange(1, HOUR)
            to = frm + rng.randint(1, 60) * DAY + rng.randrange(1, HOUR)
        etype = gen.etype(0.5)
        limit = rng.choice([1, 2, 3, 5, 10, 1000])
        out.append(breakdown_case(gen, ti, prop, frm, to, etype, limit))
    return out


def run_tracked(sb, f, tenants, gen, checker, cases, clients):
    """Tracks TRACKED with the admin command while the compacting processor runs, waits for the
    backfill, and asks every breakdown again plus cases made for the tracked paths: answers
    from property rollups (X-Query-Source) equal to the reference with the stored dictionary;
    the other breakdowns still from raw events."""
    t0 = time.monotonic()
    for ti, path, cap in TRACKED:
        args = ["track-property", "--tenant", tenants[ti]["tenantId"], "--path", path]
        if cap:
            args += ["--cap", str(cap)]
        out = sb.admin_json(*args)
        f.check(out.get("result") == "tracked", "track-property %s: %r" % (path, out))
    listed = sb.admin_json("list-tracked-properties")
    f.check(len(listed.get("trackedProperties", [])) == len(TRACKED),
            "list-tracked-properties: %r" % (listed,))
    done = eotest.wait_until(
        lambda: sb.scalar("SELECT count(*) FROM tracked_properties WHERE state <> 'complete'")
        == "0", 900, interval=1.0)
    if not f.check(done, "tracked properties not complete after 900 s: %s" %
                   sb.sql("SELECT path, state FROM tracked_properties")):
        return
    log("tracked properties backfilled in %.1f s" % (time.monotonic() - t0))
    # the size of the counts (ADR-24 "Costs"): rows and bytes per tracked path, against events
    n_events = int(sb.scalar("SELECT count(*) FROM events"))
    for row in sb.sql("SELECT path, count(*), sum(pg_column_size(r.*)) FROM property_rollups AS r"
                      " GROUP BY 1 ORDER BY 1"):
        log("property_rollups %s: %s rows, %s bytes of tuples (%d events in all)" %
            (row[0], row[1], row[2], n_events))
    log("property_rollups: %s bytes with indexes" %
        sb.scalar("SELECT pg_total_relation_size('property_rollups')"))
    for ti, path, cap in TRACKED:
        rows = sb.sql("SELECT value FROM property_values WHERE tenant_id = '%s' AND path = '%s'"
                      % (tenants[ti]["tenantId"], path))
        named = {r[0] for r in rows}
        f.check(len(named) <= (cap or 1000), "%s: %d values named, cap %s" %
                (path, len(named), cap))
        checker.tracked[(ti, path)] = named
    f.check(len(checker.tracked[(1, "plan")]) == 3, "tenant 1 plan: the cap of 3 not reached")
    again = [c for c in cases if c.endpoint == "/events/breakdown"]
    for ti, path, _ in TRACKED:
        again += tracked_cases(gen, ti, path)
    for c in again:
        c.repeat = False
    bad0 = checker.bad.get("/events/breakdown", 0)
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
        list(ex.map(lambda c: run_case(clients, checker, c), again))
    n_tracked = sum(1 for c in again if (c.tenant, c.kw["prop"]) in checker.tracked)
    log("tracked: %d breakdown cases (%d on tracked paths, %d answers with an overflow), %d bad"
        % (len(again), n_tracked, checker.overflow_answers,
           checker.bad.get("/events/breakdown", 0) - bad0))
    f.check(checker.overflow_answers >= 10, "only %d answers reported an overflow" %
            checker.overflow_answers)
    # untracking: the rows go, the answers come from raw events again
    out = sb.admin_json("untrack-property", "--tenant", tenants[2]["tenantId"], "--path",
                        "address.city")
    f.check(out.get("result") == "untracked", "untrack-property: %r" % (out,))
    f.check(sb.scalar("SELECT count(*) FROM property_rollups WHERE path = 'address.city'") == "0",
            "rows of an untracked path left")
    del checker.tracked[(2, "address.city")]
    for c in again:
        if c.tenant == 2 and c.kw["prop"] == "address.city":
            run_case(clients, checker, c)


def main():
    t_start = time.monotonic()
    now = now_us()
    tenants_ev, rng = generate(now)
    total = sum(len(x) for x in tenants_ev)
    log("generated %d events (%s) in %.1f s" % (total, ", ".join(str(len(x)) for x in tenants_ev),
                                                 time.monotonic() - t_start))
    with eotest.Sandbox("query-reference") as sb:
        f = sb.failures
        key = sb.create_signing_key()
        tenants, clients_meta = [], []
        for ti in range(3):
            t = sb.create_tenant("qref-%d-%s" % (ti, eotest.rand_hex(6)))
            tenants.append(t)
            clients_meta.append(sb.create_client(t["tenantId"], ["events:read"]))
        # no compaction until phase 2: the first pass of queries reads user-set deltas only
        coll, proc = sb.collector(), sb.processor({"EVENTOPS_USER_SETS_COMPACT_MS": "3600000"})
        query = sb.query()
        for r in (coll, proc, query):
            r.start()
        try:
            for r in (coll, proc, query):
                r.wait_ready(timeout=90)
        except (RuntimeError, TimeoutError) as e:
            f.fail("roles did not start: %s (query log: %s)" % (e, query.tail(5)))
            return sb.report("query reference: roles did not start")
        t_send0 = now_us() - 5 * US
        nb, errors = send_all(sb, sb.url("/events/batch"), tenants_ev,
                              [t["writeKey"] for t in tenants], rng)
        f.check(not errors, "%d batches refused; first: %s" % (len(errors), errors[:3]))
        log("sent %d batches" % nb)
        want = {t["tenantId"]: len(evs) for t, evs in zip(tenants, tenants_ev)}

        def stored():
            rows = sb.sql("SELECT tenant_id::text, count(*) FROM events GROUP BY 1")
            return {r[0]: int(r[1]) for r in rows}
        got = eotest.wait_until(lambda: stored() == want and stored(), 240, interval=1.0)
        if not f.check(got, "events stored %r, expected %r" % (stored(), want)):
            return sb.report("query reference: not all events were stored")
        t_send1 = now_us() + 5 * US
        log("all %d events stored (%.1f s since start)" % (total, time.monotonic() - t_start))

        refs = [TenantRef(evs) for evs in tenants_ev]
        # the stored data is the generated data (so that every later difference is the query
        # role's): per tenant and type counts, first and last times; rollups sum up
        for ti, t in enumerate(tenants):
            rows = sb.sql("SELECT event_type, count(*), "
                          "(extract(epoch FROM min(occurred_at)) * 1000000)::bigint, "
                          "(extract(epoch FROM max(occurred_at)) * 1000000)::bigint "
                          "FROM events WHERE tenant_id = '%s' GROUP BY 1" % t["tenantId"])
            got_t = sorted((r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows)
            f.check(got_t == sorted(refs[ti].types()), "tenant %d: stored types/counts/times "
                    "differ from the generated events: %s vs %s" %
                    (ti, got_t, sorted(refs[ti].types())))
            # per type and for all types together (event_type ''), every granularity
            rows = sb.sql("SELECT granularity || (event_type = '')::text, sum(count) FROM rollups"
                          " WHERE tenant_id = '%s' GROUP BY 1" % t["tenantId"])
            f.check({r[0]: int(r[1]) for r in rows} ==
                    {g + every: len(tenants_ev[ti])
                     for g in ("minute", "quarter", "hour", "day") for every in ("true", "false")},
                    "tenant %d: rollups %r, expected %d per granularity" %
                    (ti, rows, len(tenants_ev[ti])))
        if f:
            return sb.report("query reference: stored data differs from the generated data")

        tokens = [query_token(sb, c, key["kid"]) for c in clients_meta]
        clients = [QueryClient(sb.query_url(""), tok) for tok in tokens]
        st, _, body, _ = clients[0].get("/events/count", [("from", "2026-01-01T00:00:00Z"),
                                                          ("to", "2026-12-01T00:00:00Z")])
        if not f.check(st == 200, "smoke: GET /events/count: %s %.300r" % (st, body)):
            return sb.report("query reference: the query role does not answer")

        gen = Gen(random.Random(SEED + 2), refs, now)
        cases = default_cases(gen) + fixed_cases(gen)
        plan = [("count", 110), ("trend", 180), ("unique", 80), ("breakdown", 70),
                ("funnel", 65), ("retention", 50)]
        for name, n in plan:
            for _ in range(max(1, int(n * SCALE))):
                ti = gen.rng.choice([0, 0, 1, 1, 2])
                cases.append(getattr(gen, name)(ti))
        for ti in range(3):
            cases.append(Case("/events/types", ti, []))
        for c in cases:
            if not c.default_to and c.to is not None and c.to < now - 2 * HOUR and \
                    gen.rng.random() < 0.12:
                c.repeat = True
        gen.rng.shuffle(cases)
        checker = Checker(sb, refs, now)
        t_q0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            list(ex.map(lambda c: run_case(clients, checker, c), cases))
        nreq = len(cases) + sum(1 for c in cases if c.repeat)
        log("%d cases (%d requests) in %.1f s: %s" % (
            len(cases), nreq, time.monotonic() - t_q0,
            ", ".join("%s %d/%d bad" % (k, checker.bad[k], checker.done[k] + checker.bad[k])
                      for k in sorted(set(checker.done) | set(checker.bad)))))
        f.check(sb.sql("SELECT count(*) FROM user_sets")[0][0] == "0",
                "user sets were compacted during the first pass")
        f.check(sb.sql("SELECT count(*) FROM timelines")[0][0] == "0",
                "timelines were compacted during the first pass")

        # phase 2: a processor that compacts; once every delta is merged, the unique-users,
        # retention and funnel cases again (a fresh query role with the cache off): the compacted
        # sets and timelines must give the same answers as the deltas did
        proc.stop()
        proc = sb.processor({"EVENTOPS_USER_SETS_COMPACT_MS": "100"}, name="processor-compacting")
        query.stop()
        query = sb.query({"EVENTOPS_QUERY_CACHE": "off"}, name="query-no-cache")
        for r in (proc, query):
            r.start()
        for r in (proc, query):
            r.wait_ready(timeout=90)
        merged = eotest.wait_until(
            lambda: sb.sql("SELECT count(*) FROM user_set_deltas")[0][0] == "0", 120,
            interval=0.5)
        f.check(merged, "user-set deltas left after 120 s of compaction: %s" %
                sb.sql("SELECT count(*) FROM user_set_deltas")[0][0])
        merged = eotest.wait_until(
            lambda: sb.sql("SELECT count(*) FROM timeline_deltas")[0][0] == "0", 120,
            interval=0.5)
        f.check(merged, "timeline deltas left after 120 s of compaction: %s" %
                sb.sql("SELECT count(*) FROM timeline_deltas")[0][0])
        f.check(sb.sql("SELECT count(*) FROM timelines")[0][0] != "0",
                "no timelines after the compaction")
        checker.cache_off = True
        again_eps = ("/events/unique-users", "/events/retention", "/events/funnel")
        again = [c for c in cases if c.endpoint in again_eps]
        for c in again:
            c.repeat = False
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            list(ex.map(lambda c: run_case(clients, checker, c), again))
        log("compacted: %d unique-users, retention and funnel cases again, %d bad in all" %
            (len(again), sum(checker.bad.get(ep, 0) for ep in again_eps)))
        for ep, n in checker.bad.items():
            if n > MAX_DETAIL:
                f.fail("%s: %d mismatching cases in all (first %d shown)" % (ep, n, MAX_DETAIL))

        run_tracked(sb, f, tenants, gen, checker, cases, clients)

        pages = run_raw(sb, clients, refs, gen, t_send0, t_send1)
        sql_checks(sb, tenants, refs, gen)
        page_stability(sb, sb.url("/events/batch"), clients[2], refs[2], tenants[2]["writeKey"],
                       tenants_ev[2], t_send0)

        sb.check_clean_end(running=(coll, proc, query))
        return sb.report("query reference: %d events, %d query cases (%d requests), %d raw "
                         "pages, %.0f s" % (total, len(cases), nreq, pages,
                                            time.monotonic() - t_start))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
