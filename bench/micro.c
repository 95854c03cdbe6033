/* bench/micro.c: one kernel on one thread, timed by the thread's CPU clock (best of 5), for
 * A/B work on a shared machine where wall-clock numbers swing with other people's jobs.
 *
 *   gcc -O2 -Isrc -Iinclude bench/micro.c build/libhearth_engine.a -lm -lpthread -o /tmp/micro
 *   /tmp/micro mm TYPE T        a 2048 x 2048 matrix of type id TYPE (12 q4_k, 14 q6_k, 8 q8_0)
 *                               times T tokens through cpu_matmul
 *   /tmp/micro attn TYPE CELLS  one decode token's flash attention over CELLS cells of a K/V
 *                               cache of type id TYPE (1 f16, 8 q8_0), TinyLlama's heads (32
 *                               query, 4 KV, head size 64), 22 times (one per layer)
 *   /tmp/micro tok MODEL DEPTH CACHE [N [THREADS]]
 *                               whole decode steps of MODEL on one thread after filling the
 *                               cache (type name CACHE for K and V) to DEPTH cells: the
 *                               median and the best of N (default 24) tokens, each at DEPTH;
 *                               with THREADS > 1 the fill and the steps use that many
 *                               threads and the times are wall clock
 *   /tmp/micro pp MODEL T [N]   a prompt of T tokens at depth 0 on one thread: the median and
 *                               the best of N (default 5) evaluations
 * Random data; the numbers are for comparing builds, not models. */
#include "backend/backend.h"
#include "hearth.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int wall; /* time by the wall clock (several threads) instead of the thread's CPU clock */
static double now(void) {
    struct timespec t;
    clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* a model and context on n_threads threads (cache type name CACHE, room for n_ctx cells) */
static int open_model(const char *path, int n_ctx, const char *cache, int n_threads, hearth_model **m, hearth_ctx **c) {
    char err[512];
    hearth_log_set_level(HEARTH_LOG_ERROR);
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = n_threads;
    if (hearth_model_load(path, &mp, m, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    hearth_ctx_params cp = hearth_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    cp.type_k = cp.type_v = hearth_cache_type_from_name(cache);
    if (hearth_ctx_new(*m, &cp, c, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    return 0;
}

static int pp(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: micro pp MODEL T [N]\n"); return 1; }
    int T = atoi(argv[3]), n = argc > 4 ? atoi(argv[4]) : 5;
    hearth_model *m;
    hearth_ctx *c;
    if (open_model(argv[2], T + 64, "f16", 1, &m, &c)) return 1;
    int V = hearth_model_get_info(m)->n_vocab;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)T);
    double *t = malloc(sizeof(double) * (size_t)(n + 1));
    char err[512];
    for (int i = -1; i < n; i++) {
        hearth_ctx_truncate(c, 0);
        for (int k = 0; k < T; k++) toks[k] = rand() % V;
        double t0 = now();
        if (hearth_eval(c, toks, T, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        if (i >= 0) t[i] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    printf("pp %s T %d: median %.1f ms best %.1f ms (%.1f t/s best, 1 thread)\n", hearth_model_get_info(m)->name, T,
           t[n / 2] * 1e3, t[0] * 1e3, T / t[0]);
    free(t); free(toks);
    hearth_ctx_free(c);
    hearth_model_free(m);
    return 0;
}

static int tok(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: micro tok MODEL DEPTH CACHE [N]\n"); return 1; }
    int depth = atoi(argv[3]), n = argc > 5 ? atoi(argv[5]) : 24, nt = argc > 6 ? atoi(argv[6]) : 1;
    char err[512];
    hearth_model *m;
    hearth_ctx *c;
    wall = nt > 1;
    if (open_model(argv[2], depth + 64, argv[4], nt, &m, &c)) return 1;
    int V = hearth_model_get_info(m)->n_vocab;
    int32_t *toks = malloc(sizeof(int32_t) * 512);
    while (hearth_ctx_n_past(c) < depth) {
        int k = depth - hearth_ctx_n_past(c) < 512 ? depth - hearth_ctx_n_past(c) : 512;
        for (int i = 0; i < k; i++) toks[i] = rand() % V;
        if (hearth_eval(c, toks, k, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    }
    double *t = malloc(sizeof(double) * (size_t)(n + 1));
    for (int i = -1; i < n; i++) {
        hearth_ctx_truncate(c, depth);
        int32_t x = rand() % V;
        double t0 = now();
        if (hearth_eval(c, &x, 1, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        if (i >= 0) t[i] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    printf("tok %s depth %d cache %s: median %.2f ms best %.2f ms per token (%d thread%s)\n", hearth_model_get_info(m)->name,
           depth, argv[4], t[n / 2] * 1e3, t[0] * 1e3, nt, nt > 1 ? "s, wall clock" : "");
    free(t); free(toks);
    hearth_ctx_free(c);
    hearth_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "mm";
    if (!strcmp(what, "tok")) return tok(argc, argv);
    if (!strcmp(what, "pp")) return pp(argc, argv);
    pool *p = pool_new(1);
    if (!strcmp(what, "mm")) {
        int type = argc > 2 ? atoi(argv[2]) : QT_Q4_K, T = argc > 3 ? atoi(argv[3]) : 128;
        const int64_t ne0 = 2048, ne1 = 2048;
        const quant_traits *qt = quant_get(type);
        size_t rb = quant_row_bytes(type, ne0);
        uint8_t *w = malloc(rb * ne1);
        float *tmp = malloc(sizeof(float) * ne0), *x = malloc(sizeof(float) * ne0 * T), *y = malloc(sizeof(float) * ne1 * T);
        for (int r = 0; r < ne1; r++) {
            for (int i = 0; i < ne0; i++) tmp[i] = frand() * 0.02f;
            qt->from_float(tmp, w + r * rb, ne0);
        }
        for (int i = 0; i < ne0 * T; i++) x[i] = frand();
        wtensor W = { type, ne0, ne1, rb, w };
        cpu_matmul(p, &W, x, T, y);
        double best = 1e9;
        for (int k = 0; k < 5; k++) {
            double t0 = now();
            cpu_matmul(p, &W, x, T, y);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("mm %s T %d: %.2f ms, %.1f GMAC/s\n", qt->name, T, best * 1e3, ne0 * ne1 * (double)T / best * 1e-9);
    } else {
        int tk = argc > 2 ? atoi(argv[2]) : QT_F16, n_cells = argc > 3 ? atoi(argv[3]) : 2048;
        const int H = 32, G = 4, hd = 64, row = G * hd;
        size_t kb = quant_row_bytes(tk, row);
        uint8_t *k = malloc(kb * n_cells), *v = malloc(kb * n_cells);
        float *tmp = malloc(sizeof(float) * row), *q = malloc(sizeof(float) * H * hd), *o = malloc(sizeof(float) * H * hd);
        for (int c = 0; c < n_cells; c++) {
            for (int i = 0; i < row; i++) tmp[i] = frand();
            quant_get(tk)->from_float(tmp, k + c * kb, row);
            quant_get(tk)->from_float(tmp, v + c * kb, row);
        }
        for (int i = 0; i < H * hd; i++) q[i] = frand();
        attn_args a = { .T = 1, .n_head = H, .n_head_kv = G, .head_dim = hd, .pos0 = n_cells - 1, .n_cells = n_cells,
                        .q = q, .k = k, .v = v, .k_row_bytes = kb, .v_row_bytes = kb, .type_k = tk, .type_v = tk,
                        .row = row, .scale = 0.125f, .out = o };
        cpu_attn_flash(p, &a);
        double best = 1e9;
        for (int it = 0; it < 5; it++) {
            double t0 = now();
            for (int l = 0; l < 22; l++) cpu_attn_flash(p, &a);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("attn %s cells %d: %.2f ms per token (22 layers, 1 thread)\n", quant_get(tk)->name, n_cells, best * 1e3);
    }
    pool_free(p);
    return 0;
}
