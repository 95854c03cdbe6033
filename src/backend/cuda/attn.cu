/* Attention over a KV cache of any type pair on the GPU, both ways (attn.c says what each
 * path is). One kernel source covers every pair: it is a template over the K and V types,
 * and it reads values through dq1<T> where they lie, never expanding the cache.
 *
 * flash: a warp owns one (token, KV head, chunk of cells) and every query head of that KV
 *        head: lanes hold strided slices of the query and output vectors, each cell's K and
 *        V values are decoded once for the whole group, and the softmax is online. Decode
 *        splits the cells into chunks over many warps (split-K) and a second kernel merges
 *        the partial (max, sum, vector) states.
 * plain: a kernel writes all scores, one normalizes each row, one sums the weighted V.
 *
 * Rows rotated as a whole (KV_ROT_ROW, heads smaller than a block) are read without undoing
 * the rotation per cell: a score against the un-rotated head equals the score of the
 * rotated, zero-padded query against the whole stored row, and the weighted sum of stored
 * rows rotated back gives every head's output at once. So such a cache is attention over
 * vectors of `row` values instead of `head_dim`, with prepared queries and a final un-rotate. */
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/attn_dec.cuh"

#include <math.h>
#include <string.h>

#define NE 8     /* values a lane holds of a vector: vectors of up to 256 */
#define MAXG 4   /* query heads a warp serves at once; larger groups take more passes */

struct attn_p {
    const float *q;          /* [T][H][dk] */
    const uint8_t *k, *v;
    size_t kb, vb;
    int k_goff, v_goff;      /* offset in a row of KV head g's vector: g * k_goff */
    int dk, dv;
    int T, H, G, gs, pos0, n_cells;
    int cpc;                 /* cells per chunk */
    float scale;
    float *pm, *pl, *pacc;   /* partials [chunk][T][H] and [chunk][T][H][dv] */
    float *out;              /* [T][H][dv] when there is one chunk */
    int h0, nh;              /* the pass: query heads h0.. h0+nh of each group */
    float *scores;           /* plain: [T][H][n_cells] */
};

template <int TK, int TV>
__global__ void __launch_bounds__(128) k_flash(attn_p p) {
    const int lane = threadIdx.x & 31;
    const int g = blockIdx.x, t = blockIdx.y;
    const int chunk = blockIdx.z * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int n_chunks = (p.n_cells + p.cpc - 1) / p.cpc;
    if (chunk >= n_chunks) return;
    int c0 = chunk * p.cpc, c1 = c0 + p.cpc;
    if (c1 > p.n_cells) c1 = p.n_cells;
    if (c1 > p.pos0 + t + 1) c1 = p.pos0 + t + 1;
    float q[MAXG][NE], acc[MAXG][NE], m[MAXG], l[MAXG];
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
        const float *qh = p.q + ((size_t)t * p.H + g * p.gs + p.h0 + h) * p.dk;
#pragma unroll
        for (int j = 0; j < NE; j++) {
            int i = lane + 32 * j;
            q[h][j] = (h < p.nh && i < p.dk) ? qh[i] * p.scale : 0.0f;
            acc[h][j] = 0.0f;
        }
    }
    const int koff = g * p.k_goff, voff = g * p.v_goff;
    for (int c = c0; c < c1; c++) {
        const uint8_t *kr = p.k + (size_t)c * p.kb, *vr = p.v + (size_t)c * p.vb;
        float kv[NE], vv[NE];
#pragma unroll
        for (int j = 0; j < NE; j++) {
            int i = lane + 32 * j;
            kv[j] = i < p.dk ? dq1<TK>(kr, koff + i) : 0.0f;
            vv[j] = i < p.dv ? dq1<TV>(vr, voff + i) : 0.0f;
        }
#pragma unroll
        for (int h = 0; h < MAXG; h++) {
            if (h < p.nh) {
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < NE; j++) s += q[h][j] * kv[j];
                s = warp_sum(s);
                float mn = fmaxf(m[h], s);
                float r = __expf(m[h] - mn), w = __expf(s - mn);
                l[h] = l[h] * r + w;
#pragma unroll
                for (int j = 0; j < NE; j++) acc[h][j] = acc[h][j] * r + w * vv[j];
                m[h] = mn;
            }
        }
    }
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        if (h >= p.nh) continue;
        const int hh = g * p.gs + p.h0 + h;
        if (n_chunks == 1) {
            float *o = p.out + ((size_t)t * p.H + hh) * p.dv;
            float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
#pragma unroll
            for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dv) o[lane + 32 * j] = acc[h][j] * inv;
        } else {
            size_t s = ((size_t)chunk * p.T + t) * p.H + hh;
            if (lane == 0) { p.pm[s] = m[h]; p.pl[s] = l[h]; }
            float *o = p.pacc + s * p.dv;
#pragma unroll
            for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dv) o[lane + 32 * j] = acc[h][j];
        }
    }
}


/* Decode (a few query tokens): a warp takes 32 cells at a time, one cell a lane. Each lane
 * computes its cell's scores for the group's query heads from the whole K vector (read as
 * 4-value pieces, the query in shared memory: no shuffles per cell), the warp updates the
 * online softmax once per 32 cells, then walks the 32 cells' V with lanes on the vector
 * values, each cell's weight broadcast from its lane. Needs dk % 4 == 0. */
template <int TK, int TV>
__global__ void __launch_bounds__(128) k_flash_dec(attn_p p) {
    __shared__ float qs[4][MAXG][32 * NE];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int g = blockIdx.x, t = blockIdx.y;
    const int chunk = blockIdx.z * (blockDim.x >> 5) + wid;
    const int n_chunks = (p.n_cells + p.cpc - 1) / p.cpc;
    float (*q)[32 * NE] = qs[wid];
    for (int h = 0; h < MAXG; h++) {
        const float *qh = p.q + ((size_t)t * p.H + g * p.gs + p.h0 + h) * p.dk;
        for (int i = lane; i < p.dk; i += 32) q[h][i] = h < p.nh ? qh[i] * p.scale : 0.0f;
    }
    __syncwarp();
    if (chunk >= n_chunks) return;
    int c0 = chunk * p.cpc, c1 = c0 + p.cpc;
    if (c1 > p.n_cells) c1 = p.n_cells;
    if (c1 > p.pos0 + t + 1) c1 = p.pos0 + t + 1;
    float acc[MAXG][NE], m[MAXG], l[MAXG];
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
#pragma unroll
        for (int j = 0; j < NE; j++) acc[h][j] = 0.0f;
    }
    const int koff = g * p.k_goff, voff = g * p.v_goff;
    for (int cb = c0; cb < c1; cb += 32) {
        const int c = cb + lane;
        const bool live = c < c1;
        float s[MAXG];
#pragma unroll
        for (int h = 0; h < MAXG; h++) s[h] = 0.0f;
        if (live) {
            const uint8_t *kr = p.k + (size_t)c * p.kb;
#pragma unroll 4
            for (int d = 0; d < p.dk; d += 4) {
                float kv[4];
                dq4<TK>(kr, koff + d, kv);
#pragma unroll
                for (int h = 0; h < MAXG; h++)
                    s[h] += q[h][d] * kv[0] + q[h][d + 1] * kv[1] + q[h][d + 2] * kv[2] + q[h][d + 3] * kv[3];
            }
        }
        float w[MAXG];
#pragma unroll
        for (int h = 0; h < MAXG; h++) {
            if (h >= p.nh) { w[h] = 0.0f; continue; }
            float mx = warp_max(live ? s[h] : -INFINITY);
            float mn = fmaxf(m[h], mx);
            float r = __expf(m[h] - mn);
            w[h] = live ? __expf(s[h] - mn) : 0.0f;
            l[h] = l[h] * r + warp_sum(w[h]);
#pragma unroll
            for (int j = 0; j < NE; j++) acc[h][j] *= r;
            m[h] = mn;
        }
        const int n = c1 - cb < 32 ? c1 - cb : 32;
        for (int k = 0; k < n; k++) {
            const uint8_t *vr = p.v + (size_t)(cb + k) * p.vb;
            float vv[NE];
#pragma unroll
            for (int j = 0; j < NE; j++) vv[j] = lane + 32 * j < p.dv ? dq1<TV>(vr, voff + lane + 32 * j) : 0.0f;
#pragma unroll
            for (int h = 0; h < MAXG; h++) {
                float wk = __shfl_sync(0xffffffffu, w[h], k);
#pragma unroll
                for (int j = 0; j < NE; j++) acc[h][j] += wk * vv[j];
            }
        }
    }
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        if (h >= p.nh) continue;
        const int hh = g * p.gs + p.h0 + h;
        if (n_chunks == 1) {
            float *o = p.out + ((size_t)t * p.H + hh) * p.dv;
            float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
#pragma unroll
            for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dv) o[lane + 32 * j] = acc[h][j] * inv;
        } else {
            size_t st = ((size_t)chunk * p.T + t) * p.H + hh;
            if (lane == 0) { p.pm[st] = m[h]; p.pl[st] = l[h]; }
            float *o = p.pacc + st * p.dv;
#pragma unroll
            for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dv) o[lane + 32 * j] = acc[h][j];
        }
    }
}

/* merge the chunks' partial states: one block per (token, head); the chunks' weights are
 * found once (block reductions) and kept in shared memory, then each thread sums one value
 * of the vector over the chunks with independent loads */
#define MERGE_MAX 4096
__global__ void __launch_bounds__(128) k_flash_merge(const float *pm, const float *pl, const float *pacc, int n_chunks, int T, int H, int dv, float *out) {
    __shared__ float wsh[MERGE_MAX];
    __shared__ float red[4];
    const int th = blockIdx.x, lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const size_t cs = (size_t)T * H;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < n_chunks; c += blockDim.x) mx = fmaxf(mx, pm[c * cs + th]);
    mx = warp_max(mx);
    if (lane == 0) red[wid] = mx;
    __syncthreads();
    mx = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();
    float ls = 0.0f;
    for (int c = threadIdx.x; c < n_chunks; c += blockDim.x) {
        float l = pl[c * cs + th];
        float w = l > 0.0f ? __expf(pm[c * cs + th] - mx) : 0.0f;
        wsh[c] = w;
        ls += l * w;
    }
    ls = warp_sum(ls);
    if (lane == 0) red[wid] = ls;
    __syncthreads();
    ls = red[0] + red[1] + red[2] + red[3];
    const float inv = ls > 0.0f ? 1.0f / ls : 0.0f;
    for (int i = threadIdx.x; i < dv; i += blockDim.x) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int c = 0;
        for (; c + 4 <= n_chunks; c += 4) {
            s0 += wsh[c] * pacc[((c + 0) * cs + th) * dv + i];
            s1 += wsh[c + 1] * pacc[((c + 1) * cs + th) * dv + i];
            s2 += wsh[c + 2] * pacc[((c + 2) * cs + th) * dv + i];
            s3 += wsh[c + 3] * pacc[((c + 3) * cs + th) * dv + i];
        }
        for (; c < n_chunks; c++) s0 += wsh[c] * pacc[(c * cs + th) * dv + i];
        out[(size_t)th * dv + i] = ((s0 + s1) + (s2 + s3)) * inv;
    }
}

/* plain, step 1: scores[t][h][c] for c <= pos0 + t; a warp per (token, KV head, 32 cells) */
template <int TK>
__global__ void k_scores(attn_p p) {
    const int lane = threadIdx.x & 31;
    const int g = blockIdx.x, t = blockIdx.y;
    const int cbase = (blockIdx.z * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 32;
    int n = p.pos0 + t + 1;
    if (n > p.n_cells) n = p.n_cells;
    const int koff = g * p.k_goff;
    for (int c = cbase; c < cbase + 32 && c < n; c++) {
        const uint8_t *kr = p.k + (size_t)c * p.kb;
        float kv[NE];
#pragma unroll
        for (int j = 0; j < NE; j++) kv[j] = lane + 32 * j < p.dk ? dq1<TK>(kr, koff + lane + 32 * j) : 0.0f;
        for (int h = 0; h < p.gs; h++) {
            const float *qh = p.q + ((size_t)t * p.H + g * p.gs + h) * p.dk;
            float s = 0.0f;
#pragma unroll
            for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dk) s += qh[lane + 32 * j] * kv[j];
            s = warp_sum(s);
            if (lane == 0) p.scores[((size_t)t * p.H + g * p.gs + h) * p.n_cells + c] = s * p.scale;
        }
    }
}

/* plain, step 2: softmax of each score row over its visible cells; a block per (t, h) */
__global__ void k_softmax(float *scores, int H, int n_cells, int pos0) {
    const int t = blockIdx.x / H;
    int n = pos0 + t + 1;
    if (n > n_cells) n = n_cells;
    float *s = scores + (size_t)blockIdx.x * n_cells;
    __shared__ float red[32];
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < n; c += blockDim.x) mx = fmaxf(mx, s[c]);
    mx = warp_max(mx);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x) { float e = __expf(s[c] - mx); s[c] = e; sum += e; }
    sum = warp_sum(sum);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sum;
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) sum += red[w];
    float inv = 1.0f / sum;
    for (int c = threadIdx.x; c < n; c += blockDim.x) s[c] *= inv;
}

/* plain, step 3: out = sum_c p_c v_c; a warp per (token, KV head) and a pass of heads */
template <int TV>
__global__ void k_weighted(attn_p p) {
    const int lane = threadIdx.x & 31;
    const int g = blockIdx.x, t = blockIdx.y;
    int n = p.pos0 + t + 1;
    if (n > p.n_cells) n = p.n_cells;
    float acc[MAXG][NE];
#pragma unroll
    for (int h = 0; h < MAXG; h++)
#pragma unroll
        for (int j = 0; j < NE; j++) acc[h][j] = 0.0f;
    const int voff = g * p.v_goff;
    for (int c = 0; c < n; c++) {
        const uint8_t *vr = p.v + (size_t)c * p.vb;
        float vv[NE];
#pragma unroll
        for (int j = 0; j < NE; j++) vv[j] = lane + 32 * j < p.dv ? dq1<TV>(vr, voff + lane + 32 * j) : 0.0f;
#pragma unroll
        for (int h = 0; h < MAXG; h++) {
            if (h < p.nh) {
                float w = p.scores[((size_t)t * p.H + g * p.gs + p.h0 + h) * p.n_cells + c];
#pragma unroll
                for (int j = 0; j < NE; j++) acc[h][j] += w * vv[j];
            }
        }
    }
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        if (h >= p.nh) continue;
        float *o = p.out + ((size_t)t * p.H + g * p.gs + p.h0 + h) * p.dv;
#pragma unroll
        for (int j = 0; j < NE; j++) if (lane + 32 * j < p.dv) o[lane + 32 * j] = acc[h][j];
    }
}

/* ---- row-rotated caches: prepared queries and the final un-rotate ---- */

/* qx[t][h][0..row) = q[t][h] placed at its KV head's slice, zeros elsewhere */
__global__ void k_spread_q(float *qx, const float *q, int T, int H, int gs, int hd, int row) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * H * row) return;
    int c = (int)(i % row);
    size_t th = i / row;
    int h = (int)(th % H), g = h / gs;
    int j = c - g * hd;
    qx[i] = (j >= 0 && j < hd) ? q[th * hd + j] : 0.0f;
}

/* out[t][h][0..hd) = ox[t][h][g * hd ..] */
__global__ void k_gather_o(float *out, const float *ox, int T, int H, int gs, int hd, int row) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * H * hd) return;
    int j = (int)(i % hd);
    size_t th = i / hd;
    int g = (int)(th % H) / gs;
    out[i] = ox[th * row + (size_t)g * hd + j];
}

template <int TK, int TV> static void launch_flash(const attn_p &p, dim3 grid, int threads, cudaStream_t s, bool dec) {
    if (dec) k_flash_dec<TK, TV><<<grid, threads, 0, s>>>(p);
    else k_flash<TK, TV><<<grid, threads, 0, s>>>(p);
}

#define FLASH_V(tk) \
    switch (tv) { \
    case QT_F32: launch_flash<tk, QT_F32>(p, grid, threads, s, dec); return 0; \
    case QT_F16: launch_flash<tk, QT_F16>(p, grid, threads, s, dec); return 0; \
    case QT_BF16: launch_flash<tk, QT_BF16>(p, grid, threads, s, dec); return 0; \
    case QT_Q8_0: launch_flash<tk, QT_Q8_0>(p, grid, threads, s, dec); return 0; \
    case QT_Q4_0: launch_flash<tk, QT_Q4_0>(p, grid, threads, s, dec); return 0; \
    case QT_Q4_1: launch_flash<tk, QT_Q4_1>(p, grid, threads, s, dec); return 0; \
    case QT_Q5_0: launch_flash<tk, QT_Q5_0>(p, grid, threads, s, dec); return 0; \
    case QT_Q5_1: launch_flash<tk, QT_Q5_1>(p, grid, threads, s, dec); return 0; \
    case QT_IQ4_NL: launch_flash<tk, QT_IQ4_NL>(p, grid, threads, s, dec); return 0; \
    default: return -1; \
    }

static int dispatch_flash(int tk, int tv, const attn_p &p, dim3 grid, int threads, cudaStream_t s, bool dec) {
    switch (tk) {
#define X(t) case t: FLASH_V(t)
        CUDA_CACHE_TYPES(X)
#undef X
    default: return -1;
    }
}

static int dispatch_scores(int tk, const attn_p &p, dim3 grid, int threads, cudaStream_t s) {
    switch (tk) {
#define X(t) case t: k_scores<t><<<grid, threads, 0, s>>>(p); return 0;
        CUDA_CACHE_TYPES(X)
#undef X
    default: return -1;
    }
}

static int dispatch_weighted(int tv, const attn_p &p, dim3 grid, int threads, cudaStream_t s) {
    switch (tv) {
#define X(t) case t: k_weighted<t><<<grid, threads, 0, s>>>(p); return 0;
        CUDA_CACHE_TYPES(X)
#undef X
    default: return -1;
    }
}

extern "C" int gpu_attn(gpu_ctx *g, const attn_args *a, int flash) {
    /* a prompt batch: scores and sums on the tensor cores, for either path */
    if (cuda_attn_gemm_ok(a)) return cuda_attn_gemm(g, a);
    /* decode with f16 / q8_0 / q4_0 caches: staged tiles (attn_dec.cu) */
    if (flash && cuda_attn_dec_ok(a)) return cuda_attn_dec(g, a, g->pos_on ? g->dpos : NULL, g->cap_cells, 0, 0);
    const int H = a->n_head, G = a->n_head_kv, hd = a->head_dim, T = a->T;
    attn_p p;
    memset(&p, 0, sizeof p);
    p.k = a->k; p.v = a->v; p.kb = a->k_row_bytes; p.vb = a->v_row_bytes;
    p.T = T; p.H = H; p.G = G; p.gs = H / G; p.pos0 = a->pos0; p.n_cells = a->n_cells; p.scale = a->scale;
    p.dk = a->k_row_rot ? a->row : hd;
    p.dv = a->v_row_rot ? a->row : hd;
    p.k_goff = a->k_row_rot ? 0 : hd;
    p.v_goff = a->v_row_rot ? 0 : hd;
    if (p.dk > 32 * NE || p.dv > 32 * NE)
        return cuda_fail_msg(g, "attention over vectors of %d values (at most %d on the GPU)", p.dk > p.dv ? p.dk : p.dv, 32 * NE);
    p.q = a->q;
    if (a->k_row_rot) {
        float *qx = (float *)cuda_scratch(g, SCR_ATTN_Q, sizeof(float) * (size_t)T * H * a->row);
        if (!qx) return -1;
        size_t n = (size_t)T * H * a->row;
        k_spread_q<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(qx, a->q, T, H, p.gs, hd, a->row);
        CU_LAUNCHED(g);
        if (cuda_hadamard_strided(g, qx, T * H, (size_t)a->row, 1, a->row, 0)) return -1;
        p.q = qx;
    }
    p.out = a->out;
    if (a->v_row_rot) {
        p.out = (float *)cuda_scratch(g, SCR_ATTN_O, sizeof(float) * (size_t)T * H * a->row);
        if (!p.out) return -1;
    }
    cudaStream_t s = g->stream;
    if (flash) {
        /* enough warps to fill the card: split the cells when tokens x KV heads are few */
        const int wpb = 4;
        const bool dec = T <= 8 && p.dk % 4 == 0;
        long want = (dec ? 16L : 8L) * g->sm_count * 32;   /* warps */
        long base = (long)T * G;
        int n_chunks = 1;
        if (base < want) {
            long c = want / base;
            long min_cells = dec ? 128 : 64;     /* cells a warp walks at least */
            long max_c = (a->n_cells + min_cells - 1) / min_cells;
            if (max_c > MERGE_MAX) max_c = MERGE_MAX;
            if (c > max_c) c = max_c;
            n_chunks = c < 1 ? 1 : (int)c;
        }
        p.cpc = (a->n_cells + n_chunks - 1) / n_chunks;
        if (dec) p.cpc = (p.cpc + 31) / 32 * 32;   /* whole 32-cell steps */
        n_chunks = (a->n_cells + p.cpc - 1) / p.cpc;
        if (n_chunks > 1) {
            size_t nst = (size_t)n_chunks * T * H;
            float *buf = (float *)cuda_scratch(g, SCR_ATTN_PART, sizeof(float) * (nst * 2 + nst * p.dv));
            if (!buf) return -1;
            p.pm = buf; p.pl = buf + nst; p.pacc = buf + 2 * nst;
        }
        dim3 grid(G, T, (n_chunks + wpb - 1) / wpb);
        for (p.h0 = 0; p.h0 < p.gs; p.h0 += MAXG) {
            p.nh = p.gs - p.h0 < MAXG ? p.gs - p.h0 : MAXG;
            if (dispatch_flash(a->type_k, a->type_v, p, grid, 32 * wpb, s, dec)) return cuda_fail_msg(g, "no attention kernel for this cache type pair");
            CU_LAUNCHED(g);
        }
        if (n_chunks > 1) {
            k_flash_merge<<<T * H, 128, 0, s>>>(p.pm, p.pl, p.pacc, n_chunks, T, H, p.dv, p.out);
            CU_LAUNCHED(g);
        }
    } else {
        /* scores for a slice of tokens at a time, at most 256 MiB of them */
        size_t per_tok = (size_t)H * a->n_cells * sizeof(float);
        int tstep = (int)((256u << 20) / (per_tok ? per_tok : 1));
        if (tstep < 1) tstep = 1;
        if (tstep > T) tstep = T;
        float *sc = (float *)cuda_scratch(g, SCR_ATTN_PART, per_tok * tstep);
        if (!sc) return -1;
        for (int t0 = 0; t0 < T; t0 += tstep) {
            attn_p ps = p;
            int nt = T - t0 < tstep ? T - t0 : tstep;
            ps.T = nt;
            ps.pos0 = p.pos0 + t0;
            ps.q = p.q + (size_t)t0 * H * p.dk;
            ps.out = p.out + (size_t)t0 * H * p.dv;
            ps.scores = sc;
            const int wpb = 4;
            dim3 g1(G, nt, ((a->n_cells + 31) / 32 + wpb - 1) / wpb);
            if (dispatch_scores(a->type_k, ps, g1, 32 * wpb, s)) return cuda_fail_msg(g, "no attention kernel for this K type");
            CU_LAUNCHED(g);
            k_softmax<<<nt * H, 256, 0, s>>>(sc, H, a->n_cells, ps.pos0);
            CU_LAUNCHED(g);
            for (ps.h0 = 0; ps.h0 < p.gs; ps.h0 += MAXG) {
                ps.nh = p.gs - ps.h0 < MAXG ? p.gs - ps.h0 : MAXG;
                if (dispatch_weighted(a->type_v, ps, dim3(G, nt), 32, s)) return cuda_fail_msg(g, "no attention kernel for this V type");
                CU_LAUNCHED(g);
            }
        }
    }
    if (a->v_row_rot) {
        if (cuda_hadamard_strided(g, p.out, T * H, (size_t)a->row, 1, a->row, 1)) return -1;
        size_t n = (size_t)T * H * hd;
        k_gather_o<<<cuda_blocks(n, 256), 256, 0, s>>>(a->out, p.out, T, H, p.gs, hd, a->row);
        CU_LAUNCHED(g);
    }
    return 0;
}
