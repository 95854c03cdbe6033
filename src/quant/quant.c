/* quant: the traits table, lookups by id and name, and the f16 / bf16 conversions. */
#include "quant/quant_internal.h"

#include <ctype.h>
#include <stdio.h>

static const quant_traits *const table[QT_COUNT] = {
    [QT_F32] = &quant_row_f32,       [QT_F16] = &quant_row_f16,       [QT_BF16] = &quant_row_bf16,
    [QT_Q4_0] = &quant_row_q4_0,     [QT_Q4_1] = &quant_row_q4_1,
    [QT_Q5_0] = &quant_row_q5_0,     [QT_Q5_1] = &quant_row_q5_1,
    [QT_Q8_0] = &quant_row_q8_0,     [QT_Q8_1] = &quant_row_q8_1,     [QT_IQ4_NL] = &quant_row_iq4_nl,
    [QT_Q2_K] = &quant_row_q2_k,     [QT_Q3_K] = &quant_row_q3_k,     [QT_Q4_K] = &quant_row_q4_k,
    [QT_Q5_K] = &quant_row_q5_k,     [QT_Q6_K] = &quant_row_q6_k,     [QT_Q8_K] = &quant_row_q8_k,
};

/* ggml ids hearth has no code for. Naming them turns "type 16" in an error message into
 * something a person can look up ("this model is iq2_xxs; hearth does not run that"). */
static const char *const foreign_names[QT_COUNT] = {
    [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs", [19] = "iq1_s", [21] = "iq3_s",
    [22] = "iq2_s",   [23] = "iq4_xs", [24] = "i8",      [25] = "i16",   [26] = "i32",
    [27] = "i64",     [28] = "f64",    [29] = "iq1_m",   [34] = "tq1_0", [35] = "tq2_0",
    [39] = "mxfp4",
};

const quant_traits *quant_get(int type) {
    if (type < 0 || type >= QT_COUNT) return NULL;
    return table[type];
}

const char *quant_name(int type, char *buf, size_t n) {
    const quant_traits *t = quant_get(type);
    if (t) return t->name;
    if (buf == NULL || n == 0) return "unknown type";
    if (type >= 0 && type < QT_COUNT && foreign_names[type])
        snprintf(buf, n, "type %d (%s)", type, foreign_names[type]);
    else
        snprintf(buf, n, "type %d", type);
    return buf;
}

int quant_from_name(const char *name) {
    if (name == NULL) return -1;
    for (int i = 0; i < QT_COUNT; i++) {
        if (!table[i]) continue;
        const char *a = table[i]->name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (*a == 0 && *b == 0) return i;
    }
    return -1;
}

size_t quant_row_bytes(int type, int64_t n) {
    const quant_traits *t = quant_get(type);
    if (!t || n < 0 || n % t->block) return 0;
    return (size_t)(n / t->block) * t->bytes;
}

/* ---- f16 / bf16 ----
 * Bit manipulation rather than a compiler's _Float16, so the rounding is the same on every
 * compiler and target and the edge cases (subnormals, NaN payloads) are spelled out here. */

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in f32 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf, NaN with payload */
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t quant_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u)        /* NaN: keep the top payload bits, force quiet so it stays NaN */
        return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x3ff);
    if (x >= 0x477ff000u)       /* >= 65520 rounds (ties to even) past 65504: infinity */
        return sign | 0x7c00;
    if (x >= 0x38800000u) {     /* normal in f16 (>= 2^-14) */
        uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ff), rem = x & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry into the exponent is right */
        return sign | (uint16_t)h;
    }
    if (x < 0x33000000u) return sign; /* below 2^-25: rounds to zero (2^-25 itself ties to 0 below) */
    /* subnormal in f16: the result counts units of 2^-24 */
    uint32_t e = x >> 23, m = (x & 0x7fffff) | 0x800000, shift = 126 - e; /* 14..24 */
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float quant_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t quant_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: truncating could clear every payload bit */
        return (uint16_t)((x >> 16) | 0x0040);
    x += 0x7fff + ((x >> 16) & 1);        /* round to nearest even; overflow lands on inf */
    return (uint16_t)(x >> 16);
}

/* ---- float rows ---- */

static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static float f32_dot(const void *row, const float *x, int64_t n) {
    const float *r = row;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) acc += r[i] * x[i];
    return acc;
}

/* Rows of 16-bit floats are read through memcpy: a row may start at any even offset of a
 * mapped file, and this keeps the code free of alignment and aliasing assumptions. */
#define HALF_ROWS(NAME, TO32, FROM32)                                                  \
    static void NAME##_to_float(const void *src, float *dst, int64_t n) {              \
        const uint8_t *p = src;                                                        \
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = TO32(h); } \
    }                                                                                  \
    static void NAME##_from_float(const float *src, void *dst, int64_t n) {            \
        uint8_t *p = dst;                                                              \
        for (int64_t i = 0; i < n; i++) { uint16_t h = FROM32(src[i]); memcpy(p + 2 * i, &h, 2); } \
    }                                                                                  \
    static float NAME##_dot(const void *row, const float *x, int64_t n) {              \
        const uint8_t *p = row;                                                        \
        float acc = 0.0f;                                                              \
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); acc += TO32(h) * x[i]; } \
        return acc;                                                                    \
    }

HALF_ROWS(f16, quant_f16_to_f32, quant_f32_to_f16)
HALF_ROWS(bf16, quant_bf16_to_f32, quant_f32_to_bf16)

const quant_traits quant_row_f32  = { "f32",  QT_F32,  1, 4, f32_to_float,  f32_from_float,  f32_dot };
const quant_traits quant_row_f16  = { "f16",  QT_F16,  1, 2, f16_to_float,  f16_from_float,  f16_dot };
const quant_traits quant_row_bf16 = { "bf16", QT_BF16, 1, 2, bf16_to_float, bf16_from_float, bf16_dot };
