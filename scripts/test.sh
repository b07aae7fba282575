#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
# One test at a time: the end-to-end suites start real processes and loads, time-outs are part of
# what they check, and Foundation's Process is not reliable when many are spawned at once.
swift test --skip-build --no-parallel "$@"

# The end-to-end suites once more against the release binary: optimisation changes object lifetimes
# around OpenSSL calls, and only a release build shows such a bug.
if [[ $# -eq 0 ]]; then
    binary="$(scripts/build-release.sh)"
    EDGE_ROUTER_BINARY="$binary" \
        swift test --skip-build --no-parallel \
        --filter "GatewayEndToEndTests|ACMEGatewayToggleTests|CheckCommandTests|CertsCommandTests"
fi
