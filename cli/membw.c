/* The machine's memory read bandwidth, the ceiling of token generation: each thread sums
 * its slice of a buffer far larger than the caches, like a matrix-vector product streams
 * its weights. The best of several passes is the figure. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bw_slice { const uint64_t *p; size_t n; uint64_t sum; } bw_slice;

static void *read_slice(void *arg) {
    bw_slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= s->n; i += 4) { a += s->p[i]; b += s->p[i + 1]; c += s->p[i + 2]; d += s->p[i + 3]; }
    for (; i < s->n; i++) a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bench_mem_bandwidth(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) n_threads = 256;
    const size_t bytes = (size_t)512 << 20, n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(bytes);
    bw_slice *sl = calloc((size_t)n_threads, sizeof *sl);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    double best = 0;
    if (!buf || !sl || !th) goto done;
    for (size_t i = 0; i < n; i++) buf[i] = i;   /* touch every page before timing */
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now_s();
        int started = 0;
        for (int t = 0; t < n_threads; t++) {
            sl[t].p = buf + n / (size_t)n_threads * (size_t)t;
            sl[t].n = t == n_threads - 1 ? n - n / (size_t)n_threads * (size_t)t : n / (size_t)n_threads;
            if (t == 0) continue;
            if (pthread_create(&th[t], NULL, read_slice, &sl[t]) != 0) break;
            started = t;
        }
        read_slice(&sl[0]);
        for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
        double dt = now_s() - t0;
        if (started != n_threads - 1) { best = 0; goto done; }   /* could not start every thread */
        for (int t = 0; t < n_threads; t++) sink += sl[t].sum;
        double gbs = bytes / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
done:
    free(buf);
    free(sl);
    free(th);
    return best;
}

const char *bench_cpu_info(void) {
    static char name[256];
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return name;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(name, sizeof name, "%s", c);
        break;
    }
    fclose(f);
    return name;
}
