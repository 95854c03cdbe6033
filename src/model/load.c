/* Loading a llama-family model: hyper-parameters from metadata, then every tensor checked
 * for presence, shape and type before the model is handed out. */
#include "model/model.h"
#include "quant/quant.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loader {
    hearth_model *m;
    const char *path;
    char *err; size_t errlen;
    char arch[32];
    size_t f32_used, f32_cap;
} loader;

static int lfail(loader *L, const char *fmt, ...) {
    int n = snprintf(L->err, L->errlen, "%s: ", L->path);
    if (n >= 0 && (size_t)n < L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int get_u32(loader *L, const char *suffix, int required, uint32_t def, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    const gguf_kv *kv = gguf_find_kv(L->m->f, key);
    uint32_t v = def;
    if (!kv) {
        if (required) return lfail(L, "missing metadata %s, which a %s model needs", key, L->arch);
    } else if (gguf_get_u32(L->m->f, key, &v) != 0) {
        return lfail(L, "metadata %s has type %d, expected an unsigned integer", key, kv->type);
    }
    if (v > (1u << 24)) return lfail(L, "metadata %s is %u, which is not a plausible size", key, v);
    *out = (int)v;
    return 0;
}

static int get_f32(loader *L, const char *suffix, int required, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    const gguf_kv *kv = gguf_find_kv(L->m->f, key);
    *out = def;
    if (!kv) return required ? lfail(L, "missing metadata %s, which a %s model needs", key, L->arch) : 0;
    if (gguf_get_f32(L->m->f, key, out) != 0)
        return lfail(L, "metadata %s has type %d, expected a number", key, kv->type);
    return 0;
}

/* Finds a tensor and checks its shape: ne1 == 0 means a 1-D tensor of ne0. */
static int get_tensor(loader *L, const char *name, int64_t ne0, int64_t ne1, int optional, const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(L->m->f, name);
    *out = t;
    if (!t) return optional ? 0 : lfail(L, "missing tensor %s", name);
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return lfail(L, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                     (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                     (long long)ne0, (long long)want1);
    return 0;
}

static int get_matrix(loader *L, const char *name, int64_t ne0, int64_t ne1, wtensor *w) {
    const gguf_tensor *t;
    if (get_tensor(L, name, ne0, ne1, 0, &t)) return -1;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = quant_row_bytes(t->type, ne0);
    w->data = t->data;
    return 0;
}

/* Norm vectors are used as f32; other storage types are converted once here. */
static int get_vector(loader *L, const char *name, int64_t n, const float **out) {
    const gguf_tensor *t;
    if (get_tensor(L, name, n, 0, 0, &t)) return -1;
    if (t->type == QT_F32) { *out = t->data; return 0; }
    if (L->f32_used + (size_t)n > L->f32_cap) return lfail(L, "internal: norm storage exhausted");
    float *dst = L->m->f32_store + L->f32_used;
    quant_get(t->type)->to_float(t->data, dst, n);
    L->f32_used += (size_t)n;
    *out = dst;
    return 0;
}

static int load_hparams(loader *L) {
    hearth_model *m = L->m;
    hparams *hp = &m->hp;
    gguf_str s;
    if (gguf_get_str(m->f, "general.architecture", &s) != 0)
        return lfail(L, "missing metadata general.architecture");
    snprintf(L->arch, sizeof L->arch, "%.*s", (int)(s.n < 31 ? s.n : 31), s.p);
    if (strcmp(L->arch, "llama") != 0 && strcmp(L->arch, "mistral") != 0)
        return lfail(L, "general.architecture is \"%s\"; hearth runs llama-family models (llama, mistral)", L->arch);
    if (get_u32(L, "embedding_length", 1, 0, &hp->n_embd) || get_u32(L, "block_count", 1, 0, &hp->n_layer) ||
        get_u32(L, "attention.head_count", 1, 0, &hp->n_head) || get_u32(L, "feed_forward_length", 1, 0, &hp->n_ff) ||
        get_u32(L, "context_length", 0, 2048, &hp->n_ctx_train) ||
        get_u32(L, "attention.head_count_kv", 0, (uint32_t)hp->n_head, &hp->n_head_kv))
        return -1;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_ff <= 0 || hp->n_head_kv <= 0)
        return lfail(L, "metadata gives a zero size (embedding %d, blocks %d, heads %d, kv heads %d, ffn %d)",
                     hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    if (hp->n_head % hp->n_head_kv)
        return lfail(L, "%s.attention.head_count %d is not a multiple of head_count_kv %d", L->arch, hp->n_head, hp->n_head_kv);
    int hd_default = hp->n_embd / hp->n_head;
    int rot = 0;
    if (get_u32(L, "rope.dimension_count", 0, 0, &rot)) return -1;
    if (get_u32(L, "attention.key_length", 0, (uint32_t)(rot ? rot : hd_default), &hp->head_dim)) return -1;
    int vlen;
    if (get_u32(L, "attention.value_length", 0, (uint32_t)hp->head_dim, &vlen)) return -1;
    if (vlen != hp->head_dim)
        return lfail(L, "%s.attention.value_length %d differs from key_length %d, which hearth does not support", L->arch, vlen, hp->head_dim);
    hp->n_rot = rot ? rot : hp->head_dim;
    if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return lfail(L, "head size %d with %d rotary dimensions is not supported", hp->head_dim, hp->n_rot);
    if (get_f32(L, "attention.layer_norm_rms_epsilon", 0, 1e-5f, &hp->eps) ||
        get_f32(L, "rope.freq_base", 0, 10000.0f, &hp->rope_base))
        return -1;
    hp->rope_freq_scale = 1.0f;
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", L->arch);
    if (gguf_get_str(m->f, key, &s) == 0 && !(s.n == 4 && !memcmp(s.p, "none", 4))) {
        if (!(s.n == 6 && !memcmp(s.p, "linear", 6)))
            return lfail(L, "%s is \"%.*s\"; hearth supports none and linear so far", key, (int)s.n, s.p);
        float factor = 1.0f;
        if (get_f32(L, "rope.scaling.factor", 0, 1.0f, &factor)) return -1;
        if (factor > 0) hp->rope_freq_scale = 1.0f / factor;
    } else {
        float factor = 0;
        if (get_f32(L, "rope.scale_linear", 0, 0.0f, &factor)) return -1;
        if (factor > 0) hp->rope_freq_scale = 1.0f / factor;
    }
    snprintf(key, sizeof key, "%s.expert_count", L->arch);
    uint32_t ne;
    if (gguf_get_u32(m->f, key, &ne) == 0 && ne > 0)
        return lfail(L, "%s is %u: mixture-of-experts models are not supported yet", key, ne);
    return 0;
}

static int load_tensors(loader *L) {
    hearth_model *m = L->m;
    hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    if (get_matrix(L, "token_embd.weight", E, hp->n_vocab, &m->tok_embd)) return -1;
    /* Nothing is sized from metadata alone: a corrupt block_count or embedding_length must
     * fail with a message, not ask for terabytes. Every block needs 9 tensors, so when the
     * file cannot back block_count, some tensor of the first n_tensors/9 + 1 blocks is
     * missing: name it. */
    static const char *const need[] = { "attn_norm.weight", "ffn_norm.weight", "attn_q.weight", "attn_k.weight",
        "attn_v.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight" };
    const int n_need = (int)(sizeof need / sizeof need[0]);
    if ((uint64_t)hp->n_layer * (uint64_t)n_need > m->f->n_tensors) {
        for (int i = 0; i < hp->n_layer; i++)
            for (int k = 0; k < n_need; k++) {
                char n[96];
                snprintf(n, sizeof n, "blk.%d.%s", i, need[k]);
                if (!gguf_find_tensor(m->f, n))
                    return lfail(L, "missing tensor %s (%s.block_count is %d, the file has %llu tensors)", n,
                                 L->arch, hp->n_layer, (unsigned long long)m->f->n_tensors);
            }
    }
    /* f32 copies are needed only for norm vectors stored in another type, and each of those
     * is backed by the file. */
    L->f32_cap = 0;
    for (int i = -1; i < hp->n_layer; i++)
        for (int k = 0; k < (i < 0 ? 1 : 2); k++) {
            char n[96];
            if (i < 0) snprintf(n, sizeof n, "output_norm.weight");
            else snprintf(n, sizeof n, "blk.%d.%s", i, need[k]);
            const gguf_tensor *nt = gguf_find_tensor(m->f, n);
            if (nt && nt->type != QT_F32 && nt->ne[0] == E) L->f32_cap += (size_t)E;
        }
    m->f32_store = malloc(sizeof(float) * (L->f32_cap ? L->f32_cap : 1));
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->f32_store || !m->layers) return lfail(L, "out of memory");
    if (get_vector(L, "output_norm.weight", E, &m->output_norm)) return -1;
    const gguf_tensor *t;
    if (get_tensor(L, "output.weight", E, hp->n_vocab, 1, &t)) return -1;
    if (t) { if (get_matrix(L, "output.weight", E, hp->n_vocab, &m->output)) return -1; }
    else m->output = m->tok_embd; /* tied embeddings */
    if (get_tensor(L, "rope_freqs.weight", hp->n_rot / 2, 0, 1, &t)) return -1;
    if (t) {
        if (t->type != QT_F32) return lfail(L, "tensor rope_freqs.weight must be f32");
        m->rope_freqs = t->data;
    }
    for (int i = 0; i < hp->n_layer; i++) {
        layer_w *l = &m->layers[i];
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", i, s), n)
        if (get_vector(L, NAME("attn_norm.weight"), E, &l->attn_norm) ||
            get_vector(L, NAME("ffn_norm.weight"), E, &l->ffn_norm) ||
            get_matrix(L, NAME("attn_q.weight"), E, Q, &l->wq) ||
            get_matrix(L, NAME("attn_k.weight"), E, KV, &l->wk) ||
            get_matrix(L, NAME("attn_v.weight"), E, KV, &l->wv) ||
            get_matrix(L, NAME("attn_output.weight"), Q, E, &l->wo) ||
            get_matrix(L, NAME("ffn_gate.weight"), E, hp->n_ff, &l->w_gate) ||
            get_matrix(L, NAME("ffn_up.weight"), E, hp->n_ff, &l->w_up) ||
            get_matrix(L, NAME("ffn_down.weight"), hp->n_ff, E, &l->w_down))
            return -1;
        const char *bias[] = { "attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias" };
        for (int b = 0; b < 4; b++)
            if (gguf_find_tensor(m->f, NAME(bias[b])))
                return lfail(L, "tensor %s: attention biases are not supported for llama models", n);
#undef NAME
    }
    return 0;
}

/* Touch every page of the mapping, so a person sees the disk read as progress at load
 * rather than as a slow first request; the sum keeps the reads from being optimized out. */
static void read_in(const gguf_file *f, void (*progress)(float, void *), void *ud) {
    const size_t chunk = 64u << 20, page = 4096;
    volatile uint8_t sink = 0;
    uint8_t acc = 0;
    progress(0.0f, ud);
    for (size_t o = 0; o < f->size; o += chunk) {
        size_t end = o + chunk < f->size ? o + chunk : f->size;
        for (size_t i = o; i < end; i += page) acc ^= f->map[i];
        progress((float)end / (float)f->size, ud);
    }
    sink = acc;
    (void)sink;
    if (f->size == 0) progress(1.0f, ud);
}

hearth_model_params hearth_model_default_params(void) {
    hearth_model_params p = { 0 };
    return p;
}

int hearth_model_load(const char *path, const hearth_model_params *p, hearth_model **out, char *err, size_t errlen) {
    *out = NULL;
    hearth_model *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, errlen, "%s: out of memory", path); return -1; }
    loader L = { .m = m, .path = path, .err = err, .errlen = errlen };
    m->f = gguf_open(path, err, errlen);
    if (!m->f) { free(m); return -1; }
    m->vocab = tok_load(m->f, err, errlen);
    if (!m->vocab || load_hparams(&L)) goto bad;
    m->hp.n_vocab = tok_n_vocab(m->vocab);
    if (load_tensors(&L)) goto bad;
    m->n_threads = p && p->n_threads > 0 ? p->n_threads : pool_default_threads();

    hparams *hp = &m->hp;
    gguf_str s;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (gguf_get_str(m->f, "general.name", &s) == 0) m->name = strndup(s.p, s.n);
    else m->name = strdup(base);
    hearth_model_info *in = &m->info;
    in->arch = "llama";
    in->name = m->name ? m->name : base;
    in->path = m->f->path;
    in->n_vocab = hp->n_vocab; in->n_ctx_train = hp->n_ctx_train; in->n_embd = hp->n_embd;
    in->n_layer = hp->n_layer; in->n_head = hp->n_head; in->n_head_kv = hp->n_head_kv;
    in->head_dim = hp->head_dim; in->n_ff = hp->n_ff;
    in->file_bytes = m->f->size;
    for (uint64_t i = 0; i < m->f->n_tensors; i++) {
        const gguf_tensor *t = &m->f->tensors[i];
        in->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    if (p && p->progress) read_in(m->f, p->progress, p->progress_ud);
    in->bos = tok_bos(m->vocab);
    in->eos = tok_eos(m->vocab);
    in->add_bos = tok_add_bos(m->vocab);
    if (p && p->n_gpu_layers != 0 && model_place_gpu(m, p->n_gpu_layers, p->tensor_split, p->n_tensor_split, err, errlen)) goto bad;
    *out = m;
    return 0;
bad:
    hearth_model_free(m);
    return -1;
}

void hearth_model_free(hearth_model *m) {
    if (!m) return;
    model_free_gpu(m);
    tok_free(m->vocab);
    gguf_close(m->f);
    free(m->layers);
    free(m->f32_store);
    free(m->name);
    free(m);
}

const hearth_model_info *hearth_model_get_info(const hearth_model *m) { return &m->info; }

char *hearth_model_meta_str(const hearth_model *m, const char *key) {
    gguf_str s;
    if (gguf_get_str(m->f, key, &s) != 0) return NULL;
    return strndup(s.p, s.n);
}

int hearth_tokenize(const hearth_model *m, const char *text, size_t len, int add_bos, int parse_special,
                    int32_t *out, int max) {
    return tok_encode(m->vocab, text, len, add_bos, parse_special, out, max);
}

int hearth_token_to_piece(const hearth_model *m, int32_t tok, char *buf, size_t n) {
    return tok_piece(m->vocab, tok, buf, n);
}

int hearth_token_is_eog(const hearth_model *m, int32_t tok) {
    return tok >= 0 && (tok == m->info.eos);
}
