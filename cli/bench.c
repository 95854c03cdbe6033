/* hearth bench: prompt processing and generation speed, modelled on llama-bench.
 *
 * For each combination of cache types, thread count and flash-attention setting one
 * context is made, sized for the deepest test. Depths are filled in increasing order with
 * random tokens (not timed) and each test truncates back to its depth before every
 * repetition, so a depth is filled once, not once per repetition (llama-bench restores a
 * saved state to the same end). Every test runs one untimed warm-up, then -r timed
 * repetitions: pp evaluates N tokens in one call (the context's micro-batches), tg
 * evaluates N tokens one at a time. The warm-up of a pp test is the whole prompt; of a tg
 * test two tokens (llama-bench's is one): the GPU backend runs the first one-token step
 * plainly and captures its CUDA graph in the second, so a one-token warm-up left the
 * capture (5-30 ms on an H200) inside the first timed repetition. */
#include "bench.h"
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct int_list { int v[BENCH_MAX_LIST]; int n; } int_list;

typedef struct bench_opts {
    const char *models[BENCH_MAX_LIST]; int n_models;
    int_list prompt, gen, depth, threads, type_k, type_v, fa;
    int reps, ubatch, format, no_bw, ngl;
    float tensor_split[16];
    int n_tensor_split;
} bench_opts;

static int parse_list(const char *flag, const char *v, int lo, int hi, int_list *l) {
    l->n = 0;
    const char *p = v;
    for (;;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || x < lo || x > hi) {
            fprintf(stderr, "hearth bench: %s needs whole numbers from %d to %d separated by commas, got '%s'\n", flag, lo, hi, v);
            return -1;
        }
        if (l->n == BENCH_MAX_LIST) { fprintf(stderr, "hearth bench: %s: at most %d values\n", flag, BENCH_MAX_LIST); return -1; }
        l->v[l->n++] = (int)x;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_types(const char *flag, const char *v, int_list *l) {
    l->n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t = hearth_cache_type_from_name(tok);
        if (t < 0) {
            fprintf(stderr, "hearth bench: %s '%s' is not a cache type; valid types: %s\n", flag, tok, hearth_cache_type_list());
            return -1;
        }
        if (l->n == BENCH_MAX_LIST) { fprintf(stderr, "hearth bench: %s: at most %d values\n", flag, BENCH_MAX_LIST); return -1; }
        l->v[l->n++] = t;
    }
    if (!l->n) { fprintf(stderr, "hearth bench: %s needs a cache type\n", flag); return -1; }
    return 0;
}

static void bench_usage(FILE *f) {
    fprintf(f, "usage: hearth bench -m MODEL [-m MODEL2] [-p N,..] [-n N,..] [-d D,..] [-t THREADS,..] [-r REPS]\n"
               "                    [-ctk T,..] [-ctv T,..] [-fa 0|1,..] [-ub N] [-ngl N] [-ts R1 R2 ..] [-o md|json|csv] [--no-bw]\n"
               "  -p: prompt processing of N tokens (default 512; 0 skips); -n: generation of N tokens one at a\n"
               "  time (default 128; 0 skips); -d: after filling the cache to that depth (default 0, not timed);\n"
               "  -r: timed repetitions after one warm-up (default 5); --no-bw: skip the memory bandwidth test\n");
}

static int parse_opts(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->prompt = (int_list){ { 512 }, 1 };
    o->gen = (int_list){ { 128 }, 1 };
    o->depth = (int_list){ { 0 }, 1 };
    o->threads = (int_list){ { 0 }, 1 };
    o->type_k = o->type_v = (int_list){ { hearth_cache_type_from_name("f16") }, 1 };
    o->fa = (int_list){ { 1 }, 1 };
    o->reps = 5;
    o->ubatch = hearth_ctx_default_params().n_ubatch;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define NEED() do { if (!v) { fprintf(stderr, "hearth bench: %s needs a value\n", a); return -1; } i++; } while (0)
        if (IS("-m") || IS("--model")) {
            NEED();
            if (o->n_models == BENCH_MAX_LIST) { fprintf(stderr, "hearth bench: at most %d models\n", BENCH_MAX_LIST); return -1; }
            o->models[o->n_models++] = v;
        }
        else if (IS("-p") || IS("--n-prompt")) { NEED(); if (parse_list(a, v, 0, 1 << 20, &o->prompt)) return -1; }
        else if (IS("-n") || IS("--n-gen")) { NEED(); if (parse_list(a, v, 0, 1 << 20, &o->gen)) return -1; }
        else if (IS("-d") || IS("--n-depth")) { NEED(); if (parse_list(a, v, 0, 1 << 22, &o->depth)) return -1; }
        else if (IS("-t") || IS("--threads")) { NEED(); if (parse_list(a, v, 1, 1024, &o->threads)) return -1; }
        else if (IS("-fa") || IS("--flash-attn")) { NEED(); if (parse_list(a, v, 0, 1, &o->fa)) return -1; }
        else if (IS("-r") || IS("--repetitions")) {
            NEED();
            int_list l;
            if (parse_list(a, v, 1, BENCH_MAX_REPS, &l)) return -1;
            o->reps = l.v[0];
        }
        else if (IS("-ub") || IS("--ubatch")) {
            NEED();
            int_list l;
            if (parse_list(a, v, 1, 1 << 16, &l)) return -1;
            o->ubatch = l.v[0];
        }
        else if (IS("-ctk") || IS("--cache-type-k")) { NEED(); if (parse_types(a, v, &o->type_k)) return -1; }
        else if (IS("-ctv") || IS("--cache-type-v")) { NEED(); if (parse_types(a, v, &o->type_v)) return -1; }
        else if (IS("-o") || IS("--output")) {
            NEED();
            if (!strcmp(v, "md")) o->format = BENCH_MD;
            else if (!strcmp(v, "json")) o->format = BENCH_JSON;
            else if (!strcmp(v, "csv")) o->format = BENCH_CSV;
            else { fprintf(stderr, "hearth bench: -o takes md, json or csv, got '%s'\n", v); return -1; }
        }
        else if (IS("--no-bw")) o->no_bw = 1;
        else if (IS("-ngl") || IS("--gpulayers") || IS("--n-gpu-layers")) {
            NEED();
            int_list l;
            if (parse_list(a, v, 0, 1 << 20, &l)) return -1;
            o->ngl = l.v[0];
        }
        else if (IS("-ts") || IS("--tensor_split") || IS("--tensor-split")) {
            if ((o->n_tensor_split = cli_parse_split(argc, argv, &i, o->tensor_split, "hearth bench")) < 0) return -1;
        }
        else if (IS("-h") || IS("--help")) { bench_usage(stdout); exit(0); }
        else { fprintf(stderr, "hearth bench: unknown option '%s'\n", a); bench_usage(stderr); return -1; }
#undef IS
#undef NEED
    }
    if (!o->n_models) o->models[o->n_models++] = cli_default_model();
    return 0;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static int32_t random_token(int n_vocab) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (int32_t)(rng_state % (uint64_t)n_vocab);
}

/* Grows the cache with random tokens up to depth cells (untimed). */
static int fill_to(hearth_ctx *c, int depth, int n_vocab, int32_t *toks, int chunk) {
    char err[512];
    while (hearth_ctx_n_past(c) < depth) {
        int n = depth - hearth_ctx_n_past(c);
        if (n > chunk) n = chunk;
        for (int i = 0; i < n; i++) toks[i] = random_token(n_vocab);
        if (hearth_eval(c, toks, n, 0, err, sizeof err)) { fprintf(stderr, "hearth bench: %s\n", err); return -1; }
    }
    return 0;
}

/* One test: a warm-up plus reps timed runs. n_prompt > 0: pp; else tg of n_gen. */
static int run_test(hearth_ctx *c, int n_vocab, int depth, int n_prompt, int n_gen, int reps, int32_t *toks, bench_result *r) {
    char err[512];
    for (int rep = -1; rep < reps; rep++) {
        hearth_ctx_truncate(c, depth);
        /* the warm-up of a tg test is two tokens (the graph's capture: top of file), of a pp
         * test the whole prompt */
        const int n_tg = rep < 0 ? (n_gen < 2 ? n_gen : 2) : n_gen;
        const int n = n_prompt > 0 ? n_prompt : n_tg;
        for (int i = 0; i < n; i++) toks[i] = random_token(n_vocab);
        double t0 = now_ns();
        if (n_prompt > 0) {
            if (hearth_eval(c, toks, n_prompt, 0, err, sizeof err)) { fprintf(stderr, "hearth bench: %s\n", err); return -1; }
        } else {
            for (int i = 0; i < n_tg; i++)
                if (hearth_eval(c, &toks[i], 1, 0, err, sizeof err)) { fprintf(stderr, "hearth bench: %s\n", err); return -1; }
        }
        double dt = now_ns() - t0;
        if (rep < 0) continue;
        r->samples_ns[rep] = dt;
        r->samples_ts[rep] = n / (dt * 1e-9);
    }
    r->n_reps = reps;
    double s = 0, sts = 0;
    for (int i = 0; i < reps; i++) { s += r->samples_ns[i]; sts += r->samples_ts[i]; }
    r->avg_ns = s / reps;
    r->avg_ts = sts / reps;
    double v = 0, vts = 0;
    for (int i = 0; i < reps; i++) {
        v += (r->samples_ns[i] - r->avg_ns) * (r->samples_ns[i] - r->avg_ns);
        vts += (r->samples_ts[i] - r->avg_ts) * (r->samples_ts[i] - r->avg_ts);
    }
    r->stddev_ns = reps > 1 ? sqrt(v / (reps - 1)) : 0;
    r->stddev_ts = reps > 1 ? sqrt(vts / (reps - 1)) : 0;
    return 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Every test of one model and one (type_k, type_v, threads, fa) setting. */
static int bench_setting(const bench_opts *o, bench_out *out, hearth_model *m, const char *path, int tk, int tv, int nt, int fa) {
    const hearth_model_info *in = hearth_model_get_info(m);
    int max_depth = 0, max_n = 1;
    for (int i = 0; i < o->depth.n; i++) if (o->depth.v[i] > max_depth) max_depth = o->depth.v[i];
    for (int i = 0; i < o->prompt.n; i++) if (o->prompt.v[i] > max_n) max_n = o->prompt.v[i];
    for (int i = 0; i < o->gen.n; i++) if (o->gen.v[i] > max_n) max_n = o->gen.v[i];
    hearth_ctx_params cp = hearth_ctx_default_params();
    cp.n_ctx = max_depth + max_n;
    cp.n_threads = nt;
    cp.n_ubatch = o->ubatch;
    cp.type_k = tk;
    cp.type_v = tv;
    cp.flash_attn = fa;
    hearth_ctx *c;
    char err[1024];
    if (hearth_ctx_new(m, &cp, &c, err, sizeof err)) { fprintf(stderr, "hearth bench: %s\n", err); return -1; }
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(max_n > o->ubatch ? max_n : o->ubatch));
    bench_result *r = calloc(1, sizeof *r);
    int_list depths = o->depth;
    qsort(depths.v, (size_t)depths.n, sizeof(int), cmp_int);
    int rc = -1;
    if (!toks || !r) { fprintf(stderr, "hearth bench: out of memory\n"); goto done; }
    const uint64_t wbytes = hearth_model_token_weight_bytes(m);
    for (int di = 0; di < depths.n; di++) {
        const int d = depths.v[di];
        if (di && d == depths.v[di - 1]) continue;
        hearth_ctx_truncate(c, hearth_ctx_n_past(c) < d ? hearth_ctx_n_past(c) : d);
        if (fill_to(c, d, in->n_vocab, toks, o->ubatch)) goto done;
        for (int kind = 0; kind < 2; kind++) {
            const int_list *l = kind == 0 ? &o->prompt : &o->gen;
            for (int i = 0; i < l->n; i++) {
                if (l->v[i] == 0) continue;
                memset(r, 0, sizeof *r);
                r->model_path = path;
                r->model_type = hearth_model_type_name(m);
                r->model_size = in->file_bytes;
                r->n_params = in->n_params;
                r->n_prompt = kind == 0 ? l->v[i] : 0;
                r->n_gen = kind == 1 ? l->v[i] : 0;
                r->n_depth = d;
                r->n_threads = nt;
                r->n_ubatch = o->ubatch;
                r->flash_attn = fa;
                r->type_k = tk;
                r->type_v = tv;
                time_t now = time(NULL);
                strftime(r->test_time, sizeof r->test_time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
                if (run_test(c, in->n_vocab, d, r->n_prompt, r->n_gen, o->reps, toks, r)) goto done;
                if (kind == 1) {
                    /* the cells attended to grow from d+1 to d+n: count the mean */
                    double cells = d + (r->n_gen + 1) / 2.0;
                    r->bytes_per_token = (double)wbytes + (double)hearth_ctx_kv_read_bytes(c, 1) * cells;
                    r->gb_per_s = r->bytes_per_token * r->avg_ts / 1e9;
                }
                bench_print_row(out, r);
            }
        }
    }
    rc = 0;
done:
    free(r);
    free(toks);
    hearth_ctx_free(c);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    if (parse_opts(argc, argv, &o)) return 2;
    hearth_log_set_level(HEARTH_LOG_WARN);
    int max_threads = 0;
    for (int i = 0; i < o.threads.n; i++) {
        if (o.threads.v[i] == 0) o.threads.v[i] = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (o.threads.v[i] <= 0) o.threads.v[i] = 1;
        if (o.threads.v[i] > max_threads) max_threads = o.threads.v[i];
    }
    bench_out out = { .format = o.format, .cpu_info = bench_cpu_info(), .bw_threads = max_threads };
    /* with layers on a GPU the ceiling is the card's copy bandwidth, not the host's */
    if (!o.no_bw) out.mem_bw = o.ngl ? hearth_gpu_copy_bandwidth() : 0;
    if (!o.no_bw && !(out.mem_bw > 0)) out.mem_bw = bench_mem_bandwidth(max_threads);
    else if (!o.no_bw) out.bw_threads = 0;
    bench_print_begin(&out);
    int rc = 0;
    for (int mi = 0; mi < o.n_models && !rc; mi++) {
        hearth_model *m;
        char err[1024];
        hearth_model_params mp = hearth_model_default_params();
        mp.n_threads = max_threads;
        mp.n_gpu_layers = o.ngl;
        memcpy(mp.tensor_split, o.tensor_split, sizeof mp.tensor_split);
        mp.n_tensor_split = o.n_tensor_split;
        if (hearth_model_load(o.models[mi], &mp, &m, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); rc = 1; break; }
        for (int a = 0; a < o.type_k.n && !rc; a++)
            for (int b = 0; b < o.type_v.n && !rc; b++)
                for (int t = 0; t < o.threads.n && !rc; t++)
                    for (int f = 0; f < o.fa.n && !rc; f++)
                        if (bench_setting(&o, &out, m, o.models[mi], o.type_k.v[a], o.type_v.v[b], o.threads.v[t], o.fa.v[f]))
                            rc = 1;
        hearth_model_free(m);
    }
    bench_print_end(&out);
    return rc;
}
