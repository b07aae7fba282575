#!/usr/bin/env bash
# Installs what edge-router's build, demo and tests need and the machine lacks (Debian 12, as root).
# Usage: scripts/install-deps.sh [--bench]   (--bench adds the anchors nginx, HAProxy and Caddy)
set -euo pipefail

# command-or-file → Debian package
declare -A wanted=(
    [pkg-config]=pkg-config
    [/usr/include/openssl/ssl.h]=libssl-dev
    [/usr/include/nghttp2/nghttp2.h]=libnghttp2-dev
    [openssl]=openssl
    [curl]=curl
    [node]=nodejs
    [wrk]=wrk
    [h2load]=nghttp2-client
    [pebble]=pebble
    [ps]=procps
)
if [[ "${1:-}" == "--bench" ]]; then
    wanted[nginx]=nginx-light
    wanted[haproxy]=haproxy
    wanted[caddy]=caddy
fi

missing=()
for thing in "${!wanted[@]}"; do
    if [[ "$thing" == /* ]]; then
        [[ -e "$thing" ]] || missing+=("${wanted[$thing]}")
    else
        command -v "$thing" >/dev/null 2>&1 || [[ -x "/usr/sbin/$thing" ]] || missing+=("${wanted[$thing]}")
    fi
done

if ((${#missing[@]} > 0)); then
    echo "Installing missing packages: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: run as root (or install these packages yourself): ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian starts daemons on install; keep nginx/haproxy from grabbing ports on the machine.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
