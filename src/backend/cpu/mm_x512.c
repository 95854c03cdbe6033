/* AVX-512 VNNI panel kernels for batched products (see "panel" in simd.h). Compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni on top of the AVX2 flags; simd.c calls in
 * only when the CPU reports all of them.
 *
 * Why a panel: vpdpbusd multiplies unsigned by signed bytes and sums groups of four into
 * int32 lanes without the int16 saturation of maddubs, so every weight type can be put in
 * one shape: unsigned levels (a signed level is stored + 128, its offset moved into the
 * bias), a scale per int32 lane (so 16- and 32-value sub-blocks are the same to the
 * kernel), and a bias coefficient per 16 values that meets the activations' per-16 sums
 * once per row and token, outside the inner loop. Unpacking costs about as much as one
 * token's products, and is paid once per row for the whole batch. */
#if defined(__x86_64__)

#include "backend/cpu/simd.h"
#include "backend/cpu/x86_common.h"

/* ---- weight rows to panels ---- */

INLINE void put_lanes(float *sc, float a0, float a1) {
    _mm256_storeu_ps(sc, _mm256_set_m128(_mm_set1_ps(a1), _mm_set1_ps(a0)));
}

INLINE void convert_b32(int type, const uint8_t *row, int64_t n, uint8_t *dst) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    const size_t bb = b32_bytes(type);
    uint8_t *q = dst + L.q;
    float *sc = (float *)(void *)(dst + L.sc), *cc = (float *)(void *)(dst + L.c);
    for (int64_t b = 0; b < n / 32; b++) {
        float a, c;
        __m256i lv = unpack_b32(type, row + (size_t)b * bb, &a, &c);
        if (b32_signed(type)) { lv = _mm256_xor_si256(lv, _mm256_set1_epi8((char)0x80)); c -= 128.0f * a; }
        _mm256_storeu_si256((__m256i *)(q + 32 * b), lv);
        put_lanes(sc + 8 * b, a, a);
        cc[2 * b] = cc[2 * b + 1] = c;
    }
}

/* the sixteen (scale, bias) pairs of a super-block, one per 16 values */
INLINE void k_pairs(int type, const uint8_t *p, float a[16], float c[16]) {
    switch (type) {
    case QT_Q4_K: case QT_Q5_K: {
        int sc[8], mn[8];
        float d = ldh(p), dmin = ldh(p + 2);
        k4_scales(p + 4, sc, mn);
        for (int s = 0; s < 16; s++) { a[s] = d * (float)sc[s / 2]; c[s] = -dmin * (float)mn[s / 2]; }
        break;
    }
    case QT_Q6_K: {
        const int8_t *sc = (const int8_t *)(p + 192);
        float d = ldh(p + 208);
        for (int s = 0; s < 16; s++) { a[s] = d * (float)sc[s]; c[s] = 0.0f; }
        break;
    }
    case QT_Q3_K: {
        const uint8_t *s8 = p + 96;
        float d = ldh(p + 108);
        for (int i = 0; i < 16; i++) {
            int v = (((s8[i % 8] >> (4 * (i / 8))) & 0xf) | ((s8[8 + i % 4] >> (2 * (i / 4))) & 3) << 4) - 32;
            a[i] = d * (float)v; c[i] = 0.0f;
        }
        break;
    }
    default: { /* q2_k */
        float d = ldh(p + 80), dmin = ldh(p + 82);
        for (int s = 0; s < 16; s++) { a[s] = d * (float)(p[s] & 0xf); c[s] = -dmin * (float)(p[s] >> 4); }
        break;
    }
    }
}

/* q4_k / q5_k 6-bit scales and minimums: the 12 bytes as three words, the eight scales to
 * bytes of one 64-bit value and the eight minimums to another */
INLINE void k4_scales8(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4); memcpy(&u1, s + 4, 4); memcpy(&u2, s + 8, 4);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
    uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
    *sc = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    *mn = (uint64_t)mn_lo | (uint64_t)mn_hi << 32;
}

INLINE __m256 bytes8_to_ps(uint64_t v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)v))); }

/* The k-quant panel interleaves each super-block so that a lane always meets the same 16
 * values: step k (0..3) of the super-block, lane L (0..15), byte j (0..3) holds value
 * 16 L + 4 k + j. A lane then stays inside one scale group (16 values for q2_k q3_k q6_k,
 * 32 for q4_k q5_k) for the whole super-block, so the tile adds four vpdpbusd into one
 * int32 accumulator and converts and scales it once per 256 values instead of once per
 * 64; the activations are permuted the same way (quant_p256i). A 256-byte block as 64
 * words of four values: word 4 L + k moves to 16 k + L. */
INLINE void interleave4(__m512i z0, __m512i z1, __m512i z2, __m512i z3, uint8_t *out) {
    for (int k = 0; k < 4; k++) {
        /* words 4 L + k for L < 8 from (z0, z1), for L >= 8 from (z2, z3) */
        const __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
                                             _mm512_set1_epi32(k));
        __m512i lo = _mm512_permutex2var_epi32(z0, idx, z1), hi = _mm512_permutex2var_epi32(z2, idx, z3);
        _mm512_storeu_si512(out + 64 * k, _mm512_shuffle_i64x2(lo, hi, 0x44));
    }
}
INLINE void interleave256(const uint8_t *in, uint8_t *out) {
    interleave4(_mm512_loadu_si512(in), _mm512_loadu_si512(in + 64), _mm512_loadu_si512(in + 128), _mm512_loadu_si512(in + 192), out);
}

INLINE void convert_k(int type, const uint8_t *row, int64_t n, uint8_t *dst) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    const size_t bb = k_bytes(type);
    uint8_t *q = dst + L.q;
    float *sc = (float *)(void *)(dst + L.sc), *cc = (float *)(void *)(dst + L.c);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *p = row + (size_t)b * bb;
        __m512i z[4];
        UNROLL
        for (int j = 0; j < 4; j++) {
            __m256i l0 = unpack_k(type, p, 2 * j), l1 = unpack_k(type, p, 2 * j + 1);
            z[j] = _mm512_inserti64x4(_mm512_castsi256_si512(l0), l1, 1);
            if (k_signed(type)) z[j] = _mm512_xor_si512(z[j], _mm512_set1_epi8((char)0x80));
        }
        interleave4(z[0], z[1], z[2], z[3], q + 256 * b);
        /* one scale per lane (= per 16 values) for the super-block */
        if (type == QT_Q4_K || type == QT_Q5_K) {
            const __m512i pair16 = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            uint64_t sc8, mn8;
            k4_scales8(p + 4, &sc8, &mn8);
            __m256 a8 = _mm256_mul_ps(_mm256_set1_ps(ldh(p)), bytes8_to_ps(sc8));
            __m256 c8 = _mm256_mul_ps(_mm256_set1_ps(-ldh(p + 2)), bytes8_to_ps(mn8));
            _mm512_storeu_ps(sc + 16 * b, _mm512_permutexvar_ps(pair16, _mm512_castps256_ps512(a8)));
            _mm512_storeu_ps(cc + 16 * b, _mm512_permutexvar_ps(pair16, _mm512_castps256_ps512(c8)));
            continue;
        }
        if (type == QT_Q6_K) { /* signed: the bias is the -128 offset alone */
            __m512 a16 = _mm512_mul_ps(_mm512_set1_ps(ldh(p + 208)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ld128(p + 192))));
            _mm512_storeu_ps(sc + 16 * b, a16);
            _mm512_storeu_ps(cc + 16 * b, _mm512_mul_ps(a16, _mm512_set1_ps(-128.0f)));
            continue;
        }
        float a[16], c[16];
        k_pairs(type, p, a, c);
        for (int s = 0; s < 16; s++) sc[16 * b + s] = a[s];
        for (int s = 0; s < 16; s++) cc[16 * b + s] = k_signed(type) ? c[s] - 128.0f * a[s] : c[s];
    }
}

/* ---- activations: int8 per 32 values, the scale repeated per lane, d * sum per 16 ---- */

INLINE float amax_of(const float *x, int n) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* 32 values times iv, rounded to int8 in order; *s0 and *s1 get the int32 levels of the
 * first and the second 16 (in lanes, for the per-16 sums) */
INLINE __m256i quant32(const float *xb, __m256 iv, __m256i *s0, __m256i *s1) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb), iv));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8), iv));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 16), iv));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 24), iv));
    *s0 = _mm256_add_epi32(i0, i1);
    *s1 = _mm256_add_epi32(i2, i3);
    __m256i pk = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(pk, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One scale per G values (32 for the 32-value block types, with the scale at f16 precision
 * as the peer's q8_0 activations; 256 for the k-quants, as the peer's q8_K). */
INLINE void quant_pg(int G, const float *x, int64_t n, uint8_t *dst) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    int8_t *qs = (int8_t *)(dst + L.q);
    float *sc = (float *)(void *)(dst + L.sc), *s16 = (float *)(void *)(dst + L.c);
    float amax = 0.0f, d = 0.0f, id = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        if ((b * 32) % G == 0) {
            amax = amax_of(xb, G);
            d = G == 32 ? _cvtsh_ss(_cvtss_sh(amax / 127.0f, 0)) : amax / 127.0f;
            id = amax > 0.0f ? 127.0f / amax : 0.0f;
        }
        __m256i s0, s1;
        __m256i q8 = quant32(xb, _mm256_set1_ps(id), &s0, &s1);
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), q8);
        __m256i sum4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
        _mm256_storeu_si256((__m256i *)(void *)(dst + L.corr) + b, _mm256_mullo_epi32(sum4, _mm256_set1_epi32(-128)));
        _mm256_storeu_ps(sc + 8 * b, _mm256_set1_ps(d));
        s16[2 * b] = d * (float)hsum_i32(s0);
        s16[2 * b + 1] = d * (float)hsum_i32(s1);
    }
}
static void quant_p32(const float *x, int64_t n, uint8_t *dst) { quant_pg(32, x, n, dst); }
/* for the k-quant tile: one scale per 256 values, the values of each super-block interleaved
 * as the weight panel's (the per-16 sums stay in value order: lane L's 16 values are group L) */
static void quant_p256i(const float *x, int64_t n, uint8_t *dst) {
    quant_pg(256, x, n, dst);
    for (int64_t b = 0; b < n / 256; b++) interleave256(dst + 256 * b, dst + 256 * b); /* loads before stores */
}

/* the k-quant decode kernels' form (mm_vec_layout): one scale per 256 values, the levels in
 * order and in q4_k's chunk order, the per-16 and per-32 sums as integers */
static void quant_v256(const float *x, int64_t n, uint8_t *dst) {
    const mm_vec_layout L = mm_vec_layout_of(n);
    float *d = (float *)(void *)(dst + L.d);
    int32_t *bs = (int32_t *)(void *)(dst + L.bs);
    int16_t *bs2 = (int16_t *)(void *)(dst + L.bs2);
    for (int64_t b = 0; b < n / 256; b++) {
        const float amax = amax_of(x + 256 * b, 256);
        d[b] = amax / 127.0f;
        const __m256 iv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        for (int c = 0; c < 8; c++) {
            __m256i s0, s1;
            __m256i q8 = quant32(x + 256 * b + 32 * c, iv, &s0, &s1);
            const int cp = (c & 4) | (c & 1) << 1 | (c & 2) >> 1; /* 0 2 1 3 within each 128 */
            _mm256_storeu_si256((__m256i *)(void *)(dst + L.q + 256 * b + 32 * c), q8);
            _mm256_storeu_si256((__m256i *)(void *)(dst + L.qp + 256 * b + 32 * cp), q8);
            const int t0 = hsum_i32(s0), t1 = hsum_i32(s1);
            bs[16 * b + 2 * c] = (int32_t)(uint16_t)(int16_t)t0;
            bs[16 * b + 2 * c + 1] = (int32_t)(uint16_t)(int16_t)t1;
            bs2[8 * b + c] = (int16_t)(t0 + t1);
        }
    }
}

/* ---- the kernel: R rows x C tokens, 64 values a step ---- */

INLINE void ptile(int R, int C, const uint8_t *w, const uint8_t *x, size_t stride, int64_t n, float *y, size_t ldy) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    __m512 acc[MM_PANEL_R][MM_PANEL_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 64) {
        __m512i wq[MM_PANEL_R];
        __m512 ws[MM_PANEL_R];
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + (size_t)r * stride;
            wq[r] = _mm512_loadu_si512(wr + L.q + k);
            ws[r] = _mm512_loadu_ps((const float *)(const void *)(wr + L.sc) + k / 4);
        }
        for (int t = 0; t < C; t++) {
            const uint8_t *xt = x + (size_t)t * stride;
            __m512i xq = _mm512_loadu_si512(xt + L.q + k);
            __m512 xs = _mm512_loadu_ps((const float *)(const void *)(xt + L.sc) + k / 4);
            for (int r = 0; r < R; r++) {
                __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r], xq);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(ws[r], xs), acc[r][t]);
            }
        }
    }
    /* the biases: one coefficient per 16 values against the activations' d * sum */
    const int64_t n16 = n / 16;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) {
            const float *c = (const float *)(const void *)(w + (size_t)r * stride + L.c);
            const float *s = (const float *)(const void *)(x + (size_t)t * stride + L.c);
            __m512 b = acc[r][t];
            for (int64_t i = 0; i < n16; i += 16) {
                __mmask16 m = n16 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n16 - i)) - 1);
                b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c + i), _mm512_maskz_loadu_ps(m, s + i), b);
            }
            y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(b);
        }
}

/* k-quant tile over interleaved panels: per super-block and (row, token) four vpdpbusd
 * into one int32 accumulator, then one conversion and one FMA with the row's per-lane
 * scales times the token's super-block scale. Sixteen float accumulators, the row's four
 * steps and its scales stay in registers; the activations come from L1 as memory operands.
 * A lane sums 16 products of at most 255 * 127: no int32 overflow. */
INLINE void ktile(int R, int C, const uint8_t *w, const uint8_t *x, size_t stride, int64_t n, float *y, size_t ldy) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    __m512 acc[MM_PANEL_R][MM_PANEL_C];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) acc[r][t] = _mm512_setzero_ps();
    /* one pointer per panel part, rows and tokens reached as offsets r * stride and
     * t * stride from it: a pointer per (row or token, part) needs more registers than x86
     * has, and the spills cost as much as the arithmetic */
    const uint8_t *wq = w + L.q, *ws = w + L.sc, *wc = w + L.c;
    const uint8_t *xq = x + L.q, *xs = x + L.sc, *xc = x + L.c;
    for (int64_t b = 0; b < n / 256; b++, wq += 256, xq += 256, xs += 256, ws += 64, wc += 64, xc += 64) {
        UNROLL
        for (int r = 0; r < R; r++) {
            const size_t ro = (size_t)r * stride;
            __m512i w0 = _mm512_loadu_si512(wq + ro), w1 = _mm512_loadu_si512(wq + ro + 64);
            __m512i w2 = _mm512_loadu_si512(wq + ro + 128), w3 = _mm512_loadu_si512(wq + ro + 192);
            __m512 wsv = _mm512_loadu_ps((const float *)(const void *)(ws + ro));
            __m512 wcv = _mm512_loadu_ps((const float *)(const void *)(wc + ro));
            UNROLL
            for (int t = 0; t < C; t++) {
                const size_t to = (size_t)t * stride;
                __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, _mm512_loadu_si512(xq + to));
                p = _mm512_dpbusd_epi32(p, w1, _mm512_loadu_si512(xq + to + 64));
                p = _mm512_dpbusd_epi32(p, w2, _mm512_loadu_si512(xq + to + 128));
                p = _mm512_dpbusd_epi32(p, w3, _mm512_loadu_si512(xq + to + 192));
                const __m512 xsv = _mm512_set1_ps(*(const float *)(const void *)(xs + to));
                /* the bias (per 16 values, against d * sum), then the scaled products: both
                 * FMAs accumulate in place, no register copies */
                __m512 a = _mm512_fmadd_ps(wcv, _mm512_loadu_ps((const float *)(const void *)(xc + to)), acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wsv, xsv), a);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < C; t++) y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}
static void ktile_4x4(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ktile(4, 4, w, x, st, n, y, ldy); }
static void ktile_4x1(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ktile(4, 1, w, x, st, n, y, ldy); }
static void ktile_1x4(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ktile(1, 4, w, x, st, n, y, ldy); }
static void ktile_1x1(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ktile(1, 1, w, x, st, n, y, ldy); }

static void tile_k(const uint8_t *w, int nr, const uint8_t *x, int nc, size_t stride, int64_t n, float *y, size_t ldy) {
    if (nr == 4 && nc == 4) { ktile_4x4(w, x, stride, n, y, ldy); return; }
    if (nr == 4) {
        for (int t = 0; t < nc; t++) ktile_4x1(w, x + (size_t)t * stride, stride, n, y + (size_t)t * ldy, ldy);
        return;
    }
    for (int r = 0; r < nr; r++) {
        if (nc == 4) ktile_1x4(w + (size_t)r * stride, x, stride, n, y + r, ldy);
        else for (int t = 0; t < nc; t++) ktile_1x1(w + (size_t)r * stride, x + (size_t)t * stride, stride, n, y + (size_t)t * ldy + r, ldy);
    }
}

static void ptile_4x4(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ptile(4, 4, w, x, st, n, y, ldy); }
static void ptile_4x1(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ptile(4, 1, w, x, st, n, y, ldy); }
static void ptile_1x4(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ptile(1, 4, w, x, st, n, y, ldy); }
static void ptile_1x1(const uint8_t *w, const uint8_t *x, size_t st, int64_t n, float *y, size_t ldy) { ptile(1, 1, w, x, st, n, y, ldy); }

static void tile(const uint8_t *w, int nr, const uint8_t *x, int nc, size_t stride, int64_t n, float *y, size_t ldy) {
    if (nr == 4 && nc == 4) { ptile_4x4(w, x, stride, n, y, ldy); return; }
    if (nr == 4) {
        for (int t = 0; t < nc; t++) ptile_4x1(w, x + (size_t)t * stride, stride, n, y + (size_t)t * ldy, ldy);
        return;
    }
    for (int r = 0; r < nr; r++) {
        if (nc == 4) ptile_1x4(w + (size_t)r * stride, x, stride, n, y + r, ldy);
        else for (int t = 0; t < nc; t++) ptile_1x1(w + (size_t)r * stride, x + (size_t)t * stride, stride, n, y + (size_t)t * ldy + r, ldy);
    }
}

/* ---- decode: one token against rows in their stored format ----
 * Reading the weights is the whole cost of decode, so these work straight from the blocks,
 * 64 values a step (a vpdpbusd over two 32-value chunks); the k-quants keep the sums in
 * integers for a whole super-block (below). Two things make one thread keep up with its
 * share of the read bandwidth (~10 GB/s of the 2-core Xeon's 20):
 *   - cheap kernels: with per-step float scaling one thread managed ~8.6 GB/s of q4_k;
 *   - one row at a time, read front to back, with software prefetches PF_BYTES ahead
 *     (into the next rows, which the same task reads next): one stream, far enough ahead
 *     to cover the memory latency. Four rows interleaved with prefetches 2-4 blocks ahead
 *     left both threads waiting on memory: 2-thread decode at depth 0 went from ~41 to
 *     ~29 ms per token (TinyLlama Q4_K_M) with this. */
#ifndef PF_BYTES
#define PF_BYTES 4096 /* (-DPF_BYTES=N to try others) */
#endif
INLINE void prefetch_ahead(const uint8_t *p, size_t len) {
    for (size_t o = 0; o < len; o += 64) _mm_prefetch((const char *)(p + PF_BYTES + o), _MM_HINT_T0);
}

/* k-quants: the levels of a super-block as four vectors of 64 unsigned bytes (q6_k's stored
 * + 32), read with 64-byte loads and no lane crossing: value order for q6_k, q4_k / q5_k's
 * chunk pairs (0 2) (1 3) (4 6) (5 7) (the activations' qp order). Each step's vpdpbusd
 * sums fit in 16 bits (4 * 63 * 127 at most), so a vpdpwssd against the scales held as
 * int32 (zero high half) multiplies them by their 6- or 8-bit scale exactly and adds them
 * to one int32 accumulator for the whole super-block: the float work is one conversion
 * and one FMA per 256 values and row, against one per 64 when each step was scaled in
 * float. The minimum (q4_k q5_k) and offset (q6_k) terms are integer too, against the
 * activations' per-32 / per-16 sums. */
#define TERN_AND_OR 0xea /* (a & b) | c */
INLINE void k_levels(int type, const uint8_t *p, __m512i q[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    /* word shifts 0 for the low 32 bytes, 2 for the high: a 32-byte bit field broadcast to
     * both halves then holds in each half the bits of its own 32 values */
    const __m512i sh02 = _mm512_setr_epi64(0, 0, 0, 0, 0x0002000200020002LL, 0x0002000200020002LL,
                                           0x0002000200020002LL, 0x0002000200020002LL);
    if (type == QT_Q6_K) {
        const __m512i m30 = _mm512_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            __m512i l = _mm512_loadu_si512(p + 64 * h);
            __m512i hb = _mm512_srlv_epi16(_mm512_broadcast_i64x4(ld256(p + 128 + 32 * h)), sh02);
            q[2 * h] = _mm512_ternarylogic_epi32(l, m4, _mm512_and_si512(_mm512_slli_epi16(hb, 4), m30), TERN_AND_OR);
            q[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), m4, _mm512_and_si512(hb, m30), TERN_AND_OR);
        }
        return;
    }
    const uint8_t *qs = p + (type == QT_Q5_K ? 48 : 16);
    __m512i l0 = _mm512_loadu_si512(qs), l1 = _mm512_loadu_si512(qs + 64);
    if (type == QT_Q4_K) {
        q[0] = _mm512_and_si512(l0, m4);
        q[1] = _mm512_and_si512(_mm512_srli_epi16(l0, 4), m4);
        q[2] = _mm512_and_si512(l1, m4);
        q[3] = _mm512_and_si512(_mm512_srli_epi16(l1, 4), m4);
        return;
    }
    /* q5_k: bit j of qh[l] is the fifth bit of chunk j's value l */
    const __m512i m10 = _mm512_set1_epi8(0x10);
    __m512i hb = _mm512_srlv_epi16(_mm512_broadcast_i64x4(ld256(p + 16)), sh02);
    q[0] = _mm512_ternarylogic_epi32(l0, m4, _mm512_and_si512(_mm512_slli_epi16(hb, 4), m10), TERN_AND_OR);
    q[1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l0, 4), m4, _mm512_and_si512(_mm512_slli_epi16(hb, 3), m10), TERN_AND_OR);
    q[2] = _mm512_ternarylogic_epi32(l1, m4, _mm512_and_si512(hb, m10), TERN_AND_OR);
    q[3] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l1, 4), m4, _mm512_and_si512(_mm512_srli_epi16(hb, 1), m10), TERN_AND_OR);
}

INLINE float vec_k(int type, const uint8_t *w, const uint8_t *x, int64_t n) {
    const mm_vec_layout L = mm_vec_layout_of(n);
    const uint8_t *xq = x + (type == QT_Q6_K ? L.q : L.qp);
    const float *xd = (const float *)(const void *)(x + L.d);
    const int32_t *bs = (const int32_t *)(const void *)(x + L.bs);
    const int16_t *bs2 = (const int16_t *)(const void *)(x + L.bs2);
    const size_t bb = k_bytes(type);
    /* step s's scale of each lane, an index into the super-block's scales: q6_k, 16 values
     * (4 lanes) a scale in value order; q4_k / q5_k, 32 values a scale, chunks (0 2) (1 3)
     * (4 6) (5 7) */
    __m512i sidx[4];
    for (int s = 0; s < 4; s++)
        sidx[s] = type == QT_Q6_K ? _mm512_setr_epi32(4 * s, 4 * s, 4 * s, 4 * s, 4 * s + 1, 4 * s + 1, 4 * s + 1, 4 * s + 1,
                                                      4 * s + 2, 4 * s + 2, 4 * s + 2, 4 * s + 2, 4 * s + 3, 4 * s + 3, 4 * s + 3, 4 * s + 3)
                                  : _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                                                     _mm512_set1_epi32((s & 1) + 4 * (s >> 1)));
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *xb = xq + 256 * b, *p = w + (size_t)b * bb;
        prefetch_ahead(p, bb);
        __m512i q[4];
        k_levels(type, p, q);
        __m512i sc, isc = _mm512_setzero_si512();
        uint64_t sc8 = 0, mn8 = 0;
        if (type == QT_Q6_K) sc = _mm512_cvtepi8_epi32(ld128(p + 192));
        else { k4_scales8(p + 4, &sc8, &mn8); sc = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc8)); }
        UNROLL
        for (int s = 0; s < 4; s++) {
            __m512i pr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[s], _mm512_loadu_si512(xb + 64 * s));
            isc = _mm512_dpwssd_epi32(isc, pr, _mm512_permutexvar_epi32(sidx[s], sc));
        }
        if (type == QT_Q6_K) {
            /* the levels' + 32: subtract 32 * scale * sum per 16 */
            __m512i off = _mm512_dpwssd_epi32(_mm512_setzero_si512(), sc, _mm512_loadu_si512(bs + 16 * b));
            isc = _mm512_sub_epi32(isc, _mm512_slli_epi32(off, 5));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isc), _mm512_set1_ps(ldh(p + 208) * xd[b]), acc);
        } else {
            __m128i imn = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn8)), ld128(bs2 + 8 * b));
            uint32_t dd2;
            memcpy(&dd2, p, 4);
            __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd2)), _mm_set1_ps(xd[b])); /* d, dmin */
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isc), _mm512_broadcastss_ps(dd), acc);
            accm = _mm_fnmadd_ps(_mm_cvtepi32_ps(imn), _mm_shuffle_ps(dd, dd, 0x55), accm);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, _mm512_zextps128_ps512(accm)));
}

/* q8_0: two blocks a step; the signed levels go in + 128 (xor 0x80) and the sums start
 * from the activations' -128 * sum, so the integer result is exactly sum(w * x). */
INLINE float vec_q8_0(const uint8_t *w, const uint8_t *x, int64_t n) {
    const mm_panel_layout L = mm_panel_layout_of(n);
    const int8_t *xq = (const int8_t *)(x + L.q);
    const float *xs = (const float *)(const void *)(x + L.sc);
    const int32_t *corr = (const int32_t *)(const void *)(x + L.corr);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / 32; b += 2) {
        const uint8_t *p = w + (size_t)b * 34;
        prefetch_ahead(p, 68);
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(ld256(p + 2)), ld256(p + 36), 1);
        q = _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
        __m512i pr = _mm512_dpbusd_epi32(_mm512_loadu_si512(corr + 8 * b), q, _mm512_loadu_si512(xq + 32 * b));
        /* (insertf64x4 is AVX512F; the f32x8 form would need DQ) */
        __m512 ws = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(ldh(p)))),
                                                        _mm256_castps_pd(_mm256_set1_ps(ldh(p + 34))), 1));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pr), _mm512_mul_ps(ws, _mm512_loadu_ps(xs + 8 * b)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
static void v_q8_0(const uint8_t *w, size_t rb, int nr, const uint8_t *x, int64_t n, float *y) {
    for (int r = 0; r < nr; r++) y[r] = vec_q8_0(w + (size_t)r * rb, x, n);
}
#define VEC(NAME, TYPE)                                                                             \
    static void NAME(const uint8_t *w, size_t rb, int nr, const uint8_t *x, int64_t n, float *y) { \
        for (int r = 0; r < nr; r++) y[r] = vec_k(TYPE, w + (size_t)r * rb, x, n);                 \
    }
VEC(v_q4_k, QT_Q4_K)
VEC(v_q5_k, QT_Q5_K)
VEC(v_q6_k, QT_Q6_K)

#define CONV(NAME, BODY, TYPE) \
    static void NAME(const uint8_t *row, int64_t n, uint8_t *dst) { BODY(TYPE, row, n, dst); }
CONV(c_q8_0, convert_b32, QT_Q8_0)
CONV(c_q4_0, convert_b32, QT_Q4_0)
CONV(c_q4_1, convert_b32, QT_Q4_1)
CONV(c_q5_0, convert_b32, QT_Q5_0)
CONV(c_q5_1, convert_b32, QT_Q5_1)
CONV(c_iq4_nl, convert_b32, QT_IQ4_NL)
CONV(c_q2_k, convert_k, QT_Q2_K)
CONV(c_q3_k, convert_k, QT_Q3_K)
CONV(c_q4_k, convert_k, QT_Q4_K)
CONV(c_q5_k, convert_k, QT_Q5_K)
CONV(c_q6_k, convert_k, QT_Q6_K)

static const mm_panel p_q8_0 = { c_q8_0, quant_p32, tile, v_q8_0, quant_p32 }, p_q4_0 = { c_q4_0, quant_p32, tile, NULL, NULL },
                      p_q4_1 = { c_q4_1, quant_p32, tile, NULL, NULL }, p_q5_0 = { c_q5_0, quant_p32, tile, NULL, NULL },
                      p_q5_1 = { c_q5_1, quant_p32, tile, NULL, NULL }, p_iq4_nl = { c_iq4_nl, quant_p32, tile, NULL, NULL },
                      p_q2_k = { c_q2_k, quant_p256i, tile_k, NULL, NULL }, p_q3_k = { c_q3_k, quant_p256i, tile_k, NULL, NULL },
                      p_q4_k = { c_q4_k, quant_p256i, tile_k, v_q4_k, quant_v256 },
                      p_q5_k = { c_q5_k, quant_p256i, tile_k, v_q5_k, quant_v256 },
                      p_q6_k = { c_q6_k, quant_p256i, tile_k, v_q6_k, quant_v256 };

const mm_panel *mmx_avx512_panel(int type) {
    switch (type) {
    case QT_Q8_0: return &p_q8_0;
    case QT_Q4_0: return &p_q4_0;
    case QT_Q4_1: return &p_q4_1;
    case QT_Q5_0: return &p_q5_0;
    case QT_Q5_1: return &p_q5_1;
    case QT_IQ4_NL: return &p_iq4_nl;
    case QT_Q2_K: return &p_q2_k;
    case QT_Q3_K: return &p_q3_k;
    case QT_Q4_K: return &p_q4_k;
    case QT_Q5_K: return &p_q5_k;
    case QT_Q6_K: return &p_q6_k;
    default: return NULL;
    }
}

#else
typedef int hearth_mm_x512_unused;
#endif
