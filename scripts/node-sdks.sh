#!/usr/bin/env bash
# Installs the unmodified Node.js SDKs of Segment and PostHog, pinned to exact versions, into
# .node-sdks/ (ignored by git) for tests/e2e/test_compat_sdks.py. Called by scripts/deps.sh.
# Idempotent: does nothing, and needs no network, when .node-sdks already holds the pinned
# versions. Needs node and npm (scripts/deps.sh installs Debian's when there are none); both
# SDKs at these versions ask for Node.js 20 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."

PINNED=(
    @segment/analytics-node@3.1.0
    posthog-node@5.74.0
)
DIR=.node-sdks

say() { printf 'node-sdks: %s\n' "$*" >&2; }

# The version of package $1 in $DIR, or nothing.
installed_version() {
    local manifest=$DIR/node_modules/$1/package.json
    [[ -f $manifest ]] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version)' "$PWD/$manifest"
}

command -v node >/dev/null && command -v npm >/dev/null ||
    { say "node and npm are needed (scripts/deps.sh installs them)"; exit 1; }
missing=()
for pin in "${PINNED[@]}"; do
    name=${pin%@*}
    [[ $(installed_version "$name") == "${pin##*@}" ]] || missing+=("$pin")
done
if ((${#missing[@]} == 0)); then
    say "installed: ${PINNED[*]}"
    exit 0
fi
mkdir -p "$DIR"
[[ -f $DIR/package.json ]] || printf '{"private": true}\n' >"$DIR/package.json"
say "installing ${missing[*]} (node $(node --version))"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error --save-exact "${missing[@]}" </dev/null
say "done"
