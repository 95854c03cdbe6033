/* hearth bench: one row per combination in every output format, JSON that parses with
 * llama-bench's field names, generation rows with bytes per token that grow with depth,
 * and clean refusals of bad arguments. */
#include "testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char *out, *err;

#define hearth(...) test_hearthf(tmpdir, &out, &err, __VA_ARGS__)

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void test_md(void) {
    int rc = hearth("bench -p 16 -n 4 -d 0,8 -ctk f16,q8_0 -r 2 -t 1");
    CHECK(rc == 0 && test_clean_stderr(err), "bench md: exit %d: %s", rc, err);
    CHECK(strstr(out, "memory read bandwidth:") && !strstr(out, "not measured"), "bandwidth line: %.300s", out);
    CHECK(strstr(out, "| model | size | params | type_k | type_v | threads |"), "md header: %.500s", out);
    CHECK(count(out, "| pp16 |") == 2 && count(out, "| tg4 |") == 2 && count(out, "| pp16 @ d8 |") == 2 &&
          count(out, "| tg4 @ d8 |") == 2, "md rows: %s", out);
    CHECK(count(out, "| q8_0 | f16 |") == 4 && count(out, "| f16 | f16 |") == 4, "type columns: %s", out);
    CHECK(strstr(out, "llama ") && strstr(out, " ± "), "model type and stddev: %s", out);
}

static void test_json(void) {
    int rc = hearth("bench -p 8 -n 3,5 -d 0,16 -r 3 -t 1,2 -o json --no-bw");
    CHECK(rc == 0 && test_clean_stderr(err), "bench json: exit %d: %s", rc, err);
    char path[256];
    snprintf(path, sizeof path, "%s/bench.json", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "write %s", path);
    if (!f) return;
    fputs(out, f);
    fclose(f);
    /* 2 threads x 2 depths x (1 pp + 2 tg) = 12 rows; every llama-bench field present and sane;
     * generation reads more bytes per token at depth 16 than at 0. */
    rc = test_sh(
        "python3 - '%s' <<'EOF'\n"
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "assert isinstance(d, list) and len(d) == 12, len(d)\n"
        "need = ['model_filename', 'model_type', 'model_size', 'model_n_params', 'n_prompt', 'n_gen', 'n_depth',\n"
        "        'type_k', 'type_v', 'n_threads', 'avg_ts', 'stddev_ts', 'samples_ts', 'avg_ns', 'samples_ns',\n"
        "        'bytes_per_token', 'gb_per_s']\n"
        "for r in d:\n"
        "    for k in need: assert k in r, k\n"
        "    assert r['avg_ts'] > 0 and r['stddev_ts'] >= 0 and len(r['samples_ts']) == 3, r\n"
        "    assert r['type_k'] == 'f16' and r['n_threads'] in (1, 2) and r['n_depth'] in (0, 16), r\n"
        "    assert r['model_filename'].endswith('stories260K.gguf') and r['model_n_params'] == 292800, r\n"
        "    assert (r['n_prompt'] == 8) != (r['n_gen'] in (3, 5)), r\n"
        "    if r['n_gen']: assert r['bytes_per_token'] > 5e5 and r['gb_per_s'] > 0, r\n"
        "    else: assert r['bytes_per_token'] == 0, r\n"
        "tg = {(r['n_threads'], r['n_depth'], r['n_gen']): r['bytes_per_token'] for r in d if r['n_gen']}\n"
        "assert tg[(1, 16, 3)] > tg[(1, 0, 3)] and tg[(1, 0, 5)] > tg[(1, 0, 3)], tg\n"
        "assert tg[(1, 16, 3)] == tg[(2, 16, 3)], tg\n"
        "EOF", path);
    CHECK(rc == 0, "bench json did not parse or lacks fields (python3 exit %d): %.2000s", rc, out);
}

static void test_csv(void) {
    int rc = hearth("bench -p 0 -n 4 -r 1 -o csv --no-bw -ctv q4_0,q8_0");
    CHECK(rc == 0 && test_clean_stderr(err), "bench csv: exit %d: %s", rc, err);
    CHECK(!strncmp(out, "model_filename,model_type,", 26) && count(out, "\n") == 3, "csv: %s", out);
    CHECK(strstr(out, ",f16,q4_0,") && strstr(out, ",f16,q8_0,"), "csv V types: %s", out);
}

static void bad(const char *what, const char *args, const char *needle) {
    int rc = hearth("%s", args);
    CHECK((rc == 1 || rc == 2) && test_clean_stderr(err), "%s: exit %d: %s", what, rc, err);
    CHECK(strstr(err, needle) != NULL, "%s: message lacks '%s': %s", what, needle, err);
}

static void test_errors(void) {
    bad("bad -p", "bench -p abc", "abc");
    bad("bad list", "bench -n 4,,8", "4,,8");
    bad("negative depth", "bench -d -5", "-5");
    bad("bad cache type", "bench -ctk f16,q9_9", "q9_9");
    bad("bad format", "bench -o xml", "xml");
    bad("bad fa", "bench -fa 2", "-fa");
    bad("zero reps", "bench -r 0", "-r");
    bad("missing value", "bench -p", "-p");
    bad("unknown option", "bench --bogus", "--bogus");
    bad("missing model", "bench -m /nonexistent/m.gguf -p 1 -n 1 --no-bw", "/nonexistent/m.gguf");
    bad("vocab file as model", "bench -m testdata/tokenizer/ggml-vocab-llama-spm.gguf -p 1 -n 1 --no-bw", "ggml-vocab-llama-spm");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-bench-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_md();
    test_json();
    test_csv();
    test_errors();
    free(out);
    free(err);
    test_sh("rm -rf '%s'", tmpdir);
    return test_done("test_bench");
}
