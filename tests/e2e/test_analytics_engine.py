#!/usr/bin/env python3
"""End-to-end: the analytics engine's semantics on the real pipeline (issue 12; docs/analytics.md,
"Semantics"): collector -> events topic -> processor (events table) and analytics role (engine
-> windows, summaries and late topics -> sink -> analytics_windows / analytics_summaries).

Setup: one sandbox with 4 partitions of the events topic, EVENTOPS_ANALYTICS_IDLE_MS=2000 and
EVENTOPS_KAFKA_SESSION_TIMEOUT_MS=6000 (a SIGKILLed engine's partitions come back after 6 s);
the watermark bound is the default 1 s. One tenant; the rules below are made with `eventops
admin rules create` before the roles start. Event times are the events' "timestamp" (no sentAt,
so no clock-skew correction). A reader thread reads the windows, summaries and late topics
read_committed from their beginning and notes when each record arrived.

  c. idle partition (first, while the topic is empty): one user (one record key, so one
     partition) sends an event every 100 ms, stamped with the wall clock; the three other
     partitions receive nothing, ever. The result of a tumbling 5 s count window (grace 2 s)
     arrives on the windows topic within grace + 2 s of the window's end (wall time): the delay
     is measured and printed. Only one partition of the events topic holds records.
  a. results: for ~12 s, events stamped up to 0.8 s before they are sent (never late):
       a1 tumbling 5 s count grouped by properties.plan,
       a2 hopping 30 s / 10 s mean of properties.amount (integers; some events without it or
          with a string, which count in `count` only),
       a3 tumbling 10 s unique users (userIds and anonymousIds, the same strings in both),
       a4 session (gap 2 s) count grouped by userId, with gaps below, at and above the gap,
       a5 tumbling 5 s count >= 3 grouped by properties.plan: group g1 has 4 events in one
          window and 1 in the next, g2 has 2.
     The latest revision of every window in analytics_windows equals the recomputation in SQL
     over the events table (same windows, ends, counts and values, exactly); the topic's latest
     revisions equal PostgreSQL's rows; a5's summaries are exactly [firing (4), resolved (1)] for
     g1 and none for g2, with the engine's eventIds, on the topic and in analytics_summaries.
  b. late cases (tumbling 5 s count, grace 3 s, horizon 20 s, one user): E0 on time; E1 sent
     once the watermark (eventops_analytics_watermark_seconds) passed the window's end but
     not end + grace: it is in revision 1, the first final result (count 2); E2 sent after
     revision 1 and before end + horizon: exactly one new revision (2, final, count 3) and no
     other; E3 sent once the watermark passed end + horizon: in no window, on the late topic
     with eventops-late-reason: beyond_horizon and eventops-rule-id, and
     eventops_analytics_events_total{outcome="late"} is 1 ({outcome="correction"} is 1: E2).
  d. restart mid-stream (tumbling 2 s count >= 3 grouped by properties.k, grace 15 s, which
     covers the time the engine is away; traffic alternating above and below the threshold per
     window, so summaries fire and resolve): SIGTERM of the analytics role (exit 0) at ~5 s,
     started again; SIGKILL at ~11 s, started again; the traffic goes on throughout (16 s).
     Afterwards every window has exactly revision 1 and equals SQL, the summaries on the topic
     and in analytics_summaries are exactly the expected set (the state machine over SQL's
     counts), nothing twice.
  Over everything (the whole topics read to their end with kcat, read_committed): no window
  result (rule, version, group, window, revision) twice, no summary eventId twice, the late
  topic holds E3 only, and PostgreSQL holds every result and summary of the topics, nothing else.

Takes about 2 minutes. Environment: the stack's (eval "$(scripts/stack.sh env)") plus
EVENTOPS_BIN; Debian's python3-confluent-kafka. E2E_KEEP=1 keeps the log directory of a
passing run. Exit 0 = pass.
"""

import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
import analyticstest as at  # noqa: E402
from analyticstest import US  # noqa: E402
from kafkatest import confluent_kafka, preflight  # noqa: E402

TIME_BUDGET_S = 300
KEEP = bool(os.environ.get("E2E_KEEP"))
RUN = eotest.rand_hex(6)
PARTITIONS = 4
IDLE_MS = 2000
BOUND_US = 1 * US

RULES = {
    "a1": {"name": "a1 clicks per plan", "eventType": "a_click",
           "window": {"type": "tumbling", "size": "5s"}, "groupBy": ["properties.plan"],
           "aggregate": {"fn": "count"}, "grace": "2s", "horizon": "10s"},
    "a2": {"name": "a2 mean amount", "eventType": "a_buy",
           "window": {"type": "hopping", "size": "30s", "slide": "10s"},
           "aggregate": {"fn": "mean", "property": "properties.amount"}, "grace": "2s",
           "horizon": "10s"},
    "a3": {"name": "a3 unique viewers", "eventType": "a_view",
           "window": {"type": "tumbling", "size": "10s"}, "aggregate": {"fn": "unique_users"},
           "grace": "2s", "horizon": "10s"},
    "a4": {"name": "a4 sessions", "eventType": "a_sess", "window": {"type": "session", "gap": "2s"},
           "groupBy": ["userId"], "aggregate": {"fn": "count"}, "grace": "2s", "horizon": "10s"},
    "a5": {"name": "a5 alert", "eventType": "a_alert",
           "window": {"type": "tumbling", "size": "5s"}, "groupBy": ["properties.plan"],
           "aggregate": {"fn": "count"}, "grace": "2s", "horizon": "10s",
           "condition": {"op": ">=", "value": 3}},
    "b": {"name": "b lateness", "eventType": "b_late", "window": {"type": "tumbling", "size": "5s"},
          "aggregate": {"fn": "count"}, "grace": "3s", "horizon": "20s"},
    "c": {"name": "c idle partitions", "eventType": "c_idle",
          "window": {"type": "tumbling", "size": "5s"}, "aggregate": {"fn": "count"},
          "grace": "2s", "horizon": "2s"},
    "d": {"name": "d restarts", "eventType": "d_tick", "window": {"type": "tumbling", "size": "2s"},
          "groupBy": ["properties.k"], "aggregate": {"fn": "count"}, "grace": "15s",
          "horizon": "15s", "condition": {"op": ">=", "value": 3}},
}


class Ctx:
    """What the parts share."""

    def __init__(self, sb, tenant, rules, reader, sender, ana):
        self.sb, self.F, self.tenant, self.rules = sb, sb.failures, tenant, rules
        self.tid = tenant["tenantId"]
        self.reader, self.sender, self.ana = reader, sender, ana
        self.n = 0
        self.report = []

    def mid(self, part):
        self.n += 1
        return "%s-%s-%06d" % (part, RUN, self.n)

    def rid(self, name):
        return self.rules[name]["id"]

    def results(self, name=None):
        """Window results read so far (parsed), of one rule or all."""
        out = [v for _, v in self.reader.json_records(self.sb.windows_topic) if v]
        return [v for v in out if name is None or v["rule"]["id"] == self.rid(name)]

    def result(self, name, start_us, revision):
        for w in self.results(name):
            if at.parse_us(w["window"]["start"]) == start_us and w["revision"] == revision:
                return w
        return None

    def wait_stored(self, timeout=30):
        """Waits until every event the collector accepted is in the events table."""
        n = len(self.sender.accepted)
        ok = eotest.wait_until(lambda: at.stored_count(self.sb, self.tid) >= n, timeout,
                               interval=0.2)
        self.F.check(ok, "%d accepted events are not all stored after %d s" % (n, timeout))

    def wait_watermark(self, at_least_us, timeout):
        return eotest.wait_until(lambda: (at.watermark_us(self.sb) or 0) >= at_least_us,
                                 timeout, interval=0.05)


def sleep_until(t_us):
    d = (t_us - at.now_us()) / US
    if d > 0:
        time.sleep(d)


def next_boundary(size_us, margin_us):
    t = at.now_us() + margin_us
    return t - t % size_us + size_us


# ---------------------------------------------------------------------------------------------
# c. idle partitions

def part_c(cx):
    F, sb = cx.F, cx.sb
    size, grace = 5 * US, 2 * US
    user = "c-user-" + RUN
    cx.sender.send([at.event(cx.mid("c"), "c_probe", at.now_us(), user=user)])
    if not F.check(at.wait_received(sb, 1, 60), "c: the engine read no record within 60 s"):
        return
    start = next_boundary(size, US // 2)
    end = start + size
    deadline = end + grace + 2 * US + US
    log("c: one user's events every 100 ms until the window [%s, %s) closes" %
        (at.iso_us(start), at.iso_us(end)))
    got = None
    while at.now_us() < deadline:
        cx.sender.send([at.event(cx.mid("c"), "c_idle", at.now_us(), user=user)])
        got = got or cx.result("c", start, 1)
        if got:
            break
        time.sleep(0.1)
    got = got or cx.reader.wait(lambda: cx.result("c", start, 1), 1)
    if not F.check(got is not None, "c: no result of the window [%s, %s) on the windows topic "
                   "by %s" % (at.iso_us(start), at.iso_us(end), at.iso_us(deadline))):
        return
    rec = [r for r, v in cx.reader.json_records(sb.windows_topic)
           if v and v["rule"]["id"] == cx.rid("c") and at.parse_us(v["window"]["start"]) == start
           and v["revision"] == 1][0]
    delay = rec["arrived"] - end / US
    emitted = (at.parse_us(got["emittedAt"]) - end) / US
    log("c: the window closed %.3f s after its end (emittedAt %.3f s after; allowed grace + 2 s "
        "= %.1f s)" % (delay, emitted, (grace + 2 * US) / US))
    cx.report.append("idle partition: window closed %.3f s after its end (limit %.1f s)" %
                     (delay, (grace + 2 * US) / US))
    F.check(delay <= (grace + 2 * US) / US, "c: the window closed %.3f s after its end, more "
            "than grace + 2 s" % delay)
    F.check(got["final"] is True and got["count"] >= 1,
            "c: the result is not final or empty: %r" % got)
    # the three other partitions received nothing at all
    ck = confluent_kafka()
    cons = ck.Consumer({"bootstrap.servers": sb.brokers, "group.id": "e2e-probe-" + RUN})
    try:
        highs = [cons.get_watermark_offsets(ck.TopicPartition(sb.events_topic, p), timeout=10,
                                            cached=False)[1] for p in range(PARTITIONS)]
    finally:
        cons.close()
    F.check(sum(1 for h in highs if h > 0) == 1,
            "c: records on more than one partition of the events topic: %s" % highs)
    log("c: records per partition of the events topic: %s" % highs)


# ---------------------------------------------------------------------------------------------
# a. results

SESSIONS = {"s1": [0.0, 0.5, 1.0, 3.5, 4.0, 8.0, 10.0],  # 2.5 s > gap; 8.0 -> 10.0 == gap
            "s2": [0.2, 1.5, 3.0, 4.4, 6.3]}               # every step below the 2 s gap
A_SECONDS = 12.0


def part_a_send(cx):
    rnd = random.Random(RUN)
    a0 = at.now_us()
    sess = sorted((a0 + int(off * US), u) for u, offs in SESSIONS.items() for off in offs)
    alert_next_sent = False
    alert_win = at.floor_to(a0, 5 * US)
    evs = [at.event(cx.mid("a5"), "a_alert", a0, user="al-%d" % i, props={"plan": "g1"})
           for i in range(4)]
    evs += [at.event(cx.mid("a5"), "a_alert", a0, user="al-%d" % i, props={"plan": "g2"})
            for i in range(2)]
    cx.sender.send(evs)
    while True:
        now = at.now_us()
        if now - a0 > A_SECONDS * US:
            break
        evs = []

        def t():
            return now - rnd.randrange(0, 800000)
        for _ in range(2):
            evs.append(at.event(cx.mid("a1"), "a_click", t(), user="u%d" % rnd.randrange(10),
                                props={"plan": rnd.choice(["free", "pro", "team"])}))
        x = rnd.random()
        props = {} if x < 0.1 else {"amount": "12"} if x < 0.15 else \
            {"amount": rnd.randrange(1, 101)}
        evs.append(at.event(cx.mid("a2"), "a_buy", t(), user="u%d" % rnd.randrange(10),
                            props=props))
        for _ in range(2):
            if rnd.random() < 0.25:
                evs.append(at.event(cx.mid("a3"), "a_view", t(), anon="u%d" % rnd.randrange(5)))
            else:
                evs.append(at.event(cx.mid("a3"), "a_view", t(), user="u%d" % rnd.randrange(15)))
        while sess and sess[0][0] <= now:
            ts, u = sess.pop(0)
            evs.append(at.event(cx.mid("a4"), "a_sess", ts, user="%s-%s" % (u, RUN)))
        if not alert_next_sent and now >= alert_win + 5 * US + 300000:
            evs.append(at.event(cx.mid("a5"), "a_alert", now, user="al-0", props={"plan": "g1"}))
            alert_next_sent = True
        cx.sender.send(evs)
        time.sleep(max(0.0, 0.25 - (at.now_us() - now) / US))
    for ts, u in sess:  # none left unless the loop was slow; their times are still recent
        cx.sender.send([at.event(cx.mid("a4"), "a_sess", ts, user="%s-%s" % (u, RUN))])
    cx.F.check(alert_next_sent, "a: the second a5 window's event was not sent")
    cx.a_window = alert_win
    log("a: %d events sent in %.1f s" % (cx.n, (at.now_us() - a0) / US))


def part_a_check(cx):
    F, sb = cx.F, cx.sb
    cx.wait_stored()
    sqls = {name: at.sql_windows(sb, cx.tid, RULES[name]) for name in
            ("a1", "a2", "a3", "a4", "a5")}
    last_end = max(w["end"] for s in sqls.values() for w in s.values())
    # every window of the SQL recomputation has a final result by end + grace + bound + 5 s
    eotest.wait_until(lambda: all(
        set(s) <= set(at.engine_windows(cx.results(n), cx.rid(n))) for n, s in sqls.items()),
        max(5.0, (last_end + 2 * US + BOUND_US - at.now_us()) / US + 5), interval=0.2)
    total = 0
    for name, sql in sqls.items():
        eng = at.engine_windows(cx.results(name), cx.rid(name))
        total += at.compare_windows(F, "a: %s (%s)" % (name, RULES[name]["name"]), eng, sql)
        F.check(all(w["final"] and w["revision"] == 1 for w in eng.values()),
                "a: %s: results that are not revision 1, final: %s" %
                (name, [w for w in eng.values() if not (w["final"] and w["revision"] == 1)][:3]))
    log("a: %d windows of 5 rules equal SQL" % total)
    cx.report.append("results: %d windows of tumbling/hopping/unique/session/alert rules equal "
                     "SQL" % total)
    # a4: the sessions are the ones planned: s1 has 4 (the gap of exactly 2 s splits), s2 one
    per_user = {}
    for (g, _), w in at.engine_windows(cx.results("a4"), cx.rid("a4")).items():
        per_user.setdefault(g, []).append(w["count"])
    want = {at.group_key(["s1-" + RUN]): [3, 2, 1, 1], at.group_key(["s2-" + RUN]): [5]}
    F.check({g: sorted(c, reverse=True) for g, c in per_user.items()} ==
            {g: sorted(c, reverse=True) for g, c in want.items()},
            "a: a4 sessions (counts per user) %s, expected %s" % (per_user, want))
    # a5: exactly firing then resolved for g1, nothing for g2
    rule = cx.rules["a5"]
    sums = [v for _, v in cx.reader.json_records(sb.summaries_topic)
            if v and v["rule"]["id"] == rule["id"]]
    g1, g2 = at.group_key(["g1"]), at.group_key(["g2"])
    w0 = cx.a_window
    want = [(g1, w0, "firing", 4), (g1, w0 + 5 * US, "resolved", 1)]
    got = sorted((s["groupKey"], at.parse_us(s["window"]["start"]), s["status"], s["value"])
                 for s in sums)
    F.check(got == want, "a: a5 summaries %s, expected %s" % (got, want))
    ids = {at.summary_event_id(cx.tid, rule["id"], 1, g, s, st) for g, s, st, _ in want}
    F.check({s["eventId"] for s in sums} == ids,
            "a: a5 eventIds %s, expected %s" % (sorted(s["eventId"] for s in sums), sorted(ids)))
    for s in sums:
        F.check(s.get("threshold") == 3 and s.get("final") is True and s.get("revision") == 1 and
                s.get("group") == {"properties.plan": "g1"} and s.get("tenantId") == cx.tid,
                "a: a5 summary fields: %r" % s)
    log("a: a5 summaries: %s" % [(s[2], s[3]) for s in got])


# ---------------------------------------------------------------------------------------------
# b. late cases

def part_b(cx):
    F, sb = cx.F, cx.sb
    size, grace, horizon = 5 * US, 3 * US, 20 * US
    user = "b-user-" + RUN
    rid = cx.rid("b")
    start = next_boundary(size, 300000)
    end = start + size
    log("b: window [%s, %s), grace 3 s, horizon 20 s" % (at.iso_us(start), at.iso_us(end)))
    sleep_until(start + 300000)
    e0 = cx.mid("b")
    cx.sender.send([at.event(e0, "b_late", start + 300000, user=user)])
    # E1: late (the watermark passed its window's end) but within grace
    ok = cx.wait_watermark(end + 200000, 15)
    wm = at.watermark_us(sb)
    if not F.check(ok and wm is not None and wm < end + grace - US,
                   "b: set-up: the watermark %s is not in [end, end + grace - 1 s) before E1" %
                   (at.iso_us(wm) if wm else wm)):
        return
    e1 = cx.mid("b")
    cx.sender.send([at.event(e1, "b_late", start + 2 * US, user=user)])
    log("b: E1 (time end - 3 s) sent with the watermark at end + %.3f s" % ((wm - end) / US))
    r1 = cx.reader.wait(lambda: cx.result("b", start, 1), (grace + 15 * US) / US)
    if not F.check(r1 is not None, "b: no revision 1 of the window"):
        return
    F.check(r1["final"] is True and r1["count"] == 2 and r1["value"] == 2,
            "b: revision 1 (the first final result) must count E0 and E1 (late within grace): "
            "%r" % r1)
    # E2: within the correction horizon
    wm = at.watermark_us(sb)
    if not F.check(wm is not None and end + grace <= wm < end + horizon - 5 * US,
                   "b: set-up: the watermark %s is not in [end + grace, end + horizon - 5 s) "
                   "before E2" % (at.iso_us(wm) if wm else wm)):
        return
    e2 = cx.mid("b")
    cx.sender.send([at.event(e2, "b_late", start + 3 * US, user=user)])
    r2 = cx.reader.wait(lambda: cx.result("b", start, 2), 15)
    if F.check(r2 is not None, "b: no revision 2 after E2 (within the horizon)"):
        F.check(r2["final"] is True and r2["count"] == 3,
                "b: revision 2 must be final and count 3: %r" % r2)
    # E3: beyond the horizon
    if not F.check(cx.wait_watermark(end + horizon + 500000, 40),
                   "b: set-up: the watermark did not pass end + horizon"):
        return
    e3 = cx.mid("b")
    cx.sender.send([at.event(e3, "b_late", start + 4 * US, user=user)])

    def late_e3():
        return [r for r in cx.reader.records(sb.late_topic) if e3 in (r["value"] or "")]
    late = cx.reader.wait(late_e3, 15)
    if F.check(bool(late), "b: E3 (beyond the horizon) is not on the late topic"):
        h = dict(late[0]["headers"])
        F.check(h.get("eventops-late-reason") == "beyond_horizon" and
                h.get("eventops-rule-id") == rid,
                "b: the late record's headers %r, expected beyond_horizon and rule %s" %
                (late[0]["headers"], rid))
        F.check(late[0]["key"] == "%s:%s" % (cx.tid, user),
                "b: the late record's key %r is not the event's" % late[0]["key"])
        F.check(len(late) == 1, "b: E3 is %d times on the late topic" % len(late))
    time.sleep(1.5)  # a revision 3 would have come by now (ticks of 200 ms)
    revs = sorted(w["revision"] for w in cx.results("b")
                  if at.parse_us(w["window"]["start"]) == start)
    F.check(revs == [1, 2], "b: revisions of the window %s, expected [1, 2]" % revs)
    m = at.metrics_text(sb)
    late_n = at.metric(sb, "eventops_analytics_events_total", {"outcome": "late"}, text=m)
    corr_n = at.metric(sb, "eventops_analytics_events_total", {"outcome": "correction"}, text=m)
    F.check(late_n == 1, "b: eventops_analytics_events_total{outcome=\"late\"} is %s, expected 1"
            % late_n)
    F.check(corr_n == 1, "b: eventops_analytics_events_total{outcome=\"correction\"} is %s, "
            "expected 1 (E2)" % corr_n)
    # the window in PostgreSQL: revisions 1 and 2; SQL over the events without E3 counts 3
    cx.b_late = {e3}
    sql = at.sql_windows(sb, cx.tid, RULES["b"], exclude=cx.b_late)
    F.check(sql.get((at.group_key([]), start), {}).get("count") == 3,
            "b: SQL without the late event counts %s in the window, expected 3" %
            sql.get((at.group_key([]), start)))
    cx.report.append("late cases: within grace in revision 1, within horizon one revision 2, "
                     "beyond horizon on the late topic and counted")
    log("b: E1 in revision 1, E2 made revision 2, E3 on the late topic")


# ---------------------------------------------------------------------------------------------
# d. restarts mid-stream

D_SECONDS = 16.0


def part_d(cx):
    F, sb, ana = cx.F, cx.sb, cx.ana
    size = 2 * US
    events = {"term_exit": None, "error": None}

    def killer():
        try:
            time.sleep(5)
            events["term_exit"] = ana.stop(timeout=30)
            log("d: SIGTERM: the analytics role exited with %s; started again" %
                events["term_exit"])
            ana.start()
            time.sleep(6)
            ana.kill(signal.SIGKILL)
            log("d: SIGKILL of the analytics role; started again")
            ana.start()
        except Exception as e:  # noqa: BLE001
            events["error"] = repr(e)
    th = threading.Thread(target=killer, daemon=True)
    d0 = at.now_us()
    th.start()
    sent = {}
    while at.now_us() - d0 < D_SECONDS * US:
        now = at.now_us()
        w = at.floor_to(now, size)
        high = (w // size) % 2 == 0
        evs = []
        for g, n in (("x", 4 if high else 1), ("y", 1 if high else 4)):
            if sent.get((g, w), 0) < n and now - w < size - 300000:
                sent[(g, w)] = sent.get((g, w), 0) + 1
                evs.append(at.event(cx.mid("d"), "d_tick", now, user="d-%s" % g,
                                    props={"k": g}))
        if evs:
            cx.sender.send(evs)
        time.sleep(0.2)
    th.join(60)
    F.check(events["error"] is None, "d: restarting the role failed: %s" % events["error"])
    F.check(events["term_exit"] == 0, "d: the analytics role exited with %s after SIGTERM" %
            events["term_exit"])
    try:
        ana.wait_ready(60)
    except (TimeoutError, RuntimeError) as e:
        F.fail("d: the analytics role is not ready after the restarts: %s" % e)
        return
    cx.wait_stored()
    sql = at.sql_windows(sb, cx.tid, RULES["d"])
    last_end = max(w["end"] for w in sql.values())
    eotest.wait_until(lambda: set(sql) <= set(at.engine_windows(cx.results("d"), cx.rid("d"))),
                      max(5.0, (last_end + 15 * US + BOUND_US - at.now_us()) / US + 10),
                      interval=0.2)
    rule = cx.rules["d"]
    eng = at.engine_windows(cx.results("d"), rule["id"])
    n = at.compare_windows(F, "d: after SIGTERM and SIGKILL", eng, sql)
    revs = [w for w in cx.results("d") if w["revision"] != 1]
    F.check(not revs, "d: corrections (revisions > 1): the restarts took longer than the 15 s "
            "grace: %s" % revs[:3])
    want = at.expected_summaries(cx.tid, rule["id"], 1, RULES["d"],
                                 {k: v["count"] for k, v in sql.items()})
    # the last transition may be at the empty window after the last one (a resolve at 0)
    last_end = max(s + size for _, s, _, _ in want.values()) if want else 0

    def summaries():
        return [v for _, v in cx.reader.json_records(sb.summaries_topic)
                if v and v["rule"]["id"] == rule["id"]]
    eotest.wait_until(lambda: {s["eventId"] for s in summaries()} >= set(want),
                      max(2.0, (last_end + 15 * US + BOUND_US - at.now_us()) / US + 5),
                      interval=0.2)
    time.sleep(0.5)
    got = summaries()
    gids = {s["eventId"] for s in got}
    F.check(gids == set(want), "d: summaries on the topic differ from the expected: %s; missing "
            "(group, window start, status, value): %s; unexpected: %s" %
            (eotest.describe_set_diff("topic", gids, "expected", set(want)),
             [want[k] for k in sorted(set(want) - gids)][:5],
             [(s["groupKey"], s["window"]["start"], s["status"], s["value"]) for s in got
              if s["eventId"] not in want][:5]))
    F.check(not at.duplicate_event_ids(got), "d: summary eventIds twice on the topic: %s" %
            at.duplicate_event_ids(got)[:5])
    log("d: %d windows equal SQL, %d summaries as expected (%d firing)" %
        (n, len(want), sum(1 for v in want.values() if v[2] == "firing")))
    cx.report.append("restarts: SIGTERM + SIGKILL mid-stream, %d windows and %d summaries "
                     "exactly once" % (n, len(want)))
    cx.d_summaries = set(want)


# ---------------------------------------------------------------------------------------------
# Over everything

def check_all(cx):
    F, sb = cx.F, cx.sb
    wins = [r["json"] for r in at.read_topic(sb, sb.windows_topic)]
    sums = [r["json"] for r in at.read_topic(sb, sb.summaries_topic)]
    late = at.read_topic(sb, sb.late_topic)
    F.check(None not in wins and None not in sums, "records that are not JSON on the windows or "
            "summaries topic")
    wins = [w for w in wins if w]
    sums = [s for s in sums if s]
    dups = at.duplicate_results(wins)
    F.check(not dups, "window results emitted twice (read_committed): %s" % dups[:5])
    F.check(not at.revision_gaps(wins), "windows whose revisions are not 1..n: %s" %
            at.revision_gaps(wins)[:5])
    F.check(not at.duplicate_event_ids(sums), "summary eventIds twice on the topic: %s" %
            at.duplicate_event_ids(sums)[:5])
    late_ids = [(r["json"] or {}).get("event", {}).get("messageId") for r in late]
    b_late = getattr(cx, "b_late", set())
    F.check(sorted(late_ids) == sorted(b_late),
            "the late topic holds %s, expected only E3 %s" % (late_ids, sorted(b_late)))
    topic_w = {at.window_id(w) + (w["revision"],) for w in wins}
    topic_s = {s["eventId"] for s in sums}

    def pg_same():
        return set(at.pg_windows(sb, cx.tid)) == topic_w and \
            set(at.pg_summaries(sb, cx.tid)) == topic_s
    eotest.wait_until(pg_same, 20, interval=0.5)
    pw, ps = at.pg_windows(sb, cx.tid), at.pg_summaries(sb, cx.tid)
    F.check(set(pw) == topic_w, "analytics_windows differs from the windows topic: %s" %
            eotest.describe_set_diff("postgres", set(pw), "topic", topic_w))
    F.check(set(ps) == topic_s, "analytics_summaries differs from the summaries topic: %s" %
            eotest.describe_set_diff("postgres", set(ps), "topic", topic_s))
    for w in wins:
        k = at.window_id(w) + (w["revision"],)
        if k in pw and pw[k] != w:
            F.fail("analytics_windows body differs from the topic for %s" % (k,))
            break
    log("all: %d window results, %d summaries, %d late records; no duplicates; PostgreSQL "
        "equals the topics" % (len(wins), len(sums), len(late)))


def main():
    reason = preflight()
    if reason:
        print("FAILED: " + reason)
        return 1
    extra = {"EVENTOPS_ANALYTICS_IDLE_MS": str(IDLE_MS),
             "EVENTOPS_KAFKA_SESSION_TIMEOUT_MS": "6000",
             "EVENTOPS_RATE_LIMIT_RATE": "100000", "EVENTOPS_RATE_LIMIT_BURST": "100000"}
    t0 = time.monotonic()
    with eotest.Sandbox("analytics-engine", partitions=PARTITIONS, extra_env=extra,
                        keep_dir=KEEP) as sb:
        sb.create_signing_key()
        tenant = sb.create_tenant("ae-" + RUN)
        rules = {k: at.create_rule(sb, tenant["name"], r) for k, r in RULES.items()}
        proc, coll, ana = sb.processor(), sb.collector(), sb.analytics()
        for r in (proc, coll, ana):
            r.start()
        for r in (proc, coll, ana):
            r.wait_ready(60)
        reader = at.TopicReader(sb.brokers, [sb.windows_topic, sb.summaries_topic,
                                             sb.late_topic])
        try:
            cx = Ctx(sb, tenant, rules, reader, at.Sender(sb, tenant["writeKey"]), ana)
            part_c(cx)
            part_a_send(cx)
            part_b(cx)
            part_a_check(cx)
            part_d(cx)
            check_all(cx)
        finally:
            reader.close()
        code = ana.stop(timeout=30)
        sb.failures.check(code == 0, "the analytics role exited with %s after SIGTERM" % code)
        sb.check_clean_end(running=[proc, coll])
        return sb.report("analytics engine (%.0f s): %s" % (time.monotonic() - t0,
                                                            "; ".join(cx.report)))


def on_alarm(*_):
    raise TimeoutError("test_analytics_engine.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
