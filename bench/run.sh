#!/usr/bin/env bash
# The benchmark: edge-router beside nginx, HAProxy and Caddy on this machine (docs/BENCHMARKS.md).
#
# Usage: bench/run.sh [--quick] [extra bench.py options, e.g. --targets edge-router,nginx --modes keepalive]
#
# Builds edge-router in release mode, makes throwaway ECDSA P-256 certificates in a temp dir, starts three
# Node.js instances (bench/upstream.js) and a static nginx on 127.0.0.2-4, then each proxy in turn on its own
# loopback port, runs the loads interleaved (four rounds: A B C D, B C D A, C D A B, D A B C), and rewrites the results section of
# docs/BENCHMARKS.md (raw figures: bench/results/latest.json). Everything started is stopped by PID.
# --quick: one round, 5 s runs, 2,000 idle connections (a smoke test, not for the doc).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --bench
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "Building edge-router (release)…"
binary="$(scripts/build-release.sh)"

certs=$(mktemp -d -t edge-router-bench-certs-XXXXXX)
trap 'rm -rf "$certs"' EXIT
scripts/dev-certs.sh "$certs" localhost >/dev/null

args=(--doc docs/BENCHMARKS.md --json bench/results/latest.json)
if [[ "${1:-}" == "--quick" ]]; then
    shift
    args=(--rounds 1 --seconds 5 --handshake-seconds 3 --idle 2000 --json bench/results/quick.json)
fi
python3 bench/bench.py --binary "$binary" --certs "$certs" "${args[@]}" "$@"
