/* AVX-512 versions of the attention helpers (see attn_x86.c for the AVX2 ones): sixteen
 * float lanes for the scores, the exp and the weighted sum. Compiled with -mavx512f on top
 * of the AVX2 flags. */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "backend/cpu/x86_common.h"

#include <math.h>

/* exp(x) for x <= 0 as in attn_x86.c, sixteen lanes */
INLINE __m512 exp16f(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.0f);
    __mmask16 ok = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(ok, p, _mm512_castsi512_ps(e));
}

static float exp_sum(const float *s, int n, float m, float *p) {
    __m512 mv = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        int left = n - i < 16 ? n - i : 16;
        __mmask16 mk = (__mmask16)((1u << left) - 1);
        __m512 v = _mm512_maskz_mov_ps(mk, exp16f(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + i), mv)));
        _mm512_mask_storeu_ps(p + i, mk, v);
        acc = _mm512_add_ps(acc, v);
    }
    return _mm512_reduce_add_ps(acc);
}

/* 64 floats of the accumulator in registers across the block's cells, in two sets (even
 * and odd cells): eight independent FMA chains with their V operand straight from L1 */
static void wsum(float *acc, float r, const float *p, const float *v, int n, int hd) {
    const __m512 rv = _mm512_set1_ps(r);
    int i = 0;
    for (; i + 64 <= hd; i += 64) {
        __m512 a[4], b[4];
        for (int k = 0; k < 4; k++) { a[k] = _mm512_mul_ps(_mm512_loadu_ps(acc + i + 16 * k), rv); b[k] = _mm512_setzero_ps(); }
        int c = 0;
        for (; c + 2 <= n; c += 2) {
            const float *v0 = v + (size_t)c * hd + i, *v1 = v0 + hd;
            __m512 w0 = _mm512_set1_ps(p[c]), w1 = _mm512_set1_ps(p[c + 1]);
            for (int k = 0; k < 4; k++) {
                a[k] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v0 + 16 * k), a[k]);
                b[k] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(v1 + 16 * k), b[k]);
            }
        }
        if (c < n) {
            const float *v0 = v + (size_t)c * hd + i;
            __m512 w0 = _mm512_set1_ps(p[c]);
            for (int k = 0; k < 4; k++) a[k] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(v0 + 16 * k), a[k]);
        }
        for (int k = 0; k < 4; k++) _mm512_storeu_ps(acc + i + 16 * k, _mm512_add_ps(a[k], b[k]));
    }
    for (; i + 16 <= hd; i += 16) {
        __m512 a = _mm512_mul_ps(_mm512_loadu_ps(acc + i), rv), b = _mm512_setzero_ps();
        int c = 0;
        for (; c + 2 <= n; c += 2) {
            a = _mm512_fmadd_ps(_mm512_set1_ps(p[c]), _mm512_loadu_ps(v + (size_t)c * hd + i), a);
            b = _mm512_fmadd_ps(_mm512_set1_ps(p[c + 1]), _mm512_loadu_ps(v + (size_t)(c + 1) * hd + i), b);
        }
        if (c < n) a = _mm512_fmadd_ps(_mm512_set1_ps(p[c]), _mm512_loadu_ps(v + (size_t)c * hd + i), a);
        _mm512_storeu_ps(acc + i, _mm512_add_ps(a, b));
    }
    for (; i < hd; i++) {
        acc[i] *= r;
        for (int c = 0; c < n; c++) acc[i] += p[c] * v[(size_t)c * hd + i];
    }
}

static float online(const float *s, int n, float *m, float *l, float *p) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        int left = n - i < 16 ? n - i : 16;
        mx = _mm512_mask_max_ps(mx, (__mmask16)((1u << left) - 1), mx, _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1), s + i));
    }
    float bm = _mm512_reduce_max_ps(mx), r = 1.0f;
    if (bm > *m) { r = expf(*m - bm); *l *= r; *m = bm; } /* expf(-inf) = 0 on the first block */
    *l += exp_sum(s, n, *m, p);
    return r;
}

/* Four rows at a time as in attn_x86.c, sixteen lanes; a row outside a group of four goes
 * through the same arithmetic with copies of itself, so its score never depends on the
 * grouping. Head sizes that are not a multiple of 16 take the AVX2 code. */
INLINE __m128 dot4x16(const float *q, const float *k0, const float *k1, const float *k2, const float *k3, int hd) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int i = 0; i < hd; i += 16) {
        __m512 qv = _mm512_loadu_ps(q + i);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + i), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + i), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + i), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + i), a3);
    }
    /* 512 -> 256: add halves, then the AVX2 transpose-and-add */
    __m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a0), 1)));
    __m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a1), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a1), 1)));
    __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a2), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a2), 1)));
    __m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a3), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a3), 1)));
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

static void dots(const float *q, const float *k, int n, int hd, float scale, float *out) {
    if (hd % 16 != 0) { attnx_avx2_dots(q, k, n, hd, scale, out); return; }
    const __m128 sv = _mm_set1_ps(scale);
    int c = 0;
    for (; c + 4 <= n; c += 4) {
        const float *k0 = k + (size_t)c * hd;
        _mm_storeu_ps(out + c, _mm_mul_ps(dot4x16(q, k0, k0 + hd, k0 + 2 * hd, k0 + 3 * hd, hd), sv));
    }
    for (; c < n; c++) {
        const float *kc = k + (size_t)c * hd;
        out[c] = _mm_cvtss_f32(_mm_mul_ps(dot4x16(q, kc, kc, kc, kc, hd), sv));
    }
}

/* the decoders are the AVX2 ones */
static const attn_simd table = { attnx_avx2_decode, attnx_avx2_has_segment, dots, exp_sum, online, wsum };
const attn_simd *attnx_avx512(void) { return &table; }

#else
typedef int hearth_attn_x512_unused;
#endif
