/* Weights times activations on the GPU.
 *
 * Decode (T <= 8 tokens) is a bandwidth problem: one warp per weight row, each lane decodes
 * whole 32-value chunks in registers and multiplies them into up to 8 token vectors, so
 * every weight byte is read once per call. Prompts (T > 8) are arithmetic: the weights are
 * expanded to f16 in a scratch buffer and cuBLAS multiplies on the tensor cores (f32 and f16
 * weights go to cuBLAS as they are). */
#include "backend/cuda/dequant.cuh"
#include "backend/cuda/mv8.cuh"

#define MV_WARPS 4
#define MV_MAXT 8
#define MV_U 8      /* 4-value steps a lane has in flight */

/* y[t][r] = W[r] . x[t]; x rows have ne0 values, y rows have ldy. chunked: ne0 % 32 == 0 and
 * rows 16-byte aligned, else every value is read by dq1 (float types only). */
template <int T, int NT>
__global__ void __launch_bounds__(32 * MV_WARPS) k_matvec(const uint8_t *__restrict__ W, size_t rb, int ne0, int ne1,
                                                          const float *__restrict__ x, int nt, float *__restrict__ y,
                                                          int ldy, int chunked) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (r >= ne1) return;
    const uint8_t *row = W + (size_t)r * rb;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    if (chunked) {
        const int nc = ne0 >> 5;
        for (int c = lane; c < nc; c += 32) {
            float v[32];
            dq32<T>(row, c, v);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < nt) {
                    const float4 *xp = (const float4 *)(x + (size_t)t * ne0 + 32 * c);
                    float s = 0.0f;
#pragma unroll
                    for (int k = 0; k < 8; k++) {
                        float4 f = __ldg(xp + k);
                        s += v[4 * k] * f.x + v[4 * k + 1] * f.y + v[4 * k + 2] * f.z + v[4 * k + 3] * f.w;
                    }
                    acc[t] += s;
                }
            }
        }
    } else if (qinfo<T>::B == 1) {
        for (int i = lane; i < ne0; i += 32) {
            float w;
            if (T == QT_F32) w = ((const float *)row)[i];
            else if (T == QT_F16) w = __half2float(((const __half *)row)[i]);
            else w = __bfloat162float(((const __nv_bfloat16 *)row)[i]);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt) acc[t] += w * x[(size_t)t * ne0 + i];
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

/* The decode kernel: one warp per row, lanes on consecutive 4-value pieces (see dq4), so a
 * warp reads one contiguous stretch of the row per step and the activations in float4s.
 * Needs ne0 % 4 == 0 (every block type; float rows of such a length). */
template <int T, int NT>
__global__ void __launch_bounds__(32 * MV_WARPS) k_matvec4(const uint8_t *__restrict__ W, size_t rb, int ne0, int ne1,
                                                           const float *__restrict__ x, int nt, float *__restrict__ y, int ldy) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (r >= ne1) return;
    const uint8_t *row = W + (size_t)r * rb;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    /* U steps' loads are issued before any of their arithmetic: bytes in flight (16 steps
     * for block types measured slower than 8 on an H200: registers) */
    constexpr int U = MV_U;
    for (int base = 0; base < ne0; base += 128 * U) {
        float v[U][4];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + 128 * u + 4 * lane;
            if (i < ne0) dq4<T>(row, i, v[u]);
            else v[u][0] = v[u][1] = v[u][2] = v[u][3] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + 128 * u + 4 * lane;
            if (i < ne0) {
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < nt) {
                        float4 f = __ldg((const float4 *)(x + (size_t)t * ne0 + i));
                        acc[t] += v[u][0] * f.x + v[u][1] * f.y + v[u][2] * f.z + v[u][3] * f.w;
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

/* Block types: a warp first copies a stretch of whole blocks of its row into shared memory
 * with 16-byte loads (every lane's load in one coalesced stretch), then decodes it there
 * with dq4. Reading blocks straight from global memory takes 2-byte loads scattered over
 * a block (q8_0's 34-byte blocks are only 2-byte aligned) and measured ~1 TB/s on an H200.
 * Needs rows starting at 16-byte boundaries (row bytes % 16 == 0). */
constexpr int cuda_gcd(int a, int b) { return b ? cuda_gcd(b, a % b) : a; }
template <int T> struct stage {
    enum { L = 16 / cuda_gcd(16, qinfo<T>::BYTES) * qinfo<T>::BYTES,   /* lcm(16, block bytes) */
           BYTES = (4096 / L) * L, VALUES = BYTES / qinfo<T>::BYTES * qinfo<T>::B };
};

template <int T, int NT>
__global__ void __launch_bounds__(32 * MV_WARPS) k_matvec_st(mv_set ms, size_t rb, int ne0, const float *__restrict__ x, int nt) {
    __shared__ uint4 sh[MV_WARPS][stage<T>::BYTES / 16];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    int r = blockIdx.x * MV_WARPS + wid, m = 0;
    if (r >= ms.rows[0]) { r -= ms.rows[0]; m = 1; if (r >= ms.rows[1]) { r -= ms.rows[1]; m = 2; } }
    if (m == 2 && r >= ms.rows[2]) return;
    const uint8_t *row = (m == 0 ? ms.w[0] : m == 1 ? ms.w[1] : ms.w[2]) + (size_t)r * rb;
    float *y = m == 0 ? ms.y[0] : m == 1 ? ms.y[1] : ms.y[2];
    const int ldy = m == 0 ? ms.rows[0] : m == 1 ? ms.rows[1] : ms.rows[2];
    const uint8_t *buf = (const uint8_t *)sh[wid];
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    size_t off = 0;
    for (int c0 = 0; c0 < ne0; c0 += stage<T>::VALUES, off += stage<T>::BYTES) {
        const int nb = (int)((rb - off) < (size_t)stage<T>::BYTES ? (rb - off) : (size_t)stage<T>::BYTES) / 16;
        const uint4 *src = (const uint4 *)(row + off);
#pragma unroll 4
        for (int k = lane; k < nb; k += 32) sh[wid][k] = __ldg(src + k);
        __syncwarp();
        const int nv = ne0 - c0 < stage<T>::VALUES ? ne0 - c0 : stage<T>::VALUES;
        for (int i = 4 * lane; i < nv; i += 128) {
            float v[4];
            dq4<T>(buf, i, v);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < nt) {
                    float4 f = __ldg((const float4 *)(x + (size_t)t * ne0 + c0 + i));
                    acc[t] += v[0] * f.x + v[1] * f.y + v[2] * f.z + v[3] * f.w;
                }
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt) {
            float s = warp_sum(acc[t]);
            if (lane == 0) y[(size_t)t * ldy + r] = s;
        }
    }
}

/* W expanded to f16, one thread per 32-value chunk. */
template <int T>
__global__ void k_to_f16(const uint8_t *__restrict__ W, size_t rb, int ne0, int ne1, __half *__restrict__ out) {
    const size_t nc = (size_t)(ne0 >> 5);
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nc * ne1) return;
    int r = (int)(i / nc), c = (int)(i % nc);
    float v[32];
    dq32<T>(W + (size_t)r * rb, c, v);
    __align__(16) __half h[32];
#pragma unroll
    for (int k = 0; k < 32; k++) h[k] = __float2half_rn(v[k]);
    uint4 *dst = (uint4 *)(out + (size_t)r * ne0 + 32 * c);
#pragma unroll
    for (int k = 0; k < 4; k++) dst[k] = ((const uint4 *)h)[k];
}

/* bf16 rows of any length to f16 */
__global__ void k_bf16_to_f16(const __nv_bfloat16 *__restrict__ in, size_t n, __half *__restrict__ out) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2half_rn(__bfloat162float(in[i]));
}

__global__ void k_f32_to_f16(const float *__restrict__ in, size_t n, __half *__restrict__ out) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2half_rn(in[i]);
}

struct launch_mv {
    template <int T>
    static void run(const wtensor *w, const float *x, int T_, float *y, cudaStream_t s) {
        int chunked = w->ne0 % 32 == 0 && w->row_bytes % 16 == 0;
        if (qinfo<T>::B > 1) chunked = 1;
        const int by4 = w->ne0 % 4 == 0;
        dim3 grid(cuda_blocks((size_t)w->ne1, MV_WARPS));
        for (int t0 = 0; t0 < T_; t0 += MV_MAXT) {
            int nt = T_ - t0 < MV_MAXT ? T_ - t0 : MV_MAXT;
            const float *xt = x + (size_t)t0 * w->ne0;
            float *yt = y + (size_t)t0 * w->ne1;
            const bool staged = qinfo<T>::B > 1 && w->row_bytes % 16 == 0;
            mv_set ms = { { (const uint8_t *)w->data, NULL, NULL }, { yt, NULL, NULL }, { (int)w->ne1, 0, 0 }, w->row_bytes };
            if (staged && nt == 1)
                k_matvec_st<T, 1><<<grid, 32 * MV_WARPS, 0, s>>>(ms, w->row_bytes, (int)w->ne0, xt, 1);
            else if (staged)
                k_matvec_st<T, MV_MAXT><<<grid, 32 * MV_WARPS, 0, s>>>(ms, w->row_bytes, (int)w->ne0, xt, nt);
            else if (by4 && nt == 1)
                k_matvec4<T, 1><<<grid, 32 * MV_WARPS, 0, s>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0,
                                                            (int)w->ne1, xt, 1, yt, (int)w->ne1);
            else if (by4)
                k_matvec4<T, MV_MAXT><<<grid, 32 * MV_WARPS, 0, s>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0,
                                                                  (int)w->ne1, xt, nt, yt, (int)w->ne1);
            else if (nt == 1)
                k_matvec<T, 1><<<grid, 32 * MV_WARPS, 0, s>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0,
                                                           (int)w->ne1, xt, 1, yt, (int)w->ne1, chunked);
            else
                k_matvec<T, MV_MAXT><<<grid, 32 * MV_WARPS, 0, s>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0,
                                                                 (int)w->ne1, xt, nt, yt, (int)w->ne1, chunked);
        }
    }
};

struct launch_mv_n {
    template <int T>
    static void run(const wtensor *const *w, int n, const float *x, int T_, float *const *y, cudaStream_t s) {
        mv_set ms = { { NULL, NULL, NULL }, { NULL, NULL, NULL }, { 0, 0, 0 }, w[0]->row_bytes };
        int total = 0;
        for (int i = 0; i < n; i++) { ms.w[i] = (const uint8_t *)w[i]->data; ms.y[i] = y[i]; ms.rows[i] = (int)w[i]->ne1; total += ms.rows[i]; }
        dim3 grid(cuda_blocks((size_t)total, MV_WARPS));
        if (T_ == 1) k_matvec_st<T, 1><<<grid, 32 * MV_WARPS, 0, s>>>(ms, w[0]->row_bytes, (int)w[0]->ne0, x, 1);
        else k_matvec_st<T, MV_MAXT><<<grid, 32 * MV_WARPS, 0, s>>>(ms, w[0]->row_bytes, (int)w[0]->ne0, x, T_);
    }
};

struct launch_f16 {
    template <int T>
    static void run(const wtensor *w, __half *out, cudaStream_t s) {
        size_t n = (size_t)(w->ne0 / 32) * w->ne1;
        k_to_f16<T><<<cuda_blocks(n, 256), 256, 0, s>>>((const uint8_t *)w->data, w->row_bytes, (int)w->ne0, (int)w->ne1, out);
    }
};

static int dispatch_mv(const wtensor *w, const float *x, int T, float *y, cudaStream_t s) {
    switch (w->type) {
#define X(t) case t: launch_mv::run<t>(w, x, T, y, s); return 0;
        CUDA_WEIGHT_TYPES(X)
#undef X
    default: return -1;
    }
}

static int dispatch_f16(const wtensor *w, __half *out, cudaStream_t s) {
    switch (w->type) {
#define X(t) case t: launch_f16::run<t>(w, out, s); return 0;
        CUDA_WEIGHT_TYPES(X)
#undef X
    default: return -1;
    }
}

static const char *blas_name(cublasStatus_t st) {
    switch (st) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
    }
}

extern "C" int gpu_matmul_n(gpu_ctx *g, const wtensor *const *w, int n, const float *x, int T, float *const *y) {
    bool split = n >= 1 && n <= 3 && T >= 1 && T <= MV_MAXT;
    for (int i = 0; i < n && split; i++) split = w[i]->layout == WL_Q8_SPLIT && w[i]->ne0 == w[0]->ne0;
    if (split) {
        mv_set ms = { { NULL, NULL, NULL }, { NULL, NULL, NULL }, { 0, 0, 0 }, w[0]->row_bytes };
        int total = 0;
        for (int i = 0; i < n; i++) { ms.w[i] = (const uint8_t *)w[i]->data; ms.y[i] = y[i]; ms.rows[i] = (int)w[i]->ne1; total += ms.rows[i]; }
        return cuda_mv_q8s(g, &ms, total, (int)w[0]->ne0, x, T);
    }
    if (cuda_norm_floats(g, x)) return -1;
    bool one = n >= 1 && n <= 3 && T >= 1 && T <= MV_MAXT && quant_get(w[0]->type) && quant_get(w[0]->type)->block > 1 &&
               w[0]->row_bytes % 16 == 0;
    for (int i = 1; i < n && one; i++) one = w[i]->type == w[0]->type && w[i]->ne0 == w[0]->ne0;
    if (!one) {
        for (int i = 0; i < n; i++)
            if (gpu_matmul(g, w[i], x, T, y[i])) return -1;
        return 0;
    }
    switch (w[0]->type) {
#define X(t) case t: launch_mv_n::run<t>(w, n, x, T, y, g->stream); break;
        CUDA_WEIGHT_TYPES(X)
#undef X
    default: return cuda_fail_msg(g, "no kernel for this weight type");
    }
    CU_LAUNCHED(g);
    return 0;
}

extern "C" int gpu_matmul(gpu_ctx *g, const wtensor *w, const float *x, int T, float *y) {
    char nb[32];
    if (T <= 0) return 0;
    if (w->ne0 > INT32_MAX || w->ne1 > INT32_MAX) return cuda_fail_msg(g, "matrix too large for the CUDA kernels");
    if (T <= MV_MAXT && w->layout == WL_Q8_SPLIT) {
        mv_set ms = { { (const uint8_t *)w->data, NULL, NULL }, { y, NULL, NULL }, { (int)w->ne1, 0, 0 }, w->row_bytes };
        return cuda_mv_q8s(g, &ms, (int)w->ne1, (int)w->ne0, x, T);
    }
    if (cuda_norm_floats(g, x)) return -1;
    g->xq_src = NULL;
    if (T <= MV_MAXT) {
        if (dispatch_mv(w, x, T, y, g->stream))
            return cuda_fail_msg(g, "CUDA has no kernel for %s weights", quant_name(w->type, nb, sizeof nb));
        CU_LAUNCHED(g);
        return 0;
    }
    const int m = (int)w->ne1, k = (int)w->ne0;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st;
    if (w->type == QT_F32) {
        st = cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, T, k, &one, (const float *)w->data, k, x, k, &zero, y, m);
    } else {
        const __half *wh;
        if (w->type == QT_F16) {
            wh = (const __half *)w->data;
        } else {
            __half *buf = (__half *)cuda_scratch(g, SCR_WH, sizeof(__half) * (size_t)m * k);
            if (!buf) return -1;
            if (w->type == QT_BF16) {
                size_t n = (size_t)m * k;
                if (w->row_bytes != 2 * (size_t)k) return cuda_fail_msg(g, "bf16 rows with padding");
                k_bf16_to_f16<<<cuda_blocks(n, 256), 256, 0, g->stream>>>((const __nv_bfloat16 *)w->data, n, buf);
            } else if (w->layout == WL_Q8_SPLIT) {
                if (cuda_q8s_to_f16(g, w, buf)) return -1;
            } else if (dispatch_f16(w, buf, g->stream)) {
                return cuda_fail_msg(g, "CUDA has no kernel for %s weights", quant_name(w->type, nb, sizeof nb));
            }
            CU_LAUNCHED(g);
            wh = buf;
        }
        __half *xh = (__half *)cuda_scratch(g, SCR_XH, sizeof(__half) * (size_t)T * k);
        if (!xh) return -1;
        k_f32_to_f16<<<cuda_blocks((size_t)T * k, 256), 256, 0, g->stream>>>(x, (size_t)T * k, xh);
        CU_LAUNCHED(g);
        st = cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, T, k, &one, wh, CUDA_R_16F, k, xh, CUDA_R_16F, k, &zero,
                          y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS) return cuda_fail_msg(g, "cuBLAS matrix product (%d x %d x %d) failed: %s", m, T, k, blas_name(st));
    return 0;
}
