/* Fused attention for a prompt batch on the tensor cores (flash attention, written for
 * this engine): scores, causal mask, online softmax and the weighted sum of V in one
 * kernel, so the score matrix never reaches device memory.
 *
 * Rows. A CTA takes 128 rows of (token, query head) pairs of one KV head, ordered token
 * by token and within a token by head (row r: token r / gs, head g * gs + r % gs), so the
 * query heads that share the KV head (grouped-query attention) share every K and V tile it
 * loads. The query is scaled by scale * log2 e (the softmax runs on exp2) and rounded to
 * f16; the output accumulators are f32. By default 4 warps of 32 rows (two 16-row mma
 * tiles), the query tile in shared memory: each K or V fragment a warp reads from shared
 * memory feeds two products. HEARTH_CUDA_PP=m1: 8 warps of 16 rows, the query in registers.
 *
 * Cells. Tiles of 64 cells of K and V (f16, rows padded by 16 bytes so ldmatrix reads hit
 * distinct banks) are copied to shared memory with cp.async, two (m1: three) stages deep:
 * the next tiles are in flight while tile j is used, one barrier a tile. Per tile and
 * warp: S = Q K^T (mma m16n8k16, f32 accumulate), the mask (cell c is seen by token t when c <= pos0 + t; only tiles that
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

/* shared memory of a CTA: the query tile (when it lies there) and S stages of K and V tiles */
template <int HD, int BM, int S, int BN, bool QS> constexpr int fp_smem_bytes() {
    return (S * 2 * BN + (QS ? BM : 0)) * (HD + 8) * (int)sizeof(__half);
}

/* HD: head size; W: warps; MT: 16-row tiles a warp; S: pipeline stages (tiles in shared
 * memory); BN: cells a tile. MT 2: every K or V fragment read from shared memory (ldmatrix) feeds two
 * products instead of one, so a tile costs half the shared-memory reads per product; the
 * query then lies in shared memory and is read per k-step (in registers it would take 64
 * more a thread beside 128 of accumulators). MT 1: the query in registers. */
template <int HD, int W, int MT, int S, int BN>
__global__ void __launch_bounds__(32 * W) k_fa_prompt(fp_args p) {
#if FP_SM80
    extern __shared__ __align__(16) uint8_t fp_smem[];
    constexpr bool QS = MT > 1;
    constexpr int LD = HD + 8, TILE = BN * LD, NT = BN / 8, BM = 16 * MT * W, NTH = 32 * W;
    __half *qs = reinterpret_cast<__half *>(fp_smem);  /* [BM][LD] when QS */
    __half *sm = qs + (QS ? BM * LD : 0);               /* [stage][K, V][BN][LD] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, mat = lane >> 3;
    const int g = blockIdx.y, split = blockIdx.z;
    const int n_rows = p.T * p.gs, R0 = blockIdx.x * BM;
    const int r_last = (R0 + BM < n_rows ? R0 + BM : n_rows) - 1;
    const int t_first = R0 / p.gs, t_last = r_last / p.gs;
    int c_end = p.pos0 + t_last + 1;
    if (c_end > p.n_cells) c_end = p.n_cells;
    int c_free = p.pos0 + t_first + 1; /* cells below this are seen by every row of the CTA */
    if (c_free > p.n_cells) c_free = p.n_cells;
    const int n_tiles = (c_end + BN - 1) / BN;
    const int j0 = split * p.tps;
    const int j1 = j0 + p.tps < n_tiles ? j0 + p.tps : n_tiles;

    /* this thread's rows: tile mt, halves i (lane / 4 and lane / 4 + 8) */
    const int wr0 = warp * 16 * MT; /* the warp's first row in the CTA */

    /* the query (scaled, f16): MT 1 as mma fragments in registers, else a tile in shared
     * memory (zeros past the last row; the loop's first barrier publishes it) */
    uint32_t qf[QS ? 1 : HD / 16][4];
    if constexpr (!QS) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int r = R0 + wr0 + i * 8 + (lane >> 2);
            const float *qr = r < n_rows ? p.q + ((size_t)(r / p.gs) * p.H + g * p.gs + r % p.gs) * HD : nullptr;
#pragma unroll
            for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
                for (int hi = 0; hi < 2; hi++) {
                    float2 v = qr ? *reinterpret_cast<const float2 *>(qr + ks * 16 + hi * 8 + (lane & 3) * 2) : make_float2(0.f, 0.f);
                    qf[ks][i + 2 * hi] = fp_pack(v.x * p.qscale, v.y * p.qscale);
                }
        }
    } else {
        for (int i = threadIdx.x; i < BM * (HD / 8); i += NTH) {
            const int rr = i / (HD / 8), ch = i % (HD / 8), r = R0 + rr;
            uint4 u = make_uint4(0u, 0u, 0u, 0u);
            if (r < n_rows) {
                const float *qr = p.q + ((size_t)(r / p.gs) * p.H + g * p.gs + r % p.gs) * HD + ch * 8;
                const float4 a = *reinterpret_cast<const float4 *>(qr), b = *reinterpret_cast<const float4 *>(qr + 4);
                u.x = fp_pack(a.x * p.qscale, a.y * p.qscale);
                u.y = fp_pack(a.z * p.qscale, a.w * p.qscale);
                u.z = fp_pack(b.x * p.qscale, b.y * p.qscale);
                u.w = fp_pack(b.z * p.qscale, b.w * p.qscale);
            }
            *reinterpret_cast<uint4 *>(qs + rr * LD + ch * 8) = u;
        }
    }

    float o[MT][HD / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < HD / 8; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;

    const __half *kg = p.k + (size_t)g * HD, *vg = p.v + (size_t)g * HD;
    /* the copies of tile j into a stage (committed by the caller as one group) */
    /* a thread copies piece ch of rows r0, r0 + RS, ...: one pointer a side stepped by RS
     * rows (per-piece addresses held across the loop would cost registers that MT 2 lacks) */
    constexpr int CPR = HD / 8, RS = NTH / CPR; /* 16-byte pieces a row; rows a step */
    static_assert(NTH % CPR == 0 && BN % RS == 0, "tile copy shape");
    const int r0 = threadIdx.x / CPR, ch = threadIdx.x % CPR;
    auto load = [&](int j, int stage) {
        __half *ks_ = sm + (size_t)stage * 2 * TILE + r0 * LD + ch * 8, *vs_ = ks_ + TILE;
        const int c = j * BN + r0;
        const __half *kp = kg + (size_t)c * p.ks + ch * 8, *vp = vg + (size_t)c * p.vs + ch * 8;
#pragma unroll
        for (int it = 0; it < BN / RS; it++) {
            const bool ok = c + it * RS < p.n_cells;
            fp_cp16(ks_ + it * RS * LD, ok ? kp : kg, ok ? 16 : 0);
            fp_cp16(vs_ + it * RS * LD, ok ? vp : vg, ok ? 16 : 0);
            kp += RS * p.ks;
            vp += RS * p.vs;
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
        float s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < NT; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if constexpr (QS)
                    fp_ldsm4(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3],
                             qs + (wr0 + mt * 16 + (mat & 1) * 8 + (lane & 7)) * LD + ks * 16 + (mat >> 1) * 8);
                else
#pragma unroll
                    for (int e = 0; e < 4; e++) qa[mt][e] = qf[QS ? 0 : ks][e];
            }
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                uint32_t b0, b1, b2, b3;
                fp_ldsm4(b0, b1, b2, b3, Ks + (n * 8 + (mat >> 1) * 8 + (lane & 7)) * LD + ks * 16 + (mat & 1) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    fp_mma(s[mt][n], qa[mt], b0, b1);
                    fp_mma(s[mt][n + 1], qa[mt], b2, b3);
                }
            }
        }
        const int c0 = j * BN;
        if (c0 + BN > c_free) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    /* the last cell row (mt, i) sees, and the end of the cells */
                    int lim = p.pos0 + (R0 + wr0 + mt * 16 + i * 8 + (lane >> 2)) / p.gs;
                    if (lim >= p.n_cells) lim = p.n_cells - 1;
#pragma unroll
                    for (int n = 0; n < NT; n++)
#pragma unroll
                        for (int e = 0; e < 2; e++)
                            if (c0 + n * 8 + (lane & 3) * 2 + e > lim) s[mt][n][2 * i + e] = -INFINITY;
                }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float mx[2] = { m[mt][0], m[mt][1] };
#pragma unroll
            for (int n = 0; n < NT; n++) {
                mx[0] = fmaxf(mx[0], fmaxf(s[mt][n][0], s[mt][n][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[mt][n][2], s[mt][n][3]));
            }
            float mu[2], alpha[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
                mu[i] = mx[i] == -INFINITY ? 0.f : mx[i];
                alpha[i] = fp_exp2(m[mt][i] - mu[i]);
                m[mt][i] = mx[i];
            }
            float ls[2] = { 0.f, 0.f };
#pragma unroll
            for (int n = 0; n < NT; n++) {
                s[mt][n][0] = fp_exp2(s[mt][n][0] - mu[0]);
                s[mt][n][1] = fp_exp2(s[mt][n][1] - mu[0]);
                s[mt][n][2] = fp_exp2(s[mt][n][2] - mu[1]);
                s[mt][n][3] = fp_exp2(s[mt][n][3] - mu[1]);
                ls[0] += s[mt][n][0] + s[mt][n][1];
                ls[1] += s[mt][n][2] + s[mt][n][3];
            }
            l[mt][0] = l[mt][0] * alpha[0] + ls[0];
            l[mt][1] = l[mt][1] * alpha[1] + ls[1];
            /* deep in the cells a row's max rarely moves: skip the rescale (x * 1 == x) unless
             * some row of the warp's tile needs it */
            if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
                for (int n = 0; n < HD / 8; n++) {
                    o[mt][n][0] *= alpha[0]; o[mt][n][1] *= alpha[0];
                    o[mt][n][2] *= alpha[1]; o[mt][n][3] *= alpha[1];
                }
            }
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = fp_pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                a[mt][1] = fp_pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                a[mt][2] = fp_pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                a[mt][3] = fp_pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int n = 0; n < HD / 8; n += 2) {
                uint32_t b0, b1, b2, b3;
                fp_ldsm4t(b0, b1, b2, b3, Vs + (kk * 16 + (mat & 1) * 8 + (lane & 7)) * LD + n * 8 + (mat >> 1) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    fp_mma(o[mt][n], a[mt], b0, b1);
                    fp_mma(o[mt][n + 1], a[mt], b2, b3);
                }
            }
        }
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            l[mt][i] += __shfl_xor_sync(0xffffffffu, l[mt][i], 1);
            l[mt][i] += __shfl_xor_sync(0xffffffffu, l[mt][i], 2);
        }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const float li = l[mt][i];
            const int r = R0 + wr0 + mt * 16 + i * 8 + (lane >> 2);
            if (r >= n_rows) continue;
            const size_t th = (size_t)(r / p.gs) * p.H + g * p.gs + r % p.gs;
            float *dst;
            float mul;
            if (p.n_split == 1) {
                dst = p.out + th * HD;
                mul = li > 0.f ? 1.f / li : 0.f;
            } else {
                const size_t sth = (size_t)split * p.T * p.H + th;
                dst = p.pacc + sth * HD;
                mul = 1.f;
                if ((lane & 3) == 0) { p.pm[sth] = m[mt][i]; p.pl[sth] = li; }
            }
#pragma unroll
            for (int n = 0; n < HD / 8; n++)
                *reinterpret_cast<float2 *>(dst + n * 8 + (lane & 3) * 2) = make_float2(o[mt][n][2 * i] * mul, o[mt][n][2 * i + 1] * mul);
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

/* HEARTH_CUDA_PP (tests and timing), read on each call: "gemm" keeps prompt attention on
 * attn_gemm.cu's path; "expand" expands an f16 cache too; "m1" takes the kernel of 8 warps
 * of 16 rows and 3 stages (the only one before warps of 32 rows) instead of the default, 4
 * warps of 32 rows and 2 stages. One layer of Mistral-7B shape, pp512, H100: 0.772 ms
 * against 1.094 at d32768, 0.037 against 0.036 at d0; 8 warps of 32 rows (256-row CTAs, one
 * a multiprocessor) took 0.838 against 0.819 for 4 at d32768 and 0.120 against 0.080 at d1536
 * (BENCHMARKS.md "Prompt attention: 32 rows a warp"). */
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
        if (cudaFuncGetAttributes(&fa, k_fa_prompt<128, 4, 2, 2, 64>) != cudaSuccess) fa.ptxVersion = -1;
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

/* The kernel variant's launch for the batch: the row tiles of BM rows times the KV heads,
 * and when they leave CTA slots free, the cells split over as many CTAs per tile as fit in
 * one wave; then the merge of the splits. */
template <int HD, int W, int MT, int S, int BN> static int launch_fa(gpu_ctx *g, fp_args p, float *out) {
    constexpr int BM = 16 * MT * W, smem = fp_smem_bytes<HD, BM, S, BN, (MT > 1)>();
    const int max_tiles = (p.n_cells + BN - 1) / BN;
    static int per_sm[64];
    const int d = g->phys >= 0 && g->phys < 64 ? g->phys : 0;
    if (!per_sm[d]) {
        int n = 0;
        CU(g, cudaFuncSetAttribute(k_fa_prompt<HD, W, MT, S, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        CU(g, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k_fa_prompt<HD, W, MT, S, BN>, 32 * W, smem));
        per_sm[d] = n > 0 ? n : 1;
    }
    const int G = p.H / p.gs, row_tiles = (p.T * p.gs + BM - 1) / BM;
    const long ctas = (long)row_tiles * G, slots = (long)per_sm[d] * g->sm_count;
    long s = ctas < slots ? slots / ctas : 1;
    /* a split has at least 4 tiles, more for larger batches: the merge reads every split's
     * partial output (T H hd values each), while what a split saves does not grow with T
     * (H100, pp512 at d0, the 32-row kernel: 0.034 ms unsplit, 0.056 split in two and merged) */
    const long smax = max_tiles / (4 + (long)p.T * p.H / 1024);
    if (s > smax) s = smax;
    if (s < 1) s = 1;
    p.tps = (int)((max_tiles + s - 1) / s);
    if (p.tps < 1) p.tps = 1;
    int n_split = (max_tiles + p.tps - 1) / p.tps;
    if (n_split < 1) n_split = 1;
    p.n_split = n_split;
    if (n_split > 1) {
        const size_t nst = (size_t)n_split * p.T * p.H;
        float *pb = (float *)cuda_scratch(g, SCR_ATTN_PART, sizeof(float) * (nst * 2 + nst * HD));
        if (!pb) return -1;
        p.pm = pb; p.pl = pb + nst; p.pacc = pb + 2 * nst;
    }
    k_fa_prompt<HD, W, MT, S, BN><<<dim3(row_tiles, G, n_split), 32 * W, smem, g->stream>>>(p);
    CU_LAUNCHED(g);
    if (n_split > 1) {
        k_fa_merge<<<p.T * p.H, HD, 0, g->stream>>>(p.pm, p.pl, p.pacc, n_split, p.T * p.H, HD, out);
        CU_LAUNCHED(g);
    }
    return 0;
}

template <int HD> static int launch_variant(gpu_ctx *g, const fp_args &p, float *out) {
    /* the 32-row kernel reads the query 16 bytes at a time */
    if ((uintptr_t)p.q % 16 || pp_env("m1")) return launch_fa<HD, 8, 1, 3, 64>(g, p, out);
    return launch_fa<HD, 4, 2, 2, 64>(g, p, out);
}

int cuda_attn_prompt(gpu_ctx *g, const attn_args *a) {
    const int H = a->n_head, G = a->n_head_kv, gs = H / G, hd = a->head_dim, T = a->T, row = a->row;
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
    return hd == 64 ? launch_variant<64>(g, p, a->out) : launch_variant<128>(g, p, a->out);
}
