#!/usr/bin/env bash
# Fails when any tracked C file differs from what clang-format (.clang-format) would write.
set -euo pipefail
clang_format=${1:-clang-format}
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')
[ ${#files[@]} -eq 0 ] && exit 0
"$clang_format" --dry-run -Werror "${files[@]}"
echo "clang-format: ${#files[@]} files formatted"
