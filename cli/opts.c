#include "cli.h"
#include "model/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_default_model(void) {
    static char buf[4096];
    /* next to the binary's source tree first (build/bin/hearth -> ../../models), then cwd */
    snprintf(buf, sizeof buf, "%s/models/stories260K.gguf", HEARTH_SOURCE_DIR);
    if (access(buf, R_OK) == 0) return buf;
    return "models/stories260K.gguf";
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "hearth: %s needs a whole number from %d to %d, got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *flag, const char *v, float *out) {
    char *end;
    float x = strtof(v, &end);
    if (!*v || *end) { fprintf(stderr, "hearth: %s needs a number, got '%s'\n", flag, v); return -1; }
    *out = x;
    return 0;
}

static int cache_type(const char *flag, const char *v, int *out) {
    int t = hearth_cache_type_from_name(v);
    if (t < 0) {
        fprintf(stderr, "hearth: %s '%s' is not a cache type; valid types: %s\n", flag, v, hearth_cache_type_list());
        return -1;
    }
    *out = t;
    return 0;
}

int cli_parse_split(int argc, char **argv, int *i, float *out, const char *prog) {
    int n = split_count_words(argv, argc, *i + 1);
    if (n == 0) {
        fprintf(stderr, "%s: %s needs proportions, e.g. %s 1 3 or %s 1,3\n", prog, argv[*i], argv[*i], argv[*i]);
        return -1;
    }
    char err[256];
    int k = split_parse((const char *const *)(argv + *i + 1), n, out, err, sizeof err);
    if (k < 0) { fprintf(stderr, "%s: %s\n", prog, err); return -1; }
    *i += n;
    return k;
}

int cli_parse(int argc, char **argv, cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->cp = hearth_ctx_default_params();
    o->sp = hearth_sampling_default();
    o->n_gen = 128;
    o->n_keep = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define NEED() do { if (!v) { fprintf(stderr, "hearth: %s needs a value\n", a); return -1; } i++; } while (0)
        if (IS("-m") || IS("--model")) { NEED(); o->model = v; }
        else if (IS("-p") || IS("--prompt")) { NEED(); o->prompt = v; }
        else if (IS("--text")) { NEED(); o->text = v; }
        else if (IS("-f") || IS("--file")) { NEED(); o->file = v; }
        else if (IS("-o") || IS("--out")) { NEED(); o->out = v; }
        else if (IS("--suite")) { NEED(); o->suite = v; }
        else if (IS("-n") || IS("--gen") || IS("--n-predict")) { NEED(); if (parse_int(a, v, 0, 1 << 30, &o->n_gen)) return -1; o->gen_set = 1; }
        else if (IS("-c") || IS("--contextsize") || IS("--ctx-size")) { NEED(); if (parse_int(a, v, 1, 1 << 24, &o->cp.n_ctx)) return -1; }
        else if (IS("-t") || IS("--threads")) { NEED(); if (parse_int(a, v, 1, 1024, &o->cp.n_threads)) return -1; }
        else if (IS("--ubatch") || IS("-ub")) { NEED(); if (parse_int(a, v, 1, 1 << 20, &o->cp.n_ubatch)) return -1; }
        else if (IS("--keep")) { NEED(); if (parse_int(a, v, 0, 1 << 24, &o->n_keep)) return -1; }
        else if (IS("--noshift")) o->no_shift = 1;
        else if (IS("--temp")) { NEED(); if (parse_float(a, v, &o->sp.temp)) return -1; }
        else if (IS("--top-k")) { NEED(); if (parse_int(a, v, 0, 1 << 30, &o->sp.top_k)) return -1; }
        else if (IS("--top-p")) { NEED(); if (parse_float(a, v, &o->sp.top_p)) return -1; }
        else if (IS("--min-p")) { NEED(); if (parse_float(a, v, &o->sp.min_p)) return -1; }
        else if (IS("--repeat-penalty") || IS("--rep-pen")) { NEED(); if (parse_float(a, v, &o->sp.rep_pen)) return -1; }
        else if (IS("--seed")) { NEED(); char *e; o->sp.seed = strtoull(v, &e, 10); if (*e || !*v) { fprintf(stderr, "hearth: --seed needs a whole number\n"); return -1; } }
        else if (IS("--cache-type-k") || IS("-ctk")) { NEED(); if (cache_type(a, v, &o->cp.type_k)) return -1; }
        else if (IS("--cache-type-v") || IS("-ctv")) { NEED(); if (cache_type(a, v, &o->cp.type_v)) return -1; }
        else if (IS("--cache-types")) { NEED(); o->cache_types = v; }
        else if (IS("--quantkv")) {
            NEED();
            int q;
            if (parse_int(a, v, 0, 2, &q)) return -1;
            static const char *names[] = { "f16", "q8_0", "q4_0" };
            o->cp.type_k = o->cp.type_v = hearth_cache_type_from_name(names[q]);
        }
        else if (IS("--flash-attn") || IS("-fa")) {
            NEED();
            if (!strcmp(v, "on") || !strcmp(v, "1")) o->cp.flash_attn = 1;
            else if (!strcmp(v, "off") || !strcmp(v, "0")) o->cp.flash_attn = 0;
            else { fprintf(stderr, "hearth: %s takes on or off, got '%s'\n", a, v); return -1; }
        }
        else if (IS("--no-kv-rotate")) o->cp.rotate_kv = 0;
        else if (IS("--gpulayers") || IS("-ngl") || IS("--n-gpu-layers")) { NEED(); if (parse_int(a, v, -1, 1 << 20, &o->n_gpu_layers)) return -1; }
        else if (IS("--tensor_split") || IS("--tensor-split") || IS("-ts")) {
            if ((o->n_tensor_split = cli_parse_split(argc, argv, &i, o->tensor_split, "hearth")) < 0) return -1;
        }
        else { fprintf(stderr, "hearth: unknown option '%s' (see hearth --help)\n", a); return -1; }
#undef IS
#undef NEED
    }
    return 0;
}

int cli_load(const cli_opts *o, hearth_model **m, hearth_ctx **c) {
    char err[1024];
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = o->cp.n_threads;
    mp.n_gpu_layers = o->n_gpu_layers;
    memcpy(mp.tensor_split, o->tensor_split, sizeof mp.tensor_split);
    mp.n_tensor_split = o->n_tensor_split;
    const char *path = o->model ? o->model : cli_default_model();
    if (hearth_model_load(path, &mp, m, err, sizeof err) != 0) {
        fprintf(stderr, "hearth: %s\n", err);
        return -1;
    }
    if (c && hearth_ctx_new(*m, &o->cp, c, err, sizeof err) != 0) {
        fprintf(stderr, "hearth: %s\n", err);
        hearth_model_free(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "hearth: %s: cannot open\n", path); return NULL; }
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) { fprintf(stderr, "hearth: %s: out of memory\n", path); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

int32_t *cli_tokenize(const hearth_model *m, const char *text, size_t len, int add_bos, int *n) {
    int cap = (int)len + 8;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) return NULL;
    int k = hearth_tokenize(m, text, len, add_bos, 0, toks, cap);
    if (k > cap) {
        int32_t *t2 = realloc(toks, sizeof(int32_t) * (size_t)k);
        if (!t2) { free(toks); return NULL; }
        toks = t2;
        k = hearth_tokenize(m, text, len, add_bos, 0, toks, k);
    }
    if (k < 0) { free(toks); return NULL; }
    *n = k;
    return toks;
}
