#!/usr/bin/env python3
"""A flood of made-up credentials cannot hammer PostgreSQL, and real credentials keep working.

The collector keeps active write keys and clients in memory; one it has not seen is looked up
in PostgreSQL, at most EVENTOPS_CREDENTIAL_LOOKUPS_PER_S times a second (a second's worth at
once). Checked here with the budget at 5/s and the reload interval at 1 s:

  1. 600 requests with distinct random write keys (8 threads, keep-alive) all get 401
     invalid_write_key, none a 5xx, and the sandbox database sees at most
     budget*(T+1) + reloads + slack transactions meanwhile (pg_stat_database.xact_commit of
     the sandbox database; without the budget it would be ~600).
  2. During the flood, a cached write key keeps getting 202.
  3. A write key created during the flood works within 3 s (the next reload), even though the
     lookup budget is spent.
  4. The collector is still running, with no sanitizer report.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402

BUDGET = 5
FLOOD = 600


def xacts(sb):
    return int(sb.scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = '%s'" %
                         sb.dbname))


def main():
    with eotest.Sandbox("credential-flood") as sb:
        f = sb.failures
        tenant = sb.create_tenant("flood-%s" % eotest.rand_hex(4))
        coll = sb.role("collector")
        coll.env = dict(coll.env, EVENTOPS_CREDENTIAL_LOOKUPS_PER_S=str(BUDGET),
                        EVENTOPS_WRITE_KEY_REFRESH_MS="1000")
        coll.start()
        coll.wait_ready(60)
        ev = [{"eventType": "flood_check", "userId": "u1"}]
        st, _, body = eotest.post_json(sb.url("/events/batch"), ev, key=tenant["writeKey"])
        f.check(st == 202, "the tenant's key before the flood: %s %r" % (st, body))

        time.sleep(1.5)  # let the statistics of the set-up settle
        before = xacts(sb)
        statuses, good = [], []
        lock = threading.Lock()
        stop = threading.Event()

        def flood():
            for _ in range(FLOOD // 8):
                key = "wk_%s.%s" % (eotest.rand_hex(6), eotest.rand_hex(22)[:43])
                try:
                    st, _, _ = eotest.post_json(sb.url("/events"), ev[0], key=key)
                except eotest.HttpError as e:
                    st = str(e)
                with lock:
                    statuses.append(st)

        def legit():
            while not stop.is_set():
                try:
                    st, _, _ = eotest.post_json(sb.url("/events/batch"), ev,
                                                key=tenant["writeKey"])
                except eotest.HttpError as e:
                    st = str(e)
                with lock:
                    good.append(st)
                time.sleep(0.05)

        t0 = time.monotonic()
        threads = [threading.Thread(target=flood) for _ in range(8)]
        lt = threading.Thread(target=legit)
        lt.start()
        for t in threads:
            t.start()
        # 3. a new key made while the budget is spent
        time.sleep(0.5)
        new = sb.run_bin("admin", "create-write-key", tenant["tenantId"], "--json")
        new_key = json.loads(new.stdout)["writeKey"]
        created = time.monotonic()
        works = eotest.wait_until(
            lambda: eotest.post_json(sb.url("/events/batch"), ev, key=new_key)[0] == 202, 3,
            interval=0.1)
        f.check(works, "a write key created during the flood did not work within 3 s")
        if works:
            eotest.log("new key accepted %.2f s after it was created" % (time.monotonic() - created))
        for t in threads:
            t.join(120)
        T = time.monotonic() - t0
        stop.set()
        lt.join(30)
        time.sleep(2.0)  # pg_stat_database is flushed about once a second
        delta = xacts(sb) - before

        f.check(len(statuses) == FLOOD // 8 * 8, "%d flood requests answered of %d" %
                (len(statuses), FLOOD // 8 * 8))
        odd = sorted(set(str(s) for s in statuses if s != 401))
        f.check(not odd, "flood answers other than 401: %s" % odd)
        bad_good = sorted(set(str(s) for s in good if s != 202))
        f.check(good and not bad_good, "the cached key during the flood got %s (of %d)" %
                (bad_good, len(good)))
        # budget * (T + 1 s of burst) lookups, one reload a second, the new key's lookups and
        # the statistics queries of this test: generous slack, far below one per request.
        bound = BUDGET * (T + 3) + (T + 3) + 20
        eotest.log("flood of %d made-up keys in %.1f s: %d database transactions (bound %.0f)" %
                   (len(statuses), T, delta, bound))
        f.check(delta <= bound, "the flood caused %d database transactions in %.1f s (bound %.0f):"
                " missing credentials are not rate limited" % (delta, T, bound))
        sb.check_clean_end(running=(coll,))
        return sb.report("credential flood: lookups of unknown credentials are bounded")


if __name__ == "__main__":
    sys.exit(main())
