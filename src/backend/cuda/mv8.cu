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
    const int lane = threadIdx.x & 31;
    const int nb = ne0 >> 5;
    const size_t gw = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (gw >= (size_t)T * nb) return;
    const int t = (int)(gw / nb), b = (int)(gw % nb);
    float v = x[(size_t)t * ne0 + 32 * b + lane];
    float amax = warp_max(fabsf(v));
    float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int8_t *q = xq + (size_t)t * xs;
    q[32 * b + lane] = (int8_t)__float2int_rn(v * id);
    if (lane == 0) ((float *)(q + ne0))[b] = __half2float(__float2half_rn(amax / 127.0f)); /* f16, as the CPU's */
}

size_t cuda_act_stride(int ne0) { return ((size_t)ne0 + 4 * (size_t)(ne0 / 32) + 15) & ~(size_t)15; }

int cuda_quant_act(gpu_ctx *g, const float *x, int ne0, int T, int8_t **xq) {
    size_t xs = cuda_act_stride(ne0);
    int8_t *buf = (int8_t *)cuda_scratch(g, SCR_XQ, xs * (size_t)T);
    if (!buf) return -1;
    size_t warps = (size_t)T * (ne0 / 32);
    k_quant_act<<<cuda_blocks(warps * 32, 256), 256, 0, g->stream>>>(x, ne0, T, buf, xs);
    CU_LAUNCHED(g);
    *xq = buf;
    return 0;
}

__device__ __forceinline__ int dot16(int4 a, int4 b) {
    int s = __dp4a(a.x, b.x, 0);
    s = __dp4a(a.y, b.y, s);
    s = __dp4a(a.z, b.z, s);
    return __dp4a(a.w, b.w, s);
}

/* a warp per row (rows numbered through the set's matrices); lanes on 16-value pieces, so a
 * warp step reads 512 contiguous weight bytes, MV8_U steps in flight */
template <int NT, int MV8_U>
__global__ void __launch_bounds__(32 * MV8_WARPS) k_mv_q8s(mv_set ms, int ne0, const int8_t *__restrict__ xq, size_t xs, int nt) {
    const int lane = threadIdx.x & 31;
    int r = blockIdx.x * MV8_WARPS + (threadIdx.x >> 5), m = 0;
    if (r >= ms.rows[0]) { r -= ms.rows[0]; m = 1; if (r >= ms.rows[1]) { r -= ms.rows[1]; m = 2; } }
    if (m == 2 && r >= ms.rows[2]) return;
    const uint8_t *row = (m == 0 ? ms.w[0] : m == 1 ? ms.w[1] : ms.w[2]) + (size_t)r * ms.rb;
    float *y = m == 0 ? ms.y[0] : m == 1 ? ms.y[1] : ms.y[2];
    const int ldy = m == 0 ? ms.rows[0] : m == 1 ? ms.rows[1] : ms.rows[2];
    const __half *dw = (const __half *)(row + ne0);
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

int cuda_mv_q8s(gpu_ctx *g, const mv_set *ms, int n_rows, int ne0, const float *x, int T) {
    int8_t *xq;
    if (g->xq_src == x && g->xq_T == T && g->scr[SCR_XQ] && g->scr_size[SCR_XQ] >= cuda_act_stride(ne0) * (size_t)T) {
        xq = (int8_t *)g->scr[SCR_XQ];   /* the producer quantized x already */
    } else if (cuda_quant_act(g, x, ne0, T, &xq)) {
        g->xq_src = NULL;
        return -1;
    }
    g->xq_src = NULL;
    const size_t xs = cuda_act_stride(ne0);
    dim3 grid(cuda_blocks((size_t)n_rows, MV8_WARPS));
    static int u8 = -1;
    if (u8 < 0) { const char *e = getenv("HEARTH_MV8_U"); u8 = e && atoi(e) == 8; }
    for (int t0 = 0; t0 < T; t0 += 8) {
        int nt = T - t0 < 8 ? T - t0 : 8;
        mv_set m = *ms;
        for (int i = 0; i < 3; i++) if (m.y[i]) m.y[i] += (size_t)t0 * m.rows[i];
        if (nt == 1 && u8) k_mv_q8s<1, 8><<<grid, 32 * MV8_WARPS, 0, g->stream>>>(m, ne0, xq + (size_t)t0 * xs, xs, 1);
        else if (nt == 1) k_mv_q8s<1, 4><<<grid, 32 * MV8_WARPS, 0, g->stream>>>(m, ne0, xq + (size_t)t0 * xs, xs, 1);
        else k_mv_q8s<8, 4><<<grid, 32 * MV8_WARPS, 0, g->stream>>>(m, ne0, xq + (size_t)t0 * xs, xs, nt);
        CU_LAUNCHED(g);
    }
    return 0;
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
