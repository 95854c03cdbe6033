/* hearth perplexity: perplexity of a text under each cache type, and each type's KL
 * divergence and top-1 agreement against the first type listed. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_softmax(const float *x, int n, double *out) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - lse;
}

static int argmax_d(const double *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

int cmd_perplexity(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 2;
    const char *path = o.file ? o.file : o.text;
    if (!path) { fprintf(stderr, "hearth perplexity: needs -f TEXT\n"); return 2; }
    /* the list of K/V pairs: "f16,q8_0" means K=V=type; "q8_0/f16" sets K and V apart */
    char list[512];
    snprintf(list, sizeof list, "%s", o.cache_types ? o.cache_types : "f16,q8_0,q4_0");
    int tk[32], tv[32], nt = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && nt < 32; tok = strtok_r(NULL, ",", &save)) {
        char *slash = strchr(tok, '/');
        if (slash) *slash = 0;
        tk[nt] = hearth_cache_type_from_name(tok);
        tv[nt] = hearth_cache_type_from_name(slash ? slash + 1 : tok);
        if (tk[nt] < 0 || tv[nt] < 0) {
            fprintf(stderr, "hearth: '%s' is not a cache type; valid types: %s\n", tk[nt] < 0 ? tok : slash + 1, hearth_cache_type_list());
            return 2;
        }
        nt++;
    }
    size_t len;
    char *text = cli_read_file(path, &len);
    if (!text) return 1;
    hearth_model *m;
    if (cli_load(&o, &m, NULL)) { free(text); return 1; }
    const hearth_model_info *in = hearth_model_get_info(m);
    const int V = in->n_vocab;
    int n;
    int32_t *toks = cli_tokenize(m, text, len, 1, &n);
    free(text);
    int n_ctx = o.cp.n_ctx > 0 ? o.cp.n_ctx : n;
    if (n_ctx > n) n_ctx = n;
    int n_chunks = n / n_ctx;
    int scored = n_chunks * (n_ctx - 1);
    double *ref = malloc(sizeof(double) * (size_t)scored * V), *cur = malloc(sizeof(double) * V);
    int rc = 1;
    if (!toks || !ref || !cur || n < 2) { fprintf(stderr, "hearth: %s\n", n < 2 ? "the text is too short" : "out of memory"); goto done; }
    printf("model %s, %d tokens, %d chunk(s) of %d, %d positions scored\n", in->name, n, n_chunks, n_ctx, scored);
    printf("| K / V | PPL | mean KL | max KL | top-1 |\n| --- | --- | --- | --- | --- |\n");
    for (int ti = 0; ti < nt; ti++) {
        hearth_ctx_params cp = o.cp;
        cp.n_ctx = n_ctx;
        cp.type_k = tk[ti];
        cp.type_v = tv[ti];
        hearth_ctx *c;
        char err[512];
        if (hearth_ctx_new(m, &cp, &c, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); goto done; }
        double nll = 0, kl_sum = 0, kl_max = 0;
        int agree = 0, pos = 0;
        for (int ch = 0; ch < n_chunks; ch++) {
            hearth_ctx_truncate(c, 0);
            const int32_t *t = toks + (size_t)ch * n_ctx;
            if (hearth_eval(c, t, n_ctx, 1, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); hearth_ctx_free(c); goto done; }
            for (int i = 0; i + 1 < n_ctx; i++, pos++) {
                double *lp = ti == 0 ? ref + (size_t)pos * V : cur;
                log_softmax(hearth_ctx_logits(c, i), V, lp);
                nll -= lp[t[i + 1]];
                if (ti == 0) continue;
                const double *r = ref + (size_t)pos * V;
                double kl = 0;
                for (int k = 0; k < V; k++) kl += exp(r[k]) * (r[k] - lp[k]);
                kl_sum += kl;
                if (kl > kl_max) kl_max = kl;
                agree += argmax_d(r, V) == argmax_d(lp, V);
            }
        }
        hearth_ctx_free(c);
        if (ti == 0) agree = scored;
        printf("| %s / %s | %.4f | %.3e | %.3e | %.2f%% |\n", hearth_cache_type_name(tk[ti]), hearth_cache_type_name(tv[ti]),
               exp(nll / scored), kl_sum / scored, kl_max, 100.0 * agree / scored);
        fflush(stdout);
    }
    rc = 0;
done:
    free(ref); free(cur); free(toks);
    hearth_model_free(m);
    return rc;
}
