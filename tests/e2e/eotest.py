"""Shared helpers for the EventOps end-to-end tests (tests/e2e/test_*.py).

Standard library only, plus the CLI tools `psql` and `kcat`. The tests drive the built binary
($EVENTOPS_BIN) against the local stack whose settings come from the environment
(`eval "$(scripts/stack.sh env)"`: EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS, ...).

Typical use:

    import eotest
    with eotest.Sandbox("mytest") as sb:          # fresh database + topics, cleaned up after
        t = sb.create_tenant("acme")               # {"tenantId", "writeKey", ...}
        coll = sb.collector(); proc = sb.processor()
        coll.start(); proc.start()
        coll.wait_ready(); proc.wait_ready()
        st, hdrs, body = eotest.post_json(coll.url("/events/batch"), [...], key=t["writeKey"])
        rows = sb.sql("SELECT count(*) FROM events")
        dlq = eotest.consume(sb.brokers, sb.dlq_topic)
        ...
        eotest.check(cond, "what differed")       # collects failures; sb.report() prints them

Auth (issue 3): sb.create_signing_key(), sb.create_client(tenant, scopes), sb.auth() (the auth
role on sb.auth_port), sb.get_token(client_id, secret) / sb.token(...); the JWT helpers
(b64url_encode/decode, decode_jwt, forge, sign_eddsa) build hostile tokens byte by byte.

Tests that disturb the stack itself (test_outages, test_kafka_crash): pg_answers, pg_stop,
pg_restore, stack_up (`scripts/stack.sh up`), kafka_pid, kafka_answers,
check_brokers_are_the_stacks, Watchdog (a detached process that restores the stack should the
test be killed), ready_status; send() returns a Sent (status, headers, body, timing) and
check_storage() checks that accepted events are stored exactly once with exact rollups.

Everything a sandbox creates is unique to it (database eo_e2e_<hex>, topics e2e.<hex>.events,
e2e.<hex>.dlq and the analytics topics e2e.<hex>.summaries / .analytics.*, consumer groups,
processor and analytics ids, free TCP ports, signing-key folder), so runs
are isolated and repeatable. Process logs (JSON lines on stderr) go to files in a temporary
directory; on failure `Sandbox.dump_logs()` prints their tails.
"""

import base64 as _base64
import gzip as _gzip
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict

__all__ = [
    "Sandbox", "Role", "Failures", "HttpError", "free_port", "dsn_with_dbname", "psql",
    "http_request", "post_json", "post_raw", "http_get", "produce", "consume", "wait_until",
    "jsonschema",
    "log", "rand_hex", "b64url_encode", "b64url_decode", "decode_jwt", "forge", "sign_eddsa",
    "eddsa_signer", "jwt_parts", "SANITIZER_MARKERS", "form_encode", "basic_auth",
    "parse_www_authenticate", "check_bearer_error", "Redis", "run_with_redis",
    "STACK_SH", "STACK_DIR", "pg_answers", "pg_stop", "stack_up", "pg_restore", "kafka_pid",
    "kafka_answers", "check_brokers_are_the_stacks", "Watchdog", "ready_status", "Sent", "send",
    "stored_count", "check_storage", "rollup_mismatches", "kafka_delete_topics",
]

_T0 = time.monotonic()
_print_lock = threading.Lock()


def log(*args):
    """Prints a progress line prefixed with seconds since the module was loaded."""
    with _print_lock:
        print("[%7.2fs]" % (time.monotonic() - _T0), *args, flush=True)


def rand_hex(n=8):
    """n random lower-case hex characters (for unique names)."""
    return "%0*x" % (n, random.SystemRandom().getrandbits(4 * n))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jsonschema():
    """The jsonschema module (Debian's python3-jsonschema, scripts/deps.sh; 4.10 or newer for
    draft 2020-12). When the interpreter is not Debian's own (pyenv, a venv), Debian's
    dist-packages folder is appended to sys.path, after every other entry, so that it only
    supplies what is missing. Fails loudly when it is not installed."""
    try:
        import jsonschema as js
    except ImportError:
        debian = "/usr/lib/python3/dist-packages"
        if debian in sys.path or not os.path.isdir(os.path.join(debian, "jsonschema")):
            raise
        sys.path.append(debian)
        import jsonschema as js
    return js


def env_required(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit("%s is not set (eval \"$(scripts/stack.sh env)\" and set EVENTOPS_BIN)"
                         % name)
    return v


# ---------------------------------------------------------------------------------------------
# wait_until and failure collection

def wait_until(predicate, timeout, interval=0.2, what=None):
    """Calls predicate() until it returns a truthy value or timeout seconds pass. Returns the
    last value (falsy on timeout). Exceptions from predicate count as falsy. When `what` is
    given, a timeout raises TimeoutError(what) instead of returning."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a failing probe just means "not yet"
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            if what:
                raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
            return value
        time.sleep(interval)


class Failures:
    """Collects assertion failures so a test can report every difference, not just the first."""

    def __init__(self):
        self.items = []
        self._lock = threading.Lock()

    def check(self, cond, message):
        """Records message when cond is false. Returns cond."""
        if not cond:
            with self._lock:
                self.items.append(message)
            log("FAIL:", message)
        return cond

    def fail(self, message):
        self.check(False, message)

    def __bool__(self):
        return bool(self.items)


def describe_set_diff(name_a, a, name_b, b, limit=10):
    """One line describing how two sets differ (sizes and a few examples of each side)."""
    only_a = sorted(a - b)
    only_b = sorted(b - a)
    return ("%s has %d, %s has %d; only in %s: %d %s; only in %s: %d %s" %
            (name_a, len(a), name_b, len(b), name_a, len(only_a), only_a[:limit], name_b,
             len(only_b), only_b[:limit]))


# ---------------------------------------------------------------------------------------------
# PostgreSQL via psql

_FS = "\x1f"  # field separator
_RS = "\x1e"  # record separator
_NULL = "\x1d"  # printed for SQL NULL


def dsn_with_dbname(dsn, dbname):
    """The libpq key=value DSN with dbname replaced (or added). URIs are supported too."""
    if dsn.startswith(("postgres://", "postgresql://")):
        u = urllib.parse.urlsplit(dsn)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))
    parts = [p for p in re.findall(r"(\w+\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+))", dsn)
             if not re.match(r"dbname\s*=", p)]
    return " ".join(parts + ["dbname=%s" % dbname])


def psql(dsn, sql, timeout=120):
    """Runs sql (one or more statements; ON_ERROR_STOP) and returns the rows of the last
    statement as a list of tuples of str (None for NULL). Raises RuntimeError on error."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", _FS, "-R", _RS,
           "-P", "null=" + _NULL, "-d", dsn]
    p = subprocess.run(cmd, input=sql.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql failed (%d): %s\nSQL: %s" %
                           (p.returncode, p.stderr.decode(errors="replace").strip(), sql[:500]))
    out = p.stdout.decode()
    if out.endswith("\n"):
        out = out[:-1]
    rows = []
    for rec in out.split(_RS):
        if rec == "":
            continue
        rows.append(tuple(None if f == _NULL else f for f in rec.split(_FS)))
    return rows


# ---------------------------------------------------------------------------------------------
# HTTP

class HttpError(Exception):
    """The request got no HTTP answer (connection refused/reset, timeout, bad response)."""


def http_request(method, url, body=None, headers=None, timeout=30, conn=None, source=None):
    """Sends one request. body: bytes or None. Returns (status, headers, parsed) where headers
    is a dict with lower-case names and parsed is the JSON body (or the raw bytes when it is
    not JSON). Raises HttpError when no answer arrived. With conn (an HTTPConnection kept by
    the caller for keep-alive) the request goes over it; the caller closes it on HttpError.
    source: a local address to connect from (e.g. "127.0.0.2", any 127/8 address works on
    Linux), for tests of per-source-address limits."""
    u = urllib.parse.urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
    path = u.path + ("?" + u.query if u.query else "")
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        raise HttpError("%s %s: %s: %s" % (method, url, type(e).__name__, e)) from e
    finally:
        if own:
            conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, hdrs, parsed


def auth_headers(key=None, extra=None):
    h = {}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    h.update(extra or {})
    return h


def post_raw(url, data, key=None, headers=None, content_type="application/json", gzip=False,
             timeout=30, conn=None):
    """POSTs raw bytes (gzip-compressed when gzip=True). Returns (status, headers, parsed)."""
    h = {"Content-Type": content_type} if content_type else {}
    if gzip:
        data = _gzip.compress(data)
        h["Content-Encoding"] = "gzip"
    h.update(auth_headers(key, headers))
    return http_request("POST", url, data, h, timeout=timeout, conn=conn)


def post_json(url, obj, key=None, headers=None, gzip=False, timeout=30, conn=None):
    """POSTs obj as JSON. Returns (status, headers, parsed JSON body)."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    return post_raw(url, data, key=key, headers=headers, gzip=gzip, timeout=timeout, conn=conn)


def http_get(url, timeout=5):
    """GET; returns (status, headers, parsed). Raises HttpError when nothing answered."""
    return http_request("GET", url, None, None, timeout=timeout)


def form_encode(pairs):
    """application/x-www-form-urlencoded body (bytes) from a list of (name, value) pairs (or a
    dict); the order and any repetition are kept as given."""
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    return urllib.parse.urlencode(pairs).encode()


def basic_auth(user, password, urlencode=True):
    """`Basic base64(user:password)`; with urlencode (RFC 6749 section 2.3.1) both parts are
    form-urlencoded first."""
    if urlencode:
        user = urllib.parse.quote_plus(user)
        password = urllib.parse.quote_plus(password)
    return "Basic " + _base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# ---------------------------------------------------------------------------------------------
# JWT (JWS compact serialisation) helpers, for reading issued tokens and forging hostile ones.
# The helpers never validate anything: forge() signs whatever bytes it is given, so a test
# controls every byte of header and payload (duplicate keys, non-objects, bad JSON, ...).
# Signing needs the `cryptography` package (Debian python3-cryptography); it is imported lazily
# so tests that do not use tokens keep running with the standard library only.

def b64url_encode(data):
    """Base64url without padding (RFC 7515 section 2). data: bytes or str (UTF-8)."""
    if isinstance(data, str):
        data = data.encode()
    return _base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    """Decodes base64url with or without padding (lenient, for reading tokens). Raises
    ValueError on characters outside the base64url alphabet."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    if not re.fullmatch(r"[A-Za-z0-9_-]*=*", text):
        raise ValueError("not base64url: %r" % text[:60])
    text = text.rstrip("=")
    return _base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    """(header_b64, payload_b64, signature_b64) of a compact JWS; ValueError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWS has 3 parts, this has %d" % len(parts))
    return tuple(parts)


def decode_jwt(token):
    """(header, claims) as dicts, without verifying anything."""
    h, p, _ = jwt_parts(token)
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def _json_bytes(obj):
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    if isinstance(obj, str):
        return obj.encode()
    return json.dumps(obj, separators=(",", ":")).encode()


def forge(header, payload, signer=None):
    """A compact JWS built from raw parts. header/payload: bytes (used as they are), str (UTF-8)
    or a JSON value (serialised compactly). signer: callable(signing_input: bytes) -> signature
    bytes, or None for an empty signature (`alg: none` style)."""
    signing_input = b64url_encode(_json_bytes(header)) + "." + b64url_encode(_json_bytes(payload))
    sig = signer(signing_input.encode("ascii")) if signer else b""
    return signing_input + "." + b64url_encode(sig)


def load_private_key(pem_path):
    from cryptography.hazmat.primitives import serialization
    with open(pem_path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def eddsa_signer(key):
    """Signer for forge() from an Ed25519 private key object or the path of a PEM file."""
    if isinstance(key, (str, bytes, os.PathLike)):
        key = load_private_key(key)
    return lambda data: key.sign(data)


def sign_eddsa(header, claims, pem_path):
    """A token for header and claims (dicts or raw bytes) signed with the Ed25519 key in
    pem_path (e.g. a file of the sandbox's key_dir)."""
    return forge(header, claims, eddsa_signer(pem_path))


def ed25519_public_raw(pem_path):
    """The 32 raw bytes of the public half of the Ed25519 private key in pem_path."""
    from cryptography.hazmat.primitives import serialization
    return load_private_key(pem_path).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_eddsa(token, public_raw):
    """True when token's signature verifies with the raw Ed25519 public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    h, p, s = jwt_parts(token)
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(b64url_decode(s),
                                                               ("%s.%s" % (h, p)).encode())
        return True
    except InvalidSignature:
        return False


_TOKEN68 = r"[A-Za-z0-9._~+/-]+=*"
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'


def parse_www_authenticate(value):
    """Parses a WWW-Authenticate value (RFC 9110 section 11.6.1) into a list of
    (scheme, {param: value}) with quoted values unescaped. Raises ValueError when the value does
    not follow the grammar (e.g. an unescaped quote inside error_description)."""
    out = []
    pos, n = 0, len(value)
    param_re = re.compile(r"\s*(%s)\s*=\s*(%s|%s)" % (_TCHAR, _QUOTED, _TCHAR))
    scheme_re = re.compile(r"\s*(%s)(?=\s|,|$)" % _TCHAR)
    while True:
        while pos < n and value[pos] in " ,":
            pos += 1
        if pos >= n:
            break
        m = scheme_re.match(value, pos)
        if not m:
            raise ValueError("no auth-scheme at %d in %r" % (pos, value))
        scheme, params = m.group(1), {}
        pos = m.end()
        while True:
            m = param_re.match(value, pos)
            if not m:
                break
            v = m.group(2)
            if v.startswith('"'):
                v = re.sub(r"\\(.)", r"\1", v[1:-1])
            if m.group(1).lower() in params:
                raise ValueError("parameter %s repeated in %r" % (m.group(1), value))
            params[m.group(1).lower()] = v
            pos = m.end()
            m = re.compile(r"\s*,").match(value, pos)
            if not m:
                break
            pos = m.end()
            if not param_re.match(value, pos):
                break  # the next challenge (or the end)
        out.append((scheme, params))
        if value[pos:].strip() and not re.search(r",\s*$", value[:pos]) and \
                not re.match(r"\s*,", value[pos:]):
            raise ValueError("trailing text %r in %r" % (value[pos:], value))
    if not out:
        raise ValueError("empty WWW-Authenticate")
    return out


def check_bearer_error(f, name, resp, status=401, codes=("invalid_token",), field=True):
    """Checks a collector answer refusing a bearer token (issue 3):
    401: {"error": {"code": "invalid_token", "message", "field": "Authorization"}} and
         WWW-Authenticate: Bearer realm="eventops", error="invalid_token", error_description="..."
    403: {"error": {"code": "insufficient_scope", ...}} and
         WWW-Authenticate: Bearer realm="eventops", error="insufficient_scope",
         scope="events:write".
    codes: accepted error codes. Records failures in f; returns True when all held."""
    st, h, body = resp
    n0 = len(f.items)
    if isinstance(codes, str):
        codes = (codes,)
    if not f.check(st == status, "%s: status %s, expected %d (body %.300r, WWW-Authenticate %r)"
                   % (name, st, status, body, h.get("www-authenticate"))):
        return False
    err = body.get("error") if isinstance(body, dict) else None
    if f.check(isinstance(err, dict), "%s: body %r, expected {\"error\": {...}}" % (name, body)):
        f.check(err.get("code") in codes, "%s: error.code %r, expected %s" %
                (name, err.get("code"), "/".join(codes)))
        f.check(isinstance(err.get("message"), str) and bool(err.get("message")),
                "%s: error.message missing: %r" % (name, err))
        if status == 401 and field:
            f.check(err.get("field") == "Authorization", "%s: error.field %r, expected "
                    "Authorization" % (name, err.get("field")))
    www = h.get("www-authenticate")
    if f.check(www is not None, "%s: no WWW-Authenticate header" % name):
        try:
            ch = parse_www_authenticate(www)
        except ValueError as e:
            f.fail("%s: WWW-Authenticate does not parse: %s" % (name, e))
            ch = []
        bearer = [p for s_, p in ch if s_.lower() == "bearer"]
        if f.check(bool(bearer), "%s: WWW-Authenticate %r has no Bearer challenge" % (name, www)):
            p = bearer[0]
            f.check(p.get("realm") == "eventops", "%s: Bearer realm %r" % (name, p.get("realm")))
            want = "invalid_token" if status == 401 else "insufficient_scope"
            if err is None or err.get("code") in ("invalid_token", "insufficient_scope"):
                f.check(p.get("error") == want, "%s: WWW-Authenticate error=%r, expected %s (%r)"
                        % (name, p.get("error"), want, www))
                if status == 401:
                    f.check(bool(p.get("error_description")),
                            "%s: WWW-Authenticate lacks error_description: %r" % (name, www))
                else:
                    f.check(p.get("scope") == "events:write",
                            "%s: WWW-Authenticate scope=%r, expected events:write" %
                            (name, p.get("scope")))
    return len(f.items) == n0


SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "runtime error:", "Fatal error in GNU libmicrohttpd")


# ---------------------------------------------------------------------------------------------
# Kafka via kcat

_KCAT_MSG_DELIM = "\x1e"
_KCAT_KEY_DELIM = "\x1f"


def produce(brokers, topic, records, timeout=60):
    """Writes records to topic with kcat (acks=all, waits for delivery). records: iterable of
    values or (key, value) pairs, str or bytes; keys and values must not contain the bytes
    0x1e or 0x1f (used as delimiters). Raises RuntimeError when kcat fails."""
    buf = bytearray()
    keyed = None
    for r in records:
        if isinstance(r, tuple):
            k, v = r
        else:
            k, v = None, r
        if keyed is None:
            keyed = k is not None
        if (k is not None) != keyed:
            raise ValueError("mix of keyed and unkeyed records")
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        for part in (k or b"", v):
            if b"\x1e" in part or b"\x1f" in part:
                raise ValueError("record holds a delimiter byte")
        if keyed:
            buf += k + b"\x1f"
        buf += v + b"\x1e"
    cmd = ["kcat", "-P", "-b", brokers, "-t", topic, "-D", "\\x1e", "-X", "acks=all"]
    if keyed:
        cmd += ["-K", "\\x1f"]
    p = subprocess.run(cmd, input=bytes(buf), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError("kcat produce to %s failed (%d): %s" %
                           (topic, p.returncode, p.stderr.decode(errors="replace")))


def consume(brokers, topic, read_committed=True, timeout=60):
    """Reads topic from the beginning to its current end (read_committed by default: aborted
    transactions are skipped) with kcat. Returns a list of dicts {partition, offset, key,
    value, headers} where key/value are str (None for null) and headers a list of
    (name, value) pairs in order."""
    cmd = ["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-o", "beginning", "-J", "-q"]
    if read_committed:
        cmd += ["-X", "isolation.level=read_committed"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("kcat consume %s failed (%d): %s" %
                           (topic, p.returncode, p.stderr.decode(errors="replace")))
    out = []
    for line in p.stdout.decode().splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        h = m.get("headers") or []
        out.append({
            "partition": m["partition"],
            "offset": m["offset"],
            "key": m.get("key"),
            "value": m.get("payload"),
            "headers": list(zip(h[0::2], h[1::2])),
        })
    return out


# ---------------------------------------------------------------------------------------------
# Processes

class Role:
    """One `eventops ROLE` subprocess (collector, processor, auth or all) with a fixed environment.
    It can be started, killed and restarted any number of times; every incarnation appends
    its stderr to the same log file, after a marker line written by the test."""

    def __init__(self, binary, role, env, log_path, ready_urls, port=None, name=None):
        self.binary = binary
        self.role = role
        self.name = name or role
        self.env = env
        self.log_path = log_path
        self.ready_urls = ready_urls
        self.port = port  # the role's main HTTP port (collector, auth or processor)
        self.proc = None
        self.starts = 0
        self.kills = 0

    def url(self, path):
        """URL of a path on this role's main port (the collector's for `collector`/`all`, the
        auth role's for `auth`), honouring a port set through the role's extra_env."""
        if self.port is None:
            raise RuntimeError("%s has no known port" % self.name)
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def sanitizer_lines(self):
        """Lines of the log that look like a sanitizer report or a libmicrohttpd panic."""
        out = []
        for m in SANITIZER_MARKERS:
            out.extend(self.grep(m))
        return out

    def _mark(self, text):
        with open(self.log_path, "ab") as f:
            f.write(("---- e2e: %s %s ----\n" % (self.role, text)).encode())

    def start(self):
        if self.running():
            raise RuntimeError("%s is already running" % self.role)
        self.starts += 1
        self._mark("start #%d" % self.starts)
        f = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, self.role], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        finally:
            f.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def is_ready(self):
        """True when every /readyz of the role answers 200."""
        for u in self.ready_urls:
            try:
                st, _, _ = http_get(u, timeout=3)
            except HttpError:
                return False
            if st != 200:
                return False
        return True

    def wait_ready(self, timeout=60):
        """Waits until /readyz answers 200; raises TimeoutError (or RuntimeError when the
        process exited) otherwise."""
        def probe():
            if not self.running():
                raise_exit[0] = True
                return True
            return self.is_ready()
        raise_exit = [False]
        ok = wait_until(probe, timeout, interval=0.1)
        if raise_exit[0]:
            raise RuntimeError("%s exited with %s before it was ready" %
                               (self.role, self.proc.returncode))
        if not ok:
            raise TimeoutError("%s not ready after %.0f s" % (self.role, timeout))

    def kill(self, sig=signal.SIGKILL):
        """Sends sig and, for SIGKILL, reaps the process. Returns the exit code (or None)."""
        if not self.running():
            raise RuntimeError("%s is not running" % self.role)
        self._mark("signal %s" % signal.Signals(sig).name)
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.kills += 1
            return self.proc.wait(timeout=30)
        return None

    def stop(self, timeout=60):
        """SIGTERM and waits; returns the exit code (SIGKILL and -9 after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._mark("signal SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._mark("did not stop in %.0f s; SIGKILL" % timeout)
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode

    def restart(self, pause=0.0):
        """Kills (SIGKILL) if running, sleeps pause seconds, starts again."""
        if self.running():
            self.kill()
        if pause:
            time.sleep(pause)
        return self.start()

    def tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(data[-lines:])

    def grep(self, needle):
        """Lines of the log containing needle."""
        try:
            with open(self.log_path, "rb") as f:
                return [l for l in f.read().decode(errors="replace").splitlines() if needle in l]
        except OSError:
            return []


class Redis:
    """A private redis-server on a free loopback port (no persistence)."""

    def __init__(self, log_path, port=None):
        self.port = port or free_port()
        self.log_path = log_path
        self.proc = None
        self.paused = False

    def start(self):
        f = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        finally:
            f.close()
        wait_until(self.ping, 15, interval=0.1, what="redis-server on :%d" % self.port)

    def cli(self, *args, timeout=10):
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.stdout.decode(errors="replace")

    def ping(self):
        try:
            return self.cli("ping", timeout=5).strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def keys(self, pattern="*"):
        return [k for k in self.cli("--scan", "--pattern", pattern, timeout=30).splitlines() if k]

    def pttl(self, key):
        return int(self.cli("pttl", key).strip())

    def pause(self):
        """SIGSTOP: connections stay open but nothing answers (a Redis slower than any
        timeout)."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port


def run_with_redis(name, run):
    """Runs run(sb, redis) in a Sandbox named name with a private Redis (not started; stopped at
    the end). Returns run's result, or 1 when redis-server or redis-cli is missing."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("redis-server / redis-cli not found")
        return 1
    with Sandbox(name) as sb:
        redis = Redis(os.path.join(sb.dir, "redis.log"))
        try:
            return run(sb, redis)
        finally:
            redis.stop()


class LocalHttpServer:
    """A loopback HTTP server for a test: every GET is answered by answer(path) -> (status, body
    bytes) as JSON; `hits` lists the paths asked, in order. close() stops it."""

    def __init__(self, answer):
        import http.server
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                status, data = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def kafka_delete_topics(brokers, names):
    """DeleteTopics v1 over the Kafka protocol (stdlib only; the Kafka CLI takes seconds per
    topic). Returns {name: error_code}."""
    host, port = brokers.split(",")[0].rsplit(":", 1)

    def kstr(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    body = struct.pack(">hhi", 20, 1, 4242) + kstr("eo-e2e-cleanup")
    body += struct.pack(">i", len(names)) + b"".join(kstr(n) for n in names)
    body += struct.pack(">i", 30000)
    with socket.create_connection((host, int(port)), timeout=40) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    pos = 8  # correlation id, throttle time
    (count,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    out = {}
    for _ in range(count):
        (n,) = struct.unpack_from(">h", resp, pos)
        pos += 2
        name = resp[pos:pos + n].decode()
        pos += n
        (code,) = struct.unpack_from(">h", resp, pos)
        pos += 2
        out[name] = code
    return out


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class Sandbox:
    """An isolated EventOps installation on the shared stack: its own database (migrated),
    events and dead-letter topics, consumer group, processor id and ports. Use as a context
    manager; on exit the processes are stopped, the database dropped and (when keep_dir is
    false and the test passed) the log directory removed.

    Attributes: name, bin, brokers, base_dsn, dbname, dsn, events_topic, dlq_topic, group,
    processor_id, collector_port, processor_port, auth_port, query_port, dir, key_dir (the auth role's
    signing keys, mode 0700, EVENTOPS_AUTH_KEY_DIR), env (for the roles), failures; the analytics
    role's analytics_port, analytics_group, analytics_id and its topics summaries_topic,
    windows_topic, late_topic and changelog_topic (created with the others)."""

    def __init__(self, name="e2e", partitions=6, extra_env=None, keep_dir=False):
        self.bin = os.path.abspath(env_required("EVENTOPS_BIN"))
        self.base_dsn = env_required("EVENTOPS_PG_DSN")
        self.brokers = env_required("EVENTOPS_KAFKA_BROKERS")
        self.id = rand_hex(10)
        self.name = name
        self.dbname = "eo_e2e_%s" % self.id
        self.dsn = dsn_with_dbname(self.base_dsn, self.dbname)
        self.events_topic = "e2e.%s.events" % self.id
        self.dlq_topic = "e2e.%s.dlq" % self.id
        self.group = "e2e-%s-%s" % (name, self.id)
        self.processor_id = "e2e-%s-p1" % self.id
        self.collector_port = free_port()
        self.processor_port = free_port()
        while self.processor_port == self.collector_port:
            self.processor_port = free_port()
        self.auth_port = free_port()
        while self.auth_port in (self.collector_port, self.processor_port):
            self.auth_port = free_port()
        self.query_port = free_port()
        while self.query_port in (self.collector_port, self.processor_port, self.auth_port):
            self.query_port = free_port()
        self.analytics_port = free_port()
        while self.analytics_port in (self.collector_port, self.processor_port, self.auth_port,
                                      self.query_port):
            self.analytics_port = free_port()
        # The analytics role's group, instance and topics (made by `admin create-topics`).
        self.analytics_group = "e2e-%s-%s-analytics" % (name, self.id)
        self.analytics_id = "e2e-%s-a1" % self.id
        self.summaries_topic = "e2e.%s.summaries" % self.id
        self.windows_topic = "e2e.%s.analytics.windows" % self.id
        self.late_topic = "e2e.%s.analytics.late" % self.id
        self.changelog_topic = "e2e.%s.analytics.changelog" % self.id
        self.partitions = partitions
        self.extra_env = dict(extra_env or {})
        self.keep_dir = keep_dir
        self.dir = tempfile.mkdtemp(prefix="eo-e2e-%s-" % name)
        # Signing keys of the auth role (EVENTOPS_AUTH_KEY_DIR), private to this sandbox.
        self.key_dir = os.path.join(self.dir, "keys")
        os.mkdir(self.key_dir, 0o700)
        os.chmod(self.key_dir, 0o700)
        self.failures = Failures()
        self.roles = []
        self._topics_created = False
        self._db_created = False
        self.env = self._role_env()

    # -- setup / teardown --

    def _role_env(self):
        env = dict(os.environ)
        env.update({
            "EVENTOPS_PG_DSN": self.dsn,
            "EVENTOPS_KAFKA_BROKERS": self.brokers,
            "EVENTOPS_KAFKA_EVENTS_TOPIC": self.events_topic,
            "EVENTOPS_KAFKA_DLQ_TOPIC": self.dlq_topic,
            "EVENTOPS_PROCESSOR_GROUP": self.group,
            "EVENTOPS_PROCESSOR_ID": self.processor_id,
            "EVENTOPS_COLLECTOR_ADDR": "127.0.0.1",
            "EVENTOPS_COLLECTOR_PORT": str(self.collector_port),
            "EVENTOPS_GRPC_PORT": "0",  # any free port: tests that use gRPC set their own
            "EVENTOPS_PROCESSOR_ADDR": "127.0.0.1",
            "EVENTOPS_PROCESSOR_PORT": str(self.processor_port),
            "EVENTOPS_AUTH_ADDR": "127.0.0.1",
            "EVENTOPS_AUTH_PORT": str(self.auth_port),
            "EVENTOPS_AUTH_KEY_DIR": self.key_dir,
            "EVENTOPS_QUERY_ADDR": "127.0.0.1",
            "EVENTOPS_QUERY_PORT": str(self.query_port),
            "EVENTOPS_ANALYTICS_ADDR": "127.0.0.1",
            "EVENTOPS_ANALYTICS_PORT": str(self.analytics_port),
            "EVENTOPS_ANALYTICS_GROUP": self.analytics_group,
            "EVENTOPS_ANALYTICS_ID": self.analytics_id,
            "EVENTOPS_ANALYTICS_SINK_GROUP": self.analytics_group + "-sink",
            "EVENTOPS_ANALYTICS_SUMMARIES_TOPIC": self.summaries_topic,
            "EVENTOPS_ANALYTICS_WINDOWS_TOPIC": self.windows_topic,
            "EVENTOPS_ANALYTICS_LATE_TOPIC": self.late_topic,
            "EVENTOPS_ANALYTICS_CHANGELOG_TOPIC": self.changelog_topic,
        })
        env.update(self.extra_env)
        return env

    def run_bin(self, *args, timeout=120, check=True, extra_env=None):
        """Runs `eventops ARGS` with the sandbox environment (overlaid with extra_env); returns
        CompletedProcess (text)."""
        env = dict(self.env, **(extra_env or {}))
        p = subprocess.run([self.bin, *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        if check and p.returncode != 0:
            raise RuntimeError("eventops %s failed (%d): %s%s" %
                               (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def setup(self):
        psql(self.base_dsn, 'CREATE DATABASE "%s"' % self.dbname)
        self._db_created = True
        self.run_bin("migrate")
        self._topics_created = True  # also when the call fails part way
        self.run_bin("admin", "create-topics", "--partitions", str(self.partitions), "--json")
        log("sandbox %s: db %s, topics %s / %s, collector :%d, processor :%d, logs %s" %
            (self.id, self.dbname, self.events_topic, self.dlq_topic, self.collector_port,
             self.processor_port, self.dir))
        return self

    def teardown(self):
        for r in self.roles:
            if r.running():
                r.proc.kill()
                r.proc.wait()
        if self._db_created:
            try:
                psql(self.base_dsn, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.dbname)
            except Exception as e:  # noqa: BLE001
                log("warning: dropping %s failed: %s" % (self.dbname, e))
        if not self.keep_dir and not self.failures:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._topics_created and not self.keep_dir and not self.failures:
            topics = [self.events_topic, self.dlq_topic, self.summaries_topic,
                      self.windows_topic, self.late_topic, self.changelog_topic]
            try:
                res = kafka_delete_topics(self.brokers, topics)
                if any(code != 0 for code in res.values()):
                    log("warning: topic deletion answered %s" % res)
            except OSError as e:
                log("warning: could not delete the topics: %s" % e)

    def __enter__(self):
        try:
            return self.setup()
        except BaseException:
            self.teardown()
            raise

    def __exit__(self, et, ev, tb):
        if et is not None or self.failures:
            self.dump_logs()
        self.teardown()
        return False

    # -- tenants, SQL --

    def create_tenant(self, name):
        """Creates a tenant with a write key: {"tenantId", "name", "writeKeyId", "writeKey"}."""
        p = self.run_bin("admin", "create-tenant", name, "--json")
        return json.loads(p.stdout)

    def sql(self, statement, timeout=120):
        """Runs SQL against the sandbox database (TimeZone UTC); returns rows (see psql())."""
        return psql(self.dsn, "SET TimeZone = 'UTC';\n" + statement, timeout=timeout)

    def scalar(self, statement):
        rows = self.sql(statement)
        return rows[0][0] if rows else None

    def stored_tenants(self, message_ids):
        """{message_id: sorted list of tenant ids it is stored under} for those message ids
        found in the events table."""
        ids = sorted(set(message_ids))
        if not ids:
            return {}
        lits = ",".join("'%s'" % m.replace("'", "''") for m in ids)
        out = {}
        for mid, tid in self.sql("SELECT message_id, tenant_id::text FROM events "
                                 "WHERE message_id IN (%s)" % lits):
            out.setdefault(mid, []).append(tid)
        return {k: sorted(v) for k, v in out.items()}

    def wait_stored(self, message_ids, timeout=60):
        """Waits (bounded) until every message id is in the events table; returns
        stored_tenants(message_ids) as it was last seen."""
        ids = set(message_ids)
        seen = [{}]

        def probe():
            seen[0] = self.stored_tenants(ids)
            return ids <= set(seen[0])
        wait_until(probe, timeout, interval=0.25)
        return seen[0]

    def tenant_count(self, tenant_id):
        """Rows of the events table for tenant_id."""
        return int(self.scalar("SELECT count(*) FROM events WHERE tenant_id = '%s'" %
                               tenant_id.replace("'", "''")))

    # -- processes --

    def role(self, role, extra_env=None, name=None):
        """A Role for `collector`, `processor`, `auth`, `query`, `analytics` or `all` (not
        started). extra_env
        overlays the sandbox environment for this process only (e.g. a second collector with
        its own EVENTOPS_COLLECTOR_PORT and settings); the ready URLs and Role.url() follow the
        ports it sets. name: the log file's name (default: the role, numbered when taken)."""
        env = dict(self.env)
        env.update({k: str(v) for k, v in (extra_env or {}).items()})

        def port_of(var):
            return int(env[var])

        urls = []
        port = None
        if role in ("collector", "all"):
            port = port_of("EVENTOPS_COLLECTOR_PORT")
            urls.append("http://127.0.0.1:%d/readyz" % port)
        if role in ("processor", "all"):
            urls.append("http://127.0.0.1:%d/readyz" % port_of("EVENTOPS_PROCESSOR_PORT"))
            if port is None:
                port = port_of("EVENTOPS_PROCESSOR_PORT")
        if role == "auth" or (role == "all" and env.get("EVENTOPS_AUTH_KEY_DIR")):
            urls.append("http://127.0.0.1:%d/readyz" % port_of("EVENTOPS_AUTH_PORT"))
            if port is None:
                port = port_of("EVENTOPS_AUTH_PORT")
        if role in ("query", "all"):
            urls.append("http://127.0.0.1:%d/readyz" % port_of("EVENTOPS_QUERY_PORT"))
            if port is None:
                port = port_of("EVENTOPS_QUERY_PORT")
        if role == "analytics" or (role == "all" and (env.get("EVENTOPS_AUTH_KEY_DIR") or
                                                      env.get("EVENTOPS_AUTH_JWKS_URL"))):
            urls.append("http://127.0.0.1:%d/readyz" % port_of("EVENTOPS_ANALYTICS_PORT"))
            if port is None:
                port = port_of("EVENTOPS_ANALYTICS_PORT")
        taken = {r.name for r in self.roles}
        base = name or role
        name, n = base, 1
        while name in taken:
            n += 1
            name = "%s-%d" % (base, n)
        r = Role(self.bin, role, env, os.path.join(self.dir, "%s.log" % name), urls, port=port,
                 name=name)
        self.roles.append(r)
        return r

    def collector(self, extra_env=None, name=None):
        return self.role("collector", extra_env=extra_env, name=name)

    def processor(self, extra_env=None, name=None):
        return self.role("processor", extra_env=extra_env, name=name)

    def auth(self, extra_env=None, name=None):
        """The auth role (POST /oauth/token, GET /.well-known/jwks.json) on auth_port."""
        return self.role("auth", extra_env=extra_env, name=name)

    def query(self, extra_env=None, name=None):
        """The query role (GET /events/count, /events/trend, ...) on query_port."""
        return self.role("query", extra_env=extra_env, name=name)

    def analytics(self, extra_env=None, name=None):
        """The analytics role (its engine and /analytics/* API) on analytics_port."""
        return self.role("analytics", extra_env=extra_env, name=name)

    def analytics_url(self, path):
        """URL of a path of the analytics role on analytics_port, e.g.
        analytics_url("/analytics/rules")."""
        return "http://127.0.0.1:%d%s" % (self.analytics_port, path)

    def query_url(self, path):
        """URL of a path of the query role on query_port, e.g. query_url("/events/count")."""
        return "http://127.0.0.1:%d%s" % (self.query_port, path)

    def url(self, path):
        """URL of a collector path, e.g. url("/events/batch")."""
        return "http://127.0.0.1:%d%s" % (self.collector_port, path)

    def auth_url(self, path):
        """URL of a path of the auth role on auth_port, e.g. auth_url("/oauth/token")."""
        return "http://127.0.0.1:%d%s" % (self.auth_port, path)

    # -- auth: signing keys, clients, tokens --

    def admin_json(self, *args, extra_env=None):
        """Runs `eventops admin ARGS --json` and returns the parsed output."""
        p = self.run_bin("admin", *args, "--json", extra_env=extra_env)
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise RuntimeError("eventops admin %s --json printed no JSON: %r" %
                               (" ".join(args), p.stdout[:500])) from e

    def create_signing_key(self, key_dir=None):
        """`admin create-signing-key --json` (into key_dir, default the sandbox's):
        {"kid", "path", "algorithm"}."""
        extra = ["--dir", key_dir] if key_dir else []
        return self.admin_json("create-signing-key", *extra)

    def list_signing_keys(self, key_dir=None):
        extra = ["--dir", key_dir] if key_dir else []
        return self.admin_json("list-signing-keys", *extra)

    def delete_signing_key(self, kid, key_dir=None):
        extra = ["--dir", key_dir] if key_dir else []
        return self.run_bin("admin", "delete-signing-key", "--kid", kid, *extra)

    def key_path(self, kid):
        return os.path.join(self.key_dir, "%s.pem" % kid)

    def create_client(self, tenant, scopes, rate=None, burst=None, name=None):
        """`admin create-client --json`: {"clientId", "clientSecret", "tenantId", "scopes"}.
        tenant: name or id; scopes: list or comma-separated str."""
        if not isinstance(scopes, str):
            scopes = ",".join(scopes)
        args = ["create-client", "--tenant", tenant, "--scopes", scopes]
        if name is not None:
            args += ["--name", name]
        if rate is not None:
            args += ["--rate", str(rate)]
        if burst is not None:
            args += ["--burst", str(burst)]
        return self.admin_json(*args)

    def revoke_client(self, client_id):
        return self.admin_json("revoke-client", client_id)

    def list_clients(self, tenant=None):
        return self.admin_json("list-clients", *(["--tenant", tenant] if tenant else []))

    def set_rate_limit(self, rate=None, burst=None, client=None, write_key=None, default=False):
        """`admin set-rate-limit (--client ID | --write-key KEY_ID) (--rate R --burst B |
        --default)`."""
        args = ["admin", "set-rate-limit"]
        if client:
            args += ["--client", client]
        if write_key:
            args += ["--write-key", write_key]
        if default:
            args += ["--default"]
        else:
            args += ["--rate", str(rate), "--burst", str(burst)]
        return self.run_bin(*args)

    def get_token(self, client_id, secret, scope=None, url=None, source=None, headers=None):
        """POST /oauth/token (client_credentials, HTTP Basic). Returns (status, headers, body).
        url: another auth role's token URL (default this sandbox's auth_port)."""
        pairs = [("grant_type", "client_credentials")]
        if scope is not None:
            pairs.append(("scope", scope))
        h = {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic_auth(client_id, secret)}
        h.update(headers or {})
        return http_request("POST", url or self.auth_url("/oauth/token"), form_encode(pairs), h,
                            timeout=30, source=source)

    def token(self, client_id, secret, scope=None, url=None):
        """An access token (str); raises RuntimeError when the token endpoint refuses."""
        st, _, body = self.get_token(client_id, secret, scope=scope, url=url)
        if st != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise RuntimeError("POST /oauth/token for %s: %s %r" % (client_id, st, body))
        return body["access_token"]

    def claims(self, client, scope="events:write", lifetime=300, **overrides):
        """A valid claim set for a token of client (dict from create_client) as the auth role
        issues it (defaults of EVENTOPS_AUTH_ISSUER/AUDIENCE unless set in the sandbox env).
        overrides replace claims; a value of None removes the claim."""
        now = int(time.time())
        c = {"iss": self.env.get("EVENTOPS_AUTH_ISSUER") or "eventops",
             "aud": self.env.get("EVENTOPS_AUTH_AUDIENCE") or "eventops",
             "sub": client["clientId"], "tenant": client["tenantId"], "scope": scope,
             "iat": now, "nbf": now, "exp": now + lifetime, "jti": rand_hex(16)}
        if scope is None:
            c.pop("scope")
        for k, v in overrides.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def sign(self, claims, kid, header=None):
        """A token signed with the sandbox key `kid` (header {"alg": "EdDSA", "typ": "at+jwt",
        "kid": kid} unless given)."""
        h = header if header is not None else {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
        return sign_eddsa(h, claims, self.key_path(kid))

    def check_clean_end(self, running=()):
        """Records a failure for each role of `running` that is not running, and for any
        sanitizer or libmicrohttpd panic line in any role's log."""
        for r in running:
            self.failures.check(r.running(), "%s is not running at the end" % r.name)
        bad = self.sanitizer_lines()
        self.failures.check(not bad, "sanitizer reports in the logs:\n" + "\n".join(bad[:20]))

    def sanitizer_lines(self):
        """Sanitizer / libmicrohttpd panic lines of every role's log, prefixed with its name."""
        return ["%s: %s" % (r.name, l) for r in self.roles for l in r.sanitizer_lines()]

    def dump_logs(self, lines=40):
        for r in self.roles:
            print("---- last %d lines of %s ----" % (lines, r.log_path))
            print(r.tail(lines))
        sys.stdout.flush()

    def report(self, summary):
        """Prints the summary and the failures; returns the process exit code (0 = pass)."""
        print(summary)
        if self.failures:
            print("FAILED: %d check(s) failed:" % len(self.failures.items))
            for f in self.failures.items:
                print("  - " + f)
            print("logs kept in %s" % self.dir)
            return 1
        print("PASSED")
        return 0

# ---------------------------------------------------------------------------------------------
# The stack's services, for tests that stop or kill them (test_outages, test_kafka_crash). Each
# such test restores what it disturbed in a `finally` and keeps a Watchdog running meanwhile.

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK_SH = os.path.join(ROOT, "scripts", "stack.sh")
STACK_DIR = os.path.realpath(os.environ.get("EVENTOPS_STACK_DIR") or os.path.join(ROOT, ".stack"))
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_DIR = os.path.join(STACK_DIR, "pg")
PG_DATA = os.path.join(PG_DIR, "data")
KAFKA_PIDFILE = os.path.join(STACK_DIR, "kafka", "kafka.pid")
KAFKA_PROPS = os.path.join(STACK_DIR, "kafka", "server.properties")


def pg_answers(timeout=5):
    """True when the stack's PostgreSQL runs `SELECT 1`."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="3")
    try:
        p = subprocess.run(["psql", "-X", "-At", "-d", os.environ["EVENTOPS_PG_DSN"], "-c",
                            "SELECT 1"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and p.stdout.strip() == b"1"


def pg_stop():
    """Stops the stack's PostgreSQL at once (as its `postgres` OS user when root)."""
    cmd = [os.path.join(PG_BIN, "pg_ctl"), "-D", PG_DATA, "stop", "-m", "immediate", "-w",
           "-t", "30"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, cwd=PG_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, text=True)
    if p.returncode != 0:
        raise RuntimeError("pg_ctl stop failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))


def stack_up(timeout=240):
    """`scripts/stack.sh up` (starts whatever is down; handles a stale postmaster.pid)."""
    try:
        p = subprocess.run([STACK_SH, "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        log("scripts/stack.sh up did not finish in %d s" % timeout)
        return False
    if p.returncode != 0:
        log("scripts/stack.sh up failed (%d): %s" % (p.returncode, p.stderr.strip()))
    return p.returncode == 0


def pg_restore():
    """Restarts PostgreSQL through scripts/stack.sh and waits until it answers (bounded)."""
    for attempt in (1, 2):
        stack_up()
        if wait_until(pg_answers, 30, interval=0.5):
            return True
        log("PostgreSQL does not answer after `scripts/stack.sh up` (attempt %d)" % attempt)
    return False


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kafka_pid():
    """The pid of the stack's broker (kafka.Kafka with the stack's server.properties)."""
    want = "kafka.Kafka " + KAFKA_PROPS
    try:
        with open(KAFKA_PIDFILE) as f:
            pid = int(f.read().strip())
        if want in _cmdline(pid):
            return pid
    except (OSError, ValueError):
        pass
    for d in os.listdir("/proc"):
        if d.isdigit() and want in _cmdline(int(d)):
            return int(d)
    raise RuntimeError("no running kafka.Kafka %s (scripts/stack.sh up?)" % KAFKA_PROPS)


def kafka_answers():
    """True when the broker returns metadata with every partition led (kcat -L)."""
    try:
        p = subprocess.run(["kcat", "-L", "-b", os.environ["EVENTOPS_KAFKA_BROKERS"], "-m", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and b"broker" in p.stdout and b"leader -1" not in p.stdout


def check_brokers_are_the_stacks():
    """The broker that gets SIGSTOPped must be the one EVENTOPS_KAFKA_BROKERS names."""
    port = os.environ["EVENTOPS_KAFKA_BROKERS"].split(",")[0].rsplit(":", 1)[-1]
    try:
        with open(KAFKA_PROPS) as f:
            props = f.read()
    except OSError as e:
        raise RuntimeError("cannot read %s: %s" % (KAFKA_PROPS, e)) from e
    if ":%s\n" % port not in props and ":%s," % port not in props:
        raise RuntimeError("EVENTOPS_KAFKA_BROKERS (%s) is not the stack's broker (%s)" %
                           (os.environ["EVENTOPS_KAFKA_BROKERS"], KAFKA_PROPS))


class Watchdog:
    """A detached process that restores the stack after `after` seconds unless cancelled, so
    that a killed test never leaves Kafka stopped or PostgreSQL down for the tests after it."""

    def __init__(self, after, kafka_pid=None):
        if kafka_pid is not None:
            code = ("import os,signal,time\ntime.sleep(%f)\n"
                    "try: os.kill(%d, signal.SIGCONT)\nexcept OSError: pass\n" % (after, kafka_pid))
        else:
            code = ("import subprocess,time\ntime.sleep(%f)\n"
                    "subprocess.run([%r, 'up'], stdout=subprocess.DEVNULL, "
                    "stderr=subprocess.DEVNULL)\n" % (after, STACK_SH))
        self.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def cancel(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def ready_status(url, timeout=5):
    """The HTTP status of GET url (e.g. a /readyz), None when nothing answered."""
    try:
        st, _, _ = http_get(url, timeout=timeout)
        return st
    except HttpError:
        return None


# ---------------------------------------------------------------------------------------------
# Requests that record their answer, and the storage check of the outage tests

class Sent:
    """Result of one request: status ("ERR" when no answer), headers, body, seconds taken."""

    def __init__(self, status, hdrs, body, elapsed, t_send, t_end, error=None):
        self.status, self.hdrs, self.body = status, hdrs, body
        self.elapsed, self.t_send, self.t_end, self.error = elapsed, t_send, t_end, error

    def __repr__(self):
        return "<%s %.2fs %s>" % (self.status, self.elapsed,
                                  self.error or json.dumps(self.body)[:160])


def send(url, events, key, timeout=30, conn=None):
    t0 = time.monotonic()
    try:
        st, hdrs, body = post_json(url, events, key=key, timeout=timeout, conn=conn)
        t1 = time.monotonic()
        return Sent(st, hdrs, body, t1 - t0, t0, t1)
    except HttpError as e:
        t1 = time.monotonic()
        return Sent("ERR", {}, None, t1 - t0, t0, t1, error=str(e))


def stored_count(sb):
    return int(sb.scalar("SELECT count(*) FROM event_ids"))


def rollup_mismatches(sb):
    """Rows (tenant, granularity, type, bucket, events, rollup) where a rollup of the sandbox's
    database differs from COUNT(*) of its events, at every granularity, per type and for all
    types (event_type ''); at most 20. Empty when the rollups are exact."""
    return sb.sql("""
        WITH g(granularity) AS (VALUES ('minute'), ('quarter'), ('hour'), ('day')),
        e AS (SELECT ev.tenant_id, g.granularity, coalesce(ev.event_type, '') AS event_type,
                     b.bucket_start, count(*) AS n
              FROM events ev CROSS JOIN g CROSS JOIN LATERAL (SELECT CASE g.granularity
                  WHEN 'quarter' THEN date_bin('15 minutes', ev.occurred_at,
                                               TIMESTAMPTZ '2000-01-01 00:00:00+00')
                  ELSE date_trunc(g.granularity, ev.occurred_at) END AS bucket_start) b
              GROUP BY GROUPING SETS ((ev.tenant_id, g.granularity, ev.event_type, b.bucket_start),
                                      (ev.tenant_id, g.granularity, b.bucket_start)))
        SELECT tenant_id, granularity, event_type, bucket_start, e.n, r.count
        FROM e FULL JOIN rollups r USING (tenant_id, granularity, event_type, bucket_start)
        WHERE e.n IS DISTINCT FROM r.count ORDER BY 1, 2, 3, 4 LIMIT 20""")


def check_storage(sb, F, accepted, sent, what):
    """accepted / sent: tenant_id -> set of messageIds that got a 202 / were ever sent. Every
    accepted event is stored exactly once, nothing else except events that were sent (a 503'd
    event may have reached Kafka), and the rollups equal COUNT(*)."""
    rows = sb.sql("SELECT tenant_id, message_id FROM events")
    dup = Counter(rows)
    dups = [k for k, n in dup.items() if n > 1]
    F.check(not dups, "%s: %d (tenant, messageId) stored more than once, e.g. %s" %
            (what, len(dups), dups[:5]))
    stored = defaultdict(set)
    for t, m in rows:
        stored[t].add(m)
    for t in set(accepted) | set(stored):
        acc, got, snt = accepted.get(t, set()), stored.get(t, set()), sent.get(t, set())
        F.check(acc <= got, "%s: tenant %s: accepted events not stored: %s" % (
            what, t, describe_set_diff("accepted", acc, "stored", got)))
        F.check(got <= snt, "%s: tenant %s: stored events that were never sent: %s" %
                (what, t, sorted(got - snt)[:10]))
        if got != acc:
            log("%s: tenant %s: %d stored events got no 202 (503'd and never resent)" %
                (what, t, len(got - acc)))
    n_ids = stored_count(sb)
    F.check(n_ids == len(rows), "%s: event_ids has %d rows, events %d" % (what, n_ids, len(rows)))
    mism = rollup_mismatches(sb)
    F.check(not mism, "%s: rollups differ from COUNT(*) of events (tenant, granularity, type, "
            "bucket, events, rollup): %s" % (what, mism))
    return len(rows)
