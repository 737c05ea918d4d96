#!/usr/bin/env python3
"""End-to-end: ingestion under crashes.

Several concurrent clients send >= 20,000 distinct events (two tenants) in batches of 50-200,
plus 10% resends of already-sent messageIds (inside the same batch, in a later batch, and
through POST /events), batches holding invalid events and fully invalid requests. Meanwhile a
chaos thread SIGKILLs the processor at least 3 times and the collector once (restarting them)
and malformed records are written straight into the events topic with kcat.

Then it checks:
  * every event that got a 2xx is stored exactly once (sets of messageIds per tenant equal,
    no duplicates in events / event_ids), and its stored fields are the ones sent;
  * no rejected event (invalid item, 400/401 request, malformed record) is stored;
  * every rollup count equals COUNT(*) of its events (minute, hour, day; UTC buckets) and
    every bucket of events has its rollup row;
  * the user sets (ADR-22) hold exactly the users of the stored events: unique users per
    Berlin day from the query role (X-Query-Source user_sets), all types and each type, equal
    COUNT(DISTINCT user) of the events; and the timelines (ADR-23) hold exactly their times:
    funnels from the query role (X-Query-Source timelines) equal the funnel model in SQL over
    the events;
  * the property rollups (ADR-24) of the paths tracked before the run (`plan` of one tenant,
    `amount`, random reals past a cap of 500, of the other) equal a recount of the events
    through the stored dictionary, and breakdowns from the query role (X-Query-Source
    property_rollups) equal the same breakdown in SQL over the events;
  * the dead-letter topic (read_committed) holds exactly the malformed records, once each,
    each with an eventops-error-code header (and the expected code);
  * the processes stop on SIGTERM with exit code 0 and no sanitizer report.

Environment: the stack's (scripts/stack.sh env) plus EVENTOPS_BIN. Knobs for development only
(the defaults are the test): E2E_EVENTS (distinct events, default 20000), E2E_CLIENTS (5),
E2E_PACE_S (how long the clients spread their requests over, default 60).
Exit code 0 = pass.
"""

import datetime as dt
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

N_DISTINCT = int(os.environ.get("E2E_EVENTS", "20000"))
N_CLIENTS = int(os.environ.get("E2E_CLIENTS", "5"))
PACE_S = float(os.environ.get("E2E_PACE_S", "60"))
RESEND_FRACTION = 0.10
BATCH_MIN, BATCH_MAX = 50, 200
EVENT_TYPES = ["page_viewed", "button_clicked", "signup_completed", "order_placed", "item_added"]
PROCESSOR_KILLS = 4  # the issue demands at least 3
CLIENT_DEADLINE_S = 300  # a request that gets no 2xx by then is a failure
DRAIN_TIMEOUT_S = 120
MALFORMED_ROUNDS = 5
MALFORMED_PER_ROUND = 5

RUN = eotest.rand_hex(6)
NOW = dt.datetime.now(dt.timezone.utc)


def us_of(t):
    """Microseconds since the epoch of an aware datetime."""
    d = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds


def rfc3339(t, offset_minutes=0):
    """RFC 3339 with microseconds, in the given UTC offset."""
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    s = t.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.%f")
    if offset_minutes == 0:
        return s + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    m = abs(offset_minutes)
    return "%s%s%02d:%02d" % (s, sign, m // 60, m % 60)


# ---------------------------------------------------------------------------------------------
# What the clients send


class Expect:
    """What must be stored for one valid event (checked against the events row)."""
    __slots__ = ("event_type", "user_id", "anonymous_id", "seq", "ts_us", "sent_at_us")

    def __init__(self, event_type, user_id, anonymous_id, seq, ts_us, sent_at_us):
        self.event_type = event_type
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.seq = seq
        self.ts_us = ts_us
        self.sent_at_us = sent_at_us


def make_valid_event(rng, mid, seq):
    """A valid event and its Expect. Mixes types, userId (string or integer) vs anonymousId,
    properties/context, timestamps (none, now, yesterday, days ago; Z or an offset) and sentAt."""
    et = rng.choice(EVENT_TYPES)
    ev = {"messageId": mid}
    # eventType and its aliases
    alias = rng.random()
    ev["eventType" if alias < 0.8 else ("event" if alias < 0.9 else "name")] = et
    user_id = anonymous_id = None
    r = rng.random()
    if r < 0.45:
        user_id = "user-%d" % rng.randrange(500)
        ev["userId"] = user_id
    elif r < 0.6:
        n = rng.randrange(1, 10**12)
        ev["userId"] = n
        user_id = str(n)
    elif r < 0.85:
        anonymous_id = "anon-%s" % eotest.rand_hex(12)
        ev["anonymousId"] = anonymous_id
    else:
        user_id = "user-%d" % rng.randrange(500)
        anonymous_id = "anon-%s" % eotest.rand_hex(12)
        ev["userId"] = user_id
        ev["anonymousId"] = anonymous_id
    props = {"seq": seq, "plan": rng.choice(["free", "pro", "team"]), "amount": rng.random() * 100,
             "tags": ["a", "b"][: rng.randrange(3)], "nested": {"ok": True, "n": None}}
    ev["properties" if rng.random() < 0.9 else "metadata"] = props
    if rng.random() < 0.3:
        ev["context"] = {"library": {"name": "e2e", "version": "1.0"}, "ip": "10.0.0.%d" % seq}
    ts_us = sent_at_us = None
    r = rng.random()
    if r < 0.3:
        pass  # no timestamp: the time received
    else:
        if r < 0.5:
            t = NOW - dt.timedelta(seconds=rng.uniform(0, 600))
        elif r < 0.75:
            t = NOW - dt.timedelta(days=1, seconds=rng.uniform(-3600, 3600))
        else:
            t = NOW - dt.timedelta(days=rng.choice([2, 3, 4]), seconds=rng.uniform(0, 86400))
        t = t.replace(microsecond=rng.randrange(1000000))
        ev["timestamp"] = rfc3339(t, rng.choice([0, 0, 0, 120, -330]))
        ts_us = us_of(t)
    if rng.random() < 0.3:
        # A device clock a little off; the collector corrects timestamp by receivedAt - sentAt.
        s = NOW + dt.timedelta(seconds=rng.uniform(-30, 30))
        ev["sentAt"] = rfc3339(s)
        sent_at_us = us_of(s)
    return ev, Expect(et, user_id, anonymous_id, seq, ts_us, sent_at_us)


def make_invalid_event(rng, mid):
    """(event, expected error code). mid may be None (no messageId in the event)."""
    kinds = [
        ({"userId": "u1", "properties": {"x": 1}}, "missing_field"),            # no eventType
        ({"eventType": 42, "userId": "u1"}, "invalid_type"),
        ({"eventType": "page_viewed", "userId": "u1", "timestamp": "yesterday"},
         "invalid_timestamp"),
        ({"eventType": "page_viewed", "userId": "u1", "timestamp": "2025-13-40T25:00:00Z"},
         "invalid_timestamp"),
        ({"eventType": "page_viewed"}, "missing_field"),                       # no user
        ({"eventType": "page_viewed", "userId": "u1", "properties": [1, 2]}, "invalid_type"),
        ({"eventType": "page_viewed", "userId": {"id": 1}}, "invalid_type"),
        ({"eventType": "   ", "userId": "u1"}, "empty_value"),
        ({"eventType": "page_viewed", "userId": "u1",
          "timestamp": rfc3339(NOW + dt.timedelta(days=3))}, "timestamp_out_of_range"),
        ({"eventType": "page_viewed", "anonymousId": "a1", "sentAt": 12345}, "invalid_type"),
    ]
    ev, code = rng.choice(kinds)
    ev = dict(ev)
    if mid is not None:
        ev["messageId"] = mid
    return ev, code


class Request:
    """One HTTP request of a client, built in advance so retries resend the same bytes."""

    def __init__(self, path, body, gzip=False, key=None):
        self.path = path
        self.body = body
        self.gzip = gzip
        self.key = key  # None: the client's key
        self.expect_status = 202
        self.expect_code = None          # error code of a 4xx
        self.valid_ids = []              # messageIds expected in the 202, in order
        self.invalid = {}                # index -> (messageId or None, code)
        self.events = 0                  # events in the request


class Client:
    def __init__(self, idx, tenant, stats, failures, seed):
        self.idx = idx
        self.tenant = tenant
        self.stats = stats
        self.failures = failures
        self.rng = random.Random(seed)
        self.expect = {}                 # messageId -> Expect (valid events of this client)
        self.rejected = set()            # messageIds of rejected events
        self.accepted = set()            # messageIds of 2xx answers
        self.requests = []
        self.id_echo = []                # (messageId sent, messageId in the error, code)
        self.done = 0
        self._seq = 0
        self._mid_n = 0

    def _mid(self, prefix="ok"):
        self._mid_n += 1
        return "%s-%s-c%d-%06d" % (prefix, RUN, self.idx, self._mid_n)

    def plan(self, n_distinct):
        rng = self.rng
        n_resend = int(round(n_distinct * RESEND_FRACTION))
        # Resends split three ways: same batch, a later batch, POST /events.
        n_same = n_resend // 3
        n_single = n_resend // 3
        n_later = n_resend - n_same - n_single
        sent_events = {}                 # messageId -> event dict (for resends)
        made = 0
        batches = []
        while made < n_distinct:
            size = min(rng.randint(BATCH_MIN, BATCH_MAX), n_distinct - made)
            items = []
            for _ in range(size):
                self._seq += 1
                mid = self._mid()
                ev, exp = make_valid_event(rng, mid, self._seq)
                self.expect[mid] = exp
                items.append(ev)
            made += size
            batches.append(items)
        # same-batch duplicates
        for _ in range(n_same):
            items = rng.choice(batches)
            items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        # later-batch resends: an event of an earlier batch appended to a later one
        for _ in range(n_later):
            j = rng.randrange(1, len(batches))
            src = batches[rng.randrange(j)]
            batches[j].insert(rng.randrange(len(batches[j]) + 1), rng.choice(src))
        # invalid items in about a fifth of the batches
        for items in batches:
            if rng.random() < 0.2:
                for _ in range(rng.randint(1, 3)):
                    mid = self._mid("rej") if rng.random() < 0.8 else None
                    ev, code = make_invalid_event(rng, mid)
                    if mid:
                        self.rejected.add(mid)
                    items.insert(rng.randrange(len(items) + 1), (ev, code))
        # batch requests
        singles_after = defaultdict(list)
        for bi, items in enumerate(batches):
            for it in items:
                if not isinstance(it, tuple):
                    sent_events[it["messageId"]] = (bi, it)
        for _ in range(n_single):
            mid = rng.choice(list(self.expect))
            bi, ev = sent_events[mid]
            singles_after[min(len(batches) - 1, bi + rng.randint(0, 3))].append(ev)
        for bi, items in enumerate(batches):
            events = [it[0] if isinstance(it, tuple) else it for it in items]
            wrapped = rng.random() < 0.3
            body = json.dumps({"events": events} if wrapped else events,
                              separators=(",", ":")).encode()
            req = Request("/events/batch", body, gzip=rng.random() < 0.2)
            req.events = len(events)
            for i, it in enumerate(items):
                if isinstance(it, tuple):
                    req.invalid[i] = (it[0].get("messageId"), it[1])
                else:
                    req.valid_ids.append(it["messageId"])
            self.requests.append(req)
            for ev in singles_after[bi]:
                req = Request("/events", json.dumps(ev, separators=(",", ":")).encode(),
                              gzip=rng.random() < 0.1)
                req.events = 1
                req.valid_ids = [ev["messageId"]]
                self.requests.append(req)
            if rng.random() < 0.12:
                self.requests.append(self._fully_invalid_request())
        return self

    def _fully_invalid_request(self):
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            req = Request("/events/batch", b'[{"eventType":"x","userId":"u","messageId":"%s"'
                          % self._mid("rej").encode())
            req.expect_status, req.expect_code = 400, "invalid_json"
        elif kind == 1:
            req = Request("/events/batch", b'{"events":[]}')
            req.expect_status, req.expect_code = 400, "empty_batch"
        elif kind == 2:
            items = [make_invalid_event(rng, self._mid("rej")) for _ in range(rng.randint(1, 4))]
            req = Request("/events/batch", json.dumps([e for e, _ in items]).encode())
            req.expect_status, req.expect_code = 400, "no_valid_events"
            req.invalid = {i: (e["messageId"], c) for i, (e, c) in enumerate(items)}
        elif kind == 3:
            ev, code = make_invalid_event(rng, self._mid("rej"))
            req = Request("/events", json.dumps(ev).encode())
            req.expect_status, req.expect_code = 400, code
        elif kind == 4:
            ev, _ = make_valid_event(rng, self._mid("rej"), 0)
            req = Request("/events/batch", json.dumps([ev]).encode(),
                          key="wk_000000000000.not-a-valid-key")
            req.expect_status, req.expect_code = 401, "invalid_write_key"
        else:
            ev, _ = make_valid_event(rng, self._mid("rej"), 0)
            req = Request("/events/batch", json.dumps({"batch": ev}).encode())
            req.expect_status, req.expect_code = 400, "invalid_type"
        for m in _mids_in(req.body):
            self.rejected.add(m)
        return req

    # -- running --

    def run(self, base_url, t0, pace_s, deadline):
        conn = [None]
        n = len(self.requests)
        for j, req in enumerate(self.requests):
            wait = t0 + pace_s * j / n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._send(base_url, req, conn, deadline)
            self.done += 1
        if conn[0]:
            conn[0].close()

    def _send(self, base_url, req, conn, deadline):
        url = base_url + req.path
        attempts = 0
        while True:
            attempts += 1
            if time.monotonic() > deadline:
                self.failures.fail("client %d: no final answer for a %s request of %d events "
                                   "before the deadline (%d attempts)" %
                                   (self.idx, req.path, req.events, attempts))
                return
            if conn[0] is None:
                host, port = base_url.split("//")[1].split(":")
                conn[0] = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                st, hdrs, body = eotest.post_raw(url, req.body,
                                                 key=req.key or self.tenant["writeKey"],
                                                 gzip=req.gzip, conn=conn[0])
            except eotest.HttpError:
                conn[0] = None
                self.stats.add("conn_errors")
                time.sleep(0.2)
                continue
            if st == 503:
                self.stats.add("http_503")
                ra = hdrs.get("retry-after")
                self.failures.check(ra is not None, "503 without Retry-After: %r" % (body,))
                time.sleep(min(float(ra or 1), 2.0))
                continue
            if st >= 500:
                self.failures.fail("client %d: unexpected %d: %r" % (self.idx, st, body))
                time.sleep(0.5)
                continue
            break
        if attempts > 1:
            self.stats.add("retried_requests")
        self.stats.add("requests")
        self._check_answer(req, st, body)

    def _check_answer(self, req, st, body):
        f = self.failures
        where = "client %d %s (%d events)" % (self.idx, req.path, req.events)
        if req.expect_status != 202:
            self.stats.add("rejected_requests")
            if not f.check(st == req.expect_status, "%s: status %d, expected %d: %r" %
                           (where, st, req.expect_status, body)):
                return
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            f.check(code == req.expect_code, "%s: error code %r, expected %r" %
                    (where, code, req.expect_code))
            if req.invalid:
                self._check_item_errors(where, body, req)
            return
        if not f.check(st == 202 and isinstance(body, dict),
                       "%s: status %d, expected 202: %r" % (where, st, body)):
            return
        ids = body.get("messageIds")
        f.check(body.get("accepted") == len(req.valid_ids),
                "%s: accepted=%r, expected %d" % (where, body.get("accepted"), len(req.valid_ids)))
        f.check(ids == req.valid_ids, "%s: messageIds differ from the valid events sent "
                "(got %d, expected %d)" % (where, len(ids or []), len(req.valid_ids)))
        if isinstance(ids, list):
            self.accepted.update(ids)
            self.stats.add("accepted_events", len(ids))
        if req.invalid:
            self._check_item_errors(where, body, req)
        else:
            f.check("errors" not in body, "%s: unexpected errors %r" % (where, body.get("errors")))

    def _check_item_errors(self, where, body, req):
        """The errors list names exactly the invalid items (index and code); the messageId
        each error echoes is checked separately (see Client.id_echo)."""
        errs = body.get("errors")
        if not self.failures.check(isinstance(errs, list), "%s: no errors list: %r" %
                                   (where, body)):
            return
        got = {e.get("index"): (e.get("error") or {}).get("code") for e in errs}
        want = {i: code for i, (_, code) in req.invalid.items()}
        self.failures.check(len(errs) == len(want) and got == want,
                            "%s: item errors (index: code) %r, expected %r" % (where, got, want))
        for e in errs:
            sent = req.invalid.get(e.get("index"), (None, None))[0]
            if e.get("messageId") != sent:
                code = (e.get("error") or {}).get("code")
                self.id_echo.append((sent, e.get("messageId"), code))
        self.stats.add("invalid_items_reported", len(errs))


def _mids_in(body):
    """messageIds ("rej-..."/"ok-...") that appear in a raw body (for never-stored checks)."""
    out = []
    s = body.decode(errors="replace")
    i = 0
    while True:
        i = s.find("rej-" + RUN, i)
        if i < 0:
            return out
        j = i
        while j < len(s) and (s[j].isalnum() or s[j] == "-"):
            j += 1
        out.append(s[i:j])
        i = j


class Stats:
    def __init__(self):
        self.c = Counter()
        self.lock = threading.Lock()

    def add(self, k, n=1):
        with self.lock:
            self.c[k] += n


# ---------------------------------------------------------------------------------------------
# Malformed records written straight into the events topic


def malformed_records(round_no, tenant_ids):
    """(key, value, expected error code) records, each value unique (a marker inside)."""
    out = []
    recv = rfc3339(NOW)
    known = tenant_ids[round_no % len(tenant_ids)]

    def rec(n, value, code):
        marker = "mal-%s-r%d-%d" % (RUN, round_no, n)
        out.append(("e2e:" + marker, value.replace("MARKER", marker), code))

    def env(tenant, event, v=1):
        return json.dumps({"v": v, "tenantId": tenant, "receivedAt": recv, "event": event},
                          separators=(",", ":"))

    good = {"messageId": "MARKER", "eventType": "page_viewed", "userId": "u1",
            "timestamp": recv, "originalTimestamp": None, "sentAt": None, "properties": {},
            "context": {}}
    kinds = [
        ("not json at all MARKER", "undecodable"),
        (env(known, good, v=2), "undecodable"),                         # wrong version
        (env("not-a-uuid-MARKER", good), "undecodable"),                # bad tenantId
        (env(str(uuid.uuid4()), good), "unknown_tenant"),               # unknown tenant
        (env(known, dict(good, userId=None)), "missing_field"),         # no userId/anonymousId
        (env(known.upper(), good), "undecodable"),                      # not canonical UUID
        (env(known, dict(good, timestamp=None)), "missing_field"),      # record without time
        ('{"v":1,"tenantId":"%s","event":{"messageId":"MARKER"}}' % known, "undecodable"),
        (env(known, dict(good, eventType=7)), "invalid_type"),
        ('[1,2,"MARKER"]', "undecodable"),
    ]
    rng = random.Random("%s-%d" % (RUN, round_no))
    for n, (value, code) in enumerate(rng.sample(kinds, MALFORMED_PER_ROUND)):
        rec(n, value, code)
    return out


# ---------------------------------------------------------------------------------------------
# The test


def check_unique_users(sb, F, tenants):
    """After the crashes the user sets hold exactly the users of the stored events: a query role
    answers unique users from them (X-Query-Source user_sets) per Berlin day over the whole run,
    for all types and for each type, equal to COUNT(DISTINCT user) of the events per bucket."""
    from querytest import QueryClient, query_token
    key = sb.create_signing_key()
    query = sb.query()
    query.start()
    query.wait_ready(timeout=90)
    lo, hi = sb.sql("SELECT to_char(min(occurred_at) - interval '1 day', 'YYYY-MM-DD'),"
                    " to_char(max(occurred_at) + interval '2 days', 'YYYY-MM-DD') FROM events")[0]
    frm, to = lo + "T00:00:00Z", hi + "T00:00:00Z"
    checked = 0
    for t in tenants:
        client = sb.create_client(t["tenantId"], ["events:read"])
        qc = QueryClient(sb.query_url(""), query_token(sb, client, key["kid"]))
        for etype in [None] + EVENT_TYPES:
            params = [("from", frm), ("to", to), ("interval", "day"), ("tz", "Europe/Berlin")]
            if etype:
                params.append(("eventType", etype))
            st, h, body, url = qc.get("/events/unique-users", params)
            if not F.check(st == 200, "%s: %s %.300r" % (url, st, body)):
                continue
            F.check(h.get("x-query-source") == "user_sets",
                    "%s: X-Query-Source %r, expected user_sets" % (url, h.get("x-query-source")))
            where = "tenant_id = '%s'%s" % (t["tenantId"],
                                              " AND event_type = '%s'" % etype if etype else "")
            want_total = int(sb.scalar("SELECT count(DISTINCT coalesce(user_id, anonymous_id))"
                                       " FROM events WHERE " + where))
            rows = sb.sql("SELECT to_char(date_trunc('day', occurred_at AT TIME ZONE"
                          " 'Europe/Berlin'), 'YYYY-MM-DD'), count(DISTINCT coalesce(user_id,"
                          " anonymous_id)) FROM events WHERE %s GROUP BY 1" % where)
            want = {d: int(n) for d, n in rows}
            got = {b["start"][:10]: b["users"] for b in body.get("series", []) if b["users"]}
            F.check(body.get("users") == want_total and got == want,
                    "%s: users %r by day %r; the events say %r by day %r" %
                    (url, body.get("users"), got, want_total, want))
            checked += 1
        # funnels from the timelines (ADR-23) against the documented model in SQL over the
        # events: several step lists (one repeating a type) and windows, over the whole run
        funnels = [(EVENT_TYPES[:3], 3600), (EVENT_TYPES[:3], 86400),
                   ([EVENT_TYPES[0], EVENT_TYPES[0], EVENT_TYPES[3]], 600),
                   (list(reversed(EVENT_TYPES)), 7 * 86400)]
        for steps, within in funnels:
            params = [("from", frm), ("to", to), ("steps", ",".join(steps)),
                      ("within", "%ds" % within)]
            st, h, body, url = qc.get("/events/funnel", params)
            if not F.check(st == 200, "%s: %s %.300r" % (url, st, body)):
                continue
            F.check(h.get("x-query-source") == "timelines",
                    "%s: X-Query-Source %r, expected timelines" % (url, h.get("x-query-source")))
            want = funnel_sql(sb, t["tenantId"], frm, to, steps, within)
            got = [s_.get("users") for s_ in body.get("steps", [])]
            F.check(got == want, "%s: users per step %r; the events say %r" % (url, got, want))
            checked += 1
    query.stop()
    log("unique users and funnels from the user sets and timelines equal the events: %d queries"
        % checked)


def check_property_rollups(sb, F, tenants):
    """After the crashes the property rollups (ADR-24) equal a recount of the events through
    the dictionary, key by key, and the query role's breakdowns from them equal SQL over the
    events (values past the cap in "(other)" and in `overflow`)."""
    from querytest import QueryClient, query_token
    done = eotest.wait_until(
        lambda: sb.scalar("SELECT count(*) FROM tracked_properties WHERE state <> 'complete'")
        == "0", 120, interval=0.5)
    if not F.check(done, "tracked properties not complete: %s" %
                   sb.sql("SELECT path, state FROM tracked_properties")):
        return
    bad = sb.scalar(
        "WITH e AS (SELECT tp.tenant_id, tp.path, ty.t AS event_type,"
        "  date_bin('1 hour', ev.occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS h,"
        "  pv.value IS NULL AS overflow, coalesce(pv.value, '') AS value, count(*) AS n"
        " FROM tracked_properties AS tp JOIN events AS ev ON ev.tenant_id = tp.tenant_id"
        " CROSS JOIN LATERAL (SELECT eventops_property_text(ev.properties"
        "  #> string_to_array(tp.path, '.')) AS v) AS x"
        " LEFT JOIN property_values AS pv ON pv.tenant_id = tp.tenant_id"
        "  AND pv.path = tp.path AND pv.value = x.v"
        " CROSS JOIN LATERAL (VALUES (ev.event_type), ('')) AS ty(t)"
        " WHERE x.v IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6),"
        " s AS (SELECT tenant_id, path, event_type, bucket_start AS h, overflow, value,"
        "  sum(count) AS n FROM (SELECT tenant_id, path, event_type, bucket_start, overflow,"
        "  value, count FROM property_rollups UNION ALL SELECT tenant_id, path, event_type,"
        "  bucket_start, overflow, value, count FROM property_rollup_deltas) AS u"
        "  GROUP BY 1, 2, 3, 4, 5, 6)"
        " SELECT count(*) FROM e FULL JOIN s USING (tenant_id, path, event_type, h,"
        "  overflow, value) WHERE e.n IS DISTINCT FROM s.n")
    F.check(bad == "0", "%s property rollup keys differ from a recount of the events" % bad)
    F.check(sb.scalar("SELECT count(*) FROM property_values WHERE path = 'amount'") == "500",
            "the dictionary of amount does not hold its cap of 500 values")
    key = sb.create_signing_key()
    query = sb.query({"EVENTOPS_QUERY_CACHE": "off"}, name="query-breakdowns")
    query.start()
    query.wait_ready(timeout=90)
    lo, hi = sb.sql("SELECT to_char(min(occurred_at) - interval '1 day', 'YYYY-MM-DD'),"
                    " to_char(max(occurred_at) + interval '2 days', 'YYYY-MM-DD') FROM events")[0]
    checked = 0
    for t, path in ((tenants[0], "plan"), (tenants[1], "amount")):
        client = sb.create_client(t["tenantId"], ["events:read"])
        qc = QueryClient(sb.query_url(""), query_token(sb, client, key["kid"]))
        # the whole run (whole hours), and a range with sub-hour edges
        mid = sb.scalar("SELECT to_char(percentile_disc(0.5) WITHIN GROUP (ORDER BY occurred_at)"
                        " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM events"
                        " WHERE tenant_id = '%s'" % t["tenantId"])
        for frm, to in ((lo + "T00:00:00Z", hi + "T00:00:00Z"), (lo + "T00:17:30.5Z", mid)):
            for etype in (None, EVENT_TYPES[0]):
                params = [("from", frm), ("to", to), ("property", path), ("limit", "5")]
                if etype:
                    params.append(("eventType", etype))
                st, h, body, url = qc.get("/events/breakdown", params)
                if not F.check(st == 200, "%s: %s %.300r" % (url, st, body)):
                    continue
                F.check(h.get("x-query-source") == "property_rollups",
                        "%s: X-Query-Source %r" % (url, h.get("x-query-source")))
                where = ("e.tenant_id = '%s' AND e.occurred_at >= '%s' AND e.occurred_at < '%s'%s"
                         % (t["tenantId"], frm, to,
                            " AND e.event_type = '%s'" % etype if etype else ""))
                rows = sb.sql(
                    "SELECT coalesce(pv.value, '(overflow)'), count(*) FROM events AS e"
                    " CROSS JOIN LATERAL (SELECT eventops_property_text(e.properties #> '{%s}')"
                    " AS v) AS x LEFT JOIN property_values AS pv ON pv.tenant_id = e.tenant_id"
                    " AND pv.path = '%s' AND pv.value = x.v WHERE %s AND x.v IS NOT NULL"
                    " GROUP BY 1" % (path, path, where))
                named = sorted(((v, int(n)) for v, n in rows if v != "(overflow)"),
                               key=lambda kv: (-kv[1], kv[0].encode()))
                overflow = sum(int(n) for v, n in rows if v == "(overflow)")
                total = int(sb.scalar("SELECT count(*) FROM events AS e WHERE " + where))
                top = named[:5]
                want = top + [("(other)", sum(n for _, n in named[5:]) + overflow),
                              ("(none)", total - sum(n for _, n in named) - overflow)]
                got = [(v.get("value"), v.get("count")) for v in body.get("values", [])]
                want_ov = ({"count": overflow,
                            "topExact": len(top) == 5 and overflow < top[-1][1]}
                           if overflow else None)
                F.check(got == want and body.get("total") == total and
                        body.get("overflow") == want_ov,
                        "%s: %r (overflow %r); the events say %r (overflow %r)" %
                        (url, got, body.get("overflow"), want, want_ov))
                checked += 1
    query.stop()
    log("property rollups equal the events after the crashes: %d breakdowns" % checked)


def funnel_sql(sb, tenant, frm, to, steps, within):
    """Users per step of a funnel (docs/query.md) in SQL over the events."""
    base = ("tenant_id = '%s' AND occurred_at >= '%s' AND occurred_at < timestamptz '%s'"
            % (tenant, frm, to))
    sql = ["WITH s1 AS (SELECT coalesce(user_id, anonymous_id) AS u, min(occurred_at) AS t1,"
           " min(occurred_at) AS t FROM events WHERE %s AND event_type = '%s' GROUP BY 1)"
           % (base, steps[0])]
    for k in range(1, len(steps)):
        op = ">" if steps[k] == steps[k - 1] else ">="
        sql.append(", s%d AS (SELECT s.u, s.t1, min(e.occurred_at) AS t FROM s%d AS s JOIN events"
                   " AS e ON e.tenant_id = '%s' AND e.event_type = '%s' AND coalesce(e.user_id,"
                   " e.anonymous_id) = s.u AND e.occurred_at %s s.t AND e.occurred_at < s.t1 +"
                   " interval '%d seconds' GROUP BY s.u, s.t1)"
                   % (k + 1, k, tenant, steps[k], op, within))
    sql.append(" SELECT " + ", ".join("(SELECT count(*) FROM s%d)" % (k + 1)
                                      for k in range(len(steps))))
    return [int(v) for v in sb.sql("".join(sql))[0]]


def main():
    t_start = time.monotonic()
    stats = Stats()
    with eotest.Sandbox("ingest_crash") as sb:
        F = sb.failures
        tenants = [sb.create_tenant("e2e-a-%s" % RUN), sb.create_tenant("e2e-b-%s" % RUN)]
        tenant_ids = [t["tenantId"] for t in tenants]
        # tracked properties (ADR-24): written in the events' transactions under the crashes
        for t, path, cap in ((tenants[0], "plan", "1000"), (tenants[1], "amount", "500")):
            out = sb.admin_json("track-property", "--tenant", t["tenantId"], "--path", path,
                                "--cap", cap)
            F.check(out.get("result") == "tracked", "track-property %s: %r" % (path, out))
        coll, proc = sb.collector(), sb.processor()
        coll.start()
        proc.start()
        coll.wait_ready(60)
        # The processor must report ready before anything is sent (its dependencies answer).
        if not eotest.wait_until(proc.is_ready, 20, interval=0.2):
            F.fail("processor /readyz did not answer 200 within 20 s of starting on an idle "
                   "topic (it only turns ready after storing a first batch)")
            eotest.wait_until(lambda: proc.grep("partitions assigned"), 40,
                              what="the processor's partition assignment")
        log("collector and processor up (collector pid %d, processor pid %d)" %
            (coll.pid, proc.pid))

        # Plan the clients' requests.
        per_client = [N_DISTINCT // N_CLIENTS + (1 if i < N_DISTINCT % N_CLIENTS else 0)
                      for i in range(N_CLIENTS)]
        clients = [Client(i, tenants[i % 2], stats, F, "%s-%d" % (RUN, i)).plan(per_client[i])
                   for i in range(N_CLIENTS)]
        total_requests = sum(len(c.requests) for c in clients)
        total_sent_events = sum(r.events for c in clients for r in c.requests)
        log("plan: %d clients, %d distinct valid events, %d requests, %d events in them "
            "(resends and invalid items included)" %
            (N_CLIENTS, sum(len(c.expect) for c in clients), total_requests, total_sent_events))

        # Chaos: processor SIGKILLs, one collector SIGKILL, malformed records, during the run.
        malformed = []  # (key, value, code)
        chaos_log = []
        clients_done = threading.Event()
        t0 = time.monotonic()
        deadline = t0 + CLIENT_DEADLINE_S

        def stored_count():
            return int(sb.scalar("SELECT count(*) FROM event_ids"))

        def chaos():
            rng = random.Random(RUN + "chaos")
            actions = []
            for k in range(PROCESSOR_KILLS):
                actions.append((PACE_S * (0.12 + 0.2 * k + rng.uniform(-0.03, 0.03)), "kill_proc"))
            actions.append((PACE_S * (0.42 + rng.uniform(-0.02, 0.02)), "kill_coll"))
            for k in range(MALFORMED_ROUNDS):
                actions.append((PACE_S * (0.05 + 0.2 * k), "malformed"))
            actions.sort()
            mal_round = 0
            for at, what in actions:
                wait = t0 + at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                now = time.monotonic() - t0
                if what == "kill_proc":
                    n = stored_count()
                    if not proc.running():
                        F.fail("the processor exited on its own (code %s) before kill #%d" %
                               (proc.proc.returncode, proc.kills + 1))
                        proc.start()
                        proc.wait_ready(60)
                    proc.kill(signal.SIGKILL)
                    pause = rng.uniform(0.2, 2.0)
                    log("chaos: SIGKILL processor at %.1fs (stored so far %d); restart in %.1fs"
                        % (now, n, pause))
                    chaos_log.append(("processor", now, clients_done.is_set()))
                    time.sleep(pause)
                    proc.start()
                    try:
                        proc.wait_ready(60)
                        log("chaos: processor ready again after %.1fs" %
                            (time.monotonic() - t0 - now))
                    except Exception as e:  # noqa: BLE001
                        F.fail("processor not ready again after SIGKILL + restart: %s" % e)
                elif what == "kill_coll":
                    if not coll.running():
                        F.fail("the collector exited on its own (code %s)" %
                               coll.proc.returncode)
                        coll.start()
                        coll.wait_ready(60)
                    coll.kill(signal.SIGKILL)
                    pause = rng.uniform(0.5, 1.5)
                    log("chaos: SIGKILL collector at %.1fs; restart on port %d in %.1fs" %
                        (now, sb.collector_port, pause))
                    chaos_log.append(("collector", now, clients_done.is_set()))
                    time.sleep(pause)
                    coll.start()
                    try:
                        coll.wait_ready(60)
                        log("chaos: collector ready again after %.1fs" %
                            (time.monotonic() - t0 - now))
                    except Exception as e:  # noqa: BLE001
                        F.fail("collector not ready again after SIGKILL + restart: %s" % e)
                else:
                    recs = malformed_records(mal_round, tenant_ids)
                    mal_round += 1
                    eotest.produce(sb.brokers, sb.events_topic, [(k, v) for k, v, _ in recs])
                    malformed.extend(recs)
                    log("chaos: wrote %d malformed records into %s at %.1fs" %
                        (len(recs), sb.events_topic, now))

        chaos_errors = []

        def chaos_main():
            try:
                chaos()
            except Exception as e:  # noqa: BLE001
                chaos_errors.append(e)
                F.fail("chaos thread failed: %r" % e)

        def client_main(c):
            try:
                c.run(sb.url(""), t0, PACE_S, deadline)
            except Exception as e:  # noqa: BLE001
                F.fail("client %d crashed: %r" % (c.idx, e))

        threads = [threading.Thread(target=client_main, args=(c,), name="client%d" % c.idx)
                   for c in clients]
        chaos_thread = threading.Thread(target=chaos_main, name="chaos")
        for t in threads:
            t.start()
        chaos_thread.start()
        last = 0
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                done = sum(c.done for c in clients)
                log("progress: %d/%d requests, %d events accepted, %d stored" %
                    (done, total_requests, stats.c["accepted_events"], stored_count()))
        for t in threads:
            t.join()
        clients_done.set()
        t_clients = time.monotonic() - t0
        chaos_thread.join()
        log("clients finished in %.1fs: %s" % (t_clients, dict(stats.c)))

        # What must be stored: the union of the 2xx answers, per tenant.
        accepted = defaultdict(set)
        expect = {}
        rejected = set()
        for c in clients:
            accepted[c.tenant["tenantId"]] |= c.accepted
            for mid, e in c.expect.items():
                expect[(c.tenant["tenantId"], mid)] = e
            rejected |= c.rejected
        n_expected = sum(len(s) for s in accepted.values())
        echo = [x for c in clients for x in c.id_echo]
        F.check(not echo, "%d item errors do not echo the event's messageId (README: errors "
                "[{index, messageId, error}]); (sent, answered, code) e.g. %s; codes: %s" %
                (len(echo), echo[:3], dict(Counter(c for _, _, c in echo))))
        F.check(set(expect) == {(t, m) for t, s in accepted.items() for m in s},
                "the 2xx answers do not cover exactly the valid events planned: " +
                eotest.describe_set_diff("planned", {m for _, m in expect}, "accepted",
                                         {m for s in accepted.values() for m in s}))
        F.check(n_expected >= 20000 or N_DISTINCT < 20000,
                "only %d distinct events were accepted" % n_expected)

        # Wait until the stored count reaches the expected count and stays there.
        t_drain = time.monotonic()
        state = {"n": -1, "since": time.monotonic()}

        def drained():
            n = stored_count()
            if n != state["n"]:
                state["n"], state["since"] = n, time.monotonic()
            return n >= n_expected and time.monotonic() - state["since"] >= 3

        if not eotest.wait_until(drained, DRAIN_TIMEOUT_S, interval=0.5):
            F.fail("stored count %d did not settle at the expected %d within %d s" %
                   (state["n"], n_expected, DRAIN_TIMEOUT_S))
        t_stored = time.monotonic() - t0
        # The dead letters are committed in the same Kafka transaction as the offsets.
        dlq = eotest.wait_until(
            lambda: (lambda r: r if len(r) >= len(malformed) else None)(
                eotest.consume(sb.brokers, sb.dlq_topic)), 60, interval=1.0) or \
            eotest.consume(sb.brokers, sb.dlq_topic)
        log("drained in %.1fs after the clients (stored %d, dead letters %d)" %
            (time.monotonic() - t_drain, state["n"], len(dlq)))

        # Graceful stop.
        rc_c = coll.stop(60)
        rc_p = proc.stop(60)
        F.check(rc_c == 0, "collector exit code on SIGTERM: %r (expected 0)" % rc_c)
        F.check(rc_p == 0, "processor exit code on SIGTERM: %r (expected 0)" % rc_p)
        # The final contents of the dead-letter topic, with every process stopped.
        dlq = eotest.consume(sb.brokers, sb.dlq_topic)
        for r in (coll, proc):
            bad = [l for l in r.grep("") if "Sanitizer" in l or "runtime error:" in l]
            F.check(not bad, "%s log holds sanitizer reports: %s" % (r.role, bad[:5]))

        # ---- chaos happened as demanded ----
        proc_kills = [c for c in chaos_log if c[0] == "processor" and not c[2]]
        coll_kills = [c for c in chaos_log if c[0] == "collector" and not c[2]]
        F.check(len(proc_kills) >= 3, "processor SIGKILLs during the run: %d (need >= 3)" %
                len(proc_kills))
        F.check(len(coll_kills) >= 1, "collector SIGKILLs during the run: %d (need >= 1)" %
                len(coll_kills))
        F.check(len(malformed) == MALFORMED_ROUNDS * MALFORMED_PER_ROUND,
                "malformed records written: %d" % len(malformed))

        # ---- storage: exactly the accepted events, once each ----
        rows = sb.sql("SELECT tenant_id, message_id, event_type, user_id, anonymous_id,"
                      " properties->>'seq',"
                      " (extract(epoch FROM occurred_at) * 1000000)::bigint,"
                      " (extract(epoch FROM received_at) * 1000000)::bigint,"
                      " (extract(epoch FROM sent_at) * 1000000)::bigint FROM events")
        stored = defaultdict(set)
        dup = Counter()
        for r in rows:
            dup[(r[0], r[1])] += 1
            stored[r[0]].add(r[1])
        dups = [k for k, n in dup.items() if n > 1]
        F.check(not dups, "%d (tenant, messageId) stored more than once, e.g. %s" %
                (len(dups), dups[:5]))
        for tid in tenant_ids:
            F.check(stored[tid] == accepted[tid], "tenant %s: stored != accepted: %s" % (
                tid, eotest.describe_set_diff("stored", stored[tid], "accepted", accepted[tid])))
        others = set(stored) - set(tenant_ids)
        F.check(not others, "events stored for other tenants: %s" % sorted(others))
        n_ids = int(sb.scalar("SELECT count(*) FROM event_ids"))
        F.check(n_ids == len(rows), "event_ids has %d rows, events %d" % (n_ids, len(rows)))
        orphans = sb.scalar("SELECT count(*) FROM event_ids i LEFT JOIN events e"
                            " USING (tenant_id, message_id) WHERE e.message_id IS NULL")
        F.check(orphans == "0", "%s event_ids rows without an event" % orphans)
        rej_stored = [r[1] for r in rows if r[1].startswith(("rej-", "mal-")) or r[1] in rejected]
        F.check(not rej_stored, "rejected events were stored: %s" % rej_stored[:10])
        n_mal_ids = sb.scalar("SELECT count(*) FROM event_ids WHERE message_id LIKE 'mal-%%'")
        F.check(n_mal_ids == "0", "%s malformed records stored" % n_mal_ids)

        # ---- stored fields are the ones sent ----
        run_lo, run_hi = us_of(NOW) - 5 * 10**6, us_of(dt.datetime.now(dt.timezone.utc)) + 5 * 10**6
        bad_fields = []
        for r in rows:
            e = expect.get((r[0], r[1]))
            if e is None:
                continue
            occurred, received = int(r[6]), int(r[7])
            sent = int(r[8]) if r[8] is not None else None
            want = (e.event_type, e.user_id, e.anonymous_id, str(e.seq), e.sent_at_us)
            got = (r[2], r[3], r[4], r[5], sent)
            if got != want:
                bad_fields.append((r[1], "fields", got, want))
            elif not run_lo <= received <= run_hi:
                bad_fields.append((r[1], "received_at outside the run", received))
            elif e.ts_us is None and occurred != received:
                bad_fields.append((r[1], "no timestamp: occurred_at != received_at", occurred,
                                   received))
            elif e.ts_us is not None and e.sent_at_us is None and occurred != e.ts_us:
                bad_fields.append((r[1], "occurred_at != timestamp", occurred, e.ts_us))
            elif e.ts_us is not None and e.sent_at_us is not None and \
                    occurred != e.ts_us + (received - e.sent_at_us):
                bad_fields.append((r[1], "occurred_at != timestamp + receivedAt - sentAt",
                                   occurred, e.ts_us, received, e.sent_at_us))
        F.check(not bad_fields, "%d stored events differ from what was sent, e.g. %s" %
                (len(bad_fields), bad_fields[:5]))
        days = sb.scalar("SELECT count(DISTINCT date_trunc('day', occurred_at)) FROM events")
        F.check(int(days) >= 4, "events span only %s days" % days)

        # ---- rollups equal COUNT(*) of their events ----
        mism = eotest.rollup_mismatches(sb)
        F.check(not mism, "rollups differ from COUNT(*) of events (tenant, granularity, type, "
                "bucket, events, rollup): %s" % mism)
        sums = dict(((g, t), int(n)) for g, t, n in sb.sql(
            "SELECT granularity, event_type = '', sum(count) FROM rollups GROUP BY 1, 2"))
        for g in ("minute", "quarter", "hour", "day"):
            for every in ("t", "f"):  # all types together, then each type
                F.check(sums.get((g, every), 0) == len(rows), "sum of %s rollups (all types "
                        "row: %s) %d != %d events" % (g, every, sums.get((g, every), 0),
                                                     len(rows)))
        n_rollups = sb.scalar("SELECT count(*) FROM rollups")

        # ---- user sets (ADR-22) agree with the events after the crashes ----
        check_unique_users(sb, F, tenants)
        check_property_rollups(sb, F, tenants)

        # ---- dead letters: exactly the malformed records ----
        want_dlq = Counter((k, v) for k, v, _ in malformed)
        got_dlq = Counter((m["key"], m["value"]) for m in dlq)
        F.check(got_dlq == want_dlq, "dead letters differ from the malformed records: "
                "missing %s; unexpected %s" % (list((want_dlq - got_dlq).elements())[:5],
                                                list((got_dlq - want_dlq).elements())[:5]))
        codes = {(k, v): c for k, v, c in malformed}
        for m in dlq:
            h = dict(m["headers"])
            code = h.get("eventops-error-code")
            F.check(code, "dead letter without eventops-error-code: %r" % m)
            want = codes.get((m["key"], m["value"]))
            F.check(want is None or code == want, "dead letter %r: eventops-error-code %r, "
                    "expected %r" % (m["value"][:80], code, want))
            F.check(h.get("eventops-source-topic") == sb.events_topic,
                    "dead letter %r: eventops-source-topic %r" %
                    (m["value"][:80], h.get("eventops-source-topic")))

        elapsed = time.monotonic() - t_start
        summary = (
            "ingest_crash: %d distinct events accepted (%d tenants, %d clients, %d requests, "
            "%d events sent incl. resends/invalid), %d stored, %d rollup rows, %d dead letters\n"
            "  clients %.1fs, paced over %.0fs (%.0f accepted messageIds/s), all stored %.1fs "
            "after start (%.0f stored events/s)\n"
            "  chaos: processor SIGKILL x%d, collector SIGKILL x%d, %d malformed records; "
            "client retries: %d requests (%d connection errors, %d 503s)\n"
            "  total %.1fs" % (
                n_expected, len(tenants), N_CLIENTS, stats.c["requests"], total_sent_events,
                len(rows), int(n_rollups), len(dlq), t_clients, PACE_S,
                stats.c["accepted_events"] / max(t_clients, 1e-9), t_stored,
                len(rows) / max(t_stored, 1e-9), proc.kills, coll.kills, len(malformed),
                stats.c["retried_requests"], stats.c["conn_errors"], stats.c["http_503"],
                elapsed))
        return sb.report(summary)


if __name__ == "__main__":
    sys.exit(main())
