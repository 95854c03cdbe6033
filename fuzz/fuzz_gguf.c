/* libFuzzer harness for the GGUF reader and what reads a validated file: every input is
 * opened from memory; what opens is walked (every key through every getter, every array,
 * the first and last byte of every tensor), its vocabulary is loaded and used, and the
 * model loader runs on it through a memfd. A refusal must carry a message naming the
 * input. ASan/UBSan turn any out-of-bounds read or overflow into a crash. */
#include "gguf/gguf.h"
#include "hearth.h"
#include "tokenizer/tok.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile uint64_t sink;

static int each_str(void *ud, uint64_t i, gguf_str s) {
    uint64_t *acc = ud;
    *acc += s.n + i;
    if (s.n) *acc += (uint8_t)s.p[0] + (uint8_t)s.p[s.n - 1];
    return 0;
}

static void walk_kv(const gguf_file *f, const gguf_kv *kv) {
    char key[256];
    size_t n = kv->key.n < sizeof key - 1 ? (size_t)kv->key.n : sizeof key - 1;
    memcpy(key, kv->key.p, n);
    key[n] = 0;
    uint32_t u; int64_t i64; float x; int b; gguf_str s;
    if (gguf_get_u32(f, key, &u) == 0) sink += u;
    if (gguf_get_i64(f, key, &i64) == 0) sink += (uint64_t)i64;
    if (gguf_get_f32(f, key, &x) == 0) sink += (uint64_t)(x == x);
    if (gguf_get_bool(f, key, &b) == 0) sink += (uint64_t)b;
    if (gguf_get_str(f, key, &s) == 0 && s.n) sink += (uint8_t)s.p[0] + (uint8_t)s.p[s.n - 1];
    if (kv->type != GGUF_ARR) return;
    if (kv->arr_type == GGUF_STR) {
        uint64_t acc = 0;
        if (gguf_arr_str_each(kv, each_str, &acc) != 0) __builtin_trap();
        sink += acc;
        if (kv->arr_n) {
            gguf_str last = gguf_arr_str(kv, kv->arr_n - 1);
            if (last.n) sink += (uint8_t)last.p[last.n - 1];
        }
    } else if (kv->arr_n) {
        sink += (uint64_t)(gguf_arr_num(kv, 0) == gguf_arr_num(kv, kv->arr_n - 1));
    }
}

static void try_vocab(const gguf_file *f) {
    char err[512] = "";
    tok_vocab *v = tok_load(f, err, sizeof err);
    if (!v) {
        if (!err[0]) __builtin_trap();   /* a refusal must say why */
        return;
    }
    static const char text[] = " Hello world, \xe2\x96\x81 <s> caf\xc3\xa9 \xf0\x9f\x98\x80 123\n\tend";
    int32_t ids[256];
    int k = tok_encode(v, text, sizeof text - 1, 1, 1, ids, 256);
    if (k > 0 && k <= 256) {
        char out[1024];
        sink += tok_decode(v, ids, (size_t)k, out, sizeof out);
    }
    int nv = tok_n_vocab(v);
    for (int32_t id = -1; id < nv && id < 64; id++) {
        char piece[64];
        sink += (uint64_t)tok_piece(v, id, piece, sizeof piece);
    }
    tok_free(v);
}

static void try_model(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz-gguf", 0);
    if (fd < 0) return;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) { close(fd); return; }
        off += (size_t)w;
    }
    char path[64], err[1024] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    hearth_model *m = NULL;
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = 1;
    if (hearth_model_load(path, &mp, &m, err, sizeof err) == 0) {
        const hearth_model_info *in = hearth_model_get_info(m);
        sink += (uint64_t)in->n_params + (uint64_t)in->n_vocab;
        hearth_model_free(m);
    } else if (!strstr(err, path)) {
        __builtin_trap();   /* every refusal names the file */
    }
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    hearth_log_set_level(HEARTH_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024] = "";
    gguf_file *f = gguf_open_buffer("fuzz.gguf", data, size, err, sizeof err);
    if (!f) {
        if (!strstr(err, "fuzz.gguf")) __builtin_trap();
        return 0;
    }
    for (uint64_t i = 0; i < f->n_kv; i++) walk_kv(f, &f->kv[i]);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        size_t n = t->name.n < sizeof name - 1 ? (size_t)t->name.n : sizeof name - 1;
        memcpy(name, t->name.p, n);
        name[n] = 0;
        if (!gguf_find_tensor(f, name) && !memchr(name, 0, n) && n == t->name.n) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
    }
    try_vocab(f);
    gguf_close(f);
    try_model(data, size);
    return 0;
}
