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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
import eotest  # noqa: E402
from collector_cpu import priced_run  # noqa: E402

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
                results[route].append(priced_run(
                    sb, loadgen, tenant["writeKey"], "collector-%s-%d" % (route, rnd),
                    "%s round %d" % (route, rnd),
                    ["--events", events, "--seed", str(rnd)] + ROUTES[route]))
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
