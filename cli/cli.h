/* The hearth command: shared option parsing for the subcommands that make a context. */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include "hearth.h"

typedef struct cli_opts {
    const char *model, *prompt, *text, *out, *suite, *file, *cache_types;
    int n_gen, n_threads, n_keep, no_shift, gen_set;
    int n_gpu_layers;   /* --gpulayers / -ngl (-1: all) */
    float tensor_split[16];
    int n_tensor_split; /* --tensor_split / -ts (0: by free memory) */
    hearth_ctx_params cp;
    hearth_sampling sp;
} cli_opts;

/* Path of the bundled model (models/stories260K.gguf next to the source tree or binary). */
const char *cli_default_model(void);
/* Parses the common options; returns 0, or prints a message and returns -1. Options it does
 * not know are an error. */
int cli_parse(int argc, char **argv, cli_opts *o);
/* --tensor_split r1 r2 ... / -ts 1,3 at argv[i]: parses the values after it into out and
 * advances *i past them; returns the count, or -1 with a message printed. */
int cli_parse_split(int argc, char **argv, int *i, float *out, const char *prog);
/* Loads o->model (or the bundled one) and creates a context; prints errors. */
int cli_load(const cli_opts *o, hearth_model **m, hearth_ctx **c);
/* Reads a whole text file; NULL with a message on error. */
char *cli_read_file(const char *path, size_t *len);
/* Tokenizes text with BOS; returns a malloc'd array and its length in *n, or NULL. */
int32_t *cli_tokenize(const hearth_model *m, const char *text, size_t len, int add_bos, int *n);

int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
