/* CPU SIMD kernels: the interface between the portable drivers (matmul.c, attn.c) and the
 * x86 files compiled with per-file flags: -mavx2 -mfma -mf16c (mm_x86.c, attn_x86.c) and
 * those plus AVX-512 F/BW/VL/VNNI (mm_x512.c, attn_x512.c).
 *
 * What runs where (level = cpu_simd_level()):
 *   matmul, one token (decode): q8_0 q4_k q5_k q6_k -> AVX-512 VNNI straight from the blocks
 *     (level 2); every other type, and all of them at level 1 -> the AVX2 tiles of mm_x86.c
 *   matmul, batches of >= 4 tokens: every quantized type -> AVX-512 VNNI panels (level 2);
 *     f32 f16 bf16, and everything at level 1 -> the AVX2 tiles
 *   attention: SIMD decoders for f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl, SIMD scores,
 *     float exp and weighted sums (AVX-512 for the latter at level 2)
 *
 * The drivers ask cpu_simd_level() once per call and take a SIMD path only when the CPU
 * has the features (checked at run time, so the binary runs on any x86-64) and nobody
 * forced the scalar reference (HEARTH_SIMD=scalar or cpu_simd_force). On AArch64 level 1
 * is NEON: the matmul tiles of mm_neon.c (an SDOT copy in mm_neon_dot.c when the CPU has
 * the dot-product extension) and the attention helpers of attn_neon.c; the batch panels
 * are x86-only (batches use the tiles). On other
 * architectures every getter returns NULL and the scalar code runs. */
#ifndef HEARTH_CPU_SIMD_H
#define HEARTH_CPU_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* ---- activations quantized to 8 bits ----
 * One token's row of n values becomes, at byte offsets given by mm_act_layout:
 *   qs[n]     int8, |q| <= 127
 *   d[]       float scales: one per 32 values (MM_ACT_B32) or per 256 (MM_ACT_K)
 *   s[n/32]   float d * sum(qs) of each 32 values (B32; the minimum terms of q4_1/q5_1)
 *   bs[n/16]  int16 sum(qs) of each 16 values (K; the minimum terms of the k-quants)
 * A weight type uses the format whose blocks line up with its own: 32-value blocks take
 * B32 (the peer's q8_0 activations), k-quants take K (the peer's q8_K), so that one
 * integer dot product covers a weight block and the float work is per block, not per
 * value. Float weights (f32 f16 bf16) use the activations as they are (MM_ACT_F32). */
enum { MM_ACT_F32 = 0, MM_ACT_B32 = 1, MM_ACT_K = 2 };

typedef struct mm_act_layout { size_t qs, d, s, bs, stride; } mm_act_layout;
static inline mm_act_layout mm_act_layout_of(int64_t n) {
    mm_act_layout l;
    l.qs = 0;
    l.d = ((size_t)n + 63) & ~(size_t)63;
    l.s = l.d + 4 * (size_t)(n / 32);
    l.bs = l.s + 4 * (size_t)(n / 32);
    l.stride = (l.bs + 2 * (size_t)(n / 16) + 63) & ~(size_t)63;
    return l;
}

/* Tile kernel: y[t * ldy + r] = dot(row r of w, token t) for r < nr, t < nc, where nr and
 * nc are at most the kernel's MM_TILE_R and MM_TILE_C. xa points at token 0's activations
 * (floats or a quantized row), xstride is the byte distance between tokens. */
#define MM_TILE_R 4
#define MM_TILE_C 2
typedef void (*mm_tile_fn)(const uint8_t *w, size_t row_bytes, int nr, const uint8_t *xa, size_t xstride,
                           int nc, int64_t n, float *y, size_t ldy);
/* Quantize one token (n values, a multiple of the format's block) into dst. */
typedef void (*mm_quant_fn)(const float *x, int64_t n, uint8_t *dst);

typedef struct mm_kernels {
    int act;          /* MM_ACT_* */
    int block;        /* n must be a multiple of this */
    mm_tile_fn tile;
} mm_kernels;

/* NULL when the type has no SIMD kernel at this level (the scalar path runs). */
const mm_kernels *cpu_mm_kernels(int type);
mm_quant_fn cpu_mm_quant(int act);

/* Per-level tables, defined by the x86 files. */
const mm_kernels *mmx_avx2_kernels(int type);
mm_quant_fn mmx_avx2_quant(int act);
const mm_kernels *mmn_neon_kernels(int type);   /* mm_neon.c, AArch64 */
mm_quant_fn mmn_neon_quant(int act);
const mm_kernels *mmn_dot_kernels(int type);    /* mm_neon_dot.c, the same with SDOT */
mm_quant_fn mmn_dot_quant(int act);

/* ---- batched products through a panel (AVX-512 VNNI) ----
 * For a batch of tokens, the 32-value-block and k-quant types all run one kernel: each
 * group of MM_PANEL_R weight rows is first unpacked into a panel (unsigned bytes, a float
 * scale per 4 values, a float bias coefficient per 16 values) that serves every token, so
 * the inner loop is the same four instructions for every type: vpdpbusd (64 byte products
 * summed into 16 int32 lanes), a conversion, and two float multiplies. The activations are
 * quantized per 32 values (per 256 for the k-quants), the scale repeated per 4. */
#define MM_PANEL_R 4
#define MM_PANEL_C 4
/* corr (activations only): -128 * the sum of each lane's 4 values, int32, the offset of
 * signed weights stored + 128 (the q8_0 decode kernel starts its vpdpbusd sums there) */
typedef struct mm_panel_layout { size_t q, sc, c, corr, stride; } mm_panel_layout;
static inline mm_panel_layout mm_panel_layout_of(int64_t n) {
    mm_panel_layout l;
    l.q = 0;
    l.sc = ((size_t)n + 63) & ~(size_t)63;
    l.c = l.sc + sizeof(float) * (size_t)(n / 4);
    l.corr = (l.c + sizeof(float) * (size_t)(n / 16) + 63) & ~(size_t)63;
    l.stride = (l.corr + sizeof(int32_t) * (size_t)(n / 4) + 63) & ~(size_t)63;
    return l;
}
typedef struct mm_panel {
    /* one weight row (n values, n a multiple of 64) to panel form at dst */
    void (*convert)(const uint8_t *row, int64_t n, uint8_t *dst);
    /* one token to the activation form (same layout: int8 q, scale per 4, d * sum per 16) */
    void (*quant)(const float *x, int64_t n, uint8_t *dst);
    /* y[t * ldy + r] for r < nr <= MM_PANEL_R, t < nc <= MM_PANEL_C; rows and tokens are
     * panels of stride bytes */
    void (*tile)(const uint8_t *w, int nr, const uint8_t *x, int nc, size_t stride, int64_t n, float *y, size_t ldy);
    /* one token (quantized by vec_quant) against nr <= 4 rows in their own format, y[r];
     * NULL where the AVX2 kernel serves decode well enough */
    void (*vec)(const uint8_t *w, size_t row_bytes, int nr, const uint8_t *x, int64_t n, float *y);
    /* one token to the form vec reads (q8_0: the panel layout; the k-quants: the
     * mm_vec_layout below); NULL where vec is */
    void (*vec_quant)(const float *x, int64_t n, uint8_t *dst);
} mm_panel;
/* The k-quant decode kernels' activations (one scale per 256 values, as the peer's q8_K),
 * laid out for integer sums over a whole super-block:
 *   q[n]      int8 levels in value order (q6_k's 64-byte loads give its values in order)
 *   qp[n]     the same with each 128 values' 32-value chunks in the order 0 2 1 3 (a 64-byte
 *             load of q4_k / q5_k nibbles, masked or shifted, gives chunks 0 and 2, or 1 and 3)
 *   d[n/256]  float scales
 *   bs[n/16]  the sum of each 16 levels as an int32 whose high 16 bits are zero (an int16 in
 *             an int32 lane, for vpdpwssd against scales held as int32: q6_k's offset)
 *   bs2[n/32] int16 sums of each 32 levels (q4_k / q5_k minimums) */
typedef struct mm_vec_layout { size_t q, qp, d, bs, bs2, stride; } mm_vec_layout;
static inline mm_vec_layout mm_vec_layout_of(int64_t n) {
    mm_vec_layout l;
    l.q = 0;
    l.qp = ((size_t)n + 63) & ~(size_t)63;
    l.d = l.qp + l.qp;
    l.bs = (l.d + sizeof(float) * (size_t)(n / 256) + 63) & ~(size_t)63;
    l.bs2 = (l.bs + 4 * (size_t)(n / 16) + 63) & ~(size_t)63;
    l.stride = (l.bs2 + 2 * (size_t)(n / 32) + 63) & ~(size_t)63;
    return l;
}
const mm_panel *cpu_mm_panel(int type);
const mm_panel *mmx_avx512_panel(int type);

/* ---- attention helpers (attn_x86.c) ---- */

/* A query head quantized for scores against a q8_0 K cache (attn.c quantizes it once per
 * call, the same way at every level). Per 32 values the query gets 16-bit levels
 * q = 254 * hi + lo, |q| <= 32258 (so the rounding is 2^-15 of the block's largest value,
 * not 2^-8), stored as two signed bytes hi and lo (|hi|, |lo| <= 127) that each meet K's
 * bytes in one 8-bit product. Layout: hd bytes hi, hd bytes lo, then per block the float
 * dq (the level step times the attention scale) and the int32 corr = -128 * (254 * sum(hi)
 * + sum(lo)) (for kernels that add 128 to K's levels to feed an unsigned-by-signed
 * product). */
typedef struct attn_q8_layout { size_t lo, d, corr, stride; } attn_q8_layout;
static inline attn_q8_layout attn_q8_layout_of(int hd) {
    attn_q8_layout l;
    l.lo = (size_t)hd;
    l.d = 2 * (size_t)hd;
    l.corr = l.d + sizeof(float) * (size_t)(hd / 32);
    l.stride = (l.corr + sizeof(int32_t) * (size_t)(hd / 32) + 63) & ~(size_t)63;
    return l;
}

typedef struct attn_simd {
    /* n cells' KV head segments [start, start + len) (cell c's row at base + c * row_bytes)
     * to n contiguous rows of len floats; only for types has_segment accepts, with len a
     * multiple of the type's block (8 for the float types) and start aligned to it. */
    void (*decode)(int type, const uint8_t *base, size_t row_bytes, int n, int start, int len, float *out);
    int  (*has_segment)(int type);
    /* out[c] = scale * dot(q, k + c * hd) for c < n (k rows contiguous). The result for a
     * row depends only on q and that row (and on n - c only through whether the row is
     * in a group of four), so both attention paths get bit-identical scores. */
    void (*dots)(const float *q, const float *k, int n, int hd, float scale, float *out);
    /* p[c] = exp(s[c] - m) for s[c] <= m (a few ulp); returns their sum */
    float (*exp_sum)(const float *s, int n, float m, float *p);
    /* one block of an online softmax: raises the running max *m to the block's, scales the
     * running sum *l to it, adds the block's p[c] = exp(s[c] - *m) to it and returns the
     * factor the accumulator must be scaled by (1 when the max stayed) */
    float (*online)(const float *s, int n, float *m, float *l, float *p);
    /* acc[i] = r * acc[i] + sum over c < n of p[c] * v[c * hd + i]; v is a block of V rows
     * decoded once and shared by every query head of the group */
    void (*wsum)(float *acc, float r, const float *p, const float *v, int n, int hd);
    /* Scores of nh quantized query heads (qq, qstride bytes apart) against n cells of a
     * q8_0 K cache, head segment [start, start + hd) (hd a multiple of 32), read where
     * they lie: out[h * ldo + c] = sum over blocks b of fma((float)isum_b, dk_b * dq_b),
     * in block order, isum_b = 254 * (hi . k) + (lo . k) computed exactly in int32. Every
     * implementation rounds the same way, so the scores are the same at every level;
     * NULL: attn.c's scalar one. */
    void (*kq8)(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start,
                int hd, float *out, int ldo);
    /* online for nh heads at once (the rows of s and p ld floats apart, m[h] l[h] r[h] per
     * head), so that their dependency chains (max, exp, sum) overlap; NULL: attn.c calls
     * online per head */
    void (*online_heads)(const float *s, int ld, int nh, int n, float *m, float *l, float *p, float *r);
    /* wsum for nh heads at once: acc + h * hd, r[h], p + h * ld; NULL: wsum per head */
    void (*wsum_heads)(float *acc, const float *r, const float *p, int ld, int nh, const float *v, int n, int hd);
    /* gate[i] = silu(gate[i]) * up[i] with the vector exp (ops.c's cpu_swiglu: the other
     * user of it); NULL: the scalar loop */
    void (*swiglu)(float *gate, const float *up, int n);
} attn_simd;
const attn_simd *cpu_attn_simd(void);
const attn_simd *attnx_avx2(void);
const attn_simd *attnx_avx512(void);
const attn_simd *attnn_neon(void);   /* attn_neon.c, AArch64 */
void attnx_avx2_decode(int type, const uint8_t *base, size_t row_bytes, int n, int start, int len, float *out);
int  attnx_avx2_has_segment(int type);
void attnx_avx2_dots(const float *q, const float *k, int n, int hd, float scale, float *out);
void attnx_avx2_kq8(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start,
                    int hd, float *out, int ldo);

#endif
