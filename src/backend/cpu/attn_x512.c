/* AVX-512 versions of the double-precision attention helpers (see attn_x86.c for the
 * AVX2 ones and the reasons for double): eight lanes of double halve the weighted sum,
 * the bulk of decode attention. Compiled with -mavx512f on top of the AVX2 flags. */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "backend/cpu/x86_common.h"

#include <math.h>

/* exp(x) for x <= 0 as in attn_x86.c, eight lanes */
INLINE __m512d exp8d(__m512d x) {
    static const double inv_fact[14] = { 1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                                         1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800,
                                         1.0 / 479001600, 1.0 / 6227020800.0 };
    const __m512d lo = _mm512_set1_pd(-700.0);
    __mmask8 ok = _mm512_cmp_pd_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_pd(x, lo);
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);
    __m512d p = _mm512_set1_pd(inv_fact[13]);
    for (int i = 12; i >= 0; i--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_fact[i]));
    __m512i e = _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(k)), _mm512_set1_epi64(1023)), 52);
    return _mm512_maskz_mul_pd(ok, p, _mm512_castsi512_pd(e));
}

static double exp_sum(const float *s, int n, double m, double *p) {
    __m512d mv = _mm512_set1_pd(m), acc = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        int left = n - i < 8 ? n - i : 8;
        __mmask8 mk = (__mmask8)((1u << left) - 1);
        __m512d v = exp8d(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, s + i)), mv));
        v = _mm512_maskz_mov_pd(mk, v);
        _mm512_mask_storeu_pd(p + i, mk, v);
        acc = _mm512_add_pd(acc, v);
    }
    return _mm512_reduce_add_pd(acc);
}

/* 64 doubles of the accumulator in registers across the block's cells: eight independent
 * FMA chains with their V operand straight from L1 */
static void wsum(double *acc, const double *p, const double *v, int n, int hd) {
    int i = 0;
    for (; i + 64 <= hd; i += 64) {
        __m512d a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm512_loadu_pd(acc + i + 8 * k);
        for (int c = 0; c < n; c++) {
            const double *vc = v + (size_t)c * hd + i;
            __m512d w = _mm512_set1_pd(p[c]);
            for (int k = 0; k < 8; k++) a[k] = _mm512_fmadd_pd(w, _mm512_loadu_pd(vc + 8 * k), a[k]);
        }
        for (int k = 0; k < 8; k++) _mm512_storeu_pd(acc + i + 8 * k, a[k]);
    }
    for (; i + 8 <= hd; i += 8) {
        __m512d a = _mm512_loadu_pd(acc + i);
        for (int c = 0; c < n; c++) a = _mm512_fmadd_pd(_mm512_set1_pd(p[c]), _mm512_loadu_pd(v + (size_t)c * hd + i), a);
        _mm512_storeu_pd(acc + i, a);
    }
    for (; i < hd; i++)
        for (int c = 0; c < n; c++) acc[i] += p[c] * v[(size_t)c * hd + i];
}

static void widen(const float *in, double *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(out + i, _mm512_cvtps_pd(_mm256_loadu_ps(in + i)));
    for (; i < n; i++) out[i] = in[i];
}

/* the decoders and the float scores are the AVX2 ones */
static const attn_simd table = { attnx_avx2_segment, attnx_avx2_has_segment, attnx_avx2_dots, exp_sum, wsum, widen };
const attn_simd *attnx_avx512(void) { return &table; }

#else
typedef int hearth_attn_x512_unused;
#endif
