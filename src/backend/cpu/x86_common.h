/* Inline helpers shared by the x86 kernel files (each compiled with -mavx2 -mfma -mf16c):
 * loads, horizontal sums, and the unpacking of 32-value blocks into bytes. */
#ifndef HEARTH_X86_COMMON_H
#define HEARTH_X86_COMMON_H

#include "backend/cpu/blocks.h"
#include "quant/quant.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

INLINE float ldh(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }
INLINE __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE __m128i ld128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* low nibbles of 16 bytes in lanes 0..15, high nibbles in 16..31 (the ggml order) */
INLINE __m256i nibbles16(const uint8_t *p) {
    __m128i v = ld128(p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

/* byte i = 0x10 when bit i of the 32-bit little-endian qh is set */
INLINE __m256i fifth_bits(const uint8_t *qh4) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                    _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                                      0x0101010101010101LL, 0));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* One block: its 32 levels (signed or unsigned per b32_signed), value = a * level + c. */
INLINE __m256i unpack_b32(int type, const uint8_t *p, float *a, float *c) {
    *a = ldh(p);
    *c = 0.0f;
    switch (type) {
    case QT_Q8_0: return ld256(p + 2);
    case QT_Q4_0: return _mm256_sub_epi8(nibbles16(p + 2), _mm256_set1_epi8(8));
    case QT_Q4_1: *c = ldh(p + 2); return nibbles16(p + 4);
    case QT_Q5_0: return _mm256_sub_epi8(_mm256_or_si256(nibbles16(p + 6), fifth_bits(p + 2)), _mm256_set1_epi8(16));
    case QT_Q5_1: *c = ldh(p + 2); return _mm256_or_si256(nibbles16(p + 8), fifth_bits(p + 4));
    default: { /* iq4_nl: the codebook through a byte shuffle */
        const __m256i cb = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
                                            -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
        return _mm256_shuffle_epi8(cb, nibbles16(p + 2));
    }
    }
}

/* ---- k-quant super-blocks (256 values) ---- */

/* Chunk j (values 32j .. 32j+31) of a super-block as bytes (signed per k_signed). */
INLINE __m256i unpack_k(int type, const uint8_t *p, int j) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    switch (type) {
    case QT_Q4_K: {
        __m256i v = ld256(p + 16 + 32 * (j / 2));
        return _mm256_and_si256(j & 1 ? _mm256_srli_epi16(v, 4) : v, m4);
    }
    case QT_Q5_K: {
        __m256i v = ld256(p + 48 + 32 * (j / 2));
        __m256i lo = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(v, 4) : v, m4);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(ld256(p + 16), j), m1);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
    }
    case QT_Q6_K: {
        int h = j / 4, k = j % 4;
        __m256i l = ld256(p + 64 * h + 32 * (k % 2));
        __m256i lo = _mm256_and_si256(k / 2 ? _mm256_srli_epi16(l, 4) : l, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(ld256(p + 128 + 32 * h), 2 * k), m2);
        return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
    }
    case QT_Q3_K: {
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(ld256(p + 32 + 32 * (j / 4)), 2 * (j % 4)), m2);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(ld256(p), j), m1);
        return _mm256_sub_epi8(_mm256_add_epi8(lo, _mm256_slli_epi16(hb, 2)), _mm256_set1_epi8(4));
    }
    default: /* q2_k */
        return _mm256_and_si256(_mm256_srli_epi16(ld256(p + 16 + 32 * (j / 4)), 2 * (j % 4)), m2);
    }
}

#endif
