#include "testutil.h"
#include <stdlib.h>
#include <string.h>

int test_failures, test_checks;

const char *test_data(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/testdata/%s", HEARTH_SOURCE_DIR, rel);
    return buf;
}

const char *test_hearth_bin(void) {
    const char *b = getenv("HEARTH_BIN");
    return b && *b ? b : "hearth";
}

void *test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0) { fclose(f); return NULL; }
    rewind(f);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[n] = 0; if (size) *size = (size_t)n; }
    return p;
}

int test_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

#include <math.h>
#include <stdarg.h>
#include <sys/wait.h>

int hlog_load(const char *path, hlog *h) {
    memset(h, 0, sizeof *h);
    size_t n;
    unsigned char *b = test_read_file(path, &n);
    if (!b) { fprintf(stderr, "%s: cannot read\n", path); return -1; }
    uint32_t hdr[4];
    if (n < 20 || memcmp(b, "HLOG", 4) != 0) { fprintf(stderr, "%s: not an HLOG file\n", path); free(b); return -1; }
    memcpy(hdr, b + 4, 16);
    h->n_tok = hdr[1]; h->n_vocab = hdr[2]; h->n_prompt = hdr[3];
    size_t need = 20 + 4 * (size_t)h->n_tok + 4 * (size_t)h->n_tok * h->n_vocab;
    if (hdr[0] != 1 || n != need) { fprintf(stderr, "%s: size %zu, expected %zu\n", path, n, need); free(b); return -1; }
    h->toks = malloc(4 * (size_t)h->n_tok);
    h->logits = malloc(4 * (size_t)h->n_tok * h->n_vocab);
    memcpy(h->toks, b + 20, 4 * (size_t)h->n_tok);
    memcpy(h->logits, b + 20 + 4 * (size_t)h->n_tok, 4 * (size_t)h->n_tok * h->n_vocab);
    free(b);
    return 0;
}

void hlog_free(hlog *h) { free(h->toks); free(h->logits); memset(h, 0, sizeof *h); }

static void lsm(const float *x, int n, double *out) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - log(s);
}

static int amax(const float *x, int n) { int b = 0; for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i; return b; }

void hlog_compare(const hlog *a, const hlog *b, hlog_cmp *o) {
    memset(o, 0, sizeof *o);
    int n = (int)(a->n_tok < b->n_tok ? a->n_tok : b->n_tok);
    int same = n;
    for (int i = 0; i < n; i++) if (a->toks[i] != b->toks[i]) { same = i; break; }
    o->n = same;
    o->diverged = same < n;
    int V = (int)a->n_vocab;
    if (o->diverged && same > 0) {
        const float *r = a->logits + (size_t)(same - 1) * V;
        float t1 = -INFINITY, t2 = -INFINITY;
        for (int k = 0; k < V; k++) { if (r[k] > t1) { t2 = t1; t1 = r[k]; } else if (r[k] > t2) t2 = r[k]; }
        o->tie_gap = t1 - t2;
    }
    if (b->n_vocab != a->n_vocab || same == 0) { o->kl_mean = INFINITY; return; }
    double *pa = malloc(sizeof(double) * V), *pb = malloc(sizeof(double) * V);
    double maxd = 0, maxa = 0, kls = 0;
    int agree = 0;
    for (int i = 0; i < same; i++) {
        const float *ra = a->logits + (size_t)i * V, *rb = b->logits + (size_t)i * V;
        lsm(ra, V, pa);
        lsm(rb, V, pb);
        double kl = 0;
        for (int k = 0; k < V; k++) {
            kl += exp(pa[k]) * (pa[k] - pb[k]);
            double d = fabs((double)ra[k] - rb[k]);
            if (d > maxd) maxd = d;
            if (fabs(ra[k]) > maxa) maxa = fabs(ra[k]);
        }
        kls += kl;
        if (kl > o->kl_max) o->kl_max = kl;
        agree += amax(ra, V) == amax(rb, V);
    }
    o->kl_mean = kls / same;
    o->top1 = (double)agree / same;
    o->rel = maxd / (maxa + 1e-9);
    free(pa); free(pb);
}

int test_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int test_hearth(const char *dir, const char *args, char **out, char **err) {
    char o[512], e[512];
    snprintf(o, sizeof o, "%s/hearth.stdout", dir);
    snprintf(e, sizeof e, "%s/hearth.stderr", dir);
    int rc = test_sh("cd '%s' && '%s' %s >'%s' 2>'%s' </dev/null", HEARTH_SOURCE_DIR, test_hearth_bin(), args, o, e);
    size_t n;
    *out = test_read_file(o, &n);
    *err = test_read_file(e, &n);
    if (!*out) *out = calloc(1, 1);
    if (!*err) *err = calloc(1, 1);
    return rc;
}

int test_clean_stderr(const char *err) {
    return !strstr(err, "Sanitizer") && !strstr(err, "runtime error") && !strstr(err, "Segmentation") &&
           !strstr(err, "Assertion") && !strstr(err, "Aborted");
}

int test_hearthf(const char *dir, char **out, char **err, const char *fmt, ...) {
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    free(*out);
    free(*err);
    *out = *err = NULL;
    return test_hearth(dir, args, out, err);
}

double test_mean_kl(const float *ref, const float *x, int n, int V, double *top1) {
    double s = 0;
    int agree = 0;
    for (int i = 0; i < n; i++) {
        const float *r = ref + (size_t)i * V, *y = x + (size_t)i * V;
        double ma = r[0], mb = y[0], sa = 0, sb = 0;
        int ia = 0, ib = 0;
        for (int k = 1; k < V; k++) { if (r[k] > ma) { ma = r[k]; ia = k; } if (y[k] > mb) { mb = y[k]; ib = k; } }
        for (int k = 0; k < V; k++) { sa += exp(r[k] - ma); sb += exp(y[k] - mb); }
        double kl = 0;
        for (int k = 0; k < V; k++) {
            double a = r[k] - ma - log(sa), b = y[k] - mb - log(sb);
            kl += exp(a) * (a - b);
        }
        s += kl;
        agree += ia == ib;
    }
    if (top1) *top1 = (double)agree / n;
    return s / n;
}
