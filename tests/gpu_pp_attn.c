/* Prompt (and decode) attention on a card (a tool, not a ctest test; needs a GPU): gpu_attn for batches
 * of many tokens against cpu_attn_flash on the same cache rows, then timings of one layer
 * at Mistral-7B shape, each path chosen by HEARTH_CUDA_PP (attn_prompt.cu).
 *   gpu_pp_attn          checks, then timings
 *   gpu_pp_attn check    checks only (exit 1 on a failure)
 *   gpu_pp_attn dec      checks, then decode (T = 1) timings
 *   gpu_pp_attn deccheck the decode checks only
 *   gpu_pp_attn prof q8_0 32768   three decode calls, no checks (for a profiler)
 * Checks: every cache type pair from a list, head sizes 64 and 128, group sizes 1, 4 and 8,
 * batches that split the cells and ones that do not, pos0 > 0; the output is poisoned
 * first. Error: ||gpu - cpu|| / ||cpu|| over the whole output. The decode checks also
 * replay a step's store and attention from a graph against the same calls queued plainly
 * (check_graph_step). */
#include "backend/gpu.h"
#include "kv/kv.h"
#include "quant/quant.h"
#include "util/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* about N(0,1): sum of 4 uniforms */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        s += (float)((rng >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
    return s * 1.7320508f;
}

static gpu_ctx *g;
static int failures;

/* HEARTH_CUDA_PP values (attn_prompt.cu): the cuBLAS path, then every fused kernel variant,
 * then none (the default choice) */
enum { NPATH = 3 };
static const char *pp_paths[NPATH] = { "gemm", "m1", "" };

static int check_case(pool *pl, int hd, int H, int G, int T, int pos0, int tk, int tv, int rotate) {
    char err[256];
    kv_cache kv;
    const int n = pos0 + T, row = G * hd;
    if (kv_init(&kv, n, 1, G, hd, tk, tv, rotate, err, sizeof err)) { printf("kv_init: %s\n", err); return -1; }
    float *k = malloc(sizeof(float) * (size_t)n * row), *v = malloc(sizeof(float) * (size_t)n * row);
    float *q = malloc(sizeof(float) * (size_t)T * H * hd), *ref = malloc(sizeof(float) * (size_t)T * H * hd);
    float *got = malloc(sizeof(float) * (size_t)T * H * hd);
    /* K with a per-cell loudness so some rows are peaked, some flat */
    for (int c = 0; c < n; c++) {
        float amp = 0.5f + 2.0f * (float)((c * 7919) % 13) / 13.0f;
        for (int i = 0; i < row; i++) { k[(size_t)c * row + i] = amp * frand() + 0.3f; v[(size_t)c * row + i] = frand(); }
    }
    for (size_t i = 0; i < (size_t)T * H * hd; i++) q[i] = frand();
    kv_put(&kv, 0, 0, n, k, v);
    attn_args a = { .T = T, .n_head = H, .n_head_kv = G, .head_dim = hd, .pos0 = pos0, .n_cells = n, .q = q,
                    .k = kv.k, .v = kv.v, .k_row_bytes = kv.kb, .v_row_bytes = kv.vb, .type_k = tk, .type_v = tv,
                    .row = row, .k_row_rot = kv.rot_k == KV_ROT_ROW, .v_row_rot = kv.rot_v == KV_ROT_ROW,
                    .scale = 1.0f / sqrtf((float)hd), .out = ref };
    cpu_attn_flash(pl, &a);
    size_t qb = sizeof(float) * (size_t)T * H * hd;
    void *dq = gpu_malloc(0, qb, "q", err, sizeof err), *dout = gpu_malloc(0, qb, "out", err, sizeof err);
    void *dk = gpu_malloc(0, kv.kb * n, "k", err, sizeof err), *dv = gpu_malloc(0, kv.vb * n, "v", err, sizeof err);
    gpu_upload(0, dq, q, qb, err, sizeof err);
    gpu_upload(0, dk, kv.k, kv.kb * n, err, sizeof err);
    gpu_upload(0, dv, kv.v, kv.vb * n, err, sizeof err);
    attn_args d = a;
    d.q = dq; d.k = dk; d.v = dv; d.out = dout;
    /* the old cuBLAS path, then every fused variant */
    double e[NPATH], worst = 0;
    for (int path = 0; path < NPATH; path++) {
        setenv("HEARTH_CUDA_PP", pp_paths[path], 1);
        memset(got, 0xff, qb); /* NaN */
        gpu_to_device(g, dout, got, qb);
        int rc = gpu_attn(g, &d, 1);
        if (rc || gpu_sync(g)) { printf("gpu_attn %s failed: %s\n", pp_paths[path], gpu_ctx_error(g)); e[path] = 1e9; if (path) worst = 1e9; continue; }
        gpu_to_host(g, got, dout, qb);
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)T * H * hd; i++) {
            double dd = (double)got[i] - ref[i];
            num += dd * dd;
            den += (double)ref[i] * ref[i];
            if (!isfinite(got[i])) num = INFINITY;
        }
        e[path] = sqrt(num / (den > 0 ? den : 1));
        if (path && !(e[path] <= worst)) worst = e[path];
    }
    setenv("HEARTH_CUDA_PP", "", 1);
    int ok = worst <= 4e-3 && worst <= 1.5 * e[0] + 1e-4;
    if (!ok) failures++;
    printf("%-4s hd %3d H %2d G %d T %4d pos0 %5d K %-6s V %-6s rot %d: fused", ok ? "ok" : "FAIL", hd, H, G, T, pos0,
           quant_get(tk)->name, quant_get(tv)->name, rotate);
    for (int path = 1; path < NPATH; path++) printf(" %.2e", e[path]);
    printf("  cublas %.2e  %s\n", e[0], ok ? "" : "<--");
    gpu_free(0, dq); gpu_free(0, dout); gpu_free(0, dk); gpu_free(0, dv);
    free(k); free(v); free(q); free(ref); free(got);
    kv_free(&kv);
    return 0;
}

/* A decode step's store and attention captured in a graph (pos mode: the attention's blocks
 * start before the store ends, attn_dec.cu) against the same calls queued one after another,
 * a few steps on: each step adds to the query first (a kernel before the store, as the
 * model's product) and stores a new cell. The cells ahead are NaN, so an attention that
 * read the newest cell before the store wrote it, or a stale query, shows. Error: the
 * largest difference over the largest value (the same arithmetic: 0 expected). */
static void check_graph_step(int n0, int tk, int tv) {
    const int hd = 128, H = 32, G = 8, row = G * hd, steps = 4, cap = n0 + steps + 1;
    char err[256];
    gpu_kv_layout L = { .row = row, .row_k = row, .row_v = row, .head_dim = hd, .n_head_kv = G, .type_k = tk,
                        .type_v = tv, .rot_k = quant_get(tk)->block > 1 ? KV_ROT_HEAD : 0,
                        .rot_v = quant_get(tv)->block > 1 ? KV_ROT_HEAD : 0,
                        .kb = quant_row_bytes(tk, row), .vb = quant_row_bytes(tv, row) };
    const size_t qn = (size_t)H * hd, qb = sizeof(float) * qn, fb = sizeof(float) * (size_t)n0 * row;
    float *h = malloc(fb > qb ? fb : qb), *h2 = malloc(fb > qb ? fb : qb), *ga = malloc(qb), *gb = malloc(qb);
    uint8_t *poison = malloc(L.kb > L.vb ? L.kb * cap : L.vb * cap);
    void *dkf = gpu_malloc(0, fb, "kf", err, sizeof err), *dvf = gpu_malloc(0, fb, "vf", err, sizeof err);
    void *dd = gpu_malloc(0, qb, "dq", err, sizeof err);
    uint8_t *dk[2], *dv[2];
    void *dq[2], *dout[2], *dmu[2];
    for (int c = 0; c < 2; c++) {
        dk[c] = gpu_malloc(0, L.kb * cap, "k", err, sizeof err);
        dv[c] = gpu_malloc(0, L.vb * cap, "v", err, sizeof err);
        dq[c] = gpu_malloc(0, qb, "q", err, sizeof err);
        dout[c] = gpu_malloc(0, qb, "out", err, sizeof err);
        dmu[c] = gpu_malloc(0, sizeof(float) * row, "mu", err, sizeof err);
    }
    memset(poison, 0xff, L.kb > L.vb ? L.kb * cap : L.vb * cap);
    for (size_t i = 0; i < (size_t)n0 * row; i++) { h[i] = frand() + 0.2f; h2[i] = frand(); }
    gpu_to_device(g, dkf, h, fb);
    gpu_to_device(g, dvf, h2, fb);
    for (size_t i = 0; i < qn; i++) h[i] = frand();
    int bad = 0;
    for (int c = 0; c < 2 && !bad; c++) {
        gpu_to_device(g, dk[c], poison, L.kb * cap);
        gpu_to_device(g, dv[c], poison, L.vb * cap);
        gpu_to_device(g, dq[c], h, qb);
        bad = gpu_kv_put(g, &L, dk[c], dv[c], dmu[c], 1, 0, n0, dkf, dvf);
    }
    const int rk = L.rot_k == KV_ROT_HEAD, rv = L.rot_v == KV_ROT_HEAD;
    /* one step of cache c at pos (the position is on the card in pos mode) */
#define STEP(c, pos)                                                                                                  \
    do {                                                                                                            \
        attn_args a = { .T = 1, .n_head = H, .n_head_kv = G, .head_dim = hd, .pos0 = (pos), .n_cells = (pos) + 1,   \
                        .q = dq[c], .k = dk[c], .v = dv[c], .k_row_bytes = L.kb, .v_row_bytes = L.vb, .type_k = tk, \
                        .type_v = tv, .row = row, .scale = 1.0f / sqrtf((float)hd), .out = dout[c] };               \
        ok = ok && !gpu_add(g, dq[c], dd, qn) && !gpu_kv_put(g, &L, dk[c], dv[c], dmu[c], 0, (pos), 1, dkf, dvf) &&  \
             !gpu_attn_rot(g, &a, 1, rk, rv);                                                                       \
    } while (0)
    /* the first step outside the graph: scratch is allocated before the capture */
    int ok = !bad;
    for (size_t i = 0; i < qn; i++) h[i] = 0.0f;
    gpu_to_device(g, dd, h, qb);
    gpu_set_pos(g, n0);
    gpu_pos_mode(g, 1, cap);
    STEP(0, n0);
    STEP(1, n0);
    bad = !ok || gpu_sync(g) || gpu_graph_begin(g);
    if (!bad) {
        STEP(0, n0);
        bad = gpu_graph_end(g, ok) || !ok;
    }
    double worst = 0;
    for (int s = 1; s <= steps && !bad; s++) {
        for (size_t i = 0; i < qn; i++) h[i] = 0.5f * frand();
        gpu_to_device(g, dd, h, qb);
        for (size_t i = 0; i < (size_t)row; i++) { h[i] = frand(); h2[i] = frand(); }
        gpu_to_device(g, dkf, h, sizeof(float) * row);
        gpu_to_device(g, dvf, h2, sizeof(float) * row);
        gpu_set_pos(g, n0 + s);
        bad = gpu_graph_launch(g);
        gpu_pos_mode(g, 0, 0);
        STEP(1, n0 + s);
        gpu_pos_mode(g, 1, cap);
        bad = bad || !ok || gpu_sync(g);
        if (bad) break;
        gpu_to_host(g, ga, dout[0], qb);
        gpu_to_host(g, gb, dout[1], qb);
        double num = 0, den = 0;
        for (size_t i = 0; i < qn; i++) {
            double e = fabs((double)ga[i] - gb[i]);
            if (!(e <= num)) num = e;   /* NaN stays */
            if (fabs(gb[i]) > den) den = fabs(gb[i]);
        }
        double r = num / (den > 0 ? den : 1);
        if (!(r <= worst)) worst = r;
    }
#undef STEP
    gpu_pos_mode(g, 0, 0);
    gpu_graph_drop(g);
    int pass = !bad && worst <= 1e-6;
    if (!pass) failures++;
    printf("%-4s graph step (store + attention overlapped) K %-6s V %-6s cells %d..%d: %.2e %s%s\n", pass ? "ok" : "FAIL",
           quant_get(tk)->name, quant_get(tv)->name, n0 + 1, n0 + steps, worst, bad ? gpu_ctx_error(g) : "", pass ? "" : " <--");
    for (int c = 0; c < 2; c++) {
        gpu_free(0, dk[c]); gpu_free(0, dv[c]); gpu_free(0, dq[c]); gpu_free(0, dout[c]); gpu_free(0, dmu[c]);
    }
    gpu_free(0, dkf); gpu_free(0, dvf); gpu_free(0, dd);
    free(h); free(h2); free(ga); free(gb); free(poison);
}

static void timings(void) {
    const int hd = 128, H = 32, G = 8, T = 512, row = G * hd;
    const int depths[] = { 0, 1536, 8192, 32768 };
    const char *types[] = { "f16", "q8_0", "q4_0" };
    enum { NP = NPATH };
    const char *const *paths = pp_paths;
    double deep[NP] = { 0 };
    char err[256];
    const int nmax = 32768 + T;
    size_t qb = sizeof(float) * (size_t)T * H * hd;
    float *hq = malloc(qb);
    for (size_t i = 0; i < (size_t)T * H * hd; i++) hq[i] = frand();
    void *dq = gpu_malloc(0, qb, "q", err, sizeof err), *dout = gpu_malloc(0, qb, "out", err, sizeof err);
    gpu_upload(0, dq, hq, qb, err, sizeof err);
    const int chunk = 4096;
    float *hk = malloc(sizeof(float) * (size_t)chunk * row), *hv = malloc(sizeof(float) * (size_t)chunk * row);
    void *dkf = gpu_malloc(0, sizeof(float) * (size_t)chunk * row, "kf", err, sizeof err);
    void *dvf = gpu_malloc(0, sizeof(float) * (size_t)chunk * row, "vf", err, sizeof err);
    void *dmu = gpu_malloc(0, sizeof(float) * row, "mu", err, sizeof err);
    printf("\none layer, T %d, %d heads (%d KV) of %d: ms (TFLOP/s of 4 T H hd cells_avg)\n", T, H, G, hd);
    printf("| cache | depth |");
    for (int pi = 0; pi < NP; pi++) printf(" %s |", paths[pi][0] ? paths[pi] : "default");
    printf("\n|---|---|");
    for (int pi = 0; pi < NP; pi++) printf("---|");
    printf("\n");
    for (int ti = 0; ti < 3; ti++) {
        int ct = quant_from_name(types[ti]);
        gpu_kv_layout L = { .row = row, .row_k = row, .row_v = row, .head_dim = hd, .n_head_kv = G, .type_k = ct,
                            .type_v = ct, .rot_k = quant_get(ct)->block > 1 ? KV_ROT_HEAD : 0,
                            .rot_v = quant_get(ct)->block > 1 ? KV_ROT_HEAD : 0,
                            .kb = quant_row_bytes(ct, row), .vb = quant_row_bytes(ct, row) };
        uint8_t *dk = gpu_malloc(0, L.kb * nmax, "k", err, sizeof err), *dv = gpu_malloc(0, L.vb * nmax, "v", err, sizeof err);
        if (!dk || !dv) { printf("alloc: %s\n", err); return; }
        for (int c0 = 0; c0 < nmax; c0 += chunk) {
            int nc = nmax - c0 < chunk ? nmax - c0 : chunk;
            for (size_t i = 0; i < (size_t)nc * row; i++) { hk[i] = frand(); hv[i] = frand(); }
            gpu_to_device(g, dkf, hk, sizeof(float) * (size_t)nc * row);
            gpu_to_device(g, dvf, hv, sizeof(float) * (size_t)nc * row);
            if (gpu_kv_put(g, &L, dk, dv, dmu, c0 == 0, c0, nc, dkf, dvf)) { printf("kv_put: %s\n", gpu_ctx_error(g)); return; }
            gpu_sync(g);
        }
        for (int di = 0; di < 4; di++) {
            int pos0 = depths[di];
            attn_args a = { .T = T, .n_head = H, .n_head_kv = G, .head_dim = hd, .pos0 = pos0, .n_cells = pos0 + T,
                            .q = dq, .k = dk, .v = dv, .k_row_bytes = L.kb, .v_row_bytes = L.vb, .type_k = ct,
                            .type_v = ct, .row = row, .scale = 1.0f / sqrtf((float)hd), .out = dout };
            printf("| %s | %d |", types[ti], pos0);
            for (int pi = 0; pi < NP; pi++) {
                setenv("HEARTH_CUDA_PP", paths[pi], 1);
                double ts[7];
                int bad = gpu_attn(g, &a, 1) || gpu_sync(g);
                for (int r = 0; r < 7 && !bad; r++) {
                    double t0 = now();
                    bad = gpu_attn(g, &a, 1) || gpu_sync(g);
                    ts[r] = now() - t0;
                }
                if (bad) { printf(" error: %s |", gpu_ctx_error(g)); continue; }
                qsort(ts, 7, sizeof(double), cmpd);
                double flop = 4.0 * T * H * hd * (pos0 + (T + 1) / 2.0);
                printf(" %.3f (%.0f) |", ts[3] * 1e3, flop / ts[3] / 1e12);
                if (pos0 == 32768) deep[pi] += ts[3];
            }
            printf("\n");
            fflush(stdout);
        }
        gpu_free(0, dk); gpu_free(0, dv);
    }
    setenv("HEARTH_CUDA_PP", "", 1);
    printf("default / m1 at depth 32768, all three caches: %.3f\n", deep[2] / deep[1]);
}

/* decode attention of one layer (T = 1, Mistral-7B shape) at depths, for a few values of
 * HEARTH_DEC_WAVES (attn_dec.cu), as the model runs it: in pos mode (the position read on
 * the card, the grid sized for the context), 20 calls captured in a CUDA graph; median of 7
 * replays. prof (a type and a depth, for a profiler): three plain calls. */
static void dec_timings(const char *prof_type, int prof_depth) {
    const int hd = 128, H = 32, G = 8, row = G * hd, nmax = 32768 + 64;
    const char *types[] = { "f16", "q8_0", "q4_0" };
    const char *waves[] = { "1", "2", "3", "4" };
    char err[256];
    size_t qb = sizeof(float) * H * hd;
    float *hq = malloc(qb);
    for (int i = 0; i < H * hd; i++) hq[i] = frand();
    void *dq = gpu_malloc(0, qb, "q", err, sizeof err), *dout = gpu_malloc(0, qb, "out", err, sizeof err);
    gpu_upload(0, dq, hq, qb, err, sizeof err);
    if (!prof_type) {
        printf("\ndecode attention, one layer, T 1, %d heads (%d KV) of %d, graphs in pos mode: us (GB/s of K and V)\n", H, G, hd);
        printf("| cache | depth | waves 1 (default) | 2 | 3 | 4 |\n|---|---|---|---|---|---|\n");
    }
    for (int ti = 0; ti < 3; ti++) {
        if (prof_type && strcmp(prof_type, types[ti])) continue;
        int ct = quant_from_name(types[ti]);
        size_t kb = quant_row_bytes(ct, row);
        uint8_t *h = malloc(kb * nmax);
        /* finite data: small f16 scales and values */
        for (size_t i = 0; i < kb * nmax; i++) h[i] = (uint8_t)((i * 2654435761u) >> 13) & (ct == quant_from_name("f16") ? 0x37 : 0x2f);
        uint8_t *dk = gpu_malloc(0, kb * nmax, "k", err, sizeof err), *dv = gpu_malloc(0, kb * nmax, "v", err, sizeof err);
        if (!dk || !dv) { printf("alloc: %s\n", err); return; }
        gpu_upload(0, dk, h, kb * nmax, err, sizeof err);
        gpu_upload(0, dv, h, kb * nmax, err, sizeof err);
        free(h);
        for (int depth = 8192; depth <= 32768; depth *= 4) {
            if (prof_type && depth != prof_depth) continue;
            attn_args a = { .T = 1, .n_head = H, .n_head_kv = G, .head_dim = hd, .pos0 = depth, .n_cells = depth + 1,
                            .q = dq, .k = dk, .v = dv, .k_row_bytes = kb, .v_row_bytes = kb, .type_k = ct,
                            .type_v = ct, .row = row, .scale = 1.0f / sqrtf((float)hd), .out = dout };
            if (prof_type) {
                for (int r = 0; r < 3; r++) gpu_attn(g, &a, 1);
                printf("prof %s d%d: %s\n", types[ti], depth, gpu_sync(g) ? gpu_ctx_error(g) : "ok");
                continue;
            }
            printf("| %s | %d |", types[ti], depth);
            for (int w = 0; w < 4; w++) {
                setenv("HEARTH_DEC_WAVES", waves[w], 1);
                double ts[7];
                gpu_set_pos(g, depth);
                gpu_pos_mode(g, 1, depth + 64);
                int bad = gpu_attn(g, &a, 1) || gpu_sync(g);
                if (!bad) {
                    bad = gpu_graph_begin(g);
                    int ok = 1;
                    for (int k = 0; k < 20 && !bad && ok; k++) ok = gpu_attn(g, &a, 1) == 0;
                    bad = bad || gpu_graph_end(g, ok) || !ok;
                }
                for (int r = 0; r < 8 && !bad; r++) {
                    double t0 = now();
                    bad = gpu_graph_launch(g) || gpu_sync(g);
                    if (r) ts[r - 1] = (now() - t0) / 20;
                }
                gpu_pos_mode(g, 0, 0);
                gpu_graph_drop(g);
                if (bad) { printf(" error: %s |", gpu_ctx_error(g)); continue; }
                qsort(ts, 7, sizeof(double), cmpd);
                printf(" %.1f (%.0f) |", ts[3] * 1e6, 2.0 * kb * (depth + 1) / ts[3] / 1e9);
            }
            printf("\n");
            fflush(stdout);
        }
        gpu_free(0, dk); gpu_free(0, dv);
    }
    unsetenv("HEARTH_DEC_WAVES");
    free(hq);
    gpu_free(0, dq); gpu_free(0, dout);
}

int main(int argc, char **argv) {
    char err[256];
    if (gpu_device_count() <= 0) { printf("no GPU: %s\n", gpu_unavailable_reason()); return 77; }
    g = gpu_ctx_new(0, err, sizeof err);
    if (!g) { printf("gpu_ctx_new: %s\n", err); return 1; }
    if (argc > 3 && !strcmp(argv[1], "prof")) {
        dec_timings(argv[2], atoi(argv[3]));
        gpu_ctx_free(g);
        return 0;
    }
    pool *pl = pool_new(pool_default_threads());
    const char *all[] = { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl" };
    const int only_dec = argc > 1 && !strcmp(argv[1], "deccheck");   /* (quick under compute-sanitizer) */
    /* every type on both sides at hd 128 / GQA 4, a short batch (split cells) and one at depth */
    for (int i = 0; i < 9 && !only_dec; i++) {
        int t = quant_from_name(all[i]);
        check_case(pl, 128, 8, 2, 64, 0, t, t, 1);
        check_case(pl, 128, 8, 2, 100, 333, t, quant_from_name(all[(i + 4) % 9]), 1);
    }
    int f16 = quant_from_name("f16"), q8 = quant_from_name("q8_0"), q4 = quant_from_name("q4_0");
    if (!only_dec) {
        check_case(pl, 64, 8, 8, 64, 0, f16, f16, 0);
        check_case(pl, 64, 16, 2, 130, 1000, q8, q8, 1);
        check_case(pl, 64, 8, 1, 33, 70, q4, f16, 1);
        check_case(pl, 128, 16, 2, 512, 0, f16, f16, 0);
        check_case(pl, 128, 32, 4, 512, 777, q8, q4, 1);
        check_case(pl, 128, 4, 4, 40, 5, f16, q8, 0);
        /* few rows at depth: the cells split over CTAs and merged */
        check_case(pl, 128, 8, 2, 64, 3000, q8, q4, 1);
        check_case(pl, 64, 8, 2, 40, 2500, f16, f16, 0);
        check_case(pl, 128, 32, 8, 200, 1500, f16, f16, 0);
    }
    /* decode (T <= 8: attn_dec.cu): group sizes 1, 4, 6, 8 and 16 (two head passes), several
     * tokens a block, cells split over many warps and blocks, ragged last tiles */
    const int dts[3] = { f16, q8, q4 };
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) check_case(pl, 128, 32, 8, 1 + (i + j) % 3, 4000 + 37 * i + 11 * j, dts[i], dts[j], 1);
    check_case(pl, 128, 32, 8, 1, 20000, q8, q8, 1);
    check_case(pl, 128, 8, 8, 5, 333, q4, q8, 1);
    check_case(pl, 128, 12, 2, 3, 1500, q8, q4, 1);
    check_case(pl, 128, 16, 2, 8, 70, f16, q4, 0);
    check_case(pl, 128, 32, 2, 2, 2100, q4, q4, 1);
    check_case(pl, 128, 32, 8, 1, 0, q8, f16, 1);
    check_case(pl, 128, 32, 8, 7, 12, f16, f16, 0);
    /* a step's store and attention in a graph: one chunk, several (merged by the attention's
     * last block) and many (merged by the merge kernel; past a tile edge) */
    for (int i = 0; i < 3; i++) {
        check_graph_step(40, dts[i], dts[i]);
        check_graph_step(1000, dts[i], dts[i]);   /* several chunk blocks merged by the last one */
        check_graph_step(8190, dts[i], dts[i]);
    }
    check_graph_step(3000, q8, q4);
    /* the same decode cases with the states merged by the merge kernel (deeper than the
     * fused merge goes on other shapes) */
    setenv("HEARTH_AD_FUSE", "0", 1);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) check_case(pl, 128, 32, 8, 1 + (i + j) % 3, 4000 + 37 * i + 11 * j, dts[i], dts[j], 1);
    check_case(pl, 128, 12, 2, 3, 1500, q8, q4, 1);
    for (int i = 0; i < 3; i++) check_graph_step(8190, dts[i], dts[i]);
    unsetenv("HEARTH_AD_FUSE");
    printf("checks: %d failed\n", failures);
    if (argc > 1 && !strcmp(argv[1], "dec")) dec_timings(NULL, 0);
    else if (argc == 1) timings();
    pool_free(pl);
    gpu_ctx_free(g);
    return failures ? 1 : 0;
}
