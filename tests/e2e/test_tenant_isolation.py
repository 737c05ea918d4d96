#!/usr/bin/env python3
"""End-to-end: cross-tenant matrix (issue 3, tenant isolation).

Issue 3 requirements checked:
  "Tenant isolation: every read and write path takes the tenant from the credential, never from
   the request body or a header; every cache key and every query carries it."
  "Rate limiting per client and per write key ... limits per client do not affect other
   clients."
  Tests: "Cross-tenant matrix: tenant A's token and write key can neither write into nor read
   from tenant B on any endpoint (repeat for every endpoint as later issues add them)."

Tenants A and B, each with a write key and a client (events:write). For each ordered pair
(attacker, victim) in (A, B) and (B, A), every credential of the attacker (token, write key as
Bearer, write key as Basic) is sent to every endpoint of ENDPOINTS with every SPOOF naming the
victim (tenantId in the event or in each batch item, tenant/tenant_id, context.tenantId,
properties.tenantId, a top-level tenantId next to "events", the X-Tenant-Id header, all at once).
Every request must get 202 and every event must be stored under the attacker's tenant only; the
victim's events (message ids) and rollups are unchanged. A token whose payload was edited to the
victim's tenant (signature kept) is 401 on every endpoint.

Rate limits: a client of A with its own small limit (create-client --rate 1 --burst 3) and a
write key of A with one (set-rate-limit --write-key) are driven into 429; B's token and write
key, and A's other client, still get 202 at once; the limited credential stays 429 even when
the request names B (X-Tenant-Id / tenantId): limits follow the credential.

Read endpoints (issue 4, the query role): every query endpoint is in ENDPOINTS with kind
"read". Before the matrix the victim asks each of them itself, so its answer is in the cache
(warm) when the attacker asks the same question; the attacker's first ask of each is cold. With
a token the answer must be 200 and hold none of the victim's data (counts of the victim's event
types are 0, its types and message ids are absent), or 400 naming tenantId when the spoof puts
tenantId in the query string; write keys get 401 (they are for ingestion only). Cache keys in
Redis carry the tenant.

Analytics endpoints (issue 12, the analytics role): each tenant has a rule with a summary event
and a window result (written in SQL) before the matrix. Every operation naming the victim's
rule (GET, GET ?version=1, PUT, DELETE, its windows, its backtest) is 404 with the attacker's
token, or 400 when the spoof puts the tenant in the request (a backtest takes no body: a spoof
in one is ignored, and the answer is still 404); the rule list and the summaries (all, and of the
victim's rule) hold none of the victim's rules or summaries; a rule the attacker creates is
stored under the attacker (400 unknown_field when the spoof puts a tenant member in the rule);
write keys get 401. Afterwards each victim's rule is still at version 1, not deleted.

The live stream (GET /analytics/stream): each tenant has a window result of its rule on the
windows topic. A stream naming the victim's rule is 404 like the other operations; a stream of
all the attacker's rules resumed from the very beginning of the topics (Last-Event-ID of
offsets 0) carries the attacker's own result and none of the victim's (read until the stream is
idle: a keep-alive after the attacker's result); write keys get 401.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

# Query answers stay cached for the whole test, so the victim's entries are warm while the
# attacker asks the same questions.
ENV = {"EVENTOPS_WRITE_KEY_REFRESH_MS": "200", "EVENTOPS_AUTH_KEYS_REFRESH_MS": "500",
       "EVENTOPS_QUERY_CACHE_OPEN_TTL_MS": "600000", "EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S": "1"}


def event(mid, etype):
    return {"eventType": etype, "userId": "u-" + mid[-6:], "messageId": mid}


# Spoofs: how a request can name the victim's tenant. Each is (name, event fields, batch-level
# fields for the {"events": [...]} form, headers); V is replaced by the victim's tenant id.
SPOOFS = [
    ("no spoof", {}, {}, {}),
    ("tenantId in the event", {"tenantId": "V"}, {}, {}),
    ("tenant and tenant_id in the event", {"tenant": "V", "tenant_id": "V"}, {}, {}),
    ("context.tenantId", {"context": {"tenantId": "V"}}, {}, {}),
    ("properties.tenantId", {"properties": {"tenantId": "V"}}, {}, {}),
    ("X-Tenant-Id header", {}, {}, {"X-Tenant-Id": "V"}),
    ("top-level tenantId next to events", {}, {"tenantId": "V"}, {}),
    ("all at once", {"tenantId": "V", "context": {"tenantId": "V"}}, {"tenantId": "V"},
     {"X-Tenant-Id": "V", "X-Tenant": "V"}),
]


def subst(obj, victim):
    if isinstance(obj, dict):
        return {k: subst(v, victim) for k, v in obj.items()}
    return victim if obj == "V" else obj


class Endpoint:
    """One tenant-data endpoint. kind "write": request(cred, spoof, victim, mids) sends the
    events and returns the response; the matrix then checks where the events were stored.
    kind "read" (later issues): check(sb, f, name, resp, attacker, victim) asserts the answer
    holds only the attacker's data."""

    def __init__(self, name, kind, request, check=None):
        self.name, self.kind, self.request, self.check = name, kind, request, check


def w_single(sb, auth, spoof, victim, mids, etype):
    _, ev_fields, _, hdrs = spoof
    ev = event(mids[0], etype)
    ev.update(subst(ev_fields, victim))
    h = {"Content-Type": "application/json", "Authorization": auth}
    h.update(subst(hdrs, victim))
    return eotest.http_request("POST", sb.url("/events"), json.dumps(ev).encode(), h)


def w_batch(sb, auth, spoof, victim, mids, etype, wrapped=False):
    _, ev_fields, top, hdrs = spoof
    evs = []
    for m in mids:
        ev = event(m, etype)
        ev.update(subst(ev_fields, victim))
        evs.append(ev)
    body = evs
    if wrapped:
        body = {"events": evs}
        body.update(subst(top, victim))
    h = {"Content-Type": "application/json", "Authorization": auth}
    h.update(subst(hdrs, victim))
    return eotest.http_request("POST", sb.url("/events/batch"), json.dumps(body).encode(), h)


# Read endpoints: the question asked about the victim's data (V: the victim's letter).
READS = [
    ("GET /events/count", "/events/count?eventType=iso_base_V"),
    ("GET /events/trend", "/events/trend?eventType=iso_base_V&interval=hour"),
    ("GET /events/unique-users", "/events/unique-users?eventType=iso_base_V&interval=day"),
    ("GET /events/breakdown", "/events/breakdown?eventType=iso_base_V&property=plan"),
    ("GET /events/funnel", "/events/funnel?steps=iso_base_V,iso_base_V"),
    ("GET /events/retention", "/events/retention?startEvent=iso_base_V&returnEvent=iso_base_V"),
    ("GET /events/types", "/events/types"),
    ("GET /events", "/events?limit=1000"),
]


def read_path(template, letter):
    return template.replace("iso_base_V", "iso_base_" + letter)


def r_get(template):
    def request(sb, auth, spoof, victim, mids, etype):
        att = etype[-1]
        vic = "B" if att == "A" else "A"
        path = read_path(template, vic)
        _, ev_fields, top, hdrs = spoof
        if ev_fields or top:  # the spoof names the tenant in the request itself
            path += ("&" if "?" in path else "?") + "tenantId=" + victim
        h = {"Authorization": auth}
        h.update(subst(hdrs, victim))
        return eotest.http_request("GET", sb.query_url(path), None, h)
    return request


# Analytics endpoints: VRULE is the victim's rule id.
ANALYTICS = [
    ("GET /analytics/rules", "GET", "/analytics/rules", "list"),
    ("POST /analytics/rules", "POST", "/analytics/rules", "create"),
    ("GET /analytics/rules/{victim's}", "GET", "/analytics/rules/VRULE", "gone"),
    ("GET /analytics/rules/{victim's}?version=1", "GET", "/analytics/rules/VRULE?version=1",
     "gone"),
    ("PUT /analytics/rules/{victim's}", "PUT", "/analytics/rules/VRULE", "gone"),
    ("DELETE /analytics/rules/{victim's}", "DELETE", "/analytics/rules/VRULE", "gone"),
    ("GET /analytics/rules/{victim's}/windows", "GET", "/analytics/rules/VRULE/windows", "gone"),
    ("POST /analytics/rules/{victim's}/backtest", "POST", "/analytics/rules/VRULE/backtest",
     "gone"),
    ("GET /analytics/summaries", "GET", "/analytics/summaries", "summaries"),
    ("GET /analytics/summaries?ruleId={victim's}", "GET", "/analytics/summaries?ruleId=VRULE",
     "summaries"),
    ("GET /analytics/stream?rules={victim's}", "GET", "/analytics/stream?rules=VRULE", "gone"),
]
RULES = {}  # tenant id -> {"rule", "summary": its summary's event id, "window": its record}


def a_rule(name, etype):
    return {"name": name, "eventType": etype, "window": {"type": "tumbling", "size": "5m"},
            "aggregate": {"fn": "count"}}


def a_request(method, template):
    def request(sb, auth, spoof, victim, mids, etype):
        _, ev_fields, top, hdrs = spoof
        path = template.replace("VRULE", RULES[victim]["rule"])
        h = {"Authorization": auth}
        h.update(subst(hdrs, victim))
        body = None
        if method in ("POST", "PUT"):  # the spoof goes into the rule
            rule = a_rule("iso " + mids[0], etype)
            rule.update(subst(ev_fields, victim))
            rule.update(subst(top, victim))
            body = json.dumps(rule).encode()
            h["Content-Type"] = "application/json"
        elif ev_fields or top:  # into the query string
            path += ("&" if "?" in path else "?") + "tenantId=" + victim
        return eotest.http_request(method, sb.analytics_url(path), body, h)
    return request


def a_check(what):
    def check(sb, f, name, resp, attacker, victim):
        st, _, body = resp
        if "write key" in name:
            eotest.check_bearer_error(f, name, resp)
            return
        err = body.get("error") if isinstance(body, dict) else None
        if st == 400:  # the spoof named a tenant in the request: refused, naming it
            f.check(isinstance(err, dict) and
                    err.get("field") in ("tenantId", "tenant", "context", "properties"),
                    "%s: 400 %r, expected one naming the tenant member or parameter" %
                    (name, body))
            return
        if what == "gone":
            f.check(st == 404 and isinstance(err, dict) and err.get("code") == "not_found",
                    "%s: %s %.200r, expected 404 not_found" % (name, st, body))
        elif what == "create":
            if f.check(st == 201 and isinstance(body, dict) and body.get("id"),
                       "%s: %s %.200r, expected 201" % (name, st, body)):
                owner = sb.scalar("SELECT tenant_id FROM analytics_rules WHERE rule_id = '%s'" %
                                  body["id"])
                f.check(owner == attacker["id"], "%s: the rule was stored under %s" %
                        (name, owner))
        elif what == "list":
            ids = [r.get("id") for r in body.get("rules", [])] if isinstance(body, dict) else None
            f.check(st == 200 and ids is not None and RULES[victim["id"]]["rule"] not in ids,
                    "%s: %s, the list %r holds the victim's rule" % (name, st, ids))
        else:
            items = body.get("summaries") if isinstance(body, dict) else None
            f.check(st == 200 and isinstance(items, list) and not any(
                s.get("eventId") == RULES[victim["id"]]["summary"] or
                s.get("tenant") == victim["id"] for s in items),
                "%s: %s %.300r, holds the victim's summary" % (name, st, body))
    return check


def sse_data(body):
    """The data of the events of an event stream's bytes."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else ""
    return ["\n".join(l[6:] for l in block.split("\n") if l.startswith("data: "))
            for block in text.split("\n\n") if "\ndata: " in "\n" + block]


def read_stream(url, headers, own, timeout=15):
    """GET of an event stream, read until the record own has come and a keep-alive after it
    (the stream has sent everything it had), or timeout: (status, headers, body bytes), or the
    JSON body of an answer that is not a stream."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
        resp = conn.getresponse()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if resp.status != 200:
            raw = resp.read()
            try:
                return resp.status, hdrs, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, hdrs, raw
        body = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = resp.read1(65536)
            if not chunk:
                break
            body += chunk
            at = body.find(own.encode())
            if at >= 0 and b": keep-alive" in body[at:]:
                break
        return resp.status, hdrs, body
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def s_request(sb, auth, spoof, victim, mids, etype):
    """The attacker's stream of all its rules from the topics' first offsets."""
    _, ev_fields, top, hdrs = spoof
    path = "/analytics/stream"
    if ev_fields or top:  # the spoof names the tenant in the query string
        path += "?tenantId=" + victim
    start = "w%s-s%s" % (".".join(["0"] * sb.partitions),
                         ".".join(["0"] * max(1, sb.partitions // 2)))
    h = {"Authorization": auth, "Last-Event-ID": start}
    h.update(subst(hdrs, victim))
    attacker = [t for t in RULES if t != victim][0]
    return read_stream(sb.analytics_url(path), h, RULES[attacker]["window"])


def s_check(sb, f, name, resp, attacker, victim):
    st, _, body = resp
    if "write key" in name:
        eotest.check_bearer_error(f, name, resp)
        return
    if st == 400:
        err = body.get("error") if isinstance(body, dict) else None
        f.check(isinstance(err, dict) and err.get("field") == "tenantId",
                "%s: 400 %r, expected one naming tenantId" % (name, body))
        return
    if not f.check(st == 200, "%s: %s %.200r, expected the stream" % (name, st, body)):
        return
    data = sse_data(body)
    f.check(RULES[attacker["id"]]["window"] in data, "%s: the attacker's own result did not "
            "come (%d events)" % (name, len(data)))
    f.check(RULES[victim["id"]]["window"] not in data and
            not any(victim["id"] in d for d in data),
            "%s: the stream holds the victim's result" % name)


def victim_data(body, vic_letter, vic_mids):
    """What of the victim's data an answer shows (a list of findings; empty when none)."""
    if not isinstance(body, dict):
        return ["not a JSON object: %.200r" % (body,)]
    found = []
    for key in ("count", "total", "users"):
        if body.get(key):
            found.append("%s %r" % (key, body[key]))
    for b in body.get("series") or []:
        if b.get("count") or b.get("users"):
            found.append("bucket %r" % (b,))
    for step in body.get("steps") or []:
        if step.get("users"):
            found.append("funnel step %r" % (step,))
    if body.get("cohorts"):
        found.append("cohorts %.200r" % (body["cohorts"],))
    for t in body.get("types") or []:
        if t.get("eventType", "").endswith("_" + vic_letter):
            found.append("type %r" % (t,))
    for e in body.get("events") or []:
        if e.get("messageId") in vic_mids or e.get("eventType", "").endswith("_" + vic_letter):
            found.append("event %r" % (e.get("messageId"),))
    return found


def r_check(sb, f, name, resp, attacker, victim):
    st, _, body = resp
    if "write key" in name:
        eotest.check_bearer_error(f, name, resp)
        return
    if st == 400:
        err = body.get("error") if isinstance(body, dict) else None
        f.check(isinstance(err, dict) and err.get("field") == "tenantId",
                "%s: 400 %r, expected one naming tenantId" % (name, body))
        return
    if not f.check(st == 200, "%s: status %s %.200r, expected 200" % (name, st, body)):
        return
    leak = victim_data(body, victim["letter"], victim["mids"])
    f.check(not leak, "%s: the answer shows the victim's data: %s" % (name, leak[:3]))


ENDPOINTS = [
    Endpoint("POST /events", "write", lambda *a: w_single(*a)),
    Endpoint("POST /events/batch [...]", "write", lambda *a: w_batch(*a)),
    Endpoint("POST /events/batch {events}", "write", lambda *a: w_batch(*a, wrapped=True)),
] + [Endpoint(n, "read", r_get(t), r_check) for n, t in READS] + \
    [Endpoint(n, "analytics", a_request(m, t), a_check(w)) for n, m, t, w in ANALYTICS] + \
    [Endpoint("GET /analytics/stream from the first offsets", "analytics", s_request, s_check)]


def tamper_tenant(token, tenant):
    h, p, s = eotest.jwt_parts(token)
    claims = json.loads(eotest.b64url_decode(p))
    claims["tenant"] = tenant
    return h + "." + eotest.b64url_encode(json.dumps(claims, separators=(",", ":"))) + "." + s


def stored_ids(sb, tenant):
    return {r[0] for r in sb.sql("SELECT message_id FROM events WHERE tenant_id = '%s'" %
                                 tenant)}


def rollup_count(sb, tenant):
    return int(sb.scalar("SELECT count(*) FROM rollups WHERE tenant_id = '%s'" % tenant))


def hammer_until_429(sb, auth, n=30, headers=None):
    """Sends up to n events with auth until a 429; returns (statuses, last response)."""
    sts, r = [], None
    for _ in range(n):
        mid = "iso-rl-" + eotest.rand_hex(10)
        h = {"Content-Type": "application/json", "Authorization": auth}
        h.update(headers or {})
        r = eotest.http_request("POST", sb.url("/events"),
                                json.dumps(event(mid, "iso_rl")).encode(), h)
        sts.append(r[0])
        if r[0] != 202:
            break
    return sts, r


def check_429(f, name, resp, burst):
    st, h, body = resp
    if not f.check(st == 429, "%s: status %s, expected 429 (%.200r)" % (name, st, body)):
        return
    err = body.get("error") if isinstance(body, dict) else None
    f.check(isinstance(err, dict) and err.get("code") == "rate_limited",
            "%s: body %r, expected error.code rate_limited" % (name, body))
    try:
        f.check(int(h.get("retry-after", "")) >= 1, "%s: Retry-After %r" %
                (name, h.get("retry-after")))
        f.check(int(h.get("ratelimit-limit", "")) == burst, "%s: RateLimit-Limit %r, expected "
                "%d" % (name, h.get("ratelimit-limit"), burst))
        f.check(int(h.get("ratelimit-remaining", "")) == 0, "%s: RateLimit-Remaining %r" %
                (name, h.get("ratelimit-remaining")))
        f.check(int(h.get("ratelimit-reset", "")) >= 0, "%s: RateLimit-Reset %r" %
                (name, h.get("ratelimit-reset")))
    except ValueError:
        f.fail("%s: rate-limit headers missing or not integers: %r" % (name, h))


def main():
    with eotest.Sandbox("tenant-isolation", extra_env=ENV) as sb:
        f = sb.failures
        sb.create_signing_key()
        T = {}
        for x in ("A", "B"):
            t = sb.create_tenant("iso-%s-%s" % (x.lower(), eotest.rand_hex(6)))
            c = sb.create_client(t["tenantId"], ["events:write", "events:read",
                                                 "analytics:write"])
            T[x] = {"tenant": t, "id": t["tenantId"], "wk": t["writeKey"], "client": c,
                    "letter": x, "mids": set()}
        lim_client = sb.create_client(T["A"]["id"], ["events:write"], rate=1, burst=3)
        lim_wk = sb.admin_json("create-write-key", T["A"]["id"])
        sb.set_rate_limit(rate=1, burst=3, write_key=lim_wk["writeKeyId"])
        auth, coll, proc, query = sb.auth(), sb.collector(), sb.processor(), sb.query()
        analytics = sb.analytics()
        for r in (auth, coll, proc, query, analytics):
            r.start()
        for r in (auth, coll, proc, query, analytics):
            r.wait_ready()
        for x in ("A", "B"):
            c = T[x]["client"]
            T[x]["token"] = sb.token(c["clientId"], c["clientSecret"])

        # Each tenant's rule, with a summary event and a window result as the engine stores them.
        for x in ("A", "B"):
            r = eotest.post_json(sb.analytics_url("/analytics/rules"),
                                 a_rule("iso rule " + x, "iso_base_" + x), key=T[x]["token"])
            f.check(r[0] == 201, "%s's rule: %s %r" % (x, r[0], r[2]))
            rid = r[2]["id"]
            eid = sb.scalar("SELECT gen_random_uuid()")
            RULES[T[x]["id"]] = {"rule": rid, "summary": eid}
            body = json.dumps({"eventId": eid, "tenant": T[x]["id"], "rule": {"id": rid}})
            sb.sql("INSERT INTO analytics_summaries (tenant_id, event_id, rule_id, rule_version, "
                   "status, group_key, window_start, window_end, value, threshold, body, "
                   "emitted_at) VALUES ('%s', '%s', '%s', 1, 'firing', '', now() - interval "
                   "'1 hour', now(), 1, 1, '%s', now()); INSERT INTO analytics_windows "
                   "(tenant_id, rule_id, rule_version, group_key, window_start, window_end, "
                   "revision, final, value, count, body) VALUES ('%s', '%s', 1, '', now() - "
                   "interval '1 hour', now(), 1, true, 1, 1, '{}')" %
                   (T[x]["id"], eid, rid, body, T[x]["id"], rid))
            st, _, own = eotest.http_request(
                "GET", sb.analytics_url("/analytics/summaries?ruleId=" + rid), None,
                {"Authorization": "Bearer " + T[x]["token"]})
            f.check(st == 200 and [s.get("eventId") for s in own.get("summaries", [])] == [eid],
                    "%s asking for its own summaries: %s %r" % (x, st, own))
            # and a window result on the windows topic, as the engine writes it, for the stream
            window = json.dumps({"type": "analytics.window", "tenantId": T[x]["id"],
                                 "rule": {"id": rid, "version": 1, "name": "iso rule " + x},
                                 "group": {}, "groupKey": "[]", "value": 1, "count": 1,
                                 "revision": 1, "final": True,
                                 "marker": "iso-window-" + eotest.rand_hex(8)},
                                separators=(",", ":"))
            eotest.produce(sb.brokers, sb.windows_topic, [("%s:%s" % (T[x]["id"], rid), window)])
            RULES[T[x]["id"]]["window"] = window

        # Baseline: each tenant's own events, stored under it.
        base = {}
        for x in ("A", "B"):
            mids = ["iso-base-%s-%s" % (x, eotest.rand_hex(8)) for _ in range(3)]
            evs = [event(m, "iso_base_" + x) | {"properties": {"plan": "p" + x}} for m in mids]
            r = eotest.post_json(sb.url("/events/batch"), evs, key=T[x]["token"])
            f.check(r[0] == 202, "baseline batch of %s: %s %r" % (x, r[0], r[2]))
            base[x] = mids
            T[x]["mids"] = set(mids)
        stored = sb.wait_stored(base["A"] + base["B"])
        for x in ("A", "B"):
            for m in base[x]:
                f.check(stored.get(m) == [T[x]["id"]], "baseline event %s of %s stored under %r"
                        % (m, x, stored.get(m)))
        time.sleep(1.0)  # rollups of the baseline
        before = {x: (stored_ids(sb, T[x]["id"]), rollup_count(sb, T[x]["id"])) for x in "AB"}

        # Each tenant asks its own questions first: it sees its data, and the answers are now in
        # the cache (warm) when the other tenant asks the very same question.
        for x in "AB":
            for rname, template in READS:
                st, _, body = eotest.http_request(
                    "GET", sb.query_url(read_path(template, x)), None,
                    {"Authorization": "Bearer " + T[x]["token"]})
                own = victim_data(body, x, T[x]["mids"])
                f.check(st == 200 and own, "%s asking %s about itself: %s, no data of its own "
                        "(%.200r)" % (x, rname, st, body))

        # The matrix.
        expect = {"A": [], "B": []}  # message ids that must be stored under each tenant
        nreq = 0
        for att, vic in (("A", "B"), ("B", "A")):
            creds = [("%s's token" % att, "Bearer " + T[att]["token"]),
                     ("%s's write key (Bearer)" % att, "Bearer " + T[att]["wk"]),
                     ("%s's write key (Basic)" % att, eotest.basic_auth(T[att]["wk"], "",
                                                                        urlencode=False))]
            for cname, auth_value in creds:
                for ep in ENDPOINTS:
                    for spoof in SPOOFS:
                        name = "%s, %s, %s naming %s" % (cname, ep.name, spoof[0], vic)
                        mids = ["iso-%s-%s" % (att, eotest.rand_hex(10)) for _ in range(2)]
                        if ep.name == "POST /events":
                            mids = mids[:1]
                        resp = ep.request(sb, auth_value, spoof, T[vic]["id"], mids,
                                          "iso_" + att)
                        nreq += 1
                        if ep.kind == "write":
                            if f.check(resp[0] == 202, "%s: %s %.300r, expected 202" %
                                       (name, resp[0], resp[2])):
                                expect[att] += [(m, name) for m in mids]
                        else:
                            ep.check(sb, f, name, resp, T[att], T[vic])
                # A token edited to name the victim: 401 everywhere.
                if "token" in cname:
                    forged = tamper_tenant(T[att]["token"], T[vic]["id"])
                    for ep in ENDPOINTS:
                        resp = ep.request(sb, "Bearer " + forged, SPOOFS[0], T[vic]["id"],
                                          ["iso-forged-" + eotest.rand_hex(10)], "iso_forged")
                        nreq += 1
                        eotest.check_bearer_error(
                            f, "%s edited to tenant %s, %s" % (cname, vic, ep.name), resp)
        log("matrix: %d requests" % nreq)
        for x in "AB":
            rows = sb.sql("SELECT max(version), bool_or(deleted) FROM analytics_rules "
                          "WHERE rule_id = '%s'" % RULES[T[x]["id"]]["rule"])
            f.check([list(r) for r in rows] == [["1", "f"]],
                    "%s's rule after the matrix: %r, expected version 1, not deleted" % (x, rows))

        all_mids = [m for x in "AB" for m, _ in expect[x]]
        stored = sb.wait_stored(all_mids, timeout=90)
        for x in "AB":
            wrong = [(m, n, stored.get(m)) for m, n in expect[x] if stored.get(m) != [T[x]["id"]]]
            f.check(not wrong, "%d events sent with %s's credentials are not stored (only) under "
                    "%s; first: %s" % (len(wrong), x, x, wrong[:3]))
        time.sleep(1.5)  # let anything misrouted arrive too
        forged_leak = sb.sql("SELECT message_id, tenant_id FROM events WHERE message_id LIKE "
                             "'iso-forged-%'")
        f.check(not forged_leak, "events sent with tampered tokens were stored: %r" %
                forged_leak)
        for x in "AB":
            own = {m for m, _ in expect[x]}
            now_ids = stored_ids(sb, T[x]["id"])
            extra = now_ids - before[x][0] - own - {m for m in now_ids if m.startswith("iso-rl-")}
            f.check(not extra, "tenant %s has %d events it did not send: %s" %
                    (x, len(extra), sorted(extra)[:5]))
            f.check(before[x][0] <= now_ids, "tenant %s lost events" % x)
            other = "B" if x == "A" else "A"
            leaked = {m for m, _ in expect[other]} & now_ids
            f.check(not leaked, "%d of %s's events are stored under %s" % (len(leaked), other, x))
        rb = rollup_count(sb, T["B"]["id"])
        # B wrote iso_B events itself in the matrix; A's event type must not appear under B.
        a_types_under_b = int(sb.scalar(
            "SELECT count(*) FROM rollups WHERE tenant_id = '%s' AND event_type LIKE 'iso_A%%'" %
            T["B"]["id"]))
        f.check(a_types_under_b == 0, "B's rollups hold %d rows of A's event type" %
                a_types_under_b)
        b_types_under_a = int(sb.scalar(
            "SELECT count(*) FROM rollups WHERE tenant_id = '%s' AND event_type LIKE 'iso_B%%'" %
            T["A"]["id"]))
        f.check(b_types_under_a == 0, "A's rollups hold %d rows of B's event type" %
                b_types_under_a)
        log("stored: A %d, B %d events; B rollup rows %d" %
            (len(stored_ids(sb, T["A"]["id"])), len(stored_ids(sb, T["B"]["id"])), rb))

        # Rate limits follow the credential: A's limited client and write key do not slow B.
        lim_tok = sb.token(lim_client["clientId"], lim_client["clientSecret"])
        for cname, auth_value in (("A's limited client", "Bearer " + lim_tok),
                                  ("A's limited write key", "Bearer " + lim_wk["writeKey"])):
            sts, last = hammer_until_429(sb, auth_value)
            if not f.check(sts and sts[-1] == 429 and set(sts[:-1]) <= {202} and
                           len(sts) - 1 <= 3 + 2,
                           "%s (rate 1/s, burst 3): statuses %s, expected at most ~burst 202s "
                           "then 429" % (cname, sts)):
                continue
            check_429(f, cname, last, 3)
            for oname, ov in (("B's token", "Bearer " + T["B"]["token"]),
                              ("B's write key", "Bearer " + T["B"]["wk"]),
                              ("A's other client", "Bearer " + T["A"]["token"]),
                              ("A's first write key", "Bearer " + T["A"]["wk"])):
                r = eotest.post_json(sb.url("/events"), event("iso-rl-" + eotest.rand_hex(10),
                                                              "iso_rl"), headers={
                    "Authorization": ov})
                f.check(r[0] == 202, "%s got %s right after %s was limited, expected 202" %
                        (oname, r[0], cname))
            r = eotest.post_json(sb.url("/events"),
                                 event("iso-rl-" + eotest.rand_hex(10), "iso_rl") |
                                 {"tenantId": T["B"]["id"]},
                                 headers={"Authorization": auth_value,
                                          "X-Tenant-Id": T["B"]["id"]})
            f.check(r[0] == 429, "%s naming tenant B got %s, expected 429 (the limit follows "
                    "the credential)" % (cname, r[0]))
            log("%s: %s, others unaffected" % (cname, sts))

        keys = subprocess.run(["redis-cli", "-u", os.environ.get(
            "EVENTOPS_REDIS_URL", "redis://127.0.0.1:56379"), "--scan", "--pattern", "eo:q:*"],
            stdout=subprocess.PIPE, text=True, timeout=30).stdout.split()
        mine = [k for k in keys if T["A"]["id"] in k or T["B"]["id"] in k]
        f.check(len(mine) >= len(READS), "only %d query cache keys of A or B in Redis" %
                len(mine))
        for k in mine:
            f.check(k.startswith("eo:q:{%s}:" % T["A"]["id"]) or
                    k.startswith("eo:q:{%s}:" % T["B"]["id"]),
                    "cache key %r does not start with its tenant" % k)
        log("query cache keys of A and B: %d, each prefixed with its tenant" % len(mine))

        sb.check_clean_end(running=(auth, coll, proc, query, analytics))
        return sb.report("cross-tenant matrix: %d endpoints x %d spoofs x 3 credentials x 2 "
                         "directions" % (len(ENDPOINTS), len(SPOOFS)))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
