/* hearth synth: write a random-weight llama model of a real shape (for benchmarks/tests). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *default_vocab(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/testdata/tokenizer/ggml-vocab-llama-spm.gguf", HEARTH_SOURCE_DIR);
    if (access(buf, R_OK) == 0) return buf;
    return "testdata/tokenizer/ggml-vocab-llama-spm.gguf";
}

static int size_opt(const char *flag, const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < 1 || x > (1 << 24)) {
        fprintf(stderr, "hearth synth: %s needs a whole number from 1 to %d, got '%s'\n", flag, 1 << 24, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static void synth_usage(FILE *f) {
    fprintf(f, "usage: hearth synth OUT.gguf --shape NAME --type T [--seed S] [--vocab VOCAB.gguf] [-t THREADS]\n"
               "                    [--dim N --layers N --heads N --kv-heads N --head-dim N --ffn N --vocab-size N --ctx N]\n"
               "shapes: %s\ntypes: %s\n", hearth_synth_shape_list(), hearth_synth_type_list());
}

int cmd_synth(int argc, char **argv) {
    hearth_synth_params p = { 0 };
    p.vocab_path = default_vocab();
    p.log = stderr;
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define NEED() do { if (!v) { fprintf(stderr, "hearth synth: %s needs a value\n", a); return 2; } i++; } while (0)
        if (IS("--shape")) { NEED(); p.shape = v; }
        else if (IS("--type")) { NEED(); p.type = v; }
        else if (IS("--vocab")) { NEED(); p.vocab_path = v; }
        else if (IS("-o") || IS("--out")) { NEED(); out = v; }
        else if (IS("--seed")) {
            NEED();
            char *e;
            p.seed = strtoull(v, &e, 10);
            if (!*v || *e) { fprintf(stderr, "hearth synth: --seed needs a whole number, got '%s'\n", v); return 2; }
        }
        else if (IS("--dim")) { NEED(); if (size_opt(a, v, &p.n_embd)) return 2; }
        else if (IS("--layers")) { NEED(); if (size_opt(a, v, &p.n_layer)) return 2; }
        else if (IS("--heads")) { NEED(); if (size_opt(a, v, &p.n_head)) return 2; }
        else if (IS("--kv-heads")) { NEED(); if (size_opt(a, v, &p.n_head_kv)) return 2; }
        else if (IS("--head-dim")) { NEED(); if (size_opt(a, v, &p.head_dim)) return 2; }
        else if (IS("--ffn")) { NEED(); if (size_opt(a, v, &p.n_ff)) return 2; }
        else if (IS("--vocab-size")) { NEED(); if (size_opt(a, v, &p.n_vocab)) return 2; }
        else if (IS("--ctx")) { NEED(); if (size_opt(a, v, &p.n_ctx)) return 2; }
        else if (IS("-t") || IS("--threads")) { NEED(); if (size_opt(a, v, &p.n_threads)) return 2; }
        else if (IS("-h") || IS("--help")) { synth_usage(stdout); return 0; }
        else if (a[0] != '-' && !out) out = a;
        else { fprintf(stderr, "hearth synth: unexpected argument '%s'\n", a); synth_usage(stderr); return 2; }
#undef IS
#undef NEED
    }
    if (!out) { fprintf(stderr, "hearth synth: needs an output file\n"); synth_usage(stderr); return 2; }
    if (!p.type) { fprintf(stderr, "hearth synth: needs --type T; types: %s\n", hearth_synth_type_list()); return 2; }
    char err[1024];
    if (hearth_synth(out, &p, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); return 1; }
    fprintf(stderr, "hearth synth: wrote %s\n", out);
    return 0;
}
