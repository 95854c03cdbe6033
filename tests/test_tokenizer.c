/* The llama tokenizer against the peer: its tokenizer suites (byte-exact .out), the token
 * streams recorded in the reference logit files, round trips, special tokens, refusal of
 * vocabularies hearth does not support, and malformed metadata. */
#include "testutil.h"
#include "gguf/gguf.h"
#include "tokenizer/tok.h"
#include "tokenizer/tok_suite.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static tok_vocab *load_path(const char *path, char *err, size_t errlen) {
    gguf_file *f = gguf_open(path, err, errlen);
    if (!f) return NULL;
    tok_vocab *v = tok_load(f, err, errlen);
    gguf_close(f);          /* the vocabulary must not keep pointers into the file */
    return v;
}

static tok_vocab *load_vocab(const char *name) {
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "tokenizer/%s", name);
    tok_vocab *v = load_path(test_data(rel), err, sizeof err);
    CHECK(v != NULL, "%s: %s", name, err);
    return v;
}

/* encode into a malloc'd array; *n gets the count */
static int32_t *enc(const tok_vocab *v, const char *s, size_t len, int bos, int special, int *n) {
    int k = tok_encode(v, s, len, bos, special, NULL, 0);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(k > 0 ? k : 1));
    *n = k < 0 ? k : tok_encode(v, s, len, bos, special, ids, k);
    return ids;
}

static int ids_are(const int32_t *ids, int n, const int32_t *want, int nw) {
    return n == nw && (n == 0 || memcmp(ids, want, sizeof(int32_t) * (size_t)n) == 0);
}

static void show_line(const char *what, const char *s, size_t n) {
    const char *e = memchr(s, '\n', n);
    fprintf(stderr, "  %s:%.*s\n", what, (int)(e ? (size_t)(e - s) : n), s);
}

static void check_suite(const char *name) {
    tok_vocab *v = load_vocab(name);
    if (!v) return;
    char rel[256];
    size_t ni = 0, no = 0;
    snprintf(rel, sizeof rel, "tokenizer/%s.inp", name);
    char *inp = test_read_file(test_data(rel), &ni);
    snprintf(rel, sizeof rel, "tokenizer/%s.out", name);
    char *want = test_read_file(test_data(rel), &no);
    CHECK(inp && want, "%s: cannot read the .inp/.out files", name);
    if (inp && want) {
        char *got = NULL;
        size_t ng = 0;
        FILE *m = open_memstream(&got, &ng);
        int cases = tok_run_suite(v, inp, ni, m);
        fclose(m);
        CHECK(cases == 46, "%s: %d cases, expected 46", name, cases);
        CHECK(ng == no && memcmp(got, want, no) == 0, "%s: output differs from the peer's .out", name);
        /* name the first case that differs */
        size_t a = 0, b = 0;
        for (int line = 0; a < ng && b < no; line++) {
            const char *ea = memchr(got + a, '\n', ng - a), *eb = memchr(want + b, '\n', no - b);
            size_t la = ea ? (size_t)(ea - got - a) : ng - a, lb = eb ? (size_t)(eb - want - b) : no - b;
            if (la != lb || memcmp(got + a, want + b, la) != 0) {
                fprintf(stderr, "%s: case %d differs\n", name, line);
                show_line("want", want + b, no - b);
                show_line("got ", got + a, ng - a);
                break;
            }
            a += la + 1;
            b += lb + 1;
        }
        printf("%s: suite %s (%d cases)\n", name, ng == no && !memcmp(got, want, no) ? "matches" : "DIFFERS", cases);
        free(got);
    }
    free(inp);
    free(want);
    tok_free(v);
}

/* A reference logit file starts with the peer's token stream for the text (BOS added,
 * specials not parsed): a second, independent check of the tokenizer on real prose. */
static void check_hlog(const char *model, const char *text, const char *hlog) {
    char err[512] = "", path[1024];
    snprintf(path, sizeof path, "%s/%s", HEARTH_SOURCE_DIR, model);
    tok_vocab *v = load_path(path, err, sizeof err);
    CHECK(v != NULL, "%s: %s", model, err);
    size_t nt = 0, nh = 0;
    char *txt = test_read_file(test_data(text), &nt);
    unsigned char *h = test_read_file(test_data(hlog), &nh);
    CHECK(txt && h && nh >= 20 && memcmp(h, "HLOG", 4) == 0, "cannot read %s / %s", text, hlog);
    if (v && txt && h && nh >= 20) {
        uint32_t n_tok, n_prompt;
        memcpy(&n_tok, h + 8, 4);
        memcpy(&n_prompt, h + 16, 4);
        int n = 0;
        int32_t *ids = enc(v, txt, nt, 1, 0, &n);
        int32_t *want = malloc(sizeof(int32_t) * (n_prompt ? n_prompt : 1));
        int ok = n_prompt <= n_tok && 20 + 4 * (size_t)n_tok <= nh;
        if (ok) memcpy(want, h + 20, 4 * (size_t)n_prompt);
        CHECK(ok && ids_are(ids, n, want, (int)n_prompt), "%s on %s: %d tokens, the peer has %u",
              model, text, n, n_prompt);
        for (int i = 0; ok && i < n && i < (int)n_prompt; i++)
            if (ids[i] != want[i]) { fprintf(stderr, "  first difference at %d: %d, peer %d\n", i, ids[i], want[i]); break; }
        printf("%s on %s: %d tokens, %s the peer's %u\n", model, text, n,
               ids_are(ids, n, want, (int)n_prompt) ? "same as" : "NOT", n_prompt);
        free(ids);
        free(want);
    }
    free(txt);
    free(h);
    tok_free(v);
}

static void check_round_trip(const tok_vocab *v, const char *name) {
    static const char *texts[] = {
        "Hello world", " Hello world", "  two leading spaces", "trailing  ", "\ttab\nnewline\n\n",
        "ied 4 \xC2\xBD months", "\xC3\x84pfel", "emoji \xF0\x9F\xA6\x99 and \xE2\x9C\x85", "3.14159 2026-11-25",
        "\xE1\x9E\x80\xE1\x9E\xB6\xE1\x9E\x93\xE1\x9F\x8B", "<s> is not parsed", "a", " ", "\n", "!!!!!!",
        "\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE \xD0\xBD\xD0\xB0 \xD0\x91\xD1\x8A\xD0\xBB\xD0\xB3\xD0\xB0\xD1\x80\xD1\x81\xD0\xBA\xD0\xB8",
        "def f(x):\n    return x + 1\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        const char *t = texts[i];
        size_t len = strlen(t);
        int n = 0;
        int32_t *ids = enc(v, t, len, 0, 0, &n);
        char buf[512];
        size_t d = tok_decode(v, ids, (size_t)(n > 0 ? n : 0), buf, sizeof buf);
        CHECK(d == len && memcmp(buf, t, len) == 0, "%s: round trip of \"%s\" gave \"%.*s\"", name, t,
              (int)(d < sizeof buf ? d : sizeof buf), buf);
        /* with BOS in front the peer keeps the encoder's space: BOS takes the strip */
        int nb = 0;
        int32_t *idb = enc(v, t, len, 1, 0, &nb);
        CHECK(nb == n + 1 && idb[0] == tok_bos(v) && !memcmp(idb + 1, ids, sizeof(int32_t) * (size_t)n),
              "%s: BOS + \"%s\"", name, t);
        d = tok_decode(v, idb, (size_t)nb, buf, sizeof buf);
        CHECK(d == len + 1 && buf[0] == ' ' && memcmp(buf + 1, t, len) == 0, "%s: decode with BOS of \"%s\"", name, t);
        free(ids);
        free(idb);
    }
}

static void check_pieces(const tok_vocab *v) {
    char buf[64];
    CHECK(tok_n_vocab(v) == 32000, "n_vocab %d", tok_n_vocab(v));
    CHECK(tok_bos(v) == 1 && tok_eos(v) == 2 && tok_add_bos(v) == 1, "bos %d eos %d", tok_bos(v), tok_eos(v));
    int n = tok_piece(v, 15043, buf, sizeof buf);          /* "▁Hello" */
    CHECK(n == 6 && !memcmp(buf, " Hello", 6), "piece 15043: %.*s", n, buf);
    n = tok_piece(v, 13, buf, sizeof buf);                  /* <0x0A> */
    CHECK(n == 1 && buf[0] == '\n', "piece of <0x0A>: %d", n);
    CHECK(tok_piece(v, 1, buf, sizeof buf) == 0, "control <s> prints nothing");
    CHECK(tok_piece(v, 0, buf, sizeof buf) == 0, "unknown <unk> prints nothing");
    CHECK(tok_piece(v, -1, buf, sizeof buf) == 0 && tok_piece(v, 32000, buf, sizeof buf) == 0, "out of range");
    n = tok_piece(v, 15043, buf, 3);                        /* truncated: full length back */
    CHECK(n == 6 && !memcmp(buf, " He", 3), "truncated piece");
    size_t len = 0;
    const char *t = tok_text(v, 15043, &len);
    CHECK(t && len == 8 && !memcmp(t, "\xE2\x96\x81Hello", 8), "tok_text 15043");
    CHECK(tok_text(v, 32000, &len) == NULL, "tok_text out of range");

    /* a short buffer: the count comes back, only max ids are written */
    int32_t two[2] = { -7, -7 }, guard[3] = { -7, -7, -7 };
    int k = tok_encode(v, "Hello world", 11, 1, 0, two, 1);
    CHECK(k == 3 && two[0] == 1 && two[1] == -7, "short buffer: %d", k);
    CHECK(tok_encode(v, "", 0, 0, 0, guard, 3) == 0, "empty text");
    CHECK(tok_encode(v, "", 0, 1, 0, guard, 3) == 1 && guard[0] == 1, "empty text with BOS");

    /* parse_special: "<s>" becomes BOS only when asked; plain text after it gets the
     * space prefix again */
    int nn = 0;
    int32_t *ids = enc(v, "<s>Hello", 8, 0, 1, &nn);
    const int32_t want1[] = { 1, 15043 };
    CHECK(ids_are(ids, nn, want1, 2), "<s>Hello with specials: %d tokens", nn);
    free(ids);
    ids = enc(v, "<s>Hello", 8, 0, 0, &nn);
    CHECK(nn > 2 && ids[0] != 1, "<s> must not be parsed without parse_special");
    free(ids);

    /* invalid UTF-8 must not trip anything; bytes fall back to byte tokens */
    ids = enc(v, "\xFF\xFE\x80 x \xF0\x9F", 9, 1, 1, &nn);
    CHECK(nn > 3, "invalid UTF-8: %d", nn);
    free(ids);
}

static void check_phi3_specials(void) {
    tok_vocab *v = load_vocab("ggml-vocab-phi-3.gguf");
    if (!v) return;
    int n = 0;
    int32_t *ids = enc(v, "<|user|>", 8, 0, 1, &n);
    const int32_t user[] = { 32010 };
    CHECK(ids_are(ids, n, user, 1), "<|user|> with specials: %d tokens", n);
    free(ids);
    ids = enc(v, "<|user|>", 8, 0, 0, &n);
    CHECK(n > 1, "<|user|> without specials is text");
    free(ids);
    /* </s> is user-defined in this vocabulary: the peer cuts it out even without
     * parse_special, and (Phi-3 rule) eats the whitespace after it */
    int m = 0;
    ids = enc(v, "</s>", 4, 0, 0, &n);
    const int32_t eos[] = { 2 };
    CHECK(ids_are(ids, n, eos, 1), "</s> is user-defined: %d tokens", n);
    free(ids);
    ids = enc(v, "a</s>  \n b", 10, 0, 0, &n);
    int32_t *ref = enc(v, "a", 1, 0, 0, &m);
    int32_t *tail = NULL;
    int t = 0;
    tail = enc(v, "b", 1, 0, 0, &t);
    CHECK(n == m + 1 + t && !memcmp(ids, ref, 4 * (size_t)m) && ids[m] == 2 && !memcmp(ids + m + 1, tail, 4 * (size_t)t),
          "a</s>  \\n b: rstrip and the space prefix after a special");
    free(ids);
    free(ref);
    free(tail);
    /* the longer special wins where two overlap */
    ids = enc(v, "<|endoftext|><|end|>", 20, 0, 1, &n);
    const int32_t eot[] = { 32000, 32007 };
    CHECK(ids_are(ids, n, eot, 2), "<|endoftext|><|end|>: %d tokens", n);
    free(ids);
    tok_free(v);
}

static void check_refusals(void) {
    char err[512] = "";
    tok_vocab *v = load_path(test_data("tokenizer/ggml-vocab-gpt-2.gguf"), err, sizeof err);
    CHECK(v == NULL, "gpt-2 vocab must be refused");
    CHECK(strstr(err, "ggml-vocab-gpt-2.gguf: tokenizer.ggml.model is \"gpt2\" (byte-level BPE), "
                      "which hearth does not support yet") != NULL, "message: %s", err);
    printf("gpt-2: %s\n", err);
    tok_free(v);
}

/* ---- malformed metadata, through the writer ---- */

enum { BAD_NONE, BAD_SCORES_LEN, BAD_TYPES_LEN, BAD_BOS, BAD_NO_TOKENS, BAD_MODEL, BAD_NO_MODEL,
       BAD_TOKENS_TYPE, BAD_MODEL_TYPE };

static const char *const mini_tok[] = { "<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "ab", "ba",
                                        "\342\226\201a", "<tag>", "<ctl>", "<0x62>" };
static const float mini_score[] = { 0, 0, 0, -5, -1, -1, -2, -2, -3, 0, 0, 0 };
static const int32_t mini_type[] = { 2, 3, 3, 1, 1, 1, 1, 1, 1, 4, 3, 6, 1 }; /* one spare for BAD_TYPES_LEN */
#define MINI_N 12

static tok_vocab *mini(int bad, const float *scores, int space_prefix, char *err, size_t errlen) {
    gguf_writer *w = gguf_writer_new();
    if (bad == BAD_MODEL) gguf_w_str(w, "tokenizer.ggml.model", "bert");
    else if (bad == BAD_MODEL_TYPE) gguf_w_u32(w, "tokenizer.ggml.model", 7);
    else if (bad != BAD_NO_MODEL) gguf_w_str(w, "tokenizer.ggml.model", "llama");
    if (bad == BAD_TOKENS_TYPE) gguf_w_arr_f32(w, "tokenizer.ggml.tokens", mini_score, MINI_N);
    else if (bad != BAD_NO_TOKENS) gguf_w_arr_str(w, "tokenizer.ggml.tokens", mini_tok, MINI_N);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores ? scores : mini_score, bad == BAD_SCORES_LEN ? MINI_N - 1 : MINI_N);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", mini_type, bad == BAD_TYPES_LEN ? MINI_N + 1 : MINI_N);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", bad == BAD_BOS ? 99 : 1);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 0xFFFFFFFFu);     /* "none": default 2 stays */
    gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix);
    uint8_t *buf = NULL;
    size_t size = 0;
    tok_vocab *v = NULL;
    if (gguf_writer_to_buffer(w, &buf, &size) == 0) {
        gguf_file *f = gguf_open_buffer("mini.gguf", buf, size, err, errlen);
        if (f) { v = tok_load(f, err, errlen); gguf_close(f); }
    } else {
        snprintf(err, errlen, "writer failed");
    }
    free(buf);
    gguf_writer_free(w);
    return v;
}

static void check_bad(int bad, const char *want) {
    char err[512] = "";
    tok_vocab *v = mini(bad, NULL, 1, err, sizeof err);
    CHECK(v == NULL, "bad metadata %d accepted", bad);
    CHECK(strstr(err, "mini.gguf") && strstr(err, want), "bad metadata %d: message \"%s\" lacks \"%s\"", bad, err, want);
    tok_free(v);
}

static void check_mini(void) {
    char err[512] = "";
    int n = 0;
    tok_vocab *v = mini(BAD_NONE, NULL, 0, err, sizeof err);
    CHECK(v != NULL, "mini vocab: %s", err);
    if (!v) return;
    CHECK(tok_eos(v) == 2, "eos 0xFFFFFFFF keeps the default: %d", tok_eos(v));
    /* equal scores: the leftmost pair merges first */
    int32_t *ids = enc(v, "aba", 3, 0, 0, &n);
    const int32_t left[] = { 6, 4 };
    CHECK(ids_are(ids, n, left, 2), "aba with tied scores: %d tokens, first %d", n, n ? ids[0] : -1);
    free(ids);
    /* a character with no token falls back to its byte token, or to <unk> */
    ids = enc(v, "c", 1, 0, 0, &n);
    const int32_t unk[] = { 0 };
    CHECK(ids_are(ids, n, unk, 1), "c -> <unk>: %d", n ? ids[0] : -1);
    free(ids);
    /* user-defined tokens are cut out without parse_special, control ones only with it */
    ids = enc(v, "a<tag>b<ctl>", 12, 0, 0, &n);
    CHECK(n > 3 && ids[0] == 4 && ids[1] == 9, "a<tag>b<ctl> without specials");
    free(ids);
    ids = enc(v, "a<tag>b<ctl>", 12, 0, 1, &n);
    const int32_t sp[] = { 4, 9, 5, 10 };
    CHECK(ids_are(ids, n, sp, 4), "a<tag>b<ctl> with specials: %d tokens", n);
    free(ids);
    char buf[16];
    CHECK(tok_piece(v, 9, buf, sizeof buf) == 5 && !memcmp(buf, "<tag>", 5), "user-defined piece is its text");
    CHECK(tok_piece(v, 10, buf, sizeof buf) == 0, "control piece is empty");
    CHECK(tok_piece(v, 11, buf, sizeof buf) == 1 && buf[0] == 'b', "byte piece");
    tok_free(v);

    /* a higher score wins over position */
    float s2[MINI_N];
    memcpy(s2, mini_score, sizeof s2);
    s2[7] = -1.5f;                                  /* "ba" above "ab" */
    v = mini(BAD_NONE, s2, 1, err, sizeof err);
    CHECK(v != NULL, "mini vocab 2: %s", err);
    if (!v) return;
    ids = enc(v, "aba", 3, 0, 0, &n);                /* "▁aba": ▁a + ba */
    const int32_t best[] = { 8, 7 };
    CHECK(ids_are(ids, n, best, 2), "aba with ba preferred: %d tokens", n);
    free(ids);
    tok_free(v);

    check_bad(BAD_SCORES_LEN, "tokenizer.ggml.scores has 11 entries but tokenizer.ggml.tokens has 12");
    check_bad(BAD_TYPES_LEN, "tokenizer.ggml.token_type has 13 entries");
    check_bad(BAD_BOS, "tokenizer.ggml.bos_token_id is 99, outside the vocabulary of 12 tokens");
    check_bad(BAD_NO_TOKENS, "tokenizer.ggml.tokens is missing");
    check_bad(BAD_TOKENS_TYPE, "tokenizer.ggml.tokens is not an array of strings");
    check_bad(BAD_MODEL, "tokenizer.ggml.model is \"bert\" (WordPiece), which hearth does not support yet");
    check_bad(BAD_NO_MODEL, "tokenizer.ggml.model is missing");
    check_bad(BAD_MODEL_TYPE, "tokenizer.ggml.model is not a string");
}

/* A quadratic merge loop would take minutes here; the queue takes well under a second. */
static void check_speed(const tok_vocab *v) {
    size_t len = 1 << 20;
    char *s = malloc(len);
    static const char unit[] = "The quick brown fox jumps over the lazy dog; \xE6\x88\x91\xE6\x83\xB3 3.14159\n";
    for (size_t i = 0; i < len; i++) s[i] = unit[i % (sizeof unit - 1)];
    s[len - 1] = 'x';           /* no cut UTF-8 at the end */
    clock_t t0 = clock();
    int n = tok_encode(v, s, len, 1, 1, NULL, 0);
    double sec = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(n > 100000 && sec < 10.0, "1 MiB of text: %d tokens in %.2f s", n, sec);
    memset(s, 'a', len);
    t0 = clock();
    int m = tok_encode(v, s, len, 0, 0, NULL, 0);
    double sec2 = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(m > 0 && sec2 < 10.0, "1 MiB of 'a': %d tokens in %.2f s", m, sec2);
    printf("speed: 1 MiB prose %d tokens %.3f s; 1 MiB 'a' %d tokens %.3f s\n", n, sec, m, sec2);
    free(s);
}

int main(void) {
    check_suite("ggml-vocab-llama-spm.gguf");
    check_suite("ggml-vocab-phi-3.gguf");

    check_hlog("models/stories260K.gguf", "ref/text/stories.txt", "ref/stories260K.kv-f16.hlog");
    check_hlog("models/stories260K.gguf", "ref/text/once.txt", "ref/stories260K.greedy.hlog");
    check_hlog("testdata/models/synth-a-q8_0.gguf", "ref/text/prose.txt", "ref/synth-a-q8_0.kv-f16.hlog");
    check_hlog("testdata/models/synth-zoo-f16.gguf", "ref/text/short.txt", "ref/synth-zoo-f16.kv-f16.hlog");

    tok_vocab *v = load_vocab("ggml-vocab-llama-spm.gguf");
    if (v) {
        check_pieces(v);
        check_round_trip(v, "llama-spm");
        check_speed(v);
        tok_free(v);
    }
    v = load_vocab("ggml-vocab-phi-3.gguf");
    if (v) { check_round_trip(v, "phi-3"); tok_free(v); }
    check_phi3_specials();
    check_refusals();
    check_mini();
    return test_done("test_tokenizer");
}
