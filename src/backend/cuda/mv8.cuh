/* q8_0 weights in the split layout (mv8.cu): decode products on 8-bit activations. */
#ifndef HEARTH_CUDA_MV8_CUH
#define HEARTH_CUDA_MV8_CUH

#include "backend/cuda/common.cuh"
extern "C" {
#include "quant/quant.h"
}

/* up to three matrices of one type and width on one x, rows numbered through all of them */
struct mv_set {
    const uint8_t *w[3];
    float *y[3];
    int rows[3];
    size_t rb;
};

/* 1 when gpu_weight_layout rearranges w (q8_0, rows of a multiple of 256 values) */
int cuda_q8_split_ok(const wtensor *w);
/* bytes per token of quantized activations: ne0 int8, then ne0/32 float scales */
size_t cuda_act_stride(int ne0);
/* x ([T][ne0] floats) quantized into scratch; *xq points at it */
int cuda_quant_act(gpu_ctx *g, const float *x, int ne0, int T, int8_t **xq);
/* y = W x for the set's split-layout matrices (n_rows in all), T <= any; one token goes
 * through k_mv2 (rows of a multiple of 512 values) unless HEARTH_NO_MV1 is set */
int cuda_mv_q8s(gpu_ctx *g, const mv_set *ms, int n_rows, int ne0, const float *x, int T);
/* a split-layout matrix expanded to f16 */
int cuda_q8s_to_f16(gpu_ctx *g, const wtensor *w, __half *out);

/* For a producer kernel (norms, SwiGLU) asked to quantize its output (gpu_quant_next): the
 * SCR_XQ buffer for T rows of n values, or NULL when not asked or n does not fit the
 * kernels; *xs gets the row stride. Clears the request. */
int8_t *cuda_q_take(gpu_ctx *g, int n, int T, size_t *xs);
/* after the producer's launch: SCR_XQ holds x */
static inline void cuda_q_made(gpu_ctx *g, const float *x, int T) {
    g->xq_src = x;
    g->xq_ss = NULL;
    g->xq_T = T;
    g->xq_buf = (int8_t *)g->scr[SCR_XQ];
    g->xq_bytes = g->scr_size[SCR_XQ];
}

/* The 8-bit activation rule, as the CPU's integer kernels quantize (per 32 values with
 * largest magnitude amax): q = round(x * q8_inv(amax)), stored scale q8_scale(amax), the
 * f16-rounded amax / 127. */
__device__ __forceinline__ float q8_inv(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }
__device__ __forceinline__ float q8_scale(float amax) { return __half2float(__float2half_rn(amax / 127.0f)); }

/* a whole warp, lanes on 32 consecutive values of a row (j0 = the first's index): the
 * values as 8-bit activations */
__device__ __forceinline__ void q8_store32(float v, int8_t *row, int ne0, int j0) {
    const int lane = threadIdx.x & 31;
    float amax = warp_max(fabsf(v));
    row[j0 + lane] = (int8_t)__float2int_rn(v * q8_inv(amax));
    if (lane == 0) ((float *)(row + ne0))[j0 >> 5] = q8_scale(amax);
}

#endif
