#!/bin/sh
# Installs what the server and its tests need (Debian 12 or later; run as root or with sudo):
#   build: libmicrohttpd-dev libjansson-dev pkg-config
#   tests: curl jq wrk python3 (free ports), chromium, node + npm, and the npm packages in
#          tests/server/node (the official "openai" client and "playwright-core").
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
PKGS="libmicrohttpd-dev libjansson-dev pkg-config curl jq wrk python3 chromium ca-certificates"
# a node that is already there (e.g. from nodesource, which brings its own npm) is kept:
# Debian's npm package would conflict with it
command -v node >/dev/null || PKGS="$PKGS nodejs"
command -v npm >/dev/null || PKGS="$PKGS npm"
$SUDO apt-get install -y --no-install-recommends $PKGS
cd tests/server/node
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
