#!/usr/bin/env bash
# ACME bench: edge-router vs Caddy, each against a fresh local Pebble, everything on 127.0.0.1.
#   (a) process start → first automatic certificate served and verified against Pebble's issuing root
#   (b) on the running server, a plain-HTTP domain switched to automatic HTTPS → its certificate served
# Usage: bench/acme-bench.sh [--rounds N] [--probe openssl|inprocess] [--interval S] [--only edge-router|caddy]
#                            [--json FILE] [--keep] [--no-build]
# Needs: swift, openssl, pebble (scripts/install-deps.sh), caddy (scripts/install-deps.sh --bench), python3.
# Every wait has a deadline (--timeout, 30 s); every process is stopped by PID; temp dirs are removed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=1
passthrough=()
for argument in "$@"; do
    if [[ "$argument" == "--no-build" ]]; then build=0; else passthrough+=("$argument"); fi
done

for tool in openssl pebble pebble-challtestsrv caddy python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found (scripts/install-deps.sh --bench installs pebble and caddy)" >&2
        exit 1
    fi
done

cd "$root"
if ((build)); then
    echo "# building: scripts/build-release.sh" >&2
    binary="$(scripts/build-release.sh)"
else
    binary="$(swift build -c release --show-bin-path)/edge-router"
fi
if [[ ! -x "$binary" ]]; then
    echo "error: $binary missing (run without --no-build)" >&2
    exit 1
fi

# The whole bench is bounded: 5 rounds take about a minute; a hang anywhere ends here at the latest.
exec timeout --signal=TERM --kill-after=15 900 python3 "$root/bench/acme_bench.py" --binary "$binary" "${passthrough[@]}"
