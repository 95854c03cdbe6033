/* synth: random-weight llama models of real shapes (`hearth synth`). */
#ifndef HEARTH_SYNTH_H
#define HEARTH_SYNTH_H

#include "hearth.h"

typedef struct synth_shape {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    float rope_base;
} synth_shape;

typedef enum synth_role {
    SYNTH_TOKEN_EMBD, SYNTH_OUTPUT, SYNTH_ATTN_Q, SYNTH_ATTN_K, SYNTH_ATTN_V, SYNTH_ATTN_OUT,
    SYNTH_FFN_GATE, SYNTH_FFN_UP, SYNTH_FFN_DOWN, SYNTH_NORM
} synth_role;

const synth_shape *synth_find_shape(const char *name);
/* Index of a weight type name ("q8_0", "q4_k_m", ...) or -1. */
int synth_find_type(const char *name);
const char *synth_type_name(int t);
/* general.file_type as llama.cpp numbers it. */
int synth_file_type(int t);
/* The quant type of one 2-D tensor (rows of ne0) of a model made with type t; sets
 * *fell_back when its rows are not whole blocks of the planned type. */
int synth_tensor_type(int t, synth_role role, int layer, int n_layer, int64_t ne0, int *fell_back);

#endif
