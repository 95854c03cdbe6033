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
