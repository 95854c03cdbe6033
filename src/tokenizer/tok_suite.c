/* Runs a peer-format tokenizer suite; see tok_suite.h for the format. */
#include "tokenizer/tok_suite.h"

#include <stdlib.h>
#include <string.h>

int tok_run_suite(const tok_vocab *v, const char *inp, size_t len, FILE *out) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sl = sizeof sep - 1;
    int cap = 256, cases = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return -1;

    /* Text after the last marker is a case too if there is any, so a file whose last
     * marker was trimmed still runs every case. */
    for (size_t pos = 0; pos < len;) {
        const char *m = memmem(inp + pos, len - pos, sep, sl);
        size_t n = m ? (size_t)(m - (inp + pos)) : len - pos;
        int k = tok_encode(v, inp + pos, n, 0, 0, ids, cap);
        if (k > cap) {
            int32_t *p = realloc(ids, (size_t)k * sizeof *ids);
            if (!p) { cases = -1; break; }
            ids = p;
            cap = k;
            k = tok_encode(v, inp + pos, n, 0, 0, ids, cap);
        }
        if (k < 0) { cases = -1; break; }
        for (int i = 0; i < k; i++) fprintf(out, " %d", (int)ids[i]);
        fputc('\n', out);
        cases++;
        if (!m) break;
        pos += n + sl;
    }
    free(ids);
    if (cases >= 0 && ferror(out)) cases = -1;
    return cases;
}
