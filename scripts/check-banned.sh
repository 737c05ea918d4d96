#!/usr/bin/env bash
# Fails when a tracked C file calls a function STYLE.md bans (unbounded or unchecked forms).
set -euo pipefail
cd "$(dirname "$0")/.."
banned='(^|[^_[:alnum:]])(sprintf|vsprintf|strcpy|strcat|strncat|strtok|atoi|atol|atoll|gets)[[:space:]]*\('
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')
[ ${#files[@]} -eq 0 ] && exit 0
if grep -nE "$banned" "${files[@]}"; then
    echo "banned functions used (see STYLE.md: use snprintf, memcpy with lengths, strtol)" >&2
    exit 1
fi
echo "banned functions: none in ${#files[@]} files"
