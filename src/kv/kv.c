#include "kv/kv.h"
#include "backend/backend.h"
#include "backend/gpu.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pad_to(int n, int b) { return (n + b - 1) / b * b; }

static const int cache_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL };
#define N_CACHE_TYPES (int)(sizeof cache_types / sizeof cache_types[0])

int kv_type_ok(int type) {
    for (int i = 0; i < N_CACHE_TYPES; i++)
        if (cache_types[i] == type) return quant_get(type) != NULL;
    return 0;
}

const char *kv_type_list(void) {
    static char buf[128];
    if (!buf[0]) {
        size_t o = 0;
        for (int i = 0; i < N_CACHE_TYPES; i++) {
            const quant_traits *qt = quant_get(cache_types[i]);
            if (qt) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? ", " : "", qt->name);
        }
    }
    return buf;
}

size_t kv_row_bytes(int type, int row) {
    return quant_row_bytes(type, pad_to(row, quant_get(type)->block));
}

/* Rotation spreads an outlier over its whole Hadamard block before block quantization,
 * which lowers the error of quantized types; float types gain nothing from it. */
static int is_quantized(int type) { return type != QT_F32 && type != QT_F16 && type != QT_BF16; }

static int rot_mode(int head_dim, int row, int block) {
    int hb = cpu_hadamard_block(head_dim), rb = cpu_hadamard_block(row);
    if (hb >= block || (hb > 1 && rb <= hb)) return KV_ROT_HEAD;
    return rb > 1 ? KV_ROT_ROW : KV_ROT_NONE;
}

int kv_init(kv_cache *kv, int n_ctx, int n_layer, int n_head_kv, int head_dim, int type_k, int type_v,
            int rotate, char *err, size_t errlen) {
    memset(kv, 0, sizeof *kv);
    char nb[32];
    if (!kv_type_ok(type_k) || !kv_type_ok(type_v)) {
        snprintf(err, errlen, "cache type %s cannot hold a KV cache on the CPU; valid types: %s",
                 quant_name(kv_type_ok(type_k) ? type_v : type_k, nb, sizeof nb), kv_type_list());
        return -1;
    }
    const quant_traits *tk = quant_get(type_k), *tv = quant_get(type_v);
    kv->n_ctx = n_ctx; kv->n_layer = n_layer; kv->n_head_kv = n_head_kv; kv->head_dim = head_dim;
    kv->row = n_head_kv * head_dim;
    kv->type_k = type_k; kv->type_v = type_v;
    kv->row_k = pad_to(kv->row, tk->block);
    kv->row_v = pad_to(kv->row, tv->block);
    kv->kb = quant_row_bytes(type_k, kv->row_k);
    kv->vb = quant_row_bytes(type_v, kv->row_v);
    kv->rot_k = rotate && is_quantized(type_k) ? rot_mode(head_dim, kv->row, tk->block) : KV_ROT_NONE;
    kv->rot_v = rotate && is_quantized(type_v) ? rot_mode(head_dim, kv->row, tv->block) : KV_ROT_NONE;
    size_t cells = (size_t)n_layer * n_ctx;
    kv->k = malloc(cells * kv->kb);
    kv->v = malloc(cells * kv->vb);
    kv->tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    kv->k_mu = calloc((size_t)n_layer * kv->row_k, sizeof(float));
    if (!kv->k || !kv->v || !kv->tokens || !kv->k_mu) {
        snprintf(err, errlen, "cannot allocate the KV cache (%.2f MiB): out of memory",
                 (double)(cells * (kv->kb + kv->vb)) / (1024.0 * 1024.0));
        kv_free(kv);
        return -1;
    }
    return 0;
}

void kv_free_gpu(kv_cache *kv) {
    for (int k = 0; k < kv->n_gcard; k++) {
        gpu_free(kv->gdev[k], kv->dk[k]);
        gpu_free(kv->gdev[k], kv->dv[k]);
        gpu_free(kv->gdev[k], kv->dmu[k]);
        kv->dk[k] = kv->dv[k] = NULL;
        kv->dmu[k] = NULL;
    }
    free(kv->gcard); free(kv->dkl); free(kv->dvl); free(kv->dmul);
    kv->gcard = NULL;
    kv->dkl = kv->dvl = NULL;
    kv->dmul = NULL;
    kv->n_gcard = 0;
    kv->n_gpu = 0;
}

void kv_free(kv_cache *kv) {
    kv_free_gpu(kv);
    free(kv->k); free(kv->v); free(kv->tokens); free(kv->k_mu);
    memset(kv, 0, sizeof *kv);
}

static void rotate(const kv_cache *kv, int mode, float *x, int inverse) {
    if (mode == KV_ROT_ROW) { cpu_hadamard(x, kv->row, inverse); return; }
    for (int h = 0; h < kv->n_head_kv; h++) cpu_hadamard(x + h * kv->head_dim, kv->head_dim, inverse);
}

/* K offset. A query's scores over the cells all change by the same amount, q.mu, when
 * every stored K row has the same vector mu subtracted, and softmax ignores that. Trained
 * models have channels of K with a large, nearly constant value (the slow RoPE pairs);
 * subtracting it before quantizing shrinks the block scale for every other value. mu is
 * the mean K (as stored: rotated) of the first batch put into an empty cache, BOS left
 * out, and stays fixed while that cache lives, so the invariance holds exactly. */
static void set_offset(kv_cache *kv, int layer, int T, const float *k) {
    float *mu = kv->k_mu + (size_t)layer * kv->row_k;
    memset(mu, 0, sizeof(float) * (size_t)kv->row_k);
    if (T < 3) return;
    float tmp[kv->row_k];
    memset(tmp, 0, sizeof tmp);
    for (int t = 1; t < T; t++) {
        memcpy(tmp, k + (size_t)t * kv->row, sizeof(float) * (size_t)kv->row);
        if (kv->rot_k) rotate(kv, kv->rot_k, tmp, 0);
        for (int i = 0; i < kv->row; i++) mu[i] += tmp[i];
    }
    for (int i = 0; i < kv->row; i++) mu[i] /= (float)(T - 1);
}

static void put_row(const kv_cache *kv, int type, int padded, int rot, const float *mu, const float *x, uint8_t *dst) {
    const quant_traits *qt = quant_get(type);
    if (padded == kv->row && !rot && !mu) { qt->from_float(x, dst, padded); return; }
    float tmp[padded];
    memcpy(tmp, x, sizeof(float) * (size_t)kv->row);
    memset(tmp + kv->row, 0, sizeof(float) * (size_t)(padded - kv->row));
    if (rot) rotate(kv, rot, tmp, 0);
    if (mu) for (int i = 0; i < kv->row; i++) tmp[i] -= mu[i];
    qt->from_float(tmp, dst, padded);
}

void kv_put(kv_cache *kv, int layer, int pos0, int T, const float *k, const float *v) {
    int offset = is_quantized(kv->type_k);
    if (offset && pos0 == 0) set_offset(kv, layer, T, k);
    const float *mu = offset ? kv->k_mu + (size_t)layer * kv->row_k : NULL;
    for (int t = 0; t < T; t++) {
        put_row(kv, kv->type_k, kv->row_k, kv->rot_k, mu, k + (size_t)t * kv->row, kv_k(kv, layer, pos0 + t));
        put_row(kv, kv->type_v, kv->row_v, kv->rot_v, NULL, v + (size_t)t * kv->row, kv_v(kv, layer, pos0 + t));
    }
}

void kv_shift(kv_cache *kv, int n_keep, int n_discard, const kv_rope *rope) {
    if (n_discard <= 0 || n_keep < 0 || n_keep + n_discard > kv->n) return;
    int n_move = kv->n - n_keep - n_discard;
    const quant_traits *tk = quant_get(kv->type_k);
    float row[kv->row_k];
    for (int l = kv->n_gpu; l < kv->n_layer; l++) {
        memmove(kv_k(kv, l, n_keep), kv_k(kv, l, n_keep + n_discard), (size_t)n_move * kv->kb);
        memmove(kv_v(kv, l, n_keep), kv_v(kv, l, n_keep + n_discard), (size_t)n_move * kv->vb);
        const float *mu = kv->k_mu + (size_t)l * kv->row_k; /* all zero for float types */
        for (int c = n_keep; c < n_keep + n_move; c++) {
            uint8_t *kr = kv_k(kv, l, c);
            tk->to_float(kr, row, kv->row_k);
            for (int i = 0; i < kv->row; i++) row[i] += mu[i];
            if (kv->rot_k) rotate(kv, kv->rot_k, row, 1);
            cpu_rope(row, kv->n_head_kv, kv->head_dim, rope->n_rot, (float)-n_discard, rope->base,
                     rope->freq_scale, rope->freq_factors);
            if (kv->rot_k) rotate(kv, kv->rot_k, row, 0);
            for (int i = 0; i < kv->row; i++) row[i] -= mu[i];
            tk->from_float(row, kr, kv->row_k);
        }
    }
    memmove(kv->tokens + n_keep, kv->tokens + n_keep + n_discard, sizeof(int32_t) * (size_t)n_move);
    kv->n -= n_discard;
}

int kv_init_gpu(kv_cache *kv, int n_gpu, const int *card_of, const int *dev_of_card, int n_card, char *err,
                size_t errlen) {
    if (n_gpu <= 0) return 0;
    if (n_card < 1 || n_card > 16) { snprintf(err, errlen, "KV cache: %d cards (1..16)", n_card); return -1; }
    kv->n_gcard = n_card;
    for (int k = 0; k < n_card; k++) { kv->gdev[k] = dev_of_card[k]; kv->gfirst[k] = -1; kv->gn[k] = 0; }
    kv->gcard = malloc(sizeof(int) * (size_t)n_gpu);
    kv->dkl = malloc(sizeof(uint8_t *) * (size_t)n_gpu);
    kv->dvl = malloc(sizeof(uint8_t *) * (size_t)n_gpu);
    kv->dmul = malloc(sizeof(float *) * (size_t)n_gpu);
    if (!kv->gcard || !kv->dkl || !kv->dvl || !kv->dmul) { snprintf(err, errlen, "out of memory"); goto fail; }
    for (int l = 0; l < n_gpu; l++) {
        int k = card_of[l];
        if (k < 0 || k >= n_card || (l > 0 && k < card_of[l - 1])) {
            snprintf(err, errlen, "KV cache: layer %d has card %d out of order", l, k);
            goto fail;
        }
        kv->gcard[l] = k;
        if (kv->gfirst[k] < 0) kv->gfirst[k] = l;
        kv->gn[k]++;
    }
    for (int k = 0; k < n_card; k++) {
        int n = kv->gn[k], dev = kv->gdev[k];
        if (n == 0) continue;
        char what[96];
        size_t cells = (size_t)n * kv->n_ctx;
        snprintf(what, sizeof what, "the KV cache's K of %d layers", n);
        if (!(kv->dk[k] = gpu_malloc(dev, cells * kv->kb, what, err, errlen))) goto fail;
        snprintf(what, sizeof what, "the KV cache's V of %d layers", n);
        if (!(kv->dv[k] = gpu_malloc(dev, cells * kv->vb, what, err, errlen))) goto fail;
        if (!(kv->dmu[k] = gpu_malloc(dev, sizeof(float) * (size_t)n * kv->row_k, "the KV cache's K offsets", err, errlen)))
            goto fail;
        /* offsets start at zero, as kv_init's calloc leaves the host ones */
        if (gpu_upload(dev, kv->dmu[k], kv->k_mu + (size_t)kv->gfirst[k] * kv->row_k, sizeof(float) * (size_t)n * kv->row_k,
                       err, errlen))
            goto fail;
        for (int i = 0; i < n; i++) {
            int l = kv->gfirst[k] + i;
            kv->dkl[l] = kv->dk[k] + (size_t)i * kv->n_ctx * kv->kb;
            kv->dvl[l] = kv->dv[k] + (size_t)i * kv->n_ctx * kv->vb;
            kv->dmul[l] = kv->dmu[k] + (size_t)i * kv->row_k;
        }
    }
    kv->n_gpu = n_gpu;
    return 0;
fail:
    kv_free_gpu(kv);
    return -1;
}

static gpu_kv_layout layout(const kv_cache *kv) {
    gpu_kv_layout L = { kv->row, kv->row_k, kv->row_v, kv->head_dim, kv->n_head_kv,
                        kv->type_k, kv->type_v, kv->rot_k, kv->rot_v, kv->kb, kv->vb };
    return L;
}

void kv_store_gpu(const kv_cache *kv, int layer, int pos0, gpu_kv_store *st) {
    st->L = layout(kv);
    st->dk = kv_dk(kv, layer);
    st->dv = kv_dv(kv, layer);
    st->mu = is_quantized(kv->type_k) ? kv->dmul[layer] : NULL;
    st->set_mu = pos0 == 0;
}

int kv_put_gpu(kv_cache *kv, struct gpu_ctx *g, int layer, int pos0, int T, const float *k, const float *v) {
    gpu_kv_store st;
    kv_store_gpu(kv, layer, pos0, &st);
    return gpu_kv_put(g, &st.L, st.dk, st.dv, st.mu, st.set_mu, pos0, T, k, v);
}

int kv_shift_gpu(kv_cache *kv, struct gpu_ctx *const *gs, int n_keep, int n_discard, const kv_rope *rope) {
    if (n_discard <= 0 || n_keep < 0 || n_keep + n_discard > kv->n) return 0;
    gpu_kv_layout L = layout(kv);
    for (int l = 0; l < kv->n_gpu; l++) {
        struct gpu_ctx *g = gs[kv->gcard[l]];
        if ((l == 0 || kv->gcard[l] != kv->gcard[l - 1]) && gpu_ctx_activate(g)) return -1;
        const float *mu = is_quantized(kv->type_k) ? kv->dmul[l] : NULL;
        if (gpu_kv_shift(g, &L, kv_dk(kv, l), kv_dv(kv, l), mu, kv->n, n_keep, n_discard, rope->n_rot, rope->base,
                         rope->freq_scale, rope->freq_factors))
            return -1;
    }
    return 0;
}

uint64_t kv_gpu_bytes(const kv_cache *kv, int k) {
    if (k < 0 || k >= kv->n_gcard) return 0;
    return (uint64_t)kv->gn[k] * kv->n_ctx * (kv->kb + kv->vb);
}

void kv_describe_cpu(const kv_cache *kv, char *buf, size_t n) {
    const double M = 1024.0 * 1024.0;
    const char *tk = quant_get(kv->type_k)->name, *tv = quant_get(kv->type_v)->name;
    int ncpu = kv->n_layer - kv->n_gpu;
    if (n) buf[0] = 0;
    if (ncpu)
        snprintf(buf, n, "KV cache on CPU: %d layers, K (%s) %.2f MiB, V (%s) %.2f MiB", ncpu, tk,
                 (double)ncpu * kv->n_ctx * kv->kb / M, tv, (double)ncpu * kv->n_ctx * kv->vb / M);
}

uint64_t kv_bytes_k(const kv_cache *kv) { return (uint64_t)kv->n_layer * kv->n_ctx * kv->kb; }
uint64_t kv_bytes_v(const kv_cache *kv) { return (uint64_t)kv->n_layer * kv->n_ctx * kv->vb; }

void kv_describe(const kv_cache *kv, char *buf, size_t n) {
    snprintf(buf, n, "KV cache: %d cells, K (%s) %.2f MiB, V (%s) %.2f MiB", kv->n_ctx,
             quant_get(kv->type_k)->name, (double)kv_bytes_k(kv) / (1024.0 * 1024.0),
             quant_get(kv->type_v)->name, (double)kv_bytes_v(kv) / (1024.0 * 1024.0));
}
