#!/usr/bin/env python3
"""Contract test of one role: starts it in a sandbox (tests/e2e/eotest.py), then runs
schemathesis (pinned in scripts/venv.sh, installed into .venv by scripts/deps.sh) against the
OpenAPI document the role serves at GET /openapi.json: every check (schemathesis.toml says
which check is excluded for which operation, and why), a fixed seed, a bounded number of
examples per operation, and credentials where operations need them (a write key for the
collector, a token with both scopes for the query role, one with events:read and
analytics:write for the analytics role, client credentials for the token endpoint). Exit code
0 = schemathesis found no failure and the role ran to the end cleanly.

usage: run_contract.py ROLE   (collector, processor, auth, query or analytics)
Settings come from the environment (`eval "$(scripts/stack.sh env)"`, EVENTOPS_BIN);
EVENTOPS_SCHEMATHESIS names the schemathesis program (default .venv/bin/schemathesis)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import eotest  # noqa: E402
from eotest import log  # noqa: E402

ROLES = ("collector", "processor", "auth", "query", "analytics")
SEED = 20260401
MAX_EXAMPLES = 100  # per operation and phase: about 1.5 minutes for the four roles
TIME_BUDGET_S = 420  # schemathesis's own run; ctest's timeout is 600 s


def make_credentials(sb, role):
    """Signing key, tenant and client for role, made before it starts (the auth role needs a
    signing key to be ready). Returns them for authorization()."""
    if role == "processor":
        return None
    sb.create_signing_key()
    tenant = sb.create_tenant("contract")
    # a generous client: the contract is about answers, not about throttling the test
    scopes = ["events:read", "analytics:write"] if role == "analytics" else \
        ["events:write", "events:read"]
    client = sb.create_client("contract", scopes, rate=100000, burst=100000, name="contract")
    return tenant, client


def authorization(sb, role, made):
    """The Authorization header schemathesis sends to role (None: it needs none)."""
    if made is None:
        return None
    tenant, client = made
    if role == "collector":
        return "Bearer " + tenant["writeKey"]
    if role == "auth":
        return eotest.basic_auth(client["clientId"], client["clientSecret"])
    return "Bearer " + sb.token(client["clientId"], client["clientSecret"])


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ROLES:
        print(__doc__)
        return 2
    role = sys.argv[1]
    st = os.environ.get("EVENTOPS_SCHEMATHESIS") or os.path.join(ROOT, ".venv", "bin",
                                                                  "schemathesis")
    if not os.access(st, os.X_OK):
        print("%s is missing: run scripts/deps.sh (it installs schemathesis into .venv)" % st)
        print("FAILED")
        return 1
    extra = {"EVENTOPS_AUTH_IP_RATE": "100000", "EVENTOPS_AUTH_IP_BURST": "100000"}
    with eotest.Sandbox("contract-" + role, extra_env=extra) as sb:
        f = sb.failures
        made = make_credentials(sb, role)
        roles = [sb.role(role)]
        if role in ("query", "analytics"):
            roles.append(sb.auth())  # mints the role's token
        for r in roles:
            r.start()
        for r in roles:
            r.wait_ready(60)
        auth = authorization(sb, role, made)
        base = "http://127.0.0.1:%d" % roles[0].port
        cmd = [st, "--config-file", os.path.join(HERE, "schemathesis.toml"), "run",
               base + "/openapi.json", "--url", base, "--seed", str(SEED),
               "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--request-timeout", "30",
               "--report", "junit", "--report-dir", sb.dir]
        shown = list(cmd)
        if auth:
            cmd += ["-H", "Authorization: " + auth]
            shown += ["-H", "Authorization: ..."]
        # contract_hooks.py: a body sent with `Content-Encoding: gzip` is gzip-compressed
        env = dict(os.environ, SCHEMATHESIS_HOOKS="contract_hooks",
                   PYTHONPATH=os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH"))
                                              if p))
        log("running %s" % " ".join(shown))
        try:
            code = subprocess.run(cmd, cwd=sb.dir, env=env, timeout=TIME_BUDGET_S).returncode
        except subprocess.TimeoutExpired:
            code = "a timeout after %d s" % TIME_BUDGET_S
        f.check(code == 0, "schemathesis against the %s role: exit %s" % (role, code))
        sb.check_clean_end(running=roles)
        return sb.report("contract/%s: schemathesis against GET /openapi.json of the %s role" %
                         (role, role))


if __name__ == "__main__":
    sys.exit(main())
