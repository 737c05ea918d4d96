#!/usr/bin/env bash
# Fails when a source file includes a header of a layer it may not depend on (docs/architecture.md,
# "Layers"). Each folder of src/ may include:
#   core/      core/                          infrastructure: no domain rules, no role
#   domain/    domain/, core/{buf,array,error,hmap,config}.h   pure logic: buffers, arrays, error
#                                             codes, hash maps and hashes, limits; and the
#                                             messages protoc-c makes of proto/eventops/ (eventops/)
#   access/    access/, core/, domain/        what the collector and query roles share to admit
#   stream/    stream/, core/, domain/        what the consuming roles share (Kafka consume-transform-
#                                             produce, group lag); never a role's folder
#   <role>/    its own folder, core/, domain/, access/, stream/   never another role's header
#   main.c     anything (subcommand dispatch)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="core domain access stream"
bad=0
while IFS= read -r file; do
    dir=${file#src/}
    dir=${dir%%/*}
    [[ $dir == main.c ]] && continue
    while IFS= read -r inc; do
        target=${inc%%/*}
        ok=0
        case $dir in
        core) [[ $target == core ]] && ok=1 ;;
        domain)
            [[ $target == domain || $inc == core/buf.h || $inc == core/error.h || $inc == core/array.h ||
                $inc == core/hmap.h || $inc == core/config.h || $target == eventops ]] && ok=1
            ;;
        access | stream)
            [[ $target == "$dir" || $target == core || $target == domain ]] && ok=1
            ;;
        *)
            [[ $target == "$dir" ]] && ok=1
            for s in $shared; do [[ $target == "$s" ]] && ok=1; done
            ;;
        esac
        if ((!ok)); then
            echo "$file includes \"$inc\": $dir/ may not depend on $target/" >&2
            bad=1
        fi
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(git ls-files 'src/*.c' 'src/*.h' 2>/dev/null || find src -name '*.[ch]')
((bad)) && exit 1
echo "layers: every include of src/ is allowed"
