/* SIMD kernels against the scalar reference: cpu_matmul for every weight type (random
 * data, odd row counts, several batch sizes) and attention for every cache type, with the
 * dispatch forced to the scalar path and left to detection; the q8_0 K score kernels bit
 * for bit against their definition, and SwiGLU. */
#include "testutil.h"
#include "backend/backend.h"
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ULL;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static const int wtypes[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL,
                              QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K };

/* y = W x against a double reference over the dequantized weights. The SIMD path
 * quantizes x to 8 bits: each value is off by at most amax/254, independently, so the
 * error of a dot product is about sqrt(sum w^2) * amax / (254 sqrt 3); the bound allows
 * ~7 of those, plus float rounding. A wrong block offset, nibble order, scale or minimum
 * gives errors of the size of the dot product itself, far outside. */
static void check_matmul(pool *p, int type, int64_t ne0, int64_t ne1, int T, int level) {
    const quant_traits *qt = quant_get(type);
    size_t rb = quant_row_bytes(type, ne0);
    float *wf = malloc(sizeof(float) * ne0 * ne1), *wd = malloc(sizeof(float) * ne0 * ne1);
    uint8_t *wq = malloc(rb * ne1);
    float *x = malloc(sizeof(float) * ne0 * T), *y = malloc(sizeof(float) * ne1 * T);
    for (int64_t i = 0; i < ne0 * ne1; i++) wf[i] = frand() * (1.0f + (float)(i % 7)); /* uneven scales */
    for (int64_t i = 0; i < ne0 * T; i++) x[i] = frand() * (i % 13 == 0 ? 8.0f : 1.0f);   /* a few outliers */
    for (int64_t r = 0; r < ne1; r++) {
        qt->from_float(wf + r * ne0, wq + r * rb, ne0);
        qt->to_float(wq + r * rb, wd + r * ne0, ne0);
    }
    wtensor w = { type, ne0, ne1, rb, wq, WL_GGUF };
    cpu_simd_force(level);
    cpu_matmul(p, &w, x, T, y);
    cpu_simd_force(-1);
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < T && !bad; t++) {
        const float *xt = x + (size_t)t * ne0;
        float amax = 0;
        for (int64_t i = 0; i < ne0; i++) if (fabsf(xt[i]) > amax) amax = fabsf(xt[i]);
        for (int64_t r = 0; r < ne1; r++) {
            double ref = 0, sw = 0, sa = 0; /* sw: sum of w^2 */
            for (int64_t i = 0; i < ne0; i++) {
                ref += (double)wd[r * ne0 + i] * xt[i];
                sw += (double)wd[r * ne0 + i] * wd[r * ne0 + i];
                sa += fabs((double)wd[r * ne0 + i] * xt[i]);
            }
            double tol = (level == 0 || type == QT_F32 || type == QT_F16 || type == QT_BF16 ? 0.0 : 4.0 * sqrt(sw) * amax / 254.0) + 1e-5 * sa + 1e-6;
            double err = fabs(y[(size_t)t * ne1 + r] - ref);
            if (err / tol > worst) worst = err / tol;
            if (!(err <= tol)) {
                CHECK(0, "%s ne0 %lld ne1 %lld T %d level %d: y[%d][%lld] = %g, reference %g (tol %g)", qt->name,
                      (long long)ne0, (long long)ne1, T, level, t, (long long)r, y[(size_t)t * ne1 + r], ref, tol);
                bad = 1;
                break;
            }
        }
    }
    CHECK(!bad, "%s matmul", qt->name);
    if (level == 2 && (T == 5 || T == 1)) printf("  %-6s ne0 %4lld ne1 %2lld T %d: worst error %.3f of the bound\n", qt->name, (long long)ne0, (long long)ne1, T, worst);
    free(wf); free(wd); free(wq); free(x); free(y);
}

/* Attention of random q over a random cache in every type: SIMD flash and plain against
 * the scalar plain path, for decode (T = 1 after a long prefix) and a small batch. */
static void check_attn(pool *p, int tk, int tv, int hd, int n_cells, int T, int level) {
    const int n_head = 8, n_kv = 2, row = n_kv * hd;
    size_t kb = quant_row_bytes(tk, row), vb = quant_row_bytes(tv, row);
    uint8_t *k = malloc(kb * n_cells), *v = malloc(vb * n_cells);
    float *tmp = malloc(sizeof(float) * row), *q = malloc(sizeof(float) * T * n_head * hd);
    float *o_ref = malloc(sizeof(float) * T * n_head * hd), *o = malloc(sizeof(float) * T * n_head * hd);
    for (int c = 0; c < n_cells; c++) {
        for (int i = 0; i < row; i++) tmp[i] = frand() * 2;
        quant_get(tk)->from_float(tmp, k + c * kb, row);
        for (int i = 0; i < row; i++) tmp[i] = frand();
        quant_get(tv)->from_float(tmp, v + c * vb, row);
    }
    for (int i = 0; i < T * n_head * hd; i++) q[i] = frand();
    attn_args a = { .T = T, .n_head = n_head, .n_head_kv = n_kv, .head_dim = hd, .pos0 = n_cells - T, .n_cells = n_cells,
                    .q = q, .k = k, .v = v, .k_row_bytes = kb, .v_row_bytes = vb, .type_k = tk, .type_v = tv, .row = row,
                    .scale = 1.0f / sqrtf((float)hd), .out = o_ref };
    cpu_simd_force(0);
    CHECK(cpu_attn_plain(p, &a) == 0, "plain");
    for (int path = 0; path < 2; path++) {
        a.out = o;
        cpu_simd_force(level);
        CHECK((path ? cpu_attn_flash : cpu_attn_plain)(p, &a) == 0, "attn");
        cpu_simd_force(-1);
        double worst = 0;
        for (int i = 0; i < T * n_head * hd; i++) {
            double e = fabs(o[i] - o_ref[i]);
            if (e > worst) worst = e;
        }
        CHECK(worst < 2e-5, "attn %s K %s V %s hd %d cells %d T %d level %d: max diff %.3g", path ? "flash" : "plain",
              quant_get(tk)->name, quant_get(tv)->name, hd, n_cells, T, level, worst);
    }
    free(k); free(v); free(tmp); free(q); free(o_ref); free(o);
}

/* The q8_0 K score kernel of a level against its definition (simd.h), computed here from
 * random query levels: the integer sums are exact and the float steps are the same, so
 * the scores must be equal bit for bit. Odd head counts (over the 8 the AVX-512 kernel
 * takes at a time), block counts (it takes two at a time) and cell counts (16 a group). */
static void check_kq8(int level, int hd, int nh, int n) {
    cpu_simd_force(level);
    const attn_simd *ops = cpu_attn_simd();
    cpu_simd_force(-1);
    if (!ops || !ops->kq8) return;
    const int nb = hd / 32, pad = 3; /* cells start 3 blocks into a row: a later KV head */
    const size_t rb = 34 * (size_t)(nb + pad + 1);
    const attn_q8_layout L = attn_q8_layout_of(hd);
    uint8_t *k = malloc(rb * n), *qq = malloc(L.stride * nh);
    float *tmp = malloc(sizeof(float) * rb), *out = malloc(sizeof(float) * nh * n), *ref = malloc(sizeof(float) * nh * n);
    for (int c = 0; c < n; c++) {
        for (int i = 0; i < 32 * (nb + pad + 1); i++) tmp[i] = frand() * (1 + c % 5);
        quant_get(QT_Q8_0)->from_float(tmp, k + c * rb, 32 * (nb + pad + 1));
    }
    for (int h = 0; h < nh; h++) {
        int8_t *hi = (int8_t *)(qq + h * L.stride), *lo = hi + L.lo;
        float *dq = (float *)(void *)(qq + h * L.stride + L.d);
        int32_t *corr = (int32_t *)(void *)(qq + h * L.stride + L.corr);
        for (int b = 0; b < nb; b++) {
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                hi[32 * b + i] = (int8_t)(frand() * 127.99f);
                lo[32 * b + i] = (int8_t)(frand() * 127.99f);
                sum += 254 * hi[32 * b + i] + lo[32 * b + i];
            }
            dq[b] = (frand() + 1.5f) * 1e-5f;
            corr[b] = -128 * sum;
        }
        for (int c = 0; c < n; c++) {
            const uint8_t *kb = k + c * rb + 34 * pad;
            float sc = 0.0f;
            for (int b = 0; b < nb; b++, kb += 34) {
                int32_t sh = 0, sl = 0;
                for (int i = 0; i < 32; i++) { sh += hi[32 * b + i] * (int8_t)kb[2 + i]; sl += lo[32 * b + i] * (int8_t)kb[2 + i]; }
                sc = fmaf((float)(254 * sh + sl), quant_f16_to_f32((uint16_t)(kb[0] | kb[1] << 8)) * dq[b], sc);
            }
            ref[h * n + c] = sc;
        }
    }
    ops->kq8(qq, L.stride, nh, k, rb, n, 32 * pad, hd, out, n);
    int bad = -1;
    for (int i = 0; i < nh * n && bad < 0; i++) if (memcmp(&out[i], &ref[i], sizeof(float)) != 0) bad = i;
    CHECK(bad < 0, "kq8 level %d hd %d heads %d cells %d: head %d cell %d: %.9g, definition %.9g", level, hd, nh, n,
          bad < 0 ? 0 : bad / n, bad < 0 ? 0 : bad % n, bad < 0 ? 0.0 : out[bad], bad < 0 ? 0.0 : ref[bad]);
    free(k); free(qq); free(tmp); free(out); free(ref);
}

/* The query's rounding is what q8_0 K attention adds: the same attention with the cache
 * decoded to f32 (float query) must agree to well under what 8-bit query levels cost
 * (~1e-3 here), at every level. */
static void check_kq8_rounding(pool *p, int level) {
    const int n_head = 8, n_kv = 2, hd = 64, row = n_kv * hd, n_cells = 500;
    size_t kb = quant_row_bytes(QT_Q8_0, row);
    uint8_t *k = malloc(kb * n_cells), *kf = malloc(sizeof(float) * row * n_cells), *v = malloc(kb * n_cells);
    float *tmp = malloc(sizeof(float) * row), *q = malloc(sizeof(float) * n_head * hd);
    float *o8 = malloc(sizeof(float) * n_head * hd), *of = malloc(sizeof(float) * n_head * hd);
    for (int c = 0; c < n_cells; c++) {
        for (int i = 0; i < row; i++) tmp[i] = frand() * 2;
        quant_get(QT_Q8_0)->from_float(tmp, k + c * kb, row);
        quant_get(QT_Q8_0)->to_float(k + c * kb, (float *)(void *)(kf + sizeof(float) * row * c), row);
        for (int i = 0; i < row; i++) tmp[i] = frand();
        quant_get(QT_Q8_0)->from_float(tmp, v + c * kb, row);
    }
    for (int i = 0; i < n_head * hd; i++) q[i] = frand() * 3;
    attn_args a = { .T = 1, .n_head = n_head, .n_head_kv = n_kv, .head_dim = hd, .pos0 = n_cells - 1, .n_cells = n_cells,
                    .q = q, .k = k, .v = v, .k_row_bytes = kb, .v_row_bytes = kb, .type_k = QT_Q8_0, .type_v = QT_Q8_0,
                    .row = row, .scale = 0.125f, .out = o8 };
    cpu_simd_force(level);
    CHECK(cpu_attn_flash(p, &a) == 0, "attn");
    a.k = kf; a.k_row_bytes = sizeof(float) * row; a.type_k = QT_F32; a.out = of;
    CHECK(cpu_attn_flash(p, &a) == 0, "attn");
    cpu_simd_force(-1);
    double worst = 0;
    for (int i = 0; i < n_head * hd; i++) if (fabs(o8[i] - of[i]) > worst) worst = fabs(o8[i] - of[i]);
    printf("q8_0 K rounding level %d: %.3g\n", level, worst);
    CHECK(worst < 5e-5, "q8_0 K level %d: max diff %.3g against the f32 copy of the cache", level, worst);
    free(k); free(kf); free(v); free(tmp); free(q); free(o8); free(of);
}

/* cpu_matmul_n (one job for several tensors of one input) gives what separate cpu_matmul
 * calls give, bit for bit: the same kernels on the same quantized input. Mixed types
 * (q4_k and q6_k share an input format; q8_0 does not and goes its own way). */
static void check_matmul_n(pool *p, int T) {
    const int types[3] = { QT_Q4_K, QT_Q6_K, T == 1 ? QT_Q4_K : QT_Q8_0 };
    const int64_t ne0 = 512, ne1[3] = { 36, 20, 52 };
    wtensor w[3];
    float *x = malloc(sizeof(float) * ne0 * T), *y[3], *ref[3], *row = malloc(sizeof(float) * ne0);
    for (int i = 0; i < 3; i++) {
        size_t rb = quant_row_bytes(types[i], ne0);
        uint8_t *d = malloc(rb * ne1[i]);
        for (int64_t r = 0; r < ne1[i]; r++) {
            for (int64_t k = 0; k < ne0; k++) row[k] = frand();
            quant_get(types[i])->from_float(row, d + r * rb, ne0);
        }
        w[i] = (wtensor){ types[i], ne0, ne1[i], rb, d, 0 };
        y[i] = malloc(sizeof(float) * ne1[i] * T);
        ref[i] = malloc(sizeof(float) * ne1[i] * T);
    }
    for (int64_t k = 0; k < ne0 * T; k++) x[k] = frand();
    const wtensor *wp[3] = { &w[0], &w[1], &w[2] };
    for (int i = 0; i < 3; i++) cpu_matmul(p, &w[i], x, T, ref[i]);
    cpu_matmul_n(p, wp, 3, x, T, y);
    for (int i = 0; i < 3; i++) {
        CHECK(memcmp(y[i], ref[i], sizeof(float) * ne1[i] * T) == 0, "matmul_n T %d tensor %d (%s) differs from cpu_matmul", T, i,
              quant_get(types[i])->name);
        free((void *)w[i].data); free(y[i]); free(ref[i]);
    }
    free(x); free(row);
}

/* SwiGLU with the vector exp against the scalar formula, over the range where silu bends */
static void check_swiglu(int level) {
    enum { N = 1000 };
    float g[N], u[N], ref[N];
    for (int i = 0; i < N; i++) {
        g[i] = frand() * 30;
        u[i] = frand();
        ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
    cpu_simd_force(level);
    cpu_swiglu(g, u, N - 3); /* an odd length: the tail too */
    cpu_simd_force(-1);
    double worst = 0;
    for (int i = 0; i < N - 3; i++) {
        double e = fabs(g[i] - ref[i]) / (fabs(ref[i]) + 1e-30);
        if (e > worst) worst = e; /* (fmax here crashes aarch64 gcc 12's vectorizer) */
    }
    CHECK(worst < 1e-6, "swiglu level %d: worst relative error %.3g", level, worst);
}

int main(void) {
    printf("SIMD level detected: %s\n", cpu_simd_name(cpu_simd_level()));
    pool *p = pool_new(3);
    for (size_t i = 0; i < sizeof wtypes / sizeof wtypes[0]; i++) {
        int type = wtypes[i], blk = quant_get(type)->block;
        int64_t ne0s[] = { blk == 256 ? 256 : 64, blk == 256 ? 768 : 352 };
        int64_t ne1s[] = { 1, 7, 13 };
        int Ts[] = { 1, 2, 3, 5 };
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 4; c++)
                    for (int level = 0; level <= 2; level++) check_matmul(p, type, ne0s[a], ne1s[b], Ts[c], level);
    }
    /* matmul with more rows than threads x tile, as the model's shapes */
    for (int level = 1; level <= 2; level++) {
        check_matmul(p, QT_Q8_0, 512, 203, 9, level);
        check_matmul(p, QT_Q4_K, 512, 203, 9, level);
        check_matmul(p, QT_Q6_K, 512, 203, 9, level);
        check_matmul(p, QT_F16, 512, 203, 9, level);
    }

    const int ctypes[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL };
    for (int level = 1; level <= 2; level++) {
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 9; j += (i == j ? 1 : 4)) {
                check_attn(p, ctypes[i], ctypes[j], 64, 300, 1, level);
                check_attn(p, ctypes[i], ctypes[j], 32, 70, 3, level);
            }
        check_attn(p, QT_F16, QT_F16, 128, 1000, 1, level);
        check_attn(p, QT_Q8_0, QT_Q8_0, 128, 1000, 2, level);
        check_attn(p, QT_Q4_0, QT_Q8_0, 16, 50, 4, level);  /* head smaller than a block: generic decode */
        check_attn(p, QT_F16, QT_BF16, 12, 40, 2, level);   /* head size not a multiple of 8 */
    }
    for (int level = 1; level <= 2; level++) {
        static const int shapes[][3] = { { 64, 8, 40 }, { 64, 8, 16 }, { 32, 1, 1 }, { 96, 11, 17 }, { 128, 4, 33 }, { 64, 3, 15 } };
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_kq8(level, shapes[i][0], shapes[i][1], shapes[i][2]);
    }
    for (int level = 0; level <= 2; level++) { check_kq8_rounding(p, level); check_swiglu(level); }
    check_matmul_n(p, 1);
    check_matmul_n(p, 2);
    pool_free(p);
    return test_done("test_simd");
}
