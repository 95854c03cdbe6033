/* The tile instantiations and the kernel table of a SIMD matmul file (mm_x86.c, mm_neon.c),
 * included once at the end of it: the file defines the always-inline bodies tile_b32,
 * tile_k and tile_f over (type, R, C) and MM_TABLE_FN, the name of its table getter. Each
 * body is instantiated as straight-line code per type for full MM_TILE_R x MM_TILE_C tiles
 * and for the 1 x C / R x 1 pieces at the edges. */
#ifndef MM_TABLE_FN
#error "define MM_TABLE_FN before including mm_tiles.h"
#endif

#define TILE_ARGS const uint8_t *w, size_t rb, int nr, const uint8_t *xa, size_t xs, int nc, int64_t n, float *y, size_t ldy
#define DEF_TILES(NAME, BODY, TYPE)                                                                 \
    static void NAME##_4x2(TILE_ARGS) { (void)nr; (void)nc; BODY(TYPE, 4, 2, w, rb, xa, xs, n, y, ldy); } \
    static void NAME##_4x1(TILE_ARGS) { (void)nr; (void)nc; BODY(TYPE, 4, 1, w, rb, xa, xs, n, y, ldy); } \
    static void NAME##_1x2(TILE_ARGS) { (void)nr; (void)nc; BODY(TYPE, 1, 2, w, rb, xa, xs, n, y, ldy); } \
    static void NAME##_1x1(TILE_ARGS) { (void)nr; (void)nc; BODY(TYPE, 1, 1, w, rb, xa, xs, n, y, ldy); } \
    static void NAME(TILE_ARGS) {                                                                   \
        if (nr == 4) {                                                                              \
            (nc == 2 ? NAME##_4x2 : NAME##_4x1)(w, rb, nr, xa, xs, nc, n, y, ldy);                  \
            return;                                                                                 \
        }                                                                                           \
        for (int r = 0; r < nr; r++)                                                                \
            (nc == 2 ? NAME##_1x2 : NAME##_1x1)(w + (size_t)r * rb, rb, 1, xa, xs, nc, n, y + r, ldy); \
    }

DEF_TILES(t_q8_0, tile_b32, QT_Q8_0)
DEF_TILES(t_q4_0, tile_b32, QT_Q4_0)
DEF_TILES(t_q4_1, tile_b32, QT_Q4_1)
DEF_TILES(t_q5_0, tile_b32, QT_Q5_0)
DEF_TILES(t_q5_1, tile_b32, QT_Q5_1)
DEF_TILES(t_iq4_nl, tile_b32, QT_IQ4_NL)
DEF_TILES(t_q2_k, tile_k, QT_Q2_K)
DEF_TILES(t_q3_k, tile_k, QT_Q3_K)
DEF_TILES(t_q4_k, tile_k, QT_Q4_K)
DEF_TILES(t_q5_k, tile_k, QT_Q5_K)
DEF_TILES(t_q6_k, tile_k, QT_Q6_K)
DEF_TILES(t_f32, tile_f, QT_F32)
DEF_TILES(t_f16, tile_f, QT_F16)
DEF_TILES(t_bf16, tile_f, QT_BF16)

static const mm_kernels k_q8_0 = { MM_ACT_B32, 32, t_q8_0 }, k_q4_0 = { MM_ACT_B32, 32, t_q4_0 },
                        k_q4_1 = { MM_ACT_B32, 32, t_q4_1 }, k_q5_0 = { MM_ACT_B32, 32, t_q5_0 },
                        k_q5_1 = { MM_ACT_B32, 32, t_q5_1 }, k_iq4_nl = { MM_ACT_B32, 32, t_iq4_nl },
                        k_q2_k = { MM_ACT_K, 256, t_q2_k }, k_q3_k = { MM_ACT_K, 256, t_q3_k },
                        k_q4_k = { MM_ACT_K, 256, t_q4_k }, k_q5_k = { MM_ACT_K, 256, t_q5_k },
                        k_q6_k = { MM_ACT_K, 256, t_q6_k }, k_f32 = { MM_ACT_F32, 8, t_f32 },
                        k_f16 = { MM_ACT_F32, 8, t_f16 }, k_bf16 = { MM_ACT_F32, 8, t_bf16 };

const mm_kernels *MM_TABLE_FN(int type) {
    switch (type) {
    case QT_Q8_0: return &k_q8_0;
    case QT_Q4_0: return &k_q4_0;
    case QT_Q4_1: return &k_q4_1;
    case QT_Q5_0: return &k_q5_0;
    case QT_Q5_1: return &k_q5_1;
    case QT_IQ4_NL: return &k_iq4_nl;
    case QT_Q2_K: return &k_q2_k;
    case QT_Q3_K: return &k_q3_k;
    case QT_Q4_K: return &k_q4_k;
    case QT_Q5_K: return &k_q5_k;
    case QT_Q6_K: return &k_q6_k;
    case QT_F32: return &k_f32;
    case QT_F16: return &k_f16;
    case QT_BF16: return &k_bf16;
    default: return NULL;
    }
}

#undef DEF_TILES
#undef TILE_ARGS
