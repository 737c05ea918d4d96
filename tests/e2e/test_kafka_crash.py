#!/usr/bin/env python3
"""End-to-end: the processor and the collector keep working through crashes of the Kafka broker.

Issue 10 (the processor silently stops consuming after a broker crash):
  "Under steady load, SIGKILL of the local Kafka broker, broker down longer than the consumer
   session timeout, then restart: in 4 of 7 runs the processor never stored another event
   (librdkafka fenced its static-membership consumer, fatal error, the processor kept polling a
   dead consumer) while its GET /readyz said 200 {"status":"ready"} and the lag gauge
   eventops_kafka_consumer_lag showed ~3,700 while the real backlog was ~99,000."
  The fix: Kafka clients are rebuilt in-process after fatal errors; the processor's /readyz
  answers 503 while it cannot consume (broker unreachable, consumer unusable) or while it has a
  backlog and makes no progress for EVENTOPS_PROCESSOR_STALL_MS; the lag gauge is the broker's
  high watermarks minus the group's committed offsets, refreshed every
  EVENTOPS_KAFKA_LAG_INTERVAL_MS.

One sandbox (database, topics, group, ports), one tenant, one collector
(EVENTOPS_KAFKA_ACK_TIMEOUT_MS=3000) and one processor (EVENTOPS_KAFKA_SESSION_TIMEOUT_MS=6000,
EVENTOPS_PROCESSOR_STALL_MS=15000), never restarted. Four keep-alive senders post batches of 20
to POST /events/batch (~400 events/s in all); each batch is resent with the same messageIds
until it gets a 202 (503 + Retry-After is the answer while Kafka is away; any other 2xx or 5xx,
or a 503 without Retry-After, is a failure). A watcher polls both /readyz every 0.5 s.

  1. E2E_CRASHES (10) cycles: ~4 s of load; SIGKILL of the stack's broker; 9 s down (past the
     6 s session timeout); `scripts/stack.sh up` until it answers. Then, with bounded waits:
     (a) the collector and the processor are the same processes, alive;
     (b) within 60 s of the broker answering every event that got a 202 before the kill is
         stored, so is the first batch acknowledged after it answered (consumption resumed),
         and the stored count keeps growing;
     (c) the collector answers 202 again within 20 s of the broker answering;
     (d) while the broker was down (until it answered again) each role's /readyz answered
         503 at least once;
     (e) after recovery both /readyz answer 200.
     A processor that stores nothing must say so: its /readyz turns 503 within the stall time
     (+5 s). After such a stall (or a dead role) the remaining cycles are skipped.
  2. Load stopped: everything that got a 202 is stored; the set stored for the tenant equals
     the set acknowledged; no duplicates; the rollups equal COUNT(*) (eotest.check_storage).
  3. Lag gauge: idle, the processor's eventops_kafka_consumer_lag sums to 0 (within 10 s). Then
     the stack's PostgreSQL is stopped (pg_ctl stop -m immediate) and ~3000 events are sent (the
     collector has the write key cached): the processor's /readyz is 503 and, once sending
     stopped and the gauge had two refresh intervals, its gauge per partition and summed is
     within 1% of the real backlog: high watermark minus the group's committed offset (the low
     watermark when nothing was committed), read with confluent-kafka on a consumer of the
     group that never subscribes. PostgreSQL is restored; everything is stored, the lag is 0.

The broker and PostgreSQL are restored in a `finally`, and a detached watchdog runs
`scripts/stack.sh up` should this script be killed meanwhile. Waits are bounded; a cycle takes
about 35 s (the broker needs ~14 s to answer after `scripts/stack.sh up`), a run with 10 crashes
about 7 minutes. Environment: the stack's (scripts/stack.sh env) plus EVENTOPS_BIN;
EVENTOPS_STACK_DIR as for scripts/stack.sh; Debian's python3-confluent-kafka (scripts/deps.sh).
Development knobs: E2E_CRASHES (default 10), E2E_KEEP=1 (keep the log directory of a passing
run).
Exit code 0 = pass.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from eotest import (Watchdog, check_brokers_are_the_stacks,  # noqa: E402
                    kafka_answers, kafka_pid, pg_answers, pg_restore, pg_stop, ready_status,
                    stack_up)
from kafkatest import (BATCH, RUN, SENDERS, Backlog, Load, ReadyWatch, StoredIds,  # noqa: E402
                       alive, check_exact, lag_gauge, preflight, statuses)

CRASHES = int(os.environ.get("E2E_CRASHES", "10"))
KEEP = bool(os.environ.get("E2E_KEEP"))

ACK_TIMEOUT_MS = 3000
SESSION_TIMEOUT_MS = 6000
STALL_MS = 15000
LAG_INTERVAL_MS = 1000

LOAD_S = 4.0                  # load before each kill
DOWN_S = 9.0                  # broker down (longer than the session timeout)
FIRST_202_S = 20.0            # after the broker answers
CATCH_UP_S = 60.0             # after the broker answers
GROWTH_S = 10.0               # the stored count must grow within this
READY_AGAIN_S = 30.0          # after catching up
DRAIN_S = 90.0
PG_EVENTS = 3000
LAG_TOLERANCE = 0.01          # of the real backlog
LAG_RETRY_S = 10.0


# ---------------------------------------------------------------------------------------------
# The lag gauge against the real backlog

def compare_lag(gauge, real):
    """A list of differences between the gauge and the real backlog beyond the tolerance (per
    partition and summed); empty when they agree."""
    if gauge is None:
        return ["GET /metrics of the processor did not answer 200"]
    bad = []
    for p in sorted(set(real) | set(gauge)):
        r, g = real.get(p, 0), gauge.get(p)
        if g is None:
            if r:
                bad.append("partition %d: no series, real backlog %d" % (p, r))
        elif abs(g - r) > LAG_TOLERANCE * r:
            bad.append("partition %d: gauge %d, real %d" % (p, g, r))
    g_sum, r_sum = sum(gauge.values()), sum(real.values())
    if abs(g_sum - r_sum) > LAG_TOLERANCE * r_sum:
        bad.append("sum: gauge %d, real %d" % (g_sum, r_sum))
    return bad


# ---------------------------------------------------------------------------------------------
# The test

def crash_cycle(n, sb, F, load, watch, stored, coll, proc, pids):
    """One SIGKILL of the broker and the checks after it. Returns a dict of timings, with
    "stop" set when the remaining cycles cannot test anything (a role died or stalled)."""
    out = {"cycle": n, "stop": None}
    what = "cycle %d" % n
    time.sleep(LOAD_S)
    check_brokers_are_the_stacks()
    pid = kafka_pid()
    restored = False
    # restores the broker should this script be killed; later than our own `stack.sh up` can
    # take (it waits 90 s for Kafka at most), so that the two never run at once
    dog = Watchdog(DOWN_S + 100)
    try:
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        gone = eotest.wait_until(lambda: not alive(pid), 15, interval=0.05)
        F.check(gone, "%s: the broker (pid %d) still runs 15 s after SIGKILL" % (what, pid))
        log("%s: SIGKILL broker pid %d" % (what, pid))
        time.sleep(max(0.0, t_kill + DOWN_S - time.monotonic()))
        t_up = time.monotonic()
        stack_up()
        restored = bool(eotest.wait_until(kafka_answers, 60, interval=0.5))
        t_answer = time.monotonic()
    finally:
        if not restored:
            # interrupted, or the first `up` did not bring it back: once more, then the
            # watchdog stays to try again
            stack_up()
            restored = bool(eotest.wait_until(kafka_answers, 60, interval=0.5))
        if restored:
            dog.cancel()
    if not F.check(restored, "%s: the stack's Kafka does not answer after `scripts/stack.sh up`"
                   % what):
        out["stop"] = "Kafka did not come back"
        return out
    out["down_s"] = t_up - t_kill
    out["restart_s"] = t_answer - t_up
    log("%s: broker answers again (down %.1f s, `stack.sh up` + metadata %.1f s, pid %s)" %
        (what, out["down_s"], out["restart_s"], kafka_pid()))

    # (a) the same processes, alive
    for role, r in (("collector", coll), ("processor", proc)):
        if not F.check(r.running() and r.pid == pids[role] and alive(r.pid),
                       "%s: the %s (pid %d) is not running any more (exit code %s)" %
                       (what, role, pids[role], r.proc.returncode)):
            out["stop"] = "the %s exited" % role
    if out["stop"]:
        return out

    # (c) the collector answers 202 again
    first = [None]

    def got_202():
        first[0] = load.first_202(t_kill)
        return first[0]
    eotest.wait_until(got_202, t_answer + FIRST_202_S - time.monotonic(), interval=0.2)
    refused = [r for r in load.answers_between(t_kill, t_answer) if r.status != 202]
    if F.check(first[0] is not None, "%s: the collector answered no 202 within %.0f s of the "
               "broker answering (answers since the kill: %s)" %
               (what, FIRST_202_S, statuses(r.status for r in load.answers_between(
                   t_kill, time.monotonic())))):
        out["first_202_s"] = first[0].t_end - t_answer

    # (b) everything acknowledged before the kill is stored, storing resumed (the first batch
    # acknowledged after the broker answered is stored too) and goes on
    before = load.acked(before=t_kill)
    left = [before]
    resumed = [None]

    def caught_up():
        left[0] = stored.missing(left[0])
        if resumed[0] is None:
            resumed[0] = load.first_batch(after=t_answer)
        return not left[0] and resumed[0] is not None and not stored.missing(resumed[0])
    ok = eotest.wait_until(caught_up, t_answer + CATCH_UP_S - time.monotonic(), interval=0.5)
    if ok:
        out["catch_up_s"] = time.monotonic() - t_answer
        n0 = stored.count()
        ok = eotest.wait_until(lambda: stored.count() > n0, GROWTH_S, interval=0.5)
        F.check(ok, "%s: the stored count stays at %d for %.0f s after catching up, under load"
                % (what, n0, GROWTH_S))
    else:
        F.check(not left[0], "%s: %d of the %d events acknowledged before the kill are not "
                "stored %.0f s after the broker answers again (e.g. %s)" %
                (what, len(left[0]), len(before), CATCH_UP_S, sorted(left[0])[:3]))
        F.check(resumed[0] is not None and not stored.missing(resumed[0]),
                "%s: no event acknowledged after the broker came back is stored within %.0f s "
                "(stored count %d)" % (what, CATCH_UP_S, stored.count()))
    if not ok:
        stall_report(what, sb, F, stored, proc)
        out["stop"] = "the processor makes no progress"

    # (d) both /readyz said 503 while the broker was down
    t_end_down = t_answer
    p_down = watch.between("processor", t_kill, t_end_down)
    c_down = watch.between("collector", t_kill, t_end_down)
    F.check(503 in p_down, "%s: the processor's /readyz never answered 503 while the broker was "
            "down (%.1f s; answers %s)" % (what, t_end_down - t_kill, statuses(p_down)))
    F.check(503 in c_down, "%s: the collector's /readyz never answered 503 while the broker was "
            "down (%.1f s; answers %s)" % (what, t_end_down - t_kill, statuses(c_down)))
    out["readyz_down"] = {"processor": statuses(p_down), "collector": statuses(c_down)}

    # (e) both ready again
    if not out["stop"]:
        urls = watch.urls
        t0 = time.monotonic()
        ready = eotest.wait_until(lambda: all(ready_status(u, timeout=3) == 200
                                              for u in urls.values()), READY_AGAIN_S,
                                  interval=0.25)
        F.check(ready, "%s: /readyz not 200 again within %.0f s after recovery (processor %s, "
                "collector %s)" % (what, READY_AGAIN_S, ready_status(urls["processor"]),
                                   ready_status(urls["collector"])))
        out["ready_again_s"] = time.monotonic() - t0 if ready else None

    log("%s: down %.1f s; 503s while down/restarting %d; first 202 %s after the broker "
        "answered; processor caught up %s after it (%d events acknowledged before the kill); "
        "/readyz while down: processor %s, collector %s" %
        (what, out["down_s"], sum(1 for r in refused if r.status == 503),
         "%+.1f s" % out["first_202_s"] if "first_202_s" in out else "never",
         "%.1f s" % out["catch_up_s"] if "catch_up_s" in out else "never", len(before),
         out["readyz_down"]["processor"], out["readyz_down"]["collector"]))
    return out


def stall_report(what, sb, F, stored, proc):
    """The processor stores nothing: logs what it says about itself (/readyz, lag gauge, its log)
    against the truth, and checks that its /readyz turns 503 within the stall time."""
    proc_ready = "http://127.0.0.1:%d/readyz" % sb.processor_port
    n0 = stored.count()
    t0 = time.monotonic()
    seen = []

    def unready():
        st = ready_status(proc_ready, timeout=3)
        seen.append(st)
        return st == 503
    said_503 = eotest.wait_until(unready, STALL_MS / 1000.0 + 5, interval=0.5)
    n1 = stored.count()
    try:
        backlog = Backlog(sb)
        try:
            real = backlog()
        finally:
            backlog.close()
    except Exception as e:  # noqa: BLE001 - diagnostics only
        real = {"error": repr(e)}
    gauge = lag_gauge(sb)
    log("%s: STALL: stored count %d -> %d in %.0f s; processor /readyz answered %s; lag gauge "
        "%s (sum %s); real backlog %s (sum %s)" %
        (what, n0, n1, time.monotonic() - t0, statuses(seen), gauge,
         sum(gauge.values()) if gauge else None, real,
         sum(real.values()) if "error" not in real else None))
    # what the processor logged about it: its fatal Kafka errors, each message once
    seen_msgs, lines = set(), []
    for line in proc.grep(""):
        if "fatal" in line.lower() or "fenced" in line.lower():
            try:
                rec = json.loads(line)
                k = (rec.get("msg"), rec.get("error"))
            except ValueError:
                k = line
            if k not in seen_msgs:
                seen_msgs.add(k)
                lines.append(line)
    for line in lines[-6:]:
        log("%s: processor log: %s" % (what, line[:400]))
    if n1 == n0:
        F.check(said_503, "%s: the processor stores nothing (stored count stays %d) yet its "
                "/readyz answered %s for %.0f s (stall time %d ms): it must say 503" %
                (what, n0, statuses(seen), time.monotonic() - t0, STALL_MS))


def lag_phase(sb, F, key, stored, accepted_all, proc, drain_s):
    """Stops PostgreSQL, makes a stationary backlog and compares the processor's lag gauge with
    the real backlog; restores PostgreSQL, then checks that everything is stored (adding what
    was acknowledged to accepted_all) and the lag is back to 0. Returns a summary."""
    proc_ready = "http://127.0.0.1:%d/readyz" % sb.processor_port
    backlog = Backlog(sb)
    try:
        result = pg_outage(sb, F, key, accepted_all, backlog, proc_ready)
        if not pg_answers() or not proc.running():
            return result
        left = [accepted_all]

        def all_stored():
            left[0] = stored.missing(left[0])
            return not left[0]
        F.check(eotest.wait_until(all_stored, drain_s, interval=0.5),
                "%d acknowledged events are not stored %.0f s after PostgreSQL came back "
                "(e.g. %s)" % (len(left[0]), drain_s, sorted(left[0])[:3]))
        zero = [None]

        def lag_zero():
            zero[0] = lag_gauge(sb)
            return bool(zero[0]) and sum(zero[0].values()) == 0
        F.check(eotest.wait_until(lag_zero, 20, interval=0.5),
                "the processor's lag gauge is not 0 within 20 s after PostgreSQL came back and "
                "everything was stored: %s (real backlog %s)" % (zero[0], backlog()))
        F.check(eotest.wait_until(lambda: ready_status(proc_ready) == 200, 30),
                "the processor's /readyz is not 200 within 30 s after PostgreSQL came back")
        return result
    finally:
        backlog.close()


def pg_outage(sb, F, key, accepted_all, backlog, proc_ready):
    """The PostgreSQL part of lag_phase: down (always restored), ~PG_EVENTS events sent, the
    processor's /readyz 503, the gauge within LAG_TOLERANCE of the real backlog."""
    load = None
    result = "no stationary backlog"
    dog = Watchdog(180)  # restores PostgreSQL should this script be killed
    try:
        pg_stop()
        t_down = time.monotonic()
        log("postgres: stopped (pg_ctl stop -m immediate)")
        F.check(not pg_answers(), "PostgreSQL still answers after pg_ctl stop")
        load = Load(sb, key, "pg", max_batches=-(-PG_EVENTS // (BATCH * SENDERS))).start()
        F.check(eotest.wait_until(load.done, 60, interval=0.2),
                "sending %d events while PostgreSQL is down did not finish in 60 s" % PG_EVENTS)
        load.abort()
        t_sent = time.monotonic()
        acked = load.acked()
        accepted_all.update(acked)
        log("postgres down: %d events acknowledged in %.1f s" % (len(acked), t_sent - t_down))
        F.check(len(acked) >= PG_EVENTS, "only %d of %d events sent while PostgreSQL was down "
                "got a 202" % (len(acked), PG_EVENTS))
        F.check(not load.bad, "while PostgreSQL was down: %d bad answers, e.g. %s" %
                (len(load.bad), load.bad[:3]))
        seen = []

        def unready():
            seen.append(ready_status(proc_ready, timeout=3))
            return seen[-1] == 503
        F.check(eotest.wait_until(unready, 10, interval=0.5),
                "the processor's /readyz is not 503 while PostgreSQL is down (%s)" %
                statuses(seen))
        # the backlog is stationary now; the gauge gets two refresh intervals (3 s at least)
        time.sleep(max(0.0, t_sent + max(3.0, 2 * LAG_INTERVAL_MS / 1000.0) - time.monotonic()))
        last = {}

        def agrees():
            last["gauge"] = lag_gauge(sb)
            last["real"] = backlog()
            last["bad"] = compare_lag(last["gauge"], last["real"])
            return not last["bad"]
        ok = eotest.wait_until(agrees, LAG_RETRY_S, interval=0.5)
        real, gauge = last.get("real") or {}, last.get("gauge")
        F.check(sum(real.values()) >= len(acked), "the real backlog (%d) is smaller than the %d "
                "events sent while PostgreSQL was down" % (sum(real.values()), len(acked)))
        F.check(ok, "with PostgreSQL down and nothing sent, the processor's lag gauge differs "
                "from the real backlog (high watermark - committed offset) by more than %.0f%% "
                "for %.0f s: %s (gauge %s, real %s)" %
                (LAG_TOLERANCE * 100, LAG_RETRY_S, "; ".join(last.get("bad", ["no answer"])),
                 gauge, real))
        result = "stationary backlog %d, lag gauge %s" % (
            sum(real.values()), "none" if gauge is None else "%d" % sum(gauge.values()))
        log("lag with PostgreSQL down: real backlog %s, gauge %s" % (real, gauge))
        return result
    finally:
        if load is not None:
            load.abort()
        dog.cancel()
        t_restore = time.monotonic()
        F.check(pg_restore(), "PostgreSQL does not answer after `scripts/stack.sh up`")
        log("postgres: restarted and answering after %.1f s" % (time.monotonic() - t_restore))


def run(sb):
    F = sb.failures
    t = sb.create_tenant("kafka-crash-%s" % RUN)
    T, key = t["tenantId"], t["writeKey"]
    coll = sb.collector(extra_env={"EVENTOPS_KAFKA_ACK_TIMEOUT_MS": ACK_TIMEOUT_MS})
    proc = sb.processor(extra_env={"EVENTOPS_KAFKA_SESSION_TIMEOUT_MS": SESSION_TIMEOUT_MS,
                                   "EVENTOPS_PROCESSOR_STALL_MS": STALL_MS,
                                   "EVENTOPS_KAFKA_LAG_INTERVAL_MS": LAG_INTERVAL_MS,
                                   "EVENTOPS_PROCESSOR_RETRY_MAX_MS": 1000})
    coll.start()
    proc.start()
    coll.wait_ready(60)
    proc.wait_ready(60)
    pids = {"collector": coll.pid, "processor": proc.pid}
    stored = StoredIds(sb, T)
    watch = ReadyWatch({"processor": "http://127.0.0.1:%d/readyz" % sb.processor_port,
                        "collector": sb.url("/readyz")}).start()
    load = Load(sb, key, "kc").start()
    cycles = []
    accepted = set()
    lag_result = "lag not checked"
    try:
        # ---- 1. crash cycles under load ----
        for n in range(1, CRASHES + 1):
            c = crash_cycle(n, sb, F, load, watch, stored, coll, proc, pids)
            cycles.append(c)
            if c["stop"]:
                F.fail("crash cycles stopped after cycle %d of %d: %s" % (n, CRASHES, c["stop"]))
                break
        # ---- 2. load stopped: everything acknowledged is stored exactly once ----
        F.check(load.stop(), "the senders did not finish their last batches")
        accepted = load.acked()
        F.check(not load.bad, "%d bad answers from the collector, e.g. %s" %
                (len(load.bad), load.bad[:5]))
        F.check(not load.uncertain, "%d events ended without a proper 202" %
                len(load.uncertain))
        stalled = any(c["stop"] for c in cycles)
        left = [accepted]

        def all_stored():
            left[0] = stored.missing(left[0])
            return not left[0]
        t0 = time.monotonic()
        drained = eotest.wait_until(all_stored, 20 if stalled else DRAIN_S, interval=0.5)
        log("load stopped: %d events acknowledged, %d requests (%s); %s" %
            (len(accepted), len(load.answers), statuses(r.status for r in load.answers),
             "all stored after %.1f s" % (time.monotonic() - t0) if drained else
             "%d not stored" % len(left[0])))
        F.check(drained, "%d of %d acknowledged events are not stored %.0f s after the load "
                "stopped (e.g. %s)" % (len(left[0]), len(accepted),
                                       20 if stalled else DRAIN_S, sorted(left[0])[:3]))
        check_exact(sb, F, T, accepted, "after the crash cycles")

        # ---- 3. the lag gauge: 0 when idle ----
        zero = [None]

        def lag_zero():
            zero[0] = lag_gauge(sb)
            return bool(zero[0]) and sum(zero[0].values()) == 0
        F.check(eotest.wait_until(lag_zero, 10, interval=0.5),
                "idle, the processor's eventops_kafka_consumer_lag is not 0 within 10 s: %s" %
                (zero[0],))
        # ---- the lag gauge against the real backlog ----
        lag_result = lag_phase(sb, F, key, stored, accepted, proc, 20 if stalled else DRAIN_S)
        check_exact(sb, F, T, accepted, "at the end")
    finally:
        load.abort()
        watch.stop()
    sb.check_clean_end(running=[coll, proc])
    for r in (coll, proc):
        if r.running():
            rc = r.stop(30)
            F.check(rc == 0, "%s exit code on SIGTERM: %r (expected 0)" % (r.role, rc))

    def fmt(key_, c):
        return "%.1f" % c[key_] if c.get(key_) is not None else "-"
    return sb.report(
        "kafka crash: %d of %d cycles; per cycle down/first 202/catch-up (s): %s; %d events "
        "acknowledged; %s" %
        (len(cycles), CRASHES, " ".join("%s/%s/%s" % (fmt("down_s", c), fmt("first_202_s", c),
                                                      fmt("catch_up_s", c)) for c in cycles),
         len(accepted), lag_result))


def main():
    t_start = time.monotonic()
    why = preflight()
    if why:
        print("FAILED: " + why)
        return 1
    rc = 1
    try:
        with eotest.Sandbox("kafka_crash", keep_dir=KEEP) as sb:
            rc = run(sb)
    finally:
        # Whatever happened, the stack must answer for the tests after this one.
        if not (pg_answers() and kafka_answers()):
            log("stack not healthy: scripts/stack.sh up")
            stack_up()
    healthy = bool(eotest.wait_until(lambda: pg_answers() and kafka_answers(), 60, interval=1))
    print("kafka_crash: %s; stack healthy at the end: %s; total %.1fs" %
          ("PASSED" if rc == 0 else "FAILED", healthy, time.monotonic() - t_start))
    return 0 if rc == 0 and healthy else 1


if __name__ == "__main__":
    # SIGTERM (ctest's timeout, Ctrl-C in a wrapper) must still run the `finally` blocks that
    # restore the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    sys.exit(main())
