/* Attention over a KV cache of any type, two ways.
 *
 * flash: one pass over the cells with an online softmax. Each cell's K and V values for
 *        one KV head are expanded into a head-sized stack buffer where they are used; the
 *        cache is never copied. When there are few query tokens (decode), the cells are
 *        split into chunks worked on by different threads and the partial softmax states
 *        are merged at the end, so one token still uses every core.
 * plain: the textbook way: a full row of scores per query head, softmax, weighted sum.
 *
 * Both read K/V rows through the same code, so every cache type works in both, and both
 * keep the softmax and the weighted sum in double: a quantized cache rounds the next
 * layer's K and V, and a last-bit difference between the paths would otherwise flip
 * roundings and grow into a visible disagreement. */
#include "backend/backend.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEG_TMP(hd) ((hd) + 2 * 256)

/* One KV head's values of a cell's row; a row stored rotated as a whole is expanded and
 * rotated back first (rowbuf holds a row). */
static void head_values(int type, const uint8_t *row, int rot, int n_row, int g, int hd, float *out, float *tmp, float *rowbuf) {
    if (!rot) { cpu_row_segment(type, row, g * hd, hd, out, tmp); return; }
    cpu_row_segment(type, row, 0, n_row, rowbuf, tmp);
    cpu_hadamard(rowbuf, n_row, 1);
    memcpy(out, rowbuf + g * hd, sizeof(float) * (size_t)hd);
}

static float dot(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) { s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]; }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

typedef struct flash_job {
    const attn_args *a;
    int n_tc, tpc;          /* token chunks and tokens per chunk */
    int n_cc, cpc;          /* cell chunks and cells per chunk */
    double *m, *l, *acc;    /* [n_cc][T][n_head] (m, l) and [n_cc][T][n_head*hd] */
} flash_job;

static void flash_task(void *arg, int task, int thread) {
    flash_job *j = arg;
    const attn_args *a = j->a;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    int tc = task % j->n_tc, rest = task / j->n_tc;
    int g = rest % a->n_head_kv, cc = rest / a->n_head_kv;
    int t0 = tc * j->tpc, t1 = t0 + j->tpc;
    if (t1 > a->T) t1 = a->T;
    int c0 = cc * j->cpc, c1 = c0 + j->cpc;
    if (c1 > a->n_cells) c1 = a->n_cells;
    if (c1 > a->pos0 + t1) c1 = a->pos0 + t1; /* no token of this chunk sees further */
    float kseg[hd], vseg[hd], tmp[SEG_TMP(a->row)], rowbuf[a->row];
    double *M = j->m + (size_t)cc * a->T * H, *L = j->l + (size_t)cc * a->T * H;
    double *ACC = j->acc + (size_t)cc * a->T * H * hd;
    for (int t = t0; t < t1; t++)
        for (int h = g * gs; h < (g + 1) * gs; h++) {
            M[t * H + h] = -INFINITY;
            L[t * H + h] = 0;
            memset(ACC + ((size_t)t * H + h) * hd, 0, sizeof(double) * hd);
        }
    for (int c = c0; c < c1; c++) {
        head_values(a->type_k, a->k + (size_t)c * a->k_row_bytes, a->k_row_rot, a->row, g, hd, kseg, tmp, rowbuf);
        head_values(a->type_v, a->v + (size_t)c * a->v_row_bytes, a->v_row_rot, a->row, g, hd, vseg, tmp, rowbuf);
        for (int t = t0; t < t1; t++) {
            if (c > a->pos0 + t) continue;
            for (int h = g * gs; h < (g + 1) * gs; h++) {
                const float *q = a->q + ((size_t)t * H + h) * hd;
                double s = (float)(dot(q, kseg, hd) * a->scale); /* as the plain path rounds it */
                double *m = &M[t * H + h], *l = &L[t * H + h], *acc = ACC + ((size_t)t * H + h) * hd;
                if (s > *m) {
                    double r = exp(*m - s); /* exp(-inf) = 0 on the first cell */
                    *l = *l * r + 1.0f;
                    for (int i = 0; i < hd; i++) acc[i] = acc[i] * r + vseg[i];
                    *m = s;
                } else {
                    double w = exp(s - *m);
                    *l += w;
                    for (int i = 0; i < hd; i++) acc[i] += w * vseg[i];
                }
            }
        }
    }
}

int cpu_attn_flash(pool *p, const attn_args *a) {
    const int nt = pool_threads(p), H = a->n_head, hd = a->head_dim;
    flash_job j = { .a = a };
    /* Enough tasks to keep every thread busy: first from tokens x heads, then from cells. */
    int per_tok = a->T * a->n_head_kv;
    j.n_tc = a->T;
    j.tpc = 1;
    if (per_tok > 4 * nt) { j.n_tc = (4 * nt + a->n_head_kv - 1) / a->n_head_kv; j.tpc = (a->T + j.n_tc - 1) / j.n_tc; j.n_tc = (a->T + j.tpc - 1) / j.tpc; }
    j.n_cc = 1;
    if (j.n_tc * a->n_head_kv < 2 * nt) {
        j.n_cc = (2 * nt) / (j.n_tc * a->n_head_kv);
        int max_cc = (a->n_cells + 31) / 32;
        if (j.n_cc > max_cc) j.n_cc = max_cc;
        if (j.n_cc < 1) j.n_cc = 1;
    }
    j.cpc = (a->n_cells + j.n_cc - 1) / j.n_cc;
    size_t nst = (size_t)j.n_cc * a->T * H;
    double *buf = malloc(sizeof(double) * (nst * 2 + nst * hd));
    if (!buf) return -1;
    j.m = buf; j.l = buf + nst; j.acc = buf + 2 * nst;
    pool_run(p, j.n_tc * a->n_head_kv * j.n_cc, flash_task, &j);
    for (int t = 0; t < a->T; t++)
        for (int h = 0; h < H; h++) {
            double mx = -INFINITY;
            for (int cc = 0; cc < j.n_cc; cc++) {
                double m = j.m[((size_t)cc * a->T + t) * H + h];
                if (m > mx) mx = m;
            }
            double sum[hd], lsum = 0;
            memset(sum, 0, sizeof sum);
            for (int cc = 0; cc < j.n_cc; cc++) {
                size_t s = ((size_t)cc * a->T + t) * H + h;
                if (j.l[s] == 0) continue;
                double w = exp(j.m[s] - mx);
                lsum += j.l[s] * w;
                const double *acc = j.acc + s * hd;
                for (int i = 0; i < hd; i++) sum[i] += w * acc[i];
            }
            float *out = a->out + ((size_t)t * H + h) * hd;
            for (int i = 0; i < hd; i++) out[i] = lsum > 0 ? (float)(sum[i] / lsum) : 0.0f;
        }
    free(buf);
    return 0;
}

typedef struct plain_job { const attn_args *a; float *scores; } plain_job;

static void plain_task(void *arg, int task, int thread) {
    plain_job *j = arg;
    const attn_args *a = j->a;
    const int hd = a->head_dim, gs = a->n_head / a->n_head_kv, H = a->n_head;
    int t = task / a->n_head_kv, g = task % a->n_head_kv;
    int n = a->pos0 + t + 1;
    if (n > a->n_cells) n = a->n_cells;
    float seg[hd], tmp[SEG_TMP(a->row)], rowbuf[a->row];
    for (int c = 0; c < n; c++) {
        head_values(a->type_k, a->k + (size_t)c * a->k_row_bytes, a->k_row_rot, a->row, g, hd, seg, tmp, rowbuf);
        for (int h = g * gs; h < (g + 1) * gs; h++)
            j->scores[((size_t)t * H + h) * a->n_cells + c] = dot(a->q + ((size_t)t * H + h) * hd, seg, hd) * a->scale;
    }
    double sums[gs], maxes[gs], acc[gs][hd];
    memset(acc, 0, sizeof acc);
    for (int h = g * gs; h < (g + 1) * gs; h++) {
        float *s = j->scores + ((size_t)t * H + h) * a->n_cells;
        double mx = -INFINITY, sum = 0;
        for (int c = 0; c < n; c++) if (s[c] > mx) mx = s[c];
        for (int c = 0; c < n; c++) sum += exp((double)s[c] - mx);
        sums[h - g * gs] = sum;
        maxes[h - g * gs] = mx;
    }
    for (int c = 0; c < n; c++) {
        head_values(a->type_v, a->v + (size_t)c * a->v_row_bytes, a->v_row_rot, a->row, g, hd, seg, tmp, rowbuf);
        for (int h = g * gs; h < (g + 1) * gs; h++) {
            double w = exp((double)j->scores[((size_t)t * H + h) * a->n_cells + c] - maxes[h - g * gs]);
            for (int i = 0; i < hd; i++) acc[h - g * gs][i] += w * seg[i];
        }
    }
    for (int h = g * gs; h < (g + 1) * gs; h++) {
        float *out = a->out + ((size_t)t * H + h) * hd;
        for (int i = 0; i < hd; i++) out[i] = (float)(acc[h - g * gs][i] / sums[h - g * gs]);
    }
}

int cpu_attn_plain(pool *p, const attn_args *a) {
    plain_job j = { a, malloc(sizeof(float) * (size_t)a->T * a->n_head * a->n_cells) };
    if (!j.scores) return -1;
    pool_run(p, a->T * a->n_head_kv, plain_task, &j);
    free(j.scores);
    return 0;
}
