/* hearth logits: teacher-force a text (BOS added), then greedy-decode N tokens, writing
 * every position's logits in the HLOG format (see testdata/ref/README.md). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

int cmd_logits(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 2;
    if (!o.text || !o.out) { fprintf(stderr, "hearth logits: needs --text FILE and -o OUT.hlog\n"); return 2; }
    if (!o.gen_set) o.n_gen = 0;
    size_t len;
    char *text = cli_read_file(o.text, &len);
    if (!text) return 1;
    hearth_model *m = NULL;
    hearth_ctx *c = NULL;
    o.cp.n_ctx = 0; /* sized below from the text */
    if (cli_load(&o, &m, NULL)) { free(text); return 1; }
    int n_prompt;
    int32_t *ptoks = cli_tokenize(m, text, len, 1, &n_prompt);
    free(text);
    const int V = hearth_model_get_info(m)->n_vocab;
    int n_tok = n_prompt + o.n_gen;
    int32_t *toks = ptoks ? realloc(ptoks, sizeof(int32_t) * (size_t)(n_tok > 0 ? n_tok : 1)) : NULL;
    int rc = 1;
    char err[512];
    hearth_ctx_params cp = o.cp;
    cp.n_ctx = n_tok;
    FILE *f = NULL;
    if (!toks) { fprintf(stderr, "hearth: out of memory\n"); free(ptoks); goto done; }
    if (n_prompt < 1) { fprintf(stderr, "hearth logits: the text gives no tokens\n"); goto done; }
    if (hearth_ctx_new(m, &cp, &c, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); goto done; }
    f = fopen(o.out, "wb");
    if (!f) { fprintf(stderr, "hearth: %s: cannot create\n", o.out); goto done; }
    uint32_t hdr[4] = { 1, (uint32_t)n_tok, (uint32_t)V, (uint32_t)n_prompt };
    fwrite("HLOG", 1, 4, f);
    fwrite(hdr, 4, 4, f);
    /* token ids are written after the continuation is known: reserve their place */
    long tok_off = ftell(f);
    fwrite(toks, 4, (size_t)n_prompt, f);
    for (int i = n_prompt; i < n_tok; i++) { int32_t z = 0; fwrite(&z, 4, 1, f); }
    if (hearth_eval(c, toks, n_prompt, 1, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); goto done; }
    for (int i = 0; i < n_prompt; i++) fwrite(hearth_ctx_logits(c, i), sizeof(float), (size_t)V, f);
    const float *last = hearth_ctx_logits(c, n_prompt - 1);
    for (int i = n_prompt; i < n_tok; i++) {
        toks[i] = argmax(last, V);
        if (hearth_eval(c, &toks[i], 1, 0, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); goto done; }
        last = hearth_ctx_logits(c, 0);
        fwrite(last, sizeof(float), (size_t)V, f);
    }
    fseek(f, tok_off, SEEK_SET);
    fwrite(toks, 4, (size_t)n_tok, f);
    rc = ferror(f) ? 1 : 0;
    if (rc) fprintf(stderr, "hearth: %s: write error\n", o.out);
done:
    if (f && fclose(f) != 0 && rc == 0) { fprintf(stderr, "hearth: %s: write error\n", o.out); rc = 1; }
    free(toks);
    hearth_ctx_free(c);
    hearth_model_free(m);
    return rc;
}
