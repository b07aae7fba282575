#!/usr/bin/env bash
# Reload benchmark: reload latency (validate + diff + swap, timed around the admin API's
# POST /config/reload) with a generated configuration of 10,000 domains and 1,000 services, and the
# p99 request latency under wrk while the configuration is reloaded every ~200 ms, against a run
# without reloads. Results are printed as Markdown (redirect them into docs/BENCHMARKS-reload.md).
#
#   bench/reload-bench.sh                 # release binary (built if missing), defaults below
#   BIN=.build/debug/edge-router DOMAINS=2000 bench/reload-bench.sh
#
# Needs: swift, python3, node, wrk, curl. Binds only loopback; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$(scripts/build-release.sh)}
exec python3 bench/reload_bench.py --binary "$BIN" \
  --domains "${DOMAINS:-10000}" --services "${SERVICES:-1000}" \
  --reloads "${RELOADS:-30}" --wrk-seconds "${WRK_SECONDS:-15}" --connections "${CONNECTIONS:-32}" \
  --interval-ms "${INTERVAL_MS:-200}"
