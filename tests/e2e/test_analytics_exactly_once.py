#!/usr/bin/env python3
"""End-to-end: the analytics engine's summaries are exactly once through SIGKILLs of the
analytics role and a restart of the Kafka broker (issue 12, acceptance "Exactly once";
docs/analytics.md, "Exactly once").

Setup: one sandbox (4 partitions), EVENTOPS_KAFKA_SESSION_TIMEOUT_MS=6000 (a killed engine's
partitions are given to its successor once the dead member's session expired). Three tenants,
each with the rule "tumbling 2 s count >= 5 per properties.g" (grace and horizon 60 s); three
groups per tenant, six users per tenant (the events spread over the partitions).

Traffic: one sender per tenant posts a batch every 100 ms; per (group, 2 s window) it sends 7
or 2 events, alternating window by window (each group with its own phase), so every group's
rule fires and resolves every other window. Events are stamped with the wall clock when first
sent; a batch is resent with the same messageIds until it gets a 202 (503 while the broker is
away), so a batch delayed by the broker's restart arrives with times up to its length old.

Why grace 60 s: event times are the wall clock when a batch is first sent, and a batch that waits
for the broker's restart (~20-35 s, every answer a 503) gets its 202 with those times, while
the other partitions already carry newer events; and whatever the engine reads after a restart
(the dead member's 6 s session, then the restore) is as old as the time it was away. The
watermark waits for partitions that are not assigned or have a backlog (ADR-18), but an event
whose window ended more than grace before the watermark would still be a correction (a new
revision, which does not step the condition again) and the summaries could no longer equal the
state machine over the final counts. With grace 60 s no event of this test is late; the test
checks it (every window has revision 1, the late topic is empty).

Faults (E2E_KILLS, default 24, at least 20, SIGKILLs of the analytics role): every other kill
comes at a random moment 0-0.8 s after the start (while it starts, restores its state from the
changelog or joins the group); the others once the incarnation has committed a tick with
records, 0.2-4 s later (mid-tick, mid-transaction, mid-sink batch). After each kill the role is
started again at once. Halfway, once: SIGKILL of the stack's broker, 5 s down, `scripts/stack.sh
up` until it answers (no analytics kill while it is away), as test_kafka_crash.py does; a
watchdog restores the broker should this script die meanwhile. This is the only test of the
three that disturbs the shared stack, once per run.

Then the traffic stops and the last incarnation finalises every window (grace 60 s). Checks:
  - every event the collector accepted is stored (the expected set is computed from the events
    table, which also holds events that reached Kafka with a 503);
  - per tenant: for every (group, window) the final count from the events table; the state
    machine (alert_transitions) over the windows in order gives the expected transitions
    (group, window start, status) and their eventIds (the engine's UUIDv5);
  - the summaries topic (read_committed, whole) holds exactly the expected eventIds, none twice,
    and analytics_summaries holds exactly the same set;
  - the windows topic has no result twice (rule, version, group, window, revision), every
    window has exactly revision 1 and its count equals the events table's; the late topic is
    empty;
  - the processor, collector and final analytics role run; no sanitizer report.

About 4-5 minutes (the traffic ~2.5 minutes, then the 60 s grace). Environment: the stack's
(eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN; EVENTOPS_STACK_DIR as for scripts/stack.sh
(the broker is found through it: in a worktree set it to the main checkout's .stack); Debian's
python3-confluent-kafka. E2E_KEEP=1 keeps the log directory of a passing run. Exit 0 = pass.
"""

import math
import os
import random
import signal
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from eotest import (Watchdog, check_brokers_are_the_stacks, kafka_answers,  # noqa: E402
                    kafka_pid, stack_up)
import analyticstest as at  # noqa: E402
from analyticstest import US  # noqa: E402
from kafkatest import alive, preflight  # noqa: E402

TIME_BUDGET_S = 840
KEEP = bool(os.environ.get("E2E_KEEP"))
KILLS = int(os.environ.get("E2E_KILLS", "24"))
RUN = eotest.rand_hex(6)
PARTITIONS = 4
TENANTS = 3
GROUPS = ("g0", "g1", "g2")
USERS = 6
SIZE = 2 * US
GRACE = 60 * US
THRESHOLD, HIGH, LOW = 5, 7, 2
SEND_PERIOD = 0.1
SEND_WITHIN = 1500000         # of each window: the events of a window are sent in its first 1.5 s
BATCH_DEADLINE_S = 180.0      # a batch gets its 202 by then (the broker's restart included)
BROKER_DOWN_S = 5.0
CONSUMING_S = 60.0            # an incarnation commits a tick with records within this
RULE = {"name": "eo burst", "eventType": "eo_tick", "window": {"type": "tumbling", "size": "2s"},
        "groupBy": ["properties.g"], "aggregate": {"fn": "count"}, "grace": "60s",
        "horizon": "60s", "condition": {"op": ">=", "value": THRESHOLD}}


class Load:
    """One sender thread per tenant (see the module comment)."""

    def __init__(self, sb, tenants):
        self.sb = sb
        self.tenants = tenants
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.accepted = {t["tenantId"]: set() for t in tenants}
        self.bad = []
        self.answers = Counter()
        self.n = 0
        self.threads = [threading.Thread(target=self._run, args=(i, t), daemon=True,
                                         name="sender-%d" % i) for i, t in enumerate(tenants)]

    def start(self):
        for th in self.threads:
            th.start()

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(BATCH_DEADLINE_S + 10)
        return not any(th.is_alive() for th in self.threads)

    def _mid(self, i):
        with self.lock:
            self.n += 1
            return "eo-%s-t%d-%07d" % (RUN, i, self.n)

    def _run(self, i, tenant):
        rnd = random.Random("%s-%d" % (RUN, i))
        phase = {g: rnd.randrange(2) for g in GROUPS}
        sent = Counter()
        url = self.sb.url("/events/batch")
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            now = at.now_us()
            w = at.floor_to(now, SIZE)
            evs = []
            for g in GROUPS:
                target = HIGH if ((w // SIZE) + phase[g]) % 2 == 0 else LOW
                left = target - sent[(g, w)]
                into = now - w
                if left <= 0 or into >= SEND_WITHIN:
                    continue
                n = math.ceil(left / max(1, int((SEND_WITHIN - into) / (SEND_PERIOD * US))))
                for _ in range(n):
                    evs.append(at.event(self._mid(i), "eo_tick", now,
                                        user="u%d-%d" % (i, rnd.randrange(USERS)),
                                        props={"g": g}))
                sent[(g, w)] += n
            if evs:
                self._send(tenant, url, evs)
            self.stop_ev.wait(max(0.0, SEND_PERIOD - (time.monotonic() - t0)))

    def _send(self, tenant, url, evs):
        deadline = time.monotonic() + BATCH_DEADLINE_S
        conn = None
        while True:
            r = eotest.send(url, {"events": evs}, tenant["writeKey"], conn=conn)
            with self.lock:
                self.answers[r.status] += 1
            if r.status == 202:
                with self.lock:
                    self.accepted[tenant["tenantId"]].update(e["messageId"] for e in evs)
                return
            if r.status not in (503, "ERR"):
                with self.lock:
                    self.bad.append("unexpected answer %r" % r)
                return
            if time.monotonic() > deadline:
                with self.lock:
                    self.bad.append("a batch got no 202 in %.0f s" % BATCH_DEADLINE_S)
                return
            time.sleep(0.25)


def received(sb):
    return at.metric(sb, "eventops_analytics_events_total", {"outcome": "received"}) or 0


def wait_consuming(sb, ana, timeout=CONSUMING_S):
    """Waits until this incarnation committed a tick with records (its received counter, which
    counts committed ticks only, is above 0). False on timeout or when the process died."""
    return eotest.wait_until(lambda: ana.running() and received(sb) > 0, timeout, interval=0.1)


def restart_broker(F):
    """SIGKILL of the stack's broker, BROKER_DOWN_S down, `scripts/stack.sh up` until it
    answers. Returns (down seconds, seconds from `up` to answering) or None when it failed."""
    try:
        check_brokers_are_the_stacks()
        pid = kafka_pid()
    except RuntimeError as e:
        F.fail("broker restart: cannot find the stack's broker (EVENTOPS_STACK_DIR?): %s" % e)
        return None
    restored = False
    dog = Watchdog(BROKER_DOWN_S + 100)
    try:
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        F.check(eotest.wait_until(lambda: not alive(pid), 15, interval=0.05),
                "broker restart: the broker (pid %d) still runs 15 s after SIGKILL" % pid)
        log("SIGKILL of the broker (pid %d)" % pid)
        time.sleep(max(0.0, t_kill + BROKER_DOWN_S - time.monotonic()))
        t_up = time.monotonic()
        stack_up()
        restored = bool(eotest.wait_until(kafka_answers, 60, interval=0.5))
        t_answer = time.monotonic()
    finally:
        if not restored:
            stack_up()
            restored = bool(eotest.wait_until(kafka_answers, 60, interval=0.5))
        if restored:
            dog.cancel()
    if not F.check(restored, "broker restart: Kafka does not answer after `scripts/stack.sh up`"):
        return None
    log("the broker answers again (down %.1f s, `stack.sh up` until it answered %.1f s)" %
        (t_up - t_kill, t_answer - t_up))
    return t_up - t_kill, t_answer - t_up


def kill_cycle(F, sb, ana, rnd):
    """SIGKILLs and the broker's restart. Returns a summary dict."""
    out = {"kills": 0, "quick": 0, "consuming": 0, "broker": None, "stalled": 0}
    for i in range(KILLS):
        if i == KILLS // 2:
            if not F.check(wait_consuming(sb, ana), "the analytics role does not consume before "
                           "the broker's restart"):
                break
            out["broker"] = restart_broker(F)
            if out["broker"] is None:
                break
        if i % 2 == 0:
            time.sleep(rnd.uniform(0.0, 0.8))
            out["quick"] += 1
        else:
            if not wait_consuming(sb, ana):
                out["stalled"] += 1
                F.fail("kill %d: the analytics role committed no tick with records within %.0f "
                       "s of its start" % (i + 1, CONSUMING_S))
                break
            time.sleep(rnd.uniform(0.2, 4.0))
            out["consuming"] += 1
        if not F.check(ana.running(), "kill %d: the analytics role is not running (exit %s)" %
                       (i + 1, ana.proc.returncode)):
            break
        ana.kill(signal.SIGKILL)
        out["kills"] += 1
        ana.start()
    return out


def incarnations(ana):
    """Of the analytics log: per SIGKILLed incarnation, whether it had restored its state and
    whether it had been assigned partitions before the kill."""
    out = []
    cur = None
    for line in ana.tail(10 ** 7).splitlines():
        if line.startswith("---- e2e: analytics start"):
            cur = {"restored": False, "assigned": False}
        elif cur is not None and "analytics state restored" in line:
            cur["restored"] = True
        elif cur is not None and '"msg":"partitions assigned"' in line:
            cur["assigned"] = True
        elif cur is not None and line.startswith("---- e2e: analytics signal SIGKILL"):
            out.append(cur)
            cur = None
    return out


def check_results(F, sb, tenants, rules, load):
    """The checks after the run (see the module comment). Returns a summary dict."""
    # every accepted event is stored; the stored set stops growing
    for t in tenants:
        tid = t["tenantId"]
        acc = load.accepted[tid]
        ok = eotest.wait_until(lambda: at.stored_count(sb, tid) >= len(acc), 60, interval=0.5)
        F.check(ok, "tenant %s: %d events accepted, %d stored after 60 s" %
                (t["name"], len(acc), at.stored_count(sb, tid)))
    last = [None]

    def stable():
        n = sum(at.stored_count(sb, t["tenantId"]) for t in tenants)
        same = n == last[0]
        last[0] = n
        return same
    eotest.wait_until(stable, 30, interval=2.0)
    want, sqls = {}, {}
    for t in tenants:
        tid, rule = t["tenantId"], rules[t["tenantId"]]
        sqls[tid] = at.sql_windows(sb, tid, RULE)
        want[tid] = at.expected_summaries(tid, rule["id"], 1, RULE,
                                          {k: v["count"] for k, v in sqls[tid].items()})
    # the last windows (and the resolve after them) close grace after their end
    last_end = max(s for w in want.values() for _, s, _, _ in w.values()) + SIZE
    wait_s = max(10.0, (last_end + GRACE + 1 * US - at.now_us()) / US + 30)
    log("waiting up to %.0f s for the engine to finalise the last windows" % wait_s)

    def summaries_in():
        got = at.pg_summaries_all(sb)
        return all(set(want[tid]) <= set(got.get(tid, {})) for tid in want)
    eotest.wait_until(summaries_in, wait_s, interval=1.0)
    time.sleep(2)
    sums = [r["json"] for r in at.read_topic(sb, sb.summaries_topic)]
    wins = [r["json"] for r in at.read_topic(sb, sb.windows_topic)]
    late = at.read_topic(sb, sb.late_topic)
    F.check(None not in sums and None not in wins, "records that are not JSON on the summaries "
            "or windows topic")
    sums = [s for s in sums if s]
    wins = [w for w in wins if w]
    dups = at.duplicate_event_ids(sums)
    F.check(not dups, "summary eventIds twice on the topic (read_committed): %s" % dups[:5])
    dupw = at.duplicate_results(wins)
    F.check(not dupw, "window results twice on the windows topic: %s" % dupw[:5])
    F.check(not late, "the late topic holds %d records (no event of this test is late): %s" %
            (len(late), [r["value"][:200] for r in late[:3]]))
    revs = [w for w in wins if w["revision"] != 1]
    F.check(not revs, "corrections (revisions > 1): events came later than the 60 s grace: %s" %
            [(w["groupKey"], w["window"]["start"], w["revision"]) for w in revs[:5]])
    pg = at.pg_summaries_all(sb)
    n_want = n_fire = n_windows = 0
    for t in tenants:
        tid, rule = t["tenantId"], rules[t["tenantId"]]
        exp = want[tid]
        n_want += len(exp)
        n_fire += sum(1 for v in exp.values() if v[2] == "firing")
        topic_ids = {s["eventId"] for s in sums if s["tenantId"] == tid}
        F.check(topic_ids == set(exp), "tenant %s: summaries on the topic differ from the "
                "expected: %s; missing (group, start, status, value): %s" %
                (t["name"], eotest.describe_set_diff("topic", topic_ids, "expected", set(exp)),
                 [exp[k] for k in sorted(set(exp) - topic_ids)][:5]))
        pg_ids = set(pg.get(tid, {}))
        F.check(pg_ids == set(exp), "tenant %s: analytics_summaries differs from the expected: "
                "%s" % (t["name"], eotest.describe_set_diff("postgres", pg_ids, "expected",
                                                            set(exp))))
        eng = at.engine_windows([w for w in wins if w["tenantId"] == tid], rule["id"])
        n_windows += at.compare_windows(F, "tenant %s: final counts" % t["name"], eng, sqls[tid])
    return {"summaries": n_want, "firing": n_fire, "windows": n_windows,
            "events": sum(at.stored_count(sb, t["tenantId"]) for t in tenants)}


def main():
    if KILLS < 20:
        print("FAILED: E2E_KILLS=%d: the acceptance asks for at least 20 SIGKILLs" % KILLS)
        return 1
    reason = preflight()
    if reason:
        print("FAILED: " + reason)
        return 1
    extra = {"EVENTOPS_KAFKA_SESSION_TIMEOUT_MS": "6000",
             "EVENTOPS_RATE_LIMIT_RATE": "100000", "EVENTOPS_RATE_LIMIT_BURST": "100000"}
    t0 = time.monotonic()
    rnd = random.Random(RUN)
    with eotest.Sandbox("analytics-eo", partitions=PARTITIONS, extra_env=extra,
                        keep_dir=KEEP) as sb:
        F = sb.failures
        sb.create_signing_key()
        tenants = [sb.create_tenant("eo-%s-%d" % (RUN, i)) for i in range(TENANTS)]
        rules = {t["tenantId"]: at.create_rule(sb, t["name"], RULE) for t in tenants}
        proc, coll, ana = sb.processor(), sb.collector(), sb.analytics()
        for r in (proc, coll, ana):
            r.start()
        for r in (proc, coll, ana):
            r.wait_ready(60)
        load = Load(sb, tenants)
        load.start()
        try:
            F.check(wait_consuming(sb, ana), "the analytics role does not consume")
            cyc = kill_cycle(F, sb, ana, rnd)
            F.check(cyc["kills"] >= 20, "only %d SIGKILLs of the analytics role" % cyc["kills"])
            F.check(wait_consuming(sb, ana), "the last analytics incarnation does not consume")
            time.sleep(3)
        finally:
            stopped = load.stop()
        t_traffic = time.monotonic() - t0
        F.check(stopped, "a sender did not stop")
        F.check(not load.bad, "senders: %s" % load.bad[:5])
        log("traffic stopped after %.0f s: %d kills (%d right after start, %d while "
            "consuming), answers %s" % (t_traffic, cyc["kills"], cyc["quick"], cyc["consuming"],
                                        dict(load.answers)))
        res = check_results(F, sb, tenants, rules, load)
        inc = incarnations(ana)
        before_restore = sum(1 for x in inc if not x["restored"])
        before_assign = sum(1 for x in inc if x["restored"] and not x["assigned"])
        log("incarnations killed: %d before their state was restored, %d restored but not yet "
            "assigned, %d while consuming" % (before_restore, before_assign,
                                              len(inc) - before_restore - before_assign))
        restores = at.metric(sb, "eventops_analytics_state_restores_total")
        for r in (proc, coll, ana):
            F.check(r.running(), "%s is not running at the end" % r.name)
        code = ana.stop(timeout=30)
        F.check(code == 0, "the analytics role exited with %s after SIGTERM" % code)
        sb.check_clean_end(running=[proc, coll])
        broker = ("broker restarted once (down %.1f s + %.1f s to answer)" % cyc["broker"]
                  if cyc["broker"] else "broker NOT restarted")
        return sb.report(
            "analytics exactly once (%.0f s): %d SIGKILLs of the analytics role (%d before the "
            "state was restored, %d before partitions were assigned), %s; %d events of %d "
            "tenants, %d windows, %d summaries (%d firing) on the topic and in PostgreSQL "
            "exactly as expected, no duplicates (restores by the last incarnation: %s)" %
            (time.monotonic() - t0, cyc["kills"], before_restore, before_assign, broker,
             res["events"], TENANTS, res["windows"], res["summaries"], res["firing"], restores))


def on_alarm(*_):
    raise TimeoutError("test_analytics_exactly_once.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
