/* Placement: which layers run on the GPU, and their device copies.
 *
 * The first N layers go to the card (activations then cross to the host once per micro-
 * batch at most), the output layer too when every layer does. Each piece is checked
 * against the capability table first; a layer the GPU cannot run stays on the CPU with
 * every layer after it, and the log says which and why in one line. The host copy of the
 * weights stays mapped, so a context can always fall back to the CPU for any layer.
 * Device memory is one buffer for all weights (model) and one for the scratch (context),
 * so running out names what did not fit and nothing is half-placed. The placement is a
 * per-layer device index in spirit (gpu_dev for layers 0..n_gpu-1): several cards would
 * hand out consecutive ranges. */
#include "model/model.h"
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
    return put(u, w->data, w->row_bytes * (size_t)w->ne1, &out->data);
}

int model_place_gpu(hearth_model *m, int n_req, char *err, size_t errlen) {
    const hparams *hp = &m->hp;
    const char *base = strrchr(m->info.path, '/');
    base = base ? base + 1 : m->info.path;
    if (n_req == 0) return 0;
    if (gpu_device_count() <= 0) {
        log_warn("%s: --gpulayers %d ignored: %s; every layer runs on the CPU", base, n_req, gpu_unavailable_reason());
        return 0;
    }
    if (n_req < 0 || n_req > hp->n_layer) n_req = hp->n_layer;
    const int dev = 0;
    size_t free_b = 0, total_b = 0;
    if (gpu_device_info(dev, m->gpu_name, sizeof m->gpu_name, &free_b, &total_b))
        snprintf(m->gpu_name, sizeof m->gpu_name, "unknown card");
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
    /* one buffer: norms as f32, matrices as stored */
    const size_t E = (size_t)hp->n_embd;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const layer_w *l = &m->layers[i];
        total += 2 * al(E * sizeof(float)) + wbytes(&l->wq) + wbytes(&l->wk) + wbytes(&l->wv) + wbytes(&l->wo) +
                 wbytes(&l->w_gate) + wbytes(&l->w_up) + wbytes(&l->w_down);
    }
    if (out_ok) total += al(E * sizeof(float)) + wbytes(&m->output);
    if (m->rope_freqs) total += al(sizeof(float) * (size_t)(hp->n_rot / 2));
    char what[96];
    snprintf(what, sizeof what, "the weights of %d layers", n);
    m->gpu_weights = gpu_malloc(dev, total, what, err, errlen);
    if (!m->gpu_weights) {
        log_warn("%s: %s; every layer runs on the CPU", base, err);
        err[0] = 0;
        return 0;
    }
    m->glayers = calloc((size_t)n, sizeof *m->glayers);
    if (!m->glayers) { snprintf(err, errlen, "out of memory"); goto fail; }
    up_state u = { m->gpu_weights, 0, dev, err, errlen };
    const void *p;
    for (int i = 0; i < n; i++) {
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
    if (out_ok) {
        if (put(&u, m->output_norm, E * sizeof(float), &p) || put_w(&u, &m->output, &m->g_output)) goto fail;
        m->g_output_norm = p;
    }
    if (m->rope_freqs) {
        if (put(&u, m->rope_freqs, sizeof(float) * (size_t)(hp->n_rot / 2), &p)) goto fail;
        m->g_rope_freqs = p;
    }
    m->n_gpu = n;
    m->gpu_dev = dev;
    m->gpu_output = out_ok;
    m->gpu_weight_bytes = total;
    log_info("%s: offloaded %d/%d layers to CUDA%d (%s)%s", base, n, hp->n_layer, dev, m->gpu_name,
             out_ok ? ", output layer too" : ", output layer on the CPU");
    log_info("%s: CUDA%d weights %.2f MiB (%.0f of %.0f MiB were free)", base, dev, mib(total), mib(free_b), mib(total_b));
    return 0;
fail:
    log_warn("%s: %s; every layer runs on the CPU", base, err);
    err[0] = 0;
    model_free_gpu(m);
    return 0;
}

void model_free_gpu(hearth_model *m) {
    if (m->gpu_weights) gpu_free(m->gpu_dev, m->gpu_weights);
    m->gpu_weights = NULL;
    free(m->glayers);
    m->glayers = NULL;
    m->n_gpu = 0;
    m->gpu_output = 0;
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
    c->g = gpu_ctx_new(m->gpu_dev, err, errlen);
    if (!c->g) return -1;
    if (kv_init_gpu(kv, m->n_gpu, m->gpu_dev, err, errlen)) return -1;
    size_t U = (size_t)c->p.n_ubatch, E = (size_t)hp->n_embd;
    size_t nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    size_t big = E > nq ? E : nq, F = (size_t)hp->n_ff;
    size_t sizes[9] = { U * E, U * big, U * nq, U * nkv, U * nkv, U * nq, U * F, U * F,
                        m->gpu_output ? U * (size_t)hp->n_vocab : 1 };
    size_t total = 0;
    for (int i = 0; i < 9; i++) total += al(sizes[i] * sizeof(float));
    c->gpu_scratch = gpu_malloc(m->gpu_dev, total, "the context's scratch", err, errlen);
    if (!c->gpu_scratch) return -1;
    float **ptrs[9] = { &c->dx, &c->dxn, &c->dq, &c->dk, &c->dv, &c->datt, &c->dgate, &c->dup, &c->dlogits };
    size_t off = 0;
    for (int i = 0; i < 9; i++) {
        *ptrs[i] = (float *)((uint8_t *)c->gpu_scratch + off);
        off += al(sizes[i] * sizeof(float));
    }
    c->n_gpu = m->n_gpu;
    c->gpu_output = m->gpu_output;
    char line[512];
    kv_describe_devices(kv, m->gpu_name, line, sizeof line);
    log_info("%s", line);
    log_info("CUDA%d context scratch %.2f MiB", m->gpu_dev, mib(total));
    return 0;
}

void ctx_free_gpu(hearth_ctx *c) {
    if (c->gpu_scratch) gpu_free(c->m->gpu_dev, c->gpu_scratch);
    c->gpu_scratch = NULL;
    gpu_ctx_free(c->g);
    c->g = NULL;
    c->n_gpu = 0;
}

double hearth_gpu_copy_bandwidth(void) { return gpu_device_count() > 0 ? gpu_copy_bandwidth(0) : 0.0; }
