/* The plan of a synthetic model: named shapes of real models, and which weight type each
 * tensor gets for a type name, including the llama.cpp-style mixes (q4_k_m: mostly q4_k,
 * with q6_k for the output and for attn_v / ffn_down in the layers that matter most). */
#include "model/synth.h"
#include "quant/quant.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const synth_shape shapes[] = {
    /* name             embd layers heads kv  hd   ffn    vocab  ctx    rope base */
    { "stories260k",      64,  5,    8,   4,  8,   172,   512,   512,   10000.0f },
    { "stories15m",      288,  6,    6,   6,  48,  768,   32000, 256,   10000.0f },
    { "stories110m",     768, 12,   12,  12,  64,  2048,  32000, 1024,  10000.0f },
    { "tinyllama-1.1b", 2048, 22,   32,   4,  64,  5632,  32000, 2048,  10000.0f },
    { "llama2-7b",      4096, 32,   32,  32,  128, 11008, 32000, 4096,  10000.0f },
    { "mistral-7b",     4096, 32,   32,   8,  128, 14336, 32000, 32768, 1000000.0f },
    { "llama2-13b",     5120, 40,   40,  40,  128, 13824, 32000, 4096,  10000.0f },
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

const synth_shape *synth_find_shape(const char *name) {
    for (int i = 0; i < N_SHAPES; i++)
        if (!strcasecmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

const char *hearth_synth_shape_list(void) {
    static char buf[256];
    if (!buf[0])
        for (int i = 0; i < N_SHAPES; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", shapes[i].name);
    return buf;
}

/* Plain types: every 2-D weight in that type. Mixes: a base type and the file_type number
 * llama.cpp gives them (so its tools print the right name). */
typedef struct synth_type { const char *name; int base, mix, ftype; } synth_type;
enum { MIX_NONE, MIX_Q3_K_M, MIX_Q4_K_M, MIX_Q5_K_M };
static const synth_type types[] = {
    { "f32", QT_F32, MIX_NONE, 0 },       { "f16", QT_F16, MIX_NONE, 1 },     { "bf16", QT_BF16, MIX_NONE, 32 },
    { "q8_0", QT_Q8_0, MIX_NONE, 7 },     { "q4_0", QT_Q4_0, MIX_NONE, 2 },   { "q4_1", QT_Q4_1, MIX_NONE, 3 },
    { "q5_0", QT_Q5_0, MIX_NONE, 8 },     { "q5_1", QT_Q5_1, MIX_NONE, 9 },   { "q2_k", QT_Q2_K, MIX_NONE, 10 },
    { "q3_k", QT_Q3_K, MIX_NONE, 11 },    { "q4_k", QT_Q4_K, MIX_NONE, 14 },  { "q5_k", QT_Q5_K, MIX_NONE, 16 },
    { "q6_k", QT_Q6_K, MIX_NONE, 18 },    { "iq4_nl", QT_IQ4_NL, MIX_NONE, 25 },
    { "q3_k_m", QT_Q3_K, MIX_Q3_K_M, 12 }, { "q4_k_m", QT_Q4_K, MIX_Q4_K_M, 15 }, { "q5_k_m", QT_Q5_K, MIX_Q5_K_M, 17 },
};
#define N_TYPES (int)(sizeof types / sizeof types[0])

int synth_find_type(const char *name) {
    for (int i = 0; i < N_TYPES; i++)
        if (!strcasecmp(types[i].name, name)) return i;
    return -1;
}

int synth_file_type(int t) { return types[t].ftype; }
const char *synth_type_name(int t) { return types[t].name; }

const char *hearth_synth_type_list(void) {
    static char buf[256];
    if (!buf[0])
        for (int i = 0; i < N_TYPES; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", types[i].name);
    return buf;
}

/* The layers whose attn_v / ffn_down get more bits in the mixes: the first and last
 * eighth, and every third one between. */
static int more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

int synth_tensor_type(int t, synth_role role, int layer, int n_layer, int64_t ne0, int *fell_back) {
    const synth_type *st = &types[t];
    int q = st->base;
    switch (st->mix) {
    case MIX_Q4_K_M: case MIX_Q5_K_M:
        if (role == SYNTH_OUTPUT) q = QT_Q6_K;
        else if ((role == SYNTH_ATTN_V || role == SYNTH_FFN_DOWN) && more_bits(layer, n_layer)) q = QT_Q6_K;
        break;
    case MIX_Q3_K_M:
        if (role == SYNTH_OUTPUT) q = QT_Q6_K;
        else if (role == SYNTH_ATTN_V) q = layer < 2 ? QT_Q5_K : QT_Q4_K;
        else if (role == SYNTH_ATTN_OUT) q = QT_Q4_K;
        else if (role == SYNTH_FFN_DOWN) q = layer < n_layer / 16 ? QT_Q5_K : more_bits(layer, n_layer) ? QT_Q4_K : QT_Q3_K;
        break;
    default:
        break;
    }
    /* Rows that are not whole blocks of the type (tiny shapes and k-quants) fall back, as
     * llama.cpp's quantizer does: q8_0 when the row is whole 32-blocks, else f16. */
    if (ne0 % quant_get(q)->block == 0) return q;
    *fell_back = 1;
    return ne0 % 32 == 0 ? QT_Q8_0 : QT_F16;
}
