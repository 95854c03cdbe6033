/* KV cache writes and context shift on the GPU, step for step as kv.c does them: pad the
 * row to whole blocks, Hadamard-rotate (per head or across the row), subtract the layer's
 * K offset mu, quantize. */
#include "backend/cuda/quantize.cuh"

#include <limits.h>

extern "C" {
#include "kv/kv.h"
}

/* dst[t][0..padded) = src[t][0..row) then zeros */
__global__ void k_pad_rows(float *dst, const float *src, int T, int row, int padded) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * padded) return;
    int t = (int)(i / padded), c = (int)(i % padded);
    dst[i] = c < row ? src[(size_t)t * row + c] : 0.0f;
}

/* mu[i] = mean over rows 1..T-1 (BOS left out), zero with fewer than 3 rows (kv.c) */
__global__ void k_set_mu(float *mu, const float *x, int T, int row, int padded) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= padded) return;
    float s = 0.0f;
    if (T >= 3 && i < row) {
        for (int t = 1; t < T; t++) s += x[(size_t)t * padded + i];
        s /= (float)(T - 1);
    }
    mu[i] = s;
}

/* x[t][i] += sign * mu[i] for i < row */
__global__ void k_add_mu(float *x, const float *mu, int T, int row, int padded, float sign) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * padded) return;
    int c = (int)(i % padded);
    if (c < row) x[i] += sign * mu[c];
}

template <int T>
__global__ void k_quant_rows(const float *x, int n_rows, int padded, uint8_t *dst, size_t rb) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int per = padded / qinfo<T>::B;
    if (i >= (size_t)n_rows * per) return;
    int r = (int)(i / per), b = (int)(i % per);
    const float *xr = x + (size_t)r * padded;
    uint8_t *d = dst + (size_t)r * rb;
    if (T == QT_F32) ((float *)d)[b] = xr[b];
    else if (T == QT_F16) ((__half *)d)[b] = __float2half_rn(xr[b]);
    else if (T == QT_BF16) ((__nv_bfloat16 *)d)[b] = __float2bfloat16_rn(xr[b]);
    else {
        float v[32];
        for (int j = 0; j < 32; j++) v[j] = xr[32 * b + j];
        quant_block<T>(v, d + (size_t)b * qinfo<T>::BYTES);
    }
}

/* block formats: a warp per block */
template <int T>
__global__ void k_quant_rows_w(const float *x, int n_rows, int padded, uint8_t *dst, size_t rb) {
    size_t blk = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int per = padded / 32;
    if (blk >= (size_t)n_rows * per) return;   /* whole warps leave together */
    int r = (int)(blk / per), b = (int)(blk % per);
    float x0 = x[(size_t)r * padded + 32 * b + (threadIdx.x & 31)];
    w_quant_block<T>(x0, dst + (size_t)r * rb + (size_t)b * qinfo<T>::BYTES);
}

template <int T>
__global__ void k_dequant_rows(const uint8_t *src, size_t rb, int n_rows, int padded, float *x) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n_rows * padded) return;
    int r = (int)(i / padded), c = (int)(i % padded);
    x[i] = dq1<T>(src + (size_t)r * rb, c);
}

static int quant_rows(gpu_ctx *g, int type, const float *x, int n, int padded, uint8_t *dst, size_t rb) {
    const quant_traits *qt = quant_get(type);
    size_t work = (size_t)n * (padded / qt->block);
    if (!work) return 0;
    switch (type) {
    case QT_F32: case QT_F16: case QT_BF16:
        switch (type) {
#define X(t) case t: k_quant_rows<t><<<cuda_blocks(work, 256), 256, 0, g->stream>>>(x, n, padded, dst, rb); break;
            X(QT_F32) X(QT_F16) X(QT_BF16)
#undef X
        }
        break;
#define X(t) case t: k_quant_rows_w<t><<<cuda_blocks(work * 32, 128), 128, 0, g->stream>>>(x, n, padded, dst, rb); break;
        X(QT_Q8_0) X(QT_Q4_0) X(QT_Q4_1) X(QT_Q5_0) X(QT_Q5_1) X(QT_IQ4_NL)
#undef X
    default: return cuda_fail_msg(g, "CUDA cannot store a %s cache", qt->name);
    }
    CU_LAUNCHED(g);
    return 0;
}

static int dequant_rows(gpu_ctx *g, int type, const uint8_t *src, size_t rb, int n, int padded, float *x) {
    size_t work = (size_t)n * padded;
    if (!work) return 0;
    switch (type) {
#define X(t) case t: k_dequant_rows<t><<<cuda_blocks(work, 256), 256, 0, g->stream>>>(src, rb, n, padded, x); break;
        CUDA_CACHE_TYPES(X)
#undef X
    default: return cuda_fail_msg(g, "CUDA cannot read a %s cache", quant_get(type)->name);
    }
    CU_LAUNCHED(g);
    return 0;
}

/* one side's store: what k_store_rows needs of it; its row in pieces of piece values, a
 * block each */
struct store_job {
    const float *src;
    const float *mu;
    uint8_t *dst;
    size_t rb;
    int padded, vec, b, rot, piece;
};

/* The whole store of one row in one kernel: pad, rotate in shared memory, subtract mu,
 * quantize (a warp per block). Decode writes one row per layer and side, so this saves four
 * to six launches a layer over the step-by-step path. blockIdx.y picks the job (K and V of
 * one type go in one launch), blockIdx.z the piece of the row: pieces are whole rotation
 * chunks (b) and whole quantization blocks, so they are independent. A row's 32 quantized
 * blocks on one multiprocessor took 10 us for q8_0, 13.5 for q4_0 (H100, ncu, Mistral-7B's
 * 1024-value rows): the scale search of 32 warps on 4 schedulers is issue-bound; a piece of
 * 128 values a block (4 warps) spreads it over 16 multiprocessors. */
template <int T>
__global__ void __launch_bounds__(1024) k_store_rows(store_job j0, store_job j1, int row, const int *dpos) {
    const store_job &j = blockIdx.y ? j1 : j0;
    const float *__restrict__ src = j.src;
    const float *__restrict__ mu = j.mu;
    uint8_t *__restrict__ dst = j.dst;
    const size_t rb = j.rb;
    const int padded = j.padded, vec = j.vec, b = j.b, rot = j.rot, pc = j.piece;
    (void)vec;
    extern __shared__ float xs[];
    const int r = blockIdx.x, base = blockIdx.z * pc;
    /* In a decode step's graph (dpos) mu is fixed (set by a prompt batch before: gpu_kv_put),
     * so its values may be read before the wait, off the store's path. */
    const bool mu_early = mu && dpos && pc <= (int)blockDim.x;
    const float mu_v = mu_early && base + (int)threadIdx.x < row && (int)threadIdx.x < pc ? mu[base + threadIdx.x] : 0.0f;
    pdl_wait();
    pdl_next();
    if (base >= padded) return;   /* the other side's row has more pieces */
    if (dpos) dst += (size_t)*dpos * rb;   /* a graph replay: dst is the first cell */
    /* With a value per thread the butterflies of the first five stages are shuffles within
     * a warp (a + c to the lower index, a - c to the upper, as below), saving five barriers;
     * chunks start at multiples of b and row is one, so no pair straddles the row's end.
     * xs holds values base.. of the row (base a multiple of b and of 32). */
    int h0 = 1;
    if (pc <= (int)blockDim.x) {
        const int i = threadIdx.x, gi = base + i;
        float v = gi < row ? src[(size_t)r * row + gi] : 0.0f;
        if (rot && gi < row) v *= cuda_sign_at(gi % b);
        for (; rot && h0 < b && h0 < 32; h0 *= 2) v = hadamard_xor(v, h0);   /* i & 31 is the lane */
        if (i < pc) xs[i] = v;
    } else {
        for (int i = threadIdx.x; i < pc; i += blockDim.x) {
            const int gi = base + i;
            float v = gi < row ? src[(size_t)r * row + gi] : 0.0f;
            if (rot && gi < row) v *= cuda_sign_at(gi % b);
            xs[i] = v;
        }
    }
    __syncthreads();
    const int nrow = row - base < pc ? row - base : pc;   /* values of the piece in the row */
    if (rot) {
        /* vectors of vec values (head or row), each in chunks of b, as cpu_hadamard */
        for (int h = h0; h < b; h *= 2) {
            for (int k = threadIdx.x; k < nrow / 2; k += blockDim.x) {
                int chunk = k / (b / 2), kk = k % (b / 2);
                int j = chunk * b + (kk / h) * 2 * h + (kk % h);
                float a = xs[j], c = xs[j + h];
                xs[j] = a + c;
                xs[j + h] = a - c;
            }
            __syncthreads();
        }
        const float norm = 1.0f / sqrtf((float)b);
        for (int i = threadIdx.x; i < nrow; i += blockDim.x) xs[i] *= norm;
        __syncthreads();
    }
    if (mu) {
        if (mu_early) {
            if ((int)threadIdx.x < nrow) xs[threadIdx.x] -= mu_v;
        } else {
            for (int i = threadIdx.x; i < nrow; i += blockDim.x) xs[i] -= mu[base + i];
        }
        __syncthreads();
    }
    uint8_t *d = dst + (size_t)r * rb;
    if (qinfo<T>::B == 1) {
        for (int i = threadIdx.x; i < pc && base + i < padded; i += blockDim.x) {
            if (T == QT_F32) ((float *)d)[base + i] = xs[i];
            else if (T == QT_F16) ((__half *)d)[base + i] = __float2half_rn(xs[i]);
            else ((__nv_bfloat16 *)d)[base + i] = __float2bfloat16_rn(xs[i]);
        }
        return;
    }
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int blk = threadIdx.x >> 5; blk < pc / 32 && base + 32 * blk < padded; blk += nw)
        w_quant_block<T>(xs[32 * blk + lane], d + (size_t)(base / 32 + blk) * qinfo<T>::BYTES);
}

static int is_quantized(int type) { return type != QT_F32 && type != QT_F16 && type != QT_BF16; }

static int rotate_rows(gpu_ctx *g, const gpu_kv_layout *L, int mode, float *x, int n, int padded, int inverse) {
    if (mode == KV_ROT_ROW) return cuda_hadamard_strided(g, x, n, (size_t)padded, 1, L->row, inverse);
    if (mode == KV_ROT_HEAD) return cuda_hadamard_strided(g, x, n, (size_t)padded, L->n_head_kv, L->head_dim, inverse);
    return 0;
}

static store_job job_of(const gpu_kv_layout *L, int side, const float *src, const float *mu, uint8_t *dst, int split) {
    store_job j;
    j.src = src; j.mu = mu; j.dst = dst;
    j.rb = side ? L->vb : L->kb;
    j.padded = side ? L->row_v : L->row_k;
    int rot = side ? L->rot_v : L->rot_k;
    j.vec = rot == KV_ROT_ROW ? L->row : L->head_dim;
    j.b = rot ? cuda_hadamard_block(j.vec) : 1;
    j.rot = rot != 0;
    /* split: the row in up to 16 pieces of at least 64 values, each whole warps, whole
     * rotation chunks and whole quantization blocks (k_store_rows) */
    j.piece = j.padded;
    for (int n = 16; split && n > 1; n /= 2) {
        const int pc = j.padded / n;
        if (j.padded % n == 0 && pc % 32 == 0 && pc % j.b == 0 && pc >= 64) { j.piece = pc; break; }
    }
    return j;
}

/* K and V rows (a block per piece of a row; one launch when both sides have one type) */
static int store_fused(gpu_ctx *g, const gpu_kv_layout *L, const float *k, const float *v, int T, const float *mu,
                       uint8_t *dk, uint8_t *dv, const int *dpos, int split) {
    store_job jk = job_of(L, 0, k, is_quantized(L->type_k) ? mu : NULL, dk, split), jv = job_of(L, 1, v, NULL, dv, split);
    const bool one = L->type_k == L->type_v;
    for (int side = 0; side < (one ? 1 : 2); side++) {
        int type = side ? L->type_v : L->type_k;
        const int pc = one ? (jk.piece > jv.piece ? jk.piece : jv.piece) : side ? jv.piece : jk.piece;
        const int nk = jk.padded / jk.piece, nv = jv.padded / jv.piece;
        const int np = one ? (nk > nv ? nk : nv) : side ? nv : nk;
        size_t sh = sizeof(float) * (size_t)pc;
        /* a thread per value of a piece (a warp per 32-value block) */
        int th = (pc + 31) / 32 * 32;
        if (th > 1024) th = 1024;
        dim3 grid(T, one ? 2 : 1, np);
        const store_job &a = side ? jv : jk;
        cudaError_t e = cudaSuccess;
        switch (type) {
#define X(t) case t: e = cuda_launch(g, k_store_rows<t>, grid, dim3(th), sh, a, jv, L->row, dpos); break;
            CUDA_CACHE_TYPES(X)
#undef X
        default: return cuda_fail_msg(g, "CUDA cannot store a %s cache", quant_get(type)->name);
        }
        CU(g, e);
    }
    return 0;
}

extern "C" int gpu_kv_put(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, float *mu, int set_mu,
                          int pos0, int T, const float *k, const float *v) {
    if (T <= 0) return 0;
    /* rows in pieces over many multiprocessors while the store is on the step's path (up to
     * KV_SPLIT_CELLS cells: H100, tg128 at depth 0, q4_0 +2-3.5%, q8_0 +0.7%); deeper the
     * decode attention runs beside it, and a row a block leaves the attention's blocks their
     * room (pieces measured 0.3-0.8% slower at 32768 cells) */
    const int split = pos0 + T <= KV_SPLIT_CELLS;
    /* rows of up to 8192 values fit shared memory: one kernel for both sides (one per side
     * when their types differ); setting mu needs all rows first, so that batch takes the
     * step-by-step path below */
    if (g->pos_on) {
        /* a decode step being captured: the cell comes from the card */
        if (set_mu || L->row_k > 8192 || L->row_v > 8192) return cuda_fail_msg(g, "cache store in pos mode needs the fused path");
        /* a graph keeps its choice: the cells it suits (gpu_graph_pick) */
        if (split) cuda_graph_cells(g, 0, KV_SPLIT_CELLS);
        else cuda_graph_cells(g, KV_SPLIT_CELLS + 1, INT_MAX);
        if (store_fused(g, L, k, v, T, mu, dk, dv, g->dpos, split)) return -1;
        g->kv_stored = 1;   /* the decode attention queued next may overlap it (attn_dec.cu) */
        return 0;
    }
    if (!set_mu && L->row_k <= 8192 && L->row_v <= 8192) {
        return store_fused(g, L, k, v, T, mu, dk + (size_t)pos0 * L->kb, dv + (size_t)pos0 * L->vb, NULL, split);
    }
    for (int side = 0; side < 2; side++) {
        int type = side ? L->type_v : L->type_k, padded = side ? L->row_v : L->row_k, rot = side ? L->rot_v : L->rot_k;
        size_t rb = side ? L->vb : L->kb;
        uint8_t *dst = (side ? dv : dk) + (size_t)pos0 * rb;
        float *tmp = (float *)cuda_scratch(g, side ? SCR_KV_V : SCR_KV_K, sizeof(float) * (size_t)T * padded);
        if (!tmp) return -1;
        size_t n = (size_t)T * padded;
        k_pad_rows<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(tmp, side ? v : k, T, L->row, padded);
        CU_LAUNCHED(g);
        if (rotate_rows(g, L, rot, tmp, T, padded, 0)) return -1;
        if (!side && is_quantized(type) && mu) {
            if (set_mu) {
                k_set_mu<<<cuda_blocks((size_t)padded, 128), 128, 0, g->stream>>>(mu, tmp, T, L->row, padded);
                CU_LAUNCHED(g);
            }
            k_add_mu<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(tmp, mu, T, L->row, padded, -1.0f);
            CU_LAUNCHED(g);
        }
        if (quant_rows(g, type, tmp, T, padded, dst, rb)) return -1;
    }
    return 0;
}

extern "C" int gpu_kv_shift(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, const float *mu,
                            int n_cells, int n_keep, int n_discard, int n_rot, float base, float freq_scale,
                            const float *ff) {
    int n_move = n_cells - n_keep - n_discard;
    if (n_move <= 0) return 0;
    /* the moved rows go through scratch: source and destination ranges may overlap */
    size_t kbytes = (size_t)n_move * L->kb, vbytes = (size_t)n_move * L->vb;
    uint8_t *raw = (uint8_t *)cuda_scratch(g, SCR_KV_RAW, kbytes > vbytes ? kbytes : vbytes);
    if (!raw) return -1;
    CU(g, cudaMemcpyAsync(raw, dv + (size_t)(n_keep + n_discard) * L->vb, vbytes, cudaMemcpyDeviceToDevice, g->stream));
    CU(g, cudaMemcpyAsync(dv + (size_t)n_keep * L->vb, raw, vbytes, cudaMemcpyDeviceToDevice, g->stream));
    CU(g, cudaMemcpyAsync(raw, dk + (size_t)(n_keep + n_discard) * L->kb, kbytes, cudaMemcpyDeviceToDevice, g->stream));
    int padded = L->row_k;
    float *x = (float *)cuda_scratch(g, SCR_KV_K, sizeof(float) * (size_t)n_move * padded);
    if (!x) return -1;
    if (dequant_rows(g, L->type_k, raw, L->kb, n_move, padded, x)) return -1;
    size_t n = (size_t)n_move * padded;
    if (mu) { k_add_mu<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(x, mu, n_move, L->row, padded, 1.0f); CU_LAUNCHED(g); }
    if (rotate_rows(g, L, L->rot_k, x, n_move, padded, 1)) return -1;
    if (cuda_rope_strided(g, x, n_move, (size_t)padded, L->n_head_kv, L->head_dim, n_rot, (float)-n_discard, 0.0f, base,
                          freq_scale, ff))
        return -1;
    if (rotate_rows(g, L, L->rot_k, x, n_move, padded, 0)) return -1;
    if (mu) { k_add_mu<<<cuda_blocks(n, 256), 256, 0, g->stream>>>(x, mu, n_move, L->row, padded, -1.0f); CU_LAUNCHED(g); }
    return quant_rows(g, L->type_k, x, n_move, padded, dk + (size_t)n_keep * L->kb, L->kb);
}
