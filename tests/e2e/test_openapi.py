#!/usr/bin/env python3
"""End-to-end test of the API description docs/openapi.json against the running roles.

  a. The document is OpenAPI 3.1 as far as can be checked here: no duplicate JSON keys, the
     structure of the root, path items, operations, parameters, request bodies, responses,
     headers, security requirements, tags and servers; every `$ref` resolves; every schema is
     a valid JSON Schema draft 2020-12 schema (Draft202012Validator.check_schema) whose regular
     expressions compile; every example validates against its schema. (When the pip package
     openapi-spec-validator is importable it is run as well.)
  b. GET /openapi.json on every role answers exactly the bytes of its cut of docs/openapi.json
     (role_document): the operations whose `x-eventops-role` names it, its servers and tag,
     every component; as JSON with an indent of 2.
  c. Every documented operation is exercised with real requests that produce as many of its
     documented status codes as practical (2xx and each error class: bad input, missing, wrong
     and under-scoped credentials, limits, rate limits, unavailable dependencies through extra
     instances with a dead PostgreSQL, Kafka or Redis, or no signing key; a collector
     stopping while an event waits for Kafka answers `shutting_down`). Each answer must
     have a status documented for its operation, a documented content type, a body valid
     against the documented schema, and every documented header (required ones present,
     values valid). Query parameters are probed at the limits their schemas give (minimum,
     maximum, one past each, every enum value, a bad value, unknown and repeated parameters):
     what the schema accepts must be answered 200, what it refuses 400 `invalid_parameter`
     naming the parameter. Answers to paths or methods a role does not serve are checked
     against the document's `x-eventops-any-request` (404, 405 with `Allow`).
  d. The routes the roles serve (read from the route tables in src/, plus GET /metrics and
     GET /openapi.json) are exactly the documented ones, role by role; at run time each role
     answers every documented path it serves (not 404/405), 405 with the right `Allow` for a
     method it does not serve on its paths, and 404 for the paths of other roles.

Roles: `eventops all` (collector, processor, auth, query and analytics, each on its own port)
and single roles for the outages. The test fails loudly, not skips, when the query role or
GET /openapi.json is missing (the other checks still run).

Needs the jsonschema package (Debian python3-jsonschema, scripts/deps.sh; 4.10 or newer), psql
and kcat. Settings come from the environment (`eval "$(scripts/stack.sh env)"`, EVENTOPS_BIN).
Exit code 0 = pass.
"""

import collections
import datetime as dt
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

jsonschema = eotest.jsonschema()
from jsonschema import Draft202012Validator, FormatChecker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.json")
SRC = os.path.join(ROOT, "src")

ROLES = ("collector", "processor", "auth", "query", "analytics")
QUERY_PATHS = ("/events/count", "/events/trend", "/events/unique-users", "/events/breakdown",
               "/events/funnel", "/events/retention", "/events/types", "/events")
DEFAULT_PORTS = {"collector": "8080", "processor": "8081", "auth": "8082", "query": "8083",
                 "analytics": "8084"}
ANALYTICS_PATHS = ("/analytics/rules", "/analytics/rules/{id}", "/analytics/rules/{id}/windows",
                   "/analytics/rules/{id}/backtest", "/analytics/summaries", "/analytics/stream")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPES = {"events:write", "events:read", "analytics:write"}
TIME_BUDGET_S = 900  # the whole test; every wait below is bounded too


# ---------------------------------------------------------------------------------------------
# JSON Schema helpers

RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                        r"([Zz]|[+-]\d{2}:\d{2})$")


def _date_time(value):
    if not isinstance(value, str):
        return True
    m = RFC3339_RE.match(value)
    if not m:
        raise ValueError("not RFC 3339")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    dt.datetime(y, mo, d, h, mi, min(s, 59))  # raises on a day or month out of range
    if h > 23 or mi > 59 or s > 60:
        raise ValueError("time out of range")
    return True


def _uri(value):
    if not isinstance(value, str):
        return True
    u = urllib.parse.urlsplit(value)
    if not u.scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", u.scheme):
        raise ValueError("no scheme")
    return True


# Only these two formats are used; both are checked the same way by every jsonschema version
# (4.10 checks date-time only when rfc3339-validator is installed).
FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time", raises=ValueError)(_date_time)
FORMATS.checks("uri", raises=ValueError)(_uri)
KNOWN_FORMATS = {"date-time", "uri"}


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError("duplicate keys %s" % dups)
    return dict(pairs)


def pointer_escape(s):
    return s.replace("~", "~0").replace("/", "~1")


def resolve_pointer(doc, ref):
    """The value a local reference "#/a/b" points at; KeyError when it does not resolve."""
    if not ref.startswith("#"):
        raise KeyError("not a local reference: %s" % ref)
    node = doc
    frag = urllib.parse.unquote(ref[1:])
    if frag == "":
        return node
    if not frag.startswith("/"):
        raise KeyError("not a JSON pointer: %s" % ref)
    for part in frag[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(ref)
    return node


class Spec:
    """The document with validators for its schemas, looked up by JSON pointer."""

    def __init__(self, doc):
        self.doc = doc
        self._validators = {}
        self._ids = None

    def deref(self, obj):
        """Follows $ref (of a response, parameter, header, ...) until a non-reference."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 10:
            obj = resolve_pointer(self.doc, obj["$ref"])
            seen += 1
        return obj

    def validator(self, pointer):
        """A validator of the schema at pointer. The root schema is the whole document plus
        `$ref` to the pointer, so references inside the schema resolve against the document
        (no resolver needed, the same in every jsonschema version)."""
        v = self._validators.get(pointer)
        if v is None:
            root = dict(self.doc)
            root["$ref"] = pointer
            v = Draft202012Validator(root, format_checker=FORMATS)
            self._validators[pointer] = v
        return v

    def errors(self, pointer, instance, limit=5):
        out = []
        try:
            for e in self.validator(pointer).iter_errors(instance):
                out.append("%s at %s" % (e.message[:300],
                                         "/".join(str(p) for p in e.absolute_path) or "(root)"))
                if len(out) >= limit:
                    break
        except Exception as e:  # noqa: BLE001 - an unresolvable $ref and the like
            out.append("the schema at %s cannot be used: %s: %s" %
                       (pointer, type(e).__name__, str(e)[:200]))
        return out

    def pointer_of(self, obj):
        """Pointer of an object held in the document (found by identity)."""
        if self._ids is None:
            self._ids = {id(node): ptr(path) for path, node in walk(self.doc)
                         if isinstance(node, dict)}
        return self._ids.get(id(obj))

    def operation(self, method, path):
        item = self.doc["paths"].get(path)
        if not isinstance(item, dict):
            return None
        return item.get(method.lower())

    def served(self, role):
        """{(METHOD, path)} the document says role serves."""
        out = set()
        for path, item in self.doc["paths"].items():
            for m in HTTP_METHODS:
                op = item.get(m)
                if op and role in op.get("x-eventops-role", []):
                    out.add((m.upper(), path))
        return out


# ---------------------------------------------------------------------------------------------
# a. the document

def walk(node, path=()):
    """Yields (path tuple, value) of every dict and list in node, depth first."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def ptr(path):
    return "#/" + "/".join(pointer_escape(str(p)) for p in path)


def schema_locations(doc):
    """Pointers of every schema object the document holds outside other schemas: component
    schemas and the `schema` of parameters, headers and media types."""
    out = []
    for name in doc.get("components", {}).get("schemas", {}):
        out.append(("components", "schemas", name))
    for path, node in walk(doc):
        if path[:2] == ("components", "schemas"):
            continue
        if isinstance(node, dict) and "schema" in node and isinstance(node["schema"], dict) \
                and ("in" in node or "content" not in node):
            # a parameter, a header or a media type object
            if any(p == "examples" for p in path):
                continue
            out.append(path + ("schema",))
    return out


def check_schema_object(f, spec, where, schema):
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        f.fail("%s is not a valid draft 2020-12 schema: %s" % (where, e.message[:300]))
    for path, node in walk(schema):
        if not isinstance(node, dict):
            continue
        # keywords of the JSON Schema vocabularies that take a regular expression
        pat = node.get("pattern")
        if isinstance(pat, str) and path[-1:] != ("properties",):
            try:
                re.compile(pat)
            except re.error as e:
                f.fail("%s%s: pattern %r does not compile: %s" %
                       (where, "/" + "/".join(map(str, path)) if path else "", pat, e))
        if path[-1:] == ("properties",):
            continue  # property names, not keywords
        fmt = node.get("format")
        if isinstance(fmt, str):
            f.check(fmt in KNOWN_FORMATS, "%s: format %r is not one this test checks (%s)" %
                    (where, fmt, sorted(KNOWN_FORMATS)))
        f.check("nullable" not in node, "%s: `nullable` is OpenAPI 3.0; 3.1 uses type arrays" %
                where)
        f.check("example" not in node, "%s: schema keyword `example` is deprecated in 3.1; "
                "use `examples`" % where)


def check_document(f, spec, raw):
    doc = spec.doc
    f.check(doc.get("openapi") == "3.1.0", "openapi is %r, expected 3.1.0" % doc.get("openapi"))
    info = doc.get("info")
    if f.check(isinstance(info, dict), "info missing"):
        f.check(isinstance(info.get("title"), str) and info["title"] != "", "info.title")
        f.check(isinstance(info.get("version"), str) and info["version"] != "", "info.version")
    f.check(set(doc) <= {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
                         "components", "security", "tags", "externalDocs"} |
            {k for k in doc if k.startswith("x-")},
            "unknown root members: %s" % sorted(set(doc) - {
                "openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
                "components", "security", "tags", "externalDocs"}))
    f.check(doc.get("jsonSchemaDialect") in (None, "https://json-schema.org/draft/2020-12/schema",
                                             "https://spec.openapis.org/oas/3.1/dialect/base"),
            "jsonSchemaDialect %r" % doc.get("jsonSchemaDialect"))

    # every $ref resolves
    nrefs = 0
    for path, node in walk(doc):
        if isinstance(node, dict) and "$ref" in node and isinstance(node["$ref"], str):
            nrefs += 1
            try:
                resolve_pointer(doc, node["$ref"])
            except (KeyError, ValueError, IndexError):
                f.fail("%s: $ref %s does not resolve" % (ptr(path), node["$ref"]))

    # servers: one per role, at its default port
    servers = doc.get("servers") or []
    ports = sorted(s.get("variables", {}).get("port", {}).get("default", "") for s in servers)
    f.check(ports == sorted(DEFAULT_PORTS.values()),
            "root servers have default ports %s, expected %s" %
            (ports, sorted(DEFAULT_PORTS.values())))
    for s in servers:
        check_server(f, "servers", s)
    tags = [t.get("name") for t in doc.get("tags", [])]
    f.check(sorted(tags) == sorted(ROLES), "tags %s, expected one per role %s" % (tags, ROLES))
    schemes = doc.get("components", {}).get("securitySchemes", {})
    for name, s in schemes.items():
        f.check(s.get("type") in ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"),
                "securityScheme %s: type %r" % (name, s.get("type")))
        if s.get("type") == "http":
            f.check(isinstance(s.get("scheme"), str), "securityScheme %s: no scheme" % name)

    # path items and operations
    op_ids = collections.Counter()
    for path, item in doc.get("paths", {}).items():
        f.check(path.startswith("/"), "path %r does not start with /" % path)
        f.check(set(item) <= set(HTTP_METHODS) | {"summary", "description", "servers",
                                                   "parameters", "$ref"},
                "path %s has unknown members %s" % (path, sorted(set(item) - set(HTTP_METHODS))))
        for m in HTTP_METHODS:
            op = item.get(m)
            if op is None:
                continue
            name = "%s %s" % (m.upper(), path)
            check_operation(f, spec, name, path, m, op, schemes, tags)
            op_ids[op.get("operationId")] += 1
    dup = [k for k, n in op_ids.items() if n > 1 or k is None]
    f.check(not dup, "operationIds missing or repeated: %s" % dup)

    # components: names and response objects
    for kind, objs in doc.get("components", {}).items():
        for name in objs:
            f.check(re.fullmatch(r"[a-zA-Z0-9.\-_]+", name) is not None,
                    "components/%s/%s: name not allowed by OpenAPI" % (kind, name))
    for name, r in doc.get("components", {}).get("responses", {}).items():
        check_response_object(f, spec, "components/responses/" + name, r)
    for name, h in doc.get("components", {}).get("headers", {}).items():
        check_header_object(f, "components/headers/" + name, h)
    for name, p in doc.get("components", {}).get("parameters", {}).items():
        check_parameter_object(f, "components/parameters/" + name, p)
    for key, r in (doc.get("x-eventops-any-request") or {}).items():
        f.check(re.fullmatch(r"[1-5][0-9][0-9]", key) is not None and "$ref" in r,
                "x-eventops-any-request %s" % key)

    # every schema is a valid draft 2020-12 schema; every example validates
    locs = schema_locations(doc)
    for loc in locs:
        check_schema_object(f, spec, ptr(loc), resolve_pointer(doc, ptr(loc)))
    nex = check_examples(f, spec)

    extra = "not installed"
    try:
        from openapi_spec_validator import validate as osv_validate
    except Exception:  # noqa: BLE001 - optional
        osv_validate = None
    if osv_validate is not None:
        try:
            osv_validate(json.loads(raw))
            extra = "passed"
        except Exception as e:  # noqa: BLE001
            f.fail("openapi-spec-validator: %s" % str(e)[:500])
            extra = "FAILED"
    log("a. document: %d bytes, %d paths, %d operations, %d $refs, %d schemas checked against "
        "draft 2020-12 (jsonschema %s), %d examples valid; openapi-spec-validator: %s" %
        (len(raw), len(doc.get("paths", {})), sum(op_ids.values()), nrefs, len(locs),
         jsonschema_version(), nex, extra))


def jsonschema_version():
    try:
        from importlib.metadata import version
        return version("jsonschema")
    except Exception:  # noqa: BLE001
        return getattr(jsonschema, "__version__", "?")


def check_server(f, where, s):
    url = s.get("url", "")
    f.check(isinstance(url, str) and url != "", "%s: server without url" % where)
    for var in re.findall(r"\{([^}]+)\}", url):
        v = s.get("variables", {}).get(var)
        f.check(isinstance(v, dict) and isinstance(v.get("default"), str),
                "%s: server variable %s has no default" % (where, var))


def check_parameter_object(f, where, p):
    if "$ref" in p:
        return
    f.check(isinstance(p.get("name"), str) and p.get("in") in ("query", "header", "path",
                                                               "cookie"),
            "%s: parameter needs name and in (query, header, path, cookie): %r" % (where, p))
    if p.get("in") == "path":
        f.check(p.get("required") is True, "%s: a path parameter must be required" % where)
    f.check(("schema" in p) != ("content" in p), "%s: parameter needs schema or content" % where)
    if "style" in p:
        allowed = {"query": {"form", "spaceDelimited", "pipeDelimited", "deepObject"},
                   "header": {"simple"}, "path": {"matrix", "label", "simple"},
                   "cookie": {"form"}}[p.get("in", "query")]
        f.check(p["style"] in allowed, "%s: style %s not allowed in %s" %
                (where, p["style"], p.get("in")))


def check_header_object(f, where, h):
    if "$ref" in h:
        return
    f.check("name" not in h and "in" not in h, "%s: a header object has no name/in" % where)
    f.check(("schema" in h) != ("content" in h), "%s: header needs schema or content" % where)
    f.check(isinstance(h.get("required", False), bool), "%s: required not a boolean" % where)


def check_response_object(f, spec, where, r):
    if "$ref" in r:
        return
    f.check(isinstance(r.get("description"), str), "%s: response without description" % where)
    for hname, h in (r.get("headers") or {}).items():
        f.check(hname.lower() != "content-type",
                "%s: a Content-Type header is ignored by OpenAPI" % where)
        check_header_object(f, "%s headers/%s" % (where, hname), spec.deref(h))
    for ctype, media in (r.get("content") or {}).items():
        f.check(re.fullmatch(r"[a-z*]+/[a-z0-9.+*-]+(; ?[a-z0-9-]+=[A-Za-z0-9.-]+)*", ctype)
                is not None, "%s: media type %r" % (where, ctype))
        f.check("schema" in media, "%s %s: no schema" % (where, ctype))
        f.check(not ("example" in media and "examples" in media),
                "%s %s: example and examples are exclusive" % (where, ctype))


def check_operation(f, spec, name, path, method, op, schemes, tags):
    f.check(isinstance(op.get("operationId"), str), "%s: no operationId" % name)
    f.check(isinstance(op.get("summary"), str), "%s: no summary" % name)
    roles = op.get("x-eventops-role")
    if f.check(isinstance(roles, list) and roles and set(roles) <= set(ROLES),
               "%s: x-eventops-role %r must list roles of %s" % (name, roles, ROLES)):
        f.check(sorted(op.get("tags", [])) == sorted(roles),
                "%s: tags %s differ from x-eventops-role %s" % (name, op.get("tags"), roles))
        ports = sorted(s.get("variables", {}).get("port", {}).get("default")
                       for s in op.get("servers", []))
        f.check(ports == sorted(DEFAULT_PORTS[r] for r in roles),
                "%s: servers have default ports %s, its roles %s" % (name, ports, roles))
    for t in op.get("tags", []):
        f.check(t in tags, "%s: tag %s not declared" % (name, t))
    for s in op.get("servers", []):
        check_server(f, name, s)
    seen = set()
    for p in op.get("parameters", []):
        pp = spec.deref(p)
        check_parameter_object(f, name, pp)
        key = (pp.get("name"), pp.get("in"))
        f.check(key not in seen, "%s: parameter %s repeated" % (name, key))
        seen.add(key)
        if pp.get("in") == "header":
            f.check(pp.get("name", "").lower() not in ("accept", "content-type",
                                                       "authorization"),
                    "%s: header parameter %s is ignored by OpenAPI" % (name, pp.get("name")))
    for tmpl in re.findall(r"\{([^}]+)\}", path):
        f.check((tmpl, "path") in seen, "%s: path parameter %s undeclared" % (name, tmpl))
    body = op.get("requestBody")
    if body is not None:
        body = spec.deref(body)
        f.check(isinstance(body.get("content"), dict) and body["content"],
                "%s: requestBody without content" % name)
        f.check(method in ("post", "put", "patch"), "%s: a request body on %s" % (name, method))
    sec = op.get("security")
    if f.check(isinstance(sec, list), "%s: no security (say [] for none)" % name):
        for req in sec:
            for sname, scopes in req.items():
                f.check(sname in schemes, "%s: security scheme %s undeclared" % (name, sname))
                f.check(set(scopes) <= SCOPES, "%s: unknown scopes %s" % (name, scopes))
    resps = op.get("responses")
    if f.check(isinstance(resps, dict) and resps, "%s: no responses" % name):
        for code, r in resps.items():
            f.check(re.fullmatch(r"[1-5](?:[0-9][0-9]|XX)|default", code) is not None,
                    "%s: response key %r" % (name, code))
            check_response_object(f, spec, "%s %s" % (name, code), spec.deref(r))
        f.check(any(c.startswith("2") for c in resps), "%s: no 2xx response" % name)


def check_examples(f, spec):
    """Every example (media types, parameters, schema `examples`) validates against its
    schema. Returns how many were checked."""
    doc = spec.doc
    n = 0
    for path, node in walk(doc):
        if not isinstance(node, dict):
            continue
        if "schema" in node and isinstance(node["schema"], dict) and \
                ("example" in node or "examples" in node) and "examples" not in path:
            sp = ptr(path + ("schema",))
            values = []
            if "example" in node:
                values.append(("example", node["example"]))
            ex = node.get("examples")
            if isinstance(ex, dict):
                for k, v in ex.items():
                    v = spec.deref(v)
                    if isinstance(v, dict) and "value" in v:
                        values.append(("examples/" + k, v["value"]))
            elif isinstance(ex, list):  # a parameter's schema examples are in the schema
                pass
            for label, value in values:
                n += 1
                style_array = node.get("in") == "query" and \
                    spec.deref(node["schema"]).get("type") == "array"
                if style_array and isinstance(value, str):
                    value = value.split(",")
                errs = spec.errors(sp, value)
                f.check(not errs, "%s %s does not validate: %s" % (ptr(path), label, errs))
    # `examples` keywords inside schemas
    for loc in schema_locations(doc):
        for path, node in walk(resolve_pointer(doc, ptr(loc))):
            if isinstance(node, dict) and isinstance(node.get("examples"), list) and \
                    (not path or path[-1] != "properties"):
                sp = ptr(loc + path)
                for i, value in enumerate(node["examples"]):
                    n += 1
                    errs = spec.errors(sp, value)
                    f.check(not errs, "%s examples[%d] does not validate: %s" % (sp, i, errs))
    return n


# ---------------------------------------------------------------------------------------------
# d. routes in the source

ROUTE_RE = re.compile(r'\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"')
ROUTE_TABLE_RE = re.compile(r"eo_http_route_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\};", re.S)
DESIGNATED_RE = re.compile(r'\.method\s*=\s*"([A-Z]+)"[^}]*?\.path\s*=\s*"(/[^"]*)"', re.S)


def source_routes():
    """{role: {(METHOD, path)}} from the route tables of src/<role>/*.c, plus the paths the
    HTTP layer (src/core/http.c) answers itself for every role."""
    out = {r: set() for r in ROLES}
    for role in ROLES:
        d = os.path.join(SRC, role)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".c"):
                continue
            with open(os.path.join(d, fn), encoding="utf-8") as fh:
                text = fh.read()
            for table in ROUTE_TABLE_RE.findall(text):
                out[role] |= set(ROUTE_RE.findall(table)) | set(DESIGNATED_RE.findall(table))
    with open(os.path.join(SRC, "core", "http.c"), encoding="utf-8") as fh:
        http_c = fh.read()
    generic = set()
    for path in ("/metrics", "/openapi.json"):
        # a path http.c compares the URL with, or a route it adds to every role's table
        if re.search(r'strcmp\(\s*url\s*,\s*"%s"\s*\)' % re.escape(path), http_c) or \
                re.search(r'\{\s*"GET"\s*,\s*"%s"' % re.escape(path), http_c):
            generic.add(("GET", path))
    for role in ROLES:
        if out[role]:  # a role that exists
            out[role] |= generic
    return out


def check_source_routes(f, spec):
    src = source_routes()
    f.check(bool(src["query"]), "the query role is missing: no route table in src/query/")
    for role in ROLES:
        doc_routes = spec.served(role)
        if not src[role]:
            f.fail("role %s: no route table found in src/%s/" % (role, role))
            continue
        f.check(("GET", "/openapi.json") in src[role],
                "role %s does not serve GET /openapi.json (neither src/core/http.c nor its "
                "route table has it)" % role)
        f.check(src[role] == doc_routes, "role %s: routes in the source and in the document "
                "differ: %s" % (role, eotest.describe_set_diff("source", src[role],
                                                                "document", doc_routes)))
    log("d. source route tables: %s" % ", ".join("%s %d" % (r, len(src[r])) for r in ROLES))
    return src


# ---------------------------------------------------------------------------------------------
# c. checking real answers

class Checker:
    """Validates real answers against the document and records which statuses each operation
    produced."""

    def __init__(self, f, spec):
        self.f = f
        self.spec = spec
        self.seen = collections.defaultdict(set)  # (METHOD, path) -> {status}
        self.generic_seen = collections.Counter()  # "404"/"405" -> count
        self.count = 0

    def operation_of(self, role, method, path):
        """The operation role serves for METHOD path, or None (then a generic answer)."""
        op = self.spec.operation(method, path)
        if op is not None and role in op.get("x-eventops-role", []):
            return op
        return None

    def check(self, name, role, method, url_or_path, resp, *, expect=None, code=None,
              field=None):
        """Checks one answer (status, headers, parsed body) of role to METHOD path. expect: the
        status (or statuses) the test caused; code/field: expected error code and field.
        Returns the parsed body."""
        f = self.f
        st, hdrs, body = resp
        self.count += 1
        path = urllib.parse.urlsplit(url_or_path).path
        label = "%s [%s %s on %s -> %s]" % (name, method, path, role, st)
        if expect is not None:
            exp = expect if isinstance(expect, (tuple, list, set)) else (expect,)
            f.check(st in exp, "%s: status %s, expected %s (body %.300r)" %
                    (label, st, "/".join(map(str, exp)), body))
        op = self.operation_of(role, method, path)
        if op is None:
            served_methods = sorted(m for m, p in self.spec.served(role) if p == path)
            if served_methods:
                want, key = 405, "405"
                allow = hdrs.get("allow", "")
                f.check(sorted(a.strip() for a in allow.split(",") if a.strip()) ==
                        served_methods, "%s: Allow %r, the document says %s serves %s" %
                        (label, allow, role, ", ".join(served_methods)))
            else:
                want, key = 404, "404"
            generic = self.spec.doc.get("x-eventops-any-request", {})
            if st in (431, 503):
                key = str(st)
            elif not f.check(st == want, "%s: a %s to %s is not documented for role %s: "
                             "expected %d, got %s" % (label, method, path, role, want, st)):
                return body
            self.generic_seen[key] += 1
            r = generic.get(key)
            if not f.check(r is not None, "%s: no x-eventops-any-request %s" % (label, key)):
                return body
            self._validate(label, r, resp, method)
            self._code(label, body, code, field)
            return body
        self.seen[(method, path)].add(st)
        responses = op.get("responses", {})
        r = responses.get(str(st)) or responses.get("%dXX" % (st // 100)) or \
            responses.get("default")
        if not f.check(r is not None, "%s: status %s is not documented for %s %s (documented: "
                       "%s; body %.300r)" % (label, st, method, path, sorted(responses), body)):
            return body
        self._validate(label, r, resp, method)
        self._code(label, body, code, field)
        return body

    def _code(self, label, body, code, field):
        if code is None and field is None:
            return
        err = body.get("error") if isinstance(body, dict) else None
        got = err.get("code") if isinstance(err, dict) else err
        if code is not None:
            codes = code if isinstance(code, (tuple, list, set)) else (code,)
            self.f.check(got in codes, "%s: error code %r, expected %s" %
                         (label, got, "/".join(codes)))
        if field is not None:
            fields = field if isinstance(field, (tuple, list, set)) else (field,)
            got_field = err.get("field") if isinstance(err, dict) else None
            self.f.check(got_field in fields, "%s: error field %r, expected %s (%r)" %
                         (label, got_field, "/".join(fields), body))

    def _validate(self, label, r_ref, resp, method):
        f = self.f
        st, hdrs, body = resp
        r = self.spec.deref(r_ref)
        # headers
        for hname, h_ref in (r.get("headers") or {}).items():
            h = self.spec.deref(h_ref)
            value = hdrs.get(hname.lower())
            if value is None:
                f.check(not h.get("required"), "%s: documented header %s is missing" %
                        (label, hname))
                continue
            schema = h.get("schema", {})
            resolved = self.spec.deref(schema)
            inst = value
            if resolved.get("type") == "integer":
                try:
                    inst = int(value)
                except ValueError:
                    f.fail("%s: header %s %r is not an integer" % (label, hname, value))
                    continue
            hp = self._header_pointer(h_ref, r_ref, hname)
            errs = self.spec.errors(hp, inst) if hp else []
            f.check(not errs, "%s: header %s %r: %s" % (label, hname, value, errs))
        # body
        content = r.get("content")
        if method == "HEAD":
            return
        if not content:
            f.check(body in (None, b""), "%s: a body where none is documented: %.200r" %
                    (label, body))
            return
        ctype = hdrs.get("content-type", "")
        key = None
        for k in content:
            if k.replace(" ", "").lower() == ctype.replace(" ", "").lower():
                key = k
        if key is None:
            base = ctype.split(";")[0].strip().lower()
            for k in content:
                if k.split(";")[0].strip().lower() == base and ";" not in k:
                    key = k
        if not f.check(key is not None, "%s: Content-Type %r is not documented (%s)" %
                       (label, ctype, sorted(content))):
            return
        sp = self._media_pointer(r_ref, key)
        inst = body
        if key.startswith("text/event-stream"):
            # an event stream's schema is that of one event as a client reads it (the reading
            # schemathesis and OpenAPI 3.2's itemSchema have): each event is checked
            for ev in sse_events(body):
                errs = self.spec.errors(sp, ev)
                f.check(not errs, "%s: event does not match %s: %s; event %.400r" %
                        (label, sp, errs, ev))
            return
        if key.startswith("application/json"):
            if not f.check(not isinstance(body, (bytes, bytearray)) and body is not None,
                           "%s: the body is not JSON: %.200r" % (label, body)):
                return
        else:
            inst = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) \
                else json.dumps(body)
        errs = self.spec.errors(sp, inst)
        f.check(not errs, "%s: body does not match %s: %s; body %.400r" %
                (label, sp, errs, body))

    # Pointers: a response reached through $ref is validated at its component's pointer.
    def _resp_pointer(self, r_ref):
        last, obj = None, r_ref
        while isinstance(obj, dict) and "$ref" in obj:
            last = obj["$ref"]
            obj = resolve_pointer(self.spec.doc, last)
        return last if last is not None else self.spec.pointer_of(obj)

    def _media_pointer(self, r_ref, key):
        base = self._resp_pointer(r_ref)
        return "%s/content/%s/schema" % (base, pointer_escape(key))

    def _header_pointer(self, h_ref, r_ref, hname):
        if isinstance(h_ref, dict) and "$ref" in h_ref:
            return h_ref["$ref"] + "/schema"
        base = self._resp_pointer(r_ref)
        return "%s/headers/%s/schema" % (base, pointer_escape(hname))


def request(method, url, body=None, headers=None, timeout=30):
    try:
        return eotest.http_request(method, url, body, headers or {}, timeout=timeout)
    except eotest.HttpError as e:
        return (0, {}, str(e))


def sse_events(body):
    """The events of an event stream's bytes as a client reads them: dicts of event, data, id
    and retry (the WHATWG parsing; blocks without data are not events)."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else ""
    events, cur, data = [], {}, []
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                ev = {"data": "\n".join(data), "event": cur.get("event") or "message"}
                ev.update({k: cur[k] for k in ("id", "retry") if k in cur})
                events.append(ev)
            cur, data = {}, []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field in ("event", "id"):
                cur[field] = value
            elif field == "retry" and value.isdigit():
                cur[field] = int(value)
    return events


def stream_request(url, headers, until, timeout=10):
    """GET of an event stream read as it comes until until(body bytes) is true or timeout
    seconds pass, then closed: (status, headers, body bytes); the JSON body of an answer that
    is not a stream."""
    import http.client
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
        resp = conn.getresponse()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if not hdrs.get("content-type", "").startswith("text/event-stream"):
            raw = resp.read()
            try:
                return resp.status, hdrs, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, hdrs, raw
        body = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(body):
            chunk = resp.read1(65536)
            if not chunk:
                break
            body += chunk
        return resp.status, hdrs, body
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# the test

def binary_has_role(binary, role):
    p = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return re.search(r"(?m)^\s+%s\s" % re.escape(role), p.stdout.decode(errors="replace")) \
        is not None


def bad_pg_dsn(dsn):
    port = eotest.free_port()
    if re.search(r"\bport\s*=\s*\d+", dsn):
        return re.sub(r"\bport\s*=\s*\d+", "port=%d" % port, dsn) + " connect_timeout=2"
    return dsn + " port=%d connect_timeout=2" % port


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main():
    t_start = time.monotonic()
    with open(DOC_PATH, "rb") as fh:
        raw = fh.read()
    try:
        doc = json.loads(raw, object_pairs_hook=no_duplicate_keys)
    except ValueError as e:
        print("docs/openapi.json is not valid JSON: %s" % e)
        print("FAILED")
        return 1
    spec = Spec(doc)
    binary = eotest.env_required("EVENTOPS_BIN")
    has_query = binary_has_role(binary, "query")

    with eotest.Sandbox("openapi") as sb:
        f = sb.failures
        check_document(f, spec, raw)
        check_source_routes(f, spec)
        f.check(has_query, "the query role is missing: `%s --help` lists no `query` command" %
                binary)
        ck = Checker(f, spec)

        sb.create_signing_key()
        tenant = sb.create_tenant("openapi")
        wk = tenant["writeKey"]
        both = sb.create_client("openapi", ["events:write", "events:read"], name="both")
        writer = sb.create_client("openapi", ["events:write"], name="writer")
        reader = sb.create_client("openapi", ["events:read"], name="reader")
        slow_ingest = sb.create_client("openapi", ["events:write"], rate=1, burst=1,
                                       name="slow-ingest")
        analyst = sb.create_client("openapi", ["events:read", "analytics:write"],
                                   name="analyst")
        slow_query = sb.create_client("openapi", ["events:read"], rate=1, burst=1,
                                      name="slow-query")

        if has_query:
            main_roles = [sb.role("all")]
        else:
            main_roles = [sb.collector(), sb.processor(), sb.auth()]
        for r in main_roles:
            r.start()
        for r in main_roles:
            r.wait_ready(60)
        ports = {"collector": sb.collector_port, "processor": sb.processor_port,
                 "auth": sb.auth_port, "query": sb.query_port, "analytics": sb.analytics_port}
        live = [r for r in ROLES if r not in ("query", "analytics") or has_query]

        def url(role, path, port=None):
            return "http://127.0.0.1:%d%s" % (port or ports[role], path)

        w_tok = sb.token(writer["clientId"], writer["clientSecret"])
        r_tok = sb.token(reader["clientId"], reader["clientSecret"])
        b_tok = sb.token(both["clientId"], both["clientSecret"])
        a_tok = sb.token(analyst["clientId"], analyst["clientSecret"])

        # ---- b. GET /openapi.json on every role
        for role in live:
            resp = request("GET", url(role, "/openapi.json"))
            st, h, body = resp
            got = raw_get(url(role, "/openapi.json"))
            want_doc = role_document(doc, role)
            want = json.dumps(want_doc, indent=2, ensure_ascii=False).encode()
            if f.check(st == 200, "GET /openapi.json on %s: %s %.200r" % (role, st, body)):
                f.check(got == want, "GET /openapi.json on %s: %d bytes that differ from "
                        "its cut of docs/openapi.json (%d bytes)%s" % (
                            role, len(got or b""), len(want),
                            "; the JSON is equal" if body == want_doc else "; the JSON differs"))
            ck.check("openapi.json", role, "GET", "/openapi.json", resp, expect=200)
        log("b. GET /openapi.json on %s" % ", ".join(live))

        # ---- common operations on every role
        big = {"X-Pad": "p" * 17000}
        for role in live:
            for path in ("/healthz", "/readyz", "/metrics"):
                ck.check(path, role, "GET", path, request("GET", url(role, path)), expect=200)
            ck.check("request id", role, "GET", "/healthz",
                     request("GET", url(role, "/healthz"), headers={"X-Request-Id": "oa-1.2:3"}),
                     expect=200)
            ck.check("huge header", role, "GET", "/healthz",
                     request("GET", url(role, "/healthz"), headers=big), expect=431,
                     code="headers_too_large")
            ck.check("unknown path", role, "GET", "/no/such/path",
                     request("GET", url(role, "/no/such/path?x=1")), expect=404,
                     code="not_found")
            ck.check("HEAD", role, "HEAD", "/healthz", request("HEAD", url(role, "/healthz")),
                     expect=405)
            ck.check("DELETE /metrics", role, "DELETE", "/metrics",
                     request("DELETE", url(role, "/metrics")), expect=405,
                     code="method_not_allowed")
        log("c. /healthz, /readyz, /metrics, 404, 405, 431 on %s" % ", ".join(live))

        # ---- d. at run time: every documented route of every role
        for role in live:
            served = spec.served(role)
            for path, item in doc["paths"].items():
                methods = [m.upper() for m in HTTP_METHODS if m in item]
                for m in methods + ["OPTIONS"]:
                    resp = request(m, url(role, path), b"" if m == "POST" else None,
                                   {"Content-Type": "application/json"} if m == "POST" else {})
                    st = resp[0]
                    if (m, path) in served:
                        f.check(st not in (0, 404, 405), "%s %s on %s: %s, but the document "
                                "says %s serves it" % (m, path, role, st, role))
                    ck.check("route", role, m, path, resp)
        log("d. every documented path answered by each role as documented (%d requests so far)"
            % ck.count)
        for role in live:
            for m, path in sorted(spec.served(role)):
                ck.check("huge header", role, m, path,
                         request(m, url(role, path), b"{}" if m == "POST" else None,
                                 dict(big, **({"Content-Type": "application/json"}
                                              if m == "POST" else {}))),
                         expect=431, code="headers_too_large")
        log("c. 431 from every operation of every role")

        # ---- collector
        c = lambda p: url("collector", p)  # noqa: E731
        stamp = eotest.rand_hex(6)
        ev = lambda i, **kw: dict({"eventType": "oa_test", "userId": "u-%d" % i,  # noqa: E731
                                    "messageId": "oa-%s-%d" % (stamp, i)}, **kw)
        coll = exercise_collector(ck, spec, c, ev, wk, w_tok, r_tok, b_tok, sb, slow_ingest)
        log("c. collector: %d requests, statuses %s" % (coll, sorted(
            ck.seen[("POST", "/events")] | ck.seen[("POST", "/events/batch")])))
        comp = exercise_compat(ck, c, wk, r_tok, stamp)
        log("c. Segment and PostHog routes: %d requests" % comp)

        # ---- auth
        exercise_auth(ck, url, sb, both, reader)
        log("c. auth: statuses %s" % sorted(ck.seen[("POST", "/oauth/token")]))

        # ---- query
        if has_query:
            exercise_query(ck, spec, sb, url, c, wk, r_tok, w_tok, b_tok, slow_query, stamp)
        else:
            f.fail("the query role is missing: its operations were not exercised")

        # ---- analytics
        if has_query:
            exercise_analytics(ck, sb, url, tenant, r_tok, w_tok, a_tok)

        # ---- tracked properties (query role, ADR-24)
        if has_query:
            exercise_tracked(ck, url, r_tok, w_tok, a_tok)

        # ---- profiles and groups (query role, docs/profiles.md)
        if has_query:
            exercise_profiles(ck, url, c, wk, r_tok, w_tok, stamp, sb)

        # ---- outages: extra instances with a dead dependency
        exercise_outages(ck, sb, url, wk, b_tok, both, has_query)

        # ---- coverage
        print_coverage(f, spec, ck, live)
        sb.check_clean_end(running=main_roles)
        log("total %.0f s, %d answers checked" % (time.monotonic() - t_start, ck.count))
        return sb.report("openapi: docs/openapi.json is valid OpenAPI 3.1, served cut by role by "
                         "every role, and every real answer matches it")


def announce_only(u, length, headers):
    """POST with `Content-Length: length` and no body sent: the answer a server gives from
    the headers alone (a 413 for a body over the limit)."""
    import http.client
    parts = urllib.parse.urlsplit(u)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("POST", parts.path)
        for k, v in dict(headers, **{"Content-Length": str(length)}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return resp.status, hdrs, body
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def role_document(doc, role):
    """The document role serves: doc without the operations of other roles (and the path items
    left empty), with only role's servers (root and operation) and tag."""
    out = json.loads(json.dumps(doc))
    for path in list(out["paths"]):
        item = out["paths"][path]
        for m in HTTP_METHODS:
            if m in item and role not in item[m].get("x-eventops-role", []):
                del item[m]
            elif m in item and "servers" in item[m]:
                item[m]["servers"] = [s for s in item[m]["servers"]
                                      if role in s.get("x-eventops-role", [])]
        if not any(m in item for m in HTTP_METHODS):
            del out["paths"][path]
    out["servers"] = [s for s in out.get("servers", []) if role in s.get("x-eventops-role", [])]
    out["tags"] = [t for t in out.get("tags", []) if t.get("name") == role]
    return out


def raw_get(u):
    """The exact bytes of a GET answer's body (None when nothing answered)."""
    import http.client
    parts = urllib.parse.urlsplit(u)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path)
        return conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# collector

def exercise_collector(ck, spec, c, ev, wk, w_tok, r_tok, b_tok, sb, slow_ingest):
    f = ck.f
    n0 = ck.count
    jh = {"Content-Type": "application/json"}

    def post(path, body, auth=None, headers=None, raw=False):
        h = dict(jh)
        if auth is not None:
            h["Authorization"] = auth
        h.update(headers or {})
        if h.get("Content-Type") is None:
            del h["Content-Type"]
        data = body if raw else json.dumps(body).encode()
        return request("POST", c(path), data, h)

    def req_valid(path, body):
        """Whether the documented request schema accepts body (for events sent as valid)."""
        op = spec.operation("POST", path)
        sp = ptr(("paths", path, "post", "requestBody", "content", "application/json",
                  "schema"))
        return spec.errors(sp, body), op

    bearer_wk = "Bearer " + wk
    i = 0

    def nxt():
        nonlocal i
        i += 1
        return i

    # 202s, each credential kind, content types, gzip
    for name, auth in (("write key (Bearer)", bearer_wk),
                       ("write key (Basic)", eotest.basic_auth(wk, "", urlencode=False)),
                       ("token events:write", "Bearer " + w_tok),
                       ("token with both scopes", "Bearer " + b_tok)):
        body = ev(nxt(), timestamp=iso(dt.datetime.now(dt.timezone.utc)),
                  properties={"plan": "pro"}, context={"app": "oa"})
        errs, _ = req_valid("/events", body)
        f.check(not errs, "the test's valid event does not match the Event schema: %s" % errs)
        ck.check("single, " + name, "collector", "POST", "/events", post("/events", body, auth),
                 expect=202)
    ck.check("single, text/plain", "collector", "POST", "/events",
             post("/events", ev(nxt()), bearer_wk, {"Content-Type": "text/plain"}), expect=202)
    ck.check("single, no Content-Type", "collector", "POST", "/events",
             post("/events", ev(nxt()), bearer_wk, {"Content-Type": None}), expect=202)
    ck.check("single, gzip", "collector", "POST", "/events",
             post("/events", gzip.compress(json.dumps(ev(nxt())).encode()), bearer_wk,
                  {"Content-Encoding": "gzip"}, raw=True), expect=202)
    ck.check("single, aliases and integer userId", "collector", "POST", "/events",
             post("/events", {"event": "oa_alias", "userId": 42, "metadata": {"a": 1},
                              "messageId": "oa-alias-%d" % nxt()}, bearer_wk), expect=202)
    for name, body in (("array", [ev(nxt()), ev(nxt())]),
                       ("events member", {"events": [ev(nxt())]}),
                       ("batch member", {"batch": [ev(nxt())]})):
        errs, _ = req_valid("/events/batch", body)
        f.check(not errs, "the test's valid batch (%s) does not match EventBatch: %s" %
                (name, errs))
        ck.check("batch, " + name, "collector", "POST", "/events/batch",
                 post("/events/batch", body, bearer_wk), expect=202)
    body = ck.check("batch, partly valid", "collector", "POST", "/events/batch",
                    post("/events/batch", [ev(nxt()), {"userId": "x"},
                                           ev(nxt(), timestamp="yesterday")], bearer_wk),
                    expect=202)
    if isinstance(body, dict):
        f.check(body.get("accepted") == 1 and len(body.get("errors", [])) == 2,
                "partly valid batch: %r" % body)

    # 400s
    for name, path, data, code in (
            ("empty body", "/events", b"", "empty_body"),
            ("invalid JSON", "/events", b"{\"eventType\":", "invalid_json"),
            ("not an object", "/events", b"[1]", "invalid_type"),
            ("missing eventType", "/events", json.dumps({"userId": "u"}).encode(),
             "missing_field"),
            ("missing user", "/events", json.dumps({"eventType": "e"}).encode(),
             "missing_field"),
            ("bad timestamp", "/events", json.dumps(ev(0, timestamp="2026-02-30T00:00:00Z"))
             .encode(), "invalid_timestamp"),
            ("conflicting aliases", "/events", json.dumps({"eventType": "a", "event": "b",
                                                           "userId": "u"}).encode(),
             "conflicting_fields"),
            ("empty batch", "/events/batch", b"[]", "empty_batch"),
            ("batch not an array", "/events/batch", b"{\"events\": 3}", "invalid_type"),
            ("no valid event", "/events/batch", json.dumps([{"userId": "u"}]).encode(),
             "no_valid_events"),
            ("invalid gzip", "/events", b"not gzip at all", "invalid_gzip")):
        hdr = {"Content-Encoding": "gzip"} if code == "invalid_gzip" else None
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        if parsed is not None and code not in ("invalid_gzip", "conflicting_fields"):
            errs, _ = req_valid(path, parsed)
            f.check(bool(errs), "%s: the document's request schema accepts a body the "
                    "collector refuses: %r" % (name, parsed))
        ck.check(name, "collector", "POST", path, post(path, data, bearer_wk, hdr, raw=True),
                 expect=400, code=code)

    # 401 / 403
    for name, auth, code in (("no credentials", None, "missing_credentials"),
                             ("malformed", "Token abc", "malformed_credentials"),
                             ("unknown write key", "Bearer wk_nope.0000", "invalid_write_key"),
                             ("garbage token", "Bearer a.b.c", "invalid_token")):
        ck.check(name, "collector", "POST", "/events", post("/events", ev(nxt()), auth),
                 expect=401, code=code, field="Authorization")
    for path, body in (("/events", ev(nxt())), ("/events/batch", [ev(nxt())])):
        ck.check("read-only token", "collector", "POST", path,
                 post(path, body, "Bearer " + r_tok), expect=403, code="insufficient_scope",
                 field="Authorization")

    # 413, 415
    ck.check("body too large", "collector", "POST", "/events/batch",
             announce_only(c("/events/batch"), 600000, {"Authorization": bearer_wk,
                                                        "Content-Type": "application/json"}),
             expect=413, code="body_too_large")
    ck.check("event too large", "collector", "POST", "/events",
             post("/events", ev(nxt(), properties={"k%d" % k: "x" * 8000 for k in range(5)}),
                  bearer_wk), expect=413, code="too_large")
    ck.check("too many events", "collector", "POST", "/events/batch",
             post("/events/batch", [{"eventType": "e", "userId": "u"}] * 1001, bearer_wk),
             expect=413, code="too_many_events")
    ck.check("text/html", "collector", "POST", "/events",
             post("/events", ev(nxt()), bearer_wk, {"Content-Type": "text/html"}), expect=415,
             code="unsupported_media_type")
    ck.check("brotli", "collector", "POST", "/events/batch",
             post("/events/batch", [ev(nxt())], bearer_wk, {"Content-Encoding": "br"}),
             expect=415, code="unsupported_encoding")

    # 429: a client with rate 1/s and burst 1
    tok = sb.token(slow_ingest["clientId"], slow_ingest["clientSecret"])
    for path, body in (("/events", ev(nxt())), ("/events/batch", [ev(nxt())])):
        sts = []
        for _ in range(3):
            resp = post(path, body, "Bearer " + tok)
            sts.append(resp[0])
            ck.check("rate limited client", "collector", "POST", path, resp,
                     expect=(202, 429))
        f.check(429 in sts, "POST %s: three quick requests of a client with burst 1 gave %s, "
                "no 429" % (path, sts))
    return ck.count - n0


# ---------------------------------------------------------------------------------------------
# Segment's and PostHog's routes on the collector (docs/compat.md)

SEGMENT_MESSAGES = {
    "/v1/track": {"event": "oa_compat", "userId": "u-c", "properties": {"a": 1}},
    "/v1/identify": {"userId": "u-c", "traits": {"plan": "pro"}},
    "/v1/page": {"anonymousId": "a-c", "name": "Home", "properties": {"url": "https://x.example"}},
    "/v1/screen": {"userId": "u-c", "name": "Cart"},
    "/v1/group": {"userId": "u-c", "groupId": "g-1", "traits": {"n": 1}},
    "/v1/alias": {"userId": "u-c", "previousId": "a-c"},
}
POSTHOG_PATHS = ("/batch/", "/capture/", "/e/", "/i/v0/e/")


def exercise_compat(ck, c, wk, r_tok, stamp):
    f = ck.f
    n0 = ck.count
    basic = eotest.basic_auth(wk, "", urlencode=False)
    seq = [0]

    def mid():
        seq[0] += 1
        return "oa-compat-%s-%d" % (stamp, seq[0])

    def post(path, body, auth=None, headers=None, raw=False, query=""):
        h = {"Content-Type": "application/json"}
        if auth is not None:
            h["Authorization"] = auth
        h.update(headers or {})
        return request("POST", c(path) + query, body if raw else json.dumps(body).encode(), h)

    def accepted(name, path, resp, n, head):
        body = ck.check(name, "collector", "POST", path, resp, expect=200)
        if isinstance(body, dict):
            f.check(body.get("accepted") == n and all(body.get(k) == v for k, v in head.items()),
                    "%s, POST %s: %r, expected %d accepted and %r" % (name, path, body, n, head))
        return body

    ok_seg = {"success": True}
    for path, msg in SEGMENT_MESSAGES.items():
        accepted("Basic write key", path, post(path, dict(msg, messageId=mid()), basic), 1, ok_seg)
        accepted("writeKey in the body", path, post(path, dict(msg, messageId=mid(), writeKey=wk)),
                 1, ok_seg)
        ck.check("no credentials", "collector", "POST", path, post(path, dict(msg)), expect=401,
                 code="missing_credentials", field="writeKey")
        ck.check("unknown writeKey", "collector", "POST", path,
                 post(path, dict(msg, writeKey="wk_nope.0000")), expect=401,
                 code="invalid_write_key", field="writeKey")
        ck.check("unknown write key header", "collector", "POST", path,
                 post(path, msg, "Bearer wk_nope.0000"), expect=401, code="invalid_write_key",
                 field="Authorization")
        ck.check("read-only token", "collector", "POST", path, post(path, msg, "Bearer " + r_tok),
                 expect=403, code="insufficient_scope", field="Authorization")
        ck.check("not an object", "collector", "POST", path, post(path, b"[1]", basic, raw=True),
                 expect=400, code="invalid_type")
        ck.check("text/html", "collector", "POST", path,
                 post(path, msg, basic, {"Content-Type": "text/html"}), expect=415,
                 code="unsupported_media_type")
    for path, msg, code, field in (
            ("/v1/track", {"userId": "u"}, "missing_field", "event"),
            ("/v1/track", {"event": "e"}, "missing_field", "userId"),
            ("/v1/track", {"event": "e", "userId": "u", "timestamp": "soon"}, "invalid_timestamp",
             "timestamp"),
            ("/v1/identify", {"userId": "u", "traits": [1]}, "invalid_type", "traits"),
            ("/v1/group", {"userId": "u"}, "missing_field", "groupId"),
            ("/v1/alias", {"userId": "u", "previousId": ""}, "empty_value", "previousId")):
        ck.check("invalid message", "collector", "POST", path, post(path, msg, basic), expect=400,
                 code=code, field=field)
    ck.check("message too large", "collector", "POST", "/v1/track",
             post("/v1/track", dict(SEGMENT_MESSAGES["/v1/track"],
                                    properties={"k%d" % k: "x" * 8000 for k in range(5)}), basic),
             expect=413, code="too_large")
    now = iso(dt.datetime.now(dt.timezone.utc))
    for path in ("/v1/batch", "/v1/import"):
        batch = [dict(SEGMENT_MESSAGES["/v1/%s" % t], type=t, messageId=mid())
                 for t in ("track", "identify", "page", "screen", "group", "alias")]
        accepted("batch", path, post(path, {"batch": batch, "sentAt": now}, basic), 6, ok_seg)
        accepted("batch, writeKey, gzip", path,
                 post(path, gzip.compress(json.dumps({"batch": batch[:2], "writeKey": wk})
                                          .encode()), None, {"Content-Encoding": "gzip"},
                      raw=True), 2, ok_seg)
        body = accepted("batch, partly valid", path,
                        post(path, {"batch": [dict(batch[0], messageId=mid()),
                                              {"type": "bogus"}]}, basic), 1, ok_seg)
        if isinstance(body, dict):
            errs = body.get("errors") or [{}]
            f.check(errs[0].get("index") == 1 and errs[0].get("error", {}).get("field") == "type",
                    "partly valid Segment batch: %r" % body)
        for name, b, code in (("no valid message", {"batch": [{"type": "track", "userId": "u"}]},
                               "no_valid_events"),
                              ("empty batch", {"batch": []}, "empty_batch"),
                              ("no batch", {"events": batch}, "missing_field")):
            ck.check(name, "collector", "POST", path, post(path, b, basic), expect=400, code=code)
        ck.check("too many messages", "collector", "POST", path,
                 post(path, {"batch": [batch[0]] * 1001}, basic), expect=413,
                 code="too_many_events")
    ok_ph = {"status": 1}
    for path in POSTHOG_PATHS:
        ev = lambda **kw: dict({"event": "oa_ph", "distinct_id": "d-c", "uuid": mid(),  # noqa
                                "properties": {"a": 1}}, **kw)
        accepted("batch with api_key", path,
                 post(path, {"api_key": wk, "batch": [ev(), ev()], "sent_at": now}), 2, ok_ph)
        accepted("one event with token", path, post(path, dict(ev(), token=wk)), 1, ok_ph)
        accepted("array, properties.token, gzip", path,
                 post(path, gzip.compress(json.dumps([ev(properties={"token": wk})]).encode()),
                      None, {"Content-Encoding": "gzip"}, raw=True), 1, ok_ph)
        accepted("?compression=gzip-js", path,
                 post(path, gzip.compress(json.dumps({"api_key": wk, "batch": [ev()]}).encode()),
                      raw=True, query="?compression=gzip-js"), 1, ok_ph)
        accepted("Authorization header", path, post(path, [ev()], basic), 1, ok_ph)
        ck.check("no credentials", "collector", "POST", path, post(path, [ev()]), expect=401,
                 code="missing_credentials", field="api_key")
        ck.check("no distinct_id", "collector", "POST", path,
                 post(path, {"event": "e", "api_key": wk}), expect=400, code="missing_field",
                 field="distinct_id")
        ck.check("no valid event", "collector", "POST", path,
                 post(path, {"api_key": wk, "batch": [{"distinct_id": "d"}]}), expect=400,
                 code="no_valid_events")
        ck.check("too many events", "collector", "POST", path,
                 post(path, {"api_key": wk, "batch": [ev()] * 1001}), expect=413,
                 code="too_many_events")
    return ck.count - n0


# ---------------------------------------------------------------------------------------------
# auth

def exercise_auth(ck, url, sb, both, reader):
    f = ck.f
    a = lambda p: url("auth", p)  # noqa: E731
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    basic = eotest.basic_auth(both["clientId"], both["clientSecret"])

    def tok(pairs, headers=None, name="", expect=None, code=None, raw=None):
        h = dict(form)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        body = raw if raw is not None else eotest.form_encode(pairs)
        resp = request("POST", a("/oauth/token"), body, h)
        ck.check("token: " + name, "auth", "POST", "/oauth/token", resp, expect=expect)
        if code is not None:
            b = resp[2]
            f.check(isinstance(b, dict) and (b.get("error") == code or (
                isinstance(b.get("error"), dict) and b["error"].get("code") == code)),
                "token: %s: expected error %s, got %r" % (name, code, b))
        return resp

    gt = [("grant_type", "client_credentials")]
    tok(gt, {"Authorization": basic}, "Basic", 200)
    tok(gt + [("scope", "events:read")], {"Authorization": basic}, "Basic, scope", 200)
    tok(gt + [("client_id", reader["clientId"]), ("client_secret", reader["clientSecret"])],
        None, "client_secret_post", 200)
    tok(gt, {"Authorization": basic, "Content-Type": "application/json"},
        "JSON body", 400, "invalid_request")
    tok([("scope", "events:read")], {"Authorization": basic}, "no grant_type", 400,
        "invalid_request")
    tok(gt + gt, {"Authorization": basic}, "repeated grant_type", 400, "invalid_request")
    tok([("grant_type", "password")], {"Authorization": basic}, "password grant", 400,
        "unsupported_grant_type")
    tok(gt + [("client_secret", "x")], {"Authorization": basic}, "two methods", 400,
        "invalid_request")
    tok(gt + [("scope", "admin")], {"Authorization": basic}, "unknown scope", 400,
        "invalid_scope")
    tok(gt, {"Authorization": "Basic !!!"}, "malformed Basic", 401, "invalid_client")
    tok(gt, None, "no client authentication", 401, "invalid_client")
    tok(gt, {"Authorization": eotest.basic_auth(both["clientId"], "wrong")}, "wrong secret",
        401, "invalid_client")
    tok(None, {"Authorization": basic, "Content-Encoding": "gzip"}, "invalid gzip", 400,
        "invalid_gzip", raw=b"not gzip")
    tok(None, {"Authorization": basic, "Content-Encoding": "br"}, "brotli", 415,
        "unsupported_encoding", raw=b"grant_type=client_credentials")
    resp = announce_only(a("/oauth/token"), 9000, dict(form, Authorization=basic))
    ck.check("token: body over 8192 bytes", "auth", "POST", "/oauth/token", resp, expect=413,
             code="body_too_large")
    tok(gt, {"Authorization": basic, "X-Pad": "p" * 17000}, "huge header", 431,
        "headers_too_large")

    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        ck.check(path, "auth", "GET", path, request("GET", a(path)), expect=200)


# ---------------------------------------------------------------------------------------------
# query

def exercise_query(ck, spec, sb, url, c, wk, r_tok, w_tok, b_tok, slow_query, stamp):
    f = ck.f
    q = lambda p: url("query", p)  # noqa: E731
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    base = (now - dt.timedelta(days=2)).replace(minute=0, second=0)
    # Events the queries find: three users and an anonymous one, over two days.
    data = [
        ("signup", "u1", None, base, {"plan": "pro"}),
        ("purchase", "u1", None, base + dt.timedelta(hours=1), {"plan": "pro", "amount": 9}),
        ("login", "u1", None, base + dt.timedelta(days=1), {}),
        ("signup", "u2", None, base + dt.timedelta(minutes=10), {"plan": "free"}),
        ("signup", None, "a1", base + dt.timedelta(minutes=20), {"plan": 3}),
        ("page_view", "u3", None, base + dt.timedelta(minutes=30), {"address": {"city": "X"}}),
    ]
    batch, mids = [], []
    for k, (et, uid, aid, t, props) in enumerate(data):
        e = {"eventType": et, "timestamp": iso(t), "properties": props,
             "messageId": "oa-q-%s-%d" % (stamp, k)}
        if uid:
            e["userId"] = uid
        if aid:
            e["anonymousId"] = aid
        batch.append(e)
        mids.append(e["messageId"])
    st, _, body = eotest.post_json(c("/events/batch"), batch, key=wk)
    f.check(st == 202, "query data batch: %s %r" % (st, body))
    stored = sb.wait_stored(mids, timeout=60)
    f.check(set(mids) <= set(stored), "query data not stored within 60 s: %d of %d" %
            (len(set(stored) & set(mids)), len(mids)))

    auth = {"Authorization": "Bearer " + r_tok}

    def get(path, params, headers=None, name="", expect=None, code=None, field=None):
        qs = urllib.parse.urlencode(params, safe=",:") if isinstance(params, (list, dict)) \
            else params
        h = dict(auth)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        resp = request("GET", q(path) + ("?" + qs if qs else ""), None, h)
        return ck.check("%s %s" % (name, qs), "query", "GET", path, resp, expect=expect,
                        code=code, field=field), resp

    day0 = iso(base - dt.timedelta(hours=1))
    day1 = iso(base + dt.timedelta(hours=23))
    window = {"from": day0, "to": day1}
    wide = {"from": iso(base - dt.timedelta(days=1)), "to": iso(now + dt.timedelta(minutes=1))}

    # 200s with typical parameters, and their semantic invariants beyond JSON Schema
    b, _ = get("/events/count", {}, name="count, defaults", expect=200)
    b, _ = get("/events/count", dict(window, eventType="signup"), name="count", expect=200)
    if isinstance(b, dict):
        f.check(b.get("count") == 3, "count of signups in the window: %r, expected 3" % b)
    b, _ = get("/events/trend", dict(window, interval="hour", tz="Asia/Kolkata"),
               name="trend", expect=200)
    if isinstance(b, dict) and isinstance(b.get("series"), list):
        f.check(b.get("total") == sum(x.get("count", 0) for x in b["series"]),
                "trend: total %r is not the sum of the series" % b.get("total"))
        f.check(b.get("interval") == "hour" and b.get("tz") == "Asia/Kolkata",
                "trend: interval/tz not echoed: %r" % {k: b.get(k) for k in ("interval", "tz")})
    b, _ = get("/events/trend", dict(window, interval="daily"), name="trend alias",
               expect=200)
    if isinstance(b, dict):
        f.check(b.get("interval") == "day", "trend interval=daily answered interval %r, the "
                "document says answers name the canonical form" % b.get("interval"))
    b, _ = get("/events/unique-users", wide, name="unique users", expect=200)
    if isinstance(b, dict):
        f.check(not ({"interval", "tz", "series"} & set(b)),
                "unique users without interval: %r" % sorted(b))
    get("/events/unique-users", dict(wide, interval="day", tz="Europe/Berlin"),
        name="unique users series", expect=200)
    get("/events/breakdown", dict(wide, property="plan"), name="breakdown", expect=200)
    get("/events/breakdown", dict(wide, property="address.city", eventType="page_view",
                                  limit="1"), name="breakdown nested", expect=200)
    b, _ = get("/events/funnel", dict(wide, steps="signup,purchase,login", within="2d"),
               name="funnel", expect=200)
    if isinstance(b, dict) and isinstance(b.get("steps"), list):
        f.check([s.get("eventType") for s in b["steps"]] == ["signup", "purchase", "login"],
                "funnel steps not in order: %r" % b["steps"])
        f.check(b.get("withinSeconds") == 172800, "funnel within=2d: withinSeconds %r" %
                b.get("withinSeconds"))
    for given, canonical in (("48h", "2d"), ("90m", "90m"), ("120s", "2m"), ("14d", "2w")):
        b, _ = get("/events/funnel", dict(wide, steps="signup,purchase", within=given),
                   name="funnel window", expect=200)
        f.check(isinstance(b, dict) and b.get("within") == canonical,
                "funnel within=%s answered within %r, expected %s (its largest whole unit)" %
                (given, b.get("within") if isinstance(b, dict) else b, canonical))
    b, _ = get("/events/retention", dict(wide, startEvent="signup", returnEvent="login",
                                         periods="3"), name="retention", expect=200)
    if isinstance(b, dict):
        for co in b.get("cohorts") or []:
            f.check(len(co.get("retained", [])) == 4 and len(co.get("rates", [])) == 4,
                    "retention periods=3: a cohort has %d retained and %d rates, expected 4 "
                    "(periods + 1)" % (len(co.get("retained", [])), len(co.get("rates", []))))
    get("/events/retention", dict(wide, startEvent="signup", returnEvent="login",
                                  period="week", periods="2", tz="America/New_York"),
        name="retention weekly", expect=200)
    b, _ = get("/events/types", {}, name="types", expect=200)
    b, _ = get("/events", dict(wide, limit="2"), name="raw events", expect=200)
    if isinstance(b, dict) and b.get("nextCursor"):
        get("/events", dict(wide, limit="2", cursor=b["nextCursor"]), name="raw events page 2",
            expect=200)
    else:
        f.fail("raw events: limit=2 over 6+ events gave no nextCursor: %r" % b)
    get("/events", dict(wide, userId="u1"), name="raw events of a user", expect=200)
    # the same query twice: the second may come from the cache (X-Cache hit)
    _, r1 = get("/events/count", window, name="count (cache 1)", expect=200)
    _, r2 = get("/events/count", window, name="count (cache 2)", expect=200)
    log("c. query: X-Cache %s then %s" % (r1[1].get("x-cache"), r2[1].get("x-cache")))

    # 400 at the limits the parameter schemas give
    base_params = {
        "/events/count": {}, "/events/trend": dict(window), "/events/unique-users": {},
        "/events/breakdown": {"property": "plan"},
        "/events/funnel": {"steps": "signup,purchase"},
        "/events/retention": {"startEvent": "signup", "returnEvent": "login"},
        "/events/types": {}, "/events": {},
    }
    nprobe = 0
    for path, bp in base_params.items():
        op = spec.operation("GET", path)
        if op is None:
            f.fail("GET %s is not documented" % path)
            continue
        params = [spec.deref(p) for p in op.get("parameters", [])]
        names = {p["name"] for p in params if p.get("in") == "query"}
        for p in params:
            if p.get("in") != "query":
                continue
            for value, ok in probe_values(spec, p):
                params_ = dict(bp)
                if p["name"] in ("from", "to"):
                    params_ = {k: x for k, x in bp.items() if k not in ("from", "to")}
                params_[p["name"]] = value
                if p["name"] == "interval" and ok:
                    params_.update(window)  # minute buckets over 7 days would be too many
                if p["name"] == "cursor" and ok:
                    continue  # a valid cursor comes only from a previous page
                nprobe += 1
                get(path, params_, name="probe %s=%r" % (p["name"], value),
                    expect=200 if ok else 400, code=None if ok else "invalid_parameter",
                    field=None if ok else p["name"])
        # unknown and repeated parameters, required ones missing
        nprobe += 3
        get(path, dict(bp, bogus="1"), name="unknown parameter", expect=400,
            code="invalid_parameter", field="bogus")
        get(path, urllib.parse.urlencode(list(bp.items()) + [("to", day1), ("to", day1)]),
            name="repeated parameter", expect=400, code="invalid_parameter", field="to")
        for p in params:
            if p.get("required") and p.get("in") == "query":
                nprobe += 1
                get(path, {k: v for k, v in bp.items() if k != p["name"]},
                    name="missing %s" % p["name"], expect=400, code="invalid_parameter",
                    field=p["name"])
        if {"from", "to"} <= names:
            nprobe += 1
            get(path, dict(bp, **{"from": day1, "to": day0}), name="from after to",
                expect=400, code="invalid_parameter", field="from")
    # limits beyond what a schema can say
    for path, extra, ok, field in (
            ("/events/trend", {"interval": "minute"}, False, "interval"),  # 10080 buckets
            ("/events/trend", {"tz": "Mars/Olympus_Mons"}, False, "tz"),
            ("/events/trend", dict(window, tz="Asia/Kathmandu"), True, None),
            ("/events/funnel", {"steps": "signup,purchase", "within": "0s"}, False, "within"),
            ("/events/funnel", {"steps": "signup,purchase", "within": "90d"}, True, None),
            ("/events/funnel", {"steps": "signup,purchase", "within": "7776000s"}, True, None),
            ("/events/funnel", {"steps": "signup,purchase", "within": "7776001s"}, False,
             "within"),
            ("/events/funnel", {"steps": "signup,purchase", "within": "13w"}, False, "within"),
            ("/events/funnel", {"steps": ",".join("s%d" % k for k in range(10))}, True, None),
            ("/events/funnel", {"steps": ",".join("s%d" % k for k in range(11))}, False,
             "steps"),
            ("/events/funnel", {"steps": "signup"}, False, "steps"),
            ("/events/breakdown", {"property": "a.b.c.d"}, True, None),
            ("/events/breakdown", {"property": "a.b.c.d.e"}, False, "property"),
            ("/events/breakdown", {"property": "a" * 65}, False, "property"),
            ("/events/breakdown", {"property": "a b"}, False, "property"),
            ("/events/count", {"from": "2026-03-29T10:00:00+02:00",
                               "to": "2026-03-29T10:00:00.5Z"}, True, None),
            ("/events", {"cursor": "not-a-cursor"}, False, "cursor"),
            # not in docs/query.md's list of interval names
            ("/events/trend", dict(window, interval="minutely"), False, "interval"),
            ("/events/retention", {"startEvent": "a", "returnEvent": "b", "period": "month"},
             False, "period")):
        nprobe += 1
        get(path, extra, name="limit", expect=200 if ok else 400,
            code=None if ok else "invalid_parameter", field=field)
    log("c. query: %d parameter probes" % nprobe)

    # 401, 403, 429
    for name, h, codes in (
            ("no credentials", {"Authorization": None}, "missing_credentials"),
            ("write key", {"Authorization": "Bearer " + wk}, "invalid_token"),
            ("garbage token", {"Authorization": "Bearer a.b.c"}, "invalid_token"),
            ("Basic", {"Authorization": eotest.basic_auth(wk, "", urlencode=False)},
             "invalid_token")):
        get("/events/count", {}, h, name=name, expect=401, code=codes, field="Authorization")
    for path, bp in base_params.items():
        get(path, bp, {"Authorization": "Bearer " + w_tok}, name="write-only token",
            expect=403, code="insufficient_scope", field="Authorization")
    get("/events/types", {}, {"Authorization": "Bearer " + b_tok}, name="both scopes",
        expect=200)
    stok = sb.token(slow_query["clientId"], slow_query["clientSecret"])
    sts = []
    for _ in range(3):
        _, resp = get("/events/count", {}, {"Authorization": "Bearer " + stok},
                      name="rate limited client", expect=(200, 429))
        sts.append(resp[0])
    f.check(429 in sts, "three quick queries of a client with burst 1 gave %s, no 429" % sts)
    for path, bp in base_params.items():  # the bucket is empty now: each is refused
        sts = []
        while 429 not in sts and len(sts) < 3:  # a slow machine may let a token refill
            _, resp = get(path, bp, {"Authorization": "Bearer " + stok},
                          name="rate limited client", expect=(200, 429))
            sts.append(resp[0])
        f.check(429 in sts, "GET %s: quick queries of a client with burst 1 gave %s, no 429" %
                (path, sts))
    # odd query strings: a bare name, control characters, invalid UTF-8, and parameters
    # without a name (the answer has no field then: it cannot name them)
    for qs, field in (("from", "from"), ("eventType=%01", "eventType"),
                      ("eventType=%FF", "eventType"), ("=1", None), ("&", None)):
        b, _ = get("/events", qs, name="odd query string", expect=400,
                   code="invalid_parameter", field=field)
        if field is None:
            f.check(isinstance(b, dict) and "field" not in (b.get("error") or {}),
                    "GET /events?%s: a field %r for a parameter without a name" %
                    (qs, b.get("error", {}).get("field") if isinstance(b, dict) else b))


def probe_values(spec, p):
    """(value, whether the parameter's schema accepts it) at the limits of its schema: the
    minimum and maximum and one past each, every enum value and a bad one, a bad format."""
    s = spec.deref(p.get("schema", {}))
    t = s.get("type")
    vals = []
    if "enum" in s:
        vals += list(s["enum"]) + ["bogus"]
    elif t == "integer":
        for k in ("minimum", "maximum"):
            if k in s:
                vals += [str(s[k]), str(s[k] + (1 if k == "maximum" else -1))]
        vals += ["1.5", "ten", ""]
    elif t == "array":
        lo, hi = s.get("minItems", 1), s.get("maxItems")
        for n in {max(lo - 1, 1), lo} | ({hi, hi + 1} if hi else set()):
            vals.append(",".join("e%d" % k for k in range(n)))
    elif t == "string":
        if s.get("format") == "date-time":
            vals += ["2026-03-29T12:00:00Z", "2026-03-29T12:00:00.250+05:30", "yesterday",
                     "2026-02-30T00:00:00Z", "2026-03-29 12:00:00Z"]
        elif p["name"] == "within":
            vals += ["1s", "30m", "12h", "1w", "1x", "d", ""]
        elif p["name"] == "property":
            vals += ["plan", "a$_-9.b", "a..b", ".a", ""]
        elif s.get("minLength"):
            vals += [""]
    out = []
    v = spec.validator(spec.pointer_of(p) + "/schema")
    for value in vals:
        inst = value
        if t == "integer":
            try:
                inst = int(value)
            except ValueError:
                pass
        elif t == "array":
            inst = value.split(",") if value else []
        out.append((value, v.is_valid(inst)))
    return out


# ---------------------------------------------------------------------------------------------
# outages

def exercise_analytics(ck, sb, url, tenant, r_tok, w_tok, a_tok):
    """Every analytics operation: 2xx and each error class it can give here (a summary and a
    window result are written in SQL so that the item schemas are checked too)."""
    f = ck.f
    an = {"Authorization": "Bearer " + a_tok}
    rd = {"Authorization": "Bearer " + r_tok}
    js = {"Content-Type": "application/json"}

    def call(name, method, path, body=None, headers=None, expect=None, code=None, field=None,
             doc_path=None):
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) \
            else body
        h = {k: v for k, v in dict(headers or {}).items() if v is not None}
        resp = request(method, url("analytics", path), data, h)
        return ck.check(name, "analytics", method, doc_path or path.split("?")[0], resp,
                        expect=expect, code=code, field=field), resp

    rule = {"name": "openapi burst", "eventType": "signup",
            "window": {"type": "hopping", "size": "5m", "slide": "1m"},
            "groupBy": ["properties.plan"], "aggregate": {"fn": "count"},
            "condition": {"op": ">=", "value": 10, "clearBelow": 5}, "cooldown": "15m"}
    one = "/analytics/rules/{id}"
    b, resp = call("create", "POST", "/analytics/rules", rule, dict(an, **js), expect=201)
    rid = b.get("id") if isinstance(b, dict) else None
    if not f.check(isinstance(rid, str), "analytics: no rule was created: %r" % (b,)):
        return
    f.check(resp[1].get("location") == "/analytics/rules/" + rid, "Location %r" %
            resp[1].get("location"))
    call("create: unknown member", "POST", "/analytics/rules", dict(rule, colour=1),
         dict(an, **js), expect=400, code="unknown_field", field="colour")
    call("create: not JSON", "POST", "/analytics/rules", b"{", dict(an, **js), expect=400,
         code="malformed_json")
    call("create: no token", "POST", "/analytics/rules", rule, js, expect=401,
         code="missing_credentials")
    call("create: events:read only", "POST", "/analytics/rules", rule, dict(rd, **js),
         expect=403, code="insufficient_scope")
    call("create: text/xml", "POST", "/analytics/rules", rule,
         dict(an, **{"Content-Type": "text/xml"}), expect=415, code="unsupported_media_type")
    call("create: too large", "POST", "/analytics/rules", b"{" + b" " * 20000 + b"}",
         dict(an, **js), expect=413, code="body_too_large")
    call("create: a parameter", "POST", "/analytics/rules?x=1", rule, dict(an, **js),
         expect=400, code="invalid_parameter", field="x")
    call("list", "GET", "/analytics/rules", None, rd, expect=200)
    call("list: a parameter", "GET", "/analytics/rules?limit=1", None, rd, expect=400,
         code="invalid_parameter")
    call("list: no token", "GET", "/analytics/rules", None, {}, expect=401)
    call("list: events:write only", "GET", "/analytics/rules", None,
         {"Authorization": "Bearer " + w_tok}, expect=403, code="insufficient_scope")
    call("get", "GET", "/analytics/rules/" + rid, None, rd, expect=200, doc_path=one)
    call("get version 1", "GET", "/analytics/rules/%s?version=1" % rid, None, rd, expect=200,
         doc_path=one)
    call("get version 9", "GET", "/analytics/rules/%s?version=9" % rid, None, rd, expect=404,
         code="not_found", doc_path=one)
    call("get: bad id", "GET", "/analytics/rules/nope", None, rd, expect=400,
         code="invalid_parameter", field="id", doc_path=one)
    call("get: bad version", "GET", "/analytics/rules/%s?version=0" % rid, None, rd,
         expect=400, code="invalid_parameter", field="version", doc_path=one)
    call("update", "PUT", "/analytics/rules/" + rid, dict(rule, name="openapi burst 2"),
         dict(an, **js), expect=200, doc_path=one)
    call("update: invalid rule", "PUT", "/analytics/rules/" + rid,
         dict(rule, window={"type": "hopping", "size": "5m"}), dict(an, **js), expect=400,
         code="missing_field", field="window.slide", doc_path=one)
    call("update: unknown rule", "PUT", "/analytics/rules/" + rid[:-4] + "ffff", rule,
         dict(an, **js), expect=404, code="not_found", doc_path=one)
    call("update: events:read only", "PUT", "/analytics/rules/" + rid, rule, dict(rd, **js),
         expect=403, code="insufficient_scope", doc_path=one)
    # results written as the engine's sink writes them
    sb.sql("INSERT INTO analytics_summaries (tenant_id, event_id, rule_id, rule_version, status, "
           "group_key, window_start, window_end, value, threshold, body, emitted_at) VALUES "
           "('%s', gen_random_uuid(), '%s', 1, 'firing', '{\"properties.plan\":\"pro\"}', "
           "now() - interval '1 hour', now() - interval '55 minutes', 12, 10, "
           "'{\"type\": \"analytics.summary\", \"status\": \"firing\", \"value\": 12, "
           "\"threshold\": 10, \"revision\": 1, \"final\": false}', now())" %
           (tenant["tenantId"], rid))
    sb.sql("INSERT INTO analytics_windows (tenant_id, rule_id, rule_version, group_key, "
           "window_start, window_end, revision, final, value, count, body) VALUES "
           "('%s', '%s', 1, 'pro', now() - interval '1 hour', now() - interval '55 minutes', "
           "1, true, 12, 12, '{\"value\": 12, \"revision\": 1, \"final\": true}')" %
           (tenant["tenantId"], rid))
    b, _ = call("summaries", "GET", "/analytics/summaries", None, rd, expect=200)
    f.check(isinstance(b, dict) and len(b.get("summaries", [])) == 1, "summaries: %r" % (b,))
    call("summaries of the rule", "GET", "/analytics/summaries?ruleId=%s&limit=5" % rid, None,
         rd, expect=200)
    call("summaries: bad limit", "GET", "/analytics/summaries?limit=0", None, rd, expect=400,
         code="invalid_parameter", field="limit")
    call("summaries: from after to", "GET",
         "/analytics/summaries?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", None, rd,
         expect=400, code="invalid_parameter", field="from")
    wpath = "/analytics/rules/{id}/windows"
    b, _ = call("windows", "GET", "/analytics/rules/%s/windows" % rid, None, rd, expect=200,
                doc_path=wpath)
    f.check(isinstance(b, dict) and len(b.get("windows", [])) == 1, "windows: %r" % (b,))
    call("windows of a group", "GET", "/analytics/rules/%s/windows?group=pro&limit=1" % rid,
         None, rd, expect=200, doc_path=wpath)
    call("windows: unknown rule", "GET", "/analytics/rules/%s/windows" % (rid[:-4] + "ffff"),
         None, rd, expect=404, code="not_found", doc_path=wpath)
    call("windows: bad from", "GET", "/analytics/rules/%s/windows?from=x" % rid, None, rd,
         expect=400, code="invalid_parameter", field="from", doc_path=wpath)
    exercise_stream(ck, sb, url, tenant, rid, rd, w_tok)
    # a backtest over stored events (written as the processor stores them): twelve signups of
    # plan pro in one minute two hours ago fire the rule (>= 10) and resolve it
    sb.sql("INSERT INTO events (tenant_id, message_id, event_type, user_id, occurred_at, "
           "received_at, properties) SELECT '%s', 'openapi-bt-' || i, 'signup', 'u' || i, "
           "date_trunc('minute', now() - interval '2 hours') + i * interval '1 second', now(), "
           "'{\"plan\": \"pro\"}' FROM generate_series(1, 12) i" % tenant["tenantId"])
    bpath = "/analytics/rules/{id}/backtest"
    rng = "from=%s&to=%s" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600)),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)))
    b, _ = call("backtest", "POST", "/analytics/rules/%s/backtest?%s" % (rid, rng), None, rd,
                expect=200, doc_path=bpath)
    f.check(isinstance(b, dict) and len(b.get("windows", [])) == 5 and
            [x.get("status") for x in b.get("summaries", [])] == ["firing", "resolved"],
            "backtest: %.400r" % (b,))
    call("backtest of version 1", "POST", "/analytics/rules/%s/backtest?version=1" % rid, None,
         rd, expect=200, doc_path=bpath)
    call("backtest: unknown rule", "POST", "/analytics/rules/%s/backtest" % (rid[:-4] + "ffff"),
         None, rd, expect=404, code="not_found", doc_path=bpath)
    call("backtest: bad from", "POST", "/analytics/rules/%s/backtest?from=x" % rid, None, rd,
         expect=400, code="invalid_parameter", field="from", doc_path=bpath)
    call("backtest: no token", "POST", "/analytics/rules/%s/backtest" % rid, None, {},
         expect=401, code="missing_credentials", doc_path=bpath)
    call("backtest: events:write only", "POST", "/analytics/rules/%s/backtest" % rid, None,
         {"Authorization": "Bearer " + w_tok}, expect=403, code="insufficient_scope",
         doc_path=bpath)
    call("delete: events:read only", "DELETE", "/analytics/rules/" + rid, None, rd, expect=403,
         code="insufficient_scope", doc_path=one)
    call("delete", "DELETE", "/analytics/rules/" + rid, None, an, expect=204, doc_path=one)
    call("delete again", "DELETE", "/analytics/rules/" + rid, None, an, expect=404,
         code="not_found", doc_path=one)
    call("get deleted", "GET", "/analytics/rules/" + rid, None, rd, expect=404,
         code="not_found", doc_path=one)
    log("c. analytics: %s" % ", ".join(
        "%s %s %s" % (m, p, sorted(ck.seen[(m, p)])) for m, p in sorted(ck.spec.served("analytics"))
        if p.startswith("/analytics")))


def exercise_tracked(ck, url, r_tok, w_tok, a_tok):
    """GET /properties/tracked, PUT and DELETE /properties/tracked/{path}: 2xx and each error
    class they can give here (409 by tracking up to the per-tenant limit)."""
    f = ck.f
    an = {"Authorization": "Bearer " + a_tok, "Content-Type": "application/json"}
    rd = {"Authorization": "Bearer " + r_tok}
    wr = {"Authorization": "Bearer " + w_tok}
    one = "/properties/tracked/{path}"

    def call(name, method, path, body=None, headers=None, expect=None, code=None, field=None):
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) \
            else body
        resp = request(method, url("query", path), data, headers or {})
        doc_path = one if path.startswith("/properties/tracked/") else path.split("?")[0]
        return ck.check(name, "query", method, doc_path, resp, expect=expect, code=code,
                        field=field), resp

    b, _ = call("track", "PUT", "/properties/tracked/plan", None, an, expect=201)
    f.check(isinstance(b, dict) and b.get("result") == "tracked" and b.get("cap") == 1000 and
            b.get("state") in ("backfilling", "complete"), "track: %r" % (b,))
    b, _ = call("track again", "PUT", "/properties/tracked/plan", None, an, expect=200)
    f.check(isinstance(b, dict) and b.get("result") == "unchanged", "track again: %r" % (b,))
    b, _ = call("new cap", "PUT", "/properties/tracked/plan", {"cap": 5}, an, expect=200)
    f.check(isinstance(b, dict) and b.get("result") == "retracked" and b.get("cap") == 5,
            "new cap: %r" % (b,))
    call("nested", "PUT", "/properties/tracked/address.city", {"cap": 10000}, an, expect=201)
    call("bad path", "PUT", "/properties/tracked/a..b", None, an, expect=400,
         code="invalid_parameter", field="path")
    call("not JSON", "PUT", "/properties/tracked/plan", b"{", an, expect=400,
         code="malformed_json")
    call("unknown member", "PUT", "/properties/tracked/plan", {"cap": 5, "colour": 1}, an,
         expect=400, code="unknown_field", field="colour")
    call("cap 0", "PUT", "/properties/tracked/plan", {"cap": 0}, an, expect=400,
         code="invalid_value", field="cap")
    call("cap too large", "PUT", "/properties/tracked/plan", {"cap": 10001}, an, expect=400,
         code="invalid_value", field="cap")
    call("a parameter", "PUT", "/properties/tracked/plan?x=1", None, an, expect=400,
         code="invalid_parameter", field="x")
    call("events:read only", "PUT", "/properties/tracked/plan", None, rd, expect=403,
         code="insufficient_scope")
    call("no token", "PUT", "/properties/tracked/plan", None, {}, expect=401,
         code="missing_credentials")
    b, _ = call("list", "GET", "/properties/tracked", None, rd, expect=200)
    f.check(isinstance(b, dict) and sorted(x.get("path") for x in b.get("trackedProperties", []))
            == ["address.city", "plan"], "list: %r" % (b,))
    call("list: a parameter", "GET", "/properties/tracked?limit=1", None, rd, expect=400,
         code="invalid_parameter", field="limit")
    call("list: events:write only", "GET", "/properties/tracked", None, wr, expect=403,
         code="insufficient_scope")
    call("list: no token", "GET", "/properties/tracked", None, {}, expect=401,
         code="missing_credentials")
    made = []
    for i in range(40):  # up to EVENTOPS_TRACKED_PROPERTIES_MAX (20), then one more
        st = call("fill %d" % i, "PUT", "/properties/tracked/p%d" % i, None, an)[1][0]
        if st != 201:
            break
        made.append("p%d" % i)
    call("past the limit", "PUT", "/properties/tracked/one.more", None, an, expect=409,
         code="too_many_tracked_properties")
    for p in made + ["address.city"]:
        call("untrack", "DELETE", "/properties/tracked/" + p, None, an, expect=204)
    call("untrack again", "DELETE", "/properties/tracked/p0", None, an, expect=404,
         code="not_found")
    call("untrack: bad path", "DELETE", "/properties/tracked/a%20b", None, an, expect=400,
         code="invalid_parameter", field="path")
    call("untrack: events:read only", "DELETE", "/properties/tracked/plan", None, rd,
         expect=403, code="insufficient_scope")
    call("untrack", "DELETE", "/properties/tracked/plan", None, an, expect=204)
    log("c. tracked properties: statuses %s" % sorted(
        ck.seen[("PUT", one)] | ck.seen[("DELETE", one)] |
        ck.seen[("GET", "/properties/tracked")]))


def exercise_profiles(ck, url, c, wk, r_tok, w_tok, stamp, sb):
    """GET /profiles/{userId} and /groups/{groupId}: 2xx for a profile, an alias and a group
    set by events sent to the collector, and each error class they can give here."""
    rd = {"Authorization": "Bearer " + r_tok}
    wr = {"Authorization": "Bearer " + w_tok}
    user, group = "oa-user-" + stamp, "oa-group-" + stamp
    evs = [{"eventType": "$identify", "userId": user, "messageId": "oa-p1-" + stamp,
            "properties": {"$set": {"plan": "pro"}, "$set_once": {"source": "ads"}}},
           {"eventType": "$create_alias", "userId": user, "messageId": "oa-p2-" + stamp,
            "properties": {"alias": "oa-anon-" + stamp}},
           {"eventType": "$groupidentify", "userId": user, "messageId": "oa-p3-" + stamp,
            "properties": {"$group_type": "company", "$group_key": group,
                           "$group_set": {"employees": 20}}}]
    st, _, body = eotest.post_json(c("/events/batch"), evs, key=wk)
    ck.f.check(st == 202, "profiles: seed batch %s %.200r" % (st, body))
    sb.wait_stored([e["messageId"] for e in evs], timeout=60)
    one, grp = "/profiles/{userId}", "/groups/{groupId}"

    def call(name, path, doc_path, headers, expect, code=None, field=None):
        resp = request("GET", url("query", path), None, headers)
        return ck.check(name, "query", "GET", doc_path, resp, expect=expect, code=code,
                        field=field)

    b = call("profile", "/profiles/" + user, one, rd, 200)
    ck.f.check(isinstance(b, dict) and b.get("traits") == {"plan": "pro", "source": "ads"},
               "profiles: traits %.200r" % (b,))
    call("profile of an alias", "/profiles/oa-anon-" + stamp, one, rd, 200)
    call("no profile", "/profiles/nobody-" + stamp, one, rd, 404, "not_found", "userId")
    call("id too long", "/profiles/" + "x" * 2000, one, rd, 400, "invalid_parameter", "userId")
    call("a parameter", "/profiles/%s?limit=1" % user, one, rd, 400, "invalid_parameter",
         "limit")
    call("events:write only", "/profiles/" + user, one, wr, 403, "insufficient_scope")
    call("no token", "/profiles/" + user, one, {}, 401)
    call("group", "/groups/" + group, grp, rd, 200)
    call("group of a type", "/groups/%s?groupType=company" % group, grp, rd, 200)
    call("no group", "/groups/%s?groupType=team" % group, grp, rd, 404, "not_found", "groupId")
    call("group: a parameter", "/groups/%s?type=x" % group, grp, rd, 400, "invalid_parameter",
         "type")
    call("group: no token", "/groups/" + group, grp, {}, 401)
    log("c. profiles: statuses %s" % sorted(ck.seen[("GET", one)] | ck.seen[("GET", grp)]))


def exercise_stream(ck, sb, url, tenant, rid, rd, w_tok):
    """GET /analytics/stream: a window result put on the windows topic read back from the
    beginning (each event checked against the document), and the refusals."""
    f = ck.f
    path = "/analytics/stream"
    value = json.dumps({"type": "analytics.window", "tenantId": tenant["tenantId"],
                        "rule": {"id": rid, "version": 1, "name": "openapi burst"}, "group": {},
                        "groupKey": "[]", "window": {"start": "2026-12-02T14:00:00Z",
                                                     "end": "2026-12-02T14:05:00Z"},
                        "aggregate": "count", "value": 12, "count": 12, "revision": 1,
                        "final": True, "emittedAt": "2026-12-02T14:05:01.000000Z"},
                       separators=(",", ":"))
    eotest.produce(sb.brokers, sb.windows_topic, [("%s:%s" % (tenant["tenantId"], rid), value)])
    start = "w%s-s%s" % (".".join(["0"] * sb.partitions),
                         ".".join(["0"] * max(1, sb.partitions // 2)))

    def stream(name, query, headers, expect, code=None, field=None, until=None):
        resp = stream_request(url("analytics", path + query), headers,
                              until or (lambda b: True))
        return ck.check(name, "analytics", "GET", path, resp, expect=expect, code=code,
                        field=field), resp

    body, resp = stream("stream from the beginning", "?rules=" + rid,
                        dict(rd, **{"Last-Event-ID": start}), 200,
                        until=lambda b: b"\ndata: " in b and b.endswith(b"\n\n"))
    events = sse_events(body if isinstance(body, bytes) else b"")
    f.check([e.get("data") for e in events] == [value] and
            events[0].get("event") == "window", "the stream from the beginning: %r" % events)
    f.check(resp[1].get("content-type", "").startswith("text/event-stream"),
            "stream Content-Type %r" % resp[1].get("content-type"))
    stream("stream from now", "", rd, 200, until=lambda b: b"retry: 2000" in b)
    stream("stream by lastEventId", "?lastEventId=" + start, rd, 200,
           until=lambda b: b"\ndata: " in b and b.endswith(b"\n\n"))
    stream("stream: rules not a UUID", "?rules=nope", rd, 400, code="invalid_parameter",
           field="rules")
    stream("stream: Last-Event-ID not an id", "", dict(rd, **{"Last-Event-ID": "nope"}), 400,
           code="invalid_parameter", field="Last-Event-ID")
    stream("stream: lastEventId not an id", "?lastEventId=w1", rd, 400,
           code="invalid_parameter", field="lastEventId")
    stream("stream: a parameter", "?limit=1", rd, 400, code="invalid_parameter", field="limit")
    stream("stream: unknown rule", "?rules=" + rid[:-4] + "ffff", rd, 404, code="not_found",
           field="rules")
    stream("stream: no token", "", {}, 401, code="missing_credentials")
    stream("stream: events:write only", "", {"Authorization": "Bearer " + w_tok}, 403,
           code="insufficient_scope")


def exercise_outages(ck, sb, url, wk, b_tok, both, has_query):
    f = ck.f
    dead_pg = bad_pg_dsn(sb.dsn)
    dead_redis = "redis://127.0.0.1:%d" % eotest.free_port()
    started = []

    def start(role, env, name):
        r = sb.role(role, extra_env=env, name=name)
        r.start()
        started.append(r)
        return r

    def wait_health(port, r):
        ok = eotest.wait_until(lambda: request("GET", url(None, "/healthz", port))[0] == 200,
                               30, interval=0.2)
        f.check(ok and r.running(), "%s did not answer /healthz within 30 s" % r.name)
        return ok

    # A: every role with PostgreSQL and Redis dead
    pa = {k: eotest.free_port() for k in ROLES}
    env_a = {"EVENTOPS_PG_DSN": dead_pg, "EVENTOPS_REDIS_URL": dead_redis,
             "EVENTOPS_COLLECTOR_PORT": pa["collector"],
             "EVENTOPS_PROCESSOR_PORT": pa["processor"], "EVENTOPS_AUTH_PORT": pa["auth"],
             "EVENTOPS_QUERY_PORT": pa["query"], "EVENTOPS_ANALYTICS_PORT": pa["analytics"],
             "EVENTOPS_ANALYTICS_GROUP": sb.analytics_group + "-nopg",
             "EVENTOPS_ANALYTICS_ID": sb.analytics_id + "-nopg",
             "EVENTOPS_PROCESSOR_GROUP": sb.group + "-nopg",
             "EVENTOPS_PROCESSOR_ID": sb.processor_id + "-nopg"}
    ra = start("all" if has_query else "collector", env_a, "all-no-pg")
    if not has_query:
        start("processor", env_a, "processor-no-pg")
        start("auth", env_a, "auth-no-pg")
    roles_a = [r for r in ROLES if r not in ("query", "analytics") or has_query]
    for role in roles_a:
        wait_health(pa[role], ra)
    for role in roles_a:
        ck.check("PostgreSQL down: readyz", role, "GET", "/readyz",
                 request("GET", url(None, "/readyz", pa[role])), expect=503)
    for path, body in (("/events", {"eventType": "e", "userId": "u"}),
                       ("/events/batch", [{"eventType": "e", "userId": "u"}])):
        ck.check("PostgreSQL down: write key", "collector", "POST", path,
                 request("POST", url(None, path, pa["collector"]), json.dumps(body).encode(),
                         {"Authorization": "Bearer " + wk, "Content-Type": "application/json"}),
                 expect=503, code="credentials_unavailable")
    ck.check("PostgreSQL down: token", "auth", "POST", "/oauth/token",
             request("POST", url(None, "/oauth/token", pa["auth"]),
                     b"grant_type=client_credentials",
                     {"Authorization": eotest.basic_auth(both["clientId"],
                                                         both["clientSecret"]),
                      "Content-Type": "application/x-www-form-urlencoded"}),
             expect=503, code="temporarily_unavailable")
    if has_query:
        for path in QUERY_PATHS:
            ck.check("PostgreSQL down: query", "query", "GET", path,
                     request("GET", url(None, path, pa["query"]), None,
                             {"Authorization": "Bearer " + b_tok}), expect=503)
        for path in ("/analytics/rules", "/analytics/summaries"):
            ck.check("PostgreSQL down: analytics", "analytics", "GET", path,
                     request("GET", url(None, path, pa["analytics"]), None,
                             {"Authorization": "Bearer " + b_tok}), expect=503)
        ck.check("PostgreSQL down: analytics", "analytics", "POST",
                 "/analytics/rules/{id}/backtest",
                 request("POST", url(None, "/analytics/rules/01a23718-33aa-7199-9beb-"
                                     "d5fdddba4619/backtest", pa["analytics"]), None,
                         {"Authorization": "Bearer " + b_tok}), expect=503)

    # B: a collector whose Kafka broker is not there
    pb = eotest.free_port()
    rb = start("collector", {"EVENTOPS_KAFKA_BROKERS": "127.0.0.1:%d" % eotest.free_port(),
                             "EVENTOPS_KAFKA_ACK_TIMEOUT_MS": "3000",
                             "EVENTOPS_COLLECTOR_PORT": pb}, "collector-no-kafka")
    wait_health(pb, rb)
    wh = {"Authorization": "Bearer " + wk, "Content-Type": "application/json"}
    for path, body in (("/events", {"eventType": "e", "userId": "u"}),
                       ("/events/batch", [{"eventType": "e", "userId": "u"}])):
        ck.check("Kafka down", "collector", "POST", path,
                 request("POST", url(None, path, pb), json.dumps(body).encode(), wh),
                 expect=503, code="kafka_unavailable")
    ck.check("Kafka down: readyz", "collector", "GET", "/readyz",
             request("GET", url(None, "/readyz", pb)), expect=503)
    # shutting_down: SIGTERM while an event waits for Kafka; a kept-alive connection's next
    # request is refused while the collector drains
    check_shutting_down(ck, rb, url(None, "/events", pb), url(None, "/healthz", pb), wh)

    # C: an auth role without signing keys, limited to one token request per second
    pc = eotest.free_port()
    empty = os.path.join(sb.dir, "no-keys")
    os.mkdir(empty, 0o700)
    # Redis off: its limit is its own (Redis holds the other instances' buckets of this address)
    rc = start("auth", {"EVENTOPS_AUTH_KEY_DIR": empty, "EVENTOPS_AUTH_PORT": pc,
                        "EVENTOPS_AUTH_IP_RATE": "1", "EVENTOPS_AUTH_IP_BURST": "1",
                        "EVENTOPS_REDIS_URL": ""}, "auth-no-keys")
    wait_health(pc, rc)
    ck.check("no signing key: readyz", "auth", "GET", "/readyz",
             request("GET", url(None, "/readyz", pc)), expect=503)
    body = ck.check("no signing key: jwks", "auth", "GET", "/.well-known/jwks.json",
                    request("GET", url(None, "/.well-known/jwks.json", pc)), expect=200)
    f.check(body == {"keys": []}, "jwks without keys: %r" % body)
    th = {"Authorization": eotest.basic_auth(both["clientId"], both["clientSecret"]),
          "Content-Type": "application/x-www-form-urlencoded"}
    ck.check("no signing key: token", "auth", "POST", "/oauth/token",
             request("POST", url(None, "/oauth/token", pc), b"grant_type=client_credentials",
                     th), expect=503, code="temporarily_unavailable")
    ck.check("address over its limit: token", "auth", "POST", "/oauth/token",
             request("POST", url(None, "/oauth/token", pc), b"grant_type=client_credentials",
                     th), expect=429)

    # D, E: query roles with Redis down and with no cache
    if has_query:
        for name, env, cache in (
                ("query-no-redis", {"EVENTOPS_REDIS_URL": dead_redis}, "down"),
                ("query-no-cache", {"EVENTOPS_QUERY_CACHE": "off"}, "off")):
            pq = eotest.free_port()
            rq = start("query", dict(env, EVENTOPS_QUERY_PORT=pq), name)
            wait_health(pq, rq)
            resp = request("GET", url(None, "/events/count", pq), None,
                           {"Authorization": "Bearer " + b_tok})
            ck.check(name + ": count", "query", "GET", "/events/count", resp, expect=200)
            f.check(resp[1].get("x-cache") == "bypass", "%s: X-Cache %r, expected bypass" %
                    (name, resp[1].get("x-cache")))
            # after the failed cache lookup: readiness says so, and is still 200
            body = ck.check(name + ": readyz", "query", "GET", "/readyz",
                            request("GET", url(None, "/readyz", pq)), expect=200)
            f.check(isinstance(body, dict) and body.get("cache") == cache,
                    "%s: readyz cache %r, expected %s" % (name, body, cache))
    for r in started:
        if r is not rb:  # stopped on purpose above
            f.check(r.running(), "%s exited during the test" % r.name)
        r.stop(timeout=30)
    log("c. outages: PostgreSQL and Redis down, Kafka down, no signing key%s" %
        (", Redis down / off for the query role" if has_query else ""))


# ---------------------------------------------------------------------------------------------

def check_shutting_down(ck, role, events_url, health_url, headers):
    import http.client
    import threading
    f = ck.f
    u = urllib.parse.urlsplit(health_url)
    keep = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        resp = eotest.http_request("GET", health_url, conn=keep)
        f.check(resp[0] == 200, "shutting down: GET /healthz before: %s" % resp[0])
        pending = []
        t = threading.Thread(target=lambda: pending.append(request(
            "POST", events_url, json.dumps({"eventType": "e", "userId": "u"}).encode(),
            headers)))
        t.start()
        time.sleep(0.5)  # the event is waiting for Kafka
        role.kill(signal.SIGTERM)
        time.sleep(0.3)
        resp = eotest.http_request("GET", health_url, conn=keep)
        ck.check("shutting down", "collector", "GET", "/healthz", resp, expect=503,
                 code="shutting_down")
        t.join(30)
        if f.check(pending, "shutting down: the waiting POST /events got no answer"):
            ck.check("shutting down: waiting event", "collector", "POST", "/events",
                     pending[0], expect=503, code="kafka_unavailable")
    except eotest.HttpError as e:
        f.fail("shutting down: %s" % e)
    finally:
        keep.close()
    code = role.stop(timeout=30)
    f.check(code == 0, "collector-no-kafka exited with %s after SIGTERM" % code)


def print_coverage(f, spec, ck, live):
    lines = []
    for path, item in spec.doc["paths"].items():
        for m in HTTP_METHODS:
            op = item.get(m)
            if op is None:
                continue
            if not set(op.get("x-eventops-role", [])) & set(live):
                continue
            documented = sorted(op.get("responses", {}))
            seen = sorted(str(s) for s in ck.seen[(m.upper(), path)])
            f.check(any(s.startswith("2") for s in seen),
                    "%s %s: no 2xx answer was seen" % (m.upper(), path))
            missing = [d for d in documented if d not in seen]
            lines.append("  %-6s %-42s seen %-32s not produced %s" %
                         (m.upper(), path, ",".join(seen), ",".join(missing) or "-"))
    log("coverage (documented statuses seen per operation):\n" + "\n".join(lines))
    log("generic answers checked: %s" % dict(ck.generic_seen))


def on_alarm(*_):
    raise TimeoutError("test_openapi.py ran past %d s" % TIME_BUDGET_S)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_BUDGET_S)
    sys.exit(main())
