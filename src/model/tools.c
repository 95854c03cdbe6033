/* The engine side of `hearth tokenize --suite` and `hearth inspect`. */
#include "hearth.h"
#include "gguf/gguf.h"
#include "kv/kv.h"
#include "model/model.h"
#include "quant/quant.h"
#include "tokenizer/tok.h"
#include "tokenizer/tok_suite.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int hearth_tokenize_suite(const char *vocab_path, const char *inp_path, FILE *out, char *err, size_t errlen) {
    gguf_file *f = gguf_open(vocab_path, err, errlen);
    if (!f) return -1;
    tok_vocab *v = tok_load(f, err, errlen);
    if (!v) { gguf_close(f); return -1; }
    FILE *in = fopen(inp_path, "rb");
    int rc = -1;
    if (!in) {
        snprintf(err, errlen, "%s: cannot open", inp_path);
    } else {
        char *buf = NULL;
        size_t n = 0, cap = 0, r;
        char chunk[65536];
        while ((r = fread(chunk, 1, sizeof chunk, in)) > 0) {
            if (n + r + 1 > cap) {
                cap = (n + r + 1) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) { free(buf); buf = NULL; break; }
                buf = nb;
            }
            memcpy(buf + n, chunk, r);
            n += r;
        }
        fclose(in);
        if (!buf && n) snprintf(err, errlen, "%s: out of memory", inp_path);
        else rc = tok_run_suite(v, buf ? buf : "", n, out) >= 0 ? 0 : (snprintf(err, errlen, "%s: suite failed", inp_path), -1);
        free(buf);
    }
    tok_free(v);
    gguf_close(f);
    return rc;
}

static void print_value(FILE *out, const gguf_kv *kv) {
    switch (kv->type) {
    case GGUF_STR: {
        uint64_t n; memcpy(&n, kv->data, 8);
        fprintf(out, "\"%.*s\"%s", (int)(n > 80 ? 80 : n), (const char *)kv->data + 8, n > 80 ? "..." : "");
        break;
    }
    case GGUF_ARR:
        fprintf(out, "[%" PRIu64 " x type %d]", kv->arr_n, kv->arr_type);
        break;
    case GGUF_F32: case GGUF_F64: {
        gguf_kv one = { .type = GGUF_ARR, .arr_type = kv->type, .arr_n = 1, .data = kv->data };
        fprintf(out, "%g", gguf_arr_num(&one, 0));
        break;
    }
    default: {
        gguf_kv one = { .type = GGUF_ARR, .arr_type = kv->type, .arr_n = 1, .data = kv->data };
        fprintf(out, "%.0f", gguf_arr_num(&one, 0));
    }
    }
}

int hearth_inspect(const char *path, int n_ctx, FILE *out, char *err, size_t errlen) {
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f) return -1;
    fprintf(out, "file: %s (%zu bytes, GGUF v%u, %" PRIu64 " metadata entries, %" PRIu64 " tensors)\n",
            path, f->size, f->version, f->n_kv, f->n_tensors);
    fprintf(out, "\nmetadata:\n");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        fprintf(out, "  %.*s = ", (int)f->kv[i].key.n, f->kv[i].key.p);
        print_value(out, &f->kv[i]);
        fputc('\n', out);
    }
    fprintf(out, "\ntensors:\n");
    int64_t params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        int64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        params += nel;
        fprintf(out, "  %-32.*s %-7s [", (int)t->name.n, t->name.p, quant_get(t->type)->name);
        for (int d = 0; d < t->n_dims; d++) fprintf(out, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        fprintf(out, "] %" PRIu64 " bytes\n", t->nbytes);
    }
    fprintf(out, "\nparameters: %" PRId64 " (%.2f M)\n", params, params / 1e6);
    gguf_close(f);

    /* The context memory needs the model's shape, so load it (this validates the rest). */
    hearth_model *m;
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = 1;
    if (hearth_model_load(path, &mp, &m, err, errlen) != 0) return -1;
    const hearth_model_info *in = hearth_model_get_info(m);
    if (n_ctx <= 0) n_ctx = in->n_ctx_train;
    fprintf(out, "model: %s, %d layers, embedding %d, %d heads (%d KV) of size %d, ffn %d, vocab %d, trained context %d\n",
            in->arch, in->n_layer, in->n_embd, in->n_head, in->n_head_kv, in->head_dim, in->n_ff, in->n_vocab, in->n_ctx_train);
    fprintf(out, "KV cache for %d cells (K and V each):\n", n_ctx);
    static const int types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q5_1, QT_Q5_0, QT_Q4_1, QT_Q4_0, QT_IQ4_NL };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const quant_traits *qt = quant_get(types[i]);
        if (!qt) continue;
        double bytes = (double)kv_row_bytes(types[i], in->n_head_kv * in->head_dim) * n_ctx * in->n_layer;
        fprintf(out, "  %-7s %10.2f MiB\n", qt->name, bytes / (1024.0 * 1024.0));
    }
    hearth_model_free(m);
    return 0;
}

/* ---- grammars: the engine's grammar over this model's token pieces ---- */
#include "sample/grammar.h"

struct hearth_grammar { grammar *g; };

static int grammar_piece(void *ud, int32_t tok, char *buf, size_t n) {
    return tok_piece(((const hearth_model *)ud)->vocab, tok, buf, n);
}

hearth_grammar *hearth_grammar_new(const hearth_model *m, const char *gbnf, char *err, size_t errlen) {
    hearth_grammar *h = malloc(sizeof *h);
    if (!h) { snprintf(err, errlen, "out of memory"); return NULL; }
    h->g = grammar_new(gbnf, m->hp.n_vocab, m->info.eos, grammar_piece, (void *)m, err, errlen);
    if (!h->g) { free(h); return NULL; }
    return h;
}

void hearth_grammar_free(hearth_grammar *h) {
    if (!h) return;
    grammar_free(h->g);
    free(h);
}

int hearth_grammar_apply(hearth_grammar *h, float *logits) { return grammar_apply(h->g, logits); }
int hearth_grammar_accept(hearth_grammar *h, int32_t tok) { return grammar_accept(h->g, tok); }
int hearth_grammar_done(const hearth_grammar *h) { return grammar_done(h->g); }
