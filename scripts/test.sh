#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
# Loads and processes in the end-to-end tests are bounded; the parallel runner is kept because
# the suites choose their own free ports.
swift test --skip-build "$@"
