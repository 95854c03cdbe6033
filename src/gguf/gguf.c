/* GGUF reader: map the file, then walk it once with a bounds-checked cursor. Nothing
 * outside this file ever sees an offset or length that was not checked against the
 * file size, so later code can index arrays and tensors without re-validating. */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct cursor {
    const uint8_t *p;
    size_t size, off;
    const char *name;
    char *err; size_t errlen;
} cursor;

static void fail(cursor *c, const char *fmt, ...) {
    if (!c->err || !c->errlen) return;
    int n = snprintf(c->err, c->errlen, "%s: ", c->name);
    if (n < 0 || (size_t)n >= c->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->off) {
        fail(c, "truncated file: %s needs %" PRIu64 " bytes at offset %zu, but the file ends at %zu",
             what, n, c->off, c->size);
        return -1;
    }
    return 0;
}

static int rd(cursor *c, void *dst, size_t n, const char *what) {
    if (need(c, n, what)) return -1;
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return 0;
}

static int rd_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t n;
    if (rd(c, &n, 8, what)) return -1;
    if (n > c->size - c->off) {
        fail(c, "%s: string length %" PRIu64 " at offset %zu runs past the end of the file (%zu bytes)",
             what, n, c->off - 8, c->size);
        return -1;
    }
    s->p = (const char *)c->p + c->off;
    s->n = n;
    c->off += n;
    return 0;
}

size_t gguf_vtype_size(int t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static int key_is(const gguf_str *s, const char *key) {
    size_t n = strlen(key);
    return s->n == n && memcmp(s->p, key, n) == 0;
}

/* Skip over one value of type t, checking every length against the file. */
static int skip_value(cursor *c, int t, const char *key) {
    char what[160];
    snprintf(what, sizeof what, "value of key '%s'", key);
    if (t == GGUF_STR) { gguf_str s; return rd_str(c, &s, what); }
    size_t sz = gguf_vtype_size(t);
    if (!sz) { fail(c, "key '%s' has unknown value type %d", key, t); return -1; }
    if (need(c, sz, what)) return -1;
    c->off += sz;
    return 0;
}

static gguf_file *parse(gguf_file *f, char *err, size_t errlen) {
    cursor c = { f->map, f->size, 0, f->path, err, errlen };
    char magic[4];
    if (rd(&c, magic, 4, "magic")) goto bad;
    if (memcmp(magic, "GGUF", 4) != 0) {
        fail(&c, "bad magic %02x %02x %02x %02x (expected 'GGUF'): not a GGUF file",
             (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
        goto bad;
    }
    if (rd(&c, &f->version, 4, "version")) goto bad;
    if (f->version != 2 && f->version != 3) {
        fail(&c, "unsupported GGUF version %u (hearth reads versions 2 and 3)", f->version);
        goto bad;
    }
    if (rd(&c, &f->n_tensors, 8, "tensor count") || rd(&c, &f->n_kv, 8, "metadata count")) goto bad;
    /* Every kv takes at least 12 bytes and every tensor info at least 24: a count
     * that could not fit in the file is refused before we allocate for it. */
    if (f->n_kv > c.size / 12) {
        fail(&c, "truncated or corrupt file: metadata count %" PRIu64 " cannot fit in a file of %zu bytes", f->n_kv, c.size);
        goto bad;
    }
    if (f->n_tensors > c.size / 24) {
        fail(&c, "truncated or corrupt file: tensor count %" PRIu64 " cannot fit in a file of %zu bytes", f->n_tensors, c.size);
        goto bad;
    }
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) { fail(&c, "out of memory reading the header"); goto bad; }

    f->alignment = 32;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        char what[64];
        snprintf(what, sizeof what, "key of metadata entry %" PRIu64, i);
        if (rd_str(&c, &kv->key, what)) goto bad;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.n < 120 ? kv->key.n : 120), kv->key.p);
        for (uint64_t j = 0; j < i; j++)
            if (f->kv[j].key.n == kv->key.n && memcmp(f->kv[j].key.p, kv->key.p, kv->key.n) == 0) {
                fail(&c, "duplicate metadata key '%s'", key);
                goto bad;
            }
        uint32_t t;
        if (rd(&c, &t, 4, "value type")) goto bad;
        if (t >= GGUF_VTYPE_COUNT) { fail(&c, "key '%s' has unknown value type %u", key, t); goto bad; }
        kv->type = (int)t;
        if (t == GGUF_ARR) {
            uint32_t at; uint64_t n;
            if (rd(&c, &at, 4, "array element type") || rd(&c, &n, 8, "array length")) goto bad;
            if (at >= GGUF_VTYPE_COUNT || at == GGUF_ARR) {
                fail(&c, "key '%s': array element type %u is not supported", key, at);
                goto bad;
            }
            kv->arr_type = (int)at;
            kv->arr_n = n;
            kv->data = c.p + c.off;
            if (at == GGUF_STR) {
                if (n > (c.size - c.off) / 8) {
                    fail(&c, "key '%s': array of %" PRIu64 " strings runs past the end of the file", key, n);
                    goto bad;
                }
                for (uint64_t k = 0; k < n; k++) {
                    gguf_str s;
                    char w[200];
                    snprintf(w, sizeof w, "element %" PRIu64 " of array '%s'", k, key);
                    if (rd_str(&c, &s, w)) goto bad;
                }
            } else {
                size_t es = gguf_vtype_size((int)at);
                if (n > (c.size - c.off) / es) {
                    fail(&c, "key '%s': array of %" PRIu64 " elements of %zu bytes runs past the end of the file (%zu bytes left)",
                         key, n, es, c.size - c.off);
                    goto bad;
                }
                c.off += n * es;
            }
        } else {
            kv->data = c.p + c.off;
            if (skip_value(&c, (int)t, key)) goto bad;
        }
        if (key_is(&kv->key, "general.alignment")) {
            uint32_t a;
            if (t != GGUF_U32) { fail(&c, "general.alignment has type %u, expected u32", t); goto bad; }
            memcpy(&a, kv->data, 4);
            if (a == 0 || (a & (a - 1))) { fail(&c, "general.alignment %u is not a power of two", a); goto bad; }
            f->alignment = a;
        }
    }

    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        char what[64];
        snprintf(what, sizeof what, "name of tensor %" PRIu64, i);
        if (rd_str(&c, &t->name, what)) goto bad;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.n < 120 ? t->name.n : 120), t->name.p);
        uint32_t nd;
        if (rd(&c, &nd, 4, "tensor dimension count")) goto bad;
        if (nd < 1 || nd > GGUF_MAX_DIMS) {
            fail(&c, "tensor %s has %u dimensions (1 to %d allowed)", name, nd, GGUF_MAX_DIMS);
            goto bad;
        }
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if (rd(&c, &ne, 8, "tensor dimension")) goto bad;
            if (ne == 0 || ne > (uint64_t)INT64_MAX / 2 || nel > (uint64_t)INT64_MAX / ne) {
                fail(&c, "tensor %s: dimension %u is %" PRIu64 ", which is zero or overflows the element count",
                     name, d, ne);
                goto bad;
            }
            t->ne[d] = (int64_t)ne;
            nel *= ne;
        }
        uint32_t type;
        if (rd(&c, &type, 4, "tensor type")) goto bad;
        const quant_traits *qt = quant_get((int)type);
        if (!qt) {
            char tn[32];
            fail(&c, "tensor %s has type %s, which hearth does not support", name, quant_name((int)type, tn, sizeof tn));
            goto bad;
        }
        t->type = (int)type;
        if (t->ne[0] % qt->block) {
            fail(&c, "tensor %s: row length %" PRId64 " is not a multiple of the %s block size %d",
                 name, t->ne[0], qt->name, qt->block);
            goto bad;
        }
        uint64_t blocks = nel / (uint64_t)qt->block;
        if (blocks > UINT64_MAX / qt->bytes) {
            fail(&c, "tensor %s: %" PRIu64 " elements of %s overflow a 64-bit byte size", name, nel, qt->name);
            goto bad;
        }
        t->nbytes = blocks * qt->bytes;
        if (rd(&c, &t->offset, 8, "tensor offset")) goto bad;
        for (uint64_t j = 0; j < i; j++)
            if (f->tensors[j].name.n == t->name.n && memcmp(f->tensors[j].name.p, t->name.p, t->name.n) == 0) {
                fail(&c, "duplicate tensor name %s", name);
                goto bad;
            }
    }

    uint64_t data = (c.off + f->alignment - 1) / f->alignment * f->alignment;
    f->data_offset = data;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.n < 120 ? t->name.n : 120), t->name.p);
        if (t->offset % f->alignment) {
            fail(&c, "tensor %s: data offset %" PRIu64 " is not aligned to %" PRIu64, name, t->offset, f->alignment);
            goto bad;
        }
        if (data > c.size || t->offset > c.size - data || t->nbytes > c.size - data - t->offset) {
            fail(&c, "tensor %s extends past end of file (data at %" PRIu64 " + %" PRIu64 " bytes, file %zu bytes)",
                 name, data + t->offset, t->nbytes, c.size);
            goto bad;
        }
        t->data = f->map + data + t->offset;
    }
    return f;
bad:
    gguf_close(f);
    return NULL;
}

gguf_file *gguf_open_buffer(const char *name, const void *buf, size_t size, char *err, size_t errlen) {
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) { snprintf(err, errlen, "%s: out of memory", name); return NULL; }
    f->path = strdup(name);
    if (!f->path) { free(f); snprintf(err, errlen, "%s: out of memory", name); return NULL; }
    f->map = buf;
    f->size = size;
    return parse(f, err, errlen);
}

gguf_file *gguf_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(err, errlen, "%s: cannot map %zu bytes: %s", path, size, strerror(errno));
            close(fd);
            return NULL;
        }
    }
    close(fd);
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) { if (map) munmap(map, size); snprintf(err, errlen, "%s: out of memory", path); return NULL; }
    f->owns_map = map != NULL;
    f->map = map ? map : (const uint8_t *)"";
    f->size = size;
    f->path = strdup(path);
    if (!f->path) { gguf_close(f); snprintf(err, errlen, "%s: out of memory", path); return NULL; }
    return parse(f, err, errlen);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->owns_map) munmap((void *)f->map, f->size);
    free(f->kv);
    free(f->tensors);
    free((void *)f->path);
    free(f);
}
