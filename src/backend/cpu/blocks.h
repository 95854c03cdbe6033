/* Block formats as the SIMD kernel files see them (portable C, shared by the x86 and the
 * NEON files): bytes per block, which 32-value types have signed levels or an added
 * minimum, and the k-quant super-block facts. Constant-folded inside the always-inline
 * kernel bodies, which is why they are not looked up in quant.h's traits table. */
#ifndef HEARTH_CPU_BLOCKS_H
#define HEARTH_CPU_BLOCKS_H

#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

static inline size_t b32_bytes(int type) {
    switch (type) {
    case QT_Q8_0: return 34;
    case QT_Q4_0: case QT_IQ4_NL: return 18;
    case QT_Q4_1: return 20;
    case QT_Q5_0: return 22;
    default: return 24; /* q5_1 */
    }
}
static inline int b32_signed(int type) { return type == QT_Q8_0 || type == QT_Q4_0 || type == QT_Q5_0 || type == QT_IQ4_NL; }
static inline int b32_bias(int type) { return type == QT_Q4_1 || type == QT_Q5_1; }

static inline size_t k_bytes(int type) {
    switch (type) {
    case QT_Q2_K: return 84;
    case QT_Q3_K: return 110;
    case QT_Q4_K: return 144;
    case QT_Q5_K: return 176;
    default: return 210; /* q6_k */
    }
}
static inline int k_signed(int type) { return type == QT_Q3_K || type == QT_Q6_K; }
static inline int k_mins(int type) { return type == QT_Q2_K || type == QT_Q4_K || type == QT_Q5_K; }

static inline void k4_scales(const uint8_t *s, int sc[8], int mn[8]) {
    for (int j = 0; j < 4; j++) { sc[j] = s[j] & 63; mn[j] = s[j + 4] & 63; }
    for (int j = 4; j < 8; j++) {
        sc[j] = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        mn[j] = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

#endif
