/* Fused attention for a prompt batch on the tensor cores (flash attention, written for
 * this engine): scores, causal mask, online softmax and the weighted sum of V in one
 * kernel, so the score matrix never reaches device memory.
 *
 * Rows. A CTA takes 16 * W rows of (token, query head) pairs of one KV head, ordered token
 * by token and within a token by head (row r: token r / gs, head g * gs + r % gs), so the
 * query heads that share the KV head (grouped-query attention) share every K and V tile it
 * loads. Warp w owns rows 16w..16w+15: the query as f16 mma fragments in registers (scaled
 * by scale * log2 e, so the softmax runs on exp2), the output accumulators in f32.
 *
 * Cells. Tiles of 64 cells of K and V (f16, rows padded by 16 bytes so ldmatrix reads hit
 * distinct banks) are copied to shared memory with cp.async, two or three stages deep:
 * the next tiles are in flight while tile j is used, one barrier a tile. Per tile and warp: S = Q K^T (mma m16n8k16, f32
 * accumulate), the mask (cell c is seen by token t when c <= pos0 + t; only tiles that
 * reach past the first token of the CTA need it), the running max and sum per row (f32),
 * P in f16 straight from the S registers as the A operand of O += P V (V through
 * ldmatrix.trans). Tiles past the CTA's last token are never loaded (causal skipping).
 *
 * Cache types. The kernel reads f16 rows. An f16 cache is read where it lies; any other
 * cache type (f32, bf16, every quantized type of dequant.cuh) is first expanded to f16,
 * only over the cells this batch sees (a read of the cache and a write of 2 bytes a value:
 * about 50 us a layer at 32768 cells, against milliseconds of attention), then read the
 * same way. The rows are read as stored: per-head rotation (KV_ROT_HEAD) is undone by the
 * caller on q and the output; row-rotated caches (KV_ROT_ROW) are not taken here.
 *
 * Few rows (short batches): the cells are split over several CTAs (grid z), each writes
 * its running max, sum and unnormalized output, and a second kernel merges them.
 *
 * Head sizes 64 and 128; others use attn_gemm.cu's path. Needs sm_80 or newer (mma.sync
 * f16, ldmatrix, cp.async). */
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/mma.cuh"

#include <stdlib.h>
#include <string.h>

#define FP_BN 64 /* cells per tile */

struct fp_args {
    const float *q;         /* [T][H][HD] */
    const __half *k, *v;    /* cell c, KV head g: k + c * ks + g * HD */
    size_t ks, vs;          /* row strides in halves */
    int T, H, gs, pos0, n_cells;
    int tps;                /* tiles per split */
    int n_split;
    float qscale;           /* scale * log2(e) */
    float *out;             /* [T][H][HD] when n_split == 1 */
    float *pm, *pl, *pacc;  /* partials [split][T][H] and [split][T][H][HD] */
};

template <int HD, int S> constexpr int fp_smem_bytes() { return S * 2 * FP_BN * (HD + 8) * (int)sizeof(__half); }

/* HD: head size; W: warps (16 rows each); S: pipeline stages (tiles in shared memory) */
template <int HD, int W, int S>
__global__ void __launch_bounds__(32 * W) k_fa_prompt(fp_args p) {
#if FP_SM80
    extern __shared__ __align__(16) uint8_t fp_smem[];
    constexpr int LD = HD + 8, TILE = FP_BN * LD, NT = FP_BN / 8, BM = 16 * W, NTH = 32 * W;
    __half *sm = reinterpret_cast<__half *>(fp_smem); /* [stage][K, V][FP_BN][LD] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = blockIdx.y, split = blockIdx.z;
    const int n_rows = p.T * p.gs, R0 = blockIdx.x * BM;
    const int r_last = (R0 + BM < n_rows ? R0 + BM : n_rows) - 1;
    const int t_first = R0 / p.gs, t_last = r_last / p.gs;
    int c_end = p.pos0 + t_last + 1;
    if (c_end > p.n_cells) c_end = p.n_cells;
    int c_free = p.pos0 + t_first + 1; /* cells below this are seen by every row of the CTA */
    if (c_free > p.n_cells) c_free = p.n_cells;
    const int n_tiles = (c_end + FP_BN - 1) / FP_BN;
    const int j0 = split * p.tps;
    const int j1 = j0 + p.tps < n_tiles ? j0 + p.tps : n_tiles;

    /* this thread's two rows */
    const int rA = R0 + warp * 16 + (lane >> 2), rB = rA + 8;
    const int limA = p.pos0 + rA / p.gs, limB = p.pos0 + rB / p.gs;

    uint32_t qf[HD / 16][4];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = i ? rB : rA;
        const float *qr = r < n_rows ? p.q + ((size_t)(r / p.gs) * p.H + g * p.gs + r % p.gs) * HD : nullptr;
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
            for (int hi = 0; hi < 2; hi++) {
                float2 v = qr ? *reinterpret_cast<const float2 *>(qr + ks * 16 + hi * 8 + (lane & 3) * 2) : make_float2(0.f, 0.f);
                qf[ks][i + 2 * hi] = fp_pack(v.x * p.qscale, v.y * p.qscale);
            }
    }

    float o[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.f, 0.f };

    const __half *kg = p.k + (size_t)g * HD, *vg = p.v + (size_t)g * HD;
    /* the copies of tile j into a stage (committed by the caller as one group) */
    auto load = [&](int j, int stage) {
        __half *ks_ = sm + (size_t)stage * 2 * TILE, *vs_ = ks_ + TILE;
        constexpr int CPR = HD / 8; /* 16-byte pieces a row */
#pragma unroll
        for (int i = threadIdx.x; i < FP_BN * CPR; i += NTH) {
            const int r = i / CPR, ch = i % CPR, c = j * FP_BN + r;
            const bool ok = c < p.n_cells;
            const size_t cc = ok ? (size_t)c : 0;
            fp_cp16(ks_ + r * LD + ch * 8, kg + cc * p.ks + ch * 8, ok ? 16 : 0);
            fp_cp16(vs_ + r * LD + ch * 8, vg + cc * p.vs + ch * 8, ok ? 16 : 0);
        }
    };

    /* S - 1 tiles in flight ahead of the one in use; one group per tile (empty past the end) */
#pragma unroll
    for (int i = 0; i < S - 1; i++) {
        if (j0 + i < j1) load(j0 + i, i);
        fp_commit();
    }
    for (int j = j0; j < j1; j++) {
        fp_wait<S - 2>(); /* tile j is in */
        __syncthreads();  /* ... for every thread, and every warp is done with tile j - 1 */
        {
            const int jn = j + S - 1;
            if (jn < j1) load(jn, (jn - j0) % S);
            fp_commit();
        }
        const int st = (j - j0) % S;
        const __half *Ks = sm + (size_t)st * 2 * TILE, *Vs = Ks + TILE;
        float s[NT][4];
#pragma unroll
        for (int n = 0; n < NT; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        const int mat = lane >> 3;
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                uint32_t b0, b1, b2, b3;
                fp_ldsm4(b0, b1, b2, b3, Ks + (n * 8 + (mat >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (mat & 1) * 8);
                fp_mma(s[n], qf[ks], b0, b1);
                fp_mma(s[n + 1], qf[ks], b2, b3);
            }
        const int c0 = j * FP_BN;
        if (c0 + FP_BN > c_free) {
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int c = c0 + n * 8 + (lane & 3) * 2 + (e & 1);
                    const int lim = e < 2 ? limA : limB;
                    if (c > lim || c >= p.n_cells) s[n][e] = -INFINITY;
                }
        }
        float mx[2] = { m[0], m[1] };
#pragma unroll
        for (int n = 0; n < NT; n++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
        }
        float mu[2], alpha[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            mu[i] = mx[i] == -INFINITY ? 0.f : mx[i];
            alpha[i] = fp_exp2(m[i] - mu[i]);
            m[i] = mx[i];
        }
        float ls[2] = { 0.f, 0.f };
#pragma unroll
        for (int n = 0; n < NT; n++) {
            s[n][0] = fp_exp2(s[n][0] - mu[0]);
            s[n][1] = fp_exp2(s[n][1] - mu[0]);
            s[n][2] = fp_exp2(s[n][2] - mu[1]);
            s[n][3] = fp_exp2(s[n][3] - mu[1]);
            ls[0] += s[n][0] + s[n][1];
            ls[1] += s[n][2] + s[n][3];
        }
        l[0] = l[0] * alpha[0] + ls[0];
        l[1] = l[1] * alpha[1] + ls[1];
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            o[n][0] *= alpha[0]; o[n][1] *= alpha[0];
            o[n][2] *= alpha[1]; o[n][3] *= alpha[1];
        }
#pragma unroll
        for (int kk = 0; kk < FP_BN / 16; kk++) {
            const uint32_t a[4] = { fp_pack(s[2 * kk][0], s[2 * kk][1]), fp_pack(s[2 * kk][2], s[2 * kk][3]),
                                    fp_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]), fp_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]) };
#pragma unroll
            for (int n = 0; n < HD / 8; n += 2) {
                uint32_t b0, b1, b2, b3;
                fp_ldsm4t(b0, b1, b2, b3, Vs + (kk * 16 + (mat & 1) * 8 + (lane & 7)) * LD + n * 8 + (mat >> 1) * 8);
                fp_mma(o[n], a, b0, b1);
                fp_mma(o[n + 1], a, b2, b3);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = i ? rB : rA;
        if (r >= n_rows) continue;
        const size_t th = (size_t)(r / p.gs) * p.H + g * p.gs + r % p.gs;
        float *dst;
        float mul;
        if (p.n_split == 1) {
            dst = p.out + th * HD;
            mul = l[i] > 0.f ? 1.f / l[i] : 0.f;
        } else {
            const size_t sth = (size_t)split * p.T * p.H + th;
            dst = p.pacc + sth * HD;
            mul = 1.f;
            if ((lane & 3) == 0) { p.pm[sth] = m[i]; p.pl[sth] = l[i]; }
        }
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
            *reinterpret_cast<float2 *>(dst + n * 8 + (lane & 3) * 2) = make_float2(o[n][2 * i] * mul, o[n][2 * i + 1] * mul);
    }
#endif
}

/* out[th] = the splits' partial outputs weighted by exp2(m_s - max) / sum; a block per (t, h) */
__global__ void k_fa_merge(const float *__restrict__ pm, const float *__restrict__ pl, const float *__restrict__ pacc,
                           int n_split, int TH, int hd, float *__restrict__ out) {
    const int th = blockIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < n_split; s++) mx = fmaxf(mx, pm[(size_t)s * TH + th]);
    if (mx == -INFINITY) mx = 0.f;
    float L = 0.f;
    for (int s = 0; s < n_split; s++) L += pl[(size_t)s * TH + th] * exp2f(pm[(size_t)s * TH + th] - mx);
    const float inv = L > 0.f ? 1.f / L : 0.f;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.f;
        for (int s = 0; s < n_split; s++) {
            const size_t i = (size_t)s * TH + th;
            float w = exp2f(pm[i] - mx);
            acc += w * pacc[i * hd + d];
        }
        out[(size_t)th * hd + d] = acc * inv;
    }
}

/* out[c][i] (f16, `row` values a cell) = value i of cell c; 8 values a thread */
template <int T>
__global__ void k_expand_f16(const uint8_t *__restrict__ src, size_t rb, int n, int row, __half *__restrict__ out) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int per = row / 8;
    if (idx >= (size_t)n * per) return;
    const int c = (int)(idx / per), i = (int)(idx % per) * 8;
    const uint8_t *r = src + (size_t)c * rb;
    float v[8];
    dq4<T>(r, i, v);
    dq4<T>(r, i + 4, v + 4);
    uint4 u;
    u.x = fp_pack(v[0], v[1]);
    u.y = fp_pack(v[2], v[3]);
    u.z = fp_pack(v[4], v[5]);
    u.w = fp_pack(v[6], v[7]);
    *reinterpret_cast<uint4 *>(out + (size_t)c * row + i) = u;
}

static int expand_f16(gpu_ctx *g, int type, const uint8_t *src, size_t rb, int n, int row, __half *out) {
    const size_t work = (size_t)n * (row / 8);
    if (!work) return 0;
    switch (type) {
#define X(t) case t: k_expand_f16<t><<<cuda_blocks(work, 256), 256, 0, g->stream>>>(src, rb, n, row, out); break;
        CUDA_CACHE_TYPES(X)
#undef X
    default: return cuda_fail_msg(g, "no f16 expansion for this cache type");
    }
    CU_LAUNCHED(g);
    return 0;
}

/* HEARTH_CUDA_PP (tests and timing): "gemm" keeps prompt attention on attn_gemm.cu's path,
 * "w4" uses CTAs of 4 warps (two a multiprocessor) instead of 8, "s2" two tiles in shared
 * memory instead of three, "expand" expands an f16 cache too. Read on each call. The
 * default (8 warps, 3 stages) was the fastest at depth on an H200 (gpu_pp_attn, d32768,
 * one layer of Mistral-7B shape: 1.26 ms against 1.37 for 4 warps and 2 stages): a tile of
 * 128 rows halves the K/V bytes read from L2 per product against 64. */
static int pp_env(const char *word) {
    const char *e = getenv("HEARTH_CUDA_PP");
    return e && strstr(e, word) != NULL;
}

/* The card is sm_80 or newer, and so is the code it runs (a build for older targets only,
 * run through PTX, has empty kernels here). */
static int fp_cc[64], fp_ptx[64];
static int sm80_ok(const gpu_ctx *g) {
    const int d = g->phys >= 0 && g->phys < 64 ? g->phys : 0;
    if (!fp_cc[d]) {
        int v = 0;
        cudaFuncAttributes fa;
        memset(&fa, 0, sizeof fa);
        if (cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, g->phys) != cudaSuccess) v = 0;
        if (cudaFuncGetAttributes(&fa, k_fa_prompt<128, 4, 2>) != cudaSuccess) fa.ptxVersion = -1;
        cudaGetLastError();
        fp_cc[d] = v > 0 ? v : -1;
        fp_ptx[d] = fa.ptxVersion;
    }
    return fp_cc[d] >= 8 && !(fp_ptx[d] > 0 && fp_ptx[d] < 80);
}

/* Why the fused kernel does not take this call (NULL: it does). */
const char *cuda_attn_prompt_why_not(const gpu_ctx *g, const attn_args *a) {
    if (pp_env("gemm")) return "HEARTH_CUDA_PP=gemm";
    if (a->k_row_rot || a->v_row_rot) return "row-rotated cache (heads smaller than a block)";
    if (a->head_dim != 64 && a->head_dim != 128) return "head size other than 64 or 128";
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv) return "query heads not a multiple of KV heads";
    if (!sm80_ok(g)) {
        static char why[96];
        const int d = g->phys >= 0 && g->phys < 64 ? g->phys : 0;
        snprintf(why, sizeof why, "card or code older than sm_80 (card %d.x, code %d)", fp_cc[d], fp_ptx[d]);
        return why;
    }
    return NULL;
}

template <int HD, int W, int S> static int launch_fa(gpu_ctx *g, const fp_args &p, dim3 grid) {
    static int attr_set[64];
    const int d = g->phys >= 0 && g->phys < 64 ? g->phys : 0;
    const int smem = fp_smem_bytes<HD, S>();
    if (!attr_set[d]) {
        CU(g, cudaFuncSetAttribute(k_fa_prompt<HD, W, S>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        attr_set[d] = 1;
    }
    k_fa_prompt<HD, W, S><<<grid, 32 * W, smem, g->stream>>>(p);
    CU_LAUNCHED(g);
    return 0;
}

int cuda_attn_prompt(gpu_ctx *g, const attn_args *a) {
    const int H = a->n_head, G = a->n_head_kv, gs = H / G, hd = a->head_dim, T = a->T, row = a->row;
    const int W = pp_env("w4") ? 4 : 8, BM = 16 * W;
    int n_vis = a->pos0 + T;
    if (n_vis > a->n_cells) n_vis = a->n_cells;
    fp_args p;
    memset(&p, 0, sizeof p);
    p.q = a->q;
    p.T = T; p.H = H; p.gs = gs; p.pos0 = a->pos0; p.n_cells = n_vis;
    p.qscale = a->scale * 1.4426950408889634f;
    p.out = a->out;
    /* K and V as f16 rows: an f16 cache in place (16-byte aligned rows), else expanded */
    const bool expand_all = pp_env("expand");
    const bool k16 = a->type_k == QT_F16 && !expand_all && a->k_row_bytes % 16 == 0 && (uintptr_t)a->k % 16 == 0;
    const bool v16 = a->type_v == QT_F16 && !expand_all && a->v_row_bytes % 16 == 0 && (uintptr_t)a->v % 16 == 0;
    const size_t side = (size_t)n_vis * row;
    __half *buf = NULL;
    if (!k16 || !v16) {
        buf = (__half *)cuda_scratch(g, SCR_WH, sizeof(__half) * side * ((k16 ? 0 : 1) + (v16 ? 0 : 1)));
        if (!buf) return -1;
    }
    __half *kx = buf, *vx = buf + (k16 ? 0 : side);
    if (k16) { p.k = (const __half *)a->k; p.ks = a->k_row_bytes / 2; }
    else {
        if (expand_f16(g, a->type_k, a->k, a->k_row_bytes, n_vis, row, kx)) return -1;
        p.k = kx; p.ks = row;
    }
    if (v16) { p.v = (const __half *)a->v; p.vs = a->v_row_bytes / 2; }
    else {
        if (expand_f16(g, a->type_v, a->v, a->v_row_bytes, n_vis, row, vx)) return -1;
        p.v = vx; p.vs = row;
    }
    /* grid: row tiles x KV heads; split the cells when that leaves SMs idle */
    const int row_tiles = (T * gs + BM - 1) / BM;
    const int max_tiles = (n_vis + FP_BN - 1) / FP_BN;
    const long ctas = (long)row_tiles * G;
    const long want = (W == 4 ? 2L : 1L) * g->sm_count;
    int n_split = 1;
    if (ctas < want) {
        long s = (want + ctas - 1) / ctas;
        long smax = (max_tiles + 3) / 4; /* at least 4 tiles a split */
        if (s > smax) s = smax;
        n_split = s < 1 ? 1 : (int)s;
    }
    p.tps = (max_tiles + n_split - 1) / n_split;
    if (p.tps < 1) p.tps = 1;
    n_split = (max_tiles + p.tps - 1) / p.tps;
    if (n_split < 1) n_split = 1;
    p.n_split = n_split;
    if (n_split > 1) {
        const size_t nst = (size_t)n_split * T * H;
        float *pb = (float *)cuda_scratch(g, SCR_ATTN_PART, sizeof(float) * (nst * 2 + nst * hd));
        if (!pb) return -1;
        p.pm = pb; p.pl = pb + nst; p.pacc = pb + 2 * nst;
    }
    dim3 grid(row_tiles, G, n_split);
    int rc;
    const bool s3 = !pp_env("s2");
    if (hd == 64) rc = W == 8 ? (s3 ? launch_fa<64, 8, 3>(g, p, grid) : launch_fa<64, 8, 2>(g, p, grid))
                              : (s3 ? launch_fa<64, 4, 3>(g, p, grid) : launch_fa<64, 4, 2>(g, p, grid));
    else rc = W == 8 ? (s3 ? launch_fa<128, 8, 3>(g, p, grid) : launch_fa<128, 8, 2>(g, p, grid))
                     : (s3 ? launch_fa<128, 4, 3>(g, p, grid) : launch_fa<128, 4, 2>(g, p, grid));
    if (rc) return rc;
    if (n_split > 1) {
        k_fa_merge<<<T * H, hd, 0, g->stream>>>(p.pm, p.pl, p.pacc, n_split, T * H, hd, a->out);
        CU_LAUNCHED(g);
    }
    return 0;
}
