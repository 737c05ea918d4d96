#!/usr/bin/env python3
"""End-to-end: Kafka clients that librdkafka makes unusable are rebuilt in the process, with
nothing lost or doubled.

Issue 10: "Every fatal librdkafka error, in every role (the processor's consumer and
transactional producer, the collector's idempotent producer), is detected and handled: the
client is rebuilt in-process (abort what is in flight, rewind to the committed offsets,
rejoin), with the exactly-once guarantee intact; a role exits only when it cannot rebuild."

A fatal error cannot be provoked at will through a healthy broker, except one: fencing. So:

  A. Fault injection (the test build, -DEO_FAULT_INJECTION, src/core/fault.h): under a steady
     load (4 keep-alive senders, batches of 20 resent with the same messageIds until 202), a
     fabricated fatal error (rd_kafka_test_fatal_error) is put into the processor's consumer,
     the processor's transactional producer and the collector's idempotent producer, each
     twice, in turn. After each: the fault was taken, the client's
     eventops_kafka_client_rebuilds_total grew by exactly one, the log says it was rebuilt,
     the same process still runs, and events acknowledged after the fault are stored (within
     60 s). A 503 with Retry-After is the only refusal allowed (the records of a collector
     producer that failed are answered 503 and resent).
  B. Real fencing: a producer of this test's own (confluent-kafka) calls init_transactions with
     the processor's transactional.id (eventops-<EVENTOPS_PROCESSOR_ID>): the broker fences the
     processor's producer. The processor rebuilds it (its own init_transactions fences the
     intruder in turn) and goes on storing.
  C. Load stopped: every acknowledged event is stored, exactly once, rollups exact
     (kafkatest.check_exact); both /readyz are 200; SIGTERM exits 0; no sanitizer report.

Environment: the stack's (scripts/stack.sh env) plus EVENTOPS_BIN, which must be a
fault-injection build (`make build-test`). E2E_KEEP=1 keeps the log directory of a passing run.
Exit code 0 = pass.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log, ready_status  # noqa: E402
from kafkatest import (RUN, Load, StoredIds, alive, check_exact, confluent_kafka,  # noqa: E402
                       preflight, statuses)
from querytest import fetch_metrics, metric_sum  # noqa: E402

KEEP = bool(os.environ.get("E2E_KEEP"))
TAKEN_S = 10.0     # a fault file is taken by the role's loop within this
REBUILT_S = 30.0   # the rebuild counter moves within this
STORED_S = 60.0    # events acknowledged after a fault are stored within this
ROUNDS = 2

# (fault file, the role whose metrics count it, the client label)
FAULTS = [("processor-consumer-fatal", "processor", "consumer"),
          ("processor-producer-fatal", "processor", "producer"),
          ("collector-producer-fatal", "collector", "producer")]


def rebuilds(port, role, client):
    """eventops_kafka_client_rebuilds_total{role, client} of the role on port (None: no
    answer)."""
    try:
        st, samples = fetch_metrics(port)
    except eotest.HttpError:
        return None
    if st != 200:
        return None
    return metric_sum(samples, "eventops_kafka_client_rebuilds_total", role=role,
                      client=client) or 0


def wait_stored_after(F, load, stored, t, what):
    """Waits until a batch acknowledged after the monotonic time t exists and is stored."""
    batch = [None]

    def done():
        if batch[0] is None:
            batch[0] = load.first_batch(after=t)
        return batch[0] is not None and not stored.missing(batch[0])
    t0 = time.monotonic()
    ok = eotest.wait_until(done, STORED_S, interval=0.25)
    F.check(ok, "%s: no event acknowledged after it is stored within %.0f s (batch %s)" %
            (what, STORED_S, batch[0][0] if batch[0] else "none acknowledged"))
    return time.monotonic() - t0 if ok else None


def inject(F, sb, fault_dir, name, role_name, client, roles, pids, load, stored):
    """Part A, one fault. Returns (seconds to rebuild, seconds to a stored event after it)."""
    what = "%s" % name
    port = sb.processor_port if role_name == "processor" else sb.collector_port
    before = rebuilds(port, role_name, client)
    path = os.path.join(fault_dir, name)
    t0 = time.monotonic()
    with open(path, "w"):
        pass
    taken = eotest.wait_until(lambda: not os.path.exists(path), TAKEN_S, interval=0.05)
    if not F.check(taken, "%s: the fault file was not taken within %.0f s: EVENTOPS_BIN is not "
                   "a fault-injection build (make build-test)" % (what, TAKEN_S)):
        os.unlink(path)
        return None, None
    got = [None]

    def rebuilt():
        got[0] = rebuilds(port, role_name, client)
        return got[0] is not None and before is not None and got[0] >= before + 1
    ok = eotest.wait_until(rebuilt, REBUILT_S, interval=0.1)
    t_rebuilt = time.monotonic() - t0 if ok else None
    F.check(ok, "%s: eventops_kafka_client_rebuilds_total{role=%s,client=%s} %r -> %r within "
            "%.0f s, expected +1" % (what, role_name, client, before, got[0], REBUILT_S))
    stored_s = wait_stored_after(F, load, stored, t0, what)
    after = rebuilds(port, role_name, client)
    F.check(after is not None and before is not None and after == before + 1,
            "%s: the %s %s was rebuilt %s times for one fault" %
            (what, role_name, client, None if after is None or before is None else
             after - before))
    for r in roles:
        F.check(r.running() and r.pid == pids[r.role] and alive(r.pid),
                "%s: the %s (pid %d) is not running any more (exit code %s)" %
                (what, r.role, pids[r.role], r.proc.returncode))
    return t_rebuilt, stored_s


def fence(F, sb, proc, load, stored):
    """Part B: an intruder's init_transactions with the processor's transactional.id."""
    ck = confluent_kafka()
    before = rebuilds(sb.processor_port, "processor", "producer")
    intruder = ck.Producer({"bootstrap.servers": sb.brokers,
                            "transactional.id": "eventops-%s" % sb.processor_id,
                            "client.id": "e2e-fencer"})
    t0 = time.monotonic()
    try:
        intruder.init_transactions(30)
        log("fence: the intruder holds eventops-%s" % sb.processor_id)
        got = [None]

        def rebuilt():
            got[0] = rebuilds(sb.processor_port, "processor", "producer")
            return got[0] is not None and before is not None and got[0] >= before + 1
        ok = eotest.wait_until(rebuilt, REBUILT_S, interval=0.1)
        F.check(ok, "fence: the processor's producer was not rebuilt within %.0f s of being "
                "fenced (rebuilds %r -> %r)" % (REBUILT_S, before, got[0]))
        F.check(proc.grep("kafka producer rebuilt"), "fence: no 'kafka producer rebuilt' line")
        stored_s = wait_stored_after(F, load, stored, time.monotonic(), "fence")
    finally:
        intruder.flush(1)
        del intruder
    return time.monotonic() - t0, stored_s


def run(sb, fault_dir):
    F = sb.failures
    t = sb.create_tenant("kafka-fatal-%s" % RUN)
    T, key = t["tenantId"], t["writeKey"]
    env = {"EVENTOPS_FAULT_DIR": fault_dir}
    coll = sb.collector(extra_env=dict(env, EVENTOPS_KAFKA_ACK_TIMEOUT_MS=3000))
    proc = sb.processor(extra_env=env)
    coll.start()
    proc.start()
    coll.wait_ready(60)
    proc.wait_ready(60)
    roles = [coll, proc]
    pids = {"collector": coll.pid, "processor": proc.pid}
    stored = StoredIds(sb, T)
    load = Load(sb, key, "kf").start()
    timings = []
    accepted = set()
    try:
        # let the load reach the processor first
        eotest.wait_until(lambda: stored.count() > 0, 30, interval=0.25)
        # ---- A. injected fatal errors, each client twice ----
        for rnd in range(1, ROUNDS + 1):
            for name, role_name, client in FAULTS:
                rebuilt_s, stored_s = inject(F, sb, fault_dir, name, role_name, client, roles,
                                             pids, load, stored)
                log("round %d, %s: rebuilt after %s s, an event acknowledged after it stored "
                    "after %s s" % (rnd, name, "%.2f" % rebuilt_s if rebuilt_s else "never",
                                   "%.2f" % stored_s if stored_s else "never"))
                timings.append((name, rebuilt_s, stored_s))
                if F:
                    break
            if F:
                break
        F.check(len(proc.grep("kafka consumer rebuilt")) == ROUNDS,
                "the processor logged 'kafka consumer rebuilt' %d times, expected %d" %
                (len(proc.grep("kafka consumer rebuilt")), ROUNDS))
        F.check(len(coll.grep("kafka producer rebuilt")) == ROUNDS,
                "the collector logged 'kafka producer rebuilt' %d times, expected %d" %
                (len(coll.grep("kafka producer rebuilt")), ROUNDS))
        # ---- B. fenced by the broker ----
        if not F:
            fence_s, fence_stored_s = fence(F, sb, proc, load, stored)
            log("fence: producer rebuilt and storing again %.1f s after the intruder" % fence_s)
        # ---- C. everything acknowledged is stored exactly once ----
        F.check(load.stop(), "the senders did not finish their last batches")
        accepted = load.acked()
        F.check(not load.bad, "%d bad answers from the collector, e.g. %s" %
                (len(load.bad), load.bad[:5]))
        F.check(not load.uncertain, "%d events ended without a proper 202" % len(load.uncertain))
        left = [accepted]

        def all_stored():
            left[0] = stored.missing(left[0])
            return not left[0]
        F.check(eotest.wait_until(all_stored, 90, interval=0.5),
                "%d of %d acknowledged events are not stored 90 s after the load stopped (e.g. "
                "%s)" % (len(left[0]), len(accepted), sorted(left[0])[:3]))
        check_exact(sb, F, T, accepted, "after the faults")
        for r, url in ((coll, sb.url("/readyz")),
                       (proc, "http://127.0.0.1:%d/readyz" % sb.processor_port)):
            F.check(eotest.wait_until(lambda: ready_status(url) == 200, 30),
                    "the %s's /readyz is not 200 at the end (%s)" % (r.role, ready_status(url)))
    finally:
        load.abort()
    sb.check_clean_end(running=roles)
    for r in roles:
        if r.running():
            rc = r.stop(30)
            F.check(rc == 0, "%s exit code on SIGTERM: %r (expected 0)" % (r.role, rc))
    return sb.report(
        "kafka fatal errors: %s; %d events acknowledged (%s)" %
        (" ".join("%s %s/%s" % (n, "%.1f" % a if a else "-", "%.1f" % b if b else "-")
                  for n, a, b in timings), len(accepted),
         statuses(r.status for r in load.answers)))


def main():
    t_start = time.monotonic()
    why = preflight()
    if why:
        print("FAILED: " + why)
        return 1
    with eotest.Sandbox("kafka_fatal", keep_dir=KEEP) as sb:
        fault_dir = os.path.join(sb.dir, "faults")
        os.mkdir(fault_dir)
        rc = run(sb, fault_dir)
    print("kafka_fatal: %s; total %.1fs" % ("PASSED" if rc == 0 else "FAILED",
                                            time.monotonic() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
