#!/usr/bin/env bash
# Reference-count operations and allocations per request, HTTP/2 stream and TLS connection, counted with
# uprobes (docs/BENCHMARKS.md, "Request path, counted"). As root; needs perf (Debian: linux-perf).
#
# Usage: bench/count-ops.sh [--loads keepalive,h2,resume,full] [NAME=BINARY ...]
#   Builds this tree in release mode and counts it as "tree"; each NAME=BINARY (another build, e.g. of the
#   commit before a change) is counted the same way, one after the other, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
command -v perf >/dev/null || { echo "count-ops: perf is missing (apt-get install -y linux-perf)" >&2; exit 1; }

loads=()
if [[ "${1:-}" == "--loads" ]]; then loads=(--loads "$2"); shift 2; fi
binaries=(--binary "tree=$(scripts/build-release.sh)")
for build in "$@"; do binaries+=(--binary "$build"); done

certs=$(mktemp -d -t edge-router-count-certs-XXXXXX)
trap 'rm -rf "$certs"' EXIT
scripts/dev-certs.sh "$certs" localhost >/dev/null
python3 bench/count_ops.py --certs "$certs" "${binaries[@]}" "${loads[@]}"
