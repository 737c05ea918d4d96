#!/usr/bin/env bash
# Installs the project's Python test tools into .venv (ignored by git), pinned to exact versions:
# schemathesis for the contract tests (tests/contract/). Called by scripts/deps.sh. Idempotent:
# does nothing, and needs no network, when .venv already holds the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.venv

say() { printf 'venv: %s\n' "$*" >&2; }

installed_version() {
    "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))' \
        2>/dev/null || true
}

if [[ -x $VENV/bin/schemathesis && $(installed_version) == "$SCHEMATHESIS_VERSION" ]]; then
    say "schemathesis $SCHEMATHESIS_VERSION installed"
    exit 0
fi
if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
say "installing schemathesis==$SCHEMATHESIS_VERSION"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" </dev/null
say "done"
