#!/usr/bin/env python3
"""bench/soak.py: the soak benchmark of issue 13 (step 7): memory, descriptors and freshness of
every role under a steady open-loop load.

    EVENTOPS_BIN=build/eventops bench/soak.py       (stack env exported; `make bench-soak`
                                                     runs it on the optimised build)

One e2e sandbox (tests/e2e/eotest.py: its own database, topics, consumer groups and ports; its
topics are deleted at the end) with one tenant, the roles of `eventops all` as separate
processes: collector, processor, query and (BENCH_SOAK_ANALYTICS=1) analytics with one rule over
the load (tumbling 1m count of page_viewed per userId, grace 3m, so loadgen's events, up to two
minutes old, are never late). Then, for BENCH_SOAK_S seconds, all at once:
  load       bench/loadgen (built into the sandbox's folder), open loop (--rate) at
             BENCH_SOAK_RATE events/s, batch BENCH_SOAK_BATCH, BENCH_SOAK_CONNECTIONS
             connections, for --duration BENCH_SOAK_S.
  samples    every BENCH_SOAK_SAMPLE_S s: each role's VmRSS and VmHWM (/proc/PID/status), open
             descriptors (/proc/PID/fd) and CPU since the last sample; the machine's load
             average, busy and steal CPU (/proc/stat) and whether someone's ctest is running;
             the collector's eventops_events_accepted_total and the events stored (sum of the
             day rollups, as bench/run.sh), so the backlog is seen as it grows.
  probes     every BENCH_SOAK_PROBE_GAP_MS (open loop, in a thread pool, never blocking the
             samples): one event of a fresh event type (soak_probe_<run>_<n>) through the
             collector (POST /events/batch, the tenant's write key); from its 202, GET
             /events/count for that type on the query role every BENCH_SOAK_POLL_MS until the
             count is 1. Freshness = the answer's arrival - the 202. The query role caches
             answers in Redis, 1 s for a range that ends in the last hour (docs/query.md), so
             every poll asks a different whole-minute range (`from` one more minute back each
             poll, `to` two minutes after the probe): each poll is a cache miss (X-Cache is
             counted) read from the rollups, and the role runs with its cache on as deployed.
             A probe not visible within BENCH_SOAK_PROBE_TIMEOUT_S counts as missing (and as
             infinitely late in the percentiles).
Afterwards: waits (at most BENCH_SOAK_DRAIN_S) until every accepted event is stored, checks
count(*) of events against loadgen's accepted events plus the probes', one more sample with the
load gone, then SIGTERM to each role (a non-zero exit is a failure).

Report: per role RSS at the start, after the warm-up (the first sample at or after
max(10% of the run, 60 s)), at the end of the load and its maximum, the growth after the warm-up
in % and the least-squares slope after it in KiB/min, VmHWM, descriptors first/last/max; the
freshness p50/p90/p99/max; loadgen's accepted count and non-202 answers; whether storage kept
up; PASS/FAIL against issue 13's acceptance (each role's RSS growth after warm-up <= 10%, the
collector's peak RSS (VmHWM) <= 50 MB = 50,000,000 bytes, freshness p99 <= 1 s). The acceptance
is for a 30-minute run (BENCH_SOAK_S=1800, the default); a shorter run says it is a smoke run.

Settings (environment, defaults): BENCH_SOAK_S (1800), BENCH_SOAK_RATE (20000),
BENCH_SOAK_SAMPLE_S (10), BENCH_SOAK_BATCH (100), BENCH_SOAK_CONNECTIONS (16),
BENCH_SOAK_PARTITIONS (6), BENCH_SOAK_PROBE_GAP_MS (1000), BENCH_SOAK_POLL_MS (20),
BENCH_SOAK_PROBE_TIMEOUT_S (10), BENCH_SOAK_DRAIN_S (300), BENCH_SOAK_ANALYTICS (1; 0: no
analytics role), BENCH_SOAK_KEEP (0; 1 keeps the logs and the topics).
Needs: the stack (EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS, EVENTOPS_REDIS_URL), EVENTOPS_BIN,
cc, psql and python3-cryptography (signing the query token); the sandbox deletes its topics.
The summary goes to stderr, one JSON line to stdout; nothing is written into
docs/benchmarks.md. Ctrl-C or SIGTERM stops the load and cleans up.
"""
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
import eotest  # noqa: E402
from analytics import MachineCpu, cpu_seconds, fmt, percentile  # noqa: E402
from analytics import slope_per_min  # noqa: E402

RULE_TYPE = "page_viewed"  # loadgen's most frequent event type (30 %)
COLLECTOR_PEAK_LIMIT_KIB = 50e6 / 1024  # "Collector RSS <= 50 MB at peak", 50,000,000 bytes
GROWTH_LIMIT_PCT = 10.0
FRESHNESS_P99_LIMIT_S = 1.0


def setting(name, default, minimum=1):
    """An integer >= minimum from the environment (BENCH_SOAK_*), or the default."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit() or int(text) < minimum:
        raise SystemExit("%s must be an integer >= %d, got %r" % (name, minimum, text))
    return int(text)


def say(*args):
    eotest.log("soak:", *args)


class Settings:
    """The run's BENCH_SOAK_* settings (see the opening comment)."""

    def __init__(self):
        self.seconds = setting("BENCH_SOAK_S", 1800)
        self.rate = setting("BENCH_SOAK_RATE", 20000)
        self.sample_s = setting("BENCH_SOAK_SAMPLE_S", 10)
        self.batch = setting("BENCH_SOAK_BATCH", 100)
        self.connections = setting("BENCH_SOAK_CONNECTIONS", 16)
        self.partitions = setting("BENCH_SOAK_PARTITIONS", 6)
        self.probe_gap_s = setting("BENCH_SOAK_PROBE_GAP_MS", 1000) / 1000.0
        self.poll_s = setting("BENCH_SOAK_POLL_MS", 20) / 1000.0
        self.probe_timeout_s = setting("BENCH_SOAK_PROBE_TIMEOUT_S", 10)
        self.drain_s = setting("BENCH_SOAK_DRAIN_S", 300)
        self.analytics = setting("BENCH_SOAK_ANALYTICS", 1, minimum=0) > 0
        self.keep = setting("BENCH_SOAK_KEEP", 0, minimum=0) > 0
        self.warmup_s = max(0.1 * self.seconds, 60.0)


# ---------------------------------------------------------------------------------------------
# /proc

def proc_status(pid):
    """(VmRSS KiB, VmHWM KiB) of a process."""
    rss = hwm = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    if rss is None or hwm is None:
        raise RuntimeError("no VmRSS/VmHWM for pid %d" % pid)
    return rss, hwm


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class MachineStat:
    """The machine's CPU between two calls of delta(): busy and steal, % of one core."""

    CLK_TCK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = sum(v[:8]) - v[3] - v[4]  # user..steal without idle and iowait
        return time.monotonic(), busy, v[7] if len(v) > 7 else 0

    def __init__(self):
        self.last = self.read()

    def delta(self):
        now = self.read()
        dt = max(now[0] - self.last[0], 1e-9)
        out = (100.0 * (now[1] - self.last[1]) / self.CLK_TCK / dt,
               100.0 * (now[2] - self.last[2]) / self.CLK_TCK / dt)
        self.last = now
        return out


def ctest_running():
    """True when some process named ctest runs (`make test`: it restarts shared services)."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == "ctest":
                        return True
            except OSError:
                pass
    return False


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------------------------------------
# HTTP on kept-alive connections, one per thread and port

class Conns(threading.local):
    """Per-thread keep-alive connections, by port. http(method, port, path, ...) -> (status,
    headers, body); raises eotest.HttpError. A kept connection the server has closed meanwhile
    (its keep-alive timeout) is replaced and the request sent once more on a new one (a probe's
    event has a fixed messageId: a second copy is deduplicated)."""

    def http(self, method, port, path, body=None, headers=None, timeout=10):
        conns = self.__dict__.setdefault("by_port", {})
        for attempt in (0, 1):
            conn = conns.get(port)
            reused = conn is not None
            if conn is None:
                conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port,
                                                                timeout=timeout)
            try:
                return eotest.http_request(method, "http://127.0.0.1:%d%s" % (port, path), body,
                                           headers, timeout=timeout, conn=conn)
            except eotest.HttpError:
                conns.pop(port, None)  # http_request closed it
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")


def metric_sum(text, name):
    """Sum of the samples of metric name in a Prometheus text exposition (None: none)."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            try:
                total += float(line.rsplit(" ", 1)[1])
                seen = True
            except ValueError:
                pass
    return total if seen else None


def rfc3339(t):
    """RFC 3339 UTC with microseconds of a Unix time."""
    us = int(round(t * 1e6))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + \
        ".%06dZ" % (us % 1000000)


def minute_text(minute):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60))


# ---------------------------------------------------------------------------------------------
# Freshness probes

class Probes:
    """Probes every cfg.probe_gap_s from start() until stop(): each one event of its own type
    through the collector, then GET /events/count on the query role until it is 1 (see the
    opening comment). Thread-safe: results are appended under self.lock."""

    def __init__(self, cfg, sb, tenant, token_fn):
        self.cfg, self.sb, self.tenant, self.token_fn = cfg, sb, tenant, token_fn
        self.run = eotest.rand_hex(6)
        self.conns = Conns()
        self.lock = threading.Lock()
        self.results = []
        self.stopping = threading.Event()  # no new probes
        self.aborting = threading.Event()  # and the ones in flight stop polling
        self.token = token_fn()
        self.token_t = time.monotonic()
        workers = int(math.ceil(cfg.probe_timeout_s / cfg.probe_gap_s)) + 4
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self.thread = None

    def bearer(self):
        """The query token, made anew every 5 minutes (it lives 15)."""
        if time.monotonic() - self.token_t > 300:
            self.token, self.token_t = self.token_fn(), time.monotonic()
        return self.token

    def one(self, n, t_sched):
        """Probe n (scheduled at monotonic t_sched). Returns its result dict."""
        cfg = self.cfg
        etype = "soak_probe_%s_%d" % (self.run, n)
        r = {"n": n, "start_late_s": round(time.monotonic() - t_sched, 4), "status": None,
             "visible_s": None, "polls": 0, "cache": {}, "query_status": {}, "error": None}
        now = time.time()
        minute = int(now // 60)
        body = json.dumps({"batch": [{"messageId": "soak-%s-%d" % (self.run, n),
                                      "eventType": etype, "userId": "soak-probe",
                                      "timestamp": rfc3339(now),
                                      "properties": {"probe": n}}]}).encode()
        try:
            st, _, ans = self.conns.http("POST", self.sb.collector_port, "/events/batch", body,
                                         {"Content-Type": "application/json",
                                          "Authorization": "Bearer " + self.tenant["writeKey"]})
        except eotest.HttpError as e:
            r["status"], r["error"] = "ERR", str(e)[:200]
            return r
        t202 = time.monotonic()
        r["status"] = st
        if st != 202:
            r["error"] = str(ans)[:200]
            return r
        deadline = t202 + cfg.probe_timeout_s
        i = 0
        while not self.aborting.is_set():
            # A fresh whole-minute range for every poll: never a cached answer.
            q = urllib.parse.urlencode({"eventType": etype,
                                        "from": minute_text(minute - 1 - i),
                                        "to": minute_text(minute + 2)})
            i += 1
            r["polls"] = i
            try:
                st, hd, ans = self.conns.http("GET", self.sb.query_port, "/events/count?" + q,
                                              None, {"Authorization": "Bearer " + self.bearer()})
            except eotest.HttpError as e:
                st, hd, ans = "ERR", {}, None
                r["error"] = str(e)[:200]
            t_ans = time.monotonic()
            r["query_status"][str(st)] = r["query_status"].get(str(st), 0) + 1
            xc = hd.get("x-cache", "-")
            r["cache"][xc] = r["cache"].get(xc, 0) + 1
            count = ans.get("count") if st == 200 and isinstance(ans, dict) else None
            if count == 1:
                r["visible_s"] = round(t_ans - t202, 4)
                return r
            if isinstance(count, int) and count > 1:
                r["error"] = "count %d for a type sent once" % count
                return r
            if t_ans >= deadline:
                return r
            time.sleep(max(0.0, min(t202 + i * cfg.poll_s, deadline) - time.monotonic()))
        return r

    def _record(self, fut):
        try:
            res = fut.result()
        except Exception as e:  # noqa: BLE001 - a probe's bug must not stop the run
            res = {"n": -1, "status": "EXC", "visible_s": None, "error": repr(e)[:200]}
        with self.lock:
            self.results.append(res)

    def _loop(self, t0, seconds):
        n = 0
        while not self.stopping.is_set():
            t_sched = t0 + n * self.cfg.probe_gap_s
            if t_sched - t0 >= seconds:
                break
            wait = t_sched - time.monotonic()
            if wait > 0 and self.stopping.wait(wait):
                break
            self.pool.submit(self.one, n, t_sched).add_done_callback(self._record)
            n += 1

    def start(self, t0, seconds):
        """Probes at t0 (monotonic), t0 + gap, ... while below t0 + seconds."""
        self.thread = threading.Thread(target=self._loop, args=(t0, seconds), daemon=True,
                                       name="probe-schedule")
        self.thread.start()

    def finish(self, abort=False):
        """Waits for the schedule to end and the probes in flight (each bounded by the probe
        timeout); abort: no new probes, and the ones in flight stop polling."""
        if abort:
            self.aborting.set()
            self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=self.cfg.seconds + 60)
        self.stopping.set()
        self.pool.shutdown(wait=True)


def freshness_summary(results, timeout_s):
    """Percentiles over the accepted probes (a missing one counts as infinitely late)."""
    acc = [r for r in results if r.get("status") == 202]
    seen = sorted(r["visible_s"] for r in acc if r.get("visible_s") is not None)
    missing = len(acc) - len(seen)
    ranked = seen + [math.inf] * missing
    cache, qstatus, errors = {}, {}, []
    for r in results:
        for k, v in r.get("cache", {}).items():
            cache[k] = cache.get(k, 0) + v
        for k, v in r.get("query_status", {}).items():
            qstatus[k] = qstatus.get(k, 0) + v
        if r.get("error"):
            errors.append("probe %s: %s" % (r.get("n"), r["error"]))
    late = [r.get("start_late_s", 0) for r in results]
    return {"probes": len(results), "accepted": len(acc), "refused": len(results) - len(acc),
            "visible": len(seen), "missing": missing, "timeout_s": timeout_s,
            "p50_s": percentile(ranked, 50), "p90_s": percentile(ranked, 90),
            "p99_s": percentile(ranked, 99), "max_s": ranked[-1] if ranked else math.nan,
            "min_s": seen[0] if seen else math.nan,
            "polls": sum(r.get("polls", 0) for r in results), "x_cache": cache,
            "query_status": qstatus, "errors": errors[:10], "errors_total": len(errors),
            "max_start_late_s": max(late) if late else 0.0}


# ---------------------------------------------------------------------------------------------
# The run

class Run:
    """The sandbox's roles, the load, the samples."""

    def __init__(self, cfg, sb, res):
        self.cfg, self.sb, self.res = cfg, sb, res
        self.roles = {}
        self.loadgen = None
        self.probes = None
        self.samples = []
        self.tenant = self.client = self.kid = None
        self.conns = Conns()
        self.machine = MachineStat()
        self.prev_cpu = {}

    def setup(self):
        """loadgen, the tenant, a signing key and a read client (query tokens), the rule, the
        roles started and ready."""
        sb, cfg = self.sb, self.cfg
        self.loadgen_bin = os.path.join(sb.dir, "loadgen")
        subprocess.run([os.environ.get("CC", "cc"), "-std=c17", "-O2", "-Wall", "-Wextra",
                        "-Werror", "-Wshadow", "-Wformat=2", "-o", self.loadgen_bin,
                        os.path.join(HERE, "loadgen.c")], check=True, timeout=300)
        self.tenant = sb.create_tenant("soak-%s" % sb.id)
        self.kid = sb.create_signing_key()
        self.client = sb.create_client(self.tenant["tenantId"], ["events:read"])
        names = ["collector", "processor", "query"] + (["analytics"] if cfg.analytics else [])
        if cfg.analytics:
            path = os.path.join(sb.dir, "rule.json")
            with open(path, "w") as f:
                json.dump({"name": "soak", "eventType": RULE_TYPE,
                           "window": {"type": "tumbling", "size": "1m"}, "groupBy": ["userId"],
                           "aggregate": {"fn": "count"}, "grace": "3m", "horizon": "3m",
                           "maxGroups": 100000, "condition": {"op": ">=", "value": 1000}}, f)
            sb.admin_json("rules", "create", "--tenant", self.tenant["tenantId"], "--file", path)
        for name in names:
            self.roles[name] = sb.role(name)
        for r in self.roles.values():
            r.start()
        for r in self.roles.values():
            r.wait_ready(timeout=120)
        say("roles ready: %s" % ", ".join("%s pid %d" % (n, r.pid)
                                         for n, r in self.roles.items()))

    def token(self):
        kid = self.kid["kid"] if isinstance(self.kid, dict) else self.kid
        return self.sb.sign(self.sb.claims(self.client, scope="events:read", lifetime=900), kid)

    def check_path(self):
        """One probe before the clock: the whole path works (or the run stops here)."""
        p = Probes(self.cfg, self.sb, self.tenant, self.token)
        r = p.one(0, time.monotonic())
        p.pool.shutdown(wait=False)
        if r.get("visible_s") is None:
            raise RuntimeError("the probe before the run never became visible: %s" % r)
        say("probe before the run: visible %.3f s after its 202 (%d polls, X-Cache %s)" %
            (r["visible_s"], r["polls"], r["cache"]))

    def stored(self):
        """(events stored per the day rollups, database size in bytes) or (None, None)."""
        try:
            rows = self.sb.sql("SELECT coalesce(sum(count), 0), pg_database_size("
                               "current_database()) FROM rollups WHERE granularity = 'day' "
                               "AND event_type = ''", timeout=30)
            return int(rows[0][0]), int(rows[0][1])
        except Exception as e:  # noqa: BLE001 - a slow query must not stop the samples
            say("note: stored-count query failed: %s" % str(e)[:200])
            return None, None

    def accepted_metric(self):
        try:
            st, _, body = self.conns.http("GET", self.sb.collector_port, "/metrics")
        except eotest.HttpError:
            return None
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        return metric_sum(text, "eventops_events_accepted_total") if st == 200 else None

    def sample(self, t, phase):
        """One sample of every role and the machine at t seconds into the run."""
        s = {"t": round(t, 1), "phase": phase, "roles": {}}
        now = time.monotonic()
        for name, r in self.roles.items():
            if not r.running():
                s["roles"][name] = None
                continue
            try:
                rss, hwm = proc_status(r.pid)
                cpu = cpu_seconds(r.pid)
                fds = open_fds(r.pid)
            except (OSError, RuntimeError):
                s["roles"][name] = None
                continue
            prev = self.prev_cpu.get(name)
            pct = round(100 * (cpu - prev[1]) / max(now - prev[0], 1e-9), 1) if prev else None
            self.prev_cpu[name] = (now, cpu)
            s["roles"][name] = {"rss_kib": rss, "hwm_kib": hwm, "fds": fds, "cpu_pct": pct}
        busy, steal = self.machine.delta()
        s["machine"] = {"load": loadavg(), "busy_pct": round(busy, 1),
                        "steal_pct": round(steal, 1), "ctest": ctest_running()}
        s["accepted"] = self.accepted_metric()
        s["stored"], s["db_bytes"] = self.stored()
        self.samples.append(s)
        rs = " ".join("%s %s/%s" % (n[:4], v["rss_kib"] // 1024 if v else "-",
                                    v["fds"] if v else "-") for n, v in s["roles"].items())
        say("t=%5.0fs %s: RSS MiB/fds %s; machine %.0f%% (steal %.0f%%), load %.2f%s; "
            "accepted %s stored %s" % (t, phase, rs, busy, steal, s["machine"]["load"][0],
                                       ", ctest running" if s["machine"]["ctest"] else "",
                                       fmt(s["accepted"]) if s["accepted"] is not None else "?",
                                       fmt(s["stored"]) if s["stored"] is not None else "?"))
        return s

    def soak(self):
        """Load, probes and samples for cfg.seconds; then the drain and the last sample."""
        cfg, sb = self.cfg, self.sb
        start_unix = time.time() + 5.0  # loadgen pre-generates its bodies meanwhile
        t0 = time.monotonic() + (start_unix - time.time())
        out_path = os.path.join(sb.dir, "loadgen.json")
        err_path = os.path.join(sb.dir, "loadgen.err")
        env = dict(os.environ, LOADGEN_WRITE_KEY=self.tenant["writeKey"])
        cmd = [self.loadgen_bin, "--host", "127.0.0.1", "--port", str(sb.collector_port),
               "--batch", str(cfg.batch), "--connections", str(cfg.connections),
               "--rate", str(cfg.rate), "--duration", str(cfg.seconds), "--seed", "1",
               "--quiet", "--start-at", "%.3f" % start_unix]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.loadgen = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=err)
        self.probes = Probes(cfg, sb, self.tenant, self.token)
        self.probes.start(t0, cfg.seconds)
        say("load: %s events/s, batch %d, %d connections, %d s (open loop); probes every %.0f ms;"
            " a sample every %d s; warm-up %.0f s" % (fmt(cfg.rate), cfg.batch, cfg.connections,
                                                      cfg.seconds, 1000 * cfg.probe_gap_s,
                                                      cfg.sample_s, cfg.warmup_s))
        time.sleep(max(0.0, t0 - time.monotonic()))
        k = 0
        hard_end = t0 + cfg.seconds + 90
        died = None
        while True:
            t = time.monotonic() - t0
            self.sample(t, "load")
            died = [n for n, r in self.roles.items() if not r.running()]
            if died or self.loadgen.poll() is not None:
                break
            if t >= cfg.seconds:  # that was the load's last sample; loadgen ends its requests
                try:
                    self.loadgen.wait(timeout=max(1.0, hard_end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    say("loadgen still running %.0f s after its duration: killed" %
                        (time.monotonic() - t0 - cfg.seconds))
                    self.loadgen.kill()
                    self.loadgen.wait()
                break
            k += 1
            nxt = t0 + min(k * cfg.sample_s, cfg.seconds)
            while time.monotonic() < nxt and self.loadgen.poll() is None:
                time.sleep(min(0.2, max(0.0, nxt - time.monotonic())))
        t_load_end = time.monotonic()
        self.probes.finish(abort=bool(died))
        if died:
            raise RuntimeError("role(s) %s exited during the load" % ", ".join(died))
        with open(out_path) as f:
            text = f.read().strip()
        if not text:
            with open(err_path) as f:
                raise RuntimeError("loadgen printed nothing (exit %s): %s" %
                                   (self.loadgen.returncode, f.read()[-500:]))
        lg = json.loads(text.splitlines()[-1])
        self.res["loadgen"] = lg
        fresh = freshness_summary(self.probes.results, cfg.probe_timeout_s)
        self.res["freshness"] = fresh
        expected = int(lg["events_accepted"]) + fresh["accepted"] + 1  # + the check_path probe
        self.res["expected_stored"] = expected
        self.drain(expected, t_load_end, t0)

    def drain(self, expected, t_load_end, t0):
        """Waits until `expected` events are stored (bounded), checks count(*), last sample."""
        cfg = self.cfg
        last, t_change = -1, time.monotonic()
        stored = None
        while True:
            stored, _ = self.stored()
            now = time.monotonic()
            if stored is not None and stored != last:
                last, t_change = stored, now
            if stored is not None and stored >= expected:
                break
            if now - t_load_end > cfg.drain_s or now - t_change > 60:
                break
            if any(not r.running() for r in self.roles.values()):
                break
            time.sleep(0.25)
        drained_s = time.monotonic() - t_load_end
        count = int(self.sb.scalar("SELECT count(*) FROM events"))
        self.res["storage"] = {"expected": expected, "stored_rollups": stored,
                               "count_events": count, "after_load_s": round(drained_s, 2),
                               "kept_up": count == expected and stored == expected}
        say("storage: %s events expected, count(*) %s, rollups %s, %.1f s after the load" %
            (fmt(expected), fmt(count), fmt(stored) if stored is not None else "?", drained_s))
        self.sample(time.monotonic() - t0, "after")

    def stop_roles(self):
        """SIGTERM to each role; a non-zero exit is a failure."""
        codes = {}
        for name in ("collector", "query", "analytics", "processor"):
            r = self.roles.get(name)
            if r is not None:
                codes[name] = r.stop(timeout=30)
                if codes[name] != 0:
                    self.sb.failures.fail("%s exited with %s on SIGTERM" % (name, codes[name]))
        self.res["exit_codes"] = codes

    def cleanup(self):
        if self.loadgen is not None and self.loadgen.poll() is None:
            self.loadgen.terminate()
            try:
                self.loadgen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.loadgen.kill()
                self.loadgen.wait()
        if self.probes is not None:
            self.probes.finish(abort=True)
        for r in self.roles.values():
            if r.running():
                r.stop(timeout=20)


def delete_groups(sb, groups):
    """Deletes the run's consumer groups with Kafka's own tool (the stack's jars), best effort;
    Debian's python3-confluent-kafka (1.7) has no call for it."""
    libs = os.path.join(eotest.STACK_DIR, "kafka", "libs")
    if not os.path.isdir(libs) or not subprocess.run(["sh", "-c", "command -v java"],
                                                     stdout=subprocess.DEVNULL).returncode == 0:
        say("note: consumer groups %s left in Kafka (no Kafka tools under %s)" %
            (", ".join(groups), libs))
        return
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           "-cp", os.path.join(libs, "*"), "org.apache.kafka.tools.consumer.group."
           "ConsumerGroupCommand", "--bootstrap-server", sb.brokers, "--delete"]
    for g in groups:
        cmd += ["--group", g]
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    except subprocess.TimeoutExpired:
        say("note: deleting the consumer groups took over 120 s; left")


# ---------------------------------------------------------------------------------------------
# Report

def role_stats(samples, name, warmup_s):
    """Start / after warm-up / end / max RSS, growth after warm-up, slope after it, VmHWM and
    descriptors of one role over the load's samples (None when it was never sampled)."""
    pts = [(s["t"], s["roles"][name]) for s in samples
           if s["phase"] == "load" and s["roles"].get(name)]
    if not pts:
        return None
    after = [(t, v) for t, v in pts if t >= warmup_s]
    warm = after[0] if after else None
    end = pts[-1]
    rss = [v["rss_kib"] for _, v in pts]
    fds = [v["fds"] for _, v in pts]
    cpu = [v["cpu_pct"] for _, v in pts if v["cpu_pct"] is not None]
    st = {"start_kib": rss[0], "warm_kib": warm[1]["rss_kib"] if warm else None,
          "warm_t": warm[0] if warm else None, "end_kib": end[1]["rss_kib"], "max_kib": max(rss),
          "hwm_kib": max(v["hwm_kib"] for _, v in pts),
          "growth_pct": (100.0 * (end[1]["rss_kib"] - warm[1]["rss_kib"]) / warm[1]["rss_kib"]
                         if warm and end[0] > warm[0] else None),
          "slope_kib_per_min": slope_per_min([(t, v["rss_kib"]) for t, v in after]),
          "fds_first": fds[0], "fds_last": fds[-1], "fds_max": max(fds),
          "cpu_pct_mean": sum(cpu) / len(cpu) if cpu else None}
    after_s = [s["roles"].get(name) for s in samples if s["phase"] == "after"]
    if after_s and after_s[-1]:
        st["after_drain_kib"] = after_s[-1]["rss_kib"]
        st["after_drain_fds"] = after_s[-1]["fds"]
    return st


def verdicts(cfg, res):
    """[(PASS|FAIL, text)] against issue 13's acceptance."""
    out = []
    for name, st in res["roles"].items():
        if st is None or st["growth_pct"] is None:
            out.append(("FAIL", "%s RSS growth after warm-up: not measured (run shorter than the "
                                "warm-up, or the role was not sampled)" % name))
            continue
        ok = st["growth_pct"] <= GROWTH_LIMIT_PCT
        out.append(("PASS" if ok else "FAIL", "%s RSS growth after warm-up %.1f%% (<= %.0f%%; "
                    "slope %.0f KiB/min)" % (name, st["growth_pct"], GROWTH_LIMIT_PCT,
                                             st["slope_kib_per_min"])))
    coll = res["roles"].get("collector")
    if coll:
        ok = coll["hwm_kib"] <= COLLECTOR_PEAK_LIMIT_KIB
        out.append(("PASS" if ok else "FAIL", "collector peak RSS (VmHWM) %.1f MB (<= 50 MB)" %
                    (coll["hwm_kib"] * 1024 / 1e6)))
    fr = res["freshness"]
    ok = fr["p99_s"] <= FRESHNESS_P99_LIMIT_S
    out.append(("PASS" if ok else "FAIL", "freshness p99 %s (<= 1 s; %d of %d probes never "
                "visible within %d s)" % (secs(fr["p99_s"]), fr["missing"], fr["accepted"],
                                          fr["timeout_s"])))
    stg = res["storage"]
    out.append(("PASS" if stg["kept_up"] else "FAIL",
                "storage kept up: count(*) %s = accepted %s, %.1f s after the load" %
                (fmt(stg["count_events"]), fmt(stg["expected"]), stg["after_load_s"])))
    return out


def secs(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "> timeout"
    return "%.0f ms" % (1000 * x) if x < 10 else "%.1f s" % x


def kib(x):
    return "-" if x is None else fmt(x)


def report(cfg, res, out):
    """The summary (stderr) and the JSON line (out)."""
    samples = res["samples"]
    load = [s for s in samples if s["phase"] == "load"]
    lg, fr, stg = res["loadgen"], res["freshness"], res["storage"]
    busy = [s["machine"]["busy_pct"] for s in load[1:]]
    steal = [s["machine"]["steal_pct"] for s in load[1:]]
    loads = [s["machine"]["load"][0] for s in load]
    ctest = sum(1 for s in load if s["machine"]["ctest"])
    lines = [
        "",
        "EventOps soak (issue 13), %s, commit %s" % (res["date"], res["commit"]),
        "machine: %d cores, load average before %s; during the load: busy %.0f%% of %d%% "
        "(mean; max %.0f%%), steal %.0f%% mean, 1-min load %.2f-%.2f; someone's ctest running "
        "in %d of %d samples" % (
            os.cpu_count(), " ".join(res["load_before"]), mean(busy), 100 * os.cpu_count(),
            max(busy) if busy else math.nan, mean(steal), min(loads), max(loads), ctest,
            len(load)),
        "load: %s events/s offered (open loop), batch %d, %d connections, %d s%s; roles: %s; "
        "warm-up %.0f s; a sample every %d s" % (
            fmt(cfg.rate), cfg.batch, cfg.connections, cfg.seconds,
            "" if cfg.seconds >= 1800 else " (SMOKE RUN: the acceptance is for 1800 s)",
            ", ".join(res["roles"]), cfg.warmup_s, cfg.sample_s),
        "",
        "%-10s %9s %9s %9s %9s %8s %10s %9s %14s %6s %10s" % (
            "RSS KiB", "start", "warm-up", "end", "max", "growth", "KiB/min", "VmHWM",
            "fds f/l/max", "CPU%", "after"),
    ]
    for name, st in res["roles"].items():
        if st is None:
            lines.append("%-10s not sampled" % name)
            continue
        lines.append("%-10s %9s %9s %9s %9s %7s%% %10.0f %9s %14s %6.0f %10s" % (
            name, kib(st["start_kib"]), kib(st["warm_kib"]), kib(st["end_kib"]),
            kib(st["max_kib"]),
            "%.1f" % st["growth_pct"] if st["growth_pct"] is not None else "-",
            st["slope_kib_per_min"], kib(st["hwm_kib"]),
            "%d/%d/%d" % (st["fds_first"], st["fds_last"], st["fds_max"]),
            st["cpu_pct_mean"] or 0, kib(st.get("after_drain_kib"))))
    lines += [
        "(warm-up: the first sample at or after %.0f s; growth = end / warm-up - 1; KiB/min: "
        "least squares after the warm-up; after: once the backlog was stored)" % cfg.warmup_s,
        "",
        "freshness, 202 -> visible in /events/count, %d probes (%d accepted, %d refused): p50 %s,"
        " p90 %s, p99 %s, max %s, min %s; never visible within %d s: %d" % (
            fr["probes"], fr["accepted"], fr["refused"], secs(fr["p50_s"]), secs(fr["p90_s"]),
            secs(fr["p99_s"]), secs(fr["max_s"]), secs(fr["min_s"]), fr["timeout_s"],
            fr["missing"]),
        "  %d polls, X-Cache %s, answers %s; probes started up to %.0f ms late; %d errors%s" % (
            fr["polls"], fr["x_cache"], fr["query_status"], 1000 * fr["max_start_late_s"],
            fr["errors_total"], (": " + "; ".join(fr["errors"][:3])) if fr["errors"] else ""),
        "loadgen: %s events sent, %s accepted (%s events/s), non-202 requests %s %s, I/O errors %s,"
        " timeouts %s; accept latency p50/p99/max %s/%s/%s ms (from the schedule p99 %s ms)" % (
            fmt(lg.get("events_sent", 0)), fmt(lg.get("events_accepted", 0)),
            fmt(lg.get("accepted_events_per_s", 0)), lg.get("requests_non202"), lg.get("status"),
            lg.get("io_errors"), lg.get("timeouts"), lg.get("latency_p50_ms"),
            lg.get("latency_p99_ms"), lg.get("latency_max_ms"), lg.get("sched_latency_p99_ms")),
        "storage: count(*) %s, rollups %s, expected %s (loadgen's + the probes'); all stored "
        "%.1f s after the load; database %s MiB" % (
            fmt(stg["count_events"]), kib(stg["stored_rollups"]), fmt(stg["expected"]),
            stg["after_load_s"], fmt((samples[-1].get("db_bytes") or 0) / 1048576)),
        "",
    ]
    backlog = [(s["t"], s["accepted"] - s["stored"]) for s in load
               if s.get("accepted") is not None and s.get("stored") is not None]
    if backlog:
        worst = max(backlog, key=lambda x: x[1])
        lines.insert(-1, "backlog (accepted - stored, per sample): %s at the end of the load, "
                         "at most %s (t=%.0f s)" % (fmt(backlog[-1][1]), fmt(worst[1]), worst[0]))
    lines.insert(-1, "freshness per minute of the load (p50 / p99 / missing): %s" % "; ".join(
        "%d: %s / %s / %d" % (m, secs(b["p50_s"]), secs(b["p99_s"]), b["missing"])
        for m, b in per_minute(res.get("probe_results", []), cfg)))
    lines += ["%s: %s" % v for v in res["verdicts"]]
    print("\n".join(lines), file=sys.stderr, flush=True)
    res = {k: v for k, v in res.items() if k != "probe_results"}
    print(json.dumps(finite(res), separators=(",", ":"), default=str), file=out, flush=True)


def per_minute(results, cfg):
    """[(minute, freshness_summary)] of the probes sent in each minute of the load."""
    by = {}
    for r in results:
        if r.get("n", -1) >= 0:
            by.setdefault(int(r["n"] * cfg.probe_gap_s // 60), []).append(r)
    return [(m, freshness_summary(by[m], cfg.probe_timeout_s)) for m in sorted(by)]


def mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def finite(obj):
    """obj with every non-finite float as null (JSON has no Infinity or NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


def commit_of():
    root = os.path.join(HERE, "..")
    try:
        c = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], timeout=10,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        d = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           timeout=10, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
        return c.stdout.strip() + ("-dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def main():
    cfg = Settings()

    res = {"bench": "eventops-soak", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "commit": commit_of(), "cores": os.cpu_count(), "seconds": cfg.seconds,
           "rate": cfg.rate, "batch": cfg.batch, "connections": cfg.connections,
           "sample_s": cfg.sample_s, "warmup_s": cfg.warmup_s,
           "load_before": open("/proc/loadavg").read().split()[:3]}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stdout = sys.stdout
    sys.stdout = sys.stderr  # eotest's progress lines; stdout gets the JSON line only
    if ctest_running():
        say("note: a ctest is running on this machine (make test?): the figures will be noisy, "
            "and it may restart the shared services under the run")
    # Limits far above the load: the write key and the probe client are never throttled (the
    # limiter is still consulted on every request); the rule may hold 100k users per window.
    extra = {"EVENTOPS_RATE_LIMIT_RATE": "10000000", "EVENTOPS_RATE_LIMIT_BURST": "10000000",
             "EVENTOPS_ANALYTICS_MAX_GROUPS": "100000",
             "EVENTOPS_LOG_LEVEL": os.environ.get("EVENTOPS_LOG_LEVEL", "info")}
    with eotest.Sandbox("bench-soak", partitions=cfg.partitions, extra_env=extra,
                        keep_dir=cfg.keep) as sb:
        topics = [sb.events_topic, sb.dlq_topic, sb.summaries_topic, sb.windows_topic,
                  sb.late_topic, sb.changelog_topic]
        groups = [sb.group, sb.analytics_group, sb.analytics_group + "-sink"]
        run = Run(cfg, sb, res)
        try:
            run.setup()
            run.check_path()
            run.soak()
            run.stop_roles()
            sb.check_clean_end()
        finally:
            run.cleanup()
            res["samples"] = run.samples
            if cfg.keep:
                say("kept: topics %s, logs %s" % (", ".join(topics), sb.dir))
            else:  # the sandbox deletes the topics when it passes
                delete_groups(sb, groups)
        res["roles"] = {n: role_stats(run.samples, n, cfg.warmup_s) for n in run.roles}
        res["probe_results"] = sorted(run.probes.results, key=lambda r: r.get("n", -1))
        res["probes"] = [[r.get("n"), r.get("visible_s")] for r in res["probe_results"]]
        res["verdicts"] = verdicts(cfg, res)
        res["pass"] = all(v == "PASS" for v, _ in res["verdicts"]) and not sb.failures
        if sb.failures:
            say("failures: %s" % sb.failures.items)
    report(cfg, res, stdout)
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(__doc__, file=sys.stderr)
        sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
    sys.exit(main())
