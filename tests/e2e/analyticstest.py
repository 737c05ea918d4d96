"""Shared by the end-to-end tests of the analytics engine (test_analytics_engine.py,
test_analytics_exactly_once.py, test_analytics_parity.py; semantics in docs/analytics.md):

- rules made with `eventops admin rules create` (create_rule);
- times as the engine writes them (iso_us / parse_us: RFC 3339 with microseconds, UTC);
- the analytics role's metrics (metric);
- TopicReader: a background read_committed reader of the engine's output topics that notes
  when each record arrived (for "a window closes within grace + 2 s");
- read_topic: a topic read to its end, read_committed (kcat, through eotest.consume);
- the checks every test makes of the outputs: window results without duplicates, the latest
  revision of each window, summaries without duplicate eventIds;
- the expected summaries: summary_event_id (the engine's UUIDv5, src/domain/rule_eval.c) and
  alert_transitions (eo_alert_step in Python), so that the expected set is computed from the
  stored events and never taken from the engine's own output;
- the SQL recomputation of tumbling, hopping, unique-user and session windows over the events
  table (sql_windows).

Debian's python3-confluent-kafka is imported through kafkatest.confluent_kafka()."""

import datetime
import importlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from kafkatest import confluent_kafka  # noqa: E402

US = 1000000
SUMMARY_NS = uuid.UUID("90c16b62-0678-4ae8-b236-1e7d1878eab2")  # src/domain/rule_eval.c


# ---------------------------------------------------------------------------------------------
# Times

def now_us():
    return int(time.time() * US)


def iso_us(us):
    """RFC 3339 in UTC with microseconds, as eo_rfc3339_format writes it."""
    d = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + \
        datetime.timedelta(microseconds=us)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_us(text):
    """Microseconds since the epoch of an RFC 3339 time with a Z (the engine's form)."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z", text)
    if not m:
        raise ValueError("not an RFC 3339 UTC time: %r" % text)
    d = datetime.datetime(*(int(x) for x in m.groups()[:6]), tzinfo=datetime.timezone.utc)
    frac = int((m.group(7) or "0").ljust(6, "0"))
    return int(d.timestamp()) * US + frac


def floor_to(t, size):
    return t - t % size


# ---------------------------------------------------------------------------------------------
# Rules and metrics

def create_rule(sb, tenant, rule):
    """`eventops admin rules create --tenant T --file F --json`: {"id", "version", "rule", ...}."""
    path = os.path.join(sb.dir, "rule-%s.json" % eotest.rand_hex(6))
    with open(path, "w") as f:
        json.dump(rule, f)
    p = sb.run_bin("admin", "rules", "create", "--tenant", tenant, "--file", path, "--json")
    return json.loads(p.stdout)


def metrics_text(sb):
    """GET /metrics of the analytics role, or None when it does not answer 200."""
    try:
        st, _, body = eotest.http_request("GET", sb.analytics_url("/metrics"), timeout=5)
    except eotest.HttpError:
        return None
    if st != 200:
        return None
    return body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body)


def metric(sb, name, labels=None, text=None):
    """The value of the series name{labels...} of the analytics role (every given label must
    match; summed over the others); None when absent or the role does not answer."""
    text = text if text is not None else metrics_text(sb)
    if text is None:
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in (labels or {}).items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def watermark_us(sb):
    """The engine's watermark from eventops_analytics_watermark_seconds (None: unknown)."""
    v = metric(sb, "eventops_analytics_watermark_seconds")
    return None if not v else int(round(v * 1000)) * 1000


def wait_received(sb, n, timeout=60):
    """Waits until the engine has read at least n records (eventops_analytics_events_total
    {outcome="received"}): its consumer is assigned and reading."""
    return eotest.wait_until(
        lambda: (metric(sb, "eventops_analytics_events_total", {"outcome": "received"}) or 0)
        >= n, timeout, interval=0.1)


# ---------------------------------------------------------------------------------------------
# Sending events through the collector

class Sender:
    """Posts events to the collector's POST /events/batch with the tenant's write key, each batch
    until it gets a 202 (the same messageIds again: the processor stores each once). Records
    the messageIds accepted."""

    def __init__(self, sb, write_key):
        self.url = sb.url("/events/batch")
        self.key = write_key
        self.accepted = []
        self.lock = threading.Lock()

    def send(self, events, deadline_s=30):
        t_end = time.monotonic() + deadline_s
        while True:
            r = eotest.send(self.url, {"events": events}, self.key)
            if r.status == 202:
                with self.lock:
                    self.accepted.extend(e["messageId"] for e in events)
                return r
            if time.monotonic() > t_end:
                raise RuntimeError("POST /events/batch got no 202 in %d s: %r" % (deadline_s, r))
            time.sleep(0.2)


def event(message_id, event_type, t_us, user=None, anon=None, props=None):
    """A client event with an explicit timestamp and no sentAt (no clock-skew correction)."""
    e = {"messageId": message_id, "eventType": event_type, "timestamp": iso_us(t_us),
         "properties": props or {}}
    if user is not None:
        e["userId"] = user
    if anon is not None:
        e["anonymousId"] = anon
    return e


# ---------------------------------------------------------------------------------------------
# Reading the engine's topics

class TopicReader:
    """A thread reading topics from their beginning, read_committed, without a consumer group
    (assigned partitions, nothing committed). Each record is kept as a dict {topic, partition,
    offset, key, value (str), headers [(name, value)], ts_ms (the record's timestamp), arrived
    (time.time() when it was read)}. fetch.wait.max.ms is 10 so that `arrived` is within a few
    milliseconds of the record becoming visible (its transaction committed)."""

    def __init__(self, brokers, topics):
        ck = confluent_kafka()
        self.ck = ck
        self.consumer = ck.Consumer({
            "bootstrap.servers": brokers, "group.id": "e2e-reader-" + eotest.rand_hex(8),
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 50,
            "auto.offset.reset": "earliest", "client.id": "e2e-analytics-reader"})
        parts = []
        for t in topics:
            md = self.consumer.list_topics(t, timeout=10)
            for p in sorted(md.topics[t].partitions):
                parts.append(ck.TopicPartition(t, p, ck.OFFSET_BEGINNING))
        self.consumer.assign(parts)
        self.rows = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="topic-reader")
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            msgs = self.consumer.consume(500, 0.1)
            now = time.time()
            rows = []
            for m in msgs:
                if m.error():
                    continue
                rows.append({"topic": m.topic(), "partition": m.partition(),
                             "offset": m.offset(),
                             "key": m.key().decode() if m.key() is not None else None,
                             "value": m.value().decode() if m.value() is not None else None,
                             "headers": [(k, v.decode() if v is not None else None)
                                         for k, v in (m.headers() or [])],
                             "ts_ms": m.timestamp()[1], "arrived": now})
            if rows:
                with self.lock:
                    self.rows.extend(rows)

    def records(self, topic):
        with self.lock:
            return [r for r in self.rows if r["topic"] == topic]

    def json_records(self, topic):
        """(record, parsed value) of every record of topic read so far."""
        out = []
        for r in self.records(topic):
            try:
                out.append((r, json.loads(r["value"])))
            except (TypeError, ValueError):
                out.append((r, None))
        return out

    def wait(self, predicate, timeout, interval=0.05):
        return eotest.wait_until(predicate, timeout, interval=interval)

    def close(self):
        self._stop.set()
        self.thread.join(10)
        self.consumer.close()


def read_topic(sb, topic, timeout=300):
    """The whole topic read to its end, read_committed (kcat): dicts as eotest.consume makes
    them, with "json" (the parsed value, None when it is not JSON) added."""
    out = eotest.consume(sb.brokers, topic, read_committed=True, timeout=timeout)
    for r in out:
        try:
            r["json"] = json.loads(r["value"]) if r["value"] is not None else None
        except ValueError:
            r["json"] = None
    return out


# ---------------------------------------------------------------------------------------------
# Window results and summaries

def window_id(w):
    """(rule id, version, group key, window start in µs) of a window result or summary."""
    return (w["rule"]["id"], w["rule"]["version"], w["groupKey"], parse_us(w["window"]["start"]))


def duplicate_results(results):
    """Window results emitted more than once: [(rule, version, group, start, revision), count]."""
    c = Counter(window_id(w) + (w["revision"],) for w in results)
    return sorted((k, n) for k, n in c.items() if n > 1)


def latest_results(results):
    """{window_id: the result with the highest revision}."""
    out = {}
    for w in results:
        k = window_id(w)
        if k not in out or w["revision"] > out[k]["revision"]:
            out[k] = w
    return out


def revision_gaps(results):
    """Windows whose revisions are not exactly 1..n: [(window_id, sorted revisions)]."""
    revs = defaultdict(list)
    for w in results:
        revs[window_id(w)].append(w["revision"])
    return sorted((k, sorted(v)) for k, v in revs.items()
                  if sorted(v) != list(range(1, len(v) + 1)))


def duplicate_event_ids(summaries):
    c = Counter(s["eventId"] for s in summaries)
    return sorted((k, n) for k, n in c.items() if n > 1)


def summary_event_id(tenant_id, rule_id, version, group_key, window_start_us, status):
    """The engine's eventId of a summary: UUIDv5 of the six fields joined by newlines
    (eo_summary_event_id)."""
    name = "\n".join([tenant_id, rule_id, str(version), group_key, str(window_start_us), status])
    return str(uuid.uuid5(SUMMARY_NS, name))


def parse_duration_us(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text)
    if not m:
        raise ValueError("not a duration: %r" % text)
    unit = {"ms": 1000, "s": US, "m": 60 * US, "h": 3600 * US, "d": 86400 * US,
            "w": 7 * 86400 * US}[m.group(2)]
    return int(m.group(1)) * unit


def alert_transitions(cond, cooldown_us, steps):
    """eo_alert_step over steps [(window start, window end, value)] in time order, from the
    normal state: the transitions [(start, end, value, "firing" | "resolved")].
    cond: the rule's canonical condition (op, value, for, keepFiringFor, clearBelow)."""
    ops = {">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t,
           "<": lambda v, t: v < t, "==": lambda v, t: v == t}
    holds_fn = ops[cond["op"]]
    thr = cond["value"]
    for_us = parse_duration_us(cond.get("for", "0s"))
    keep_us = parse_duration_us(cond.get("keepFiringFor", "0s"))
    clear = cond.get("clearBelow")

    def cleared(v):
        if clear is None:
            return not holds_fn(v, thr)
        return v > clear if cond["op"] in ("<=", "<") else v < clear

    state, since, resolved_at, holding = "normal", 0, None, False
    out = []
    for start, end, value in steps:
        holds = holds_fn(value, thr)
        if state == "resolved":
            state = "normal"
        if state == "normal":
            if not holds:
                continue
            if resolved_at is not None and end < resolved_at + cooldown_us:
                continue
            if for_us == 0:
                state, since, holding = "firing", end, True
                out.append((start, end, value, "firing"))
            else:
                state, since = "pending", end
        elif state == "pending":
            if not holds:
                state = "normal"
            elif end - since >= for_us:
                state, since, holding = "firing", end, True
                out.append((start, end, value, "firing"))
        elif state == "firing":
            if not cleared(value):
                holding = True
                continue
            if holding:
                holding, since = False, end
            if end - since < keep_us:
                continue
            state, resolved_at = "resolved", end
            out.append((start, end, value, "resolved"))
    return out


def expected_summaries(tenant_id, rule_id, version, rule, counts):
    """The summaries a tumbling count rule with a condition emits, from the final count of each
    (group key, window start) (windows missing from counts count 0): per group, the windows in
    order from its first to one past its last, stepped through alert_transitions. Returns
    {eventId: (group key, window start, status, value)}."""
    size = parse_duration_us(rule["window"]["size"])
    cooldown = parse_duration_us(rule.get("cooldown", "0s"))
    by_group = defaultdict(dict)
    for (g, start), n in counts.items():
        by_group[g][start] = n
    out = {}
    for g, wins in by_group.items():
        first, last = min(wins), max(wins)
        # after the last window with events, empty windows step with 0 while the rule is
        # pending or firing: enough of them for `for` and keepFiringFor to pass
        cond = rule["condition"]
        tail = 2 + (parse_duration_us(cond.get("for", "0s")) +
                    parse_duration_us(cond.get("keepFiringFor", "0s"))) // size
        steps = [(s, s + size, wins.get(s, 0))
                 for s in range(first, last + (tail + 1) * size, size)]
        for start, _, value, status in alert_transitions(rule["condition"], cooldown, steps):
            eid = summary_event_id(tenant_id, rule_id, version, g, start, status)
            out[eid] = (g, start, status, value)
    return out


# ---------------------------------------------------------------------------------------------
# Recomputation in SQL over the events table

def group_key(values):
    """The engine's group key: the JSON array of the values as text, no spaces."""
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def _lit(s):
    return "'" + s.replace("'", "''") + "'"


def _path_sql(path):
    """SQL text of a rule path's value as the engine groups it (strings only in these tests):
    NULL when absent."""
    if path == "userId":
        return "e.user_id"
    if path == "anonymousId":
        return "e.anonymous_id"
    if path == "type":
        return "e.event_type"
    root, _, rest = path.partition(".")
    col = {"properties": "e.properties", "context": "e.context"}[root]
    keys = ",".join(_lit(k) for k in rest.split("."))
    return "%s #>> ARRAY[%s]" % (col, keys)


def sql_windows(sb, tenant_id, rule, exclude=None, event_type=None):
    """The windows of a tumbling, hopping or session rule recomputed in SQL over the stored
    events of the tenant and the rule's event type, without the (tenant, messageId) pairs in
    exclude (the events the engine put on the late topic for this rule). Returns
    {(group key, window start µs): {"end", "count", "value"}} where value is the rule's aggregate
    (count, unique_users, sum, mean, min, max; None for a mean/min/max of nothing). Numeric
    properties are integers in these tests, so sums are exact and mean = sum / count is the
    same correctly rounded division as the engine's."""
    w = rule["window"]
    fn = rule["aggregate"]["fn"]
    prop = rule["aggregate"].get("property")
    paths = rule.get("groupBy", [])
    gsel = ", ".join("%s AS g%d" % (_path_sql(p), i) for i, p in enumerate(paths)) or "NULL AS g0"
    gcols = ", ".join("g%d" % i for i in range(len(paths))) or "g0"
    num = "NULL::numeric"
    if prop:
        p = _path_sql(prop).replace("#>>", "#>")
        num = "CASE WHEN jsonb_typeof(%s) = 'number' THEN (%s)::text::numeric END" % (p, p)
    who = ("CASE WHEN e.user_id IS NOT NULL THEN 'u:' || e.user_id "
           "ELSE 'a:' || e.anonymous_id END")
    etype = event_type or rule["eventType"]
    excl = ""
    if exclude:
        # an anti-join on a VALUES list (hashed), not NOT IN (list), which is linear per row
        excl = (" AND e.message_id NOT IN (SELECT m FROM (VALUES %s) x(m))" %
                ",".join("(%s)" % _lit(m) for m in sorted(exclude)))
    base = ("SELECT e.occurred_at AS t, %s, %s AS num, %s AS who FROM events e "
            "WHERE e.tenant_id = %s AND e.event_type = %s%s" %
            (gsel, num, who, _lit(tenant_id), _lit(etype), excl))
    aggs = ("count(*), sum(num), count(num), min(num), max(num), count(DISTINCT who)")
    if w["type"] in ("tumbling", "hopping"):
        size = parse_duration_us(w["size"])
        slide = parse_duration_us(w.get("slide", w["size"]))
        q = ("WITH b AS (%s), x AS (SELECT b.*, ws FROM b CROSS JOIN LATERAL generate_series("
             "date_bin(make_interval(secs => %d / 1e6), b.t, 'epoch') - "
             "make_interval(secs => %d / 1e6), date_bin(make_interval(secs => %d / 1e6), b.t, "
             "'epoch'), make_interval(secs => %d / 1e6)) ws WHERE ws + make_interval(secs => "
             "%d / 1e6) > b.t) "
             "SELECT %s, (extract(epoch FROM ws) * 1000000)::bigint, "
             "(extract(epoch FROM ws) * 1000000)::bigint + %d, %s FROM x GROUP BY %s, ws" %
             (base, slide, (size // slide) * slide, slide, slide, size, gcols, size, aggs, gcols))
    elif w["type"] == "session":
        gap = parse_duration_us(w["gap"])
        part = gcols
        q = ("WITH b AS (%s), m AS (SELECT b.*, CASE WHEN b.t - lag(b.t) OVER (PARTITION BY %s "
             "ORDER BY b.t) < make_interval(secs => %d / 1e6) THEN 0 ELSE 1 END AS brk FROM b), "
             "s AS (SELECT m.*, sum(brk) OVER (PARTITION BY %s ORDER BY m.t ROWS UNBOUNDED "
             "PRECEDING) AS sid FROM m) "
             "SELECT %s, (extract(epoch FROM min(t)) * 1000000)::bigint, "
             "(extract(epoch FROM max(t)) * 1000000)::bigint + %d, %s FROM s GROUP BY %s, sid" %
             (base, part, gap, part, gcols, gap, aggs, gcols))
    else:
        raise ValueError("sql_windows: %s windows are not recomputed" % w["type"])
    out = {}
    ng = max(len(paths), 1)
    for row in sb.sql(q):
        gvals = row[:ng] if paths else ()
        start, end, cnt, s, n, mn, mx, users = row[ng:]
        cnt, n = int(cnt), int(n)
        if fn == "count":
            value = cnt
        elif fn == "unique_users":
            value = int(users)
        elif fn == "sum":
            value = _num(s) if n else 0
        elif fn == "mean":
            value = _num(s) / n if n else None
        elif fn == "min":
            value = _num(mn) if n else None
        elif fn == "max":
            value = _num(mx) if n else None
        else:
            raise ValueError("sql_windows: aggregate %s is not recomputed" % fn)
        out[(group_key(gvals), int(start))] = {"end": int(end), "count": cnt, "value": value}
    return out


def _num(text):
    """An exact integer when the numeric is whole (exact sums), else a float."""
    d = float(text)
    if re.fullmatch(r"-?\d+(\.0*)?", text):
        return int(text.split(".")[0])
    return d


def compare_windows(F, what, engine, sql, tolerance=0.0):
    """Checks that the engine's latest results {window_id-less key (group, start): result} equal
    the SQL recomputation {(group, start): {"end", "count", "value"}}: the same windows, each with
    the same end, count and value. Returns the number of windows compared."""
    ek, sk = set(engine), set(sql)
    F.check(ek == sk, "%s: the windows differ from SQL: %s" %
            (what, eotest.describe_set_diff("engine", ek, "sql", sk)))
    bad = []
    for k in sorted(ek & sk):
        e, s = engine[k], sql[k]
        ev, sv = e["value"], s["value"]
        same_value = (ev is None and sv is None) or (
            ev is not None and sv is not None and
            (ev == sv or (tolerance and abs(ev - sv) <= tolerance * max(1.0, abs(sv)))))
        if parse_us(e["window"]["end"]) != s["end"] or e["count"] != s["count"] or \
                not same_value:
            bad.append((k, {"end": e["window"]["end"], "count": e["count"], "value": ev,
                            "revision": e["revision"]},
                        {"end": iso_us(s["end"]), "count": s["count"], "value": sv}))
    F.check(not bad, "%s: %d windows differ from SQL (key, engine, sql), e.g. %s" %
            (what, len(bad), bad[:5]))
    return len(ek & sk)


def engine_windows(results, rule_id, version=1):
    """{(group key, start): latest result} of one rule's version from window results."""
    return {(k[2], k[3]): w for k, w in latest_results(results).items()
            if k[0] == rule_id and k[1] == version}


def pg_windows(sb, tenant_id):
    """Rows of analytics_windows: {(rule, version, group, start µs, revision): body}."""
    rows = sb.sql("SELECT rule_id::text, rule_version, group_key, "
                  "(extract(epoch FROM window_start) * 1000000)::bigint, revision, body::text "
                  "FROM analytics_windows WHERE tenant_id = %s" % _lit(tenant_id))
    return {(r[0], int(r[1]), r[2], int(r[3]), int(r[4])): json.loads(r[5]) for r in rows}


def pg_summaries(sb, tenant_id):
    """{eventId: body} of analytics_summaries."""
    rows = sb.sql("SELECT event_id::text, body::text FROM analytics_summaries "
                  "WHERE tenant_id = %s" % _lit(tenant_id))
    return {r[0]: json.loads(r[1]) for r in rows}


def stored_count(sb, tenant_id):
    """Events of the tenant in the events table."""
    return int(sb.scalar("SELECT count(*) FROM event_ids WHERE tenant_id = %s" % _lit(tenant_id)))


def pg_summaries_all(sb):
    """{tenant id: {eventId: body}} of analytics_summaries."""
    out = {}
    for tid, eid, body in sb.sql("SELECT tenant_id::text, event_id::text, body::text "
                                 "FROM analytics_summaries"):
        out.setdefault(tid, {})[eid] = json.loads(body)
    return out


def delete_sandbox_topics(sb):
    """Deletes the sandbox's six topics (the events, dead-letter and analytics topics) through
    confluent-kafka's AdminClient. Sandboxes leave their topics behind (eotest.Sandbox); a test
    that fills them with a million records removes them when it passed. Returns the topics that
    could not be deleted."""
    confluent_kafka()  # finds Debian's package
    admin = importlib.import_module("confluent_kafka.admin").AdminClient(
        {"bootstrap.servers": sb.brokers, "log_level": 4})
    topics = [sb.events_topic, sb.dlq_topic, sb.summaries_topic, sb.windows_topic,
              sb.late_topic, sb.changelog_topic]
    failed = []
    for topic, fut in admin.delete_topics(topics, operation_timeout=60).items():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001 - reported to the caller
            failed.append("%s: %s" % (topic, e))
    return failed
