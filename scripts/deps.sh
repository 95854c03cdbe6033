#!/usr/bin/env bash
# Installs what hearth needs to build and test on Debian/Ubuntu (run as root or with sudo).
#   scripts/deps.sh          build dependencies (compiler, cmake, libmicrohttpd, jansson)
#   scripts/deps.sh --test   also clang + its libFuzzer runtime, and the AArch64 cross compiler
#                            + qemu-user for scripts/arm-check.sh (the server's test tools: .ci/deps-server.sh)
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev python3)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(clang libclang-rt-14-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi
