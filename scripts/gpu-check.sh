#!/usr/bin/env bash
# GPU evidence, run on a machine with an NVIDIA card (the device machine): builds with CUDA
# unless BUILD points at a finished build, then
#   1. test_gpu: GPU logits against CPU logits for every model in testdata/ (K/V pairs, flash
#      and plain attention, full and partial offload, decode, context shift), as a table;
#      gpu_pp_attn check: prompt attention against cpu_attn_flash (every cache type, head 64/128);
#   2. test_gpu split on two virtual device slots (the several-card path on one card);
#      the same test (three models) under compute-sanitizer memcheck;
#   3. with BENCH=1, hearth bench on a Mistral-7B-shaped random Q8_0 model made by hearth synth.
# Results go to OUT (default ./gpu-out): gpu-report.md, test_gpu.log, sanitizer.log, bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BUILD=${BUILD:-}
if [ -z "$BUILD" ]; then
    BUILD=build-gpu
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DHEARTH_CUDA=ON -DHEARTH_SERVER=OFF >/dev/null && \
        cmake --build "$BUILD" -j"$(nproc)" --target hearth test_gpu gpu_pp_attn >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
BIN=$BUILD/bin
{
    echo "# GPU check"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "- card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "- commit: $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- command: scripts/gpu-check.sh (test_gpu: mean KL <= 2e-3 and top-1 >= 95% for every row)"
    echo
} >"$OUT/gpu-report.md"
echo "== test_gpu"
HEARTH_GPU_REPORT="$OUT/gpu-report.md" "$BIN/test_gpu" >"$OUT/test_gpu.log" 2>&1
rc=$?
tail -15 "$OUT/test_gpu.log"
echo "test_gpu exit $rc"
if [ -x "$BIN/gpu_pp_attn" ]; then
    echo "== gpu_pp_attn check: prompt attention (fused and cuBLAS paths) against the CPU"
    "$BIN/gpu_pp_attn" check >"$OUT/gpu_pp_attn.log" 2>&1
    r=$?; tail -1 "$OUT/gpu_pp_attn.log"; [ $r -ne 0 ] && rc=$r
fi
echo "== test_gpu split: two device slots on card 0 (HEARTH_GPU_VIRTUAL=2), P2P and through the host"
for np in 0 1; do
    HEARTH_GPU_VIRTUAL=2 HEARTH_GPU_NO_P2P=$np "$BIN/test_gpu" split >"$OUT/test_gpu_split$np.log" 2>&1
    r=$?; tail -1 "$OUT/test_gpu_split$np.log"; [ $r -ne 0 ] && rc=$r
done
if command -v compute-sanitizer >/dev/null && [ "${SANITIZE:-1}" = 1 ]; then
    echo "== compute-sanitizer (memcheck) on test_gpu, three models"
    HEARTH_GPU_QUICK=1 timeout 400 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
        "$BIN/test_gpu" >"$OUT/sanitizer.log" 2>&1
    echo "compute-sanitizer exit $?"
    grep -E "ERROR SUMMARY|LEAK SUMMARY|test_gpu:" "$OUT/sanitizer.log" | tail -5
fi
if [ "${BENCH:-0}" = 1 ]; then
    echo "== bench"
    M=${MODEL:-/tmp/mistral-7b-q8_0.gguf}
    [ -f "$M" ] || "$BIN/hearth" synth "$M" --shape mistral-7b --type q8_0 -t "$(nproc)" 2>&1 | tail -2
    : >"$OUT/bench.md"
    for ct in ${CACHES:-f16 q8_0 q4_0}; do
        "$BIN/hearth" bench -m "$M" -ngl 99 -p 512 -n 128 -d ${DEPTHS:-0,8192,32768} -ctk $ct -ctv $ct -r ${REPS:-3} \
            2>&1 | tee -a "$OUT/bench.md"
    done
fi
exit $rc
