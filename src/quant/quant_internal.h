/* quant internals: shared by the files that define the rows of the traits table.
 *
 * Every integer block format here decodes to the same shape: small integers q with one
 * (scale, bias) pair per sub-block, value = scale * q + bias. Each format only writes an
 * unpack function into that shape; to_float and dot are derived from it by the helpers
 * below, so the two can never disagree about what a block means. */
#ifndef HEARTH_QUANT_INTERNAL_H
#define HEARTH_QUANT_INTERNAL_H

#include "quant/quant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Super-block size of the k-quants; the largest block of any format. */
#define QK_K 256

typedef struct qdec {
    int    n;                 /* values in the block */
    int    sub;               /* values per (scale, bias) pair */
    int8_t q[QK_K];
    float  scale[QK_K / 16], bias[QK_K / 16];
} qdec;

typedef void (*qdec_unpack_fn)(const void *blk, qdec *out);

static inline void qdec_row_to_float(qdec_unpack_fn unpack, size_t bytes, const void *src,
                                     float *dst, int64_t n) {
    const uint8_t *p = src;
    qdec b;
    for (int64_t done = 0; done < n; p += bytes) {
        unpack(p, &b);
        for (int i = 0; i < b.n; i++) dst[done + i] = b.scale[i / b.sub] * b.q[i] + b.bias[i / b.sub];
        done += b.n;
    }
}

/* Factored per sub-block (scale * sum(q*x) + bias * sum(x)) rather than expanding to floats:
 * the same arithmetic a SIMD kernel does, and it keeps the reference usable as a fallback. */
static inline float qdec_row_dot(qdec_unpack_fn unpack, size_t bytes, const void *row,
                                 const float *x, int64_t n) {
    const uint8_t *p = row;
    qdec b;
    float acc = 0.0f;
    for (int64_t done = 0; done < n; p += bytes) {
        unpack(p, &b);
        const float *xb = x + done;
        for (int s = 0; s < b.n / b.sub; s++) {
            float sq = 0.0f, sx = 0.0f;
            for (int i = s * b.sub; i < (s + 1) * b.sub; i++) { sq += b.q[i] * xb[i]; sx += xb[i]; }
            acc += b.scale[s] * sq + b.bias[s] * sx;
        }
        done += b.n;
    }
    return acc;
}

/* f16 fields of blocks are stored as raw bits; these keep the conversions in one place. */
static inline float    qh2f(uint16_t h) { return quant_f16_to_f32(h); }
static inline uint16_t qf2h(float f)    { return quant_f32_to_f16(f); }

/* Nearest integer within [lo, hi] (lo <= 0 <= hi), halves away from zero as roundf does.
 * Clamping happens in float first so that huge values or NaN (a NaN weight, a zero scale)
 * never reach an out-of-range float-to-int conversion; NaN becomes 0. The rounding is done
 * by hand because without SSE4.1 roundf is a library call, and the quantizers' scale
 * searches call this ~1000 times a block: v - trunc(v) is exact, so this equals roundf. */
static inline int qround(float v, int lo, int hi) {
    if (v != v) return 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    int i = (int)v;
    float r = v - (float)i;
    return i + (r >= 0.5f) - (r <= -0.5f);
}

/* The rows each file defines (the table in quant.c points at them). */
extern const quant_traits quant_row_f32, quant_row_f16, quant_row_bf16;
extern const quant_traits quant_row_q4_0, quant_row_q4_1, quant_row_q5_0, quant_row_q5_1,
                          quant_row_q8_0, quant_row_q8_1, quant_row_iq4_nl;
extern const quant_traits quant_row_q2_k, quant_row_q3_k, quant_row_q4_k, quant_row_q5_k,
                          quant_row_q6_k, quant_row_q8_k;


/* The traits row of a block type, from its unpack (decode) and from_ (encode) functions:
 * to_float and dot are both built on the unpack, so they cannot disagree. */
#define QUANT_ROWS(NAME, TYPE, BLK, VALS)                                                  \
    static void NAME##_to_float(const void *src, float *dst, int64_t n) {                  \
        qdec_row_to_float(unpack_##NAME, sizeof(BLK), src, dst, n);                        \
    }                                                                                      \
    static float NAME##_dot(const void *row, const float *x, int64_t n) {                  \
        return qdec_row_dot(unpack_##NAME, sizeof(BLK), row, x, n);                        \
    }                                                                                      \
    static void NAME##_from_float(const float *src, void *dst, int64_t n) {                \
        for (int64_t i = 0; i < n / (VALS); i++) from_##NAME(src + i * (VALS), (BLK *)dst + i); \
    }                                                                                      \
    const quant_traits quant_row_##NAME = { #NAME, TYPE, VALS, sizeof(BLK),                \
                                            NAME##_to_float, NAME##_from_float, NAME##_dot };

#endif
