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
 * Every scale is rounded to f16 before the integers are chosen, so the stored integers are
 * the nearest levels for the scale the reader will actually see.
 *
 * The scale itself comes from a small search rather than from the block's extreme alone.
 * Putting the extreme exactly on the outermost level is rarely the least-error choice: a
 * slightly smaller scale (the extreme clips a little) or a slightly larger one often fits
 * the other 31 values better, and the KV cache, whose rows are quantized once and read on
 * every later step, pays for that error many times. So each quantizer walks a short grid of
 * scales around the extreme one; for each it rounds the block to its levels, refits the
 * scale (and minimum) to those levels by least squares, rounds the fit to f16 and scores
 * its squared error in closed form from the running sums. The winner is polished by a few
 * rounds of "requantize to the nearest levels, refit", kept only while the true error falls.
 * The plain extreme-value scale is scored first and only a strictly better candidate
 * replaces it, so the search never does worse than it. All of it is deterministic.
 *
 * On unit Gaussian data this lowers the relative RMS error by 5-12% (q4_0 0.0863 -> 0.0815,
 * q4_1 0.0780 -> 0.0690, q5_0 0.0427 -> 0.0400, q5_1 0.0377 -> 0.0331, q8_0 0.00538 ->
 * 0.00488), within ~0.2% of a dense scale search, for 1-3 us a block (4-14x the time of
 * the extreme-value scale; the mean KL of a q4_0 KV cache falls ~20%). */

/* How many refit rounds the winner gets; the error stops falling after two or three. */
#define POLISH 3

static void pack_nibbles(uint8_t qs[QK / 2], const int *q) {
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0xf) | (q[j + QK / 2] & 0xf) << 4);
}

static uint32_t fifth_bits(const int *q) {
    uint32_t qh = 0;
    for (int j = 0; j < QK; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    return qh;
}

/* Candidate scoring does a few hundred roundings a block, so it is written to vectorize:
 * eight independent partial sums, clamping by comparison, and rounding by adding and
 * subtracting 1.5 * 2^23 (exact for |v| < 2^22, ties to even). A tie that qround would
 * round the other way only perturbs a score; stored levels always come from qround. NaN
 * input makes every score NaN, and a NaN score never wins. */
#define LANES 8
static const float round_magic = 12582912.0f;

static inline float round_clamped(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (v + round_magic) - round_magic;
}

static float lane_sum(const float *a) {
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += a[l];
    return s;
}

/* A grid of n candidate "levels of the extreme" from l0 to l1 (l1 past the outermost level
 * lets the extreme clip). */
typedef struct { float l0, l1; int n; } search_grid;

static float grid_at(const search_grid *g, int t) {
    return g->l0 + (g->l1 - g->l0) * (float)t / (float)(g->n - 1);
}

/* ---- x ~ d * q, q in lo..hi (lo < 0 < hi) ---- */

/* The squared error of x ~ d * q, less sum(x^2), given sxq = sum(x q) and sqq = sum(q^2). */
static float err_scale(float d, float sxq, float sqq) { return d * (d * sqq - 2.0f * sxq); }

/* The least-squares scale for the levels of x * id, rounded to f16; *err is its score. */
static uint16_t fit_scale(const float *x, float id, int lo, int hi, float *err) {
    float axq[LANES] = { 0 }, aqq[LANES] = { 0 }, flo = (float)lo, fhi = (float)hi;
    for (int j = 0; j < QK; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float k = round_clamped(x[j + l] * id, flo, fhi);
            axq[l] += x[j + l] * k; aqq[l] += k * k;
        }
    float sxq = lane_sum(axq), sqq = lane_sum(aqq);
    uint16_t dh = qf2h(sqq > 0.0f ? sxq / sqq : 0.0f);
    *err = err_scale(qh2f(dh), sxq, sqq);
    return dh;
}

/* The nearest levels for the stored scale dh, their sums, and their score. */
static float levels_scale(const float *x, uint16_t dh, int lo, int hi, int *q, float *sxq, float *sqq) {
    float d = qh2f(dh), id = inv(d);
    *sxq = *sqq = 0.0f;
    for (int j = 0; j < QK; j++) {
        q[j] = qround(x[j] * id, lo, hi);
        *sxq += x[j] * (float)q[j]; *sqq += (float)(q[j] * q[j]);
    }
    return err_scale(d, *sxq, *sqq);
}

/* The signed extreme goes to level -L, on the side with the most room (the q4_0 and q5_0
 * grids reach one level further below zero than above, and trying the short side too was
 * measured to gain nothing). */
static uint16_t quant_scale(const float *x, int lo, int hi, const search_grid *g, int *q) {
    float xm = signed_absmax(x, QK), sxq, sqq;
    uint16_t best = qf2h(xm / (float)lo);
    float e = levels_scale(x, best, lo, hi, q, &sxq, &sqq);
    if (xm == 0.0f) return best;
    float best_err = e;
    uint16_t found = best;
    for (int t = 0; t < g->n; t++) {
        float err;
        uint16_t dh = fit_scale(x, -grid_at(g, t) / xm, lo, hi, &err);
        if (err < best_err) { best_err = err; found = dh; }
    }
    int q2[QK];
    if (found != best) {
        float sxq2, sqq2, e2 = levels_scale(x, found, lo, hi, q2, &sxq2, &sqq2);
        if (e2 < e) { best = found; e = e2; sxq = sxq2; sqq = sqq2; memcpy(q, q2, sizeof q2); }
    }
    for (int it = 0; it < POLISH && sqq > 0.0f; it++) {
        uint16_t dh = qf2h(sxq / sqq);
        if (dh == best || !(err_scale(qh2f(dh), sxq, sqq) < e)) break;
        float sxq2, sqq2, e2 = levels_scale(x, dh, lo, hi, q2, &sxq2, &sqq2);
        if (!(e2 < e)) break;
        best = dh; e = e2; sxq = sxq2; sqq = sqq2;
        memcpy(q, q2, sizeof q2);
    }
    return best;
}

/* Symmetric: value = d * (q - offset), q in [0, 2 * offset - 1]. The grid runs from 80% of
 * the outermost level to 1.5 levels past it. */
static uint16_t quant_symmetric(const float *x, int offset, int *q) {
    const search_grid g = { 0.8f * (float)offset, (float)offset + 1.5f, 12 };
    uint16_t dh = quant_scale(x, -offset, offset - 1, &g, q);
    for (int j = 0; j < QK; j++) q[j] += offset;
    return dh;
}

/* ---- x ~ d * q + m, q in 0..qmax ---- */

typedef struct { float x, q, xq, qq; } affine_sums;

static float err_affine(float d, float m, const affine_sums *s) {
    return d * d * s->qq + (float)QK * m * m + 2.0f * d * m * s->q - 2.0f * d * s->xq - 2.0f * m * s->x;
}

/* The least-squares (d, m) for the sums, each rounded to f16 (m refit to the rounded d). */
static void solve_affine(const affine_sums *s, uint16_t *dh, uint16_t *mh) {
    float det = (float)QK * s->qq - s->q * s->q;
    float d = det > 0.0f ? ((float)QK * s->xq - s->q * s->x) / det : 0.0f;
    *dh = qf2h(d);
    *mh = qf2h((s->x - qh2f(*dh) * s->q) / (float)QK);
}

static float levels_affine(const float *x, uint16_t dh, uint16_t mh, int qmax, int *q, affine_sums *s) {
    float d = qh2f(dh), m = qh2f(mh), id = inv(d);
    s->x = s->q = s->xq = s->qq = 0.0f;
    for (int j = 0; j < QK; j++) {
        q[j] = qround((x[j] - m) * id, 0, qmax);
        float k = (float)q[j];
        s->x += x[j]; s->q += k; s->xq += x[j] * k; s->qq += k * k;
    }
    return err_affine(d, m, s);
}

/* The candidates stretch the block's range about its middle, from 80% of the levels to 1.5
 * levels past them, and slide the levels by a third of a step either way (where the block's
 * values fall between levels matters as much as the step: the 2-D grid lowers the error
 * ~3% more than the stretch alone); the refit then puts the minimum where the data want it. */
static void quant_affine(const float *x, int qmax, int *q, uint16_t *dh, uint16_t *mh) {
    float lo, hi;
    affine_sums s;
    min_max(x, QK, &lo, &hi);
    *dh = qf2h((hi - lo) / (float)qmax);
    *mh = qf2h(lo);
    float e = levels_affine(x, *dh, *mh, qmax, q, &s);
    if (!(hi - lo > 0.0f)) return;
    const search_grid g = { 0.8f * (float)qmax, (float)qmax + 1.5f, 8 };
    float mid = 0.5f * (lo + hi), fq = (float)qmax, best_err = e;
    uint16_t fd = *dh, fm = *mh;
    for (int t = 0; t < 3 * g.n; t++) {
        float id = grid_at(&g, t % g.n) / (hi - lo), half = 0.5f * fq + (float)(t / g.n - 1) / 3.0f;
        float aq[LANES] = { 0 }, axq[LANES] = { 0 }, aqq[LANES] = { 0 };
        for (int j = 0; j < QK; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float k = round_clamped((x[j + l] - mid) * id + half, 0.0f, fq);
                aq[l] += k; axq[l] += x[j + l] * k; aqq[l] += k * k;
            }
        affine_sums c = { s.x, lane_sum(aq), lane_sum(axq), lane_sum(aqq) };
        uint16_t d2, m2;
        solve_affine(&c, &d2, &m2);
        float err = err_affine(qh2f(d2), qh2f(m2), &c);
        if (err < best_err) { best_err = err; fd = d2; fm = m2; }
    }
    int q2[QK];
    affine_sums s2;
    if (fd != *dh || fm != *mh) {
        float e2 = levels_affine(x, fd, fm, qmax, q2, &s2);
        if (e2 < e) { *dh = fd; *mh = fm; e = e2; s = s2; memcpy(q, q2, sizeof q2); }
    }
    for (int it = 0; it < POLISH; it++) {
        uint16_t d2, m2;
        solve_affine(&s, &d2, &m2);
        if ((d2 == *dh && m2 == *mh) || !(err_affine(qh2f(d2), qh2f(m2), &s) < e)) break;
        float e2 = levels_affine(x, d2, m2, qmax, q2, &s2);
        if (!(e2 < e)) break;
        *dh = d2; *mh = m2; e = e2; s = s2;
        memcpy(q, q2, sizeof q2);
    }
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

/* q8 keeps the range symmetric (-127..127): -128 would buy nothing and breaks negation.
 * q8_0 searches a narrow grid (its error is mostly rounding, not range); q8_1 is the
 * activation format of dot products, quantized on every matmul, and keeps the fast
 * extreme-value scale. */
static uint16_t quant_q8_search(const float *x, int8_t *qs) {
    const search_grid g = { 124.0f, 128.0f, 6 };
    int q[QK];
    uint16_t dh = quant_scale(x, -127, 127, &g, q);
    for (int j = 0; j < QK; j++) qs[j] = (int8_t)q[j];
    return dh;
}

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
    y->d = quant_q8_search(x, y->qs);
}

static void from_q8_1(const float *x, void *p) {
    blk_q8_1 *y = p;
    int sum;
    y->d = quant_q8(x, y->qs, &sum);
    y->s = qf2h(qh2f(y->d) * (float)sum);
}

/* ---- iq4_nl: x ~ d * iq4nl_values[q] ---- */

/* Midpoints between neighbouring codebook values, and the steps between them: the nearest
 * entry to v is the number of midpoints below v (a tie goes to the lower entry, NaN to
 * entry 0), and its value the lowest one plus the steps of those midpoints. */
static const float iq4nl_mids[15] = {
    -115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f, 7.0f, 19.0f, 31.5f, 45.5f, 61.0f, 79.0f, 101.0f,
};
static const float iq4nl_steps[15] = { 23, 21, 18, 16, 14, 13, 12, 11, 12, 12, 13, 15, 16, 20, 24 };

static int iq4nl_nearest(float v) {
    int i = v > iq4nl_mids[7] ? 8 : 0;
    if (v > iq4nl_mids[i + 3]) i += 4;
    if (v > iq4nl_mids[i + 1]) i += 2;
    if (v > iq4nl_mids[i]) i += 1;
    return i;
}

/* As fit_scale, for the codebook (found by comparisons so it vectorizes). */
static uint16_t fit_iq4nl(const float *x, float id, float *err) {
    float axk[LANES] = { 0 }, akk[LANES] = { 0 };
    for (int j = 0; j < QK; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float v = x[j + l] * id, k = -127.0f;
            for (int m = 0; m < 15; m++) k += v > iq4nl_mids[m] ? iq4nl_steps[m] : 0.0f;
            axk[l] += x[j + l] * k; akk[l] += k * k;
        }
    float sxk = lane_sum(axk), skk = lane_sum(akk);
    uint16_t dh = qf2h(sxk / skk); /* skk >= 1: no codebook entry is 0 */
    *err = err_scale(qh2f(dh), sxk, skk);
    return dh;
}

static float levels_iq4nl(const float *x, uint16_t dh, int *idx, float *sxk, float *skk) {
    float d = qh2f(dh), id = inv(d);
    *sxk = *skk = 0.0f;
    for (int j = 0; j < QK; j++) {
        idx[j] = iq4nl_nearest(x[j] * id);
        float k = (float)iq4nl_values[idx[j]];
        *sxk += x[j] * k; *skk += k * k;
    }
    return err_scale(d, *sxk, *skk);
}

/* The codebook is not symmetric (-127..113), so the extreme is tried at either end. */
static void from_iq4_nl(const float *x, void *p) {
    blk_iq4_nl *y = p;
    float xm = signed_absmax(x, QK), sxk, skk, best_err = INFINITY;
    uint16_t best = 0;
    int idx[QK], idx2[QK];
    for (int end = 0; end < 2 && xm != 0.0f; end++) {
        float top = end ? 113.0f : -127.0f;
        const search_grid g = { 0.8f * top, 1.15f * top, 12 };
        for (int t = 0; t < g.n; t++) {
            float err;
            uint16_t dh = fit_iq4nl(x, grid_at(&g, t) / xm, &err);
            if (err < best_err) { best_err = err; best = dh; }
        }
    }
    float e = levels_iq4nl(x, best, idx, &sxk, &skk);
    for (int it = 0; it < POLISH && xm != 0.0f; it++) {
        uint16_t dh = qf2h(sxk / skk);
        if (dh == best || !(err_scale(qh2f(dh), sxk, skk) < e)) break;
        float sxk2, skk2, e2 = levels_iq4nl(x, dh, idx2, &sxk2, &skk2);
        if (!(e2 < e)) break;
        best = dh; e = e2; sxk = sxk2; skk = skk2;
        memcpy(idx, idx2, sizeof idx2);
    }
    y->d = best;
    pack_nibbles(y->qs, idx);
}

/* ---- rows ---- */

QUANT_ROWS(q4_0, QT_Q4_0, blk_q4_0, QK)
QUANT_ROWS(q4_1, QT_Q4_1, blk_q4_1, QK)
QUANT_ROWS(q5_0, QT_Q5_0, blk_q5_0, QK)
QUANT_ROWS(q5_1, QT_Q5_1, blk_q5_1, QK)
QUANT_ROWS(q8_0, QT_Q8_0, blk_q8_0, QK)
QUANT_ROWS(q8_1, QT_Q8_1, blk_q8_1, QK)
QUANT_ROWS(iq4_nl, QT_IQ4_NL, blk_iq4_nl, QK)
