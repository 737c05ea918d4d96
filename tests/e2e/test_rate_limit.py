#!/usr/bin/env python3
"""End-to-end: per-client and per-write-key rate limiting shared through Redis (issue 3).

Issue 3 requirements checked:
  "Rate limiting per client and per write key: GCRA or token bucket with a rate and a burst,
   defaults in config and per-client overrides stored in PostgreSQL; shared by all collector
   instances through Redis (one atomic script, Redis server time); when Redis is unreachable,
   fall back to a local limiter and say so in logs and metrics (never fail open silently, never
   answer 5xx because of it). Over the limit: 429 with Retry-After and
   RateLimit-Limit/RateLimit-Remaining/RateLimit-Reset headers."
  Tests: "Rate limiter: two collector processes sharing Redis; over a fixed window the admitted
   requests stay within rate x time + burst; with Redis stopped they still answer (local
   limiter); limits per client do not affect other clients."

Setup: a private redis-server started by this test on a free loopback port (no persistence), so
stopping it does not disturb the shared stack; every role of the sandbox uses it
(EVENTOPS_REDIS_URL, EVENTOPS_REDIS_RETRY_MS=200, EVENTOPS_RATE_LIMIT_INSTANCES=2). Two
collectors (own ports through the role's extra_env) + auth. Clients created with
`create-client --rate 20 --burst 10`; a write key limited with `set-rate-limit --write-key`.

  1. Both /readyz say "rateLimiter":"redis". Redis MONITOR during a few requests: the
     collectors send only script calls (EVAL/EVALSHA/FCALL) for limiting, one per request, and
     the script reads the server clock (TIME): one atomic script, Redis server time.
  2. 8 threads hammer both collectors with client 1 for WINDOW s (keep-alive). Admitted (202)
     <= burst + rate*T + 1 and >= burst + 0.6*rate*T, where T runs from the first request sent
     to the last answer received. The +1 is one emission interval (1/rate = 50 ms): the limiter
     runs on Redis's clock, T on ours, and the requests' arrival instants differ from the send
     and receive instants we measure by the network latency, which can shift at most one
     emission slot into the window. The lower bound catches a limiter that is not shared
     (each instance applying rate/instances) or far too strict. Every answer is 202 or 429;
     every 429 has Retry-After >= 1, RateLimit-Limit = burst, RateLimit-Remaining = 0 and
     RateLimit-Reset; every 202 has the RateLimit-* headers too. Meanwhile client 2 sends
     10 requests/s (half its rate) to both collectors: all 202.
  3. The same bound for a write key limited with set-rate-limit --write-key.
  3b. Leases: a client with a large burst (rate LEASE_RATE, burst LEASE_BURST: leases of up to
     min(EVENTOPS_RATE_LIMIT_LEASE_MAX 64, burst / (4 x instances)) = 50 requests) hammered on
     both collectors: admitted <= burst + rate*(T + EVENTOPS_RATE_LIMIT_LEASE_MS) + 1 (a leased
     request may be spent up to the lease's lifetime after Redis counted it) and >= burst +
     0.6*rate*T; the headers as in 2; Redis ran fewer than half as many scripts as there were
     requests (INFO commandstats), and both collectors count decisions taken without a call
     (eventops_ratelimit_leased_decisions_total).
  4. Redis is stopped: both collectors keep answering (202/429, never 5xx or a dropped
     connection); each logs the warn line "rate limiter: Redis unavailable, limiting locally";
     /readyz says "rateLimiter":"local"; hammering both for WINDOW s admits per instance at most
     burst/2 + rate/2*T + 1 (the local limiter with EVENTOPS_RATE_LIMIT_INSTANCES=2) and at
     least burst/2 + 0.6*rate/2*T.
  5. Redis is started again on the same port: within 10 s both /readyz say "redis" again and
     both logs have the info line "rate limiter: Redis back".

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN; redis-server and
redis-cli on PATH. Exit 0 = pass.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

RATE, BURST = 20, 10
LEASE_RATE, LEASE_BURST, LEASE_MS = 100, 400, 50
INSTANCES = 2
WINDOW = 4.0
THREADS_PER_COLLECTOR = 4
WARN_LINE = "rate limiter: Redis unavailable, limiting locally"
BACK_LINE = "rate limiter: Redis back"
SCRIPT_CMDS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
HOUSEKEEPING = {"PING", "HELLO", "CLIENT", "SELECT", "AUTH", "INFO", "COMMAND", "SCRIPT",
                "FUNCTION", "QUIT", "READONLY"}


Redis = eotest.Redis


def ev(tag):
    return json.dumps({"eventType": "rl_e2e", "userId": "u-rl",
                       "messageId": "rl-%s-%s" % (tag, eotest.rand_hex(12))}).encode()


def one(url, auth, tag="x", conn=None):
    return eotest.http_request("POST", url, ev(tag), {"Content-Type": "application/json",
                                                      "Authorization": auth}, timeout=10,
                               conn=conn)


def hammer(urls, auth, duration, threads_per_url=THREADS_PER_COLLECTOR):
    """Several keep-alive threads per URL send requests with auth for duration seconds.
    Returns (results, T): results = [(url, status, headers)], T = seconds from the first
    request sent to the last answer received. Connection errors are results with status 0."""
    results = []
    lock = threading.Lock()
    marks = {"first": None, "last": None}
    stop_at = time.monotonic() + duration

    def worker(url):
        u = url.split("/")[2]
        host, port = u.split(":")
        conn = None
        local = []
        while time.monotonic() < stop_at:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            t_send = time.monotonic()
            with lock:
                if marks["first"] is None or t_send < marks["first"]:
                    marks["first"] = t_send
            try:
                st, h, _ = one(url, auth, "h", conn=conn)
            except eotest.HttpError as e:
                conn = None
                local.append((url, 0, {"error": str(e)}))
                continue
            t_recv = time.monotonic()
            local.append((url, st, h))
            with lock:
                if marks["last"] is None or t_recv > marks["last"]:
                    marks["last"] = t_recv
        if conn is not None:
            conn.close()
        with lock:
            results.extend(local)

    ths = [threading.Thread(target=worker, args=(u,)) for u in urls
           for _ in range(threads_per_url)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=duration + 30)
    return results, (marks["last"] or 0) - (marks["first"] or 0)


def intval(h, k):
    try:
        return int(h.get(k, ""))
    except ValueError:
        return None


def check_headers(f, name, results, burst):
    """Headers of every 202 and 429 (one failure message per kind of problem)."""
    bad = {}
    for url, st, h in results:
        if st == 429:
            if not (intval(h, "retry-after") is not None and intval(h, "retry-after") >= 1):
                bad.setdefault("429 Retry-After", h.get("retry-after"))
            if intval(h, "ratelimit-limit") != burst:
                bad.setdefault("429 RateLimit-Limit", h.get("ratelimit-limit"))
            if intval(h, "ratelimit-remaining") != 0:
                bad.setdefault("429 RateLimit-Remaining", h.get("ratelimit-remaining"))
            if intval(h, "ratelimit-reset") is None or intval(h, "ratelimit-reset") < 0:
                bad.setdefault("429 RateLimit-Reset", h.get("ratelimit-reset"))
        elif st == 202:
            if intval(h, "ratelimit-limit") != burst:
                bad.setdefault("202 RateLimit-Limit", h.get("ratelimit-limit"))
            rem = intval(h, "ratelimit-remaining")
            if rem is None or not 0 <= rem < burst:
                bad.setdefault("202 RateLimit-Remaining", h.get("ratelimit-remaining"))
            if intval(h, "ratelimit-reset") is None or intval(h, "ratelimit-reset") < 0:
                bad.setdefault("202 RateLimit-Reset", h.get("ratelimit-reset"))
    for k, v in bad.items():
        f.fail("%s: %s is %r (expected burst %d, remaining 0 on 429, Retry-After >= 1, "
               "whole seconds)" % (name, k, v, burst))


def script_calls(redis):
    """Scripts Redis ran since it started (EVAL and EVALSHA in INFO commandstats)."""
    n = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        name, _, rest = line.partition(":")
        if name in ("cmdstat_eval", "cmdstat_evalsha"):
            n += int(rest.split("calls=", 1)[1].split(",", 1)[0])
    return n


def window_check(f, name, results, T, rate, burst, per_url=None, lease_s=0.0):
    """Statuses are 202/429 only; admitted within [burst + 0.6*rate*T,
    burst + rate*(T + lease_s) + 1]."""
    sts = [st for _, st, _ in results]
    others = sorted({st for st in sts if st not in (202, 429)})
    f.check(not others, "%s: statuses other than 202/429: %s (count %d)" %
            (name, others, sum(1 for s in sts if s not in (202, 429))))
    errors = [h.get("error") for _, st, h in results if st == 0]
    f.check(not errors, "%s: %d requests got no answer, e.g. %s" % (name, len(errors),
                                                                    errors[:2]))
    admitted = sts.count(202)
    hi = burst + rate * (T + lease_s) + 1
    lo = burst + 0.6 * rate * T
    log("%s: %d requests, %d admitted, %d limited in T = %.2f s (bounds %.1f .. %.1f)" %
        (name, len(sts), admitted, sts.count(429), T, lo, hi))
    f.check(admitted <= hi, "%s: %d admitted in %.2f s, more than burst + rate*(T + %g) + 1 = "
            "%.1f (rate %s, burst %s)" % (name, admitted, T, lease_s, hi, rate, burst))
    f.check(admitted >= lo, "%s: only %d admitted in %.2f s, fewer than burst + 0.6*rate*T = "
            "%.1f (rate %s, burst %s)" % (name, admitted, T, lo, rate, burst))
    f.check(sts.count(429) > 0, "%s: nothing was limited" % name)
    if per_url:
        for url in per_url:
            n = sum(1 for u, st, _ in results if u == url and st == 202)
            f.check(n > 0, "%s: no request admitted by %s" % (name, url))
    return admitted


def metrics(url):
    """GET /metrics -> {series name with labels: value} (Prometheus text format)."""
    st, _, body = eotest.http_request("GET", url, timeout=5)
    out = {}
    text = body.decode() if isinstance(body, bytes) else body if isinstance(body, str) else ""
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return st, out


def readyz(url):
    st, _, body = eotest.http_get(url, timeout=5)
    return st, body


def main():
    return eotest.run_with_redis("rate-limit", run)


def run(sb, redis):
    redis.start()
    log("private redis-server on :%d" % redis.port)
    sb.env.update({
        "EVENTOPS_REDIS_URL": redis.url,
        "EVENTOPS_REDIS_TIMEOUT_MS": "50",
        "EVENTOPS_REDIS_RETRY_MS": "200",
        "EVENTOPS_RATE_LIMIT_INSTANCES": str(INSTANCES),
        "EVENTOPS_RATE_LIMIT_LEASE_MS": str(LEASE_MS),
        "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
    })
    f = sb.failures
    sb.create_signing_key()
    t = sb.create_tenant("rl-" + eotest.rand_hex(6))
    clients = [sb.create_client(t["tenantId"], ["events:write"], rate=RATE, burst=BURST)
               for _ in range(6)]
    clients.append(sb.create_client(t["tenantId"], ["events:write"], rate=LEASE_RATE,
                                    burst=LEASE_BURST))
    listed = {c["clientId"]: c for c in sb.list_clients(tenant=t["tenantId"])}
    c0 = listed.get(clients[0]["clientId"], {})
    f.check(c0.get("rateLimit") == RATE and c0.get("burst") == BURST,
            "list-clients shows rateLimit/burst %r/%r, expected %d/%d" %
            (c0.get("rateLimit"), c0.get("burst"), RATE, BURST))
    wk = sb.admin_json("create-write-key", t["tenantId"])
    sb.set_rate_limit(rate=RATE, burst=BURST, write_key=wk["writeKeyId"])

    auth = sb.auth()
    c1 = sb.collector(name="collector-1")
    c2 = sb.collector(extra_env={"EVENTOPS_COLLECTOR_PORT": eotest.free_port()},
                      name="collector-2")
    for r in (auth, c1, c2):
        r.start()
    for r in (auth, c1, c2):
        r.wait_ready()
    colls = [c1, c2]
    urls = [c.url("/events") for c in colls]
    toks = ["Bearer " + sb.token(c["clientId"], c["clientSecret"]) for c in clients]
    log("collectors on :%d and :%d" % (c1.port, c2.port))

    for c in colls:
        st, body = readyz(c.url("/readyz"))
        f.check(st == 200 and isinstance(body, dict) and body.get("rateLimiter") == "redis",
                "%s /readyz with Redis up: %s %r, expected 200 with rateLimiter redis" %
                (c.name, st, body))

    # -- 1. one atomic script per request, Redis server time
    mon_path = os.path.join(sb.dir, "monitor.txt")
    with open(mon_path, "wb") as mf:
        mon = subprocess.Popen(["redis-cli", "-p", str(redis.port), "monitor"], stdout=mf,
                               stderr=subprocess.STDOUT)
    time.sleep(0.5)
    n_mon = 6
    for i in range(n_mon):
        r = one(urls[i % 2], toks[5], "mon")
        f.check(r[0] == 202, "monitor phase: request %d got %s" % (i, r[0]))
    time.sleep(0.3)
    mon.terminate()
    mon.wait(timeout=10)
    with open(mon_path, errors="replace") as mf:
        lines = [l for l in mf.read().splitlines() if "[" in l]
    client_cmds, lua_cmds = [], []
    for l in lines:
        try:
            who = l.split("[", 1)[1].split("]", 1)[0]
            cmd = l.split("]", 1)[1].strip().split(" ")[0].strip('"').upper()
        except IndexError:
            continue
        (lua_cmds if " lua" in " " + who else client_cmds).append(cmd)
    scripts = [c for c in client_cmds if c in SCRIPT_CMDS]
    other = sorted({c for c in client_cmds if c not in SCRIPT_CMDS | HOUSEKEEPING})
    f.check(len(scripts) >= n_mon, "Redis MONITOR: %d script calls for %d requests (%s)" %
            (len(scripts), n_mon, client_cmds[:20]))
    f.check(len(scripts) <= 2 * n_mon, "Redis MONITOR: %d script calls for %d requests: "
            "more than one round trip per request?" % (len(scripts), n_mon))
    f.check(not other, "Redis MONITOR: commands outside one atomic script: %s" % other)
    f.check("TIME" in lua_cmds, "Redis MONITOR: the script never reads the server clock "
            "(no TIME inside it; lua commands seen: %s)" % sorted(set(lua_cmds)))
    log("MONITOR: %d script calls, lua commands %s" % (len(scripts), sorted(set(lua_cmds))))

    # -- 2. shared limit across both collectors, second client unaffected
    time.sleep(1.0)
    side = []
    side_stop = threading.Event()

    def side_client():
        i = 0
        while not side_stop.is_set():
            try:
                r = one(urls[i % 2], toks[1], "side")
                side.append(r[0])
            except eotest.HttpError as e:
                side.append(str(e))
            i += 1
            side_stop.wait(0.1)
    th = threading.Thread(target=side_client)
    th.start()
    res, T = hammer(urls, toks[0], WINDOW)
    side_stop.set()
    th.join(timeout=30)
    window_check(f, "client 1 on both collectors (Redis)", res, T, RATE, BURST,
                 per_url=urls)
    check_headers(f, "client 1", res, BURST)
    f.check(len(side) >= 10 and all(s == 202 for s in side),
            "client 2 (own limit, 10 req/s) while client 1 was limited: %s" %
            sorted(set(map(str, side))))
    log("client 2 during the window: %d requests, statuses %s" % (len(side), set(side)))

    # -- 3. a write key's own limit
    res, T = hammer(urls, "Bearer " + wk["writeKey"], WINDOW * 0.75)
    window_check(f, "write key on both collectors (Redis)", res, T, RATE, BURST,
                 per_url=urls)
    check_headers(f, "write key", res, BURST)

    # -- 3b. leases: a busy key takes requests from Redis in blocks
    calls0 = script_calls(redis)
    res, T = hammer(urls, toks[6], WINDOW)
    calls = script_calls(redis) - calls0
    window_check(f, "leases: client 7 on both collectors (Redis)", res, T, LEASE_RATE,
                 LEASE_BURST, per_url=urls, lease_s=LEASE_MS / 1000.0)
    check_headers(f, "client 7 (leases)", res, LEASE_BURST)
    f.check(0 < calls and 2 * calls < len(res), "leases: Redis ran %d scripts for %d requests, "
            "expected fewer than half" % (calls, len(res)))
    for c in colls:
        st, m = metrics(c.url("/metrics"))
        n = m.get('eventops_ratelimit_leased_decisions_total{role="collector"}') or 0
        f.check(st == 200 and n > 0, "%s: eventops_ratelimit_leased_decisions_total is %r" %
                (c.name, n))
    log("leases: %d requests, %d scripts in Redis" % (len(res), calls))

    # -- 4. Redis stopped
    redis.stop()
    log("redis stopped")
    sts = []
    for i in range(30):
        try:
            sts.append(one(urls[i % 2], toks[2], "down")[0])
        except eotest.HttpError as e:
            sts.append(str(e))
    f.check(all(s in (202, 429) for s in sts),
            "requests right after Redis stopped: %s (expected 202/429 only)" %
            sorted(set(map(str, sts))))
    for c in colls:
        ok = eotest.wait_until(lambda: [l for l in c.grep(WARN_LINE)
                                        if '"warn' in l or "warn" in l.lower()], 10)
        f.check(ok, "%s: no warn line %r within 10 s of Redis stopping" % (c.name, WARN_LINE))
        st, body = readyz(c.url("/readyz"))
        f.check(st == 200 and isinstance(body, dict) and body.get("rateLimiter") == "local",
                "%s /readyz with Redis down: %s %r, expected 200 with rateLimiter local" %
                (c.name, st, body))
    time.sleep(1.0)
    res, T = hammer(urls, toks[3], WINDOW)
    lr, lb = RATE / INSTANCES, max(1, BURST // INSTANCES)
    for u, c in zip(urls, colls):
        window_check(f, "%s alone, Redis down (local %g/s burst %d)" % (c.name, lr, lb),
                     [x for x in res if x[0] == u], T, lr, lb)
    check_headers(f, "Redis down", res, lb)
    for c in colls:
        f.check(c.running(), "%s is not running after Redis stopped" % c.name)
        # "say so in logs and metrics"
        st, m = metrics(c.url("/metrics"))
        lab = '{role="collector"}'
        f.check(st == 200 and m.get("eventops_ratelimit_shared" + lab) == 0,
                "%s /metrics with Redis down: eventops_ratelimit_shared %r, expected 0" %
                (c.name, m.get("eventops_ratelimit_shared" + lab)))
        for name in ("eventops_ratelimit_local_decisions_total",
                     "eventops_ratelimit_redis_errors_total", "eventops_rate_limited_total"):
            f.check((m.get(name + lab) or 0) > 0, "%s /metrics with Redis down: %s is %r, "
                    "expected > 0" % (c.name, name, m.get(name + lab)))

    # -- 5. Redis back
    redis.start()
    log("redis started again on :%d" % redis.port)
    t0 = time.monotonic()

    def back(c, u):
        try:
            one(u, toks[4], "back")
            st, body = readyz(c.url("/readyz"))
        except eotest.HttpError:
            return False
        return isinstance(body, dict) and body.get("rateLimiter") == "redis"
    for c, u in zip(colls, urls):
        ok = eotest.wait_until(lambda: back(c, u), 10, interval=0.1)
        f.check(ok, "%s: /readyz not back to rateLimiter redis within 10 s of Redis "
                "restarting" % c.name)
        if ok:
            log("%s back on Redis after %.1f s" % (c.name, time.monotonic() - t0))
        st, m = metrics(c.url("/metrics"))
        f.check(m.get('eventops_ratelimit_shared{role="collector"}') == 1,
                "%s /metrics after Redis came back: eventops_ratelimit_shared %r, expected 1"
                % (c.name, m.get('eventops_ratelimit_shared{role="collector"}')))
        ok = eotest.wait_until(lambda: c.grep(BACK_LINE), 5)
        f.check(ok, "%s: no log line %r after Redis came back" % (c.name, BACK_LINE))
        lines = c.grep(BACK_LINE)
        if lines:
            f.check('"level":"info"' in lines[-1], "%s: %r is not an info line: %s" %
                    (c.name, BACK_LINE, lines[-1]))
    warn = c1.grep(WARN_LINE)
    if warn:
        f.check('"level":"warn"' in warn[0], "the Redis-unavailable line is not at warn "
                "level: %s" % warn[0])

    sb.check_clean_end(running=sb.roles)
    return sb.report("rate limiting: shared via Redis, per client/write key, local fallback")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
