/* bench/micro.c: one kernel on one thread, timed by the thread's CPU clock (best of 5), for
 * A/B work on a shared machine where wall-clock numbers swing with other people's jobs.
 *
 *   gcc -O2 -Isrc -Iinclude bench/micro.c build/libhearth_engine.a -lm -lpthread -o /tmp/micro
 *   /tmp/micro mm TYPE T        a 2048 x 2048 matrix of type id TYPE (12 q4_k, 14 q6_k, 8 q8_0)
 *                               times T tokens through cpu_matmul
 *   /tmp/micro attn TYPE CELLS  one decode token's flash attention over CELLS cells of a K/V
 *                               cache of type id TYPE (1 f16, 8 q8_0), TinyLlama's heads (32
 *                               query, 4 KV, head size 64), 22 times (one per layer)
 * Random data; the numbers are for comparing builds, not models. */
#include "backend/backend.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)rand() / RAND_MAX * 2 - 1; }

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "mm";
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
