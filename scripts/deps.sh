#!/usr/bin/env bash
# Installs the Debian 12 packages EventOps needs to build, test and run its local stack
# (scripts/stack.sh), then the pinned Python test tools into .venv (scripts/venv.sh) and the
# pinned Node.js SDKs into .node-sdks (scripts/node-sdks.sh). Does nothing, and needs no network,
# when all of them are installed.
# Uses sudo when not run as root. Non-interactive: safe in CI (no stdin).
set -euo pipefail

REQUIRED=(
    build-essential cmake ninja-build pkg-config clang clang-format
    librdkafka-dev libmicrohttpd-dev libhiredis-dev libjansson-dev libroaring-dev libpq-dev libssl-dev
    zlib1g-dev libcmocka-dev libcurl4-openssl-dev libargon2-dev
    libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
    postgresql-15 postgresql-client-15 redis-server kcat wrk prometheus
    maven openjdk-17-jre-headless
    python3 python3-venv python3-cryptography python3-jsonschema python3-confluent-kafka
    curl ca-certificates uuid-runtime procps iproute2
)
# libFuzzer and sanitizer runtimes for clang 14; installed only where the archive has it.
OPTIONAL=(libclang-rt-14-dev)

say() { printf 'deps: %s\n' "$*" >&2; }

installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# True when the local package lists offer a version of $1 (no network).
available() {
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
    [[ -n $candidate && $candidate != "(none)" ]]
}

lists_empty() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

missing=()
for pkg in "${REQUIRED[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
# Node.js and npm for the SDK tests: Debian's, unless the machine has its own (NodeSource's
# nodejs carries npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    installed nodejs || missing+=(nodejs)
    installed npm || command -v npm >/dev/null || missing+=(npm)
fi
optional_missing=()
for pkg in "${OPTIONAL[@]}"; do
    installed "$pkg" || optional_missing+=("$pkg")
done

if ((${#missing[@]} == 0 && ${#optional_missing[@]} == 0)); then
    say "all packages installed"
    "$(dirname "$0")/venv.sh"
    exec "$(dirname "$0")/node-sdks.sh"
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { say "not root and no sudo: cannot install ${missing[*]}"; exit 1; }
    SUDO=(sudo -n)
fi
apt_get() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" </dev/null; }

# A missing optional package alone triggers 'apt-get update' only when the lists are empty;
# otherwise the local lists already say whether the archive has it.
if ((${#missing[@]} > 0)) || lists_empty; then
    say "apt-get update"
    apt_get update -q
fi
for pkg in "${optional_missing[@]}"; do
    if available "$pkg"; then
        missing+=("$pkg")
    else
        say "$pkg is not in the package lists: skipped"
    fi
done

if ((${#missing[@]} > 0)); then
    say "installing: ${missing[*]}"
    apt_get install -y -q --no-install-recommends "${missing[@]}"
fi
say "done"
"$(dirname "$0")/venv.sh"
"$(dirname "$0")/node-sdks.sh"
