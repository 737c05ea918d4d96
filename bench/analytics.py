#!/usr/bin/env python3
"""bench/analytics.py: the analytics role (`eventops analytics`) measured on the local stack.

    EVENTOPS_BIN=build/eventops bench/analytics.py      (stack env exported; bench/analytics.sh
                                                         and `make bench-analytics` run it)

One e2e sandbox (tests/e2e/eotest.py: its own database, topics, consumer groups and ports; its
topics are deleted at the end) with one tenant and two rules:
  bench  hopping 5m sliding by 1m, count, groupBy userId, maxGroups max(100000, BENCH_A_KEYS),
         condition count >= BENCH_A_THRESHOLD (event type bench_signup)
  probe  tumbling 10s, count >= 5 with condition.early, groupBy userId (event type bench_probe)
and the role's limits raised to hold them (EVENTOPS_ANALYTICS_MAX_GROUPS, and
EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT: 100k groups of this rule count ~100 MB of state
under steady load, above the 64 MiB default, past which new groups would be overflow).

Phases:
  (E) the engine alone: bench_engine (bench/engine.c, built beside EVENTOPS_BIN) with
      BENCH_A_ENGINE_ARGS, BENCH_A_ENGINE_RUNS times: decode, engine and tick cost per event.
  (0) idle: the role started on an empty events topic until ready; its RSS; stopped (SIGTERM).
  (1) throughput, transactions on (the role always commits a Kafka transaction per tick):
      BENCH_A_EVENTS records produced straight into the events topic (the collector's record
      format, docs/schemas/record.v1.schema.json, key "<tenantId>:<userId>", users uniform over
      BENCH_A_KEYS, lz4 like the collector; event times advance from the wall clock at
      production start by 1/BENCH_A_RATE s per record, so nothing is late). Then
      BENCH_A_REPEAT times: (a) a bare read_committed consumer (kcat: C, librdkafka, all
      partitions from the beginning to the end) reads them: wall and CPU (wait4 rusage);
      (b) the role started with a fresh consumer group, instance id and changelog topic: wall
      and CPU (utime+stime of the process, /proc/PID/stat) from its start until its group's
      committed offsets reach the end of every partition (polled every 100 ms); also from its
      first commit (steady state, no start-up), and its CPU per thread (with BENCH_A_PERF=1,
      `perf record -g` of the last repeat, its top symbols printed). The role of the last
      repeat goes on.
  (3a) memory: VmRSS and eventops_analytics_state_groups right after each (1b).
  (2) latency: BENCH_A_LOAD_RATE events/s over the same keys straight into the events topic
      (a child process, event time = now), BENCH_A_WARMUP_S of it, then BENCH_A_PROBES probes
      one every BENCH_A_PROBE_GAP_MS (open loop, each a new probe user): 5 events in one
      POST /events/batch through the collector; the time from its 202 to the firing summary of
      that group on the summaries topic (a read_committed consumer assigned at the topic's end
      before the first probe). A probe without a summary within BENCH_A_PROBE_TIMEOUT_S counts
      as missing.
  (3b) soak: the load goes on (at BENCH_A_SOAK_RATE) for BENCH_A_SOAK_S; VmRSS, state groups
      and the role's CPU every BENCH_A_SAMPLE_S; first/last/max RSS and the least-squares slope
      (KiB per minute), also over the second half of the samples (after the state's warm-up);
      the role's CPU per event of the load, all in, and per thread.
  (3c) no events: once the load is read, the role's CPU over BENCH_A_IDLE_S with its state in
      memory (ticks over the groups; the last minutes' windows still close by the wall clock).
Every phase also reports the machine's busy CPU (all processes, /proc/stat): other users of a
shared machine show there.

Settings (environment, defaults): BENCH_A_EVENTS (2000000), BENCH_A_KEYS (100000), BENCH_A_RATE
(200000), BENCH_A_PARTITIONS (6), BENCH_A_REPEAT (3), BENCH_A_THRESHOLD (80), BENCH_A_LOAD_RATE
(20000), BENCH_A_WARMUP_S (15), BENCH_A_PROBES (200), BENCH_A_PROBE_GAP_MS (400),
BENCH_A_PROBE_TIMEOUT_S (10), BENCH_A_SOAK_S (120), BENCH_A_SOAK_RATE (BENCH_A_LOAD_RATE: the
load during the soak), BENCH_A_SAMPLE_S (10), BENCH_A_IDLE_S (20), BENCH_A_STALL_S (60: give up
when the role's committed offsets do not move that long), BENCH_A_ENGINE_RUNS (3; 0: no (E)),
BENCH_A_ENGINE_ARGS ("3000000 100000 1 5": events, keys, rules, event-time step in us),
BENCH_A_ENGINE_SCAN (1: bench_engine's BENCH_SCAN, the record scanner the runner uses; 0: the
full decode), BENCH_A_PERF (0), BENCH_A_KEEP (0; 1 keeps the logs, perf.data and the topics).
Needs: the stack (EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS), EVENTOPS_BIN, kcat, psql, Debian's
python3-confluent-kafka. The summary table goes to stderr, one JSON line to stdout.

The subcommand `load` is this script's own background load (phase 2 and 3b):
    bench/analytics.py load BROKERS TOPIC TENANT KEYS RATE SECONDS
"""
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import eotest  # noqa: E402
import kafkatest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
EVENT_TYPE = "bench_signup"
PROBE_TYPE = "bench_probe"


def setting(name, default):
    """A positive integer from the environment (BENCH_A_*), or the default."""
    text = os.environ.get(name, str(default))
    if not text.isdigit() or int(text) <= 0:
        raise SystemExit("%s must be a positive integer, got %r" % (name, text))
    return int(text)


def say(*args):
    eotest.log("bench:", *args)


# ---------------------------------------------------------------------------------------------
# Records in the collector's format

class Stamp:
    """RFC 3339 UTC with microseconds (eo_rfc3339_format), the seconds part cached."""

    def __init__(self):
        self.sec = None
        self.text = ""

    def __call__(self, us):
        s, frac = divmod(us, 1000000)
        if s != self.sec:
            self.sec = s
            self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        return "%s.%06dZ" % (self.text, frac)


def record(tenant, message_id, event_type, user, event_ts, received_ts):
    """The value of one events-topic record, as the collector writes it (eo_record_encode: every
    member present, in order). ~330 bytes."""
    return ('{"v":1,"tenantId":"%s","receivedAt":"%s","event":{"messageId":"%s",'
            '"eventType":"%s","userId":"%s","anonymousId":null,"timestamp":"%s",'
            '"originalTimestamp":"%s","sentAt":"%s","properties":{"plan":"pro","amount":12.5,'
            '"source":"bench","items":3},"context":{"library":{"name":"eventops-bench",'
            '"version":"1"},"ip":"127.0.0.1"}}}' %
            (tenant, received_ts, message_id, event_type, user, event_ts, event_ts, event_ts))


def producer(ck, brokers):
    """An idempotent producer (acks=all) with large batches, lz4 as the collector's."""
    return ck.Producer({"bootstrap.servers": brokers, "enable.idempotence": True,
                        "acks": "all", "linger.ms": 20, "batch.num.messages": 10000,
                        "compression.type": "lz4", "queue.buffering.max.messages": 500000,
                        "queue.buffering.max.kbytes": 1048576, "client.id": "eventops-bench"})


def produce_one(p, topic, key, value, failures):
    """produce() that waits for room in the local queue; delivery errors go to failures."""
    def on_delivery(err, _msg):
        if err is not None:
            failures.append(str(err))
    while True:
        try:
            p.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            p.poll(0.05)


def preproduce(ck, sb, tenant, n, keys, rate, seed):
    """Writes n records (users uniform over keys, event times from now advancing 1/rate s per
    record). Returns (seconds, end offsets {partition: high watermark})."""
    p = producer(ck, sb.brokers)
    rnd = random.Random(seed)
    stamp = Stamp()
    failures = []
    t0 = time.monotonic()
    base_us = int(time.time() * 1e6)
    step = 1e6 / rate
    run = eotest.rand_hex(8)
    for i in range(n):
        user = "user-%d" % rnd.randrange(keys)
        ts = stamp(base_us + int(i * step))
        produce_one(p, sb.events_topic, "%s:%s" % (tenant, user),
                    record(tenant, "b%s-%d" % (run, i), EVENT_TYPE, user, ts, ts), failures)
        if i % 10000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left or failures:
        raise RuntimeError("producing: %d not delivered, %d failed (%s)" %
                           (left, len(failures), failures[:3]))
    secs = time.monotonic() - t0
    return secs, end_offsets(ck, sb.brokers, sb.events_topic)


def end_offsets(ck, brokers, topic):
    """{partition: high watermark} of topic."""
    c = ck.Consumer({"bootstrap.servers": brokers, "group.id": "eventops-bench-probe",
                     "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        out = {}
        for part in sorted(md.topics[topic].partitions):
            _, high = c.get_watermark_offsets(ck.TopicPartition(topic, part), timeout=10,
                                              cached=False)
            out[part] = high
        return out
    finally:
        c.close()


def load_main(argv):
    """`load BROKERS TOPIC TENANT KEYS RATE SECONDS`: RATE events/s (event time = now) over KEYS
    users into TOPIC for SECONDS or until SIGTERM, paced in 10 ms slots. Prints one JSON line:
    {"sent", "seconds", "behind_s"} (behind_s: how far the sending fell behind its schedule at
    worst)."""
    brokers, topic, tenant = argv[0], argv[1], argv[2]
    keys, rate, seconds = int(argv[3]), float(argv[4]), float(argv[5])
    ck = kafkatest.confluent_kafka()
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    p = producer(ck, brokers)
    rnd = random.Random(os.getpid())
    stamp = Stamp()
    failures = []
    run = eotest.rand_hex(8)
    t0 = time.monotonic()
    sent = 0
    behind = 0.0
    while not stop[0]:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        due = int(now * rate) + 1
        if sent >= due:
            time.sleep(min(0.01, (sent + 1) / rate - now))
            continue
        behind = max(behind, now - sent / rate)
        us = int(time.time() * 1e6)
        ts = stamp(us)
        for i in range(sent, due):
            user = "user-%d" % rnd.randrange(keys)
            produce_one(p, topic, "%s:%s" % (tenant, user),
                        record(tenant, "l%s-%d" % (run, i), EVENT_TYPE, user, ts, ts), failures)
        sent = due
        p.poll(0)
    p.flush(30)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - t0, "behind_s": behind,
                      "failed": len(failures)}), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Processes: CPU, RSS, metrics, the group's progress

def cpu_seconds(pid, tid=None):
    """utime + stime of a process (or one of its threads), seconds."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    with open(path) as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def threads_cpu(pid):
    """[(cpu seconds, tid, name)] of the process's threads, most CPU first."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            out.append((cpu_seconds(pid, int(tid)), int(tid), name))
        except OSError:
            pass
    return sorted(out, reverse=True)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


class MachineCpu:
    """Busy CPU of the whole machine (all processes) between start() and stop(), % of one
    core."""

    @staticmethod
    def ticks():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # all but idle and iowait

    def __init__(self):
        self.t0, self.b0 = time.monotonic(), self.ticks()

    def percent(self):
        return 100.0 * (self.ticks() - self.b0) / CLK_TCK / max(time.monotonic() - self.t0, 1e-9)


def metrics(role):
    """{series: value} of the role's /metrics (series = name{labels} as printed)."""
    st, _, body = eotest.http_request("GET", "http://127.0.0.1:%d/metrics" % role.port,
                                      timeout=10)
    if st != 200:
        raise RuntimeError("GET /metrics: %s" % st)
    text = body.decode() if isinstance(body, bytes) else str(body)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def metric(ms, name, label=""):
    """Sum of the series of metric name whose labels contain label."""
    return sum(v for k, v in ms.items()
               if (k == name or k.startswith(name + "{")) and label in k)


class Committed:
    """The analytics group's committed offsets against the end offsets of phase 1: a consumer
    with the group's id that never subscribes (joins nothing, commits nothing)."""

    def __init__(self, ck, brokers, topic, group, ends):
        self.ck, self.topic, self.ends = ck, topic, ends
        self.tps = [ck.TopicPartition(topic, p) for p in sorted(ends)]
        self.c = ck.Consumer({"bootstrap.servers": brokers, "group.id": group,
                              "enable.auto.commit": False, "client.id": "eventops-bench-lag"})

    def done_records(self):
        """Records of the topic the group has committed (a partition without a commit: 0)."""
        n = 0
        for tp in self.c.committed(self.tps, timeout=10):
            if tp.error:
                raise RuntimeError("committed offset of %s/%d: %s" % (self.topic, tp.partition,
                                                                      tp.error))
            n += max(tp.offset, 0)
        return n

    def backlog(self):
        """Records on the topic now that the group has not committed."""
        n = self.done_records()
        for tp in self.tps:
            _, high = self.c.get_watermark_offsets(tp, timeout=10, cached=False)
            n -= high
        return -n

    def wait_backlog(self, below, timeout_s):
        """Waits until backlog() < below, at most timeout_s. Returns (seconds, backlog)."""
        t0 = time.monotonic()
        b = -1
        while True:
            try:
                b = self.backlog()
            except self.ck.KafkaException as e:  # a broker restart: ask again
                say("note: the backlog is unknown for now: %s" % e)
            if 0 <= b < below or time.monotonic() - t0 >= timeout_s:
                return time.monotonic() - t0, b
            time.sleep(0.2)

    def close(self):
        self.c.close()


# ---------------------------------------------------------------------------------------------
# Phases

def bare_read(sb, n):
    """kcat reads the events topic from the beginning to its end, read_committed, printing one
    byte per record to a pipe. Returns (wall s, CPU s, records)."""
    cmd = ["kcat", "-C", "-b", sb.brokers, "-t", sb.events_topic, "-o", "beginning", "-e", "-q",
           "-X", "isolation.level=read_committed", "-f", "."]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = 0
    while True:
        chunk = p.stdout.read(1 << 16)
        if not chunk:
            break
        got += len(chunk)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace").strip()
    if p.returncode != 0 or got != n:
        raise RuntimeError("kcat read %d of %d records (exit %d): %s" % (got, n, p.returncode,
                                                                         err[:300]))
    return wall, ru.ru_utime + ru.ru_stime, got


def perf_report(perf_data, pid):
    """The symbols of process pid with >= 1% of its samples (self time) in a perf.data, as text
    lines."""
    p = subprocess.run(["perf", "report", "-i", perf_data, "--pid", str(pid), "--stdio",
                        "--no-children", "-g", "none", "--percentage", "relative", "--sort",
                        "comm,dso,symbol", "--percent-limit", "1"],
                       capture_output=True, text=True, timeout=300)
    lines = [l.rstrip() for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")]
    if not lines:
        lines = ["perf report: %s" % p.stderr.strip()[:500]]
    say("perf (the role during the last run of (1b)):\n  " + "\n  ".join(lines))
    return lines


def engine_micro(args, runs, scan):
    """bench_engine (bench/engine.c, built beside EVENTOPS_BIN) `runs` times with `args` and
    BENCH_SCAN=scan (1: the record scanner, as the runner reads records):
    [{decode_us, engine_us, tick_us, total_us, events_per_cpu_s, rss_kib}] per event; [] when
    it is not there."""
    exe = os.path.join(os.path.dirname(os.path.abspath(os.environ["EVENTOPS_BIN"])),
                       "bench_engine")
    if not os.access(exe, os.X_OK):
        say("note: %s not found: no engine microbenchmark" % exe)
        return []
    out = []
    for _ in range(runs):
        text = subprocess.run([exe] + args.split(), capture_output=True, text=True, timeout=600,
                              check=True, env=dict(os.environ, BENCH_SCAN=scan)).stdout
        m = re.search(r"decode ([0-9.]+) us/event, engine ([0-9.]+) us/event, tick\+changelog "
                      r"([0-9.]+) us/event", text)
        t = re.search(r"total ([0-9.]+) us/event = ([0-9]+) events/s", text)
        r = re.search(r"RSS ([0-9]+) -> ([0-9]+) KiB", text)
        if not (m and t and r):
            raise RuntimeError("bench_engine printed: %s" % text)
        out.append({"decode_us": float(m.group(1)), "engine_us": float(m.group(2)),
                    "tick_us": float(m.group(3)), "total_us": float(t.group(1)),
                    "events_per_cpu_s": int(t.group(2)),
                    "rss_kib": int(r.group(2)) - int(r.group(1))})
        say("(E) bench_engine %s: %s" % (args, out[-1]))
    return out


def role_env(sb, keys, k):
    """The analytics role's settings for repeat k: its own group, instance, changelog, sink."""
    return {"EVENTOPS_ANALYTICS_MAX_GROUPS": str(max(100000, keys)),
            "EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT": str(4 << 30),
            "EVENTOPS_ANALYTICS_GROUP": "%s-r%d" % (sb.analytics_group, k),
            "EVENTOPS_ANALYTICS_ID": "%s-r%d" % (sb.analytics_id, k),
            "EVENTOPS_ANALYTICS_SINK_GROUP": "%s-r%d-sink" % (sb.analytics_group, k),
            "EVENTOPS_ANALYTICS_CHANGELOG_TOPIC": "%s-r%d" % (sb.changelog_topic, k),
            "EVENTOPS_LOG_LEVEL": "info"}


def throughput(ck, sb, n, keys, ends, k, stall_s, perf_data=None):
    """Phase (1b) for repeat k: starts the role, waits until its group committed every record.
    With perf_data, `perf record -g` samples the role meanwhile into that file. Returns (role,
    result dict)."""
    env = role_env(sb, keys, k)
    sb.run_bin("admin", "create-topics", "--partitions", str(sb.partitions), extra_env=env)
    lag = Committed(ck, sb.brokers, sb.events_topic, env["EVENTOPS_ANALYTICS_GROUP"], ends)
    machine = MachineCpu()
    role = sb.analytics(extra_env=env, name="analytics-r%d" % k)
    t0 = time.monotonic()
    role.start()
    perf = None
    if perf_data:  # the whole machine (-p misses threads made while it attaches); report: --pid
        perf = subprocess.Popen(["perf", "record", "-a", "-F", "499", "-g", "-o", perf_data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    last_n, last_change = -1, t0
    try:
        while True:
            try:
                done = lag.done_records()
            except ck.KafkaException as e:  # a broker restart: the stall check bounds it
                say("note: committed offsets unknown for now: %s" % e)
                done = max(last_n, 0)
            now = time.monotonic()
            if done >= n:
                cpu = cpu_seconds(role.pid)
                threads = threads_cpu(role.pid)
                break
            if done and first is None:
                first = (now, cpu_seconds(role.pid), done)
            if done != last_n:
                last_n, last_change = done, now
            elif now - last_change > stall_s:
                raise RuntimeError("the role's committed offsets stalled at %d of %d for %d s" %
                                   (done, n, stall_s))
            if not role.running():
                raise RuntimeError("the analytics role exited (%s)" % role.proc.returncode)
            time.sleep(0.1)
    finally:
        lag.close()
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
    wall = now - t0
    out = {"wall_s": wall, "cpu_s": cpu, "events_per_s": n / wall, "events_per_cpu_s": n / cpu,
           "machine_pct": machine.percent(),
           "threads": [[round(c, 2), name] for c, _, name in threads[:6]]}
    if first and n > first[2]:
        out["steady_wall_s"] = now - first[0]
        out["steady_events_per_s"] = (n - first[2]) / (now - first[0])
        out["steady_events_per_cpu_s"] = (n - first[2]) / max(cpu - first[1], 1e-9)
        out["startup_s"] = first[0] - t0
    ms = metrics(role)
    out["rss_kib"] = rss_kib(role.pid)
    out["groups"] = metric(ms, "eventops_analytics_state_groups")
    out["state_bytes"] = metric(ms, "eventops_analytics_state_bytes")
    out["outcomes"] = {o: metric(ms, "eventops_analytics_events_total", 'outcome="%s"' % o)
                       for o in ("received", "counted", "correction", "late", "overflow",
                                 "undecodable")}
    return role, out


class SummaryWatch:
    """A read_committed consumer of the summaries topic, assigned at its end: records the
    arrival time (monotonic) of the first firing summary of each group of the probe rule."""

    def __init__(self, ck, brokers, topic, rule_id):
        self.rule_id = rule_id
        self.seen = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.c = ck.Consumer({"bootstrap.servers": brokers, "group.id": "eventops-bench-watch",
                              "enable.auto.commit": False, "isolation.level": "read_committed",
                              "fetch.wait.max.ms": 20, "client.id": "eventops-bench-watch"})
        md = self.c.list_topics(topic, timeout=10)
        tps = []
        for part in sorted(md.topics[topic].partitions):
            _, high = self.c.get_watermark_offsets(ck.TopicPartition(topic, part), timeout=10,
                                                   cached=False)
            tps.append(ck.TopicPartition(topic, part, high))
        self.c.assign(tps)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            m = self.c.poll(0.1)
            if m is None or m.error():
                continue
            t = time.monotonic()
            try:
                s = json.loads(m.value())
            except ValueError:
                continue
            if s.get("status") != "firing" or (s.get("rule") or {}).get("id") != self.rule_id:
                continue
            user = (s.get("group") or {}).get("userId")
            with self.lock:
                self.seen.setdefault(user, t)

    def arrival(self, user):
        with self.lock:
            return self.seen.get(user)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.c.close()


def probes(sb, tenant, watch, count, gap_ms, timeout_s):
    """Phase (2): count probes, one every gap_ms (+-25% jitter), open loop. Returns ([(Unix
    time of the 202, latency s)], missing, refused)."""
    run = eotest.rand_hex(6)
    conn = None
    sent, wall = {}, {}
    refused = 0
    rnd = random.Random()
    next_at = time.monotonic()
    for i in range(count):
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at += gap_ms / 1000.0 * rnd.uniform(0.75, 1.25)
        user = "probe-%s-%d" % (run, i)
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
        batch = {"batch": [{"eventType": PROBE_TYPE, "userId": user,
                            "messageId": "%s-%d" % (user, j), "timestamp": now, "sentAt": now,
                            "properties": {"n": j}} for j in range(5)]}
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", sb.collector_port, timeout=30)
        try:
            st, _, body = eotest.post_json(sb.url("/events/batch"), batch, key=tenant["writeKey"],
                                           conn=conn)
        except eotest.HttpError:
            conn = None
            refused += 1
            continue
        t202 = time.monotonic()
        if st != 202 or (body or {}).get("accepted") != 5:
            refused += 1
            continue
        sent[user] = t202
        wall[user] = time.time()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(watch.arrival(u) is None for u in sent):
        time.sleep(0.1)
    if conn is not None:
        conn.close()
    each = [(wall[u], watch.arrival(u) - t) for u, t in sent.items()
            if watch.arrival(u) is not None]
    return each, len(sent) - len(each), refused


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def slope_per_min(samples):
    """Least-squares slope of [(seconds, KiB)] in KiB per minute (nan with < 2 samples)."""
    if len(samples) < 2:
        return float("nan")
    mx = statistics.fmean(t for t, _ in samples)
    my = statistics.fmean(v for _, v in samples)
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return sxy / sxx * 60 if sxx else float("nan")


def soak(role, seconds, every, load):
    """Phase (3b): samples the role every `every` s for `seconds` s while the load runs.
    Returns ([{t, rss_kib, groups, cpu_pct, lag}], the role's CPU s, seconds, [[% of a core,
    thread name]] of its busiest threads)."""
    out = []
    t0 = time.monotonic()
    prev_t, prev_cpu = t0, cpu_seconds(role.pid)
    threads0 = {tid: c for c, tid, _ in threads_cpu(role.pid)}
    cpu_seconds_at_start = prev_cpu
    while True:
        now = time.monotonic()
        ms = metrics(role)
        cpu = cpu_seconds(role.pid)
        out.append({"t": round(now - t0, 1), "rss_kib": rss_kib(role.pid),
                    "groups": metric(ms, "eventops_analytics_state_groups"),
                    "cpu_pct": round(100 * (cpu - prev_cpu) / (now - prev_t), 1) if out else None,
                    "lag": metric(ms, "eventops_kafka_consumer_lag")})
        say("soak %4.0fs: RSS %d KiB, %d groups, role CPU %s%%, lag %d" %
            (out[-1]["t"], out[-1]["rss_kib"], out[-1]["groups"], out[-1]["cpu_pct"],
             out[-1]["lag"]))
        prev_t, prev_cpu = now, cpu
        if now - t0 >= seconds or not role.running() or load.poll() is not None:
            el = max(now - t0, 1e-9)
            threads = sorted(((c - threads0.get(tid, 0.0)) / el * 100, name)
                             for c, tid, name in threads_cpu(role.pid))[::-1]
            return out, cpu - cpu_seconds_at_start, el, [[round(p, 1), n] for p, n in threads[:5]]
        time.sleep(max(0.0, t0 + every * len(out) - time.monotonic()))


def delete_topics(ck, sb, topics):
    """Deletes the run's topics (best effort): they hold the run's records."""
    try:
        admin = ck.admin.AdminClient({"bootstrap.servers": sb.brokers})
        there = set(admin.list_topics(timeout=10).topics)
        topics = [t for t in topics if t in there]
        if not topics:
            return
        for topic, fut in admin.delete_topics(topics, operation_timeout=30).items():
            try:
                fut.result(60)
            except Exception as e:  # noqa: BLE001 - one topic's failure must not stop the rest
                say("note: deleting topic %s: %s" % (topic, e))
    except Exception as e:  # noqa: BLE001
        say("note: deleting the topics failed: %s" % e)


# ---------------------------------------------------------------------------------------------
# The run

def fmt(x, digits=0):
    return "{:,.{}f}".format(x, digits)


class Settings:
    """The run's BENCH_A_* settings (see the opening comment)."""

    def __init__(self):
        self.n = setting("BENCH_A_EVENTS", 2000000)
        self.keys = setting("BENCH_A_KEYS", 100000)
        self.rate = setting("BENCH_A_RATE", 200000)
        self.partitions = setting("BENCH_A_PARTITIONS", 6)
        self.repeat = setting("BENCH_A_REPEAT", 3)
        self.threshold = setting("BENCH_A_THRESHOLD", 80)
        self.load_rate = setting("BENCH_A_LOAD_RATE", 20000)
        self.soak_rate = setting("BENCH_A_SOAK_RATE", self.load_rate)
        self.warmup_s = setting("BENCH_A_WARMUP_S", 15)
        self.probes = setting("BENCH_A_PROBES", 200)
        self.gap_ms = setting("BENCH_A_PROBE_GAP_MS", 400)
        self.probe_timeout = setting("BENCH_A_PROBE_TIMEOUT_S", 10)
        self.soak_s = setting("BENCH_A_SOAK_S", 120)
        self.sample_s = setting("BENCH_A_SAMPLE_S", 10)
        self.stall_s = setting("BENCH_A_STALL_S", 60)
        self.idle_s = setting("BENCH_A_IDLE_S", 20)
        self.keep = os.environ.get("BENCH_A_KEEP", "0") == "1"
        self.perf = os.environ.get("BENCH_A_PERF", "0") == "1"
        self.engine_runs = int(os.environ.get("BENCH_A_ENGINE_RUNS", "3"))
        self.engine_args = os.environ.get("BENCH_A_ENGINE_ARGS", "3000000 100000 1 5")
        self.engine_scan = os.environ.get("BENCH_A_ENGINE_SCAN", "1")


class Run:
    """One run in one sandbox: the phases in order, their results in self.res. The last role of
    (1b) goes on through (2), (3b) and (3c); self.load is the background load's process."""

    def __init__(self, cfg, ck, sb, res):
        self.cfg, self.ck, self.sb, self.res = cfg, ck, sb, res
        self.load = self.role = self.group = self.coll = None
        self.tenant, self.rules, self.ends = None, {}, None

    def setup(self):
        """The tenant, a signing key (the role needs one to be ready), the two rules, the
        collector (for the probes)."""
        sb, cfg = self.sb, self.cfg
        self.tenant = sb.create_tenant("bench")
        sb.create_signing_key()
        for name, body in (
                ("bench", {"name": "bench", "eventType": EVENT_TYPE,
                           "window": {"type": "hopping", "size": "5m", "slide": "1m"},
                           "groupBy": ["userId"], "aggregate": {"fn": "count"},
                           "maxGroups": max(100000, cfg.keys),
                           "condition": {"op": ">=", "value": cfg.threshold}}),
                ("probe", {"name": "probe", "eventType": PROBE_TYPE,
                           "window": {"type": "tumbling", "size": "10s"},
                           "groupBy": ["userId"], "aggregate": {"fn": "count"},
                           "condition": {"op": ">=", "value": 5, "early": True}})):
            path = os.path.join(sb.dir, "rule-%s.json" % name)
            with open(path, "w") as f:
                json.dump(body, f)
            self.rules[name] = sb.admin_json("rules", "create", "--tenant",
                                             self.tenant["tenantId"], "--file", path,
                                             extra_env=role_env(sb, cfg.keys, 1))["id"]
        self.coll = sb.collector(extra_env={"EVENTOPS_RATE_LIMIT_RATE": "100000",
                                            "EVENTOPS_RATE_LIMIT_BURST": "100000"})
        self.coll.start()
        self.coll.wait_ready()

    def idle(self):
        """(0): the role's RSS with no state."""
        env = role_env(self.sb, self.cfg.keys, 1)
        self.sb.run_bin("admin", "create-topics", "--partitions", str(self.cfg.partitions),
                        extra_env=env)
        idle = self.sb.analytics(extra_env=env, name="analytics-idle")
        idle.start()
        idle.wait_ready(120)
        time.sleep(2)
        self.res["idle_rss_kib"] = rss_kib(idle.pid)
        idle.stop()
        say("(0) idle role: RSS %d KiB" % self.res["idle_rss_kib"])

    def throughput(self):
        """(1) and (3a): the records produced, then bare read and role, cfg.repeat times."""
        cfg, sb, res, n = self.cfg, self.sb, self.res, self.cfg.n
        say("(1) producing %d records over %d keys into %s" % (n, cfg.keys, sb.events_topic))
        secs, self.ends = preproduce(self.ck, sb, self.tenant["tenantId"], n, cfg.keys, cfg.rate,
                                     1)
        res["produce_s"] = secs
        say("(1) produced in %.1f s (%s records/s); end offsets %s" %
            (secs, fmt(n / secs), self.ends))
        res["bare"], res["runs"] = [], []
        for k in range(1, cfg.repeat + 1):
            wall, cpu, _ = bare_read(sb, n)
            res["bare"].append({"wall_s": wall, "cpu_s": cpu, "events_per_s": n / wall,
                                "events_per_cpu_s": n / cpu})
            say("(1a.%d) bare read: %.2f s, %.2f CPU s: %s events/s, %s per CPU-second" %
                (k, wall, cpu, fmt(n / wall), fmt(n / cpu)))
            perf_data = os.path.join(sb.dir, "perf.data") if cfg.perf and k == cfg.repeat \
                else None
            self.role, run = throughput(self.ck, sb, n, cfg.keys, self.ends, k, cfg.stall_s,
                                        perf_data)
            if perf_data:
                res["perf"] = perf_report(perf_data, self.role.pid)
            res["runs"].append(run)
            say("(1b.%d) role: %.2f s, %.2f CPU s: %s events/s, %s per CPU-second "
                "(steady %s events/s, %s per CPU-second); machine %.0f%%; RSS %d KiB, "
                "%d groups; threads %s; outcomes %s" %
                (k, run["wall_s"], run["cpu_s"], fmt(run["events_per_s"]),
                 fmt(run["events_per_cpu_s"]), fmt(run.get("steady_events_per_s", 0)),
                 fmt(run.get("steady_events_per_cpu_s", 0)), run["machine_pct"],
                 run["rss_kib"], run["groups"], run["threads"], run["outcomes"]))
            oc = run["outcomes"]
            if oc["received"] != n or oc["counted"] != n or oc["overflow"] or oc["late"]:
                raise RuntimeError("the role did not count every record in a window: %s" % oc)
            if k < cfg.repeat:  # before its windows close (idle partitions after 5 s)
                self.stop_role()

    def start_load(self, events_per_s, seconds):
        """The background load (this script's `load`) for at most `seconds`."""
        self.load = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "load", self.sb.brokers,
             self.sb.events_topic, self.tenant["tenantId"], str(self.cfg.keys),
             str(events_per_s), str(seconds)], stdout=subprocess.PIPE, text=True)

    def stop_load(self):
        """Stops the load; returns its JSON summary ({} when it printed none)."""
        self.load.send_signal(signal.SIGTERM)
        out, _ = self.load.communicate(timeout=60)
        self.load = None
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}

    def latency(self):
        """(2): the load started, the role caught up, the probes."""
        cfg, sb, res = self.cfg, self.sb, self.res
        self.start_load(cfg.load_rate, cfg.warmup_s + 120 + cfg.probes * cfg.gap_ms / 800 +
                        cfg.probe_timeout + cfg.soak_s + 120)
        say("(2) load %d events/s; %d s warm-up" % (cfg.load_rate, cfg.warmup_s))
        time.sleep(cfg.warmup_s)
        self.group = Committed(self.ck, sb.brokers, sb.events_topic,
                               role_env(sb, cfg.keys, cfg.repeat)["EVENTOPS_ANALYTICS_GROUP"],
                               self.ends)
        waited, behind = self.group.wait_backlog(cfg.load_rate // 2, 120)
        res["catch_up"] = {"waited_s": waited, "backlog": behind}
        say("(2) the role's backlog: %d records after %.1f s more" % (behind, waited))
        watch = SummaryWatch(self.ck, sb.brokers, sb.summaries_topic, self.rules["probe"])
        machine = MachineCpu()
        cpu0, t0 = cpu_seconds(self.role.pid), time.monotonic()
        try:
            each, missing, refused = probes(sb, self.tenant, watch, cfg.probes, cfg.gap_ms,
                                            cfg.probe_timeout)
        finally:
            watch.close()
        lat = sorted(x for _, x in each)
        res["latency"] = {
            "each": [[round(t, 3), round(x, 4)] for t, x in each],
            "probes": cfg.probes, "missing": missing, "refused": refused,
            "p50_ms": 1000 * percentile(lat, 50), "p95_ms": 1000 * percentile(lat, 95),
            "p99_ms": 1000 * percentile(lat, 99), "max_ms": 1000 * (lat[-1] if lat else 0),
            "min_ms": 1000 * (lat[0] if lat else 0), "machine_pct": machine.percent(),
            "role_cpu_pct": 100 * (cpu_seconds(self.role.pid) - cpu0) / (time.monotonic() - t0)}
        say("(2) latency %s" % {k: v for k, v in res["latency"].items() if k != "each"})

    def soak(self):
        """(3b): the load (at cfg.soak_rate) for cfg.soak_s, the role sampled."""
        cfg = self.cfg
        if cfg.soak_rate != cfg.load_rate:
            self.stop_load()
            self.start_load(cfg.soak_rate, cfg.soak_s + 120)
            time.sleep(5)
        say("(3b) soak %d s at %d events/s, a sample every %d s" % (cfg.soak_s, cfg.soak_rate,
                                                                      cfg.sample_s))
        machine = MachineCpu()
        series, cpu, el, threads = soak(self.role, cfg.soak_s, cfg.sample_s, self.load)
        rss = [s["rss_kib"] for s in series]
        points = [(s["t"], s["rss_kib"]) for s in series]
        self.res["soak"] = {
            "seconds": cfg.soak_s, "samples": series, "first_kib": rss[0], "last_kib": rss[-1],
            "max_kib": max(rss), "slope_kib_per_min": slope_per_min(points),
            "slope_2nd_half_kib_per_min": slope_per_min(points[len(points) // 2:]),
            "machine_pct": machine.percent(), "role_cpu_s": cpu, "rate": cfg.soak_rate,
            "role_us_per_event": cpu / (el * cfg.soak_rate) * 1e6, "threads_pct": threads}
        self.res["load"] = self.stop_load()

    def no_events(self):
        """(3c): once the load is read, the role's CPU with its state and no input."""
        waited, behind = self.group.wait_backlog(1, 300)
        self.group.close()
        self.group = None
        if behind != 0:
            raise RuntimeError("the role still had %d records to read %.0f s after the load "
                               "stopped (-1: unknown)" % (behind, waited))
        time.sleep(6)  # the partitions go idle (EVENTOPS_ANALYTICS_IDLE_MS 5 s)
        machine = MachineCpu()
        cpu0, t0 = cpu_seconds(self.role.pid), time.monotonic()
        time.sleep(self.cfg.idle_s)
        self.res["idle_after"] = {
            "seconds": self.cfg.idle_s, "drained_s": waited,
            "groups": metric(metrics(self.role), "eventops_analytics_state_groups"),
            "role_cpu_pct": 100 * (cpu_seconds(self.role.pid) - cpu0) / (time.monotonic() - t0),
            "machine_pct": machine.percent()}
        say("(3c) no events: %s" % self.res["idle_after"])
        if not self.role.running():
            raise RuntimeError("the analytics role exited during the run")

    def stop_role(self):
        """SIGTERM to the role in hand; a non-zero exit is a failure of the run."""
        code = self.role.stop()
        if code != 0:
            self.sb.failures.fail("%s exited with %s on SIGTERM" % (self.role.name, code))

    def cleanup(self):
        """Stops what is still running (the sandbox kills the rest and drops the database)."""
        if self.load is not None and self.load.poll() is None:
            self.load.kill()
            self.load.wait()
        if self.group is not None:
            self.group.close()
        for r in self.sb.roles:
            if r.running():
                r.stop(timeout=20)


def main():
    cfg = Settings()
    ck = kafkatest.confluent_kafka()
    import confluent_kafka.admin  # noqa: F401,E402 - ck.admin (Debian's module, found above)

    res = {"bench": "eventops-analytics", "events": cfg.n, "keys": cfg.keys,
           "event_rate": cfg.rate, "partitions": cfg.partitions, "threshold": cfg.threshold,
           "load_rate": cfg.load_rate, "load_before": open("/proc/loadavg").read().split()[:3],
           "engine_args": cfg.engine_args, "engine_scan": cfg.engine_scan}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stdout = sys.stdout
    sys.stdout = sys.stderr  # eotest's progress lines; stdout gets the JSON line only
    res["engine"] = engine_micro(cfg.engine_args, cfg.engine_runs, cfg.engine_scan) \
        if cfg.engine_runs > 0 else []
    with eotest.Sandbox("bench-analytics", partitions=cfg.partitions, keep_dir=cfg.keep) as sb:
        repeats = ["%s-r%d" % (sb.changelog_topic, k) for k in range(1, cfg.repeat + 1)]
        topics = [sb.events_topic, sb.dlq_topic, sb.summaries_topic, sb.windows_topic,
                  sb.late_topic, sb.changelog_topic] + repeats
        run = Run(cfg, ck, sb, res)
        try:
            run.setup()
            run.idle()
            run.throughput()
            run.latency()
            run.soak()
            run.no_events()
            run.stop_role()
            run.coll.stop()
            sb.check_clean_end()
        finally:
            run.cleanup()
            if cfg.keep:
                say("kept: topics %s, logs %s" % (", ".join(topics), sb.dir))
            else:  # the sandbox deletes its own topics when it passes
                delete_topics(ck, sb, repeats)
        if sb.failures:
            return 1
    report(res, stdout)
    return 0


def report(res, out):
    """The summary table (stderr) and the JSON line (stdout)."""
    def med(xs):
        xs = [x for x in xs if x == x]  # without the NaNs (a run with no steady part)
        return statistics.median(xs) if xs else float("nan")

    def spread(xs, digits=0):
        return "median %s (%s)" % (fmt(med(xs), digits), " / ".join(fmt(x, digits) for x in xs))

    runs, bare = res["runs"], res["bare"]
    eps = [r["events_per_s"] for r in runs]
    epc = [r["events_per_cpu_s"] for r in runs]
    seps = [r.get("steady_events_per_s", float("nan")) for r in runs]
    sepc = [r.get("steady_events_per_cpu_s", float("nan")) for r in runs]
    beps = [b["events_per_s"] for b in bare]
    bepc = [b["events_per_cpu_s"] for b in bare]
    ratio_w = [r["events_per_s"] / b["events_per_s"] for r, b in zip(runs, bare)]
    ratio_c = [r["events_per_cpu_s"] / b["events_per_cpu_s"] for r, b in zip(runs, bare)]
    per100k = [(r["rss_kib"] - res["idle_rss_kib"]) / r["groups"] * 100000 / 1024
               for r in runs if r["groups"]]
    total100k = [r["rss_kib"] / r["groups"] * 100000 / 1024 for r in runs if r["groups"]]
    lat, sk = res["latency"], res["soak"]
    res["summary"] = {"events_per_s": med(eps), "events_per_cpu_s": med(epc),
                      "steady_events_per_cpu_s": med(sepc), "bare_events_per_s": med(beps),
                      "bare_events_per_cpu_s": med(bepc), "ratio_wall": med(ratio_w),
                      "ratio_cpu": med(ratio_c), "rss_mib_per_100k_keys": med(per100k),
                      "p99_ms": lat["p99_ms"],
                      "engine_events_per_cpu_s": med([e["events_per_cpu_s"]
                                                      for e in res["engine"]])}
    eng = res["engine"]
    slow = sorted(int(t % 60) for t, x in lat["each"] if x > 1.0)
    lines = [
        "",
        "EventOps analytics benchmark, %s; %d events over %d keys, %d partitions; load average "
        "before: %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), res["events"],
                        res["keys"], res["partitions"], " ".join(res["load_before"])),
        "(E) bench_engine %s (no Kafka, BENCH_SCAN=%s), %d runs, us/event: decode %s, engine %s, "
        "tick+changelog %s, total %s = events/s per core %s" % (
            res["engine_args"], res["engine_scan"], len(eng),
            spread([e["decode_us"] for e in eng], 2),
            spread([e["engine_us"] for e in eng], 2), spread([e["tick_us"] for e in eng], 2),
            spread([e["total_us"] for e in eng], 2),
            spread([e["events_per_cpu_s"] for e in eng])) if eng else "(E) not run",
        "(1) throughput, transactions on, %d runs (each: fresh group and changelog):" % len(runs),
        "  role, start to lag 0:       events/s %s; per CPU-second %s" % (spread(eps),
                                                                         spread(epc)),
        "  role, first commit to lag 0: events/s %s; per CPU-second %s" % (spread(seps),
                                                                          spread(sepc)),
        "  bare read_committed (kcat): events/s %s; per CPU-second %s" % (spread(beps),
                                                                         spread(bepc)),
        "  role / bare read:           wall %s; CPU %s" % (spread(ratio_w, 3),
                                                            spread(ratio_c, 3)),
        "  machine busy during the role's runs: %s %% of %d%%" % (
            " / ".join("%.0f" % r["machine_pct"] for r in runs), 100 * os.cpu_count()),
        "  threads of the last run (CPU s): %s" % ", ".join(
            "%s %s" % (name, cpu) for cpu, name in runs[-1]["threads"]),
        "(3a) memory after (1): RSS %s KiB with %s groups (idle role: %d KiB); per 100k keys: "
        "%s MiB above idle, %s MiB in all; the engine counts %s MB of state" % (
            " / ".join(str(r["rss_kib"]) for r in runs),
            " / ".join("%d" % r["groups"] for r in runs), res["idle_rss_kib"],
            spread(per100k, 1), spread(total100k, 1),
            spread([r["state_bytes"] / 1e6 for r in runs], 1)),
        "(2) latency, 202 of the threshold-crossing batch to the firing summary on the topic, %d "
        "probes under %s events/s: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (min %.0f"
        " ms); missing %d, refused %d; goal p99 <= 1000 ms: %s" % (
            lat["probes"], fmt(res["load_rate"]), lat["p50_ms"], lat["p95_ms"], lat["p99_ms"],
            lat["max_ms"], lat["min_ms"], lat["missing"], lat["refused"],
            "PASS" if lat["p99_ms"] <= 1000 and not lat["missing"] else "FAIL"),
        "    role CPU %.0f%%, machine %.0f%% of %d%%; before the first probe the role's backlog "
        "was %d records (%.1f s after the warm-up)" % (
            lat["role_cpu_pct"], lat["machine_pct"], 100 * os.cpu_count(),
            res["catch_up"]["backlog"], res["catch_up"]["waited_s"]),
        "    probes over 1 s: %d, sent at second %s of the minute" % (
            len(slow), " ".join(str(x) for x in slow) or "-"),
        "(3b) soak %d s under %s events/s: RSS first %d, last %d, max %d KiB; slope %.0f KiB/min "
        "(second half %.0f KiB/min); machine %.0f%%" % (
            sk["seconds"], fmt(sk["rate"]), sk["first_kib"], sk["last_kib"], sk["max_kib"],
            sk["slope_kib_per_min"], sk["slope_2nd_half_kib_per_min"], sk["machine_pct"]),
        "    RSS series (KiB): %s" % " ".join(str(s["rss_kib"]) for s in sk["samples"]),
        "    role CPU %.2f us per event of the load, all in (windows closing, summaries, "
        "checkpoints, the sink); busiest threads (%% of a core): %s" % (
            sk["role_us_per_event"], ", ".join("%s %s" % (n, p) for p, n in sk["threads_pct"])),
        "    load: %s" % res.get("load"),
        "(3c) no events for %d s (once the backlog was read, %.0f s after the load stopped), %d "
        "groups in state: role CPU %.0f%% of a core (machine %.0f%%)" % (
            res["idle_after"]["seconds"], res["idle_after"]["drained_s"],
            res["idle_after"]["groups"],
            res["idle_after"]["role_cpu_pct"], res["idle_after"]["machine_pct"]),
        "goal 200k events/s per core (floor 100k): %s per CPU-second -> %s" % (
            fmt(med(epc)), "goal met" if med(epc) >= 200000 else
            "floor met" if med(epc) >= 100000 else "FLOOR MISSED"),
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
    print(json.dumps(res, separators=(",", ":")), file=out, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        sys.exit(load_main(sys.argv[2:]))
    if len(sys.argv) > 1:
        print(__doc__, file=sys.stderr)
        sys.exit(0 if sys.argv[1] in ("-h", "--help") else 2)
    sys.exit(main())
