/* NEON helpers for attention on AArch64 (the same contract as attn_x86.c, through
 * attn_simd): KV head segments of a block of cells decoded to floats, dot products of the
 * query with four rows at a time, a float vector exp inside an online-softmax step, and
 * rescaled weighted sums of V rows. attn.c holds the algorithm. */
#if defined(__aarch64__) && defined(__ARM_NEON)

#include "backend/cpu/neon_common.h"
#include "backend/cpu/simd.h"

#include <math.h>

static int has_segment(int type) {
    switch (type) {
    case QT_F32: case QT_F16: case QT_BF16:
    case QT_Q8_0: case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: case QT_IQ4_NL: return 1;
    default: return 0;
    }
}

/* 16 int8 levels times a plus c, stored as 16 floats */
INLINE void store16(int8x16_t q, float a, float c, float *out) {
    int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    const float32x4_t cv = vdupq_n_f32(c);
    vst1q_f32(out, vfmaq_n_f32(cv, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), a));
    vst1q_f32(out + 4, vfmaq_n_f32(cv, vcvtq_f32_s32(vmovl_high_s16(lo)), a));
    vst1q_f32(out + 8, vfmaq_n_f32(cv, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), a));
    vst1q_f32(out + 12, vfmaq_n_f32(cv, vcvtq_f32_s32(vmovl_high_s16(hi)), a));
}

INLINE void seg_b32(int type, const uint8_t *p, int nb, float *out) {
    const size_t bb = b32_bytes(type);
    for (int b = 0; b < nb; b++) {
        float a, c;
        b32v q = unpack_b32(type, p + (size_t)b * bb, &a, &c);
        store16(q.lo, a, c, out + 32 * b);
        store16(q.hi, a, c, out + 32 * b + 16);
    }
}

INLINE void segment(int type, const uint8_t *r, int start, int len, float *out) {
    switch (type) {
    case QT_F32:
        memcpy(out, (const float *)(const void *)r + start, sizeof(float) * (size_t)len);
        return;
    case QT_F16:
        for (int i = 0; i < len; i += 4)
            vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(r + 2 * (size_t)(start + i))))));
        return;
    case QT_BF16:
        for (int i = 0; i < len; i += 4)
            vst1q_f32(out + i, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(r + 2 * (size_t)(start + i))), 16)));
        return;
    case QT_Q8_0: seg_b32(QT_Q8_0, r + (size_t)(start / 32) * 34, len / 32, out); return;
    case QT_Q4_0: seg_b32(QT_Q4_0, r + (size_t)(start / 32) * 18, len / 32, out); return;
    case QT_Q4_1: seg_b32(QT_Q4_1, r + (size_t)(start / 32) * 20, len / 32, out); return;
    case QT_Q5_0: seg_b32(QT_Q5_0, r + (size_t)(start / 32) * 22, len / 32, out); return;
    case QT_Q5_1: seg_b32(QT_Q5_1, r + (size_t)(start / 32) * 24, len / 32, out); return;
    case QT_IQ4_NL: seg_b32(QT_IQ4_NL, r + (size_t)(start / 32) * 18, len / 32, out); return;
    default: return; /* callers ask has_segment first */
    }
}

static void decode(int type, const uint8_t *base, size_t row_bytes, int n, int start, int len, float *out) {
    for (int c = 0; c < n; c++) segment(type, base + (size_t)c * row_bytes, start, len, out + (size_t)c * len);
}

/* Four rows at a time, four independent chains; a row outside a group of four goes through
 * the same arithmetic (its partners are copies of itself), so a row's score does not
 * depend on how the cells were grouped. */
INLINE float32x4_t dot4(const float *q, const float *k0, const float *k1, const float *k2, const float *k3, int hd) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < hd; i += 4) {
        float32x4_t qv = vld1q_f32(q + i);
        a0 = vfmaq_f32(a0, qv, vld1q_f32(k0 + i));
        a1 = vfmaq_f32(a1, qv, vld1q_f32(k1 + i));
        a2 = vfmaq_f32(a2, qv, vld1q_f32(k2 + i));
        a3 = vfmaq_f32(a3, qv, vld1q_f32(k3 + i));
    }
    /* pairwise adds leave lane j = the sum of a_j */
    return vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
}

static void dots(const float *q, const float *k, int n, int hd, float scale, float *out) {
    int c = 0;
    if (hd % 4 != 0) { /* odd head sizes: plain loops (still the same in both paths) */
        for (; c < n; c++) {
            float s = 0.0f;
            for (int i = 0; i < hd; i++) s += q[i] * k[(size_t)c * hd + i];
            out[c] = s * scale;
        }
        return;
    }
    for (; c + 4 <= n; c += 4) {
        const float *k0 = k + (size_t)c * hd;
        vst1q_f32(out + c, vmulq_n_f32(dot4(q, k0, k0 + hd, k0 + 2 * hd, k0 + 3 * hd, hd), scale));
    }
    for (; c < n; c++) {
        const float *kc = k + (size_t)c * hd;
        out[c] = vgetq_lane_f32(vmulq_n_f32(dot4(q, kc, kc, kc, kc, hd), scale), 0);
    }
}

/* exp(x) for x <= 0 in float: x = k ln2 + r, |r| <= ln2 / 2, e^r by its Taylor series to
 * r^7 (under an ulp), 2^k through the exponent field; below -87 the result is 0. */
INLINE float32x4_t exp4f(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.0f);
    uint32x4_t under = vcltq_f32(x, lo);
    x = vmaxq_f32(x, lo);
    float32x4_t k = vrndnq_f32(vmulq_n_f32(x, 1.44269504f));
    float32x4_t r = vfmsq_n_f32(x, k, 0.693145752f);
    r = vfmsq_n_f32(r, k, 1.42860677e-6f);
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    float32x4_t v = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), under));
}

static float exp_sum(const float *s, int n, float m, float *p) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = exp4f(vsubq_f32(vld1q_f32(s + i), vdupq_n_f32(m)));
        vst1q_f32(p + i, v);
        acc = vaddq_f32(acc, v);
    }
    if (i < n) {
        float in[4], out[4];
        int left = n - i;
        for (int j = 0; j < 4; j++) in[j] = j < left ? s[i + j] - m : -INFINITY;
        float32x4_t v = exp4f(vld1q_f32(in));
        vst1q_f32(out, v);
        acc = vaddq_f32(acc, v);
        for (int j = 0; j < left; j++) p[i + j] = out[j];
    }
    return vaddvq_f32(acc);
}

/* one block of the online softmax (simd.h): the running max raised to the block's, the
 * running sum rescaled to it and the block's weights added; returns the factor for the
 * accumulator */
static float online(const float *s, int n, float *m, float *l, float *p) {
    float32x4_t mx = vdupq_n_f32(-INFINITY);
    int i = 0;
    for (; i + 4 <= n; i += 4) mx = vmaxq_f32(mx, vld1q_f32(s + i));
    float bm = vmaxvq_f32(mx), r = 1.0f;
    for (; i < n; i++) bm = s[i] > bm ? s[i] : bm;
    if (bm > *m) { r = expf(*m - bm); *l *= r; *m = bm; } /* expf(-inf) = 0 on the first block */
    *l += exp_sum(s, n, *m, p);
    return r;
}

/* acc = r * acc + the block's weighted V rows. 16 floats of the accumulator in registers
 * across the block's cells, even and odd cells in two sets so eight FMA chains are in
 * flight. */
static void wsum(float *acc, float r, const float *p, const float *v, int n, int hd) {
    int i = 0;
    for (; i + 16 <= hd; i += 16) {
        float32x4_t a[4], b[4];
        for (int k = 0; k < 4; k++) { a[k] = vmulq_n_f32(vld1q_f32(acc + i + 4 * k), r); b[k] = vdupq_n_f32(0.0f); }
        int c = 0;
        for (; c + 2 <= n; c += 2) {
            const float *v0 = v + (size_t)c * hd + i, *v1 = v0 + hd;
            for (int k = 0; k < 4; k++) {
                a[k] = vfmaq_n_f32(a[k], vld1q_f32(v0 + 4 * k), p[c]);
                b[k] = vfmaq_n_f32(b[k], vld1q_f32(v1 + 4 * k), p[c + 1]);
            }
        }
        if (c < n) {
            const float *v0 = v + (size_t)c * hd + i;
            for (int k = 0; k < 4; k++) a[k] = vfmaq_n_f32(a[k], vld1q_f32(v0 + 4 * k), p[c]);
        }
        for (int k = 0; k < 4; k++) vst1q_f32(acc + i + 4 * k, vaddq_f32(a[k], b[k]));
    }
    for (; i + 4 <= hd; i += 4) {
        float32x4_t a = vmulq_n_f32(vld1q_f32(acc + i), r);
        for (int c = 0; c < n; c++) a = vfmaq_n_f32(a, vld1q_f32(v + (size_t)c * hd + i), p[c]);
        vst1q_f32(acc + i, a);
    }
    for (; i < hd; i++) {
        acc[i] *= r;
        for (int c = 0; c < n; c++) acc[i] += p[c] * v[(size_t)c * hd + i];
    }
}

/* q8_0 K scores (simd.h): 32 signed byte products of a query half and K's block, widened
 * to int16 pairs (|a b| <= 127 * 127, two of them fit) and summed into int32 */
INLINE int32_t dot32(const int8_t *q, b32v k) {
    b32v x = ld32(q);
    int16x8_t a = vmlal_s8(vmull_s8(vget_low_s8(x.lo), vget_low_s8(k.lo)), vget_high_s8(x.lo), vget_high_s8(k.lo));
    int16x8_t b = vmlal_s8(vmull_s8(vget_low_s8(x.hi), vget_low_s8(k.hi)), vget_high_s8(x.hi), vget_high_s8(k.hi));
    return vaddvq_s32(vpadalq_s16(vpaddlq_s16(a), b));
}

static void kq8(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start, int hd,
                float *out, int ldo) {
    const attn_q8_layout L = attn_q8_layout_of(hd);
    for (int c = 0; c < n; c++) {
        const uint8_t *kc = k + (size_t)c * row_bytes + (size_t)(start / 32) * 34;
        for (int h = 0; h < nh; h++) out[(size_t)h * ldo + c] = 0.0f;
        for (int b = 0; b < hd / 32; b++) {
            b32v kv = ld32(kc + 34 * b + 2);
            float dk = ldh(kc + 34 * b);
            for (int h = 0; h < nh; h++) {
                const int8_t *qh = (const int8_t *)(qq + (size_t)h * qstride);
                float dq = ((const float *)(const void *)(qq + (size_t)h * qstride + L.d))[b];
                int32_t isum = 254 * dot32(qh + 32 * b, kv) + dot32(qh + L.lo + 32 * b, kv);
                out[(size_t)h * ldo + c] = fmaf((float)isum, dk * dq, out[(size_t)h * ldo + c]);
            }
        }
    }
}

static const attn_simd table = { decode, has_segment, dots, exp_sum, online, wsum, kq8, NULL, NULL, NULL };
const attn_simd *attnn_neon(void) { return &table; }

#else
typedef int hearth_attn_neon_unused;
#endif
