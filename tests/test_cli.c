/* The hearth command as a user runs it: tokenizer suites byte-exact, inspect on good and bad
 * files, run (greedy and seeded sampling), and clean refusals of bad options and inputs.
 * Every failure must be an exit status (1 or 2) with a message, never a signal or a
 * sanitizer report. */
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char out_path[128], err_path[128];
static char *out_text, *err_text;

/* Runs `hearth ARGS` with stdout and stderr captured into out_text / err_text; returns the
 * exit status (-1 or 128+n for a signal, which no test accepts). */
static int hearth(const char *args) {
    free(out_text);
    free(err_text);
    int rc = test_sh("cd '%s' && '%s' %s >'%s' 2>'%s' </dev/null", HEARTH_SOURCE_DIR, test_hearth_bin(), args,
                     out_path, err_path);
    size_t n;
    out_text = test_read_file(out_path, &n);
    err_text = test_read_file(err_path, &n);
    if (!out_text) out_text = calloc(1, 1);
    if (!err_text) err_text = calloc(1, 1);
    return rc;
}

/* No crash report of any kind on stderr. */
static int clean_stderr(void) {
    return !strstr(err_text, "Sanitizer") && !strstr(err_text, "runtime error") && !strstr(err_text, "Segmentation") &&
           !strstr(err_text, "Assertion") && !strstr(err_text, "Aborted");
}

static void test_tokenize(void) {
    static const char *const vocabs[] = { "llama-spm", "phi-3" };
    for (int i = 0; i < 2; i++) {
        char args[512], rel[128];
        snprintf(args, sizeof args, "tokenize -m testdata/tokenizer/ggml-vocab-%s.gguf --suite testdata/tokenizer/ggml-vocab-%s.gguf.inp",
                 vocabs[i], vocabs[i]);
        int rc = hearth(args);
        CHECK(rc == 0, "tokenize %s: exit %d: %s", vocabs[i], rc, err_text);
        snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf.out", vocabs[i]);
        size_t n;
        char *want = test_read_file(test_data(rel), &n);
        CHECK(want != NULL, "cannot read %s", rel);
        if (want) {
            size_t got = strlen(out_text);
            CHECK(got == n && memcmp(out_text, want, n) == 0, "tokenize %s: output (%zu bytes) differs from %s (%zu bytes)",
                  vocabs[i], got, rel, n);
        }
        free(want);
    }
    int rc = hearth("tokenize -m testdata/tokenizer/ggml-vocab-gpt-2.gguf --suite testdata/tokenizer/ggml-vocab-gpt-2.gguf.inp");
    CHECK(rc == 1 && clean_stderr(), "gpt-2 vocab: exit %d: %s", rc, err_text);
    CHECK(strstr(err_text, "ggml-vocab-gpt-2.gguf") && strstr(err_text, "gpt2") && strstr(err_text, "not support"),
          "gpt-2 refusal message: %s", err_text);
    CHECK(out_text[0] == 0, "gpt-2 refusal printed tokens: %.200s", out_text);
    rc = hearth("tokenize -m testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(rc == 2 && strstr(err_text, "--suite"), "tokenize without --suite: exit %d: %s", rc, err_text);
    rc = hearth("tokenize -m testdata/tokenizer/ggml-vocab-llama-spm.gguf --suite /nonexistent/x.inp");
    CHECK(rc == 1 && strstr(err_text, "/nonexistent/x.inp") && clean_stderr(), "missing suite: exit %d: %s", rc, err_text);
}

static void test_inspect(void) {
    int rc = hearth("inspect models/stories260K.gguf");
    CHECK(rc == 0, "inspect: exit %d: %s", rc, err_text);
    CHECK(strstr(out_text, "stories260K.gguf") && strstr(out_text, "GGUF v3"), "inspect header: %.300s", out_text);
    CHECK(strstr(out_text, "general.architecture = \"llama\"") && strstr(out_text, "llama.embedding_length = 64"),
          "inspect metadata: %.2000s", out_text);
    CHECK(strstr(out_text, "tensors:") && strstr(out_text, "token_embd.weight") && strstr(out_text, "[64, 512]") &&
          strstr(out_text, "blk.4.ffn_down.weight") && strstr(out_text, "[172, 64]"), "inspect tensor table");
    CHECK(strstr(out_text, "parameters: 292800"), "inspect parameter count");
    CHECK(strstr(out_text, "KV cache for 2048 cells") && strstr(out_text, "f16") && strstr(out_text, "0.62 MiB") &&
          strstr(out_text, "q8_0"), "inspect KV memory: %s", strstr(out_text, "KV") ? strstr(out_text, "KV") : "(none)");
    rc = hearth("inspect -c 512 models/stories260K.gguf");
    CHECK(rc == 0 && strstr(out_text, "KV cache for 512 cells") && strstr(out_text, "0.16 MiB"), "inspect -c 512: %d", rc);

    /* a truncated copy, random bytes, an empty file, a missing file, a directory */
    size_t n;
    uint8_t *good = test_read_file(HEARTH_SOURCE_DIR "/models/stories260K.gguf", &n);
    CHECK(good != NULL, "read model");
    if (!good) return;
    struct { const char *name; size_t len; const char *needle; } cuts[] = {
        { "cut-header.gguf", 2000, "past the end" }, { "cut-data.gguf", n / 2, "extends past end of file" },
        { "cut-1.gguf", n - 1, "extends past end of file" }, { "empty.gguf", 0, "truncated" },
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char path[256], args[300];
        snprintf(path, sizeof path, "%s/%s", tmpdir, cuts[i].name);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(good, 1, cuts[i].len, f) == cuts[i].len, "write %s", path);
        if (f) fclose(f);
        snprintf(args, sizeof args, "inspect '%s'", path);
        rc = hearth(args);
        CHECK(rc == 1 && clean_stderr(), "inspect %s: exit %d: %s", cuts[i].name, rc, err_text);
        CHECK(strstr(err_text, path) && strstr(err_text, cuts[i].needle), "inspect %s: message: %s", cuts[i].name, err_text);
    }
    free(good);
    uint64_t x = 0x243f6a8885a308d3ull;
    for (int k = 0; k < 3; k++) {
        char path[256], args[300];
        snprintf(path, sizeof path, "%s/random-%d.gguf", tmpdir, k);
        FILE *f = fopen(path, "wb");
        if (!f) { CHECK(0, "write %s", path); continue; }
        size_t len = (size_t)(k == 0 ? 100 : k == 1 ? 4096 : 200000);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            uint8_t byte = (uint8_t)x;
            if (k == 2 && i < 4) byte = (uint8_t)"GGUF"[i];  /* right magic, garbage after */
            if (k == 2 && i >= 4 && i < 8) byte = i == 4 ? 3 : 0;
            fputc(byte, f);
        }
        fclose(f);
        snprintf(args, sizeof args, "inspect '%s'", path);
        rc = hearth(args);
        CHECK(rc == 1 && clean_stderr(), "inspect random-%d: exit %d: %s", k, rc, err_text);
        CHECK(strstr(err_text, path) != NULL, "inspect random-%d: message does not name the file: %s", k, err_text);
        CHECK(k == 2 || strstr(err_text, "magic"), "inspect random-%d: %s", k, err_text);
    }
    rc = hearth("inspect /nonexistent/model.gguf");
    CHECK(rc == 1 && strstr(err_text, "/nonexistent/model.gguf") && strstr(err_text, "cannot open"), "missing: %d %s", rc, err_text);
    char args[300];
    snprintf(args, sizeof args, "inspect '%s'", tmpdir);
    rc = hearth(args);
    CHECK(rc == 1 && strstr(err_text, tmpdir) && clean_stderr(), "directory: %d %s", rc, err_text);
    rc = hearth("inspect");
    CHECK(rc == 2 && strstr(err_text, "model"), "inspect without a file: %d %s", rc, err_text);
}

static void test_run(void) {
    int rc = hearth("run -n 20 --temp 0 -t 1 -p 'Once upon a time'");
    CHECK(rc == 0, "run greedy: exit %d: %s", rc, err_text);
    CHECK(!strncmp(out_text, "Once upon a time", 16) && strlen(out_text) > 30, "run greedy output: %s", out_text);
    char *greedy = strdup(out_text);
    rc = hearth("run -n 20 --temp 0 -t 2 -p 'Once upon a time'");
    CHECK(rc == 0 && !strcmp(out_text, greedy), "greedy differs between runs/thread counts: %s / %s", greedy, out_text);
    free(greedy);
    rc = hearth("run -n 20 -p 'The cat'");
    CHECK(rc == 0 && !strncmp(out_text, "The cat", 7), "run default sampling: %d %s", rc, err_text);

    rc = hearth("run -n 24 --temp 0.8 --seed 42 -p 'Once upon a time'");
    CHECK(rc == 0, "run seeded: exit %d: %s", rc, err_text);
    char *a = strdup(out_text);
    rc = hearth("run -n 24 --temp 0.8 --seed 42 -p 'Once upon a time'");
    CHECK(rc == 0 && !strcmp(a, out_text), "same seed, different text: %s / %s", a, out_text);
    int differ = 0;
    for (int s = 1; s <= 3; s++) {
        char args[128];
        snprintf(args, sizeof args, "run -n 24 --temp 0.8 --seed %d -p 'Once upon a time'", 42 + s);
        rc = hearth(args);
        CHECK(rc == 0, "seed %d: exit %d", 42 + s, rc);
        differ += strcmp(a, out_text) != 0;
    }
    CHECK(differ > 0, "three other seeds all gave the text of seed 42: %s", a);
    free(a);

    rc = hearth("run --bogus-option");
    CHECK(rc == 2 && strstr(err_text, "--bogus-option") && clean_stderr(), "unknown option: %d %s", rc, err_text);
    rc = hearth("run --cache-type-k q9_9");
    CHECK(rc == 2 && strstr(err_text, "q9_9") && strstr(err_text, "f16") && strstr(err_text, "q8_0") &&
          strstr(err_text, "q4_0"), "bad cache type: %d %s", rc, err_text);
    rc = hearth("run --cache-type-v q9_9");
    CHECK(rc == 2 && strstr(err_text, "q9_9") && strstr(err_text, "q8_0"), "bad V cache type: %d %s", rc, err_text);
    rc = hearth("run -n");
    CHECK(rc == 2 && strstr(err_text, "-n") && clean_stderr(), "missing value: %d %s", rc, err_text);
    rc = hearth("run -n many");
    CHECK(rc == 2 && strstr(err_text, "many"), "bad number: %d %s", rc, err_text);
    rc = hearth("run -m /nonexistent/model.gguf -n 1");
    CHECK(rc == 1 && strstr(err_text, "/nonexistent/model.gguf"), "missing model: %d %s", rc, err_text);
    rc = hearth("run -m testdata/tokenizer/ggml-vocab-llama-spm.gguf -n 1");
    CHECK(rc == 1 && strstr(err_text, "ggml-vocab-llama-spm.gguf") && clean_stderr(), "vocab-only file as a model: %d %s", rc, err_text);
}

static void test_logits(void) {
    char args[512];
    snprintf(args, sizeof args, "logits -m models/stories260K.gguf --text /nonexistent/text.txt -o '%s/x.hlog'", tmpdir);
    int rc = hearth(args);
    CHECK(rc != 0 && rc != -1 && rc < 128 && strstr(err_text, "/nonexistent/text.txt") && clean_stderr(),
          "logits on a missing text: %d %s", rc, err_text);
    char path[256];
    snprintf(path, sizeof path, "%s/x.hlog", tmpdir);
    CHECK(access(path, F_OK) != 0, "logits wrote an output for a missing text");
}

/* --tensor_split: KoboldCpp's separate words and llama.cpp's list; bad values fail with a message. */
static void test_tensor_split(void) {
    int rc = hearth("run -p Once -n 2 -ngl 99 --tensor_split 1 3 --seed 1");
    CHECK(rc == 0 && clean_stderr(), "--tensor_split 1 3: exit %d, stderr %s", rc, err_text);
    rc = hearth("run -p Once -n 2 -ngl 99 -ts 1,3");
    CHECK(rc == 0 && clean_stderr(), "-ts 1,3: exit %d, stderr %s", rc, err_text);
    rc = hearth("run -p Once -n 2 -ts");
    CHECK(rc != 0 && strstr(err_text, "needs proportions") && clean_stderr(), "-ts alone: exit %d, stderr %s", rc, err_text);
    rc = hearth("run -p Once -n 2 -ts 1,,3");
    CHECK(rc != 0 && strstr(err_text, "tensor_split") && clean_stderr(), "-ts 1,,3: exit %d, stderr %s", rc, err_text);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-cli-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);
    test_tokenize();
    test_inspect();
    test_run();
    test_logits();
    test_tensor_split();
    free(out_text);
    free(err_text);
    test_sh("rm -rf '%s'", tmpdir);
    return test_done("test_cli");
}
