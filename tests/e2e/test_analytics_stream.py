#!/usr/bin/env python3
"""End-to-end: the analytics role's live event stream, GET /analytics/stream (docs/analytics.md,
"Live stream"), with real HTTP clients reading Server-Sent Events as they come.

Setup: one sandbox (eotest.Sandbox) with EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S=1, at most 5
streams (3 per tenant), a buffer of 200 records, a backlog bound of 64 KiB, a short watermark
bound and idle time (windows close about a second after their end); the auth role (tokens),
the collector (events by write key) and the analytics role. Tenant A has rule rA (2 s tumbling
windows, grace 1 s, emit changes, fires at >= 3 events) and rule rA2 (the same on another event
type); tenant B rule rB (the same, grouped by user); C and D only read; E has a grouped rule
for the slow client.

  a. bad input: rules malformed, too many, unknown, another tenant's or deleted (404 naming it);
     a Last-Event-ID or lastEventId that is not an id (400 naming it, also a bad lastEventId
     beside a good header); unknown and repeated parameters; no token (401), a token without events:read (403); POST (405).
  b. limits and keep-alive: C's three streams are 200 (text/event-stream, no-store, the
     rate-limit headers, "retry: 2000" first, a ": keep-alive" within 3 s), its fourth is 429
     too_many_streams naming EVENTOPS_ANALYTICS_MAX_STREAMS_PER_TENANT with Retry-After; D's
     two fill the total of 5 and its third is 429 naming EVENTOPS_ANALYTICS_MAX_STREAMS; once
     they are closed the streams are free again.
  c. live, disconnect, resume: A's stream of rA and B's stream (all its rules) are open while
     bursts of events make window updates and summaries; A's stream disconnects after a
     summary, more results are made meanwhile, and it comes back with its Last-Event-ID (from
     the buffer: no catch-up is counted). Against the topics (read_committed): the first
     connection got exactly the records of rA before the id, the second exactly those after it
     (each id is a position: a record is after it when its offset is at or past the id's for
     its partition), each once, in offset order per partition, with ids that never go back;
     neither got rA2's or B's records; B's stream got B's records only; the sink stored every
     record once.
  d. catch-up: after enough other records that the buffer no longer holds it, a resume from the
     first id of A's first connection reads Kafka first (a catch-up is counted) and gets exactly
     the records after that id, by lastEventId as well.
  e. reset: a Last-Event-ID past the topics' ends is a position Kafka does not have: the stream
     says ": reset" and starts those partitions from their earliest record (resets counted),
     so it gets every record of rA.
  f. slow client: a client that reads nothing (a tiny receive buffer) while E's grouped rule
     makes hundreds of results per tick (bursts far over the 64 KiB bound and the 200-record
     buffer) is disconnected (eventops_analytics_stream_disconnects_total{reason="slow_client"},
     once); what it had been sent ends the stream, and a resume with its last id gets exactly
     the rest. A client of E that keeps up meanwhile is not disconnected and gets every record
     once (records that left the buffer before it took them come from Kafka).
  g. metrics: the open-streams gauge, events by kind, refusals by reason, catch-ups, resets.
  h. SIGTERM with streams open: both end (the chunked stream closes cleanly), the role exits 0
     within 5 s, and no sanitizer report is in its log.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

TIME_BUDGET_S = 600
KEEPALIVE_S = 1
MAX_STREAMS, PER_TENANT = 5, 3
BUFFER_RECORDS = 200
ENV = {"EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S": str(KEEPALIVE_S),
       "EVENTOPS_ANALYTICS_MAX_STREAMS": str(MAX_STREAMS),
       "EVENTOPS_ANALYTICS_MAX_STREAMS_PER_TENANT": str(PER_TENANT),
       "EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS": str(BUFFER_RECORDS),
       "EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES": "65536",
       "EVENTOPS_ANALYTICS_WATERMARK_BOUND_MS": "200",
       "EVENTOPS_ANALYTICS_IDLE_MS": "500",
       "EVENTOPS_RATE_LIMIT_RATE": "100000", "EVENTOPS_RATE_LIMIT_BURST": "100000"}
ID_RE = re.compile(r"^w(\d+(?:\.\d+)*)-s(\d+(?:\.\d+)*)$")


def rule(name, etype, group=False):
    r = {"name": name, "eventType": etype, "window": {"type": "tumbling", "size": "2s"},
         "aggregate": {"fn": "count"}, "emit": "changes", "grace": "1s",
         "condition": {"op": ">=", "value": 3}}
    if group:
        r["groupBy"] = ["userId"]
    return r


def parse_id(text):
    """{"window": [next offset per partition], "summary": [...]} of an event id."""
    m = ID_RE.match(text or "")
    if not m:
        raise ValueError("not an event id: %r" % text)
    return {"window": [int(x) for x in m.group(1).split(".")],
            "summary": [int(x) for x in m.group(2).split(".")]}


class Sse:
    """One GET /analytics/stream read as it comes by a thread: events (event, id, data), comments
    and retry values in order; `ended` once the server closed the body cleanly."""

    def __init__(self, sb, token, query="", last_id=None, rcvbuf=None, headers=None):
        u = urllib.parse.urlsplit(sb.analytics_url("/analytics/stream" + query))
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        if rcvbuf:  # a client that reads slowly: a tiny receive window
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(60)
            s.connect((u.hostname, u.port))
            self.conn.sock = s
        h = {"Accept": "text/event-stream"}
        if token:
            h["Authorization"] = "Bearer " + token
        if last_id:
            h["Last-Event-ID"] = last_id
        h.update(headers or {})
        self.events, self.comments, self.retries, self.blocks = [], [], [], []
        self.ended, self.error, self.body = False, None, None
        self.lock = threading.Lock()
        self.conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.paused = threading.Event()
        if rcvbuf:
            self.paused.set()
        if self.status == 200:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        else:
            raw = self.resp.read()
            try:
                self.body = json.loads(raw)
            except ValueError:
                self.body = raw
            self.conn.close()

    def _run(self):
        buf = b""
        try:
            while True:
                while self.paused.is_set():
                    time.sleep(0.05)
                chunk = self.resp.read1(65536)
                if not chunk:
                    self.ended = True
                    break
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    self._block(block.decode())
        except Exception as e:  # noqa: BLE001 - closed by us, or a broken stream
            self.error = e

    def _block(self, block):
        ev = {}
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                with self.lock:
                    self.comments.append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field in ("event", "id"):
                ev[field] = value
            elif field == "retry":
                with self.lock:
                    self.retries.append(value)
        with self.lock:
            self.blocks.append(block)
            if data:
                ev["data"] = "\n".join(data)
                self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def wait(self, pred, timeout, what):
        return eotest.wait_until(lambda: pred(self), timeout, interval=0.1) or \
            log("timed out waiting for %s" % what)

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()


def topic_records(sb):
    """Every record of both topics (read_committed): (kind, partition, offset, key, value)."""
    out = []
    for kind, topic in (("window", sb.windows_topic), ("summary", sb.summaries_topic)):
        for r in eotest.consume(sb.brokers, topic):
            out.append((kind, r["partition"], r["offset"], r["key"], r["value"]))
    return out


def records_of(recs, tenant, rid):
    return [r for r in recs if r[3] == "%s:%s" % (tenant, rid)]


def after(recs, pos):
    """The records at or past pos (a parsed id) for their partition, and the others."""
    a = [r for r in recs if r[2] >= (pos[r[0]][r[1]] if r[1] < len(pos[r[0]]) else 0)]
    b = [r for r in recs if r not in a]
    return a, b


def check_stream(f, what, events, want, monotonic=True):
    """events (as received) are exactly the records want: the same values once each, in offset
    order per partition, of the right kind, with ids that never go back (unless a reset made
    them)."""
    by_value = {r[4]: r for r in want}
    got = Counter((e.get("event"), e["data"]) for e in events)
    exp = Counter((r[0], r[4]) for r in want)
    missing = exp - got
    extra = got - exp
    f.check(not missing and not extra,
            "%s: %d events, %d records expected; missing %d %s; unexpected %d %s" %
            (what, len(events), len(want), sum(missing.values()),
             [json.loads(v).get("window") for _, v in list(missing)[:3]],
             sum(extra.values()), [v[:120] for _, v in list(extra)[:3]]))
    last = {}
    prev = None
    for e in events:
        r = by_value.get(e["data"])
        if r:
            key = (r[0], r[1])
            f.check(last.get(key, -1) < r[2], "%s: partition %s out of order (offset %d after "
                    "%d)" % (what, key, r[2], last.get(key, -1)))
            last[key] = r[2]
        try:
            pos = parse_id(e.get("id"))
        except ValueError as err:
            f.fail("%s: %s" % (what, err))
            continue
        if prev and monotonic:
            f.check(all(a >= b for k in pos for a, b in zip(pos[k], prev[k])),
                    "%s: id %s goes back from %s" % (what, e.get("id"), prev))
        if r:  # the id is the position just after the event
            f.check(pos[r[0]][r[1]] == r[2] + 1, "%s: id %s after offset %d of %s" %
                    (what, e.get("id"), r[2], (r[0], r[1])))
        prev = pos


def metric(sb, name, **labels):
    st, _, raw = eotest.http_request("GET", sb.analytics_url("/metrics"))
    text = raw.decode() if isinstance(raw, bytes) else ""
    total, seen = 0.0, False
    for line in text.splitlines():
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


class Traffic:
    """Events through the collector with a tenant's write key."""

    def __init__(self, sb):
        self.sb = sb
        self.n = 0

    def burst(self, tenant, etype, count, users=None):
        evs = [{"eventType": etype, "userId": "u%d" % (i % (users or 1000000))}
               for i in range(count)]
        for k in range(0, len(evs), 500):
            st, _, body = eotest.post_json(self.sb.url("/events/batch"), evs[k:k + 500],
                                           key=tenant["writeKey"])
            if st != 202:
                raise RuntimeError("POST /events/batch: %s %r" % (st, body))
        self.n += count


def expect_error(f, what, s, status, code, field=None):
    err = s.body.get("error", {}) if isinstance(s.body, dict) else {}
    ok = f.check(s.status == status and err.get("code") == code,
                 "%s: %s %r, expected %s %s" % (what, s.status, s.body, status, code))
    if ok and field is not None:
        f.check(err.get("field") == field, "%s: field %r, expected %r" %
                (what, err.get("field"), field))
    return err


def part_a(f, sb, tok, ro_wo, ids):
    ra, rb, deleted = ids["rA"], ids["rB"], ids["deleted"]
    unknown = "0190a1b2-0000-7000-8000-00000000abcd"
    for what, q, hdr, st, code, field in (
            ("rules not a UUID", "?rules=nope", None, 400, "invalid_parameter", "rules"),
            ("rules with a trailing comma", "?rules=%s," % ra, None, 400, "invalid_parameter",
             "rules"),
            ("rules empty", "?rules=", None, 400, "invalid_parameter", "rules"),
            ("101 rules", "?rules=" + ",".join("0190a1b2-0000-7000-8000-%012x" % i
                                               for i in range(101)), None, 400,
             "invalid_parameter", "rules"),
            ("an unknown rule", "?rules=%s,%s" % (ra, unknown), None, 404, "not_found", "rules"),
            ("another tenant's rule", "?rules=" + rb, None, 404, "not_found", "rules"),
            ("a deleted rule", "?rules=" + deleted, None, 404, "not_found", "rules"),
            ("rules twice", "?rules=%s&rules=%s" % (ra, ra), None, 400, "invalid_parameter",
             "rules"),
            ("an unknown parameter", "?tenantId=x", None, 400, "invalid_parameter", "tenantId"),
            ("Last-Event-ID not an id", "", "garbage", 400, "invalid_parameter",
             "Last-Event-ID"),
            ("Last-Event-ID with a leading zero", "", "w01-s0", 400, "invalid_parameter",
             "Last-Event-ID"),
            ("lastEventId not an id", "?lastEventId=w1-s2-x", None, 400, "invalid_parameter",
             "lastEventId"),
            ("a bad lastEventId beside a good Last-Event-ID", "?lastEventId=w01-s0", "w1-s0", 400,
             "invalid_parameter", "lastEventId")):
        s = Sse(sb, tok, q, last_id=hdr)
        err = expect_error(f, what, s, st, code, field)
        if st == 404:
            want = unknown if "unknown" in what else (rb if "another" in what else deleted)
            f.check(want in err.get("message", ""), "%s: the 404 %r does not name %s" %
                    (what, err, want))
    # the same ids in upper case, repeated: accepted (and 404 would name the lower-case id)
    s = Sse(sb, tok, "?rules=%s,%s" % (ra.upper(), ra))
    f.check(s.status == 200, "rules in upper case, repeated: %s %r" % (s.status, s.body))
    s.close()
    s = Sse(sb, None)
    expect_error(f, "no token", s, 401, "missing_credentials")
    s = Sse(sb, ro_wo)
    expect_error(f, "a token without events:read", s, 403, "insufficient_scope")
    st, h, body = eotest.http_request("POST", sb.analytics_url("/analytics/stream"), b"{}",
                                      {"Authorization": "Bearer " + tok,
                                       "Content-Type": "application/json"})
    f.check(st == 405 and "GET" in h.get("allow", ""), "POST /analytics/stream: %s %r" %
            (st, h.get("allow")))
    wait_free(sb, f, "after part a")
    log("a. bad input: 400 naming rules / Last-Event-ID / lastEventId, 404 naming the rule, "
        "401, 403, 405")


def wait_free(sb, f, what, still=0):
    """Waits until `still` streams are counted open (closed ones are noticed at their next
    write: the keep-alive)."""
    ok = eotest.wait_until(lambda: metric(sb, "eventops_analytics_streams") == still,
                           5 * KEEPALIVE_S + 5)
    f.check(ok, "%s: %s streams counted open, expected %d" %
            (what, metric(sb, "eventops_analytics_streams"), still))


def part_b(f, sb, tok_c, tok_d):
    cs = [Sse(sb, tok_c) for _ in range(PER_TENANT)]
    for i, s in enumerate(cs):
        f.check(s.status == 200, "C's stream %d: %s %r" % (i, s.status, s.body))
    s0 = cs[0]
    h = s0.headers
    f.check(h.get("content-type", "").startswith("text/event-stream"), "Content-Type %r" %
            h.get("content-type"))
    f.check(h.get("cache-control") == "no-store", "Cache-Control %r" % h.get("cache-control"))
    f.check(h.get("transfer-encoding") == "chunked", "Transfer-Encoding %r" %
            h.get("transfer-encoding"))
    f.check(all(k in h for k in ("x-request-id", "ratelimit-limit", "ratelimit-remaining",
                                 "ratelimit-reset")), "stream headers: %s" % sorted(h))
    f.check(s0.wait(lambda s: "keep-alive" in s.comments, 3 * KEEPALIVE_S + 1, "a keep-alive"),
            "no ': keep-alive' within %d s: %r" % (3 * KEEPALIVE_S + 1, s0.blocks[:3]))
    f.check(s0.blocks[:1] == ["retry: 2000"], "the stream does not start with retry: 2000: %r"
            % s0.blocks[:2])
    f.check(not s0.events, "C's stream has events: %r" % s0.events[:2])
    over = Sse(sb, tok_c)
    err = expect_error(f, "C's fourth stream", over, 429, "too_many_streams")
    f.check("EVENTOPS_ANALYTICS_MAX_STREAMS_PER_TENANT" in err.get("message", ""),
            "the 429 does not name the per-tenant limit: %r" % err)
    f.check(int(over.headers.get("retry-after", "0")) >= 1, "429 Retry-After %r" %
            over.headers.get("retry-after"))
    ds = [Sse(sb, tok_d) for _ in range(MAX_STREAMS - PER_TENANT)]
    f.check([s.status for s in ds] == [200] * len(ds), "D's streams: %s" %
            [(s.status, s.body) for s in ds])
    over = Sse(sb, tok_d)
    err = expect_error(f, "a stream past the total", over, 429, "too_many_streams")
    f.check("EVENTOPS_ANALYTICS_MAX_STREAMS " in err.get("message", "") + " " and
            "PER_TENANT" not in err.get("message", ""),
            "the 429 does not name the total limit: %r" % err)
    f.check(metric(sb, "eventops_analytics_streams") == MAX_STREAMS, "gauge: %s open" %
            metric(sb, "eventops_analytics_streams"))
    for s in cs + ds:
        s.close()
    wait_free(sb, f, "after closing C's and D's streams")
    s = Sse(sb, tok_c)
    f.check(s.status == 200, "C's stream after closing the others: %s %r" % (s.status, s.body))
    s.close()
    wait_free(sb, f, "after part b")
    log("b. 3 streams per tenant, 5 in all: 429 naming each limit; keep-alive every %d s; "
        "closed streams free their places" % KEEPALIVE_S)


def cycle(tr, ta, tb, n=5, pause=3.0):
    """One burst of rA, rA2 and rB events (rA fires), then a pause (its windows close and it
    resolves)."""
    tr.burst(ta, "sse_a", n)
    tr.burst(ta, "sse_a2", n)
    tr.burst(tb, "sse_b", n)
    time.sleep(pause)


def settle(sb, keys, quiet=4.0, timeout=60):
    """Waits until the topics' records of keys stop changing for quiet seconds; returns all."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = topic_records(sb)
        n = sum(1 for r in recs if r[3] in keys)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return recs
        time.sleep(0.5)
    return topic_records(sb)


def part_c(f, sb, tr, ta, tb, tok_a, tok_b, ids):
    ka = "%s:%s" % (ta["tenantId"], ids["rA"])
    s1 = Sse(sb, tok_a, "?rules=" + ids["rA"])
    s2 = Sse(sb, tok_b)
    f.check(s1.status == 200 and s2.status == 200, "A's and B's streams: %s %s" %
            (s1.status, s2.status))
    for _ in range(3):
        cycle(tr, ta, tb)
        if any(e.get("event") == "summary" for e in s1.snapshot()):
            break
    f.check(s1.wait(lambda s: any(e.get("event") == "summary" for e in s.snapshot()), 15,
                    "a summary"), "A's stream got no summary: %r" % s1.snapshot()[:3])
    first = s1.snapshot()
    s1.close()
    catchups0 = metric(sb, "eventops_analytics_stream_catchups_total") or 0
    f.check(len(first) >= 3 and any(e.get("event") == "window" for e in first),
            "A's stream before the disconnect: %d events" % len(first))
    last_id = first[-1]["id"]
    log("c. A's stream: %d events (%s), disconnected at %s" %
        (len(first), dict(Counter(e["event"] for e in first)), last_id))
    for _ in range(2):  # results made while A's stream is away
        cycle(tr, ta, tb)
    s1b = Sse(sb, tok_a, "?rules=" + ids["rA"], last_id=last_id)
    f.check(s1b.status == 200, "A's resume: %s %r" % (s1b.status, s1b.body))
    cycle(tr, ta, tb)
    recs = settle(sb, {ka})
    mine = records_of(recs, ta["tenantId"], ids["rA"])
    after_id, before_id = after(mine, parse_id(last_id))
    f.check(s1b.wait(lambda s: len(s.snapshot()) >= len(after_id), 20, "the resume's events"),
            "A's resume got %d events of %d" % (len(s1b.snapshot()), len(after_id)))
    time.sleep(1.5)  # nothing more may come
    second = s1b.snapshot()
    check_stream(f, "A's first connection", first, before_id)
    check_stream(f, "A's resume", second, after_id)
    f.check(len(after_id) >= 3, "only %d records were made while A was away" % len(after_id))
    f.check((metric(sb, "eventops_analytics_stream_catchups_total") or 0) == catchups0,
            "the resume from a recent id was not served from the buffer (a catch-up counted)")
    both = {e["data"] for e in first} & {e["data"] for e in second}
    f.check(not both, "%d events came on both connections" % len(both))
    # isolation: rules and tenants
    for what, evs, tenant, rules_ok in (("A's stream", first + second, ta["tenantId"],
                                         {ids["rA"]}),
                                        ("B's stream", s2.snapshot(), tb["tenantId"],
                                         {ids["rB"]})):
        bad = [e for e in evs if json.loads(e["data"]).get("tenantId") != tenant or
               json.loads(e["data"]).get("rule", {}).get("id") not in rules_ok]
        f.check(not bad, "%s holds %d events of another tenant or rule, e.g. %r" %
                (what, len(bad), bad[:1]))
    f.check(len(s2.snapshot()) >= 3, "B's stream got %d events" % len(s2.snapshot()))
    # the sink stored each record of rA once
    want = len(mine)
    got = eotest.wait_until(lambda: int(sb.scalar(
        "SELECT (SELECT count(*) FROM analytics_windows WHERE rule_id = '%s') + "
        "(SELECT count(*) FROM analytics_summaries WHERE rule_id = '%s')" %
        (ids["rA"], ids["rA"]))) == want, 30)
    f.check(got, "the sink holds %s rows of rA, the topics %d records" % (sb.scalar(
        "SELECT (SELECT count(*) FROM analytics_windows WHERE rule_id = '%s') + "
        "(SELECT count(*) FROM analytics_summaries WHERE rule_id = '%s')" %
        (ids["rA"], ids["rA"])), want))
    log("c. resume from the buffer: %d events before the id, %d after, none twice, none "
        "missing (topics and sink agree); B's stream: %d events, B's only" %
        (len(first), len(second), len(s2.snapshot())))
    s1b.close()
    return first, s2


def part_d(f, sb, tr, ta, tb, tok_a, ids, first):
    ka = "%s:%s" % (ta["tenantId"], ids["rA"])
    kb = "%s:%s" % (tb["tenantId"], ids["rB"])
    # enough of B's grouped results that the buffer no longer holds A's first records
    for _ in range(20):
        recs = topic_records(sb)
        if len(recs) > BUFFER_RECORDS + 100:
            break
        tr.burst(tb, "sse_b", 60, users=60)
        time.sleep(1.5)
    recs = settle(sb, {ka, kb})
    f.check(len(recs) > BUFFER_RECORDS + 50, "only %d records in the topics" % len(recs))
    mine = records_of(recs, ta["tenantId"], ids["rA"])
    c0 = metric(sb, "eventops_analytics_stream_catchups_total") or 0
    for how in ("header", "parameter"):
        from_id = first[0]["id"]
        want, _ = after(mine, parse_id(from_id))
        if how == "header":
            s = Sse(sb, tok_a, "?rules=" + ids["rA"], last_id=from_id)
        else:
            s = Sse(sb, tok_a, "?rules=%s&lastEventId=%s" % (ids["rA"],
                                                             urllib.parse.quote(from_id)))
        f.check(s.status == 200, "catch-up resume (%s): %s %r" % (how, s.status, s.body))
        s.wait(lambda x: len(x.snapshot()) >= len(want), 30, "the catch-up's events")
        time.sleep(1.5)
        check_stream(f, "catch-up resume by %s" % how, s.snapshot(), want)
        s.close()
        wait_free(sb, f, "after a catch-up", still=1)
    c1 = metric(sb, "eventops_analytics_stream_catchups_total") or 0
    f.check(c1 >= c0 + 2, "catch-ups counted: %s before, %s after two old resumes" % (c0, c1))
    log("d. resumes older than the buffer (%d records in the topics) read Kafka first: "
        "exactly the %d records after the id" % (len(recs), len(want)))


def part_e(f, sb, ta, tok_a, ids):
    recs = topic_records(sb)
    mine = records_of(recs, ta["tenantId"], ids["rA"])
    nw = sb.partitions
    ns = max(1, sb.partitions // 2)
    far = "w%s-s%s" % (".".join(["999999999"] * nw), ".".join(["999999999"] * ns))
    r0 = metric(sb, "eventops_analytics_stream_resets_total") or 0
    s = Sse(sb, tok_a, "?rules=" + ids["rA"], last_id=far)
    f.check(s.status == 200, "a resume past the ends: %s %r" % (s.status, s.body))
    s.wait(lambda x: len(x.snapshot()) >= len(mine), 30, "the reset stream's events")
    time.sleep(1.5)
    check_stream(f, "a resume past the topics' ends", s.snapshot(), mine, monotonic=False)
    resets = [c for c in s.comments if c.startswith("reset")]
    f.check(len(resets) == nw + ns, "%d ': reset' comments, expected one per partition (%d): "
            "%r" % (len(resets), nw + ns, resets[:3]))
    r1 = metric(sb, "eventops_analytics_stream_resets_total") or 0
    f.check(r1 >= r0 + nw + ns, "resets counted: %s -> %s" % (r0, r1))
    s.close()
    wait_free(sb, f, "after the reset", still=1)
    log("e. a position Kafka does not have: %d ': reset' comments, then all %d records of rA"
        % (len(resets), len(mine)))


def part_f(f, sb, tr, te, tok_e, ids):
    ke = "%s:%s" % (te["tenantId"], ids["rE"])
    d0 = metric(sb, "eventops_analytics_stream_disconnects_total", reason="slow_client") or 0
    slow = Sse(sb, tok_e, rcvbuf=2048)  # reads nothing until released below
    fast = Sse(sb, tok_e)  # keeps up: bursts far over the bound and the buffer do not end it
    f.check(slow.status == 200 and fast.status == 200, "E's streams: %s %s" %
            (slow.status, fast.status))
    dropped = False
    # the kernel's socket buffers take a few MB first; on a loaded machine the engine produces
    # them slowly, so up to 2 minutes (the loop ends as soon as the disconnect is counted)
    for _ in range(240):
        tr.burst(te, "sse_e", 400, users=400)
        time.sleep(0.5)
        if (metric(sb, "eventops_analytics_stream_disconnects_total",
                   reason="slow_client") or 0) > d0:
            dropped = True
            break
    f.check(dropped, "the slow client was not disconnected")
    slow.paused.clear()  # read what it was sent: then the end
    f.check(slow.wait(lambda s: s.ended or s.error, 60, "the end of the slow stream"),
            "the slow client's stream did not end")
    f.check(slow.ended and not slow.error, "the slow stream ended badly: %r" % slow.error)
    got = slow.snapshot()
    f.check(got, "the slow client got no event before its end")
    recs = settle(sb, {ke}, quiet=3)
    mine = records_of(recs, te["tenantId"], ids["rE"])
    fast.wait(lambda x: len(x.snapshot()) >= len(mine), 60, "the fast client's events")
    time.sleep(1)
    f.check(not fast.ended and not fast.error, "the fast client's stream ended: %r" % fast.error)
    check_stream(f, "the fast client beside the slow one", fast.snapshot(), mine)
    fast.close()
    f.check((metric(sb, "eventops_analytics_stream_disconnects_total", reason="slow_client") or 0)
            == d0 + 1, "slow disconnects: %s before, %s after (one slow client)" %
            (d0, metric(sb, "eventops_analytics_stream_disconnects_total",
                        reason="slow_client")))
    if got:
        want_after, want_before = after(mine, parse_id(got[-1]["id"]))
        check_stream(f, "the slow client before its disconnect", got, want_before)
        s = Sse(sb, tok_e, last_id=got[-1]["id"])
        s.wait(lambda x: len(x.snapshot()) >= len(want_after), 60, "the slow client's rest")
        time.sleep(1.5)
        check_stream(f, "the slow client's resume", s.snapshot(), want_after)
        s.close()
        log("f. a slow client: disconnected after %d of %d events; its resume got the other %d"
            % (len(got), len(mine), len(s.snapshot())))
    slow.close()
    wait_free(sb, f, "after the slow client", still=1)


def part_g(f, sb):
    for name, labels in (("eventops_analytics_stream_events_total", {"kind": "window"}),
                         ("eventops_analytics_stream_events_total", {"kind": "summary"}),
                         ("eventops_analytics_streams_refused_total",
                          {"reason": "max_streams"}),
                         ("eventops_analytics_streams_refused_total",
                          {"reason": "max_streams_per_tenant"}),
                         ("eventops_analytics_stream_catchups_total", {}),
                         ("eventops_analytics_stream_resets_total", {}),
                         ("eventops_analytics_stream_disconnects_total",
                          {"reason": "slow_client"})):
        v = metric(sb, name, role="analytics", **labels)
        f.check(v is not None and v >= 1, "%s%s is %r" % (name, labels, v))
    v = metric(sb, "eventops_analytics_streams", role="analytics")
    f.check(v is not None and v >= 0, "eventops_analytics_streams is %r" % v)
    v = metric(sb, "eventops_http_requests_total", role="analytics", route="/analytics/stream",
               code="2xx")
    f.check(v is not None and v >= 5, "eventops_http_requests_total of the stream route: %r" % v)
    log("g. metrics")


def part_h(f, sb, ana, tok_a, tok_b, ids, s2):
    s = Sse(sb, tok_a, "?rules=" + ids["rA"])
    f.check(s.status == 200, "A's last stream: %s" % s.status)
    time.sleep(0.5)
    t0 = time.monotonic()
    code = ana.stop(timeout=30)
    took = time.monotonic() - t0
    f.check(code == 0, "the analytics role exited with %s after SIGTERM" % code)
    f.check(took < 5, "the analytics role took %.1f s to stop with streams open" % took)
    for what, x in (("A's stream", s), ("B's stream", s2)):
        f.check(x.wait(lambda y: y.ended or y.error, 5, what + "'s end"),
                "%s did not end on SIGTERM" % what)
        f.check(x.ended and not x.error, "%s ended badly: %r" % (what, x.error))
    log("h. SIGTERM with streams open: both ended, exit %s in %.1f s" % (code, took))


def topics_ready(sb):
    """True when the broker gives metadata with a leader for every partition of the sandbox's
    topics (a busy broker takes a moment after create-topics)."""
    for topic in (sb.events_topic, sb.windows_topic, sb.summaries_topic, sb.changelog_topic):
        p = subprocess.run(["kcat", "-L", "-b", sb.brokers, "-t", topic, "-m", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0 or "partition 0," not in out or "leader -1" in out or \
                "Unknown topic" in out:
            return False
    return True


def main():
    with eotest.Sandbox("analytics-stream", extra_env=ENV) as sb:
        f = sb.failures
        if not eotest.wait_until(lambda: topics_ready(sb), 60, interval=0.5):
            raise RuntimeError("the sandbox's topics have no metadata after 60 s")
        sb.create_signing_key()
        tenants = {x: sb.create_tenant("sse-%s-%s" % (x.lower(), eotest.rand_hex(4)))
                   for x in "ABCDE"}
        clients = {x: sb.create_client(t["tenantId"], ["events:read", "analytics:write"])
                   for x, t in tenants.items()}
        wo = sb.create_client(tenants["A"]["tenantId"], ["analytics:write"], name="wo")
        auth, coll, ana = sb.auth(), sb.collector(), sb.analytics()
        for r in (auth, coll, ana):
            r.start()
        for r in (auth, coll, ana):
            r.wait_ready(60)
        tok = {x: sb.token(c["clientId"], c["clientSecret"]) for x, c in clients.items()}
        tok_wo = sb.token(wo["clientId"], wo["clientSecret"])
        ids = {}
        for key, x, r in (("rA", "A", rule("sse a", "sse_a")),
                          ("rA2", "A", rule("sse a2", "sse_a2")),
                          ("rB", "B", rule("sse b", "sse_b", group=True)),
                          ("rE", "E", rule("sse e", "sse_e", group=True)),
                          ("deleted", "A", rule("gone", "sse_gone"))):
            st, _, body = eotest.post_json(sb.analytics_url("/analytics/rules"), r, key=tok[x])
            if st != 201:
                raise RuntimeError("POST a rule: %s %r" % (st, body))
            ids[key] = body["id"]
        st, _, _ = eotest.http_request("DELETE", sb.analytics_url("/analytics/rules/" +
                                                                  ids["deleted"]),
                                       None, {"Authorization": "Bearer " + tok["A"]})
        f.check(st == 204, "DELETE a rule: %s" % st)
        def opens():
            s = Sse(sb, tok["C"])
            s.close()
            return s.status == 200
        f.check(eotest.wait_until(opens, 30), "no stream could be opened within 30 s")
        wait_free(sb, f, "after the first stream")
        tr = Traffic(sb)

        part_a(f, sb, tok["A"], tok_wo, ids)
        part_b(f, sb, tok["C"], tok["D"])
        first, s2 = part_c(f, sb, tr, tenants["A"], tenants["B"], tok["A"], tok["B"], ids)
        part_d(f, sb, tr, tenants["A"], tenants["B"], tok["A"], ids, first)
        part_e(f, sb, tenants["A"], tok["A"], ids)
        part_f(f, sb, tr, tenants["E"], tok["E"], ids)
        part_g(f, sb)
        part_h(f, sb, ana, tok["A"], tok["B"], ids, s2)
        sb.check_clean_end(running=[auth, coll])
        return sb.report("analytics stream: live events, resumes from the buffer and from "
                         "Kafka, resets, limits, keep-alive, slow clients, isolation, SIGTERM")


def on_alarm(*_):
    raise TimeoutError("test_analytics_stream.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
