/* Text -> ids: BOS, then special tokens cut out of the text, then the merge step on each
 * piece of plain text between them. The order and the whitespace rules are the peer's,
 * because a prompt that tokenizes differently is a different prompt to the model. */
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct frag {
    size_t off, len;        /* plain text, when id < 0 */
    int32_t id;             /* a special token */
} frag;

typedef struct frag_list {
    frag *f;
    size_t n, cap;
} frag_list;

static int frag_add(frag_list *l, size_t off, size_t len, int32_t id) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        frag *p = realloc(l->f, c * sizeof *p);
        if (!p) return -1;
        l->f = p;
        l->cap = c;
    }
    l->f[l->n++] = (frag){ off, len, id };
    return 0;
}

static int is_space(char c) { return isspace((unsigned char)c) != 0; }

/* Splits every plain fragment of in at each occurrence of special token id, left to right,
 * into out. LSTRIP/RSTRIP eat the whitespace before/after the token; an emptied fragment
 * disappears. */
static int split_on(const tok_vocab *v, const char *text, int32_t id, const frag_list *in, frag_list *out) {
    const char *tt = tok_str(v, id);
    size_t tl = v->tok[id].len;
    int strip = v->tok[id].strip;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        frag f = in->f[i];
        if (f.id >= 0) { if (frag_add(out, 0, 0, f.id)) return -1; continue; }
        size_t pos = f.off, end = f.off + f.len;
        while (pos < end) {
            const char *m = memmem(text + pos, end - pos, tt, tl);
            if (!m) { if (frag_add(out, pos, end - pos, -1)) return -1; break; }
            size_t at = (size_t)(m - text), left = at - pos;
            if (strip & TOK_LSTRIP) while (left > 0 && is_space(text[pos + left - 1])) left--;
            if (left > 0 && frag_add(out, pos, left, -1)) return -1;
            if (frag_add(out, 0, 0, id)) return -1;
            pos = at + tl;
            if (strip & TOK_RSTRIP) while (pos < end && is_space(text[pos])) pos++;
        }
    }
    return 0;
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos, int parse_special,
               int32_t *out, int max) {
    tok_out o = { out, max > 0 ? max : 0, 0 };
    if (len > ((size_t)256 << 20)) return -1;
    if (add_bos && v->bos >= 0) tok_push(&o, v->bos);
    if (len == 0) return o.n;

    frag_list a = { 0 }, b = { 0 };
    spm_work w = { 0 };
    int rc = -1;
    if (frag_add(&a, 0, len, -1)) goto done;
    for (int s = 0; s < v->n_special; s++) {
        int32_t id = v->special[s];
        int t = v->tok[id].type;
        if (!parse_special && (t == TOK_CONTROL || t == TOK_UNKNOWN)) continue;
        if (v->tok[id].len == 0) continue;
        if (split_on(v, text, id, &a, &b)) goto done;
        frag_list tmp = a; a = b; b = tmp;
    }

    /* The space prefix goes before the text at the start and after every special token,
     * not only at the start: the peer's rule, so "<|user|>Hi" encodes "Hi" as " Hi". */
    int after_special = 1;
    for (size_t i = 0; i < a.n; i++) {
        if (a.f[i].id >= 0) { tok_push(&o, a.f[i].id); after_special = 1; continue; }
        if (spm_encode(v, text + a.f[i].off, a.f[i].len, v->add_space_prefix && after_special, &w, &o)) goto done;
        after_special = 0;
    }
    rc = o.n;
done:
    free(a.f);
    free(b.f);
    spm_work_free(&w);
    return rc;
}
