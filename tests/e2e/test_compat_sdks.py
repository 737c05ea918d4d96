#!/usr/bin/env python3
"""End-to-end: the unmodified Segment and PostHog SDKs, pointed at EventOps by their host
setting only, store every event exactly once with the fields docs/compat.md maps; killing the
collector while they flush loses nothing they were told was delivered, and their retries store
nothing twice.

One sandbox (database, topics, ports), one tenant and its write key, a collector and a
processor. The SDKs are the pinned ones of scripts/venv.sh (segment-analytics-python,
posthog) and scripts/node-sdks.sh (@segment/analytics-node, posthog-node, driven by
compat_sdk_node.js); `make test` installs them through scripts/deps.sh.

  a. Each SDK sends one call of each kind it has (Segment: track, identify, page, screen,
     group, alias; PostHog: capture, set / identify, set_once, group identify, alias), with ids
     the test chose where the SDK takes them, gzip-compressed where the SDK can (Python SDKs:
     gzip=True; posthog-node compresses by itself), then flushes. Every one of those events is
     stored exactly once, with the event type, user, properties and context the mapping gives
     (e.g. identify -> `$identify` with properties {"$set": traits}); no SDK reported an error.
  c. The profiles those calls make (docs/profiles.md), read from the query role: identify traits
     (Segment's identify, PostHog's set and set_once, posthog-node's identify) are in each
     user's profile, aliases link the anonymous ids, group calls give the groups' traits.
  b. The two Python SDKs send 1,500 events each (ids chosen by the test) in small batches
     while the collector is killed (SIGKILL) three times and started again on the same port.
     Afterwards every id an SDK did not report as failed is stored (nothing the SDK was told
     was delivered is lost), every stored id is one the test sent, and no id is stored twice
     (the SDKs' retries of batches whose answer the kill cut off are deduplicated).

Settings come from the environment (`eval "$(scripts/stack.sh env)"`, EVENTOPS_BIN). Exit code
0 = pass.
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import eotest
from eotest import log
from querytest import QueryClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
NODE_MODULES = os.path.join(ROOT, ".node-sdks", "node_modules")
TIME_BUDGET_S = 600
CRASH_EVENTS = 1500  # per Python SDK in part b
KILLS = 3

# The SDKs live in .venv: run there (the test is started by ctest with the system Python).
if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv")) and \
        os.environ.get("EO_COMPAT_REEXEC") != "1":
    if not os.path.exists(VENV_PYTHON):
        print("FAILED: %s is missing: run scripts/deps.sh (it installs the SDKs)" % VENV_PYTHON)
        sys.exit(1)
    os.environ["EO_COMPAT_REEXEC"] = "1"
    os.execv(VENV_PYTHON, [VENV_PYTHON] + sys.argv)

import posthog  # noqa: E402
import posthog.consumer as posthog_consumer  # noqa: E402
import segment.analytics.consumer as segment_consumer  # noqa: E402
from segment import analytics as segment  # noqa: E402

# Each SDK's upload call, wrapped to count the attempts that failed (a connection cut by a kill,
# or refused while the collector was down): part b must have made the SDKs retry.
FAILED_ATTEMPTS = {"segment": 0, "posthog": 0}


def counting(kind, fn):
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            FAILED_ATTEMPTS[kind] += 1
            raise
    return call


segment_consumer.post = counting("segment", segment_consumer.post)
posthog_consumer.batch_post = counting("posthog", posthog_consumer.batch_post)


def rows_by_id(sb, ids):
    """{messageId: [(event_type, user_id, anonymous_id, properties, context), ...]}."""
    if not ids:
        return {}
    lit = ",".join("'%s'" % i.replace("'", "''") for i in ids)
    out = {}
    for mid, et, uid, aid, props, ctx in sb.sql(
            "SELECT message_id, event_type, user_id, anonymous_id, properties::text, "
            "context::text FROM events WHERE message_id IN (%s)" % lit):
        out.setdefault(mid, []).append((et, uid, aid, json.loads(props), json.loads(ctx)))
    return out


def wait_rows(sb, ids, timeout=60):
    ids = list(ids)
    eotest.wait_until(lambda: len(rows_by_id(sb, ids)) >= len(ids), timeout, interval=0.5,
                      what="%d events stored" % len(ids))
    return rows_by_id(sb, ids)


def expect_row(f, rows, mid, event_type, user=None, anon=None, props=None, lib=None):
    """The one row of mid has the type, ids, properties (a subset) and context library."""
    got = rows.get(mid, [])
    if not f.check(len(got) == 1, "%s: stored %d times, expected once" % (mid, len(got))):
        return
    et, uid, aid, p, ctx = got[0]
    f.check(et == event_type, "%s: event type %r, expected %r" % (mid, et, event_type))
    if user is not None:
        f.check(uid == user, "%s: userId %r, expected %r" % (mid, uid, user))
    if anon is not None:
        f.check(aid == anon, "%s: anonymousId %r, expected %r" % (mid, aid, anon))
    for k, v in (props or {}).items():
        f.check(p.get(k) == v, "%s: properties.%s = %r, expected %r (all: %r)" %
                (mid, k, p.get(k), v, p))
    f.check("token" not in p and "api_key" not in p, "%s: the key is in properties" % mid)
    if lib is not None:
        name = (ctx.get("library") or {}).get("name")
        f.check(name == lib, "%s: context.library.name %r, expected %r" % (mid, name, lib))


def part_a_python(sb, f, base, wk, stamp):
    errors = []
    seg = segment.Client(wk, host=base, gzip=True, max_retries=3,
                         on_error=lambda e, batch: errors.append("segment: %s" % e))
    user, anon = "py-user-%s" % stamp, "py-anon-%s" % stamp
    mid = lambda k: "py-%s-%s" % (stamp, k)  # noqa: E731
    seg.track(user, "Order Completed", {"total": 12.5}, message_id=mid("track"))
    seg.identify(user, {"plan": "pro", "seats": 3}, message_id=mid("identify"))
    seg.page(anonymous_id=anon, category="Docs", name="Install",
             properties={"url": "https://example.com/docs"}, message_id=mid("page"))
    seg.screen(user, name="Cart", message_id=mid("screen"))
    seg.group(user, "py-group-%s" % stamp, {"size": 40}, message_id=mid("group"))
    seg.alias(anon, user, message_id=mid("alias"))
    seg.flush()
    seg.join()
    ph = posthog.Posthog(wk, host=base, gzip=True, max_retries=3, flush_interval=0.2,
                         on_error=lambda e, batch: errors.append("posthog: %s" % e))
    did = "py-ph-%s" % stamp
    u = [str(uuid.uuid4()) for _ in range(5)]
    ph.capture("signup", distinct_id=did, properties={"plan": "free"}, uuid=u[0])
    ph.set(distinct_id=did, properties={"email": "p@example.com"}, uuid=u[1])
    ph.set_once(distinct_id=did, properties={"first": "2026-01-01"}, uuid=u[2])
    ph.group_identify("company", "py-co-%s" % stamp, {"name": "Acme"}, uuid=u[3],
                      distinct_id=did)
    ph.alias("py-ph-anon-%s" % stamp, did, uuid=u[4])
    ph.flush()
    ph.shutdown()
    f.check(not errors, "Python SDKs reported errors: %s" % errors)
    rows = wait_rows(sb, [mid(k) for k in ("track", "identify", "page", "screen", "group",
                                           "alias")] + u)
    lib = "analytics-python"
    expect_row(f, rows, mid("track"), "Order Completed", user=user, props={"total": 12.5},
               lib=lib)
    expect_row(f, rows, mid("identify"), "$identify", user=user,
               props={"$set": {"plan": "pro", "seats": 3}}, lib=lib)
    expect_row(f, rows, mid("page"), "$pageview", anon=anon,
               props={"name": "Install", "category": "Docs", "url": "https://example.com/docs"},
               lib=lib)
    expect_row(f, rows, mid("screen"), "$screen", user=user, props={"name": "Cart"}, lib=lib)
    expect_row(f, rows, mid("group"), "$groupidentify", user=user,
               props={"$group_type": "group", "$group_key": "py-group-%s" % stamp,
                      "$group_set": {"size": 40}}, lib=lib)
    expect_row(f, rows, mid("alias"), "$create_alias", user=user, props={"alias": anon},
               lib=lib)
    expect_row(f, rows, u[0], "signup", user=did, props={"plan": "free",
                                                        "$lib": "posthog-python"})
    expect_row(f, rows, u[1], "$set", user=did, props={"$set": {"email": "p@example.com"}})
    expect_row(f, rows, u[2], "$set_once", user=did, props={"$set_once": {"first": "2026-01-01"}})
    expect_row(f, rows, u[3], "$groupidentify", user=did,
               props={"$group_type": "company", "$group_key": "py-co-%s" % stamp,
                      "$group_set": {"name": "Acme"}})
    # posthog-python's alias(previous_id, distinct_id) sends distinct_id = previous_id and
    # properties.alias = distinct_id, and is stored as sent
    expect_row(f, rows, u[4], "$create_alias", user="py-ph-anon-%s" % stamp,
               props={"alias": did})
    log("a. Python SDKs: 11 calls stored exactly once with the mapped fields")


def part_a_node(sb, f, base, wk, stamp):
    node = shutil.which("node")
    if not f.check(node is not None, "node is missing (scripts/deps.sh installs it)"):
        return
    if not f.check(os.path.isdir(NODE_MODULES), "%s is missing: run scripts/deps.sh" %
                   NODE_MODULES):
        return
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p = subprocess.run([node, os.path.join(ROOT, "tests", "e2e", "compat_sdk_node.js"), base, wk,
                        stamp], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        f.fail("the Node.js driver printed no result (exit %d): %s %s" %
               (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        return
    if not f.check(p.returncode == 0 and "fatal" not in out, "Node.js driver: %r %s" %
                   (out, p.stderr[-2000:])):
        return
    f.check(not out["errors"], "Node.js SDKs reported errors: %s" % out["errors"])
    ids = out["segment"] + out["posthog"]
    rows = wait_rows(sb, ids)
    user, anon = "node-user-%s" % stamp, "node-anon-%s" % stamp
    lib = "@segment/analytics-node"
    s = dict(zip(("track", "identify", "page", "screen", "group", "alias"), out["segment"]))
    expect_row(f, rows, s["track"], "Order Completed", user=user, props={"total": 12.5}, lib=lib)
    expect_row(f, rows, s["identify"], "$identify", user=user,
               props={"$set": {"plan": "pro", "seats": 3}}, lib=lib)
    expect_row(f, rows, s["page"], "$pageview", anon=anon,
               props={"name": "Install", "category": "Docs", "url": "https://example.com/docs"},
               lib=lib)
    expect_row(f, rows, s["screen"], "$screen", user=user, props={"name": "Cart"}, lib=lib)
    expect_row(f, rows, s["group"], "$groupidentify", user=user,
               props={"$group_type": "group", "$group_key": "node-group-%s" % stamp,
                      "$group_set": {"size": 40}}, lib=lib)
    expect_row(f, rows, s["alias"], "$create_alias", user=user, props={"alias": anon}, lib=lib)
    did = "node-ph-%s" % stamp
    expect_row(f, rows, out["posthog"][0], "signup", user=did, props={"plan": "free",
                                                                     "$lib": "posthog-node"})
    # identify, alias and group identify get the SDK's own uuids: found by type and user
    got = {et: (int(n), p) for et, n, p in sb.sql(
        "SELECT event_type, count(*), (array_agg(properties::text))[1] FROM events "
        "WHERE user_id = '%s' AND event_type <> 'signup' GROUP BY 1" % did)}
    for et, props in (("$identify", {"$set": {"email": "n@example.com"}}),
                      ("$create_alias", {"alias": "node-ph-anon-%s" % stamp}),
                      ("$groupidentify", {"$group_type": "company",
                                          "$group_key": "node-co-%s" % stamp,
                                          "$group_set": {"name": "Acme"}})):
        n, text = got.get(et, (0, "{}"))
        p = json.loads(text)
        f.check(n == 1, "posthog-node %s: stored %d times, expected once" % (et, n))
        for k, v in props.items():
            f.check(p.get(k) == v, "posthog-node %s: properties.%s = %r, expected %r" %
                    (et, k, p.get(k), v))
    log("a. Node.js SDKs: 10 calls stored exactly once with the mapped fields")


def part_c_profiles(sb, f, q, stamp):
    def profile(uid):
        st, _, body, url = q.get("/profiles/" + urllib.parse.quote(uid, safe=""))
        f.check(st == 200, "c. GET %s -> %s %.300r" % (url, st, body))
        return body if st == 200 else {}

    for lang in ("py", "node"):
        user, anon = "%s-user-%s" % (lang, stamp), "%s-anon-%s" % (lang, stamp)
        p = profile(user)
        f.check(p.get("traits") == {"plan": "pro", "seats": 3} and p.get("aliases") == [anon],
                "c. %s: profile %r, expected the identify traits and alias %s" % (user, p, anon))
        f.check(profile(anon).get("userId") == user, "c. %s: not linked to %s" % (anon, user))
        st, _, body, url = q.get("/groups/%s-group-%s" % (lang, stamp))
        f.check(st == 200 and body.get("groups", [{}])[0].get("traits") == {"size": 40},
                "c. GET %s -> %s %.300r" % (url, st, body))
        st, _, body, url = q.get("/groups/%s-co-%s" % (lang, stamp), [("groupType", "company")])
        f.check(st == 200 and body.get("groups", [{}])[0].get("traits") == {"name": "Acme"},
                "c. GET %s -> %s %.300r" % (url, st, body))
    # posthog-python's alias(previous_id, distinct_id) sends the previous id as the event's
    # user and the new one as properties.alias: the new id is linked to the previous one
    did = "py-ph-%s" % stamp
    p = profile(did)
    f.check(p.get("traits") == {"email": "p@example.com", "first": "2026-01-01"} and
            p.get("userId") == "py-ph-anon-%s" % stamp,
            "c. %s: profile %r, expected its $set and $set_once traits" % (did, p))
    p = profile("node-ph-%s" % stamp)
    f.check(p.get("traits", {}).get("email") == "n@example.com",
            "c. node-ph-%s: profile %r, expected the identify traits" % (stamp, p))
    log("c. profiles: identify traits, aliases and groups from every SDK")


def part_b_crash(sb, f, col, base, wk, stamp):
    """Both Python SDKs send while the collector is killed and started again."""
    failed = {"segment": set(), "posthog": set()}
    sent = {"segment": [], "posthog": []}
    lock = threading.Lock()

    def on_error(kind, key):
        def cb(e, batch):
            with lock:
                failed[kind].update(m.get(key) for m in batch)
        return cb

    seg = segment.Client(wk, host=base, gzip=True, upload_size=25, upload_interval=0.05,
                         max_retries=10, on_error=on_error("segment", "messageId"))
    ph = posthog.Posthog(wk, host=base, gzip=True, flush_at=25, flush_interval=0.05,
                         max_retries=10, on_error=on_error("posthog", "uuid"))

    def send_segment():
        for i in range(CRASH_EVENTS):
            mid = "crash-%s-s%d" % (stamp, i)
            sent["segment"].append(mid)
            seg.track("crash-user-%d" % (i % 37), "crash_segment", {"i": i}, message_id=mid)
            time.sleep(0.004)

    def send_posthog():
        for i in range(CRASH_EVENTS):
            u = str(uuid.uuid4())
            sent["posthog"].append(u)
            ph.capture("crash_posthog", distinct_id="crash-ph-%d" % (i % 37),
                       properties={"i": i}, uuid=u)
            time.sleep(0.004)

    threads = [threading.Thread(target=send_segment), threading.Thread(target=send_posthog)]
    for t in threads:
        t.start()
    for k in range(KILLS):
        time.sleep(1.2)
        col.kill()
        time.sleep(0.4)
        col.start()
        col.wait_ready(timeout=60)
        log("b. collector killed and started again (%d of %d)" % (k + 1, KILLS))
    for t in threads:
        t.join(timeout=120)
    seg.flush()
    seg.join()
    ph.flush()
    ph.shutdown()
    for kind in ("segment", "posthog"):
        ids = sent[kind]
        delivered = set(ids) - failed[kind]
        f.check(len(ids) == CRASH_EVENTS, "%s: %d sent" % (kind, len(ids)))
        eotest.wait_until(lambda: len(rows_by_id(sb, list(delivered))) >= len(delivered), 90,
                          interval=1.0)
        rows = rows_by_id(sb, ids)
        lost = delivered - set(rows)
        dup = {m: len(r) for m, r in rows.items() if len(r) != 1}
        f.check(not lost, "%s: %d events the SDK was told were delivered are not stored: %s" %
                (kind, len(lost), sorted(lost)[:5]))
        f.check(not dup, "%s: stored more than once: %s" % (kind, dict(list(dup.items())[:5])))
        log("b. %s: %d sent, %d reported failed by the SDK, %d stored, 0 twice" %
            (kind, len(ids), len(failed[kind]), len(rows)))
    f.check(col.kills == KILLS, "the collector was killed %d times" % col.kills)
    log("b. failed upload attempts the SDKs retried: %s" % FAILED_ATTEMPTS)
    f.check(all(FAILED_ATTEMPTS.values()), "an SDK never had an upload fail: the kills did not "
            "cut its uploads (%s)" % FAILED_ATTEMPTS)


def main():
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    with eotest.Sandbox("compat-sdks") as sb:
        f = sb.failures
        tenant = sb.create_tenant("compat")
        wk = tenant["writeKey"]
        sb.create_signing_key()
        reader = sb.create_client(tenant["tenantId"], ["events:read"])
        col, proc, auth, query = sb.collector(), sb.processor(), sb.auth(), sb.query()
        for r in (col, proc, auth, query):
            r.start()
        for r in (col, proc, auth, query):
            r.wait_ready()
        q = QueryClient(sb.query_url(""), sb.token(reader["clientId"], reader["clientSecret"]))
        base = col.url("")
        stamp = eotest.rand_hex(12)  # compat_sdk_node.js makes uuids of its 12 hex digits
        part_a_python(sb, f, base, wk, stamp)
        part_a_node(sb, f, base, wk, stamp)
        part_c_profiles(sb, f, q, stamp)
        part_b_crash(sb, f, col, base, wk, stamp)
        n, d = (int(x) for x in sb.sql(
            "SELECT count(*), count(DISTINCT message_id) FROM events")[0])
        f.check(n == d, "the events table holds %d rows for %d messageIds" % (n, d))
        sb.check_clean_end(running=(col, proc, auth, query))
        return sb.report("compat: the Segment and PostHog SDKs (Python and Node.js) store each "
                         "event exactly once, through collector kills")


def on_alarm(*_):
    raise TimeoutError("test_compat_sdks.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
