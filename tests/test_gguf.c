/* The GGUF reader and writer. Every bad file is made from a good one (the bundled
 * stories260K.gguf, patched byte by byte or rewritten through the writer) and must be
 * refused with a message that names the file, the field and the value; nothing may crash
 * (this test also runs under ASan+UBSan). The positive half checks the writer round trip,
 * every value type, the getters' type rules, string-array walking and data alignment. */
#include "testutil.h"
#include "gguf/gguf.h"
#include "hearth.h"
#include "quant/quant.h"
#include "tokenizer/tok.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static uint8_t *good;          /* stories260K.gguf */
static size_t good_n;

/* ---------- helpers ---------- */

static const char *tmp_path(const char *label) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s.gguf", tmpdir, label);
    return buf;
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = fwrite(p, 1, n, f) == n ? 0 : -1;
    if (fclose(f)) rc = -1;
    return rc;
}

static uint8_t *dup_bytes(const void *p, size_t n) {
    uint8_t *d = malloc(n ? n : 1);
    if (n) memcpy(d, p, n);
    return d;
}

/* Every needle (a NULL-terminated list) must occur in err. */
static int has_all(const char *err, va_list ap) {
    const char *s;
    int ok = 1;
    while ((s = va_arg(ap, const char *)) != NULL)
        if (!strstr(err, s)) ok = 0;
    return ok;
}

/* Writes the bytes to tmp/<label>.gguf and expects gguf_open to refuse them with a message
 * naming the path and containing every needle. */
static void expect_open_fail(const char *label, const uint8_t *p, size_t n, ...) {
    const char *path = tmp_path(label);
    char err[1024] = "";
    CHECK(write_file(path, p, n) == 0, "%s: cannot write", path);
    gguf_file *f = gguf_open(path, err, sizeof err);
    CHECK(f == NULL, "%s: opened a bad file", label);
    gguf_close(f);
    CHECK(strstr(err, path) != NULL, "%s: message does not name the file: %s", label, err);
    va_list ap;
    va_start(ap, n);
    CHECK(has_all(err, ap), "%s: message lacks a key part: %s", label, err);
    va_end(ap);
}

/* Same for the model loader (problems a valid GGUF can still have). */
static void expect_load_fail(const char *label, const uint8_t *p, size_t n, ...) {
    const char *path = tmp_path(label);
    char err[1024] = "";
    CHECK(write_file(path, p, n) == 0, "%s: cannot write", path);
    hearth_model *m = NULL;
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = 1;
    int rc = hearth_model_load(path, &mp, &m, err, sizeof err);
    CHECK(rc != 0 && m == NULL, "%s: loaded a bad model", label);
    if (m) hearth_model_free(m);
    CHECK(strstr(err, path) != NULL, "%s: message does not name the file: %s", label, err);
    va_list ap;
    va_start(ap, n);
    CHECK(has_all(err, ap), "%s: message lacks a key part: %s", label, err);
    va_end(ap);
}

/* Opens an exact-size heap copy (so ASan sees any read past the end). */
static gguf_file *open_copy(const char *name, const uint8_t *p, size_t n, uint8_t **copy, char *err, size_t errlen) {
    *copy = dup_bytes(p, n);
    return gguf_open_buffer(name, *copy, n, err, errlen);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Offset of a kv's value bytes (for arrays: the first element) in the good file. */
static size_t kv_off(const char *key) {
    char err[512];
    gguf_file *f = gguf_open_buffer("good", good, good_n, err, sizeof err);
    if (!f) { CHECK(0, "%s", err); return 0; }
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK(kv != NULL, "no key %s", key);
    size_t off = kv ? (size_t)(kv->data - f->map) : 0;
    gguf_close(f);
    return off;
}

/* Layout of one tensor info in the good file. */
typedef struct tinfo { size_t name, nd, dims, type, offset; } tinfo;
static tinfo tensor_info(const char *name) {
    tinfo ti = {0};
    char err[512];
    gguf_file *f = gguf_open_buffer("good", good, good_n, err, sizeof err);
    if (!f) { CHECK(0, "%s", err); return ti; }
    const gguf_tensor *t = gguf_find_tensor(f, name);
    CHECK(t != NULL, "no tensor %s", name);
    if (t) {
        ti.name = (size_t)((const uint8_t *)t->name.p - f->map);
        ti.nd = ti.name + t->name.n;
        ti.dims = ti.nd + 4;
        ti.type = ti.dims + 8 * (size_t)t->n_dims;
        ti.offset = ti.type + 4;
    }
    gguf_close(f);
    return ti;
}

/* Rewrites the good file through the writer, with edits. */
typedef struct edits {
    const char *drop_key, *drop_tensor;
    const char *str_key, *str_val;           /* replace (or add) a string value */
    const char *u32_key; uint32_t u32_val;   /* add a u32 */
    const char *shape_tensor; int64_t shape[2];
} edits;

static uint8_t *rewrite(const edits *e, size_t *n) {
    char err[512];
    gguf_file *f = gguf_open_buffer("good", good, good_n, err, sizeof err);
    if (!f) { CHECK(0, "%s", err); return NULL; }
    gguf_writer *w = gguf_writer_new();
    int str_done = 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.n, kv->key.p);
        if (e->drop_key && !strcmp(key, e->drop_key)) continue;
        if (e->str_key && !strcmp(key, e->str_key)) { gguf_w_str(w, key, e->str_val); str_done = 1; continue; }
        switch (kv->type) {
        case GGUF_U32: { uint32_t v; memcpy(&v, kv->data, 4); gguf_w_u32(w, key, v); break; }
        case GGUF_I32: { int32_t v; memcpy(&v, kv->data, 4); gguf_w_i32(w, key, v); break; }
        case GGUF_F32: { float v; memcpy(&v, kv->data, 4); gguf_w_f32(w, key, v); break; }
        case GGUF_BOOL: gguf_w_bool(w, key, kv->data[0]); break;
        case GGUF_STR: {
            gguf_str s; gguf_get_str(f, key, &s);
            char *z = strndup(s.p, s.n); gguf_w_str(w, key, z); free(z);
            break;
        }
        case GGUF_ARR:
            if (kv->arr_type == GGUF_STR) {
                char **v = calloc(kv->arr_n, sizeof *v);
                for (uint64_t k = 0; k < kv->arr_n; k++) { gguf_str s = gguf_arr_str(kv, k); v[k] = strndup(s.p, s.n); }
                gguf_w_arr_str(w, key, (const char *const *)v, kv->arr_n);
                for (uint64_t k = 0; k < kv->arr_n; k++) free(v[k]);
                free(v);
            } else if (kv->arr_type == GGUF_F32) {
                gguf_w_arr_f32(w, key, (const float *)(const void *)kv->data, kv->arr_n);
            } else if (kv->arr_type == GGUF_I32) {
                gguf_w_arr_i32(w, key, (const int32_t *)(const void *)kv->data, kv->arr_n);
            } else {
                CHECK(0, "rewrite: array type %d of %s not handled", kv->arr_type, key);
            }
            break;
        default: CHECK(0, "rewrite: type %d of %s not handled", kv->type, key);
        }
    }
    if (e->str_key && !str_done) gguf_w_str(w, e->str_key, e->str_val);
    if (e->u32_key) gguf_w_u32(w, e->u32_key, e->u32_val);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
        if (e->drop_tensor && !strcmp(name, e->drop_tensor)) continue;
        if (e->shape_tensor && !strcmp(name, e->shape_tensor))
            gguf_w_tensor(w, name, t->type, 2, e->shape, t->data, t->nbytes);
        else
            gguf_w_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    uint8_t *out = NULL;
    CHECK(gguf_writer_to_buffer(w, &out, n) == 0, "writer failed");
    gguf_writer_free(w);
    gguf_close(f);
    return out;
}

/* ---------- the good file ---------- */

static void test_good_file(void) {
    char err[1024] = "";
    const char *path = HEARTH_SOURCE_DIR "/models/stories260K.gguf";
    gguf_file *f = gguf_open(path, err, sizeof err);
    CHECK(f != NULL, "%s", err);
    if (!f) return;
    CHECK(f->version == 3, "version %u", f->version);
    CHECK(f->n_kv == 19 && f->n_tensors == 48, "%llu kv, %llu tensors", (unsigned long long)f->n_kv,
          (unsigned long long)f->n_tensors);
    CHECK(f->alignment == 32 && f->data_offset % 32 == 0, "alignment %llu data %llu",
          (unsigned long long)f->alignment, (unsigned long long)f->data_offset);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        size_t off = (size_t)((const uint8_t *)t->data - f->map);
        CHECK(off % 32 == 0 && off == f->data_offset + t->offset && off + t->nbytes <= f->size,
              "tensor %.*s data at %zu", (int)t->name.n, t->name.p, off);
    }
    const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
    CHECK(q && q->type == QT_F32 && q->n_dims == 2 && q->ne[0] == 64 && q->ne[1] == 64 && q->ne[2] == 1 &&
          q->nbytes == 64 * 64 * 4, "blk.0.attn_q.weight");
    CHECK(gguf_find_tensor(f, "blk.0.attn_q") == NULL, "prefix match");
    CHECK(gguf_find_kv(f, "general") == NULL, "prefix match on keys");
    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && s.n == 5 && !memcmp(s.p, "llama", 5), "arch");
    uint32_t u;
    CHECK(gguf_get_u32(f, "llama.embedding_length", &u) == 0 && u == 64, "n_embd");
    float eps;
    CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == 0 && fabsf(eps - 1e-5f) < 1e-9f, "eps");
    gguf_close(f);
}

/* ---------- header fields ---------- */

static void test_magic_version(void) {
    uint8_t *b = dup_bytes(good, good_n);
    b[0] = 'X';
    expect_open_fail("bad-magic", b, good_n, "magic", "58 47 55 46", "not a GGUF file", NULL);
    memcpy(b, "GGUF", 4);
    put32(b + 4, 1);
    expect_open_fail("version-1", b, good_n, "version 1", NULL);
    put32(b + 4, 4);
    expect_open_fail("version-4", b, good_n, "version 4", NULL);
    put32(b + 4, 0xffffffffu);
    expect_open_fail("version-max", b, good_n, "version 4294967295", NULL);
    /* version 2 has the same layout: accepted */
    put32(b + 4, 2);
    char err[512] = "";
    gguf_file *f = gguf_open_buffer("v2", b, good_n, err, sizeof err);
    CHECK(f && f->version == 2, "version 2 refused: %s", err);
    gguf_close(f);
    /* counts that cannot fit in the file are refused before allocating for them */
    memcpy(b, good, 24);
    put64(b + 8, UINT64_MAX);
    expect_open_fail("tensor-count", b, good_n, "tensor count 18446744073709551615", NULL);
    memcpy(b, good, 24);
    put64(b + 16, (uint64_t)1 << 40);
    expect_open_fail("kv-count", b, good_n, "metadata count 1099511627776", NULL);
    /* empty file */
    expect_open_fail("empty", b, 0, "truncated", "magic", NULL);
    free(b);
}

/* Cut the file at every offset of the header region and at a sample inside the tensor
 * data: all must fail cleanly. Exact-size heap copies let ASan catch any over-read. */
static void test_truncated(void) {
    char err[1024];
    gguf_file *g = gguf_open_buffer("good", good, good_n, err, sizeof err);
    if (!g) { CHECK(0, "%s", err); return; }
    size_t data = (size_t)g->data_offset;
    gguf_close(g);
    int bad_msgs = 0, opened = 0;
    for (size_t cut = 0; cut < good_n; cut += cut < data + 64 ? 1 : 4099) {
        uint8_t *copy;
        err[0] = 0;
        gguf_file *f = open_copy("cut.gguf", good, cut, &copy, err, sizeof err);
        if (f) { opened++; gguf_close(f); }
        else if (!strstr(err, "cut.gguf") || !(strstr(err, "truncated") || strstr(err, "past the end") || strstr(err, "cannot fit") ||
                                             strstr(err, "past end")))
            if (bad_msgs++ < 5) fprintf(stderr, "cut at %zu: %s\n", cut, err);
        free(copy);
    }
    CHECK(opened == 0, "%d truncated copies opened", opened);
    CHECK(bad_msgs == 0, "%d truncations gave an unclear message", bad_msgs);
    /* the last bytes of the data, and a few cuts through the real file path (mmap) */
    for (size_t k = 1; k <= 8; k++) {
        uint8_t *copy;
        gguf_file *f = open_copy("cut.gguf", good, good_n - k, &copy, err, sizeof err);
        CHECK(f == NULL && strstr(err, "extends past end of file"), "cut %zu from the end: %s", k, err);
        gguf_close(f);
        free(copy);
    }
    expect_open_fail("cut-3", good, 3, "truncated", "magic", NULL);
    expect_open_fail("cut-12", good, 12, "truncated", "tensor count", NULL);
    expect_open_fail("cut-30", good, 30, "truncated", "metadata count 19", NULL);
    expect_open_fail("cut-header", good, data - 40, "truncated", NULL);
    expect_open_fail("cut-data", good, data + 1000, "extends past end of file", NULL);
    expect_open_fail("cut-last", good, good_n - 1, "blk.4.ffn_norm.weight", "extends past end of file", NULL);
}

static void test_lengths(void) {
    uint8_t *b = dup_bytes(good, good_n);
    /* the first key's length (offset 24) */
    put64(b + 24, (uint64_t)1 << 50);
    expect_open_fail("key-len", b, good_n, "key of metadata entry 0", "string length 1125899906842624", "past the end", NULL);
    memcpy(b, good, good_n);
    put64(b + 24, UINT64_MAX);
    expect_open_fail("key-len-max", b, good_n, "string length 18446744073709551615", NULL);

    /* a string value */
    size_t arch = kv_off("general.architecture");
    memcpy(b, good, good_n);
    put64(b + arch, good_n);
    expect_open_fail("str-len", b, good_n, "general.architecture", "string length 1185376", "past the end", NULL);

    /* a numeric array's length */
    size_t sc = kv_off("tokenizer.ggml.scores");
    memcpy(b, good, good_n);
    put64(b + sc - 8, (uint64_t)1 << 40);
    expect_open_fail("arr-len", b, good_n, "tokenizer.ggml.scores", "array of 1099511627776 elements", "past the end", NULL);
    memcpy(b, good, good_n);
    put64(b + sc - 8, UINT64_MAX);  /* n * element size would overflow */
    expect_open_fail("arr-len-max", b, good_n, "tokenizer.ggml.scores", "18446744073709551615", NULL);

    /* a string array's length, and one element's length inside it */
    size_t tk = kv_off("tokenizer.ggml.tokens");
    memcpy(b, good, good_n);
    put64(b + tk - 8, (uint64_t)1 << 40);
    expect_open_fail("arr-str-len", b, good_n, "tokenizer.ggml.tokens", "1099511627776", NULL);
    memcpy(b, good, good_n);
    put64(b + tk - 8, 1000000);  /* fits the 8-bytes-per-string bound, but the walk runs out */
    expect_open_fail("arr-str-walk", b, good_n, "tokenizer.ggml.tokens", "past", NULL);
    memcpy(b, good, good_n);
    put64(b + tk, (uint64_t)1 << 33);
    expect_open_fail("arr-elem-len", b, good_n, "element 0 of array 'tokenizer.ggml.tokens'", "string length 8589934592", NULL);

    /* value and array element types */
    memcpy(b, good, good_n);
    put32(b + arch - 4, 13);
    expect_open_fail("vtype", b, good_n, "general.architecture", "unknown value type 13", NULL);
    memcpy(b, good, good_n);
    put32(b + sc - 12, GGUF_ARR);
    expect_open_fail("arr-nested", b, good_n, "tokenizer.ggml.scores", "array element type 9", NULL);
    memcpy(b, good, good_n);
    put32(b + sc - 12, 77);
    expect_open_fail("arr-elem-type", b, good_n, "tokenizer.ggml.scores", "array element type 77", NULL);
    free(b);
}

static void test_tensor_infos(void) {
    uint8_t *b = dup_bytes(good, good_n);
    tinfo q = tensor_info("blk.0.attn_q.weight");
    tinfo last = tensor_info("blk.4.ffn_norm.weight");

    uint64_t off;
    memcpy(&off, good + q.offset, 8);
    put64(b + q.offset, off + ((uint64_t)1 << 30));
    expect_open_fail("data-outside", b, good_n, "blk.0.attn_q.weight", "extends past end of file", "16384 bytes", NULL);
    memcpy(b, good, good_n);
    put64(b + q.offset, UINT64_MAX - 31);  /* aligned, and offset + size overflows */
    expect_open_fail("data-offset-max", b, good_n, "blk.0.attn_q.weight", "extends past end of file", NULL);
    memcpy(b, good, good_n);
    memcpy(&off, good + last.offset, 8);
    put64(b + last.offset, off + 32);       /* 256 bytes at the very end: now 32 past it */
    expect_open_fail("data-last", b, good_n, "blk.4.ffn_norm.weight", "extends past end of file", NULL);

    memcpy(b, good, good_n);
    memcpy(&off, good + q.offset, 8);
    put64(b + q.offset, off + 4);
    char want[64];
    snprintf(want, sizeof want, "data offset %llu is not aligned to 32", (unsigned long long)off + 4);
    expect_open_fail("misaligned", b, good_n, "blk.0.attn_q.weight", want, NULL);

    memcpy(b, good, good_n);
    put32(b + q.type, 99);
    expect_open_fail("type-99", b, good_n, "blk.0.attn_q.weight", "type 99", "does not support", NULL);
    memcpy(b, good, good_n);
    put32(b + q.type, 16);   /* a ggml type (iq2_xxs) hearth has no kernels for */
    expect_open_fail("type-16", b, good_n, "blk.0.attn_q.weight", "type 16", "does not support", NULL);
    memcpy(b, good, good_n);
    put32(b + q.type, 0x80000000u);
    expect_open_fail("type-neg", b, good_n, "blk.0.attn_q.weight", "does not support", NULL);
    memcpy(b, good, good_n);
    put32(b + q.type, QT_Q8_0);   /* 64 is a multiple of 32, but the data is now a different size */
    {
        char err[512];
        uint8_t *copy;
        gguf_file *f = open_copy("q8", b, good_n, &copy, err, sizeof err);
        CHECK(f && gguf_find_tensor(f, "blk.0.attn_q.weight")->nbytes == 64 * 2 * 34, "q8_0 retype: %s", f ? "" : err);
        gguf_close(f);
        free(copy);
    }
    tinfo norm = tensor_info("output_norm.weight");   /* [64]: not a multiple of q4_K's 256 */
    memcpy(b, good, good_n);
    put32(b + norm.type, QT_Q4_K);
    expect_open_fail("block", b, good_n, "output_norm.weight", "row length 64", "block size 256", NULL);

    /* dimension overflow: each dim fits, the product does not */
    memcpy(b, good, good_n);
    put64(b + q.dims, (uint64_t)1 << 40);
    put64(b + q.dims + 8, (uint64_t)1 << 40);
    expect_open_fail("dims-overflow", b, good_n, "blk.0.attn_q.weight", "dimension 1 is 1099511627776", "overflow", NULL);
    memcpy(b, good, good_n);
    put64(b + q.dims, UINT64_MAX);
    expect_open_fail("dim-max", b, good_n, "blk.0.attn_q.weight", "dimension 0 is 18446744073709551615", NULL);
    memcpy(b, good, good_n);
    put64(b + q.dims, (uint64_t)1 << 31);
    put64(b + q.dims + 8, (uint64_t)1 << 31);   /* 2^62 elements: the f32 byte size overflows */
    expect_open_fail("bytes-overflow", b, good_n, "blk.0.attn_q.weight", "4611686018427387904 elements", "overflow", NULL);
    memcpy(b, good, good_n);
    put64(b + q.dims, (uint64_t)1 << 30);
    put64(b + q.dims + 8, (uint64_t)1 << 30);   /* no overflow, but far bigger than the file */
    expect_open_fail("dims-huge", b, good_n, "blk.0.attn_q.weight", "extends past end of file", "4611686018427387904 bytes", NULL);
    memcpy(b, good, good_n);
    put64(b + q.dims + 8, 0);
    expect_open_fail("dim-zero", b, good_n, "blk.0.attn_q.weight", "dimension 1 is 0", NULL);
    memcpy(b, good, good_n);
    put32(b + q.nd, 5);
    expect_open_fail("dims-5", b, good_n, "blk.0.attn_q.weight", "has 5 dimensions", NULL);
    memcpy(b, good, good_n);
    put32(b + q.nd, 0);
    expect_open_fail("dims-0", b, good_n, "blk.0.attn_q.weight", "has 0 dimensions", NULL);
    memcpy(b, good, good_n);
    put32(b + q.nd, 0xffffffffu);
    expect_open_fail("dims-max", b, good_n, "blk.0.attn_q.weight", "has 4294967295 dimensions", NULL);

    /* tensor name length */
    memcpy(b, good, good_n);
    put64(b + q.name - 8, (uint64_t)1 << 45);
    expect_open_fail("name-len", b, good_n, "name of tensor 3", "string length 35184372088832", NULL);

    /* duplicates: blk.0.attn_v.weight renamed to blk.0.attn_k.weight (same length) */
    tinfo v = tensor_info("blk.0.attn_v.weight");
    memcpy(b, good, good_n);
    b[v.name + strlen("blk.0.attn_")] = 'k';
    expect_open_fail("dup-tensor", b, good_n, "duplicate tensor name blk.0.attn_k.weight", NULL);
    size_t eos = kv_off("tokenizer.ggml.eos_token_id");
    size_t klen = strlen("tokenizer.ggml.eos_token_id");
    memcpy(b, good, good_n);
    CHECK(!memcmp(b + eos - 4 - klen, "tokenizer.ggml.eos_token_id", klen), "eos key layout");
    b[eos - 4 - klen + strlen("tokenizer.ggml.")] = 'b';
    expect_open_fail("dup-key", b, good_n, "duplicate metadata key 'tokenizer.ggml.bos_token_id'", NULL);
    free(b);
}

static void test_alignment_key(void) {
    size_t n;
    edits e = { .u32_key = "general.alignment", .u32_val = 48 };
    uint8_t *b = rewrite(&e, &n);
    expect_open_fail("align-48", b, n, "general.alignment 48 is not a power of two", NULL);
    free(b);
    e.u32_val = 0;
    b = rewrite(&e, &n);
    expect_open_fail("align-0", b, n, "general.alignment 0 is not a power of two", NULL);
    free(b);
    edits s = { .str_key = "general.alignment", .str_val = "32" };
    b = rewrite(&s, &n);
    expect_open_fail("align-str", b, n, "general.alignment has type 8", NULL);
    free(b);
    e.u32_val = 32;   /* the writer's own alignment: accepted, and the model loads */
    b = rewrite(&e, &n);
    char err[512] = "";
    gguf_file *f = gguf_open_buffer("align-32", b, n, err, sizeof err);
    CHECK(f && f->alignment == 32, "general.alignment 32: %s", err);
    gguf_close(f);
    free(b);
}

/* ---------- model-level problems (valid GGUF, wrong model) ---------- */

static void test_model_level(void) {
    size_t n;
    uint8_t *b;
    edits none = {0};
    b = rewrite(&none, &n);      /* control: the rewritten file loads */
    {
        const char *path = tmp_path("rewritten");
        char err[512] = "";
        CHECK(write_file(path, b, n) == 0, "write");
        hearth_model *m = NULL;
        hearth_model_params mp = hearth_model_default_params();
        mp.n_threads = 1;
        CHECK(hearth_model_load(path, &mp, &m, err, sizeof err) == 0, "rewritten model: %s", err);
        if (m) {
            const hearth_model_info *in = hearth_model_get_info(m);
            CHECK(in->n_layer == 5 && in->n_embd == 64 && in->n_vocab == 512 && in->n_params == 292800,
                  "info %d %d %d %lld", in->n_layer, in->n_embd, in->n_vocab, (long long)in->n_params);
            hearth_model_free(m);
        }
    }
    free(b);

    edits e1 = { .drop_tensor = "blk.0.attn_q.weight" };
    b = rewrite(&e1, &n);
    expect_load_fail("no-attn-q", b, n, "missing tensor blk.0.attn_q.weight", NULL);
    free(b);
    edits e2 = { .drop_tensor = "token_embd.weight" };
    b = rewrite(&e2, &n);
    expect_load_fail("no-embd", b, n, "missing tensor token_embd.weight", NULL);
    free(b);
    edits e3 = { .drop_tensor = "blk.4.ffn_norm.weight" };
    b = rewrite(&e3, &n);
    expect_load_fail("no-ffn-norm", b, n, "missing tensor blk.4.ffn_norm.weight", NULL);
    free(b);
    edits e4 = { .shape_tensor = "blk.0.attn_q.weight", .shape = { 32, 128 } };
    b = rewrite(&e4, &n);
    expect_load_fail("shape", b, n, "tensor blk.0.attn_q.weight has shape [32, 128, 1, 1]", "expected [64, 64]", NULL);
    free(b);
    edits e5 = { .shape_tensor = "blk.2.ffn_down.weight", .shape = { 64, 172 } };
    b = rewrite(&e5, &n);
    expect_load_fail("shape-t", b, n, "blk.2.ffn_down.weight has shape [64, 172", "expected [172, 64]", NULL);
    free(b);

    edits m1 = { .drop_key = "llama.embedding_length" };
    b = rewrite(&m1, &n);
    expect_load_fail("no-embd-len", b, n, "missing metadata llama.embedding_length", NULL);
    free(b);
    edits m2 = { .drop_key = "llama.block_count" };
    b = rewrite(&m2, &n);
    expect_load_fail("no-blocks", b, n, "missing metadata llama.block_count", NULL);
    free(b);
    edits m3 = { .drop_key = "general.architecture" };
    b = rewrite(&m3, &n);
    expect_load_fail("no-arch", b, n, "missing metadata general.architecture", NULL);
    free(b);
    edits m4 = { .str_key = "general.architecture", .str_val = "gpt2" };
    b = rewrite(&m4, &n);
    expect_load_fail("arch-gpt2", b, n, "general.architecture is \"gpt2\"", NULL);
    free(b);
    edits m5 = { .str_key = "llama.embedding_length", .str_val = "64" };
    b = rewrite(&m5, &n);
    expect_load_fail("embd-str", b, n, "llama.embedding_length has type 8", NULL);
    free(b);
    edits m6 = { .drop_key = "tokenizer.ggml.tokens" };
    b = rewrite(&m6, &n);
    expect_load_fail("no-tokens", b, n, "tokenizer.ggml.tokens is missing", NULL);
    free(b);

    /* block_count larger than the tensors can back: names the first missing layer tensor */
    size_t bc = kv_off("llama.block_count");
    b = dup_bytes(good, good_n);
    put32(b + bc, 6);
    expect_load_fail("blocks-6", b, good_n, "missing tensor blk.5.", NULL);
    put32(b + bc, 1u << 24);
    expect_load_fail("blocks-huge", b, good_n, "missing tensor blk.5.", NULL);
    put32(b + bc, 0xffffffffu);
    expect_load_fail("blocks-max", b, good_n, "llama.block_count", "4294967295", NULL);
    size_t el = kv_off("llama.embedding_length");
    memcpy(b, good, good_n);
    put32(b + el, 1u << 24);
    expect_load_fail("embd-huge", b, good_n, "token_embd.weight has shape [64, 512", "expected [16777216, 512]", NULL);
    put32(b + bc, 1u << 24);   /* both at once: the loader must not size buffers from them before checking */
    expect_load_fail("embd-blocks-huge", b, good_n, "token_embd.weight has shape [64, 512", NULL);
    free(b);

    /* bad file through the loader: gguf_open's message comes through */
    expect_load_fail("load-truncated", good, 1000, "truncated", NULL);
}

/* ---------- positive: writer round trip ---------- */

static int collect(void *ud, uint64_t i, gguf_str s) {
    char *acc = ud;
    size_t n = strlen(acc);
    snprintf(acc + n, 256 - n, "%llu=%.*s;", (unsigned long long)i, (int)s.n, s.p);
    return 0;
}
static int stop_at_1(void *ud, uint64_t i, gguf_str s) { (*(int *)ud)++; return i == 1; }

static void test_writer_roundtrip(void) {
    gguf_writer *w = gguf_writer_new();
    static const char *words[] = { "alpha", "", "gamma \xe2\x96\x81 with bytes", "d" };
    const float fv[] = { 1.5f, -2.25f, 1e-30f, INFINITY };
    const int32_t iv[] = { -1, 0, 2147483647, -2147483647 - 1 };
    gguf_w_u32(w, "u32", 4000000000u);
    gguf_w_i32(w, "i32", -123456);
    gguf_w_f32(w, "f32", 3.25f);
    gguf_w_bool(w, "bool.t", 1);
    gguf_w_bool(w, "bool.f", 0);
    gguf_w_str(w, "str", "hello, gguf");
    gguf_w_str(w, "str.empty", "");
    gguf_w_arr_str(w, "arr.str", words, 4);
    gguf_w_arr_str(w, "arr.str.empty", words, 0);
    gguf_w_arr_f32(w, "arr.f32", fv, 4);
    gguf_w_arr_i32(w, "arr.i32", iv, 4);
    float t0[12];
    for (int i = 0; i < 12; i++) t0[i] = (float)i * 0.5f - 1;
    uint16_t t1[8];
    for (int i = 0; i < 8; i++) t1[i] = quant_f32_to_f16((float)i);
    uint8_t t2[2 * 34];
    for (int i = 0; i < (int)sizeof t2; i++) t2[i] = (uint8_t)(i * 7);
    float t3[3] = { 1, 2, 3 };  /* 12 bytes: the next tensor must be padded to 32 */
    const int64_t ne0[] = { 4, 3 }, ne1[] = { 8 }, ne2[] = { 32, 2 }, ne3[] = { 3, 1, 1, 1 };
    gguf_w_tensor(w, "t.f32", QT_F32, 2, ne0, t0, sizeof t0);
    gguf_w_tensor(w, "t.f16", QT_F16, 1, ne1, t1, sizeof t1);
    gguf_w_tensor(w, "t.small", QT_F32, 4, ne3, t3, sizeof t3);
    gguf_w_tensor(w, "t.q8_0", QT_Q8_0, 2, ne2, t2, sizeof t2);
    const char *path = tmp_path("roundtrip");
    CHECK(gguf_writer_to_file(w, path) == 0, "writer_to_file");
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK(gguf_writer_to_buffer(w, &buf, &n) == 0, "writer_to_buffer");
    gguf_writer_free(w);
    size_t fn = 0;
    uint8_t *fb = test_read_file(path, &fn);
    CHECK(fb && fn == n && !memcmp(fb, buf, n), "file and buffer differ");
    free(fb);

    char err[512] = "";
    gguf_file *f = gguf_open(path, err, sizeof err);
    CHECK(f != NULL, "%s", err);
    if (f) {
        CHECK(f->version == 3 && f->n_kv == 11 && f->n_tensors == 4, "counts");
        uint32_t u; int64_t i64; float x; int bv; gguf_str s;
        CHECK(gguf_get_u32(f, "u32", &u) == 0 && u == 4000000000u, "u32");
        CHECK(gguf_get_i64(f, "i32", &i64) == 0 && i64 == -123456, "i32");
        CHECK(gguf_get_f32(f, "f32", &x) == 0 && x == 3.25f, "f32");
        CHECK(gguf_get_bool(f, "bool.t", &bv) == 0 && bv == 1, "bool.t");
        CHECK(gguf_get_bool(f, "bool.f", &bv) == 0 && bv == 0, "bool.f");
        CHECK(gguf_get_str(f, "str", &s) == 0 && s.n == 11 && !memcmp(s.p, "hello, gguf", 11), "str");
        CHECK(gguf_get_str(f, "str.empty", &s) == 0 && s.n == 0, "empty str");
        const gguf_kv *a = gguf_find_kv(f, "arr.str");
        CHECK(a && a->type == GGUF_ARR && a->arr_type == GGUF_STR && a->arr_n == 4, "arr.str");
        if (a) {
            for (uint64_t k = 0; k < 4; k++) {
                gguf_str e = gguf_arr_str(a, k);
                CHECK(e.n == strlen(words[k]) && !memcmp(e.p, words[k], e.n), "arr.str[%llu]", (unsigned long long)k);
            }
            gguf_str oob = gguf_arr_str(a, 4);
            CHECK(oob.n == 0 && oob.p != NULL, "out-of-range string element");
            char acc[256] = "";
            CHECK(gguf_arr_str_each(a, collect, acc) == 0, "each");
            CHECK(!strcmp(acc, "0=alpha;1=;2=gamma \xe2\x96\x81 with bytes;3=d;"), "each gave %s", acc);
            int calls = 0;
            CHECK(gguf_arr_str_each(a, stop_at_1, &calls) == -1 && calls == 2, "each stops (%d calls)", calls);
            CHECK(isnan(gguf_arr_num(a, 0)), "arr_num on strings");
        }
        const gguf_kv *ae = gguf_find_kv(f, "arr.str.empty");
        char acc[256] = "";
        CHECK(ae && ae->arr_n == 0 && gguf_arr_str_each(ae, collect, acc) == 0 && acc[0] == 0, "empty string array");
        const gguf_kv *af = gguf_find_kv(f, "arr.f32");
        CHECK(af && af->arr_type == GGUF_F32 && af->arr_n == 4, "arr.f32");
        if (af) {
            for (uint64_t k = 0; k < 4; k++) CHECK(gguf_arr_num(af, k) == (double)fv[k], "arr.f32[%llu]", (unsigned long long)k);
            CHECK(isnan(gguf_arr_num(af, 4)), "arr_num out of range");
            CHECK(gguf_arr_str_each(af, collect, acc) == -1, "each on a float array");
            CHECK(gguf_arr_str(af, 0).n == 0, "arr_str on a float array");
        }
        const gguf_kv *ai = gguf_find_kv(f, "arr.i32");
        CHECK(ai && ai->arr_type == GGUF_I32 && ai->arr_n == 4, "arr.i32");
        if (ai) for (uint64_t k = 0; k < 4; k++) CHECK(gguf_arr_num(ai, k) == (double)iv[k], "arr.i32[%llu]", (unsigned long long)k);
        const gguf_kv *sk = gguf_find_kv(f, "str");
        CHECK(sk && gguf_arr_str_each(sk, collect, acc) == -1 && isnan(gguf_arr_num(sk, 0)), "array calls on a scalar");

        struct { const char *name; int type, nd; const int64_t *ne; const void *data; size_t nb; } want[] = {
            { "t.f32", QT_F32, 2, ne0, t0, sizeof t0 }, { "t.f16", QT_F16, 1, ne1, t1, sizeof t1 },
            { "t.small", QT_F32, 4, ne3, t3, sizeof t3 }, { "t.q8_0", QT_Q8_0, 2, ne2, t2, sizeof t2 },
        };
        for (int k = 0; k < 4; k++) {
            const gguf_tensor *t = gguf_find_tensor(f, want[k].name);
            CHECK(t != NULL, "tensor %s", want[k].name);
            if (!t) continue;
            CHECK(t == &f->tensors[k], "tensor order");
            CHECK(t->type == want[k].type && t->n_dims == want[k].nd && t->nbytes == want[k].nb, "tensor %s type/dims/size", want[k].name);
            for (int d = 0; d < GGUF_MAX_DIMS; d++)
                CHECK(t->ne[d] == (d < want[k].nd ? want[k].ne[d] : 1), "tensor %s ne[%d] = %lld", want[k].name, d, (long long)t->ne[d]);
            CHECK(!memcmp(t->data, want[k].data, want[k].nb), "tensor %s data", want[k].name);
            CHECK(((const uint8_t *)t->data - f->map) % 32 == 0 && t->offset % 32 == 0, "tensor %s alignment", want[k].name);
        }
        gguf_close(f);
    }
    /* the same image through gguf_open_buffer */
    f = gguf_open_buffer("buffer", buf, n, err, sizeof err);
    CHECK(f && f->n_tensors == 4 && f->tensors[3].data == buf + f->data_offset + f->tensors[3].offset, "open_buffer: %s", err);
    gguf_close(f);
    free(buf);

    /* an empty writer makes a valid empty file */
    w = gguf_writer_new();
    CHECK(gguf_writer_to_buffer(w, &buf, &n) == 0 && n >= 24, "empty writer");
    gguf_writer_free(w);
    f = gguf_open_buffer("empty", buf, n, err, sizeof err);
    CHECK(f && f->n_kv == 0 && f->n_tensors == 0 && gguf_find_kv(f, "x") == NULL && gguf_find_tensor(f, "x") == NULL, "empty: %s", err);
    gguf_close(f);
    free(buf);
}

/* ---------- positive: every value type, the getters' rules, alignment 64 ---------- */

typedef struct rb { uint8_t p[4096]; size_t n; } rb;
static void rb_put(rb *b, const void *s, size_t n) { memcpy(b->p + b->n, s, n); b->n += n; }
static void rb_u32(rb *b, uint32_t v) { rb_put(b, &v, 4); }
static void rb_u64(rb *b, uint64_t v) { rb_put(b, &v, 8); }
static void rb_str(rb *b, const char *s) { rb_u64(b, strlen(s)); rb_put(b, s, strlen(s)); }
static void rb_key(rb *b, const char *k, uint32_t t) { rb_str(b, k); rb_u32(b, t); }

static void test_value_types(void) {
    rb b = { .n = 0 };
    rb_put(&b, "GGUF", 4);
    rb_u32(&b, 3);
    rb_u64(&b, 2);   /* tensors */
    rb_u64(&b, 16);  /* kv */
    uint8_t u8 = 200; int8_t i8 = -5; uint16_t u16 = 65535; int16_t i16 = -300;
    uint32_t u32 = 4000000000u; int32_t i32 = -7; float f32 = 1.5f; uint8_t bo = 1;
    uint64_t u64 = (uint64_t)1 << 40, u64big = ((uint64_t)1 << 63) + 1; int64_t i64 = -((int64_t)1 << 40); double f64 = 2.25;
    rb_key(&b, "u8", GGUF_U8); rb_put(&b, &u8, 1);
    rb_key(&b, "i8", GGUF_I8); rb_put(&b, &i8, 1);
    rb_key(&b, "u16", GGUF_U16); rb_put(&b, &u16, 2);
    rb_key(&b, "i16", GGUF_I16); rb_put(&b, &i16, 2);
    rb_key(&b, "u32", GGUF_U32); rb_put(&b, &u32, 4);
    rb_key(&b, "i32", GGUF_I32); rb_put(&b, &i32, 4);
    rb_key(&b, "f32", GGUF_F32); rb_put(&b, &f32, 4);
    rb_key(&b, "bool", GGUF_BOOL); rb_put(&b, &bo, 1);
    rb_key(&b, "str", GGUF_STR); rb_str(&b, "hi");
    rb_key(&b, "u64", GGUF_U64); rb_put(&b, &u64, 8);
    rb_key(&b, "u64.big", GGUF_U64); rb_put(&b, &u64big, 8);
    rb_key(&b, "i64", GGUF_I64); rb_put(&b, &i64, 8);
    rb_key(&b, "f64", GGUF_F64); rb_put(&b, &f64, 8);
    rb_key(&b, "arr.u8", GGUF_ARR); rb_u32(&b, GGUF_U8); rb_u64(&b, 3); rb_put(&b, "\x01\x02\xff", 3);
    rb_key(&b, "arr.i16", GGUF_ARR); rb_u32(&b, GGUF_I16); rb_u64(&b, 2); { int16_t v[2] = { -2, 7 }; rb_put(&b, v, 4); }
    rb_key(&b, "general.alignment", GGUF_U32); rb_u32(&b, 64);
    float td[16];
    for (int i = 0; i < 16; i++) td[i] = (float)i;
    int64_t ne = 16;
    rb_str(&b, "a"); rb_u32(&b, 1); rb_u64(&b, (uint64_t)ne); rb_u32(&b, QT_F32); rb_u64(&b, 0);
    size_t b_info = b.n;
    rb_str(&b, "b"); rb_u32(&b, 1); rb_u64(&b, (uint64_t)ne); rb_u32(&b, QT_F32); rb_u64(&b, 128);
    size_t data = (b.n + 63) / 64 * 64;
    memset(b.p + b.n, 0, data + 256 - b.n);
    memcpy(b.p + data, td, sizeof td);
    memcpy(b.p + data + 128, td, sizeof td);
    b.n = data + 192;

    char err[512] = "";
    uint8_t *copy;
    gguf_file *f = open_copy("types", b.p, b.n, &copy, err, sizeof err);
    CHECK(f != NULL, "all-types file: %s", err);
    if (f) {
        uint32_t u; int64_t v; float x; int bv; gguf_str s;
        CHECK(f->alignment == 64 && f->data_offset == data, "alignment 64: data at %llu", (unsigned long long)f->data_offset);
        const gguf_tensor *ta = gguf_find_tensor(f, "a"), *tb = gguf_find_tensor(f, "b");
        CHECK(ta && tb && ta->data == copy + data && tb->data == copy + data + 128 &&
              !memcmp(tb->data, td, sizeof td), "tensor data at 64-byte alignment");
        for (int k = 0; k < 16; k++) CHECK(gguf_vtype_size(k) == (k == GGUF_STR || k == GGUF_ARR || k > 12 ? 0u :
              k == GGUF_U8 || k == GGUF_I8 || k == GGUF_BOOL ? 1u : k == GGUF_U16 || k == GGUF_I16 ? 2u :
              k >= GGUF_U64 ? 8u : 4u), "vtype_size(%d)", k);
        /* integers: any integer type whose value fits */
        CHECK(gguf_get_u32(f, "u8", &u) == 0 && u == 200, "u8 as u32");
        CHECK(gguf_get_i64(f, "i8", &v) == 0 && v == -5, "i8 as i64");
        CHECK(gguf_get_u32(f, "i8", &u) == -1, "negative i8 as u32");
        CHECK(gguf_get_u32(f, "u16", &u) == 0 && u == 65535, "u16");
        CHECK(gguf_get_i64(f, "i16", &v) == 0 && v == -300, "i16");
        CHECK(gguf_get_u32(f, "u32", &u) == 0 && u == 4000000000u, "u32");
        CHECK(gguf_get_i64(f, "i32", &v) == 0 && v == -7 && gguf_get_u32(f, "i32", &u) == -1, "i32");
        CHECK(gguf_get_u32(f, "u64", &u) == -1, "u64 2^40 does not fit u32");
        CHECK(gguf_get_i64(f, "u64", &v) == 0 && v == ((int64_t)1 << 40), "u64 as i64");
        CHECK(gguf_get_i64(f, "u64.big", &v) == -1, "u64 2^63+1 does not fit i64");
        CHECK(gguf_get_i64(f, "i64", &v) == 0 && v == -((int64_t)1 << 40), "i64");
        /* floats are not integers; integers are numbers */
        CHECK(gguf_get_u32(f, "f32", &u) == -1 && gguf_get_i64(f, "f64", &v) == -1, "float as integer");
        CHECK(gguf_get_f32(f, "f32", &x) == 0 && x == 1.5f, "f32");
        CHECK(gguf_get_f32(f, "f64", &x) == 0 && x == 2.25f, "f64 as f32");
        CHECK(gguf_get_f32(f, "u16", &x) == 0 && x == 65535.0f, "u16 as f32");
        CHECK(gguf_get_f32(f, "i8", &x) == 0 && x == -5.0f, "i8 as f32");
        /* bools */
        CHECK(gguf_get_bool(f, "bool", &bv) == 0 && bv == 1, "bool");
        CHECK(gguf_get_bool(f, "u8", &bv) == 0 && bv == 1, "integer as bool");
        CHECK(gguf_get_u32(f, "bool", &u) == -1 && gguf_get_f32(f, "bool", &x) == -1, "bool as number");
        CHECK(gguf_get_bool(f, "f32", &bv) == -1 && gguf_get_bool(f, "str", &bv) == -1, "non-bool as bool");
        /* strings and arrays are neither */
        CHECK(gguf_get_str(f, "str", &s) == 0 && s.n == 2 && !memcmp(s.p, "hi", 2), "str");
        CHECK(gguf_get_str(f, "u32", &s) == -1 && gguf_get_str(f, "arr.u8", &s) == -1, "non-string as string");
        CHECK(gguf_get_u32(f, "str", &u) == -1 && gguf_get_f32(f, "str", &x) == -1, "string as number");
        CHECK(gguf_get_u32(f, "arr.u8", &u) == -1 && gguf_get_f32(f, "arr.u8", &x) == -1 &&
              gguf_get_bool(f, "arr.u8", &bv) == -1, "array as scalar");
        CHECK(gguf_get_u32(f, "missing", &u) == -1 && gguf_get_str(f, "missing", &s) == -1 &&
              gguf_get_f32(f, "missing", &x) == -1 && gguf_get_bool(f, "missing", &bv) == -1 &&
              gguf_get_i64(f, "missing", &v) == -1, "missing key");
        const gguf_kv *a = gguf_find_kv(f, "arr.u8");
        CHECK(a && gguf_arr_num(a, 0) == 1 && gguf_arr_num(a, 2) == 255 && isnan(gguf_arr_num(a, 3)), "arr.u8");
        const gguf_kv *a16 = gguf_find_kv(f, "arr.i16");
        CHECK(a16 && gguf_arr_num(a16, 0) == -2 && gguf_arr_num(a16, 1) == 7, "arr.i16");
        gguf_close(f);
    }
    free(copy);

    /* with alignment 64, the same tensor at offset 32 is misaligned */
    uint8_t *bad = dup_bytes(b.p, b.n);
    put64(bad + b_info + 8 + 1 + 4 + 8 + 4, 96);
    expect_open_fail("align-64-mis", bad, b.n, "tensor b", "data offset 96 is not aligned to 64", NULL);
    free(bad);
}

/* ---------- robustness: random corruption of the header never crashes ---------- */

static void test_random_corruption(void) {
    char err[1024];
    gguf_file *g = gguf_open_buffer("good", good, good_n, err, sizeof err);
    if (!g) return;
    size_t hdr = (size_t)g->data_offset;
    gguf_close(g);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int opened = 0, refused = 0, unnamed = 0;
    uint8_t *b = malloc(good_n);
    for (int iter = 0; iter < 600; iter++) {
        memcpy(b, good, good_n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            size_t at = (size_t)(rng % hdr);
            b[at] = (uint8_t)(rng >> 32);
        }
        err[0] = 0;
        gguf_file *f = gguf_open_buffer("flip.gguf", b, good_n, err, sizeof err);
        if (!f) { refused++; if (!strstr(err, "flip.gguf")) unnamed++; continue; }
        opened++;
        /* whatever opened must be safe to walk */
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            if (kv->type == GGUF_ARR && kv->arr_type == GGUF_STR) {
                gguf_arr_str(kv, kv->arr_n ? kv->arr_n - 1 : 0);
            } else if (kv->type == GGUF_ARR && kv->arr_n) {
                (void)gguf_arr_num(kv, kv->arr_n - 1);
            }
        }
        tok_vocab *v = tok_load(f, err, sizeof err);
        if (v) {
            int32_t ids[64];
            tok_encode(v, "Once upon a time", 16, 1, 0, ids, 64);
            tok_free(v);
        }
        gguf_close(f);
    }
    free(b);
    CHECK(opened + refused == 600 && unnamed == 0, "%d refusals did not name the file", unnamed);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hearth-gguf-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    hearth_log_set_level(HEARTH_LOG_ERROR);
    good = test_read_file(HEARTH_SOURCE_DIR "/models/stories260K.gguf", &good_n);
    CHECK(good != NULL && good_n == 1185376, "cannot read models/stories260K.gguf");
    if (good) {
        test_good_file();
        test_magic_version();
        test_truncated();
        test_lengths();
        test_tensor_infos();
        test_alignment_key();
        test_model_level();
        test_value_types();
        test_random_corruption();
    }
    test_writer_roundtrip();
    free(good);
    test_sh("rm -rf '%s'", tmpdir);
    return test_done("test_gguf");
}
