/* hearth bench: shared pieces of the benchmark command (options, results, output). */
#ifndef HEARTH_CLI_BENCH_H
#define HEARTH_CLI_BENCH_H

#include "hearth.h"

#define BENCH_MAX_LIST 16
#define BENCH_MAX_REPS 1000

typedef struct bench_result {
    const char *model_path, *model_type;
    uint64_t model_size;
    int64_t n_params;
    int n_prompt, n_gen, n_depth, n_threads, n_ubatch, flash_attn;
    int type_k, type_v;
    int n_reps;
    double samples_ns[BENCH_MAX_REPS];
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    double samples_ts[BENCH_MAX_REPS];
    /* generation only (0 otherwise): bytes one token reads and the rate that gives */
    double bytes_per_token, gb_per_s;
    char test_time[32];
} bench_result;

typedef struct bench_out {
    int format;              /* BENCH_MD, BENCH_JSON, BENCH_CSV */
    double mem_bw;           /* GB/s, 0: not measured */
    int bw_threads;
    const char *cpu_info;
    int n_printed;
} bench_out;
enum { BENCH_MD, BENCH_JSON, BENCH_CSV };

void bench_print_begin(bench_out *o);
void bench_print_row(bench_out *o, const bench_result *r);
void bench_print_end(bench_out *o);

/* Memory read bandwidth in GB/s with n_threads threads (best of a few passes over a buffer
 * much larger than the caches); 0 when it cannot run. */
double bench_mem_bandwidth(int n_threads);
/* "model name" from /proc/cpuinfo, or "unknown CPU". */
const char *bench_cpu_info(void);

#endif
