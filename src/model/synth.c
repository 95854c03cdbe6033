/* hearth_synth: writes a random-weight llama model of a real shape. Benchmarks need the
 * shapes and weight types of real models, not their knowledge, and a 7B file made here in
 * a minute beats downloading one.
 *
 * The header (metadata, tokenizer copied from a vocabulary file, tensor table) goes out
 * first; then each tensor is generated and quantized in chunks of rows by a thread pool
 * and written at once, so memory stays at a few chunks whatever the model size. Every row
 * has its own random stream seeded from (seed, tensor, row): the file is the same for any
 * thread count. */
#include "model/synth.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "util/pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct stensor {
    char name[64];
    int type;
    int64_t ne0, ne1;        /* ne1 == 0: a 1-D norm vector */
    synth_role role;
    int fell_back;           /* rows not whole blocks of the planned type */
} stensor;

typedef struct synth {
    const char *path;
    char *err; size_t errlen;
    synth_shape s;           /* resolved sizes */
    int type;                /* index in the type table */
    stensor *t; int n_t;
    uint64_t seed;
} synth;

static int sfail(synth *S, const char *fmt, ...) {
    int n = snprintf(S->err, S->errlen, "synth %s: ", S->path);
    if (n >= 0 && (size_t)n < S->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(S->err + n, S->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int resolve_shape(synth *S, const hearth_synth_params *p) {
    memset(&S->s, 0, sizeof S->s);
    S->s.rope_base = 10000.0f;
    S->s.name = "custom";
    if (p->shape) {
        const synth_shape *sh = synth_find_shape(p->shape);
        if (!sh) return sfail(S, "unknown shape '%s'; shapes: %s", p->shape, hearth_synth_shape_list());
        S->s = *sh;
    }
    synth_shape *s = &S->s;
    const int head_given = p->head_dim > 0;
    if (p->n_embd > 0) s->n_embd = p->n_embd;
    if (p->n_layer > 0) s->n_layer = p->n_layer;
    if (p->n_head > 0) s->n_head = p->n_head;
    if (p->n_head_kv > 0) s->n_head_kv = p->n_head_kv;
    if (p->n_ff > 0) s->n_ff = p->n_ff;
    if (p->n_vocab > 0) s->n_vocab = p->n_vocab;
    if (p->n_ctx > 0) s->n_ctx = p->n_ctx;
    if (!s->n_embd || !s->n_layer || !s->n_head || !s->n_ff)
        return sfail(S, "give --shape NAME (%s) or all of --dim, --layers, --heads and --ffn", hearth_synth_shape_list());
    if (!s->n_head_kv) s->n_head_kv = s->n_head;
    if (!s->n_ctx) s->n_ctx = 2048;
    if (head_given) s->head_dim = p->head_dim;
    else if (!p->shape || p->n_embd > 0 || p->n_head > 0) {
        if (s->n_embd % s->n_head)
            return sfail(S, "dim %d is not a multiple of heads %d (give --head-dim)", s->n_embd, s->n_head);
        s->head_dim = s->n_embd / s->n_head;
    }
    const int lim = 1 << 20;
    if (s->n_embd > lim || s->n_layer > 4096 || s->n_head > 4096 || s->n_ff > lim || s->n_ctx > (1 << 24) ||
        s->n_vocab > (1 << 24) || s->head_dim > 1024)
        return sfail(S, "a size is implausibly large (dim %d, layers %d, heads %d, head size %d, ffn %d, vocab %d, ctx %d)",
                     s->n_embd, s->n_layer, s->n_head, s->head_dim, s->n_ff, s->n_vocab, s->n_ctx);
    if (s->n_head % s->n_head_kv)
        return sfail(S, "heads %d is not a multiple of KV heads %d", s->n_head, s->n_head_kv);
    if (s->head_dim % 2) return sfail(S, "head size %d is odd; RoPE needs an even head size", s->head_dim);
    return 0;
}

/* Copies every tokenizer.* entry; with n_vocab below the file's token count, the arrays of
 * one entry per token are cut and special ids past the end are left out. */
static int copy_tokenizer(synth *S, gguf_writer *w, const char *vocab_path) {
    char e[512];
    gguf_file *f = gguf_open(vocab_path, e, sizeof e);
    if (!f) return sfail(S, "vocabulary: %s", e);
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_ARR || toks->arr_type != GGUF_STR) {
        gguf_close(f);
        return sfail(S, "%s has no tokenizer.ggml.tokens array; give --vocab with a model or vocabulary GGUF", vocab_path);
    }
    const uint64_t n_file = toks->arr_n;
    if (!S->s.n_vocab) S->s.n_vocab = (int)n_file;
    const uint64_t n = (uint64_t)S->s.n_vocab;
    if (n > n_file) {
        gguf_close(f);
        return sfail(S, "vocab size %d is larger than the %llu tokens of %s", S->s.n_vocab, (unsigned long long)n_file, vocab_path);
    }
    gguf_str model = { 0 };
    gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (n < n_file && !(model.n == 5 && !memcmp(model.p, "llama", 5))) {
        gguf_close(f);
        return sfail(S, "vocab size %d is smaller than the %llu tokens of %s, and only a llama (SentencePiece) vocabulary "
                     "can be cut", S->s.n_vocab, (unsigned long long)n_file, vocab_path);
    }
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (kv->key.n < 10 || memcmp(kv->key.p, "tokenizer.", 10) != 0) continue;
        if (n < n_file && kv->type != GGUF_ARR && kv->key.n > 9 && !memcmp(kv->key.p + kv->key.n - 9, "_token_id", 9)) {
            uint32_t id;
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(kv->key.n < 255 ? kv->key.n : 255), kv->key.p);
            if (gguf_get_u32(f, key, &id) == 0 && id >= n) continue;
        }
        gguf_w_copy_kv(w, kv, kv->type == GGUF_ARR && kv->arr_n == n_file ? n : kv->arr_n);
    }
    gguf_close(f);
    return 0;
}

static int plan_tensors(synth *S) {
    const synth_shape *s = &S->s;
    const int64_t E = s->n_embd, Q = (int64_t)s->n_head * s->head_dim, KV = (int64_t)s->n_head_kv * s->head_dim;
    S->n_t = 0;
    S->t = calloc((size_t)s->n_layer * 9 + 3, sizeof *S->t);
    if (!S->t) return sfail(S, "out of memory");
#define ADD(role_, layer_, nm, a, b) do { stensor *x = &S->t[S->n_t++]; \
        if ((layer_) < 0) snprintf(x->name, sizeof x->name, "%s", nm); \
        else snprintf(x->name, sizeof x->name, "blk.%d.%s", (layer_), nm); \
        x->role = role_; x->ne0 = a; x->ne1 = b; \
        x->type = (b) ? synth_tensor_type(S->type, role_, layer_, s->n_layer, a, &x->fell_back) : QT_F32; } while (0)
    ADD(SYNTH_TOKEN_EMBD, -1, "token_embd.weight", E, s->n_vocab);
    for (int i = 0; i < s->n_layer; i++) {
        ADD(SYNTH_NORM, i, "attn_norm.weight", E, 0);
        ADD(SYNTH_ATTN_Q, i, "attn_q.weight", E, Q);
        ADD(SYNTH_ATTN_K, i, "attn_k.weight", E, KV);
        ADD(SYNTH_ATTN_V, i, "attn_v.weight", E, KV);
        ADD(SYNTH_ATTN_OUT, i, "attn_output.weight", Q, E);
        ADD(SYNTH_NORM, i, "ffn_norm.weight", E, 0);
        ADD(SYNTH_FFN_GATE, i, "ffn_gate.weight", E, s->n_ff);
        ADD(SYNTH_FFN_UP, i, "ffn_up.weight", E, s->n_ff);
        ADD(SYNTH_FFN_DOWN, i, "ffn_down.weight", s->n_ff, E);
    }
    ADD(SYNTH_NORM, -1, "output_norm.weight", E, 0);
    ADD(SYNTH_OUTPUT, -1, "output.weight", E, s->n_vocab);
#undef ADD
    return 0;
}

static void write_metadata(synth *S, gguf_writer *w) {
    const synth_shape *s = &S->s;
    char name[128];
    snprintf(name, sizeof name, "synth %s %s", s->name, synth_type_name(S->type));
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_str(w, "general.name", name);
    gguf_w_str(w, "general.description", "random weights (std 0.02) written by hearth synth, for benchmarks and tests");
    gguf_w_u32(w, "general.file_type", (uint32_t)synth_file_type(S->type));
    gguf_w_u32(w, "general.quantization_version", 2);
    gguf_w_u32(w, "hearth.synth.seed", (uint32_t)S->seed);
    gguf_w_u32(w, "llama.context_length", (uint32_t)s->n_ctx);
    gguf_w_u32(w, "llama.embedding_length", (uint32_t)s->n_embd);
    gguf_w_u32(w, "llama.block_count", (uint32_t)s->n_layer);
    gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)s->n_ff);
    gguf_w_u32(w, "llama.attention.head_count", (uint32_t)s->n_head);
    gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv);
    gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)s->head_dim);
    if (s->head_dim * s->n_head != s->n_embd) {
        gguf_w_u32(w, "llama.attention.key_length", (uint32_t)s->head_dim);
        gguf_w_u32(w, "llama.attention.value_length", (uint32_t)s->head_dim);
    }
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_w_f32(w, "llama.rope.freq_base", s->rope_base);
    gguf_w_u32(w, "llama.vocab_size", (uint32_t)s->n_vocab);
}

/* ---- weights ---- */

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct gen_job {
    const stensor *t;
    int tensor;
    uint64_t seed;
    int64_t row0, n_rows;
    int rows_per_task;
    size_t row_bytes;
    uint8_t *out;
    float *scratch;          /* ne0 floats per thread */
} gen_job;

/* A sum of four uniforms (Irwin-Hall) is normal enough for weights and needs no libm. */
static void gen_rows(void *arg, int task, int thread) {
    gen_job *j = arg;
    const int64_t ne0 = j->t->ne0;
    float *x = j->scratch + (size_t)thread * (size_t)ne0;
    const float scale = 0.02f / (65536.0f * 0.57735027f);
    const quant_traits *qt = quant_get(j->t->type);
    for (int64_t k = 0; k < j->rows_per_task; k++) {
        int64_t r = (int64_t)task * j->rows_per_task + k;
        if (r >= j->n_rows) break;
        uint64_t s = splitmix(splitmix(splitmix(j->seed) ^ (uint64_t)j->tensor) ^ (uint64_t)(j->row0 + r));
        for (int64_t i = 0; i < ne0; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            int32_t sum = (int32_t)(s & 0xffff) + (int32_t)((s >> 16) & 0xffff) + (int32_t)((s >> 32) & 0xffff) +
                          (int32_t)(s >> 48) - 2 * 65536;
            x[i] = (float)sum * scale;
        }
        qt->from_float(x, j->out + (size_t)r * j->row_bytes, ne0);
    }
}

static int write_tensor(synth *S, FILE *f, pool *pl, int ti, uint8_t *buf, size_t buf_bytes, float *scratch) {
    const stensor *t = &S->t[ti];
    size_t nbytes;
    if (!t->ne1) {   /* norm: ones */
        float *one = (float *)buf;
        for (int64_t i = 0; i < t->ne0; i++) one[i] = 1.0f;
        nbytes = (size_t)t->ne0 * sizeof(float);
        if (fwrite(buf, 1, nbytes, f) != nbytes) return sfail(S, "write failed (disk full?)");
        return gguf_writer_stream_pad(f, nbytes) ? sfail(S, "write failed (disk full?)") : 0;
    }
    const size_t row_bytes = quant_row_bytes(t->type, t->ne0);
    int64_t chunk = (int64_t)(buf_bytes / row_bytes);
    if (chunk < 1) return sfail(S, "internal: chunk buffer too small for %s", t->name);
    gen_job j = { .t = t, .tensor = ti, .seed = S->seed, .row_bytes = row_bytes, .out = buf, .scratch = scratch };
    for (int64_t r = 0; r < t->ne1; r += chunk) {
        j.row0 = r;
        j.n_rows = t->ne1 - r < chunk ? t->ne1 - r : chunk;
        j.rows_per_task = 8;
        pool_run(pl, (int)((j.n_rows + j.rows_per_task - 1) / j.rows_per_task), gen_rows, &j);
        size_t n = (size_t)j.n_rows * row_bytes;
        if (fwrite(buf, 1, n, f) != n) return sfail(S, "write failed (disk full?)");
    }
    nbytes = (size_t)t->ne1 * row_bytes;
    return gguf_writer_stream_pad(f, nbytes) ? sfail(S, "write failed (disk full?)") : 0;
}

static int write_file(synth *S, gguf_writer *w, const hearth_synth_params *p, const char *tmp) {
    FILE *f = fopen(tmp, "wb");
    if (!f) return sfail(S, "cannot create %s", tmp);
    int64_t max_ne0 = 0;
    for (int i = 0; i < S->n_t; i++) if (S->t[i].ne0 > max_ne0) max_ne0 = S->t[i].ne0;
    pool *pl = pool_new(p->n_threads);
    const size_t buf_bytes = (size_t)32 << 20;
    const int nth = pl ? pool_threads(pl) : 1;
    uint8_t *buf = malloc(buf_bytes);
    float *scratch = malloc(sizeof(float) * (size_t)max_ne0 * (size_t)nth);
    int rc = -1;
    if (!pl || !buf || !scratch) { sfail(S, "out of memory"); goto done; }
    if ((size_t)max_ne0 * sizeof(float) * 2 > buf_bytes) { sfail(S, "a row of %lld values is too long", (long long)max_ne0); goto done; }
    if (gguf_writer_stream_header(w, f)) { sfail(S, "write failed (disk full?)"); goto done; }
    double t0 = now_s(), last = t0;
    uint64_t written = 0;
    for (int i = 0; i < S->n_t; i++) {
        if (write_tensor(S, f, pl, i, buf, buf_bytes, scratch)) goto done;
        written += S->t[i].ne1 ? quant_row_bytes(S->t[i].type, S->t[i].ne0) * (uint64_t)S->t[i].ne1 : 0;
        double t = now_s();
        if (p->log && (t - last > 5.0 || i == S->n_t - 1)) {
            fprintf(p->log, "synth: %d/%d tensors, %.2f GB, %.1f s\n", i + 1, S->n_t, written / 1e9, t - t0);
            last = t;
        }
    }
    rc = 0;
done:
    if (fclose(f) != 0 && rc == 0) rc = sfail(S, "write failed (disk full?)");
    free(buf);
    free(scratch);
    pool_free(pl);
    return rc;
}

int hearth_synth(const char *out_path, const hearth_synth_params *p, char *err, size_t errlen) {
    synth S = { .path = out_path, .err = err, .errlen = errlen, .seed = p->seed };
    if (!p->type) return sfail(&S, "needs a weight type (--type): %s", hearth_synth_type_list());
    S.type = synth_find_type(p->type);
    if (S.type < 0) return sfail(&S, "unknown weight type '%s'; types: %s", p->type, hearth_synth_type_list());
    if (resolve_shape(&S, p)) return -1;
    gguf_writer *w = gguf_writer_new();
    if (!w) return sfail(&S, "out of memory");
    write_metadata(&S, w);
    int rc = -1;
    char *tmp = NULL;
    if (copy_tokenizer(&S, w, p->vocab_path) || plan_tensors(&S)) goto done;
    int n_fallback = 0;
    for (int i = 0; i < S.n_t; i++) {
        const stensor *t = &S.t[i];
        size_t nb = t->ne1 ? quant_row_bytes(t->type, t->ne0) * (size_t)t->ne1 : (size_t)t->ne0 * 4;
        int64_t ne[2] = { t->ne0, t->ne1 };
        gguf_w_tensor_info(w, t->name, t->type, t->ne1 ? 2 : 1, ne, nb);
        n_fallback += t->fell_back;
    }
    if (n_fallback && p->log)
        fprintf(p->log, "synth: %d tensors have rows that are not whole %s blocks; they are q8_0 or f16 instead\n",
                n_fallback, synth_type_name(S.type));
    size_t tl = strlen(out_path) + 8;
    tmp = malloc(tl);
    if (!tmp) { sfail(&S, "out of memory"); goto done; }
    snprintf(tmp, tl, "%s.part", out_path);
    if (write_file(&S, w, p, tmp)) { remove(tmp); goto done; }
    if (rename(tmp, out_path) != 0) { remove(tmp); sfail(&S, "cannot rename %s to %s", tmp, out_path); goto done; }
    rc = 0;
done:
    free(tmp);
    free(S.t);
    gguf_writer_free(w);
    return rc;
}
