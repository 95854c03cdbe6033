/* tokenizer: text <-> token ids, exactly as the peer does it.
 * For now the llama (SentencePiece-style) vocabulary; byte-level BPE vocabularies are
 * refused with a clear message. */
#ifndef HEARTH_TOK_H
#define HEARTH_TOK_H

#include <stddef.h>
#include <stdint.h>
#include "gguf/gguf.h"

typedef struct tok_vocab tok_vocab;

/* token types as stored in tokenizer.ggml.token_type */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* Build from a validated GGUF (tokenizer.ggml.* keys). NULL with a message on failure
 * (missing keys, arrays of different lengths, an unsupported tokenizer.ggml.model). */
tok_vocab *tok_load(const gguf_file *f, char *err, size_t errlen);
void tok_free(tok_vocab *v);

int tok_n_vocab(const tok_vocab *v);
int tok_bos(const tok_vocab *v);   /* -1 if none */
int tok_eos(const tok_vocab *v);   /* -1 if none */
int tok_add_bos(const tok_vocab *v); /* tokenizer.ggml.add_bos_token, default 1 for llama */

/* Encode len bytes of text. Returns the number of tokens; if that is more than max, only
 * max are written and the caller may retry with a bigger buffer. parse_special: text
 * matching control/user-defined token strings becomes those tokens. (As in the peer,
 * user-defined token strings are matched even without parse_special.) -1 only when
 * memory runs out or the text is over 256 MiB. */
int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos, int parse_special,
               int32_t *out, int max);

/* The bytes one token stands for when detokenizing (SentencePiece's U+2581 becomes a space,
 * byte tokens <0xNN> become the byte, control and unknown tokens become nothing, as the
 * peer's token_to_piece without "special" does). Returns the length;
 * writes at most n bytes (no NUL). Out-of-range ids give 0. */
int tok_piece(const tok_vocab *v, int32_t id, char *buf, size_t n);
/* Detokenize a sequence as the peer's llama_detokenize does (specials not rendered): the
 * pieces back to back, the first token's leading space dropped when the vocabulary adds
 * one while encoding, so decode(encode(x)) == x. Returns the full length; writes at most
 * n bytes (no NUL). */
size_t tok_decode(const tok_vocab *v, const int32_t *ids, size_t n_ids, char *buf, size_t n);
/* The raw stored text of a token (for inspection / special-token matching). */
const char *tok_text(const tok_vocab *v, int32_t id, size_t *len);

#endif
