/* backend: kernels with no model knowledge. Only the CPU backend exists so far; its
 * capability question is cpu_supports_cache_type (every type in the table that has both
 * to_float and from_float). */
#ifndef HEARTH_BACKEND_H
#define HEARTH_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "util/pool.h"

/* A 2-D weight: rows of ne0 values in any quant type. */
typedef struct wtensor {
    int type;
    int64_t ne0, ne1;
    size_t row_bytes;
    const void *data;
    int layout;         /* how a GPU copy's rows are arranged: WL_* (host copies: always 0) */
} wtensor;
enum { WL_GGUF = 0, WL_Q8_SPLIT = 1 /* q8_0: a row's int8 values, then its f16 scales */ };

/* y[t][r] = dot(W row r, x[t]) for t < T, r < W.ne1. x is [T][ne0], y is [T][ne1]. */
void cpu_matmul(pool *p, const wtensor *w, const float *x, int T, float *y);
/* y[i] = w[i] x for n tensors of the same input width: as n cpu_matmul calls, but a
 * decode step quantizes x once and runs them as one job */
void cpu_matmul_n(pool *p, const wtensor *const *w, int n, const float *x, int T, float *const *y);
/* SIMD level the kernels use: 0 scalar reference, 1 AVX2+FMA+F16C, 2 also AVX-512
 * (F BW VL) with VNNI (batched quantized matmuls). Detected once at run
 * time; HEARTH_SIMD=scalar in the environment, or cpu_simd_force(0), pins the scalar path
 * (tests compare both). cpu_simd_force(-1) returns to detection. */
/* level 1 is AVX2+FMA+F16C on x86-64 and NEON on AArch64 */
enum { CPU_SIMD_SCALAR = 0, CPU_SIMD_AVX2 = 1, CPU_SIMD_NEON = 1, CPU_SIMD_AVX512 = 2 };
int  cpu_simd_level(void);
void cpu_simd_force(int level);
const char *cpu_simd_name(int level);

/* Row r of w as floats (embedding lookup). */
void cpu_get_row(const wtensor *w, int64_t r, float *out);

void cpu_rmsnorm(float *out, const float *x, const float *weight, int n, float eps);
/* llama RoPE (adjacent pairs) on the first n_rot values of each of n_heads heads of size
 * hd, at position pos. freq_factors (n_rot/2 values) may be NULL. */
void cpu_rope(float *x, int n_heads, int hd, int n_rot, float pos, float base, float freq_scale,
              const float *freq_factors);
/* An orthonormal transform of x (n values) in chunks of the largest power of two dividing
 * n: fixed sign flips, then a Walsh-Hadamard transform; inverse = 1 undoes it. */
void cpu_hadamard(float *x, int n, int inverse);
int  cpu_hadamard_block(int n);
void cpu_swiglu(float *gate, const float *up, int n); /* gate = silu(gate) * up */

/* Values [start, start+len) of a row stored in quant type `type`. tmp must hold
 * len + 2 * block floats. */
void cpu_row_segment(int type, const void *row, int start, int len, float *out, float *tmp);

/* Attention of T query tokens over the first n_cells cells of one layer's cache. Token t
 * is at position pos0 + t and sees cells 0..pos0+t (cell index == position). */
typedef struct attn_args {
    int T, n_head, n_head_kv, head_dim;
    int pos0, n_cells;
    const float *q;                 /* [T][n_head * head_dim] */
    const uint8_t *k, *v;           /* cell c's row at k + c * k_row_bytes */
    size_t k_row_bytes, v_row_bytes;
    int type_k, type_v;
    int row;                        /* values in a cell's row (all KV heads) */
    int k_row_rot, v_row_rot;       /* rows are Hadamard-rotated as a whole: undo on read */
    float scale;
    float *out;                     /* [T][n_head * head_dim] */
} attn_args;
/* Both return 0, or -1 when their scratch cannot be allocated. */
int cpu_attn_flash(pool *p, const attn_args *a);
/* Plain: full score rows, softmax, weighted sum; uses scratch of T*n_head*n_cells floats. */
int cpu_attn_plain(pool *p, const attn_args *a);

#endif
