/* hearth synth: files it writes are valid GGUF with the asked shape, metadata and types,
 * load and run in every weight type, are the same for any thread count, and bad arguments
 * fail with a message (exit 1 or 2), never a crash. */
#include "testutil.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char *out, *err;

#define hearth(...) test_hearthf(tmpdir, &out, &err, __VA_ARGS__)

static uint32_t meta_u32(const gguf_file *f, const char *key) {
    uint32_t v = 0;
    CHECK(gguf_get_u32(f, key, &v) == 0, "missing %s", key);
    return v;
}

static int tensor_type(const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    CHECK(t != NULL, "missing tensor %s", name);
    return t ? t->type : -1;
}

static void test_shape(void) {
    int rc = hearth("synth %s/s.gguf --shape stories260k --type q8_0 --seed 7", tmpdir);
    CHECK(rc == 0, "synth stories260k: exit %d: %s", rc, err);
    char path[256], e[256];
    snprintf(path, sizeof path, "%s/s.gguf", tmpdir);
    gguf_file *f = gguf_open(path, e, sizeof e);
    CHECK(f != NULL, "open synth model: %s", e);
    if (!f) return;
    CHECK(meta_u32(f, "llama.embedding_length") == 64 && meta_u32(f, "llama.block_count") == 5 &&
          meta_u32(f, "llama.attention.head_count") == 8 && meta_u32(f, "llama.attention.head_count_kv") == 4 &&
          meta_u32(f, "llama.feed_forward_length") == 172 && meta_u32(f, "general.file_type") == 7, "stories260k metadata");
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(toks && toks->arr_n == 512, "vocab cut to 512: %llu", toks ? (unsigned long long)toks->arr_n : 0ull);
    const gguf_kv *scores = gguf_find_kv(f, "tokenizer.ggml.scores");
    CHECK(scores && scores->arr_n == 512, "scores cut to 512");
    CHECK(f->n_tensors == 5 * 9 + 3, "tensor count %llu", (unsigned long long)f->n_tensors);
    CHECK(tensor_type(f, "blk.2.attn_q.weight") == QT_Q8_0 && tensor_type(f, "output.weight") == QT_Q8_0, "q8_0 weights");
    CHECK(tensor_type(f, "blk.2.ffn_down.weight") == QT_F16, "rows of 172 fall back to f16");
    CHECK(tensor_type(f, "blk.0.attn_norm.weight") == QT_F32, "norms f32");
    const gguf_tensor *t = gguf_find_tensor(f, "blk.1.attn_k.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 32, "attn_k shape");
    /* weights look like std 0.02 */
    t = gguf_find_tensor(f, "blk.3.ffn_up.weight");
    if (t) {
        int64_t n = t->ne[0] * t->ne[1];
        float *x = malloc(sizeof(float) * (size_t)n);
        quant_get(t->type)->to_float(t->data, x, n);
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        CHECK(fabs(mean) < 0.002 && sd > 0.017 && sd < 0.023, "weight mean %g std %g", mean, sd);
        free(x);
    }
    gguf_close(f);

    rc = hearth("run -m %s/s.gguf -n 8 --temp 0 -p 'Once upon a time'", tmpdir);
    CHECK(rc == 0 && !strncmp(out, "Once upon a time", 16) && test_clean_stderr(err), "run synth model: %d %s", rc, err);
    rc = hearth("inspect %s/s.gguf", tmpdir);
    CHECK(rc == 0 && strstr(out, "synth stories260k q8_0") && strstr(out, "llama.block_count = 5"), "inspect: %d %s", rc, err);

    /* deterministic from the seed, whatever the thread count */
    rc = hearth("synth %s/s1.gguf --shape stories260k --type q8_0 --seed 7 -t 1", tmpdir);
    CHECK(rc == 0, "synth -t 1: %d %s", rc, err);
    rc = test_sh("cmp -s '%s/s.gguf' '%s/s1.gguf'", tmpdir, tmpdir);
    CHECK(rc == 0, "same seed, different files with 1 and 2+ threads");
    rc = hearth("synth %s/s2.gguf --shape stories260k --type q8_0 --seed 8", tmpdir);
    CHECK(rc == 0 && test_sh("cmp -s '%s/s.gguf' '%s/s2.gguf'", tmpdir, tmpdir) == 1, "another seed gave the same file");
}

/* Every weight type, on a shape whose rows are whole k-quant blocks: loads and runs. */
static void test_types(void) {
    static const char *const types[] = { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k",
                                         "q4_k", "q5_k", "q6_k", "iq4_nl", "q3_k_m", "q4_k_m", "q5_k_m" };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        /* 8 layers where the mix depends on the layer, 2 elsewhere (keeps the sanitizer run short) */
        const int mix = strstr(types[i], "_m") != NULL;
        int rc = hearth("synth %s/t.gguf --dim 256 --layers %d --heads 4 --kv-heads 2 --ffn 256 --vocab-size 1000 --ctx 256 "
                        "--type %s", tmpdir, mix ? 8 : 2, types[i]);
        CHECK(rc == 0, "synth --type %s: exit %d: %s", types[i], rc, err);
        char path[256], e[256];
        snprintf(path, sizeof path, "%s/t.gguf", tmpdir);
        gguf_file *f = gguf_open(path, e, sizeof e);
        CHECK(f != NULL, "%s: %s", types[i], e);
        if (!f) continue;
        int base = quant_from_name(types[i]);
        if (!strcmp(types[i], "q4_k_m")) {
            /* like llama.cpp's Q4_K_M: output and attn_v/ffn_down of the edge layers in q6_k */
            CHECK(tensor_type(f, "output.weight") == QT_Q6_K && tensor_type(f, "blk.0.attn_v.weight") == QT_Q6_K &&
                  tensor_type(f, "blk.7.ffn_down.weight") == QT_Q6_K && tensor_type(f, "blk.2.ffn_down.weight") == QT_Q4_K && tensor_type(f, "blk.3.ffn_down.weight") == QT_Q6_K &&
                  tensor_type(f, "blk.3.attn_q.weight") == QT_Q4_K && tensor_type(f, "token_embd.weight") == QT_Q4_K,
                  "q4_k_m mix");
            CHECK(meta_u32(f, "general.file_type") == 15, "q4_k_m file type");
        } else if (base >= 0) {
            CHECK(tensor_type(f, "blk.1.ffn_down.weight") == base && tensor_type(f, "output.weight") == base,
                  "%s: every weight in that type", types[i]);
        }
        const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
        CHECK(toks && toks->arr_n == 1000, "%s: vocab size", types[i]);
        gguf_close(f);
        rc = hearth("run -m %s/t.gguf -n 3 --temp 0 -p 'Hi there'", tmpdir);
        CHECK(rc == 0 && test_clean_stderr(err), "run --type %s: %d %s", types[i], rc, err);
    }
}

static void bad(const char *what, const char *args, const char *needle, const char *needle2) {
    int rc = hearth("%s", args);
    CHECK((rc == 1 || rc == 2) && test_clean_stderr(err), "%s: exit %d: %s", what, rc, err);
    CHECK(strstr(err, needle) != NULL, "%s: message lacks '%s': %s", what, needle, err);
    CHECK(!needle2 || strstr(err, needle2) != NULL, "%s: message lacks '%s': %s", what, needle2, err);
}

static void test_errors(void) {
    char a[512];
    snprintf(a, sizeof a, "synth %s/x.gguf --shape llama9-1t --type q8_0", tmpdir);
    bad("bad shape", a, "llama9-1t", "tinyllama-1.1b");
    snprintf(a, sizeof a, "synth %s/x.gguf --shape tinyllama-1.1b --type q9_9", tmpdir);
    bad("bad type", a, "q9_9", "q4_k_m");
    snprintf(a, sizeof a, "synth %s/x.gguf --shape tinyllama-1.1b", tmpdir);
    bad("no type", a, "--type", "q8_0");
    bad("no output", "synth --shape tinyllama-1.1b --type q8_0", "output", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --type q8_0 --dim 64", tmpdir);
    bad("no shape, too few dims", a, "--layers", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --type q8_0 --dim 64 --layers 1 --heads 3 --ffn 64", tmpdir);
    bad("dim not a multiple of heads", a, "heads 3", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --type q8_0 --dim 64 --layers 1 --heads 8 --kv-heads 3 --ffn 64", tmpdir);
    bad("heads not a multiple of kv heads", a, "KV heads 3", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --shape stories260k --type q8_0 --vocab-size 40000", tmpdir);
    bad("vocab too large", a, "40000", "32000");
    snprintf(a, sizeof a, "synth %s/x.gguf --shape stories260k --type q8_0 --dim many", tmpdir);
    bad("bad number", a, "many", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --shape stories260k --type q8_0 --vocab /nonexistent/v.gguf", tmpdir);
    bad("missing vocab", a, "/nonexistent/v.gguf", NULL);
    snprintf(a, sizeof a, "synth %s/x.gguf --shape stories260k --type q8_0 --vocab models/stories260K.gguf --vocab-size 100",
             tmpdir);
    int rc = hearth("%s", a);
    CHECK(rc == 0, "vocab from a model file, cut to 100: %d %s", rc, err);
    bad("unwritable output", "synth /nonexistent/dir/x.gguf --shape stories260k --type q8_0", "/nonexistent/dir/x.gguf", NULL);
    CHECK(access("/nonexistent/dir/x.gguf.part", F_OK) != 0, "left a partial file");
    snprintf(a, sizeof a, "synth %s/x.gguf --shape stories260k --type q8_0 --bogus", tmpdir);
    bad("unknown option", a, "--bogus", NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-synth-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_shape();
    test_types();
    test_errors();
    free(out);
    free(err);
    test_sh("rm -rf '%s'", tmpdir);
    return test_done("test_synth");
}
