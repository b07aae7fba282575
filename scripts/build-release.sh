#!/usr/bin/env bash
# Builds the release binary and prints its path. Every script that needs the release binary (demo,
# tests, benchmarks) builds it here, so all of them run the same build.
#
# `-enforce-exclusivity=unchecked` for every module, SwiftNIO's included: the release binary skips
# Swift's dynamic exclusivity checks (swift_beginAccess), about 3 % of the user time of a proxied
# keep-alive request by the profile, most of it inside NIO's channel code. Debug builds, which run the
# whole test suite, keep the checks (Package.swift sets the same only for RoutingService's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release -Xswiftc -enforce-exclusivity=unchecked)
swift build "${flags[@]}" --product edge-router >&2
echo "$(swift build "${flags[@]}" --show-bin-path)/edge-router"
