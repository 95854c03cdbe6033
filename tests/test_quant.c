/* quant: names and lookups, exact f16/bf16 rounding, each block layout against a decoder
 * written here straight from the byte layout, hand-built blocks with known values,
 * quantizer error bounds, dot products, and the llama.cpp-made synth-zoo models against
 * their f16 original. */
#include "testutil.h"
#include "quant/quant.h"
#include "gguf/gguf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- deterministic data ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float uniform(void) { return ((float)(rnd() >> 8) + 0.5f) / 16777216.0f; }
static float gauss(void) { return sqrtf(-2.0f * logf(uniform())) * cosf(6.2831853f * uniform()); }

static float f32_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static double rel_rms(const float *a, const float *ref, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) { e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]); s += (double)ref[i] * ref[i]; }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* The types the brief requires, plus the extras the table also has. */
static const int all_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                 QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_NL, QT_Q8_1, QT_Q8_K };
#define N_TYPES (int)(sizeof all_types / sizeof all_types[0])

/* ---- names and lookups ---- */

static void test_table(void) {
    static const struct { int type; const char *name; int block; size_t bytes; } want[] = {
        { QT_F32, "f32", 1, 4 },        { QT_F16, "f16", 1, 2 },        { QT_BF16, "bf16", 1, 2 },
        { QT_Q4_0, "q4_0", 32, 18 },    { QT_Q4_1, "q4_1", 32, 20 },    { QT_Q5_0, "q5_0", 32, 22 },
        { QT_Q5_1, "q5_1", 32, 24 },    { QT_Q8_0, "q8_0", 32, 34 },    { QT_Q8_1, "q8_1", 32, 36 },
        { QT_Q2_K, "q2_k", 256, 84 },   { QT_Q3_K, "q3_k", 256, 110 },  { QT_Q4_K, "q4_k", 256, 144 },
        { QT_Q5_K, "q5_k", 256, 176 },  { QT_Q6_K, "q6_k", 256, 210 },  { QT_Q8_K, "q8_k", 256, 292 },
        { QT_IQ4_NL, "iq4_nl", 32, 18 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const quant_traits *t = quant_get(want[i].type);
        CHECK(t != NULL, "type %d missing", want[i].type);
        if (!t) continue;
        CHECK(strcmp(t->name, want[i].name) == 0, "type %d named %s", want[i].type, t->name);
        CHECK(t->type == want[i].type && t->block == want[i].block && t->bytes == want[i].bytes,
              "%s: type %d block %d bytes %zu", t->name, t->type, t->block, t->bytes);
        CHECK(t->to_float && t->from_float && t->dot, "%s: missing functions", t->name);
        CHECK(quant_from_name(want[i].name) == want[i].type, "from_name(%s)", want[i].name);
        char buf[32];
        CHECK(strcmp(quant_name(want[i].type, buf, sizeof buf), want[i].name) == 0, "quant_name %s", want[i].name);
    }
    CHECK(quant_from_name("Q4_K") == QT_Q4_K, "upper case");
    CHECK(quant_from_name("IQ4_nl") == QT_IQ4_NL, "mixed case");
    CHECK(quant_from_name("q4") == -1 && quant_from_name("q8_0x") == -1 && quant_from_name("") == -1 &&
          quant_from_name("fp16") == -1 && quant_from_name(NULL) == -1, "non-names");
    CHECK(quant_from_name("iq2_xxs") == -1, "a ggml type hearth cannot run is not found by name");

    int unknown[] = { -1, 4, 5, 16, 31, 39, 40, 1000 };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK(quant_get(unknown[i]) == NULL, "type %d should be unknown", unknown[i]);
    char buf[64];
    CHECK(strcmp(quant_name(99, buf, sizeof buf), "type 99") == 0, "got %s", buf);
    CHECK(strcmp(quant_name(-3, buf, sizeof buf), "type -3") == 0, "got %s", buf);
    CHECK(strcmp(quant_name(16, buf, sizeof buf), "type 16 (iq2_xxs)") == 0, "got %s", buf);
    char tiny[4];
    CHECK(strlen(quant_name(99, tiny, sizeof tiny)) == 3, "truncated into a small buffer");

    CHECK(quant_row_bytes(QT_Q4_K, 512) == 288, "q4_k row");
    CHECK(quant_row_bytes(QT_Q8_0, 4096) == 4352, "q8_0 row");
    CHECK(quant_row_bytes(QT_F16, 3) == 6, "f16 row");
    CHECK(quant_row_bytes(QT_Q8_0, 33) == 0, "partial block");
    CHECK(quant_row_bytes(17, 256) == 0, "unknown type");
}

/* ---- f16 / bf16 ---- */

static void test_f16(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        { 0.0f, 0x0000 }, { -0.0f, 0x8000 }, { 1.0f, 0x3c00 }, { -2.0f, 0xc000 }, { 0.5f, 0x3800 },
        { 65504.0f, 0x7bff }, { 65519.99f, 0x7bff }, { 65520.0f, 0x7c00 }, { -65520.0f, 0xfc00 },
        { 1e10f, 0x7c00 }, { 0.1f, 0x2e66 }, { 6.103515625e-05f, 0x0400 } /* 2^-14 */,
        { 5.9604645e-08f, 0x0001 } /* 2^-24 */, { 2.98023224e-08f, 0x0000 } /* 2^-25 ties to 0 */,
        { 4.47034836e-08f, 0x0001 } /* 1.5 * 2^-25 */, { 8.94069672e-08f, 0x0002 } /* 1.5 * 2^-24 ties to 2 */,
        { 1.00048828125f, 0x3c00 } /* 1 + 2^-11 ties to even */, { 1.00146484375f, 0x3c02 } /* 1 + 3*2^-11 */,
        { 1e-40f, 0x0000 } /* f32 subnormal */, { -1e-40f, 0x8000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = quant_f32_to_f16(cases[i].f);
        CHECK(h == cases[i].h, "f16(%.10g) = 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    CHECK(quant_f32_to_f16(INFINITY) == 0x7c00 && quant_f32_to_f16(-INFINITY) == 0xfc00, "inf");
    CHECK(isinf(quant_f16_to_f32(0x7c00)) && quant_f16_to_f32(0xfc00) < 0, "inf back");
    uint16_t hn = quant_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "NaN stays NaN: 0x%04x", hn);
    uint16_t hlow = quant_f32_to_f16(f32_of(0xff800001u)); /* NaN whose payload is below f16's bits */
    CHECK((hlow & 0x7fff) > 0x7c00 && (hlow & 0x8000), "low-payload NaN stays NaN with sign: 0x%04x", hlow);

    /* Every f16 decodes to the value its bits say, and encodes back to itself. */
    int bad_dec = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            if (m ? !isnan(f) : !isinf(f)) bad_dec++;
            if (m && (quant_f32_to_f16(f) & 0x7fff) != ((h & 0x7fff) | 0x200)) bad_rt++;
            continue;
        }
        double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (h & 0x8000) v = -v;
        if ((double)f != v || !!signbit(f) != !!(h & 0x8000)) bad_dec++;
        if (quant_f32_to_f16(f) != h) bad_rt++;
    }
    CHECK(bad_dec == 0, "%d f16 values decode wrong", bad_dec);
    CHECK(bad_rt == 0, "%d f16 values do not round-trip", bad_rt);

    /* Between every two neighbouring finite f16 values: the midpoint goes to the even one,
     * and the f32 values just either side of it go to the nearer one. */
    int bad_mid = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = quant_f16_to_f32((uint16_t)h), b = quant_f16_to_f32((uint16_t)(h + 1));
        float mid = (a + b) * 0.5f; /* exact: one more bit than f16 has */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (quant_f32_to_f16(mid) != even) bad_mid++;
        if (quant_f32_to_f16(nextafterf(mid, 0.0f)) != h) bad_mid++;
        if (quant_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) bad_mid++;
        if (quant_f32_to_f16(-mid) != (even | 0x8000)) bad_mid++;
    }
    CHECK(bad_mid == 0, "%d f16 rounding boundaries wrong", bad_mid);
}

static void test_bf16(void) {
    CHECK(quant_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(quant_f32_to_bf16(-2.0f) == 0xc000, "-2.0");
    CHECK(quant_f32_to_bf16(f32_of(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(quant_f32_to_bf16(f32_of(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(quant_f32_to_bf16(f32_of(0x3f808001u)) == 0x3f81, "above the tie");
    CHECK(quant_f32_to_bf16(f32_of(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK(quant_f32_to_bf16(-INFINITY) == 0xff80, "-inf");
    CHECK(quant_f32_to_bf16(f32_of(0x00018000u)) == 0x0002, "subnormal tie to even");
    uint16_t n = quant_f32_to_bf16(f32_of(0x7f800001u));
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f), "low-payload NaN stays NaN: 0x%04x", n);
    n = quant_f32_to_bf16(f32_of(0xffc12345u));
    CHECK(n == 0xffc1, "NaN keeps sign and top payload: 0x%04x", n);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_bf16_to_f32((uint16_t)h);
        if (bits_of(f) != h << 16) bad++;
        if (!isnan(f) && quant_f32_to_bf16(f) != h) bad++;
        if ((h & 0x7fff) < 0x7f7f) { /* finite with a finite neighbour: check the midpoint */
            uint32_t mid = h << 16 | 0x8000;
            if (quant_f32_to_bf16(f32_of(mid)) != ((h & 1) ? h + 1 : h)) bad++;
            if (quant_f32_to_bf16(f32_of(mid - 1)) != h || quant_f32_to_bf16(f32_of(mid + 1)) != h + 1) bad++;
        }
    }
    CHECK(bad == 0, "%d bf16 conversions wrong", bad);
}

/* ---- decoders written from the byte layouts, walking each block in file order ----
 * These are deliberately a different formulation from src/quant (which indexes per element),
 * so a layout slip in either shows up as a mismatch. */

static float rdh(const uint8_t *p) { return quant_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static const int8_t iq4nl_book[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

static void spec_q4_0(const uint8_t *b, float *y) {
    float d = rdh(b);
    for (int j = 0; j < 16; j++) { y[j] = d * ((b[2 + j] & 15) - 8); y[j + 16] = d * ((b[2 + j] >> 4) - 8); }
}
static void spec_q4_1(const uint8_t *b, float *y) {
    float d = rdh(b), m = rdh(b + 2);
    for (int j = 0; j < 16; j++) { y[j] = d * (b[4 + j] & 15) + m; y[j + 16] = d * (b[4 + j] >> 4) + m; }
}
static void spec_q5(const uint8_t *qh4, const uint8_t *qs, float d, float m, int off, float *y) {
    uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 | (uint32_t)qh4[3] << 24;
    for (int j = 0; j < 16; j++) {
        y[j]      = d * ((int)((qs[j] & 15) | ((qh >> j) & 1) << 4) - off) + m;
        y[j + 16] = d * ((int)((qs[j] >> 4) | ((qh >> (16 + j)) & 1) << 4) - off) + m;
    }
}
static void spec_q5_0(const uint8_t *b, float *y) { spec_q5(b + 2, b + 6, rdh(b), 0.0f, 16, y); }
static void spec_q5_1(const uint8_t *b, float *y) { spec_q5(b + 4, b + 8, rdh(b), rdh(b + 2), 0, y); }
static void spec_q8_0(const uint8_t *b, float *y) {
    for (int j = 0; j < 32; j++) y[j] = rdh(b) * (int8_t)b[2 + j];
}
static void spec_iq4_nl(const uint8_t *b, float *y) {
    for (int j = 0; j < 16; j++) { y[j] = rdh(b) * iq4nl_book[b[2 + j] & 15]; y[j + 16] = rdh(b) * iq4nl_book[b[2 + j] >> 4]; }
}

/* q2_k: scales[16] qs[64] d dmin. Each half of 128 values reads 32 bytes four times, two
 * bits deeper each pass; each pass is two sub-blocks of 16 (bytes 0..15, then 16..31). */
static void spec_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    float d = rdh(b + 80), dmin = rdh(b + 82);
    for (int half = 0; half < 2; half++, qs += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int g = 0; g < 2; g++, sc++)
                for (int l = 0; l < 16; l++)
                    *y++ = d * (float)(*sc & 15) * ((qs[16 * g + l] >> shift) & 3) - dmin * (float)(*sc >> 4);
}

/* q3_k: hmask[32] qs[64] scales[12] d. Same 2-bit walk as q2_k; the third bit of each value
 * comes from hmask, one bit plane per pass, and a clear bit subtracts 4. */
static void spec_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
    float d = rdh(b + 108);
    int scale[16];
    for (int i = 0; i < 8; i++) { scale[i] = s[i] & 15; scale[i + 8] = s[i] >> 4; }
    for (int k = 0; k < 4; k++)          /* byte 8 + k: top bits of scales k, k+4, k+8, k+12 */
        for (int t = 0; t < 4; t++) scale[k + 4 * t] |= ((s[8 + k] >> (2 * t)) & 3) << 4;
    int is = 0, plane = 0;
    for (int half = 0; half < 2; half++, qs += 32)
        for (int shift = 0; shift < 8; shift += 2, plane++)
            for (int g = 0; g < 2; g++, is++)
                for (int l = 0; l < 16; l++) {
                    int v = (qs[16 * g + l] >> shift) & 3;
                    if (!(hm[16 * g + l] & (1 << plane))) v -= 4;
                    *y++ = d * (float)(scale[is] - 32) * v;
                }
}

static void spec_k4_scales(const uint8_t *s, int *sc, int *mn) {
    for (int j = 0; j < 4; j++) { sc[j] = s[j] & 63; mn[j] = s[j + 4] & 63; }
    for (int j = 4; j < 8; j++) {
        sc[j] = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        mn[j] = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* q4_k: d dmin scales[12] qs[128]. Four chunks of 64 values over 32 bytes each: the low
 * nibbles are the first sub-block of the chunk, the high nibbles the second. */
static void spec_q4_k(const uint8_t *b, float *y) {
    float d = rdh(b), dmin = rdh(b + 2);
    int sc[8], mn[8];
    spec_k4_scales(b + 4, sc, mn);
    const uint8_t *qs = b + 16;
    for (int c = 0; c < 4; c++, qs += 32) {
        for (int l = 0; l < 32; l++) *y++ = d * (float)sc[2 * c] * (qs[l] & 15) - dmin * (float)mn[2 * c];
        for (int l = 0; l < 32; l++) *y++ = d * (float)sc[2 * c + 1] * (qs[l] >> 4) - dmin * (float)mn[2 * c + 1];
    }
}

/* q5_k: d dmin scales[12] qh[32] qs[128]. As q4_k, with a fifth bit from qh, one bit plane
 * per sub-block. */
static void spec_q5_k(const uint8_t *b, float *y) {
    float d = rdh(b), dmin = rdh(b + 2);
    int sc[8], mn[8];
    spec_k4_scales(b + 4, sc, mn);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int c = 0; c < 4; c++, qs += 32) {
        for (int l = 0; l < 32; l++)
            *y++ = d * (float)sc[2 * c] * ((qs[l] & 15) + 16 * ((qh[l] >> (2 * c)) & 1)) - dmin * (float)mn[2 * c];
        for (int l = 0; l < 32; l++)
            *y++ = d * (float)sc[2 * c + 1] * ((qs[l] >> 4) + 16 * ((qh[l] >> (2 * c + 1)) & 1)) - dmin * (float)mn[2 * c + 1];
    }
}

/* q6_k: ql[128] qh[64] scales[16] d. Per half of 128: 64 ql bytes, 32 qh bytes, 8 scales;
 * byte l of each gives values l, l+32, l+64, l+96 of the half. */
static void spec_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 15)      | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4)      | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l]      = d * (float)sc[is] * q1;
            y[l + 32] = d * (float)sc[is + 2] * q2;
            y[l + 64] = d * (float)sc[is + 4] * q3;
            y[l + 96] = d * (float)sc[is + 6] * q4;
        }
}

static const struct spec {
    int type;
    void (*decode)(const uint8_t *b, float *y);
    int f16_at[2]; /* byte offsets of the f16 scales, -1 if none */
} specs[] = {
    { QT_Q4_0, spec_q4_0, { 0, -1 } },   { QT_Q4_1, spec_q4_1, { 0, 2 } },
    { QT_Q5_0, spec_q5_0, { 0, -1 } },   { QT_Q5_1, spec_q5_1, { 0, 2 } },
    { QT_Q8_0, spec_q8_0, { 0, -1 } },   { QT_IQ4_NL, spec_iq4_nl, { 0, -1 } },
    { QT_Q2_K, spec_q2_k, { 80, 82 } },  { QT_Q3_K, spec_q3_k, { 108, -1 } },
    { QT_Q4_K, spec_q4_k, { 0, 2 } },    { QT_Q5_K, spec_q5_k, { 0, 2 } },
    { QT_Q6_K, spec_q6_k, { 208, -1 } },
};

/* Random bytes (every bit of every field exercised), with the f16 scales set to ordinary
 * numbers so both sides compute finite values. */
static void test_layouts_random(void) {
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        const quant_traits *t = quant_get(specs[s].type);
        if (!t) continue;
        enum { NB = 64 };
        uint8_t *blocks = malloc(NB * t->bytes);
        float *got = malloc(sizeof(float) * NB * t->block), want[256];
        for (size_t i = 0; i < NB * t->bytes; i++) blocks[i] = (uint8_t)rnd();
        for (int k = 0; k < NB; k++)
            for (int f = 0; f < 2; f++) if (specs[s].f16_at[f] >= 0) {
                uint16_t h = quant_f32_to_f16((uniform() - 0.5f) * 4.0f);
                memcpy(blocks + k * t->bytes + specs[s].f16_at[f], &h, 2);
            }
        t->to_float(blocks, got, (int64_t)NB * t->block);
        int bad = 0, first = -1;
        for (int k = 0; k < NB; k++) {
            specs[s].decode(blocks + k * t->bytes, want);
            for (int i = 0; i < t->block; i++) {
                float g = got[k * t->block + i];
                if (!(fabsf(g - want[i]) <= 1e-5f * (1.0f + fabsf(want[i])))) { bad++; if (first < 0) first = k * t->block + i; }
            }
        }
        CHECK(bad == 0, "%s: %d values differ from the layout decoder (first at %d)", t->name, bad, first);
        free(blocks); free(got);
    }
}

/* ---- hand-built blocks with values worked out by hand ---- */

static void put16(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8); }

static void expect(const char *what, int type, const uint8_t *blk, const int *idx, const float *val, int n) {
    const quant_traits *t = quant_get(type);
    float y[256];
    t->to_float(blk, y, t->block);
    for (int i = 0; i < n; i++)
        CHECK(y[idx[i]] == val[i], "%s: element %d = %g, want %g", what, idx[i], y[idx[i]], val[i]);
}

static void test_hand_built(void) {
    uint8_t b[292];

    memset(b, 0, sizeof b); put16(b, 0x3800); /* q8_0, d = 0.5 */
    b[2] = 0x80; b[3] = 0xff; b[5] = 1; b[33] = 127;
    expect("q8_0", QT_Q8_0, b, (int[]){ 0, 1, 2, 3, 31 }, (float[]){ -64, -0.5f, 0, 0.5f, 63.5f }, 5);

    memset(b, 0, sizeof b); put16(b, 0x4000); /* q4_0, d = 2 */
    b[2] = 0x0f; b[3] = 0x81;
    expect("q4_0", QT_Q4_0, b, (int[]){ 0, 16, 1, 17, 2 }, (float[]){ 14, -16, -14, 0, -16 }, 5);

    memset(b, 0, sizeof b); put16(b, 0x3400); put16(b + 2, 0xbc00); /* q4_1, d = 0.25, m = -1 */
    b[4] = 0xf3;
    expect("q4_1", QT_Q4_1, b, (int[]){ 0, 16, 1 }, (float[]){ -0.25f, 2.75f, -1 }, 3);

    memset(b, 0, sizeof b); put16(b, 0x3c00); /* q5_0, d = 1; fifth bits of elements 0 and 17 */
    b[2] = 0x01; b[4] = 0x02; b[7] = 0x10;
    expect("q5_0", QT_Q5_0, b, (int[]){ 0, 16, 1, 17 }, (float[]){ 0, -16, -16, 1 }, 4);

    memset(b, 0, sizeof b); put16(b, 0x3800); put16(b + 2, 0x3c00); /* q5_1, d = 0.5, m = 1; bit 31 */
    b[7] = 0x80; b[8 + 15] = 0xf0;
    expect("q5_1", QT_Q5_1, b, (int[]){ 31, 15, 0 }, (float[]){ 16.5f, 1, 1 }, 3);

    memset(b, 0, sizeof b); put16(b, 0x3c00); /* iq4_nl, d = 1 */
    b[2] = 0xf0; b[3] = 0x78;
    expect("iq4_nl", QT_IQ4_NL, b, (int[]){ 0, 16, 1, 17 }, (float[]){ -127, 113, 1, -10 }, 4);

    /* q2_k, d = dmin = 1: sub-block 0 scale 2 min 1, sub-block 2 scale 5 min 0. Byte 0 holds
     * element 0 at bits 0-1 (3) and element 32 at bits 2-3 (2). */
    memset(b, 0, sizeof b); put16(b + 80, 0x3c00); put16(b + 82, 0x3c00);
    b[0] = 0x12; b[2] = 0x05; b[16] = 0x0b;
    expect("q2_k", QT_Q2_K, b, (int[]){ 0, 1, 32, 33 }, (float[]){ 5, -1, 10, 0 }, 4);

    /* q3_k, d = 1: scale 0 stored 35 (3), scale 15 stored 27 (-5). Element 0: bits 01, high
     * bit clear -> -3. Element 255: byte 63 bits 6-7 = 3, hmask[31] bit 7 set -> 3. */
    memset(b, 0, sizeof b); put16(b + 108, 0x3c00);
    b[96 + 0] = 0x03; b[96 + 8] = 0x02; b[96 + 7] = 0xb0; b[96 + 11] = 0x40;
    b[32] = 0x01; b[32 + 63] = 0xc0; b[31] = 0x80;
    expect("q3_k", QT_Q3_K, b, (int[]){ 0, 1, 255, 16 }, (float[]){ -9, -12, -15, 128 }, 4);

    /* q4_k, d = 1, dmin = 0.5: sub-block 0 scale 3 min 2; sub-block 5 scale 33 min 18 (low
     * nibbles in byte 9, top bits in bytes 1 and 5). Element 167 = sub-block 5, high nibble
     * of qs[64 + 7]. */
    memset(b, 0, sizeof b); put16(b, 0x3c00); put16(b + 2, 0x3800);
    b[4 + 0] = 3; b[4 + 4] = 2; b[4 + 9] = 0x21; b[4 + 1] = 0x80; b[4 + 5] = 0x40;
    b[16 + 0] = 0x09; b[16 + 71] = 0xa0;
    expect("q4_k", QT_Q4_K, b, (int[]){ 0, 1, 32, 167, 160, 135 }, (float[]){ 26, -1, 0, 321, -9, 0 }, 6);

    /* q5_k: the same scales; element 167's fifth bit is qh[7] bit 5. */
    memset(b, 0, sizeof b); put16(b, 0x3c00); put16(b + 2, 0x3800);
    b[4 + 0] = 3; b[4 + 4] = 2; b[4 + 9] = 0x21; b[4 + 1] = 0x80; b[4 + 5] = 0x40;
    b[16 + 7] = 0x20; b[48 + 0] = 0x09; b[48 + 71] = 0xa0;
    expect("q5_k", QT_Q5_K, b, (int[]){ 0, 167, 135 }, (float[]){ 26, 33 * 26 - 9, 0 }, 3);

    /* q6_k, d = 0.5: scale 0 = 2, scale 15 = -3. Element 0: ql[0] low 5, qh[0] bits 0-1 = 2
     * -> 37 - 32 = 5. Element 255: ql[127] high 3, qh[63] bits 6-7 = 1 -> 19 - 32 = -13. */
    memset(b, 0, sizeof b); put16(b + 208, 0x3800);
    b[192] = 2; b[192 + 15] = (uint8_t)-3;
    b[0] = 0x05; b[128] = 0x02; b[127] = 0x30; b[128 + 63] = 0x40;
    expect("q6_k", QT_Q6_K, b, (int[]){ 0, 255, 1 }, (float[]){ 5, 19.5f, -32 }, 3);
}

/* ---- quantizers ---- */

/* Relative RMS error on unit Gaussian data. The bounds sit ~10% above what the reference
 * quantizers reach (and at or above what llama.cpp's files show for the same types). The
 * 32-value types the KV cache uses search their scale (quant_legacy.c) and reach here
 * q8_0 0.00487, q5_1 0.0332, q5_0 0.0398, q4_1 0.0686, iq4_nl 0.0730, q4_0 0.0811; from the
 * extreme value alone they were 0.00534, 0.0380, 0.0427, 0.0778, 0.0731, 0.0859. Their
 * bounds sit 5-10% above the searched numbers and below the unsearched ones, so a search
 * that stops working fails here. */
static double rt_bound(int type) {
    switch (type) {
    case QT_F32: return 0.0;        case QT_F16: return 3e-4;      case QT_BF16: return 2.5e-3;
    case QT_Q8_0: return 0.0052;    case QT_Q8_1: return 0.0062;   case QT_Q8_K: return 0.008;
    case QT_Q6_K: return 0.020;     case QT_Q5_K: return 0.040;    case QT_Q5_1: return 0.0365;
    case QT_Q5_0: return 0.042;     case QT_Q4_K: return 0.079;    case QT_Q4_1: return 0.076;
    case QT_Q4_0: return 0.085;     case QT_IQ4_NL: return 0.081;  case QT_Q3_K: return 0.16;
    case QT_Q2_K: return 0.30;
    }
    return 0.0;
}

static void test_round_trip(void) {
    enum { N = 256 * 64 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N), *x2 = malloc(sizeof(float) * N);
    uint8_t *q = malloc(N * 4 + 64), *q2 = malloc(N * 4 + 64);
    for (int i = 0; i < N; i++) x[i] = gauss();
    for (int k = 0; k < N_TYPES; k++) {
        const quant_traits *t = quant_get(all_types[k]);
        if (!t) { CHECK(0, "type %d missing", all_types[k]); continue; }
        size_t nb = quant_row_bytes(t->type, N);

        /* The output must not depend on what the buffer held before. */
        memset(q, 0xaa, nb); memset(q2, 0x55, nb);
        t->from_float(x, q, N); t->from_float(x, q2, N);
        CHECK(memcmp(q, q2, nb) == 0, "%s: from_float leaves bytes unwritten", t->name);

        t->to_float(q, y, N);
        double e = rel_rms(y, x, N);
        CHECK(e <= rt_bound(t->type), "%s: round-trip relative RMS error %.5f > %.5f", t->name, e, rt_bound(t->type));

        /* Scaled and shifted data: the error scales with the data, and a positive offset is
         * handled (q*_1 and the k-quants with minimums fit it; the rest just spend range). */
        for (int i = 0; i < N; i++) x2[i] = 1e-3f * x[i] + 2e-3f;
        t->from_float(x2, q, N); t->to_float(q, y, N);
        e = rel_rms(y, x2, N);
        CHECK(e <= rt_bound(t->type) * 1.5, "%s: shifted data error %.5f", t->name, e);

        /* Zeros, tiny values (scales underflow f16), and values near the f16 limit must all
         * come back finite; zeros exactly. */
        for (int i = 0; i < N; i++) x2[i] = 0.0f;
        t->from_float(x2, q, N); t->to_float(q, y, N);
        int nz = 0;
        for (int i = 0; i < N; i++) nz += y[i] != 0.0f;
        CHECK(nz == 0, "%s: zeros come back as %d non-zeros", t->name, nz);
        for (int i = 0; i < N; i++) x2[i] = 1e-9f * x[i];
        t->from_float(x2, q, N); t->to_float(q, y, N);
        int nf = 0;
        for (int i = 0; i < N; i++) nf += !isfinite(y[i]) || fabsf(y[i]) > 1e-7f;
        CHECK(nf == 0, "%s: tiny values give %d bad results", t->name, nf);
        if (t->type != QT_Q8_K) { /* q8_k's f32 scale has no such limit */
            for (int i = 0; i < N; i++) x2[i] = x[i] > 0 ? 60000.0f : -60000.0f;
            x2[5] = 0.0f;
            t->from_float(x2, q, N); t->to_float(q, y, N);
            nf = 0;
            for (int i = 0; i < N; i++) nf += !isfinite(y[i]);
            CHECK(nf == 0, "%s: large values give %d non-finite results", t->name, nf);
            CHECK(rel_rms(y, x2, N) < 0.2, "%s: large values error %.4f", t->name, rel_rms(y, x2, N));
        }
    }
    free(x); free(y); free(x2); free(q); free(q2);
}

static void test_dot(void) {
    enum { N = 256 * 16 };
    float *w = malloc(sizeof(float) * N), *a = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint8_t *q = malloc(N * 4);
    for (int i = 0; i < N; i++) { w[i] = gauss() + 0.3f; a[i] = gauss(); }
    for (int k = 0; k < N_TYPES; k++) {
        const quant_traits *t = quant_get(all_types[k]);
        if (!t) continue;
        t->from_float(w, q, N);
        t->to_float(q, y, N);
        for (int64_t n = t->block; n <= N; n *= 4) { /* one block, a few, many */
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) { ref += (double)y[i] * a[i]; mag += fabs((double)y[i] * a[i]); }
            float got = t->dot(q, a, n);
            CHECK(fabs(got - ref) <= 1e-5 * mag + 1e-6, "%s: dot over %lld = %.7g, want %.7g", t->name, (long long)n, got, ref);
        }
    }
    free(w); free(a); free(y); free(q);
}

/* ---- the synth-zoo models ----
 * The same weights, quantized by llama.cpp into each type. Dequantized, every tensor must be
 * close to its f16 original, within about the quantization noise of its type: a wrong bit
 * order or scale packing lands near 100% error, not 2-30%. Then our own quantizer, run on the
 * f16 weights, must do about as well as llama.cpp did. */

static double zoo_bound(int type) {
    switch (type) {
    case QT_F16: return 0.0;        case QT_BF16: return 0.002;    case QT_Q8_0: return 0.0062;
    case QT_Q6_K: return 0.020;     case QT_Q5_K: return 0.041;    case QT_Q5_1: return 0.043;
    case QT_Q5_0: return 0.048;     case QT_Q4_K: return 0.080;    case QT_Q4_1: return 0.088;
    case QT_Q4_0: return 0.095;     case QT_IQ4_NL: return 0.085;  case QT_Q3_K: return 0.17;
    case QT_Q2_K: return 0.33;
    }
    return -1.0;
}

static void test_zoo(void) {
    static const char *files[] = { "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m",
                                   "q4_1", "q4_0", "iq4_nl", "q3_k_m", "q2_k" };
    char err[512], path[256];
    gguf_file *ref = gguf_open(test_data("models/synth-zoo-f16.gguf"), err, sizeof err);
    CHECK(ref != NULL, "%s", err);
    if (!ref) return;
    int seen[QT_COUNT] = { 0 };
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        snprintf(path, sizeof path, "models/synth-zoo-%s.gguf", files[fi]);
        gguf_file *f = gguf_open(test_data(path), err, sizeof err);
        CHECK(f != NULL, "%s", err);
        if (!f) continue;
        for (uint64_t ti = 0; ti < f->n_tensors; ti++) {
            const gguf_tensor *t = &f->tensors[ti];
            if (t->type == QT_F32) continue;
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
            const gguf_tensor *r = gguf_find_tensor(ref, name);
            const quant_traits *qt = quant_get(t->type);
            CHECK(r && r->type == QT_F16 && qt, "%s: %s has no f16 twin or unknown type", files[fi], name);
            if (!r || r->type != QT_F16 || !qt) continue;
            int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
            CHECK(n == r->ne[0] * r->ne[1] * r->ne[2] * r->ne[3] && t->nbytes == quant_row_bytes(t->type, n),
                  "%s: %s shape or size", files[fi], name);
            float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
            qt->to_float(t->data, got, n);
            quant_get(QT_F16)->to_float(r->data, want, n);
            double e = rel_rms(got, want, n);
            CHECK(e <= zoo_bound(t->type), "%s: %s (%s) differs from f16 by %.5f RMS (bound %.4f)",
                  files[fi], name, qt->name, e, zoo_bound(t->type));
            seen[t->type]++;

            /* our quantizer vs llama.cpp's, on the same weights */
            if (t->type != QT_F16) {
                uint8_t *mine = malloc(quant_row_bytes(t->type, n));
                qt->from_float(want, mine, n);
                qt->to_float(mine, got, n);
                double em = rel_rms(got, want, n);
                CHECK(em <= e * 1.03 + 1e-4, "%s: %s (%s): our quantizer %.5f vs llama.cpp's %.5f",
                      files[fi], name, qt->name, em, e);
                free(mine);
            }
            free(got); free(want);
        }
        gguf_close(f);
    }
    gguf_close(ref);
    static const int need[] = { QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q2_K,
                                QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_NL };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        CHECK(seen[need[i]] > 0, "no synth-zoo tensor of type %d was checked", need[i]);
}

int main(void) {
    test_table();
    test_f16();
    test_bf16();
    test_layouts_random();
    test_hand_built();
    test_round_trip();
    test_dot();
    test_zoo();
    return test_done("test_quant");
}
