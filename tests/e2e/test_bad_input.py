#!/usr/bin/env python3
"""End-to-end test: the collector refuses malformed input precisely and keeps serving.

Starts `$EVENTOPS_BIN collector` alone on a free port (EVENTOPS_COLLECTOR_PORT=0, the port is
read from its "collector listening" log line) against a fresh, migrated database on the stack's
PostgreSQL and two fresh topics on the stack's Kafka, with a tenant, its write key and a second
key that is revoked while the collector runs. Then sends a table of malformed requests over raw
sockets (so every byte is under control) and checks for each one the status, the JSON error
body {"error": {"code", "message"}} with the expected code (and field, where one is expected),
and that GET /healthz still answers. Answers produced by libmicrohttpd itself (header limits,
an unparsable request line) are not JSON; they are checked for status only and listed in a
NOTE at the end. Finally the collector must still be alive, exit 0 on SIGTERM, and its stderr
must hold no sanitizer report.

Stdlib only. Settings come from the environment (`eval "$(scripts/stack.sh env)"`):
EVENTOPS_BIN, EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS. Everything created is removed at the end
(database dropped, topics deleted), so the test can run twice in a row.
"""

import base64
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import eotest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("EVENTOPS_BIN") or os.path.join(ROOT, "build-test", "eventops")
BASE_DSN = os.environ.get("EVENTOPS_PG_DSN") or \
    "host=127.0.0.1 port=55432 user=eventops dbname=eventops"
BROKERS = os.environ.get("EVENTOPS_KAFKA_BROKERS") or "127.0.0.1:59092"

# Limits the collector is started with (its defaults, spelled out so the cases can rely on them).
MAX_BODY = 524288
MAX_EVENT = 32768
MAX_BATCH = 1000
MAX_DEPTH = 32
MAX_HEADER = 16384
LIMIT_ENV = {
    "EVENTOPS_MAX_BODY_BYTES": str(MAX_BODY),
    "EVENTOPS_MAX_EVENT_BYTES": str(MAX_EVENT),
    "EVENTOPS_MAX_BATCH_EVENTS": str(MAX_BATCH),
    "EVENTOPS_MAX_NESTING_DEPTH": str(MAX_DEPTH),
    "EVENTOPS_MAX_PROPERTIES": "512",
    "EVENTOPS_MAX_STRING_BYTES": "8192",
    "EVENTOPS_MAX_ID_BYTES": "255",
    "EVENTOPS_MAX_EVENT_TYPE_BYTES": "200",
    "EVENTOPS_MAX_FUTURE_S": "86400",
    "EVENTOPS_MAX_PAST_DAYS": "3650",
    "EVENTOPS_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER),
    "EVENTOPS_WRITE_KEY_REFRESH_MS": "200",
}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:", "SUMMARY: ", "ThreadSanitizer")

failures = []
notes = []


def log(msg):
    print(msg, flush=True)


def fail(msg):
    failures.append(msg)
    log("FAIL: " + msg)


# ---------------------------------------------------------------- setup helpers


def psql_bin():
    return shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"


def psql(dsn, sql):
    r = subprocess.run([psql_bin(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                        "-c", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({sql}): {r.stderr.strip()}")
    return r.stdout.strip()


def dsn_with_dbname(dsn, name):
    if dsn.startswith(("postgres://", "postgresql://")):
        u = urllib.parse.urlsplit(dsn)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))
    return f"{dsn} dbname={name}"  # libpq: the last dbname wins


def run_bin(args, env, check=True):
    r = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"eventops {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r


# ---------------------------------------------------------------- raw HTTP


class Response:
    def __init__(self, status, reason, headers, body, error=None):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.error = error

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        b = self.body[:300]
        return f"<{self.status} {self.reason} {self.headers.get('content-type')} {b!r}>"


def parse_response(buf):
    """Returns (Response, complete) from the bytes read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    head = buf[:end].decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", head[0])
    if not m:
        raise ValueError(f"bad status line {head[0]!r}")
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = buf[end + 4:]
    if "content-length" in headers:
        n = int(headers["content-length"])
        return Response(int(m.group(1)), m.group(2), headers, rest[:n]), len(rest) >= n
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return None, False
            size = int(rest[pos:eol].split(b";")[0], 16)
            if size == 0:
                return Response(int(m.group(1)), m.group(2), headers, body), True
            if len(rest) < eol + 2 + size + 2:
                return None, False
            body += rest[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    return Response(int(m.group(1)), m.group(2), headers, rest), False  # until EOF


def http_raw(port, data, timeout=20):
    """Sends data (bytes, or a list of byte chunks sent with small pauses) and reads one
    response. The sending runs in its own thread so an early answer is read even while the
    server still swallows (or refuses) the rest of the body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    send_error = []

    def sender():
        try:
            for part in (data if isinstance(data, list) else [data]):
                s.sendall(part)
                if isinstance(data, list):
                    time.sleep(0.01)
        except OSError as e:
            send_error.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    buf = b""
    resp = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError as e:
                if resp is None:
                    resp = Response(0, "", {}, buf, error=f"reset: {e}")
                break
            if not chunk:
                if resp is None:
                    r, _ = parse_response(buf)
                    resp = r or Response(0, "", {}, buf, error="closed without an answer")
                break
            buf += chunk
            r, complete = parse_response(buf)
            if complete:
                resp = r
                break
    finally:
        s.close()
        t.join(timeout=5)
    if resp is None:
        resp = Response(0, "", {}, buf, error="no answer before the timeout")
    return resp


def build(method="POST", path="/events", body=b"", headers=None, auth="default",
          content_type="application/json", length=True, chunked=False, chunk_size=65536,
          close=True):
    """Builds request bytes. auth: "default" (the write key as Bearer), None (no header) or
    the exact Authorization value (str or bytes). headers: list of (name, value)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    if auth == "default":
        auth = "Bearer " + STATE["key"]
    if auth is not None:
        lines.append(b"Authorization: " + (auth.encode() if isinstance(auth, str) else auth))
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type.encode())
    for k, v in headers or []:
        lines.append(k.encode() + b": " + (v.encode() if isinstance(v, str) else v))
    if close:
        lines.append(b"Connection: close")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        out = b""
        for i in range(0, len(body), chunk_size):
            part = body[i:i + chunk_size]
            out += b"%x\r\n" % len(part) + part + b"\r\n"
        out += b"0\r\n\r\n"
        body = out
    elif length is True:
        lines.append(b"Content-Length: %d" % len(body))
    elif length is not None and length is not False:
        lines.append(b"Content-Length: " + str(length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


STATE = {}


# ---------------------------------------------------------------- bodies


def ev(**fields):
    e = {"eventType": "signup", "userId": "user-1"}
    e.update(fields)
    return {k: v for k, v in e.items() if v is not DROP}


DROP = object()


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


def nested(depth):
    v = {"leaf": 1}
    for _ in range(depth - 1):
        v = {"n": v}
    return v


def ts(offset_s):
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def gz(data):
    return gzip.compress(data if isinstance(data, bytes) else data.encode())


def padded(doc, size):
    """doc (JSON text) padded with trailing spaces to exactly size bytes."""
    b = doc.encode()
    assert len(b) <= size
    return b + b" " * (size - len(b))


def basic(user_pass):
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


# ---------------------------------------------------------------- cases


def cases():
    """(name, request bytes or callable -> bytes, status, code, field, kind).
    kind: "json" (a JSON error body is required), "ok" (2xx), "mhd" (an answer written by
    libmicrohttpd itself; JSON not required, reported)."""
    big_string = "x" * 8000
    c = []

    def add(name, req, status, code=None, field=None, kind=None):
        c.append((name, req, status, code, field, kind or ("ok" if status < 300 else "json")))

    # positive controls: the baseline works, so the refusals below mean something
    add("valid event", lambda: build(body=js(ev())), 202)
    add("valid batch", lambda: build(path="/events/batch", body=js([ev(), ev()])), 202)
    add("valid batch {events:[...]}",
        lambda: build(path="/events/batch", body=js({"events": [ev()]})), 202)
    add("content type with charset",
        lambda: build(body=js(ev()), content_type="application/json; charset=utf-8"), 202)
    add("content type text/plain", lambda: build(body=js(ev()), content_type="text/plain"), 202)
    add("no content type", lambda: build(body=js(ev()), content_type=None), 202)
    add("gzip body", lambda: build(body=gz(js(ev())), headers=[("Content-Encoding", "gzip")]),
        202)
    add("identity encoding",
        lambda: build(body=js(ev()), headers=[("Content-Encoding", "identity")]), 202)
    add("chunked body", lambda: build(body=js(ev()), chunked=True, chunk_size=7), 202)
    add("Basic: key as user, empty password", lambda: build(
        body=js(ev()), auth=basic(STATE["key"] + ":")), 202)
    add("Basic: key as user, no colon", lambda: build(body=js(ev()), auth=basic(STATE["key"])),
        202)
    add("Basic: URL-safe base64 without padding", lambda: build(
        body=js(ev()),
        auth="Basic " + base64.urlsafe_b64encode((STATE["key"] + ":").encode()).decode()
        .rstrip("=")), 202)
    add("body of exactly the limit", lambda: build(
        path="/events/batch", body=padded(js([ev()]), MAX_BODY)), 202)
    add("gzip body inflating to exactly the limit", lambda: build(
        path="/events/batch", body=gz(padded(js([ev()]), MAX_BODY)),
        headers=[("Content-Encoding", "gzip")]), 202)
    add("integer userId", lambda: build(body=js(ev(userId=42))), 202)

    # JSON syntax
    add("empty body", lambda: build(body=b""), 400, "empty_body")
    add("empty body, batch", lambda: build(path="/events/batch", body=b""), 400, "empty_body")
    add("not JSON", lambda: build(body=b"hello"), 400, "invalid_json")
    add("truncated JSON", lambda: build(body=b'{"eventType":"a","userId":'), 400,
        "invalid_json")
    add("trailing comma", lambda: build(body=b'{"eventType":"a","userId":"u",}'), 400,
        "invalid_json")
    add("single quotes", lambda: build(body=b"{'eventType':'a','userId':'u'}"), 400,
        "invalid_json")
    add("trailing garbage", lambda: build(body=js(ev()) + "x"), 400, "invalid_json")
    add("two documents", lambda: build(body=js(ev()) + js(ev())), 400, "invalid_json")
    add("NaN literal", lambda: build(body=b'{"eventType":"a","userId":"u","properties":'
                                          b'{"x":NaN}}'), 400, "invalid_json")
    add("comment", lambda: build(body=b'{"eventType":"a",/*c*/"userId":"u"}'), 400,
        "invalid_json")
    add("BOM", lambda: build(body=b"\xef\xbb\xbf" + js(ev()).encode()), 400, "invalid_json")
    add("duplicate key", lambda: build(body=b'{"eventType":"a","eventType":"b","userId":"u"}'),
        400, "invalid_json")
    add("duplicate key nested", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"k":1,"k":2}}'), 400, "invalid_json")
    add("invalid UTF-8 in string", lambda: build(
        body=b'{"eventType":"a\xff\xfe","userId":"u"}'), 400, "invalid_json")
    add("overlong UTF-8", lambda: build(body=b'{"eventType":"\xc0\xaf","userId":"u"}'), 400,
        "invalid_json")
    add("UTF-16 surrogate in UTF-8", lambda: build(
        body=b'{"eventType":"\xed\xa0\x80","userId":"u"}'), 400, "invalid_json")
    add("lone surrogate escape", lambda: build(body=b'{"eventType":"\\ud800","userId":"u"}'),
        400, "invalid_json")
    add("raw NUL byte", lambda: build(body=b'{"eventType":"a\x00b","userId":"u"}'), 400,
        "invalid_json")
    add("raw NUL after the document", lambda: build(body=js(ev()).encode() + b"\x00"), 400,
        "invalid_json")
    add("escaped NUL \\u0000", lambda: build(body=b'{"eventType":"a\\u0000b","userId":"u"}'),
        400, "invalid_json")
    add("escaped NUL in a property", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"k":"\\u0000"}}'), 400,
        "invalid_json")
    add("number 1e400", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"n":1e400}}'), 400, "invalid_json")
    add("number -1e400", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"n":-1e400}}'), 400, "invalid_json")
    add("integer 99999999999999999999999", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"n":99999999999999999999999}}'), 400,
        "invalid_json")
    add("userId 99999999999999999999999", lambda: build(
        body=b'{"eventType":"a","userId":99999999999999999999999}'), 400, "invalid_json")
    add("100000 brackets", lambda: build(
        body=b'{"eventType":"a","userId":"u","properties":{"a":' + b"[" * 100000 +
        b"]" * 100000 + b"}}"), 400, "invalid_json")
    add("100000 open brackets only", lambda: build(
        path="/events/batch", body=b"[" * 100000), 400, "invalid_json")

    # body shape
    add("array on /events", lambda: build(body=js([ev()])), 400, "invalid_type")
    add("string body", lambda: build(body=b'"event"'), 400, "invalid_type")
    add("null body", lambda: build(body=b"null"), 400, "invalid_type")
    add("batch: number body", lambda: build(path="/events/batch", body=b"42"), 400,
        "invalid_type")
    add("batch: object without events", lambda: build(path="/events/batch", body=js(ev())), 400,
        "missing_field", "events")
    add("batch: events not an array", lambda: build(
        path="/events/batch", body=js({"events": ev()})), 400, "invalid_type", "events")
    add("empty batch []", lambda: build(path="/events/batch", body=b"[]"), 400, "empty_batch")
    add("empty batch {events:[]}", lambda: build(path="/events/batch", body=b'{"events":[]}'),
        400, "empty_batch")
    add("too many events", lambda: build(
        path="/events/batch", body=js([ev(messageId=f"m{i}") for i in range(MAX_BATCH + 1)])),
        413, "too_many_events")
    add("batch of invalid events only", lambda: build(
        path="/events/batch", body=js([ev(eventType=DROP), 5])), 400, "no_valid_events")

    # fields: presence and types
    add("missing eventType", lambda: build(body=js(ev(eventType=DROP))), 400, "missing_field",
        "eventType")
    add("null eventType", lambda: build(body=js(ev(eventType=None))), 400, "missing_field",
        "eventType")
    add("missing userId and anonymousId", lambda: build(body=js(ev(userId=DROP))), 400,
        "missing_field", "userId")
    add("null userId and anonymousId", lambda: build(
        body=js(ev(userId=None, anonymousId=None))), 400, "missing_field", "userId")
    for field, bad in [("eventType", 5), ("eventType", ["a"]), ("eventType", True),
                       ("event", 1), ("name", {}),
                       ("userId", True), ("userId", 1.5), ("userId", ["u"]), ("userId", {}),
                       ("anonymousId", False), ("anonymousId", 2.5), ("anonymousId", []),
                       ("messageId", 7), ("messageId", True), ("messageId", {}),
                       ("timestamp", 1700000000), ("timestamp", True),
                       ("sentAt", 1700000000), ("sentAt", []),
                       ("properties", []), ("properties", "x"), ("properties", 1),
                       ("metadata", "x"), ("context", "x"), ("context", [1])]:
        body = ev(**{field: bad})
        if field in ("event", "name"):
            body.pop("eventType")
        add(f"{field} of type {type(bad).__name__}", (lambda b=body: build(body=js(b))), 400,
            "invalid_type", field)
    add("empty eventType", lambda: build(body=js(ev(eventType=""))), 400, "empty_value",
        "eventType")
    add("blank userId", lambda: build(body=js(ev(userId="   "))), 400, "empty_value", "userId")
    add("eventType too long", lambda: build(body=js(ev(eventType="e" * 201))), 400, "too_long",
        "eventType")
    add("userId too long", lambda: build(body=js(ev(userId="u" * 256))), 400, "too_long",
        "userId")
    add("messageId too long", lambda: build(body=js(ev(messageId="m" * 256))), 400, "too_long",
        "messageId")
    add("control character in eventType", lambda: build(body=js(ev(eventType="a\nb"))), 400,
        "invalid_value", "eventType")
    add("conflicting aliases eventType/event", lambda: build(body=js(ev(event="other"))), 400,
        "conflicting_fields")
    add("conflicting aliases properties/metadata", lambda: build(
        body=js(ev(properties={"a": 1}, metadata={"a": 2}))), 400, "conflicting_fields")
    add("too many properties", lambda: build(
        body=js(ev(properties={f"k{i}": i for i in range(513)}))), 400, "too_many_properties",
        "properties")
    add("property string too long", lambda: build(
        body=js(ev(properties={"s": "x" * 8193}))), 400, "too_long", "properties")
    add("property key too long", lambda: build(body=js(ev(context={"k" * 8193: 1}))), 400,
        "too_long", "context")
    add("nesting at the limit is fine", lambda: build(body=js(ev(properties=nested(MAX_DEPTH)))),
        202)
    add("nesting beyond the limit", lambda: build(
        body=js(ev(properties=nested(MAX_DEPTH + 1)))), 400, "too_deep", "properties")
    add("nesting in arrays beyond the limit", lambda: build(
        body=js(ev(context={"a": json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))}))),
        400, "too_deep", "context")

    # timestamps
    add("timestamp not RFC 3339", lambda: build(body=js(ev(timestamp="yesterday"))), 400,
        "invalid_timestamp", "timestamp")
    add("timestamp without zone", lambda: build(body=js(ev(timestamp="2024-01-01T00:00:00"))),
        400, "invalid_timestamp", "timestamp")
    add("timestamp month 13", lambda: build(body=js(ev(timestamp="2024-13-01T00:00:00Z"))), 400,
        "invalid_timestamp", "timestamp")
    add("timestamp Feb 30", lambda: build(body=js(ev(timestamp="2023-02-30T00:00:00Z"))), 400,
        "invalid_timestamp", "timestamp")
    add("sentAt not RFC 3339", lambda: build(body=js(ev(sentAt="now"))), 400,
        "invalid_timestamp", "sentAt")
    add("timestamp year 1900", lambda: build(body=js(ev(timestamp="1900-01-01T00:00:00Z"))),
        400, "timestamp_out_of_range", "timestamp")
    add("timestamp year 9999", lambda: build(body=js(ev(timestamp="9999-12-31T23:59:59Z"))),
        400, "timestamp_out_of_range", "timestamp")
    add("timestamp 2 days ahead", lambda: build(body=js(ev(timestamp=ts(2 * 86400)))), 400,
        "timestamp_out_of_range", "timestamp")
    add("timestamp 3651 days back", lambda: build(body=js(ev(timestamp=ts(-3651 * 86400)))),
        400, "timestamp_out_of_range", "timestamp")
    add("skew correction out of range", lambda: build(
        body=js(ev(timestamp=ts(0), sentAt=ts(-3 * 86400)))), 400, "timestamp_out_of_range",
        "timestamp")
    add("timestamp 1 hour ahead is fine", lambda: build(body=js(ev(timestamp=ts(3600)))), 202)

    # sizes
    add("event over 32 KB on /events", lambda: build(
        body=js(ev(properties={f"s{i}": big_string for i in range(5)}))), 413, "too_large")
    add("body over 512 KB (Content-Length)", lambda: build(
        path="/events/batch", body=padded(js([ev()]), MAX_BODY + 1)), 413, "body_too_large")
    add("body over 512 KB (chunked)", lambda: build(
        path="/events/batch", body=padded(js([ev()]), MAX_BODY + 70000), chunked=True), 413,
        "body_too_large")
    add("POST without Content-Length or chunking has no body", lambda: build(
        body=b"", length=None), 400, "empty_body")
    add("chunked body of exactly the limit", lambda: build(
        path="/events/batch", body=padded(js([ev()]), MAX_BODY), chunked=True), 202)
    add("Content-Length of 1 TB announced", lambda: build(
        path="/events/batch", body=b"", length=10**12), 413, "body_too_large")
    add("gzip bomb", lambda: build(
        path="/events/batch", body=gz(b"[" + b" " * (64 << 20) + b"]"),
        headers=[("Content-Encoding", "gzip")]), 413, "body_too_large")
    add("gzip inflating to one byte over the limit", lambda: build(
        path="/events/batch", body=gz(padded(js([ev()]), MAX_BODY + 1)),
        headers=[("Content-Encoding", "gzip")]), 413, "body_too_large")
    add("bad gzip", lambda: build(body=b"this is not gzip",
                                  headers=[("Content-Encoding", "gzip")]), 400, "invalid_gzip")
    add("truncated gzip", lambda: build(body=gz(js(ev()))[:-9],
                                        headers=[("Content-Encoding", "gzip")]), 400,
        "invalid_gzip")
    add("gzip with trailing garbage", lambda: build(
        body=gz(js(ev())) + b"garbage", headers=[("Content-Encoding", "gzip")]), 400,
        "invalid_gzip")
    add("gzip of invalid JSON", lambda: build(
        body=gz(b"{nope"), headers=[("Content-Encoding", "gzip")]), 400, "invalid_json")
    add("unknown Content-Encoding br", lambda: build(
        body=js(ev()), headers=[("Content-Encoding", "br")]), 415, "unsupported_encoding")
    add("unknown Content-Encoding deflate", lambda: build(
        body=js(ev()), headers=[("Content-Encoding", "deflate")]), 415, "unsupported_encoding")
    add("Content-Type form-urlencoded", lambda: build(
        body=b"eventType=a&userId=u", content_type="application/x-www-form-urlencoded"), 415,
        "unsupported_media_type")
    add("Content-Type multipart", lambda: build(
        body=js(ev()), content_type="multipart/form-data; boundary=x"), 415,
        "unsupported_media_type")
    add("Content-Type application/jsonx", lambda: build(
        body=js(ev()), content_type="application/jsonx"), 415, "unsupported_media_type")

    # authentication
    add("no Authorization", lambda: build(body=js(ev()), auth=None), 401, "missing_credentials")
    add("empty Authorization", lambda: build(body=js(ev()), auth=""), 401,
        "missing_credentials")
    add("Bearer with junk", lambda: build(body=js(ev()), auth="Bearer junk!!"), 401,
        "invalid_write_key")
    add("Bearer without a key", lambda: build(body=js(ev()), auth="Bearer "), 401,
        "malformed_credentials")
    add("Bearer unknown well-formed key", lambda: build(
        body=js(ev()), auth="Bearer wk_000000000000." + "A" * 43), 401, "invalid_write_key")
    add("Bearer with the key id only", lambda: build(
        body=js(ev()), auth="Bearer " + STATE["key_id"]), 401, "invalid_write_key")
    add("Bearer key with a suffix", lambda: build(
        body=js(ev()), auth="Bearer " + STATE["key"] + "x"), 401, "invalid_write_key")
    add("Bearer key truncated", lambda: build(
        body=js(ev()), auth="Bearer " + STATE["key"][:-1]), 401, "invalid_write_key")
    add("Basic with bad base64", lambda: build(body=js(ev()), auth="Basic !!!***"), 401,
        "malformed_credentials")
    add("Basic with an empty user", lambda: build(body=js(ev()), auth=basic(":" + STATE["key"])),
        401, "malformed_credentials")
    add("Basic with the key as password", lambda: build(
        body=js(ev()), auth=basic("user:" + STATE["key"])), 401, "invalid_write_key")
    add("wrong scheme Token", lambda: build(body=js(ev()), auth="Token " + STATE["key"]), 401,
        "malformed_credentials")
    add("wrong scheme Digest", lambda: build(body=js(ev()), auth='Digest username="x"'), 401,
        "malformed_credentials")
    add("key without a scheme", lambda: build(body=js(ev()), auth=STATE["key"]), 401,
        "malformed_credentials")
    add("Authorization over 1 KB", lambda: build(body=js(ev()), auth="Bearer " + "k" * 2000),
        401, "malformed_credentials")
    add("Authorization with a NUL-free binary value", lambda: build(
        body=js(ev()), auth=b"Bearer \xff\xfe\xfd"), 401, "invalid_write_key")
    add("revoked key (revoked before start)", lambda: build(
        body=js(ev()), auth="Bearer " + STATE["revoked_key"]), 401, "invalid_write_key")

    # routing
    add("unknown path", lambda: build(path="/nope", body=js(ev())), 404, "not_found")
    add("unknown path GET", lambda: build(method="GET", path="/", body=b"", content_type=None,
                                          length=None), 404, "not_found")
    add("path with trailing slash", lambda: build(path="/events/", body=js(ev())), 404,
        "not_found")
    add("GET /events", lambda: build(method="GET", body=b"", content_type=None, length=None),
        405, "method_not_allowed")
    add("PUT /events/batch", lambda: build(method="PUT", path="/events/batch",
                                           body=js([ev()])), 405, "method_not_allowed")
    add("DELETE /events", lambda: build(method="DELETE", body=b"", length=None), 405,
        "method_not_allowed")
    add("POST /healthz", lambda: build(method="POST", path="/healthz", body=js(ev())), 405,
        "method_not_allowed")

    # Header limits. EVENTOPS_HTTP_MAX_HEADER_BYTES bounds the request line plus headers; a
    # request over it must be refused with a 4xx. Far over it, libmicrohttpd answers by itself
    # (431/414, HTML); then only the status is checked and the answer is reported in a NOTE.
    mhd = (400, 413, 414, 431)
    add("headers just over EVENTOPS_HTTP_MAX_HEADER_BYTES", lambda: build(
        body=js(ev()), headers=[("X-Pad", "p" * (MAX_HEADER + 100))]), 431, "headers_too_large")
    add("query string over EVENTOPS_HTTP_MAX_HEADER_BYTES", lambda: build(
        path="/events?" + "q" * (MAX_HEADER + 100), body=js(ev())), 431, "headers_too_large")
    add("header of 64 KB", lambda: build(body=js(ev()), headers=[("X-Pad", "p" * 65536)]),
        mhd, None, None, "mhd")
    add("4000 headers", lambda: build(
        body=js(ev()), headers=[(f"X-H{i}", "v") for i in range(4000)]), mhd, None, None, "mhd")
    add("request line of 64 KB", lambda: build(path="/events?" + "q" * 65536, body=js(ev())),
        mhd, None, None, "mhd")
    add("unsupported HTTP version", lambda: build(body=js(ev())).replace(
        b"HTTP/1.1", b"HTTP/9.9", 1), (400, 505), None, None, "mhd")
    # libmicrohttpd drops an unparsable request line without an answer; only liveness matters
    add("garbage request line", lambda: b"GARBAGE\r\n\r\n", (0, 400), None, None, "mhd")
    return c


# ---------------------------------------------------------------- checks


def healthy(port):
    r = http_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if r.status != 200:
        return False, repr(r)
    try:
        return r.json() == {"status": "ok"}, repr(r)
    except ValueError:
        return False, repr(r)


def check_error_body(name, r, code, field):
    try:
        doc = r.json()
    except (ValueError, UnicodeDecodeError):
        fail(f"{name}: body is not JSON: {r!r}")
        return None
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str) or \
            not isinstance(err.get("message"), str) or not err["message"]:
        fail(f"{name}: body is not {{\"error\": {{\"code\", \"message\"}}}}: {r!r}")
        return None
    if code is not None and err["code"] != code:
        fail(f"{name}: error code {err['code']!r}, expected {code!r}: {r!r}")
    if field is not None and err.get("field") != field:
        fail(f"{name}: error field {err.get('field')!r}, expected {field!r}: {r!r}")
    if not r.headers.get("content-type", "").startswith("application/json"):
        fail(f"{name}: Content-Type {r.headers.get('content-type')!r}")
    if r.status == 401 and "www-authenticate" not in r.headers and \
            err["code"] != "credentials_unavailable":
        fail(f"{name}: 401 without WWW-Authenticate")
    return doc


def run_case(port, name, req, status, code, field, kind):
    r = http_raw(port, req() if callable(req) else req)
    if kind == "mhd":
        if r.status not in status:
            fail(f"{name}: status {r.status} ({r.error}), expected one of {status}: {r!r}")
        elif r.status == 0:
            notes.append(f"{name}: connection closed without an answer ({r.error})")
        else:
            is_json = True
            try:
                r.json()
            except (ValueError, UnicodeDecodeError):
                is_json = False
            if not is_json:
                notes.append(f"{name}: {r.status} {r.reason} from libmicrohttpd, "
                             f"Content-Type {r.headers.get('content-type')!r}, not JSON: "
                             f"{r.body[:80]!r}")
            else:
                check_error_body(name, r, None, None)
    elif r.status != status:
        fail(f"{name}: status {r.status} ({r.error}), expected {status}: {r!r}")
    elif kind == "ok":
        doc = r.json()
        if doc.get("accepted", 0) < 1 or len(doc.get("messageIds", [])) != doc["accepted"]:
            fail(f"{name}: unexpected 202 body {r!r}")
    else:
        check_error_body(name, r, code, field)
    ok, detail = healthy(port)
    if not ok:
        fail(f"{name}: /healthz does not answer afterwards: {detail}")
        return False
    return True


def test_header_sweep(port):
    """Every request whose head is over EVENTOPS_HTTP_MAX_HEADER_BYTES gets a 4xx answer: none
    is accepted, and the connection is never dropped without an answer."""
    name = "header size sweep"
    seen = []  # (head bytes, outcome)
    for pad in range(MAX_HEADER, 2 * MAX_HEADER + 1024, 48):
        req = build(body=js(ev()), headers=[("X-Pad", "p" * pad)])
        head = req.index(b"\r\n\r\n") + 4
        r = http_raw(port, req)
        outcome = "answered 4xx" if 400 <= r.status < 500 else \
            "closed without an answer" if r.status == 0 else f"answered {r.status}"
        if not seen or seen[-1][1] != outcome:
            seen.append((head, outcome))
    bad = [(h, o) for h, o in seen if o != "answered 4xx"]
    if bad:
        fail(f"{name}: request heads over {MAX_HEADER} bytes: " + ", ".join(
            f"from {h} bytes {o}" for h, o in seen))
    ok, detail = healthy(port)
    if not ok:
        fail(f"{name}: /healthz does not answer afterwards: {detail}")


def test_partial_batch(port):
    name = "partially valid batch"
    batch = [
        ev(messageId="p-ok-1"),
        ev(eventType=DROP, messageId="p-bad-type"),  # fails before messageId is read
        ev(userId=True, messageId="p-bad-user"),
        ev(messageId="p-ok-2", anonymousId="anon"),
        ev(timestamp="nope", messageId="p-bad-ts"),  # fails after messageId is read
        "not an object",
        ev(properties={f"s{i}": "x" * 8000 for i in range(5)}, messageId="p-too-large"),
        ev(),
    ]
    r = http_raw(port, build(path="/events/batch", body=js(batch)))
    if r.status != 202:
        fail(f"{name}: status {r.status}, expected 202: {r!r}")
        return
    doc = r.json()
    if doc.get("accepted") != 3 or len(doc.get("messageIds", [])) != 3 or \
            doc["messageIds"][:2] != ["p-ok-1", "p-ok-2"]:
        fail(f"{name}: accepted/messageIds wrong: {doc}")
    want = [(1, "p-bad-type", "missing_field", "eventType"),
            (2, "p-bad-user", "invalid_type", "userId"),
            (4, "p-bad-ts", "invalid_timestamp", "timestamp"),
            (5, None, "invalid_type", ""),
            (6, "p-too-large", "too_large", "")]
    errors = doc.get("errors")
    if not isinstance(errors, list) or len(errors) != len(want):
        fail(f"{name}: errors should list {len(want)} entries: {doc}")
        return
    for got, (index, mid, code, field) in zip(errors, want):
        e = got.get("error", {})
        if set(got) != {"index", "messageId", "error"} or \
                set(e) != {"code", "message", "field"} or not e["message"]:
            fail(f"{name}: entry shape {got}")
        if got.get("index") != index or e.get("code") != code or e.get("field") != field:
            fail(f"{name}: entry {got}, expected index {index} code {code} field {field!r}")
        if got.get("messageId") != mid:
            fail(f"{name}: entry for index {index} carries messageId {got.get('messageId')!r}, "
                 f"expected the event's own messageId {mid!r}")


def test_all_invalid_batch_body(port):
    name = "batch of invalid events only (body)"
    r = http_raw(port, build(path="/events/batch",
                             body=js([ev(eventType=DROP, messageId="x1"), ev(userId=[])])))
    doc = check_error_body(name, r, "no_valid_events", None)
    if r.status != 400 or not doc:
        fail(f"{name}: {r!r}")
        return
    if doc.get("accepted") != 0 or [e.get("index") for e in doc.get("errors", [])] != [0, 1]:
        fail(f"{name}: body {doc}")


def test_revocation(port, env):
    """A key that works is revoked while the collector runs: within a few refresh periods
    (200 ms) it is refused, and stays refused."""
    name = "revocation while running"
    r = http_raw(port, build(body=js(ev()), auth="Bearer " + STATE["late_key"]))
    if r.status != 202:
        fail(f"{name}: the key did not work before revocation: {r!r}")
        return
    run_bin(["admin", "revoke-write-key", STATE["late_key_id"]], env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = http_raw(port, build(body=js(ev()), auth="Bearer " + STATE["late_key"]))
        if r.status == 401:
            break
        time.sleep(0.1)
    if r.status != 401:
        fail(f"{name}: still {r.status} 10 s after revocation: {r!r}")
        return
    check_error_body(name, r, "invalid_write_key", "Authorization")
    for _ in range(5):
        time.sleep(0.25)
        r = http_raw(port, build(body=js(ev()), auth="Bearer " + STATE["late_key"]))
        if r.status != 401:
            fail(f"{name}: the revoked key worked again: {r!r}")
            return


def test_keepalive_after_errors(port):
    """Several requests on one kept-alive connection: an error answer leaves the connection
    usable (or closed cleanly), and the next request is answered correctly."""
    name = "keep-alive after an error"
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        for req, want in [(build(body=b"{", close=False), 400),
                          (build(body=js(ev()), close=False), 202),
                          (build(body=js(ev()), auth=None, close=False), 401),
                          (build(body=js(ev()), close=False), 202)]:
            s.sendall(req)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                r, complete = parse_response(buf)
                if complete:
                    break
            r, _ = parse_response(buf)
            if r is None:  # closed: reconnect and retry once
                s.close()
                s = socket.create_connection(("127.0.0.1", port), timeout=20)
                s.sendall(req)
                buf = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    r, complete = parse_response(buf)
                    if complete:
                        break
            if r is None or r.status != want:
                fail(f"{name}: got {r!r}, expected {want}")
                return
    finally:
        s.close()


# ---------------------------------------------------------------- main


def start_collector(env, stderr_path):
    err = open(stderr_path, "wb")
    proc = subprocess.Popen([BIN, "collector"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    deadline = time.monotonic() + 60
    port = None
    while time.monotonic() < deadline and port is None:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited {proc.returncode}: "
                               f"{open(stderr_path, errors='replace').read()[-3000:]}")
        with open(stderr_path, errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == "collector listening":
                    port = int(rec["port"])
        time.sleep(0.05)
    if port is None:
        raise RuntimeError("the collector did not report its port")
    while time.monotonic() < deadline:
        r = http_raw(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if r.status == 200:
            return proc, port
        time.sleep(0.1)
    raise RuntimeError(f"the collector is not ready: {r!r}")


def main():
    if not os.access(BIN, os.X_OK):
        log(f"EVENTOPS_BIN {BIN!r} is not executable")
        return 2
    suffix = f"{os.getpid()}_{secrets.token_hex(4)}"
    db = f"eo_e2e_bad_{suffix}"
    topics = [f"eo_e2e_bad_{suffix}.events", f"eo_e2e_bad_{suffix}.dlq"]
    dsn = dsn_with_dbname(BASE_DSN, db)
    env = dict(os.environ)
    env.update(LIMIT_ENV)
    env.update({"EVENTOPS_PG_DSN": dsn, "EVENTOPS_KAFKA_BROKERS": BROKERS,
                "EVENTOPS_KAFKA_EVENTS_TOPIC": topics[0], "EVENTOPS_KAFKA_DLQ_TOPIC": topics[1],
                "EVENTOPS_COLLECTOR_ADDR": "127.0.0.1", "EVENTOPS_COLLECTOR_PORT": "0",
                "EVENTOPS_LOG_LEVEL": "info"})
    # create-topics makes the analytics role's topics too: this run's, not the stack's
    for what in ("SUMMARIES", "WINDOWS", "LATE", "CHANGELOG"):
        topics.append(f"eo_e2e_bad_{suffix}.{what.lower()}")
        env["EVENTOPS_ANALYTICS_%s_TOPIC" % what] = topics[-1]
    proc = None
    stderr_dir = tempfile.mkdtemp(prefix="eo_e2e_bad_")
    stderr_path = os.path.join(stderr_dir, "collector.stderr")
    created_db = created_topics = False
    ncases = 0
    try:
        psql(BASE_DSN, f'CREATE DATABASE "{db}"')
        created_db = True
        run_bin(["migrate"], env)
        run_bin(["admin", "create-topics", "--partitions", "1"], env)
        created_topics = True
        tenant = json.loads(run_bin(["admin", "create-tenant", f"bad-input-{suffix}", "--json"],
                                    env).stdout)
        STATE["key"], STATE["key_id"] = tenant["writeKey"], tenant["writeKeyId"]
        revoked = json.loads(run_bin(["admin", "create-write-key", tenant["tenantId"], "--json"],
                                     env).stdout)
        run_bin(["admin", "revoke-write-key", revoked["writeKeyId"]], env)
        STATE["revoked_key"] = revoked["writeKey"]
        late = json.loads(run_bin(["admin", "create-write-key", tenant["tenantId"], "--json"],
                                  env).stdout)
        STATE["late_key"], STATE["late_key_id"] = late["writeKey"], late["writeKeyId"]

        proc, port = start_collector(env, stderr_path)
        log(f"collector pid {proc.pid} on port {port}, database {db}, topic {topics[0]}")

        table = cases()
        for name, req, status, code, field, kind in table:
            ncases += 1
            if not run_case(port, name, req, status, code, field, kind):
                break
            if proc.poll() is not None:
                fail(f"{name}: the collector exited with {proc.returncode}")
                break
        else:
            ncases += 6
            test_header_sweep(port)
            test_partial_batch(port)
            test_all_invalid_batch_body(port)
            test_keepalive_after_errors(port)
            test_revocation(port, env)
            ok, detail = healthy(port)
            if not ok:
                fail(f"final /healthz: {detail}")

        if proc.poll() is not None:
            fail(f"the collector is not running at the end (exit {proc.returncode})")
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                fail("the collector did not stop within 60 s of SIGTERM")
            if rc != 0:
                fail(f"the collector exited {rc} after SIGTERM")
        proc = None
        with open(stderr_path, errors="replace") as f:
            stderr = f.read()
        hits = [m for m in SANITIZER_MARKERS if m in stderr]
        if hits:
            fail(f"sanitizer report in the collector's stderr ({', '.join(hits)}):\n"
                 + stderr[stderr.find(hits[0]) - 200:][:6000])
        if '"level":"error"' in stderr:
            notes.append("error lines in the collector log: " + "; ".join(
                line for line in stderr.splitlines() if '"level":"error"' in line)[:1000])
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if created_topics:
            try:
                res = eotest.kafka_delete_topics(BROKERS, topics)
                if any(code != 0 for code in res.values()):
                    log(f"warning: topic deletion answered {res}")
            except OSError as e:
                log(f"warning: could not delete the topics: {e}")
        if created_db:
            try:
                psql(BASE_DSN, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except (RuntimeError, subprocess.SubprocessError) as e:
                log(f"warning: {e}")
        if failures:
            log(f"the collector's stderr is kept in {stderr_path}")
        else:
            shutil.rmtree(stderr_dir, ignore_errors=True)

    for n in notes:
        log("NOTE: " + n)
    log(f"{ncases} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
