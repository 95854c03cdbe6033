/* Attention for a prompt batch (many query tokens) on the tensor cores: the entry point for
 * batches of 32 tokens or more (attn.cu). The fused kernel of attn_prompt.cu takes the call
 * when it can (head sizes 64 and 128, no row-rotated cache, sm_80+); otherwise, and with
 * HEARTH_CUDA_PP=gemm, the path below, which writes whole score matrices (slow at depth):
 *
 * With hundreds of query tokens attention is arithmetic, not bandwidth: every cell meets
 * every token. So the layer's cells are expanded once to f16 (K and V, whatever the cache
 * type: the cache itself stays quantized), and cuBLAS computes the scores Q K^T per head, a
 * kernel applies the causal mask and the softmax (in f32) and writes f16 weights, and cuBLAS
 * computes P V. Tokens go in slices so the score buffer stays under 256 MiB. Query heads of
 * one KV head share its K and V (grouped-query attention): the products are batched over KV
 * heads, one call per position in the group. The same result as attn.cu's kernels up to f16
 * rounding of q, K, V and the weights. */
#include "backend/cuda/dequant.cuh"

extern "C" {
#include "util/log.h"
}
#include <string.h>

/* the fused prompt kernel (attn_prompt.cu): takes the call unless why_not gives a reason */
const char *cuda_attn_prompt_why_not(const gpu_ctx *g, const attn_args *a);
int cuda_attn_prompt(gpu_ctx *g, const attn_args *a);

/* out[c][i] = value i of cell c's row (i < row), as f16 */
template <int T>
__global__ void k_rows_f16(const uint8_t *__restrict__ src, size_t rb, int n, int row, __half *__restrict__ out) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n * row) return;
    int c = (int)(idx / row), i = (int)(idx % row);
    out[idx] = __float2half_rn(dq1<T>(src + (size_t)c * rb, i));
}

/* q [T][H][hd] -> f16 in [H][T][hd] order: a KV head's query heads are then one matrix of
 * gs * T columns, so each product is one batched call over the KV heads */
__global__ void k_q_f16(const float *__restrict__ q, int T, int H, int hd, __half *__restrict__ out) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * H * hd) return;
    int d = (int)(i % hd);
    size_t th = i / hd;
    int h = (int)(th % H), t = (int)(th / H);
    out[((size_t)h * T + t) * hd + d] = __float2half_rn(q[i]);
}

/* o [H][tc][hd] (slice) -> out [T][H][hd] rows t0.. */
__global__ void k_scatter_o(const float *__restrict__ o, int tc, int H, int hd, float *__restrict__ out) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)tc * H * hd) return;
    int d = (int)(i % hd);
    size_t ht = i / hd;
    int t = (int)(ht % tc), h = (int)(ht / tc);
    out[((size_t)t * H + h) * hd + d] = o[i];
}

/* s: [H][tc][n_vis] scores; p: the same shape in f16. Token t (0..tc) of the slice sees
 * cells 0..pos0+t. A block per (head, token). s may be the scores of a slice of tc rows
 * inside a buffer laid out for that slice. */
__global__ void k_mask_softmax(const float *__restrict__ s, __half *__restrict__ p, int tc, int n_vis, int pos0) {
    const int t = blockIdx.x % tc;
    const float *sr = s + (size_t)blockIdx.x * n_vis;
    __half *pr = p + (size_t)blockIdx.x * n_vis;
    int n = pos0 + t + 1;
    if (n > n_vis) n = n_vis;
    __shared__ float red[32];
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < n; c += blockDim.x) mx = fmaxf(mx, sr[c]);
    mx = warp_max(mx);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x) sum += __expf(sr[c] - mx);
    sum = warp_sum(sum);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sum;
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) sum += red[w];
    const float inv = 1.0f / sum;
    for (int c = threadIdx.x; c < n_vis; c += blockDim.x) pr[c] = __float2half_rn(c < n ? __expf(sr[c] - mx) * inv : 0.0f);
}

static int rows_to_f16(gpu_ctx *g, int type, const uint8_t *src, size_t rb, int n, int row, __half *out) {
    size_t work = (size_t)n * row;
    switch (type) {
#define X(t) case t: k_rows_f16<t><<<cuda_blocks(work, 256), 256, 0, g->stream>>>(src, rb, n, row, out); break;
        CUDA_CACHE_TYPES(X)
#undef X
    default: return cuda_fail_msg(g, "no f16 expansion for this cache type");
    }
    CU_LAUNCHED(g);
    return 0;
}

static int blas_fail(gpu_ctx *g, cublasStatus_t st, const char *what) {
    return cuda_fail_msg(g, "cuBLAS %s failed (status %d)", what, (int)st);
}

/* Usable for this call: no row-rotated cache, whole f16 vectors. */
int cuda_attn_gemm_ok(const attn_args *a) {
    return a->T >= 32 && !a->k_row_rot && !a->v_row_rot && a->head_dim % 8 == 0;
}

int cuda_attn_gemm(gpu_ctx *g, const attn_args *a) {
    const char *why = cuda_attn_prompt_why_not(g, a);
    if (!why) return cuda_attn_prompt(g, a);
    static int said;
    if (!said) {
        said = 1;
        log_info("CUDA prompt attention: %s, so scores go through cuBLAS (slower at depth)", why);
    }
    const int H = a->n_head, G = a->n_head_kv, gs = H / G, hd = a->head_dim, T = a->T, row = a->row;
    const int n_cells = a->n_cells;
    cudaStream_t s = g->stream;
    /* K, V expanded; the query in f16 */
    const size_t kv_elems = (size_t)n_cells * row;
    __half *kf = (__half *)cuda_scratch(g, SCR_WH, sizeof(__half) * (2 * kv_elems + (size_t)T * H * hd));
    if (!kf) return -1;
    __half *vf = kf + kv_elems, *qf = vf + kv_elems;
    if (rows_to_f16(g, a->type_k, a->k, a->k_row_bytes, n_cells, row, kf) ||
        rows_to_f16(g, a->type_v, a->v, a->v_row_bytes, n_cells, row, vf))
        return -1;
    size_t nq = (size_t)T * H * hd;
    k_q_f16<<<cuda_blocks(nq, 256), 256, 0, s>>>(a->q, T, H, hd, qf);
    CU_LAUNCHED(g);
    /* token slices: scores (f32), weights (f16) and the slice's output in one buffer of at
     * most 2 GiB; the fewer the slices the more tiles each product has to spread over */
    size_t per_tok = (size_t)H * n_cells * (sizeof(float) + sizeof(__half)) + (size_t)H * hd * sizeof(float);
    size_t cap = (size_t)2 << 30;
    int tstep = (int)(cap / per_tok);
    if (tstep < 16) tstep = 16;
    if (tstep > T) tstep = T;
    uint8_t *buf = (uint8_t *)cuda_scratch(g, SCR_ATTN_PART, per_tok * tstep);
    if (!buf) return -1;
    float *sc = (float *)buf;
    __half *pw = (__half *)(buf + sizeof(float) * (size_t)H * tstep * n_cells);
    float *ot = (float *)(buf + (sizeof(float) + sizeof(__half)) * (size_t)H * tstep * n_cells);
    const float one = 1.0f, zero = 0.0f;
    for (int t0 = 0; t0 < T; t0 += tstep) {
        const int tc = T - t0 < tstep ? T - t0 : tstep;
        int n_vis = a->pos0 + t0 + tc;
        if (n_vis > n_cells) n_vis = n_cells;
        const long long sS = (long long)tc * n_vis;   /* one head's scores */
        /* query columns of KV head g: heads g*gs.., tokens t0..t0+tc; with one slice they are
         * contiguous ([H][T][hd]); with several, one call per head of the group */
        const int per_call = tc == T ? gs : 1;
        for (int j = 0; j < gs; j += per_call) {
            /* S (n_vis x cols) = K_g (hd x n_vis)^T . Q (hd x cols), column-major */
            cublasStatus_t st = cublasGemmStridedBatchedEx(
                g->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_vis, tc * per_call, hd, &a->scale,
                kf, CUDA_R_16F, row, hd,
                qf + ((size_t)j * T + t0) * hd, CUDA_R_16F, hd, (long long)gs * T * hd,
                &zero, sc + (size_t)j * sS, CUDA_R_32F, n_vis, gs * sS,
                G, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(g, st, "attention scores");
        }
        k_mask_softmax<<<H * tc, 256, 0, s>>>(sc, pw, tc, n_vis, a->pos0 + t0);
        CU_LAUNCHED(g);
        /* O (hd x gs*tc) = V_g (hd x n_vis) . P_g^T: a group's weights are contiguous rows */
        cublasStatus_t st = cublasGemmStridedBatchedEx(
            g->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, gs * tc, n_vis, &one,
            vf, CUDA_R_16F, row, hd,
            pw, CUDA_R_16F, n_vis, gs * sS,
            &zero, ot, CUDA_R_32F, hd, (long long)gs * tc * hd,
            G, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(g, st, "attention output");
        size_t no = (size_t)tc * H * hd;
        k_scatter_o<<<cuda_blocks(no, 256), 256, 0, s>>>(ot, tc, H, hd, a->out + (size_t)t0 * H * hd);
        CU_LAUNCHED(g);
    }
    return 0;
}
