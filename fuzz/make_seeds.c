/* Writes small, complete GGUF files for the fuzzer's seed corpus: the repository's models
 * are too big to be useful whole (the corpus holds their first 64 KiB), so these give the
 * fuzzer valid files to mutate that reach the vocabulary and the model loader: a tiny
 * llama model with tensors in several weight types, and a metadata-only file. */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(gguf_writer *w, const char *name, int type, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = { ne0, ne1 };
    const quant_traits *qt = quant_get(type);
    if (!qt) return -1;
    size_t nb = quant_row_bytes(type, ne0) * (size_t)(ne1 ? ne1 : 1);
    uint8_t *d = malloc(nb);
    if (!d) return -1;
    /* small finite values whatever the type: a repeating pattern of low bytes */
    for (size_t i = 0; i < nb; i++) d[i] = (uint8_t)((i * 37u) % 61u);
    if (type == QT_F32) for (size_t i = 0; i < nb / 4; i++) { float v = 0.01f * (float)(i % 7); memcpy(d + 4 * i, &v, 4); }
    gguf_w_tensor(w, name, type, ne1 ? 2 : 1, ne, d, nb);
    free(d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_seeds DIR\n"); return 2; }
    char path[4096];
    static const char *toks[] = { "<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81", "\xe2\x96\x81" "a", "b", "ab", "\xe2\x96\x81" "ab" };
    const int nv = (int)(sizeof toks / sizeof toks[0]);
    float scores[16];
    int32_t types[16];
    for (int i = 0; i < nv; i++) { scores[i] = -(float)i; types[i] = i < 3 ? (i == 0 ? 2 : 3) : i == 3 ? 6 : 1; }

    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_str(w, "general.name", "fuzz-seed");
    gguf_w_u32(w, "general.alignment", 32);
    gguf_w_u32(w, "llama.context_length", 64);
    gguf_w_u32(w, "llama.embedding_length", 32);
    gguf_w_u32(w, "llama.block_count", 1);
    gguf_w_u32(w, "llama.feed_forward_length", 32);
    gguf_w_u32(w, "llama.attention.head_count", 2);
    gguf_w_u32(w, "llama.attention.head_count_kv", 1);
    gguf_w_u32(w, "llama.rope.dimension_count", 16);
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)nv);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)nv);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)nv);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
    int rc = 0;
    rc |= add(w, "token_embd.weight", QT_F32, 32, nv);
    rc |= add(w, "output_norm.weight", QT_F32, 32, 0);
    rc |= add(w, "output.weight", QT_Q8_0, 32, nv);
    rc |= add(w, "blk.0.attn_norm.weight", QT_F32, 32, 0);
    rc |= add(w, "blk.0.ffn_norm.weight", QT_F16, 32, 0);
    rc |= add(w, "blk.0.attn_q.weight", QT_Q8_0, 32, 32);
    rc |= add(w, "blk.0.attn_k.weight", QT_Q4_0, 32, 16);
    rc |= add(w, "blk.0.attn_v.weight", QT_F16, 32, 16);
    rc |= add(w, "blk.0.attn_output.weight", QT_Q5_0, 32, 32);
    rc |= add(w, "blk.0.ffn_gate.weight", QT_Q4_1, 32, 32);
    rc |= add(w, "blk.0.ffn_up.weight", QT_BF16, 32, 32);
    rc |= add(w, "blk.0.ffn_down.weight", QT_Q5_1, 32, 32);
    snprintf(path, sizeof path, "%s/seed-tiny-llama.gguf", argv[1]);
    if (rc || gguf_writer_to_file(w, path)) { fprintf(stderr, "make_seeds: cannot write %s\n", path); return 1; }
    gguf_writer_free(w);

    /* metadata only: a vocabulary and one of each kind of value the writer makes */
    w = gguf_writer_new();
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)nv);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)nv);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)nv);
    gguf_w_i32(w, "i32", -1);
    gguf_w_bool(w, "bool", 0);
    snprintf(path, sizeof path, "%s/seed-vocab.gguf", argv[1]);
    if (gguf_writer_to_file(w, path)) { fprintf(stderr, "make_seeds: cannot write %s\n", path); return 1; }
    gguf_writer_free(w);
    return 0;
}
