/* Inline helpers shared by the NEON kernel files (mm_neon.c, attn_neon.c): loads and the
 * unpacking of 32-value blocks into signed bytes. AArch64 only. */
#ifndef HEARTH_NEON_COMMON_H
#define HEARTH_NEON_COMMON_H

#include "backend/cpu/blocks.h"
#include "quant/quant.h"

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

typedef struct { int8x16_t lo, hi; } b32v;  /* values 0..15 and 16..31 of a 32-value run */

INLINE float ldh(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}

INLINE b32v ld32(const void *p) {
    b32v v = { vld1q_s8((const int8_t *)p), vld1q_s8((const int8_t *)p + 16) };
    return v;
}


/* low nibbles of 16 bytes as values 0..15, high nibbles as 16..31 (the ggml order) */
INLINE b32v nibbles(const uint8_t *p) {
    uint8x16_t v = vld1q_u8(p);
    b32v r = { vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4)) };
    return r;
}

/* 0x10 in byte i where bit i of the little-endian 32-bit qh is set */
INLINE b32v fifth_bits(const uint8_t *qh4) {
    static const uint8_t bits[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const uint8x16_t bit = vld1q_u8(bits), ten = vdupq_n_u8(0x10);
    uint8x16_t lo = vcombine_u8(vdup_n_u8(qh4[0]), vdup_n_u8(qh4[1]));
    uint8x16_t hi = vcombine_u8(vdup_n_u8(qh4[2]), vdup_n_u8(qh4[3]));
    b32v r = { vreinterpretq_s8_u8(vandq_u8(vtstq_u8(lo, bit), ten)),
               vreinterpretq_s8_u8(vandq_u8(vtstq_u8(hi, bit), ten)) };
    return r;
}

INLINE b32v add8(b32v v, int8_t k) {
    b32v r = { vaddq_s8(v.lo, vdupq_n_s8(k)), vaddq_s8(v.hi, vdupq_n_s8(k)) };
    return r;
}
INLINE b32v or8(b32v a, b32v b) {
    b32v r = { vorrq_s8(a.lo, b.lo), vorrq_s8(a.hi, b.hi) };
    return r;
}

/* One block: its 32 levels, value = a * level + c. */
INLINE b32v unpack_b32(int type, const uint8_t *p, float *a, float *c) {
    *a = ldh(p);
    *c = 0.0f;
    switch (type) {
    case QT_Q8_0: return ld32(p + 2);
    case QT_Q4_0: return add8(nibbles(p + 2), -8);
    case QT_Q4_1: *c = ldh(p + 2); return nibbles(p + 4);
    case QT_Q5_0: return add8(or8(nibbles(p + 6), fifth_bits(p + 2)), -16);
    case QT_Q5_1: *c = ldh(p + 2); return or8(nibbles(p + 8), fifth_bits(p + 4));
    default: { /* iq4_nl: the codebook through a table lookup */
        static const int8_t cb[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };
        const int8x16_t t = vld1q_s8(cb);
        b32v v = nibbles(p + 2);
        b32v r = { vqtbl1q_s8(t, vreinterpretq_u8_s8(v.lo)), vqtbl1q_s8(t, vreinterpretq_u8_s8(v.hi)) };
        return r;
    }
    }
}

#endif
