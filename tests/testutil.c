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
