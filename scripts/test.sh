#!/usr/bin/env bash
# The whole test suite on a fresh machine: install dependencies, build with -Werror, run
# ctest, run it again under AddressSanitizer + UBSan, check the AArch64 build under qemu,
# then fuzz the GGUF reader for a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
.ci/deps-server.sh   # the server tests' tools: curl, jq, wrk, chromium, node + the npm packages
J=$(nproc)

echo "== release build (-Werror) and tests"
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=Release -DHEARTH_WERROR=ON >/dev/null
cmake --build build-ci -j"$J"
(cd build-ci && ctest --output-on-failure -j"$J")

echo "== AddressSanitizer + UBSan build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_WERROR=ON -DHEARTH_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$J"
# the server tests (label "server": timing-based queue and load checks) run in the release pass only
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$J" --timeout 1500 -LE server)

echo "== AArch64: cross build, NEON kernels and reference logits under qemu"
scripts/arm-check.sh

echo "== fuzzing the GGUF reader"
FUZZ_TIME=${FUZZ_TIME:-60} .ci/fuzz.sh
echo "all tests passed"
