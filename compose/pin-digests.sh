#!/bin/sh
# Pin the stack's images by digest: `name:tag` -> `name:tag@sha256:…` in
# docker-compose.yml, docker-compose.ha.yml and the Dockerfile's FROM lines.
#
#   ./pin-digests.sh              every tag listed in digests-pending.txt
#   ./pin-digests.sh NAME:TAG...  these tags (after a tag was changed by hand: remove
#                                 its old @sha256:… first)
#
# Needs Docker with buildx (or a daemon to pull with) and the registries' network. The
# digest is the one the registry serves for the tag (the multi-platform index when
# there is one), so every platform pulls exactly what was pinned. A tag that does not
# resolve stops the script before anything is written for it.
set -eu
cd "$(dirname "$0")"
FILES="docker-compose.yml docker-compose.ha.yml Dockerfile"
PENDING=digests-pending.txt

resolve() {
    digest=$(docker buildx imagetools inspect --format '{{.Manifest.Digest}}' "$1" 2>/dev/null) \
        || digest=$(docker pull -q "$1" >/dev/null \
                    && docker image inspect --format '{{index .RepoDigests 0}}' "$1" | sed 's/.*@//') \
        || digest=""
    case "$digest" in
        sha256:*) ;;
        *) echo "pin-digests: cannot resolve $1" >&2; return 1 ;;
    esac
    [ "${#digest}" -eq 71 ] || { echo "pin-digests: $1: odd digest '$digest'" >&2; return 1; }
    printf '%s\n' "$digest"
}

if [ "$#" -eq 0 ]; then
    set -- $(grep -v '^[[:space:]]*\(#\|$\)' "$PENDING" || true)
fi
[ "$#" -gt 0 ] || { echo "pin-digests: nothing pending"; exit 0; }

for ref in "$@"; do
    digest=$(resolve "$ref")
    pattern=$(printf '%s' "$ref" | sed 's/[][\.*^$/]/\\&/g')
    replacement=$(printf '%s' "$ref" | sed 's/[\/&]/\\&/g')
    found=0
    for f in $FILES; do
        # `image: REF` at the end of a line, or `FROM REF` followed by a blank or the end.
        if grep -Eq "(image:[[:space:]]*|FROM[[:space:]]+)${pattern}([[:space:]]|$)" "$f"; then
            sed -E -i.bak "s/(image:[[:space:]]*|FROM[[:space:]]+)${pattern}([[:space:]]|$)/\\1${replacement}@${digest}\\2/" "$f"
            rm -f "$f.bak"
            found=1
        fi
    done
    [ "$found" -eq 1 ] || { echo "pin-digests: no image $ref in $FILES" >&2; exit 1; }
    grep -vxF "$ref" "$PENDING" > "$PENDING.tmp" || true
    mv "$PENDING.tmp" "$PENDING"
    echo "$ref@$digest"
done
