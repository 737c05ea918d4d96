#!/usr/bin/env python3
"""Contract of the Kafka record format (docs/schemas/record.v1.schema.json, issue 11).

1. The schema is a valid JSON Schema (draft 2020-12) and is not vacuous: mutations of a good
   record (unknown version, missing member, extra member, bad tenant id, control character in
   an id, timestamp without microseconds) are refused by it.
2. Records the collector writes validate: events of many shapes (single and batch, gzip,
   numeric ids, null and absent ids, unicode, nested properties, clock-skew fields, client and
   generated messageIds) are sent through a real collector to a real Kafka topic, read back,
   and every value validates; every key is "<tenantId>:<userId or anonymousId>".
3. Frozen records of every version (tests/contract/records/v<N>/records.jsonl) still decode:
   produced into the sandbox's events topic, a real processor stores each exactly once with
   the fields the record holds, and the dead-letter topic stays empty.

Needs jsonschema (Debian python3-jsonschema, scripts/deps.sh), psql and kcat."""
import datetime
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

eotest.jsonschema()  # Debian's python3-jsonschema, importable below
from jsonschema import Draft202012Validator, FormatChecker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = os.path.join(ROOT, "docs", "schemas")
FROZEN_DIR = os.path.join(ROOT, "tests", "contract", "records")


def validator(version):
    with open(os.path.join(SCHEMA_DIR, "record.v%d.schema.json" % version)) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors_of(v, record):
    return [e.message for e in v.iter_errors(record)]


def check_not_vacuous(F, v, good):
    F.check(not errors_of(v, good), "the reference record is refused: %s" % errors_of(v, good))

    def mutated(fn):
        r = json.loads(json.dumps(good))
        fn(r)
        return r
    mutations = {
        "unknown version": lambda r: r.update(v=2),
        "missing event": lambda r: r.pop("event"),
        "missing messageId": lambda r: r["event"].pop("messageId"),
        "extra event member": lambda r: r["event"].update(extra=1),
        "tenant id not a UUID": lambda r: r.update(tenantId="acme"),
        "upper-case tenant id": lambda r: r.update(tenantId=r["tenantId"].upper()),
        "control character in userId": lambda r: r["event"].update(userId="a\nb"),
        "empty eventType": lambda r: r["event"].update(eventType=""),
        "no user and no anonymous id": lambda r: r["event"].update(userId=None, anonymousId=None),
        "timestamp without microseconds": lambda r: r["event"].update(
            timestamp="2026-01-01T00:00:00Z"),
        "properties not an object": lambda r: r["event"].update(properties=[]),
    }
    for name, fn in mutations.items():
        F.check(errors_of(v, mutated(fn)), "the schema accepts a record with %s" % name)


def varied_events(run):
    """(path, body, gzip) requests covering the shapes the collector accepts."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = (now - datetime.timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    sent = now.isoformat().replace("+00:00", "Z")
    batch = [
        {"eventType": "signup", "userId": "u-%s-1" % run, "messageId": "m-%s-1" % run},
        {"eventType": "page_viewed", "anonymousId": "a-%s-2" % run},
        {"eventType": "order_placed", "userId": 4242, "anonymousId": "a-%s-3" % run,
         "timestamp": ts, "sentAt": sent,
         "properties": {"plan": "pro", "amount": 9.99, "tags": ["x", "y"], "n": {"d": {"e": 1}}},
         "context": {"library": {"name": "test", "version": "1"}}},
        {"eventType": "été ☀ 🎉", "userId": "ünï-%s" % run, "properties": {"q": "a \"b\" \\ c\td"}},
        {"eventType": "legacy", "userId": None, "anonymousId": "a-%s-5" % run,
         "metadata": {"from": "metadata"}},
        {"eventType": "with_time", "userId": "u-%s-6" % run, "timestamp": ts},
    ]
    return [
        ("/events", {"eventType": "single", "userId": "u-%s-s" % run}, False),
        ("/events/batch", batch, False),
        ("/events/batch", [{"eventType": "gz", "anonymousId": "a-%s-gz" % run,
                            "messageId": "m-%s-gz" % run}], True),
    ]


def expected_key(tenant_id, event):
    who = event["userId"] if event["userId"] is not None else event["anonymousId"]
    return "%s:%s" % (tenant_id, who)


def main():
    v1 = validator(1)
    with eotest.Sandbox("record-contract", partitions=3) as sb:
        F = sb.failures
        t = sb.create_tenant("contract")
        tid = t["tenantId"]
        coll = sb.collector()
        coll.start()
        coll.wait_ready()

        # 1. the schema refuses what it must
        good = {"v": 1, "tenantId": tid, "receivedAt": "2026-01-01T00:00:00.000000Z",
                "event": {"messageId": "m", "eventType": "e", "userId": "u", "anonymousId": None,
                          "timestamp": "2026-01-01T00:00:00.000000Z", "originalTimestamp": None,
                          "sentAt": None, "properties": {}, "context": {}}}
        check_not_vacuous(F, v1, good)

        # 2. what the collector writes validates
        accepted = 0
        for path, body, gz in varied_events(eotest.rand_hex(4)):
            st, _, resp = eotest.post_json(coll.url(path), body, key=t["writeKey"], gzip=gz)
            F.check(st in (200, 202), "%s answered %s: %s" % (path, st, resp))
            accepted += resp.get("accepted", 0) if st in (200, 202) else 0
        records = []
        eotest.wait_until(lambda: len(records.__setitem__(slice(None), eotest.consume(
            sb.brokers, sb.events_topic)) or records) >= accepted, 30, interval=0.5,
            what="the collector's records on the topic")
        F.check(len(records) == accepted, "%d records on the topic for %d accepted events" %
                (len(records), accepted))
        for r in records:
            value = json.loads(r["value"])
            errs = errors_of(v1, value)
            F.check(not errs, "a collector record does not validate: %s: %s" % (errs, r["value"]))
            if not errs:
                F.check(r["key"] == expected_key(tid, value["event"]),
                        "record key %r for %r" % (r["key"], r["value"]))
        log("collector: %d records validated" % len(records))

        # 3. frozen records of every version still decode and store
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        frozen = []
        for path in sorted(glob.glob(os.path.join(FROZEN_DIR, "v*", "records.jsonl"))):
            version = int(os.path.basename(os.path.dirname(path))[1:])
            with open(path) as f:
                for line in f:
                    if line.strip():
                        text = line.strip().replace("{{tenantId}}", tid).replace("{{day}}", day)
                        rec = json.loads(text)
                        errs = errors_of(validator(version), rec)
                        F.check(not errs, "frozen v%d record does not validate its schema: %s" %
                                (version, errs))
                        frozen.append((expected_key(tid, rec["event"]), text, rec))
        F.check(len(frozen) >= 3, "only %d frozen records found" % len(frozen))
        eotest.produce(sb.brokers, sb.events_topic, [(k, text) for k, text, _ in frozen])
        proc = sb.processor()
        proc.start()
        proc.wait_ready()
        mids = [rec["event"]["messageId"] for _, _, rec in frozen]
        stored = sb.wait_stored(mids + [json.loads(r["value"])["event"]["messageId"]
                                        for r in records])
        for _, _, rec in frozen:
            ev = rec["event"]
            mid = ev["messageId"]
            F.check(stored.get(mid) == [tid], "frozen record %s stored as %s" %
                    (mid, stored.get(mid)))
            rows = sb.sql("SELECT event_type, coalesce(user_id, '<null>'), "
                          "coalesce(anonymous_id, '<null>'), properties::text, context::text, "
                          "to_char(occurred_at AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                          "to_char(received_at AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                          "FROM events WHERE message_id = '%s'" % mid.replace("'", "''"))
            if len(rows) != 1:
                F.fail("frozen record %s: %d rows" % (mid, len(rows)))
                continue
            et, uid, aid, props, ctx, occurred, received = rows[0]
            want = (ev["eventType"], ev["userId"] or "<null>", ev["anonymousId"] or "<null>",
                    ev["properties"], ev["context"], ev["timestamp"], rec["receivedAt"])
            got = (et, uid, aid, json.loads(props), json.loads(ctx), occurred, received)
            F.check(got == want, "frozen record %s stored as %r, want %r" % (mid, got, want))
        dlq = eotest.consume(sb.brokers, sb.dlq_topic)
        F.check(not dlq, "%d records went to the dead-letter topic: %s" %
                (len(dlq), [d["headers"] for d in dlq][:3]))
        sb.check_clean_end()
        return sb.report("record contract: %d collector records validated, %d frozen records "
                         "stored" % (len(records), len(frozen)))


if __name__ == "__main__":
    sys.exit(main())
