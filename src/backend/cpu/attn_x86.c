/* AVX2 helpers for attention (compiled with -mavx2 -mfma -mf16c; simd.c checks the CPU):
 * decoding a KV head segment of a cache row to floats in registers, dot products, weighted
 * sums and a float vector exp. attn.c holds the algorithm and calls these through attn_simd. */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "backend/cpu/x86_common.h"

#include <math.h>

int attnx_avx2_has_segment(int type) {
    switch (type) {
    case QT_F32: case QT_F16: case QT_BF16:
    case QT_Q8_0: case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: case QT_IQ4_NL: return 1;
    default: return 0;
    }
}

/* 32 int8 levels times a plus c, stored as 32 floats */
INLINE void store_levels(__m256i q, float a, float c, float *out) {
    __m256 av = _mm256_set1_ps(a), cv = _mm256_set1_ps(c);
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), av, cv));
    _mm256_storeu_ps(out + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), av, cv));
    _mm256_storeu_ps(out + 16, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), av, cv));
    _mm256_storeu_ps(out + 24, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), av, cv));
}

INLINE void seg_b32(int type, const uint8_t *p, int nb, float *out) {
    const size_t bb = b32_bytes(type);
    for (int b = 0; b < nb; b++) {
        float a, c;
        __m256i q = unpack_b32(type, p + (size_t)b * bb, &a, &c);
        store_levels(q, a, c, out + 32 * b);
    }
}

/* q8_0 straight from memory: sign-extending loads, one scale per block */
INLINE void seg_q8_0(const uint8_t *p, int nb, float *out) {
    for (int b = 0; b < nb; b++, p += 34, out += 32) {
        __m256 d = _mm256_set1_ps(ldh(p));
        for (int i = 0; i < 32; i += 8)
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + i)))), d));
    }
}

/* one cell's segment; the type is a constant where this is inlined, so the switch folds */
INLINE void seg1(int type, const uint8_t *r, int start, int len, float *out) {
    switch (type) {
    case QT_F32:
        memcpy(out, (const float *)(const void *)r + start, sizeof(float) * (size_t)len);
        return;
    case QT_F16:
        for (int i = 0; i < len; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(ld128(r + 2 * (size_t)(start + i))));
        return;
    case QT_BF16:
        for (int i = 0; i < len; i += 8)
            _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(ld128(r + 2 * (size_t)(start + i))), 16)));
        return;
    case QT_Q8_0: seg_q8_0(r + (size_t)(start / 32) * 34, len / 32, out); return;
    case QT_Q4_0: seg_b32(QT_Q4_0, r + (size_t)(start / 32) * 18, len / 32, out); return;
    case QT_Q4_1: seg_b32(QT_Q4_1, r + (size_t)(start / 32) * 20, len / 32, out); return;
    case QT_Q5_0: seg_b32(QT_Q5_0, r + (size_t)(start / 32) * 22, len / 32, out); return;
    case QT_Q5_1: seg_b32(QT_Q5_1, r + (size_t)(start / 32) * 24, len / 32, out); return;
    default: seg_b32(QT_IQ4_NL, r + (size_t)(start / 32) * 18, len / 32, out); return;
    }
}

#define DECODE_CELLS(TYPE) \
    for (int c = 0; c < n; c++) seg1(TYPE, base + (size_t)c * row_bytes, start, len, out + (size_t)c * len)

/* the switch outside the loop over cells: one call decodes a whole block */
void attnx_avx2_decode(int type, const uint8_t *base, size_t row_bytes, int n, int start, int len, float *out) {
    switch (type) {
    case QT_F32: DECODE_CELLS(QT_F32); return;
    case QT_F16: DECODE_CELLS(QT_F16); return;
    case QT_BF16: DECODE_CELLS(QT_BF16); return;
    case QT_Q8_0: DECODE_CELLS(QT_Q8_0); return;
    case QT_Q4_0: DECODE_CELLS(QT_Q4_0); return;
    case QT_Q4_1: DECODE_CELLS(QT_Q4_1); return;
    case QT_Q5_0: DECODE_CELLS(QT_Q5_0); return;
    case QT_Q5_1: DECODE_CELLS(QT_Q5_1); return;
    case QT_IQ4_NL: DECODE_CELLS(QT_IQ4_NL); return;
    default: return; /* callers ask has_segment first */
    }
}

/* Four rows at a time: four independent chains, then one transpose-and-add of the four
 * accumulators instead of four horizontal sums. A row outside a group of four goes
 * through the same arithmetic (its three partners are copies of itself), so a row's score
 * does not depend on how the cells were grouped. */
INLINE __m128 dot4(const float *q, const float *k0, const float *k1, const float *k2, const float *k3, int hd) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int i = 0; i < hd; i += 8) {
        __m256 qv = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
    }
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

void attnx_avx2_dots(const float *q, const float *k, int n, int hd, float scale, float *out) {
    const __m128 sv = _mm_set1_ps(scale);
    int c = 0;
    if (hd % 8 != 0) { /* odd head sizes: plain loops (still the same in both paths) */
        for (; c < n; c++) {
            float s = 0.0f;
            for (int i = 0; i < hd; i++) s += q[i] * k[(size_t)c * hd + i];
            out[c] = s * scale;
        }
        return;
    }
    for (; c + 4 <= n; c += 4) {
        const float *k0 = k + (size_t)c * hd;
        _mm_storeu_ps(out + c, _mm_mul_ps(dot4(q, k0, k0 + hd, k0 + 2 * hd, k0 + 3 * hd, hd), sv));
    }
    for (; c < n; c++) {
        const float *kc = k + (size_t)c * hd;
        out[c] = _mm_cvtss_f32(_mm_mul_ps(dot4(q, kc, kc, kc, kc, hd), sv));
    }
}

/* q8_0 K scores (simd.h): per cell and block, K's levels are loaded once for every head;
 * the sign trick lets maddubs (unsigned by signed) multiply two signed operands. */
INLINE int dot_signed(__m256i ka, __m256i kv, const uint8_t *q) {
    return hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(ka, _mm256_sign_epi8(ld256(q), kv)), _mm256_set1_epi16(1)));
}

void attnx_avx2_kq8(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start,
                    int hd, float *out, int ldo) {
    const attn_q8_layout L = attn_q8_layout_of(hd);
    const int nb = hd / 32;
    for (int c = 0; c < n; c++) {
        const uint8_t *kc = k + (size_t)c * row_bytes + (size_t)(start / 32) * 34;
        for (int h = 0; h < nh; h++) out[(size_t)h * ldo + c] = 0.0f;
        for (int b = 0; b < nb; b++) {
            __m256i kv = ld256(kc + 34 * b + 2), ka = _mm256_sign_epi8(kv, kv);
            float dk = ldh(kc + 34 * b);
            for (int h = 0; h < nh; h++) {
                const uint8_t *qh = qq + (size_t)h * qstride;
                int isum = 254 * dot_signed(ka, kv, qh + 32 * b) + dot_signed(ka, kv, qh + L.lo + 32 * b);
                float dq = ((const float *)(const void *)(qh + L.d))[b];
                out[(size_t)h * ldo + c] = fmaf((float)isum, dk * dq, out[(size_t)h * ldo + c]);
            }
        }
    }
}

/* exp(x) in float for x <= 0: x = k ln2 + r with |r| <= ln2 / 2, e^r by its Taylor
 * series to r^7 (truncation < 1e-8 relative, under an ulp), 2^k through the exponent
 * field. Below -87 the result is 0: such a weight is under 1e-38 of the row's largest. */
INLINE __m256 exp8f(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static float exp_sum(const float *s, int n, float m, float *p) {
    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8f(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(p + i, v);
        acc = _mm256_add_ps(acc, v);
    }
    if (i < n) {
        float in[8], out[8];
        int left = n - i;
        for (int j = 0; j < 8; j++) in[j] = j < left ? s[i + j] - m : -INFINITY;
        __m256 v = exp8f(_mm256_loadu_ps(in));
        _mm256_storeu_ps(out, v);
        acc = _mm256_add_ps(acc, v);
        for (int j = 0; j < left; j++) p[i + j] = out[j];
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/* 32 floats of the accumulator stay in registers across the block's cells, in two sets
 * (even and odd cells) so eight FMA chains are in flight. */
static void wsum(float *acc, float r, const float *p, const float *v, int n, int hd) {
    const __m256 rv = _mm256_set1_ps(r);
    int i = 0;
    for (; i + 32 <= hd; i += 32) {
        __m256 a[4], b[4];
        for (int k = 0; k < 4; k++) { a[k] = _mm256_mul_ps(_mm256_loadu_ps(acc + i + 8 * k), rv); b[k] = _mm256_setzero_ps(); }
        int c = 0;
        for (; c + 2 <= n; c += 2) {
            const float *v0 = v + (size_t)c * hd + i, *v1 = v0 + hd;
            __m256 w0 = _mm256_broadcast_ss(p + c), w1 = _mm256_broadcast_ss(p + c + 1);
            for (int k = 0; k < 4; k++) {
                a[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v0 + 8 * k), a[k]);
                b[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(v1 + 8 * k), b[k]);
            }
        }
        if (c < n) {
            const float *v0 = v + (size_t)c * hd + i;
            __m256 w0 = _mm256_broadcast_ss(p + c);
            for (int k = 0; k < 4; k++) a[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(v0 + 8 * k), a[k]);
        }
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(acc + i + 8 * k, _mm256_add_ps(a[k], b[k]));
    }
    for (; i + 8 <= hd; i += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc + i), rv);
        for (int c = 0; c < n; c++) a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + c), _mm256_loadu_ps(v + (size_t)c * hd + i), a);
        _mm256_storeu_ps(acc + i, a);
    }
    for (; i < hd; i++) {
        acc[i] *= r;
        for (int c = 0; c < n; c++) acc[i] += p[c] * v[(size_t)c * hd + i];
    }
}

static float online(const float *s, int n, float *m, float *l, float *p) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    float bm = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h))), r = 1.0f;
    for (; i < n; i++) bm = s[i] > bm ? s[i] : bm;
    if (bm > *m) { r = expf(*m - bm); *l *= r; *m = bm; } /* expf(-inf) = 0 on the first block */
    *l += exp_sum(s, n, *m, p);
    return r;
}

/* silu(g) = g / (1 + exp(-g)): exp8f wants x <= 0, so for g > 0 it takes exp(-g) and for
 * g <= 0 exp(g), and g / (1 + 1/e) = g e / (e + 1) */
INLINE __m256 silu8(__m256 g) {
    __m256 e = exp8f(_mm256_min_ps(g, _mm256_sub_ps(_mm256_setzero_ps(), g)));
    __m256 pos = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 neg = _mm256_div_ps(_mm256_mul_ps(g, e), _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
    return _mm256_blendv_ps(neg, pos, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_GT_OQ));
}

static void swiglu(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static const attn_simd table = { attnx_avx2_decode, attnx_avx2_has_segment, attnx_avx2_dots, exp_sum, online, wsum, attnx_avx2_kq8, NULL, NULL,
                                 swiglu };
const attn_simd *attnx_avx2(void) { return &table; }

#else
typedef int hearth_attn_x86_unused;
#endif
