#!/usr/bin/env bash
# bench/run.sh: the CPU speed table of BENCHMARKS.md (issue 5).
#
# Benchmarks stories260K and a TinyLlama-1.1B-shaped random model in Q8_0 and Q4_K_M (made
# with `hearth synth` into bench/models/ when missing) with f16 and q8_0 caches: pp128 and
# tg32 at depth 0, tg16 at depth 2048. When llama.cpp's llama-bench is found ($LLAMA_BENCH
# or on PATH) it runs on the same models with the same settings (-fa 1) in the same run,
# and the table gives hearth/peer ratios. Writes a markdown file (machine, commit, commands,
# numbers) and prints it; the raw JSON of every run is kept next to it.
#
# Settings (environment): THREADS (default: all cores), REPS (3), DEPTH (2048), CACHES
# ("f16 q8_0"), MODELS (space-separated paths; default the three above), OUT (the markdown
# file; default bench/results/cpu-DATE.md), HEARTH (the binary; built into build/ if absent),
# LLAMA_BENCH, SKIP_DEPTH=1 (depth 0 only). Tests at depth 0 run first for every model, then
# the deep ones, and the table is rewritten after each run, so a stopped run still leaves
# the numbers it got.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
HEARTH=${HEARTH:-$BUILD/bin/hearth}
MODEL_DIR=${BENCH_MODELS:-$ROOT/bench/models}
THREADS=${THREADS:-$(nproc)}
REPS=${REPS:-3}
DEPTH=${DEPTH:-2048}
CACHES=${CACHES:-"f16 q8_0"}
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/cpu-$STAMP.md}
RAW=${OUT%.md}.raw
LLAMA_BENCH=${LLAMA_BENCH:-$(command -v llama-bench || true)}

if [ ! -x "$HEARTH" ]; then
    echo "bench: building hearth in $BUILD" >&2
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DHEARTH_SERVER=OFF >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target hearth >/dev/null
fi
mkdir -p "$MODEL_DIR" "$RAW"

for t in q8_0 q4_k_m; do
    m=$MODEL_DIR/tinyllama-1.1b-$t.gguf
    if [ ! -f "$m" ]; then
        echo "bench: synthesizing $m" >&2
        "$HEARTH" synth "$m" --shape tinyllama-1.1b --type "$t" --seed 1
    fi
done
MODELS=${MODELS:-"$ROOT/models/stories260K.gguf $MODEL_DIR/tinyllama-1.1b-q8_0.gguf $MODEL_DIR/tinyllama-1.1b-q4_k_m.gguf"}
if [ -n "$LLAMA_BENCH" ] && [ ! -x "$LLAMA_BENCH" ]; then
    echo "bench: LLAMA_BENCH=$LLAMA_BENCH is not an executable; running hearth alone" >&2
    LLAMA_BENCH=
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src cli include 2>/dev/null || COMMIT="$COMMIT+changes"
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo "# machine: ${CPU:-unknown CPU}, $(nproc) cores; commit $COMMIT; $THREADS threads, $REPS repetitions" >"$RAW/commands.txt"

# One hearth run and, when there is a peer, the same run of the peer: raw/NAME.{hearth,peer}.json
run_pair() {
    local name=$1 model=$2 cache=$3; shift 3
    local args=(-m "$model" -ctk "$cache" -ctv "$cache" -t "$THREADS" -r "$REPS" -fa 1 "$@")
    echo "hearth bench ${args[*]} -o json" >>"$RAW/commands.txt"
    echo "bench: hearth $name" >&2
    if ! "$HEARTH" bench "${args[@]}" -o json >"$RAW/$name.hearth.json" 2>"$RAW/$name.hearth.err"; then
        echo "bench: hearth failed on $name: $(tail -1 "$RAW/$name.hearth.err")" >&2
    fi
    if [ -n "$LLAMA_BENCH" ]; then
        echo "$LLAMA_BENCH ${args[*]} -o json" >>"$RAW/commands.txt"
        echo "bench: peer $name" >&2
        if ! "$LLAMA_BENCH" "${args[@]}" -o json >"$RAW/$name.peer.json" 2>"$RAW/$name.peer.err"; then
            echo "bench: the peer failed on $name (see $RAW/$name.peer.err)" >&2
        fi
    fi
    table
}

table() {
    python3 - "$RAW" "$OUT" "$COMMIT" "${CPU:-unknown CPU}" "$(nproc)" "$THREADS" "$REPS" "${LLAMA_BENCH:-}" <<'EOF'
import json, os, sys, glob, statistics
raw, out, commit, cpu, cores, threads, reps, peer_bin = sys.argv[1:9]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def test_name(r):
    t = 'pp%d' % r['n_prompt'] if r['n_prompt'] else 'tg%d' % r['n_gen']
    return t + (' @ d%d' % r['n_depth'] if r.get('n_depth') else '')

rows, bws, peer_commit = [], [], None
for hp in sorted(glob.glob(os.path.join(raw, '*.hearth.json')), key=os.path.getmtime):
    name = os.path.basename(hp)[:-len('.hearth.json')]
    h = load(hp) or []
    p = load(os.path.join(raw, name + '.peer.json'))
    perr = os.path.join(raw, name + '.peer.err')
    for r in h:
        if r.get('mem_bw_gb_per_s'):
            bws.append(r['mem_bw_gb_per_s'])
        peer = None
        if p:
            for q in p:
                peer_commit = q.get('build_commit', peer_commit)
                if (q.get('n_prompt'), q.get('n_gen'), q.get('n_depth', 0)) == (r['n_prompt'], r['n_gen'], r['n_depth']):
                    peer = q
        if peer:
            ps = '%.2f ± %.2f' % (peer['avg_ts'], peer['stddev_ts'])
            ratio = '%.2f' % (r['avg_ts'] / peer['avg_ts'])
        elif peer_bin and os.path.exists(perr) and p is None:
            ps, ratio = 'failed', ''
        else:
            ps, ratio = '', ''
        gb = '%.2f (%.0f%%)' % (r['gb_per_s'], r['pct_of_bw']) if r['n_gen'] else ''
        rows.append('| %s | %s | %s/%s | %s | %.2f ± %.2f | %s | %s | %s |' % (
            os.path.basename(r['model_filename']), r['model_type'], r['type_k'], r['type_v'], test_name(r),
            r['avg_ts'], r['stddev_ts'], gb, ps, ratio))

lines = ['## CPU speed (bench/run.sh)', '',
         'Machine: %s, %s cores. Commit: %s. %s threads, %s repetitions after one warm-up, flash attention on.' % (
             cpu, cores, commit, threads, reps)]
if bws:
    lines.append('Memory read bandwidth (hearth bench, %s threads): %.1f GB/s (median of %d runs, range %.1f-%.1f).' % (
        threads, statistics.median(bws), len(bws), min(bws), max(bws)))
if peer_bin:
    lines.append('Peer: llama.cpp llama-bench%s (%s).' % (' build ' + str(peer_commit) if peer_commit else '', peer_bin))
lines += ['', '| model file | model | cache K/V | test | hearth t/s | hearth GB/s (% of bw) | peer t/s | hearth/peer |',
          '| --- | --- | --- | --- | ---: | ---: | ---: | ---: |'] + rows
fails = []
for e in sorted(glob.glob(os.path.join(raw, '*.peer.err'))):
    if load(e[:-4] + '.json') is None:
        msg = [l.strip() for l in open(e, errors='replace') if 'error' in l.lower() or 'failed' in l.lower()]
        fails.append('- peer failed on %s: %s' % (os.path.basename(e)[:-9], (msg[-1] if msg else 'see ' + e)[:300]))
if fails:
    lines += [''] + fails
lines += ['', 'Commands: see %s/commands.txt.' % os.path.relpath(raw, os.path.dirname(os.path.abspath(out)))]
with open(out, 'w') as f:
    f.write('\n'.join(lines) + '\n')
EOF
}

for model in $MODELS; do
    for cache in $CACHES; do
        run_pair "$(basename "$model" .gguf)-$cache-d0" "$model" "$cache" -p 128 -n 32 -d 0
    done
done
if [ "${SKIP_DEPTH:-0}" != 1 ]; then
    for model in $MODELS; do
        for cache in $CACHES; do
            run_pair "$(basename "$model" .gguf)-$cache-d$DEPTH" "$model" "$cache" -p 0 -n 16 -d "$DEPTH"
        done
    done
fi
table
cat "$OUT"
