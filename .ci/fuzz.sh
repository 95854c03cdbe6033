#!/usr/bin/env bash
# Fuzz the GGUF reader (and the vocabulary and model loaders behind it) for a bounded time.
# Any crash, sanitizer report, leak or timeout fails the script.
#   needs: clang and its libFuzzer runtime (Debian/Ubuntu: apt-get install clang libclang-rt-14-dev,
#          or the libclang-rt-dev / libclang-rt-NN-dev matching the installed clang), cmake
#   env:   FUZZ_TIME (seconds, default 60), FUZZ_BUILD (build dir, default build-fuzz),
#          FUZZ_JOBS (parallel fuzzing processes, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD:-build-fuzz}
TIME=${FUZZ_TIME:-60}
JOBS=${FUZZ_JOBS:-1}
CCBIN=${FUZZ_CC:-clang}

if ! command -v "$CCBIN" >/dev/null; then
    echo "fuzz.sh: $CCBIN not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CC=$CCBIN cmake -S . -B "$BUILD" -DHEARTH_FUZZ=ON -DHEARTH_SERVER=OFF -DHEARTH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_gguf fuzz_make_seeds

# Seed corpus: the repository's GGUF files cut to their first 64 KiB (the header, the
# vocabulary, the tensor table and the start of the data), plus small complete files.
WORK=$BUILD/fuzz-run
rm -rf "$WORK"
mkdir -p "$WORK/seeds" "$WORK/corpus" "$WORK/artifacts"
shopt -s nullglob
for f in models/*.gguf testdata/models/*.gguf testdata/tokenizer/*.gguf ../shared/models/*.gguf; do
    head -c 65536 "$f" >"$WORK/seeds/$(basename "$f").64k"
    head -c 4096 "$f" >"$WORK/seeds/$(basename "$f").4k"
done
"$BUILD/bin/fuzz_make_seeds" "$WORK/seeds"
echo "fuzz.sh: $(ls "$WORK/seeds" | wc -l) seeds, fuzzing for ${TIME}s"

# Leaks are checked (detect_leaks=1); an out-of-memory or slow input counts as a failure too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
PAR=()
[ "$JOBS" -gt 1 ] && PAR=(-fork="$JOBS" -ignore_crashes=0)
set +e
# cwd is the work dir: libFuzzer writes its own files (fork mode logs) where it runs
(cd "$WORK" && exec "$BUILD/bin/fuzz_gguf" corpus seeds ${PAR[@]+"${PAR[@]}"} \
    -max_total_time="$TIME" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len=70000 -print_final_stats=1 -artifact_prefix=artifacts/ >fuzz.log 2>&1)
rc=$?
set -e
crashes=$(ls "$WORK/artifacts" | wc -l)
grep -E '^(INFO: seed corpus|Done [0-9]+ runs|stat::)' "$WORK/fuzz.log" || true
if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    grep -v -E '^#[0-9]+' "$WORK/fuzz.log" | tail -n 80 >&2
    echo "fuzz.sh: FAILED (exit $rc, $crashes artifacts in $WORK/artifacts); reproduce with $BUILD/bin/fuzz_gguf ARTIFACT" >&2
    exit 1
fi
echo "fuzz.sh: no crashes in ${TIME}s"
