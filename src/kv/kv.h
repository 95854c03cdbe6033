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
    /* Layers 0..n_gpu-1 live on cards: layer l on card gcard[l] (an index into gdev, the
     * device slots), in that card's buffers dk, dv ([its layers][n_ctx] rows) and dmu
     * ([its layers][row_k]); dkl, dvl, dmul point at each layer's part. Their host rows
     * above are never touched. */
    int n_gpu, n_gcard;
    int gdev[16], gfirst[16], gn[16];
    uint8_t *dk[16], *dv[16];
    float *dmu[16];
    int *gcard;
    uint8_t **dkl, **dvl;
    float **dmul;
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
/* Moves layers 0..n_gpu-1 to cards: layer l to card card_of[l] (consecutive layers per
 * card, cards in order), card k being device slot dev_of_card[k] (device buffers; 0 or
 * -1 with a message). */
int kv_init_gpu(kv_cache *kv, int n_gpu, const int *card_of, const int *dev_of_card, int n_card, char *err,
                size_t errlen);
/* Frees the device buffers; every layer is then a host layer again (empty). */
void kv_free_gpu(kv_cache *kv);
static inline uint8_t *kv_dk(const kv_cache *kv, int layer) { return kv->dkl[layer]; }
static inline uint8_t *kv_dv(const kv_cache *kv, int layer) { return kv->dvl[layer]; }
/* kv_put for a GPU layer; k and v are device rows. */
int kv_put_gpu(kv_cache *kv, struct gpu_ctx *g, int layer, int pos0, int T, const float *k, const float *v);
/* kv_put_gpu's arguments but the rows, for a product that stores them itself
 * (gpu_matmul_rope_store) */
struct gpu_kv_store;
void kv_store_gpu(const kv_cache *kv, int layer, int pos0, struct gpu_kv_store *st);
/* kv_shift's work on the GPU layers (card k's with gs[k]); call it before kv_shift,
 * which does the rest. */
int kv_shift_gpu(kv_cache *kv, struct gpu_ctx *const *gs, int n_keep, int n_discard, const kv_rope *rope);
/* Device bytes (K + V) of card k's layers. */
uint64_t kv_gpu_bytes(const kv_cache *kv, int k);
/* "KV cache on CPU: <n> layers, ..." for the host layers (empty when there are none). */
void kv_describe_cpu(const kv_cache *kv, char *buf, size_t n);

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
