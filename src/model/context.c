/* Contexts: a KV cache, a thread pool and scratch for one micro-batch; evaluation splits
 * the tokens into micro-batches and keeps the logits that were asked for. */
#include "model/model.h"
#include "quant/quant.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int hearth_cache_type_from_name(const char *name) {
    int t = quant_from_name(name);
    return t >= 0 && kv_type_ok(t) ? t : -1;
}

const char *hearth_cache_type_name(int type) {
    const quant_traits *qt = quant_get(type);
    return qt ? qt->name : "?";
}

const char *hearth_cache_type_list(void) { return kv_type_list(); }

hearth_ctx_params hearth_ctx_default_params(void) {
    hearth_ctx_params p = { 0 };
    p.n_ubatch = 512;
    p.type_k = QT_F16;
    p.type_v = QT_F16;
    p.flash_attn = 1;
    p.rotate_kv = 1;
    return p;
}

static void free_scratch(hearth_ctx *c) {
    free(c->x); free(c->xn); free(c->q); free(c->k); free(c->v); free(c->att); free(c->gate); free(c->up);
    free(c->logits);
}

int hearth_ctx_new(hearth_model *m, const hearth_ctx_params *pp, hearth_ctx **out, char *err, size_t errlen) {
    *out = NULL;
    hearth_ctx *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return -1; }
    c->m = m;
    c->p = pp ? *pp : hearth_ctx_default_params();
    const hparams *hp = &m->hp;
    if (c->p.n_ctx <= 0) c->p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (c->p.n_ctx > (1 << 24)) { snprintf(err, errlen, "context size %d is too large", c->p.n_ctx); free(c); return -1; }
    if (c->p.n_ubatch <= 0) c->p.n_ubatch = 512;
    if (c->p.n_ubatch > c->p.n_ctx) c->p.n_ubatch = c->p.n_ctx;
    if (c->p.n_threads <= 0) c->p.n_threads = m->n_threads;
    if (kv_init(&c->kv, c->p.n_ctx, hp->n_layer, hp->n_head_kv, hp->head_dim, c->p.type_k, c->p.type_v,
                c->p.rotate_kv, err, errlen)) {
        free(c);
        return -1;
    }
    c->pool = pool_new(c->p.n_threads);
    size_t U = (size_t)c->p.n_ubatch, E = (size_t)hp->n_embd;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    size_t big = E > nq ? E : nq;
    c->x = malloc(sizeof(float) * U * E);
    c->xn = malloc(sizeof(float) * U * big);
    c->q = malloc(sizeof(float) * U * nq);
    c->k = malloc(sizeof(float) * U * nkv);
    c->v = malloc(sizeof(float) * U * nkv);
    c->att = malloc(sizeof(float) * U * nq);
    c->gate = malloc(sizeof(float) * U * (size_t)hp->n_ff);
    c->up = malloc(sizeof(float) * U * (size_t)hp->n_ff);
    if (!c->pool || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up) {
        snprintf(err, errlen, "out of memory allocating the context's scratch for %zu tokens", U);
        hearth_ctx_free(c);
        return -1;
    }
    kv_describe(&c->kv, c->kv_line, sizeof c->kv_line);
    log_info("%s", c->kv_line);
    if (ctx_setup_gpu(c, err, errlen)) {
        /* the card could not take this context's share: run it on the CPU instead */
        log_warn("%s; this context runs every layer on the CPU", err);
        err[0] = 0;
        ctx_free_gpu(c);
        kv_free_gpu(&c->kv);
    }
    *out = c;
    return 0;
}

void hearth_ctx_free(hearth_ctx *c) {
    if (!c) return;
    ctx_free_gpu(c);
    free_scratch(c);
    kv_free(&c->kv);
    pool_free(c->pool);
    free(c);
}

int hearth_ctx_n_ctx(const hearth_ctx *c) { return c->kv.n_ctx; }
int hearth_ctx_n_past(const hearth_ctx *c) { return c->kv.n; }
const int32_t *hearth_ctx_tokens(const hearth_ctx *c) { return c->kv.tokens; }
const char *hearth_ctx_kv_line(const hearth_ctx *c) { return c->kv_line; }
uint64_t hearth_ctx_kv_bytes(const hearth_ctx *c) { return kv_bytes_k(&c->kv) + kv_bytes_v(&c->kv); }

int hearth_eval(hearth_ctx *c, const int32_t *toks, int n, int all_logits, char *err, size_t errlen) {
    const int V = c->m->hp.n_vocab;
    if (n <= 0) { snprintf(err, errlen, "nothing to evaluate"); return -1; }
    if (n > c->kv.n_ctx - c->kv.n) {
        snprintf(err, errlen, "%d tokens do not fit the context: %d of %d cells are in use", n, c->kv.n, c->kv.n_ctx);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= V) {
            snprintf(err, errlen, "token id %d at index %d is outside the vocabulary (0..%d)", toks[i], i, V - 1);
            return -1;
        }
    int keep = all_logits ? n : 1;
    if (keep > c->n_logits_cap) {
        float *l = realloc(c->logits, sizeof(float) * (size_t)keep * V);
        if (!l) { snprintf(err, errlen, "out of memory for %d rows of logits", keep); return -1; }
        c->logits = l;
        c->n_logits_cap = keep;
    }
    c->n_logits = 0;
    c->logits_first = n - keep;
    c->logits_at = c->logits;
    c->logits_one = keep == 1;
    for (int i = 0; i < n; i += c->p.n_ubatch) {
        int T = n - i < c->p.n_ubatch ? n - i : c->p.n_ubatch;
        /* logits wanted for tokens of this batch with index >= logits_first */
        int want_from = c->logits_first > i ? c->logits_first - i : 0;
        float *dst = want_from < T ? c->logits + (size_t)(i + want_from - c->logits_first) * V : NULL;
        if (llama_forward(c, toks + i, T, want_from, dst) != 0) {
            snprintf(err, errlen, "%s", c->err);
            return -1;
        }
    }
    c->n_logits = keep;
    return 0;
}

const float *hearth_ctx_logits(const hearth_ctx *c, int i) {
    int r = i - c->logits_first;
    if (r < 0 || r >= c->n_logits) return NULL;
    return c->logits_at + (size_t)r * c->m->hp.n_vocab;
}

const float *hearth_ctx_last_logits(const hearth_ctx *c) {
    return c->n_logits ? c->logits_at + (size_t)(c->n_logits - 1) * c->m->hp.n_vocab : NULL;
}

void hearth_ctx_truncate(hearth_ctx *c, int n) {
    if (n < 0) n = 0;
    if (n < c->kv.n) c->kv.n = n;
    c->n_logits = 0;
}

int hearth_ctx_shift(hearth_ctx *c, int n_keep, int n_discard) {
    if (n_keep < 0 || n_discard <= 0 || n_keep + n_discard > c->kv.n) return -1;
    const hparams *hp = &c->m->hp;
    kv_rope r = { hp->n_rot, hp->rope_base, hp->rope_freq_scale, c->m->rope_freqs };
    if (c->n_gpu > 0) {
        gpu_ctx *gs[HEARTH_MAX_CARDS];
        for (int k = 0; k < c->n_cards; k++) gs[k] = c->cb[k].g;
        int rc = kv_shift_gpu(&c->kv, gs, n_keep, n_discard, &r);
        for (int k = 0; k < c->n_cards; k++)
            if (gpu_sync(gs[k])) rc = -1;
        if (rc) {
            const char *msg = "";
            for (int k = 0; k < c->n_cards && !msg[0]; k++) msg = gpu_ctx_error(gs[k]);
            log_err("context shift on the GPU failed: %s", msg);
            return -1;
        }
    }
    kv_shift(&c->kv, n_keep, n_discard, &r);
    c->n_logits = 0;
    return 0;
}
