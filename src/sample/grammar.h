/* GBNF grammars: parse once, then mask each step's logits to the tokens the grammar can
 * take next and move past the chosen one (grammar.c says how). */
#ifndef HEARTH_GRAMMAR_H
#define HEARTH_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct grammar grammar;
/* A token's bytes into buf (at most n); returns the length. */
typedef int (*grammar_piece_fn)(void *ud, int32_t tok, char *buf, size_t n);

/* NULL with a message naming the problem (line and text) when the grammar is bad. */
grammar *grammar_new(const char *text, int n_vocab, int32_t eos, grammar_piece_fn piece, void *ud,
                     char *err, size_t errlen);
void grammar_free(grammar *g);
/* Sets the logits of tokens the grammar cannot take next to -inf; returns how many remain. */
int  grammar_apply(grammar *g, float *logits);
/* Moves past a token: 0, or -1 when the grammar cannot take it (the state is then spent). */
int  grammar_accept(grammar *g, int32_t tok);
/* 1 when the grammar is complete and nothing more can follow. */
int  grammar_done(const grammar *g);

#endif
