#!/usr/bin/env bash
# Installs what hearth needs to build and test on Debian/Ubuntu (run as root or with sudo).
#   scripts/deps.sh          build dependencies (compiler, cmake, libmicrohttpd, jansson)
#   scripts/deps.sh --test   also the test tools (clang + libFuzzer runtime, curl, chromium, node)
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(clang libclang-rt-14-dev curl python3 chromium nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # a machine with a newer Node.js than Debian's keeps its own: npm may then be absent from apt's view
    $SUDO apt-get install -y -qq "${missing[@]}" || {
        filtered=()
        for p in "${missing[@]}"; do case $p in nodejs|npm) command -v "$p" >/dev/null || command -v node >/dev/null || filtered+=("$p");; *) filtered+=("$p");; esac; done
        [ ${#filtered[@]} -eq 0 ] || $SUDO apt-get install -y -qq "${filtered[@]}"
    }
fi
