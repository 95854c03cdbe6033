/* What one generated token costs in memory traffic, for `hearth bench`: a generation step
 * is a matrix-vector product per weight, so it reads every layer's weights once, plus the
 * K and V rows of every cell it attends to. The token embedding table is not read, only
 * one of its rows (unless it doubles as the output matrix, which is counted as output). */
#include "model/model.h"
#include "quant/quant.h"

#include <stdio.h>
#include <string.h>

static uint64_t wbytes(const wtensor *w) { return (uint64_t)w->row_bytes * (uint64_t)w->ne1; }

uint64_t hearth_model_token_weight_bytes(const hearth_model *m) {
    const hparams *hp = &m->hp;
    uint64_t b = wbytes(&m->output) + (uint64_t)hp->n_embd * sizeof(float);
    for (int i = 0; i < hp->n_layer; i++) {
        const layer_w *l = &m->layers[i];
        b += wbytes(&l->wq) + wbytes(&l->wk) + wbytes(&l->wv) + wbytes(&l->wo) +
             wbytes(&l->w_gate) + wbytes(&l->w_up) + wbytes(&l->w_down) + 2 * (uint64_t)hp->n_embd * sizeof(float);
    }
    return b;
}

uint64_t hearth_ctx_kv_read_bytes(const hearth_ctx *c, int n_cells) {
    return ((uint64_t)c->kv.kb + (uint64_t)c->kv.vb) * (uint64_t)c->kv.n_layer * (uint64_t)(n_cells > 0 ? n_cells : 0);
}

/* llama.cpp's general.file_type numbers, for the names its tools print. */
static const char *ftype_name(uint32_t ft) {
    switch (ft) {
    case 0: return "F32";      case 1: return "F16";      case 2: return "Q4_0";     case 3: return "Q4_1";
    case 7: return "Q8_0";     case 8: return "Q5_0";     case 9: return "Q5_1";     case 10: return "Q2_K";
    case 11: return "Q3_K_S";  case 12: return "Q3_K_M";  case 13: return "Q3_K_L";  case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";  case 16: return "Q5_K_S";  case 17: return "Q5_K_M";  case 18: return "Q6_K";
    case 25: return "IQ4_NL";  case 32: return "BF16";
    default: return NULL;
    }
}

const char *hearth_model_type_name(const hearth_model *m) {
    static _Thread_local char buf[96];
    const char *wt = NULL;
    uint32_t ft;
    if (gguf_get_u32(m->f, "general.file_type", &ft) == 0) wt = ftype_name(ft);
    char tmp[32];
    if (!wt) {   /* the type holding the most weight bytes */
        uint64_t by[QT_COUNT] = { 0 };
        for (uint64_t i = 0; i < m->f->n_tensors; i++)
            if (m->f->tensors[i].type >= 0 && m->f->tensors[i].type < QT_COUNT) by[m->f->tensors[i].type] += m->f->tensors[i].nbytes;
        int best = 0;
        for (int t = 1; t < QT_COUNT; t++) if (by[t] > by[best]) best = t;
        snprintf(tmp, sizeof tmp, "%s", quant_name(best, NULL, 0));
        for (char *p = tmp; *p; p++) if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
        wt = tmp;
    }
    double p = (double)m->info.n_params;
    if (p >= 1e9) snprintf(buf, sizeof buf, "llama %.1fB %s", p / 1e9, wt);
    else snprintf(buf, sizeof buf, p >= 1e7 ? "llama %.0fM %s" : "llama %.2fM %s", p / 1e6, wt);
    return buf;
}
