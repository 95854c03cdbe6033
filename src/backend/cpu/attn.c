/* Attention over a KV cache of any type, two ways.
 *
 * flash: one pass over the cells with an online softmax, a block of ATT_CB cells at a
 *        time: the block's K and V head segments are decoded to floats once (by the SIMD
 *        decoders of simd.h where the type has one) and serve every query head of the
 *        group (grouped-query attention shares a KV head among n_head / n_head_kv query
 *        heads) and every token of the task; each query row keeps a running max, sum and
 *        accumulator, rescaled only when a block raises the max. When there are few query
 *        rows (decode), the cells are cut into chunks of ATT_CHUNK worked on by different
 *        threads, and the partial softmax states are merged at the end, so one token still
 *        uses every core.
 * plain: the textbook way: a full row of scores per query head, its max, softmax, weighted sum.
 *
 * Everything is float. The paths do not round the same way (the online softmax rescales,
 * the chunks are merged), so they agree to float precision, not bit for bit; the tests
 * compare them with a tolerance. What is kept exact: the scores are bit-identical in both
 * paths (same decoders, same dots on the same blocks), and the way the cells are cut into
 * blocks and chunks depends only on the token's position, never on the number of threads,
 * so a result does not change with -t. */
#include "backend/backend.h"
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEG_TMP(n) ((n) + 2 * 256)
#define ATT_CB 32       /* cells per block: the K and V blocks of a 128-wide head fit in L1 */
#define ATT_CHUNK 128   /* cells per chunk when decode splits the cells (a multiple of ATT_CB) */

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
static float s_exp_sum(const float *s, int n, float m, float *p) {
    float sum = 0;
    for (int i = 0; i < n; i++) { p[i] = expf(s[i] - m); sum += p[i]; }
    return sum;
}
static float s_online(const float *s, int n, float *m, float *l, float *p) {
    float bm = -INFINITY, r = 1.0f;
    for (int i = 0; i < n; i++) bm = s[i] > bm ? s[i] : bm;
    if (bm > *m) { r = expf(*m - bm); *l *= r; *m = bm; } /* expf(-inf) = 0 on the first block */
    *l += s_exp_sum(s, n, *m, p);
    return r;
}
static void s_wsum(float *acc, float r, const float *p, const float *v, int n, int hd) {
    for (int i = 0; i < hd; i++) acc[i] *= r;
    for (int c = 0; c < n; c++)
        for (int i = 0; i < hd; i++) acc[i] += p[c] * v[(size_t)c * hd + i];
}
static int s_has_segment(int type) { (void)type; return 0; }
static float f16_at(const uint8_t *p) { return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static void s_kq8(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start,
                  int hd, float *out, int ldo) {
    const attn_q8_layout L = attn_q8_layout_of(hd);
    for (int h = 0; h < nh; h++) {
        const int8_t *hi = (const int8_t *)(qq + (size_t)h * qstride), *lo = hi + L.lo;
        const float *dq = (const float *)(const void *)(qq + (size_t)h * qstride + L.d);
        for (int c = 0; c < n; c++) {
            const uint8_t *kb = k + (size_t)c * row_bytes + (size_t)(start / 32) * 34;
            float s = 0.0f;
            for (int b = 0; b < hd / 32; b++, kb += 34) {
                int32_t sh = 0, sl = 0;
                for (int i = 0; i < 32; i++) {
                    sh += hi[32 * b + i] * (int8_t)kb[2 + i];
                    sl += lo[32 * b + i] * (int8_t)kb[2 + i];
                }
                s = fmaf((float)(254 * sh + sl), f16_at(kb) * dq[b], s);
            }
            out[(size_t)h * ldo + c] = s;
        }
    }
}
static const attn_simd scalar_ops = { NULL, s_has_segment, s_dots, s_exp_sum, s_online, s_wsum, s_kq8, NULL, NULL, NULL };

static const attn_simd *ops_now(void) {
    const attn_simd *s = cpu_attn_simd();
    return s ? s : &scalar_ops;
}

/* ---- q8_0 K: integer scores ----
 * With a q8_0 K cache the query is quantized too, per 32 values, and each score is an
 * integer dot product of the two blocks times their two steps: the cache is read where it
 * lies, never decoded to floats, and SIMD kernels do 64 byte products per instruction.
 * The query gets 16-bit levels (the peer uses 8, which costs measurably more than the
 * cache's own rounding), held as two bytes so the products stay 8-bit (simd.h). Every
 * level quantizes the query here, so the scores do not depend on the level. */
static int k_is_q8(const attn_args *a) { return a->type_k == QT_Q8_0 && !a->k_row_rot && a->head_dim % 32 == 0; }

static void quant_head(const float *x, int hd, float scale, uint8_t *dst) {
    const attn_q8_layout L = attn_q8_layout_of(hd);
    int8_t *hi = (int8_t *)dst, *lo = hi + L.lo;
    float *dq = (float *)(void *)(dst + L.d);
    int32_t *corr = (int32_t *)(void *)(dst + L.corr);
    for (int b = 0; b < hd / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        float id = amax > 0.0f ? 32258.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            /* round to nearest even by adding and taking off 1.5 * 2^23 (|x * id| <= 32258
             * plus rounding): lrintf, without its library call */
            int q = (int)((xb[i] * id + 12582912.0f) - 12582912.0f);
            q = q > 32258 ? 32258 : q < -32258 ? -32258 : q;
            /* hi = q / 254 rounded to nearest, so that |lo| <= 127 */
            int h = (q + (q >= 0 ? 127 : -127)) / 254;
            hi[32 * b + i] = (int8_t)h;
            lo[32 * b + i] = (int8_t)(q - 254 * h);
            sum += q;
        }
        dq[b] = amax / 32258.0f * scale;
        corr[b] = -128 * sum;
    }
}

typedef struct qq_job { const attn_args *a; uint8_t *qq; size_t stride; } qq_job;
static void quant_task(void *arg, int t, int thread) {
    qq_job *j = arg;
    const attn_args *a = j->a;
    (void)thread;
    for (int h = 0; h < a->n_head; h++)
        quant_head(a->q + ((size_t)t * a->n_head + h) * a->head_dim, a->head_dim, a->scale,
                   j->qq + ((size_t)t * a->n_head + h) * j->stride);
}

/* The quantized queries [T][n_head] (stride bytes each) when K is q8_0, else NULL (also
 * when out of memory: *failed is set). */
static uint8_t *quant_queries(pool *p, const attn_args *a, size_t *stride, int *failed) {
    *failed = 0;
    if (!k_is_q8(a)) return NULL;
    *stride = attn_q8_layout_of(a->head_dim).stride;
    qq_job j = { a, malloc(*stride * (size_t)a->T * a->n_head), *stride };
    if (!j.qq) { *failed = 1; return NULL; }
    /* a few tokens (decode) are quicker here than a round trip through the pool */
    if (a->T < 8) for (int t = 0; t < a->T; t++) quant_task(&j, t, 0);
    else pool_run(p, a->T, quant_task, &j);
    return j.qq;
}

/* scores of the nh heads at qq against cells [c, c + n) of KV head g: out[h * ld + i] */
static void kq8_scores(const attn_simd *ops, const uint8_t *qq, size_t qstride, int nh, const attn_args *a, int c, int n,
                          int g, float *out, int ld) {
    (ops->kq8 ? ops->kq8 : s_kq8)(qq, qstride, nh, a->k + (size_t)c * a->k_row_bytes, a->k_row_bytes, n, g * a->head_dim,
                                  a->head_dim, out, ld);
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
    if (!r->rot) { cpu_row_segment(r->type, row, g * hd, hd, out, tmp); return; }
    cpu_row_segment(r->type, row, 0, r->n_row, rowbuf, tmp);
    cpu_hadamard(rowbuf, r->n_row, 1);
    memcpy(out, rowbuf + g * hd, sizeof(float) * (size_t)hd);
}

/* cells [c, c + n) of KV head g, decoded to n contiguous head rows */
static void decode_block(const kv_reader *r, const uint8_t *base, size_t row_bytes, int c, int n, int g, int hd,
                         float *out, float *tmp, float *rowbuf) {
    if (r->fast) { r->ops->decode(r->type, base + (size_t)c * row_bytes, row_bytes, n, g * hd, hd, out); return; }
    for (int i = 0; i < n; i++) head_values(r, base + (size_t)(c + i) * row_bytes, g, hd, out + (size_t)i * hd, tmp, rowbuf);
}

/* per-thread scratch: a K and a V block, the decoders' temporaries, a row */
static size_t scratch_floats(const attn_args *a) {
    return ((size_t)2 * ATT_CB * a->head_dim + SEG_TMP(a->row) + a->row + 15) & ~(size_t)15;
}

typedef struct flash_job {
    const attn_args *a;
    const attn_simd *ops;
    const uint8_t *qq;      /* quantized queries (q8_0 K), or NULL */
    size_t qstride;
    int n_tc, tpc;          /* token ranges and tokens per range */
    int n_cc, cpc;          /* cell chunks and cells per chunk (a multiple of ATT_CB) */
    float *m, *l, *acc;     /* [n_cc][T][n_head] (m, l) and [n_cc][T][n_head*hd] */
    float *scratch;         /* scratch_floats per thread */
} flash_job;

/* A task is a range of tokens and a chunk of cells, for every KV head: the chunk's rows are
 * read front to back once (whole rows, a stream the hardware prefetcher follows), each
 * block's head segments decoded while the rows are in L1. */
static void flash_task(void *arg, int task, int thread) {
    flash_job *j = arg;
    const attn_args *a = j->a;
    const attn_simd *ops = j->ops;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    int tc = task % j->n_tc, cc = task / j->n_tc;
    int t0 = tc * j->tpc, t1 = t0 + j->tpc;
    if (t1 > a->T) t1 = a->T;
    int c0 = cc * j->cpc, c1 = c0 + j->cpc;
    if (c1 > a->n_cells) c1 = a->n_cells;
    if (c1 > a->pos0 + t1) c1 = a->pos0 + t1; /* no token of this chunk sees further */
    kv_reader rk = reader(ops, a->type_k, a->k_row_rot, a->row, hd), rv = reader(ops, a->type_v, a->v_row_rot, a->row, hd);
    float *kb = j->scratch + (size_t)thread * scratch_floats(a);
    float *vb = kb + ATT_CB * hd, *tmp = vb + ATT_CB * hd, *rowbuf = tmp + SEG_TMP(a->row);
    float *M = j->m + (size_t)cc * a->T * H, *L = j->l + (size_t)cc * a->T * H;
    float *ACC = j->acc + (size_t)cc * a->T * H * hd;
    float sg[gs * ATT_CB], pg[gs * ATT_CB], rg[gs]; /* a group's scores, weights, rescale factors */
    for (int c = c0; c < c1; c += ATT_CB) {
        int nc = c1 - c < ATT_CB ? c1 - c : ATT_CB;
        for (int g = 0; g < a->n_head_kv; g++) {
            if (!j->qq) decode_block(&rk, a->k, a->k_row_bytes, c, nc, g, hd, kb, tmp, rowbuf);
            decode_block(&rv, a->v, a->v_row_bytes, c, nc, g, hd, vb, tmp, rowbuf);
            for (int t = t0; t < t1; t++) {
                int n = a->pos0 + t + 1 - c; /* cells of this block token t sees */
                if (n <= 0) continue;
                if (n > nc) n = nc;
                if (j->qq) kq8_scores(ops, j->qq + ((size_t)t * H + g * gs) * j->qstride, j->qstride, gs, a, c, n, g, sg, ATT_CB);
                else
                    for (int i = 0; i < gs; i++) ops->dots(a->q + ((size_t)t * H + g * gs + i) * hd, kb, n, hd, a->scale, sg + i * ATT_CB);
                float *m = M + t * H + g * gs, *l = L + t * H + g * gs;
                if (ops->online_heads) ops->online_heads(sg, ATT_CB, gs, n, m, l, pg, rg);
                else for (int i = 0; i < gs; i++) rg[i] = ops->online(sg + i * ATT_CB, n, &m[i], &l[i], pg + i * ATT_CB);
                float *acc = ACC + ((size_t)t * H + g * gs) * hd;
                if (ops->wsum_heads) ops->wsum_heads(acc, rg, pg, ATT_CB, gs, vb, n, hd);
                else for (int i = 0; i < gs; i++) ops->wsum(acc + (size_t)i * hd, rg[i], pg + i * ATT_CB, vb, n, hd);
            }
        }
    }
}

int cpu_attn_flash(pool *p, const attn_args *a) {
    const int nt = pool_threads(p), H = a->n_head, hd = a->head_dim;
    flash_job j = { .a = a, .ops = ops_now() };
    int failed;
    uint8_t *qq = quant_queries(p, a, &j.qstride, &failed);
    if (failed) return -1;
    j.qq = qq;
    /* Tasks from token ranges; when those are few (decode, short batches), from cell chunks
     * too. The split depends on the shape only, not on the thread count, so the arithmetic
     * (and the result) is the same for any -t. */
    j.n_tc = a->T;
    j.tpc = 1;
    if (a->T > 32) { j.tpc = 4; j.n_tc = (a->T + j.tpc - 1) / j.tpc; }
    j.cpc = a->n_cells;
    if (a->T < 8) j.cpc = ATT_CHUNK;
    j.n_cc = (a->n_cells + j.cpc - 1) / j.cpc;
    if (j.n_cc < 1) j.n_cc = 1;
    size_t nst = (size_t)j.n_cc * a->T * H, sf = scratch_floats(a);
    float *buf = malloc(sizeof(float) * (nst * 2 + nst * hd + sf * (size_t)nt));
    if (!buf) { free(qq); return -1; }
    j.m = buf; j.l = buf + nst; j.acc = buf + 2 * nst; j.scratch = j.acc + nst * hd;
    for (size_t i = 0; i < nst; i++) { j.m[i] = -INFINITY; j.l[i] = 0; }
    memset(j.acc, 0, sizeof(float) * nst * hd);
    pool_run(p, j.n_tc * j.n_cc, flash_task, &j);
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < H; h++) {
            float mx = -INFINITY, lsum = 0;
            for (int cc = 0; cc < j.n_cc; cc++) {
                float m = j.m[((size_t)cc * a->T + t) * H + h];
                if (m > mx) mx = m;
            }
            float *sum = j.acc + ((size_t)t * H + h) * hd; /* chunk 0's state, merged into in place */
            for (int cc = 0; cc < j.n_cc; cc++) {
                size_t s = ((size_t)cc * a->T + t) * H + h;
                float w = j.l[s] > 0 ? expf(j.m[s] - mx) : 0.0f;
                lsum += j.l[s] * w;
                const float *acc = j.acc + s * hd;
                if (cc == 0) for (int i = 0; i < hd; i++) sum[i] = w * acc[i];
                else for (int i = 0; i < hd; i++) sum[i] += w * acc[i];
            }
            float *out = a->out + ((size_t)t * H + h) * hd;
            float inv = lsum > 0 ? 1.0f / lsum : 0.0f;
            for (int i = 0; i < hd; i++) out[i] = sum[i] * inv;
        }
    free(buf);
    free(qq);
    return 0;
}

typedef struct plain_job {
    const attn_args *a;
    const attn_simd *ops;
    float *scores, *scratch;
    const uint8_t *qq;      /* quantized queries (q8_0 K), or NULL */
    size_t qstride;
} plain_job;

static void plain_task(void *arg, int task, int thread) {
    plain_job *j = arg;
    const attn_args *a = j->a;
    const attn_simd *ops = j->ops;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    int t = task / a->n_head_kv, g = task % a->n_head_kv;
    int n = a->pos0 + t + 1;
    if (n > a->n_cells) n = a->n_cells;
    kv_reader rk = reader(ops, a->type_k, a->k_row_rot, a->row, hd), rv = reader(ops, a->type_v, a->v_row_rot, a->row, hd);
    float *blk = j->scratch + (size_t)thread * scratch_floats(a);
    float *tmp = blk + 2 * ATT_CB * hd, *rowbuf = tmp + SEG_TMP(a->row);
    /* scores: K decoded a block of ATT_CB cells at a time (as flash does, so the scores are
     * the same numbers) */
    for (int c = 0; c < n; c += ATT_CB) {
        int nc = n - c < ATT_CB ? n - c : ATT_CB;
        if (j->qq) {
            kq8_scores(ops, j->qq + ((size_t)t * H + g * gs) * j->qstride, j->qstride, gs, a, c, nc, g,
                       j->scores + ((size_t)t * H + g * gs) * a->n_cells + c, a->n_cells);
            continue;
        }
        decode_block(&rk, a->k, a->k_row_bytes, c, nc, g, hd, blk, tmp, rowbuf);
        for (int h = g * gs; h < (g + 1) * gs; h++)
            ops->dots(a->q + ((size_t)t * H + h) * hd, blk, nc, hd, a->scale, j->scores + ((size_t)t * H + h) * a->n_cells + c);
    }
    /* softmax: each head's max over the whole row, then exp and sum per block */
    float sums[gs], maxes[gs];
    for (int i = 0; i < gs; i++) {
        const float *s = j->scores + ((size_t)t * H + g * gs + i) * a->n_cells;
        float mx = -INFINITY;
        for (int c = 0; c < n; c++) mx = s[c] > mx ? s[c] : mx;
        maxes[i] = mx;
        sums[i] = 0;
        memset(a->out + ((size_t)t * H + g * gs + i) * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int c = 0; c < n; c += ATT_CB) {
        int nc = n - c < ATT_CB ? n - c : ATT_CB;
        decode_block(&rv, a->v, a->v_row_bytes, c, nc, g, hd, blk, tmp, rowbuf);
        for (int i = 0; i < gs; i++) {
            int h = g * gs + i;
            float *s = j->scores + ((size_t)t * H + h) * a->n_cells + c, p[ATT_CB];
            sums[i] += ops->exp_sum(s, nc, maxes[i], p);
            ops->wsum(a->out + ((size_t)t * H + h) * hd, 1.0f, p, blk, nc, hd);
        }
    }
    for (int i = 0; i < gs; i++) {
        float *out = a->out + ((size_t)t * H + g * gs + i) * hd, inv = 1.0f / sums[i];
        for (int k = 0; k < hd; k++) out[k] *= inv;
    }
}

int cpu_attn_plain(pool *p, const attn_args *a) {
    const int nt = pool_threads(p);
    size_t ns = (size_t)a->T * a->n_head * a->n_cells, sf = scratch_floats(a);
    float *buf = malloc(sizeof(float) * (ns + sf * (size_t)nt));
    if (!buf) return -1;
    plain_job j = { a, ops_now(), buf, buf + ns, NULL, 0 };
    int failed;
    uint8_t *qq = quant_queries(p, a, &j.qstride, &failed);
    if (failed) { free(buf); return -1; }
    j.qq = qq;
    pool_run(p, a->T * a->n_head_kv, plain_task, &j);
    free(qq);
    free(buf);
    return 0;
}
