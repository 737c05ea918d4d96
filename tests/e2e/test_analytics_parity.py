#!/usr/bin/env python3
"""End-to-end: parity of the analytics engine with SQL over a million events (issue 12,
acceptance "Parity"; docs/analytics.md, "Semantics").

EO_PARITY_EVENTS (default 1,000,000) records are produced straight to the sandbox's events topic
with confluent-kafka, in the collector's record format (docs/schemas/record.v1.schema.json, key
"<tenantId>:<userId or anonymousId>", no sentAt): the processor stores them and the engine reads
them. One tenant; four rules on the same event type, grouped by properties.plan (4 plans):
tumbling 1 m count, hopping 2 m / 1 m sum and mean of properties.amount (integers 1..1000; 5% of
the events have none), tumbling 1 m unique users (20,000 users, 10% as anonymousIds); grace
30 s, horizon 2 m.

Event times: one record per 1.2 ms of event time (1M records span 20 minutes), produced in that
order, the stream starting ~90 s after the wall clock (so the wall-clock watermark of idle
partitions never overtakes it: docs/analytics.md "Time and the watermark"). 5% of the events
are out of order within grace (1 s to 20 s before their place in the stream, below grace 30 s:
counted before their windows' first final results), 1% beyond the horizon (10 to 14 minutes
before their place, after the stream's first 4 minutes: the engine reads a backlog one
partition's fetched batch at a time, ~15k records or ~1.5 minutes of this stream, so its
watermark trails the record being read by up to that; 10 minutes back, every window holding
the event ended more than the horizon before the watermark), 0.05% are dead letters (a
timestamp that is not a time: the processor dead-letters them, the engine cannot decode them).
A last record per partition (another event type), 4 minutes past the stream's end, moves the
watermark past every window's end + grace.

The processor stores everything first; then the analytics role starts and reads the backlog at
full speed: its throughput (events/s, from eventops_analytics_events_total{outcome="received"}
sampled every 0.25 s) is printed. Checks:
  - the late topic holds, per rule (eventops-rule-id), exactly the events produced beyond the
    horizon (reason beyond_horizon), and none of the out-of-order ones;
  - the DLQ topic holds exactly the dead letters produced; the engine counted them undecodable;
  - every final window result (its latest revision; all are revision 1, final) equals the
    recomputation in SQL over the stored events of the rule's type, excluding exactly the
    (event, rule) pairs on the late topic: the same windows, ends, counts and values (sums of
    integers and their means are exact);
  - per rule: in-window (the sum of the final counts, divided by size/slide for hopping rules,
    where each event is in two windows) + late (on the late topic for that rule) + dead-lettered
    (DLQ topic) = produced, exactly;
  - analytics_windows holds every result of the windows topic; no result twice.
Budget: under 10 minutes on a 2-core machine (printed; the test fails past it). A passing run
deletes its sandbox's topics (a million records; a failing run keeps them for a look).

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN; Debian's
python3-confluent-kafka. EO_PARITY_EVENTS sets the size; E2E_KEEP=1 keeps the log directory of
a passing run. Exit 0 = pass.
"""

import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
import analyticstest as at  # noqa: E402
from analyticstest import US  # noqa: E402
from kafkatest import confluent_kafka, preflight  # noqa: E402

EVENTS = int(os.environ.get("EO_PARITY_EVENTS", "1000000"))
BUDGET_S = 600
TIME_BUDGET_S = 1080          # the alarm: past the budget the test has failed anyway
KEEP = bool(os.environ.get("E2E_KEEP"))
RUN = eotest.rand_hex(6)
PARTITIONS = 4
PLANS = ("free", "pro", "team", "enterprise")
USERS = 20000
STEP = 1200                   # µs of event time between two records: 1M records span 20 min
STREAM = EVENTS * STEP
LEAD = 90 * US                # the stream starts this far after the wall clock
OOO, BEYOND, DEAD = 0.05, 0.01, 0.0005
OOO_MAX = 20 * US             # below grace
WARM_UP = 4 * 60 * US         # no event beyond the horizon in the stream's first 4 minutes
BEYOND_MIN, BEYOND_MAX = 10 * 60 * US, 14 * 60 * US
FLUSH_AFTER = 4 * 60 * US     # past size + horizon
ETYPE = "p_ev"
BASE = {"eventType": ETYPE, "groupBy": ["properties.plan"], "grace": "30s", "horizon": "2m"}
RULES = {
    "count": dict(BASE, name="p count", window={"type": "tumbling", "size": "1m"},
                  aggregate={"fn": "count"}),
    "sum": dict(BASE, name="p sum", window={"type": "hopping", "size": "2m", "slide": "1m"},
                aggregate={"fn": "sum", "property": "properties.amount"}),
    "mean": dict(BASE, name="p mean", window={"type": "hopping", "size": "2m", "slide": "1m"},
                 aggregate={"fn": "mean", "property": "properties.amount"}),
    "unique": dict(BASE, name="p unique", window={"type": "tumbling", "size": "1m"},
                   aggregate={"fn": "unique_users"}),
}


def windows_per_event(rule):
    w = rule["window"]
    return at.parse_duration_us(w["size"]) // at.parse_duration_us(w.get("slide", w["size"]))


def produce(sb, tenant_id):
    """Produces the stream (see the module comment). Returns a dict of what was produced."""
    ck = confluent_kafka()
    failed = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failed[0] += 1
    p = ck.Producer({"bootstrap.servers": sb.brokers, "enable.idempotence": True,
                     "acks": "all", "linger.ms": 20, "batch.num.messages": 10000,
                     "compression.type": "lz4", "queue.buffering.max.messages": 500000,
                     "queue.buffering.max.kbytes": 1048576, "client.id": "e2e-parity"})
    rnd = random.Random(RUN)
    wall = at.now_us()
    t0 = wall - wall % (60 * US) + 60 * US + LEAD
    received = at.iso_us(wall)
    out = {"t0": t0, "beyond": set(), "ooo": set(), "dead": set(), "n": 0}
    head = '{"v":1,"tenantId":"%s","receivedAt":"%s","event":{"messageId":"' % (tenant_id,
                                                                             received)
    t_start = time.monotonic()
    # 1% of all events beyond the horizon, all of them after the warm-up
    p_beyond = min(0.5, BEYOND * STREAM / max(1, STREAM - WARM_UP))
    for i in range(EVENTS):
        s = t0 + i * STEP
        mid = "p-%s-%07d" % (RUN, i)
        r = rnd.random()
        if s >= t0 + WARM_UP and r < p_beyond:
            t = s - rnd.randrange(BEYOND_MIN, BEYOND_MAX)
            kind = "beyond"
        elif r >= 1 - OOO:
            t = s - rnd.randrange(US, OOO_MAX)
            kind = "ooo"
        else:
            t = s
            kind = None
        ts = '"%s"' % at.iso_us(t)
        if rnd.random() < DEAD:
            ts = '"not-a-time"'
            kind = "dead"
        if kind:
            out[kind].add(mid)
        u = rnd.randrange(USERS)
        if u % 10 == 0:
            who, whof = "a%d" % u, '"userId":null,"anonymousId":"a%d"' % u
        else:
            who, whof = "u%d" % u, '"userId":"u%d","anonymousId":null' % u
        props = '"plan":"%s"' % PLANS[rnd.randrange(len(PLANS))]
        if rnd.random() >= 0.05:
            props += ',"amount":%d' % rnd.randrange(1, 1001)
        value = ('%s%s","eventType":"%s",%s,"timestamp":%s,"originalTimestamp":%s,'
                 '"sentAt":null,"properties":{%s},"context":{}}}' %
                 (head, mid, ETYPE, whof, ts, ts, props))
        key = "%s:%s" % (tenant_id, who)
        while True:
            try:
                p.produce(sb.events_topic, value.encode(), key.encode(),
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    flush_t = t0 + STREAM + FLUSH_AFTER
    for part in range(PARTITIONS):
        ts = '"%s"' % at.iso_us(flush_t)
        value = ('%sp-%s-flush-%d","eventType":"p_flush","userId":"flush","anonymousId":null,'
                 '"timestamp":%s,"originalTimestamp":%s,"sentAt":null,"properties":{},'
                 '"context":{}}}' % (head, RUN, part, ts, ts))
        p.produce(sb.events_topic, value.encode(), ("%s:flush" % tenant_id).encode(),
                  partition=part, on_delivery=on_delivery)
    left = p.flush(300)
    out["n"] = EVENTS
    out["flush"] = PARTITIONS
    out["seconds"] = time.monotonic() - t_start
    out["failed"] = failed[0] + left
    return out


def late_by_rule(sb, F, rules):
    """{rule id: set of messageIds} on the late topic; checks the headers and the reason."""
    out = defaultdict(list)
    names = {r["id"] for r in rules.values()}
    bad = []
    for rec in at.read_topic(sb, sb.late_topic, timeout=600):
        h = dict(rec["headers"])
        rid = h.get("eventops-rule-id")
        mid = ((rec["json"] or {}).get("event") or {}).get("messageId")
        if rid not in names or h.get("eventops-late-reason") != "beyond_horizon" or mid is None:
            bad.append((h, (rec["value"] or "")[:120]))
            continue
        out[rid].append(mid)
    F.check(not bad, "late records with an unknown rule, another reason or no messageId: %s" %
            bad[:3])
    dups = {rid: [m for m, n in Counter(ms).items() if n > 1] for rid, ms in out.items()}
    F.check(not any(dups.values()), "events on the late topic twice for a rule: %s" %
            {k: v[:3] for k, v in dups.items() if v})
    return {rid: set(ms) for rid, ms in out.items()}


def dead_letters(sb):
    """messageIds of the DLQ topic's records of the test's event type."""
    out = []
    for rec in at.read_topic(sb, sb.dlq_topic, timeout=600):
        ev = (rec["json"] or {}).get("event") or {}
        if ev.get("eventType") == ETYPE:
            out.append(ev.get("messageId"))
    return out


def main():
    reason = preflight()
    if reason:
        print("FAILED: " + reason)
        return 1
    t_begin = time.monotonic()
    sb = eotest.Sandbox("analytics-parity", partitions=PARTITIONS, keep_dir=KEEP)
    code = 1
    try:
        code = run(sb, t_begin)
    finally:
        if code == 0:  # a failed run keeps its topics for a look
            failed = at.delete_sandbox_topics(sb)
            if failed:
                log("warning: topics not deleted: %s" % failed)
    return code


def run(sb, t_begin):
    """The test in its sandbox (set up and torn down here); returns the exit code."""
    with sb:
        F = sb.failures
        sb.create_signing_key()
        tenant = sb.create_tenant("parity-" + RUN)
        tid = tenant["tenantId"]
        rules = {k: at.create_rule(sb, tenant["name"], r) for k, r in RULES.items()}
        proc = sb.processor()
        proc.start()
        proc.wait_ready(60)
        log("producing %d records to %s" % (EVENTS, sb.events_topic))
        made = produce(sb, tid)
        log("produced %d records in %.1f s (%.0f/s): %d out of order within grace, %d beyond "
            "the horizon, %d dead letters; delivery failures %d" %
            (made["n"] + made["flush"], made["seconds"], (made["n"] + made["flush"]) /
             made["seconds"], len(made["ooo"]), len(made["beyond"]), len(made["dead"]),
             made["failed"]))
        F.check(made["failed"] == 0, "%d records were not delivered" % made["failed"])
        stored_want = made["n"] - len(made["dead"]) + made["flush"]
        t_p = time.monotonic()
        ok = eotest.wait_until(lambda: at.stored_count(sb, tid) >= stored_want,
                               BUDGET_S, interval=1.0)
        stored = at.stored_count(sb, tid)
        t_stored = time.monotonic()
        F.check(ok and stored == stored_want, "the processor stored %d events, expected %d" %
                (stored, stored_want))
        log("the processor stored %d events (%.1f s after production ended)" %
            (stored, t_stored - t_p))
        if not ok:
            return sb.report("analytics parity: the processor did not store the events")

        # the engine reads the backlog
        ana = sb.analytics()
        t_a = time.monotonic()
        ana.start()
        ana.wait_ready(120)
        total = made["n"] + made["flush"]
        samples = []

        def all_read():  # records the engine decoded, and those it could not
            m = at.metrics_text(sb)
            v = sum(at.metric(sb, "eventops_analytics_events_total", {"outcome": o}, text=m)
                    or 0 for o in ("received", "undecodable"))
            samples.append((time.monotonic(), v))
            return v >= total
        ok = eotest.wait_until(all_read, max(60, BUDGET_S - (time.monotonic() - t_begin)),
                               interval=0.25)
        if not F.check(ok, "the engine read %d of %d records" % (samples[-1][1], total)):
            return sb.report("analytics parity: the engine did not read the backlog")
        moving = [(t, v) for t, v in samples if v > 0]
        t_first = max(t for t, v in samples if v == 0) if any(v == 0 for _, v in samples) \
            else t_a
        eng_s = moving[-1][0] - t_first
        rate = total / eng_s
        log("the engine read %d records in %.1f s: %.0f events/s (%.0f (event, rule) pairs/s; "
            "%.1f s from its start)" % (total, eng_s, rate, rate * len(RULES),
                                        moving[-1][0] - t_a))
        # the windows close in the ticks after the last records (their watermark)
        def results():
            return at.metric(sb, "eventops_analytics_window_results_total") or 0
        last = [None]

        def settled():
            n = results()
            same = n == last[0] and n > 0
            last[0] = n
            return same
        eotest.wait_until(settled, 60, interval=1.0)
        m = at.metrics_text(sb)
        metric = {o: at.metric(sb, "eventops_analytics_events_total", {"outcome": o}, text=m)
                  for o in ("received", "counted", "correction", "late", "overflow",
                            "undecodable")}
        log("engine counters: %s" % metric)
        wins = [r["json"] for r in at.read_topic(sb, sb.windows_topic, timeout=600)]
        F.check(None not in wins, "records that are not JSON on the windows topic")
        wins = [w for w in wins if w]
        F.check(not at.duplicate_results(wins), "window results twice: %s" %
                at.duplicate_results(wins)[:5])
        revs = [w for w in wins if w["revision"] != 1 or not w["final"]]
        F.check(not revs, "results that are not revision 1, final (no event is a correction "
                "here): %s" % [(w["rule"]["name"], w["groupKey"], w["window"]["start"],
                                w["revision"]) for w in revs[:5]])
        late = late_by_rule(sb, F, rules)
        dead = dead_letters(sb)
        beyond = made["beyond"] - made["dead"]
        F.check(sorted(dead) == sorted(made["dead"]), "the DLQ topic holds %d of the test's "
                "records, expected the %d dead letters produced (%s)" %
                (len(dead), len(made["dead"]), eotest.describe_set_diff(
                    "dlq", set(dead), "produced", made["dead"])))
        F.check(metric["undecodable"] == len(made["dead"]), "the engine counted %s records "
                "undecodable, expected %d" % (metric["undecodable"], len(made["dead"])))
        F.check(metric["late"] == len(beyond) * len(rules), "the engine counted %s late "
                "(event, rule) pairs, expected %d" % (metric["late"], len(beyond) * len(rules)))
        lines = []
        for name, rule in rules.items():
            rid = rule["id"]
            lt = late.get(rid, set())
            F.check(lt == beyond, "%s: the late topic differs from the events produced beyond "
                    "the horizon: %s" % (name, eotest.describe_set_diff("late", lt, "beyond",
                                                                        beyond)))
            F.check(not (lt & made["ooo"]), "%s: out-of-order events within grace are on the "
                    "late topic: %s" % (name, sorted(lt & made["ooo"])[:5]))
            t_sql = time.monotonic()
            sql = at.sql_windows(sb, tid, RULES[name], exclude=lt)
            eng = at.engine_windows(wins, rid)
            n = at.compare_windows(F, "%s (%s)" % (name, RULES[name]["name"]), eng, sql)
            counted = sum(w["count"] for w in eng.values())
            k = windows_per_event(RULES[name])
            F.check(counted % k == 0, "%s: the final counts sum to %d, not a multiple of %d" %
                    (name, counted, k))
            in_window = counted // k
            F.check(in_window + len(lt) + len(dead) == made["n"],
                    "%s: in-window %d + late %d + dead-lettered %d = %d, produced %d" %
                    (name, in_window, len(lt), len(dead), in_window + len(lt) + len(dead),
                     made["n"]))
            lines.append("%s: %d windows equal SQL; in-window %d + late %d + dead-lettered %d "
                         "= %d produced" % (name, n, in_window, len(lt), len(dead), made["n"]))
            log(lines[-1] + " (SQL %.1f s)" % (time.monotonic() - t_sql))
        # the sink: every result of the topic in PostgreSQL
        topic_w = {at.window_id(w) + (w["revision"],) for w in wins}
        eotest.wait_until(lambda: set(at.pg_windows(sb, tid)) == topic_w, 60, interval=1.0)
        pw = set(at.pg_windows(sb, tid))
        F.check(pw == topic_w, "analytics_windows differs from the windows topic: %s" %
                eotest.describe_set_diff("postgres", pw, "topic", topic_w))
        code = ana.stop(timeout=60)
        F.check(code == 0, "the analytics role exited with %s after SIGTERM" % code)
        sb.check_clean_end(running=[proc])
        elapsed = time.monotonic() - t_begin
        F.check(elapsed < BUDGET_S, "the test took %.0f s, over its %d s budget" %
                (elapsed, BUDGET_S))
        return sb.report(
            "analytics parity (%.0f s, budget %d s): %d events (%d out of order within grace, "
            "%d beyond the horizon, %d dead letters); engine %.0f events/s (%d rules) with "
            "transactions; %s" % (elapsed, BUDGET_S, made["n"], len(made["ooo"]), len(beyond),
                                  len(made["dead"]), rate, len(rules), "; ".join(lines)))


def on_alarm(*_):
    raise TimeoutError("test_analytics_parity.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
