#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
# One test at a time: the end-to-end suites start real processes and loads, time-outs are part of
# what they check, and Foundation's Process is not reliable when many are spawned at once.
swift test --skip-build --no-parallel "$@"

if [[ $# -eq 0 ]]; then
    # The end-to-end suites once more against the release binary: optimisation changes object lifetimes
    # around OpenSSL calls, and only a release build shows such a bug.
    binary="$(scripts/build-release.sh)"
    EDGE_ROUTER_BINARY="$binary" \
        swift test --skip-build --no-parallel \
        --filter "GatewayEndToEndTests|ACMEGatewayToggleTests|CheckCommandTests|CertsCommandTests"

    # The unit tests once more under AddressSanitizer: they drive the code that hands pointers to OpenSSL
    # and nghttp2 (TLS over in-memory pairs, HTTP/2 sessions, the parsers working in place), where a
    # use-after-free or an overrun would not fail an ordinary test. An optimised build: in a debug one the
    # standard library's generic pointer reads are calls into the uninstrumented library, and a read of a
    # freed ByteBuffer goes unseen. Leak checking is off: handlers tested on an EmbeddedChannel that a test
    # does not finish stay in a reference cycle with their pipeline. The integration suites stay out of
    # this pass: some bound the memory a transfer makes a process grow, which the sanitizer's quarantine
    # of freed memory inflates.
    sanitized=(-c release --sanitize=address -Xswiftc -enable-testing --scratch-path .build-asan)
    swift build --build-tests "${sanitized[@]}"
    ASAN_OPTIONS="detect_leaks=0:suppressions=$PWD/scripts/asan-suppressions.txt" \
        swift test --skip-build --no-parallel "${sanitized[@]}" --filter RoutingServiceTests
fi
