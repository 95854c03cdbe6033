/* hearth run: generate text from a prompt, streaming it to stdout as it comes. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_run(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 2;
    if (!o.cp.n_ctx) o.cp.n_ctx = 2048;
    hearth_model *m;
    hearth_ctx *c;
    if (cli_load(&o, &m, &c)) return 1;
    const hearth_model_info *in = hearth_model_get_info(m);
    const char *prompt = o.prompt ? o.prompt : "Once upon a time";
    int n;
    int32_t *toks = cli_tokenize(m, prompt, strlen(prompt), in->add_bos, &n);
    int rc = 1;
    char err[512];
    hearth_sampler *s = hearth_sampler_new(&o.sp, in->n_vocab);
    int32_t *hist = NULL;
    if (!toks || !s) { fprintf(stderr, "hearth: out of memory\n"); goto done; }
    const int n_ctx = hearth_ctx_n_ctx(c);
    if (n >= n_ctx) {
        fprintf(stderr, "hearth: the prompt is %d tokens, which does not fit a context of %d (use -c)\n", n, n_ctx);
        goto done;
    }
    int n_keep = o.n_keep >= 0 ? o.n_keep : (in->add_bos ? 1 : 0);
    if (n_keep >= n_ctx / 2) n_keep = n_ctx / 2 - 1;
    fputs(prompt, stdout);
    fflush(stdout);
    if (hearth_eval(c, toks, n, 0, err, sizeof err)) { fprintf(stderr, "\nhearth: %s\n", err); goto done; }
    hist = malloc(sizeof(int32_t) * (size_t)(n + o.n_gen + 1));
    if (!hist) goto done;
    memcpy(hist, toks, sizeof(int32_t) * (size_t)n);
    int n_hist = n;
    const char *why = "length";
    for (int i = 0; i < o.n_gen; i++) {
        int32_t t = hearth_sampler_sample(s, hearth_ctx_last_logits(c), hist, n_hist);
        if (hearth_token_is_eog(m, t)) { why = "end of text"; break; }
        char piece[256];
        int k = hearth_token_to_piece(m, t, piece, sizeof piece);
        fwrite(piece, 1, (size_t)(k < (int)sizeof piece ? k : (int)sizeof piece), stdout);
        fflush(stdout);
        hist[n_hist++] = t;
        if (hearth_ctx_n_past(c) >= n_ctx) {
            if (o.no_shift) { why = "context full (--noshift)"; break; }
            int n_discard = (hearth_ctx_n_past(c) - n_keep) / 2;
            hearth_ctx_shift(c, n_keep, n_discard);
        }
        if (hearth_eval(c, &t, 1, 0, err, sizeof err)) { fprintf(stderr, "\nhearth: %s\n", err); goto done; }
    }
    fputc('\n', stdout);
    fprintf(stderr, "hearth: stopped: %s\n", why);
    rc = 0;
done:
    free(hist);
    free(toks);
    hearth_sampler_free(s);
    hearth_ctx_free(c);
    hearth_model_free(m);
    return rc;
}
