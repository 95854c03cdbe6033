/* The KV cache: every type pair on both attention paths and any head size, its quality
 * against the f16 cache and the peer's numbers, the memory line, and context shift. */
#include "testutil.h"
#include "hearth.h"
#include "gguf/gguf.h"
#include "kv/kv.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *types[] = { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl" };
#define N_TYPES (int)(sizeof types / sizeof types[0])

/* Teacher-forced logits of a whole token list with one cache configuration. */
static float *run_logits(hearth_model *m, const int32_t *toks, int n, int tk, int tv, int fa) {
    hearth_ctx_params p = hearth_ctx_default_params();
    p.n_ctx = n;
    p.type_k = tk;
    p.type_v = tv;
    p.flash_attn = fa;
    p.n_ubatch = 128; /* several micro-batches: attention over cells from earlier batches */
    hearth_ctx *c;
    char err[256];
    if (hearth_ctx_new(m, &p, &c, err, sizeof err)) { CHECK(0, "ctx: %s", err); return NULL; }
    int V = hearth_model_get_info(m)->n_vocab;
    float *out = malloc(sizeof(float) * (size_t)n * V);
    if (hearth_eval(c, toks, n, 1, err, sizeof err)) { CHECK(0, "eval: %s", err); free(out); hearth_ctx_free(c); return NULL; }
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * V, hearth_ctx_logits(c, i), sizeof(float) * V);
    hearth_ctx_free(c);
    return out;
}


static int32_t *tokens_of(hearth_model *m, const char *path, int *n) {
    size_t len;
    char *text = test_read_file(path, &len);
    if (!text) return NULL;
    int32_t *t = malloc(sizeof(int32_t) * (len + 8));
    *n = hearth_tokenize(m, text, len, 1, 0, t, (int)len + 8);
    free(text);
    return t;
}

static hearth_model *load(const char *path) {
    hearth_model *m;
    char err[512];
    hearth_model_params mp = hearth_model_default_params();
    if (hearth_model_load(path, &mp, &m, err, sizeof err)) { CHECK(0, "load %s: %s", path, err); return NULL; }
    return m;
}

/* Load progress: starts at 0, never goes back, ends at exactly 1, and the model works. */
typedef struct prog { int calls, bad; float last; } prog;
static void on_progress(float f, void *ud) {
    prog *p = ud;
    if ((p->calls == 0 && f != 0.0f) || f < p->last || f > 1.0f) p->bad++;
    p->last = f;
    p->calls++;
}
static void test_progress(const char *path) {
    prog pr = { 0, 0, 0 };
    hearth_model *m;
    char err[512];
    hearth_model_params mp = hearth_model_default_params();
    mp.progress = on_progress;
    mp.progress_ud = &pr;
    if (hearth_model_load(path, &mp, &m, err, sizeof err)) { CHECK(0, "load %s: %s", path, err); return; }
    CHECK(pr.calls >= 2 && pr.bad == 0 && pr.last == 1.0f, "progress: %d calls, %d out of order, last %g", pr.calls, pr.bad, pr.last);
    hearth_ctx *c;
    hearth_ctx_params p = hearth_ctx_default_params();
    p.n_ctx = 16;
    CHECK(hearth_ctx_new(m, &p, &c, err, sizeof err) == 0, "%s", err);
    int32_t t = 1;
    CHECK(c && hearth_eval(c, &t, 1, 0, err, sizeof err) == 0, "eval after a progress load: %s", err);
    hearth_ctx_free(c);
    hearth_model_free(m);
}

/* Every K/V type pair runs on both paths, and the paths agree. Attention is float, and the
 * two paths round differently (the online softmax rescales, decode merges cell chunks), so
 * they do not agree bit for bit, and on these small models a last-bit difference grows:
 * it flips roundings of the 8-bit activations and of the next layer's quantized K and V.
 * So the disagreement is bounded by what the cache type itself costs (its KL against an
 * f32 cache on the plain path): a path that really computes something else (a cell
 * missed, a wrong row, a bad merge) lands far above that; test_simd checks the attention
 * outputs of both paths against the scalar reference to 2e-5. */
static void test_paths(const char *model_path, int n_max) {
    char path[1024]; /* test_data() reuses its buffer */
    snprintf(path, sizeof path, "%s", model_path);
    hearth_model *m = load(path);
    if (!m) return;
    int n;
    int32_t *toks = tokens_of(m, test_data("ref/text/stories.txt"), &n);
    if (n > n_max) n = n_max;
    int V = hearth_model_get_info(m)->n_vocab;
    int f32 = hearth_cache_type_from_name("f32");
    float *ref = run_logits(m, toks, n, f32, f32, 0);
    for (int i = 0; ref && i < N_TYPES; i++)
        for (int j = 0; j < N_TYPES; j++) {
            if (i != j && j != 1 && i != 1 && i != 3 && j != 3) continue; /* pairs with f16 or q8_0, plus diagonals */
            int tk = hearth_cache_type_from_name(types[i]), tv = hearth_cache_type_from_name(types[j]);
            float *fa = run_logits(m, toks, n, tk, tv, 1), *pl = run_logits(m, toks, n, tk, tv, 0);
            if (fa && pl) {
                double top1, kl = test_mean_kl(fa, pl, n, V, &top1), kq = test_mean_kl(ref, pl, n, V, NULL);
                double bound = kq > 1e-4 ? kq : 1e-4;
                printf("%s K %-6s V %-6s: flash vs plain mean KL %.2e top-1 %.1f%%, plain vs f32 cache %.2e\n", path, types[i], types[j], kl, 100 * top1, kq);
                CHECK(kl <= bound, "%s K %s V %s: flash vs plain mean KL %.3e > %.1e (the cache's own KL vs f32, at least 1e-4)",
                      path, types[i], types[j], kl, bound);
                int finite = 1;
                for (size_t k = 0; k < (size_t)n * V; k++) if (!isfinite(fa[k])) { finite = 0; break; }
                CHECK(finite, "%s K %s V %s: non-finite logits", path, types[i], types[j]);
            }
            free(fa); free(pl);
        }
    free(ref);
    free(toks);
    hearth_model_free(m);
}

/* Quality against hearth's own f16 cache: the peer's table (testdata/ref/README.md) + 10%. */
static void test_quality(void) {
    static const struct { const char *k, *v; double peer; } rows[] = {
        { "bf16", "bf16", 5.07e-4 }, { "q8_0", "q8_0", 6.52e-4 }, { "f16", "q8_0", 5.31e-4 }, { "q8_0", "f16", 5.70e-4 },
        { "q8_0", "q4_0", 3.87e-3 }, { "q5_1", "q5_1", 2.41e-3 }, { "q5_0", "q5_0", 3.08e-3 }, { "q4_1", "q4_1", 7.74e-3 },
        { "iq4_nl", "iq4_nl", 8.44e-3 }, { "q4_0", "q4_0", 9.38e-3 },
    };
    char path[1024];
    snprintf(path, sizeof path, "%s", test_data("models/synth-a-q8_0.gguf"));
    hearth_model *m = load(path);
    if (!m) return;
    int n, V = hearth_model_get_info(m)->n_vocab;
    int32_t *toks = tokens_of(m, test_data("ref/text/stories.txt"), &n);
    int f16 = hearth_cache_type_from_name("f16");
    float *ref = run_logits(m, toks, n, f16, f16, 1);
    for (size_t i = 0; ref && i < sizeof rows / sizeof rows[0]; i++) {
        float *x = run_logits(m, toks, n, hearth_cache_type_from_name(rows[i].k), hearth_cache_type_from_name(rows[i].v), 1);
        if (!x) continue;
        double top1, kl = test_mean_kl(ref, x, n, V, &top1);
        printf("synth-a-q8_0 K %-6s V %-6s mean KL %.3e (peer %.2e) top-1 %.2f%%\n", rows[i].k, rows[i].v, kl, rows[i].peer, 100 * top1);
        CHECK(kl <= 1.1 * rows[i].peer, "K %s V %s: mean KL %.3e > 1.1 x peer %.2e", rows[i].k, rows[i].v, kl, rows[i].peer);
        free(x);
    }
    free(ref);
    free(toks);
    hearth_model_free(m);

    /* stories260K: head size 8, which the peer refuses for quantized caches */
    m = load(HEARTH_SOURCE_DIR "/models/stories260K.gguf");
    if (!m) return;
    V = hearth_model_get_info(m)->n_vocab;
    toks = tokens_of(m, test_data("ref/text/stories.txt"), &n);
    ref = run_logits(m, toks, n, f16, f16, 1);
    int q8 = hearth_cache_type_from_name("q8_0");
    for (int fa = 0; fa <= 1; fa++) {
        float *x = run_logits(m, toks, n, q8, q8, fa);
        if (ref && x) {
            double top1, kl = test_mean_kl(ref, x, n, V, &top1);
            printf("stories260K q8_0 (flash %s) mean KL %.3e top-1 %.2f%%\n", fa ? "on" : "off", kl, 100 * top1);
            CHECK(kl <= 1e-3, "stories260K q8_0 flash %d: mean KL %.3e > 1e-3", fa, kl);
        }
        free(x);
    }
    free(ref);
    free(toks);
    hearth_model_free(m);
}

/* The memory line is the exact byte count: cells x padded row x block bytes / block size. */
static void test_memory_line(void) {
    static const struct { int n_ctx, n_layer, n_kv, hd; const char *k, *v; const char *line; } rows[] = {
        { 32768, 32, 8, 128, "q8_0", "q8_0", "KV cache: 32768 cells, K (q8_0) 1088.00 MiB, V (q8_0) 1088.00 MiB" },
        { 32768, 32, 8, 128, "f16", "f16", "KV cache: 32768 cells, K (f16) 2048.00 MiB, V (f16) 2048.00 MiB" },
        { 32768, 32, 8, 128, "q4_0", "f32", "KV cache: 32768 cells, K (q4_0) 576.00 MiB, V (f32) 4096.00 MiB" },
        /* stories260K shape: row of 4 x 8 = 32 values */
        { 512, 5, 4, 8, "q5_1", "iq4_nl", "KV cache: 512 cells, K (q5_1) 0.06 MiB, V (iq4_nl) 0.04 MiB" },
        /* a row of 3 x 8 = 24 values is padded to one 32-value block */
        { 1000, 2, 3, 8, "q8_0", "bf16", "KV cache: 1000 cells, K (q8_0) 0.06 MiB, V (bf16) 0.09 MiB" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        kv_cache kv;
        memset(&kv, 0, sizeof kv);
        kv.n_ctx = rows[i].n_ctx;
        kv.n_layer = rows[i].n_layer;
        kv.type_k = quant_from_name(rows[i].k);
        kv.type_v = quant_from_name(rows[i].v);
        kv.kb = kv_row_bytes(kv.type_k, rows[i].n_kv * rows[i].hd);
        kv.vb = kv_row_bytes(kv.type_v, rows[i].n_kv * rows[i].hd);
        char line[160];
        kv_describe(&kv, line, sizeof line);
        CHECK(strcmp(line, rows[i].line) == 0, "got '%s', expected '%s'", line, rows[i].line);
    }
    /* and a real context prints the same bytes it allocates */
    hearth_model *m = load(HEARTH_SOURCE_DIR "/models/stories260K.gguf");
    if (!m) return;
    hearth_ctx_params p = hearth_ctx_default_params();
    p.n_ctx = 4096;
    p.type_k = hearth_cache_type_from_name("q4_1");
    p.type_v = hearth_cache_type_from_name("q8_0");
    hearth_ctx *c;
    char err[256];
    if (!hearth_ctx_new(m, &p, &c, err, sizeof err)) {
        /* 4096 cells x 5 layers x (32 / 32 blocks): q4_1 20 bytes, q8_0 34 bytes */
        CHECK(hearth_ctx_kv_bytes(c) == 4096ull * 5 * (20 + 34), "bytes %llu", (unsigned long long)hearth_ctx_kv_bytes(c));
        CHECK(strcmp(hearth_ctx_kv_line(c), "KV cache: 4096 cells, K (q4_1) 0.39 MiB, V (q8_0) 0.66 MiB") == 0, "%s", hearth_ctx_kv_line(c));
        hearth_ctx_free(c);
    }
    /* unknown or unusable types are refused with the list */
    CHECK(hearth_cache_type_from_name("q9_9") < 0, "q9_9 accepted");
    CHECK(hearth_cache_type_from_name("q4_K") < 0, "q4_K is not a cache type");
    CHECK(strstr(hearth_cache_type_list(), "iq4_nl") != NULL, "list: %s", hearth_cache_type_list());
    p.type_k = quant_from_name("q4_k");
    CHECK(hearth_ctx_new(m, &p, &c, err, sizeof err) != 0 && strstr(err, "valid types") && strstr(err, "q4_k"), "err: %s", err);
    hearth_model_free(m);
}

/* Context shift: greedy generation 4x longer than the context, shifting at each fill,
 * against a context that re-evaluates the kept tokens from scratch after each shift. The
 * two differ by more than numerics: the cached K/V of the kept tokens above layer 0 were
 * computed with the dropped tokens in view, the re-evaluated ones without. Measured on
 * stories260K (keep 1, discard half): at 128 cells f32 93.3%, q8_0 96.7%; at 256 cells
 * f32/f16 98.6%, q8_0 98.8%. A q4_0 cache on its head size of 8 (mean KL 0.24 against
 * f16 without any shift) agrees ~72%, and not because of the shift: two q4_0 caches that
 * round the same K at different positions already disagree that much (an exact shift
 * that leaves K as stored and ropes q per shift instead measured the same, 73%, and was
 * not kept). The random-weight synth-a agrees ~90% for every type, f16 included. */
static void test_shift(const char *path, const char *type, int fa, int n_ctx, double floor) {
    hearth_model *m = load(path);
    if (!m) return;
    const int n_gen = 4 * n_ctx, keep = 1, V = hearth_model_get_info(m)->n_vocab;
    hearth_ctx_params p = hearth_ctx_default_params();
    p.n_ctx = n_ctx;
    p.type_k = p.type_v = hearth_cache_type_from_name(type);
    p.flash_attn = fa;
    hearth_ctx *a, *b;
    char err[256];
    if (hearth_ctx_new(m, &p, &a, err, sizeof err) || hearth_ctx_new(m, &p, &b, err, sizeof err)) { CHECK(0, "%s", err); return; }
    int32_t toks[8];
    int n = hearth_tokenize(m, "Once upon a time", 16, 1, 0, toks, 8);
    hearth_eval(a, toks, n, 0, err, sizeof err);
    hearth_eval(b, toks, n, 0, err, sizeof err);
    int shifts = 0, compared = 0, agree = 0;
    for (int i = 0; i < n_gen; i++) {
        const float *la = hearth_ctx_last_logits(a), *lb = hearth_ctx_last_logits(b);
        int ia = 0, ib = 0;
        for (int k = 1; k < V; k++) { if (la[k] > la[ia]) ia = k; if (lb[k] > lb[ib]) ib = k; }
        if (shifts > 0) { compared++; agree += ia == ib; }
        int32_t t = ia;
        if (hearth_ctx_n_past(a) >= n_ctx) {
            int n_discard = (n_ctx - keep) / 2;
            CHECK(hearth_ctx_shift(a, keep, n_discard) == 0, "shift failed");
            shifts++;
            /* the reference: the same tokens, evaluated from scratch at their new positions */
            int32_t kept[n_ctx];
            int nk = hearth_ctx_n_past(a);
            memcpy(kept, hearth_ctx_tokens(a), sizeof(int32_t) * (size_t)nk);
            hearth_ctx_truncate(b, 0);
            hearth_eval(b, kept, nk, 0, err, sizeof err);
        }
        CHECK(hearth_eval(a, &t, 1, 0, err, sizeof err) == 0, "%s", err);
        CHECK(hearth_eval(b, &t, 1, 0, err, sizeof err) == 0, "%s", err);
    }
    double rate = compared ? (double)agree / compared : 0;
    printf("context shift %s %-6s flash %d: %d shifts, top-1 %.2f%% over %d tokens\n", strrchr(path, '/') + 1, type, fa, shifts, 100 * rate, compared);
    CHECK(shifts >= 4, "only %d shifts", shifts);
    CHECK(rate >= floor, "%s: top-1 after shifts %.3f < %.2f", type, rate, floor);
    /* the cache cannot be overfilled */
    int32_t many[n_ctx + 1];
    for (int i = 0; i <= n_ctx; i++) many[i] = 5;
    CHECK(hearth_eval(a, many, n_ctx + 1, 0, err, sizeof err) != 0 && strstr(err, "do not fit"), "overfill: %s", err);
    hearth_ctx_free(a);
    hearth_ctx_free(b);
    hearth_model_free(m);
}

/* A random llama model with a given head size, written with the GGUF writer. */
static int write_model(const char *path, int hd, int n_head, int n_kv) {
    const int n_vocab = 260, n_embd = 64, n_ff = 96, n_layer = 2;
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_u32(w, "llama.embedding_length", n_embd);
    gguf_w_u32(w, "llama.block_count", n_layer);
    gguf_w_u32(w, "llama.feed_forward_length", n_ff);
    gguf_w_u32(w, "llama.attention.head_count", n_head);
    gguf_w_u32(w, "llama.attention.head_count_kv", n_kv);
    gguf_w_u32(w, "llama.attention.key_length", hd);
    gguf_w_u32(w, "llama.attention.value_length", hd);
    gguf_w_u32(w, "llama.context_length", 512);
    gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    const char *toks[260];
    float scores[260];
    int32_t tt[260];
    char names[260][8];
    for (int i = 0; i < n_vocab; i++) {
        if (i < 3) { toks[i] = i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>"; tt[i] = i == 0 ? 2 : 3; }
        else if (i < 259) { snprintf(names[i], 8, "<0x%02X>", i - 3); toks[i] = names[i]; tt[i] = 6; }
        else { toks[i] = "\xe2\x96\x81"; tt[i] = 1; }
        scores[i] = 0;
    }
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, n_vocab);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, n_vocab);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", tt, n_vocab);
    uint32_t seed = 12345u + (uint32_t)hd;
    float *buf = malloc(sizeof(float) * 64 * 1024);
#define RND() (seed = seed * 1664525u + 1013904223u, ((float)(seed >> 8) / 16777216.0f - 0.5f))
#define TENSOR(name, a, b, sc) do { int64_t ne[2] = { a, b }; for (int64_t q = 0; q < (int64_t)(a) * (b); q++) buf[q] = RND() * (sc); \
        gguf_w_tensor(w, name, QT_F32, (b) > 1 ? 2 : 1, ne, buf, sizeof(float) * (size_t)(a) * (b)); } while (0)
    TENSOR("token_embd.weight", n_embd, n_vocab, 2.0f);
    for (int q = 0; q < n_embd; q++) buf[q] = 1.0f;
    { int64_t ne[1] = { n_embd }; gguf_w_tensor(w, "output_norm.weight", QT_F32, 1, ne, buf, sizeof(float) * n_embd); }
    TENSOR("output.weight", n_embd, n_vocab, 0.5f);
    for (int l = 0; l < n_layer; l++) {
        char nm[64];
        for (int q = 0; q < n_embd; q++) buf[q] = 1.0f;
        int64_t ne[1] = { n_embd };
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l); gguf_w_tensor(w, nm, QT_F32, 1, ne, buf, sizeof(float) * n_embd);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l); gguf_w_tensor(w, nm, QT_F32, 1, ne, buf, sizeof(float) * n_embd);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l); TENSOR(nm, n_embd, n_head * hd, 0.6f);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l); TENSOR(nm, n_embd, n_kv * hd, 0.6f);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l); TENSOR(nm, n_embd, n_kv * hd, 0.6f);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); TENSOR(nm, n_head * hd, n_embd, 0.3f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l); TENSOR(nm, n_embd, n_ff, 0.3f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l); TENSOR(nm, n_embd, n_ff, 0.3f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l); TENSOR(nm, n_ff, n_embd, 0.3f);
    }
    free(buf);
    int rc = gguf_writer_to_file(w, path);
    gguf_writer_free(w);
    return rc;
}

/* Head sizes 8 .. 256 with every cache type, on both paths; quantized close to f32. */
static void test_head_sizes(void) {
    static const int hds[][3] = { { 8, 4, 2 }, { 64, 2, 1 }, { 80, 2, 2 }, { 96, 2, 1 }, { 128, 2, 1 }, { 256, 1, 1 }, { 24, 3, 3 } };
    char path[256];
    snprintf(path, sizeof path, "/tmp/hearth-test-kv-%d.gguf", (int)getpid());
    for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++) {
        CHECK(write_model(path, hds[h][0], hds[h][1], hds[h][2]) == 0, "write model");
        hearth_model *m = load(path);
        if (!m) continue;
        int V = hearth_model_get_info(m)->n_vocab;
        int32_t toks[96];
        for (int i = 0; i < 96; i++) toks[i] = i == 0 ? 1 : 3 + (i * 37) % 256;
        int f32 = hearth_cache_type_from_name("f32");
        float *ref = run_logits(m, toks, 96, f32, f32, 1);
        for (int i = 0; i < N_TYPES && ref; i++) {
            int t = hearth_cache_type_from_name(types[i]);
            float *fa = run_logits(m, toks, 96, t, t, 1), *pl = run_logits(m, toks, 96, t, t, 0);
            if (fa && pl) {
                double kfp = test_mean_kl(fa, pl, 96, V, NULL), kq = test_mean_kl(ref, fa, 96, V, NULL);
                double bound = i < 3 ? 1e-4 : i == 3 ? 2e-3 : 5e-2;
                /* the paths agree within what the cache type costs (see test_paths) */
                CHECK(kfp <= (kq > 1e-4 ? kq : 1e-4), "head %d %s: flash vs plain %.3e (vs f32 %.3e)", hds[h][0], types[i], kfp, kq);
                CHECK(kq <= bound, "head %d %s: vs f32 %.3e > %.0e", hds[h][0], types[i], kq, bound);
            }
            free(fa); free(pl);
        }
        free(ref);
        hearth_model_free(m);
    }
    unlink(path);
}

/* Sections, so that ctest can run them side by side (tests/CMakeLists.txt); none: all. */
int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    int all = !strcmp(part, "all");
    if (all || !strcmp(part, "basic")) {
        test_progress(HEARTH_SOURCE_DIR "/models/stories260K.gguf");
        test_memory_line();
        test_head_sizes();
    }
    if (all || !strcmp(part, "paths-stories")) test_paths(HEARTH_SOURCE_DIR "/models/stories260K.gguf", 638);
    if (all || !strcmp(part, "paths-synth")) test_paths(test_data("models/synth-a-q8_0.gguf"), 200);
    if (all || !strcmp(part, "quality")) test_quality();
    if (all || !strcmp(part, "shift")) {
        const char *st = HEARTH_SOURCE_DIR "/models/stories260K.gguf";
        char sa[1024];
        snprintf(sa, sizeof sa, "%s", test_data("models/synth-a-q8_0.gguf"));
        test_shift(st, "f32", 1, 256, 0.95);
        test_shift(st, "f16", 1, 256, 0.95);
        test_shift(st, "q8_0", 1, 256, 0.95);
        test_shift(st, "q8_0", 0, 256, 0.95);
        test_shift(st, "q4_0", 1, 256, 0.65);
        test_shift(sa, "f16", 1, 128, 0.85);
        test_shift(sa, "q8_0", 1, 128, 0.80);
        test_shift(sa, "q4_0", 1, 128, 0.80);
    }
    return test_done("test_kv");
}
