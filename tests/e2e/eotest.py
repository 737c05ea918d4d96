"""Shared helpers for the EventOps end-to-end tests (tests/e2e/test_*.py).

Standard library only, plus the CLI tools `psql` and `kcat`. The tests drive the built binary
($EVENTOPS_BIN) against the local stack whose settings come from the environment
(`eval "$(scripts/stack.sh env)"`: EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS, ...).

Typical use:

    import eotest
    with eotest.Sandbox("mytest") as sb:          # fresh database + topics, cleaned up after
        t = sb.create_tenant("acme")               # {"tenantId", "writeKey", ...}
        coll = sb.collector(); proc = sb.processor()
        coll.start(); proc.start()
        coll.wait_ready(); proc.wait_ready()
        st, hdrs, body = eotest.post_json(coll.url("/events/batch"), [...], key=t["writeKey"])
        rows = sb.sql("SELECT count(*) FROM events")
        dlq = eotest.consume(sb.brokers, sb.dlq_topic)
        ...
        eotest.check(cond, "what differed")       # collects failures; sb.report() prints them

Everything a sandbox creates is unique to it (database eo_e2e_<hex>, topics e2e.<hex>.events
and e2e.<hex>.dlq, consumer group, processor id, free TCP ports), so runs are isolated and
repeatable. Process logs (JSON lines on stderr) go to files in a temporary directory; on
failure `Sandbox.dump_logs()` prints their tails.
"""

import gzip as _gzip
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

__all__ = [
    "Sandbox", "Role", "Failures", "HttpError", "free_port", "dsn_with_dbname", "psql",
    "http_request", "post_json", "post_raw", "http_get", "produce", "consume", "wait_until",
    "log", "rand_hex",
]

_T0 = time.monotonic()
_print_lock = threading.Lock()


def log(*args):
    """Prints a progress line prefixed with seconds since the module was loaded."""
    with _print_lock:
        print("[%7.2fs]" % (time.monotonic() - _T0), *args, flush=True)


def rand_hex(n=8):
    """n random lower-case hex characters (for unique names)."""
    return "%0*x" % (n, random.SystemRandom().getrandbits(4 * n))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_required(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit("%s is not set (eval \"$(scripts/stack.sh env)\" and set EVENTOPS_BIN)"
                         % name)
    return v


# ---------------------------------------------------------------------------------------------
# wait_until and failure collection

def wait_until(predicate, timeout, interval=0.2, what=None):
    """Calls predicate() until it returns a truthy value or timeout seconds pass. Returns the
    last value (falsy on timeout). Exceptions from predicate count as falsy. When `what` is
    given, a timeout raises TimeoutError(what) instead of returning."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a failing probe just means "not yet"
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            if what:
                raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
            return value
        time.sleep(interval)


class Failures:
    """Collects assertion failures so a test can report every difference, not just the first."""

    def __init__(self):
        self.items = []
        self._lock = threading.Lock()

    def check(self, cond, message):
        """Records message when cond is false. Returns cond."""
        if not cond:
            with self._lock:
                self.items.append(message)
            log("FAIL:", message)
        return cond

    def fail(self, message):
        self.check(False, message)

    def __bool__(self):
        return bool(self.items)


def describe_set_diff(name_a, a, name_b, b, limit=10):
    """One line describing how two sets differ (sizes and a few examples of each side)."""
    only_a = sorted(a - b)
    only_b = sorted(b - a)
    return ("%s has %d, %s has %d; only in %s: %d %s; only in %s: %d %s" %
            (name_a, len(a), name_b, len(b), name_a, len(only_a), only_a[:limit], name_b,
             len(only_b), only_b[:limit]))


# ---------------------------------------------------------------------------------------------
# PostgreSQL via psql

_FS = "\x1f"  # field separator
_RS = "\x1e"  # record separator
_NULL = "\x1d"  # printed for SQL NULL


def dsn_with_dbname(dsn, dbname):
    """The libpq key=value DSN with dbname replaced (or added). URIs are supported too."""
    if dsn.startswith(("postgres://", "postgresql://")):
        u = urllib.parse.urlsplit(dsn)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))
    parts = [p for p in re.findall(r"(\w+\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+))", dsn)
             if not re.match(r"dbname\s*=", p)]
    return " ".join(parts + ["dbname=%s" % dbname])


def psql(dsn, sql, timeout=120):
    """Runs sql (one or more statements; ON_ERROR_STOP) and returns the rows of the last
    statement as a list of tuples of str (None for NULL). Raises RuntimeError on error."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", _FS, "-R", _RS,
           "-P", "null=" + _NULL, "-d", dsn]
    p = subprocess.run(cmd, input=sql.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql failed (%d): %s\nSQL: %s" %
                           (p.returncode, p.stderr.decode(errors="replace").strip(), sql[:500]))
    out = p.stdout.decode()
    if out.endswith("\n"):
        out = out[:-1]
    rows = []
    for rec in out.split(_RS):
        if rec == "":
            continue
        rows.append(tuple(None if f == _NULL else f for f in rec.split(_FS)))
    return rows


# ---------------------------------------------------------------------------------------------
# HTTP

class HttpError(Exception):
    """The request got no HTTP answer (connection refused/reset, timeout, bad response)."""


def http_request(method, url, body=None, headers=None, timeout=30, conn=None):
    """Sends one request. body: bytes or None. Returns (status, headers, parsed) where headers
    is a dict with lower-case names and parsed is the JSON body (or the raw bytes when it is
    not JSON). Raises HttpError when no answer arrived. With conn (an HTTPConnection kept by
    the caller for keep-alive) the request goes over it; the caller closes it on HttpError."""
    u = urllib.parse.urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        raise HttpError("%s %s: %s: %s" % (method, url, type(e).__name__, e)) from e
    finally:
        if own:
            conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, hdrs, parsed


def auth_headers(key=None, extra=None):
    h = {}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    h.update(extra or {})
    return h


def post_raw(url, data, key=None, headers=None, content_type="application/json", gzip=False,
             timeout=30, conn=None):
    """POSTs raw bytes (gzip-compressed when gzip=True). Returns (status, headers, parsed)."""
    h = {"Content-Type": content_type} if content_type else {}
    if gzip:
        data = _gzip.compress(data)
        h["Content-Encoding"] = "gzip"
    h.update(auth_headers(key, headers))
    return http_request("POST", url, data, h, timeout=timeout, conn=conn)


def post_json(url, obj, key=None, headers=None, gzip=False, timeout=30, conn=None):
    """POSTs obj as JSON. Returns (status, headers, parsed JSON body)."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    return post_raw(url, data, key=key, headers=headers, gzip=gzip, timeout=timeout, conn=conn)


def http_get(url, timeout=5):
    """GET; returns (status, headers, parsed). Raises HttpError when nothing answered."""
    return http_request("GET", url, None, None, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Kafka via kcat

_KCAT_MSG_DELIM = "\x1e"
_KCAT_KEY_DELIM = "\x1f"


def produce(brokers, topic, records, timeout=60):
    """Writes records to topic with kcat (acks=all, waits for delivery). records: iterable of
    values or (key, value) pairs, str or bytes; keys and values must not contain the bytes
    0x1e or 0x1f (used as delimiters). Raises RuntimeError when kcat fails."""
    buf = bytearray()
    keyed = None
    for r in records:
        if isinstance(r, tuple):
            k, v = r
        else:
            k, v = None, r
        if keyed is None:
            keyed = k is not None
        if (k is not None) != keyed:
            raise ValueError("mix of keyed and unkeyed records")
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        for part in (k or b"", v):
            if b"\x1e" in part or b"\x1f" in part:
                raise ValueError("record holds a delimiter byte")
        if keyed:
            buf += k + b"\x1f"
        buf += v + b"\x1e"
    cmd = ["kcat", "-P", "-b", brokers, "-t", topic, "-D", "\\x1e", "-X", "acks=all"]
    if keyed:
        cmd += ["-K", "\\x1f"]
    p = subprocess.run(cmd, input=bytes(buf), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError("kcat produce to %s failed (%d): %s" %
                           (topic, p.returncode, p.stderr.decode(errors="replace")))


def consume(brokers, topic, read_committed=True, timeout=60):
    """Reads topic from the beginning to its current end (read_committed by default: aborted
    transactions are skipped) with kcat. Returns a list of dicts {partition, offset, key,
    value, headers} where key/value are str (None for null) and headers a list of
    (name, value) pairs in order."""
    cmd = ["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-o", "beginning", "-J", "-q"]
    if read_committed:
        cmd += ["-X", "isolation.level=read_committed"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("kcat consume %s failed (%d): %s" %
                           (topic, p.returncode, p.stderr.decode(errors="replace")))
    out = []
    for line in p.stdout.decode().splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        h = m.get("headers") or []
        out.append({
            "partition": m["partition"],
            "offset": m["offset"],
            "key": m.get("key"),
            "value": m.get("payload"),
            "headers": list(zip(h[0::2], h[1::2])),
        })
    return out


# ---------------------------------------------------------------------------------------------
# Processes

class Role:
    """One `eventops ROLE` subprocess (collector, processor or all) with a fixed environment.
    It can be started, killed and restarted any number of times; every incarnation appends
    its stderr to the same log file, after a marker line written by the test."""

    def __init__(self, binary, role, env, log_path, ready_urls):
        self.binary = binary
        self.role = role
        self.env = env
        self.log_path = log_path
        self.ready_urls = ready_urls
        self.proc = None
        self.starts = 0
        self.kills = 0

    def _mark(self, text):
        with open(self.log_path, "ab") as f:
            f.write(("---- e2e: %s %s ----\n" % (self.role, text)).encode())

    def start(self):
        if self.running():
            raise RuntimeError("%s is already running" % self.role)
        self.starts += 1
        self._mark("start #%d" % self.starts)
        f = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, self.role], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        finally:
            f.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def is_ready(self):
        """True when every /readyz of the role answers 200."""
        for u in self.ready_urls:
            try:
                st, _, _ = http_get(u, timeout=3)
            except HttpError:
                return False
            if st != 200:
                return False
        return True

    def wait_ready(self, timeout=60):
        """Waits until /readyz answers 200; raises TimeoutError (or RuntimeError when the
        process exited) otherwise."""
        def probe():
            if not self.running():
                raise_exit[0] = True
                return True
            return self.is_ready()
        raise_exit = [False]
        ok = wait_until(probe, timeout, interval=0.1)
        if raise_exit[0]:
            raise RuntimeError("%s exited with %s before it was ready" %
                               (self.role, self.proc.returncode))
        if not ok:
            raise TimeoutError("%s not ready after %.0f s" % (self.role, timeout))

    def kill(self, sig=signal.SIGKILL):
        """Sends sig and, for SIGKILL, reaps the process. Returns the exit code (or None)."""
        if not self.running():
            raise RuntimeError("%s is not running" % self.role)
        self._mark("signal %s" % signal.Signals(sig).name)
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.kills += 1
            return self.proc.wait(timeout=30)
        return None

    def stop(self, timeout=60):
        """SIGTERM and waits; returns the exit code (SIGKILL and -9 after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._mark("signal SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._mark("did not stop in %.0f s; SIGKILL" % timeout)
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode

    def restart(self, pause=0.0):
        """Kills (SIGKILL) if running, sleeps pause seconds, starts again."""
        if self.running():
            self.kill()
        if pause:
            time.sleep(pause)
        return self.start()

    def tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(data[-lines:])

    def grep(self, needle):
        """Lines of the log containing needle."""
        try:
            with open(self.log_path, "rb") as f:
                return [l for l in f.read().decode(errors="replace").splitlines() if needle in l]
        except OSError:
            return []


class Sandbox:
    """An isolated EventOps installation on the shared stack: its own database (migrated),
    events and dead-letter topics, consumer group, processor id and ports. Use as a context
    manager; on exit the processes are stopped, the database dropped and (when keep_dir is
    false and the test passed) the log directory removed.

    Attributes: name, bin, brokers, base_dsn, dbname, dsn, events_topic, dlq_topic, group,
    processor_id, collector_port, processor_port, dir, env (for the roles), failures."""

    def __init__(self, name="e2e", partitions=6, extra_env=None, keep_dir=False):
        self.bin = os.path.abspath(env_required("EVENTOPS_BIN"))
        self.base_dsn = env_required("EVENTOPS_PG_DSN")
        self.brokers = env_required("EVENTOPS_KAFKA_BROKERS")
        self.id = rand_hex(10)
        self.name = name
        self.dbname = "eo_e2e_%s" % self.id
        self.dsn = dsn_with_dbname(self.base_dsn, self.dbname)
        self.events_topic = "e2e.%s.events" % self.id
        self.dlq_topic = "e2e.%s.dlq" % self.id
        self.group = "e2e-%s-%s" % (name, self.id)
        self.processor_id = "e2e-%s-p1" % self.id
        self.collector_port = free_port()
        self.processor_port = free_port()
        while self.processor_port == self.collector_port:
            self.processor_port = free_port()
        self.partitions = partitions
        self.extra_env = dict(extra_env or {})
        self.keep_dir = keep_dir
        self.dir = tempfile.mkdtemp(prefix="eo-e2e-%s-" % name)
        self.failures = Failures()
        self.roles = []
        self._db_created = False
        self.env = self._role_env()

    # -- setup / teardown --

    def _role_env(self):
        env = dict(os.environ)
        env.update({
            "EVENTOPS_PG_DSN": self.dsn,
            "EVENTOPS_KAFKA_BROKERS": self.brokers,
            "EVENTOPS_KAFKA_EVENTS_TOPIC": self.events_topic,
            "EVENTOPS_KAFKA_DLQ_TOPIC": self.dlq_topic,
            "EVENTOPS_PROCESSOR_GROUP": self.group,
            "EVENTOPS_PROCESSOR_ID": self.processor_id,
            "EVENTOPS_COLLECTOR_ADDR": "127.0.0.1",
            "EVENTOPS_COLLECTOR_PORT": str(self.collector_port),
            "EVENTOPS_PROCESSOR_ADDR": "127.0.0.1",
            "EVENTOPS_PROCESSOR_PORT": str(self.processor_port),
        })
        env.update(self.extra_env)
        return env

    def run_bin(self, *args, timeout=120, check=True):
        """Runs `eventops ARGS` with the sandbox environment; returns CompletedProcess (text)."""
        p = subprocess.run([self.bin, *args], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        if check and p.returncode != 0:
            raise RuntimeError("eventops %s failed (%d): %s%s" %
                               (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def setup(self):
        psql(self.base_dsn, 'CREATE DATABASE "%s"' % self.dbname)
        self._db_created = True
        self.run_bin("migrate")
        self.run_bin("admin", "create-topics", "--partitions", str(self.partitions), "--json")
        log("sandbox %s: db %s, topics %s / %s, collector :%d, processor :%d, logs %s" %
            (self.id, self.dbname, self.events_topic, self.dlq_topic, self.collector_port,
             self.processor_port, self.dir))
        return self

    def teardown(self):
        for r in self.roles:
            if r.running():
                r.proc.kill()
                r.proc.wait()
        if self._db_created:
            try:
                psql(self.base_dsn, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.dbname)
            except Exception as e:  # noqa: BLE001
                log("warning: dropping %s failed: %s" % (self.dbname, e))
        if not self.keep_dir and not self.failures:
            shutil.rmtree(self.dir, ignore_errors=True)
        # Topics are left behind: deleting them through the Kafka CLI takes seconds per topic.

    def __enter__(self):
        try:
            return self.setup()
        except BaseException:
            self.teardown()
            raise

    def __exit__(self, et, ev, tb):
        if et is not None or self.failures:
            self.dump_logs()
        self.teardown()
        return False

    # -- tenants, SQL --

    def create_tenant(self, name):
        """Creates a tenant with a write key: {"tenantId", "name", "writeKeyId", "writeKey"}."""
        p = self.run_bin("admin", "create-tenant", name, "--json")
        return json.loads(p.stdout)

    def sql(self, statement, timeout=120):
        """Runs SQL against the sandbox database (TimeZone UTC); returns rows (see psql())."""
        return psql(self.dsn, "SET TimeZone = 'UTC';\n" + statement, timeout=timeout)

    def scalar(self, statement):
        rows = self.sql(statement)
        return rows[0][0] if rows else None

    # -- processes --

    def role(self, role):
        """A Role for `collector`, `processor` or `all` (not started)."""
        urls = []
        if role in ("collector", "all"):
            urls.append("http://127.0.0.1:%d/readyz" % self.collector_port)
        if role in ("processor", "all"):
            urls.append("http://127.0.0.1:%d/readyz" % self.processor_port)
        r = Role(self.bin, role, self.env, os.path.join(self.dir, "%s.log" % role), urls)
        self.roles.append(r)
        return r

    def collector(self):
        return self.role("collector")

    def processor(self):
        return self.role("processor")

    def url(self, path):
        """URL of a collector path, e.g. url("/events/batch")."""
        return "http://127.0.0.1:%d%s" % (self.collector_port, path)

    def dump_logs(self, lines=40):
        for r in self.roles:
            print("---- last %d lines of %s ----" % (lines, r.log_path))
            print(r.tail(lines))
        sys.stdout.flush()

    def report(self, summary):
        """Prints the summary and the failures; returns the process exit code (0 = pass)."""
        print(summary)
        if self.failures:
            print("FAILED: %d check(s) failed:" % len(self.failures.items))
            for f in self.failures.items:
                print("  - " + f)
            print("logs kept in %s" % self.dir)
            return 1
        print("PASSED")
        return 0
