"""schemathesis hooks of the contract tests (loaded through SCHEMATHESIS_HOOKS by
run_contract.py).

Content-Encoding: the collector documents a `Content-Encoding` header (`gzip` or `identity`)
that says how the body is encoded. schemathesis sends the header it generates with a plain
JSON body, which no client would do and the collector rightly refuses (400 `invalid_gzip`);
OpenAPI cannot tie a body's encoding to a header. So when a request says `gzip`, its
generated body is sent gzip-compressed, as the header promises."""

import gzip
import json

import schemathesis
from schemathesis.core import NOT_SET


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    enc = next((v for k, v in headers.items() if k.lower() == "content-encoding"), None)
    if not isinstance(enc, str) or enc.strip().lower() != "gzip":
        return
    if case.body is NOT_SET or "data" in kwargs or "json" in kwargs:
        return
    if isinstance(case.body, (bytes, bytearray)):
        raw = bytes(case.body)
    elif isinstance(case.body, str) and not (case.media_type or "").endswith("json"):
        raw = case.body.encode()
    else:  # JSON, also under text/plain (the collector reads any body as JSON)
        raw = json.dumps(case.body).encode()
    kwargs["data"] = gzip.compress(raw)  # Content-Type still follows the case's media type
