#!/usr/bin/env python3
"""Regression: SIGTERM while requests are parked waiting for Kafka's acknowledgement.

The collector parks a request (libmicrohttpd suspend) until Kafka acknowledges its events;
libmicrohttpd cannot stop while a request is parked. With Kafka unreachable and an ack timeout
far longer than the shutdown timeout, a SIGTERM must still end the process cleanly: the
parked requests are answered 503 with Retry-After (never 2xx: nothing was acknowledged), and
the exit code is 0 with no sanitizer report.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402


def main():
    # Kafka "down": nothing listens on the broker address the collector is given.
    dead_broker = "127.0.0.1:%d" % eotest.free_port()
    with eotest.Sandbox("shutdown_parked") as sb:
        F = sb.failures
        tenant = sb.create_tenant("parked-%s" % eotest.rand_hex(4))
        coll = sb.collector()
        coll.env = dict(coll.env, EVENTOPS_KAFKA_BROKERS=dead_broker,
                        EVENTOPS_KAFKA_ACK_TIMEOUT_MS="120000", EVENTOPS_SHUTDOWN_TIMEOUT_MS="1000")
        coll.start()
        eotest.wait_until(lambda: eotest.http_get(sb.url("/healthz"))[0] == 200, 30,
                          what="collector /healthz")
        answers = []

        def send(i):
            try:
                answers.append(eotest.post_json(
                    sb.url("/events/batch"),
                    [{"eventType": "parked", "userId": "u%d" % i, "messageId": "m-%d" % i}],
                    key=tenant["writeKey"], timeout=60))
            except Exception as e:  # noqa: BLE001
                answers.append(e)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)  # the requests are parked now: Kafka cannot acknowledge them
        F.check(not answers, "requests were answered before Kafka could acknowledge: %r" % answers)
        started = time.monotonic()
        code = coll.stop(timeout=30)
        elapsed = time.monotonic() - started
        for t in threads:
            t.join(30)
        F.check(code == 0, "collector exit code %r after SIGTERM" % code)
        F.check(elapsed < 15, "shutdown took %.1f s" % elapsed)
        F.check(len(answers) == 4, "%d of 4 parked requests answered" % len(answers))
        for a in answers:
            if isinstance(a, Exception):
                F.fail("parked request failed without an answer: %r" % a)
                continue
            status, headers, body = a
            F.check(status == 503, "parked request answered %r %r" % (status, body))
            F.check("retry-after" in {k.lower() for k in headers},
                    "503 without Retry-After: %r" % (headers,))
            F.check(isinstance(body, dict) and body.get("error", {}).get("code") ==
                    "kafka_unavailable", "503 body %r" % (body,))
        log_text = coll.tail(400)
        for bad in ("ERROR: AddressSanitizer", "runtime error", "MHD_stop_daemon", "PANIC"):
            F.check(bad not in log_text, "collector log holds %r" % bad)
        return sb.report("SIGTERM with 4 parked requests: exit %r in %.1f s, answers %s" %
                         (code, elapsed, [a[0] if isinstance(a, tuple) else a for a in answers]))


if __name__ == "__main__":
    sys.exit(main())
