#!/usr/bin/env python3
"""End-to-end test of observability (issue 5): /metrics, health, request ids, Prometheus.

Starts `$EVENTOPS_BIN all` (collector, processor and auth in one process, each on its own
port) in a sandbox, then:

  a. every role's GET /metrics is valid Prometheus text (`promtool check metrics`, lint
     included), has the families of its role with the right types and only series labelled
     with its own role, and /healthz, /readyz answer on every port;
  b. `promtool check rules deploy/prometheus/alerts.yml` passes, and so does
     `promtool check config` on a copy of deploy/prometheus/prometheus.yml whose targets are
     rewritten to the sandbox's ports;
  c. a real `prometheus` (Debian's package) on a free loopback port, scraping every second with
     that configuration and the alert rules, shows every target up;
  d. events sent with a write key and with a token, invalid events and a batch with a rejected
     event: /metrics and Prometheus show exactly the accepted count and the rejections by
     reason, the HTTP counters by route and status class match what was sent, and the
     consumer-lag series exist for every partition of the topic and reach 0 once the processor
     stored everything;
  e. every PromQL expression of the alert rules (as Prometheus loaded them) and of the Grafana
     dashboard evaluates without error, and every metric they name exists in Prometheus; the provisioning files and the dashboard are
     consistent;
  f. metrics move: a rejected event increments its reason, a malformed record written straight
     into the events topic increments the dead-letter counter of its reason, a rate-limited
     request the rate-limit counter, a wrong write key and a missing credential their
     auth-failure reasons;
  g. request ids: X-Request-Id is echoed, generated when absent or invalid (too long, a
     space), carried in the Kafka record headers with a W3C traceparent, and appears in the
     processor's "batch stored" log line; every log line is one JSON object with ts, level,
     role and msg, and no secret is logged.

Prometheus is killed and its folder removed at the end. Needs `prometheus` and `promtool`
(scripts/deps.sh installs them), kcat and psql; stdlib Python only. Settings come from the
environment (`eval "$(scripts/stack.sh env)"`, EVENTOPS_BIN).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROM_DIR = os.path.join(ROOT, "deploy", "prometheus")
GRAFANA_DIR = os.path.join(ROOT, "deploy", "grafana")
DASHBOARD = os.path.join(GRAFANA_DIR, "dashboards", "eventops-overview.json")

PARTITIONS = 3
LAG_SETTLE_S = 3.0  # longer than the processor's statistics interval (2 s)
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

# The default targets in deploy/prometheus/prometheus.yml, by job.
DEFAULT_TARGETS = {
    "eventops-collector": "127.0.0.1:8080",
    "eventops-processor": "127.0.0.1:8081",
    "eventops-auth": "127.0.0.1:8082",
    "eventops-query": "127.0.0.1:8083",
    "eventops-analytics": "127.0.0.1:8084",
}

COMMON_FAMILIES = {
    "eventops_http_requests_total": "counter",
    "eventops_http_request_duration_seconds": "histogram",
    "eventops_http_requests_in_flight": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "eventops_build_info": "gauge",
}
RATELIMIT_FAMILIES = {
    "eventops_rate_limited_total": "counter",
    "eventops_ratelimit_redis_errors_total": "counter",
    "eventops_ratelimit_local_decisions_total": "counter",
    "eventops_ratelimit_shared": "gauge",
}
ROLE_FAMILIES = {
    "collector": dict(COMMON_FAMILIES, **RATELIMIT_FAMILIES, **{
        "eventops_events_accepted_total": "counter",
        "eventops_events_rejected_total": "counter",
        "eventops_batch_size_events": "histogram",
        "eventops_kafka_produce_latency_seconds": "histogram",
        "eventops_kafka_messages_queued": "gauge",
        "eventops_kafka_delivery_errors_total": "counter",
        "eventops_kafka_client_rebuilds_total": "counter",
        "eventops_auth_failures_total": "counter",
    }),
    "processor": dict(COMMON_FAMILIES, **{
        "eventops_processor_batches_total": "counter",
        "eventops_processor_rows_inserted_total": "counter",
        "eventops_processor_duplicates_skipped_total": "counter",
        "eventops_processor_dead_letters_total": "counter",
        "eventops_processor_db_write_seconds": "histogram",
        "eventops_processor_batch_size_events": "histogram",
        "eventops_kafka_consumer_lag": "gauge",
        "eventops_kafka_consumer_lag_age_seconds": "gauge",
        "eventops_processor_postgres_up": "gauge",
        "eventops_processor_kafka_up": "gauge",
        "eventops_processor_stalled": "gauge",
        "eventops_kafka_client_rebuilds_total": "counter",
        "eventops_processor_transactions_aborted_total": "counter",
    }),
    "auth": dict(COMMON_FAMILIES, **RATELIMIT_FAMILIES, **{
        "eventops_auth_tokens_issued_total": "counter",
        "eventops_auth_token_errors_total": "counter",
    }),
    "query": dict(COMMON_FAMILIES, **RATELIMIT_FAMILIES, **{
        "eventops_query_duration_seconds": "histogram",
        "eventops_cache_requests_total": "counter",
        "eventops_auth_failures_total": "counter",
    }),
    "analytics": dict(COMMON_FAMILIES, **{
        "eventops_analytics_events_total": "counter",
        "eventops_analytics_summaries_total": "counter",
        "eventops_analytics_window_results_total": "counter",
        "eventops_analytics_transactions_committed_total": "counter",
        "eventops_analytics_transactions_aborted_total": "counter",
        "eventops_analytics_state_restores_total": "counter",
        "eventops_analytics_checkpoints_total": "counter",
        "eventops_analytics_state_groups": "gauge",
        "eventops_analytics_open_windows": "gauge",
        "eventops_analytics_late_events_total": "counter",
        "eventops_analytics_state_bytes": "gauge",
        "eventops_analytics_state_restored": "gauge",
        "eventops_analytics_watermark_delay_seconds": "gauge",
        "eventops_analytics_watermark_seconds": "gauge",
        "eventops_analytics_sink_records_total": "counter",
        "eventops_analytics_sink_batches_total": "counter",
        "eventops_analytics_sink_postgres_up": "gauge",
        "eventops_analytics_rules_changes_total": "counter",
        "eventops_analytics_streams": "gauge",
        "eventops_analytics_stream_events_total": "counter",
        "eventops_analytics_streams_refused_total": "counter",
        "eventops_analytics_stream_disconnects_total": "counter",
        "eventops_analytics_stream_catchups_total": "counter",
        "eventops_analytics_stream_resets_total": "counter",
        "eventops_kafka_consumer_lag": "gauge",
        "eventops_kafka_client_rebuilds_total": "counter",
    }),
}
# Label values every series of a labelled family must take (bounded cardinality).
REJECT_REASONS = {"missing_field", "invalid_type", "invalid_value", "invalid_timestamp",
                  "timestamp_out_of_range", "too_long", "too_deep", "too_many_properties",
                  "conflicting_fields", "empty_value", "invalid_json", "too_large", "other"}
AUTH_REASONS = {"missing_credentials", "malformed_credentials", "invalid_write_key",
                "invalid_token", "insufficient_scope", "credentials_unavailable"}
DEAD_REASONS = {"undecodable", "invalid", "refused_by_database", "unknown_tenant", "other"}
TOKEN_ERRORS = {"invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope",
                "rate_limited", "temporarily_unavailable", "server_error", "other"}
STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}
ROUTES = {
    "collector": {"/events", "/events/batch", "/healthz", "/readyz", "/openapi.json", "/metrics",
                  "other",
                  # Segment's and PostHog's routes (docs/compat.md)
                  "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias",
                  "/v1/batch", "/v1/import", "/batch/", "/capture/", "/e/", "/i/v0/e/"},
    "processor": {"/healthz", "/readyz", "/openapi.json", "/metrics", "other"},
    "auth": {"/oauth/token", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server",
             "/healthz", "/readyz", "/openapi.json", "/metrics", "other"},
    "analytics": {"/analytics/rules", "/analytics/rules/{id}", "/analytics/rules/{id}/windows",
                  "/analytics/rules/{id}/backtest", "/analytics/summaries", "/analytics/stream",
                  "/healthz", "/readyz", "/openapi.json", "/metrics", "other"},
    "query": {"/events/count", "/events/trend", "/events/unique-users", "/events/breakdown",
              "/events/funnel", "/events/retention", "/events/types", "/events",
              "/properties/tracked", "/properties/tracked/{path}", "/profiles/{userId}",
              "/groups/{groupId}", "/healthz", "/readyz",
              "/openapi.json", "/metrics", "other"},
}
QUERY_ENDPOINTS = {"count", "trend", "unique_users", "breakdown", "funnel", "retention", "types",
                   "events"}
CACHE_RESULTS = {"hit", "miss", "error"}


# ---------------------------------------------------------------------------------------------
# Prometheus text format

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


class Exposition:
    """A parsed /metrics body: types {family: type}, samples [(name, {labels}, value)]."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.helps = {}
        self.samples = []
        self.bad_lines = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    self.types[parts[2]] = parts[3]
                continue
            if line.startswith("# HELP "):
                parts = line.split(None, 3)
                if len(parts) >= 3:
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            if line.startswith("#"):
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                self.bad_lines.append(line)
                continue
            labels = {}
            raw = m.group(2) or ""
            pos = 0
            while pos < len(raw):
                lm = _LABEL_RE.match(raw, pos)
                if not lm:
                    self.bad_lines.append(line)
                    break
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            try:
                value = float(m.group(3))
            except ValueError:
                self.bad_lines.append(line)
                continue
            self.samples.append((m.group(1), labels, value))

    def family_of(self, name):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name[:-len(suffix)]) == "histogram":
                return name[:-len(suffix)]
        return name

    def get(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`; None when none match."""
        vals = [v for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
        return sum(vals) if vals else None

    def series(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]


def fetch_metrics(port):
    """(status, content type, Exposition) of GET /metrics on port."""
    st, h, body = eotest.http_request("GET", "http://127.0.0.1:%d/metrics" % port, timeout=10)
    if isinstance(body, (dict, list)):
        text = json.dumps(body)
    elif isinstance(body, bytes):
        text = body.decode(errors="replace")
    else:
        text = "" if body is None else str(body)
    return st, h.get("content-type", ""), Exposition(text)


def promtool(*args, stdin=None, timeout=60):
    p = subprocess.run(["promtool", *args], input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# A private Prometheus

class Prometheus:
    def __init__(self, config_text, alerts_path):
        self.dir = tempfile.mkdtemp(prefix="eo-e2e-prometheus-")
        self.port = eotest.free_port()
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(config_text)
        shutil.copy(alerts_path, os.path.join(self.dir, "alerts.yml"))
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None
        self.base = "http://127.0.0.1:%d" % self.port

    def start(self):
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                ["prometheus", "--config.file=" + self.config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=self.dir)
        finally:
            logf.close()

    def wait_ready(self, timeout=30):
        def probe():
            if self.proc.poll() is not None:
                raise_exit[0] = True
                return True
            st, _, _ = eotest.http_get(self.base + "/-/ready", timeout=2)
            return st == 200
        raise_exit = [False]
        ok = eotest.wait_until(probe, timeout, interval=0.2)
        if raise_exit[0]:
            raise RuntimeError("prometheus exited with %s:\n%s" %
                               (self.proc.returncode, self.tail()))
        if not ok:
            raise TimeoutError("prometheus not ready after %d s:\n%s" % (timeout, self.tail()))

    def api(self, path, params=None, timeout=10):
        """GET (or POST with form params) /api/v1/PATH; returns the parsed JSON."""
        if params is None:
            st, _, body = eotest.http_get(self.base + "/api/v1/" + path, timeout=timeout)
        else:
            st, _, body = eotest.http_request(
                "POST", self.base + "/api/v1/" + path, eotest.form_encode(params),
                {"Content-Type": "application/x-www-form-urlencoded"}, timeout=timeout)
        if not isinstance(body, dict):
            raise RuntimeError("prometheus %s: %s %r" % (path, st, body))
        return body

    def query(self, expr):
        """(ok, result or error message) of an instant query."""
        body = self.api("query", {"query": expr})
        if body.get("status") != "success":
            return False, "%s: %s" % (body.get("errorType"), body.get("error"))
        return True, body["data"]["result"]

    def vector(self, expr):
        """{frozenset(labels.items()): float} of an instant vector query ({} on error)."""
        ok, res = self.query(expr)
        if not ok or not isinstance(res, list):
            return {}
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in res}

    def scalar(self, expr):
        """The value of a query returning one element (e.g. sum(...)); None when empty."""
        v = self.vector(expr)
        return list(v.values())[0] if len(v) == 1 else None

    def tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)


def sandbox_config(text, ports):
    """deploy/prometheus/prometheus.yml with every target replaced by the sandbox's port of its
    job, intervals of 1 s, and the jobs without a port removed. Returns
    (config text, list of problems with the deploy file)."""
    problems = []
    # Split into the part before scrape_configs' first job and one block per job.
    blocks = re.split(r"(?m)^(?=  - job_name:)", text)
    head, jobs = blocks[0], blocks[1:]
    out_jobs = []
    seen = set()
    for b in jobs:
        m = re.match(r"  - job_name:\s*['\"]?([\w.-]+)", b)
        job = m.group(1) if m else "?"
        seen.add(job)
        default = DEFAULT_TARGETS.get(job)
        if default is None:
            problems.append("unexpected job %r in prometheus.yml" % job)
            continue
        if b.count(default) != 1:
            problems.append("job %s: default target %s appears %d times (expected once)" %
                            (job, default, b.count(default)))
        if job not in ports:
            continue
        out_jobs.append(b.replace(default, "127.0.0.1:%d" % ports[job]))
    for job in DEFAULT_TARGETS:
        if job not in seen:
            problems.append("prometheus.yml has no job %s" % job)
    if not re.search(r"(?m)^rule_files:\s*\n\s+-\s*['\"]?alerts\.yml", head):
        problems.append("prometheus.yml does not load alerts.yml through rule_files")
    head2 = re.sub(r"(?m)^(\s*)scrape_interval:.*$", r"\1scrape_interval: 1s", head)
    head2 = re.sub(r"(?m)^(\s*)evaluation_interval:.*$", r"\1evaluation_interval: 1s", head2)
    head2 = re.sub(r"(?m)^(\s*)scrape_timeout:.*$", r"\1scrape_timeout: 1s", head2)
    if head2 == head:
        problems.append("prometheus.yml: no global scrape/evaluation interval to rewrite")
    return head2 + "".join(out_jobs), problems


def dashboard_exprs(dash):
    """[(panel title, expr)] of every target of every panel (rows' nested panels included)."""
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels"))
    walk(dash.get("panels"))
    return out


def grafana_to_promql(expr):
    for var, val in (("$__rate_interval", "1m"), ("${__rate_interval}", "1m"),
                     ("$__interval", "15s"), ("${__interval}", "15s"),
                     ("$__range", "1h"), ("${__range}", "1h")):
        expr = expr.replace(var, val)
    return expr


METRIC_NAME_RE = re.compile(r"\b((?:eventops|process)_[a-zA-Z0-9_]+)\b")


# ---------------------------------------------------------------------------------------------
# Requests

def event(i, tag, **over):
    e = {"eventType": "obs_test", "userId": "u-%d" % (i % 7), "messageId": "%s-%d" % (tag, i),
         "properties": {"i": i}}
    for k, v in over.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


class Tally:
    """What the test sent to the collector's ingest routes, by (route, status class)."""

    def __init__(self):
        self.by = {}

    def add(self, route, status):
        k = (route, "%dxx" % (status // 100))
        self.by[k] = self.by.get(k, 0) + 1


def main():
    for tool in ("prometheus", "promtool", "kcat", "psql"):
        if not shutil.which(tool):
            print("%s not found (scripts/deps.sh installs it)" % tool)
            return 1
    with eotest.Sandbox("observability", partitions=PARTITIONS, extra_env={
            "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
            "EVENTOPS_PROCESSOR_BATCH_WAIT_MS": "50"}) as sb:
        prom_holder = []
        try:
            return run(sb, prom_holder)
        finally:
            for p in prom_holder:
                p.stop()


def run(sb, prom_holder):
    f = sb.failures
    t_start = time.monotonic()

    # ---- set-up: a tenant with a write key, a token client, a tightly limited write key
    sb.create_signing_key()
    tenant = sb.create_tenant("obs-" + eotest.rand_hex(6))
    client = sb.create_client(tenant["tenantId"], ["events:write", "events:read"])
    slow = sb.admin_json("create-write-key", tenant["tenantId"])
    sb.set_rate_limit(rate=1, burst=1, write_key=slow["writeKeyId"])
    secrets = [tenant["writeKey"], client["clientSecret"], slow["writeKey"],
               tenant["writeKey"].split(".", 1)[-1]]

    allr = sb.role("all")
    allr.start()
    allr.wait_ready(90)
    ports = {"collector": sb.collector_port, "processor": sb.processor_port,
             "auth": sb.auth_port, "query": sb.query_port, "analytics": sb.analytics_port}
    log("eventops all: collector :%d, processor :%d, auth :%d, query :%d" %
        (sb.collector_port, sb.processor_port, sb.auth_port, sb.query_port))
    token = sb.token(client["clientId"], client["clientSecret"])
    secrets.append(token)

    # ---- health on every port
    for role, port in ports.items():
        for path in ("/healthz", "/readyz"):
            try:
                st, h, body = eotest.http_get("http://127.0.0.1:%d%s" % (port, path))
            except eotest.HttpError as e:
                f.fail("%s %s: no answer: %s" % (role, path, e))
                continue
            f.check(st == 200, "%s GET %s: %s %r, expected 200" % (role, path, st, body))
            if path == "/healthz":
                f.check(body == {"status": "ok"}, "%s GET /healthz body %r, expected "
                        '{"status":"ok"}' % (role, body))
            else:
                f.check(isinstance(body, dict), "%s GET /readyz body is not a JSON object: %r" %
                        (role, body))

    # ---- a. /metrics of every role: promtool, families, types, labels
    for role, port in ports.items():
        try:
            st, ctype, ex = fetch_metrics(port)
        except eotest.HttpError as e:
            f.fail("%s GET /metrics: no answer: %s" % (role, e))
            continue
        f.check(st == 200, "%s GET /metrics: status %s" % (role, st))
        f.check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
                "%s GET /metrics: Content-Type %r, expected text/plain; version=0.0.4" %
                (role, ctype))
        rc, out = promtool("check", "metrics", stdin=ex.text.encode())
        f.check(rc == 0, "%s: promtool check metrics exit %d:\n%s" % (role, rc, out.strip()))
        f.check(not ex.bad_lines, "%s /metrics: unparsable lines: %s" % (role, ex.bad_lines[:5]))
        for fam, typ in sorted(ROLE_FAMILIES[role].items()):
            got = ex.types.get(fam)
            if f.check(got is not None, "%s /metrics: no family %s (%s)" % (role, fam, typ)):
                f.check(got == typ, "%s /metrics: %s has TYPE %s, expected %s" %
                        (role, fam, got, typ))
                f.check(fam in ex.helps, "%s /metrics: %s has no HELP" % (role, fam))
        foreign = sorted({n for n, l, _ in ex.samples
                          if "role" in l and l["role"] != role})
        f.check(not foreign, "%s /metrics serves series labelled with another role (in `all` "
                "each port must serve its own role, or every sum counts them twice): %s" %
                (role, foreign[:10]))
        unlabelled = sorted({n for n, l, _ in ex.samples
                             if n.startswith("eventops_") and "role" not in l})
        f.check(not unlabelled, "%s /metrics: eventops_* series without a role label: %s" %
                (role, unlabelled[:10]))
        bi = ex.series("eventops_build_info")
        f.check(len(bi) == 1 and bi[0][1] == 1 and bi[0][0].get("role") == role and
                bi[0][0].get("version"), "%s: eventops_build_info %r, expected one series "
                "{role=%r, version=...} 1" % (role, bi, role))
        rss = ex.get("process_resident_memory_bytes")
        f.check(rss is not None and rss > 1e6, "%s: process_resident_memory_bytes %r" %
                (role, rss))
        start = ex.get("process_start_time_seconds")
        f.check(start is not None and time.time() - 900 < start <= time.time() + 5,
                "%s: process_start_time_seconds %r is not the last minutes (now %.0f)" %
                (role, start, time.time()))
        fds, maxfds = ex.get("process_open_fds"), ex.get("process_max_fds")
        f.check(fds is not None and maxfds is not None and 0 < fds <= maxfds,
                "%s: process_open_fds %r, process_max_fds %r" % (role, fds, maxfds))
        cpu = ex.get("process_cpu_seconds_total")
        f.check(cpu is not None and cpu > 0, "%s: process_cpu_seconds_total %r" % (role, cpu))
        for l, _ in ex.series("eventops_http_requests_total"):
            f.check(l.get("code") in STATUS_CLASSES and l.get("route") in ROUTES[role],
                    "%s: eventops_http_requests_total series with labels %r (code must be a "
                    "status class, route a registered path or other)" % (role, l))
        for fam, lab, allowed in (("eventops_events_rejected_total", "reason", REJECT_REASONS),
                                  ("eventops_auth_failures_total", "reason", AUTH_REASONS),
                                  ("eventops_processor_dead_letters_total", "reason",
                                   DEAD_REASONS),
                                  ("eventops_auth_token_errors_total", "error", TOKEN_ERRORS),
                                  ("eventops_query_duration_seconds_count", "endpoint",
                                   QUERY_ENDPOINTS),
                                  ("eventops_cache_requests_total", "endpoint",
                                   QUERY_ENDPOINTS),
                                  ("eventops_cache_requests_total", "result", CACHE_RESULTS)):
            vals = {l.get(lab) for l, _ in ex.series(fam)}
            f.check(vals <= allowed, "%s: %s has %s values outside the list: %s" %
                    (role, fam, lab, sorted(vals - allowed, key=str)))
    log("a. /metrics checked on every role (promtool check metrics)")

    # ---- b. promtool on the deploy files
    alerts_path = os.path.join(PROM_DIR, "alerts.yml")
    rc, out = promtool("check", "rules", alerts_path)
    f.check(rc == 0, "promtool check rules deploy/prometheus/alerts.yml: exit %d\n%s" %
            (rc, out))
    with open(os.path.join(PROM_DIR, "prometheus.yml")) as fh:
        deploy_cfg = fh.read()
    rc, out = promtool("check", "config", os.path.join(PROM_DIR, "prometheus.yml"))
    f.check(rc == 0, "promtool check config deploy/prometheus/prometheus.yml: exit %d\n%s" %
            (rc, out))
    jobs = {"eventops-" + r: p for r, p in ports.items()}
    cfg, problems = sandbox_config(deploy_cfg, jobs)
    for p in problems:
        f.fail("deploy/prometheus/prometheus.yml: " + p)
    prom = Prometheus(cfg, alerts_path)
    prom_holder.append(prom)
    rc, out = promtool("check", "config", prom.config)
    f.check(rc == 0, "promtool check config on the sandbox copy: exit %d\n%s\n%s" %
            (rc, out, cfg))
    log("b. promtool check rules / check config done")

    # ---- c. a real Prometheus scraping every role
    prom.start()
    prom.wait_ready(30)
    log("prometheus on :%d (%s)" % (prom.port, prom.dir))

    def targets_up():
        body = prom.api("targets")
        act = body["data"]["activeTargets"]
        state = {(t["labels"].get("job"), t["scrapeUrl"]): (t["health"], t.get("lastError"))
                 for t in act}
        targets_state[0] = state
        return len(state) == len(jobs) and all(h == "up" for h, _ in state.values())
    targets_state = [{}]
    ok = eotest.wait_until(targets_up, 30, interval=0.5)
    f.check(ok, "Prometheus targets not all up within 30 s: %r" % targets_state[0])
    f.check({j for j, _ in targets_state[0]} == set(jobs),
            "Prometheus jobs %s, expected %s" % (sorted(j for j, _ in targets_state[0]),
                                                 sorted(jobs)))
    log("c. every target up: %s" % sorted(targets_state[0]))

    # ---- d. events: write key, token, invalid ones, a batch with a rejected event
    coll = "http://127.0.0.1:%d" % sb.collector_port
    tally = Tally()
    wk = tenant["writeKey"]
    tag = "obs-" + eotest.rand_hex(6)
    accepted_ids = []

    def send(route, body, key, headers=None, raw=None):
        if raw is not None:
            r = eotest.post_raw(coll + route, raw, key=key, headers=headers)
        else:
            r = eotest.post_json(coll + route, body, key=key, headers=headers)
        tally.add(route, r[0])
        return r

    n_single = 5
    for i in range(n_single):
        st, h, body = send("/events", event(i, tag), wk)
        if f.check(st == 202, "POST /events (write key) %d: %s %r" % (i, st, body)):
            accepted_ids.extend(body.get("messageIds", []))
    batch = [event(100 + i, tag) for i in range(4)]
    st, h, body = send("/events/batch", batch, token)
    if f.check(st == 202 and body.get("accepted") == 4, "POST /events/batch (token): %s %r" %
               (st, body)):
        accepted_ids.extend(body.get("messageIds", []))
    mixed = [event(200, tag), event(201, tag, userId=None), event(202, tag)]
    st, h, body = send("/events/batch", mixed, wk)
    errs = body.get("errors") if isinstance(body, dict) else None
    if f.check(st == 202 and body.get("accepted") == 2 and isinstance(errs, list) and
               len(errs) == 1 and errs[0].get("error", {}).get("code") == "missing_field",
               "POST /events/batch with one event lacking userId/anonymousId: %s %r, "
               "expected 202, 2 accepted, one missing_field" % (st, body)):
        accepted_ids.extend(body.get("messageIds", []))
    expect_rejected = {"missing_field": 1}
    invalid = [
        ("invalid_type", None, event(300, tag, eventType=7)),
        ("invalid_timestamp", None, event(301, tag, timestamp="yesterday-ish")),
        ("invalid_json", b'{"eventType": "obs_test", "userId": ', None),
    ]
    for reason, raw, ev in invalid:
        st, h, body = send("/events", ev, wk, raw=raw)
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        f.check(st == 400 and code == reason, "POST /events expected 400 %s, got %s %r" %
                (reason, st, body))
        expect_rejected[reason] = expect_rejected.get(reason, 0) + 1
    n_accepted = n_single + 4 + 2
    f.check(len(accepted_ids) == n_accepted, "%d message ids accepted, expected %d" %
            (len(accepted_ids), n_accepted))
    # A request to an unregistered path counts under route="other".
    st, _, _ = eotest.http_get(coll + "/no-such-path-" + eotest.rand_hex(4))
    f.check(st == 404, "GET /no-such-path: %s, expected 404" % st)

    # Straight from the collector's /metrics first (exact, no scrape delay).
    def coll_metrics():
        return fetch_metrics(sb.collector_port)[2]
    ex = coll_metrics()
    f.check(ex.get("eventops_events_accepted_total", role="collector") == n_accepted,
            "collector /metrics: eventops_events_accepted_total %r, expected %d" %
            (ex.get("eventops_events_accepted_total", role="collector"), n_accepted))
    for reason in sorted(REJECT_REASONS):
        want = expect_rejected.get(reason, 0)
        got = ex.get("eventops_events_rejected_total", role="collector", reason=reason)
        f.check((got or 0) == want, "collector /metrics: eventops_events_rejected_total"
                "{reason=%r} %r, expected %d" % (reason, got, want))
    for (route, code), n in sorted(tally.by.items()):
        got = ex.get("eventops_http_requests_total", role="collector", route=route, code=code)
        f.check(got == n, "collector /metrics: eventops_http_requests_total{route=%r,code=%r} "
                "%r, expected %d (the requests this test sent)" % (route, code, got, n))
    for route in ("/events", "/events/batch"):
        total = ex.get("eventops_http_requests_total", role="collector", route=route)
        cnt = ex.get("eventops_http_request_duration_seconds_count", role="collector",
                     route=route)
        f.check(cnt == total, "collector: eventops_http_request_duration_seconds_count"
                "{route=%r} %r differs from eventops_http_requests_total %r" %
                (route, cnt, total))
        inf = ex.get("eventops_http_request_duration_seconds_bucket", role="collector",
                     route=route, le="+Inf")
        f.check(inf == cnt, "collector: duration bucket le=+Inf %r != _count %r (route %s)" %
                (inf, cnt, route))
    other = ex.get("eventops_http_requests_total", role="collector", route="other", code="4xx")
    f.check(other is not None and other >= 1, "collector: GET /no-such-path not counted under "
            "route=\"other\", code=\"4xx\" (%r)" % other)
    produced = ex.get("eventops_kafka_produce_latency_seconds_count", role="collector")
    f.check(produced is not None and produced >= n_accepted,
            "collector: eventops_kafka_produce_latency_seconds_count %r < %d accepted events" %
            (produced, n_accepted))
    bsz = ex.get("eventops_batch_size_events_count", role="collector")
    f.check(bsz is not None and bsz >= 2, "collector: eventops_batch_size_events_count %r "
            "after 2 accepted batches" % bsz)
    q = eotest.wait_until(lambda: coll_metrics().get("eventops_kafka_messages_queued",
                                                     role="collector") == 0, 10)
    f.check(q, "collector: eventops_kafka_messages_queued is not 0 after every request was "
            "answered")
    f.check(ex.get("eventops_kafka_delivery_errors_total", role="collector") == 0,
            "collector: eventops_kafka_delivery_errors_total %r with Kafka up" %
            ex.get("eventops_kafka_delivery_errors_total", role="collector"))

    # Stored by the processor; then its counters and the consumer lag.
    stored = sb.wait_stored(accepted_ids, timeout=60)
    f.check(len(stored) == len(set(accepted_ids)), "%d of %d accepted events stored within "
            "60 s" % (len(stored), len(set(accepted_ids))))

    def proc_metrics():
        return fetch_metrics(sb.processor_port)[2]

    def proc_caught_up():
        px = proc_metrics()
        lag = px.series("eventops_kafka_consumer_lag")
        return (px.get("eventops_processor_rows_inserted_total") == n_accepted and
                len(lag) >= PARTITIONS and all(v == 0 for _, v in lag))
    eotest.wait_until(proc_caught_up, 30, interval=0.3)
    # The lag may be sampled periodically (librdkafka statistics): it must still be 0 a few
    # seconds after everything was stored, not only before the first sample saw the events.
    time.sleep(LAG_SETTLE_S)
    eotest.wait_until(proc_caught_up, 30, interval=0.3)
    px = proc_metrics()
    f.check(px.get("eventops_processor_rows_inserted_total", role="processor") == n_accepted,
            "processor /metrics: eventops_processor_rows_inserted_total %r, expected %d" %
            (px.get("eventops_processor_rows_inserted_total", role="processor"), n_accepted))
    f.check((px.get("eventops_processor_batches_total") or 0) >= 1,
            "processor: eventops_processor_batches_total %r" %
            px.get("eventops_processor_batches_total"))
    f.check(px.get("eventops_processor_duplicates_skipped_total") == 0,
            "processor: eventops_processor_duplicates_skipped_total %r, expected 0" %
            px.get("eventops_processor_duplicates_skipped_total"))
    f.check(px.get("eventops_processor_postgres_up") == 1, "processor: "
            "eventops_processor_postgres_up %r" % px.get("eventops_processor_postgres_up"))
    f.check((px.get("eventops_processor_db_write_seconds_count") or 0) >= 1,
            "processor: eventops_processor_db_write_seconds_count %r" %
            px.get("eventops_processor_db_write_seconds_count"))
    f.check(px.get("eventops_processor_batch_size_events_sum") is not None and
            px.get("eventops_processor_batch_size_events_sum") >= n_accepted,
            "processor: eventops_processor_batch_size_events_sum %r < %d" %
            (px.get("eventops_processor_batch_size_events_sum"), n_accepted))
    lag = px.series("eventops_kafka_consumer_lag")
    parts = sorted(l.get("partition") for l, _ in lag if l.get("topic") == sb.events_topic)
    f.check(parts == [str(i) for i in range(PARTITIONS)],
            "processor: eventops_kafka_consumer_lag partitions of %s: %s, expected 0..%d "
            "(all series: %r)" % (sb.events_topic, parts, PARTITIONS - 1, lag))
    f.check(all(v == 0 for _, v in lag), "processor: eventops_kafka_consumer_lag not 0 %.0f s "
            "after everything was stored: %r" % (LAG_SETTLE_S, sorted(
                (l.get("partition"), v) for l, v in lag)))

    # The same through Prometheus.
    def prom_equal(expr, want, timeout=20):
        got = [None]

        def probe():
            got[0] = prom.scalar(expr)
            return got[0] == want
        eotest.wait_until(probe, timeout, interval=0.5)
        return got[0]
    got = prom_equal("sum(eventops_events_accepted_total)", n_accepted)
    f.check(got == n_accepted, "Prometheus: sum(eventops_events_accepted_total) %r, expected %d"
            % (got, n_accepted))
    for reason, want in sorted(expect_rejected.items()):
        e = 'sum(eventops_events_rejected_total{reason="%s"})' % reason
        got = prom_equal(e, want)
        f.check(got == want, "Prometheus: %s = %r, expected %d" % (e, got, want))
    for role in ("processor", "analytics"):  # each group's lag, one series per partition
        e = 'count(eventops_kafka_consumer_lag{role="%s",topic="%s"})' % (role, sb.events_topic)
        got = prom_equal(e, PARTITIONS)
        f.check(got == PARTITIONS, "Prometheus: %s = %r, expected %d" % (e, got, PARTITIONS))
    e = 'max(eventops_kafka_consumer_lag{topic="%s"})' % sb.events_topic
    got = prom_equal(e, 0)
    f.check(got == 0, "Prometheus: %s = %r, expected 0 once everything is stored" % (e, got))
    got = prom_equal("sum(eventops_processor_rows_inserted_total)", n_accepted)
    f.check(got == n_accepted, "Prometheus: sum(eventops_processor_rows_inserted_total) %r, "
            "expected %d" % (got, n_accepted))
    # Every eventops_* series comes from the job of its role (no double counting in `all`).
    mism = prom.vector('count by (job, role) ({__name__=~"eventops_.+"})')
    bad = sorted(dict(k) for k in mism
                 if dict(k).get("job") != "eventops-%s" % dict(k).get("role"))
    f.check(not bad, "Prometheus: eventops_* series whose role differs from the job's: %s" %
            bad[:6])
    log("d. %d accepted, rejections %s, lag series %d -> 0 (%.0f s so far)" %
        (n_accepted, expect_rejected, PARTITIONS, time.monotonic() - t_start))

    # ---- e. every PromQL expression of the alert rules and the dashboard
    def rules_loaded():
        groups = prom.api("rules")["data"]["groups"]
        rules_state[0] = [r for g in groups for r in g["rules"]]
        return rules_state[0] and all(r.get("lastEvaluation", "").startswith("2") and
                                      not r["lastEvaluation"].startswith("0001")
                                      for r in rules_state[0])
    rules_state = [[]]
    eotest.wait_until(rules_loaded, 15, interval=0.5)
    rules = rules_state[0]
    with open(alerts_path) as fh:
        n_alerts_in_file = len(re.findall(r"(?m)^\s*-\s*alert:", fh.read()))
    f.check(len(rules) == n_alerts_in_file and n_alerts_in_file > 0,
            "Prometheus loaded %d rules, alerts.yml has %d" % (len(rules), n_alerts_in_file))
    names = set()
    for r in rules:
        names.add(r.get("name"))
        f.check(r.get("health") == "ok", "alert %s: rule health %r: %s" %
                (r.get("name"), r.get("health"), r.get("lastError")))
        f.check(r.get("labels", {}).get("severity") in ("critical", "warning", "info"),
                "alert %s: severity label %r" % (r.get("name"), r.get("labels")))
        ann = r.get("annotations", {})
        f.check(ann.get("summary") and ann.get("description"),
                "alert %s: summary/description annotations missing" % r.get("name"))
        ok, res = prom.query(r["query"])
        f.check(ok, "alert %s: expression does not evaluate: %s\n  %s" %
                (r.get("name"), res, r["query"]))
    firing = sorted(r["name"] for r in rules if r.get("state") == "firing")
    log("e. %d alert rules evaluate (firing now: %s)" % (len(rules), firing or "none"))
    with open(DASHBOARD) as fh:
        dash = json.load(fh)
    exprs = dashboard_exprs(dash)
    f.check(len(exprs) >= 20, "dashboard has only %d expressions" % len(exprs))
    for title, expr in exprs:
        pq = grafana_to_promql(expr)
        f.check("$" not in pq, "dashboard panel %r: unresolved variable in %r" % (title, expr))
        ok, res = prom.query(pq)
        f.check(ok, "dashboard panel %r: expression does not evaluate: %s\n  %s" %
                (title, res, pq))
    known = set(prom.api("label/__name__/values")["data"])
    referenced = set()
    for expr in [r["query"] for r in rules] + [e for _, e in exprs]:
        referenced.update(METRIC_NAME_RE.findall(expr))
    missing = sorted(referenced - known)
    f.check(not missing, "metrics named by alerts/dashboard that no role exports: %s" % missing)
    check_grafana_files(f, dash)
    log("e. %d dashboard expressions evaluate; %d metric names referenced" %
        (len(exprs), len(referenced)))

    # ---- f. metrics move
    before = coll_metrics()
    # A rejected event increments its reason (and only it).
    st, _, body = send("/events", event(400, tag, eventType="x" * 300), wk)
    f.check(st == 400 and body.get("error", {}).get("code") == "too_long",
            "eventType of 300 characters: %s %r, expected 400 too_long" % (st, body))
    # A wrong write key secret, and no credential at all.
    key_id = wk.split(".", 1)[0]
    st, _, body = send("/events", event(401, tag), key_id + ".not-the-secret-" +
                       eotest.rand_hex(8))
    f.check(st == 401, "wrong write key secret: %s %r, expected 401" % (st, body))
    st, _, body = send("/events", event(402, tag), None)
    f.check(st == 401, "no credential: %s %r, expected 401" % (st, body))
    # The write key limited to 1/s, burst 1: quick requests beyond the first get 429.
    limited = 0
    for i in range(4):
        st, h, body = send("/events", event(500 + i, tag), slow["writeKey"])
        if st == 202:
            accepted_ids.extend(body.get("messageIds", []))
            n_accepted += 1
        elif st == 429:
            limited += 1
        else:
            f.fail("rate-limited write key: unexpected %s %r" % (st, body))
    f.check(limited >= 2, "write key with rate 1/s burst 1: only %d of 4 quick requests got "
            "429" % limited)
    after = coll_metrics()

    def delta(name, **labels):
        return (after.get(name, **labels) or 0) - (before.get(name, **labels) or 0)
    for reason in sorted(REJECT_REASONS):
        d = delta("eventops_events_rejected_total", role="collector", reason=reason)
        want = 1 if reason == "too_long" else 0
        f.check(d == want, "metrics move: eventops_events_rejected_total{reason=%r} moved by %r,"
                " expected %d" % (reason, d, want))
    for reason in sorted(AUTH_REASONS):
        d = delta("eventops_auth_failures_total", role="collector", reason=reason)
        want = 1 if reason in ("invalid_write_key", "missing_credentials") else 0
        f.check(d == want, "metrics move: eventops_auth_failures_total{reason=%r} moved by %r, "
                "expected %d" % (reason, d, want))
    d = delta("eventops_rate_limited_total", role="collector")
    f.check(d == limited, "metrics move: eventops_rate_limited_total moved by %r, expected %d "
            "(the 429s received)" % (d, limited))
    d = delta("eventops_events_accepted_total", role="collector")
    f.check(d == 4 - limited, "metrics move: eventops_events_accepted_total moved by %r, "
            "expected %d" % (d, 4 - limited))
    got = prom_equal('sum(eventops_rate_limited_total{job="eventops-collector"})',
                     after.get("eventops_rate_limited_total", role="collector"))
    f.check(got == after.get("eventops_rate_limited_total", role="collector"),
            "Prometheus: eventops_rate_limited_total %r, collector says %r" %
            (got, after.get("eventops_rate_limited_total", role="collector")))
    e = 'sum(eventops_auth_failures_total{reason="invalid_write_key"})'
    want = after.get("eventops_auth_failures_total", role="collector",
                     reason="invalid_write_key")
    got = prom_equal(e, want)
    f.check(got == want and (want or 0) >= 1, "Prometheus: %s = %r, collector says %r" %
            (e, got, want))

    # The query role: a miss, then a hit, counted by endpoint; a write key is refused.
    def query_metrics():
        return fetch_metrics(sb.query_port)[2]
    qbefore = query_metrics()
    qurl = "http://127.0.0.1:%d/events/count?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z" \
        % sb.query_port
    caches = []
    for _ in range(2):
        st, h, body = eotest.http_request("GET", qurl, None, {"Authorization": "Bearer " + token})
        f.check(st == 200, "query count: %s %r" % (st, body))
        caches.append(h.get("x-cache"))
    f.check(caches == ["miss", "hit"], "query count twice: X-Cache %r, expected miss then hit" %
            caches)
    st, _, _ = eotest.http_request("GET", qurl, None, {"Authorization": "Bearer " + wk})
    f.check(st == 401, "query with a write key: %s, expected 401" % st)
    qafter = query_metrics()

    def qdelta(name, **labels):
        return (qafter.get(name, **labels) or 0) - (qbefore.get(name, **labels) or 0)
    for result, want in (("miss", 1), ("hit", 1), ("error", 0)):
        d = qdelta("eventops_cache_requests_total", role="query", endpoint="count",
                   result=result)
        f.check(d == want, "metrics move: eventops_cache_requests_total{endpoint=count,result=%s}"
                " moved by %r, expected %d" % (result, d, want))
    d = qdelta("eventops_query_duration_seconds_count", role="query", endpoint="count")
    f.check(d == 2, "metrics move: eventops_query_duration_seconds_count{endpoint=count} moved "
            "by %r, expected 2" % d)
    d = qdelta("eventops_auth_failures_total", role="query", reason="invalid_token")
    f.check(d == 1, "metrics move: eventops_auth_failures_total{role=query,reason=invalid_token}"
            " moved by %r, expected 1" % d)

    # Dead letters: malformed records written straight into the events topic.
    pbefore = proc_metrics()
    marker = "obs-dlq-" + eotest.rand_hex(8)
    recs = [("e2e:%s-1" % marker, "not json at all %s" % marker),
            ("e2e:%s-2" % marker, json.dumps({
                "v": 1, "tenantId": str(uuid.uuid4()),
                "receivedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "event": {"messageId": marker, "eventType": "obs_test", "userId": "u1",
                          "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "properties": {}, "context": {}}}, separators=(",", ":")))]
    eotest.produce(sb.brokers, sb.events_topic, recs)
    want_dead = {"undecodable": 1, "unknown_tenant": 1}

    def dead_moved():
        px = proc_metrics()
        return all((px.get("eventops_processor_dead_letters_total", reason=r) or 0) -
                   (pbefore.get("eventops_processor_dead_letters_total", reason=r) or 0) >= n
                   for r, n in want_dead.items())
    eotest.wait_until(dead_moved, 30, interval=0.3)
    pafter = proc_metrics()
    for r in sorted(DEAD_REASONS):
        d = ((pafter.get("eventops_processor_dead_letters_total", role="processor", reason=r)
              or 0) -
             (pbefore.get("eventops_processor_dead_letters_total", role="processor", reason=r)
              or 0))
        f.check(d == want_dead.get(r, 0), "metrics move: eventops_processor_dead_letters_total"
                "{reason=%r} moved by %r, expected %d (a non-JSON record and one of an unknown "
                "tenant)" % (r, d, want_dead.get(r, 0)))
    for r, n in sorted(want_dead.items()):
        e = 'sum(eventops_processor_dead_letters_total{reason="%s"})' % r
        want = pafter.get("eventops_processor_dead_letters_total", reason=r)
        got = prom_equal(e, want)
        f.check(got == want and (want or 0) >= n, "Prometheus: %s = %r, processor says %r" %
                (e, got, want))
    # The dead-letter alert (for: 0m) fires through the loaded rules; nothing else fires in a
    # healthy sandbox (the other alerts need minutes of `for:`, or a fault this test does not
    # cause).
    def dlq_alert():
        alerts = prom.api("alerts")["data"]["alerts"]
        alerts_seen[0] = alerts
        reasons = {a["labels"].get("reason") for a in alerts
                   if a["labels"].get("alertname") == "EventOpsDeadLetters" and
                   a.get("state") == "firing"}
        return set(want_dead) <= reasons
    alerts_seen = [[]]
    ok = eotest.wait_until(dlq_alert, 20, interval=0.5)
    f.check(ok, "alert EventOpsDeadLetters not firing for reasons %s within 20 s of the dead "
            "letters: %s" % (sorted(want_dead), [(a["labels"], a.get("state"))
                                                 for a in alerts_seen[0]]))
    other = sorted({a["labels"].get("alertname") for a in alerts_seen[0]
                    if a.get("state") == "firing" and
                    a["labels"].get("alertname") != "EventOpsDeadLetters"})
    f.check(not other, "alerts firing in a healthy sandbox: %s" % other)
    pending = sorted({a["labels"].get("alertname") for a in alerts_seen[0]
                      if a.get("state") == "pending"})
    log("f. rejected/auth/rate-limit/dead-letter counters moved; EventOpsDeadLetters fired; "
        "pending: %s (%.0f s so far)" % (pending or "none", time.monotonic() - t_start))

    # ---- g. request ids
    rid = "obs-" + eotest.rand_hex(16)
    mid = "%s-rid" % tag
    st, h, body = send("/events", event(600, tag, messageId=mid), wk,
                       headers={"X-Request-Id": rid})
    f.check(st == 202, "POST /events with X-Request-Id: %s %r" % (st, body))
    f.check(h.get("x-request-id") == rid, "X-Request-Id %r sent, response X-Request-Id %r" %
            (rid, h.get("x-request-id")))
    gen = []
    for i in range(2):
        st, h, body = send("/events", event(601 + i, tag), wk)
        f.check(st == 202, "POST /events without X-Request-Id: %s %r" % (st, body))
        g = h.get("x-request-id")
        f.check(g is not None and REQUEST_ID_RE.fullmatch(g),
                "no X-Request-Id sent: response X-Request-Id %r, expected a generated id" % g)
        gen.append(g)
    f.check(len(set(gen)) == 2, "two requests without X-Request-Id got the same id %r" % gen)
    for j, bad_id in enumerate(("a" * 300, "has a space", "a" * 129, "semi;colon")):
        st, h, body = send("/events", event(610 + j, tag), wk,
                           headers={"X-Request-Id": bad_id})
        g = h.get("x-request-id")
        f.check(st == 202 and g is not None and g != bad_id and REQUEST_ID_RE.fullmatch(g),
                "invalid X-Request-Id %r (%d chars): status %s, response X-Request-Id %r, "
                "expected a generated one" % (bad_id[:40], len(bad_id), st, g))
    edge = "A.b_c:d-" + "9" * 120
    st, h, body = send("/events", event(620, tag), wk,
                       headers={"X-Request-Id": edge})
    f.check(h.get("x-request-id") == edge, "valid X-Request-Id of 128 chars [A-Za-z0-9._:-] "
            "not echoed: %r" % h.get("x-request-id"))
    st, h, body = sb.get_token(client["clientId"], client["clientSecret"],
                               headers={"X-Request-Id": rid + "-auth"})
    f.check(h.get("x-request-id") == rid + "-auth", "auth POST /oauth/token: X-Request-Id %r "
            "not echoed (%r)" % (rid + "-auth", h.get("x-request-id")))
    if st == 200 and isinstance(body, dict):
        secrets.append(body.get("access_token", ""))
    st, h, _ = eotest.http_request("GET", "http://127.0.0.1:%d/healthz" % sb.processor_port,
                                   headers={"X-Request-Id": rid + "-proc"})
    f.check(h.get("x-request-id") == rid + "-proc", "processor GET /healthz: X-Request-Id "
            "not echoed (%r)" % h.get("x-request-id"))

    stored = sb.wait_stored([mid], timeout=30)
    f.check(mid in stored, "the event sent with X-Request-Id %s was not stored within 30 s" %
            rid)
    # Kafka record headers: the request id and a W3C traceparent.
    recs = [m for m in eotest.consume(sb.brokers, sb.events_topic)
            if m.get("value") and mid in m["value"]]
    if f.check(len(recs) == 1, "%d records of message %s in %s" % (len(recs), mid,
                                                                    sb.events_topic)):
        hdrs = recs[0]["headers"]
        f.check(any(v == rid for _, v in hdrs), "Kafka record headers %r lack the request id %s"
                % (hdrs, rid))
        tps = [v for k, v in hdrs if k.lower() == "traceparent"]
        f.check(len(tps) == 1 and TRACEPARENT_RE.fullmatch(tps[0] or ""),
                "Kafka record headers %r: expected one W3C traceparent" % hdrs)

    def proc_line():
        for line in allr.grep(rid):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("msg") == "batch stored":
                return obj
        return None
    obj = eotest.wait_until(proc_line, 15, interval=0.3)
    if f.check(obj, "no \"batch stored\" log line containing request id %s within 15 s of the "
               "event being stored (lines with it: %s)" % (rid, allr.grep(rid)[:3])):
        f.check(obj.get("role") == "processor", "the \"batch stored\" line has role %r, "
                "expected processor: %r" % (obj.get("role"), obj))
        ids = obj.get("request_ids")
        if isinstance(ids, str):
            ids = [x.strip() for x in ids.split(",")]
        f.check(isinstance(ids, list) and rid in ids, "the \"batch stored\" line does not list "
                "%s in request_ids: %r" % (rid, obj))

    # ---- log format and secrets
    with open(allr.log_path, "rb") as fh:
        lines = fh.read().decode(errors="replace").splitlines()
    nonjson, missing_keys = [], []
    for line in lines:
        if line.startswith("---- e2e:") or not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            nonjson.append(line)
            continue
        if not isinstance(obj, dict) or not all(k in obj for k in ("ts", "level", "role", "msg")):
            missing_keys.append(line)
    f.check(not nonjson, "%d log lines are not JSON, e.g. %s" % (len(nonjson), nonjson[:3]))
    f.check(not missing_keys, "%d log lines lack ts/level/role/msg, e.g. %s" %
            (len(missing_keys), missing_keys[:3]))
    text = "\n".join(lines)
    leaked = [s[:12] + "..." for s in secrets if s and len(s) >= 8 and s in text]
    f.check(not leaked, "secrets found in the log: %s" % leaked)
    log("g. request ids echoed, carried to Kafka and to the processor's log")

    sb.check_clean_end(running=(allr,))
    log("total %.0f s" % (time.monotonic() - t_start))
    return sb.report("observability: /metrics on every role, Prometheus scrape, alert and "
                     "dashboard PromQL, metrics moving, request ids")


def check_grafana_files(f, dash):
    """Structure of the dashboard and the provisioning files (no Grafana here to load them)."""
    f.check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
            "dashboard schemaVersion %r" % dash.get("schemaVersion"))
    f.check(bool(dash.get("uid")) and bool(dash.get("title")), "dashboard lacks uid/title")
    ids, flat = [], []

    def walk(panels):
        for p in panels or []:
            flat.append(p)
            walk(p.get("panels"))
    walk(dash.get("panels"))
    ids = [p.get("id") for p in flat]
    f.check(len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids),
            "dashboard panel ids not unique integers: %s" % ids)
    ds_vars = [v for v in dash.get("templating", {}).get("list", [])
               if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    var_uids = {"${%s}" % v["name"] for v in ds_vars} | {"$%s" % v["name"] for v in ds_vars}
    prov = os.path.join(GRAFANA_DIR, "provisioning", "datasources", "prometheus.yml")
    with open(prov) as fh:
        m = re.search(r"(?m)^\s*uid:\s*['\"]?([\w-]+)", fh.read())
    prov_uid = m.group(1) if m else None
    f.check(prov_uid is not None, "%s has no datasource uid" % prov)
    for p in flat:
        if p.get("type") == "row":
            continue
        gp = p.get("gridPos") or {}
        f.check(all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")) and
                gp.get("x", 0) + gp.get("w", 0) <= 24,
                "panel %r: bad gridPos %r" % (p.get("title"), gp))
        for obj in [p] + list(p.get("targets") or []):
            ds = obj.get("datasource")
            uid = ds.get("uid") if isinstance(ds, dict) else ds
            f.check(uid in var_uids or uid == prov_uid,
                    "panel %r: datasource %r is neither the datasource variable nor the "
                    "provisioned uid %r" % (p.get("title"), ds, prov_uid))
        f.check(bool(p.get("targets")), "panel %r has no targets" % p.get("title"))
    prov_d = os.path.join(GRAFANA_DIR, "provisioning", "dashboards", "eventops.yml")
    with open(prov_d) as fh:
        txt = fh.read()
    f.check("type: file" in txt and re.search(r"(?m)^\s*path:\s*\S+", txt),
            "%s is not a file provider with a path" % prov_d)
    text = json.dumps(dash)
    for name in ("eventops_events_accepted_total", "eventops_events_rejected_total",
                 "eventops_http_request_duration_seconds_bucket", "eventops_kafka_consumer_lag",
                 "eventops_processor_rows_inserted_total",
                 "eventops_processor_db_write_seconds_bucket",
                 "eventops_processor_dead_letters_total", "eventops_cache_requests_total",
                 "eventops_rate_limited_total", "eventops_ratelimit_shared",
                 "eventops_auth_failures_total", "eventops_kafka_produce_latency_seconds_bucket",
                 "eventops_kafka_delivery_errors_total", "process_resident_memory_bytes",
                 "process_cpu_seconds_total"):
        f.check(name in text, "dashboard has no panel on %s" % name)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
