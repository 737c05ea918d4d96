"""Shared by the end-to-end tests of Kafka failures (test_kafka_crash.py, test_kafka_fatal.py):
a steady load whose batches are resent with the same messageIds until they get a 202, a
/readyz watcher, the set of stored messageIds, the processor's lag gauge, and the group's real
backlog read without EventOps (Debian's python3-confluent-kafka)."""

import http.client
import json
import os
import re
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402
from eotest import check_storage, ready_status  # noqa: E402

RUN = eotest.rand_hex(6)
SENDERS = 4
BATCH = 20
RATE = 400.0                  # events per second, all senders together
READY_POLL_S = 0.5
BATCH_DEADLINE_S = 90.0       # one batch gets a 202 by then, or it is a failure
DEBIAN_DIST = "/usr/lib/python3/dist-packages"


# ---------------------------------------------------------------------------------------------
# The real backlog (confluent-kafka) and the processor's lag gauge

def confluent_kafka():
    """The confluent_kafka module (Debian's python3-confluent-kafka). When the interpreter is
    not Debian's own (pyenv), Debian's dist-packages folder is appended to sys.path, after every
    other entry, so that it only supplies what is missing."""
    try:
        import confluent_kafka as ck
    except ImportError:
        if DEBIAN_DIST in sys.path or \
                not os.path.isdir(os.path.join(DEBIAN_DIST, "confluent_kafka")):
            raise
        sys.path.append(DEBIAN_DIST)
        import confluent_kafka as ck
    return ck


class Backlog:
    """The group's real backlog, computed without EventOps: per partition of the events topic,
    the high watermark minus the group's committed offset (the low watermark when the group
    committed nothing). The consumer has the group's id but never subscribes, so it joins no
    group and commits nothing."""

    def __init__(self, sb):
        self.ck = confluent_kafka()
        self.topic = sb.events_topic
        self.consumer = self.ck.Consumer({"bootstrap.servers": sb.brokers,
                                          "group.id": sb.group, "enable.auto.commit": False,
                                          "client.id": "e2e-backlog-probe"})

    def __call__(self):
        """{partition: records not committed by the group}."""
        md = self.consumer.list_topics(self.topic, timeout=10)
        parts = sorted(md.topics[self.topic].partitions)
        tps = [self.ck.TopicPartition(self.topic, p) for p in parts]
        committed = {}
        for tp in self.consumer.committed(tps, timeout=10):
            if tp.error:
                raise RuntimeError("committed offset of %s/%d: %s" %
                                   (self.topic, tp.partition, tp.error))
            committed[tp.partition] = tp.offset
        out = {}
        for p in parts:
            low, high = self.consumer.get_watermark_offsets(
                self.ck.TopicPartition(self.topic, p), timeout=10, cached=False)
            base = committed.get(p, -1)
            if base < 0:
                base = low
            out[p] = max(high - base, 0)
        return out

    def close(self):
        self.consumer.close()


_LAG_RE = re.compile(r"^eventops_kafka_consumer_lag\{([^}]*)\}\s+(\S+)", re.M)
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def lag_gauge(sb):
    """{partition: value} of the processor's eventops_kafka_consumer_lag series for the
    sandbox's events topic; None when GET /metrics does not answer 200."""
    try:
        st, _, body = eotest.http_request(
            "GET", "http://127.0.0.1:%d/metrics" % sb.processor_port, timeout=5)
    except eotest.HttpError:
        return None
    if st != 200:
        return None
    text = body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body)
    out = {}
    for m in _LAG_RE.finditer(text):
        labels = dict(_LABEL_RE.findall(m.group(1)))
        if labels.get("role") != "processor" or labels.get("topic") != sb.events_topic:
            continue
        try:
            p = int(labels.get("partition", ""))
            out[p] = out.get(p, 0) + float(m.group(2))
        except ValueError:
            continue
    return out


# ---------------------------------------------------------------------------------------------
# Load and readiness

def make_batch(prefix, k):
    ids = ["%s-%s-%06d-%02d" % (prefix, RUN, k, i) for i in range(BATCH)]
    types = ("kc_viewed", "kc_clicked", "kc_bought")
    events = [{"messageId": m, "eventType": types[(k + i) % 3],
               "userId": "u-%03d" % ((k * BATCH + i) % 499),  # spread over the partitions
               "properties": {"k": k, "i": i}} for i, m in enumerate(ids)]
    return ids, events


class Load:
    """SENDERS threads posting batches over keep-alive connections at RATE events/s in all,
    each batch until it gets a 202. max_batches: per sender (None: until stop()). Records every
    answer (eotest.Sent) and the messageIds acknowledged, with the time of their 202."""

    def __init__(self, sb, key, prefix, max_batches=None):
        self.sb, self.key, self.prefix = sb, key, prefix
        self.url = sb.url("/events/batch")
        self.max_batches = max_batches
        self.period = BATCH * SENDERS / RATE
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.lock = threading.Lock()
        self.answers = []         # Sent, every request
        self.accepted = []        # (monotonic time of the 202, ids)
        self.bad = []             # descriptions of answers that are failures
        self.uncertain = set()    # ids of batches that ended without a proper 202
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                         name="%s-sender%d" % (prefix, i))
                        for i in range(SENDERS)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self, timeout=BATCH_DEADLINE_S + 15):
        """Lets each sender finish its batch (until its 202) and waits for them."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.1, deadline - time.monotonic()))
        return not any(th.is_alive() for th in self.threads)

    def abort(self):
        self._stop.set()
        self._abort.set()
        for th in self.threads:
            th.join(35)

    def done(self):
        return not any(th.is_alive() for th in self.threads)

    def acked(self, before=None):
        """messageIds that got a 202 (before the monotonic time `before`, when given)."""
        with self.lock:
            return {m for t, ids in self.accepted if before is None or t < before for m in ids}

    def first_batch(self, after):
        """The ids of the first batch acknowledged after the monotonic time `after` (None:
        none yet)."""
        with self.lock:
            later = [(t, ids) for t, ids in self.accepted if t >= after]
        return min(later)[1] if later else None

    def first_202(self, sent_after):
        """The first 202 answer to a request sent at or after sent_after (None: none yet)."""
        with self.lock:
            ok = [r for r in self.answers if r.status == 202 and r.t_send >= sent_after]
        return min(ok, key=lambda r: r.t_end) if ok else None

    def answers_between(self, t0, t1):
        with self.lock:
            return [r for r in self.answers if t0 <= r.t_send < t1]

    def _bad(self, text):
        with self.lock:
            self.bad.append(text)
            first = len(self.bad) <= 5
        if first:
            log("bad answer: %s" % text)

    def _run(self, idx):
        conn = None
        k = 0
        next_t = time.monotonic() + idx * self.period / SENDERS
        try:
            while not self._stop.is_set():
                if self.max_batches is not None and k >= self.max_batches:
                    break
                if self._stop.wait(max(0.0, next_t - time.monotonic())):
                    break
                ids, evs = make_batch("%s-s%d" % (self.prefix, idx), k)
                k += 1
                conn = self._send_until_202(conn, ids, evs)
                next_t = max(next_t + self.period, time.monotonic())
        finally:
            if conn is not None:
                conn.close()

    def _send_until_202(self, conn, ids, evs):
        deadline = time.monotonic() + BATCH_DEADLINE_S
        tries = 0
        while not self._abort.is_set():
            if time.monotonic() > deadline:
                self._bad("batch %s got no 202 in %.0f s (%d tries)" %
                          (ids[0], BATCH_DEADLINE_S, tries))
                with self.lock:
                    self.uncertain.update(ids)
                return conn
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.sb.collector_port,
                                                  timeout=30)
            r = eotest.send(self.url, evs, self.key, conn=conn)
            tries += 1
            with self.lock:
                self.answers.append(r)
            if r.status == "ERR":
                conn = None  # eotest.send closed it
                time.sleep(0.2)
                continue
            if r.status == 202:
                body = r.body if isinstance(r.body, dict) else {}
                if body.get("messageIds") == ids and body.get("accepted") == len(ids):
                    with self.lock:
                        self.accepted.append((r.t_end, ids))
                else:
                    self._bad("202 for %s does not list the %d messageIds sent: %.200s" %
                              (ids[0], len(ids), json.dumps(r.body)))
                    with self.lock:
                        self.uncertain.update(ids)
                return conn
            if r.status == 503:
                ra = r.hdrs.get("retry-after", "")
                if not (ra.isdigit() and int(ra) >= 1):
                    self._bad("503 without a valid Retry-After (%r): %r" % (ra, r))
                time.sleep(min(float(ra) if ra.isdigit() else 1.0, 1.0))
                continue
            # any other 2xx, 4xx or 5xx
            self._bad("unexpected answer to batch %s: %r" % (ids[0], r))
            with self.lock:
                self.uncertain.update(ids)
            return conn
        with self.lock:
            self.uncertain.update(ids)
        return conn


class ReadyWatch:
    """One thread per role polling its /readyz every READY_POLL_S; records (monotonic time the
    request was sent, status or None when nothing answered)."""

    def __init__(self, urls):
        self.urls = urls
        self.seen = {role: [] for role in urls}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(role,), daemon=True,
                                         name="readyz-%s" % role) for role in urls]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self._stop.set()
        for th in self.threads:
            th.join(10)

    def _run(self, role):
        while not self._stop.is_set():
            t = time.monotonic()
            st = ready_status(self.urls[role], timeout=3)
            self.seen[role].append((t, st))
            self._stop.wait(max(0.0, READY_POLL_S - (time.monotonic() - t)))

    def between(self, role, t0, t1):
        return [st for t, st in list(self.seen[role]) if t0 <= t < t1]


class StoredIds:
    """messageIds of one tenant known to be stored (event_ids only grows): the database is asked
    only about the ones not known yet."""

    def __init__(self, sb, tenant_id):
        self.sb, self.tenant_id = sb, tenant_id
        self.known = set()

    def missing(self, ids):
        todo = sorted(m for m in ids if m not in self.known)
        for i in range(0, len(todo), 2000):
            lits = ",".join("'%s'" % m for m in todo[i:i + 2000])  # ours: [a-z0-9-]
            rows = self.sb.sql("SELECT message_id FROM event_ids WHERE tenant_id = '%s' AND "
                               "message_id IN (%s)" % (self.tenant_id, lits))
            self.known.update(r[0] for r in rows)
        return [m for m in todo if m not in self.known]

    def count(self):
        return self.sb.tenant_count(self.tenant_id)


def alive(pid):
    """True while pid is a process that is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def statuses(sts):
    return dict(Counter("none" if s is None else s for s in sts))


def check_exact(sb, F, tenant_id, accepted, what):
    """The tenant's stored set equals the acknowledged set, no duplicates, exact rollups."""
    check_storage(sb, F, {tenant_id: accepted}, {tenant_id: accepted}, what)
    n, distinct = sb.sql("SELECT count(*), count(DISTINCT message_id) FROM events WHERE "
                         "tenant_id = '%s'" % tenant_id)[0]
    F.check(n == distinct, "%s: %s rows but %s distinct messageIds" % (what, n, distinct))


def preflight():
    """None when a Kafka-failure test can run: the stack's settings are set, confluent-kafka
    imports and the stack answers; else the reason (the test prints it and fails)."""
    for name in ("EVENTOPS_PG_DSN", "EVENTOPS_KAFKA_BROKERS"):
        eotest.env_required(name)
    try:
        confluent_kafka()
    except ImportError:
        return "confluent_kafka not found (Debian python3-confluent-kafka: scripts/deps.sh)"
    if not (eotest.pg_answers() and eotest.kafka_answers()):
        return "the stack does not answer before the test (scripts/stack.sh up)"
    return None
