/* The llama forward pass, top to bottom, for one micro-batch of T tokens:
 *
 *   x = embed(tokens)
 *   per layer:  x += Wo · attention(rope(Wq·norm(x)), cache ∪ rope(Wk·norm(x)), Wv·norm(x))
 *               x += Wdown · (silu(Wgate·norm(x)) * Wup·norm(x))
 *   logits = Wout · norm(x)
 */
#include "model/model.h"
#include "util/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* x += w · in, then c->dxn = the norm of x with weights nw (and the 8-bit activations the
 * next product asked for): in one launch where the backend can (gpu_matmul_norm), else the
 * product, then the add and the norm */
static int gpu_product_add_norm(hearth_ctx *c, const wtensor *w, const float *in, int T, const float *nw) {
    const hparams *hp = &c->m->hp;
    const int r = gpu_matmul_norm(c->g, w, in, T, c->dx, nw, hp->eps, c->dxn);
    return r < 0 || (r > 0 && (gpu_matmul(c->g, w, in, T, c->dxn) ||
                               gpu_add_rmsnorm(c->g, c->dxn, c->dx, c->dxn, nw, T, hp->n_embd, hp->eps)))
               ? -1 : 0;
}

/* One layer on the GPU: the same steps as the CPU loop below, on device buffers. */
static int gpu_layer(hearth_ctx *c, int il, int T, int pos0) {
    const hearth_model *m = c->m;
    const hparams *hp = &m->hp;
    const gpu_layer_w *l = &m->glayers[il];
    kv_cache *kv = &c->kv;
    gpu_ctx *g = c->g;
    const int E = hp->n_embd, hd = hp->head_dim;
    const size_t TE = (size_t)T * E;
    /* the first layer normalizes the embeddings; later ones got their norm from the
     * previous layer's last residual add (gpu_add_rmsnorm) */
    const int first_on_card = il == 0 || m->card_of[il] != m->card_of[il - 1];
    /* each norm and SwiGLU also writes the 8-bit activations of the product after it */
    if (first_on_card) gpu_quant_next(g, &l->wq, T);
    if (first_on_card && gpu_rmsnorm(g, c->dxn, c->dx, l->attn_norm, T, E, hp->eps)) return -1;
    const wtensor *qkv[3] = { &l->wq, &l->wk, &l->wv };
    float *const qkv_out[3] = { c->dq, c->dk, c->dv };
    /* the product stores K and V itself where it can (one token), else the store follows */
    gpu_kv_store st;
    kv_store_gpu(kv, il, pos0, &st);
    const int r = gpu_matmul_rope_store(g, qkv, c->dxn, T, qkv_out, hp->n_head, hp->n_head_kv, hd, hp->n_rot, pos0,
                                        hp->rope_base, hp->rope_freq_scale, m->cards[m->card_of[il]].rope_freqs, &st);
    if (r < 0 || (r > 0 && kv_put_gpu(kv, g, il, pos0, T, c->dk, c->dv))) return -1;
    attn_args a = {
        .T = T, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
        .pos0 = pos0, .n_cells = pos0 + T, .q = c->dq,
        .k = kv_dk(kv, il), .v = kv_dv(kv, il), .k_row_bytes = kv->kb, .v_row_bytes = kv->vb,
        .type_k = kv->type_k, .type_v = kv->type_v,
        .row = kv->row, .k_row_rot = kv->rot_k == KV_ROT_ROW, .v_row_rot = kv->rot_v == KV_ROT_ROW, .scale = 1.0f / sqrtf((float)hd), .out = c->datt,
    };
    /* a cache rotated per head: q rotated the same way, the output rotated back */
    if (gpu_attn_rot(g, &a, c->p.flash_attn, kv->rot_k == KV_ROT_HEAD, kv->rot_v == KV_ROT_HEAD)) return -1;
    /* the last residual add is fused with the next norm: the next layer's attention norm,
     * or the output norm (llama_forward), or none when the CPU or another card takes over */
    const float *next_norm =
        il + 1 < c->n_gpu && m->card_of[il + 1] == m->card_of[il] ? m->glayers[il + 1].attn_norm : NULL;
    /* wo and down add their rows to x and make the next norm's activations themselves where
     * the backend can (gpu_matmul_norm: one launch), else the product, then add and norm */
    gpu_quant_next(g, &l->w_gate, T);
    if (gpu_product_add_norm(c, &l->wo, c->datt, T, l->ffn_norm)) return -1;
    gpu_quant_next(g, &l->w_down, T);
    if (gpu_matmul_swiglu(g, &l->w_gate, &l->w_up, c->dxn, T, c->dgate, c->dup)) return -1;
    if (next_norm) {
        gpu_quant_next(g, &m->glayers[il + 1].wq, T);
        return gpu_product_add_norm(c, &l->w_down, c->dgate, T, next_norm);
    }
    return gpu_matmul(g, &l->w_down, c->dgate, T, c->dxn) || gpu_add(g, c->dx, c->dxn, TE);
}

static int gpu_failed(hearth_ctx *c) {
    snprintf(c->err, sizeof c->err, "%s", gpu_ctx_error(c->g));
    return -1;
}

/* the layers and the output norm and product of one micro-batch, all on card 0 */
static int gpu_step(hearth_ctx *c, int T, int pos0, int want_from) {
    const hparams *hp = &c->m->hp;
    for (int il = 0; il < c->n_gpu; il++)
        if (gpu_layer(c, il, T, pos0)) return -1;
    const float *xo = c->dx + (size_t)want_from * hp->n_embd;
    int n_out = T - want_from;
    gpu_quant_next(c->g, &c->m->g_output, n_out);
    return gpu_rmsnorm(c->g, c->dxn, xo, c->m->g_output_norm, n_out, hp->n_embd, hp->eps) ||
           gpu_matmul(c->g, &c->m->g_output, c->dxn, n_out, c->dlogits);
}

/* Can this one-token step replay a captured graph? Everything on one card, the position
 * the only thing that changes (the cache's K offsets are set by the first batch, pos 0). */
static int graph_ok(hearth_ctx *c, int T, int pos0, int want_from) {
    const hparams *hp = &c->m->hp;
    if (c->graph_state < 0 || T != 1 || pos0 <= 0 || want_from != 0 || c->n_cards != 1 || !c->gpu_output ||
        c->n_gpu != hp->n_layer)
        return 0;
    if (c->graph_state == 0 && getenv("HEARTH_NO_GRAPH")) { c->graph_state = -1; return 0; }
    kv_cache *kv = &c->kv;
    attn_args a = { .T = 1, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
                    .pos0 = pos0, .n_cells = pos0 + 1, .q = c->dq, .k = kv_dk(kv, 0), .v = kv_dv(kv, 0),
                    .k_row_bytes = kv->kb, .v_row_bytes = kv->vb, .type_k = kv->type_k, .type_v = kv->type_v,
                    .row = kv->row, .k_row_rot = kv->rot_k == KV_ROT_ROW, .v_row_rot = kv->rot_v == KV_ROT_ROW,
                    .scale = 1.0f, .out = c->datt };
    return gpu_attn_pos_ok(&a, c->p.flash_attn);
}

/* The queued part of a graph step; with step_io 2, its input and output kernels too (a
 * capture holds them) */
static int graph_body(hearth_ctx *c, int pos0) {
    gpu_ctx *g = c->g;
    const hparams *hp = &c->m->hp;
    if (c->step_io == 2 && gpu_step_in(g, c->dx, c->hx, hp->n_embd)) return -1;
    if (gpu_step(c, 1, pos0, 0)) return -1;
    return c->step_io == 2 ? gpu_step_out(g, c->hl, c->dlogits, hp->n_vocab) : 0;
}

/* One decode step through a CUDA graph: the first step runs uncaptured (so every scratch
 * buffer has its size), the second is captured, later ones replay the kept graph that suits
 * their cells or capture one. The position is on the card (or in pinned memory for
 * step_io 2) before. Returns 0 when the step is queued, -1 on an error, 1 when a capture
 * failed: graphs are off for this context from then on and the caller runs the step the
 * ordinary way. */
static int gpu_step_graph(hearth_ctx *c, int pos0) {
    gpu_ctx *g = c->g;
    gpu_pos_mode(g, 1, c->kv.n_ctx);
    int rc = 0;
    if (gpu_graph_pick(g, pos0 + 1)) {
        rc = gpu_graph_launch(g);
    } else if (c->graph_state == 0) {
        rc = graph_body(c, pos0);
        c->graph_state = 1;
    } else {
        rc = gpu_graph_begin(g);
        if (!rc) {
            int ok = graph_body(c, pos0) == 0;
            rc = gpu_graph_end(g, ok);
            if (!rc) rc = gpu_graph_launch(g);
        }
        if (rc) {
            log_warn("decode steps run without a CUDA graph from here on: %s", gpu_ctx_error(g));
            c->graph_state = -1;
            rc = 1;
        }
    }
    gpu_pos_mode(g, 0, 0);
    return rc;
}

/* HEARTH_STEP_TIMES=1 (measuring): the host's part of graph steps on stderr every 128 steps,
 * mean us: the caller's time between steps, the input prepared, the step queued (launch),
 * the wait for it (the card's time and the wake-up) */
static double step_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void step_times(int phase) {
    static int on = -1, n;
    static double t_prev_end, t_mark, acc[4];
    if (on < 0) on = getenv("HEARTH_STEP_TIMES") != NULL;
    if (!on) return;
    const double t = step_now_us();
    if (phase == 0) {
        if (t_prev_end > 0 && t - t_prev_end < 1e5) acc[0] += t - t_prev_end;
    } else {
        acc[phase] += t - t_mark;
    }
    t_mark = t;
    if (phase == 3) {
        t_prev_end = t;
        if (++n == 128) {
            fprintf(stderr, "step times (us, mean of %d): between %.1f, input %.1f, launch %.1f, wait %.1f\n", n,
                    acc[0] / (n - 1), acc[1] / n, acc[2] / n, acc[3] / n);
            n = 0;
            t_prev_end = 0;
            memset(acc, 0, sizeof acc);
        }
    }
}

/* A one-token step through a graph, its x made in c->x: the logits into out, or left where
 * the graph wrote them (c->logits_at). 0 done, -1 failed (c->err set), 1 the capture failed
 * and nothing ran: the caller runs the step the ordinary way. */
static int graph_forward(hearth_ctx *c, int pos0, float *out) {
    if (ctx_use_card(c, 0)) return -1;
    gpu_ctx *g = c->g;
    const size_t xbytes = sizeof(float) * (size_t)c->m->hp.n_embd, lbytes = sizeof(float) * (size_t)c->m->hp.n_vocab;
    const int io = c->step_io;
    if (io) {
        memcpy(c->hx, c->x, xbytes);
        *c->hpos = pos0;
        if (io == 1 && (gpu_pos_in(g) || gpu_to_device(g, c->dx, c->hx, xbytes))) return gpu_failed(c);
    } else if (gpu_to_device(g, c->dx, c->x, xbytes) || gpu_set_pos(g, pos0)) {
        return gpu_failed(c);
    }
    step_times(1);
    const int rc = gpu_step_graph(c, pos0);
    if (rc) return rc < 0 ? gpu_failed(c) : 1;
    if (io == 1 && gpu_to_host_async(g, c->hl, c->dlogits, lbytes)) return gpu_failed(c);
    step_times(2);
    if (io ? gpu_sync(g) : gpu_to_host(g, out, c->dlogits, lbytes)) return gpu_failed(c);
    step_times(3);
    /* the context's only row: read where the graph wrote it (no copy) */
    if (io && out == c->logits && c->logits_one) c->logits_at = c->hl;
    else if (io) memcpy(out, c->hl, lbytes);
    return 0;
}

int llama_forward(hearth_ctx *c, const int32_t *toks, int T, int want_from, float *out) {
    hearth_model *m = c->m;
    const hparams *hp = &m->hp;
    kv_cache *kv = &c->kv;
    const int E = hp->n_embd, hd = hp->head_dim;
    const int nq = hp->n_head * hd, nkv = hp->n_head_kv * hd;
    const int pos0 = kv->n;
    const size_t xbytes = sizeof(float) * (size_t)T * E;

    /* one-token decode with everything on one card: a CUDA graph */
    const int graph = c->n_gpu > 0 && graph_ok(c, T, pos0, want_from);
    if (graph) step_times(0);
    for (int t = 0; t < T; t++) cpu_get_row(&m->tok_embd, toks[t], c->x + (size_t)t * E);
    if (graph) {
        const int rc = graph_forward(c, pos0, out);
        if (rc < 0) return -1;
        if (rc == 0) {
            kv->tokens[pos0] = toks[0];
            kv->n = pos0 + 1;
            return 0;
        }
        /* the capture failed: this step goes the ordinary way below, as later ones will */
    }

    /* layers 0..n_gpu-1 on the card; the activations come back once if the CPU goes on */
    if (c->n_gpu > 0) {
        if (ctx_use_card(c, 0)) return -1;
        if (gpu_to_device(c->g, c->dx, c->x, xbytes)) return gpu_failed(c);
        for (int il = 0; il < c->n_gpu; il++) {
            int k = m->card_of[il];
            if (k != c->cur_card) {
                /* the activations move to the next card: peer-to-peer or through c->x */
                gpu_bufs *from = &c->cb[c->cur_card];
                if (ctx_use_card(c, k)) return -1;
                if (gpu_copy_peer(c->g, c->dx, from->g, from->dx, xbytes, m->cards[k].p2p_from_prev, c->x))
                    return gpu_failed(c);
            }
            if (gpu_layer(c, il, T, pos0)) return gpu_failed(c);
        }
        if (!c->gpu_output && gpu_to_host(c->g, c->x, c->dx, xbytes)) return gpu_failed(c);
    }

    for (int il = c->n_gpu; il < hp->n_layer; il++) {
        const layer_w *l = &m->layers[il];
        for (int t = 0; t < T; t++) cpu_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, l->attn_norm, E, hp->eps);
        const wtensor *qkv[3] = { &l->wq, &l->wk, &l->wv };
        float *qkv_out[3] = { c->q, c->k, c->v };
        cpu_matmul_n(c->pool, qkv, 3, c->xn, T, qkv_out);
        for (int t = 0; t < T; t++) {
            float pos = (float)(pos0 + t);
            cpu_rope(c->q + (size_t)t * nq, hp->n_head, hd, hp->n_rot, pos, hp->rope_base, hp->rope_freq_scale, m->rope_freqs);
            cpu_rope(c->k + (size_t)t * nkv, hp->n_head_kv, hd, hp->n_rot, pos, hp->rope_base, hp->rope_freq_scale, m->rope_freqs);
            /* a rotated K cache is matched by rotating q: (Hq).(Hk) = q.k */
            if (kv->rot_k == KV_ROT_HEAD)
                for (int h = 0; h < hp->n_head; h++) cpu_hadamard(c->q + (size_t)t * nq + h * hd, hd, 0);
        }
        kv_put(kv, il, pos0, T, c->k, c->v);
        attn_args a = {
            .T = T, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
            .pos0 = pos0, .n_cells = pos0 + T, .q = c->q,
            .k = kv_k(kv, il, 0), .v = kv_v(kv, il, 0), .k_row_bytes = kv->kb, .v_row_bytes = kv->vb,
            .type_k = kv->type_k, .type_v = kv->type_v,
            .row = kv->row, .k_row_rot = kv->rot_k == KV_ROT_ROW, .v_row_rot = kv->rot_v == KV_ROT_ROW, .scale = 1.0f / sqrtf((float)hd), .out = c->att,
        };
        if ((c->p.flash_attn ? cpu_attn_flash : cpu_attn_plain)(c->pool, &a) != 0) {
            snprintf(c->err, sizeof c->err, "out of memory for attention scratch");
            return -1;
        }
        /* a rotated V cache gives the rotated output: rotate it back */
        if (kv->rot_v == KV_ROT_HEAD)
            for (int h = 0; h < T * hp->n_head; h++) cpu_hadamard(c->att + (size_t)h * hd, hd, 1);
        cpu_matmul(c->pool, &l->wo, c->att, T, c->xn);
        for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->xn[i];

        for (int t = 0; t < T; t++) cpu_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, l->ffn_norm, E, hp->eps);
        const wtensor *gu[2] = { &l->w_gate, &l->w_up };
        float *gu_out[2] = { c->gate, c->up };
        cpu_matmul_n(c->pool, gu, 2, c->xn, T, gu_out);
        cpu_swiglu(c->gate, c->up, T * hp->n_ff);
        cpu_matmul(c->pool, &l->w_down, c->gate, T, c->xn);
        for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->xn[i];
    }

    for (int t = 0; t < T; t++) kv->tokens[pos0 + t] = toks[t];
    kv->n = pos0 + T;
    if (want_from >= T) return 0;
    int n_out = T - want_from;
    if (c->gpu_output) {
        const float *xo = c->dx + (size_t)want_from * E;
        gpu_quant_next(c->g, &m->g_output, n_out);
        if (gpu_rmsnorm(c->g, c->dxn, xo, m->g_output_norm, n_out, E, hp->eps) ||
            gpu_matmul(c->g, &m->g_output, c->dxn, n_out, c->dlogits) ||
            gpu_to_host(c->g, out, c->dlogits, sizeof(float) * (size_t)n_out * hp->n_vocab))
            return gpu_failed(c);
        return 0;
    }
    for (int t = 0; t < n_out; t++)
        cpu_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)(want_from + t) * E, m->output_norm, E, hp->eps);
    cpu_matmul(c->pool, &m->output, c->xn, n_out, out);
    return 0;
}
