/* hearth bench output: a markdown table like llama-bench's (plus GB/s and the share of the
 * machine's memory bandwidth for generation), a JSON array with llama-bench's field names
 * where they apply, or CSV. Rows are printed as they finish. */
#include "bench.h"

#include <stdio.h>
#include <string.h>

static void test_name(const bench_result *r, char *buf, size_t n) {
    int k = r->n_prompt ? snprintf(buf, n, "pp%d", r->n_prompt) : snprintf(buf, n, "tg%d", r->n_gen);
    if (r->n_depth && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " @ d%d", r->n_depth);
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_samples(const double *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", v[i]);
    putchar(']');
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

void bench_print_begin(bench_out *o) {
    if (o->format == BENCH_JSON) { printf("[\n"); return; }
    if (o->format == BENCH_CSV) {
        printf("model_filename,model_type,model_size,model_n_params,n_ubatch,n_threads,type_k,type_v,flash_attn,"
               "n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts,bytes_per_token,gb_per_s,"
               "mem_bw_gb_per_s,pct_of_bw\n");
        return;
    }
    printf("CPU: %s\n", o->cpu_info);
    if (o->mem_bw > 0 && o->bw_threads == 0) printf("GPU copy bandwidth (read + write): %.1f GB/s\n\n", o->mem_bw);
    else if (o->mem_bw > 0) printf("memory read bandwidth: %.1f GB/s (%d threads)\n\n", o->mem_bw, o->bw_threads);
    else printf("memory read bandwidth: not measured\n\n");
    printf("| model | size | params | type_k | type_v | threads | fa | test | t/s | GB/s | %% of bw |\n");
    printf("| --- | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    fflush(stdout);
}

void bench_print_row(bench_out *o, const bench_result *r) {
    char test[64];
    test_name(r, test, sizeof test);
    const char *tk = hearth_cache_type_name(r->type_k), *tv = hearth_cache_type_name(r->type_v);
    const double pct = r->gb_per_s > 0 && o->mem_bw > 0 ? 100.0 * r->gb_per_s / o->mem_bw : 0;
    if (o->format == BENCH_MD) {
        const double gib = r->model_size / (1024.0 * 1024.0 * 1024.0);
        printf("| %s | %.2f %s | %.2f %s | %s | %s | %d | %d | %s | %.2f ± %.2f |", r->model_type,
               gib >= 1 ? gib : gib * 1024, gib >= 1 ? "GiB" : "MiB", r->n_params >= 1e9 ? r->n_params / 1e9 : r->n_params / 1e6,
               r->n_params >= 1e9 ? "B" : "M", tk, tv, r->n_threads, r->flash_attn, test, r->avg_ts, r->stddev_ts);
        if (r->gb_per_s > 0) printf(" %.2f |", r->gb_per_s);
        else printf(" |");
        if (pct > 0) printf(" %.1f |\n", pct);
        else printf(" |\n");
    } else if (o->format == BENCH_CSV) {
        printf("\"%s\",\"%s\",%llu,%lld,%d,%d,%s,%s,%d,%d,%d,%d,%s,%.0f,%.0f,%.6f,%.6f,%.0f,%.4f,%.4f,%.2f\n",
               r->model_path, r->model_type, (unsigned long long)r->model_size, (long long)r->n_params, r->n_ubatch,
               r->n_threads, tk, tv, r->flash_attn, r->n_prompt, r->n_gen, r->n_depth, r->test_time, r->avg_ns,
               r->stddev_ns, r->avg_ts, r->stddev_ts, r->bytes_per_token, r->gb_per_s, o->mem_bw, pct);
    } else {
        printf("%s  {\n    \"model_filename\": ", o->n_printed ? ",\n" : "");
        json_str(r->model_path);
        printf(",\n    \"model_type\": ");
        json_str(r->model_type);
        printf(",\n    \"model_size\": %llu,\n    \"model_n_params\": %lld,\n", (unsigned long long)r->model_size,
               (long long)r->n_params);
        printf("    \"cpu_info\": ");
        json_str(o->cpu_info);
        printf(",\n    \"backends\": \"CPU\",\n    \"n_ubatch\": %d,\n    \"n_threads\": %d,\n", r->n_ubatch, r->n_threads);
        printf("    \"type_k\": \"%s\",\n    \"type_v\": \"%s\",\n    \"flash_attn\": %s,\n", tk, tv, r->flash_attn ? "true" : "false");
        printf("    \"n_prompt\": %d,\n    \"n_gen\": %d,\n    \"n_depth\": %d,\n", r->n_prompt, r->n_gen, r->n_depth);
        printf("    \"test_time\": \"%s\",\n    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n", r->test_time, r->avg_ns, r->stddev_ns);
        printf("    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n    \"samples_ns\": ", r->avg_ts, r->stddev_ts);
        json_samples(r->samples_ns, r->n_reps);
        printf(",\n    \"samples_ts\": ");
        json_samples(r->samples_ts, r->n_reps);
        printf(",\n    \"test\": \"%s\",\n    \"model_basename\": ", test);
        json_str(base_name(r->model_path));
        printf(",\n    \"bytes_per_token\": %.0f,\n    \"gb_per_s\": %.4f,\n", r->bytes_per_token, r->gb_per_s);
        printf("    \"mem_bw_gb_per_s\": %.4f,\n    \"pct_of_bw\": %.2f\n  }", o->mem_bw, pct);
    }
    o->n_printed++;
    fflush(stdout);
}

void bench_print_end(bench_out *o) {
    if (o->format == BENCH_JSON) printf("%s]\n", o->n_printed ? "\n" : "");
    fflush(stdout);
}
