#!/usr/bin/env python3
"""End-to-end: profiles (docs/profiles.md, issue 15). Events sent to a real collector, stored by
a real processor in PostgreSQL, read back from a real query role.

  a. Trait rules. One user's trait-setting events ($set, $set_once, $unset, $identify) are sent
     out of order over several batches (several transactions), and the same events are sent for
     two more users, shuffled, in one batch each and one at a time. All three profiles end with
     the same traits: the latest $set per trait, the earliest $set_once where no $set wrote, an
     $unset removes; firstSeen and lastSeen span every stored event of the user (ordinary ones
     included).
  b. Exactly once. The first user's batches are sent again (same messageIds): nothing changes;
     the stored rows hold one profile per user.
  c. Links. An anonymous user's traits, then `$create_alias` (alias -> user) and `$identify`
     with `$anon_distinct_id`, and one with both userId and anonymousId: GET /profiles/{alias}
     answers the user's profile with the alias's traits merged by the same rules; aliases are
     listed; the first link of an alias by event time wins.
  d. Groups. `$groupidentify` twice (the later wins per trait), two types under one key:
     GET /groups/{groupId} lists both, `groupType` filters; an unknown key or type is 404.
  e. Refusals and isolation: no token 401; another tenant's token sees nothing (404); an id
     past EVENTOPS_MAX_ID_BYTES, an unknown parameter: 400 naming them; every answer JSON.

Settings come from the environment (`eval "$(scripts/stack.sh env)"`, EVENTOPS_BIN). Exit code
0 = pass.
"""

import random
import signal
import sys
import urllib.parse
import uuid

import eotest
from eotest import log
from querytest import QueryClient, check_query_error, fmt_utc, now_us

HOUR_US = 3600 * 1000000


def ev(user, etype, t_us, props, anon=None, mid=None):
    e = {"eventType": etype, "timestamp": fmt_utc(t_us), "properties": props,
         "messageId": mid or str(uuid.uuid4())}
    if user is not None:
        e["userId"] = user
    if anon is not None:
        e["anonymousId"] = anon
    return e


def trait_events(user, base):
    """The trait-setting events of part a for user, at base + n hours. Expected result:
    plan=pro (the $set at +10 beats the one at +5), first_source=email (the earliest
    $set_once), color=red, name removed by the $unset at +15 (after its $set at +10), city=Oslo
    (a $set_once beaten by nothing), nested values kept as they are."""
    h = lambda n: base + n * HOUR_US  # noqa: E731
    return [
        ev(user, "$identify", h(10), {"$set": {"plan": "pro", "name": "Ada"}}),
        ev(user, "page_view", h(5), {"$set": {"plan": "free"}, "$set_once": {"city": "Oslo"}}),
        ev(user, "signup", h(7), {"$set_once": {"first_source": "ads"}}),
        ev(user, "$set", h(3), {"$set_once": {"first_source": "email", "plan": "trial"}}),
        ev(user, "$set", h(20), {"$set": {"color": "red", "tags": ["a", {"b": 1}]}}),
        ev(user, "$set", h(15), {"$unset": ["name"]}),
        ev(user, "page_view", h(1), {"path": "/"}),  # no traits: first seen only
        ev(user, "page_view", h(22), {"path": "/x"}),  # last seen
    ]


EXPECTED = {"plan": "pro", "first_source": "email", "color": "red", "city": "Oslo",
            "tags": ["a", {"b": 1}]}


def post(sb, f, key, events, what):
    st, _, body = eotest.post_json(sb.url("/events/batch"), events, key=key)
    f.check(st == 202, "%s: %s %.300r" % (what, st, body))
    return [e["messageId"] for e in events]


def get_profile(q, uid, what, f, status=200):
    st, _, body, url = q.get("/profiles/" + uid)
    f.check(st == status, "%s: GET %s -> %s %.300r" % (what, url, st, body))
    return body if st == 200 else None


def part_a_b(sb, f, A, q):
    base = (now_us() // HOUR_US - 48) * HOUR_US
    mids = []
    # u1: out of order, one event per batch for most, so each lands in its own transaction
    evs = trait_events("u1", base)
    order = [4, 0, 5, 1, 3, 2, 6, 7]
    batches = [[evs[i]] for i in order[:5]] + [[evs[order[5]], evs[order[6]], evs[order[7]]]]
    for i, b in enumerate(batches):
        mids += post(sb, f, A["wk"], b, "u1 batch %d" % i)
        sb.wait_stored([e["messageId"] for e in b], timeout=60)
    # u2: every event in one batch, shuffled; u3: reversed, one per request
    e2 = trait_events("u2", base)
    random.Random(7).shuffle(e2)
    mids += post(sb, f, A["wk"], e2, "u2 batch")
    e3 = list(reversed(trait_events("u3", base)))
    for e in e3:
        mids += post(sb, f, A["wk"], [e], "u3 event")
    sb.wait_stored(mids, timeout=90)
    for u in ("u1", "u2", "u3"):
        p = get_profile(q, u, "part a " + u, f)
        if not p:
            continue
        f.check(p.get("userId") == u, "part a %s: userId %r" % (u, p.get("userId")))
        f.check(p.get("traits") == EXPECTED, "part a %s: traits %r, expected %r" %
                (u, p.get("traits"), EXPECTED))
        f.check(p.get("firstSeen") == fmt_utc(base + HOUR_US, 6),
                "part a %s: firstSeen %r, expected %s" % (u, p.get("firstSeen"),
                                                           fmt_utc(base + HOUR_US, 6)))
        f.check(p.get("lastSeen") == fmt_utc(base + 22 * HOUR_US, 6),
                "part a %s: lastSeen %r, expected %s" % (u, p.get("lastSeen"),
                                                          fmt_utc(base + 22 * HOUR_US, 6)))
        f.check(p.get("aliases") == [] and p.get("aliasesTruncated") is False,
                "part a %s: aliases %r" % (u, p.get("aliases")))
    log("part a: three orders of the same trait events give the same profile")

    # b: the first user's batches again, same messageIds: nothing changes
    before = sb.scalar("SELECT traits::text || trait_ranks::text || first_seen || last_seen "
                    "FROM profiles WHERE tenant_id = '%s' AND user_key = 'u1'" % A["id"])
    for i, b in enumerate(batches):
        post(sb, f, A["wk"], b, "u1 batch %d again" % i)
    marker = ev("u9", "marker", now_us(), {})
    post(sb, f, A["wk"], [marker], "marker")
    sb.wait_stored([marker["messageId"]], timeout=60)
    after = sb.scalar("SELECT traits::text || trait_ranks::text || first_seen || last_seen "
                   "FROM profiles WHERE tenant_id = '%s' AND user_key = 'u1'" % A["id"])
    f.check(before == after and bool(before), "part b: u1's profile changed on redelivery: "
            "%r -> %r" % (before, after))
    n = sb.scalar("SELECT count(*) FROM profiles WHERE tenant_id = '%s'" % A["id"])
    f.check(str(n).strip() == "3", "part b: %s profile rows, expected 3" % n)
    dup = sb.scalar("SELECT count(*) - count(DISTINCT message_id) FROM events "
                    "WHERE tenant_id = '%s'" % A["id"])
    f.check(str(dup).strip() == "0", "part b: %s duplicate events" % dup)
    log("part b: a redelivery changes no profile")


def part_c(sb, f, A, q):
    t = now_us() - 10 * HOUR_US
    h = lambda n: t + n * HOUR_US  # noqa: E731
    evs = [
        # an anonymous visitor sets traits, then becomes user "ada" (Segment-style alias)
        ev(None, "page_view", h(0), {"$set": {"ref": "newsletter", "plan": "anon"}},
           anon="anon-1"),
        ev("ada", "$create_alias", h(2), {"alias": "anon-1"}),
        ev("ada", "$identify", h(3), {"$set": {"plan": "pro"}}),
        # PostHog-style: $identify with $anon_distinct_id
        ev("ada", "$identify", h(4), {"$anon_distinct_id": "ph-anon-2",
                                      "$set": {"email": "ada@example.com"}}),
        ev("ph-anon-2", "$pageview", h(1), {"$set_once": {"landing": "/pricing"}}),
        # Segment identify with both ids
        ev("ada", "$identify", h(5), {"$set": {}}, anon="seg-anon-3"),
        # a later link of anon-1 to another user loses (the first link by time wins)
        ev("bob", "$create_alias", h(6), {"alias": "anon-1"}),
    ]
    mids = post(sb, f, A["wk"], evs[:4], "part c first")
    mids += post(sb, f, A["wk"], evs[4:], "part c second")
    sb.wait_stored(mids, timeout=60)
    want = {"ref": "newsletter", "plan": "pro", "email": "ada@example.com",
            "landing": "/pricing"}
    for who in ("ada", "anon-1", "ph-anon-2", "seg-anon-3"):
        p = get_profile(q, who, "part c " + who, f)
        if not p:
            continue
        f.check(p.get("userId") == "ada", "part c %s: userId %r" % (who, p.get("userId")))
        f.check(p.get("traits") == want, "part c %s: traits %r, expected %r" %
                (who, p.get("traits"), want))
        f.check(p.get("aliases") == ["anon-1", "ph-anon-2", "seg-anon-3"],
                "part c %s: aliases %r" % (who, p.get("aliases")))
        first, last = fmt_utc(h(0), 6), fmt_utc(h(5), 6)
        f.check(p.get("firstSeen") == first and p.get("lastSeen") == last,
                "part c %s: seen %r..%r, expected %s..%s" %
                (who, p.get("firstSeen"), p.get("lastSeen"), first, last))
    bob = get_profile(q, "bob", "part c bob", f)
    if bob:
        f.check(bob.get("aliases") == [], "part c bob: aliases %r" % bob.get("aliases"))
    log("part c: aliases resolve to their user, traits merged, first link wins")


def part_d(sb, f, A, q):
    t = now_us() - 5 * HOUR_US
    evs = [
        ev("ada", "$groupidentify", t + 2 * HOUR_US,
           {"$group_type": "company", "$group_key": "acme",
            "$group_set": {"employees": 20, "name": "Acme"}}),
        ev("ada", "$groupidentify", t,
           {"$group_type": "company", "$group_key": "acme",
            "$group_set": {"employees": 10, "industry": "tools"}}),
        ev("ada", "$groupidentify", t + HOUR_US,
           {"$group_type": "group", "$group_key": "acme", "$group_set": {"tier": "gold"}}),
    ]
    mids = post(sb, f, A["wk"], evs[:1], "part d first")
    mids += post(sb, f, A["wk"], evs[1:], "part d second")
    sb.wait_stored(mids, timeout=60)
    st, _, body, url = q.get("/groups/acme")
    want = [{"groupType": "company",
             "traits": {"employees": 20, "name": "Acme", "industry": "tools"},
             "firstSeen": fmt_utc(t, 6), "lastSeen": fmt_utc(t + 2 * HOUR_US, 6)},
            {"groupType": "group", "traits": {"tier": "gold"},
             "firstSeen": fmt_utc(t + HOUR_US, 6), "lastSeen": fmt_utc(t + HOUR_US, 6)}]
    f.check(st == 200 and body == {"groupId": "acme", "groups": want},
            "part d: GET %s -> %s %r, expected %r" % (url, st, body, want))
    st, _, body, url = q.get("/groups/acme", [("groupType", "group")])
    f.check(st == 200 and body == {"groupId": "acme", "groups": want[1:]},
            "part d: GET %s -> %s %r" % (url, st, body))
    check_query_error(f, "part d unknown type", q.get("/groups/acme", [("groupType", "x")]),
                      "groupId", status=404, code="not_found")
    check_query_error(f, "part d unknown group", q.get("/groups/nope"), "groupId", status=404,
                      code="not_found")
    check_query_error(f, "part d bad parameter", q.get("/groups/acme", [("type", "x")]), "type")
    log("part d: groups per type, latest trait wins, filter by groupType")


def part_e(sb, f, A, B):
    qa, qb = A["q"], B["q"]
    check_query_error(f, "part e other tenant", qb.get("/profiles/u1"), "userId", status=404,
                      code="not_found")
    check_query_error(f, "part e other tenant group", qb.get("/groups/acme"), "groupId",
                      status=404, code="not_found")
    check_query_error(f, "part e unknown user", qa.get("/profiles/nobody"), "userId",
                      status=404, code="not_found")
    check_query_error(f, "part e long id", qa.get("/profiles/" + "x" * 300), "userId")
    check_query_error(f, "part e parameter", qa.get("/profiles/u1", [("x", "1")]), "x")
    st, h, body, _ = qa.get("/profiles/u1", token="")
    f.check(st == 401 and isinstance(body, dict) and "error" in body,
            "part e no token: %s %r" % (st, body))
    # an id with characters that need escaping in a path
    odd = "user é+%/?"[:-2]  # 'user é+%' (a '/' cannot be in a path segment)
    mids = post(sb, f, A["wk"], [ev(odd, "$identify", now_us() - HOUR_US,
                                    {"$set": {"odd": True}})], "part e odd id")
    sb.wait_stored(mids, timeout=60)
    p = get_profile(qa, urllib.parse.quote(odd, safe=""), "part e odd id", f)
    f.check(bool(p) and p.get("userId") == odd and p.get("traits") == {"odd": True},
            "part e odd id: %r" % (p,))
    log("part e: refusals and tenant isolation")


def main():
    with eotest.Sandbox("profiles", extra_env={"EVENTOPS_MAX_ID_BYTES": "255"}) as sb:
        f = sb.failures
        sb.create_signing_key()
        T = {}
        for x in ("A", "B"):
            t = sb.create_tenant("prof-%s-%s" % (x.lower(), eotest.rand_hex(6)))
            c = sb.create_client(t["tenantId"], ["events:read"])
            T[x] = {"id": t["tenantId"], "wk": t["writeKey"], "client": c}
        roles = (sb.auth(), sb.collector(), sb.processor(), sb.query())
        for r in roles:
            r.start()
        for r in roles:
            r.wait_ready(timeout=90)
        for x in ("A", "B"):
            c = T[x]["client"]
            T[x]["q"] = QueryClient(sb.query_url(""), sb.token(c["clientId"], c["clientSecret"]))
        part_a_b(sb, f, T["A"], T["A"]["q"])
        part_c(sb, f, T["A"], T["A"]["q"])
        part_d(sb, f, T["A"], T["A"]["q"])
        part_e(sb, f, T["A"], T["B"])
        for r in roles:
            f.check(not r.sanitizer_lines(), "%s: sanitizer reports: %s" %
                    (r.name, r.sanitizer_lines()[:3]))
        return sb.report("profiles: trait rules, links, groups, exactly once, isolation")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
