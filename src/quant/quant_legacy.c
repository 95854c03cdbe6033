/* The 32-value block formats: q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 iq4_nl.
 *
 * Layouts are ggml's, byte for byte, so GGUF files from llama.cpp load as they are. In every
 * one of them the two nibbles of qs[j] hold elements j and j + 16 (not 2j and 2j + 1), and
 * for the 5-bit formats bit j of the little-endian 32-bit qh is element j's fifth bit. */
#include "quant/quant_internal.h"

#define QK 32

typedef struct { uint16_t d;    uint8_t qs[QK / 2]; }                  blk_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QK / 2]; }                  blk_q4_1;
typedef struct { uint16_t d;    uint8_t qh[4]; uint8_t qs[QK / 2]; }   blk_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; }   blk_q5_1;
typedef struct { uint16_t d;    int8_t qs[QK]; }                       blk_q8_0;
typedef struct { uint16_t d, s; int8_t qs[QK]; }                       blk_q8_1; /* s = d * sum(qs) */
typedef struct { uint16_t d;    uint8_t qs[QK / 2]; }                  blk_iq4_nl;

_Static_assert(sizeof(blk_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(blk_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(blk_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(blk_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(blk_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(blk_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(blk_iq4_nl) == 18, "iq4_nl block");

/* iq4_nl's codebook: denser near zero, where most weights are. */
static const int8_t iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

static void dec_init(qdec *b, float scale, float bias) {
    b->n = QK; b->sub = QK; b->scale[0] = scale; b->bias[0] = bias;
}

static uint32_t get_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void put_qh(uint8_t qh[4], uint32_t v) {
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(v >> (8 * i));
}

/* The element of largest magnitude, sign kept: symmetric formats map it to their most
 * negative level, which is one step wider than the most positive one. */
static float signed_absmax(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > fabsf(m)) m = x[i];
    return m;
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) { if (x[i] < *lo) *lo = x[i]; if (x[i] > *hi) *hi = x[i]; }
}

static float inv(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* ---- unpack: block -> (q, scale, bias) ---- */

static void unpack_q4_0(const void *p, qdec *b) {
    const blk_q4_0 *x = p;
    dec_init(b, qh2f(x->d), 0.0f);
    for (int j = 0; j < QK / 2; j++) {
        b->q[j]          = (int8_t)((x->qs[j] & 0xf) - 8);
        b->q[j + QK / 2] = (int8_t)((x->qs[j] >> 4) - 8);
    }
}

static void unpack_q4_1(const void *p, qdec *b) {
    const blk_q4_1 *x = p;
    dec_init(b, qh2f(x->d), qh2f(x->m));
    for (int j = 0; j < QK / 2; j++) {
        b->q[j]          = (int8_t)(x->qs[j] & 0xf);
        b->q[j + QK / 2] = (int8_t)(x->qs[j] >> 4);
    }
}

static void unpack_5bit(const uint8_t *qs, const uint8_t qh4[4], int offset, qdec *b) {
    uint32_t qh = get_qh(qh4);
    for (int j = 0; j < QK / 2; j++) {
        int lo = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4)  | (int)((qh >> (j + QK / 2)) & 1) << 4;
        b->q[j] = (int8_t)(lo - offset);
        b->q[j + QK / 2] = (int8_t)(hi - offset);
    }
}

static void unpack_q5_0(const void *p, qdec *b) {
    const blk_q5_0 *x = p;
    dec_init(b, qh2f(x->d), 0.0f);
    unpack_5bit(x->qs, x->qh, 16, b);
}

static void unpack_q5_1(const void *p, qdec *b) {
    const blk_q5_1 *x = p;
    dec_init(b, qh2f(x->d), qh2f(x->m));
    unpack_5bit(x->qs, x->qh, 0, b);
}

static void unpack_q8_0(const void *p, qdec *b) {
    const blk_q8_0 *x = p;
    dec_init(b, qh2f(x->d), 0.0f);
    memcpy(b->q, x->qs, QK);
}

static void unpack_q8_1(const void *p, qdec *b) {
    const blk_q8_1 *x = p;
    dec_init(b, qh2f(x->d), 0.0f);
    memcpy(b->q, x->qs, QK);
}

static void unpack_iq4_nl(const void *p, qdec *b) {
    const blk_iq4_nl *x = p;
    dec_init(b, qh2f(x->d), 0.0f);
    for (int j = 0; j < QK / 2; j++) {
        b->q[j]          = iq4nl_values[x->qs[j] & 0xf];
        b->q[j + QK / 2] = iq4nl_values[x->qs[j] >> 4];
    }
}

/* ---- reference quantizers ----
 * Each computes its scale, rounds it to f16 first, and quantizes against the rounded value,
 * so the stored integers are the best ones for the scale the reader will actually see. */

static void pack_nibbles(uint8_t qs[QK / 2], const int *q) {
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0xf) | (q[j + QK / 2] & 0xf) << 4);
}

static uint32_t fifth_bits(const int *q) {
    uint32_t qh = 0;
    for (int j = 0; j < QK; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    return qh;
}

/* Symmetric: value = d * (q - offset), q in [0, 2 * offset - 1]. */
static uint16_t quant_symmetric(const float *x, int offset, int *q) {
    uint16_t dh = qf2h(signed_absmax(x, QK) / (float)-offset);
    float id = inv(qh2f(dh));
    for (int j = 0; j < QK; j++) q[j] = qround(x[j] * id, -offset, offset - 1) + offset;
    return dh;
}

/* With a minimum: value = d * q + m, q in [0, qmax]. */
static void quant_affine(const float *x, int qmax, int *q, uint16_t *dh, uint16_t *mh) {
    float lo, hi;
    min_max(x, QK, &lo, &hi);
    *dh = qf2h((hi - lo) / (float)qmax);
    *mh = qf2h(lo);
    float id = inv(qh2f(*dh)), m = qh2f(*mh);
    for (int j = 0; j < QK; j++) q[j] = qround((x[j] - m) * id, 0, qmax);
}

static void from_q4_0(const float *x, void *p) {
    blk_q4_0 *y = p;
    int q[QK];
    y->d = quant_symmetric(x, 8, q);
    pack_nibbles(y->qs, q);
}

static void from_q4_1(const float *x, void *p) {
    blk_q4_1 *y = p;
    int q[QK];
    quant_affine(x, 15, q, &y->d, &y->m);
    pack_nibbles(y->qs, q);
}

static void from_q5_0(const float *x, void *p) {
    blk_q5_0 *y = p;
    int q[QK];
    y->d = quant_symmetric(x, 16, q);
    pack_nibbles(y->qs, q);
    put_qh(y->qh, fifth_bits(q));
}

static void from_q5_1(const float *x, void *p) {
    blk_q5_1 *y = p;
    int q[QK];
    quant_affine(x, 31, q, &y->d, &y->m);
    pack_nibbles(y->qs, q);
    put_qh(y->qh, fifth_bits(q));
}

/* q8 keeps the range symmetric (-127..127): -128 would buy nothing and breaks negation. */
static uint16_t quant_q8(const float *x, int8_t *qs, int *sum) {
    float amax = fabsf(signed_absmax(x, QK));
    uint16_t dh = qf2h(amax / 127.0f);
    float id = inv(qh2f(dh));
    *sum = 0;
    for (int j = 0; j < QK; j++) { qs[j] = (int8_t)qround(x[j] * id, -127, 127); *sum += qs[j]; }
    return dh;
}

static void from_q8_0(const float *x, void *p) {
    blk_q8_0 *y = p;
    int sum;
    y->d = quant_q8(x, y->qs, &sum);
}

static void from_q8_1(const float *x, void *p) {
    blk_q8_1 *y = p;
    int sum;
    y->d = quant_q8(x, y->qs, &sum);
    y->s = qf2h(qh2f(y->d) * (float)sum);
}

static int iq4nl_nearest(float v) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - iq4nl_values[k]) < fabsf(v - iq4nl_values[best])) best = k;
    return best;
}

/* The codebook is not symmetric (-127..113), so the block's extreme may fit better at either
 * end. Try a few scales that put it near each end, refit d by least squares for the chosen
 * indices, and keep the one with the smallest squared error. */
static void from_iq4_nl(const float *x, void *p) {
    blk_iq4_nl *y = p;
    float xm = signed_absmax(x, QK), best_d = 0.0f, best_err = INFINITY;
    int idx[QK];
    if (xm != 0.0f) {
        for (int end = 0; end < 2; end++) {
            for (int t = -6; t <= 6; t++) {
                float id = ((end ? 113.0f : -127.0f) + 2.0f * (float)t) / xm;
                float sxk = 0.0f, skk = 0.0f;
                for (int j = 0; j < QK; j++) {
                    int k = iq4nl_values[iq4nl_nearest(x[j] * id)];
                    sxk += x[j] * (float)k; skk += (float)(k * k);
                }
                if (skk <= 0.0f) continue;
                float d = sxk / skk, di = inv(d), err = 0.0f;
                for (int j = 0; j < QK; j++) {
                    float e = x[j] - d * iq4nl_values[iq4nl_nearest(x[j] * di)];
                    err += e * e;
                }
                if (err < best_err) { best_err = err; best_d = d; }
            }
        }
    }
    y->d = qf2h(best_d);
    float di = inv(qh2f(y->d));
    for (int j = 0; j < QK; j++) idx[j] = iq4nl_nearest(x[j] * di);
    pack_nibbles(y->qs, idx);
}

/* ---- rows ---- */

#define LEGACY_ROWS(NAME, TYPE, BLK)                                                       \
    static void NAME##_to_float(const void *src, float *dst, int64_t n) {                  \
        qdec_row_to_float(unpack_##NAME, sizeof(BLK), src, dst, n);                        \
    }                                                                                      \
    static float NAME##_dot(const void *row, const float *x, int64_t n) {                  \
        return qdec_row_dot(unpack_##NAME, sizeof(BLK), row, x, n);                        \
    }                                                                                      \
    static void NAME##_from_float(const float *src, void *dst, int64_t n) {                \
        for (int64_t i = 0; i < n / QK; i++) from_##NAME(src + i * QK, (BLK *)dst + i);    \
    }                                                                                      \
    const quant_traits quant_row_##NAME = { #NAME, TYPE, QK, sizeof(BLK),                  \
                                            NAME##_to_float, NAME##_from_float, NAME##_dot };

LEGACY_ROWS(q4_0, QT_Q4_0, blk_q4_0)
LEGACY_ROWS(q4_1, QT_Q4_1, blk_q4_1)
LEGACY_ROWS(q5_0, QT_Q5_0, blk_q5_0)
LEGACY_ROWS(q5_1, QT_Q5_1, blk_q5_1)
LEGACY_ROWS(q8_0, QT_Q8_0, blk_q8_0)
LEGACY_ROWS(q8_1, QT_Q8_1, blk_q8_1)
LEGACY_ROWS(iq4_nl, QT_IQ4_NL, blk_iq4_nl)
