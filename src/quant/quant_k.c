/* The k-quants: super-blocks of 256 values cut into sub-blocks of 16 or 32, each with its
 * own scale (and, for q2_k q4_k q5_k, its own minimum), those stored in 4, 6 or 8 bits
 * against one or two f16 super-scales. Layouts are ggml's, byte for byte.
 *
 * All of them number the sub-blocks in element order (sub-block of element e is e / 16 or
 * e / 32). The bit planes are interleaved less obviously; the helpers below name, for an
 * element e, the byte and shift that hold its bits, and both unpack and pack use them. */
#include "quant/quant_internal.h"

typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; }               blk_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; }   blk_q3_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; }               blk_q4_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; }      blk_q6_k;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; }                          blk_q8_k;

_Static_assert(sizeof(blk_q2_k) == 84, "q2_k block");
_Static_assert(sizeof(blk_q3_k) == 110, "q3_k block");
_Static_assert(sizeof(blk_q4_k) == 144, "q4_k block");
_Static_assert(sizeof(blk_q5_k) == 176, "q5_k block");
_Static_assert(sizeof(blk_q6_k) == 210, "q6_k block");
_Static_assert(sizeof(blk_q8_k) == 292, "q8_k block");

/* q2_k and q3_k: 2-bit planes. Each 128-value half uses 32 bytes; within it, value r holds
 * byte r % 32 at shift 2 * (r / 32). q3_k's third bit sits in hmask[e % 32], bit e / 32. */
static int plane2_byte(int e)  { return 32 * (e / 128) + e % 32; }
static int plane2_shift(int e) { return 2 * ((e % 128) / 32); }

/* q4_k and q5_k: each 64-value chunk uses 32 bytes, low nibbles first then high. q5_k's fifth
 * bit sits in qh[e % 32], bit e / 32. */
static int nib4_byte(int e)  { return 32 * (e / 64) + e % 32; }
static int nib4_shift(int e) { return 4 * ((e % 64) / 32); }

/* q6_k: each 128-value half uses 64 ql bytes and 32 qh bytes. Its four 32-value quarters k
 * take the low nibbles of ql[0..31], ql[32..63], then the high nibbles of the same, and
 * qh bits 2k..2k+1. */
static int q6_ql_byte(int e)  { return 64 * (e / 128) + 32 * ((e % 128) / 32 % 2) + e % 32; }
static int q6_ql_shift(int e) { return 4 * ((e % 128) / 64); }
static int q6_qh_byte(int e)  { return 32 * (e / 128) + e % 32; }
static int q6_qh_shift(int e) { return 2 * ((e % 128) / 32); }

/* q3_k: sixteen 6-bit scales in 12 bytes. Low nibbles: bytes 0..7 hold scales 0..7 in their
 * low halves and scales 8..15 in their high halves; the top two bits of scale i are in byte
 * 8 + i % 4 at shift 2 * (i / 4). */
static int q3_scale_get(const uint8_t s[12], int i) {
    return ((s[i % 8] >> (4 * (i / 8))) & 0xf) | ((s[8 + i % 4] >> (2 * (i / 4))) & 3) << 4;
}

static void q3_scale_put(uint8_t s[12], int i, int v) {
    s[i % 8] |= (uint8_t)((v & 0xf) << (4 * (i / 8)));
    s[8 + i % 4] |= (uint8_t)(((v >> 4) & 3) << (2 * (i / 4)));
}

/* q4_k and q5_k: eight 6-bit scales and eight 6-bit mins in 12 bytes. Pairs 0..3 sit whole
 * in the low 6 bits of bytes 0..3 (scale) and 4..7 (min); pairs 4..7 put their low nibbles in
 * bytes 8..11 (scale low, min high) and their top two bits in the spare top bits of 0..7. */
static void k4_scale_get(const uint8_t s[12], int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4)  | (s[j] >> 6) << 4;
    }
}

static void k4_scale_put(uint8_t s[12], int j, int sc, int mn) {
    if (j < 4) {
        s[j] |= (uint8_t)sc;
        s[j + 4] |= (uint8_t)mn;
    } else {
        s[j + 4] = (uint8_t)((sc & 0xf) | (mn & 0xf) << 4);
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((mn >> 4) << 6);
    }
}

/* ---- unpack ---- */

static void unpack_q2_k(const void *p, qdec *b) {
    const blk_q2_k *x = p;
    float d = qh2f(x->d), dmin = qh2f(x->dmin);
    b->n = QK_K; b->sub = 16;
    for (int s = 0; s < 16; s++) {
        b->scale[s] = d * (float)(x->scales[s] & 0xf);
        b->bias[s] = -dmin * (float)(x->scales[s] >> 4);
    }
    for (int e = 0; e < QK_K; e++) b->q[e] = (int8_t)((x->qs[plane2_byte(e)] >> plane2_shift(e)) & 3);
}

static void unpack_q3_k(const void *p, qdec *b) {
    const blk_q3_k *x = p;
    float d = qh2f(x->d);
    b->n = QK_K; b->sub = 16;
    for (int s = 0; s < 16; s++) { b->scale[s] = d * (float)(q3_scale_get(x->scales, s) - 32); b->bias[s] = 0.0f; }
    /* a clear hmask bit means "subtract 4": the stored 3-bit value is q + 4 */
    for (int e = 0; e < QK_K; e++) {
        int lo = (x->qs[plane2_byte(e)] >> plane2_shift(e)) & 3, hi = (x->hmask[e % 32] >> (e / 32)) & 1;
        b->q[e] = (int8_t)(lo + 4 * hi - 4);
    }
}

static void unpack_k4_scales(const uint8_t s[12], float d, float dmin, qdec *b) {
    b->n = QK_K; b->sub = 32;
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        k4_scale_get(s, j, &sc, &mn);
        b->scale[j] = d * (float)sc;
        b->bias[j] = -dmin * (float)mn;
    }
}

static void unpack_q4_k(const void *p, qdec *b) {
    const blk_q4_k *x = p;
    unpack_k4_scales(x->scales, qh2f(x->d), qh2f(x->dmin), b);
    for (int e = 0; e < QK_K; e++) b->q[e] = (int8_t)((x->qs[nib4_byte(e)] >> nib4_shift(e)) & 0xf);
}

static void unpack_q5_k(const void *p, qdec *b) {
    const blk_q5_k *x = p;
    unpack_k4_scales(x->scales, qh2f(x->d), qh2f(x->dmin), b);
    for (int e = 0; e < QK_K; e++)
        b->q[e] = (int8_t)(((x->qs[nib4_byte(e)] >> nib4_shift(e)) & 0xf) | ((x->qh[e % 32] >> (e / 32)) & 1) << 4);
}

static void unpack_q6_k(const void *p, qdec *b) {
    const blk_q6_k *x = p;
    float d = qh2f(x->d);
    b->n = QK_K; b->sub = 16;
    for (int s = 0; s < 16; s++) { b->scale[s] = d * (float)x->scales[s]; b->bias[s] = 0.0f; }
    for (int e = 0; e < QK_K; e++) {
        int lo = (x->ql[q6_ql_byte(e)] >> q6_ql_shift(e)) & 0xf, hi = (x->qh[q6_qh_byte(e)] >> q6_qh_shift(e)) & 3;
        b->q[e] = (int8_t)((lo | hi << 4) - 32);
    }
}

static void unpack_q8_k(const void *p, qdec *b) {
    const blk_q8_k *x = p;
    b->n = QK_K; b->sub = 16;
    for (int s = 0; s < 16; s++) { b->scale[s] = x->d; b->bias[s] = 0.0f; }
    memcpy(b->q, x->qs, QK_K);
}

/* ---- fitting one sub-block ----
 * Rounding to the nearest level with the range-spanning scale is rarely the best choice: a
 * slightly larger or smaller step often fits the bulk of the values better. So each fit tries
 * a small fan of steps around it, refits scale (and minimum) by least squares for the levels
 * that step chose, and keeps whichever gives the smallest squared error. */

/* x ~ scale * q + bias, q in [0, qmax], bias <= 0 (the formats store -bias as unsigned). */
static void fit_affine(const float *x, int n, int qmax, float *scale, float *bias) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; }
    if (lo > 0.0f) lo = 0.0f;
    *scale = 0.0f; *bias = lo;
    if (!(hi > lo)) return;
    float best = INFINITY;
    for (int t = -10; t <= 10; t++) {
        float iscale = ((float)qmax + 0.1f * (float)t) / (hi - lo);
        float sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int i = 0; i < n; i++) {
            float q = (float)qround((x[i] - lo) * iscale, 0, qmax);
            sq += q; sqq += q * q; sx += x[i]; sqx += q * x[i];
        }
        float det = (float)n * sqq - sq * sq, s, b;
        if (det <= 0.0f) continue;
        s = ((float)n * sqx - sq * sx) / det;
        b = (sqq * sx - sq * sqx) / det;
        if (b > 0.0f) { b = 0.0f; s = sqx / sqq; }
        if (!(s > 0.0f)) continue;
        float err = 0.0f, is = 1.0f / s;
        for (int i = 0; i < n; i++) {
            float e = s * (float)qround((x[i] - b) * is, 0, qmax) + b - x[i];
            err += e * e;
        }
        if (err < best) { best = err; *scale = s; *bias = b; }
    }
}

/* x ~ scale * q, q in [-(qmax + 1), qmax]; scale is signed so the largest magnitude can
 * take the wider negative end whichever its sign. */
static float fit_symmetric(const float *x, int n, int qmax) {
    float xm = 0.0f;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > fabsf(xm)) xm = x[i];
    if (xm == 0.0f) return 0.0f;
    float best = INFINITY, scale = xm / (float)-(qmax + 1);
    for (int t = -10; t <= 10; t++) {
        float iscale = -((float)(qmax + 1) + 0.1f * (float)t) / xm, sqx = 0, sqq = 0;
        for (int i = 0; i < n; i++) {
            float q = (float)qround(x[i] * iscale, -(qmax + 1), qmax);
            sqx += q * x[i]; sqq += q * q;
        }
        if (sqq <= 0.0f) continue;
        float s = sqx / sqq, err = 0.0f, is = 1.0f / s;
        for (int i = 0; i < n; i++) {
            float e = s * (float)qround(x[i] * is, -(qmax + 1), qmax) - x[i];
            err += e * e;
        }
        if (err < best) { best = err; scale = s; }
    }
    return scale;
}

/* Sub-scales (all >= 0) to unsigned integers of at most lmax against one f16 super-scale. */
static uint16_t quant_scales_unsigned(const float *v, int n, int lmax, int *l) {
    float vmax = 0.0f;
    for (int i = 0; i < n; i++) if (v[i] > vmax) vmax = v[i];
    uint16_t dh = qf2h(vmax / (float)lmax);
    float d = qh2f(dh), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) l[i] = qround(v[i] * id, 0, lmax);
    return dh;
}

/* Signed sub-scales to integers in [-(lmax + 1), lmax]; the largest magnitude takes the
 * negative end, as in fit_symmetric. */
static uint16_t quant_scales_signed(const float *v, int n, int lmax, int *l) {
    float vm = 0.0f;
    for (int i = 0; i < n; i++) if (fabsf(v[i]) > fabsf(vm)) vm = v[i];
    uint16_t dh = qf2h(vm / (float)-(lmax + 1));
    float d = qh2f(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) l[i] = qround(v[i] * id, -(lmax + 1), lmax);
    return dh;
}

/* Affine super-block (q2_k q4_k q5_k): fit every sub-block, quantize the scales and the
 * minimums, then choose each value's level against the scales as stored. */
static void quant_affine_k(const float *x, int sub, int qmax, int lmax, int *q, int *ls, int *lm,
                           uint16_t *dh, uint16_t *dminh) {
    int ns = QK_K / sub;
    float sc[16] = { 0 }, mn[16] = { 0 };
    for (int s = 0; s < ns; s++) {
        float bias;
        fit_affine(x + s * sub, sub, qmax, &sc[s], &bias);
        mn[s] = -bias;
    }
    *dh = quant_scales_unsigned(sc, ns, lmax, ls);
    *dminh = quant_scales_unsigned(mn, ns, lmax, lm);
    float d = qh2f(*dh), dmin = qh2f(*dminh);
    for (int s = 0; s < ns; s++) {
        float step = d * (float)ls[s], m = dmin * (float)lm[s], is = step > 0.0f ? 1.0f / step : 0.0f;
        for (int i = s * sub; i < (s + 1) * sub; i++) q[i] = qround((x[i] + m) * is, 0, qmax);
    }
}

/* Symmetric super-block (q3_k q6_k): q in [-(qmax + 1), qmax], signed sub-scales. */
static uint16_t quant_symmetric_k(const float *x, int qmax, int lmax, int *q, int *ls) {
    float sc[16];
    for (int s = 0; s < 16; s++) sc[s] = fit_symmetric(x + 16 * s, 16, qmax);
    uint16_t dh = quant_scales_signed(sc, 16, lmax, ls);
    float d = qh2f(dh);
    for (int s = 0; s < 16; s++) {
        float step = d * (float)ls[s], is = step != 0.0f ? 1.0f / step : 0.0f;
        for (int i = 16 * s; i < 16 * (s + 1); i++) q[i] = qround(x[i] * is, -(qmax + 1), qmax);
    }
    return dh;
}

/* ---- pack ---- */

static void from_q2_k(const float *x, void *p) {
    blk_q2_k *y = p;
    int q[QK_K], ls[16], lm[16];
    quant_affine_k(x, 16, 3, 15, q, ls, lm, &y->d, &y->dmin);
    memset(y->qs, 0, sizeof y->qs);
    for (int s = 0; s < 16; s++) y->scales[s] = (uint8_t)(ls[s] | lm[s] << 4);
    for (int e = 0; e < QK_K; e++) y->qs[plane2_byte(e)] |= (uint8_t)(q[e] << plane2_shift(e));
}

static void from_q3_k(const float *x, void *p) {
    blk_q3_k *y = p;
    int q[QK_K], ls[16];
    y->d = quant_symmetric_k(x, 3, 31, q, ls);
    memset(y->hmask, 0, sizeof y->hmask);
    memset(y->qs, 0, sizeof y->qs);
    memset(y->scales, 0, sizeof y->scales);
    for (int s = 0; s < 16; s++) q3_scale_put(y->scales, s, ls[s] + 32);
    for (int e = 0; e < QK_K; e++) {
        int u = q[e] + 4;
        y->qs[plane2_byte(e)] |= (uint8_t)((u & 3) << plane2_shift(e));
        y->hmask[e % 32] |= (uint8_t)((u >> 2) << (e / 32));
    }
}

static void pack_k4_scales(uint8_t s[12], const int *ls, const int *lm) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) k4_scale_put(s, j, ls[j], lm[j]);
}

static void from_q4_k(const float *x, void *p) {
    blk_q4_k *y = p;
    int q[QK_K], ls[8], lm[8];
    quant_affine_k(x, 32, 15, 63, q, ls, lm, &y->d, &y->dmin);
    pack_k4_scales(y->scales, ls, lm);
    memset(y->qs, 0, sizeof y->qs);
    for (int e = 0; e < QK_K; e++) y->qs[nib4_byte(e)] |= (uint8_t)(q[e] << nib4_shift(e));
}

static void from_q5_k(const float *x, void *p) {
    blk_q5_k *y = p;
    int q[QK_K], ls[8], lm[8];
    quant_affine_k(x, 32, 31, 63, q, ls, lm, &y->d, &y->dmin);
    pack_k4_scales(y->scales, ls, lm);
    memset(y->qs, 0, sizeof y->qs);
    memset(y->qh, 0, sizeof y->qh);
    for (int e = 0; e < QK_K; e++) {
        y->qs[nib4_byte(e)] |= (uint8_t)((q[e] & 0xf) << nib4_shift(e));
        y->qh[e % 32] |= (uint8_t)((q[e] >> 4) << (e / 32));
    }
}

static void from_q6_k(const float *x, void *p) {
    blk_q6_k *y = p;
    int q[QK_K], ls[16];
    y->d = quant_symmetric_k(x, 31, 127, q, ls);
    for (int s = 0; s < 16; s++) y->scales[s] = (int8_t)ls[s];
    memset(y->ql, 0, sizeof y->ql);
    memset(y->qh, 0, sizeof y->qh);
    for (int e = 0; e < QK_K; e++) {
        int u = q[e] + 32;
        y->ql[q6_ql_byte(e)] |= (uint8_t)((u & 0xf) << q6_ql_shift(e));
        y->qh[q6_qh_byte(e)] |= (uint8_t)((u >> 4) << q6_qh_shift(e));
    }
}

/* q8_k is ggml's activation format for k-quant dot products; bsums lets a kernel apply a
 * weight block's minimums without touching the quants again. Its d is a plain f32. */
static void from_q8_k(const float *x, void *p) {
    blk_q8_k *y = p;
    float amax = 0.0f;
    for (int i = 0; i < QK_K; i++) if (fabsf(x[i]) > amax) amax = fabsf(x[i]);
    y->d = amax / 127.0f;
    float id = y->d > 0.0f ? 1.0f / y->d : 0.0f;
    for (int s = 0; s < 16; s++) {
        int sum = 0;
        for (int i = 16 * s; i < 16 * (s + 1); i++) { y->qs[i] = (int8_t)qround(x[i] * id, -127, 127); sum += y->qs[i]; }
        y->bsums[s] = (int16_t)sum;
    }
}

/* ---- rows ---- */

QUANT_ROWS(q2_k, QT_Q2_K, blk_q2_k, QK_K)
QUANT_ROWS(q3_k, QT_Q3_K, blk_q3_k, QK_K)
QUANT_ROWS(q4_k, QT_Q4_K, blk_q4_k, QK_K)
QUANT_ROWS(q5_k, QT_Q5_K, blk_q5_k, QK_K)
QUANT_ROWS(q6_k, QT_Q6_K, blk_q6_k, QK_K)
QUANT_ROWS(q8_k, QT_Q8_K, blk_q8_k, QK_K)
