/* kv: the KV cache of one sequence. Per layer, one K row and one V row per cell; a row is
 * a cell's n_head_kv * head_dim values in the cache type, padded up to a whole number of
 * blocks, so any head size works with any block size. Cell index == position. */
#ifndef HEARTH_KV_H
#define HEARTH_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_rope {
    int n_rot;
    float base, freq_scale;
    const float *freq_factors; /* n_rot/2 values or NULL */
} kv_rope;

/* Rotation of quantized rows. Per head when a head spans whole blocks: attention then
 * rotates q (and un-rotates the output for V) and reads rows as they are. Across the whole
 * row when heads are smaller than a block (head size 8 or 16): one block then mixes
 * several heads, and rotating across them evens out their magnitudes; attention undoes
 * it on the row it has expanded. */
enum { KV_ROT_NONE = 0, KV_ROT_HEAD = 1, KV_ROT_ROW = 2 };

typedef struct kv_cache {
    int n_ctx, n_layer, n_head_kv, head_dim;
    int row;                /* values per cell per layer: n_head_kv * head_dim */
    int type_k, type_v;
    int row_k, row_v;       /* row padded to the K / V block size */
    size_t kb, vb;          /* bytes of one padded K / V row */
    uint8_t *k, *v;         /* [n_layer][n_ctx] rows */
    int rot_k, rot_v;       /* KV_ROT_*: how rows are Hadamard-rotated before quantizing */
    float *k_mu;            /* [n_layer][row_k]: offset subtracted from stored K rows */
    int n;                  /* cells in use */
    int32_t *tokens;        /* token of each used cell */
    /* Layers 0..n_gpu-1 live on card gpu_dev (dk, dv: [n_gpu][n_ctx] rows, dmu:
     * [n_gpu][row_k]); their host rows above are never touched. */
    int n_gpu, gpu_dev;
    uint8_t *dk, *dv;
    float *dmu;
} kv_cache;

/* Checks the types are cache types, then allocates. Returns 0 or -1 with a message. */
int  kv_init(kv_cache *kv, int n_ctx, int n_layer, int n_head_kv, int head_dim, int type_k, int type_v,
             int rotate, char *err, size_t errlen);
void kv_free(kv_cache *kv);

static inline uint8_t *kv_k(const kv_cache *kv, int layer, int cell) { return kv->k + ((size_t)layer * kv->n_ctx + cell) * kv->kb; }
static inline uint8_t *kv_v(const kv_cache *kv, int layer, int cell) { return kv->v + ((size_t)layer * kv->n_ctx + cell) * kv->vb; }

/* Store T cells' K and V (rows of `row` values, T rows each) for a layer starting at cell
 * pos0. Rows of quantized types are rotated first when rotation is on (the caller rotates
 * q and the output), and K rows have the layer's offset subtracted (see kv.c). */
void kv_put(kv_cache *kv, int layer, int pos0, int T, const float *k, const float *v);
/* Drop n_discard cells after the first n_keep, move later cells down and re-rotate
 * their K by -n_discard positions (through f32 for quantized types). */
void kv_shift(kv_cache *kv, int n_keep, int n_discard, const kv_rope *rope);

/* ---- GPU-resident layers ---- */
struct gpu_ctx;
/* Moves layers 0..n_gpu-1 to card dev (device buffers; 0 or -1 with a message). */
int kv_init_gpu(kv_cache *kv, int n_gpu, int dev, char *err, size_t errlen);
/* Frees the device buffers; every layer is then a host layer again (empty). */
void kv_free_gpu(kv_cache *kv);
static inline uint8_t *kv_dk(const kv_cache *kv, int layer) { return kv->dk + (size_t)layer * kv->n_ctx * kv->kb; }
static inline uint8_t *kv_dv(const kv_cache *kv, int layer) { return kv->dv + (size_t)layer * kv->n_ctx * kv->vb; }
/* kv_put for a GPU layer; k and v are device rows. */
int kv_put_gpu(kv_cache *kv, struct gpu_ctx *g, int layer, int pos0, int T, const float *k, const float *v);
/* kv_shift's work on the GPU layers; call it before kv_shift, which does the rest. */
int kv_shift_gpu(kv_cache *kv, struct gpu_ctx *g, int n_keep, int n_discard, const kv_rope *rope);
/* One line per device holding layers: "KV cache on CUDA0: 32 layers, ..." */
void kv_describe_devices(const kv_cache *kv, const char *gpu_name, char *buf, size_t n);

uint64_t kv_bytes_k(const kv_cache *kv);
uint64_t kv_bytes_v(const kv_cache *kv);
/* "KV cache: <cells> cells, K (<type>) <x> MiB, V (<type>) <y> MiB" */
void kv_describe(const kv_cache *kv, char *buf, size_t n);

/* Is this type usable as a cache type on the CPU, and the list for messages. */
int kv_type_ok(int type);
/* Bytes of one cell's row of `row` values in `type`, padded to whole blocks. */
size_t kv_row_bytes(int type, int row);
const char *kv_type_list(void);

#endif
