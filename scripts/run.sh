#!/usr/bin/env bash
# `make run`: migrate, make sure a demo tenant with a write key exists, print a ready-to-paste
# curl command, then run every role in the foreground (`eventops all`). Expects the stack's
# settings in the environment (make run exports them from scripts/stack.sh env).
set -euo pipefail
bin=${1:?usage: run.sh path/to/eventops}
root=$(cd "$(dirname "$0")/.." && pwd)
stack_dir=${EVENTOPS_STACK_DIR:-$root/.stack}
key_file=$stack_dir/demo-write-key
client_file=$stack_dir/demo-client
port=${EVENTOPS_COLLECTOR_PORT:-8080}
auth_port=${EVENTOPS_AUTH_PORT:-8082}
query_port=${EVENTOPS_QUERY_PORT:-8083}
analytics_port=${EVENTOPS_ANALYTICS_PORT:-8084}
export EVENTOPS_AUTH_KEY_DIR=${EVENTOPS_AUTH_KEY_DIR:-$stack_dir/keys}

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

# A token signing key for the auth role (private keys stay under .stack/, never in git).
if [ -z "$(ls -A "$EVENTOPS_AUTH_KEY_DIR" 2>/dev/null)" ]; then
    "$bin" admin create-signing-key --dir "$EVENTOPS_AUTH_KEY_DIR" >/dev/null
fi

# A demo OAuth client (id and secret saved in $client_file, one per line), unless the saved one
# is still listed as active with every scope (one saved before the analytics role had none of
# analytics:write, and is replaced).
client_id="" client_secret=""
if [ -s "$client_file" ]; then
    client_id=$(sed -n 1p "$client_file")
    client_secret=$(sed -n 2p "$client_file")
    if ! "$bin" admin list-clients --tenant demo --json |
        grep -q "\"clientId\":\"$client_id\"[^}]*\"analytics:write\"[^}]*\"revokedAt\":null"; then
        client_id=""
    fi
fi
if [ -z "$client_id" ]; then
    out=$("$bin" admin create-client --tenant demo --scopes events:write,events:read,analytics:write \
        --json)
    client_id=$(printf '%s' "$out" | sed -n 's/.*"clientId":"\([^"]*\)".*/\1/p')
    client_secret=$(printf '%s' "$out" | sed -n 's/.*"clientSecret":"\([^"]*\)".*/\1/p')
    umask 077
    printf '%s\n%s\n' "$client_id" "$client_secret" > "$client_file"
fi

cat >&2 <<MSG

EventOps is starting: collector on http://127.0.0.1:$port, auth on http://127.0.0.1:$auth_port,
query on http://127.0.0.1:$query_port, analytics on http://127.0.0.1:$analytics_port,
processor health on :${EVENTOPS_PROCESSOR_PORT:-8081}.

Demo tenant OAuth client (also in $client_file): $client_id
Get an access token, then send an event with it:
  TOKEN=\$(curl -s -u '$client_id:$client_secret' \\
    -d grant_type=client_credentials http://127.0.0.1:$auth_port/oauth/token |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  curl -i http://127.0.0.1:$port/events -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' \\
    -d '{"eventType":"signup","userId":"user-1","properties":{"plan":"pro"}}'

Or with the demo tenant's write key (also in $key_file):
  curl -i http://127.0.0.1:$port/events -H 'Authorization: Bearer $key' \\
    -H 'Content-Type: application/json' \\
    -d '{"eventType":"signup","userId":"user-1","properties":{"plan":"pro"}}'

Ask about it (the token has events:read too; README.md shows every query):
  curl -s "http://127.0.0.1:$query_port/events/count?eventType=signup" -H "Authorization: Bearer \$TOKEN"
  curl -s "http://127.0.0.1:$query_port/events/trend?eventType=signup&interval=hour&tz=Europe/Berlin" \\
    -H "Authorization: Bearer \$TOKEN"

Make a rule and read its summary events (the token has analytics:write; docs/analytics.md):
  curl -s http://127.0.0.1:$analytics_port/analytics/rules -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{"name":"signup burst","eventType":"signup",
    "window":{"type":"sliding","size":"5m"},"aggregate":{"fn":"count"},
    "condition":{"op":">=","value":100}}'
  curl -s http://127.0.0.1:$analytics_port/analytics/summaries -H "Authorization: Bearer \$TOKEN"

See it stored:
  scripts/stack.sh psql -c 'SELECT event_type, user_id, occurred_at, properties FROM events'

Stop with Ctrl-C.

MSG
exec "$bin" all
