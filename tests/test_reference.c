/* hearth computes the same function as the peer: `hearth logits` on every model with
 * reference data, compared position by position at the thresholds of testdata/ref/README.md. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ref_case {
    const char *model, *text, *ref, *extra;
    int gen;
    double kl, top1, rel; /* thresholds; rel < 0: not checked */
} ref_case;

static const ref_case cases[] = {
    { "models/stories260K.gguf", "stories", "stories260K.kv-f16", "", 0, 1e-4, 0.99, 5e-3 },
    { "models/stories260K.gguf", "stories", "stories260K.kv-f32", "--cache-type-k f32 --cache-type-v f32", 0, 1e-4, 0.99, 5e-3 },
    { "models/stories260K.gguf", "once", "stories260K.greedy", "", 96, 1e-4, 0.99, 5e-3 },
    { "models/stories260K.gguf", "once", "stories260K.greedy-ub1", "--ubatch 1", 96, 1e-4, 0.99, 5e-3 },
    { "testdata/models/synth-a-q8_0.gguf", "prose", "synth-a-q8_0.kv-f16", "", 32, 2e-3, 0.95, -1 },
    { "testdata/models/synth-a-q4_k_m.gguf", "prose", "synth-a-q4_k_m.kv-f16", "", 32, 2e-3, 0.95, -1 },
    { "testdata/models/synth-a-q8_0.gguf", "stories", "synth-a-q8_0.kv-f16-f16", "", 0, 2e-3, 0.95, -1 },
    { "testdata/models/synth-a-q8_0.gguf", "stories", "synth-a-q8_0.kv-q8_0-q8_0", "--cache-type-k q8_0 --cache-type-v q8_0", 0, 2e-3, 0.95, -1 },
#define ZOO(t) { "testdata/models/synth-zoo-" t ".gguf", "short", "synth-zoo-" t ".kv-f16", "", 16, 2e-3, 0.95, -1 }
    ZOO("f16"), ZOO("bf16"), ZOO("q8_0"), ZOO("q4_0"), ZOO("q4_1"), ZOO("q5_0"), ZOO("q5_1"),
    ZOO("q2_k"), ZOO("q3_k_m"), ZOO("q4_k_m"), ZOO("q5_k_m"), ZOO("q6_k"), ZOO("iq4_nl"),
};

int main(void) {
    char out[256], model[1024], text[1024], ref[1024];
    snprintf(out, sizeof out, "/tmp/hearth-test-ref-%d.hlog", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ref_case *c = &cases[i];
        snprintf(model, sizeof model, "%s/%s", HEARTH_SOURCE_DIR, c->model);
        snprintf(text, sizeof text, "%s", test_data("ref/text/"));
        strncat(text, c->text, sizeof text - strlen(text) - 5);
        strcat(text, ".txt");
        snprintf(ref, sizeof ref, "%s", test_data("ref/"));
        strncat(ref, c->ref, sizeof ref - strlen(ref) - 6);
        strcat(ref, ".hlog");
        int rc = test_sh("'%s' logits -m '%s' --text '%s' --gen %d %s -o '%s' 2>/dev/null", test_hearth_bin(), model, text,
                         c->gen, c->extra, out);
        CHECK(rc == 0, "%s: hearth logits exited %d", c->ref, rc);
        hlog a, b;
        if (rc != 0 || hlog_load(ref, &a) != 0) continue;
        if (hlog_load(out, &b) != 0) { hlog_free(&a); CHECK(0, "%s: unreadable output", c->ref); continue; }
        CHECK(a.n_tok == b.n_tok && a.n_prompt == b.n_prompt, "%s: %u tokens (%u prompt), peer %u (%u)", c->ref,
              b.n_tok, b.n_prompt, a.n_tok, a.n_prompt);
        hlog_cmp m;
        hlog_compare(&a, &b, &m);
        printf("%-28s positions %4d%s  KL mean %.3e max %.3e  top1 %.2f%%  rel %.3e\n", c->ref, m.n,
               m.diverged ? " (parted)" : "", m.kl_mean, m.kl_max, 100 * m.top1, m.rel);
        /* the prompt is teacher-forced: it must agree entirely; the greedy part may only
         * part right after one of the peer's near-ties */
        CHECK(m.n >= (int)a.n_prompt, "%s: token streams differ inside the prompt at %d", c->ref, m.n);
        CHECK(!m.diverged || m.tie_gap <= 0.05f, "%s: greedy continuation parts at %d after a top-two gap of %.3f (not a near-tie)",
              c->ref, m.n, m.tie_gap);
        CHECK(m.kl_mean <= c->kl, "%s: mean KL %.3e > %.1e", c->ref, m.kl_mean, c->kl);
        CHECK(m.top1 >= c->top1, "%s: top-1 %.4f < %.2f", c->ref, m.top1, c->top1);
        if (c->rel >= 0) CHECK(m.rel <= c->rel, "%s: rel %.3e > %.1e", c->ref, m.rel, c->rel);
        hlog_free(&a);
        hlog_free(&b);
    }
    unlink(out);
    return test_done("test_reference");
}
