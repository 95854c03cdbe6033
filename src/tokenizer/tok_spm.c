/* The SentencePiece merge step, as the peer runs it for "llama" vocabularies.
 *
 * The text is cut into UTF-8 characters. Every adjacent pair whose concatenation is a
 * token goes into a priority queue keyed by that token's score; the best pair is merged
 * (ties: the leftmost), and the new symbol's pairs with its neighbours are queued. Queue
 * entries are never removed: an entry whose symbols have changed since it was queued is
 * recognised when popped (their lengths no longer add up to its size) and skipped. Each
 * merge adds at most two entries, so the work is O(n log n) in the text length.
 *
 * What remains is looked up whole; a symbol that is not a token (a character missing
 * from the vocabulary) becomes one byte token per byte. */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct spm_sym {
    size_t off;             /* into the escaped text; merged symbols stay contiguous */
    uint32_t n;             /* 0 once merged into its left neighbour */
    int32_t prev, next;
};

struct spm_bigram {
    int32_t left, right;
    float score;
    uint32_t size;          /* left.n + right.n when queued */
};

/* Byte length of the UTF-8 sequence a lead byte starts; a stray continuation byte counts
 * as a character of its own, as in the peer. */
static uint32_t utf8_len(unsigned char c) {
    static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[c >> 4];
}

static int better(const struct spm_bigram *a, const struct spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_work *w, struct spm_bigram b) {
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
}

static struct spm_bigram heap_pop(spm_work *w) {
    struct spm_bigram top = w->heap[0];
    struct spm_bigram last = w->heap[--w->heap_n];
    size_t n = w->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&w->heap[c + 1], &w->heap[c])) c++;
        if (!better(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_pair(const tok_vocab *v, spm_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const struct spm_sym *a = &w->sym[l], *b = &w->sym[r];
    uint32_t size = a->n + b->n;
    int32_t id = tok_lookup(v, w->esc + a->off, size);
    if (id < 0) return;
    struct spm_bigram g = { l, r, v->tok[id].score, size };
    heap_push(w, g);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int spm_encode(const tok_vocab *v, const char *s, size_t n, int prefix, spm_work *w, tok_out *o) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t len = n + 2 * spaces + (prefix ? 3 : 0);
    if (len == 0) return 0;

    if (grow((void **)&w->esc, &w->esc_cap, len, 1)) return -1;
    char *e = w->esc;
    size_t k = 0;
    if (prefix) { memcpy(e, "\xE2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') { memcpy(e + k, "\xE2\x96\x81", 3); k += 3; }
        else e[k++] = s[i];
    }

    /* at most one symbol per byte; n-1 initial pairs plus two per merge */
    if (grow((void **)&w->sym, &w->sym_cap, len, sizeof *w->sym)) return -1;
    if (grow((void **)&w->heap, &w->heap_cap, 3 * len, sizeof *w->heap)) return -1;

    int32_t ns = 0;
    for (size_t off = 0; off < len;) {
        uint32_t cl = utf8_len((unsigned char)e[off]);
        if (cl > len - off) cl = (uint32_t)(len - off);
        struct spm_sym *y = &w->sym[ns];
        y->off = off;
        y->n = cl;
        y->prev = ns - 1;
        off += cl;
        y->next = off == len ? -1 : ns + 1;
        ns++;
    }

    w->heap_n = 0;
    for (int32_t i = 1; i < ns; i++) try_pair(v, w, i - 1, i);

    while (w->heap_n) {
        struct spm_bigram g = heap_pop(w);
        struct spm_sym *l = &w->sym[g.left], *r = &w->sym[g.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != g.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = g.left;
        try_pair(v, w, l->prev, g.left);
        try_pair(v, w, g.left, l->next);
    }

    for (int32_t i = 0; i != -1; i = w->sym[i].next) {
        const struct spm_sym *y = &w->sym[i];
        int32_t id = tok_lookup(v, e + y->off, y->n);
        if (id >= 0) { tok_push(o, id); continue; }
        for (uint32_t j = 0; j < y->n; j++) {
            int32_t b = v->byte_tok[(unsigned char)e[y->off + j]];
            if (b >= 0) tok_push(o, b);
        }
    }
    return 0;
}

void spm_work_free(spm_work *w) {
    free(w->sym);
    free(w->heap);
    free(w->esc);
    memset(w, 0, sizeof *w);
}
