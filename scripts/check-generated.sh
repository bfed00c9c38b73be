#!/usr/bin/env bash
# Fails when the committed generated Go code or OpenAPI document differs from what the .proto
# files generate now, or when a generated file has no .proto (or the reverse).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go tool -modfile=tools/go.mod buf generate -o "$tmp"
status=0
while IFS= read -r f; do
  if ! cmp -s "$f" "$tmp/$f"; then
    echo "generated code is stale: $f (run 'make generate')"
    status=1
  fi
done < <(find proto -name '*.pb.go' | sort; find openapi -name '*.json' | sort)
while IFS= read -r f; do
  if [ ! -f "$f" ]; then
    echo "generated file missing from the tree: $f (run 'make generate')"
    status=1
  fi
done < <(cd "$tmp" && { find proto -name '*.pb.go'; find openapi -name '*.json'; } | sort)
[ "$status" -eq 0 ] && echo "generated code matches the .proto files"
exit "$status"
