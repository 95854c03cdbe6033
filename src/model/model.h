/* model: what a transformer is (hyper-parameters, weights) and the state a context keeps. */
#ifndef HEARTH_MODEL_H
#define HEARTH_MODEL_H

#include "hearth.h"
#include "backend/backend.h"
#include "backend/gpu.h"
#include "gguf/gguf.h"
#include "kv/kv.h"
#include "tokenizer/tok.h"

typedef struct layer_w {
    const float *attn_norm, *ffn_norm;   /* f32 (converted at load when stored otherwise) */
    wtensor wq, wk, wv, wo, w_gate, w_up, w_down;
} layer_w;

/* Device copies of a layer's weights (data pointers into one card's memory). */
typedef struct gpu_layer_w {
    const float *attn_norm, *ffn_norm;
    wtensor wq, wk, wv, wo, w_gate, w_up, w_down;
} gpu_layer_w;

#define HEARTH_MAX_CARDS 16

/* One card holding a consecutive range of GPU layers (placement.c). */
typedef struct gpu_card {
    int dev;                 /* device slot */
    int first, n;            /* layers first..first+n-1 */
    int p2p_from_prev;       /* activations arrive from the previous card peer-to-peer */
    void *weights;           /* the one device buffer behind this card's layers */
    size_t weight_bytes;
    const float *rope_freqs; /* device copy on this card, or NULL */
    char name[128];
} gpu_card;

typedef struct hparams {
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_rot, n_ff;
    float eps, rope_base, rope_freq_scale;
} hparams;

struct hearth_model {
    gguf_file *f;
    tok_vocab *vocab;
    hparams hp;
    hearth_model_info info;
    char *name;
    wtensor tok_embd, output;
    const float *output_norm;
    const float *rope_freqs;            /* optional per-pair divisors (llama 3.1) */
    layer_w *layers;
    float *f32_store;                   /* norms converted to f32 when stored as f16 etc. */
    int n_threads;
    /* offload: layers 0..n_gpu-1 have device copies, on cards[card_of[i]] (placement.c);
     * the output layer, when gpu_output, on the last card */
    int n_gpu, gpu_output, n_cards;
    gpu_card cards[HEARTH_MAX_CARDS];
    int *card_of;                       /* [n_gpu] */
    gpu_layer_w *glayers;
    wtensor g_output;
    const float *g_output_norm;
};

/* A context's buffers on one card. */
typedef struct gpu_bufs {
    gpu_ctx *g;
    void *scratch;
    size_t scratch_bytes;
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dlogits;
} gpu_bufs;

struct hearth_ctx {
    hearth_model *m;
    hearth_ctx_params p;
    pool *pool;
    kv_cache kv;
    char kv_line[160];
    /* scratch for one micro-batch of n_ubatch tokens */
    float *x, *xn, *q, *k, *v, *att, *gate, *up;
    float *logits;       /* [n_logits][n_vocab] */
    int n_logits_cap, n_logits, logits_first; /* rows kept: tokens logits_first.. of the last eval */
    /* where those rows are: logits, or the pinned buffer a decode step's graph wrote them to
     * (llama.c: no copy; valid until the next eval, as logits are) */
    const float *logits_at;
    int logits_one;   /* the eval keeps one row (only then may logits_at move) */
    /* GPU part: layers 0..n_gpu-1 (and the output when gpu_output) run on the model's
     * cards, card k with cb[k]; g and d* are the card in use now (ctx_use_card) */
    int n_gpu, gpu_output, n_cards, cur_card;
    gpu_bufs cb[HEARTH_MAX_CARDS];
    gpu_ctx *g;
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dlogits;
    /* one-token decode as a CUDA graph (llama.c): 0 not yet run, 1 ran once uncaptured
     * (scratch sized), -1 off for this context */
    int graph_state;
    /* how a graph step's input and output travel (placement.c, ctx_setup_gpu: one way for the
     * context's life, as its graphs hold it): 0 copies from and to the caller's memory, 1 from
     * and to the pinned hx / hl, 2 kernels in the graph that read and write them; *hpos is the
     * position the host writes for 1 and 2 */
    int step_io;
    float *hx, *hl;
    int *hpos;
    char err[512];
};

/* Placement (placement.c): which layers go to the GPU at load, and the context's share. */
int  model_place_gpu(hearth_model *m, int n_req, const float *split, int n_split, char *err, size_t errlen);
void model_free_gpu(hearth_model *m);
int  ctx_setup_gpu(hearth_ctx *c, char *err, size_t errlen);
void ctx_free_gpu(hearth_ctx *c);
/* Makes card k current: c->g and c->d* point at its buffers. 0 or -1 (c->err set). */
int  ctx_use_card(hearth_ctx *c, int k);

/* Runs the layers over T tokens at positions kv->n .. kv->n+T-1 and stores K/V; writes
 * logits for tokens [want_from, T) into out (rows of n_vocab). Returns 0 or -1 (OOM). */
int llama_forward(hearth_ctx *c, const int32_t *toks, int T, int want_from, float *out);

#endif
