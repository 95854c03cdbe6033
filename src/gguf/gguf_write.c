/* GGUF writer (version 3): collects metadata and tensors in memory, then lays them out
 * with 32-byte alignment. Used by tests to build good and deliberately bad files, and by
 * `hearth synth`, which declares tensors without data and streams their bytes after the
 * header (a 7B model does not fit in memory twice). */
#include "gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 32
static uint64_t pad(uint64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

typedef struct buf { uint8_t *p; size_t n, cap; int oom; } buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p; b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { uint64_t n = strlen(s); put_u64(b, n); put(b, s, n); }

typedef struct wtensor { char *name; int type, n_dims; int64_t ne[GGUF_MAX_DIMS]; uint8_t *data; size_t nbytes; } wtensor;

struct gguf_writer {
    buf kv; uint64_t n_kv;
    wtensor *t; uint64_t n_t;
    int oom;
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_t; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    free(w->kv.p);
    free(w);
}

static void key(gguf_writer *w, const char *k, uint32_t type) { put_str(&w->kv, k); put_u32(&w->kv, type); w->n_kv++; }

void gguf_w_u32(gguf_writer *w, const char *k, uint32_t v) { key(w, k, GGUF_U32); put_u32(&w->kv, v); }
void gguf_w_i32(gguf_writer *w, const char *k, int32_t v) { key(w, k, GGUF_I32); put(&w->kv, &v, 4); }
void gguf_w_f32(gguf_writer *w, const char *k, float v) { key(w, k, GGUF_F32); put(&w->kv, &v, 4); }
void gguf_w_bool(gguf_writer *w, const char *k, int v) { uint8_t b = v != 0; key(w, k, GGUF_BOOL); put(&w->kv, &b, 1); }
void gguf_w_str(gguf_writer *w, const char *k, const char *v) { key(w, k, GGUF_STR); put_str(&w->kv, v); }

void gguf_w_arr_str(gguf_writer *w, const char *k, const char *const *v, uint64_t n) {
    key(w, k, GGUF_ARR); put_u32(&w->kv, GGUF_STR); put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, v[i]);
}
void gguf_w_arr_f32(gguf_writer *w, const char *k, const float *v, uint64_t n) {
    key(w, k, GGUF_ARR); put_u32(&w->kv, GGUF_F32); put_u64(&w->kv, n); put(&w->kv, v, n * 4);
}
void gguf_w_arr_i32(gguf_writer *w, const char *k, const int32_t *v, uint64_t n) {
    key(w, k, GGUF_ARR); put_u32(&w->kv, GGUF_I32); put_u64(&w->kv, n); put(&w->kv, v, n * 4);
}

/* Bytes of a value of type `type` starting at p (arrays: from the element type on),
 * for values already validated by the reader. */
static size_t value_bytes(int type, int arr_type, uint64_t arr_n, const uint8_t *p) {
    if (type == GGUF_STR) { uint64_t n; memcpy(&n, p, 8); return 8 + (size_t)n; }
    if (type != GGUF_ARR) return gguf_vtype_size(type);
    if (arr_type != GGUF_STR) return (size_t)arr_n * gguf_vtype_size(arr_type);
    size_t off = 0;
    for (uint64_t i = 0; i < arr_n; i++) off += value_bytes(GGUF_STR, 0, 0, p + off);
    return off;
}

void gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv, uint64_t max_arr_n) {
    char k[256];
    snprintf(k, sizeof k, "%.*s", (int)(kv->key.n < 255 ? kv->key.n : 255), kv->key.p);
    key(w, k, (uint32_t)kv->type);
    if (kv->type != GGUF_ARR) {
        put(&w->kv, kv->data, value_bytes(kv->type, 0, 0, kv->data));
        return;
    }
    uint64_t n = kv->arr_n < max_arr_n ? kv->arr_n : max_arr_n;
    put_u32(&w->kv, (uint32_t)kv->arr_type);
    put_u64(&w->kv, n);
    put(&w->kv, kv->data, value_bytes(GGUF_ARR, kv->arr_type, n, kv->data));
}

static wtensor *add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, size_t nbytes) {
    wtensor *t = realloc(w->t, (w->n_t + 1) * sizeof *t);
    if (!t) { w->oom = 1; return NULL; }
    w->t = t;
    wtensor *x = &w->t[w->n_t];
    memset(x, 0, sizeof *x);
    x->name = strdup(name);
    if (!x->name) { w->oom = 1; return NULL; }
    x->type = type;
    x->n_dims = n_dims;
    for (int d = 0; d < n_dims && d < GGUF_MAX_DIMS; d++) x->ne[d] = ne[d];
    x->nbytes = nbytes;
    w->n_t++;
    return x;
}

void gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                   const void *data, size_t nbytes) {
    uint8_t *copy = malloc(nbytes ? nbytes : 1);
    if (!copy) { w->oom = 1; return; }
    if (nbytes) memcpy(copy, data, nbytes);
    wtensor *x = add_tensor(w, name, type, n_dims, ne, nbytes);
    if (!x) { free(copy); return; }
    x->data = copy;
}

void gguf_w_tensor_info(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, size_t nbytes) {
    add_tensor(w, name, type, n_dims, ne, nbytes);
}

/* Header, metadata, tensor table and the padding up to the data section. */
static void put_header(gguf_writer *w, buf *b) {
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, w->n_t);
    put_u64(b, w->n_kv);
    put(b, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        put_str(b, t->name);
        put_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(b, (uint64_t)t->ne[d]);
        put_u32(b, (uint32_t)t->type);
        put_u64(b, off);
        off = pad(off + t->nbytes);
    }
    static const uint8_t zeros[ALIGN];
    put(b, zeros, pad(b->n) - b->n);
}

int gguf_writer_stream_header(gguf_writer *w, FILE *f) {
    if (w->oom || w->kv.oom) return -1;
    buf b = {0};
    put_header(w, &b);
    int rc = !b.oom && fwrite(b.p, 1, b.n, f) == b.n ? 0 : -1;
    free(b.p);
    return rc;
}

int gguf_writer_stream_pad(FILE *f, uint64_t nbytes) {
    static const uint8_t zeros[ALIGN];
    size_t n = (size_t)(pad(nbytes) - nbytes);
    return fwrite(zeros, 1, n, f) == n ? 0 : -1;
}

int gguf_writer_to_buffer(gguf_writer *w, uint8_t **out, size_t *size) {
    if (w->oom || w->kv.oom) return -1;
    for (uint64_t i = 0; i < w->n_t; i++)
        if (!w->t[i].data) return -1;   /* declared for streaming only */
    buf b = {0};
    put_header(w, &b);
    static const uint8_t zeros[ALIGN];
    for (uint64_t i = 0; i < w->n_t; i++) {
        put(&b, w->t[i].data, w->t[i].nbytes);
        put(&b, zeros, pad(w->t[i].nbytes) - w->t[i].nbytes);
    }
    if (b.oom) { free(b.p); return -1; }
    *out = b.p;
    *size = b.n;
    return 0;
}

int gguf_writer_to_file(gguf_writer *w, const char *path) {
    uint8_t *p; size_t n;
    if (gguf_writer_to_buffer(w, &p, &n)) return -1;
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (f) {
        rc = fwrite(p, 1, n, f) == n ? 0 : -1;
        if (fclose(f) != 0) rc = -1;
    }
    free(p);
    return rc;
}
