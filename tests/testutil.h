/* A small test harness: CHECK records a failure with file:line and a message and goes on;
 * test_done() prints a summary and returns the process exit code. */
#ifndef HEARTH_TESTUTIL_H
#define HEARTH_TESTUTIL_H

#include <stdio.h>

extern int test_failures, test_checks;

#define CHECK(cond, ...) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Path of a file under the repository's testdata/ (static buffer, valid until next call). */
const char *test_data(const char *rel);
/* Path of the hearth binary (from $HEARTH_BIN, set by ctest). */
const char *test_hearth_bin(void);
/* Read a whole file; caller frees. NULL on error. */
void *test_read_file(const char *path, size_t *size);
int test_done(const char *name);

#endif

/* HLOG logit dumps (format in testdata/ref/README.md). */
#include <stdint.h>
typedef struct hlog { uint32_t n_tok, n_vocab, n_prompt; int32_t *toks; float *logits; } hlog;
int  hlog_load(const char *path, hlog *h);   /* 0 or -1 (message printed) */
void hlog_free(hlog *h);
typedef struct hlog_cmp {
    int n;             /* positions compared: while the token streams agree */
    int diverged;      /* streams part at position n (n < both lengths) */
    float tie_gap;     /* when diverged: the reference's top-two gap at row n-1 */
    double kl_mean, kl_max, top1, rel;
} hlog_cmp;
/* Compares ref and b position by position (softmax in double), as ../shared/tools/hlog.py does. */
void hlog_compare(const hlog *ref, const hlog *b, hlog_cmp *out);
/* Runs a shell command; returns its exit status (or -1). */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs `hearth ARGS` from the source tree with stdout and stderr captured (files in dir)
 * into *out and *err (malloc'd, never NULL; caller frees); returns the exit status. */
int test_hearth(const char *dir, const char *args, char **out, char **err);
/* test_hearth with printf-style arguments; frees what *out and *err held first. */
int test_hearthf(const char *dir, char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Mean KL(ref || x) over n rows of V logits; top-1 agreement into *top1 when not NULL. */
double test_mean_kl(const float *ref, const float *x, int n, int V, double *top1);
/* No sanitizer report, signal or assertion text in a captured stderr. */
int test_clean_stderr(const char *err);
