"""Helpers shared by the query-role end-to-end tests (tests/e2e/test_query_*.py).

Not a test itself (CTest runs tests/e2e/test_*.py only). Standard library plus eotest.

  - times as integer microseconds since the Unix epoch: us_of / dt_of, fmt_utc / fmt_local
    (RFC 3339 text of an instant) and parse_rfc3339 (strict: text -> (us, offset seconds));
  - QueryClient: GET on the query role with a bearer token, parameters as (name, value) pairs,
    '+' and the like percent-encoded;
  - check_query_error: the 400 invalid_parameter shape of docs/query.md;
  - Redis: a private redis-server on a free loopback port (start, stop, pause with SIGSTOP);
  - parse_metrics / metric_sum: Prometheus text of /metrics;
  - query_token: a token with events:read minted with the sandbox's signing key.
"""

import os
import re
import time
import urllib.parse
from datetime import date, datetime, timedelta, timezone

import eotest

US = 1_000_000
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

QUERY_ENDPOINTS = ("/events/count", "/events/trend", "/events/unique-users",
                   "/events/breakdown", "/events/funnel", "/events/retention", "/events/types",
                   "/events")


def dt_of(us, tz=UTC):
    """The aware datetime of us (microseconds since the epoch) in tz."""
    d = EPOCH + timedelta(microseconds=us)
    return d if tz is UTC else d.astimezone(tz)


def us_of(d):
    """Microseconds since the epoch of an aware datetime."""
    return (d - EPOCH) // timedelta(microseconds=1)


def us_utc(y, mo, d, h=0, mi=0, s=0, us=0):
    return us_of(datetime(y, mo, d, h, mi, s, us, tzinfo=UTC))


def _frac(us, digits):
    f = us % US
    if digits is None:
        if f == 0:
            return ""
        t = "%06d" % f
        return "." + t.rstrip("0")
    if digits == 0:
        if f:
            raise ValueError("instant has a fraction; cannot format with 0 digits")
        return ""
    t = "%06d" % f
    if any(c != "0" for c in t[digits:]):
        raise ValueError("instant needs more than %d fraction digits" % digits)
    return "." + t[:digits]


def fmt_utc(us, digits=None):
    """RFC 3339 in UTC with Z; digits: fraction digits (None: as few as needed)."""
    d = dt_of(us)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + _frac(us, digits) + "Z"


def fmt_local(us, tz, digits=None):
    """RFC 3339 in tz's offset at that instant (e.g. 2026-03-08T03:00:00-04:00)."""
    d = dt_of(us, tz)
    off = d.utcoffset()
    secs = int(off.total_seconds())
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    if secs % 60:
        raise ValueError("offset with seconds")
    return (d.strftime("%Y-%m-%dT%H:%M:%S") + _frac(us, digits) +
            "%s%02d:%02d" % (sign, secs // 3600, secs // 60 % 60))


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(text):
    """(us, offset_seconds) of an RFC 3339 date-time; ValueError when it is not one (or has
    more than microsecond precision that is not zero)."""
    if not isinstance(text, str):
        raise ValueError("not a string: %r" % (text,))
    m = _RFC3339.fullmatch(text)
    if not m:
        raise ValueError("not RFC 3339: %r" % text)
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    digits = frac[1:]
    if len(digits) > 6 and int(digits[6:]) != 0:
        raise ValueError("sub-microsecond digits: %r" % text)
    f = int((digits + "000000")[:6]) if digits else 0
    z = m.group(8)
    if z in ("Z", "z"):
        off = 0
    else:
        oh, om = int(z[1:3]), int(z[4:6])
        if oh > 23 or om > 59:
            raise ValueError("bad offset: %r" % text)
        off = (oh * 3600 + om * 60) * (1 if z[0] == "+" else -1)
    naive = datetime(y, mo, d, h, mi, s, f)  # ValueError on out-of-range fields
    return us_of(naive.replace(tzinfo=UTC)) - off * US, off


def ceil_second(us):
    return -(-us // US) * US


def now_us():
    return us_of(datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# HTTP

def encode_params(params):
    """Query string of (name, value) pairs (order and repetition kept). Every byte outside
    [A-Za-z0-9_.~-:,] is percent-encoded, so '+' in an offset stays a plus."""
    return "&".join("%s=%s" % (urllib.parse.quote(str(k), safe=""),
                               urllib.parse.quote(str(v), safe=":,"))
                    for k, v in params)


class QueryClient:
    """GETs on one query role with one bearer token."""

    def __init__(self, base_url, token, timeout=60):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path, params=()):
        q = encode_params(params) if not isinstance(params, str) else params
        return self.base_url + path + ("?" + q if q else "")

    def get(self, path, params=(), token=None, headers=None):
        """(status, headers, body, url). params: (name, value) pairs or a raw query string."""
        url = self.url(path, params)
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        h.update(headers or {})
        st, hd, body = eotest.http_request("GET", url, None, h, timeout=self.timeout)
        return st, hd, body, url


def check_query_error(f, name, resp, field, status=400, code="invalid_parameter"):
    """Checks a refusal: status, {"error": {"code", "message", "field"}} with field as given
    (field=None: not checked; a tuple: any of them). Returns True when all held."""
    st, h, body = resp[0], resp[1], resp[2]
    n0 = len(f.items)
    if not f.check(st == status, "%s: status %s, expected %d (body %.300r)" %
                   (name, st, status, body)):
        return False
    err = body.get("error") if isinstance(body, dict) else None
    if f.check(isinstance(err, dict) and set(body) == {"error"},
               "%s: body %.300r, expected {\"error\": {...}}" % (name, body)):
        f.check(err.get("code") == code, "%s: error.code %r, expected %s" %
                (name, err.get("code"), code))
        f.check(isinstance(err.get("message"), str) and bool(err.get("message")),
                "%s: error.message missing or empty: %r" % (name, err))
        if field is not None:
            fields = field if isinstance(field, tuple) else (field,)
            f.check(err.get("field") in fields, "%s: error.field %r, expected %s" %
                    (name, err.get("field"), " or ".join(repr(x) for x in fields)))
    ct = h.get("content-type", "")
    f.check(ct.startswith("application/json"), "%s: Content-Type %r" % (name, ct))
    return len(f.items) == n0


# ---------------------------------------------------------------------------------------------
# tokens

def query_token(sb, client, kid, scope="events:read", lifetime=1800):
    """A token for client (dict of create_client) signed with the sandbox key kid."""
    return sb.sign(sb.claims(client, scope=scope, lifetime=lifetime), kid)


# ---------------------------------------------------------------------------------------------
# Redis

Redis = eotest.Redis  # the private redis-server lives in eotest


# ---------------------------------------------------------------------------------------------
# /metrics

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """[(name, {label: value}, float)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.fullmatch(line.strip())
        if not m:
            continue
        labels = {}
        if m.group(3):
            pos = 0
            s = m.group(3)
            while pos < len(s):
                lm = _LABEL.match(s, pos)
                if not lm:
                    break
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        try:
            out.append((m.group(1), labels, float(m.group(4))))
        except ValueError:
            pass
    return out


def fetch_metrics(port):
    st, h, body = eotest.http_request("GET", "http://127.0.0.1:%d/metrics" % port, timeout=10)
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return st, parse_metrics(text)


def metric_sum(samples, name, **labels):
    """Sum of the samples of name whose labels include labels; None when there is none."""
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    return sum(vals) if vals else None


def wait_ms(t0):
    return (time.monotonic() - t0) * 1000.0


__all__ = ["US", "UTC", "dt_of", "us_of", "us_utc", "fmt_utc", "fmt_local", "parse_rfc3339",
           "ceil_second", "now_us", "encode_params", "QueryClient", "check_query_error",
           "query_token", "Redis", "parse_metrics", "fetch_metrics", "metric_sum",
           "QUERY_ENDPOINTS", "date", "os"]
