/* ARM NEON matrix kernels (AArch64, where Advanced SIMD is part of the base architecture,
 * so no run-time check is needed; HEARTH_SIMD=scalar still forces the reference).
 *
 * The same scheme as the x86 tiles (mm_x86.c): activations quantized to 8 bits once per
 * matmul in the layouts of simd.h (MM_ACT_B32 for the 32-value block types, MM_ACT_K for
 * the k-quants), each weight block unpacked once into signed bytes and met by every token
 * of the tile in an integer dot product. NEON multiplies signed by signed bytes, so no
 * sign trick is needed: every weight level of every type fits an int8 (q8_0 -128..127,
 * the others within -32..31). The dot product is the Armv8.2 SDOT instruction where the
 * compiler targets it (__ARM_FEATURE_DOTPROD), else widening multiplies (smull) summed
 * pairwise into int32 (sadalp): a pair of products is at most 2 * 128 * 127 < 32767, so
 * the int16 stage cannot overflow. A tile is MM_TILE_R weight rows by MM_TILE_C tokens. */
#if defined(__aarch64__) && defined(__ARM_NEON)

/* mm_neon_dot.c includes this file again under another name, compiled for Armv8.2 with
 * the dot-product extension; simd.c picks that copy when the CPU reports SDOT. */
#ifndef MMN_NAME
#define MMN_NAME(x) mmn_neon_##x
#endif

#include "backend/cpu/neon_common.h"
#include "backend/cpu/simd.h"

/* sum of a[i] * b[i] over 16 signed bytes, added into four int32 lanes */
INLINE int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_high_s8(p, a, b);
    return vpadalq_s16(acc, p);
#endif
}

/* ---- activation quantizers ---- */

INLINE float absmax(const float *x, int n) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + i)));
    return vmaxvq_f32(m);
}

/* 16 floats times id, rounded to nearest (even) like the x86 conversion, to int8;
 * returns their sum */
INLINE int q16(const float *x, float id, int8_t *out) {
    int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x), id));
    int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), id));
    int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 8), id));
    int32x4_t d = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 12), id));
    int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)), cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    vst1q_s8(out, vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd)));
    return vaddvq_s32(vaddq_s32(vaddq_s32(a, b), vaddq_s32(c, d)));
}

static void quant_b32(const float *x, int64_t n, uint8_t *dst) {
    mm_act_layout L = mm_act_layout_of(n);
    int8_t *qs = (int8_t *)(dst + L.qs);
    float *d = (float *)(void *)(dst + L.d), *s = (float *)(void *)(dst + L.s);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = absmax(xb, 32);
        /* the scale kept at f16 precision, as on x86 */
        float dd = (float)(__fp16)(amax / 127.0f), id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = q16(xb, id, qs + b * 32) + q16(xb + 16, id, qs + b * 32 + 16);
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
        float amax = absmax(xb, 256), id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        for (int h = 0; h < 16; h++) bs[b * 16 + h] = (int16_t)q16(xb + 16 * h, id, qs + b * 256 + 16 * h);
    }
}

/* ---- 32-value block types ---- */

INLINE void tile_b32(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs, int64_t n,
                     float *y, size_t ldy) {
    const mm_act_layout L = mm_act_layout_of(n);
    const size_t bb = b32_bytes(type);
    float32x4_t acc[MM_TILE_R][MM_TILE_C];
    float bias[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) { acc[r][t] = vdupq_n_f32(0.0f); bias[r][t] = 0.0f; }
    for (int64_t b = 0; b < n / 32; b++) {
        b32v wq[MM_TILE_R];
        float a[MM_TILE_R], c[MM_TILE_R];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * rb + (size_t)b * bb;
            if (C == 1) __builtin_prefetch(blk + 16 * bb);
            wq[r] = unpack_b32(type, blk, &a[r], &c[r]);
        }
        for (int t = 0; t < C; t++) {
            const uint8_t *xt = xa + (size_t)t * xs;
            b32v xv = ld32(xt + L.qs + (size_t)b * 32);
            float dx = ((const float *)(const void *)(xt + L.d))[b];
            for (int r = 0; r < R; r++) {
                int32x4_t p = dot16(dot16(vdupq_n_s32(0), wq[r].lo, xv.lo), wq[r].hi, xv.hi);
                acc[r][t] = vfmaq_n_f32(acc[r][t], vcvtq_f32_s32(p), a[r] * dx);
                if (b32_bias(type)) bias[r][t] += c[r] * ((const float *)(const void *)(xt + L.s))[b];
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = vaddvq_f32(acc[r][t]) + bias[r][t];
}

/* ---- k-quants: 256-value super-blocks against MM_ACT_K activations ----
 * Per super-block each 16-value half-chunk's integer dot product is weighted by its
 * sub-block scale in int32 (at most 16 * 127 * 32 * 127 per half, 16 halves: far inside
 * int32); the float work is two multiply-adds per super-block and token. */

typedef struct kprep {
    float d, dmin;
    int sc[16];   /* scale of each 16-value half-chunk */
    int mn[16];   /* minimum of each (q2_k q4_k q5_k) */
} kprep;

INLINE void prep_k(int type, const uint8_t *p, kprep *k) {
    switch (type) {
    case QT_Q4_K: case QT_Q5_K: {
        const uint8_t *s = p + 4;
        k->d = ldh(p);
        k->dmin = ldh(p + 2);
        for (int j = 0; j < 8; j++) {
            int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
            int mn = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
            k->sc[2 * j] = k->sc[2 * j + 1] = sc;
            k->mn[2 * j] = k->mn[2 * j + 1] = mn;
        }
        break;
    }
    case QT_Q6_K: {
        const int8_t *sc = (const int8_t *)(p + 192);
        k->d = ldh(p + 208);
        k->dmin = 0.0f;
        for (int h = 0; h < 16; h++) { k->sc[h] = sc[h]; k->mn[h] = 0; }
        break;
    }
    case QT_Q3_K: {
        const uint8_t *s = p + 96;
        k->d = ldh(p + 108);
        k->dmin = 0.0f;
        for (int i = 0; i < 16; i++) {
            k->sc[i] = (((s[i % 8] >> (4 * (i / 8))) & 0xf) | ((s[8 + i % 4] >> (2 * (i / 4))) & 3) << 4) - 32;
            k->mn[i] = 0;
        }
        break;
    }
    default: { /* q2_k: scales[16], low nibble scale, high nibble minimum */
        k->d = ldh(p + 80);
        k->dmin = ldh(p + 82);
        for (int h = 0; h < 16; h++) { k->sc[h] = p[h] & 0xf; k->mn[h] = p[h] >> 4; }
        break;
    }
    }
}

INLINE int8x16_t u2s(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

/* Chunk j (values 32j .. 32j+31) of a super-block as signed bytes. */
INLINE b32v unpack_k(int type, const uint8_t *p, int j) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(3), m1 = vdupq_n_u8(1);
    /* per-lane right shift by a run-time count: vshlq with a negative count */
#define SHR(v, k) vshlq_u8((v), vdupq_n_s8((int8_t)-(k)))
    b32v r;
    switch (type) {
    case QT_Q4_K: {
        const uint8_t *q = p + 16 + 32 * (j / 2);
        uint8x16_t a = vld1q_u8(q), b = vld1q_u8(q + 16);
        r.lo = u2s(vandq_u8(SHR(a, 4 * (j & 1)), m4));
        r.hi = u2s(vandq_u8(SHR(b, 4 * (j & 1)), m4));
        return r;
    }
    case QT_Q5_K: {
        const uint8_t *q = p + 48 + 32 * (j / 2);
        uint8x16_t a = vld1q_u8(q), b = vld1q_u8(q + 16);
        uint8x16_t ha = vandq_u8(SHR(vld1q_u8(p + 16), j), m1), hb = vandq_u8(SHR(vld1q_u8(p + 32), j), m1);
        r.lo = u2s(vorrq_u8(vandq_u8(SHR(a, 4 * (j & 1)), m4), vshlq_n_u8(ha, 4)));
        r.hi = u2s(vorrq_u8(vandq_u8(SHR(b, 4 * (j & 1)), m4), vshlq_n_u8(hb, 4)));
        return r;
    }
    case QT_Q6_K: {
        int h = j / 4, k = j % 4;
        const uint8_t *l = p + 64 * h + 32 * (k % 2), *hq = p + 128 + 32 * h;
        uint8x16_t la = vandq_u8(SHR(vld1q_u8(l), 4 * (k / 2)), m4), lb = vandq_u8(SHR(vld1q_u8(l + 16), 4 * (k / 2)), m4);
        uint8x16_t ha = vandq_u8(SHR(vld1q_u8(hq), 2 * k), m2), hb = vandq_u8(SHR(vld1q_u8(hq + 16), 2 * k), m2);
        r.lo = vsubq_s8(u2s(vorrq_u8(la, vshlq_n_u8(ha, 4))), vdupq_n_s8(32));
        r.hi = vsubq_s8(u2s(vorrq_u8(lb, vshlq_n_u8(hb, 4))), vdupq_n_s8(32));
        return r;
    }
    case QT_Q3_K: {
        const uint8_t *q = p + 32 + 32 * (j / 4);
        uint8x16_t la = vandq_u8(SHR(vld1q_u8(q), 2 * (j % 4)), m2), lb = vandq_u8(SHR(vld1q_u8(q + 16), 2 * (j % 4)), m2);
        uint8x16_t ha = vandq_u8(SHR(vld1q_u8(p), j), m1), hb = vandq_u8(SHR(vld1q_u8(p + 16), j), m1);
        r.lo = vsubq_s8(u2s(vaddq_u8(la, vshlq_n_u8(ha, 2))), vdupq_n_s8(4));
        r.hi = vsubq_s8(u2s(vaddq_u8(lb, vshlq_n_u8(hb, 2))), vdupq_n_s8(4));
        return r;
    }
    default: { /* q2_k */
        const uint8_t *q = p + 16 + 32 * (j / 4);
        r.lo = u2s(vandq_u8(SHR(vld1q_u8(q), 2 * (j % 4)), m2));
        r.hi = u2s(vandq_u8(SHR(vld1q_u8(q + 16), 2 * (j % 4)), m2));
        return r;
    }
    }
#undef SHR
}

INLINE void tile_k(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs, int64_t n,
                   float *y, size_t ldy) {
    const mm_act_layout L = mm_act_layout_of(n);
    const size_t bb = k_bytes(type);
    float acc[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) {
        kprep kp[MM_TILE_R];
        int32x4_t is[MM_TILE_R][MM_TILE_C];
        for (int r = 0; r < R; r++) {
            prep_k(type, w + (size_t)r * rb + (size_t)b * bb, &kp[r]);
            for (int t = 0; t < C; t++) is[r][t] = vdupq_n_s32(0);
        }
        for (int j = 0; j < 8; j++) {
            b32v wq[MM_TILE_R];
            for (int r = 0; r < R; r++) wq[r] = unpack_k(type, w + (size_t)r * rb + (size_t)b * bb, j);
            for (int t = 0; t < C; t++) {
                b32v xv = ld32(xa + (size_t)t * xs + L.qs + (size_t)b * 256 + 32 * j);
                for (int r = 0; r < R; r++) {
                    is[r][t] = vmlaq_n_s32(is[r][t], dot16(vdupq_n_s32(0), wq[r].lo, xv.lo), kp[r].sc[2 * j]);
                    is[r][t] = vmlaq_n_s32(is[r][t], dot16(vdupq_n_s32(0), wq[r].hi, xv.hi), kp[r].sc[2 * j + 1]);
                }
            }
        }
        for (int t = 0; t < C; t++) {
            const uint8_t *xt = xa + (size_t)t * xs;
            float dx = ((const float *)(const void *)(xt + L.d))[b];
            const int16_t *bsum = (const int16_t *)(const void *)(xt + L.bs) + (size_t)b * 16;
            for (int r = 0; r < R; r++) {
                acc[r][t] += kp[r].d * dx * (float)vaddvq_s32(is[r][t]);
                if (k_mins(type)) {
                    int m = 0;
                    for (int h = 0; h < 16; h++) m += kp[r].mn[h] * bsum[h];
                    acc[r][t] -= kp[r].dmin * dx * (float)m;
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = acc[r][t];
}

/* ---- float weights against float activations ---- */

INLINE float32x4_t load4(int type, const uint8_t *row, int64_t i) {
    switch (type) {
    case QT_F32: return vld1q_f32((const float *)(const void *)row + i);
    case QT_F16: return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)row + i)));
    default: /* bf16: the top half of an f32 */
        return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)row + i), 16));
    }
}

INLINE void tile_f(int type, int R, int C, const uint8_t *w, size_t rb, const uint8_t *xa, size_t xs, int64_t n,
                   float *y, size_t ldy) {
    float32x4_t acc[MM_TILE_R][MM_TILE_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n; i += 8) {
        for (int h = 0; h < 8; h += 4) {
            float32x4_t wv[MM_TILE_R];
            for (int r = 0; r < R; r++) wv[r] = load4(type, w + (size_t)r * rb, i + h);
            for (int t = 0; t < C; t++) {
                float32x4_t xv = vld1q_f32((const float *)(const void *)(xa + (size_t)t * xs) + i + h);
                for (int r = 0; r < R; r++) acc[r][t] = vfmaq_f32(acc[r][t], wv[r], xv);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = vaddvq_f32(acc[r][t]);
}

/* ---- instantiation and the table (mm_tiles.h) ---- */

#define MM_TABLE_FN MMN_NAME(kernels)
#include "backend/cpu/mm_tiles.h"

mm_quant_fn MMN_NAME(quant)(int act) { return act == MM_ACT_B32 ? quant_b32 : act == MM_ACT_K ? quant_k : NULL; }

#else
/* not AArch64 with NEON: nothing here (ISO C wants a translation unit to declare something) */
typedef int hearth_mm_neon_unused;
#endif
