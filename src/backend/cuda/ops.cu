/* Small per-row ops on the GPU: RMSNorm, RoPE, the Hadamard rotation, SwiGLU, residual add.
 * Each follows its CPU twin in ops.c (RoPE angles in double as there). The ones a decode
 * step runs go through cuda_launch (pdl_wait first). */
#include "backend/cuda/mv8.cuh"

/* the block's sum of squares (ss: each thread's part) reduced to the RMS scale
 * (blockDim % 32 == 0) */
__device__ __forceinline__ float norm_scale(float ss, int n, float eps) {
    __shared__ float part[32];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    return (float)(1.0 / sqrt((double)part[0] / n + eps));
}

/* one output value, with qr also as 8-bit activations (whole warps: n % 32 == 0) */
__device__ __forceinline__ void norm_out(float v, float *o, int8_t *qr, int n, int i) {
    o[i] = v;
    if (qr) q8_store32(v, qr, n, i & ~31);
}

/* Both norms, a block per row: with y, x += y first (the residual add of one step and the
 * norm of the next); with xq, the output also as 8-bit activations (rows of xs bytes).
 * Rows of up to NPT * blockDim values stay in registers from load to output (NPT = 0: any
 * length, read again), so the norm costs two trips to memory instead of one per value a
 * thread holds (stores to x or out may alias later loads, which keeps the compiler from
 * overlapping them); the weights are loaded before pdl_wait. out may be y. */
template <int NPT>
__global__ void __launch_bounds__(1024) k_norm(float *out, float *x, const float *y, const float *__restrict__ w, int n,
                                               float eps, int8_t *xq, size_t xs) {
    constexpr int K = NPT ? NPT : 1;
    float wv[K], v[K];
    if (NPT) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            wv[k] = i < n ? w[i] : 0.0f;
        }
    }
    pdl_wait();
    pdl_next();
    float *xr = x + (size_t)blockIdx.x * n, *o = out + (size_t)blockIdx.x * n;
    const float *yr = y ? y + (size_t)blockIdx.x * n : NULL;
    int8_t *qr = xq ? xq + (size_t)blockIdx.x * xs : NULL;
    float ss = 0.0f;
    if (NPT) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            v[k] = 0.0f;
            if (i < n) { v[k] = xr[i]; if (yr) v[k] += yr[i]; ss += v[k] * v[k]; }
        }
#pragma unroll
        for (int k = 0; k < K; k++)
            if (yr && threadIdx.x + k * blockDim.x < n) xr[threadIdx.x + k * blockDim.x] = v[k];
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float a = xr[i];
            if (yr) { a += yr[i]; xr[i] = a; }
            ss += a * a;
        }
    }
    const float scale = norm_scale(ss, n, eps);
    if (NPT) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            if (i < n) norm_out(v[k] * scale * wv[k], o, qr, n, i);
        }
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) norm_out(xr[i] * scale * w[i], o, qr, n, i);
    }
}

/* the floats of a norm whose 8-bit activations a product made without the scale
 * (gpu_matmul_norm): out = res * scale * w, the scale from the groups' sums of squares */
__global__ void __launch_bounds__(1024) k_norm_ss(float *out, const float *res, const float *__restrict__ w,
                                                  const float *ss, int n, float eps) {
    pdl_wait();
    pdl_next();
    float s = 0.0f;
    for (int i = threadIdx.x; i < n / 32; i += blockDim.x) s += ss[i];
    const float scale = norm_scale(s, n, eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = res[i] * scale * w[i];
}

int cuda_norm_floats(gpu_ctx *g, const float *x) {
    if (!g->xq_ss || !x || g->xq_src != x) return 0;
    CU(g, cuda_launch(g, k_norm_ss, dim3(1), dim3(1024), 0, (float *)x, g->nf_res, g->nf_w, g->xq_ss, g->nf_n, g->nf_eps));
    g->xq_ss = NULL;
    g->xq_src = NULL;
    return 0;
}

static int norm_launch(gpu_ctx *g, float *out, float *x, const float *y, const float *w, int T, int n, float eps) {
    if (T <= 0) return 0;
    if (cuda_norm_floats(g, x) || cuda_norm_floats(g, y)) return -1;
    size_t xs = 0;
    int8_t *xq = cuda_q_take(g, n, T, &xs);
    const int per = cuda_blocks((size_t)n, 1024);
    void (*k)(float *, float *, const float *, const float *, int, float, int8_t *, size_t) =
        per <= 1 ? k_norm<1> : per <= 2 ? k_norm<2> : per <= 4 ? k_norm<4> : per <= 8 ? k_norm<8> : k_norm<0>;
    CU(g, cuda_launch(g, k, dim3(T), dim3(1024), 0, out, x, y, w, n, eps, xq, xs));
    if (xq) cuda_q_made(g, out, T);
    return 0;
}

extern "C" int gpu_add_rmsnorm(gpu_ctx *g, float *out, float *x, const float *y, const float *w, int T, int n, float eps) {
    return norm_launch(g, out, x, y, w, T, n, eps);
}

/* x is only read when there is no y */
extern "C" int gpu_rmsnorm(gpu_ctx *g, float *out, const float *x, const float *w, int T, int n, float eps) {
    return norm_launch(g, out, (float *)x, NULL, w, T, n, eps);
}

/* one thread per (vector, pair); vector t at x + t * stride, heads of hd inside it */
__global__ void k_rope(float *x, int T, size_t stride, int n_heads, int hd, int n_rot, float pos0, float pos_step,
                       float base, float freq_scale, const float *ff) {
    int np = n_rot / 2;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * n_heads * np) return;
    int p = (int)(i % np);
    int h = (int)((i / np) % n_heads);
    int t = (int)(i / ((size_t)np * n_heads));
    float c, s;
    rope_angle(pos0 + (float)t * pos_step, p, n_rot, base, freq_scale, ff, &c, &s);
    float *q = x + (size_t)t * stride + (size_t)h * hd + 2 * p;
    float a = q[0], b = q[1];
    q[0] = a * c - b * s;
    q[1] = a * s + b * c;
}

int cuda_rope_strided(gpu_ctx *g, float *x, int T, size_t stride, int n_heads, int hd, int n_rot, float pos0,
                      float pos_step, float base, float freq_scale, const float *ff) {
    size_t n = (size_t)T * n_heads * (n_rot / 2);
    if (n == 0) return 0;
    k_rope<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(x, T, stride, n_heads, hd, n_rot, pos0, pos_step, base, freq_scale, ff);
    CU_LAUNCHED(g);
    return 0;
}

/* RoPE of q ([T][nq heads]) and k ([T][nk heads]) at the same positions in one launch;
 * pos0 from *dpos when given (graph replays) */
__global__ void k_rope2(float *q, float *k, int T, int nq, int nk, int hd, int n_rot, float pos0, const int *dpos,
                        float base, float freq_scale, const float *ff) {
    pdl_wait();
    pdl_next();
    int np = n_rot / 2, nh = nq + nk;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * nh * np) return;
    int p = (int)(i % np);
    int h = (int)((i / np) % nh);
    int t = (int)(i / ((size_t)np * nh));
    float c, sn;
    rope_angle((dpos ? (float)*dpos : pos0) + (float)t, p, n_rot, base, freq_scale, ff, &c, &sn);
    float *v = h < nq ? q + ((size_t)t * nq + h) * hd + 2 * p : k + ((size_t)t * nk + (h - nq)) * hd + 2 * p;
    float a = v[0], b = v[1];
    v[0] = a * c - b * sn;
    v[1] = a * sn + b * c;
}

extern "C" int gpu_rope_qk(gpu_ctx *g, float *q, float *k, int T, int nq, int nk, int hd, int n_rot, float pos0,
                           float base, float freq_scale, const float *ff) {
    size_t n = (size_t)T * (nq + nk) * (n_rot / 2);
    if (n == 0) return 0;
    CU(g, cuda_launch(g, k_rope2, dim3(cuda_blocks(n, 256)), dim3(256), 0, q, k, T, nq, nk, hd, n_rot, pos0,
                      (const int *)(g->pos_on ? g->dpos : NULL), base, freq_scale, ff));
    return 0;
}

extern "C" int gpu_rope(gpu_ctx *g, float *x, int T, int n_heads, int hd, int n_rot, float pos0, float pos_step,
                        float base, float freq_scale, const float *ff) {
    return cuda_rope_strided(g, x, T, (size_t)n_heads * hd, n_heads, hd, n_rot, pos0, pos_step, base, freq_scale, ff);
}

/* One block per chunk of b values: signs, Walsh-Hadamard butterflies in shared memory,
 * scale (inverse: butterflies, then scale and signs), exactly as cpu_hadamard orders it. */
__global__ void k_hadamard(float *x, int n_inner, size_t stride, int n, int b, int inverse) {
    extern __shared__ float sh[];
    int chunks = n / b;
    int chunk = blockIdx.x % chunks;
    size_t vec = blockIdx.x / chunks;
    int o = (int)(vec / n_inner), in = (int)(vec % n_inner);
    float *y = x + (size_t)o * stride + (size_t)in * n + (size_t)chunk * b;
    for (int i = threadIdx.x; i < b; i += blockDim.x) sh[i] = inverse ? y[i] : y[i] * cuda_sign_at(i);
    __syncthreads();
    for (int h = 1; h < b; h *= 2) {
        for (int k = threadIdx.x; k < b / 2; k += blockDim.x) {
            int j = (k / h) * 2 * h + (k % h);
            float a = sh[j], c = sh[j + h];
            sh[j] = a + c;
            sh[j + h] = a - c;
        }
        __syncthreads();
    }
    float norm = 1.0f / sqrtf((float)b);
    for (int i = threadIdx.x; i < b; i += blockDim.x) y[i] = inverse ? sh[i] * (norm * cuda_sign_at(i)) : sh[i] * norm;
}

int cuda_hadamard_strided(gpu_ctx *g, float *x, int n_outer, size_t stride, int n_inner, int n, int inverse) {
    int b = cuda_hadamard_block(n);
    if (b > 8192) return cuda_fail_msg(g, "Hadamard block of %d values is larger than the GPU kernel's 8192", b);
    size_t blocks = (size_t)n_outer * n_inner * (n / b);
    if (blocks == 0) return 0;
    if (blocks > 0x7fffffffu) return cuda_fail_msg(g, "Hadamard rotation over too many vectors");
    int th = b / 2 < 256 ? (b / 2 > 32 ? b / 2 : 32) : 256;
    k_hadamard<<<(unsigned)blocks, th, sizeof(float) * b, g->stream>>>(x, n_inner, stride, n, b, inverse);
    CU_LAUNCHED(g);
    return 0;
}

extern "C" int gpu_hadamard(gpu_ctx *g, float *x, int n_vec, int n, int inverse) {
    return cuda_hadamard_strided(g, x, n_vec, (size_t)n, 1, n, inverse);
}

__global__ void k_swiglu(float *gate, const float *up, size_t n) {
    pdl_wait();
    pdl_next();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) gate[i] = silu_mul(gate[i], up[i]);
}

/* the same, rows of row values also stored as 8-bit activations (row % 32 == 0) */
__global__ void k_swiglu_q(float *gate, const float *up, size_t n, int row, int8_t *xq, size_t xs) {
    pdl_wait();
    pdl_next();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;   /* whole warps: n % 32 == 0 */
    const float v = silu_mul(gate[i], up[i]);
    gate[i] = v;
    const size_t t = i / row;
    const int j = (int)(i % row);
    q8_store32(v, xq + t * xs, row, j & ~31);
}

extern "C" int gpu_swiglu(gpu_ctx *g, float *gate, const float *up, size_t n) {
    if (!n) return 0;
    size_t xs = 0;
    int8_t *xq = g->q_next && g->q_rows > 0 && n % (size_t)g->q_rows == 0
                     ? cuda_q_take(g, g->q_rows, (int)(n / (size_t)g->q_rows), &xs) : cuda_q_take(g, 0, 0, &xs);
    if (xq) {
        CU(g, cuda_launch(g, k_swiglu_q, dim3(cuda_blocks(n, 256)), dim3(256), 0, gate, up, n, g->q_rows, xq, xs));
        cuda_q_made(g, gate, (int)(n / (size_t)g->q_rows));
        return 0;
    }
    CU(g, cuda_launch(g, k_swiglu, dim3(cuda_blocks(n, 256)), dim3(256), 0, gate, up, n));
    return 0;
}

__global__ void k_add(float *x, const float *y, size_t n) {
    pdl_wait();
    pdl_next();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

extern "C" int gpu_add(gpu_ctx *g, float *x, const float *y, size_t n) {
    if (!n) return 0;
    if (cuda_norm_floats(g, y)) return -1;
    CU(g, cuda_launch(g, k_add, dim3(cuda_blocks(n, 256)), dim3(256), 0, x, y, n));
    return 0;
}
