/* Decode matrix-vector products for q8_0 weights on 8-bit activations.
 *
 * A q8_0 row as stored in GGUF is 34-byte blocks (f16 scale, 32 int8), only 2-byte aligned,
 * so a lane cannot read its values with wide loads. At upload every q8_0 matrix whose rows
 * are a multiple of 256 values is rearranged on the card, row by row and in place: the
 * row's int8 values first (ne0 bytes, 16-byte aligned), then its ne0/32 f16 scales. The row
 * keeps its size, so row addressing does not change (wtensor.layout = WL_Q8_SPLIT).
 *
 * The activation is quantized as the CPU's integer kernels do (per 32 values: d = amax/127
 * rounded to f16, q = round(x * 127 / amax)), and each lane multiplies 16 weight bytes by 16 activation bytes with
 * four dp4a per 16-byte load: no int-to-float conversion per weight, which is what held the
 * float kernel at ~1.5 TB/s. */
#include "backend/cuda/mv8.cuh"
#include "backend/cuda/quantize.cuh"

extern "C" {
#include "kv/kv.h"
}

#include <limits.h>
#include <stdlib.h>

#define MV8_WARPS 8
/* MV8_U: 16-byte loads a lane has in flight per step (HEARTH_MV8_U=8 picks 8, for measuring:
 * one H200 run with 8 was slower, not compared in the same call) */

/* one block per row: the row through shared memory, values first, then the scales */
__global__ void k_q8_split(uint8_t *W, size_t rb, int ne0) {
    extern __shared__ uint8_t rs[];
    uint8_t *row = W + (size_t)blockIdx.x * rb;
    const int nb = ne0 / 32;
    for (int i = threadIdx.x; i < (int)(rb / 2); i += blockDim.x) ((uint16_t *)rs)[i] = ((const uint16_t *)row)[i];
    __syncthreads();
    for (int i = threadIdx.x; i < ne0; i += blockDim.x) row[i] = rs[(i >> 5) * 34 + 2 + (i & 31)];
    for (int b = threadIdx.x; b < nb; b += blockDim.x)
        ((uint16_t *)(row + ne0))[b] = *(const uint16_t *)(rs + (size_t)b * 34);
}

int cuda_q8_split_ok(const wtensor *w) {
    return w->type == QT_Q8_0 && w->ne0 % 256 == 0 && w->row_bytes == (size_t)w->ne0 / 32 * 34 &&
           w->row_bytes <= 200 * 1024 && ((uintptr_t)w->data & 15) == 0;
}

extern "C" int gpu_weight_layout(int dev, wtensor *w, char *err, size_t errlen) {
    if (!cuda_q8_split_ok(w)) return 0;
    cudaError_t e = cudaSetDevice(gpu_phys(dev));
    if (e == cudaSuccess && w->row_bytes > 48 * 1024)
        e = cudaFuncSetAttribute(k_q8_split, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)w->row_bytes);
    if (e == cudaSuccess) {
        k_q8_split<<<(unsigned)w->ne1, 256, w->row_bytes>>>((uint8_t *)w->data, w->row_bytes, (int)w->ne0);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        snprintf(err, errlen, "rearranging q8_0 weights on GPU %d: %s", dev, cudaGetErrorString(e));
        return -1;
    }
    w->layout = WL_Q8_SPLIT;
    return 0;
}

/* a warp per 32 values: xq[t] = int8 values (ne0), then ne0/32 float scales */
__global__ void k_quant_act(const float *__restrict__ x, int ne0, int T, int8_t *__restrict__ xq, size_t xs) {
    pdl_wait();
    pdl_next();
    const int nb = ne0 >> 5;
    const size_t gw = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (gw >= (size_t)T * nb) return;
    const int t = (int)(gw / nb), b = (int)(gw % nb);
    q8_store32(x[(size_t)t * ne0 + 32 * b + (threadIdx.x & 31)], xq + (size_t)t * xs, ne0, 32 * b);
}

size_t cuda_act_stride(int ne0) { return ((size_t)ne0 + 4 * (size_t)(ne0 / 32) + 15) & ~(size_t)15; }

int cuda_quant_act(gpu_ctx *g, const float *x, int ne0, int T, int8_t **xq) {
    size_t xs = cuda_act_stride(ne0);
    int8_t *buf = (int8_t *)cuda_scratch(g, SCR_XQ, xs * (size_t)T);
    if (!buf) return -1;
    size_t warps = (size_t)T * (ne0 / 32);
    CU(g, cuda_launch(g, k_quant_act, dim3(cuda_blocks(warps * 32, 256)), dim3(256), 0, x, ne0, T, buf, xs));
    *xq = buf;
    return 0;
}

__device__ __forceinline__ int dot16(int4 a, int4 b) {
    int s = __dp4a(a.x, b.x, 0);
    s = __dp4a(a.y, b.y, s);
    s = __dp4a(a.z, b.z, s);
    return __dp4a(a.w, b.w, s);
}

/* row r of the set (numbered through its matrices): its bytes, matrix and row in it; NULL past the end */
__device__ __forceinline__ const uint8_t *set_row(const mv_set &ms, int r, int *m, int *lr) {
    int k = 0;
    if (r >= ms.rows[0]) { r -= ms.rows[0]; k = 1; if (r >= ms.rows[1]) { r -= ms.rows[1]; k = 2; } }
    *m = k;
    *lr = r;
    if (k == 2 && r >= ms.rows[2]) return NULL;
    return (k == 0 ? ms.w[0] : k == 1 ? ms.w[1] : ms.w[2]) + (size_t)r * ms.rb;
}

/* a warp per row (rows numbered through the set's matrices); lanes on 16-value pieces, so a
 * warp step reads 512 contiguous weight bytes, MV8_U steps in flight */
template <int NT, int MV8_U>
__global__ void __launch_bounds__(32 * MV8_WARPS) k_mv_q8s(mv_set ms, int ne0, const int8_t *__restrict__ xq, size_t xs, int nt) {
    const int lane = threadIdx.x & 31;
    int m, r;
    const uint8_t *row = set_row(ms, blockIdx.x * MV8_WARPS + (threadIdx.x >> 5), &m, &r);
    if (!row) return;
    float *y = m == 0 ? ms.y[0] : m == 1 ? ms.y[1] : ms.y[2];
    const int ldy = m == 0 ? ms.rows[0] : m == 1 ? ms.rows[1] : ms.rows[2];
    const __half *dw = (const __half *)(row + ne0);
    /* the first step's weights on their way to L2 while the kernel before finishes */
#pragma unroll
    for (int u = 0; u < MV8_U; u++)
        if (512 * u + 16 * lane < ne0) asm volatile("prefetch.global.L2 [%0];" ::"l"(row + 512 * u + 16 * lane));
    pdl_wait();
    pdl_next();
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int base = 0; base < ne0; base += 512 * MV8_U) {
        int4 w[MV8_U];
        float d[MV8_U];
#pragma unroll
        for (int u = 0; u < MV8_U; u++) {
            const int i = base + 512 * u + 16 * lane;
            if (i < ne0) {
                w[u] = __ldcs((const int4 *)(row + i));
                d[u] = __half2float(dw[i >> 5]);
            } else {
                w[u] = make_int4(0, 0, 0, 0);
                d[u] = 0.0f;
            }
        }
#pragma unroll
        for (int u = 0; u < MV8_U; u++) {
            const int i = base + 512 * u + 16 * lane;
            if (i < ne0) {
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < nt) {
                        const int8_t *xt = xq + (size_t)t * xs;
                        int s = dot16(w[u], __ldg((const int4 *)(xt + i)));
                        acc[t] += d[u] * __ldg((const float *)(xt + ne0) + (i >> 5)) * (float)s;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt) {
            float s = warp_sum(acc[t]);
            if (lane == 0) y[(size_t)t * ldy + r] = s;
        }
    }
}

int8_t *cuda_q_take(gpu_ctx *g, int n, int T, size_t *xs) {
    g->xq_src = NULL;
    g->xq_ss = NULL;
    if (!g->q_next) return NULL;
    g->q_next = 0;
    if (n % 256 || T < 1 || T > 8) return NULL;
    *xs = cuda_act_stride(n);
    return (int8_t *)cuda_scratch(g, SCR_XQ, *xs * (size_t)T);
}

extern "C" void gpu_quant_next(gpu_ctx *g, const wtensor *w, int T) {
    g->q_next = w->layout == WL_Q8_SPLIT && T >= 1 && T <= 8;
    g->q_rows = (int)w->ne0;
}

/* x already as 8-bit activations (its producer made them), else NULL. Activations made
 * without the norm's scale (gpu_matmul_norm) go only to a reader that takes ss (the groups'
 * sums of squares; *ss is NULL for plain ones); for any other the floats are made. */
static const int8_t *mv8_made(gpu_ctx *g, const float *x, int ne0, int T, const float **ss = NULL) {
    /* HEARTH_NORM_FLOATS=1 (test_gpu): every reader as one that needs the floats */
    if (ss && g->xq_ss && getenv("HEARTH_NORM_FLOATS")) ss = NULL;
    if (ss) *ss = NULL;
    if (g->xq_ss && g->xq_src == x &&
        !(ss && g->xq_T == T && g->xq_buf && g->xq_bytes >= cuda_act_stride(ne0) * (size_t)T)) {
        cuda_norm_floats(g, x);
        return NULL;
    }
    const int8_t *xq = g->xq_src == x && g->xq_T == T && g->xq_buf && g->xq_bytes >= cuda_act_stride(ne0) * (size_t)T
                           ? g->xq_buf : NULL;
    if (xq && ss) *ss = g->xq_ss;
    g->xq_src = NULL;
    g->xq_ss = NULL;
    return xq;
}

/* x as 8-bit activations: what its producer wrote, or quantized now; NULL on failure */
static const int8_t *mv8_input(gpu_ctx *g, const float *x, int ne0, int T) {
    const int8_t *made = mv8_made(g, x, ne0, T);
    int8_t *xq = NULL;
    if (made) return made;
    return cuda_quant_act(g, x, ne0, T, &xq) ? NULL : xq;
}

/* ---- one token ----
 *
 * k_mv2 (plain products, and q, k, v with RoPE): a block takes R rows and its 8 warps read
 * consecutive 512-byte pieces of them, warp w pieces w, w + 8, ..., so a step's loads of a
 * block are one 4 KB stretch per row; partial sums meet in shared memory. One warp per
 * whole row (k_mv_q8s) reads 2 KB stretches of eight rows at once, which one H100 ncu run
 * measured at 1.87 TB/s on the 14336-wide down product against 2.27 for this (27.5 µs
 * against 33.5; the 4096-wide ones alike either way). Needs ne0 % 512 == 0. An x no
 * producer quantized (the attention output) is quantized by each block into shared
 * memory, which saves the k_quant_act launch. For q, k, v it can also store K and V into the
 * cache (gpu_matmul_rope_store; kv_quant_tail), which saves the store kernel.
 *
 * k_mv_swiglu (gate and up, SwiGLU, its 8-bit output): a warp owns the gate and up rows of
 * two outputs and walks them in chunks of 512 * U values; the next chunk's loads (the next
 * outputs' first chunk at the end) are issued before the current chunk's arithmetic. A
 * block's 16 warps make 32 consecutive outputs, which its first warp quantizes for the
 * down product; the grid is what fits the card at once, blocks striding over the rest.
 *
 * Both load their first weights before pdl_wait: weights do not depend on the kernel
 * before. */

/* RoPE on the rows of matrices 0 and 1 of a set (q and k; heads of hd values), at position
 * *dpos when given, else pos0, as k_rope2 computes it */
struct rope_args {
    const int *dpos;
    float pos0, base, freq_scale;
    const float *ff;
    int hd, n_rot;
};

/* 16 float activations of a lane (lanes 2k and 2k + 1 hold a 32-value block) as 8-bit
 * ones and their block's scale, exactly as k_quant_act makes them */
__device__ __forceinline__ void quant16(const float *__restrict__ x, int4 *q, float *scale) {
    float v[16];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float4 f = __ldg((const float4 *)x + k);
        v[4 * k] = f.x; v[4 * k + 1] = f.y; v[4 * k + 2] = f.z; v[4 * k + 3] = f.w;
    }
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < 16; k++) amax = fmaxf(amax, fabsf(v[k]));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    const float id = q8_inv(amax);
    int b[4] = { 0, 0, 0, 0 };
#pragma unroll
    for (int k = 0; k < 16; k++) b[k >> 2] |= (__float2int_rn(v[k] * id) & 0xff) << (8 * (k & 3));
    *q = make_int4(b[0], b[1], b[2], b[3]);
    *scale = q8_scale(amax);
}

/* the scale of a norm over n values from the sums of squares of its n / 32 groups (a
 * whole warp; every lane gets it) */
__device__ __forceinline__ float ss_scale(const float *ss, int n, float eps) {
    float s = 0.0f;
    for (int i = threadIdx.x & 31; i < n / 32; i += 32) s += ss[i];
    s = warp_sum(s);
    return (float)(1.0 / sqrt((double)s / n + eps));
}

/* x (ne0 floats) as 8-bit activations in shared memory sx (cuda_act_stride(ne0) bytes), by
 * the block's threads, 16 values each a step (whole warps: ne0 % 512 == 0; lane =
 * threadIdx.x % 32); the caller syncs before reading */
__device__ __forceinline__ void quant_block(const float *xf, int8_t *sx, int ne0, int lane) {
    for (int i = 16 * threadIdx.x; i < ne0; i += 16 * blockDim.x) {
        int4 q;
        float sc;
        quant16(xf + i, &q, &sc);
        *(int4 *)(sx + i) = q;
        if ((lane & 1) == 0) ((float *)(sx + ne0))[i >> 5] = sc;
    }
}

/* The cache store of a q, k, v product (gpu_matmul_rope_store): K and V rows (matrices 1
 * and 2) into one cell of a layer's cache, as k_store_rows (kv.cu) stores them. */
struct kv_args {
    uint8_t *dk, *dv;     /* the layer's cell 0 */
    size_t kb, vb;
    const float *mu;      /* K's offsets (a quantized K), or NULL */
    int *cnt;             /* a counter a unit (K's units, then V's), zero between launches */
    const int *dpos;      /* the cell: *dpos when given, else pos0 */
    int pos0;
    int unit;             /* values quantized together: whole Hadamard chunks and 32-value
                           * blocks, at most 256, a multiple of R (a block's rows are in one) */
    int b;                /* Hadamard chunk (1: no rotation) */
    int in_order;         /* HEARTH_QKV_IN_ORDER=1 (measuring): q's blocks first, as without the
                           * store (H200 q8_0: -1.4% at 0 cells, -2.5% at 1024, against K and V first) */
};

/* A block's part of a block-type store, after its rows are written to y (all its threads
 * call it). A unit's rows come from n / R blocks; the last of them to finish (its writes and
 * theirs fenced before the count on cnt; the counter left at 0 for the next launch) reads the
 * unit (src, n values) back from L2 and rotates, subtracts mu (NULL: none) and quantizes it
 * into dst in k_store_rows's steps, so the rows are bit for bit the same: sign flips and the
 * first five butterfly stages in shuffles, the rest in shared memory, the 1/sqrt(b) scale,
 * mu, w_quant_block a warp a 32-value block. Not inlined, so the scale search's registers
 * stay out of the product's loop; its arguments are scalars, as a struct passed by
 * reference would be copied to local memory by every thread at the kernel's start (56 MB
 * of writes a launch for Mistral-7B's q, k, v: +15 us). */
template <int ST, int R>
__device__ __noinline__ void kv_quant_tail(int *cnt, const float *src, const float *mu, uint8_t *dst, int n, int b) {
    const int t = threadIdx.x;
    __shared__ int last;
    __shared__ float xs[256];
    if (t < R) __threadfence();   /* the block's writers */
    __syncthreads();
    if (t == 0) {
        last = atomicAdd(cnt, 1) == n / R - 1;
        if (last) *cnt = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    float x = t < n ? __ldcg(src + t) : 0.0f;
    if (b > 1) {
        x *= cuda_sign_at(t % b);   /* the unit starts at a multiple of b */
        for (int h = 1; h < b && h < 32; h *= 2) x = hadamard_xor(x, h);
        if (b > 32) {
            if (t < n) xs[t] = x;
            __syncthreads();
            for (int h = 32; h < b; h *= 2) {
                for (int k = t; k < n / 2; k += blockDim.x) {
                    const int chunk = k / (b / 2), kk = k % (b / 2);
                    const int j = chunk * b + (kk / h) * 2 * h + (kk % h);
                    const float a = xs[j], c = xs[j + h];
                    xs[j] = a + c;
                    xs[j + h] = a - c;
                }
                __syncthreads();
            }
            x = t < n ? xs[t] : 0.0f;
        }
        x *= 1.0f / sqrtf((float)b);
    }
    if (mu && t < n) x -= mu[t];
    if (t < n) w_quant_block<ST, true>(x, dst + (size_t)(t >> 5) * qinfo<ST>::BYTES);
}

/* FX: x as floats (xf), quantized by the block into shared memory (cuda_act_stride(ne0)
 * bytes) instead of by a k_quant_act launch. SS: xq is res ⊙ w before its norm's scale,
 * which the outputs take from ss (gpu_matmul_norm). ST >= 0: K and V stored into the cache,
 * of that type (the end of the kernel). The variants with the store come to 63 registers
 * (nvcc 13.0, sm_90), so 4 blocks an SM as without it; small changes to the store's code
 * have given 70 (3 blocks an SM) or, held to 64, spills in the loop (q8_0 -1.7 us a layer):
 * check --resource-usage after a change. */
template <int R, bool ROPE, bool FX, bool SS = false, int ST = -1>
__global__ void __launch_bounds__(256) k_mv2(mv_set ms, int ne0, const int8_t *__restrict__ xq, const float *__restrict__ xf,
                                             rope_args ra, const float *ss, float eps, kv_args ks) {
    __shared__ float part[8][R], fin[R];
    extern __shared__ int4 sx4[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, np = ne0 >> 9;
    /* with the store, K's and V's blocks first: their units' last blocks quantize while
     * q's rows still stream */
    const int bx = ST >= 0 && !ks.in_order ? (int)((blockIdx.x + ms.rows[0] / R) % gridDim.x) : (int)blockIdx.x;
    const uint8_t *row[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        int m, lr;
        row[r] = set_row(ms, bx * R + r, &m, &lr);
    }
    int4 w[R];
    __half d[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int i = 512 * wid + 16 * lane;
        w[r] = row[r] && wid < np ? __ldcs((const int4 *)(row[r] + i)) : make_int4(0, 0, 0, 0);
        d[r] = row[r] && wid < np ? ((const __half *)(row[r] + ne0))[i >> 5] : __ushort_as_half(0);
    }
    pdl_wait();
    /* With the store (ST), the kernel after is the decode attention, which lets the product
     * after it in at once (attn_dec.cu): let in at the start, that product's blocks (a whole
     * multiprocessor each) took half the card from this kernel's last round (q8_0 at depth 0:
     * q, k, v ended 25 us after down instead of 11, H200). So it comes in once the loops are
     * done. */
    if (ST < 0) pdl_next();
    float nsc = 1.0f;
    if (SS && wid == 0) nsc = ss_scale(ss, ne0, eps);
    /* this thread's output row and, with RoPE, its rotation (the trigonometry overlaps the
     * loads in flight) */
    const int t = threadIdx.x;
    int mo = 0, ro = 0;
    const bool out = t < R && set_row(ms, bx * R + t, &mo, &ro);
    float c = 1.0f, sn = 0.0f;
    const bool rot = ROPE && out && mo < 2 && (ro % ra.hd) < ra.n_rot;
    if (rot) {
        /* rows 2j and 2j + 1 (of one matrix: q and k have even rows, R is even) are a pair */
        const int p = (ro % ra.hd) / 2;
        rope_angle(ra.dpos ? (float)*ra.dpos : ra.pos0, p, ra.n_rot, ra.base, ra.freq_scale, ra.ff, &c, &sn);
    }
    const int8_t *xa = FX ? (const int8_t *)sx4 : xq;
    if (FX) {
        quant_block(xf, (int8_t *)sx4, ne0, lane);
        __syncthreads();
    }
    const float *xd = (const float *)(xa + ne0);
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    for (int p = wid; p < np; p += 8) {
        const int i = 512 * p + 16 * lane, inext = i + 8 * 512;
        int4 wn[R];
        __half dn[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const bool ok = row[r] && inext < ne0;
            wn[r] = ok ? __ldcs((const int4 *)(row[r] + inext)) : make_int4(0, 0, 0, 0);
            dn[r] = ok ? ((const __half *)(row[r] + ne0))[inext >> 5] : __ushort_as_half(0);
        }
        const int4 x = FX ? *(const int4 *)(xa + i) : __ldg((const int4 *)(xa + i));
        const float xs = FX ? xd[i >> 5] : __ldg(xd + (i >> 5));
#pragma unroll
        for (int r = 0; r < R; r++) {
            acc[r] += __half2float(d[r]) * xs * (float)dot16(w[r], x);
            w[r] = wn[r];
            d[r] = dn[r];
        }
    }
    if (ST >= 0) pdl_next();
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0) part[wid][r] = v;
    }
    __syncthreads();
    if (t < R) {
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) v += part[k][t];
        fin[t] = SS ? v * nsc : v;
    }
    if (ROPE) __syncthreads();
    float v = 0.0f;
    if (out) {
        v = fin[t];
        if (rot) {
            const float a = fin[t & ~1], b = fin[t | 1];
            v = (t & 1) ? a * sn + b * c : a * c - b * sn;
        }
        (mo == 0 ? ms.y[0] : mo == 1 ? ms.y[1] : ms.y[2])[ro] = v;
    }
    if constexpr (ST >= 0) {
        /* the cache store: float types a value a thread, block types by units (kv_quant_tail) */
        int m0 = 0, r0 = 0;
        if (!set_row(ms, bx * R, &m0, &r0) || m0 == 0) return;
        const size_t cell = ks.dpos ? (size_t)*ks.dpos : (size_t)ks.pos0;
        uint8_t *dst = m0 == 1 ? ks.dk + cell * ks.kb : ks.dv + cell * ks.vb;
        if constexpr (qinfo<ST>::B == 1) {
            if (out) {
                if (ST == QT_F32) ((float *)dst)[ro] = v;
                else if (ST == QT_F16) ((__half *)dst)[ro] = __float2half_rn(v);
                else ((__nv_bfloat16 *)dst)[ro] = __float2bfloat16_rn(v);
            }
        } else {
            const int n = ks.unit, u0 = r0 / n * n;
            int *c = ks.cnt + (m0 == 1 ? 0 : ms.rows[1] / n) + r0 / n;
            const float *src = (m0 == 1 ? ms.y[1] : ms.y[2]) + u0;
            const float *mu = m0 == 1 && ks.mu ? ks.mu + u0 : NULL;
            kv_quant_tail<ST, R>(c, src, mu, dst + (size_t)(u0 / 32) * qinfo<ST>::BYTES, n, ks.b);
        }
    }
}

#define MV2_R 4

/* k_mv2 on x: the 8-bit activations its producer made, else x as floats where they fit
 * shared memory, else quantized by a launch first; ST >= 0 with the cache store ks */
template <bool ROPE, int ST = -1>
static int mv2_run(gpu_ctx *g, const mv_set &ms, int n_rows, int ne0, const float *xf, const rope_args &ra,
                   const kv_args &ks = kv_args()) {
    const float *ss = NULL;
    const float eps = g->nf_eps;
    const int8_t *xq = mv8_made(g, xf, ne0, 1, &ss);
    if (!xq && cuda_act_stride(ne0) > 48 * 1024 && !(xq = mv8_input(g, xf, ne0, 1))) return -1;
    const size_t sh = xq ? 0 : cuda_act_stride(ne0);
    CU(g, cuda_launch(g,
                      ss   ? k_mv2<MV2_R, ROPE, false, true, ST>
                      : xq ? k_mv2<MV2_R, ROPE, false, false, ST>
                           : k_mv2<MV2_R, ROPE, true, false, ST>,
                      dim3(cuda_blocks((size_t)n_rows, MV2_R)), dim3(256), sh, ms, ne0, xq, xf, ra, ss, eps, ks));
    return 0;
}

/* ---- a product with the residual add and the next norm (gpu_matmul_norm) ----
 *
 * A block makes 32 rows, one 32-value group of the next product's 8-bit activations, so
 * no block waits for another: its 32 warps take (4 rows, every fourth 512-byte piece) each,
 * as k_mv2's warps do, the partial sums meet in shared memory, and warp 0 adds the rows to
 * res, writes the group's sum of squares of res and quantizes res ⊙ nw (the norm's weights)
 * without the norm's scale, which needs every group: the product that reads these
 * activations takes the scale from the groups' sums (ss_scale) and multiplies its outputs
 * by it, as the 8-bit rule is the same for a group whatever its scale. The norm's kernel
 * and its two hand-overs leave the step. */
template <bool FX, int G>
__global__ void __launch_bounds__(1024, 1) k_mv_norm(const uint8_t *__restrict__ W, size_t rb, int ne0,
                                                     const int8_t *__restrict__ xq, const float *__restrict__ xf, float *res,
                                                     const float *__restrict__ nw, int8_t *xq_out, float *ss_out, int n) {
    constexpr int PS = 4 / G;   /* piece streams: warps on the same rows */
    __shared__ float part[PS][32 * G];
    extern __shared__ int4 sx4[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, np = ne0 >> 9;
    const int rq = wid % (8 * G), p0 = wid / (8 * G), r0 = 32 * G * blockIdx.x + 4 * rq;
    const uint8_t *row[4];
    int4 w[4];
    __half d[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
        row[r] = W + (size_t)(r0 + r) * rb;
        const int i = 512 * p0 + 16 * lane;
        w[r] = p0 < np ? __ldcs((const int4 *)(row[r] + i)) : make_int4(0, 0, 0, 0);
        d[r] = p0 < np ? ((const __half *)(row[r] + ne0))[i >> 5] : __ushort_as_half(0);
    }
    const int j0 = 32 * (G * blockIdx.x + wid);   /* warp wid < G: its group's first row */
    const float nwv = wid < G ? nw[j0 + lane] : 0.0f;
    pdl_wait();
    pdl_next();
    const float rv = wid < G ? res[j0 + lane] : 0.0f;
    const int8_t *xa = FX ? (const int8_t *)sx4 : xq;
    if (FX) {
        quant_block(xf, (int8_t *)sx4, ne0, lane);
        __syncthreads();
    }
    const float *xd = (const float *)(xa + ne0);
    float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int p = p0; p < np; p += PS) {
        const int i = 512 * p + 16 * lane, inext = i + PS * 512;
        int4 wn[4];
        __half dn[4];
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const bool ok = inext < ne0;
            wn[r] = ok ? __ldcs((const int4 *)(row[r] + inext)) : make_int4(0, 0, 0, 0);
            dn[r] = ok ? ((const __half *)(row[r] + ne0))[inext >> 5] : __ushort_as_half(0);
        }
        const int4 x = FX ? *(const int4 *)(xa + i) : __ldg((const int4 *)(xa + i));
        const float xs = FX ? xd[i >> 5] : __ldg(xd + (i >> 5));
#pragma unroll
        for (int r = 0; r < 4; r++) {
            acc[r] += __half2float(d[r]) * xs * (float)dot16(w[r], x);
            w[r] = wn[r];
            d[r] = dn[r];
        }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0) part[p0][4 * rq + r] = v;
    }
    __syncthreads();
    if (wid < G) {
        float y = 0.0f;
#pragma unroll
        for (int k = 0; k < PS; k++) y += part[k][32 * wid + lane];
        const float v = rv + y;
        res[j0 + lane] = v;
        const float s = warp_sum(v * v);
        if (lane == 0) ss_out[j0 >> 5] = s;
        q8_store32(v * nwv, xq_out, n, j0);
    }
}

static int one_token_on(void);

/* Groups a block: 2 for a product on the decode attention's output (wo), 1 for others
 * (down). H100, Mistral-7B shape, tg128 at depths 0 / 8192 / 32768 with wo in 1 / 2 / 4 groups
 * a block: q8_0 cache 298-301 / 316-318 / 307 t/s at depth 0, f16 326-332 / 324-326 /
 * 311-315; 2 groups leave the card's other 68 multiprocessors to the SwiGLU product's early
 * blocks. HEARTH_NORM_PRODUCT (for measuring): 0 off, 2 not after the attention, 3 only
 * there, 4 there also when the attention's blocks fill the card, 5 never there when they
 * do (not for 4 blocks an SM either); HEARTH_MN_G: wo's groups (1, 2 or 4). */
static int norm_product_groups(gpu_ctx *g, const float *x) {
    /* read at each launch: test_gpu switches them (a launch reads them only while capturing
     * or without a graph) */
    const char *e = getenv("HEARTH_MN_G"), *m = getenv("HEARTH_NORM_PRODUCT");
    int gs = e ? atoi(e) : 2;
    if (gs != 1 && gs != 4) gs = 2;
    const int on = m ? atoi(m) : 1, after_attn = x == g->ad_out;
    if (!on || (on == 2 && after_attn) || (on == 3 && !after_attn)) return 0;
    /* after a decode attention that asks for the plain wo (cuda_attn_dec: some pairs where
     * its blocks fill the card) */
    if (after_attn && ((g->ad_wo_plain && on != 4) || (g->ad_fill && on == 5))) return 0;
    return after_attn ? gs : 1;
}

extern "C" int gpu_matmul_norm(gpu_ctx *g, const wtensor *w, const float *x, int T, float *res, const float *nw, float eps,
                               float *out) {
    const int G = norm_product_groups(g, x);
    if (!(T == 1 && one_token_on() && G && w->layout == WL_Q8_SPLIT && w->ne0 % 512 == 0 &&
          w->ne0 <= INT32_MAX && w->ne1 % (32 * G) == 0 && w->ne1 % 256 == 0 && w->ne1 <= INT32_MAX && g->q_next && g->q_rows == (int)w->ne1))
        return 1;
    /* the output goes to SCR_XQ: not over an input there */
    if (g->xq_src == x && g->xq_buf == (const int8_t *)g->scr[SCR_XQ]) return 1;
    const int ne0 = (int)w->ne0, n = (int)w->ne1;
    const int8_t *xq = mv8_made(g, x, ne0, 1);
    if (!xq && cuda_act_stride(ne0) > 48 * 1024 && !(xq = mv8_input(g, x, ne0, 1))) return -1;
    size_t xs = 0;
    int8_t *xq_out = cuda_q_take(g, n, 1, &xs);
    float *ss = (float *)cuda_scratch(g, SCR_SS, sizeof(float) * (size_t)(n / 32));
    if (!xq_out || !ss) return -1;
    const size_t sh = xq ? 0 : cuda_act_stride(ne0);
    void (*k)(const uint8_t *, size_t, int, const int8_t *, const float *, float *, const float *, int8_t *, float *, int) =
        G == 4 ? (xq ? k_mv_norm<false, 4> : k_mv_norm<true, 4>)
        : G == 2 ? (xq ? k_mv_norm<false, 2> : k_mv_norm<true, 2>) : (xq ? k_mv_norm<false, 1> : k_mv_norm<true, 1>);
    CU(g, cuda_launch(g, k, dim3(n / (32 * G)), dim3(1024), sh,
                      (const uint8_t *)w->data, w->row_bytes, ne0, xq, x, res, nw, xq_out, ss, n));
    cuda_q_made(g, out, 1);
    g->xq_ss = ss;
    g->nf_res = res;
    g->nf_w = nw;
    g->nf_eps = eps;
    g->nf_n = n;
    return 0;
}

/* y[0][j] = silu(W0[j] x) * W1[j] x for the set's two matrices, and with xq_out the same as
 * 8-bit activations */
struct swiglu_args {
    mv_set ms;
    int ne0, n_pairs;   /* n_pairs = rows / 2: a warp's work per round */
    const int8_t *xq;
    int8_t *xq_out;
    const float *ss;    /* non-NULL: xq is before its norm's scale (gpu_matmul_norm) */
    float eps;
};

#define SW_W 16   /* warps a block: 2 outputs each, the 32 of a quantization block */
#define SW_U 2

/* the gate and up rows of outputs 2 pi and 2 pi + 1 (NULL past the end) */
__device__ __forceinline__ void sw_rows(const swiglu_args &a, int pi, const uint8_t *(&row)[4]) {
#pragma unroll
    for (int s = 0; s < 4; s++) row[s] = pi < a.n_pairs ? a.ms.w[s & 1] + (size_t)(2 * pi + (s >> 1)) * a.ms.rb : NULL;
}

template <int R, int U> struct mv_chunk {
    int4 w[R][U];
    __half d[R][U];
};

template <int R, int U>
__device__ __forceinline__ void chunk_load(mv_chunk<R, U> &c, const uint8_t *const (&row)[R], int ne0, int base) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + 512 * u + 16 * lane;
            if (row[r] && i < ne0) {
                c.w[r][u] = __ldcs((const int4 *)(row[r] + i));
                c.d[r][u] = ((const __half *)(row[r] + ne0))[i >> 5];
            } else {
                c.w[r][u] = make_int4(0, 0, 0, 0);
                c.d[r][u] = __ushort_as_half(0);
            }
        }
    }
}

__global__ void __launch_bounds__(32 * SW_W) k_mv_swiglu(swiglu_args a) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int ne0 = a.ne0, nblk = (a.n_pairs + SW_W - 1) / SW_W;
    const float *xd = (const float *)(a.xq + ne0);
    const uint8_t *row[4];
    mv_chunk<4, SW_U> cur;
    sw_rows(a, blockIdx.x * SW_W + wid, row);
    chunk_load<4, SW_U>(cur, row, ne0, 0);
    pdl_wait();
    pdl_next();
    const float nsc = a.ss ? ss_scale(a.ss, ne0, a.eps) : 1.0f;
    for (int blk = blockIdx.x; blk < nblk; blk += gridDim.x) {
        const int pi = blk * SW_W + wid;
        float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        for (int base = 0; base < ne0; base += 512 * SW_U) {
            int nbase = base + 512 * SW_U;
            if (nbase >= ne0) { nbase = 0; sw_rows(a, (blk + gridDim.x) * SW_W + wid, row); }
            mv_chunk<4, SW_U> nxt;
            chunk_load<4, SW_U>(nxt, row, ne0, nbase);
#pragma unroll
            for (int u = 0; u < SW_U; u++) {
                const int i = base + 512 * u + 16 * lane;
                if (i < ne0) {
                    const int4 x = __ldg((const int4 *)(a.xq + i));
                    const float xs = __ldg(xd + (i >> 5));
#pragma unroll
                    for (int r = 0; r < 4; r++) acc[r] += __half2float(cur.d[r][u]) * xs * (float)dot16(cur.w[r][u], x);
                }
            }
            cur = nxt;
        }
        __shared__ float out[2 * SW_W];
#pragma unroll
        for (int o = 0; o < 2; o++) {
            const float gt = warp_sum(acc[2 * o]) * nsc, up = warp_sum(acc[2 * o + 1]) * nsc;
            const float v = silu_mul(gt, up);
            if (lane == 0 && pi < a.n_pairs) { a.ms.y[0][2 * pi + o] = v; out[2 * wid + o] = v; }
        }
        __syncthreads();
        if (a.xq_out && wid == 0) q8_store32(out[lane], a.xq_out, a.ms.rows[0], blk * 2 * SW_W);
        __syncthreads();
    }
}

static int one_token_on(void) {
    static int on = -1;
    if (on < 0) on = getenv("HEARTH_NO_MV1") == NULL;
    return on;
}

int cuda_mv_q8s(gpu_ctx *g, const mv_set *ms, int n_rows, int ne0, const float *x, int T) {
    if (T == 1 && ne0 % 512 == 0 && one_token_on()) return mv2_run<false>(g, *ms, n_rows, ne0, x, rope_args());
    const int8_t *xq = mv8_input(g, x, ne0, T);
    if (!xq) return -1;
    const size_t xs = cuda_act_stride(ne0);
    dim3 grid(cuda_blocks((size_t)n_rows, MV8_WARPS));
    static int u8 = -1;
    if (u8 < 0) { const char *e = getenv("HEARTH_MV8_U"); u8 = e && atoi(e) == 8; }
    for (int t0 = 0; t0 < T; t0 += 8) {
        int nt = T - t0 < 8 ? T - t0 : 8;
        mv_set m = *ms;
        for (int i = 0; i < 3; i++) if (m.y[i]) m.y[i] += (size_t)t0 * m.rows[i];
        const int8_t *xt = xq + (size_t)t0 * xs;
        CU(g, cuda_launch(g, nt == 1 && u8 ? k_mv_q8s<1, 8> : nt == 1 ? k_mv_q8s<1, 4> : k_mv_q8s<8, 4>, grid,
                          dim3(32 * MV8_WARPS), 0, m, ne0, xt, xs, nt));
    }
    return 0;
}

/* the one-token kernels apply: split-layout matrices of one width, T == 1 (HEARTH_NO_MV1
 * turns them off, for measuring) */
static bool one_token(const wtensor *const *w, int n, int T) {
    bool ok = T == 1 && one_token_on();
    for (int i = 0; i < n && ok; i++) ok = w[i]->layout == WL_Q8_SPLIT && w[i]->ne0 == w[0]->ne0 && w[i]->ne1 <= INT32_MAX;
    return ok;
}

static mv_set set_of(const wtensor *const *w, int n, float *const *y) {
    mv_set ms = { { NULL, NULL, NULL }, { NULL, NULL, NULL }, { 0, 0, 0 }, w[0]->row_bytes };
    for (int i = 0; i < n; i++) { ms.w[i] = (const uint8_t *)w[i]->data; ms.y[i] = y[i]; ms.rows[i] = (int)w[i]->ne1; }
    return ms;
}

/* HEARTH_QKV_STORE: 0 never stores in the product, 2 at every depth where it can, else (1)
 * in the cells where it measured faster (qkv_store_cells). Read at each call (test_gpu sets
 * it); a graph's replays do not call. */
static int qkv_store_mode(void) {
    const char *e = getenv("HEARTH_QKV_STORE");
    return e ? atoi(e) : 1;
}

/* The cells where a pair of one type stores in the product (H200, Mistral-7B shape, tg32 at
 * 0-2000 cells against the store kernel, two rounds, BENCHMARKS.md "The cache store in the
 * q, k, v product"): q8_0 from 513 to KV_SPLIT_CELLS (+2.5 to +4.8%; -3.5% at 0-512), q4_0
 * up to 512 (+1.2 to +1.7%; -1.4 to -2% at 1536-2000); f16 none (within +-1%). Deeper than
 * KV_SPLIT_CELLS the attention's early start runs beside a separate store (attn_dec.cu),
 * which needs the query final before the store: storing in the product lost there (q8_0
 * -0.7% at 8192 and 32768). lo > hi: never. */
static void qkv_store_cells(int type, int *lo, int *hi) {
    const int mode = qkv_store_mode();
    *lo = 1;
    *hi = mode == 2 ? INT_MAX : 0;
    if (mode != 1) return;
    if (type == QT_Q8_0) { *lo = 513; *hi = KV_SPLIT_CELLS; }
    if (type == QT_Q4_0) *hi = 512;
}

/* the store's arguments for k_mv2, or 0 where its tail cannot do this store */
static int kv_args_of(gpu_ctx *g, const gpu_kv_store *st, int nk, int hd, int pos0, kv_args *ks) {
    const gpu_kv_layout *L = &st->L;
    if (st->set_mu || L->type_k != L->type_v || L->row != nk * hd || L->row_k != L->row || L->row_v != L->row) return 0;
    if (L->type_k != QT_F16 && L->type_k != QT_Q8_0 && L->type_k != QT_Q4_0) return 0;
    /* in a captured graph the choice holds for the cells it suits (gpu_graph_pick) */
    int lo, hi;
    qkv_store_cells(L->type_k, &lo, &hi);
    const int cells = pos0 + 1;
    if (lo > hi || cells < lo || cells > hi) {
        if (g->pos_on && lo <= hi) {
            if (cells < lo) cuda_graph_cells(g, 0, lo - 1);
            else cuda_graph_cells(g, hi + 1, INT_MAX);
        }
        return 0;
    }
    kv_args a = {};
    a.dk = st->dk; a.dv = st->dv; a.kb = L->kb; a.vb = L->vb;
    a.dpos = g->pos_on ? g->dpos : NULL;
    a.pos0 = pos0;
    a.b = 1;
    a.unit = 1;
    a.in_order = getenv("HEARTH_QKV_IN_ORDER") && atoi(getenv("HEARTH_QKV_IN_ORDER")) == 1;
    if (L->type_k != QT_F16) {
        /* both sides have one type, so one rotation (kv.c): chunks of b along the row */
        const int rot = L->rot_k;
        a.b = rot ? cuda_hadamard_block(rot == KV_ROT_ROW ? L->row : L->head_dim) : 1;
        a.unit = a.b > 32 ? a.b : 32;
        if (rot != L->rot_v || a.unit > 256 || a.unit % MV2_R || L->row % a.unit || 2 * L->row / a.unit > KV_CNT_MAX)
            return 0;
        a.mu = st->mu;
        if (!g->kv_cnt) return 0;   /* gpu_ctx_new could not make them */
        a.cnt = g->kv_cnt;
    }
    if (g->pos_on) cuda_graph_cells(g, lo, hi);
    *ks = a;
    return 1;
}

extern "C" int gpu_matmul_rope_store(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq,
                                     int nk, int hd, int n_rot, int pos0, float base, float freq_scale, const float *ff,
                                     const gpu_kv_store *st) {
    if (one_token(w, 3, T) && w[0]->ne0 % 512 == 0 && hd % 2 == 0 && n_rot <= hd && w[0]->ne1 == (int64_t)nq * hd &&
        w[1]->ne1 == (int64_t)nk * hd) {
        const int ne0 = (int)w[0]->ne0;
        const mv_set ms = set_of(w, 3, y);
        const int n_rows = ms.rows[0] + ms.rows[1] + ms.rows[2];
        rope_args ra = { g->pos_on ? g->dpos : NULL, (float)pos0, base, freq_scale, ff, hd, n_rot };
        kv_args ks;
        /* a block's rows must lie in one matrix (q's rows a multiple of MV2_R) */
        if (!st || ms.rows[0] % MV2_R || !kv_args_of(g, st, nk, hd, pos0, &ks))
            return mv2_run<true>(g, ms, n_rows, ne0, x, ra) ? -1 : 1;
        int rc;
        switch (st->L.type_k) {
        case QT_F16: rc = mv2_run<true, QT_F16>(g, ms, n_rows, ne0, x, ra, ks); break;
        case QT_Q8_0: rc = mv2_run<true, QT_Q8_0>(g, ms, n_rows, ne0, x, ra, ks); break;
        default: rc = mv2_run<true, QT_Q4_0>(g, ms, n_rows, ne0, x, ra, ks); break;
        }
        return rc ? -1 : 0;
    }
    return gpu_matmul_n(g, w, 3, x, T, y) ||
                   gpu_rope_qk(g, y[0], y[1], T, nq, nk, hd, n_rot, (float)pos0, base, freq_scale, ff)
               ? -1 : 1;
}

extern "C" int gpu_matmul_rope(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq,
                               int nk, int hd, int n_rot, float pos0, float base, float freq_scale, const float *ff) {
    return gpu_matmul_rope_store(g, w, x, T, y, nq, nk, hd, n_rot, (int)pos0, base, freq_scale, ff, NULL) < 0 ? -1 : 0;
}

extern "C" int gpu_matmul_swiglu(gpu_ctx *g, const wtensor *gate, const wtensor *up, const float *x, int T, float *gate_out,
                                 float *up_out) {
    const wtensor *w[2] = { gate, up };
    float *const y[2] = { gate_out, up_out };
    if (one_token(w, 2, T) && gate->ne1 == up->ne1 && gate->ne1 % 32 == 0) {
        const int ne0 = (int)gate->ne0, n = (int)gate->ne1;
        swiglu_args a = { set_of(w, 2, y), ne0, n / 2, NULL, NULL, NULL, g->nf_eps };
        a.xq = mv8_made(g, x, ne0, 1, &a.ss);
        if (!a.xq && !(a.xq = mv8_input(g, x, ne0, 1))) return -1;
        const size_t xs = cuda_act_stride(n);
        if (g->q_next && g->q_rows == n && n % 256 == 0) {
            a.xq_out = (int8_t *)cuda_scratch(g, SCR_XQ2, xs);
            if (!a.xq_out) return -1;
        }
        g->q_next = 0;
        static int per_sm = 0;
        if (!per_sm) {
            CU(g, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_mv_swiglu, 32 * SW_W, 0));
            if (per_sm < 1) per_sm = 1;
        }
        int blocks = cuda_blocks((size_t)a.n_pairs, SW_W);
        if (blocks > per_sm * g->sm_count) blocks = per_sm * g->sm_count;
        CU(g, cuda_launch(g, k_mv_swiglu, dim3(blocks), dim3(32 * SW_W), 0, a));
        if (a.xq_out) {
            g->xq_src = gate_out;
            g->xq_T = 1;
            g->xq_buf = a.xq_out;
            g->xq_bytes = xs;
        }
        return 0;
    }
    return gpu_matmul_n(g, w, 2, x, T, y) || gpu_swiglu(g, gate_out, up_out, (size_t)T * gate->ne1);
}

/* the split layout expanded to f16 for cuBLAS (prompts): a thread per 32 values */
__global__ void k_q8s_to_f16(const uint8_t *__restrict__ W, size_t rb, int ne0, int ne1, __half *__restrict__ out) {
    const size_t nc = (size_t)(ne0 >> 5);
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nc * ne1) return;
    int r = (int)(i / nc), c = (int)(i % nc);
    const uint8_t *row = W + (size_t)r * rb;
    const float d = __half2float(((const __half *)(row + ne0))[c]);
    const int4 *q = (const int4 *)(row + 32 * c);
    int4 a[2] = { q[0], q[1] };
    const int8_t *v = (const int8_t *)a;
    __align__(16) __half h[32];
#pragma unroll
    for (int k = 0; k < 32; k++) h[k] = __float2half_rn(d * (float)v[k]);
    uint4 *dst = (uint4 *)(out + (size_t)r * ne0 + 32 * c);
#pragma unroll
    for (int k = 0; k < 4; k++) dst[k] = ((const uint4 *)h)[k];
}

int cuda_q8s_to_f16(gpu_ctx *g, const wtensor *w, __half *out) {
    size_t n = (size_t)(w->ne0 / 32) * w->ne1;
    k_q8s_to_f16<<<cuda_blocks(n, 256), 256, 0, g->stream>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0,
                                                            (int)w->ne1, out);
    CU_LAUNCHED(g);
    return 0;
}
