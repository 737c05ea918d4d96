#!/usr/bin/env python3
"""bench/single.py: single-event requests (issue 13), the collector alone.

    bench/single.py          (stack env exported: eval "$(scripts/stack.sh env)"; EVENTOPS_BIN
                             the build to measure, e.g. build/eventops)

In one e2e sandbox (its own database and topics, removed afterwards) with only a collector (no
processor: the events wait in Kafka; limits far above the load), bench/loadgen sends one event
per POST /events over BENCH_SINGLE_CONNECTIONS (64) keep-alive connections:
  1. as fast as the collector answers, BENCH_SINGLE_EVENTS (300000) requests: requests/s and the
     collector's CPU per request (utime + stime from /proc);
  2. open loop at half of that rate for BENCH_SINGLE_SECONDS (10): latency p50/p90/p99 from the
     send and from the schedule (no coordinated omission).
Each phase runs BENCH_SINGLE_ROUNDS (3) times (a fresh collector each) and the medians are
reported, with PASS/FAIL against issue 13: >= 30,000 requests/s, p99 <= 5 ms at half of it
(from the schedule). One JSON line on stdout; the table on stderr. Numbers are only as quiet as
the machine: do not run it beside make test."""
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


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    conns = os.environ.get("BENCH_SINGLE_CONNECTIONS", "64")
    events = os.environ.get("BENCH_SINGLE_EVENTS", "300000")
    seconds = float(os.environ.get("BENCH_SINGLE_SECONDS", "10"))
    rounds = int(os.environ.get("BENCH_SINGLE_ROUNDS", "3"))
    work = tempfile.mkdtemp(prefix="eo-single-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run([os.environ.get("CC", "cc"), "-std=c17", "-O2", "-o", loadgen,
                    os.path.join(HERE, "loadgen.c"), "-lm"], check=True)
    flat, paced = [], []
    with eotest.Sandbox("single", partitions=6) as sb:
        tenant = sb.create_tenant("single")
        env = dict(os.environ, LOADGEN_WRITE_KEY=tenant["writeKey"])

        def run(args, name):
            coll = sb.role("collector", name=name,
                           extra_env={"EVENTOPS_RATE_LIMIT_RATE": "10000000",
                                      "EVENTOPS_RATE_LIMIT_BURST": "10000000"})
            coll.start()
            coll.wait_ready()
            time.sleep(1)
            before = cpu_seconds(coll.pid)
            out = subprocess.run([loadgen, "--host", "127.0.0.1", "--port",
                                  str(sb.collector_port), "--single", "--connections", conns,
                                  "--quiet"] + args, env=env, capture_output=True, text=True,
                                 timeout=900)
            used = cpu_seconds(coll.pid) - before
            coll.stop()
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["collector_cpu_s"] = used
            return res

        for rnd in range(rounds):
            r = run(["--events", events], "collector-flat-%d" % rnd)
            us = r["collector_cpu_s"] / max(1, r["requests_202"]) * 1e6
            flat.append((r["requests_per_s"], us, r["requests_non202"]))
            say("flat out %d: %.0f requests/s, collector %.2f us CPU/request, p99 %.2f ms, "
                "non-202 %d" % (rnd, r["requests_per_s"], us, r["latency_p99_ms"],
                                r["requests_non202"]))
        half = statistics.median(f[0] for f in flat) / 2
        for rnd in range(rounds):
            r = run(["--rate", "%.0f" % half, "--duration", "%g" % seconds],
                    "collector-half-%d" % rnd)
            paced.append((r["latency_p50_ms"], r["latency_p90_ms"], r["latency_p99_ms"],
                          r["sched_latency_p99_ms"], r["requests_non202"]))
            say("half %d (%.0f/s): p50 %.2f p90 %.2f p99 %.2f ms, from the schedule p99 %.2f ms, "
                "non-202 %d" % ((rnd, half) + paced[-1]))
        code = sb.report("single-event requests")
    rate = statistics.median(f[0] for f in flat)
    p99 = statistics.median(p[3] for p in paced)
    bad = sum(f[2] for f in flat) + sum(p[4] for p in paced)
    ok_rate, ok_p99 = rate >= 30000, p99 <= 5.0
    say("single-event requests, %s connections, collector alone: %.0f requests/s (>= 30,000: %s); "
        "at %.0f/s p50 %.2f p99 %.2f ms, from the schedule %.2f ms (<= 5 ms: %s); non-202 %d" %
        (conns, rate, "PASS" if ok_rate else "FAIL", half,
         statistics.median(p[0] for p in paced), statistics.median(p[2] for p in paced), p99,
         "PASS" if ok_p99 else "FAIL", bad))
    print(json.dumps({"bench": "eventops-single", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                         time.gmtime()),
                      "connections": int(conns), "requests_per_s": rate,
                      "collector_us_per_request": statistics.median(f[1] for f in flat),
                      "half_rate": half, "half_p50_ms": statistics.median(p[0] for p in paced),
                      "half_p99_ms": statistics.median(p[2] for p in paced),
                      "half_sched_p99_ms": p99, "non202": bad}))
    return code or (0 if bad == 0 else 1)


if __name__ == "__main__":
    sys.exit(main())
