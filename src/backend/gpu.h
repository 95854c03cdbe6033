/* gpu: the GPU backend as the engine sees it (CUDA today). Plain C; with CUDA built out
 * (or no usable card) every entry point is a stub and gpu_device_count() is 0, so the
 * engine runs as CPU-only without a special case.
 *
 * Pointers named d* or documented "device" point into one card's memory. Kernels are
 * queued on a gpu_ctx's stream and return 0, or -1 with gpu_ctx_error() set; a later
 * gpu_sync() reports asynchronous faults. Nothing here aborts. */
#ifndef HEARTH_GPU_H
#define HEARTH_GPU_H

#include <stddef.h>
#include <stdint.h>
#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- devices ---- */
/* Usable cards (0 without CUDA, driver or card). */
int gpu_device_count(void);
/* Why gpu_device_count() is 0, for the one-line message ("this build has no CUDA", ...). */
const char *gpu_unavailable_reason(void);
/* Name and memory of a card; 0 or -1. */
int gpu_device_info(int dev, char *name, size_t n, size_t *free_bytes, size_t *total_bytes);

/* D2D copy bandwidth in GB/s (read + write), timed with events; 0 on failure. */
double gpu_copy_bandwidth(int dev);

/* Device memory. what names the buffer in the out-of-memory message. */
void *gpu_malloc(int dev, size_t bytes, const char *what, char *err, size_t errlen);
void  gpu_free(int dev, void *p);
/* Synchronous host -> device copy (weights at load). */
int   gpu_upload(int dev, void *dst, const void *src, size_t bytes, char *err, size_t errlen);

/* ---- a stream on one card, with its scratch and BLAS handle ---- */
typedef struct gpu_ctx gpu_ctx;
gpu_ctx *gpu_ctx_new(int dev, char *err, size_t errlen);
void gpu_ctx_free(gpu_ctx *g);
int  gpu_ctx_device(const gpu_ctx *g);
/* Makes g's card the current one for this thread (before queueing work for it). */
int  gpu_ctx_activate(gpu_ctx *g);
/* Peer access between cards a and b, both ways: 1 when on (or one physical card), 0 when
 * copies between them must go through the host (always 0 with HEARTH_GPU_NO_P2P=1, for
 * tests). Call at load, not per token. */
int  gpu_peer_enable(int a, int b);
/* Copies device bytes from src (on src_g's card, after all its queued work) to dst (on
 * dst_g's card), queued on dst_g's stream. direct: from gpu_peer_enable; otherwise the
 * bytes pass through host_tmp (bytes long) and both streams are waited for. Errors go
 * to dst_g. Leaves dst_g's card current. */
int  gpu_copy_peer(gpu_ctx *dst_g, void *dst, gpu_ctx *src_g, const void *src, size_t bytes, int direct,
                   void *host_tmp);
const char *gpu_ctx_error(const gpu_ctx *g);
int  gpu_to_device(gpu_ctx *g, void *dst, const void *src, size_t bytes);
int  gpu_to_host(gpu_ctx *g, void *dst, const void *src, size_t bytes);   /* waits */
int  gpu_to_host_async(gpu_ctx *g, void *dst, const void *src, size_t bytes);   /* queued only */
int  gpu_copy(gpu_ctx *g, void *dst, const void *src, size_t bytes);      /* device to device */
int  gpu_memset0(gpu_ctx *g, void *dst, size_t bytes);
int  gpu_sync(gpu_ctx *g);

/* Rearranges a weight matrix just uploaded to the card (w->data on dev) into the layout its
 * decode kernel reads fastest and sets w->layout; leaves other types as they are. */
int gpu_weight_layout(int dev, wtensor *w, char *err, size_t errlen);

/* The next gpu_rmsnorm / gpu_add_rmsnorm / gpu_swiglu feeds w (T tokens): it also writes
 * its output as the 8-bit activations w's decode kernel reads, saving a launch. The
 * output must go straight into gpu_matmul(w) (any other product forgets it). */
void gpu_quant_next(gpu_ctx *g, const wtensor *w, int T);

/* ---- a decode step as a CUDA graph ----
 * gpu_set_pos queues a write of the position to a device int; while pos mode is on, RoPE,
 * gpu_kv_put and decode attention take pos0 from there (their pos0 arguments are ignored)
 * and attention sizes its grid for cap_cells cells. Capture the step between
 * gpu_graph_begin and gpu_graph_end (ok = 0 when queueing failed: the capture is thrown
 * away), replay it with gpu_graph_launch. Some choices depend on the depth, so a graph
 * suits a range of cells: a context keeps a few, gpu_graph_pick finds the one for a step's
 * cells, and gpu_graph_ready says whether the one picked last can be replayed. */
int  gpu_set_pos(gpu_ctx *g, int pos);
void gpu_pos_mode(gpu_ctx *g, int on, int cap_cells);
int  gpu_graph_ready(const gpu_ctx *g);
/* 1 when one of the context's captured steps suits n_cells cells (it becomes the one
 * gpu_graph_launch replays); 0: capture one (gpu_graph_begin makes room) */
int  gpu_graph_pick(gpu_ctx *g, int n_cells);
void gpu_graph_drop(gpu_ctx *g);
int  gpu_graph_begin(gpu_ctx *g);
int  gpu_graph_end(gpu_ctx *g, int ok);
int  gpu_graph_launch(gpu_ctx *g);
/* A decode step's input and output through pinned, mapped host memory: gpu_host_buf makes
 * slot 0 (input) or 1 (output) of bytes, kept for the context's life (NULL with the error
 * set; asked again, the same buffer if it is large enough); *gpu_pos_host is the position the host writes
 * before each step (NULL when it cannot be made). gpu_pos_in queues its copy to the card;
 * or gpu_step_in queues a kernel that reads it and n floats of hx across the bus into dx,
 * and gpu_step_out one that writes n floats of y into hy, so that a captured step holds
 * its input and output and a replay is one launch. */
void *gpu_host_buf(gpu_ctx *g, int slot, size_t bytes);
int *gpu_pos_host(gpu_ctx *g);
int  gpu_pos_in(gpu_ctx *g);
int  gpu_step_in(gpu_ctx *g, float *dx, const float *hx, int n);
int  gpu_step_out(gpu_ctx *g, float *hy, const float *y, int n);
/* 1 when a one-token decode with these arguments can run in pos mode (flash attention) */
int  gpu_attn_pos_ok(const attn_args *a, int flash);

/* ---- kernels (all operands in device memory) ---- */
/* y[t] = W x[t] for t < T; w->data is the device copy of the weights. */
int gpu_matmul(gpu_ctx *g, const wtensor *w, const float *x, int T, float *y);
int gpu_rmsnorm(gpu_ctx *g, float *out, const float *x, const float *w, int T, int n, float eps);
/* x += y, then out = rmsnorm(x) (a residual add and the next norm in one launch). */
int gpu_add_rmsnorm(gpu_ctx *g, float *out, float *x, const float *y, const float *w, int T, int n, float eps);
/* gpu_rope of q (nq heads) and k (nk heads) at positions pos0 + t, in one launch. */
int gpu_rope_qk(gpu_ctx *g, float *q, float *k, int T, int nq, int nk, int hd, int n_rot, float pos0, float base,
                float freq_scale, const float *freq_factors);
/* gpu_matmul_n of (wq, wk, wv) into y[0..2], then gpu_rope_qk of y[0] and y[1]; one
 * token with q8_0 weights does the rotation in the product's last step (one launch). */
int gpu_matmul_rope(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq, int nk, int hd,
                    int n_rot, float pos0, float base, float freq_scale, const float *freq_factors);
/* gate_out = silu(gate x) * (up x) (gpu_matmul_n, then gpu_swiglu, which takes a
 * gpu_quant_next request); one token with q8_0 weights does it in one launch, up_out unused. */
int gpu_matmul_swiglu(gpu_ctx *g, const wtensor *gate, const wtensor *up, const float *x, int T, float *gate_out,
                      float *up_out);
/* One token: res += W x, then the next norm (weights nw) of res made as the 8-bit activations
 * of the product that gpu_quant_next named, all in one launch; that product takes the norm's
 * scale itself, and out (its x) holds no floats unless a reader needs them (then they are
 * made). Returns 1, having done nothing, where the kernels do not apply (then do gpu_matmul
 * into out and gpu_add_rmsnorm). */
int gpu_matmul_norm(gpu_ctx *g, const wtensor *w, const float *x, int T, float *res, const float *nw, float eps, float *out);
/* gpu_matmul of n (<= 3) matrices of one type and width on the same x: one launch for
 * decode where it can, else one call each. */
int gpu_matmul_n(gpu_ctx *g, const wtensor *const *w, int n, const float *x, int T, float *const *y);
/* RoPE of T vectors of n_heads heads; vector t is at position pos0 + t * pos_step. */
int gpu_rope(gpu_ctx *g, float *x, int T, int n_heads, int hd, int n_rot, float pos0, float pos_step,
             float base, float freq_scale, const float *freq_factors);
/* cpu_hadamard on n_vec vectors of n values (contiguous). */
int gpu_hadamard(gpu_ctx *g, float *x, int n_vec, int n, int inverse);
int gpu_swiglu(gpu_ctx *g, float *gate, const float *up, size_t n);
int gpu_add(gpu_ctx *g, float *x, const float *y, size_t n);
/* attn_args with device pointers; the same semantics as cpu_attn_flash/plain. */
int gpu_attn(gpu_ctx *g, const attn_args *a, int flash);
/* gpu_attn with each query head gpu_hadamard-rotated first (rot_q; a->q is changed or
 * not) and each output head rotated back after (rot_o): the caches rotated per head. The
 * decode kernel does both on the way, saving two launches. */
int gpu_attn_rot(gpu_ctx *g, const attn_args *a, int flash, int rot_q, int rot_o);

/* The part of a KV cache layout the GPU needs (see kv.h). */
typedef struct gpu_kv_layout {
    int row, row_k, row_v, head_dim, n_head_kv;
    int type_k, type_v, rot_k, rot_v;
    size_t kb, vb;
} gpu_kv_layout;
/* Stores T rows of K and V (row values each) at cells pos0.. of one layer's buffers;
 * rotates, subtracts mu (K of quantized types) and quantizes as kv_put does. With
 * set_mu, mu is first set from these rows (kv.c's set_offset). */
int gpu_kv_put(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, float *mu, int set_mu,
               int pos0, int T, const float *k, const float *v);
/* One layer's cache store: gpu_kv_put's arguments but the rows and cells (kv_store_gpu). */
typedef struct gpu_kv_store {
    gpu_kv_layout L;
    uint8_t *dk, *dv;
    float *mu;
    int set_mu;
} gpu_kv_store;
/* gpu_matmul_rope, and for one token its K and V rows (y[1], y[2]) stored into cell pos0 of
 * st's layer as gpu_kv_put stores them, in the product's own launch (mv8.cu). Returns 0 when
 * the rows are stored, 1 when only the product ran (the caller then does gpu_kv_put), -1 on
 * failure. */
int gpu_matmul_rope_store(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq, int nk,
                          int hd, int n_rot, int pos0, float base, float freq_scale, const float *freq_factors,
                          const gpu_kv_store *st);
/* kv_shift for one layer's buffers (n_cells in use before the shift). */
int gpu_kv_shift(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, const float *mu,
                 int n_cells, int n_keep, int n_discard, int n_rot, float base, float freq_scale,
                 const float *freq_factors);

#ifdef __cplusplus
}
#endif
#endif
