/* The peer's tokenizer test format, for `hearth tokenize --suite` and the tests. */
#ifndef HEARTH_TOK_SUITE_H
#define HEARTH_TOK_SUITE_H

#include <stddef.h>
#include <stdio.h>
#include "tokenizer/tok.h"

/* inp holds the cases of a ggml-vocab-*.gguf.inp file: each case's text followed by the
 * line "\n__ggml_vocab_test__\n" (the newlines around the marker belong to the marker, not
 * to the case). Writes one line per case in the .out format: " id" for every token, no
 * BOS, special tokens not parsed. Returns the number of cases, -1 on a write or memory
 * error. */
int tok_run_suite(const tok_vocab *v, const char *inp, size_t len, FILE *out);

#endif
