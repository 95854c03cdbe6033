/* Attention over a KV cache of any type, two ways.
 *
 * flash: one pass over the cells with an online softmax, a block of ATT_CB cells at a
 *        time: the block's K and V head segments are decoded to floats once (by the SIMD
 *        decoders of simd.h where the type has one), every query head of the group scores
 *        the block, the running max and sum are updated once per block (not per cell),
 *        and the block's weighted V rows are added to the accumulator. The cache is never
 *        copied beyond one block. When there are few query tokens (decode), the cells are
 *        split into chunks worked on by different threads and the partial softmax states
 *        are merged at the end, so one token still uses every core.
 * plain: the textbook way: a full row of scores per query head, softmax, weighted sum.
 *
 * Scores are float and bit-identical in both paths (same decoders, same dots on the same
 * 32-cell blocks); the softmax weights and the weighted sums are double. That is what
 * keeps the paths in agreement: a quantized cache rounds the next layer's K and V, and a
 * last-bit float difference between the paths would flip some of those roundings (or a
 * quantizer's scale choice) and grow into a visible disagreement; in double the paths
 * differ by ~1e-16 and round to the same floats. */
#include "backend/backend.h"
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEG_TMP(n) ((n) + 2 * 256)
#define ATT_CB 32   /* cells per block: the K and V blocks of a 128-wide head fit in L1 */

/* ---- scalar helpers (the reference, and the path when SIMD is off) ---- */

static void s_dots(const float *q, const float *k, int n, int hd, float scale, float *out) {
    for (int c = 0; c < n; c++) {
        const float *kc = k + (size_t)c * hd;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= hd; i += 4) { s0 += q[i] * kc[i]; s1 += q[i + 1] * kc[i + 1]; s2 += q[i + 2] * kc[i + 2]; s3 += q[i + 3] * kc[i + 3]; }
        for (; i < hd; i++) s0 += q[i] * kc[i];
        out[c] = ((s0 + s1) + (s2 + s3)) * scale;
    }
}
static double s_exp_sum(const float *s, int n, double m, double *p) {
    double sum = 0;
    for (int i = 0; i < n; i++) { p[i] = exp((double)s[i] - m); sum += p[i]; }
    return sum;
}
static void s_wsum(double *acc, const double *p, const double *v, int n, int hd) {
    for (int c = 0; c < n; c++)
        for (int i = 0; i < hd; i++) acc[i] += p[c] * v[(size_t)c * hd + i];
}
static void s_widen(const float *in, double *out, int n) { for (int i = 0; i < n; i++) out[i] = in[i]; }
static int s_has_segment(int type) { (void)type; return 0; }
static const attn_simd scalar_ops = { NULL, s_has_segment, s_dots, s_exp_sum, s_wsum, s_widen };

static const attn_simd *ops_now(void) {
    const attn_simd *s = cpu_attn_simd();
    return s ? s : &scalar_ops;
}

typedef struct kv_reader {
    const attn_simd *ops;
    int type, rot, n_row, fast;
} kv_reader;

static kv_reader reader(const attn_simd *ops, int type, int rot, int n_row, int hd) {
    const quant_traits *qt = quant_get(type);
    kv_reader r = { ops, type, rot, n_row, 0 };
    /* the decoders take whole blocks (and 8-float groups for the float types) */
    int blk = qt->block == 1 ? 8 : qt->block;
    r.fast = !rot && ops->has_segment(type) && hd % blk == 0;
    return r;
}

/* One KV head's values of a cell's row; a row stored rotated as a whole is expanded and
 * rotated back first (rowbuf holds a row). */
static void head_values(const kv_reader *r, const uint8_t *row, int g, int hd, float *out, float *tmp, float *rowbuf) {
    if (r->fast) { r->ops->segment(r->type, row, g * hd, hd, out); return; }
    if (!r->rot) { cpu_row_segment(r->type, row, g * hd, hd, out, tmp); return; }
    cpu_row_segment(r->type, row, 0, r->n_row, rowbuf, tmp);
    cpu_hadamard(rowbuf, r->n_row, 1);
    memcpy(out, rowbuf + g * hd, sizeof(float) * (size_t)hd);
}

/* cells [c, c + n) of KV head g, decoded to n contiguous head rows */
static void decode_block(const kv_reader *r, const uint8_t *base, size_t row_bytes, int c, int n, int g, int hd,
                         float *out, float *tmp, float *rowbuf) {
    for (int i = 0; i < n; i++) head_values(r, base + (size_t)(c + i) * row_bytes, g, hd, out + (size_t)i * hd, tmp, rowbuf);
}

typedef struct flash_job {
    const attn_args *a;
    const attn_simd *ops;
    int n_tc, tpc;          /* token chunks and tokens per chunk */
    int n_cc, cpc;          /* cell chunks and cells per chunk (a multiple of ATT_CB) */
    double *m, *l, *acc;    /* [n_cc][T][n_head] (m, l) and [n_cc][T][n_head*hd] */
} flash_job;

static void flash_task(void *arg, int task, int thread) {
    flash_job *j = arg;
    const attn_args *a = j->a;
    const attn_simd *ops = j->ops;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    (void)thread;
    int tc = task % j->n_tc, rest = task / j->n_tc;
    int g = rest % a->n_head_kv, cc = rest / a->n_head_kv;
    int t0 = tc * j->tpc, t1 = t0 + j->tpc;
    if (t1 > a->T) t1 = a->T;
    int c0 = cc * j->cpc, c1 = c0 + j->cpc;
    if (c1 > a->n_cells) c1 = a->n_cells;
    if (c1 > a->pos0 + t1) c1 = a->pos0 + t1; /* no token of this chunk sees further */
    kv_reader rk = reader(ops, a->type_k, a->k_row_rot, a->row, hd), rv = reader(ops, a->type_v, a->v_row_rot, a->row, hd);
    float *kb = malloc(sizeof(float) * ((size_t)2 * ATT_CB * hd + SEG_TMP(a->row) + a->row));
    double *vd = malloc(sizeof(double) * (size_t)ATT_CB * hd);
    if (!kb || !vd) { free(kb); free(vd); return; } /* the chunk's state stays empty (l = 0): it drops out of the merge */
    float *vb = kb + ATT_CB * hd, *tmp = vb + ATT_CB * hd, *rowbuf = tmp + SEG_TMP(a->row);
    double *M = j->m + (size_t)cc * a->T * H, *L = j->l + (size_t)cc * a->T * H;
    double *ACC = j->acc + (size_t)cc * a->T * H * hd;
    for (int c = c0; c < c1; c += ATT_CB) {
        int nc = c1 - c < ATT_CB ? c1 - c : ATT_CB;
        decode_block(&rk, a->k, a->k_row_bytes, c, nc, g, hd, kb, tmp, rowbuf);
        decode_block(&rv, a->v, a->v_row_bytes, c, nc, g, hd, vb, tmp, rowbuf);
        ops->widen(vb, vd, nc * hd);
        for (int t = t0; t < t1; t++) {
            int n = a->pos0 + t + 1 - c; /* cells of this block token t sees */
            if (n <= 0) continue;
            if (n > nc) n = nc;
            for (int h = g * gs; h < (g + 1) * gs; h++) {
                float s[ATT_CB], mx = -INFINITY;
                double p[ATT_CB];
                ops->dots(a->q + ((size_t)t * H + h) * hd, kb, n, hd, a->scale, s);
                for (int i = 0; i < n; i++) if (s[i] > mx) mx = s[i];
                double *m = &M[t * H + h], *l = &L[t * H + h], *acc = ACC + ((size_t)t * H + h) * hd;
                if (mx > *m) {
                    /* a new maximum: scale what was summed against the old one */
                    double r = exp(*m - mx); /* exp(-inf) = 0 on the first block */
                    *l *= r;
                    for (int i = 0; i < hd; i++) acc[i] *= r;
                    *m = mx;
                }
                *l += ops->exp_sum(s, n, *m, p);
                ops->wsum(acc, p, vd, n, hd);
            }
        }
    }
    free(kb);
    free(vd);
}

int cpu_attn_flash(pool *p, const attn_args *a) {
    const int nt = pool_threads(p), H = a->n_head, hd = a->head_dim;
    flash_job j = { .a = a, .ops = ops_now() };
    /* Enough tasks to keep every thread busy: first from tokens x heads, then from cells. */
    int per_tok = a->T * a->n_head_kv;
    j.n_tc = a->T;
    j.tpc = 1;
    if (per_tok > 4 * nt) { j.n_tc = (4 * nt + a->n_head_kv - 1) / a->n_head_kv; j.tpc = (a->T + j.n_tc - 1) / j.n_tc; j.n_tc = (a->T + j.tpc - 1) / j.tpc; }
    j.n_cc = 1;
    if (j.n_tc * a->n_head_kv < 4 * nt) {
        j.n_cc = (4 * nt) / (j.n_tc * a->n_head_kv);
        int max_cc = (a->n_cells + 2 * ATT_CB - 1) / (2 * ATT_CB);
        if (j.n_cc > max_cc) j.n_cc = max_cc;
        if (j.n_cc < 1) j.n_cc = 1;
    }
    j.cpc = (a->n_cells + j.n_cc - 1) / j.n_cc;
    j.cpc = (j.cpc + ATT_CB - 1) / ATT_CB * ATT_CB; /* whole blocks per chunk */
    j.n_cc = (a->n_cells + j.cpc - 1) / j.cpc;
    size_t nst = (size_t)j.n_cc * a->T * H;
    double *buf = malloc(sizeof(double) * (nst * 2 + nst * hd));
    if (!buf) return -1;
    j.m = buf; j.l = buf + nst; j.acc = buf + 2 * nst;
    for (size_t i = 0; i < nst; i++) { j.m[i] = -INFINITY; j.l[i] = 0; }
    memset(j.acc, 0, sizeof(double) * nst * hd);
    pool_run(p, j.n_tc * a->n_head_kv * j.n_cc, flash_task, &j);
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < H; h++) {
            double mx = -INFINITY, lsum = 0;
            for (int cc = 0; cc < j.n_cc; cc++) {
                double m = j.m[((size_t)cc * a->T + t) * H + h];
                if (m > mx) mx = m;
            }
            double *sum = j.acc + ((size_t)t * H + h) * hd; /* chunk 0's state, merged into in place */
            for (int cc = 0; cc < j.n_cc; cc++) {
                size_t s = ((size_t)cc * a->T + t) * H + h;
                double w = j.l[s] > 0 ? exp(j.m[s] - mx) : 0.0;
                lsum += j.l[s] * w;
                const double *acc = j.acc + s * hd;
                if (cc == 0) for (int i = 0; i < hd; i++) sum[i] = w * acc[i];
                else for (int i = 0; i < hd; i++) sum[i] += w * acc[i];
            }
            float *out = a->out + ((size_t)t * H + h) * hd;
            for (int i = 0; i < hd; i++) out[i] = lsum > 0 ? (float)(sum[i] / lsum) : 0.0f;
        }
    free(buf);
    return 0;
}

typedef struct plain_job { const attn_args *a; const attn_simd *ops; float *scores; } plain_job;

static void plain_task(void *arg, int task, int thread) {
    plain_job *j = arg;
    const attn_args *a = j->a;
    const attn_simd *ops = j->ops;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    (void)thread;
    int t = task / a->n_head_kv, g = task % a->n_head_kv;
    int n = a->pos0 + t + 1;
    if (n > a->n_cells) n = a->n_cells;
    kv_reader rk = reader(ops, a->type_k, a->k_row_rot, a->row, hd), rv = reader(ops, a->type_v, a->v_row_rot, a->row, hd);
    float *blk = malloc(sizeof(float) * ((size_t)ATT_CB * hd + SEG_TMP(a->row) + a->row));
    double *acc = malloc(sizeof(double) * ((size_t)gs * hd + ATT_CB + (size_t)ATT_CB * hd));
    if (!blk || !acc) { free(blk); free(acc); return; }
    float *tmp = blk + ATT_CB * hd, *rowbuf = tmp + SEG_TMP(a->row);
    double *p = acc + (size_t)gs * hd, *vd = p + ATT_CB;
    /* scores: K decoded a block of ATT_CB cells at a time (as flash does, so the scores are
     * the same numbers) */
    for (int c = 0; c < n; c += ATT_CB) {
        int nc = n - c < ATT_CB ? n - c : ATT_CB;
        decode_block(&rk, a->k, a->k_row_bytes, c, nc, g, hd, blk, tmp, rowbuf);
        for (int h = g * gs; h < (g + 1) * gs; h++)
            ops->dots(a->q + ((size_t)t * H + h) * hd, blk, nc, hd, a->scale, j->scores + ((size_t)t * H + h) * a->n_cells + c);
    }
    double sums[gs], maxes[gs];
    for (int h = g * gs; h < (g + 1) * gs; h++) {
        const float *s = j->scores + ((size_t)t * H + h) * a->n_cells;
        float mx = -INFINITY;
        for (int c = 0; c < n; c++) if (s[c] > mx) mx = s[c];
        maxes[h - g * gs] = mx;
        sums[h - g * gs] = 0;
    }
    memset(acc, 0, sizeof(double) * (size_t)gs * hd);
    for (int c = 0; c < n; c += ATT_CB) {
        int nc = n - c < ATT_CB ? n - c : ATT_CB;
        decode_block(&rv, a->v, a->v_row_bytes, c, nc, g, hd, blk, tmp, rowbuf);
        ops->widen(blk, vd, nc * hd);
        for (int h = g * gs; h < (g + 1) * gs; h++) {
            sums[h - g * gs] += ops->exp_sum(j->scores + ((size_t)t * H + h) * a->n_cells + c, nc, maxes[h - g * gs], p);
            ops->wsum(acc + (size_t)(h - g * gs) * hd, p, vd, nc, hd);
        }
    }
    for (int h = g * gs; h < (g + 1) * gs; h++) {
        float *out = a->out + ((size_t)t * H + h) * hd;
        for (int i = 0; i < hd; i++) out[i] = (float)(acc[(size_t)(h - g * gs) * hd + i] / sums[h - g * gs]);
    }
    free(blk);
    free(acc);
}

int cpu_attn_plain(pool *p, const attn_args *a) {
    plain_job j = { a, ops_now(), malloc(sizeof(float) * (size_t)a->T * a->n_head * a->n_cells) };
    if (!j.scores) return -1;
    pool_run(p, a->T * a->n_head_kv, plain_task, &j);
    free(j.scores);
    return 0;
}
