#!/usr/bin/env python3
"""End-to-end: the analytics role's HTTP API and `eventops admin rules` (docs/analytics.md,
"HTTP API").

Setup: one sandbox (eotest.Sandbox) with EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT=3 and
EVENTOPS_ANALYTICS_MAX_RULE_BYTES=2048; the auth role (tokens) and the analytics role. Tenants A,
B and C; clients of A with events:read + analytics:write, events:read only and analytics:write
only; of B and C with both.

  a. health: /healthz, /readyz (200, postgres, engine and tokenKeys true), /metrics (the rules
     counters), /openapi.json (the analytics operations only).
  b. credentials: no Authorization is 401 missing_credentials; a write key, a malformed token
     and an HTTP Basic header are 401 invalid_token; a token without analytics:write is 403
     insufficient_scope on POST, PUT and DELETE (the challenge names analytics:write), one
     without events:read 403 on every GET (naming events:read).
  c. rules with versions: POST 201 (Location, id, version 1, the rule, createdAt); GET of it,
     in the list; PUT makes version 2 (200); GET gives 2, ?version=1 and ?version=2 the two
     definitions, ?version=3 is 404; DELETE 204; afterwards GET (also with a version), PUT,
     DELETE and its windows are 404 and the list leaves it out; analytics_rules holds versions
     1..3, the last deleted. An id in upper case names the same rule.
  d. bad input: not JSON, not an object, an unknown member (top level and nested: the 400
     names it), a missing member, a wrong Content-Type (415), a body over the byte limit
     (413, announced and sent), a query parameter on a write, malformed ids (400 field id) on
     GET, PUT, DELETE and windows, an unknown id (404), bad version values (400 field
     version); the wrong method (405 with Allow) and paths beside the routes (404).
  e. isolation: B gets 404 for A's rule on GET, PUT, DELETE and windows, and A's rules are not
     in B's list (nor B's in A's).
  f. the rule limit: a tenant at EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT gets 409
     too_many_rules; deleting one makes room; eight concurrent POSTs of a tenant without rules
     give exactly three 201 and five 409 (the limit holds under a race).
  g. summaries and window results (rows written directly in SQL for A and B): the default
     range (the last 24 h), from/to, ruleId, limit, newest first, each tenant only its own;
     windows: the latest revision of each window only, group, from/to, limit; another
     tenant's, an unknown or a deleted rule 404 (its summaries stay listed); bad from, to,
     limit and ruleId are 400.
  h. admin: `eventops admin rules create|list|show|update|delete` (text and --json) for a
     tenant by name: versions as the API makes them, visible over the API and back; a bad
     rule file names the field; the rule limit; unknown tenant, unknown id and usage errors.
  i. metrics: eventops_analytics_rules_changes_total{op} counts the API's writes and
     eventops_analytics_rules_refused_total{reason} its refusals.
  The role stops with exit 0 on SIGTERM, and no sanitizer report is in its log.

Environment: the stack's (eval "$(scripts/stack.sh env)") plus EVENTOPS_BIN. Exit 0 = pass.
"""

import concurrent.futures
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

MAX_RULES = 3
MAX_RULE_BYTES = 2048
TIME_BUDGET_S = 600
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
JSON = {"Content-Type": "application/json"}


def rule(name, event_type="signup", size="5m"):
    return {"name": name, "eventType": event_type,
            "window": {"type": "tumbling", "size": size}, "aggregate": {"fn": "count"}}


class Api:
    """Requests to the analytics role with one bearer token."""

    def __init__(self, sb, token):
        self.sb = sb
        self.h = {"Authorization": "Bearer " + token} if token else {}

    def req(self, method, path, body=None, headers=None):
        h = dict(self.h)
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.update(JSON)
        h.update(headers or {})
        return eotest.http_request(method, self.sb.analytics_url(path), body, h)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, body, path="/analytics/rules", **kw):
        return self.req("POST", path, body, **kw)

    def put(self, rid, body, **kw):
        return self.req("PUT", "/analytics/rules/" + rid, body, **kw)

    def delete(self, rid, **kw):
        return self.req("DELETE", "/analytics/rules/" + rid, **kw)


def err_code(body):
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def err_field(body):
    return body.get("error", {}).get("field") if isinstance(body, dict) else None


def expect(f, what, resp, status, code=None, field=None):
    """Checks an answer's status (and error code and field); returns the body."""
    st, h, body = resp
    ok = f.check(st == status, "%s: %s %.300r, expected %s" % (what, st, body, status))
    if ok and code is not None:
        f.check(err_code(body) == code, "%s: error code %r, expected %r (%r)" %
                (what, err_code(body), code, body))
    if ok and field is not None:
        f.check(err_field(body) == field, "%s: error field %r, expected %r (%r)" %
                (what, err_field(body), field, body))
    return body


def check_rule_answer(f, what, body, name, version, rid=None):
    if not f.check(isinstance(body, dict), "%s: body %r is not an object" % (what, body)):
        return
    f.check(set(body) == {"id", "version", "rule", "createdAt"},
            "%s: members %s, expected id, version, rule, createdAt" % (what, sorted(body)))
    f.check(isinstance(body.get("id"), str) and UUID_RE.match(body["id"]) is not None,
            "%s: id %r is not a lower-case UUID" % (what, body.get("id")))
    if rid is not None:
        f.check(body.get("id") == rid, "%s: id %r, expected %r" % (what, body.get("id"), rid))
    f.check(body.get("version") == version, "%s: version %r, expected %r" %
            (what, body.get("version"), version))
    r = body.get("rule")
    f.check(isinstance(r, dict) and r.get("name") == name and r.get("eventType"),
            "%s: rule %r, expected the canonical rule named %r" % (what, r, name))
    f.check(isinstance(body.get("createdAt"), str) and TIME_RE.match(body["createdAt"]),
            "%s: createdAt %r" % (what, body.get("createdAt")))


def metric_value(text, name, labels):
    """The value of the series name{labels...} (every given label must match), summed."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        m = re.match(r'^([a-z_]+)\{(.*)\} (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2)))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def part_a(f, sb):
    st, _, body = eotest.http_get(sb.analytics_url("/healthz"))
    f.check(st == 200 and body == {"status": "ok"}, "GET /healthz: %s %r" % (st, body))
    st, _, body = eotest.http_get(sb.analytics_url("/readyz"))
    f.check(st == 200 and body == {"status": "ready", "postgres": True, "engine": True,
                                   "tokenKeys": True}, "GET /readyz: %s %r" % (st, body))
    st, _, body = eotest.http_get(sb.analytics_url("/openapi.json"))
    if f.check(st == 200 and isinstance(body, dict), "GET /openapi.json: %s" % st):
        paths = set(body.get("paths", {}))
        want = {"/analytics/rules", "/analytics/rules/{id}", "/analytics/rules/{id}/windows",
                "/analytics/rules/{id}/backtest", "/analytics/summaries", "/analytics/stream",
                "/healthz", "/readyz", "/metrics", "/openapi.json"}
        f.check(paths == want, "GET /openapi.json: paths %s, expected %s" %
                (sorted(paths), sorted(want)))
    st, h, raw = eotest.http_request("GET", sb.analytics_url("/metrics"))
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    f.check(st == 200 and "eventops_analytics_rules_changes_total" in text and
            'role="analytics"' in text, "GET /metrics: %s, no analytics series" % st)
    log("a. healthz, readyz, openapi.json, metrics")


def part_b(f, sb, t, rw, ro, wo, rid):
    none = Api(sb, None)
    for method, path in (("GET", "/analytics/rules"), ("POST", "/analytics/rules"),
                         ("GET", "/analytics/rules/" + rid), ("PUT", "/analytics/rules/" + rid),
                         ("DELETE", "/analytics/rules/" + rid),
                         ("GET", "/analytics/rules/%s/windows" % rid),
                         ("GET", "/analytics/summaries")):
        body = rule("x") if method in ("POST", "PUT") else None
        resp = none.req(method, path, body)
        expect(f, "no token: %s %s" % (method, path), resp, 401, "missing_credentials",
               "Authorization")
        f.check("Bearer" in resp[1].get("www-authenticate", ""),
                "no token: %s %s: WWW-Authenticate %r" % (method, path,
                                                          resp[1].get("www-authenticate")))
        for label, value in (("write key", "Bearer " + t["writeKey"]),
                             ("malformed token", "Bearer abc.def.ghi"),
                             ("Basic", eotest.basic_auth(t["writeKey"], ""))):
            resp = none.req(method, path, body, headers={"Authorization": value})
            expect(f, "%s: %s %s" % (label, method, path), resp, 401, "invalid_token")
        if method == "GET":
            resp = wo.req(method, path)
            expect(f, "token without events:read: GET " + path, resp, 403, "insufficient_scope")
            f.check('scope="events:read"' in resp[1].get("www-authenticate", ""),
                    "403 on GET %s: challenge %r" % (path, resp[1].get("www-authenticate")))
        else:
            resp = ro.req(method, path, body)
            expect(f, "token without analytics:write: %s %s" % (method, path), resp, 403,
                   "insufficient_scope")
            f.check('scope="analytics:write"' in resp[1].get("www-authenticate", ""),
                    "403 on %s %s: challenge %r" % (method, path,
                                                    resp[1].get("www-authenticate")))
    # the right scope is enough: events:read alone reads, analytics:write alone writes
    expect(f, "events:read only: GET the rule", ro.get("/analytics/rules/" + rid), 200)
    body = expect(f, "analytics:write only: POST", wo.post(rule("write-only")), 201)
    if isinstance(body, dict) and body.get("id"):
        expect(f, "analytics:write only: DELETE", wo.delete(body["id"]), 204)
    expect(f, "rw: GET list", rw.get("/analytics/rules"), 200)
    log("b. 401 and 403 on every operation")


def part_c(f, sb, a):
    st, h, body = a.post(rule("signups v1"))
    if not f.check(st == 201, "POST a rule: %s %r" % (st, body)):
        return None
    check_rule_answer(f, "POST", body, "signups v1", 1)
    rid = body["id"]
    f.check(h.get("location") == "/analytics/rules/" + rid,
            "POST: Location %r, expected /analytics/rules/%s" % (h.get("location"), rid))
    f.check(h.get("cache-control") == "no-store", "POST: Cache-Control %r" %
            h.get("cache-control"))
    f.check(all(k in h for k in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")),
            "POST: RateLimit-* headers missing: %s" % sorted(h))
    created = body["createdAt"]
    got = expect(f, "GET the new rule", a.get("/analytics/rules/" + rid), 200)
    check_rule_answer(f, "GET the new rule", got, "signups v1", 1, rid)
    if isinstance(got, dict):
        f.check(got.get("rule") == body["rule"], "GET gives rule %r, POST gave %r" %
                (got.get("rule"), body["rule"]))
        f.check(got.get("createdAt") == created, "GET createdAt %r, POST %r" %
                (got.get("createdAt"), created))
    lst = expect(f, "GET the list", a.get("/analytics/rules"), 200)
    ids = [r.get("id") for r in (lst or {}).get("rules", [])] if isinstance(lst, dict) else []
    f.check(rid in ids, "the list %s lacks %s" % (ids, rid))
    st, h, upd = a.put(rid, rule("signups v2", size="10m"))
    if f.check(st == 200, "PUT: %s %r" % (st, upd)):
        check_rule_answer(f, "PUT", upd, "signups v2", 2, rid)
        f.check("location" not in h, "PUT: a Location header %r" % h.get("location"))
    check_rule_answer(f, "GET after PUT", expect(f, "GET after PUT",
                                                 a.get("/analytics/rules/" + rid), 200),
                      "signups v2", 2, rid)
    check_rule_answer(f, "GET ?version=1", expect(f, "GET ?version=1",
                                                  a.get("/analytics/rules/%s?version=1" % rid),
                                                  200), "signups v1", 1, rid)
    check_rule_answer(f, "GET ?version=2", expect(f, "GET ?version=2",
                                                  a.get("/analytics/rules/%s?version=2" % rid),
                                                  200), "signups v2", 2, rid)
    expect(f, "GET ?version=3", a.get("/analytics/rules/%s?version=3" % rid), 404, "not_found")
    check_rule_answer(f, "GET in upper case", expect(f, "GET in upper case",
                                                     a.get("/analytics/rules/" + rid.upper()),
                                                     200), "signups v2", 2, rid)
    st, h, body = a.delete(rid)
    f.check(st == 204 and body is None, "DELETE: %s %r, expected 204 without a body" %
            (st, body))
    f.check("content-type" not in h, "DELETE 204: Content-Type %r" % h.get("content-type"))
    expect(f, "GET after DELETE", a.get("/analytics/rules/" + rid), 404, "not_found")
    expect(f, "PUT after DELETE", a.put(rid, rule("again")), 404, "not_found")
    expect(f, "DELETE after DELETE", a.delete(rid), 404, "not_found")
    for v in (1, 2, 3):
        expect(f, "GET ?version=%d after DELETE" % v,
               a.get("/analytics/rules/%s?version=%d" % (rid, v)), 404, "not_found")
    expect(f, "windows after DELETE", a.get("/analytics/rules/%s/windows" % rid), 404,
           "not_found")
    lst = expect(f, "GET the list after DELETE", a.get("/analytics/rules"), 200)
    ids = [r.get("id") for r in (lst or {}).get("rules", [])] if isinstance(lst, dict) else []
    f.check(rid not in ids, "the list %s still holds the deleted %s" % (ids, rid))
    rows = sb.sql("SELECT version, deleted, definition->>'name' FROM analytics_rules "
                  "WHERE rule_id = '%s' ORDER BY version" % rid)
    f.check([list(r) for r in rows] == [["1", "f", "signups v1"], ["2", "f", "signups v2"],
                     ["3", "t", "signups v2"]],
            "analytics_rules rows of %s: %r" % (rid, rows))
    log("c. POST, GET, list, PUT, versions, DELETE (rule %s)" % rid)
    return rid


def part_d(f, sb, a, live):
    for what, body, field in (
            ("not JSON", b"{not json", None),
            ("an array", b"[]", None),
            ("a string", b'"rule"', None),
            ("empty", b"", None),
            ("unknown member", dict(rule("u"), nmae="typo"), "nmae"),
            ("unknown nested member",
             dict(rule("u"), window={"type": "tumbling", "sise": "5m"}), "window.sise"),
            ("missing name", {k: v for k, v in rule("u").items() if k != "name"}, "name")):
        for method in ("POST", "PUT"):
            path = "/analytics/rules" + ("/" + live if method == "PUT" else "")
            resp = a.req(method, path, body, headers=JSON)
            b = expect(f, "%s %s" % (method, what), resp, 400, None, field)
            f.check(isinstance(err_code(b), str) and err_code(b) and
                    isinstance(b["error"].get("message"), str),
                    "%s %s: no error code and message: %r" % (method, what, b))
    expect(f, "POST text/xml", a.post(json.dumps(rule("x")).encode(),
                                      headers={"Content-Type": "text/xml"}),
           415, "unsupported_media_type")
    big = dict(rule("big"), name="n" * 100, eventType="e" * 100)
    big["groupBy"] = ["properties." + "p" * 60] * 40  # well over 2048 bytes
    data = json.dumps(big).encode()
    f.check(len(data) > MAX_RULE_BYTES, "the big rule is only %d bytes" % len(data))
    expect(f, "POST over the byte limit", a.post(data), 413, "body_too_large")
    expect(f, "PUT over the byte limit", a.put(live, data), 413, "body_too_large")
    expect(f, "POST with a query parameter", a.post(rule("q"), path="/analytics/rules?x=1"), 400,
           "invalid_parameter", "x")
    expect(f, "DELETE with a query parameter",
           a.req("DELETE", "/analytics/rules/%s?force=1" % live), 400, "invalid_parameter",
           "force")
    expect(f, "GET the list with a parameter", a.get("/analytics/rules?limit=5"), 400,
           "invalid_parameter", "limit")
    for bad in ("x", "123", live[:-1], live + "0", live.replace("-", "_"), "%7Bid%7D",
                "g" * 36):
        for method in ("GET", "PUT", "DELETE"):
            body = rule("x") if method == "PUT" else None
            expect(f, "%s malformed id %r" % (method, bad),
                   a.req(method, "/analytics/rules/" + bad, body), 400, "invalid_parameter",
                   "id")
        expect(f, "windows of malformed id %r" % bad,
               a.get("/analytics/rules/%s/windows" % bad), 400, "invalid_parameter", "id")
    unknown = "0190a1b2-0000-7000-8000-0000000000ff"
    expect(f, "GET unknown id", a.get("/analytics/rules/" + unknown), 404, "not_found")
    expect(f, "PUT unknown id", a.put(unknown, rule("x")), 404, "not_found")
    expect(f, "DELETE unknown id", a.delete(unknown), 404, "not_found")
    expect(f, "windows of unknown id", a.get("/analytics/rules/%s/windows" % unknown), 404,
           "not_found")
    for v in ("0", "-1", "x", "1.5", "2147483648", "", "1&version=2"):
        expect(f, "GET ?version=%s" % v, a.get("/analytics/rules/%s?version=%s" % (live, v)), 400,
               "invalid_parameter", "version")
    expect(f, "GET ?versions=1", a.get("/analytics/rules/%s?versions=1" % live), 400,
           "invalid_parameter", "versions")
    st, h, _ = a.req("PATCH", "/analytics/rules/" + live, rule("x"))
    f.check(st == 405 and h.get("allow") == "GET, PUT, DELETE",
            "PATCH a rule: %s Allow %r, expected 405 GET, PUT, DELETE" % (st, h.get("allow")))
    st, h, _ = a.req("DELETE", "/analytics/rules")
    f.check(st == 405 and h.get("allow") == "POST, GET",
            "DELETE /analytics/rules: %s Allow %r" % (st, h.get("allow")))
    st, h, _ = a.req("POST", "/analytics/summaries", {})
    f.check(st == 405 and h.get("allow") == "GET", "POST /analytics/summaries: %s %r" %
            (st, h.get("allow")))
    for path in ("/analytics/rules/", "/analytics/rules/%s/" % live,
                 "/analytics/rules/%s/windows/x" % live, "/analytics/rules/%s/x" % live,
                 "/analytics", "/analytics/stream/x"):
        expect(f, "GET " + path, a.get(path), 404, "not_found")
    log("d. bad rules, media type, byte limit, ids, versions, methods, paths")


def part_e(f, a, b):
    ra = expect(f, "A: POST", a.post(rule("a's rule")), 201)
    rb = expect(f, "B: POST", b.post(rule("b's rule")), 201)
    if not (isinstance(ra, dict) and isinstance(rb, dict)):
        return
    for what, resp in (("GET", b.get("/analytics/rules/" + ra["id"])),
                       ("GET ?version=1", b.get("/analytics/rules/%s?version=1" % ra["id"])),
                       ("PUT", b.put(ra["id"], rule("taken over"))),
                       ("DELETE", b.delete(ra["id"])),
                       ("windows", b.get("/analytics/rules/%s/windows" % ra["id"]))):
        expect(f, "B on A's rule: " + what, resp, 404, "not_found")
    check_rule_answer(f, "A's rule after B tried", expect(
        f, "A: GET its rule", a.get("/analytics/rules/" + ra["id"]), 200), "a's rule", 1,
        ra["id"])
    la = expect(f, "A: list", a.get("/analytics/rules"), 200)
    lb = expect(f, "B: list", b.get("/analytics/rules"), 200)
    ida = {r["id"] for r in la.get("rules", [])} if isinstance(la, dict) else set()
    idb = {r["id"] for r in lb.get("rules", [])} if isinstance(lb, dict) else set()
    f.check(ra["id"] in ida and ra["id"] not in idb, "A's rule in lists: A %s, B %s" %
            (ra["id"] in ida, ra["id"] in idb))
    f.check(rb["id"] in idb and rb["id"] not in ida, "B's rule in lists: B %s, A %s" %
            (rb["id"] in idb, rb["id"] in ida))
    expect(f, "A deletes its rule", a.delete(ra["id"]), 204)
    expect(f, "B deletes its rule", b.delete(rb["id"]), 204)
    log("e. tenants see only their own rules")


def live_count(sb, tenant_id):
    return int(sb.scalar("SELECT count(*) FROM analytics_rules_current WHERE tenant_id = '%s' "
                         "AND NOT deleted" % tenant_id))


def part_f(f, sb, a, ta, c, tc):
    made = []
    while live_count(sb, ta["tenantId"]) < MAX_RULES:
        body = expect(f, "fill up to the limit", a.post(rule("fill %d" % len(made))), 201)
        if not isinstance(body, dict):
            return
        made.append(body["id"])
    b = expect(f, "POST past the limit", a.post(rule("one too many")), 409, "too_many_rules")
    f.check(isinstance(b, dict) and str(MAX_RULES) in b.get("error", {}).get("message", ""),
            "409 message %r does not name the limit" % (b,))
    if made:
        upd = expect(f, "PUT at the limit", a.put(made[0], rule("still allowed")), 200)
        f.check(isinstance(upd, dict) and upd.get("version") == 2, "PUT at the limit: %r" % upd)
        expect(f, "DELETE one at the limit", a.delete(made[0]), 204)
        again = expect(f, "POST after a delete", a.post(rule("room again")), 201)
        if isinstance(again, dict):
            made[0] = again["id"]
    f.check(live_count(sb, ta["tenantId"]) == MAX_RULES, "A has %d live rules, expected %d" %
            (live_count(sb, ta["tenantId"]), MAX_RULES))

    def one(i):
        return c.post(rule("race %d" % i))[0]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(one, range(8)))
    f.check(statuses == [201] * MAX_RULES + [409] * (8 - MAX_RULES),
            "8 concurrent POSTs with a limit of %d: %s" % (MAX_RULES, statuses))
    f.check(live_count(sb, tc["tenantId"]) == MAX_RULES, "C has %d live rules after the race" %
            live_count(sb, tc["tenantId"]))
    for rid in made:
        expect(f, "clean-up DELETE", a.delete(rid), 204)
    log("f. too_many_rules at %d, also under a race of 8" % MAX_RULES)


def summary_body(tenant, rid, eid, status, start, value):
    return {"eventId": eid, "type": "analytics.summary", "status": status, "tenant": tenant,
            "rule": {"id": rid, "version": 1, "name": "n"}, "group": {},
            "window": {"start": start, "end": start}, "value": value, "threshold": 10,
            "revision": 1, "final": True, "emittedAt": start}


def part_g(f, sb, a, b, ta, tb):
    """Summaries and windows written in SQL for A and B."""
    ra = expect(f, "A: a rule for results", a.post(rule("results a")), 201)
    ra2 = expect(f, "A: a second rule for results", a.post(rule("results a2")), 201)
    rb = expect(f, "B: a rule for results", b.post(rule("results b")), 201)
    if not all(isinstance(x, dict) for x in (ra, ra2, rb)):
        return
    rows = []  # (tenant, rule, event id, status, hours ago, value)
    n = 0
    for tenant, rid, count in ((ta["tenantId"], ra["id"], 5), (ta["tenantId"], ra2["id"], 2),
                               (tb["tenantId"], rb["id"], 3)):
        for i in range(count):
            n += 1
            rows.append((tenant, rid, "0190a1b2-0000-7000-8000-%012d" % n,
                         "firing" if i % 2 == 0 else "resolved", i * 3 + 1, 100 + n))
    rows.append((ta["tenantId"], ra["id"], "0190a1b2-0000-7000-8000-%012d" % 999, "firing", 30,
                 1.5))  # older than the default range
    values = []
    for tenant, rid, eid, status, hours, value in rows:
        start = "now() - interval '%d hours'" % hours
        body = summary_body(tenant, rid, eid, status, "S", value)
        values.append("('%s', '%s', '%s', 1, '%s', '', date_trunc('minute', %s), "
                      "date_trunc('minute', %s) + interval '5 minutes', %s, 10, "
                      "jsonb_set('%s'::jsonb, '{window,start}', to_jsonb(%s)), now())" %
                      (tenant, eid, rid, status, start, start, value,
                       json.dumps(body).replace("'", "''"), start))
    sb.sql("INSERT INTO analytics_summaries (tenant_id, event_id, rule_id, rule_version, status, "
           "group_key, window_start, window_end, value, threshold, body, emitted_at) VALUES " +
           ", ".join(values))

    def ids(body, key="summaries"):
        return [s.get("eventId") for s in body.get(key, [])] if isinstance(body, dict) else None

    def expect_ids(what, resp, want):
        body = expect(f, what, resp, 200)
        f.check(isinstance(body, dict) and set(body) == {"summaries"},
                "%s: members %r" % (what, sorted(body) if isinstance(body, dict) else body))
        got = ids(body)
        f.check(got == want, "%s: eventIds %s, expected %s" % (what, got, want))

    def newest_first(sel):
        return [r[2] for r in sorted(sel, key=lambda r: r[4])]

    a_recent = [r for r in rows if r[0] == ta["tenantId"] and r[4] < 24]
    b_recent = [r for r in rows if r[0] == tb["tenantId"] and r[4] < 24]
    expect_ids("A: summaries, default range", a.get("/analytics/summaries"),
               newest_first(a_recent))
    expect_ids("B: summaries, default range", b.get("/analytics/summaries"),
               newest_first(b_recent))
    expect_ids("A: summaries of its first rule",
               a.get("/analytics/summaries?ruleId=" + ra["id"]),
               newest_first([r for r in a_recent if r[1] == ra["id"]]))
    expect_ids("A: summaries of B's rule", a.get("/analytics/summaries?ruleId=" + rb["id"]), [])
    expect_ids("A: limit=2", a.get("/analytics/summaries?limit=2"), newest_first(a_recent)[:2])
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 48 * 3600))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 6 * 3600))
    expect_ids("A: from 48 h to 6 h ago",
               a.get("/analytics/summaries?from=%s&to=%s" % (frm, to)),
               newest_first([r for r in rows if r[0] == ta["tenantId"] and 6 < r[4] < 48]))
    expect_ids("A: from 48 h ago to now", a.get("/analytics/summaries?from=" + frm),
               newest_first([r for r in rows if r[0] == ta["tenantId"]]))
    got = expect(f, "A: one summary's body", a.get("/analytics/summaries?limit=1"), 200)
    if isinstance(got, dict) and got.get("summaries"):
        s = got["summaries"][0]
        f.check(s.get("type") == "analytics.summary" and s.get("tenant") == ta["tenantId"] and
                s.get("rule", {}).get("id") in (ra["id"], ra2["id"]),
                "a summary body as stored: %r" % s)
    for q, field in (("from=yesterday", "from"), ("to=2026-13-01T00:00:00Z", "to"),
                     ("from=2030-01-01T00:00:00Z", "from"),
                     ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
                     ("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
                     ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"),
                     ("ruleId=nope", "ruleId"), ("ruleId=", "ruleId"), ("group=x", "group"),
                     ("limit=1&limit=2", "limit")):
        expect(f, "summaries ?" + q, a.get("/analytics/summaries?" + q), 400,
               "invalid_parameter", field)
    expect_ids("A: limit=1000", a.get("/analytics/summaries?limit=1000"),
               newest_first(a_recent))

    # windows: rule ra, two groups, revisions
    wrows = []  # (tenant, rule, version, group, hours ago, revision, final, value)
    for g in ("free", "pro"):
        for hours in (1, 2, 3):
            for rev in (1, 2) if hours == 2 else (1,):
                wrows.append((ta["tenantId"], ra["id"], 1, g, hours, rev, rev == 2 or hours > 1,
                              10 * hours + rev))
    wrows.append((ta["tenantId"], ra["id"], 1, "free", 40, 1, True, 7))  # older than 24 h
    wrows.append((tb["tenantId"], rb["id"], 1, "free", 1, 1, True, 5))
    values = []
    for tenant, rid, ver, g, hours, rev, final, value in wrows:
        start = "date_trunc('minute', now() - interval '%d hours')" % hours
        body = {"rule": {"id": rid, "version": ver}, "group": {"plan": g}, "revision": rev,
                "final": final, "value": value, "tenant": tenant}
        values.append("('%s', '%s', %d, '%s', %s, %s + interval '5 minutes', %d, %s, %s, 1, "
                      "jsonb_set('%s'::jsonb, '{start}', to_jsonb(%s)))" %
                      (tenant, rid, ver, g, start, start, rev, "true" if final else "false",
                       value, json.dumps(body), start))
    sb.sql("INSERT INTO analytics_windows (tenant_id, rule_id, rule_version, group_key, "
           "window_start, window_end, revision, final, value, count, body) VALUES " +
           ", ".join(values))

    def win(resp, what):
        body = expect(f, what, resp, 200)
        if not f.check(isinstance(body, dict) and set(body) == {"windows"},
                       "%s: %r" % (what, body)):
            return []
        return [(w["group"]["plan"], w["revision"], w["value"]) for w in body["windows"]]

    got = win(a.get("/analytics/rules/%s/windows" % ra["id"]), "A: windows, default range")
    want = [(g, 2 if h == 2 else 1, 10 * h + (2 if h == 2 else 1))
            for h in (1, 2, 3) for g in ("free", "pro")]
    f.check(got == want, "A: windows (latest revision, newest first): %s, expected %s" %
            (got, want))
    got = win(a.get("/analytics/rules/%s/windows?group=pro" % ra["id"]), "A: windows group=pro")
    f.check(got == [w for w in want if w[0] == "pro"], "A: group=pro: %s" % got)
    got = win(a.get("/analytics/rules/%s/windows?limit=3" % ra["id"]), "A: windows limit=3")
    f.check(got == want[:3], "A: limit=3: %s, expected %s" % (got, want[:3]))
    got = win(a.get("/analytics/rules/%s/windows?from=%s" % (ra["id"], frm)),
              "A: windows from 48 h ago")
    f.check(len(got) == 7 and got[-1] == ("free", 1, 7), "A: from 48 h ago: %s" % got)
    got = win(a.get("/analytics/rules/%s/windows?group=enterprise" % ra["id"]),
              "A: windows of a group without any")
    f.check(got == [], "A: group=enterprise: %s" % got)
    got = win(a.get("/analytics/rules/%s/windows" % ra2["id"]), "A: windows of a rule without")
    f.check(got == [], "A: rule without windows: %s" % got)
    got = win(b.get("/analytics/rules/%s/windows" % rb["id"]), "B: its windows")
    f.check(got == [("free", 1, 5)], "B: windows %s" % got)
    expect(f, "B: A's windows", b.get("/analytics/rules/%s/windows" % ra["id"]), 404,
           "not_found")
    expect(f, "A: B's windows", a.get("/analytics/rules/%s/windows" % rb["id"]), 404,
           "not_found")
    for q, field in (("group=" + "g" * 1025, "group"), ("limit=0", "limit"),
                     ("from=x", "from"), ("ruleId=" + ra["id"], "ruleId"), ("version=1",
                                                                             "version")):
        expect(f, "windows ?" + q[:40], a.get("/analytics/rules/%s/windows?%s" % (ra["id"], q)),
               400, "invalid_parameter", field)
    # a deleted rule is gone, its windows with it; its summaries stay listed
    expect(f, "A: delete the rule with windows", a.delete(ra["id"]), 204)
    expect(f, "A: windows of a deleted rule", a.get("/analytics/rules/%s/windows" % ra["id"]),
           404, "not_found")
    expect_ids("A: summaries of a deleted rule",
               a.get("/analytics/summaries?ruleId=" + ra["id"]),
               newest_first([r for r in a_recent if r[1] == ra["id"]]))
    for x in (ra2, rb):
        (b if x is rb else a).delete(x["id"])
    log("g. summaries (%d rows) and windows (%d rows): ranges, filters, limits, isolation" %
        (len(rows), len(wrows)))


def part_h(f, sb, ta, a):
    d = os.path.join(sb.dir, "rules")
    os.makedirs(d, exist_ok=True)

    def write(name, obj):
        p = os.path.join(d, name)
        with open(p, "w") as fh:
            fh.write(obj if isinstance(obj, str) else json.dumps(obj))
        return p

    good, good2 = write("good.json", rule("admin rule")), write("good2.json", rule("admin v2"))
    bad = write("bad.json", dict(rule("bad"), colour="red"))
    name = ta["name"]
    p = sb.run_bin("admin", "rules", "create", "--tenant", name, "--file", good, "--json",
                   check=False)
    if not f.check(p.returncode == 0, "admin rules create: exit %d %s" % (p.returncode,
                                                                         p.stderr)):
        return
    made = json.loads(p.stdout)
    check_rule_answer(f, "admin rules create --json", made, "admin rule", 1)
    rid = made["id"]
    check_rule_answer(f, "the admin's rule over the API",
                      expect(f, "GET the admin's rule", a.get("/analytics/rules/" + rid), 200),
                      "admin rule", 1, rid)
    lst = sb.admin_json("rules", "list", "--tenant", ta["tenantId"])
    f.check(isinstance(lst, dict) and rid in [r["id"] for r in lst.get("rules", [])],
            "admin rules list --json: %r" % lst)
    p = sb.run_bin("admin", "rules", "list", "--tenant", name)
    f.check(rid in p.stdout and "admin rule" in p.stdout, "admin rules list: %r" % p.stdout)
    shown = sb.admin_json("rules", "show", "--tenant", name, "--id", rid)
    check_rule_answer(f, "admin rules show --json", shown, "admin rule", 1, rid)
    p = sb.run_bin("admin", "rules", "show", "--tenant", name, "--id", rid.upper())
    f.check(rid in p.stdout and "version 1" in p.stdout, "admin rules show: %r" % p.stdout)
    upd = sb.admin_json("rules", "update", "--tenant", name, "--id", rid, "--file", good2)
    check_rule_answer(f, "admin rules update --json", upd, "admin v2", 2, rid)
    api_upd = expect(f, "PUT the admin's rule", a.put(rid, rule("api v3")), 200)
    check_rule_answer(f, "PUT after the admin's update", api_upd, "api v3", 3, rid)
    shown = sb.admin_json("rules", "show", "--tenant", name, "--id", rid)
    check_rule_answer(f, "admin rules show after PUT", shown, "api v3", 3, rid)
    p = sb.run_bin("admin", "rules", "delete", "--tenant", name, "--id", rid)
    f.check(p.returncode == 0 and "deleted" in p.stdout and "version 4" in p.stdout,
            "admin rules delete: %r" % p.stdout)
    expect(f, "GET after admin delete", a.get("/analytics/rules/" + rid), 404, "not_found")
    for what, args, code, needle in (
            ("show a deleted rule", ["show", "--tenant", name, "--id", rid], 1, rid),
            ("delete twice", ["delete", "--tenant", name, "--id", rid], 1, rid),
            ("an unknown member", ["create", "--tenant", name, "--file", bad], 1, "colour"),
            ("a missing file", ["create", "--tenant", name, "--file", good + ".nope"], 1,
             "cannot open"),
            ("an unknown tenant", ["list", "--tenant", "no-such-tenant"], 1, "no-such-tenant"),
            ("no tenant", ["list"], 2, "usage"),
            ("create without a file", ["create", "--tenant", name], 2, "usage"),
            ("show without an id", ["show", "--tenant", name], 2, "usage"),
            ("list with an id", ["list", "--tenant", name, "--id", rid], 2, "usage"),
            ("a malformed id", ["show", "--tenant", name, "--id", "nope"], 2, "--id"),
            ("an unknown subcommand", ["rename", "--tenant", name], 2, "usage")):
        p = sb.run_bin("admin", "rules", *args, check=False)
        f.check(p.returncode == code and needle in p.stderr + p.stdout,
                "admin rules %s: exit %d (expected %d), output %r" %
                (what, p.returncode, code, (p.stderr + p.stdout)[:300]))
    made = []
    while live_count(sb, ta["tenantId"]) < MAX_RULES:
        made.append(sb.admin_json("rules", "create", "--tenant", name, "--file", good)["id"])
    p = sb.run_bin("admin", "rules", "create", "--tenant", name, "--file", good, check=False)
    f.check(p.returncode == 1 and "MAX_RULES_PER_TENANT" in p.stderr,
            "admin rules create past the limit: exit %d %r" % (p.returncode, p.stderr))
    for r in made:
        sb.run_bin("admin", "rules", "delete", "--tenant", name, "--id", r)
    p = sb.run_bin("admin", "rules", "--help", check=False)
    f.check(p.returncode == 0 and "create --file" in p.stdout, "admin rules --help: %r" %
            p.stdout)
    p = sb.run_bin("admin", "--help", check=False)
    f.check("rules list|show|create|update|delete" in p.stdout and "analytics:write" in p.stdout,
            "admin --help does not list rules and analytics:write")
    log("h. eventops admin rules create, list, show, update, delete and their errors")


def part_i(f, sb, before):
    st, _, raw = eotest.http_request("GET", sb.analytics_url("/metrics"))
    text = raw.decode() if isinstance(raw, bytes) else ""
    for op in ("create", "update", "delete"):
        v = metric_value(text, "eventops_analytics_rules_changes_total",
                         {"role": "analytics", "op": op})
        f.check(v is not None and v >= before[op],
                "eventops_analytics_rules_changes_total{op=%s} is %r, expected >= %d" %
                (op, v, before[op]))
    for reason in ("invalid_rule", "too_many_rules"):
        v = metric_value(text, "eventops_analytics_rules_refused_total",
                         {"role": "analytics", "reason": reason})
        f.check(v is not None and v >= 1,
                "eventops_analytics_rules_refused_total{reason=%s} is %r" % (reason, v))
    v = metric_value(text, "eventops_auth_failures_total",
                     {"role": "analytics", "reason": "insufficient_scope"})
    f.check(v is not None and v >= 1, "eventops_auth_failures_total{insufficient_scope}: %r" % v)
    v = metric_value(text, "eventops_http_requests_total",
                     {"role": "analytics", "route": "/analytics/rules/{id}", "code": "4xx"})
    f.check(v is not None and v >= 1, "eventops_http_requests_total for /analytics/rules/{id}: "
            "%r" % v)
    log("i. metrics")


def main():
    extra = {"EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT": str(MAX_RULES),
             "EVENTOPS_ANALYTICS_MAX_RULE_BYTES": str(MAX_RULE_BYTES),
             "EVENTOPS_RATE_LIMIT_RATE": "100000", "EVENTOPS_RATE_LIMIT_BURST": "100000"}
    with eotest.Sandbox("analytics-api", extra_env=extra) as sb:
        f = sb.failures
        sb.create_signing_key()
        ta, tb, tc = (sb.create_tenant("analytics-%s-%s" % (x, eotest.rand_hex(4)))
                      for x in "abc")
        both = ["events:read", "analytics:write"]
        ca = sb.create_client(ta["tenantId"], both, name="rw")
        cro = sb.create_client(ta["tenantId"], ["events:read", "events:write"], name="ro")
        cwo = sb.create_client(ta["tenantId"], ["analytics:write"], name="wo")
        cb = sb.create_client(tb["tenantId"], both)
        cc = sb.create_client(tc["tenantId"], both)
        clients = sb.list_clients(ta["tenantId"])
        f.check(any(c.get("scopes") == ["analytics:write"] for c in clients),
                "list-clients does not show the analytics:write client: %r" % clients)
        auth, ana = sb.auth(), sb.analytics()
        for r in (auth, ana):
            r.start()
        for r in (auth, ana):
            r.wait_ready(60)
        tok = {k: sb.token(c["clientId"], c["clientSecret"])
               for k, c in (("a", ca), ("ro", cro), ("wo", cwo), ("b", cb), ("c", cc))}
        a, ro, wo, b, c = (Api(sb, tok[k]) for k in ("a", "ro", "wo", "b", "c"))

        part_a(f, sb)
        live = expect(f, "A: a rule kept through parts b and d", a.post(rule("kept")), 201)
        live_id = live["id"] if isinstance(live, dict) else "0190a1b2-0000-7000-8000-000000000000"
        part_b(f, sb, ta, a, ro, wo, live_id)
        part_c(f, sb, a)
        part_d(f, sb, a, live_id)
        part_e(f, a, b)
        expect(f, "A: delete the kept rule", a.delete(live_id), 204)
        part_f(f, sb, a, ta, c, tc)
        part_g(f, sb, a, b, ta, tb)
        part_h(f, sb, ta, a)
        part_i(f, sb, {"create": 10, "update": 2, "delete": 5})

        code = ana.stop(timeout=30)
        f.check(code == 0, "the analytics role exited with %s after SIGTERM" % code)
        sb.check_clean_end(running=[auth])
        return sb.report("analytics API: rules with versions, scopes, bad input, isolation, the "
                         "rule limit, summaries and windows, admin rules, metrics")


def on_alarm(*_):
    raise TimeoutError("test_analytics_api.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
