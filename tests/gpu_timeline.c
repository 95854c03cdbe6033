/* gpu_timeline: where a decode step's time goes on the card, kernel by kernel, as the step
 * really runs (a CUDA graph, launches overlapped by programmatic dependent launch). CUPTI's
 * activity records give each kernel's start and end; this prints one step's kernels in
 * order (start, length, the gap after the kernel before it ended: negative = overlap) and,
 * over the traced steps, each kernel's mean length, the time no kernel ran, and the step.
 *
 *   gpu_timeline MODEL [-ctk T] [-ctv T] [-d DEPTH] [-n STEPS] [-all]
 *
 * A tool for the device machine (built with -DHEARTH_CUPTI=ON: it links CUPTI); not a test.
 * The tracing itself stretches the host's part of a step (the gap between the position write and
 * the graph: 0.1-1.2 ms traced on an H100, against ~2% of a step untraced), so the graph's own span
 * is printed apart: compare that with `hearth bench` (H100, f16 at depth 0: the graph spans
 * 3140 us, 318.5 t/s, where bench measures 312.3). */
#include "hearth.h"
#include "quant/quant.h"

#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct krec {
    uint64_t start, end;
    char name[64];
    int grid, block;
} krec;

static krec *recs;
static size_t n_recs, cap_recs;

#define BUF_BYTES (8u << 20)

static void CUPTIAPI buf_request(uint8_t **buf, size_t *size, size_t *max_records) {
    *buf = aligned_alloc(8, BUF_BYTES);
    *size = *buf ? BUF_BYTES : 0;
    *max_records = 0;
}

/* CUPTI gives mangled names; the C++ runtime's demangler (extern "C") reads them */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* the kernel name without its return type and arguments ("void k_mv2<4, 1, 0>(...)" -> "k_mv2<4, 1, 0>") */
static void short_name(const char *n, char *out, size_t len) {
    if (!n) n = "?";
    char *dm = NULL;
    if (!strncmp(n, "_Z", 2)) {
        int st = -1;
        dm = __cxa_demangle(n, NULL, NULL, &st);
        if (dm && st == 0) n = dm;
    }
    if (!strncmp(n, "void ", 5)) n += 5;
    size_t k = 0;
    int depth = 0;
    for (; n[k] && k + 1 < len; k++) {
        if (n[k] == '<') depth++;
        if (n[k] == '>') depth--;
        if (n[k] == '(' && depth == 0) break;
        out[k] = n[k];
    }
    out[k] = 0;
    free(dm);
}

static void CUPTIAPI buf_done(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size, size_t valid) {
    (void)ctx; (void)stream; (void)size;
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && r->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
        if (n_recs == cap_recs) {
            cap_recs = cap_recs ? 2 * cap_recs : 4096;
            krec *nr = realloc(recs, cap_recs * sizeof *recs);
            if (!nr) break;
            recs = nr;
        }
        krec *o = &recs[n_recs++];
        o->start = k->start;
        o->end = k->end;
        o->grid = k->gridX * k->gridY * k->gridZ;
        o->block = k->blockX * k->blockY * k->blockZ;
        short_name(k->name, o->name, sizeof o->name);
    }
    free(buf);
}

static int by_start(const void *a, const void *b) {
    const krec *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* per kernel name: launches, total length */
typedef struct kstat { char name[64]; int n; double us; } kstat;

static kstat *stat_of(kstat *st, int *n_st, const char *name) {
    for (int i = 0; i < *n_st; i++)
        if (!strcmp(st[i].name, name)) return &st[i];
    if (*n_st >= 256) return NULL;
    kstat *s = &st[(*n_st)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n = 0;
    s->us = 0;
    return s;
}

#define CUPTI_OK(call)                                                        \
    do {                                                                      \
        CUptiResult r_ = (call);                                              \
        if (r_ != CUPTI_SUCCESS) {                                            \
            const char *m_ = NULL;                                            \
            cuptiGetResultString(r_, &m_);                                    \
            fprintf(stderr, "gpu_timeline: %s: %s\n", #call, m_ ? m_ : "?"); \
            return 1;                                                         \
        }                                                                     \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gpu_timeline MODEL [-ctk T] [-ctv T] [-d DEPTH] [-n STEPS] [-all]\n");
        return 2;
    }
    const char *path = argv[1], *tk = "f16", *tv = "f16";
    int depth = 0, steps = 8, all = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-ctk") && i + 1 < argc) tk = argv[++i];
        else if (!strcmp(argv[i], "-ctv") && i + 1 < argc) tv = argv[++i];
        else if (!strcmp(argv[i], "-d") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-all")) all = 1;
        else { fprintf(stderr, "gpu_timeline: unknown argument %s\n", argv[i]); return 2; }
    }
    if (depth < 0 || steps < 2 || steps > 1000 || quant_from_name(tk) < 0 || quant_from_name(tv) < 0) {
        fprintf(stderr, "gpu_timeline: bad depth, step count or cache type\n");
        return 2;
    }
    hearth_log_set_level(HEARTH_LOG_WARN);
    char err[512];
    hearth_model_params mp = hearth_model_default_params();
    mp.n_gpu_layers = -1;
    hearth_model *m = NULL;
    if (hearth_model_load(path, &mp, &m, err, sizeof err)) { fprintf(stderr, "gpu_timeline: %s\n", err); return 1; }
    hearth_ctx_params cp = hearth_ctx_default_params();
    cp.n_ctx = depth + steps + 16;
    cp.type_k = quant_from_name(tk);
    cp.type_v = quant_from_name(tv);
    cp.flash_attn = 1;
    hearth_ctx *c = NULL;
    if (hearth_ctx_new(m, &cp, &c, err, sizeof err)) {
        fprintf(stderr, "gpu_timeline: %s\n", err);
        hearth_model_free(m);
        return 1;
    }
    const int V = hearth_model_get_info(m)->n_vocab;
    int n_prompt = depth > 0 ? depth : 1;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n_prompt + steps + 4));
    uint32_t s = 1;
    for (int i = 0; i < n_prompt + steps + 4; i++) { s = s * 1664525u + 1013904223u; toks[i] = 1 + (int)(s >> 8) % (V - 1); }
    int rc = hearth_eval(c, toks, n_prompt, 0, err, sizeof err);
    /* four untraced steps: the graph is captured by the second */
    for (int i = 0; i < 4 && !rc; i++) rc = hearth_eval(c, toks + n_prompt + i, 1, 0, err, sizeof err);
    if (rc) { fprintf(stderr, "gpu_timeline: %s\n", err); return 1; }
    CUPTI_OK(cuptiActivityRegisterCallbacks(buf_request, buf_done));
    CUPTI_OK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
    for (int i = 0; i < steps && !rc; i++) rc = hearth_eval(c, toks + n_prompt + 4 + (i % 4), 1, 0, err, sizeof err);
    CUPTI_OK(cuptiActivityFlushAll(1));
    CUPTI_OK(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
    if (rc) { fprintf(stderr, "gpu_timeline: %s\n", err); return 1; }
    qsort(recs, n_recs, sizeof *recs, by_start);
    /* steps begin with the position write (k_set_int), or the graph's own input kernel
     * (k_step_in) when the step's input travels through pinned memory (HEARTH_STEP_IO=2) */
    int *first = malloc(sizeof(int) * (n_recs + 1)), n_steps = 0;
    for (size_t i = 0; i < n_recs; i++)
        if (!strcmp(recs[i].name, "k_set_int") || !strcmp(recs[i].name, "k_step_in")) first[n_steps++] = (int)i;
    first[n_steps] = (int)n_recs;
    printf("model %s, cache %s / %s, depth %d: %zu kernels traced, %d steps\n", path, tk, tv, depth, n_recs, n_steps);
    if (n_steps < 2) { printf("too few steps traced\n"); return 1; }
    kstat st[256];
    int n_st = 0;
    double step_us = 0, idle_us = 0, span_us = 0, gap_us = 0;
    int counted = 0;
    /* every whole step but the last (which has no next start to end it) */
    for (int sI = 0; sI + 1 < n_steps; sI++) {
        const int a = first[sI], b = first[sI + 1];
        const uint64_t t0 = recs[a].start;
        uint64_t busy_end = t0, idle = 0;
        const int show = all || sI == n_steps - 2;
        if (show) printf("\nstep %d (%d kernels): start us, length us, gap after the kernel before (negative: overlap)\n", sI, b - a);
        for (int i = a; i < b; i++) {
            const krec *k = &recs[i];
            if (k->start > busy_end) idle += k->start - busy_end;
            if (k->end > busy_end) busy_end = k->end;
            if (show) {
                const double gap = i > a ? ((double)k->start - (double)recs[i - 1].end) / 1e3 : 0.0;
                printf("%4d %-44s %9.2f %8.2f %8.2f  %d x %d\n", i - a, k->name, (double)(k->start - t0) / 1e3,
                       (double)(k->end - k->start) / 1e3, gap, k->grid, k->block);
            }
            kstat *ks = stat_of(st, &n_st, k->name);
            if (ks) { ks->n++; ks->us += (double)(k->end - k->start) / 1e3; }
        }
        step_us += (double)(recs[b].start - t0) / 1e3;
        idle_us += (double)idle / 1e3 + (double)(recs[b].start > busy_end ? recs[b].start - busy_end : 0) / 1e3;
        /* the graph alone: from its first kernel (after the position write) to its last end */
        if (b - a > 1) {
            gap_us += (double)(recs[a + 1].start - recs[a].end) / 1e3;
            span_us += (double)(busy_end - recs[a + 1].start) / 1e3;
        }
        counted++;
    }
    printf("\nover %d steps: a step %.1f us (%.1f t/s), no kernel running %.1f us of it\n", counted, step_us / counted,
           1e6 / (step_us / counted), idle_us / counted);
    /* tracing stretches the host's part (the gap before the graph starts), not the graph */
    printf("the graph's kernels span %.1f us (%.1f t/s); the host's gap before them %.1f us\n", span_us / counted,
           1e6 / (span_us / counted), gap_us / counted);
    printf("%-44s %8s %10s %10s\n", "kernel", "a step", "mean us", "us a step");
    for (int i = 0; i < n_st; i++)
        printf("%-44s %8.1f %10.2f %10.1f\n", st[i].name, (double)st[i].n / counted, st[i].us / st[i].n, st[i].us / counted);
    free(first);
    free(toks);
    free(recs);
    hearth_ctx_free(c);
    hearth_model_free(m);
    return 0;
}
