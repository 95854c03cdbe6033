/* Placement: which layers run on the GPUs, and their device copies.
 *
 * The first N layers go to the cards (activations then cross to the host once per micro-
 * batch at most), the output layer too when every layer does. Each piece is checked
 * against the capability table first; a layer the GPU cannot run stays on the CPU with
 * every layer after it, and the log says which and why in one line. The host copy of the
 * weights stays mapped, so a context can always fall back to the CPU for any layer.
 *
 * Several cards (KoboldCpp's --tensor_split): split_layers gives each GPU layer a card,
 * consecutive layers per card in card order; each card gets one buffer with its layers'
 * weights (and the output layer on the last), each context one stream, scratch and the
 * KV cache of that card's layers. Activations go from card to card peer-to-peer where
 * the cards allow it, through the host otherwise. Running out of memory names what did
 * not fit and nothing is half-placed. */
#include "model/model.h"
#include "model/split.h"
#include "backend/caps.h"
#include "quant/quant.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }
static size_t al(size_t n) { return (n + 255) & ~(size_t)255; }
static size_t wbytes(const wtensor *w) { return al(w->row_bytes * (size_t)w->ne1); }

/* Can the GPU run this layer's matrices? why gets the first reason it cannot. */
static int layer_ok(const layer_w *l, char *why, size_t n) {
    const wtensor *ws[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down };
    for (int i = 0; i < 7; i++)
        if (!caps_supports(BACKEND_CUDA, OP_MATMUL, ws[i]->type, -1, 0, why, n)) return 0;
    return 1;
}

typedef struct up_state { uint8_t *base; size_t off; int dev; char *err; size_t errlen; } up_state;

static int put(up_state *u, const void *src, size_t bytes, const void **dst) {
    if (gpu_upload(u->dev, u->base + u->off, src, bytes, u->err, u->errlen)) return -1;
    *dst = u->base + u->off;
    u->off += al(bytes);
    return 0;
}

static int put_w(up_state *u, const wtensor *w, wtensor *out) {
    *out = *w;
    if (put(u, w->data, w->row_bytes * (size_t)w->ne1, &out->data)) return -1;
    /* the card's copy in the layout its decode kernel reads fastest (q8_0: gpu.h) */
    return gpu_weight_layout(u->dev, out, u->err, u->errlen);
}

static size_t layer_bytes(const hearth_model *m, int i) {
    const layer_w *l = &m->layers[i];
    const size_t E = (size_t)m->hp.n_embd;
    return 2 * al(E * sizeof(float)) + wbytes(&l->wq) + wbytes(&l->wk) + wbytes(&l->wv) + wbytes(&l->wo) +
           wbytes(&l->w_gate) + wbytes(&l->w_up) + wbytes(&l->w_down);
}

int model_place_gpu(hearth_model *m, int n_req, const float *split, int n_split, char *err, size_t errlen) {
    const hparams *hp = &m->hp;
    const char *base = strrchr(m->info.path, '/');
    base = base ? base + 1 : m->info.path;
    if (n_req == 0) return 0;
    int n_dev = gpu_device_count();
    if (n_dev <= 0) {
        log_warn("%s: --gpulayers %d ignored: %s; every layer runs on the CPU", base, n_req, gpu_unavailable_reason());
        return 0;
    }
    if (n_dev > HEARTH_MAX_CARDS) n_dev = HEARTH_MAX_CARDS;
    if (n_req < 0 || n_req > hp->n_layer) n_req = hp->n_layer;
    char why[256];
    int n = 0;
    for (; n < n_req; n++)
        if (!layer_ok(&m->layers[n], why, sizeof why)) {
            log_info("%s: layer %d and later stay on the CPU: %s", base, n, why);
            break;
        }
    if (n == 0) return 0;
    int out_ok = n == hp->n_layer;
    if (out_ok && !caps_supports(BACKEND_CUDA, OP_MATMUL, m->output.type, -1, 0, why, sizeof why)) {
        log_info("%s: the output layer stays on the CPU: %s", base, why);
        out_ok = 0;
    }
    /* which card each layer goes to */
    uint64_t free_b[HEARTH_MAX_CARDS] = { 0 };
    size_t total_b[HEARTH_MAX_CARDS] = { 0 };
    char names[HEARTH_MAX_CARDS][128];
    for (int d = 0; d < n_dev; d++) {
        size_t f = 0;
        if (gpu_device_info(d, names[d], sizeof names[d], &f, &total_b[d])) snprintf(names[d], sizeof names[d], "unknown card");
        free_b[d] = f;
    }
    int *dev_of = malloc(sizeof(int) * (size_t)hp->n_layer);
    m->card_of = malloc(sizeof(int) * (size_t)n);
    m->glayers = calloc((size_t)n, sizeof *m->glayers);
    if (!dev_of || !m->card_of || !m->glayers) { free(dev_of); snprintf(err, errlen, "out of memory"); goto fail; }
    int out_dev = -1;
    if (split_layers(hp->n_layer, n, n_split > 0 ? split : NULL, n_split, free_b, n_dev, dev_of, &out_dev, err, errlen)) {
        /* a bad --tensor_split is the user's to fix: fail the load with the reason */
        free(dev_of);
        free(m->card_of); m->card_of = NULL;
        free(m->glayers); m->glayers = NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, errlen, "%s: --tensor_split: %s", base, msg);
        return -1;
    }
    m->n_cards = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || dev_of[i] != dev_of[i - 1]) {
            gpu_card *k = &m->cards[m->n_cards++];
            memset(k, 0, sizeof *k);
            k->dev = dev_of[i];
            k->first = i;
            snprintf(k->name, sizeof k->name, "%s", names[k->dev]);
        }
        m->cards[m->n_cards - 1].n++;
        m->card_of[i] = m->n_cards - 1;
    }
    free(dev_of);
    /* one buffer per card: norms as f32, matrices as stored */
    const size_t E = (size_t)hp->n_embd;
    for (int k = 0; k < m->n_cards; k++) {
        gpu_card *cd = &m->cards[k];
        size_t total = 0;
        for (int i = cd->first; i < cd->first + cd->n; i++) total += layer_bytes(m, i);
        int last = k == m->n_cards - 1;
        if (out_ok && last) total += al(E * sizeof(float)) + wbytes(&m->output);
        if (m->rope_freqs) total += al(sizeof(float) * (size_t)(hp->n_rot / 2));
        char what[96];
        snprintf(what, sizeof what, "the weights of %d layers", cd->n);
        cd->weights = gpu_malloc(cd->dev, total, what, err, errlen);
        if (!cd->weights) goto fail;
        cd->weight_bytes = total;
        up_state u = { cd->weights, 0, cd->dev, err, errlen };
        const void *p;
        for (int i = cd->first; i < cd->first + cd->n; i++) {
            const layer_w *l = &m->layers[i];
            gpu_layer_w *g = &m->glayers[i];
            if (put(&u, l->attn_norm, E * sizeof(float), &p)) goto fail;
            g->attn_norm = p;
            if (put(&u, l->ffn_norm, E * sizeof(float), &p)) goto fail;
            g->ffn_norm = p;
            if (put_w(&u, &l->wq, &g->wq) || put_w(&u, &l->wk, &g->wk) || put_w(&u, &l->wv, &g->wv) ||
                put_w(&u, &l->wo, &g->wo) || put_w(&u, &l->w_gate, &g->w_gate) || put_w(&u, &l->w_up, &g->w_up) ||
                put_w(&u, &l->w_down, &g->w_down))
                goto fail;
        }
        if (out_ok && last) {
            if (put(&u, m->output_norm, E * sizeof(float), &p) || put_w(&u, &m->output, &m->g_output)) goto fail;
            m->g_output_norm = p;
        }
        if (m->rope_freqs) {
            if (put(&u, m->rope_freqs, sizeof(float) * (size_t)(hp->n_rot / 2), &p)) goto fail;
            cd->rope_freqs = p;
        }
        cd->p2p_from_prev = k > 0 ? gpu_peer_enable(m->cards[k - 1].dev, cd->dev) : 0;
    }
    m->n_gpu = n;
    m->gpu_output = out_ok;
    if (m->n_cards == 1)
        log_info("%s: offloaded %d/%d layers to CUDA%d (%s)%s", base, n, hp->n_layer, m->cards[0].dev, m->cards[0].name,
                 out_ok ? ", output layer too" : ", output layer on the CPU");
    else
        log_info("%s: offloaded %d/%d layers to %d cards%s", base, n, hp->n_layer, m->n_cards,
                 out_ok ? ", output layer too (on the last)" : ", output layer on the CPU");
    for (int k = 0; k < m->n_cards; k++) {
        const gpu_card *cd = &m->cards[k];
        log_info("%s: CUDA%d (%s): layers %d-%d%s, weights %.2f MiB (%.0f of %.0f MiB were free)%s", base, cd->dev,
                 cd->name, cd->first, cd->first + cd->n - 1, out_ok && k == m->n_cards - 1 ? " + output" : "",
                 mib(cd->weight_bytes), mib((size_t)free_b[cd->dev]), mib(total_b[cd->dev]),
                 k == 0 ? "" : cd->p2p_from_prev ? ", activations in peer-to-peer" : ", activations through the host");
    }
    return 0;
fail:
    log_warn("%s: %s; every layer runs on the CPU", base, err);
    err[0] = 0;
    model_free_gpu(m);
    return 0;
}

void model_free_gpu(hearth_model *m) {
    for (int k = 0; k < m->n_cards; k++) {
        if (m->cards[k].weights) gpu_free(m->cards[k].dev, m->cards[k].weights);
        m->cards[k].weights = NULL;
    }
    m->n_cards = 0;
    free(m->glayers);
    m->glayers = NULL;
    free(m->card_of);
    m->card_of = NULL;
    m->n_gpu = 0;
    m->gpu_output = 0;
}

/* How a one-token step's graph takes its input and gives its logits (hearth_ctx's step_io).
 * HEARTH_STEP_IO (measuring aid): 0 copies from and to the caller's pageable memory around
 * the replay, the position written by a kernel launch; 1 copies from and to pinned host
 * memory around it; 2 (the default) kernels in the graph that read and write pinned, mapped
 * host memory, so a replay is one launch. Only where steps can be graphs (all layers and the
 * output on one card); without pinned memory, 0. */
static void setup_step_io(hearth_ctx *c) {
    const char *e = getenv("HEARTH_STEP_IO");
    c->step_io = e && (e[0] == '0' || e[0] == '1') ? e[0] - '0' : 2;
    if (!c->step_io || c->n_cards != 1 || !c->gpu_output || c->n_gpu != c->m->hp.n_layer) {
        c->step_io = 0;
        return;
    }
    gpu_ctx *g = c->cb[0].g;
    c->hx = gpu_host_buf(g, 0, sizeof(float) * (size_t)c->m->hp.n_embd);
    c->hl = gpu_host_buf(g, 1, sizeof(float) * (size_t)c->m->hp.n_vocab);
    c->hpos = gpu_pos_host(g);
    if (!c->hx || !c->hl || !c->hpos) {
        log_info("decode steps copy their input and logits through pageable memory: %s", gpu_ctx_error(g));
        c->step_io = 0;
    }
}

/* The context's share: the model's GPU layers, unless the cache types or head shape need
 * the CPU; then the KV cache of those layers on the card and device scratch. */
int ctx_setup_gpu(hearth_ctx *c, char *err, size_t errlen) {
    hearth_model *m = c->m;
    const hparams *hp = &m->hp;
    if (m->n_gpu == 0) return 0;
    kv_cache *kv = &c->kv;
    char why[256];
    const int ops[] = { OP_KV_STORE, OP_KV_SHIFT, c->p.flash_attn ? OP_ATTN_FLASH : OP_ATTN_PLAIN };
    int dk = kv->rot_k == KV_ROT_ROW ? kv->row : hp->head_dim, dv = kv->rot_v == KV_ROT_ROW ? kv->row : hp->head_dim;
    for (int i = 0; i < 3; i++)
        if (!caps_supports(BACKEND_CUDA, ops[i], kv->type_k, kv->type_v, dk > dv ? dk : dv, why, sizeof why)) {
            log_info("this context runs every layer on the CPU: %s %s", caps_op_name(ops[i]), why);
            return 0;
        }
    int hb = cpu_hadamard_block(kv->rot_k == KV_ROT_ROW || kv->rot_v == KV_ROT_ROW ? kv->row : hp->head_dim);
    if (!caps_supports(BACKEND_CUDA, OP_HADAMARD, -1, -1, hb, why, sizeof why)) {
        log_info("this context runs every layer on the CPU: %s", why);
        return 0;
    }
    int dev_of_card[HEARTH_MAX_CARDS];
    for (int k = 0; k < m->n_cards; k++) dev_of_card[k] = m->cards[k].dev;
    c->n_cards = m->n_cards;
    for (int k = 0; k < m->n_cards; k++)
        if (!(c->cb[k].g = gpu_ctx_new(m->cards[k].dev, err, errlen))) return -1;
    if (kv_init_gpu(kv, m->n_gpu, m->card_of, dev_of_card, m->n_cards, err, errlen)) return -1;
    size_t U = (size_t)c->p.n_ubatch, E = (size_t)hp->n_embd;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    size_t big = E > nq ? E : nq, F = (size_t)hp->n_ff;
    for (int k = 0; k < m->n_cards; k++) {
        gpu_bufs *b = &c->cb[k];
        int last = k == m->n_cards - 1;
        size_t sizes[9] = { U * E, U * big, U * nq, U * nkv, U * nkv, U * nq, U * F, U * F,
                            m->gpu_output && last ? U * (size_t)hp->n_vocab : 1 };
        size_t total = 0;
        for (int i = 0; i < 9; i++) total += al(sizes[i] * sizeof(float));
        b->scratch = gpu_malloc(m->cards[k].dev, total, "the context's scratch", err, errlen);
        if (!b->scratch) return -1;
        b->scratch_bytes = total;
        float **ptrs[9] = { &b->dx, &b->dxn, &b->dq, &b->dk, &b->dv, &b->datt, &b->dgate, &b->dup, &b->dlogits };
        size_t off = 0;
        for (int i = 0; i < 9; i++) {
            *ptrs[i] = (float *)((uint8_t *)b->scratch + off);
            off += al(sizes[i] * sizeof(float));
        }
    }
    c->n_gpu = m->n_gpu;
    c->gpu_output = m->gpu_output;
    c->cur_card = -1;
    setup_step_io(c);
    for (int k = 0; k < m->n_cards; k++) {
        const gpu_card *cd = &m->cards[k];
        log_info("CUDA%d (%s): layers %d-%d, weights %.2f MiB, KV %.2f MiB, scratch %.2f MiB", cd->dev, cd->name, cd->first,
                 cd->first + cd->n - 1, mib(cd->weight_bytes), mib((size_t)kv_gpu_bytes(kv, k)), mib(c->cb[k].scratch_bytes));
    }
    char line[256];
    kv_describe_cpu(kv, line, sizeof line);
    if (line[0]) log_info("%s", line);
    return 0;
}

int ctx_use_card(hearth_ctx *c, int k) {
    gpu_bufs *b = &c->cb[k];
    c->cur_card = k;
    c->g = b->g;
    c->dx = b->dx; c->dxn = b->dxn; c->dq = b->dq; c->dk = b->dk; c->dv = b->dv;
    c->datt = b->datt; c->dgate = b->dgate; c->dup = b->dup; c->dlogits = b->dlogits;
    if (gpu_ctx_activate(b->g)) {
        snprintf(c->err, sizeof c->err, "%s", gpu_ctx_error(b->g));
        return -1;
    }
    return 0;
}

void ctx_free_gpu(hearth_ctx *c) {
    for (int k = 0; k < HEARTH_MAX_CARDS; k++) {
        gpu_bufs *b = &c->cb[k];
        if (b->g) gpu_sync(b->g);
        if (b->scratch) gpu_free(c->m->cards[k].dev, b->scratch);
        gpu_ctx_free(b->g);
        memset(b, 0, sizeof *b);
    }
    c->g = NULL;
    c->n_cards = 0;
    c->n_gpu = 0;
    /* the pinned buffers went with the card's context */
    c->step_io = 0;
    c->hx = c->hl = NULL;
    c->hpos = NULL;
}

double hearth_gpu_copy_bandwidth(void) { return gpu_device_count() > 0 ? gpu_copy_bandwidth(0) : 0.0; }
