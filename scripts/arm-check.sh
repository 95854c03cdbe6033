#!/usr/bin/env bash
# AArch64 check on an x86-64 machine: cross-builds hearth with Debian's aarch64 gcc
# (cmake/aarch64-linux-gnu.cmake, -Werror) and runs the kernel and reference tests under
# qemu-user, twice for the kernels: on an emulated CPU with the dot-product extension
# (QEMU_CPU=max: mm_neon_dot.c's SDOT kernels) and on a Cortex-A53 (Armv8.0: base NEON,
# mm_neon.c). test_reference then checks the NEON build's logits (NEON matmuls and
# attention, attn_neon.c) against the peer's, and test_kv's basic part the cache paths.
# The tests that start the hearth binary go through the emulator (tests/CMakeLists.txt).
# The long engine tests (the rest of test_kv, test_cli, ...) are left to the native run: under
# emulation they take tens of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-arm}
J=$(nproc)
for c in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v $c >/dev/null || { echo "arm-check: $c missing (scripts/deps.sh --test installs it)" >&2; exit 1; }
done
cmake -S . -B "$B" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DHEARTH_WERROR=ON -DHEARTH_SERVER=OFF -DHEARTH_CUDA=OFF >/dev/null
cmake --build "$B" -j"$J" --target hearth test_simd test_quant test_reference test_tokenizer test_gguf test_kv
cd "$B"
simd() { # $1: qemu CPU, $2: the level test_simd must report
    echo "== test_simd on qemu -cpu $1"
    local out
    out=$(QEMU_CPU=$1 qemu-aarch64 -L /usr/aarch64-linux-gnu ./bin/test_simd 2>&1) || { echo "$out" | grep -v "worst error" | tail -20; exit 1; }
    echo "$out" | grep -q "SIMD level detected: $2\$" || { echo "arm-check: expected SIMD level $2, got: $(echo "$out" | grep detected)" >&2; exit 1; }
    echo "$out" | tail -1
}
simd max neon+dotprod
simd cortex-a53 neon
echo "== quant, reference logits, KV cache basics, tokenizer, gguf (qemu -cpu max)"
QEMU_CPU=max ctest --output-on-failure -j"$J" --timeout 900 -R "^(test_quant|test_reference|test_kv_basic|test_tokenizer|test_gguf)$"
echo "arm-check: passed"
