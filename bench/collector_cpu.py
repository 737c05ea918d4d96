#!/usr/bin/env python3
"""bench/collector_cpu.py: collector CPU per accepted event, two builds alternately.

    bench/collector_cpu.py OLD_BINARY NEW_BINARY     (stack env exported, EVENTOPS_BIN any build)

For same-speed checks of a change that should cost nothing: the accept-only phase of
bench/run.sh lasts a few seconds and its rate moves by half between runs on a shared machine,
while the CPU a collector spends per event moves much less. In one e2e sandbox (its own database
and topics, removed afterwards), each round starts a fresh collector of each build in turn
(order alternating between rounds), sends BENCH_CPU_EVENTS (600000) events with bench/loadgen
(batch 100, 16 connections, as fast as accepted), and reads the collector's utime+stime from
/proc before and after. Nothing is stored (no processor). Prints one line per run and the
medians. Settings: BENCH_CPU_ROUNDS (6), BENCH_CPU_EVENTS, CC (cc, to build loadgen)."""
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


def priced_run(sb, loadgen, write_key, name, label, args):
    """Starts a fresh collector of sb (named name, its rate limit far above the load: the bench
    prices accepting), runs loadgen with args against it, stops it, prints a line starting with
    label and returns (µs of collector CPU per accepted event, accepted events/s)."""
    coll = sb.role("collector", name=name,
                   extra_env={"EVENTOPS_RATE_LIMIT_RATE": "10000000",
                              "EVENTOPS_RATE_LIMIT_BURST": "10000000"})
    coll.start()
    coll.wait_ready()
    time.sleep(1)
    before = cpu_seconds(coll.pid)
    run = subprocess.run([loadgen, "--host", "127.0.0.1", "--port", str(sb.collector_port),
                          "--quiet"] + args, env=dict(os.environ, LOADGEN_WRITE_KEY=write_key),
                         capture_output=True, text=True, timeout=600)
    after = cpu_seconds(coll.pid)
    coll.stop()
    out = json.loads(run.stdout.strip().splitlines()[-1])
    accepted = out["events_accepted"]
    us = (after - before) / accepted * 1e6 if accepted else float("nan")
    print("%s: %d accepted, %.0f events/s, collector %.2f us CPU/event; answers %s" %
          (label, accepted, out.get("accepted_events_per_s") or 0, us,
           json.dumps(out.get("status", {}))), flush=True)
    return us, out.get("accepted_events_per_s")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bins = {"old": os.path.abspath(sys.argv[1]), "new": os.path.abspath(sys.argv[2])}
    rounds = int(os.environ.get("BENCH_CPU_ROUNDS", "6"))
    events = os.environ.get("BENCH_CPU_EVENTS", "600000")
    work = tempfile.mkdtemp(prefix="eo-collector-cpu-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run([os.environ.get("CC", "cc"), "-std=c17", "-O2", "-o", loadgen,
                    os.path.join(HERE, "loadgen.c"), "-lm"], check=True)
    results = {"old": [], "new": []}
    with eotest.Sandbox("collector-cpu", partitions=6) as sb:
        tenant = sb.create_tenant("cpu")
        for rnd in range(rounds):
            for build in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
                sb.bin = bins[build]
                results[build].append(priced_run(
                    sb, loadgen, tenant["writeKey"], "collector-%s-%d" % (build, rnd),
                    "%s round %d" % (build, rnd), ["--events", events, "--seed", str(rnd)]))
        code = sb.report("collector CPU per event, %d rounds" % rounds)
    for build in ("old", "new"):
        us = [r[0] for r in results[build]]
        rates = [r[1] or 0 for r in results[build]]
        print("%s: median %.2f us CPU/event (%s), median %.0f events/s" %
              (build, statistics.median(us), ", ".join("%.2f" % u for u in us),
               statistics.median(rates)))
    return code


if __name__ == "__main__":
    sys.exit(main())
