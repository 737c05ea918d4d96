#!/usr/bin/env python3
"""bench/compat_cpu.py: collector CPU per accepted event, POST /events/batch against Segment's
POST /v1/batch and PostHog's POST /batch/ (issue 15: the compatibility routes must cost no more
than /events/batch).

    bench/compat_cpu.py      (stack env exported: eval "$(scripts/stack.sh env)"; EVENTOPS_BIN
                             the build to measure, e.g. build/eventops)

In one e2e sandbox (its own database and topics, removed afterwards), each round starts a fresh
collector for each route in turn (the order rotating between rounds) and sends
BENCH_CPU_EVENTS (600000) events with bench/loadgen (batch 100, 16 connections, as fast as
accepted): the same generated events, as EventOps events to /events/batch, as Segment track
messages ("type": "track", "event" instead of "eventType") to /v1/batch, or as PostHog events
(uuid, event, distinct_id, sent_at; loadgen --posthog) to /batch/. The collector's
utime+stime is read from /proc before and after. Nothing is stored (no processor). Prints one
line per run, the medians and each route's ratio to native; one JSON line on stdout at the end.
Settings: BENCH_CPU_ROUNDS (6), BENCH_CPU_EVENTS, CC (cc, to build loadgen)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
import eotest  # noqa: E402
from analytics import cpu_seconds  # noqa: E402

ROUTES = {"native": [], "segment": ["--segment"], "posthog": ["--posthog"]}


def main():
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    rounds = int(os.environ.get("BENCH_CPU_ROUNDS", "6"))
    events = os.environ.get("BENCH_CPU_EVENTS", "600000")
    work = tempfile.mkdtemp(prefix="eo-compat-cpu-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run([os.environ.get("CC", "cc"), "-std=c17", "-O2", "-o", loadgen,
                    os.path.join(HERE, "loadgen.c"), "-lm"], check=True)
    results = {r: [] for r in ROUTES}
    with eotest.Sandbox("compat-cpu", partitions=6) as sb:
        tenant = sb.create_tenant("cpu")
        for rnd in range(rounds):
            order = list(ROUTES)
            for route in order[rnd % len(order):] + order[:rnd % len(order)]:
                # the load is far over the default per-tenant rate: the bench prices accepting
                coll = sb.role("collector", name="collector-%s-%d" % (route, rnd),
                               extra_env={"EVENTOPS_RATE_LIMIT_RATE": "10000000",
                                          "EVENTOPS_RATE_LIMIT_BURST": "10000000"})
                coll.start()
                coll.wait_ready()
                time.sleep(1)
                before = cpu_seconds(coll.pid)
                run = subprocess.run([loadgen, "--host", "127.0.0.1", "--port",
                                      str(sb.collector_port), "--events", events, "--quiet",
                                      "--seed", str(rnd)] + ROUTES[route],
                                     env=dict(os.environ, LOADGEN_WRITE_KEY=tenant["writeKey"]),
                                     capture_output=True, text=True, timeout=600)
                after = cpu_seconds(coll.pid)
                coll.stop()
                out = json.loads(run.stdout.strip().splitlines()[-1])
                accepted = out["events_accepted"]
                us = (after - before) / accepted * 1e6 if accepted else float("nan")
                results[route].append((us, out.get("accepted_events_per_s")))
                print("%s round %d: %d accepted, %.0f events/s, collector %.2f us CPU/event; "
                      "answers %s" % (route, rnd, accepted, out.get("accepted_events_per_s") or 0,
                                      us, json.dumps(out.get("status", {}))), flush=True)
        code = sb.report("collector CPU per event by route, %d rounds" % rounds)
    summary = {}
    for route in ROUTES:
        us = [r[0] for r in results[route]]
        rates = [r[1] or 0 for r in results[route]]
        summary[route] = {"us_per_event": statistics.median(us),
                          "events_per_s": statistics.median(rates)}
        print("%s: median %.2f us CPU/event (%s), median %.0f events/s" %
              (route, statistics.median(us), ", ".join("%.2f" % u for u in us),
               statistics.median(rates)), file=sys.stderr)
    ratios = {r: summary[r]["us_per_event"] / summary["native"]["us_per_event"]
              for r in ROUTES if r != "native"}
    for r, x in ratios.items():
        print("%s / native CPU per event: %.2f" % (r, x), file=sys.stderr)
    print(json.dumps({"bench": "compat_cpu", "rounds": rounds, "events": int(events),
                      "routes": summary, "ratios": ratios}))
    return code


if __name__ == "__main__":
    sys.exit(main())
