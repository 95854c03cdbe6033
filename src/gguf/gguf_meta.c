/* Lookups on a validated GGUF: metadata by key, tensors by name, typed getters. */
#include "gguf/gguf.h"

#include <math.h>
#include <string.h>

static int str_is(gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (str_is(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (str_is(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* Reads a scalar of numeric type t at p as a double; integers are exact up to 2^53, which
 * covers every count and id a model has. */
static double num_at(int t, const uint8_t *p) {
    switch (t) {
    case GGUF_U8: return *p;
    case GGUF_I8: return (int8_t)*p;
    case GGUF_BOOL: return *p != 0;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_F32: { float v; memcpy(&v, p, 4); return v; }
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case GGUF_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return NAN;
    }
}

static int is_int(int t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 ||
           t == GGUF_I32 || t == GGUF_U64 || t == GGUF_I64;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || !is_int(kv->type)) return -1;
    if (kv->type == GGUF_U64) {
        uint64_t v; memcpy(&v, kv->data, 8);
        if (v > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)v;
    } else if (kv->type == GGUF_I64) {
        memcpy(out, kv->data, 8);
    } else {
        *out = (int64_t)num_at(kv->type, kv->data);
    }
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    int64_t v;
    if (gguf_get_i64(f, key, &v) || v < 0 || v > (int64_t)UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type == GGUF_STR || kv->type == GGUF_ARR || kv->type == GGUF_BOOL) return -1;
    *out = (float)num_at(kv->type, kv->data);
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || (kv->type != GGUF_BOOL && !is_int(kv->type))) return -1;
    *out = num_at(kv->type, kv->data) != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_STR) return -1;
    uint64_t n;
    memcpy(&n, kv->data, 8);
    out->n = n;
    out->p = (const char *)kv->data + 8;
    return 0;
}

/* String arrays are variable-length, so element i is found by walking from the start:
 * fine for one lookup; code that reads every element uses gguf_arr_str_each. */
gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i) {
    gguf_str s = { "", 0 };
    if (kv->type != GGUF_ARR || kv->arr_type != GGUF_STR || i >= kv->arr_n) return s;
    const uint8_t *p = kv->data;
    for (uint64_t k = 0;; k++) {
        uint64_t n;
        memcpy(&n, p, 8);
        if (k == i) { s.p = (const char *)p + 8; s.n = n; return s; }
        p += 8 + n;
    }
}

int gguf_arr_str_each(const gguf_kv *kv, int (*fn)(void *ud, uint64_t i, gguf_str s), void *ud) {
    if (kv->type != GGUF_ARR || kv->arr_type != GGUF_STR) return -1;
    const uint8_t *p = kv->data;
    for (uint64_t k = 0; k < kv->arr_n; k++) {
        gguf_str s;
        memcpy(&s.n, p, 8);
        s.p = (const char *)p + 8;
        if (fn(ud, k, s)) return -1;
        p += 8 + s.n;
    }
    return 0;
}

double gguf_arr_num(const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_ARR || i >= kv->arr_n) return NAN;
    size_t es = gguf_vtype_size(kv->arr_type);
    if (!es) return NAN;
    return num_at(kv->arr_type, kv->data + i * es);
}
