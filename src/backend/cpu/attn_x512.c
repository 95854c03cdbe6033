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

/* Four heads at a time over the same V rows: 16 accumulators (64 values of 4 heads) stay
 * in registers across the block, each V load serves four heads, and the 16 FMA chains
 * are independent. Heads past a multiple of four, and head sizes that are not a multiple
 * of 64, take wsum. */
static void wsum_heads(float *acc, const float *r, const float *p, int ld, int nh, const float *v, int n, int hd) {
    int h = 0;
    if (hd % 64 == 0)
        for (; h + 4 <= nh; h += 4)
            for (int i = 0; i < hd; i += 64) {
                __m512 a[4][4];
                for (int k = 0; k < 4; k++)
                    for (int q = 0; q < 4; q++) a[k][q] = _mm512_mul_ps(_mm512_loadu_ps(acc + (size_t)(h + k) * hd + i + 16 * q), _mm512_set1_ps(r[h + k]));
                for (int c = 0; c < n; c++) {
                    const float *vc = v + (size_t)c * hd + i;
                    __m512 x[4];
                    for (int q = 0; q < 4; q++) x[q] = _mm512_loadu_ps(vc + 16 * q);
                    for (int k = 0; k < 4; k++) {
                        __m512 w = _mm512_set1_ps(p[(size_t)(h + k) * ld + c]);
                        for (int q = 0; q < 4; q++) a[k][q] = _mm512_fmadd_ps(w, x[q], a[k][q]);
                    }
                }
                for (int k = 0; k < 4; k++)
                    for (int q = 0; q < 4; q++) _mm512_storeu_ps(acc + (size_t)(h + k) * hd + i + 16 * q, a[k][q]);
            }
    for (; h < nh; h++) wsum(acc + (size_t)h * hd, r[h], p + (size_t)h * ld, v, n, hd);
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

/* online for several heads: the block maxima of up to 16 heads side by side in one
 * vector, so raising the running maxima and the rescale factors are one exp for all of
 * them, with no branch; each head's exp and sum chains are independent of the others' */
static void online_heads(const float *s, int ld, int nh, int n, float *m, float *l, float *p, float *r) {
    for (int h0 = 0; h0 < nh; h0 += 16) {
        const int hn = nh - h0 < 16 ? nh - h0 : 16;
        const __mmask16 hk = (__mmask16)((1u << hn) - 1);
        float bm[16], sum[16];
        for (int h = 0; h < hn; h++) {
            const float *sh = s + (size_t)(h0 + h) * ld;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (int i = 0; i < n; i += 16) {
                __mmask16 mk = (__mmask16)((1u << (n - i < 16 ? n - i : 16)) - 1);
                mx = _mm512_mask_max_ps(mx, mk, mx, _mm512_maskz_loadu_ps(mk, sh + i));
            }
            bm[h] = _mm512_reduce_max_ps(mx);
        }
        __m512 mold = _mm512_maskz_loadu_ps(hk, m + h0), mnew = _mm512_max_ps(mold, _mm512_maskz_loadu_ps(hk, bm));
        __m512 rv = exp16f(_mm512_sub_ps(mold, mnew)); /* 1 where the max stayed, 0 on the first block */
        _mm512_mask_storeu_ps(m + h0, hk, mnew);
        _mm512_mask_storeu_ps(r + h0, hk, rv);
        float mh[16];
        _mm512_storeu_ps(mh, mnew);
        for (int h = 0; h < hn; h++) sum[h] = exp_sum(s + (size_t)(h0 + h) * ld, n, mh[h], p + (size_t)(h0 + h) * ld);
        _mm512_mask_storeu_ps(l + h0, hk, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(hk, l + h0), rv, _mm512_maskz_loadu_ps(hk, sum)));
    }
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

/* q8_0 K scores (simd.h) with sixteen cells in the sixteen lanes: one block's 32 levels of
 * 16 cells are transposed so that register j holds bytes 4j..4j+3 of every cell, and then
 * one vpdpbusd with four query bytes broadcast does four products for all 16 cells (two,
 * for the query's two bytes: simd.h). The
 * transpose (24 shuffles per block of 16 cells) serves every query head of the group;
 * vpdpbusd wants one unsigned operand, so K's levels get 128 added (xor 0x80), which the
 * accumulator's start value (-128 * the sum of the query's levels) takes off again. */
/* 16 cells' 32-value blocks (cell i's at p + i * rs) transposed: f[j] lane i = bytes
 * 4j..4j+3 of cell i, + 128 each */
INLINE void kq8_transpose(const uint8_t *p, size_t rs, __m512i f[8]) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i z[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        z[i] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(ld256(p + (size_t)i * rs)), ld256(p + (size_t)(i + 8) * rs), 1), flip);
    /* per 128-bit lane: rows i..i+3 (cells i, i + 8 in the two halves), dwords 0-3 or 4-7 */
    for (int i = 0; i < 8; i += 2) { t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]); t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]); }
    for (int i = 0; i < 8; i += 4)
        for (int k = 0; k < 2; k++) {
            u[i + 2 * k] = _mm512_unpacklo_epi64(t[i + k], t[i + k + 2]);
            u[i + 2 * k + 1] = _mm512_unpackhi_epi64(t[i + k], t[i + k + 2]);
        }
    /* u[k] (cells 0-3 | 8-11) and u[4 + k] (cells 4-7 | 12-15) hold dwords k and k + 4 in their
     * even and odd 128-bit lanes: two-source permutes put the cells in order */
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for (int k = 0; k < 4; k++) {
        f[k] = _mm512_permutex2var_epi64(u[k], lo, u[4 + k]);
        f[k + 4] = _mm512_permutex2var_epi64(u[k], hi, u[4 + k]);
    }
}

INLINE __m512i bcast32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return _mm512_set1_epi32(v); }

/* one block's integer sums for one head: 254 * (hi . k) + (lo . k), the lo chain
 * starting at corr, which takes off the 128 added to K */
INLINE __m512i kq8_isum(const __m512i f[8], const uint8_t *hi, const uint8_t *lo, const uint8_t *corr) {
    __m512i ah = _mm512_setzero_si512(), al = bcast32(corr);
    for (int j = 0; j < 8; j++) {
        ah = _mm512_dpbusd_epi32(ah, f[j], bcast32(hi + 4 * j));
        al = _mm512_dpbusd_epi32(al, f[j], bcast32(lo + 4 * j));
    }
    return _mm512_add_epi32(_mm512_sub_epi32(_mm512_slli_epi32(ah, 8), _mm512_slli_epi32(ah, 1)), al);
}

/* 16 cells (cell i's head segment at p + i * rs) against nh heads, two blocks at a time
 * (16 registers of transposed levels); the scores of a head go to out through mk */
static void kq8_16(const uint8_t *p, size_t rs, int nb, const uint8_t *qq, size_t qstride, int nh, float *out, int ldo,
                   __mmask16 mk) {
    const attn_q8_layout L = attn_q8_layout_of(32 * nb);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)rs));
    for (int b = 0; b < nb; b += 2) {
        const int two = b + 1 < nb;
        __m512i f0[8], f1[8];
        kq8_transpose(p + 34 * b + 2, rs, f0);
        /* each cell's block scale: the f16 in the low half of a gathered dword */
        __m512 dk0 = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(idx, p + 34 * b, 1))), dk1 = dk0;
        if (two) {
            kq8_transpose(p + 34 * (b + 1) + 2, rs, f1);
            dk1 = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(idx, p + 34 * (b + 1), 1)));
        }
        for (int h = 0; h < nh; h++) {
            const uint8_t *qh = qq + (size_t)h * qstride;
            const float *dq = (const float *)(const void *)(qh + L.d);
            float *o = out + (size_t)h * ldo;
            __m512 s = b ? _mm512_maskz_loadu_ps(mk, o) : _mm512_setzero_ps();
            s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(kq8_isum(f0, qh + 32 * b, qh + L.lo + 32 * b, qh + L.corr + 4 * b)),
                                _mm512_mul_ps(dk0, _mm512_set1_ps(dq[b])), s);
            if (two)
                s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(kq8_isum(f1, qh + 32 * (b + 1), qh + L.lo + 32 * (b + 1), qh + L.corr + 4 * (b + 1))),
                                    _mm512_mul_ps(dk1, _mm512_set1_ps(dq[b + 1])), s);
            _mm512_mask_storeu_ps(o, mk, s);
        }
    }
}

static void kq8(const uint8_t *qq, size_t qstride, int nh, const uint8_t *k, size_t row_bytes, int n, int start, int hd,
                float *out, int ldo) {
    const int nb = hd / 32;
    const size_t seg = 34 * (size_t)nb;
    k += (size_t)(start / 32) * 34;
    int c = 0;
    for (; c + 16 <= n; c += 16) kq8_16(k + (size_t)c * row_bytes, row_bytes, nb, qq, qstride, nh, out + c, ldo, 0xffff);
    if (c < n) { /* the last cells copied together, the lanes past n repeating cell c */
        uint8_t tmp[16 * seg];
        for (int i = 0; i < 16; i++) memcpy(tmp + i * seg, k + (size_t)(c + (c + i < n ? i : 0)) * row_bytes, seg);
        kq8_16(tmp, seg, nb, qq, qstride, nh, out + c, ldo, (__mmask16)((1u << (n - c)) - 1));
    }
}

/* q8_0 and f16 segments sixteen values an instruction (the V side of the common caches);
 * every other type goes to the AVX2 decoders */
static void decode(int type, const uint8_t *base, size_t row_bytes, int n, int start, int len, float *out) {
    if (type == QT_Q8_0 && len % 32 == 0) {
        for (int c = 0; c < n; c++) {
            const uint8_t *p = base + (size_t)c * row_bytes + (size_t)(start / 32) * 34;
            for (int b = 0; b < len / 32; b++, p += 34, out += 32) {
                const __m512 d = _mm512_set1_ps(ldh(p));
                _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ld128(p + 2))), d));
                _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ld128(p + 18))), d));
            }
        }
        return;
    }
    if (type == QT_F16 && len % 16 == 0) {
        for (int c = 0; c < n; c++) {
            const uint8_t *p = base + (size_t)c * row_bytes + 2 * (size_t)start;
            for (int i = 0; i < len; i += 16, out += 16) _mm512_storeu_ps(out, _mm512_cvtph_ps(ld256(p + 2 * (size_t)i)));
        }
        return;
    }
    attnx_avx2_decode(type, base, row_bytes, n, start, len, out);
}

/* silu as in attn_x86.c, sixteen lanes */
static void swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = (__mmask16)((1u << (n - i < 16 ? n - i : 16)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mk, gate + i), one = _mm512_set1_ps(1.0f);
        __m512 e = exp16f(_mm512_min_ps(g, _mm512_sub_ps(_mm512_setzero_ps(), g)));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        s = _mm512_mask_div_ps(s, _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LE_OQ), _mm512_mul_ps(g, e), _mm512_add_ps(e, one));
        _mm512_mask_storeu_ps(gate + i, mk, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mk, up + i)));
    }
}

static const attn_simd table = { decode, attnx_avx2_has_segment, dots, exp_sum, online, wsum, kq8, online_heads, wsum_heads, swiglu };
const attn_simd *attnx_avx512(void) { return &table; }

#else
typedef int hearth_attn_x512_unused;
#endif
