/* tokenizer internals shared by the files of this module: the vocabulary layout, the
 * text -> id lookup, and the SentencePiece merge step. Nothing outside src/tokenizer/
 * includes this. */
#ifndef HEARTH_TOK_INTERNAL_H
#define HEARTH_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tokenizer/tok.h"

/* Partitioning flags the peer attaches to some special tokens: whitespace next to the
 * token is swallowed when the text is split around it. */
enum { TOK_LSTRIP = 1, TOK_RSTRIP = 2 };

typedef struct tok_entry {
    size_t  off;        /* into tok_vocab.text */
    uint32_t len;
    float   score;
    uint8_t type;       /* TOK_NORMAL..TOK_BYTE, 0 for a type the file does not define */
    uint8_t strip;      /* TOK_LSTRIP | TOK_RSTRIP */
} tok_entry;

struct tok_vocab {
    int n;
    tok_entry *tok;
    char *text;             /* every token's bytes, back to back (the GGUF may be closed) */

    /* open addressing, power-of-two size, holds ids; -1 = empty */
    int32_t *slots;
    uint32_t mask;

    int bos, eos, unk;      /* -1 when absent */
    int add_bos, add_space_prefix;

    /* Control, user-defined and unknown tokens, longest text first: the order in which
     * the peer cuts them out of the text before the merge step runs. */
    int32_t *special;
    int n_special;

    /* What a byte with no token of its own becomes: <0xNN>, else the byte as a one-char
     * token, else unk; -1 if none of them exists (the byte is then dropped). */
    int32_t byte_tok[256];
};

/* Id of the token whose text is exactly s[0..n), -1 if none. When a vocabulary holds the
 * same text twice, the higher id wins, as in the peer's map. */
int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n);

static inline const char *tok_str(const tok_vocab *v, int32_t id) { return v->text + v->tok[id].off; }

/* Token sink: counts every token, stores only while there is room, so the caller can
 * learn the size it needs from one call. */
typedef struct tok_out {
    int32_t *ids;
    int max, n;
} tok_out;

static inline void tok_push(tok_out *o, int32_t id) {
    if (o->n < o->max) o->ids[o->n] = id;
    o->n++;
}

/* Reusable buffers of the merge step, so that a text with many special tokens does not
 * allocate once per fragment. */
typedef struct spm_work {
    struct spm_sym *sym; size_t sym_cap;
    struct spm_bigram *heap; size_t heap_cap, heap_n;
    char *esc; size_t esc_cap;
} spm_work;

/* Encodes one raw fragment (no special tokens inside): spaces become U+2581, a leading
 * one is added when prefix is set, then the highest-scoring adjacent pair is merged until
 * none is a token. Returns 0, or -1 when out of memory. */
int spm_encode(const tok_vocab *v, const char *s, size_t n, int prefix, spm_work *w, tok_out *o);
void spm_work_free(spm_work *w);

#endif
