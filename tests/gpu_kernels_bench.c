/* Kernel timings on a card (not a test): matrix-vector products of Mistral-7B shapes in
 * each weight type, decode attention at depths, cache writes, and the cost of a small
 * launch; each the median of 20 runs after a warm-up, timed around a device sync.
 * Run: build/bin/gpu_kernels_bench (needs a GPU). */
#include "backend/gpu.h"
#include "kv/kv.h"
#include "quant/quant.h"

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

#define TIME(label, bytes, call)                                                             \
    do {                                                                                     \
        double ts_[20];                                                                      \
        call; gpu_sync(g);                                                                   \
        for (int r_ = 0; r_ < 20; r_++) { double t0_ = now(); call; gpu_sync(g); ts_[r_] = now() - t0_; } \
        qsort(ts_, 20, sizeof(double), cmpd);                                                \
        printf("%-44s %9.1f us %8.1f GB/s\n", label, ts_[10] * 1e6, (double)(bytes) / ts_[10] / 1e9); \
    } while (0)

int main(void) {
    if (gpu_device_count() <= 0) { printf("no GPU: %s\n", gpu_unavailable_reason()); return 0; }
    char err[512], name[128];
    size_t fb, tb;
    gpu_device_info(0, name, sizeof name, &fb, &tb);
    printf("card: %s, copy bandwidth %.0f GB/s\n", name, gpu_copy_bandwidth(0));
    gpu_ctx *g = gpu_ctx_new(0, err, sizeof err);
    if (!g) { printf("%s\n", err); return 1; }
    const int types[] = { QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q6_K, QT_F16 };
    const int K = 4096, N = 14336;
    float *x = gpu_malloc(0, sizeof(float) * 8 * N, "x", err, sizeof err), *y = gpu_malloc(0, sizeof(float) * 8 * N, "y", err, sizeof err);
    float *hx = malloc(sizeof(float) * 8 * N);
    for (int i = 0; i < 8 * N; i++) hx[i] = 0.01f * (float)(i % 13) - 0.05f;
    gpu_upload(0, x, hx, sizeof(float) * 8 * N, err, sizeof err);
    free(hx);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        wtensor w = { types[i], K, N, quant_row_bytes(types[i], K), NULL, WL_GGUF };
        size_t bytes = w.row_bytes * N;
        void *d = gpu_malloc(0, bytes, "w", err, sizeof err);
        uint8_t *h = calloc(1, bytes);
        for (size_t k = 0; k < bytes; k++) h[k] = (uint8_t)(k * 7 + 3) & 0x3b; /* small finite f16 scales */
        gpu_upload(0, d, h, bytes, err, sizeof err);
        w.data = d;
        char label[96];
        snprintf(label, sizeof label, "matvec %s %dx%d T=1", quant_get(types[i])->name, N, K);
        TIME(label, bytes, gpu_matmul(g, &w, x, 1, y));
        snprintf(label, sizeof label, "matvec %s %dx%d T=8", quant_get(types[i])->name, N, K);
        TIME(label, bytes, gpu_matmul(g, &w, x, 8, y));
        /* the layout the model loader gives the card's copy (q8_0: split rows, 8-bit x) */
        if (gpu_weight_layout(0, &w, err, sizeof err) == 0 && w.layout != WL_GGUF) {
            snprintf(label, sizeof label, "matvec %s %dx%d T=1 card layout", quant_get(types[i])->name, N, K);
            TIME(label, bytes, gpu_matmul(g, &w, x, 1, y));
            snprintf(label, sizeof label, "matvec %s %dx%d T=8 card layout", quant_get(types[i])->name, N, K);
            TIME(label, bytes, gpu_matmul(g, &w, x, 8, y));
        }
        free(h);
        gpu_free(0, d);
    }
    TIME("rmsnorm 4096 (a launch)", 4 * 4096 * 3, gpu_rmsnorm(g, y, x, x, 1, 4096, 1e-5f));
    TIME("add 4096", 4 * 4096 * 3, gpu_add(g, y, x, 4096));
    const int ctypes[] = { QT_F16, QT_Q8_0, QT_Q4_0 };
    for (int di = 0; di < 2; di++) {
        int depth = di ? 32768 : 8192;
        for (int ci = 0; ci < 3; ci++) {
            kv_cache kv;
            if (kv_init(&kv, depth + 8, 1, 8, 128, ctypes[ci], ctypes[ci], 1, err, sizeof err) ||
                kv_init_gpu(&kv, 1, (const int[]){ 0 }, (const int[]){ 0 }, 1, err, sizeof err)) { printf("%s\n", err); return 1; }
            size_t kvb = (size_t)depth * (kv.kb + kv.vb);
            gpu_memset0(g, kv.dk[0], (size_t)kv.n_ctx * kv.kb);
            gpu_memset0(g, kv.dv[0], (size_t)kv.n_ctx * kv.vb);
            attn_args a = { .T = 1, .n_head = 32, .n_head_kv = 8, .head_dim = 128, .pos0 = depth - 1, .n_cells = depth,
                            .q = x, .k = kv.dk[0], .v = kv.dv[0], .k_row_bytes = kv.kb, .v_row_bytes = kv.vb,
                            .type_k = ctypes[ci], .type_v = ctypes[ci], .row = 1024, .scale = 0.088f, .out = y };
            char label[96];
            snprintf(label, sizeof label, "attn decode %s d%d (one layer)", quant_get(ctypes[ci])->name, depth);
            TIME(label, kvb, gpu_attn(g, &a, 1));
            if (di == 0) {
                snprintf(label, sizeof label, "kv_put %s T=1", quant_get(ctypes[ci])->name);
                TIME(label, 8192, kv_put_gpu(&kv, g, 0, 100, 1, x, x));
            }
            kv_free(&kv);
        }
    }
    printf("%s\n", gpu_ctx_error(g));
    gpu_free(0, x); gpu_free(0, y);
    gpu_ctx_free(g);
    return 0;
}
