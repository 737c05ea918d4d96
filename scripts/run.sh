#!/usr/bin/env bash
# `make run`: migrate, make sure a demo tenant with a write key exists, print a ready-to-paste
# curl command, then run every role in the foreground (`eventops all`). Expects the stack's
# settings in the environment (make run exports them from scripts/stack.sh env).
set -euo pipefail
bin=${1:?usage: run.sh path/to/eventops}
root=$(cd "$(dirname "$0")/.." && pwd)
stack_dir=${EVENTOPS_STACK_DIR:-$root/.stack}
key_file=$stack_dir/demo-write-key
port=${EVENTOPS_COLLECTOR_PORT:-8080}

"$bin" migrate

key=""
if [ -s "$key_file" ]; then
    key=$(cat "$key_file")
    key_id=${key%%.*}
    # the saved key is still good only if its id is listed as active
    if ! "$bin" admin list-tenants --json | grep -q "\"$key_id\""; then
        key=""
    fi
fi
if [ -z "$key" ]; then
    if "$bin" admin list-tenants --json | grep -q '"name":"demo"'; then
        out=$("$bin" admin create-write-key demo --json)
    else
        out=$("$bin" admin create-tenant demo --json)
    fi
    key=$(printf '%s' "$out" | sed -n 's/.*"writeKey":"\([^"]*\)".*/\1/p')
    umask 077
    printf '%s\n' "$key" > "$key_file"
fi

cat >&2 <<MSG

EventOps is starting: collector on http://127.0.0.1:$port, processor health on :${EVENTOPS_PROCESSOR_PORT:-8081}.
Demo tenant write key (also in $key_file):
  $key

Send an event:
  curl -i http://127.0.0.1:$port/events -H 'Authorization: Bearer $key' \\
    -H 'Content-Type: application/json' \\
    -d '{"eventType":"signup","userId":"user-1","properties":{"plan":"pro"}}'

See it stored:
  scripts/stack.sh psql -c 'SELECT event_type, user_id, occurred_at, properties FROM events'

Stop with Ctrl-C.

MSG
exec "$bin" all
