/* Decode attention (a few query tokens) for heads of 128 values and f16 / q8_0 / q4_0
 * caches, on the tensor cores.
 *
 * Rows. A block serves one KV head and up to 8 rows of (token, query head) pairs that
 * read it (the group's query heads, and for T > 1 several tokens): the M side of S = Q K^T
 * (mma m16n8k16, rows 8..15 zero) and the N side of O^T = V^T P^T (so the accumulators
 * are 32 registers, not 64). Each K and V byte of the KV head is read once for every query
 * head that shares it (grouped-query attention). The queries sit in registers as f16 A
 * fragments, scaled by scale * log2 e (the softmax runs on exp2).
 *
 * Cells. The cells are split into chunks over many warps (flash-decoding, enough to fill
 * the card: a chunk is at least 32 cells, 64 for f16 pairs); a warp walks its chunk 32
 * cells at a time (with a block type the last step may be 16 cells). The
 * tile's K and V bytes of its head are copied to the warp's shared memory with cp.async
 * (16-byte pieces), the next tile in flight while this one is used. Then
 *   S = Q K^T: K decoded from shared memory straight into B fragments. The order of the
 *     128 values inside the dot product is free, so lane (g, t) of the mma takes the 32
 *     values 32t..32t+31 of its cell: one whole q8_0 / q4_0 block, one scale;
 *   the mask and the online softmax (f32), P in f16 from the S registers as the B operand;
 *   O^T += V^T P^T: lane (g, t) needs values 16g..16g+15 of 4 cells (two pairs of
 *     neighbours) a 16-cell step, so it decodes those and pairs them with byte permutes.
 * Integers become f16 exactly (0x6400 | byte is 1024 + byte), then one subtract and one
 * multiply by the block scale: every K and V value is the f16 of its dequantized value.
 * At the end the block's warps merge in shared memory; with more than one block of chunks
 * the blocks' (max, sum, vector) states are merged by the last of those blocks to finish (up
 * to AD_FUSE_STATES a row: no second kernel on the step's path; every depth for Mistral-7B's
 * f16, q8_0 and q4_0 caches on an H100) or, with more, by a second kernel (k_attn_dec_merge).
 *
 * For CUDA graphs the position can come from device memory (dpos): the chunking is then
 * worked out on the card from the cell count, and the grid is sized for the capacity.
 *
 * Launch overlap (programmatic dependent launch, in a decode step's graph). Every kernel
 * queued with cuda_launch calls pdl_wait before pdl_next, so when this kernel starts, the
 * kernel before it has passed its wait: everything queued before that one is done. Right
 * after the cache store (g->kv_stored), the query (the product before the store) and all
 * cells but the store's are therefore final: a warp waits for the store only before it
 * copies a tile holding one of the newest cells, and the other warps, nearly all at depth,
 * run alongside the store. The merge kernel is let in once the warps are through their
 * cells, and waits for this one; with the fused merge the kernel after is the product wo,
 * let in at the start so its weights load while the attention runs. (Every type pair since
 * 2026-11-27: see cuda_attn_dec.) */
#include "backend/cuda/attn_dec.cuh"
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/mma.cuh"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AD_HD 128
#define AD_R 8        /* rows a block serves (the N of O^T = V^T P^T) */
#define AD_WPB 4
#define AD_TILE 32    /* cells a warp step */
#define AD_OS (AD_HD + 4)   /* a row's stride in the merge area (floats; 4 banks apart) */
#define AD_QS (2 * AD_HD + 16)   /* a query row's stride in shared memory (bytes; 4 banks apart) */
#define AD_MERGE_MAX 4096   /* most chunk blocks */

struct dec_p {
    const float *q;
    const uint8_t *k, *v;
    size_t kb, vb;
    int T, H, gs;
    int hp, tp, nhpass;     /* a block's rows: tp tokens x hp query heads; head passes */
    int pos0;
    const int *dpos;        /* non-NULL: pos0 = *dpos */
    int cap;                /* most chunks (the grid holds at least the chunks this gives) */
    int var;                /* chunks of two lengths (ad_chunks) */
    int minc, step;         /* fewest cells a chunk; a chunk's length is a multiple of step */
    float qscale;           /* scale * log2 e */
    int rot_q, rot_o;       /* Hadamard-rotate each query head first / each output head back */
    int early;              /* queued right after the cache store of cells pos0.. (top of file) */
    int *cnt;               /* non-NULL: the chunk blocks' states merged by the last block of each
                             * (KV head, pass), which this counter a (KV head, pass) finds */
    float *pm, *pl, *pacc, *out;
    unsigned long long *probe;   /* HEARTH_AD_PROBE: 8 words a block (k_attn_dec PROBE) */
};

/* HEARTH_AD_PROBE (a measuring aid, its own kernel instances): thread 0 of each block of a
 * same-type pair with the fused merge writes the card's ns clock at points of its life:
 * 0 entry, 1 past the wait, 2 query ready, 3 tile loop done, 4 state written, 5 end (after the
 * fold in the last block), 6 past the wait for the store (the warp with the newest cell), 7
 * the multiprocessor | last block << 16 | chunk blocks << 20. A launch a slot, the slots
 * restarting with each graph capture (the layers of a graph are slots 0..; a slot keeps its
 * last launch); written to the file the variable names when the context is freed, a summary
 * line a slot first (what it showed on an H100: BENCHMARKS.md, "Inside the decode attention"); e.g.
 *   HEARTH_AD_PROBE=/tmp/probe.txt hearth bench -m M -ngl 99 -p 0 -n 16 -d 8192 -ctk q8_0 -ctv q8_0 -r 1 */
#define AD_PROBE_SLOTS 96
#define AD_PROBE_BLOCKS 4096
#define AD_PROBE_WORDS ((size_t)AD_PROBE_SLOTS * AD_PROBE_BLOCKS * 8)
__device__ __forceinline__ unsigned long long ad_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ unsigned ad_bid() { return blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z); }
#define AD_PROBE(k, v)                                                            \
    do {                                                                         \
        if (PROBE && threadIdx.x == 0) p.probe[(size_t)ad_bid() * 8 + (k)] = (v); \
    } while (0)

/* states c0, c0 + cs, .. below nst of row th folded into (m, L, A) by one warp, AD_MS of
 * them at a time with all their loads in flight (from L2: other blocks wrote them) */
#define AD_MS 16
__device__ __forceinline__ void ad_fold(const dec_p &p, size_t th, int c0, int cs, int nst, float &m, float &L, float4 &A) {
    const int lane = threadIdx.x & 31;
    const size_t ts = (size_t)p.T * p.H;
    for (; c0 < nst; c0 += cs * AD_MS) {
        float mk[AD_MS], lk[AD_MS];
        float4 ak[AD_MS];
#pragma unroll
        for (int k = 0; k < AD_MS; k++) {
            const int c = c0 + k * cs;
            mk[k] = -INFINITY; lk[k] = 0.0f; ak[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (c < nst) {
                mk[k] = __ldcg(p.pm + c * ts + th);
                lk[k] = __ldcg(p.pl + c * ts + th);
                ak[k] = __ldcg((const float4 *)(p.pacc + (c * ts + th) * AD_HD) + lane);
            }
        }
        float mx = m;
#pragma unroll
        for (int k = 0; k < AD_MS; k++)
            if (lk[k] > 0.0f) mx = fmaxf(mx, mk[k]);
        const float sc = L > 0.0f ? fp_exp2(m - mx) : 0.0f;
        L *= sc;
        A.x *= sc; A.y *= sc; A.z *= sc; A.w *= sc;
#pragma unroll
        for (int k = 0; k < AD_MS; k++) {
            const float w = lk[k] > 0.0f ? fp_exp2(mk[k] - mx) : 0.0f;
            L += lk[k] * w;
            A.x += w * ak[k].x; A.y += w * ak[k].y; A.z += w * ak[k].z; A.w += w * ak[k].w;
        }
        m = mx;
    }
}

/* The same for the fused merge's one warp a row: states c0.. AD_FB a trip, their (max, sum)
 * a lane each (so only the vectors take registers: AD_FB float4 a lane) and every load of a
 * trip in flight at once; the weights go to the lanes by shuffles. */
#define AD_FB 24
__device__ __forceinline__ void ad_fold_warp(const dec_p &p, size_t th, int nst, float &m, float &L, float4 &A) {
    const int lane = threadIdx.x & 31;
    const size_t ts = (size_t)p.T * p.H;
    for (int c0 = 0; c0 < nst; c0 += AD_FB) {
        float4 ak[AD_FB];
        const int cl = c0 + lane;
        const float lc = lane < AD_FB && cl < nst ? __ldcg(p.pl + cl * ts + th) : 0.0f;
        const float mc = lane < AD_FB && cl < nst ? __ldcg(p.pm + cl * ts + th) : -INFINITY;
#pragma unroll
        for (int k = 0; k < AD_FB; k++)
            ak[k] = c0 + k < nst ? __ldcg((const float4 *)(p.pacc + ((c0 + k) * ts + th) * AD_HD) + lane)
                                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        const float mx = fmaxf(m, warp_max(lc > 0.0f ? mc : -INFINITY));
        const float sc = L > 0.0f ? fp_exp2(m - mx) : 0.0f;
        const float w = lc > 0.0f ? fp_exp2(mc - mx) : 0.0f;
        L = L * sc + warp_sum(lc * w);
        A.x *= sc; A.y *= sc; A.z *= sc; A.w *= sc;
#pragma unroll
        for (int k = 0; k < AD_FB; k++) {
            const float wk = __shfl_sync(0xffffffffu, w, k);
            A.x += wk * ak[k].x; A.y += wk * ak[k].y; A.z += wk * ak[k].z; A.w += wk * ak[k].w;
        }
        m = mx;
    }
}

/* the Hadamard butterflies of a warp's head of 128 values, lane l holding 4l..4l+3: two
 * stages within the lane, five across lanes */
__device__ __forceinline__ void ad_butterflies4(float *v) {
    float a;
    a = v[0]; v[0] = a + v[1]; v[1] = a - v[1];
    a = v[2]; v[2] = a + v[3]; v[3] = a - v[3];
    a = v[0]; v[0] = a + v[2]; v[2] = a - v[2];
    a = v[1]; v[1] = a + v[3]; v[3] = a - v[3];
#pragma unroll
    for (int o = 1; o < 32; o *= 2)
#pragma unroll
        for (int j = 0; j < 4; j++) v[j] = hadamard_xor(v[j], o);
}

/* the inverse rotation of such a head (butterflies, then norm and signs, as k_hadamard's
 * inverse) */
__device__ __forceinline__ void ad_unrotate4(float *v) {
    const int lane = threadIdx.x & 31;
    ad_butterflies4(v);
    const float norm = 1.0f / sqrtf((float)AD_HD);
#pragma unroll
    for (int j = 0; j < 4; j++) v[j] = v[j] * (norm * cuda_sign_at(4 * lane + j));
}

/* the forward rotation of the same layout (what gpu_hadamard does to a query head): signs,
 * then butterflies, then the norm */
__device__ __forceinline__ void ad_rotate4(float *v) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < 4; j++) v[j] *= cuda_sign_at(4 * lane + j);
    ad_butterflies4(v);
    const float norm = 1.0f / sqrtf((float)AD_HD);
#pragma unroll
    for (int j = 0; j < 4; j++) v[j] *= norm;
}

/* a row's final output: the folded vector over its sum, rotated back if asked, lane l
 * writing values 4l..4l+3 */
__device__ __forceinline__ void ad_write_row(const dec_p &p, size_t th, float4 A, float L) {
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float ov[4] = { A.x * inv, A.y * inv, A.z * inv, A.w * inv };
    if (p.rot_o) ad_unrotate4(ov);
    ((float4 *)(p.out + th * AD_HD))[threadIdx.x & 31] = make_float4(ov[0], ov[1], ov[2], ov[3]);
}

/* chunks of at least minc cells, at most cap of them, a multiple of step cells long (a tile,
 * or for block types half a tile: a warp's last step may be a half tile, which skips half
 * the work): chunk i starts at i * cpc + step * min(i, extra) and is cpc cells long, step more
 * below extra (the last one ends at the last cell). With var (f16 pairs) exactly cap chunks
 * once the cells fill them, the steps dealt as evenly as they go (the first chunks one step
 * longer, the newest cells in a shorter one); else all chunks of one length, rounded up to a
 * step, extra = 0 (fewer chunks: for the block types, fewer states to fold). Cells just past
 * a multiple of the chunk length cost an f16 pair a chunk, and a block, of their own before:
 * 17 blocks a KV head on an H100 where 16.5 fit, the last ones in a second round. */
__host__ __device__ __forceinline__ void ad_chunks(int n_cells, int cap, int minc, int step, int var, int *cpc, int *extra,
                                                   int *nch) {
    int c = (n_cells + minc - 1) / minc;
    if (c > cap) c = cap;
    if (c < 1) c = 1;
    if (var) {
        const int steps = (n_cells + step - 1) / step;
        if (c > steps) c = steps;
        *cpc = steps / c * step;
        *extra = steps % c;
        *nch = c;
        return;
    }
    int p = (n_cells + c - 1) / c;
    p = (p + step - 1) / step * step;
    *cpc = p;
    *extra = 0;
    *nch = (n_cells + p - 1) / p;
}

/* HB: bytes of one head's vector; PK: the 16-byte pieces copied a cell; S: a cell's stride
 * in shared memory. A block-type head starts 8 bytes into a 16-byte piece or on one (HB is
 * 8 more than a multiple of 16, rows a multiple of 16): PK pieces from the piece it starts
 * in cover it and never leave its row. */
template <int T> struct ad_type;
template <> struct ad_type<QT_F16> { enum { HB = 256, PK = 16, S = 272 }; };
template <> struct ad_type<QT_Q8_0> { enum { HB = 136, PK = 9, S = 144 }; };
template <> struct ad_type<QT_Q4_0> { enum { HB = 72, PK = 5, S = 80 }; };

__device__ __forceinline__ uint32_t ad_prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
    return r;
}
__device__ __forceinline__ __half2 ad_h2(uint32_t u) { return *reinterpret_cast<__half2 *>(&u); }
__device__ __forceinline__ uint32_t ad_u(__half2 h) { return *reinterpret_cast<uint32_t *>(&h); }
__device__ __forceinline__ __half ad_ldh(const uint8_t *p) { return __ushort_as_half(*(const uint16_t *)p); }

/* N words from a 2-byte aligned place in shared memory (blocks are 34 and 18 bytes):
 * aligned loads put together with funnel shifts; reads up to 4 bytes past the last word.
 * The aligned pointer is p moved back, not p masked: so the compiler still knows the
 * shared space (a masked pointer gets generic loads) */
template <int N> __device__ __forceinline__ void ad_words(const uint8_t *p, uint32_t *w) {
    const unsigned mis = (unsigned)__cvta_generic_to_shared(p) & 2;
    const uint32_t *a = (const uint32_t *)(p - mis);
    uint32_t x[N + 1];
#pragma unroll
    for (int i = 0; i <= N; i++) x[i] = a[i];
#pragma unroll
    for (int i = 0; i < N; i++) w[i] = __funnelshift_r(x[i], x[i + 1], mis * 8);
}

/* bytes b0 (low) and b1 of u, 0..255 each (bias removed by the caller), times d: the
 * half2 (b0, b1) - off, times d */
__device__ __forceinline__ uint32_t ad_bytes2h(uint32_t u, __half2 off, __half2 d) {
    return ad_u(__hmul2(__hsub2(ad_h2(u), off), d));
}

/* The B fragments of one cell for S = Q K^T: kf[2s], kf[2s+1] hold values 32t + 4s ..
 * 32t + 4s + 3 of the cell's head (t = lane & 3) as two half2 */
template <int T> __device__ __forceinline__ void ad_kfrag(const uint8_t *cell, int t, uint32_t *kf) {
    if (T == QT_F16) {
        const uint4 *p = (const uint4 *)(cell + 64 * t);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 u = p[i];
            kf[4 * i] = u.x; kf[4 * i + 1] = u.y; kf[4 * i + 2] = u.z; kf[4 * i + 3] = u.w;
        }
        return;
    }
    const uint8_t *b = cell + qinfo<T>::BYTES * t;
    const __half2 d = __half2half2(ad_ldh(b));
    if (T == QT_Q8_0) {
        const __half2 off = __float2half2_rn(1152.0f);   /* 1024 + the 128 of the sign flip */
        uint32_t w[8];
        ad_words<8>(b + 2, w);
#pragma unroll
        for (int s = 0; s < 8; s++) {
            const uint32_t u = w[s] ^ 0x80808080u;
            kf[2 * s] = ad_bytes2h(ad_prmt(u, 0x64646464u, 0x4140), off, d);
            kf[2 * s + 1] = ad_bytes2h(ad_prmt(u, 0x64646464u, 0x4342), off, d);
        }
    } else {   /* q4_0: values 0..15 are low nibbles, 16..31 high ones */
        const __half2 off = __float2half2_rn(1032.0f);
        uint32_t w[4];
        ad_words<4>(b + 2, w);
#pragma unroll
        for (int s = 0; s < 8; s++) {
            const uint32_t u = (s < 4 ? w[s] : w[s - 4] >> 4) & 0x0F0F0F0Fu;
            kf[2 * s] = ad_bytes2h(ad_prmt(u, 0x64646464u, 0x4140), off, d);
            kf[2 * s + 1] = ad_bytes2h(ad_prmt(u, 0x64646464u, 0x4342), off, d);
        }
    }
}

/* Values 16g..16g+15 of one cell's V head (g = lane >> 2), for O += P V: f16, 8 half2
 * words; block types, 4 words of 16 bytes 0..255 (bias not yet removed) and the scale */
template <int T> struct ad_vcell {
    uint32_t w[T == QT_F16 ? 8 : 4];
    __half d;
    __device__ __forceinline__ void load(const uint8_t *cell, int g) {
        if (T == QT_F16) {
            const uint4 *p = (const uint4 *)(cell + 32 * g);
            uint4 a = p[0], b = p[1];
            w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
            w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
            return;
        }
        const uint8_t *b = cell + qinfo<T>::BYTES * (g >> 1);
        d = ad_ldh(b);
        if (T == QT_Q8_0) {
            ad_words<4>(b + 2 + 16 * (g & 1), w);
#pragma unroll
            for (int i = 0; i < 4; i++) w[i] ^= 0x80808080u;
        } else {
            ad_words<4>(b + 2, w);
            const int sh = 4 * (g & 1);
#pragma unroll
            for (int i = 0; i < 4; i++) w[i] = (w[i] >> sh) & 0x0F0F0F0Fu;
        }
    }
};

/* the B register holding value 16g + j of cells a (low half) and b */
template <int T> __device__ __forceinline__ uint32_t ad_vpair(const ad_vcell<T> &a, const ad_vcell<T> &b, int j) {
    if (T == QT_F16) return ad_prmt(a.w[j >> 1], b.w[j >> 1], (j & 1) ? 0x7632 : 0x5410);
    const uint32_t x = (ad_prmt(a.w[j >> 2], b.w[j >> 2], (j & 3) | (4 + (j & 3)) << 8) & 0x00FF00FFu) | 0x64006400u;
    const __half2 off = __float2half2_rn(T == QT_Q8_0 ? 1152.0f : 1032.0f);
    return ad_bytes2h(x, off, __halves2half2(a.d, b.d));
}

/* a tile's head vectors of cells cb..cb+n into shared memory at dst (a shared address,
 * stride S), from the 16-byte pieces at src + c * rb; zeros for cells n..AD_TILE (no NaN
 * meets P = 0). The warp's lanes on pieces, 32 / PK cells a step; a full tile (the common
 * case) without a test a copy */
template <int PK, int S>
__device__ __forceinline__ void ad_copy(unsigned dst, const uint8_t *src, size_t rb, int n, int lane) {
    constexpr int CPI = 32 / PK;
    const int cl = lane / PK, w = lane % PK;
    if (cl >= CPI) return;
    const uint8_t *sp = src + (size_t)cl * rb + 16 * w;
    const size_t step = (size_t)CPI * rb;
    dst += cl * S + 16 * w;
    if (n == AD_TILE) {
#pragma unroll
        for (int c = cl; c < AD_TILE; c += CPI, sp += step, dst += CPI * S)
            fp_cp16s(dst, sp, 16);
    } else {
#pragma unroll
        for (int c = cl; c < AD_TILE; c += CPI, sp += step, dst += CPI * S)
            fp_cp16s(dst, c < n ? sp : src, c < n ? 16 : 0);
    }
}

/* a warp's stage: a K tile, a V tile and 16 bytes that no copy writes, for ad_words' read
 * past a tile's last cell (its bytes unused), so that it never meets the copy of the tile
 * after it in flight into the next stage (compute-sanitizer's racecheck reported those reads
 * as hazards when stages were back to back) */
template <int TK, int TV> __host__ __device__ constexpr int ad_stage() { return AD_TILE * (ad_type<TK>::S + ad_type<TV>::S) + 16; }
/* a pair with a block type: the query prepared once a block, chunks in half tiles; an f16
 * pair keeps a warp's own query and whole tiles (it lost 1.2 us a layer at depth 8192 on an
 * H100 with the block's query, BENCHMARKS.md) */
template <int TK, int TV> __host__ __device__ constexpr bool ad_blk() { return TK != QT_F16 || TV != QT_F16; }
/* the query rows' place in shared memory: after two stages of tiles a warp */
template <int TK, int TV> __host__ __device__ constexpr int ad_qoff() { return AD_WPB * 2 * ad_stage<TK, TV>(); }

/* rows r < R of a block: the AD_WPB states of each in shared memory (sm: [state][row] m,
 * l; sa: [state][row][AD_OS] vectors) folded into one; warp w takes rows w, w + AD_WPB, ..
 * final: normalized (and rotated back) into the output; else the block's partial state,
 * slot z of pm, pl, pacc */
__device__ __forceinline__ void ad_combine(const dec_p &p, const float *sm, const float *sa, int R, int t0, int h0, int g,
                                           bool final, int z) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int r = wid; r < R; r += AD_WPB) {
        const int t = t0 + r / p.hp, h = h0 + r % p.hp;
        if (t >= p.T || h >= p.gs) continue;
        float mx = -INFINITY;
#pragma unroll
        for (int k = 0; k < AD_WPB; k++) mx = fmaxf(mx, sm[2 * (k * AD_R + r)]);
        float L = 0.0f;
        float4 A = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int k = 0; k < AD_WPB; k++) {
            const float lk = sm[2 * (k * AD_R + r) + 1];
            const float e = lk > 0.0f ? fp_exp2(sm[2 * (k * AD_R + r)] - mx) : 0.0f;
            const float4 a = ((const float4 *)(sa + (size_t)(k * AD_R + r) * AD_OS))[lane];
            L += lk * e;
            A.x += a.x * e; A.y += a.y * e; A.z += a.z * e; A.w += a.w * e;
        }
        const size_t th = (size_t)t * p.H + g * p.gs + h;
        if (final) {
            ad_write_row(p, th, A, L);
        } else {
            const size_t sti = (size_t)z * p.T * p.H + th;
            if (lane == 0) { p.pm[sti] = mx; p.pl[sti] = L; }
            ((float4 *)(p.pacc + sti * AD_HD))[lane] = A;
        }
    }
}

/* blocks a multiprocessor should hold, as far as shared memory lets it (227 KB): 1 with an
 * f16 side, 4 for q4_0 / q4_0 (42 KB with the query rows), else 3 (the register cap these give: 255, 128, 168) */
template <int TK, int TV> __host__ __device__ constexpr int ad_min_blocks() {
    return TK == QT_F16 || TV == QT_F16 ? 1 : TK == QT_Q4_0 && TV == QT_Q4_0 ? 4 : 3;
}

/* FUSE: the states merged by the last chunk block (p.cnt), and the kernel after this one
 * let in at the start (it is the product after the attention: its weights come in while
 * the attention runs; H100, tg128 at depth 0: f16 +0.8%, q8_0 +1.4% over letting it in at
 * the end). Its own instantiation, so the code of the other (the merge kernel's) stays as
 * it was: one with both in it measured 0.5-1% slower at depth. */
template <int TK, int TV, bool FUSE, bool PROBE = false>
__global__ void __launch_bounds__(32 * AD_WPB, ad_min_blocks<TK, TV>()) k_attn_dec(dec_p p) {
#if FP_SM80
    typedef ad_type<TK> KT;
    typedef ad_type<TV> VT;
    constexpr int STAGE = ad_stage<TK, TV>();
    extern __shared__ __align__(16) uint8_t ad_sh[];
    uint8_t *tiles = ad_sh;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
    const int g = blockIdx.x;
    const int h0 = (blockIdx.y % p.nhpass) * p.hp, t0 = (blockIdx.y / p.nhpass) * p.tp;
    /* the position is written before a graph starts, so it may be read before any wait */
    AD_PROBE(0, ad_now());
    const int pos0 = p.dpos ? *p.dpos : p.pos0;
    if (FUSE) pdl_next();
    if (!p.early) pdl_wait();
    AD_PROBE(1, ad_now());
    const int n_cells = pos0 + p.T;
    int cpc, extra, nch;
    /* p.var is 0 for block types (cuda_attn_dec); the constant keeps their code as it was */
    ad_chunks(n_cells, p.cap, p.minc, p.step, ad_blk<TK, TV>() ? 0 : p.var, &cpc, &extra, &nch);
    const int nchb = (nch + AD_WPB - 1) / AD_WPB;   /* chunk blocks: what the block writes */
    if ((int)blockIdx.z >= nchb) return;             /* the whole block */
    if (PROBE) {
        unsigned smid;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
        AD_PROBE(7, (unsigned long long)smid | (unsigned long long)nchb << 20);
    }
    const int chunk = blockIdx.z * AD_WPB + wid;
    int c0 = chunk * cpc + p.step * (chunk < extra ? chunk : extra), c1 = c0 + cpc + (chunk < extra ? p.step : 0);
    const int t_end = t0 + p.tp < p.T ? t0 + p.tp : p.T;
    if (c1 > pos0 + t_end) c1 = pos0 + t_end;
    if (chunk >= nch) c1 = c0;   /* an idle warp of the last block */
    /* this lane's row of S (gid) sees cells below pos0 + t + 1 */
    const int lim = pos0 + t0 + gid / p.hp + 1;

    const uint8_t *ws = tiles + (size_t)wid * 2 * STAGE;
    const unsigned ws_s = (unsigned)__cvta_generic_to_shared(ws);
    /* the head's pieces start at kg (vg); its first byte is koff (voff) into them */
    const int koff = g * KT::HB & 15, voff = g * VT::HB & 15;
    const uint8_t *kg = p.k + (size_t)(g * KT::HB - koff), *vg = p.v + (size_t)(g * VT::HB - voff);
    /* tile cb.. (n cells) into stage st; cells from pos0 on only once the store is done */
    bool stored = !p.early;
    auto load = [&](int cb, int n, int st) {
        if (!stored && cb + n > pos0) {
            pdl_wait();
            stored = true;
            if (PROBE && lane == 0) p.probe[(size_t)ad_bid() * 8 + 6] = ad_now();
        }
        const unsigned ks = ws_s + st * STAGE;
        ad_copy<KT::PK, KT::S>(ks, kg + (size_t)cb * p.kb, p.kb, n, lane);
        ad_copy<VT::PK, VT::S>(ks + AD_TILE * KT::S, vg + (size_t)cb * p.vb, p.vb, n, lane);
    };

    const int R = p.hp * p.tp;
    uint32_t qf[8][4];
    bool defer = false;
    if constexpr (!ad_blk<TK, TV>()) {
        /* an f16 pair (never rotated, cuda_attn_dec): the first two tiles on their way, then
         * lane (gid, t) loads its own 32 query values (its store is short: the order of the
         * block types below measured 1% slower at depth 0 and even at depth) */
        if (c0 < c1) load(c0, c1 - c0 < AD_TILE ? c1 - c0 : AD_TILE, 0);
        fp_commit();
        if (c0 + AD_TILE < c1) load(c0 + AD_TILE, c1 - c0 - AD_TILE < AD_TILE ? c1 - c0 - AD_TILE : AD_TILE, 1);
        fp_commit();
        const int t = t0 + gid / p.hp, h = h0 + gid % p.hp;
        const bool on = gid < R && t < p.T && h < p.gs;
        const float4 *qp = (const float4 *)(p.q + ((size_t)t * p.H + g * p.gs + h) * AD_HD + 32 * tig);
        const float f = p.qscale;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float4 v = on ? __ldcg(qp + k) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            qf[k][0] = fp_pack(v.x * f, v.y * f);
            qf[k][2] = fp_pack(v.z * f, v.w * f);
            qf[k][1] = qf[k][3] = 0;
        }
    } else {
        /* A pair with a block type. The order of the prologue: the query's loads, the first
         * tile's copies, the query prepared, then the second tile's (H100 probe, BENCHMARKS.md:
         * with both tiles issued first, the query's loads queued behind every tile and no warp
         * computed before its last byte was in). A second tile holding cells of the store (a
         * q8_0 / q4_0 store is long: its scale search) waits until the first tile is computed,
         * so the newest chunk's warp, and with it its block, works during the store instead of
         * after it.
         *
         * The query rows, prepared once for the block's warps: warp w takes rows w, w + AD_WPB,
         * lane l values 4l..4l+3, rotated on the way (the rotation gpu_hadamard would have done)
         * and scaled, into shared memory as f16. Then lane (gid, t) takes values 32t..32t+31 of
         * row gid, which are all its A fragments need (k-step s covers 32t + 4s .. + 3, the order
         * ad_kfrag gives K); rows 8..15 of the mma are zeros */
        constexpr int QN = AD_R / AD_WPB;
        float4 qv[QN];
#pragma unroll
        for (int i = 0; i < QN; i++) {
            const int r = wid + i * AD_WPB, t = t0 + r / p.hp, h = h0 + r % p.hp;
            /* from L2: this kernel may start before the store ends */
            qv[i] = r < R && t < p.T && h < p.gs ? __ldcg((const float4 *)(p.q + ((size_t)t * p.H + g * p.gs + h) * AD_HD) + lane)
                                                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        if (c0 < c1) load(c0, c1 - c0 < AD_TILE ? c1 - c0 : AD_TILE, 0);
        fp_commit();
        uint8_t *qsh = tiles + ad_qoff<TK, TV>();
#pragma unroll
        for (int i = 0; i < QN; i++) {
            float x[4] = { qv[i].x, qv[i].y, qv[i].z, qv[i].w };
            if (p.rot_q) ad_rotate4(x);   /* zeros stay zeros */
            const float f = p.qscale;
            *(uint2 *)(qsh + (wid + i * AD_WPB) * AD_QS + 8 * lane) =
                make_uint2(fp_pack(x[0] * f, x[1] * f), fp_pack(x[2] * f, x[3] * f));
        }
        __syncthreads();
        {
            const uint4 *qp = (const uint4 *)(qsh + gid * AD_QS + 64 * tig);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint4 u = qp[i];
                qf[2 * i][0] = u.x; qf[2 * i][2] = u.y; qf[2 * i + 1][0] = u.z; qf[2 * i + 1][2] = u.w;
                qf[2 * i][1] = qf[2 * i][3] = qf[2 * i + 1][1] = qf[2 * i + 1][3] = 0;
            }
        }
        if (c0 + AD_TILE < c1) {
            const int n1 = c1 - c0 - AD_TILE < AD_TILE ? c1 - c0 - AD_TILE : AD_TILE;
            if (!stored && c0 + AD_TILE + n1 > pos0) defer = true;
            else load(c0 + AD_TILE, n1, 1);
        }
        fp_commit();
    }
    AD_PROBE(2, ad_now());
    /* O^T = V^T P^T: o[i] holds values 16 gid + i (0, 1) and 16 gid + 8 + i (2, 3) of
     * rows 2t (0, 2) and 2t + 1 (1, 3) */
    float o[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m = -INFINITY, l = 0.0f;   /* row gid */
    int st = 0;
    for (int cb = c0; cb < c1; cb += AD_TILE, st ^= 1) {
        fp_wait<1>();   /* tile cb is in (and the next may be on its way) */
        __syncwarp();
        const uint8_t *ks = ws + st * STAGE + koff, *vs = ws + st * STAGE + AD_TILE * KT::S + voff;
        /* a chunk's last step may hold only 16 cells: the other half's work is skipped (its
         * S stays 0 and is masked below, so its P is 0) */
        const bool half = ad_blk<TK, TV>() && c1 - cb <= AD_TILE / 2;
        float s[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            if (j >= 2 && half) continue;
            uint32_t kf[16];
            ad_kfrag<TK>(ks + (8 * j + gid) * KT::S, tig, kf);
#pragma unroll
            for (int k = 0; k < 8; k++) fp_mma(s[j], qf[k], kf[2 * k], kf[2 * k + 1]);
        }
        const int nA = (lim < c1 ? lim : c1) - cb;
        if (nA < AD_TILE) {
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    if (8 * j + 2 * tig + e >= nA) s[j][e] = -INFINITY;
        }
        float mx = m;
#pragma unroll
        for (int j = 0; j < 4; j++) mx = fmaxf(mx, fmaxf(s[j][0], s[j][1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mu = mx == -INFINITY ? 0.0f : mx;
        const float alpha = fp_exp2(m - mu);
        m = mx;
        float ls = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s[j][0] = fp_exp2(s[j][0] - mu);
            s[j][1] = fp_exp2(s[j][1] - mu);
            ls += s[j][0] + s[j][1];
        }
        l = l * alpha + ls;
        /* O^T's columns are rows 2t, 2t + 1: their factors from the lanes that own them */
        const float al0 = __shfl_sync(0xffffffffu, alpha, 8 * tig), al1 = __shfl_sync(0xffffffffu, alpha, 8 * tig + 4);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            o[i][0] *= al0; o[i][1] *= al1;
            o[i][2] *= al0; o[i][3] *= al1;
        }
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            if (kk && half) break;
            /* P^T as the B operand: S's registers of rows gid, cells 16kk + 2t .. */
            const uint32_t b0 = fp_pack(s[2 * kk][0], s[2 * kk][1]), b1 = fp_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            const int ca = 16 * kk + 2 * tig;
            ad_vcell<TV> va, vb, vc, vd;
            va.load(vs + ca * VT::S, gid);
            vb.load(vs + (ca + 1) * VT::S, gid);
            vc.load(vs + (ca + 8) * VT::S, gid);
            vd.load(vs + (ca + 9) * VT::S, gid);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const uint32_t a[4] = { ad_vpair<TV>(va, vb, i), ad_vpair<TV>(va, vb, 8 + i),
                                        ad_vpair<TV>(vc, vd, i), ad_vpair<TV>(vc, vd, 8 + i) };
                fp_mma(o[i], a, b0, b1);
            }
        }
        __syncwarp();   /* every lane is done with this stage: the tile after next goes in */
        if (defer) {   /* the first step: the second tile, past the wait for the store */
            defer = false;
            load(cb + AD_TILE, c1 - cb - AD_TILE < AD_TILE ? c1 - cb - AD_TILE : AD_TILE, st ^ 1);
            fp_commit();
        }
        const int nb = cb + 2 * AD_TILE;
        if (nb < c1) load(nb, c1 - nb < AD_TILE ? c1 - nb : AD_TILE, st);
        fp_commit();
    }
    fp_wait<0>();
    AD_PROBE(3, ad_now());
    /* without FUSE only now: the merge kernel's blocks waiting early cost more than their launch (q4_0) */
    if (!FUSE) pdl_next();
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    /* the block's warps merged in shared memory (the tiles are free now) */
    __syncthreads();
    float *sm = (float *)tiles;                          /* [warp][row]: m, l */
    float *sa = sm + 2 * AD_WPB * AD_R;                  /* [warp][row][AD_OS] */
    if (tig == 0) { sm[2 * (wid * AD_R + gid)] = m; sm[2 * (wid * AD_R + gid) + 1] = l; }
    {
        float *r0 = sa + (size_t)(wid * AD_R + 2 * tig) * AD_OS + 16 * gid, *r1 = r0 + AD_OS;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            r0[i] = o[i][0]; r1[i] = o[i][1];
            r0[8 + i] = o[i][2]; r1[8 + i] = o[i][3];
        }
    }
    __syncthreads();
    ad_combine(p, sm, sa, R, t0, h0, g, nchb == 1, blockIdx.z);
    AD_PROBE(4, ad_now());
    AD_PROBE(5, ad_now());
    if (!FUSE || nchb == 1) return;
    /* the last chunk block of this (KV head, pass) to finish merges the states (each
     * thread's writes fenced before the count; the counter is left at 0 for the next launch) */
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *c = p.cnt + blockIdx.x * gridDim.y + blockIdx.y;
        last = atomicAdd(c, 1) == nchb - 1;
        if (last) *c = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int r = wid; r < R; r += AD_WPB) {
        const int t = t0 + r / p.hp, h = h0 + r % p.hp;
        if (t >= p.T || h >= p.gs) continue;
        const size_t th = (size_t)t * p.H + g * p.gs + h;
        float mx = -INFINITY, L = 0.0f;
        float4 A = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        ad_fold_warp(p, th, nchb, mx, L, A);
        ad_write_row(p, th, A, L);
    }
    if (PROBE) {
        __syncthreads();
        AD_PROBE(5, ad_now());
        if (threadIdx.x == 0) p.probe[(size_t)ad_bid() * 8 + 7] |= 1ull << 16;
    }
#endif
}

/* the chunk blocks' states merged (m in log2 units): a block per (token, head). Warp w
 * takes states w, w + AD_WPB, .. (ad_fold), then the warps' states are folded in shared
 * memory. A state with l = 0 (no cells) weighs nothing. */
__global__ void __launch_bounds__(32 * AD_WPB) k_attn_dec_merge(dec_p p) {
    __shared__ float red[2][AD_WPB];
    __shared__ float4 part[AD_WPB][32];
    pdl_wait();   /* always, also when nothing is to merge: the next kernel's wait covers this one's */
    pdl_next();
    const int pos0 = p.dpos ? *p.dpos : p.pos0;
    int cpc, extra, nch;
    ad_chunks(pos0 + p.T, p.cap, p.minc, p.step, p.var, &cpc, &extra, &nch);
    nch = (nch + AD_WPB - 1) / AD_WPB;   /* states: one per block of chunks */
    if (nch == 1) return;                /* the attention kernel wrote the output */
    const int th = blockIdx.x, lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    float m = -INFINITY, L = 0.0f;
    float4 A = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    ad_fold(p, th, wid, AD_WPB, nch, m, L, A);
    if (lane == 0) { red[0][wid] = m; red[1][wid] = L; }
    part[wid][lane] = A;
    __syncthreads();
    if (wid) return;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < AD_WPB; w++)
        if (red[1][w] > 0.0f) mx = fmaxf(mx, red[0][w]);
    float Ls = 0.0f, o[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
#pragma unroll
    for (int w = 0; w < AD_WPB; w++) {
        const float e = red[1][w] > 0.0f ? fp_exp2(red[0][w] - mx) : 0.0f;
        const float4 a = part[w][lane];
        Ls += red[1][w] * e;
        o[0] += a.x * e; o[1] += a.y * e; o[2] += a.z * e; o[3] += a.w * e;
    }
    ad_write_row(p, th, make_float4(o[0], o[1], o[2], o[3]), Ls);
}

#define AD_CNT_MAX 4096
#define AD_FUSE_STATES (3 * AD_FB)   /* 72: three trips of ad_fold_warp */

/* the most states a row the attention merges itself, 0 for never: AD_FUSE_STATES, or as
 * the environment says (for measuring and tests, read each call so tests can switch it:
 * HEARTH_AD_FUSE=0 never, HEARTH_AD_FUSE_STATES=N up to N) */
static int ad_fuse_states(void) {
    const char *e = getenv("HEARTH_AD_FUSE");
    if (e && *e && atoi(e) == 0) return 0;
    e = getenv("HEARTH_AD_FUSE_STATES");
    const int n = e ? atoi(e) : 0;
    return n >= 1 && n <= AD_MERGE_MAX ? n : AD_FUSE_STATES;
}

static int ad_type_ok(int t) { return t == QT_F16 || t == QT_Q8_0 || t == QT_Q4_0; }

/* heads are copied in 16-byte pieces that stay inside their row (ad_type) */
static int ad_aligned(size_t row_bytes, const void *p) { return row_bytes % 16 == 0 && (uintptr_t)p % 16 == 0; }

int cuda_attn_dec_ok(const attn_args *a) {
    return a->T >= 1 && a->T <= 8 && a->head_dim == AD_HD && !a->k_row_rot && !a->v_row_rot && ad_type_ok(a->type_k) &&
           ad_type_ok(a->type_v) && ad_aligned(a->k_row_bytes, a->k) && ad_aligned(a->v_row_bytes, a->v) &&
           a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0;
}

/* two stages of tiles a warp, 16 bytes that ad_words may read past the last tile, the query
 * rows; the merge area reuses the tiles (and is smaller than them) */
template <int TK, int TV> static size_t ad_smem() {
    static_assert(sizeof(float) * AD_WPB * AD_R * (2 + AD_OS) <= (size_t)AD_WPB * 2 * ad_stage<TK, TV>(), "merge area");
    return (size_t)ad_qoff<TK, TV>() + (ad_blk<TK, TV>() ? AD_R * AD_QS : 0);
}

/* blocks of the kernel resident on a multiprocessor (asked once per type pair), after the
 * shared-memory limit is raised (a function attribute is per device: once per card) */
template <int TK, int TV> static int ad_prepare(int *per_sm) {
    static unsigned long long attr_set;
    static int occ;
    const size_t sh = ad_smem<TK, TV>();
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = 0;
    if (sh > 48 * 1024 && (dev >= 64 || !(attr_set >> dev & 1))) {
        cudaError_t e = cudaFuncSetAttribute(k_attn_dec<TK, TV, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e == cudaSuccess)
            e = cudaFuncSetAttribute(k_attn_dec<TK, TV, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if constexpr (TK == TV)
            if (e == cudaSuccess)
                e = cudaFuncSetAttribute(k_attn_dec<TK, TV, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return (int)e;
        if (dev < 64) attr_set |= 1ull << dev;
    }
    if (!occ && cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, k_attn_dec<TK, TV, false>, 32 * AD_WPB, sh) != cudaSuccess) {
        cudaGetLastError();
        occ = 1;
    }
    *per_sm = occ > 0 ? occ : 1;
    return 0;
}

/* queued with cuda_launch: overlapping the kernel before it while g->pdl */
template <int TK, int TV> static cudaError_t ad_launch(gpu_ctx *g, const dec_p &p, dim3 grid) {
    if constexpr (TK == TV)
        if (p.probe && p.cnt) return cuda_launch(g, k_attn_dec<TK, TV, true, true>, grid, dim3(32 * AD_WPB), ad_smem<TK, TV>(), p);
    return cuda_launch(g, p.cnt ? k_attn_dec<TK, TV, true> : k_attn_dec<TK, TV, false>, grid, dim3(32 * AD_WPB), ad_smem<TK, TV>(), p);
}

/* one switch over the pairs: what == 0 prepares (per_sm), 1 launches */
#define AD_V(tk)                                                                                         \
    switch (tv) {                                                                                        \
    case QT_F16: return what ? ad_launch<tk, QT_F16>(g, p, grid) : (cudaError_t)ad_prepare<tk, QT_F16>(per_sm);    \
    case QT_Q8_0: return what ? ad_launch<tk, QT_Q8_0>(g, p, grid) : (cudaError_t)ad_prepare<tk, QT_Q8_0>(per_sm); \
    case QT_Q4_0: return what ? ad_launch<tk, QT_Q4_0>(g, p, grid) : (cudaError_t)ad_prepare<tk, QT_Q4_0>(per_sm); \
    default: return cudaErrorInvalidValue;                                                               \
    }

static cudaError_t ad_dispatch(gpu_ctx *g, int what, int tk, int tv, const dec_p &p, dim3 grid, int *per_sm) {
    switch (tk) {
    case QT_F16: AD_V(QT_F16)
    case QT_Q8_0: AD_V(QT_Q8_0)
    case QT_Q4_0: AD_V(QT_Q4_0)
    default: return cudaErrorInvalidValue;
    }
}

/* the file HEARTH_AD_PROBE names, else NULL (read once: cuda_attn_dec asks at every launch) */
static const char *ad_probe_file(void) {
    static int read;
    static const char *file;
    if (!read) {
        const char *e = getenv("HEARTH_AD_PROBE");
        file = e && *e ? e : NULL;
        read = 1;
    }
    return file;
}

/* HEARTH_DEC_VAR=0 (measuring): f16 pairs' chunks of one length again (read once) */
static int ad_var_off(void) {
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("HEARTH_DEC_VAR");
        off = e && atoi(e) == 0;
    }
    return off;
}

/* HEARTH_DEC_WAVES (timing experiments): the grid aims at this many rounds of resident
 * blocks; 1 by default (H100, one layer of Mistral-7B shape at 32768 cells: 53.5 us for
 * q8_0 against 60.4 with 2 rounds; more partial states cost more than the balance gains) */
static int ad_waves(void) {
    const char *e = getenv("HEARTH_DEC_WAVES");
    int w = e ? atoi(e) : 0;
    return w >= 1 && w <= 16 ? w : 1;
}

/* the fewest cells a chunk: 64 for an f16 pair, 32 with a block type (H100, one layer at
 * depth 8192: q8_0 14.5 against 15.5 us, q4_0 13.6 against 14.4; tg128 within the noise
 * of 1%); HEARTH_DEC_MIN (timing experiments) sets it, a multiple of the chunk step */
static int ad_min_cells(int blk) {
    const char *e = getenv("HEARTH_DEC_MIN");
    int m = e ? atoi(e) : 0;
    return m >= 16 && m <= 4096 && m % (blk ? AD_TILE / 2 : AD_TILE) == 0 ? m : blk ? 32 : 64;
}

/* HEARTH_AD_FILL_MERGE=0 (measuring): the fused merge kept where the attention fills the
 * card (cuda_attn_dec) */
static int ad_fill_merge_on(void) {
    const char *e = getenv("HEARTH_AD_FILL_MERGE");
    return !e || atoi(e) != 0;
}

/* HEARTH_AD_FILL=0/1 (tests): the attention taken as filling the card or not, whatever its
 * blocks, so that small models take the choices made at depth; -1 without it */
static int ad_fill_forced(void) {
    const char *e = getenv("HEARTH_AD_FILL");
    return e ? atoi(e) != 0 : -1;
}

/* whether the chunk blocks that have cells at n_cells outnumber the multiprocessors (blocks
 * past the cells leave at once) */
static int ad_fills(const gpu_ctx *g, const dec_p &p, long heads, int n_cells) {
    int cpc, extra, nch;
    ad_chunks(n_cells, p.cap, p.minc, p.step, p.var, &cpc, &extra, &nch);
    return heads * ((nch + AD_WPB - 1) / AD_WPB) > g->sm_count;
}

int cuda_attn_dec(gpu_ctx *g, const attn_args *a, const int *dpos, int cap_cells, int rot_q, int rot_o) {
    const int H = a->n_head, G = a->n_head_kv, T = a->T;
    dec_p p;
    memset(&p, 0, sizeof p);
    p.q = a->q; p.k = a->k; p.v = a->v; p.kb = a->k_row_bytes; p.vb = a->v_row_bytes;
    p.T = T; p.H = H; p.gs = H / G; p.pos0 = a->pos0; p.dpos = dpos; p.out = a->out;
    p.qscale = a->scale * 1.4426950408889634f;
    /* an f16 pair takes its query as it is: a rotation asked for is done first */
    const int blk = a->type_k != QT_F16 || a->type_v != QT_F16;
    if (!blk && rot_q) {
        if (gpu_hadamard(g, (float *)a->q, T * H, AD_HD, 0)) return -1;
        rot_q = 0;
        g->kv_stored = 0;   /* the query is no longer final when the store ends */
    }
    p.rot_q = rot_q; p.rot_o = rot_o;
    /* overlapped launches (g->pdl) for every pair, tg128 on an H100: both block types gain
     * 3-6% from the early start (their stores are the costly ones), f16 / f16 0.3-1.4% and
     * f16 / q8_0 2-6% with the kernels of 2026-11-27 evening (f16 sides were 1-2% slower with
     * the kernel before, so they were launched plainly until then; BENCHMARKS.md) */
    p.early = g->pdl && g->kv_stored && dpos;
    g->kv_stored = 0;
    /* rows: the group's query heads (16 at most a pass), then as many tokens as fit */
    p.hp = p.gs < AD_R ? p.gs : AD_R;
    p.tp = AD_R / p.hp < T ? AD_R / p.hp : T;
    p.nhpass = (p.gs + p.hp - 1) / p.hp;
    const int passes = p.nhpass * ((T + p.tp - 1) / p.tp);
    int per_sm = 1;
    cudaError_t e = ad_dispatch(g, 0, a->type_k, a->type_v, p, dim3(1), &per_sm);
    if (e != cudaSuccess) return cuda_fail(g, "decode attention", e);
    /* chunks (warps) for a few rounds of the blocks the card holds (f16 pairs: whole blocks,
     * and all of them once the cells fill them: ad_chunks) */
    p.var = !blk && !ad_var_off();
    long want = p.var ? (long)ad_waves() * per_sm * g->sm_count / ((long)G * passes) * AD_WPB
                      : (long)ad_waves() * per_sm * AD_WPB * g->sm_count / ((long)G * passes);
    if (want > (long)AD_WPB * AD_MERGE_MAX) want = (long)AD_WPB * AD_MERGE_MAX;
    p.cap = want < 1 ? 1 : (int)want;
    p.minc = ad_min_cells(blk);
    p.step = blk ? AD_TILE / 2 : AD_TILE;
    /* the grid covers the chunks of the most cells this launch may see */
    int cpc, extra, nch;
    ad_chunks(dpos ? cap_cells : a->n_cells, p.cap, p.minc, p.step, p.var, &cpc, &extra, &nch);
    const int nchb = (nch + AD_WPB - 1) / AD_WPB;
    if (nchb > 1 || dpos) {
        size_t nst = (size_t)nchb * T * H;
        float *buf = (float *)cuda_scratch(g, SCR_ATTN_PART, sizeof(float) * (nst * 2 + nst * AD_HD));
        if (!buf) return -1;
        p.pm = buf; p.pl = buf + nst; p.pacc = buf + 2 * nst;
    }
    /* The states merged by the attention's own last chunk block (no second kernel on the
     * step's path) while they are not too many: up to AD_FUSE_STATES a row, three trips to
     * L2 for a warp (ad_fold_warp). More are merged faster by the merge kernel's T * H
     * blocks. H100, tg128 against the merge kernel: depth 0 f16 +1.4%, q8_0 +0.9%; at 8192
     * and 32768 f16 +1.0%, q8_0 and q4_0 the same (with 16 states a trip instead of 24
     * and their (max, sum) loaded with them, fused was 1-2% slower for q8_0 there). 72, not
     * 64 as before: q4_0 / q4_0's 264 chunks on an H100 (66 states) are then merged here at
     * every depth, +0.5-0.9% at 16384 cells and +0.9-1.3% at 32768 (2026-11-28). A graph
     * keeps the choice it was captured with, so the cells it suits are narrowed to match
     * (cuda_graph_cells) and gpu_graph_pick has the step capture anew past them (HEARTH_AD_FUSE_STATES
     * sets the limit, for measuring). The counters are made (zeroed) outside a capture: the
     * first, uncaptured, step makes them. */
    const int fst = ad_fuse_states(), fuse = fst > 0;
    const int fuse_cells = p.cap <= fst * AD_WPB ? INT_MAX : fst * AD_WPB * p.minc;
    if (fuse && !g->ad_cnt) {
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        CU(g, cudaStreamIsCapturing(g->stream, &cs));
        if (cs == cudaStreamCaptureStatusNone) {
            CU(g, cudaMalloc(&g->ad_cnt, sizeof(int) * AD_CNT_MAX));
            CU(g, cudaMemsetAsync(g->ad_cnt, 0, sizeof(int) * AD_CNT_MAX, g->stream));
        }
    }
    const int merge = nchb > 1 || dpos;
    /* where the blocks with cells fill the card, a block-type pair of fewer than 4 blocks an
     * SM (q8_0) leaves its states to the merge kernel, so that wo and the FFN norm run as one
     * kernel after it (gpu_matmul_norm): H200, q8_0 at 8192 / 32768 cells 356.7-357.6 /
     * 294.9-296.2 t/s against 342.6-343.9 / 283.6-285.7 with the fused merge and the plain
     * wo, mixed pairs +3-8% (BENCHMARKS.md). q4_0 / q4_0 (4 blocks an SM) keeps its fused
     * merge: the merge kernel lost 1-2% there (the fused wo follows it either way). */
    const int forced = ad_fill_forced();
    const int fill = forced >= 0 ? forced : ad_fills(g, p, (long)G * passes, a->n_cells);
    const int fill_merge = fill && blk && per_sm < 4 && ad_fill_merge_on();
    if (merge && fuse && !fill_merge && g->ad_cnt && G * passes <= AD_CNT_MAX && a->n_cells <= fuse_cells) p.cnt = g->ad_cnt;
    if (dpos) {
        if (p.cnt) cuda_graph_cells(g, 0, fuse_cells);
        else if (fuse && g->ad_cnt && a->n_cells > fuse_cells) cuda_graph_cells(g, fuse_cells + 1, INT_MAX);
    }
    if (ad_probe_file() && p.cnt && (size_t)G * passes * nchb <= AD_PROBE_BLOCKS) {
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        CU(g, cudaStreamIsCapturing(g->stream, &cs));
        if (!g->ad_probe && cs == cudaStreamCaptureStatusNone) {
            CU(g, cudaMalloc(&g->ad_probe, AD_PROBE_WORDS * sizeof(unsigned long long)));
            CU(g, cudaMemsetAsync(g->ad_probe, 0, AD_PROBE_WORDS * sizeof(unsigned long long), g->stream));
        }
        if (g->ad_probe) p.probe = g->ad_probe + (size_t)(g->ad_probe_i++ % AD_PROBE_SLOTS) * AD_PROBE_BLOCKS * 8;
    }
    /* for the product after this (gpu_matmul_norm): whether the blocks with cells fill the
     * card; a graph keeps the choice for the cells where it holds */
    g->ad_out = a->out;
    g->ad_fill = fill;
    /* wo plain at fill while the attention's own last block merges the states (q8_0 at 8192
     * cells: fused 269 t/s against 278 plain on an H100, 326-331 against 336-342 on an H200):
     * where the blocks fill the card, the plain product's small blocks take its
     * multiprocessors one by one as the attention's blocks leave, where the fused kernel's
     * blocks wait for whole ones. Fused after the merge kernel (fill_merge above) and after an
     * attention of 4 blocks an SM (q4_0 / q4_0), measured, not explained: +2.5% at 8192 and
     * 32768 cells on an H100, +3.6% / +4.4% on an H200 (BENCHMARKS.md) */
    g->ad_wo_plain = fill && per_sm < 4 && !(merge && !p.cnt);
    /* a grid that never fills the card at any cell count (f16 pairs) keeps the graph's cells */
    const int can_fill = (long)G * passes * ((p.cap + AD_WPB - 1) / AD_WPB) > g->sm_count;
    if (dpos && can_fill && forced < 0) {
        int lo = a->n_cells, hi = a->n_cells;
        while (lo > 1 && ad_fills(g, p, (long)G * passes, lo - 1) == g->ad_fill) lo--;
        while (hi < cap_cells && ad_fills(g, p, (long)G * passes, hi + 1) == g->ad_fill) hi++;
        cuda_graph_cells(g, lo > 1 ? lo : 0, hi < cap_cells ? hi : INT_MAX);
    }
    e = ad_dispatch(g, 1, a->type_k, a->type_v, p, dim3(G, passes, nchb), &per_sm);
    if (e != cudaSuccess) return cuda_fail(g, "decode attention", e);
    if (merge && !p.cnt) CU(g, cuda_launch(g, k_attn_dec_merge, dim3(T * H), dim3(32 * AD_WPB), 0, p));
    return 0;
}

/* a block's readings in the probe: it entered and had cells (a block past the chunks has none) */
static int ad_probe_row(const unsigned long long *r) { return r[0] && r[3]; }

void cuda_ad_probe_dump(gpu_ctx *g) {
    if (!g->ad_probe) return;
    const char *pe = ad_probe_file();
    unsigned long long *h = (unsigned long long *)malloc(AD_PROBE_WORDS * sizeof *h);
    FILE *f = pe ? fopen(pe, "w") : NULL;
    if (pe && !f) fprintf(stderr, "HEARTH_AD_PROBE: cannot write %s\n", pe);
    if (h && f && cudaMemcpy(h, g->ad_probe, AD_PROBE_WORDS * sizeof *h, cudaMemcpyDeviceToHost) == cudaSuccess) {
        /* a summary a slot first (us from the slot's first entry; medians over its blocks),
         * then every block's readings */
        fprintf(f, "# slot blocks: entry-spread waited query loop state end (medians, us); last block's end; store seen; span\n");
        unsigned long long *col = (unsigned long long *)malloc(sizeof *col * AD_PROBE_BLOCKS);
        for (size_t s = 0; s < AD_PROBE_SLOTS && col; s++) {
            const unsigned long long *base = h + s * AD_PROBE_BLOCKS * 8;
            unsigned long long t0 = ~0ull, tmax = 0, tlast = 0, tstore = 0;
            int n = 0;
            for (size_t b = 0; b < AD_PROBE_BLOCKS; b++) {
                const unsigned long long *r = base + b * 8;
                if (!ad_probe_row(r)) continue;
                n++;
                if (r[0] < t0) t0 = r[0];
                if (r[5] > tmax) tmax = r[5];
                if (r[7] >> 16 & 1) tlast = r[5] > tlast ? r[5] : tlast;
                if (r[6] > tstore) tstore = r[6];
            }
            if (!n) continue;
            double med[6];
            for (int k = 0; k < 6; k++) {
                int m = 0;
                for (size_t b = 0; b < AD_PROBE_BLOCKS; b++) {
                    const unsigned long long *r = base + b * 8;
                    if (ad_probe_row(r)) col[m++] = r[k];
                }
                for (int i = 1; i < m; i++)   /* insertion sort: a few hundred values */
                    for (int j = i; j > 0 && col[j - 1] > col[j]; j--) { unsigned long long x = col[j]; col[j] = col[j - 1]; col[j - 1] = x; }
                med[k] = (double)(col[m / 2] - t0) / 1e3;
            }
            fprintf(f, "# slot %zu: %d blocks: %.2f %.2f %.2f %.2f %.2f %.2f; last %.2f; store %.2f; span %.2f\n", s, n, med[0],
                    med[1], med[2], med[3], med[4], med[5], tlast ? (double)(tlast - t0) / 1e3 : -1.0,
                    tstore ? (double)(tstore - t0) / 1e3 : -1.0, (double)(tmax - t0) / 1e3);
        }
        free(col);
        fprintf(f, "# slot block entry waited query loop state end storewait sm last nchb (ns; HEARTH_AD_PROBE)\n");
        for (size_t s = 0; s < AD_PROBE_SLOTS; s++)
            for (size_t b = 0; b < AD_PROBE_BLOCKS; b++) {
                const unsigned long long *r = h + (s * AD_PROBE_BLOCKS + b) * 8;
                if (!ad_probe_row(r)) continue;
                fprintf(f, "%zu %zu", s, b);
                for (int k = 0; k < 7; k++) fprintf(f, " %llu", r[k]);
                fprintf(f, " %llu %llu %llu\n", r[7] & 0xffff, r[7] >> 16 & 1, r[7] >> 20);
            }
    }
    if (f) fclose(f);
    free(h);
    cudaFree(g->ad_probe);
    g->ad_probe = NULL;
}

extern "C" int gpu_attn_pos_ok(const attn_args *a, int flash) { return flash && a->T < 32 && cuda_attn_dec_ok(a); }

extern "C" int gpu_attn_rot(gpu_ctx *g, const attn_args *a, int flash, int rot_q, int rot_o) {
    if (flash && !cuda_attn_gemm_ok(a) && cuda_attn_dec_ok(a))
        return cuda_attn_dec(g, a, g->pos_on ? g->dpos : NULL, g->cap_cells, rot_q, rot_o);
    if (rot_q && gpu_hadamard(g, (float *)a->q, a->T * a->n_head, a->head_dim, 0)) return -1;
    if (gpu_attn(g, a, flash)) return -1;
    return rot_o ? gpu_hadamard(g, a->out, a->T * a->n_head, a->head_dim, 1) : 0;
}
