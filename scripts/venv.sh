#!/usr/bin/env bash
# Installs the project's Python test tools into .venv (ignored by git), pinned to exact versions:
# schemathesis for the contract tests (tests/contract/), the unmodified Segment and PostHog
# SDKs that tests/e2e/test_compat_sdks.py points at the collector, and grpcio (with grpcio-tools
# and grpcio-status) for tests/e2e/test_grpc_ingest.py. Called by scripts/deps.sh.
# Idempotent: does nothing, and needs no network, when .venv already holds the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

# distribution==version, as pip takes them
PINNED=(
    schemathesis==4.32.5
    segment-analytics-python==2.4.0
    posthog==7.91.1
    grpcio==1.85.1
    grpcio-tools==1.85.1
    grpcio-status==1.85.1
)
VENV=.venv

say() { printf 'venv: %s\n' "$*" >&2; }

# True when .venv holds distribution $1 at version $2.
has_version() {
    [[ $("$VENV/bin/python" -c 'import sys
from importlib.metadata import version
print(version(sys.argv[1]))' "$1" 2>/dev/null || true) == "$2" ]]
}

missing=()
if [[ -x $VENV/bin/python ]]; then
    for pin in "${PINNED[@]}"; do
        has_version "${pin%%==*}" "${pin#*==}" || missing+=("$pin")
    done
else
    say "creating $VENV"
    python3 -m venv "$VENV"
    missing=("${PINNED[@]}")
fi
if ((${#missing[@]} == 0)); then
    say "installed: ${PINNED[*]}"
    exit 0
fi
say "installing ${missing[*]}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" </dev/null
say "done"
