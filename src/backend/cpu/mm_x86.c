/* AVX2 + FMA + F16C matrix kernels (this file alone is compiled with those flags; simd.c
 * calls it only after checking the CPU has them).
 *
 * Quantized weights: the activations are quantized to 8 bits once per matmul (mm_act_*),
 * then each weight block meets them in an integer dot product: maddubs multiplies unsigned
 * by signed bytes into int16 pairs, madd sums those into int32. Weights whose levels are
 * signed (q8_0, q4_0, q5_0, iq4_nl, q3_k, q6_k) go through the sign trick: |w| times x with
 * w's sign moved onto x, so maddubs still sees an unsigned operand. The products fit: a
 * pair is at most 2 * 128 * 127 < 32767, so nothing saturates.
 *
 * Blocking: a tile is MM_TILE_R weight rows by MM_TILE_C tokens. Each weight block is
 * unpacked once into registers and used for every token of the tile, and each activation
 * block for every row: the unpacking (nibble shifts, fifth bits, scales) is paid once per
 * R x C products. For decode (one token) the tile is R rows x 1 token and the kernel is
 * bound by reading the weights.
 *
 * The generic tile bodies below are always_inline functions of (type, R, C) constants, so
 * each instantiation compiles to straight-line code for its type with the accumulators in
 * registers (the type switches fold away). */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include "backend/cpu/x86_common.h"

/* sum of 4-byte groups of u * s (u unsigned, s signed) as int32 lanes */
INLINE __m256i dot_us(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }
/* the same with int16 weights per pair of bytes (k-quant sub-block scales) */
INLINE __m256i dot_us_w(__m256i u, __m256i s, __m256i w16) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), w16); }

/* ---- activation quantizers ---- */

/* 32 floats to 32 int8 with scale id (already 1/d); returns the four int32 vectors too. */
INLINE __m256i q32(const float *x, __m256 id, __m256i *i32) {
    __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    i32[0] = a; i32[1] = b; i32[2] = c; i32[3] = d;
    /* packs interleave 128-bit lanes; the permute puts the 8-value groups back in order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INLINE __m256 absmax8(__m256 m, const float *x) {
    return _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x)));
}

INLINE float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void quant_b32(const float *x, int64_t n, uint8_t *dst) {
    mm_act_layout L = mm_act_layout_of(n);
    int8_t *qs = (int8_t *)(dst + L.qs);
    float *d = (float *)(void *)(dst + L.d), *s = (float *)(void *)(dst + L.s);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 32; i += 8) m = absmax8(m, xb + i);
        /* the scale is kept at f16 precision, as the peer's q8_0 activations are */
        float amax = hmax(m), dd = _cvtsh_ss(_cvtss_sh(amax / 127.0f, 0)), id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m256i i32[4];
        _mm256_storeu_si256((__m256i *)(qs + b * 32), q32(xb, _mm256_set1_ps(id), i32));
        int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3])));
        d[b] = dd;
        s[b] = dd * (float)sum;
    }
}

static void quant_k(const float *x, int64_t n, uint8_t *dst) {
    mm_act_layout L = mm_act_layout_of(n);
    int8_t *qs = (int8_t *)(dst + L.qs);
    float *d = (float *)(void *)(dst + L.d);
    int16_t *bs = (int16_t *)(void *)(dst + L.bs);
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + b * 256;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 256; i += 8) m = absmax8(m, xb + i);
        float amax = hmax(m), id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        for (int c = 0; c < 8; c++) {
            __m256i i32[4];
            _mm256_storeu_si256((__m256i *)(qs + b * 256 + c * 32), q32(xb + c * 32, _mm256_set1_ps(id), i32));
            bs[b * 16 + 2 * c] = (int16_t)hsum_i32(_mm256_add_epi32(i32[0], i32[1]));
            bs[b * 16 + 2 * c + 1] = (int16_t)hsum_i32(_mm256_add_epi32(i32[2], i32[3]));
        }
    }
}

/* ---- 32-value block types ---- */

/* Decode reads each weight once, from memory: software prefetch this many blocks ahead
 * keeps several cache lines in flight per row (the hardware prefetcher alone was measured
 * to leave the kernel at a third of the machine's read bandwidth). A prefetch past the
 * row's end is harmless (no fault, just a wasted line). */
#define PF_BLOCKS 24

INLINE void tile_b32(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs,
                     int64_t n, float *y, size_t ldy) {
    const mm_act_layout L = mm_act_layout_of(n);
    const size_t bb = b32_bytes(type);
    __m256 acc[MM_TILE_R][MM_TILE_C];
    float bias[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) { acc[r][t] = _mm256_setzero_ps(); bias[r][t] = 0.0f; }
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i wq[MM_TILE_R], wa[MM_TILE_R];
        __m256 av[MM_TILE_R];
        float c[MM_TILE_R];
        for (int r = 0; r < R; r++) {
            float a;
            if (C == 1) _mm_prefetch((const char *)(w + (size_t)r * rb + (size_t)(b + PF_BLOCKS) * bb), _MM_HINT_T0);
            wq[r] = unpack_b32(type, w + (size_t)r * rb + (size_t)b * bb, &a, &c[r]);
            if (b32_signed(type)) wa[r] = _mm256_sign_epi8(wq[r], wq[r]);
            av[r] = _mm256_set1_ps(a);
        }
        for (int t = 0; t < C; t++) {
            const uint8_t *xt = xa + (size_t)t * xs;
            __m256i xv = ld256(xt + L.qs + (size_t)b * 32);
            __m256 dx = _mm256_set1_ps(((const float *)(const void *)(xt + L.d))[b]);
            for (int r = 0; r < R; r++) {
                __m256i p = b32_signed(type) ? dot_us(wa[r], _mm256_sign_epi8(xv, wq[r])) : dot_us(wq[r], xv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(av[r], dx), acc[r][t]);
                if (b32_bias(type)) bias[r][t] += c[r] * ((const float *)(const void *)(xt + L.s))[b];
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = hsum(acc[r][t]) + bias[r][t];
}

/* ---- k-quants: 256-value super-blocks against MM_ACT_K activations ----
 * Per super-block the integer products of its eight 32-value chunks are weighted by the
 * sub-block scales inside madd (as int16) and summed in int32; the float work is two FMAs
 * per super-block and token: d * dx * sum(scale * q * x) and -dmin * dx * sum(min * bsum). */

typedef struct kprep {
    float d, dmin;
    __m256i sc[8];   /* per chunk: the scale of each byte pair's sub-block, as int16 */
    __m256i mins;    /* 16 int16 minimums, one per 16 values (q2_k q4_k q5_k) */
} kprep;

/* two 16-value sub-block scales as the int16 weights of one 32-value chunk */
INLINE __m256i sc_pair(int s0, int s1) { return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0)); }

INLINE void prep_k(int type, const uint8_t *p, kprep *k) {
    switch (type) {
    case QT_Q4_K: case QT_Q5_K: {
        int sc[8], mn[8];
        k->d = ldh(p); k->dmin = ldh(p + 2);
        k4_scales(p + 4, sc, mn);
        for (int j = 0; j < 8; j++) k->sc[j] = _mm256_set1_epi16((short)sc[j]);
        k->mins = _mm256_setr_epi16((short)mn[0], (short)mn[0], (short)mn[1], (short)mn[1], (short)mn[2], (short)mn[2],
                                    (short)mn[3], (short)mn[3], (short)mn[4], (short)mn[4], (short)mn[5], (short)mn[5],
                                    (short)mn[6], (short)mn[6], (short)mn[7], (short)mn[7]);
        break;
    }
    case QT_Q6_K: {
        const int8_t *sc = (const int8_t *)(p + 192);
        k->d = ldh(p + 208); k->dmin = 0.0f;
        for (int j = 0; j < 8; j++) k->sc[j] = sc_pair(sc[2 * j], sc[2 * j + 1]);
        break;
    }
    case QT_Q3_K: {
        const uint8_t *s = p + 96;
        int v[16];
        for (int i = 0; i < 16; i++) v[i] = (((s[i % 8] >> (4 * (i / 8))) & 0xf) | ((s[8 + i % 4] >> (2 * (i / 4))) & 3) << 4) - 32;
        k->d = ldh(p + 108); k->dmin = 0.0f;
        for (int j = 0; j < 8; j++) k->sc[j] = sc_pair(v[2 * j], v[2 * j + 1]);
        break;
    }
    default: { /* q2_k: scales[16] low nibble scale, high nibble minimum */
        const uint8_t *s = p;
        k->d = ldh(p + 80); k->dmin = ldh(p + 82);
        for (int j = 0; j < 8; j++) k->sc[j] = sc_pair(s[2 * j] & 0xf, s[2 * j + 1] & 0xf);
        k->mins = _mm256_setr_epi16((short)(s[0] >> 4), (short)(s[1] >> 4), (short)(s[2] >> 4), (short)(s[3] >> 4),
                                    (short)(s[4] >> 4), (short)(s[5] >> 4), (short)(s[6] >> 4), (short)(s[7] >> 4),
                                    (short)(s[8] >> 4), (short)(s[9] >> 4), (short)(s[10] >> 4), (short)(s[11] >> 4),
                                    (short)(s[12] >> 4), (short)(s[13] >> 4), (short)(s[14] >> 4), (short)(s[15] >> 4));
        break;
    }
    }
}

INLINE void tile_k(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs,
                   int64_t n, float *y, size_t ldy) {
    const mm_act_layout L = mm_act_layout_of(n);
    const size_t bb = k_bytes(type);
    __m256 acc[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        kprep kp[MM_TILE_R];
        __m256i is[MM_TILE_R][MM_TILE_C];
        for (int r = 0; r < R; r++) {
            prep_k(type, w + (size_t)r * rb + (size_t)b * bb, &kp[r]);
            for (int t = 0; t < C; t++) is[r][t] = _mm256_setzero_si256();
        }
        UNROLL
        for (int j = 0; j < 8; j++) {
            __m256i wq[MM_TILE_R], wa[MM_TILE_R];
            for (int r = 0; r < R; r++) {
                wq[r] = unpack_k(type, w + (size_t)r * rb + (size_t)b * bb, j);
                if (k_signed(type)) wa[r] = _mm256_sign_epi8(wq[r], wq[r]);
            }
            for (int t = 0; t < C; t++) {
                __m256i xv = ld256(xa + (size_t)t * xs + L.qs + (size_t)b * 256 + 32 * j);
                for (int r = 0; r < R; r++) {
                    __m256i p = k_signed(type) ? dot_us_w(wa[r], _mm256_sign_epi8(xv, wq[r]), kp[r].sc[j])
                                               : dot_us_w(wq[r], xv, kp[r].sc[j]);
                    is[r][t] = _mm256_add_epi32(is[r][t], p);
                }
            }
        }
        for (int t = 0; t < C; t++) {
            const uint8_t *xt = xa + (size_t)t * xs;
            float dx = ((const float *)(const void *)(xt + L.d))[b];
            __m256i bsum = k_mins(type) ? ld256(xt + L.bs + (size_t)b * 32) : _mm256_setzero_si256();
            for (int r = 0; r < R; r++) {
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[r][t]), _mm256_set1_ps(kp[r].d * dx), acc[r][t]);
                if (k_mins(type))
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(kp[r].mins, bsum)),
                                                _mm256_set1_ps(-kp[r].dmin * dx), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = hsum(acc[r][t]);
}

/* ---- float weights against float activations ---- */

INLINE __m256 load8(int type, const uint8_t *row, int64_t i) {
    switch (type) {
    case QT_F32: return _mm256_loadu_ps((const float *)(const void *)row + i);
    case QT_F16: return _mm256_cvtph_ps(ld128(row + 2 * i));
    default: /* bf16: the top half of an f32 */
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(ld128(row + 2 * i)), 16));
    }
}

INLINE void tile_f(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs,
                   int64_t n, float *y, size_t ldy) {
    __m256 acc[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 wv[MM_TILE_R];
        for (int r = 0; r < R; r++) wv[r] = load8(type, w + (size_t)r * rb, i);
        for (int t = 0; t < C; t++) {
            __m256 xv = _mm256_loadu_ps((const float *)(const void *)(xa + (size_t)t * xs) + i);
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = hsum(acc[r][t]);
}

/* ---- instantiation and the table (mm_tiles.h) ---- */

#define MM_TABLE_FN mmx_avx2_kernels
#include "backend/cpu/mm_tiles.h"

mm_quant_fn mmx_avx2_quant(int act) {
    return act == MM_ACT_B32 ? quant_b32 : act == MM_ACT_K ? quant_k : NULL;
}

#else
/* not x86-64: nothing here (ISO C wants a translation unit to declare something) */
typedef int hearth_mm_x86_unused;
#endif
