/* The GPU entry points in a build without CUDA: no devices, and every call fails with a
 * message (the engine never calls them when gpu_device_count() is 0). */
#ifndef HEARTH_CUDA
#include "backend/gpu.h"

#include <stdio.h>

int gpu_device_count(void) { return 0; }
const char *gpu_unavailable_reason(void) { return "this build has no CUDA backend (built without nvcc)"; }
int gpu_device_info(int dev, char *name, size_t n, size_t *f, size_t *t) { return -1; }
void *gpu_malloc(int dev, size_t bytes, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "cannot allocate %s: %s", what, gpu_unavailable_reason());
    return NULL;
}
double gpu_copy_bandwidth(int dev) { return 0; }
void gpu_free(int dev, void *p) { (void)p; }
int gpu_upload(int dev, void *dst, const void *src, size_t bytes, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", gpu_unavailable_reason());
    return -1;
}
gpu_ctx *gpu_ctx_new(int dev, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", gpu_unavailable_reason());
    return NULL;
}
void gpu_ctx_free(gpu_ctx *g) { (void)g; }
int gpu_ctx_device(const gpu_ctx *g) { return -1; }
int gpu_ctx_activate(gpu_ctx *g) { return -1; }
int gpu_peer_enable(int a, int b) { return 0; }
int gpu_copy_peer(gpu_ctx *dg, void *d, gpu_ctx *sg, const void *s, size_t n, int direct, void *tmp) { return -1; }
const char *gpu_ctx_error(const gpu_ctx *g) { return gpu_unavailable_reason(); }
int gpu_to_device(gpu_ctx *g, void *d, const void *s, size_t n) { return -1; }
int gpu_to_host(gpu_ctx *g, void *d, const void *s, size_t n) { return -1; }
int gpu_to_host_async(gpu_ctx *g, void *d, const void *s, size_t n) { return -1; }
int gpu_copy(gpu_ctx *g, void *d, const void *s, size_t n) { return -1; }
int gpu_memset0(gpu_ctx *g, void *d, size_t n) { return -1; }
int gpu_sync(gpu_ctx *g) { return -1; }
int gpu_matmul(gpu_ctx *g, const wtensor *w, const float *x, int T, float *y) { return -1; }
int gpu_rmsnorm(gpu_ctx *g, float *out, const float *x, const float *w, int T, int n, float eps) { return -1; }
int gpu_add_rmsnorm(gpu_ctx *g, float *out, float *x, const float *y, const float *w, int T, int n, float eps) { return -1; }
int gpu_rope_qk(gpu_ctx *g, float *q, float *k, int T, int nq, int nk, int hd, int n_rot, float pos0, float base,
                float freq_scale, const float *ff) { return -1; }
int gpu_matmul_n(gpu_ctx *g, const wtensor *const *w, int n, const float *x, int T, float *const *y) { return -1; }
int gpu_rope(gpu_ctx *g, float *x, int T, int n_heads, int hd, int n_rot, float pos0, float pos_step, float base,
             float freq_scale, const float *ff) { return -1; }
int gpu_hadamard(gpu_ctx *g, float *x, int n_vec, int n, int inverse) { return -1; }
int gpu_swiglu(gpu_ctx *g, float *gate, const float *up, size_t n) { return -1; }
int gpu_matmul_rope(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq, int nk, int hd,
                    int n_rot, float pos0, float base, float freq_scale, const float *freq_factors) { return -1; }
int gpu_matmul_swiglu(gpu_ctx *g, const wtensor *gate, const wtensor *up, const float *x, int T, float *gate_out,
                      float *up_out) { return -1; }
int gpu_matmul_norm(gpu_ctx *g, const wtensor *w, const float *x, int T, float *res, const float *nw, float eps,
                    float *out) { return -1; }
int gpu_add(gpu_ctx *g, float *x, const float *y, size_t n) { return -1; }
int gpu_attn(gpu_ctx *g, const attn_args *a, int flash) { return -1; }
int gpu_weight_layout(int dev, wtensor *w, char *err, size_t errlen) { return 0; }
void gpu_quant_next(gpu_ctx *g, const wtensor *w, int T) { (void)g; }
int gpu_set_pos(gpu_ctx *g, int pos) { return -1; }
void gpu_pos_mode(gpu_ctx *g, int on, int cap_cells) { (void)g; }
int gpu_graph_ready(const gpu_ctx *g) { return 0; }
int gpu_graph_pick(gpu_ctx *g, int n_cells) { (void)g; (void)n_cells; return 0; }
void gpu_graph_drop(gpu_ctx *g) { (void)g; }
int gpu_graph_begin(gpu_ctx *g) { return -1; }
int gpu_graph_end(gpu_ctx *g, int ok) { return -1; }
int gpu_graph_launch(gpu_ctx *g) { return -1; }
void *gpu_host_buf(gpu_ctx *g, int slot, size_t bytes) { return NULL; }
int *gpu_pos_host(gpu_ctx *g) { return NULL; }
int gpu_pos_in(gpu_ctx *g) { return -1; }
int gpu_step_in(gpu_ctx *g, float *dx, const float *hx, int n) { return -1; }
int gpu_step_out(gpu_ctx *g, float *hy, const float *y, int n) { return -1; }
int gpu_attn_pos_ok(const attn_args *a, int flash) { return 0; }
int gpu_attn_rot(gpu_ctx *g, const attn_args *a, int flash, int rot_q, int rot_o) { return -1; }
int gpu_kv_put(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, float *mu, int set_mu, int pos0, int T,
               const float *k, const float *v) { return -1; }
int gpu_matmul_rope_store(gpu_ctx *g, const wtensor *const *w, const float *x, int T, float *const *y, int nq, int nk,
                          int hd, int n_rot, int pos0, float base, float freq_scale, const float *freq_factors,
                          const gpu_kv_store *st) { return -1; }
int gpu_kv_shift(gpu_ctx *g, const gpu_kv_layout *L, uint8_t *dk, uint8_t *dv, const float *mu, int n_cells, int n_keep,
                 int n_discard, int n_rot, float base, float freq_scale, const float *ff) { return -1; }
#else
typedef int hearth_cuda_stub_unused; /* ISO C forbids an empty translation unit */
#endif
