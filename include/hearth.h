/* hearth.h: the one public C API. The command line and the server use nothing else.
 *
 * Functions that can fail on input return 0 on success and non-zero on failure, and write
 * a message a person can act on into err (errlen bytes, NUL-terminated). */
#ifndef HEARTH_H
#define HEARTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hearth_model hearth_model;
typedef struct hearth_ctx hearth_ctx;

/* ---- logging ---- */
enum { HEARTH_LOG_ERROR = 0, HEARTH_LOG_WARN = 1, HEARTH_LOG_INFO = 2, HEARTH_LOG_DEBUG = 3 };
/* Messages at or below level go to stderr (default HEARTH_LOG_INFO). */
void hearth_log_set_level(int level);

/* ---- models ---- */
typedef struct hearth_model_params {
    int n_threads;      /* 0: all cores */
    int n_gpu_layers;   /* layers to put on the GPU, first ones first (default 0: CPU only; < 0: all);
                           the output layer goes too when every layer does. Without a usable GPU
                           this is ignored with a one-line note. */
    /* Proportions of the GPU layers per card, cards 0.. in order (KoboldCpp's
     * --tensor_split); n_tensor_split 0: by each visible card's free memory. */
    float tensor_split[16];
    int n_tensor_split;
    /* Called while the weights are read in (frac 0..1, last call 1); with a callback the
     * whole mapping is read at load instead of page by page on first use. May be NULL. */
    void (*progress)(float frac, void *ud);
    void *progress_ud;
} hearth_model_params;
hearth_model_params hearth_model_default_params(void);

int  hearth_model_load(const char *path, const hearth_model_params *p, hearth_model **out,
                       char *err, size_t errlen);
void hearth_model_free(hearth_model *m);

typedef struct hearth_model_info {
    const char *arch;        /* "llama" */
    const char *name;        /* general.name or the file name */
    const char *path;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int64_t n_params;
    uint64_t file_bytes;
    int32_t bos, eos;        /* -1 when the vocabulary has none */
    int add_bos;
} hearth_model_info;
const hearth_model_info *hearth_model_get_info(const hearth_model *m);
/* A string metadata value (e.g. "tokenizer.chat_template"); NULL if absent. Returns a
 * malloc'd NUL-terminated copy the caller frees. */
char *hearth_model_meta_str(const hearth_model *m, const char *key);

/* Device-to-device copy bandwidth of the first GPU in GB/s (bytes read + written), the
 * ceiling of GPU token generation; 0 without a usable GPU. */
double hearth_gpu_copy_bandwidth(void);

/* ---- tokens ---- */
/* Returns the token count; writes at most max ids (call again with a bigger buffer when the
 * count exceeds max). */
int hearth_tokenize(const hearth_model *m, const char *text, size_t len, int add_bos,
                    int parse_special, int32_t *out, int max);
/* Bytes of one token when detokenized; writes at most n bytes (no NUL); returns the length. */
int hearth_token_to_piece(const hearth_model *m, int32_t tok, char *buf, size_t n);
int hearth_token_is_eog(const hearth_model *m, int32_t tok);

/* ---- KV cache types ---- */
/* Type id for a cache-type name ("f16", "q8_0", ...) or -1. */
int hearth_cache_type_from_name(const char *name);
const char *hearth_cache_type_name(int type);
/* Comma-separated list of the cache types the CPU backend holds, for messages. */
const char *hearth_cache_type_list(void);

/* ---- contexts: one sequence, its KV cache and its scratch ---- */
typedef struct hearth_ctx_params {
    int n_ctx;          /* cells; 0: min(model's training context, 4096) */
    int n_ubatch;       /* tokens per forward pass when processing a prompt (default 512) */
    int n_threads;      /* 0: all cores */
    int type_k, type_v; /* cache types (GGUF type ids); default f16 */
    int flash_attn;     /* 1: online-softmax attention over the cache (default); 0: plain */
    int rotate_kv;      /* 1: Hadamard-rotate rows of quantized cache types (default 1) */
} hearth_ctx_params;
hearth_ctx_params hearth_ctx_default_params(void);

int  hearth_ctx_new(hearth_model *m, const hearth_ctx_params *p, hearth_ctx **out, char *err, size_t errlen);
void hearth_ctx_free(hearth_ctx *c);
int  hearth_ctx_n_ctx(const hearth_ctx *c);
/* Tokens currently in the cache (the next token goes to this position). */
int  hearth_ctx_n_past(const hearth_ctx *c);
/* The tokens currently in the cache. */
const int32_t *hearth_ctx_tokens(const hearth_ctx *c);
/* The KV cache memory line, e.g. "KV cache: 512 cells, K (f16) 0.31 MiB, V (f16) 0.31 MiB". */
const char *hearth_ctx_kv_line(const hearth_ctx *c);
uint64_t hearth_ctx_kv_bytes(const hearth_ctx *c);

/* Append n tokens and run the model over them (in micro-batches of n_ubatch). With
 * all_logits, logits for every token are kept (hearth_ctx_logits(c, i) for i < n);
 * otherwise only for the last one (i = n - 1). Fails (no change to the cache) when the
 * tokens do not fit the context or an id is out of range. */
int hearth_eval(hearth_ctx *c, const int32_t *toks, int n, int all_logits, char *err, size_t errlen);
/* Logits row after the i-th token of the last hearth_eval call; NULL if not kept. */
const float *hearth_ctx_logits(const hearth_ctx *c, int i);
/* Logits row after the last token of the last hearth_eval call (NULL before any). */
const float *hearth_ctx_last_logits(const hearth_ctx *c);
/* Forget everything from position n on (prefix reuse keeps 0..n-1). */
void hearth_ctx_truncate(hearth_ctx *c, int n);
/* Context shift: drop n_discard tokens after the first n_keep and move the rest down,
 * re-rotating cached K (requantizing quantized types). */
int  hearth_ctx_shift(hearth_ctx *c, int n_keep, int n_discard);

/* ---- sampling ---- */
typedef struct hearth_sampling {
    float temp;            /* <= 0: greedy */
    int   top_k;           /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float typical;         /* >= 1: off */
    float tfs;             /* >= 1: off */
    float top_a;           /* <= 0: off */
    float rep_pen;         /* 1: off */
    int   rep_pen_range;   /* last N tokens; 0: all */
    float rep_pen_slope;
    float presence_penalty, frequency_penalty;
    uint64_t seed;

    /* Additions for the KoboldAI API; hearth_sampling_default leaves every one off. */
    /* Order of the truncation steps, KoboldCpp's ids: 0 top-k, 1 top-a, 2 top-p (and
     * min-p), 3 tfs, 4 typical, 5 temperature, 6 repetition penalty. An id left out is not
     * applied. n_sampler_order 0: the default order 6,0,1,3,4,2,5. */
    int   sampler_order[16];
    int   n_sampler_order;
    float dynatemp_range;     /* > 0: temperature in temp +- range, chosen by entropy */
    float dynatemp_exponent;  /* shape of that mapping (default 1) */
    float smoothing_factor;   /* > 0: quadratic sampling */
    /* DRY: penalize a token that would extend a repeat of >= dry_allowed_length tokens by
     * dry_multiplier * dry_base^(length - dry_allowed_length). Breaker tokens end a repeat. */
    float dry_multiplier;     /* <= 0: off */
    float dry_base;
    int   dry_allowed_length;
    int   dry_penalty_last_n; /* last N tokens searched; 0: all */
    const int32_t *dry_breakers; int n_dry_breakers;  /* copied by hearth_sampler_new */
    /* XTC: with probability xtc_probability, remove every token at least xtc_threshold
     * likely except the least likely of them. */
    float xtc_threshold, xtc_probability;
    int   mirostat;           /* 0 off, 1 or 2: Mirostat v1/v2 (replaces the order above) */
    float mirostat_tau, mirostat_eta;
    /* Added to the logits before anything else (-INFINITY bans a token); copied. */
    const int32_t *bias_tok; const float *bias_val; int n_bias;
} hearth_sampling;
hearth_sampling hearth_sampling_default(void);

typedef struct hearth_sampler hearth_sampler;
hearth_sampler *hearth_sampler_new(const hearth_sampling *s, int n_vocab);
void hearth_sampler_free(hearth_sampler *s);
/* Picks a token from logits given the tokens so far (for the penalties). */
int32_t hearth_sampler_sample(hearth_sampler *s, const float *logits, const int32_t *hist, int n_hist);
/* Replace the random state (a new seed for the next request with the same settings). */
void hearth_sampler_reseed(hearth_sampler *s, uint64_t seed);

/* ---- grammars (GBNF, as KoboldCpp and llama.cpp take them) ---- */
typedef struct hearth_grammar hearth_grammar;
/* NULL with a message naming the line and the problem when the grammar is bad. */
hearth_grammar *hearth_grammar_new(const hearth_model *m, const char *gbnf, char *err, size_t errlen);
void hearth_grammar_free(hearth_grammar *g);
/* Sets the logits of tokens the grammar cannot take next to -inf (end of text only where
 * the grammar may end); returns how many tokens remain possible. */
int  hearth_grammar_apply(hearth_grammar *g, float *logits);
/* Moves past the chosen token: 0, or -1 when the grammar cannot take it. */
int  hearth_grammar_accept(hearth_grammar *g, int32_t tok);
/* 1 when the grammar is complete and nothing more can follow. */
int  hearth_grammar_done(const hearth_grammar *g);

/* ---- costs, for benchmarks ---- */
/* Bytes of weights one generated token reads: every layer's matrices and norms, the output
 * matrix and norm (the token embeddings contribute one row, not counted). */
uint64_t hearth_model_token_weight_bytes(const hearth_model *m);
/* Bytes of K and V rows, all layers, that attention over n_cells cells reads. */
uint64_t hearth_ctx_kv_read_bytes(const hearth_ctx *c, int n_cells);
/* "llama 1.1B Q4_K_M": parameters and weight type (general.file_type, else the type with
 * the most bytes). Valid until the next call on this thread. */
const char *hearth_model_type_name(const hearth_model *m);

/* ---- tools behind the hearth subcommands ---- */
/* Tokenize each case of a peer-style suite file (cases separated by lines
 * "__ggml_vocab_test__") with the vocabulary of vocab_path, printing one line per case. */
int hearth_tokenize_suite(const char *vocab_path, const char *inp_path, FILE *out, char *err, size_t errlen);
/* Metadata, tensor table, parameter count and the memory a context of n_ctx needs. */
int hearth_inspect(const char *path, int n_ctx, FILE *out, char *err, size_t errlen);

/* A random-weight llama model of a real shape (`hearth synth`). Start from shape (a name
 * from hearth_synth_shape_list, or NULL for none); every size field > 0 overrides it (with
 * no shape, n_embd, n_layer, n_head and n_ff are required). Weights are normal-ish with
 * std 0.02, deterministic from seed; norms are ones (f32). The tokenizer section is copied
 * from vocab_path (its token arrays cut to n_vocab when that is smaller, for a llama
 * vocabulary). The file is written tensor by tensor (memory stays small) to out_path. */
typedef struct hearth_synth_params {
    const char *shape;
    const char *type;           /* from hearth_synth_type_list: "q8_0", "q4_k_m", ... */
    const char *vocab_path;
    uint64_t seed;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    int n_threads;              /* 0: all cores */
    FILE *log;                  /* progress lines; NULL: quiet */
} hearth_synth_params;
int hearth_synth(const char *out_path, const hearth_synth_params *p, char *err, size_t errlen);
const char *hearth_synth_shape_list(void);
const char *hearth_synth_type_list(void);

#ifdef __cplusplus
}
#endif
#endif
