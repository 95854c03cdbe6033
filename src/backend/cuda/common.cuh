/* Shared by the CUDA files: the gpu_ctx behind gpu.h, error handling that turns every CUDA
 * status into a message (never an abort), scratch buffers and small warp helpers. */
#ifndef HEARTH_CUDA_COMMON_CUH
#define HEARTH_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <stdio.h>

#include "backend/gpu.h"

/* captured decode steps a context keeps (graph.cu) */
#define GRAPH_KEEP 4

/* Scratch slots: each is a buffer that grows on demand and lives as long as the context. */
enum { SCR_WH = 0, SCR_XH, SCR_ATTN_PART, SCR_ATTN_Q, SCR_ATTN_O, SCR_KV_K, SCR_KV_V, SCR_KV_RAW, SCR_XQ, SCR_XQ2, SCR_SS, SCR_COUNT };

struct gpu_ctx {
    int dev;                /* the engine's device slot (messages) */
    int phys;               /* the CUDA device it runs on (gpu_phys) */
    cudaEvent_t done;       /* recorded before another card reads this one's output */
    cudaStream_t stream;
    cublasHandle_t blas;
    int sm_count;
    void *scr[SCR_COUNT];
    size_t scr_size[SCR_COUNT];
    unsigned scr_gen;       /* counts scratch reallocations (a captured graph holds the old pointers) */
    /* decode steps as CUDA graphs (device.cu): while pos_on, kernels that take a position
     * read it from *dpos, and attention sizes its grid for cap_cells cells */
    int *dpos;
    int pos_on, cap_cells;
    /* launches through cuda_launch overlap the previous kernel's tail (programmatic
     * dependent launch); on while pos_on unless HEARTH_NO_PDL is set */
    int pdl;
    /* set by a pos-mode cache store, taken by the decode attention queued right after it:
     * that one's blocks may start before the store ends (attn_dec.cu) */
    int kv_stored;
    /* AD_CNT_MAX counters, zero between launches: the decode attention's last chunk block of a
     * (KV head, pass) finds itself with one and merges the states (attn_dec.cu) */
    int *ad_cnt;
    /* KV_CNT_MAX counters, zero between launches: the last block of each quantization group
     * of a q, k, v product that stores K and V (gpu_matmul_rope_store) finds itself with one.
     * Made with the context: a step captured into a graph cannot make them (a lazy making on
     * the first step that stored left a context whose first stores came in a capture, as
     * hearth bench's at depth after its warm-up, without them) */
    int *kv_cnt;
    /* the last decode attention's output, and whether its blocks outnumber the
     * multiprocessors (gpu_matmul_norm's choice for the product after it) */
    const float *ad_out;
    int ad_fill;
    /* whether the product after it should be the plain one, not fused with the norm
     * (cuda_attn_dec decides it with its own choices at fill) */
    int ad_wo_plain;
    /* HEARTH_AD_PROBE (attn_dec.cu): the decode attention's per-block clock readings, the next
     * slot; written out by cuda_ad_probe_dump when the context is freed */
    unsigned long long *ad_probe;
    int ad_probe_i;
    /* the cells the decode step being captured suits: kernels whose choice depends on the
     * depth narrow it (cuda_graph_cells) */
    int graph_lo, graph_hi;
    /* captured decode steps, each with the cells it suits: a step replays one that fits
     * (gpu_graph_pick), so a depth that goes back and forth over a choice's limit (hearth
     * bench's repetitions, a server's requests) does not capture anew each time; graph_cur
     * is the one picked or being captured (-1: none), the least recently used one makes room */
    struct { cudaGraphExec_t exec; int lo, hi; unsigned gen, used; } graphs[GRAPH_KEEP];
    int graph_cur;
    unsigned graph_clock, graph_captures;
    /* pinned, mapped host memory a decode step's input and output go through (graph.cu,
     * gpu_host_buf: slot 0 the input, 1 the output) and the position the step takes to dpos
     * (gpu_pos_host); a captured graph's kernels hold these pointers */
    void *host[2];
    size_t host_size[2];
    int *hpos;
    /* 8-bit activations made by the kernel that wrote x (mv8.cu): q_next asks the next
     * norm / SwiGLU to quantize its output into SCR_XQ too; xq_src is the float buffer
     * that xq_buf (SCR_XQ, or SCR_XQ2 when a product wrote it) now holds (xq_T tokens of
     * it), valid until the next matrix product */
    int q_next, q_rows, xq_T;
    const float *xq_src;
    int8_t *xq_buf;
    size_t xq_bytes;
    /* with xq_ss: xq_buf holds res ⊙ w before the norm's scale (a product that added its rows
     * to res made it, gpu_matmul_norm), xq_ss the sums of squares of res's 32-value groups,
     * from which the reader takes the scale; a reader that needs the floats of xq_src has
     * them made first (cuda_norm_floats, from nf_res, nf_w, nf_eps, nf_n) */
    const float *xq_ss;
    const float *nf_res, *nf_w;
    float nf_eps;
    int nf_n;
    char err[512];
};

/* The CUDA device behind an engine device slot (HEARTH_GPU_VIRTUAL maps every slot to 0). */
int gpu_phys(int dev);

/* Records a failure in g->err and returns -1. */
int cuda_fail(gpu_ctx *g, const char *what, cudaError_t e);
int cuda_fail_msg(gpu_ctx *g, const char *fmt, ...);
/* Makes the floats of x where its 8-bit activations stand without the norm's scale
 * (gpu_matmul_norm) and forgets those activations; nothing otherwise (ops.cu). */
int cuda_norm_floats(gpu_ctx *g, const float *x);
/* Narrows the cells the step being captured suits to lo..hi (graph.cu). */
void cuda_graph_cells(gpu_ctx *g, int lo, int hi);
/* HEARTH_AD_PROBE's readings to the file it names (attn_dec.cu); nothing without them. */
void cuda_ad_probe_dump(gpu_ctx *g);
/* A scratch buffer of at least bytes (contents undefined); NULL with g->err set. */
void *cuda_scratch(gpu_ctx *g, int slot, size_t bytes);

#define CU(g, call)                                                     \
    do {                                                                \
        cudaError_t e_ = (call);                                        \
        if (e_ != cudaSuccess) return cuda_fail((g), #call, e_);        \
    } while (0)
/* after a kernel launch */
#define CU_LAUNCHED(g) CU(g, cudaGetLastError())

/* Up to this many cells a decode step's cache store is on the step's path (the attention
 * has little else to do): kv.cu spreads a row's store over many blocks, and mv8.cu does it
 * in the q, k, v product. Deeper, the store runs beside the attention (kv.cu). */
#define KV_SPLIT_CELLS 2048
#define KV_CNT_MAX 1024

static inline int cuda_blocks(size_t n, int per) { return (int)((n + per - 1) / per); }

/* Programmatic dependent launch (sm_90): a kernel queued with cuda_launch while g->pdl is
 * on may start while the kernel before it still runs. It must call pdl_wait() before it
 * reads or writes anything another kernel touches (before that it may only read constant
 * data such as weights), and calls pdl_next() to let the kernel after it start early.
 * Both are no-ops for a plain launch. */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... P, typename... A>
static inline cudaError_t cuda_launch(gpu_ctx *g, void (*k)(P...), dim3 grid, dim3 block, size_t shmem, A... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = shmem;
    cfg.stream = g->stream;
    cfg.attrs = at;
    cfg.numAttrs = g->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, args...);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The sign flips of cpu_hadamard (ops.c); the same hash, so rotations agree bit for bit. */
/* RoPE's rotation of pair p at position pos (angles in double, as the CPU's ops.c) */
__device__ __forceinline__ void rope_angle(float pos, int p, int n_rot, float base, float freq_scale, const float *ff,
                                           float *c, float *s) {
    double theta = pos * freq_scale * pow((double)base, -(double)(2 * p) / n_rot);
    if (ff) theta /= ff[p];
    *c = (float)cos(theta);
    *s = (float)sin(theta);
}

/* SwiGLU of one value: silu(g) * u */
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* One Hadamard butterfly across lanes o apart (part of a warp-wide stage): the lower lane
 * of a pair gets a + c, the upper a - c, as cpu_hadamard's x[j], x[j + h]. All lanes call it. */
__device__ __forceinline__ float hadamard_xor(float v, int o) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    return (threadIdx.x & o) ? other - v : v + other;
}

__device__ __forceinline__ float cuda_sign_at(int i) {
    uint32_t h = (uint32_t)i * 0x9E3779B1u;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    return (h & 1) ? -1.0f : 1.0f;
}

static inline int cuda_hadamard_block(int n) {
    int b = 1;
    while (n % (b * 2) == 0) b *= 2;
    return b;
}

/* Hadamard on vectors laid out as vector (o, i) at x + o * stride + i * n, o < n_outer,
 * i < n_inner (lets a padded row layout be rotated in place). */
int cuda_hadamard_strided(gpu_ctx *g, float *x, int n_outer, size_t stride, int n_inner, int n, int inverse);
int cuda_rope_strided(gpu_ctx *g, float *x, int T, size_t stride, int n_heads, int hd, int n_rot, float pos0,
                      float pos_step, float base, float freq_scale, const float *ff);

/* prompt attention on the tensor cores (attn_gemm.cu) */
int cuda_attn_gemm_ok(const attn_args *a);
int cuda_attn_gemm(gpu_ctx *g, const attn_args *a);

#endif
