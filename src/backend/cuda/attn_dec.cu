/* Decode attention (a few query tokens) for heads of 128 values and f16 / q8_0 / q4_0 caches.
 *
 * The cells are split into chunks over many warps (flash-decoding); a warp owns one
 * (token, KV head, chunk) and the group's query heads. It walks its chunk 32 cells at a
 * time: the tile's K and V bytes of its head are copied into shared memory with 8-byte
 * loads that cover whole contiguous stretches (a cell's head is 136 bytes in q8_0, 72 in
 * q4_0, 256 in f16), then
 *   scores: a lane per cell, the K vector decoded from shared memory in 4-value pieces
 *           against the query (shared, broadcast);
 *   values: lanes on 4-value pieces of the V vector, cell by cell, the cell's weight
 *           broadcast from its lane.
 * So a q8_0 cache moves about half the bytes of an f16 one, with wide loads, and every
 * value is decoded in registers. A second kernel merges the chunks' (max, sum, vector).
 *
 * For CUDA graphs the position can come from device memory (dpos): the chunking is then
 * worked out on the card from the cell count, and the grid is sized for the capacity. */
#include "backend/cuda/attn_dec.cuh"
#include "backend/cuda/dequant.cuh"

#include <math.h>
#include <string.h>

#define AD_HD 128
#define AD_G 4       /* query heads a pass serves */
#define AD_WPB 4
#define AD_MERGE_MAX 4096

struct dec_p {
    const float *q;
    const uint8_t *k, *v;
    size_t kb, vb;
    int T, H, gs, h0, nh;
    int pos0;
    const int *dpos;        /* non-NULL: pos0 = *dpos */
    int cap;                /* most chunks (the grid holds at least the chunks this gives) */
    float scale;
    int rot_q, rot_o;       /* Hadamard-rotate each query head first / each output head back */
    float *pm, *pl, *pacc, *out;
};

/* x[h][0..128) of AD_G heads in shared memory, Walsh-Hadamard butterflies as k_hadamard
 * does them (the whole block; the caller synchronizes before) */
__device__ __forceinline__ void ad_butterflies(float (*x)[AD_HD]) {
    for (int hs = 1; hs < AD_HD; hs *= 2) {
        for (int k = threadIdx.x; k < AD_G * AD_HD / 2; k += blockDim.x) {
            const int h = k / (AD_HD / 2), kk = k % (AD_HD / 2);
            const int j = (kk / hs) * 2 * hs + (kk % hs);
            float a = x[h][j], c = x[h][j + hs];
            x[h][j] = a + c;
            x[h][j + hs] = a - c;
        }
        __syncthreads();
    }
}

/* a warp's head of 128 values, lane l holding 4l..4l+3: the inverse rotation (butterflies,
 * then norm and signs, as k_hadamard's inverse) */
__device__ __forceinline__ void ad_unrotate4(float *v) {
    const int lane = threadIdx.x & 31;
    float a;
    a = v[0]; v[0] = a + v[1]; v[1] = a - v[1];
    a = v[2]; v[2] = a + v[3]; v[3] = a - v[3];
    a = v[0]; v[0] = a + v[2]; v[2] = a - v[2];
    a = v[1]; v[1] = a + v[3]; v[3] = a - v[3];
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
        const bool upper = lane & o;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float other = __shfl_xor_sync(0xffffffffu, v[j], o);
            v[j] = upper ? other - v[j] : v[j] + other;
        }
    }
    const float norm = 1.0f / sqrtf((float)AD_HD);
#pragma unroll
    for (int j = 0; j < 4; j++) v[j] = v[j] * (norm * cuda_sign_at(4 * lane + j));
}

__host__ __device__ __forceinline__ void ad_chunks(int n_cells, int cap, int *cpc, int *nch) {
    int c = (n_cells + 63) / 64;
    if (c > cap) c = cap;
    if (c < 1) c = 1;
    int p = (n_cells + c - 1) / c;
    p = (p + 31) / 32 * 32;
    *cpc = p;
    *nch = (n_cells + p - 1) / p;
}

/* HB: bytes of one head's vector; S: its stride in shared memory, an odd number of words for
 * the block types (lanes on cells hit different banks), 8-byte aligned for f16 (read as
 * 8-byte pieces) */
template <int T> struct ad_type { enum { HB = AD_HD / qinfo<T>::B * qinfo<T>::BYTES,
                                         S = qinfo<T>::B == 1 ? HB + 8 : (HB / 4) % 2 == 0 ? HB + 4 : HB }; };

template <int TK, int TV>
__global__ void __launch_bounds__(32 * AD_WPB) k_attn_dec(dec_p p) {
    constexpr int KB = ad_type<TK>::HB, VB = ad_type<TV>::HB, KS = ad_type<TK>::S, VS = ad_type<TV>::S;
    constexpr int KW = KB / 8, VW = VB / 8;
    /* the next tile's loads are issued before the current one is worked on, where the
     * registers for it are few (the block types; f16 tiles take 128 registers) */
    constexpr bool PF = KW + VW <= 40;
    extern __shared__ __align__(16) uint8_t ad_sh[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    float (*q)[AD_HD] = (float (*)[AD_HD])ad_sh;                 /* the block's (token, KV head) */
    uint8_t *tiles = ad_sh + AD_G * AD_HD * 4;
    uint8_t *ks = tiles + (size_t)wid * 32 * (KS + VS), *vs = ks + 32 * KS;
    const int g = blockIdx.x, t = blockIdx.y;
    const int chunk = blockIdx.z * AD_WPB + wid;
    const int pos0 = p.dpos ? *p.dpos : p.pos0;
    const int n_cells = pos0 + p.T;
    int cpc, nch;
    ad_chunks(n_cells, p.cap, &cpc, &nch);
    const int nchb = (nch + AD_WPB - 1) / AD_WPB;   /* chunk blocks: what the block writes */
    if ((int)blockIdx.z >= nchb) return;             /* the whole block */
    for (int i = threadIdx.x; i < AD_G * AD_HD; i += blockDim.x) {
        const int h = i / AD_HD, d = i % AD_HD;
        const float x = h < p.nh ? p.q[((size_t)t * p.H + g * p.gs + p.h0 + h) * AD_HD + d] : 0.0f;
        q[h][d] = p.rot_q ? x * cuda_sign_at(d) : x * p.scale;
    }
    __syncthreads();
    if (p.rot_q) {
        /* the rotation gpu_hadamard would have done to the query, then the scale */
        ad_butterflies(q);
        const float norm = 1.0f / sqrtf((float)AD_HD);
        for (int i = threadIdx.x; i < AD_G * AD_HD; i += blockDim.x) {
            float x = q[i / AD_HD][i % AD_HD] * norm;
            q[i / AD_HD][i % AD_HD] = x * p.scale;
        }
        __syncthreads();
    }
    int c0 = chunk * cpc, c1 = c0 + cpc;
    if (c1 > pos0 + t + 1) c1 = pos0 + t + 1;
    if (chunk >= nch) c1 = c0;   /* an idle warp of the last block */
    float acc[AD_G][4], m[AD_G], l[AD_G];
#pragma unroll
    for (int h = 0; h < AD_G; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) acc[h][j] = 0.0f;
    }
    const uint8_t *kbase = p.k + (size_t)g * KB, *vbase = p.v + (size_t)g * VB;
    uint2 kr[KW], vr[VW];
    /* a tile's 8-byte words, (cell, word) flattened over the lanes */
    auto load = [&](int cb, int n) {
#pragma unroll
        for (int i = 0; i < KW; i++) {
            const int idx = lane + 32 * i, c = idx / KW, w = idx % KW;
            if (c < n) kr[i] = __ldcs((const uint2 *)(kbase + (size_t)cb * p.kb + (unsigned)(c * (unsigned)p.kb + 8 * w)));
        }
#pragma unroll
        for (int i = 0; i < VW; i++) {
            const int idx = lane + 32 * i, c = idx / VW, w = idx % VW;
            if (c < n) vr[i] = __ldcs((const uint2 *)(vbase + (size_t)cb * p.vb + (unsigned)(c * (unsigned)p.vb + 8 * w)));
        }
    };
    auto store = [&](int n) {
#pragma unroll
        for (int i = 0; i < KW; i++) {
            const int idx = lane + 32 * i, c = idx / KW, w = idx % KW;
            if (c < n) { uint32_t *d = (uint32_t *)(ks + c * KS + 8 * w); d[0] = kr[i].x; d[1] = kr[i].y; }
        }
#pragma unroll
        for (int i = 0; i < VW; i++) {
            const int idx = lane + 32 * i, c = idx / VW, w = idx % VW;
            if (c < n) { uint32_t *d = (uint32_t *)(vs + c * VS + 8 * w); d[0] = vr[i].x; d[1] = vr[i].y; }
        }
    };
    if (PF && c0 < c1) load(c0, c1 - c0 < 32 ? c1 - c0 : 32);
    for (int cb = c0; cb < c1; cb += 32) {
        const int n = c1 - cb < 32 ? c1 - cb : 32;
        if (!PF) load(cb, n);
        store(n);
        __syncwarp();
        if (PF && cb + 32 < c1) load(cb + 32, c1 - cb - 32 < 32 ? c1 - cb - 32 : 32);
        const bool live = lane < n;
        float s[AD_G];
#pragma unroll
        for (int h = 0; h < AD_G; h++) s[h] = 0.0f;
        if (live) {
            const uint8_t *kc = ks + lane * KS;
#pragma unroll 2
            for (int d = 0; d < AD_HD; d += 4) {
                float kv[4];
                dq4<TK>(kc, d, kv);
#pragma unroll
                for (int h = 0; h < AD_G; h++)
                    s[h] += q[h][d] * kv[0] + q[h][d + 1] * kv[1] + q[h][d + 2] * kv[2] + q[h][d + 3] * kv[3];
            }
        }
        float w[AD_G];
#pragma unroll
        for (int h = 0; h < AD_G; h++) {
            if (h >= p.nh) { w[h] = 0.0f; continue; }
            float mx = warp_max(live ? s[h] : -INFINITY);
            float mn = fmaxf(m[h], mx);
            float r = __expf(m[h] - mn);
            w[h] = live ? __expf(s[h] - mn) : 0.0f;
            l[h] = l[h] * r + warp_sum(w[h]);
#pragma unroll
            for (int j = 0; j < 4; j++) acc[h][j] *= r;
            m[h] = mn;
        }
        for (int k = 0; k < n; k++) {
            float vv[4];
            dq4<TV>(vs + k * VS, 4 * lane, vv);
#pragma unroll
            for (int h = 0; h < AD_G; h++) {
                float wk = __shfl_sync(0xffffffffu, w[h], k);
#pragma unroll
                for (int j = 0; j < 4; j++) acc[h][j] += wk * vv[j];
            }
        }
        __syncwarp();
    }
    /* the block's warps merged in shared memory (the tiles are free now): warp h takes head h */
    __syncthreads();
    float *sm = (float *)tiles;                          /* [warp][head]: m, l */
    float *sa = sm + 2 * AD_WPB * AD_G;                  /* [warp][head][128] */
#pragma unroll
    for (int h = 0; h < AD_G; h++) {
        if (lane == 0) { sm[2 * (wid * AD_G + h)] = m[h]; sm[2 * (wid * AD_G + h) + 1] = l[h]; }
        ((float4 *)(sa + (size_t)(wid * AD_G + h) * AD_HD))[lane] = make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
    }
    __syncthreads();
    for (int h = wid; h < p.nh; h += AD_WPB) {
        float mx = -INFINITY;
#pragma unroll
        for (int k = 0; k < AD_WPB; k++) mx = fmaxf(mx, sm[2 * (k * AD_G + h)]);
        float L = 0.0f;
        float4 A = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int k = 0; k < AD_WPB; k++) {
            const float lk = sm[2 * (k * AD_G + h) + 1];
            const float e = lk > 0.0f ? __expf(sm[2 * (k * AD_G + h)] - mx) : 0.0f;
            const float4 a = ((const float4 *)(sa + (size_t)(k * AD_G + h) * AD_HD))[lane];
            L += lk * e;
            A.x += a.x * e; A.y += a.y * e; A.z += a.z * e; A.w += a.w * e;
        }
        const int hh = g * p.gs + p.h0 + h;
        if (nchb == 1) {
            const float inv = L > 0.0f ? 1.0f / L : 0.0f;
            float o[4] = { A.x * inv, A.y * inv, A.z * inv, A.w * inv };
            if (p.rot_o) ad_unrotate4(o);
            ((float4 *)(p.out + ((size_t)t * p.H + hh) * AD_HD))[lane] = make_float4(o[0], o[1], o[2], o[3]);
        } else {
            const size_t st = ((size_t)blockIdx.z * p.T + t) * p.H + hh;
            if (lane == 0) { p.pm[st] = mx; p.pl[st] = L; }
            ((float4 *)(p.pacc + st * AD_HD))[lane] = A;
        }
    }
}

/* the chunks' partial states merged: a block per (token, head) */
__global__ void __launch_bounds__(128) k_attn_dec_merge(dec_p p) {
    __shared__ float wsh[AD_MERGE_MAX];
    __shared__ float red[4];
    const int pos0 = p.dpos ? *p.dpos : p.pos0;
    int cpc, nch;
    ad_chunks(pos0 + p.T, p.cap, &cpc, &nch);
    nch = (nch + AD_WPB - 1) / AD_WPB;   /* partial states: one per block of chunks */
    if (nch == 1) return;   /* the attention kernel wrote the output */
    const int th = blockIdx.x, lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const size_t cs = (size_t)p.T * p.H;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < nch; c += blockDim.x) mx = fmaxf(mx, p.pm[c * cs + th]);
    mx = warp_max(mx);
    if (lane == 0) red[wid] = mx;
    __syncthreads();
    mx = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();
    float ls = 0.0f;
    for (int c = threadIdx.x; c < nch; c += blockDim.x) {
        float l = p.pl[c * cs + th];
        float w = l > 0.0f ? __expf(p.pm[c * cs + th] - mx) : 0.0f;
        wsh[c] = w;
        ls += l * w;
    }
    ls = warp_sum(ls);
    if (lane == 0) red[wid] = ls;
    __syncthreads();
    ls = red[0] + red[1] + red[2] + red[3];
    const float inv = ls > 0.0f ? 1.0f / ls : 0.0f;
    const int i = threadIdx.x;   /* 128 threads: one value each */
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int c = 0;
    for (; c + 4 <= nch; c += 4) {
        s0 += wsh[c] * p.pacc[((c + 0) * cs + th) * AD_HD + i];
        s1 += wsh[c + 1] * p.pacc[((c + 1) * cs + th) * AD_HD + i];
        s2 += wsh[c + 2] * p.pacc[((c + 2) * cs + th) * AD_HD + i];
        s3 += wsh[c + 3] * p.pacc[((c + 3) * cs + th) * AD_HD + i];
    }
    for (; c < nch; c++) s0 += wsh[c] * p.pacc[(c * cs + th) * AD_HD + i];
    const float o = ((s0 + s1) + (s2 + s3)) * inv;
    if (!p.rot_o) {
        p.out[(size_t)th * AD_HD + i] = o;
        return;
    }
    /* the head rotated back, as k_hadamard's inverse */
    __shared__ float hv[AD_HD];
    hv[i] = o;
    __syncthreads();
    for (int hs = 1; hs < AD_HD; hs *= 2) {
        for (int k = threadIdx.x; k < AD_HD / 2; k += blockDim.x) {
            const int j = (k / hs) * 2 * hs + (k % hs);
            float a = hv[j], cc = hv[j + hs];
            hv[j] = a + cc;
            hv[j + hs] = a - cc;
        }
        __syncthreads();
    }
    const float norm = 1.0f / sqrtf((float)AD_HD);
    p.out[(size_t)th * AD_HD + i] = hv[i] * (norm * cuda_sign_at(i));
}

static int ad_type_ok(int t) { return t == QT_F16 || t == QT_Q8_0 || t == QT_Q4_0; }

int cuda_attn_dec_ok(const attn_args *a) {
    return a->T >= 1 && a->T <= 8 && a->head_dim == AD_HD && !a->k_row_rot && !a->v_row_rot && ad_type_ok(a->type_k) &&
           ad_type_ok(a->type_v) && a->k_row_bytes % 8 == 0 && a->v_row_bytes % 8 == 0 && ((uintptr_t)a->k & 7) == 0 &&
           ((uintptr_t)a->v & 7) == 0 && a->n_head % a->n_head_kv == 0;
}

template <int TK, int TV> static size_t ad_smem() {
    size_t tiles = (size_t)AD_WPB * 32 * (ad_type<TK>::S + ad_type<TV>::S);
    size_t merge = sizeof(float) * AD_WPB * AD_G * (2 + AD_HD);
    return AD_G * AD_HD * 4 + (tiles > merge ? tiles : merge);
}

template <int TK, int TV> static cudaError_t ad_launch(const dec_p &p, dim3 grid, cudaStream_t s) {
    /* the shared-memory limit is raised once per card (a function attribute is per device) */
    static unsigned long long attr_set;
    const size_t sh = ad_smem<TK, TV>();
    int dev = 0;
    if (sh > 48 * 1024 && cudaGetDevice(&dev) == cudaSuccess && (dev >= 64 || !(attr_set >> dev & 1))) {
        cudaError_t e = cudaFuncSetAttribute(k_attn_dec<TK, TV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sh);
        if (e != cudaSuccess) return e;
        if (dev < 64) attr_set |= 1ull << dev;
    }
    k_attn_dec<TK, TV><<<grid, 32 * AD_WPB, sh, s>>>(p);
    return cudaGetLastError();
}

#define AD_V(tk)                                                        \
    switch (tv) {                                                       \
    case QT_F16: return ad_launch<tk, QT_F16>(p, grid, s);              \
    case QT_Q8_0: return ad_launch<tk, QT_Q8_0>(p, grid, s);            \
    case QT_Q4_0: return ad_launch<tk, QT_Q4_0>(p, grid, s);            \
    default: return cudaErrorInvalidValue;                              \
    }

static cudaError_t ad_dispatch(int tk, int tv, const dec_p &p, dim3 grid, cudaStream_t s) {
    switch (tk) {
    case QT_F16: AD_V(QT_F16)
    case QT_Q8_0: AD_V(QT_Q8_0)
    case QT_Q4_0: AD_V(QT_Q4_0)
    default: return cudaErrorInvalidValue;
    }
}

int cuda_attn_dec(gpu_ctx *g, const attn_args *a, const int *dpos, int cap_cells, int rot_q, int rot_o) {
    const int H = a->n_head, G = a->n_head_kv, T = a->T;
    dec_p p;
    memset(&p, 0, sizeof p);
    p.q = a->q; p.k = a->k; p.v = a->v; p.kb = a->k_row_bytes; p.vb = a->v_row_bytes;
    p.T = T; p.H = H; p.gs = H / G; p.pos0 = a->pos0; p.dpos = dpos; p.scale = a->scale; p.out = a->out;
    p.rot_q = rot_q; p.rot_o = rot_o;
    /* enough warps to fill the card: about 24 per multiprocessor */
    long want = 24L * g->sm_count / ((long)T * G);
    if (want > (long)AD_WPB * AD_MERGE_MAX) want = (long)AD_WPB * AD_MERGE_MAX;
    p.cap = want < 1 ? 1 : (int)want;
    /* the grid covers the chunks of the most cells this launch may see */
    int cpc, nch;
    ad_chunks(dpos ? cap_cells : a->n_cells, p.cap, &cpc, &nch);
    const int nchb = (nch + AD_WPB - 1) / AD_WPB;
    if (nchb > 1 || dpos) {
        size_t nst = (size_t)nchb * T * H;
        float *buf = (float *)cuda_scratch(g, SCR_ATTN_PART, sizeof(float) * (nst * 2 + nst * AD_HD));
        if (!buf) return -1;
        p.pm = buf; p.pl = buf + nst; p.pacc = buf + 2 * nst;
    }
    dim3 grid(G, T, nchb);
    for (p.h0 = 0; p.h0 < p.gs; p.h0 += AD_G) {
        p.nh = p.gs - p.h0 < AD_G ? p.gs - p.h0 : AD_G;
        cudaError_t e = ad_dispatch(a->type_k, a->type_v, p, grid, g->stream);
        if (e != cudaSuccess) return cuda_fail(g, "decode attention", e);
    }
    if (nchb > 1 || dpos) {
        k_attn_dec_merge<<<T * H, 128, 0, g->stream>>>(p);
        CU_LAUNCHED(g);
    }
    return 0;
}

extern "C" int gpu_attn_pos_ok(const attn_args *a, int flash) { return flash && a->T < 32 && cuda_attn_dec_ok(a); }

extern "C" int gpu_attn_rot(gpu_ctx *g, const attn_args *a, int flash, int rot_q, int rot_o) {
    if (flash && !cuda_attn_gemm_ok(a) && cuda_attn_dec_ok(a))
        return cuda_attn_dec(g, a, g->pos_on ? g->dpos : NULL, g->cap_cells, rot_q, rot_o);
    if (rot_q && gpu_hadamard(g, (float *)a->q, a->T * a->n_head, a->head_dim, 0)) return -1;
    if (gpu_attn(g, a, flash)) return -1;
    return rot_o ? gpu_hadamard(g, a->out, a->T * a->n_head, a->head_dim, 1) : 0;
}
