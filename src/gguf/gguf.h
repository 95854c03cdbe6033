/* gguf: the file format. The reader maps a file, validates every field before anything
 * uses it, and hands out a read-only view; the writer builds files for tests and tools. */
#ifndef HEARTH_GGUF_H
#define HEARTH_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STR = 8, GGUF_ARR = 9, GGUF_U64 = 10, GGUF_I64 = 11,
    GGUF_F64 = 12, GGUF_VTYPE_COUNT = 13
};

typedef struct gguf_str { const char *p; uint64_t n; } gguf_str; /* not NUL-terminated */

typedef struct gguf_kv {
    gguf_str    key;
    int         type;       /* enum gguf_vtype */
    int         arr_type;   /* element type when type == GGUF_ARR */
    uint64_t    arr_n;      /* element count when type == GGUF_ARR */
    const uint8_t *data;    /* the value's bytes in the file (for arrays: the first element) */
} gguf_kv;

#define GGUF_MAX_DIMS 4
typedef struct gguf_tensor {
    gguf_str    name;
    int         type;               /* quant_type id, known to quant_get() */
    int         n_dims;
    int64_t     ne[GGUF_MAX_DIMS];  /* ne[0] is the row length; unused dims are 1 */
    uint64_t    offset;             /* relative to the data section */
    uint64_t    nbytes;
    const void *data;               /* inside the mapping */
} gguf_tensor;

typedef struct gguf_file {
    const char *path;
    const uint8_t *map; size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t alignment, data_offset;
    int owns_map;               /* gguf_open mapped it; gguf_close unmaps */
} gguf_file;

/* Open and validate. On failure returns NULL and writes a message naming the file, the
 * field and the value into err. */
gguf_file *gguf_open(const char *path, char *err, size_t errlen);
/* Validate an in-memory image (the fuzzer's entry); buf must outlive the result. */
gguf_file *gguf_open_buffer(const char *name, const void *buf, size_t size, char *err, size_t errlen);
void gguf_close(gguf_file *f);

const gguf_kv     *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return 0 on success, -1 when missing or of an incompatible type. Integer
 * getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array element access (validated at open; index < arr_n). */
gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i);      /* O(i): walks the array */
/* Calls fn for every element of a string array in order (O(total)); stops and returns -1
 * if fn returns non-zero or kv is not a string array. */
int gguf_arr_str_each(const gguf_kv *kv, int (*fn)(void *ud, uint64_t i, gguf_str s), void *ud);
double   gguf_arr_num(const gguf_kv *kv, uint64_t i);
size_t   gguf_vtype_size(int type); /* 0 for STR/ARR */

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_w_f32(gguf_writer *w, const char *key, float v);
void gguf_w_bool(gguf_writer *w, const char *key, int v);
void gguf_w_str(gguf_writer *w, const char *key, const char *v);
void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Copies nbytes of data; ne has n_dims entries. */
void gguf_w_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                   const void *data, size_t nbytes);
/* Copies a metadata entry read from another file; arrays keep at most max_arr_n elements. */
void gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv, uint64_t max_arr_n);
/* Declares a tensor whose nbytes of data the caller streams after the header. */
void gguf_w_tensor_info(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, size_t nbytes);
/* Streaming: write the header (metadata, tensor table, padding); then, for each tensor in
 * the order declared, its bytes followed by gguf_writer_stream_pad(f, nbytes). */
int gguf_writer_stream_header(gguf_writer *w, FILE *f);
int gguf_writer_stream_pad(FILE *f, uint64_t nbytes);
/* Serialize to a malloc'd buffer (caller frees) or to a file. Return 0 on success. */
int gguf_writer_to_buffer(gguf_writer *w, uint8_t **out, size_t *size);
int gguf_writer_to_file(gguf_writer *w, const char *path);

#endif
