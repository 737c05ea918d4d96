#!/usr/bin/env python3
"""End-to-end: behaviour while the stack's PostgreSQL or Kafka is unavailable, and on SIGTERM.

Issue requirements checked:
  "PostgreSQL unavailable: consumption pauses and retries with backoff; nothing is skipped."
  "Kafka down, slow past the configured timeout, or queue full: 503 with Retry-After, and never
   a 2xx for an event that was not acknowledged."

Four parts, each on a sandbox of its own (database, topics, tenants, ports):

  A. PostgreSQL outage (collector + processor, EVENTOPS_PROCESSOR_RETRY_MAX_MS=500): events are
     stored; the stack's PostgreSQL is stopped (pg_ctl stop -m immediate). While it is down the
     collector keeps accepting (write keys are cached), the processor's /readyz turns 503 within
     a few seconds, its log shows the pause warning, its retries are spaced by a capped backoff
     and it stays alive; a valid write key the collector has not cached yet gets 503 with
     Retry-After (it cannot be checked), not a 401. PostgreSQL is restarted with
     `scripts/stack.sh up`; then every accepted event is stored exactly once, the rollups equal
     COUNT(*), /readyz is 200 again.
  B. Kafka down and slow (collectors with EVENTOPS_KAFKA_ACK_TIMEOUT_MS=1500 and a 1 s idle
     connection timeout, + processor): a collector whose broker address has nothing listening
     answers 503 + Retry-After (/readyz 503). Then the stack's broker is SIGSTOPped: sequential
     and parallel requests each get 503 + Retry-After + a JSON error within 10 s, never a 2xx
     (the parked requests outlive the idle timeout); /readyz says 503. After SIGCONT requests
     get 202 again; the 503'd batches are resent with the same messageIds and every messageId
     that got a 202 is stored exactly once.
  C. Producer queue full (EVENTOPS_KAFKA_QUEUE_MAX_MESSAGES=1000, ack timeout 3 s, broker
     SIGSTOPped): 4 batches of 1000 in parallel; none gets a 2xx, each gets 503 + Retry-After,
     at least one well before the ack timeout (the queue was full). After SIGCONT the batches are
     resent and stored exactly once.
  D. Graceful shutdown (EVENTOPS_SHUTDOWN_TIMEOUT_MS=3000, linger 200 ms, ack timeout 8 s)
     while 6 keep-alive clients stream batches and retry until 202: SIGTERM to the processor ->
     exit 0 within the timeout + slack, restart. SIGTERM to the collector, twice: with Kafka
     answering, and with Kafka SIGSTOPped (the requests in flight still wait for their ack when
     the shutdown timeout ends). Each time every request sent before the signal gets an answer
     (202 or 503), the exit code is 0 within the timeout + slack, no libmicrohttpd panic; then
     restart. In the end everything that got a 202 is stored exactly once.

Every part that disturbs the stack restores it in a `finally` (and a detached watchdog process
restores it too should this script be killed), then checks that it answers again. Waits are
bounded. Environment: the stack's (scripts/stack.sh env) plus EVENTOPS_BIN; EVENTOPS_STACK_DIR
as for scripts/stack.sh. Development knobs: E2E_PARTS (default "pg,kafka,queue,shutdown"),
E2E_KEEP=1 (keep the log directories of passing parts).
Exit code 0 = pass.
"""

import datetime as dt
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
# The stack's services and the storage check, shared with test_kafka_crash.py.
from eotest import (Watchdog, check_brokers_are_the_stacks, check_storage,  # noqa: E402
                    kafka_answers, kafka_pid, pg_answers, pg_restore, pg_stop, ready_status,
                    send, stack_up, stored_count)

RUN = eotest.rand_hex(6)
PARTS = os.environ.get("E2E_PARTS", "pg,kafka,queue,shutdown").split(",")
KEEP = bool(os.environ.get("E2E_KEEP"))  # keep the sandboxes' log directories
BAD_LOG = ("Sanitizer", "runtime error:", "Fatal error in GNU libmicrohttpd")


# ---------------------------------------------------------------------------------------------
# The stack's services (the others are in eotest)

class KafkaStopped:
    """Context manager: SIGSTOPs the stack's broker; on exit (always) SIGCONTs it and waits
    until it answers again. `restored` tells whether it did."""

    def __init__(self, F, max_s=60):
        self.F = F
        self.max_s = max_s
        self.restored = False

    def __enter__(self):
        check_brokers_are_the_stacks()
        self.pid = kafka_pid()
        self.dog = Watchdog(self.max_s, kafka_pid=self.pid)
        os.kill(self.pid, signal.SIGSTOP)
        self.t0 = time.monotonic()
        log("kafka: SIGSTOP broker pid %d" % self.pid)
        return self

    def __exit__(self, et, ev, tb):
        try:
            os.kill(self.pid, signal.SIGCONT)
        except OSError as e:
            log("kafka: SIGCONT failed: %r" % e)
        self.dog.cancel()
        self.stopped_s = time.monotonic() - self.t0
        log("kafka: SIGCONT after %.1f s; waiting for metadata" % self.stopped_s)
        self.restored = bool(eotest.wait_until(kafka_answers, 90, interval=0.5))
        if not self.restored:
            # Last resort: let the stack script sort it out (it waits for the broker).
            stack_up()
            self.restored = bool(eotest.wait_until(kafka_answers, 30, interval=0.5))
        self.F.check(self.restored, "the stack's Kafka does not answer (kcat -L) after SIGCONT")
        if self.restored:
            log("kafka: answers again %.1f s after SIGCONT" %
                (time.monotonic() - self.t0 - self.stopped_s))
        return False


# ---------------------------------------------------------------------------------------------
# Requests, storage checks

def make_batch(prefix, n, start=0):
    ids = ["%s-%s-%05d" % (prefix, RUN, start + i) for i in range(n)]
    events = [{"messageId": m, "eventType": "outage_test", "userId": "u-%d" % (i % 17),
               "properties": {"n": start + i, "pad": "p" * 40}} for i, m in enumerate(ids)]
    return ids, events


def error_code(body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


def check_503(F, r, what):
    """A 503 with a positive integer Retry-After and a JSON error body."""
    if not F.check(r.status == 503, "%s: expected 503, got %r" % (what, r)):
        return False
    ra = r.hdrs.get("retry-after", "")
    F.check(ra.isdigit() and int(ra) >= 1, "%s: 503 without a valid Retry-After (%r)" %
            (what, ra))
    F.check(isinstance(error_code(r.body), str) and error_code(r.body),
            "%s: 503 body is not a JSON error: %r" % (what, r.body))
    return True


def check_202(F, r, ids, what):
    if not F.check(r.status == 202 and isinstance(r.body, dict),
                   "%s: expected 202, got %r" % (what, r)):
        return False
    F.check(r.body.get("messageIds") == ids and r.body.get("accepted") == len(ids),
            "%s: 202 body does not list the %d messageIds sent: %r" %
            (what, len(ids), json.dumps(r.body)[:200]))
    return True


def send_until_202(url, ids, events, key, deadline, F, what):
    """Resends the same batch until it gets a 202 (503 and connection errors retried, honouring
    Retry-After up to 1 s). Returns True when accepted."""
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        r = send(url, events, key)
        if r.status == 202:
            return check_202(F, r, ids, what)
        if r.status == 503:
            check_503(F, r, "%s (retry %d)" % (what, tries))
            ra = r.hdrs.get("retry-after", "1")
            time.sleep(min(float(ra) if ra.isdigit() else 1.0, 1.0))
            continue
        if r.status == "ERR":
            time.sleep(0.3)
            continue
        F.fail("%s: unexpected answer %r" % (what, r))
        return False
    F.fail("%s: no 202 before the deadline (%d tries)" % (what, tries))
    return False


def wait_stored(sb, n_expected, timeout, settle=2.0):
    """Waits until event_ids holds at least n_expected rows and has not changed for `settle`
    seconds. Returns the last count."""
    state = {"n": -1, "since": time.monotonic()}

    def done():
        n = stored_count(sb)
        if n != state["n"]:
            state["n"], state["since"] = n, time.monotonic()
        return n >= n_expected and time.monotonic() - state["since"] >= settle

    eotest.wait_until(done, timeout, interval=0.3)
    return state["n"]


def stop_roles(F, roles, what, timeout=60):
    for r in roles:
        if not r.running():
            F.fail("%s: the %s is not running at the end (exit code %s)" %
                   (what, r.role, r.proc.returncode if r.proc else None))
            continue
        rc = r.stop(timeout)
        F.check(rc == 0, "%s: %s exit code on SIGTERM: %r (expected 0)" % (what, r.role, rc))


def check_logs(F, roles, what):
    for r in roles:
        bad = [l for l in r.grep("") if any(b in l for b in BAD_LOG)]
        F.check(not bad, "%s: %s log holds sanitizer reports or a libmicrohttpd panic: %s" %
                (what, r.role, bad[:5]))


def log_times(role, needle):
    """Monotonic-free wall times (datetime) of the JSON log lines containing needle."""
    out = []
    for l in role.grep(needle):
        try:
            ts = json.loads(l)["ts"]
            out.append(dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ"))
        except (ValueError, KeyError):
            continue
    return out


# ---------------------------------------------------------------------------------------------
# A. PostgreSQL outage

PG_RETRY_MAX_MS = 500
PG_OUTAGE_S = 8.0


def part_pg():
    env = {"EVENTOPS_PROCESSOR_RETRY_MAX_MS": str(PG_RETRY_MAX_MS),
           "EVENTOPS_PROCESSOR_BATCH_MAX": "200",
           # The collector loads the write keys at start and not again during this part, so a
           # key created afterwards is one it has not cached.
           "EVENTOPS_WRITE_KEY_REFRESH_MS": "3600000"}
    with eotest.Sandbox("outage_pg", extra_env=env, keep_dir=KEEP) as sb:
        F = sb.failures
        ta = sb.create_tenant("pg-a-%s" % RUN)
        coll, proc = sb.collector(), sb.processor()
        coll.start()
        proc.start()
        coll.wait_ready(60)
        proc.wait_ready(60)
        tb = sb.create_tenant("pg-b-%s" % RUN)  # not in the collector's cache
        url = sb.url("/events/batch")
        proc_ready_url = "http://127.0.0.1:%d/readyz" % sb.processor_port
        proc_health_url = "http://127.0.0.1:%d/healthz" % sb.processor_port
        accepted, sent = defaultdict(set), defaultdict(set)
        A = ta["tenantId"]

        for k in range(5):
            ids, evs = make_batch("pg1-%d" % k, 100)
            sent[A].update(ids)
            if check_202(F, send(url, evs, ta["writeKey"]), ids, "before the outage"):
                accepted[A].update(ids)
        n = wait_stored(sb, len(accepted[A]), 60, settle=0.5)
        F.check(n == len(accepted[A]), "before the outage: %d stored, %d accepted" %
                (n, len(accepted[A])))

        during = []              # Sent of the requests made while PostgreSQL is down
        t_unready = None
        new_key = None
        proc_died = False
        restored = False
        pauses, outage_s = [], 0.0
        dog = Watchdog(120)
        try:
            pg_stop()
            t_down = time.monotonic()
            wall_down = dt.datetime.utcnow()
            log("postgres: stopped (pg_ctl stop -m immediate)")
            F.check(not pg_answers(), "PostgreSQL still answers after pg_ctl stop")

            stop_sending = threading.Event()

            def sender():
                k = 0
                while not stop_sending.is_set():
                    ids, evs = make_batch("pg2-%d" % k, 50)
                    k += 1
                    sent[A].update(ids)
                    r = send(url, evs, ta["writeKey"])
                    during.append(r)
                    if r.status == 202:
                        check_202(F, r, ids, "during the outage")
                        accepted[A].update(ids)
                    stop_sending.wait(0.2)

            th = threading.Thread(target=sender, name="sender")
            th.start()
            try:
                while time.monotonic() - t_down < PG_OUTAGE_S:
                    st = ready_status(proc_ready_url)
                    if st == 503 and t_unready is None:
                        t_unready = time.monotonic() - t_down
                        log("processor /readyz 503 %.1f s after PostgreSQL stopped" % t_unready)
                        F.check(ready_status(proc_health_url) == 200,
                                "processor /healthz does not answer 200 while PostgreSQL is down")
                    if not proc.running():
                        proc_died = True
                        break
                    if new_key is None and time.monotonic() - t_down > 2:
                        ids, evs = make_batch("pgb", 3)
                        sent[tb["tenantId"]].update(ids)
                        new_key = send(url, evs, tb["writeKey"])
                        log("uncached write key while PostgreSQL is down: %r" % new_key)
                        if new_key.status == 202:
                            accepted[tb["tenantId"]].update(ids)
                    time.sleep(0.2)
            finally:
                stop_sending.set()
                th.join(60)
            pauses = [t for t in log_times(proc, "pausing consumption") if t >= wall_down]
            outage_s = time.monotonic() - t_down
        finally:
            dog.cancel()
            t_restore = time.monotonic()
            restored = pg_restore()
            F.check(restored, "PostgreSQL does not answer after `scripts/stack.sh up`")
            log("postgres: restarted and answering after %.1f s" % (time.monotonic() - t_restore))

        # ---- while it was down ----
        n_acc = sum(1 for r in during if r.status == 202)
        bad = [r for r in during if r.status != 202]
        F.check(during and not bad, "the collector did not accept every request while "
                "PostgreSQL was down (write keys are cached): %d of %d not 202, e.g. %s" %
                (len(bad), len(during), bad[:3]))
        F.check(not proc_died, "the processor exited while PostgreSQL was down (code %s)" %
                (proc.proc.returncode,))
        F.check(t_unready is not None and t_unready <= 5,
                "processor /readyz did not turn 503 within 5 s of PostgreSQL stopping "
                "(%s)" % (t_unready if t_unready is None else "%.1f s" % t_unready))
        F.check(len(pauses) >= 3, "processor log shows %d 'postgres unavailable; pausing "
                "consumption' warnings during a %.0f s outage (expected repeated retries)" %
                (len(pauses), outage_s))
        gaps = [(b - a).total_seconds() for a, b in zip(pauses, pauses[1:])]
        max_expected = outage_s / (PG_RETRY_MAX_MS / 1000.0) + 12
        F.check(len(pauses) <= max_expected, "processor retried %d times in %.0f s: no backoff "
                "(cap %d ms)" % (len(pauses), outage_s, PG_RETRY_MAX_MS))
        F.check(not gaps or max(gaps) <= PG_RETRY_MAX_MS / 1000.0 + 2.0,
                "processor retry gaps up to %.1f s, past the %d ms backoff cap" %
                (max(gaps or [0]), PG_RETRY_MAX_MS))
        log("outage %.1f s: %d requests, %d accepted; %d pause warnings, gaps %.2f..%.2f s" %
            (outage_s, len(during), n_acc, len(pauses), min(gaps or [0]), max(gaps or [0])))
        if new_key is not None:
            F.check(new_key.status == 503 and error_code(new_key.body) == "credentials_unavailable"
                    and new_key.hdrs.get("retry-after"),
                    "a valid write key the collector had not cached yet, used while PostgreSQL "
                    "was down, got %r; expected 503 credentials_unavailable with Retry-After "
                    "(the key cannot be checked; a 401 tells the client to drop its events)" %
                    (new_key,))
        else:
            F.fail("the uncached-key request was not made")

        if restored and proc.running():
            for k in range(3):
                ids, evs = make_batch("pg3-%d" % k, 100)
                sent[A].update(ids)
                if send_until_202(url, ids, evs, ta["writeKey"], time.monotonic() + 30, F,
                                  "after the outage"):
                    accepted[A].update(ids)
            ids, evs = make_batch("pgb2", 3)
            B = tb["tenantId"]
            sent[B].update(ids)
            r = send(url, evs, tb["writeKey"])
            if check_202(F, r, ids, "the new write key after the outage"):
                accepted[B].update(ids)
            n_expected = sum(len(s) for s in accepted.values())
            t0 = time.monotonic()
            n = wait_stored(sb, n_expected, 90)
            log("stored %d of %d accepted, %.1f s after PostgreSQL came back" %
                (n, n_expected, time.monotonic() - t_restore))
            check_storage(sb, F, accepted, sent, "PostgreSQL outage")
            F.check(eotest.wait_until(lambda: ready_status(proc_ready_url) == 200, 20),
                    "processor /readyz not 200 within 20 s after PostgreSQL came back (%.1f s "
                    "after storing)" % (time.monotonic() - t0))
        stop_roles(F, [coll, proc], "PostgreSQL outage")
        check_logs(F, [coll, proc], "PostgreSQL outage")
        return sb.report("part A (PostgreSQL outage): %d events accepted, %d during the outage"
                         % (sum(len(s) for s in accepted.values()), n_acc * 50))


# ---------------------------------------------------------------------------------------------
# B. Kafka slow (broker SIGSTOPped)

ACK_TIMEOUT_MS = 1500
ANSWER_BOUND_S = 10.0


def part_kafka():
    env = {"EVENTOPS_KAFKA_ACK_TIMEOUT_MS": str(ACK_TIMEOUT_MS),
           # Suspended requests wait on Kafka longer than this idle timeout; they must still
           # get their answer.
           "EVENTOPS_HTTP_CONNECTION_TIMEOUT_S": "1"}
    with eotest.Sandbox("outage_kafka", extra_env=env, keep_dir=KEEP) as sb:
        F = sb.failures
        t = sb.create_tenant("kafka-%s" % RUN)
        T, key = t["tenantId"], t["writeKey"]
        coll, proc = sb.collector(), sb.processor()
        coll.start()
        proc.start()
        coll.wait_ready(60)
        proc.wait_ready(60)
        url = sb.url("/events/batch")
        accepted, sent = defaultdict(set), defaultdict(set)
        for k in range(2):
            ids, evs = make_batch("kb0-%d" % k, 20)
            sent[T].update(ids)
            if check_202(F, send(url, evs, key), ids, "before the stall"):
                accepted[T].update(ids)

        # -- Kafka down: a second collector pointed at a port nobody listens on --
        down_port = eotest.free_port()
        env_down = dict(sb.env, EVENTOPS_KAFKA_BROKERS="127.0.0.1:%d" % down_port,
                        EVENTOPS_COLLECTOR_PORT=str(eotest.free_port()))
        cdown = eotest.Role(sb.bin, "collector", env_down,
                            os.path.join(sb.dir, "collector-kafka-down.log"), [])
        sb.roles.append(cdown)
        cdown.start()
        down_url = "http://127.0.0.1:%s" % env_down["EVENTOPS_COLLECTOR_PORT"]
        F.check(eotest.wait_until(lambda: ready_status(down_url + "/healthz") == 200, 30),
                "collector with Kafka down: /healthz does not answer within 30 s")
        F.check(ready_status(down_url + "/readyz", timeout=8) == 503,
                "collector with Kafka down: /readyz is not 503")
        for k in range(2):
            ids, evs = make_batch("kdown-%d" % k, 10)
            r = send(down_url + "/events/batch", evs, key, timeout=30)
            what = "request with Kafka down"
            F.check(not (isinstance(r.status, int) and 200 <= r.status < 300),
                    "%s got %r: a 2xx for events Kafka never acknowledged" % (what, r))
            check_503(F, r, what)
            F.check(r.elapsed <= ANSWER_BOUND_S, "%s took %.1f s (ack timeout %d ms)" %
                    (what, r.elapsed, ACK_TIMEOUT_MS))
            log("Kafka down (nothing on :%d): %r" % (down_port, r))
        stop_roles(F, [cdown], "Kafka down")

        refused = []  # (ids, events) that got no 202 while stopped
        answers = []
        readyz = []
        health, stall_s = None, 0.0
        with KafkaStopped(F) as ks:
            # parallel requests, and the collector's /readyz meanwhile
            batches = [make_batch("kb1-%d" % k, 20) for k in range(4)]
            res = [None] * len(batches)

            def one(i):
                res[i] = send(url, batches[i][1], key, timeout=30)

            ths = [threading.Thread(target=one, args=(i,)) for i in range(len(batches))]
            for i, (ids, _) in enumerate(batches):
                sent[T].update(ids)
            for th in ths:
                th.start()
            time.sleep(0.3)
            readyz.append(ready_status(sb.url("/readyz"), timeout=8))
            health = ready_status(sb.url("/healthz"), timeout=5)
            for th in ths:
                th.join(40)
            answers += list(zip(batches, res))
            # sequential requests
            for k in range(2):
                ids, evs = make_batch("kb2-%d" % k, 20)
                sent[T].update(ids)
                answers.append(((ids, evs), send(url, evs, key, timeout=30)))
            stall_s = time.monotonic() - ks.t0
        F.check(health == 200, "collector /healthz answered %r while Kafka was stopped" % health)
        F.check(readyz == [503], "collector /readyz answered %r while Kafka was stopped "
                "(expected 503)" % readyz)
        for (ids, evs), r in answers:
            what = "request while Kafka was stopped"
            if r is None:
                F.fail("%s: no result" % what)
                continue
            F.check(r.status != 202 and not (isinstance(r.status, int) and 200 <= r.status < 300),
                    "%s got %r: a 2xx for events Kafka never acknowledged" % (what, r))
            check_503(F, r, what)
            F.check(r.elapsed <= ANSWER_BOUND_S, "%s took %.1f s (ack timeout %d ms, bound %.0f s)"
                    % (what, r.elapsed, ACK_TIMEOUT_MS, ANSWER_BOUND_S))
            if r.status != 202:
                refused.append((ids, evs))
        log("stall %.1f s: answers %s" % (stall_s, [(r.status, round(r.elapsed, 2))
                                                     for _, r in answers if r]))

        if ks.restored:
            ids, evs = make_batch("kb3", 20)
            sent[T].update(ids)
            t0 = time.monotonic()
            if send_until_202(url, ids, evs, key, t0 + 30, F, "first request after SIGCONT"):
                accepted[T].update(ids)
                log("202 again %.1f s after SIGCONT" % (time.monotonic() - t0))
            for ids, evs in refused:
                if send_until_202(url, ids, evs, key, time.monotonic() + 30, F,
                                  "resending a 503'd batch"):
                    accepted[T].update(ids)
            F.check(proc.running(), "the processor exited after the Kafka stall (code %s)" %
                    (proc.proc.returncode,))
            if proc.running():
                n = wait_stored(sb, len(accepted[T]), 90)
                log("stored %d, accepted %d" % (n, len(accepted[T])))
                check_storage(sb, F, accepted, sent, "Kafka stall")
        stop_roles(F, [coll, proc], "Kafka stall")
        check_logs(F, [coll, proc, cdown], "Kafka stall")
        return sb.report("part B (Kafka stopped %.1f s): %d requests answered 503, %d events "
                         "accepted in the end" % (stall_s, len(refused), len(accepted[T])))


# ---------------------------------------------------------------------------------------------
# C. Producer queue full

QUEUE_MAX = 1000
QUEUE_ACK_TIMEOUT_MS = 3000


def part_queue():
    env = {"EVENTOPS_KAFKA_QUEUE_MAX_MESSAGES": str(QUEUE_MAX),
           "EVENTOPS_KAFKA_ACK_TIMEOUT_MS": str(QUEUE_ACK_TIMEOUT_MS)}
    with eotest.Sandbox("outage_queue", extra_env=env, keep_dir=KEEP) as sb:
        F = sb.failures
        t = sb.create_tenant("queue-%s" % RUN)
        T, key = t["tenantId"], t["writeKey"]
        coll, proc = sb.collector(), sb.processor()
        coll.start()
        proc.start()
        coll.wait_ready(60)
        proc.wait_ready(60)
        url = sb.url("/events/batch")
        accepted, sent = defaultdict(set), defaultdict(set)
        ids, evs = make_batch("q0", 10)
        sent[T].update(ids)
        if check_202(F, send(url, evs, key), ids, "before the stall"):
            accepted[T].update(ids)

        batches = [make_batch("q1-%d" % k, QUEUE_MAX) for k in range(4)]
        for ids, _ in batches:
            sent[T].update(ids)
        res = [None] * len(batches)
        with KafkaStopped(F):
            go = threading.Barrier(len(batches))

            def one(i):
                go.wait(10)
                res[i] = send(url, batches[i][1], key, timeout=30)

            ths = [threading.Thread(target=one, args=(i,)) for i in range(len(batches))]
            for th in ths:
                th.start()
            for th in ths:
                th.join(40)
        for i, r in enumerate(res):
            what = "batch %d of %d events while Kafka was stopped" % (i, QUEUE_MAX)
            if not F.check(r is not None, "%s: no result" % what):
                continue
            F.check(not (isinstance(r.status, int) and 200 <= r.status < 300),
                    "%s got %r: a 2xx for events Kafka never acknowledged" % (what, r))
            check_503(F, r, what)
            F.check(r.elapsed <= ANSWER_BOUND_S, "%s took %.1f s" % (what, r.elapsed))
        quick = [r for r in res if r and r.status == 503 and
                 r.elapsed < QUEUE_ACK_TIMEOUT_MS / 1000.0 / 2]
        F.check(quick, "no batch got its 503 before half the ack timeout (%d ms): the full "
                "queue was not reported at once (answers %s)" % (QUEUE_ACK_TIMEOUT_MS, res))
        log("queue full: answers %s" % [(r.status, round(r.elapsed, 2)) for r in res if r])

        for i, (ids, evs) in enumerate(batches):
            if send_until_202(url, ids, evs, key, time.monotonic() + 40, F,
                              "resending batch %d" % i):
                accepted[T].update(ids)
        if proc.running():
            n = wait_stored(sb, len(accepted[T]), 90)
            log("stored %d, accepted %d" % (n, len(accepted[T])))
            check_storage(sb, F, accepted, sent, "queue full")
        stop_roles(F, [coll, proc], "queue full")
        check_logs(F, [coll, proc], "queue full")
        return sb.report("part C (queue full): answers %s; %d events accepted in the end" %
                         ([(r.status, round(r.elapsed, 2)) for r in res if r],
                          len(accepted[T])))


# ---------------------------------------------------------------------------------------------
# D. Graceful shutdown

SHUTDOWN_TIMEOUT_MS = 3000
SHUTDOWN_SLACK_S = 7.0
SD_ACK_TIMEOUT_MS = 8000  # longer than the shutdown timeout
N_CLIENTS = 6


class StreamClient:
    """Sends batches of 20 over one keep-alive connection, each until it gets a 202 (a 503 is
    retried at once with the same messageIds, as the next of many clients would send; connection
    errors after 0.1 s). Records every attempt; busy_since is the start of the request on the
    wire now (None between requests)."""

    def __init__(self, idx, sb, key, stop):
        self.idx, self.sb, self.key, self.stop = idx, sb, key, stop
        self.accepted, self.sent = set(), set()
        self.attempts = []   # Sent
        self.gave_up = []
        self.busy_since = None

    def run(self):
        conn = None
        k = 0
        while not self.stop.is_set():
            ids, evs = make_batch("sd-c%d-%d" % (self.idx, k), 20)
            k += 1
            self.sent.update(ids)
            deadline = time.monotonic() + 60
            while True:
                if time.monotonic() > deadline:
                    self.gave_up.append(ids[0])
                    break
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.sb.collector_port,
                                                      timeout=30)
                self.busy_since = time.monotonic()
                r = send(self.sb.url("/events/batch"), evs, self.key, conn=conn)
                self.busy_since = None
                self.attempts.append(r)
                if r.status == 202:
                    if isinstance(r.body, dict) and r.body.get("messageIds") == ids:
                        self.accepted.update(ids)
                    break
                if r.status == "ERR":
                    conn = None
                    time.sleep(0.1)
        if conn is not None:
            conn.close()


def part_shutdown():
    env = {"EVENTOPS_SHUTDOWN_TIMEOUT_MS": str(SHUTDOWN_TIMEOUT_MS),
           "EVENTOPS_KAFKA_ACK_TIMEOUT_MS": str(SD_ACK_TIMEOUT_MS),
           "EVENTOPS_KAFKA_LINGER_US": "200000"}
    with eotest.Sandbox("outage_shutdown", extra_env=env, keep_dir=KEEP) as sb:
        F = sb.failures
        t = sb.create_tenant("shutdown-%s" % RUN)
        T = t["tenantId"]
        coll, proc = sb.collector(), sb.processor()
        coll.start()
        proc.start()
        coll.wait_ready(60)
        proc.wait_ready(60)
        stop = threading.Event()
        clients = [StreamClient(i, sb, t["writeKey"], stop) for i in range(N_CLIENTS)]
        ths = [threading.Thread(target=c.run, name="client%d" % c.idx) for c in clients]
        bound = SHUTDOWN_TIMEOUT_MS / 1000.0 + SHUTDOWN_SLACK_S
        terms = []  # (label, monotonic times of the collector's SIGTERM and exit)

        def wait_inflight(min_age, max_age, timeout=5):
            """Waits until some client's request has been on the wire for min_age..max_age s."""
            def probe():
                now = time.monotonic()
                return any(c.busy_since is not None and min_age <= now - c.busy_since <= max_age
                           for c in clients)
            return eotest.wait_until(probe, timeout, interval=0.005)

        def term_collector(label):
            t_term = time.monotonic()
            rc = coll.stop(bound + 20)
            took = time.monotonic() - t_term
            terms.append((label, t_term, t_term + took))
            log("collector (%s): SIGTERM -> exit %s after %.2f s" % (label, rc, took))
            F.check(rc == 0, "collector exit code on SIGTERM with requests in flight (%s): %r "
                    "(expected 0)" % (label, rc))
            F.check(took <= bound, "collector took %.1f s to exit on SIGTERM (%s; shutdown "
                    "timeout %d ms + %.0f s slack)" % (took, label, SHUTDOWN_TIMEOUT_MS,
                                                       SHUTDOWN_SLACK_S))
            panic = coll.grep("Fatal error in GNU libmicrohttpd")
            F.check(len(panic) <= term_collector.panics, "collector aborted on SIGTERM (%s): "
                    "%s" % (label, panic[-1:]))
            term_collector.panics = len(panic)
            return took

        term_collector.panics = 0
        try:
            for th in ths:
                th.start()
            time.sleep(2.0)

            # -- D1: processor --
            t0 = time.monotonic()
            rc_p = proc.stop(bound + 20)
            took_p = time.monotonic() - t0
            log("processor: SIGTERM -> exit %s after %.2f s" % (rc_p, took_p))
            F.check(rc_p == 0, "processor exit code on SIGTERM while events stream in: %r" %
                    rc_p)
            F.check(took_p <= bound, "processor took %.1f s to exit on SIGTERM (shutdown "
                    "timeout %d ms + %.0f s slack)" % (took_p, SHUTDOWN_TIMEOUT_MS,
                                                       SHUTDOWN_SLACK_S))
            F.check(proc.grep("processor stopped"), "processor log has no 'processor stopped'")
            proc.start()
            proc.wait_ready(60)
            time.sleep(1.0)

            # -- D2: collector, Kafka answering (requests wait ~200 ms for the linger) --
            F.check(wait_inflight(0.06, 0.15), "no request in flight to time the SIGTERM by")
            term_collector("Kafka up")
            coll.start()
            coll.wait_ready(60)
            time.sleep(1.0)

            # -- D3: collector, Kafka stopped: the requests in flight still wait for their
            # acknowledgement (8 s ack timeout) when the shutdown timeout (3 s) ends; the
            # collector must give up on them (503: the events are not durable) and exit 0, while
            # the clients keep sending --
            with KafkaStopped(F):
                time.sleep(0.5)
                F.check(wait_inflight(0.3, 4.0), "no request in flight while Kafka is stopped")
                term_collector("Kafka stopped")
            coll.start()
            coll.wait_ready(60)
            time.sleep(1.0)
        finally:
            stop.set()
            for th in ths:
                th.join(90)

        # Requests sent (at least 50 ms) before a SIGTERM and not finished by then were in
        # flight: each must have had an answer.
        n_inflight = 0
        for label, t_term, t_exit in terms:
            inflight = [(c.idx, r) for c in clients for r in c.attempts
                        if r.t_send < t_term - 0.05 and r.t_end > t_term]
            n_inflight += len(inflight)
            lost = [(i, r) for i, r in inflight if r.status not in (202, 503)]
            F.check(inflight, "%s: no request was in flight when the collector got SIGTERM" %
                    label)
            F.check(not lost, "%s: %d of %d requests in flight at the collector's SIGTERM got "
                    "no answer: %s" % (label, len(lost), len(inflight), lost[:3]))
            after = [r for c in clients for r in c.attempts if t_term <= r.t_send < t_exit]
            log("collector SIGTERM (%s): %d requests in flight -> %s; sent before its exit: %s" %
                (label, len(inflight), dict(Counter(r.status for _, r in inflight)),
                 dict(Counter(r.status if r.status != "ERR" else r.error.split(": ")[1]
                              for r in after))))
        gave_up = [g for c in clients for g in c.gave_up]
        F.check(not gave_up, "%d batches never got a 202 within 60 s: %s" % (len(gave_up),
                                                                           gave_up[:3]))
        accepted = {T: set().union(*(c.accepted for c in clients))}
        sent = {T: set().union(*(c.sent for c in clients))}
        n = wait_stored(sb, len(accepted[T]), 90)
        log("stored %d, accepted %d" % (n, len(accepted[T])))
        check_storage(sb, F, accepted, sent, "graceful shutdown")
        stop_roles(F, [coll, proc], "graceful shutdown")
        bad = [l for r in (coll, proc) for l in r.grep("")
               if "Sanitizer" in l or "runtime error:" in l]
        F.check(not bad, "graceful shutdown: sanitizer reports: %s" % bad[:5])
        return sb.report("part D (graceful shutdown): %d events accepted; %d requests in "
                         "flight at the collector's SIGTERMs" % (len(accepted[T]), n_inflight))


# ---------------------------------------------------------------------------------------------

def main():
    t_start = time.monotonic()
    for name in ("EVENTOPS_PG_DSN", "EVENTOPS_KAFKA_BROKERS"):
        eotest.env_required(name)
    if not (pg_answers() and kafka_answers()):
        print("FAILED: the stack does not answer before the test (scripts/stack.sh up)")
        return 1
    parts = {"pg": part_pg, "kafka": part_kafka, "queue": part_queue,
             "shutdown": part_shutdown}
    results = []
    for name in PARTS:
        t0 = time.monotonic()
        log("===== part %s =====" % name)
        try:
            rc = parts[name]()
        except Exception as e:  # noqa: BLE001 - a crashed part fails, the others still run
            import traceback
            traceback.print_exc()
            print("FAILED: part %s crashed: %r" % (name, e))
            rc = 1
        results.append((name, rc, time.monotonic() - t0))
        # Whatever happened, the stack must answer for the next part and the next test.
        if not (pg_answers() and kafka_answers()):
            log("stack not healthy after part %s: scripts/stack.sh up" % name)
            stack_up()
    healthy = bool(eotest.wait_until(lambda: pg_answers() and kafka_answers(), 60, interval=1))
    print("outages: %s; stack healthy at the end: %s; total %.1fs" % (
        ", ".join("%s %s (%.1fs)" % (n, "PASSED" if rc == 0 else "FAILED", s)
                  for n, rc, s in results), healthy, time.monotonic() - t_start))
    ok = healthy and all(rc == 0 for _, rc, _ in results)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    # SIGTERM (ctest's timeout, Ctrl-C in a wrapper) must still run the `finally` blocks that
    # restore the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    sys.exit(main())
