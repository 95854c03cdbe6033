/* GBNF grammars: bad grammars are refused with a message naming the problem, and sampling
 * under a grammar only ever produces text the grammar allows, up to its end. */
#include "testutil.h"
#include "hearth.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hearth_model *m;

static void bad(const char *g, const char *want) {
    char err[256] = "";
    hearth_grammar *h = hearth_grammar_new(m, g, err, sizeof err);
    CHECK(!h && strstr(err, want), "grammar '%s': expected an error with '%s', got '%s'", g, want, err);
    hearth_grammar_free(h);
}

/* Samples up to n tokens under grammar g (seeded, temperature 1) after "Once upon a time";
 * returns the text in out and whether the grammar finished. */
static int generate(const char *g, uint64_t seed, int n, char *out, size_t outn) {
    char err[256];
    hearth_grammar *h = hearth_grammar_new(m, g, err, sizeof err);
    CHECK(h != NULL, "grammar '%s': %s", g, err);
    if (!h) return -1;
    hearth_ctx_params p = hearth_ctx_default_params();
    p.n_ctx = 128;
    hearth_ctx *c;
    if (hearth_ctx_new(m, &p, &c, err, sizeof err)) { CHECK(0, "%s", err); hearth_grammar_free(h); return -1; }
    int32_t toks[16];
    int nt = hearth_tokenize(m, "Once upon a time", 16, 1, 0, toks, 16);
    hearth_eval(c, toks, nt, 0, err, sizeof err);
    hearth_sampling sp = hearth_sampling_default();
    sp.temp = 1.0f; sp.top_k = 0; sp.top_p = 1.0f; sp.min_p = 0.0f; sp.seed = seed;
    int V = hearth_model_get_info(m)->n_vocab;
    hearth_sampler *s = hearth_sampler_new(&sp, V);
    float *lg = malloc(sizeof(float) * (size_t)V);
    size_t len = 0;
    out[0] = 0;
    int done = 0;
    for (int i = 0; i < n && !done; i++) {
        memcpy(lg, hearth_ctx_last_logits(c), sizeof(float) * (size_t)V);
        int allowed = hearth_grammar_apply(h, lg);
        CHECK(allowed > 0, "grammar '%s': nothing allowed after '%s'", g, out);
        if (allowed <= 0) break;
        int32_t t = hearth_sampler_sample(s, lg, hearth_ctx_tokens(c), hearth_ctx_n_past(c));
        CHECK(isfinite(lg[t]), "grammar '%s': sampled a masked token %d", g, t);
        CHECK(hearth_grammar_accept(h, t) == 0, "grammar '%s': the grammar refused its own token %d", g, t);
        if (hearth_token_is_eog(m, t)) { done = 1; break; }
        char piece[64];
        int l = hearth_token_to_piece(m, t, piece, sizeof piece);
        if (l > 0 && len + (size_t)l < outn) { memcpy(out + len, piece, (size_t)l); len += (size_t)l; out[len] = 0; }
        if (hearth_grammar_done(h)) done = 1;
        else if (hearth_eval(c, &t, 1, 0, err, sizeof err)) { CHECK(0, "%s", err); break; }
    }
    free(lg);
    hearth_sampler_free(s);
    hearth_ctx_free(c);
    hearth_grammar_free(h);
    return done;
}

static int matches(const char *re, const char *s) {
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB)) return 0;
    int ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

int main(void) {
    char err[256];
    if (hearth_model_load(HEARTH_SOURCE_DIR "/models/stories260K.gguf", NULL, &m, err, sizeof err)) {
        CHECK(0, "%s", err);
        return test_done("test_grammar");
    }
    bad("root ::= foo", "'foo' is used but not defined");
    bad("start ::= \"a\"", "no 'root' rule");
    bad("root ::= \"abc", "unterminated string");
    bad("root ::= [abc", "unterminated character class");
    bad("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
    bad("root ::= \"\\q\"", "unknown escape");
    bad("root ::= (\"a\" | \"b\"", "expected ')'");
    bad("root ::= \"a\"{3,1}", "bad repetition count");
    bad("root ::= root \"a\"", "left recursion");
    bad("root ::= \"a\"\n\n  # comment\nx ::= ::=", "line 4");

    char out[512];
    /* a choice: exactly one of the words, then the grammar is done */
    for (uint64_t seed = 1; seed <= 4; seed++) {
        int done = generate("root ::= \" yes\" | \" no\" | \" maybe so\"", seed, 20, out, sizeof out);
        CHECK(done == 1 && (!strcmp(out, " yes") || !strcmp(out, " no") || !strcmp(out, " maybe so")), "choice: '%s' (done %d)", out, done);
    }
    /* repetition counts */
    int done = generate("root ::= \"ab\"{2,3} [.]", 5, 40, out, sizeof out);
    CHECK(done == 1 && (!strcmp(out, "abab.") || !strcmp(out, "ababab.")), "{2,3}: '%s'", out);
    /* a list of numbers: every prefix the model writes fits the grammar */
    const char *list = "root ::= \"[\" num (\", \" num)* \"]\"\nnum ::= [1-9] [0-9]{0,2}  # no leading zeros\n";
    for (uint64_t seed = 1; seed <= 6; seed++) {
        done = generate(list, seed, 60, out, sizeof out);
        const char *re = done ? "^\\[[1-9][0-9]{0,2}(, [1-9][0-9]{0,2})*\\]$" : "^\\[([1-9][0-9]{0,2}(, ?([1-9][0-9]{0,2})?)*)?$";
        CHECK(matches(re, out), "list (seed %llu, done %d): '%s'", (unsigned long long)seed, done, out);
        printf("list, seed %llu: %s%s\n", (unsigned long long)seed, out, done ? " (done)" : "");
    }
    /* character classes, negation, any-char and nesting */
    done = generate("root ::= w (\" \" w){2}\nw ::= [a-z]+ [^a-z .]? | \"(\" w \")\"", 3, 80, out, sizeof out);
    CHECK(done == 0 || matches("^[ -~]+$", out), "words: '%s'", out);
    CHECK(matches("^(\\(*[a-z]+)", out), "words start with a word: '%s'", out);
    printf("words: %s%s\n", out, done ? " (done)" : "");

    /* garbage made of grammar characters: a grammar or a message, never a crash or leak */
    const char alphabet[] = "root ::= \"ab\\[]^-()|*+?{},.#\n 0123x";
    uint64_t r = 12345;
    int ok = 0, refused = 0;
    for (int i = 0; i < 3000; i++) {
        char g[64];
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = 10 + (int)((r >> 33) % 40);
        memcpy(g, "root ::= ", 9);
        for (int k = 9; k < n; k++) { r = r * 6364136223846793005ULL + 1442695040888963407ULL; g[k] = alphabet[(r >> 33) % (sizeof alphabet - 1)]; }
        g[n] = 0;
        err[0] = 0;
        hearth_grammar *h = hearth_grammar_new(m, g, err, sizeof err);
        if (h) ok++; else { refused++; CHECK(!strncmp(err, "grammar: ", 9), "no message for '%s': '%s'", g, err); }
        hearth_grammar_free(h);
    }
    printf("random grammars: %d parsed, %d refused\n", ok, refused);
    CHECK(ok > 0 && refused > 0, "random grammars: %d parsed, %d refused", ok, refused);

    hearth_model_free(m);
    return test_done("test_grammar");
}
