/* The llama (SentencePiece-style) vocabulary: loading it from GGUF metadata, the text -> id
 * map, and turning ids back into bytes. Encoding lives in tok_encode.c and tok_spm.c. */
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SPM_SPACE[3] = { '\xE2', '\x96', '\x81' }; /* U+2581 */

/* ---- text -> id map ---- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;             /* FNV-1a: short keys, no setup */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ull; }
    return (uint32_t)(h ^ (h >> 32));
}

int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (v->tok[id].len == n && memcmp(tok_str(v, id), s, n) == 0) return id;
        i = (i + 1) & v->mask;
    }
}

/* Ids are inserted in increasing order and a repeated text replaces the earlier id, which
 * is what the peer's std::unordered_map assignment does with duplicate token strings. */
static void map_insert(tok_vocab *v, int32_t id) {
    const char *s = tok_str(v, id);
    uint32_t n = v->tok[id].len;
    uint32_t i = hash_bytes(s, n) & v->mask;
    for (;;) {
        int32_t o = v->slots[i];
        if (o < 0 || (v->tok[o].len == n && memcmp(tok_str(v, o), s, n) == 0)) { v->slots[i] = id; return; }
        i = (i + 1) & v->mask;
    }
}

/* ---- loading ---- */

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int str_is(gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

/* How the other tokenizer.ggml.model values are known, so the refusal says what the file is. */
static const char *model_kind(gguf_str m) {
    if (str_is(m, "gpt2")) return " (byte-level BPE)";
    if (str_is(m, "bert")) return " (WordPiece)";
    if (str_is(m, "t5")) return " (Unigram)";
    if (str_is(m, "rwkv")) return " (RWKV)";
    if (str_is(m, "plamo2")) return " (PLaMo-2)";
    if (str_is(m, "none") || str_is(m, "no_vocab")) return " (no vocabulary)";
    return "";
}

static int is_int_type(int t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 ||
           t == GGUF_I32 || t == GGUF_U64 || t == GGUF_I64;
}

/* A special-token id from metadata. -1 / 0xFFFFFFFF is how converters write "no such
 * token"; the peer then keeps its default, and so do we. */
static int read_id(const gguf_file *f, const char *path, const char *key, int def, int n, int *out,
                   char *err, size_t errlen) {
    *out = def < n ? def : -1;
    if (!gguf_find_kv(f, key)) return 0;
    int64_t x;
    if (gguf_get_i64(f, key, &x)) {
        fail(err, errlen, "%s: %s is not an integer", path, key);
        return -1;
    }
    if (x == -1 || x == 0xFFFFFFFFll) return 0;
    if (x < 0 || x >= n) {
        fail(err, errlen, "%s: %s is %lld, outside the vocabulary of %d tokens", path, key, (long long)x, n);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int read_flag(const gguf_file *f, const char *path, const char *key, int def, int *out,
                     char *err, size_t errlen) {
    *out = def;
    if (!gguf_find_kv(f, key)) return 0;
    if (gguf_get_bool(f, key, out)) {
        fail(err, errlen, "%s: %s is not a bool", path, key);
        return -1;
    }
    return 0;
}

typedef struct copy_ctx {
    tok_vocab *v;
    size_t used;
    int sizing;             /* first pass: only add up lengths */
} copy_ctx;

/* The peer replaces an empty token by "[EMPTY_<id>]" so that every token has a text; we
 * do the same so that such ids keep their peer-visible spelling. */
static int copy_token(void *ud, uint64_t i, gguf_str s) {
    copy_ctx *c = ud;
    char empty[32];
    if (s.n == 0) {
        s.n = (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
        s.p = empty;
    }
    if (s.n > UINT32_MAX) return -1;
    if (!c->sizing) {
        tok_entry *t = &c->v->tok[i];
        t->off = c->used;
        t->len = (uint32_t)s.n;
        memcpy(c->v->text + c->used, s.p, s.n);
    }
    c->used += s.n;
    return 0;
}

static int ci_contains(gguf_str hay, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.n; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)hay.p[i + k]) == needle[k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

static void set_strip(tok_vocab *v, const char *text, int on) {
    int32_t id = tok_lookup(v, text, strlen(text));
    if (id < 0) return;
    if (on) v->tok[id].strip |= TOK_RSTRIP;
    else v->tok[id].strip &= (uint8_t)~TOK_RSTRIP;
}

typedef struct spec_key { uint32_t len; int32_t id; } spec_key;

static int spec_cmp(const void *a, const void *b) {
    const spec_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Special tokens are cut out longest first so that "<|end|>" cannot split "<|endoftext|>".
 * The peer sorts with an unstable sort; equal lengths here go by id, which only matters
 * for two specials of equal length that overlap in one text. */
static int build_specials(tok_vocab *v) {
    int cnt = 0;
    for (int i = 0; i < v->n; i++) {
        int t = v->tok[i].type;
        if (t == TOK_CONTROL || t == TOK_USER_DEFINED || t == TOK_UNKNOWN) cnt++;
    }
    spec_key *k = malloc((size_t)(cnt ? cnt : 1) * sizeof *k);
    v->special = malloc((size_t)(cnt ? cnt : 1) * sizeof *v->special);
    if (!k || !v->special) { free(k); return -1; }
    cnt = 0;
    for (int i = 0; i < v->n; i++) {
        int t = v->tok[i].type;
        if (t == TOK_CONTROL || t == TOK_USER_DEFINED || t == TOK_UNKNOWN) {
            k[cnt].len = v->tok[i].len;
            k[cnt].id = i;
            cnt++;
        }
    }
    qsort(k, (size_t)cnt, sizeof *k, spec_cmp);
    for (int i = 0; i < cnt; i++) v->special[i] = k[i].id;
    v->n_special = cnt;
    free(k);
    return 0;
}

tok_vocab *tok_load(const gguf_file *f, char *err, size_t errlen) {
    const char *path = f->path ? f->path : "(gguf in memory)";
    gguf_str model;
    if (!gguf_find_kv(f, "tokenizer.ggml.model")) {
        fail(err, errlen, "%s: tokenizer.ggml.model is missing, so the file has no vocabulary hearth can use", path);
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        fail(err, errlen, "%s: tokenizer.ggml.model is not a string", path);
        return NULL;
    }
    if (!str_is(model, "llama")) {
        int shown = model.n > 64 ? 64 : (int)model.n;
        fail(err, errlen, "%s: tokenizer.ggml.model is \"%.*s\"%s, which hearth does not support yet"
             " (only \"llama\", the SentencePiece-style vocabulary)", path, shown, model.p, model_kind(model));
        return NULL;
    }

    const gguf_kv *tk = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!tk) {
        fail(err, errlen, "%s: tokenizer.ggml.tokens is missing", path);
        return NULL;
    }
    if (tk->type != GGUF_ARR || tk->arr_type != GGUF_STR) {
        fail(err, errlen, "%s: tokenizer.ggml.tokens is not an array of strings", path);
        return NULL;
    }
    if (tk->arr_n == 0 || tk->arr_n > (uint64_t)INT32_MAX / 2) {
        fail(err, errlen, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)tk->arr_n);
        return NULL;
    }
    int n = (int)tk->arr_n;

    const gguf_kv *sk = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (sk && (sk->type != GGUF_ARR || !gguf_vtype_size(sk->arr_type) || sk->arr_type == GGUF_BOOL)) {
        fail(err, errlen, "%s: tokenizer.ggml.scores is not an array of numbers", path);
        return NULL;
    }
    if (sk && sk->arr_n != tk->arr_n) {
        fail(err, errlen, "%s: tokenizer.ggml.scores has %llu entries but tokenizer.ggml.tokens has %d",
             path, (unsigned long long)sk->arr_n, n);
        return NULL;
    }
    const gguf_kv *yk = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (yk && (yk->type != GGUF_ARR || !is_int_type(yk->arr_type))) {
        fail(err, errlen, "%s: tokenizer.ggml.token_type is not an array of integers", path);
        return NULL;
    }
    if (yk && yk->arr_n != tk->arr_n) {
        fail(err, errlen, "%s: tokenizer.ggml.token_type has %llu entries but tokenizer.ggml.tokens has %d",
             path, (unsigned long long)yk->arr_n, n);
        return NULL;
    }

    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) goto oom;
    v->n = n;
    v->tok = calloc((size_t)n, sizeof *v->tok);
    if (!v->tok) goto oom;

    copy_ctx c = { v, 0, 1 };
    if (gguf_arr_str_each(tk, copy_token, &c)) {
        fail(err, errlen, "%s: tokenizer.ggml.tokens has a token longer than 4 GiB", path);
        tok_free(v);
        return NULL;
    }
    v->text = malloc(c.used ? c.used : 1);
    if (!v->text) goto oom;
    c.used = 0;
    c.sizing = 0;
    gguf_arr_str_each(tk, copy_token, &c);

    for (int i = 0; i < n; i++) {
        v->tok[i].score = sk ? (float)gguf_arr_num(sk, (uint64_t)i) : 0.0f;
        if (yk) {
            double t = gguf_arr_num(yk, (uint64_t)i);
            v->tok[i].type = (t >= TOK_NORMAL && t <= TOK_BYTE) ? (uint8_t)t : 0;
        } else {
            v->tok[i].type = TOK_NORMAL;
        }
    }

    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u) cap <<= 1;
    v->mask = cap - 1;
    v->slots = malloc((size_t)cap * sizeof *v->slots);
    if (!v->slots) goto oom;
    memset(v->slots, 0xff, (size_t)cap * sizeof *v->slots);
    for (int i = 0; i < n; i++) map_insert(v, i);

    if (read_id(f, path, "tokenizer.ggml.bos_token_id", 1, n, &v->bos, err, errlen) ||
        read_id(f, path, "tokenizer.ggml.eos_token_id", 2, n, &v->eos, err, errlen) ||
        read_id(f, path, "tokenizer.ggml.unknown_token_id", 0, n, &v->unk, err, errlen) ||
        read_flag(f, path, "tokenizer.ggml.add_bos_token", 1, &v->add_bos, err, errlen) ||
        read_flag(f, path, "tokenizer.ggml.add_space_prefix", 1, &v->add_space_prefix, err, errlen)) {
        tok_free(v);
        return NULL;
    }

    if (build_specials(v)) goto oom;

    /* The peer's partitioning quirk for Phi-3, keyed on general.name: whitespace after its
     * special tokens is dropped, except after <unk>, <s> and <|endoftext|>. */
    gguf_str name;
    if (!gguf_get_str(f, "general.name", &name) && (ci_contains(name, "phi-3") || ci_contains(name, "phi3"))) {
        for (int i = 0; i < v->n_special; i++) v->tok[v->special[i]].strip |= TOK_RSTRIP;
        set_strip(v, "</s>", 1);
        set_strip(v, "<unk>", 0);
        set_strip(v, "<s>", 0);
        set_strip(v, "<|endoftext|>", 0);
    }

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        char one = (char)b;
        int32_t id = tok_lookup(v, hex, 6);
        if (id < 0) id = tok_lookup(v, &one, 1);
        if (id < 0) id = v->unk;
        v->byte_tok[b] = id;
    }
    return v;

oom:
    fail(err, errlen, "%s: out of memory while loading the vocabulary", path);
    tok_free(v);
    return NULL;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    free(v->tok);
    free(v->text);
    free(v->slots);
    free(v->special);
    free(v);
}

int tok_n_vocab(const tok_vocab *v) { return v->n; }
int tok_bos(const tok_vocab *v) { return v->bos; }
int tok_eos(const tok_vocab *v) { return v->eos; }
int tok_add_bos(const tok_vocab *v) { return v->add_bos; }

const char *tok_text(const tok_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n) { if (len) *len = 0; return NULL; }
    if (len) *len = v->tok[id].len;
    return tok_str(v, id);
}

/* ---- ids -> bytes ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies up to n bytes of s[0..len) starting after skip leading spaces, with U+2581 read as
 * a space when unescape is set; returns the full length. */
static size_t emit(const char *s, size_t len, int unescape, size_t skip, char *buf, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        size_t step = 1;
        if (unescape && len - i >= 3 && memcmp(s + i, SPM_SPACE, 3) == 0) { c = ' '; step = 3; }
        i += step;
        if (skip && c == ' ') { skip--; continue; }
        skip = 0;
        if (w < n) buf[w] = c;
        w++;
    }
    return w;
}

/* The peer's token_to_piece without "special": control and unknown tokens print nothing,
 * user-defined ones print their text as is, unused and undefined ones nothing. */
static size_t piece(const tok_vocab *v, int32_t id, size_t lstrip, char *buf, size_t n) {
    if (id < 0 || id >= v->n) return 0;
    const tok_entry *t = &v->tok[id];
    const char *s = tok_str(v, id);
    switch (t->type) {
    case TOK_NORMAL:
        return emit(s, t->len, 1, lstrip, buf, n);
    case TOK_USER_DEFINED:
        return emit(s, t->len, 0, lstrip, buf, n);
    case TOK_BYTE: {
        /* "<0xNN>"; anything else typed as a byte token is shown as its text */
        if (t->len < 4 || memcmp(s, "<0x", 3) != 0) return emit(s, t->len, 0, lstrip, buf, n);
        int b = 0;
        for (uint32_t i = 3; i < t->len && hexval(s[i]) >= 0; i++) b = (b * 16 + hexval(s[i])) & 0xff;
        char c = (char)b;
        return emit(&c, 1, 0, lstrip, buf, n);
    }
    default:
        return 0;
    }
}

int tok_piece(const tok_vocab *v, int32_t id, char *buf, size_t n) {
    return (int)piece(v, id, 0, buf, n);
}

size_t tok_decode(const tok_vocab *v, const int32_t *ids, size_t n_ids, char *buf, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n_ids; i++) {
        /* Only the very first token loses the space the encoder put in front, even when
         * that token is BOS and prints nothing: the peer's detokenize does the same. */
        size_t lstrip = (i == 0 && v->add_space_prefix) ? 1 : 0;
        w += piece(v, ids[i], lstrip, w < n ? buf + w : NULL, w < n ? n - w : 0);
    }
    return w;
}
