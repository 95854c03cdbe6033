/* AVX2 helpers for attention (compiled with -mavx2 -mfma -mf16c; simd.c checks the CPU):
 * decoding a KV head segment of a cache row to floats in registers, dot products, weighted
 * sums and a vector exp. attn.c holds the algorithm and calls these through attn_simd. */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "backend/cpu/x86_common.h"

#include <math.h>

static int has_segment(int type) {
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
static void seg_q8_0(const uint8_t *p, int nb, float *out) {
    for (int b = 0; b < nb; b++, p += 34, out += 32) {
        __m256 d = _mm256_set1_ps(ldh(p));
        for (int i = 0; i < 32; i += 8)
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + i)))), d));
    }
}

static void segment(int type, const void *row, int start, int len, float *out) {
    const uint8_t *r = row;
    switch (type) {
    case QT_F32:
        memcpy(out, (const float *)row + start, sizeof(float) * (size_t)len);
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
    case QT_IQ4_NL: seg_b32(QT_IQ4_NL, r + (size_t)(start / 32) * 18, len / 32, out); return;
    default: return; /* callers ask has_segment first */
    }
}

static float dot(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void scale(float *y, float a, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(av, _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] *= a;
}

/* exp(x) for x <= 0 (scores minus their max): x = k ln2 + r with |r| <= ln2 / 2, e^r by a
 * degree-6 Taylor polynomial (relative error < 2e-7 there), 2^k through the exponent
 * field. Below -87 the result flushes to 0, as expf's would underflow. */
INLINE __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, v);
}

static float exp_sum(float *x, int n, float m) {
    __m256 mv = _mm256_set1_ps(m), s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, v);
        s = _mm256_add_ps(s, v);
    }
    float t = hsum(s);
    if (i < n) {
        float tail[8] = { 0 };
        int left = n - i;
        for (int k = 0; k < 8; k++) tail[k] = k < left ? x[i + k] - m : -INFINITY;
        _mm256_storeu_ps(tail, exp8(_mm256_loadu_ps(tail)));
        for (int k = 0; k < left; k++) { x[i + k] = tail[k]; t += tail[k]; }
    }
    return t;
}

static const attn_simd table = { segment, has_segment, dot, axpy, scale, exp_sum };
const attn_simd *attnx_avx2(void) { return &table; }

#else
typedef int hearth_attn_x86_unused;
#endif
